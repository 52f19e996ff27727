//! The fault model: what chaos experiments do to a cluster, as the admin API takes it, the chaos
//! CLI sends it and lab scenarios schedule it, one type for all three.
//!
//! Link faults (partitions, one-way cuts, extra delay, loss, duplication, paused replication,
//! clock offsets) are enforced by the nodes on the links they are an end of. Process faults
//! (kill -9, graceful stop, freeze, wiping a region's disk) act on a region's container, so only
//! tooling that drives the containers can carry them out; a node's admin API refuses them.
//! Both kinds are written the same way, as JSON or TOML with a `kind`:
//! `{"kind": "partition", "a": ["wnam"], "b": ["enam"]}`, `{"kind": "kill", "region": "weur"}`.

use serde::{Deserialize, Serialize};

use crate::{DelayModel, RegionId};

/// The region wildcard in a fault's link.
pub const ANY: &str = "*";

/// One fault, as the admin API takes and lists it (`{"kind": "partition", ...}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// No message crosses between a region of `a` and a region of `b`, either way.
    Partition {
        /// One side.
        a: Vec<String>,
        /// The other side.
        b: Vec<String>,
    },
    /// Messages from `from` to `to` are cut; the other direction still works.
    OneWay {
        /// Sending region (or `*`).
        from: String,
        /// Receiving region (or `*`).
        to: String,
    },
    /// Deliveries from `from` to `to` wait an extra delay, sampled from a delay model.
    Delay {
        /// Sending region (or `*`).
        from: String,
        /// Receiving region (or `*`).
        to: String,
        /// Extra delay model, e.g. `"2s"` or `"uniform(1s,5s)"`.
        extra: String,
    },
    /// A fraction of the deliveries from `from` to `to` is lost; anti-entropy repairs them.
    Loss {
        /// Sending region (or `*`).
        from: String,
        /// Receiving region (or `*`).
        to: String,
        /// Probability that a delivery is lost, 0 to 1.
        rate: f64,
    },
    /// A fraction of the deliveries from `from` to `to` is sent twice.
    Duplicate {
        /// Sending region (or `*`).
        from: String,
        /// Receiving region (or `*`).
        to: String,
        /// Probability that a delivery is duplicated, 0 to 1.
        rate: f64,
    },
    /// Replication from `from` to `to` is paused: the outbox keeps the writes until resumed.
    Pause {
        /// Sending region (or `*`).
        from: String,
        /// Receiving region (or `*`).
        to: String,
    },
    /// The physical clock of `region`'s hybrid logical clock runs `offset_ms` ahead (negative:
    /// behind).
    ClockOffset {
        /// The region whose clock is skewed.
        region: String,
        /// Offset in milliseconds.
        offset_ms: i64,
    },
    /// SIGKILL the region's process (its container).
    Kill {
        /// The region.
        region: String,
    },
    /// Stop the region gracefully.
    Stop {
        /// The region.
        region: String,
    },
    /// Freeze the region's processes (docker pause) for the fault's duration.
    Freeze {
        /// The region.
        region: String,
    },
    /// Delete the region's disk and start it empty.
    Wipe {
        /// The region.
        region: String,
    },
}

impl Fault {
    /// Whether the fault acts on messages sent from region `from` to region `to` (a
    /// partition acts both ways; `*` names every region). Clock offsets and process faults act
    /// on regions, not links.
    pub fn affects_link(&self, from: &str, to: &str) -> bool {
        let is = |pattern: &str, region: &str| pattern == ANY || pattern == region;
        let has = |side: &[String], region: &str| side.iter().any(|r| is(r, region));
        match self {
            Fault::Partition { a, b } => {
                (has(a, from) && has(b, to)) || (has(b, from) && has(a, to))
            }
            Fault::OneWay { from: f, to: t }
            | Fault::Delay { from: f, to: t, .. }
            | Fault::Loss { from: f, to: t, .. }
            | Fault::Duplicate { from: f, to: t, .. }
            | Fault::Pause { from: f, to: t } => is(f, from) && is(t, to),
            _ => false,
        }
    }

    /// The fault's kind, as in the JSON `kind` field.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Partition { .. } => "partition",
            Fault::OneWay { .. } => "one_way",
            Fault::Delay { .. } => "delay",
            Fault::Loss { .. } => "loss",
            Fault::Duplicate { .. } => "duplicate",
            Fault::Pause { .. } => "pause",
            Fault::ClockOffset { .. } => "clock_offset",
            Fault::Kill { .. } => "kill",
            Fault::Stop { .. } => "stop",
            Fault::Freeze { .. } => "freeze",
            Fault::Wipe { .. } => "wipe",
        }
    }

    /// Whether it acts on a region's process (its container) rather than on links: a node's
    /// admin API cannot carry it out.
    pub fn is_process(&self) -> bool {
        self.process_region().is_some()
    }

    /// The region a process fault acts on.
    pub fn process_region(&self) -> Option<&str> {
        match self {
            Fault::Kill { region }
            | Fault::Stop { region }
            | Fault::Freeze { region }
            | Fault::Wipe { region } => Some(region),
            _ => None,
        }
    }

    /// Checks the fault's parameters.
    pub fn validate(&self) -> Result<(), FaultError> {
        let region = |name: &str| -> Result<(), FaultError> {
            if name == ANY || name.parse::<RegionId>().is_ok() {
                Ok(())
            } else {
                Err(FaultError(format!("invalid region {name:?}: use a region name or \"*\"")))
            }
        };
        let rate = |r: f64| -> Result<(), FaultError> {
            if (0.0..=1.0).contains(&r) {
                Ok(())
            } else {
                Err(FaultError(format!("rate {r} is not between 0 and 1")))
            }
        };
        match self {
            Fault::Partition { a, b } => {
                if a.is_empty() || b.is_empty() {
                    return Err(FaultError("a partition needs regions on both sides".into()));
                }
                a.iter().chain(b).try_for_each(|r| region(r))
            }
            Fault::OneWay { from, to } | Fault::Pause { from, to } => {
                region(from)?;
                region(to)
            }
            Fault::Delay { from, to, extra } => {
                region(from)?;
                region(to)?;
                extra.parse::<DelayModel>().map(|_| ()).map_err(|e| FaultError(e.to_string()))
            }
            Fault::Loss { from, to, rate: r } | Fault::Duplicate { from, to, rate: r } => {
                region(from)?;
                region(to)?;
                rate(*r)
            }
            Fault::ClockOffset { region: r, .. } => region(r),
            Fault::Kill { region: r }
            | Fault::Stop { region: r }
            | Fault::Freeze { region: r }
            | Fault::Wipe { region: r } => {
                if r == ANY {
                    return Err(FaultError("a process fault names one region, not \"*\"".into()));
                }
                region(r)
            }
        }
    }
}

/// A fault in force, with the id the admin API lists and removes it by: what
/// `GET /admin/faults` answers and `edgekv chaos status` reads back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActiveFault {
    /// Unique on the node that holds it.
    pub id: u64,
    /// The fault.
    #[serde(flatten)]
    pub fault: Fault,
}

/// A fault whose parameters are wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FaultError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_acts_on_the_links_it_names() {
        let parse = |json: &str| serde_json::from_str::<Fault>(json);
        let cut = parse(r#"{"kind":"partition","a":["wnam"],"b":["enam","weur"]}"#).unwrap();
        assert!(cut.affects_link("wnam", "enam") && cut.affects_link("weur", "wnam"));
        assert!(!cut.affects_link("enam", "weur"));
        let one_way = parse(r#"{"kind":"one_way","from":"*","to":"apac"}"#).unwrap();
        assert!(one_way.affects_link("wnam", "apac") && !one_way.affects_link("apac", "wnam"));
        let kill = parse(r#"{"kind":"kill","region":"weur"}"#).unwrap();
        assert!(!kill.affects_link("weur", "wnam"));
    }

    #[test]
    fn link_and_process_faults_share_one_shape() {
        let parse = |json: &str| serde_json::from_str::<Fault>(json);
        let kill = parse(r#"{"kind":"kill","region":"weur"}"#).unwrap();
        assert!(kill.is_process() && kill.validate().is_ok());
        assert_eq!(kill.process_region(), Some("weur"));
        let cut = parse(r#"{"kind":"partition","a":["wnam"],"b":["enam"]}"#).unwrap();
        assert!(!cut.is_process() && cut.validate().is_ok());
        assert_eq!(serde_json::to_string(&kill).unwrap(), r#"{"kind":"kill","region":"weur"}"#);
        assert!(parse(r#"{"kind":"wipe","region":"*"}"#).unwrap().validate().is_err());
        assert!(parse(r#"{"kind":"kill","region":"weur","extra":1}"#).is_err());
        assert!(parse(r#"{"kind":"meteor"}"#).is_err());
    }
}
