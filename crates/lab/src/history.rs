//! What a lab run records, one JSON object per line.
//!
//! Client operations follow Jepsen's shape (an invocation and a completion with an outcome of
//! `ok`, `fail` or `info`, a process, a function and a value), with what an eventually
//! consistent store adds: the region that served the operation and the version it returned.
//! Next to them: the moment each region applied each version (from the nodes), the fault
//! schedule, and the final read of every key in every region after the quiet period.
//!
//! Times are nanoseconds on the run's one monotonic clock, from its start; `wall_ms` is the
//! client's wall clock, which expiry (epoch seconds) is judged against.

use std::io::{BufRead, Write};

use edgekv_core::Fault;
use serde::{Deserialize, Serialize};

/// Nanoseconds since the start of the run, on one monotonic clock.
pub type Nanos = u64;

/// How an operation ended, as in Jepsen: `Info` means it may or may not have taken effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Acknowledged.
    Ok,
    /// Certainly did not take effect.
    Fail,
    /// Unknown: a timeout or a lost connection.
    Info,
}

/// What an operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Function {
    /// Write a value.
    Put,
    /// Delete the key.
    Delete,
    /// Read the key.
    Get,
    /// List keys: `key` holds the prefix listed and `value` the number of keys returned.
    List,
}

/// Which API a read went through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// The REST API: the region's store, uncached unless the region caches REST reads.
    Rest,
    /// The Workers binding protocol: through the region's edge cache.
    Binding,
}

impl Via {
    /// The name the history and the scenario use.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Rest => "rest",
            Via::Binding => "binding",
        }
    }
}

/// What a read's `CF-Cache-Status` said.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheStatus {
    /// Served as the region's edge cache held it.
    Hit,
    /// Read from the region's store (and cached).
    Miss,
}

/// One client operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Unique within the history; anomalies name operations by it.
    pub index: u64,
    /// The client that issued it (a client issues one operation at a time).
    pub process: u32,
    /// The region whose endpoint served it.
    pub region: String,
    /// What it did.
    pub f: Function,
    /// The key.
    pub key: String,
    /// A put's value (unique per write), or the value a get returned (`None`: not found).
    #[serde(default)]
    pub value: Option<String>,
    /// A put's absolute expiry, epoch seconds.
    #[serde(default)]
    pub expiration: Option<u64>,
    /// The version the server returned: the write's, or the one a get read.
    #[serde(default)]
    pub version: Option<String>,
    /// When it was invoked.
    pub invoke: Nanos,
    /// When its outcome was known.
    pub complete: Nanos,
    /// Its outcome.
    pub outcome: Outcome,
    /// The client's wall clock at invocation, epoch milliseconds.
    #[serde(default)]
    pub wall_ms: u64,
    /// Which API a read went through; absent: REST (writes, and histories from before the
    /// binding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<Via>,
    /// How long the read's answer may have been cached, seconds: a binding read's cacheTtl, or
    /// the REST API's when the regions cache REST reads; absent: it cannot have been cached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_ttl: Option<u64>,
    /// The `CF-Cache-Status` the read was answered with; absent: none was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheStatus>,
}

impl Op {
    /// Whether it wrote (a put or a delete).
    pub fn is_write(&self) -> bool {
        matches!(self.f, Function::Put | Function::Delete)
    }

    /// Whether its answer may have come from an edge cache: it could be cached, and the server
    /// did not say it read the store.
    pub fn may_be_cached(&self) -> bool {
        self.cache_ttl.is_some() && self.cache != Some(CacheStatus::Miss)
    }

    /// Whether it may have filled an edge cache: a read that could be cached and was not
    /// answered from it.
    pub fn may_fill(&self) -> bool {
        self.cache_ttl.is_some() && self.cache != Some(CacheStatus::Hit)
    }
}

/// A region applied a version of a key (reported by the node).
///
/// The node's clock is not the run's, so an apply's moment is only known to lie in a window,
/// `earliest..=latest`; `at` is the best single estimate inside it, for figures. The checker
/// reasons with the window only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Apply {
    /// The region that applied it.
    pub region: String,
    /// The key.
    pub key: String,
    /// The version applied.
    pub version: String,
    /// When, on the run's clock: the best estimate.
    pub at: Nanos,
    /// It happened no earlier than this. Absent in histories written before apply windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earliest: Option<Nanos>,
    /// It happened no later than this. Absent in histories written before apply windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<Nanos>,
}

/// How far from `at` an apply without a recorded window may have happened, either way.
///
/// Such histories placed a node's millisecond reading (the apply lies in `[M, M + 1 ms)` of it)
/// relative to the lab's millisecond reading of its own start (which lies in `[S, S + 1 ms)`
/// of it), so the truth is within 1 ms of `at` on either side.
pub const LEGACY_APPLY_SLACK: Nanos = 1_000_000;

impl Apply {
    /// An apply whose moment is known exactly (hand-made histories).
    pub fn exact(region: &str, key: &str, version: &str, at: Nanos) -> Self {
        Apply {
            region: region.to_owned(),
            key: key.to_owned(),
            version: version.to_owned(),
            at,
            earliest: Some(at),
            latest: Some(at),
        }
    }

    /// The instants it can have happened between, both included, as the node's clock tells
    /// (see [`crate::bounds`] for what the history's operations add).
    pub fn window(&self) -> (Nanos, Nanos) {
        let earliest = self.earliest.unwrap_or_else(|| self.at.saturating_sub(LEGACY_APPLY_SLACK));
        let latest = self.latest.unwrap_or_else(|| self.at.saturating_add(LEGACY_APPLY_SLACK));
        (earliest.min(self.at), latest.max(self.at))
    }
}

/// A fault started or stopped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultEvent {
    /// Pairs a stop with its start: the fault's position in the scenario's schedule.
    #[serde(default)]
    pub id: Option<u64>,
    /// When, on the run's clock.
    pub at: Nanos,
    /// `start` or `stop`.
    pub action: String,
    /// The fault, in the admin API's shape (`{"kind": "partition", ...}`) whichever way it was
    /// carried out (a process fault goes to docker, not to the admin API).
    pub fault: Fault,
}

/// The read of one key in one region after the workload and the quiet period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalRead {
    /// The region read.
    pub region: String,
    /// The key.
    pub key: String,
    /// The value, or `None` if the key was not found.
    #[serde(default)]
    pub value: Option<String>,
    /// The version served, if a value was.
    #[serde(default)]
    pub version: Option<String>,
    /// When it was sent, on the run's clock.
    pub at: Nanos,
    /// When its answer came, on the run's clock. Absent in older histories: taken as `at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete: Option<Nanos>,
    /// The client's wall clock when it was sent, epoch milliseconds.
    #[serde(default)]
    pub wall_ms: u64,
}

/// One line of a history file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A client operation.
    Op(Op),
    /// A region applied a version.
    Apply(Apply),
    /// A fault started or stopped.
    Fault(FaultEvent),
    /// A final read.
    Final(FinalRead),
}

/// A whole run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// Client operations.
    pub ops: Vec<Op>,
    /// Apply events from the regions.
    pub applies: Vec<Apply>,
    /// The fault schedule as it happened.
    pub faults: Vec<FaultEvent>,
    /// The final reads.
    pub finals: Vec<FinalRead>,
}

/// A history file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The file could not be read.
    #[error("cannot read the history: {0}")]
    Io(#[from] std::io::Error),
    /// A line is not a history event.
    #[error("line {line}: {error}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        error: serde_json::Error,
    },
}

impl History {
    /// Adds one event.
    pub fn push(&mut self, event: Event) {
        match event {
            Event::Op(op) => self.ops.push(op),
            Event::Apply(apply) => self.applies.push(apply),
            Event::Fault(fault) => self.faults.push(fault),
            Event::Final(read) => self.finals.push(read),
        }
    }

    /// Reads a JSONL history; blank lines are skipped, any other bad line is an error naming
    /// its number.
    pub fn read_jsonl(reader: impl BufRead) -> Result<Self, HistoryError> {
        let mut history = History::default();
        for (i, line) in reader.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let event = serde_json::from_str(&line)
                .map_err(|error| HistoryError::Line { line: i + 1, error })?;
            history.push(event);
        }
        Ok(history)
    }

    /// Writes the history as JSONL: operations, applies, faults, then final reads.
    pub fn write_jsonl(&self, mut out: impl Write) -> std::io::Result<()> {
        let events = self
            .ops
            .iter()
            .cloned()
            .map(Event::Op)
            .chain(self.applies.iter().cloned().map(Event::Apply))
            .chain(self.faults.iter().cloned().map(Event::Fault))
            .chain(self.finals.iter().cloned().map(Event::Final));
        for event in events {
            serde_json::to_writer(&mut out, &event)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_round_trips_through_jsonl() {
        let mut history = History::default();
        history.push(Event::Op(Op {
            index: 0,
            process: 1,
            region: "wnam".into(),
            f: Function::Put,
            key: "k".into(),
            value: Some("v1".into()),
            expiration: None,
            version: Some("01a2055700ed0000-wnam".into()),
            invoke: 10,
            complete: 20,
            outcome: Outcome::Ok,
            wall_ms: 1_700_000_000_000,
            via: None,
            cache_ttl: None,
            cache: None,
        }));
        history.push(Event::Op(Op {
            index: 1,
            process: 2,
            region: "enam".into(),
            f: Function::Get,
            key: "k".into(),
            value: None,
            expiration: None,
            version: None,
            invoke: 30,
            complete: 40,
            outcome: Outcome::Ok,
            wall_ms: 1_700_000_000_001,
            via: Some(Via::Binding),
            cache_ttl: Some(30),
            cache: Some(CacheStatus::Hit),
        }));
        history.push(Event::Apply(Apply {
            region: "enam".into(),
            key: "k".into(),
            version: "01a2055700ed0000-wnam".into(),
            at: 30,
            earliest: Some(25),
            latest: Some(35),
        }));
        let mut out = Vec::new();
        history.write_jsonl(&mut out).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.contains(r#""via":"binding","cache_ttl":30,"cache":"hit""#),
            "a read says how it was served: {text}"
        );
        assert!(!text.lines().next().unwrap().contains("via"), "a write has no read path");
        assert_eq!(History::read_jsonl(out.as_slice()).unwrap(), history);
        assert!(history.ops[1].may_be_cached() && !history.ops[1].may_fill());
    }

    #[test]
    fn an_apply_without_a_window_spans_a_millisecond_either_side() {
        let text = "{\"type\":\"apply\",\"region\":\"r\",\"key\":\"k\",\"version\":\"v\",\"at\":5000000}\n\
                    {\"type\":\"final\",\"region\":\"r\",\"key\":\"k\",\"at\":7}\n";
        let history = History::read_jsonl(text.as_bytes()).unwrap();
        assert_eq!(history.applies[0].window(), (4_000_000, 6_000_000));
        assert_eq!(history.applies[0].at, 5_000_000);
        assert_eq!(history.finals[0].complete, None);
        // Near the run's start the window is cut at 0.
        let early = Apply { at: 300, earliest: None, latest: None, ..history.applies[0].clone() };
        assert_eq!(early.window(), (0, 1_000_300));
        assert_eq!(Apply::exact("r", "k", "v", 9).window(), (9, 9));
    }

    #[test]
    fn a_bad_line_is_an_error_naming_it() {
        let text = "\n{\"type\":\"apply\",\"region\":\"r\",\"key\":\"k\",\"version\":\"v\",\"at\":1}\nnot json\n";
        let err = History::read_jsonl(text.as_bytes()).unwrap_err().to_string();
        assert!(err.starts_with("line 3:"), "{err}");
    }

    #[test]
    fn a_fault_reads_whatever_its_key_order_and_is_written_in_the_admin_apis_shape() {
        // Runs before typed faults wrote the fault's keys in alphabetical order.
        let text = r#"{"type":"fault","id":0,"at":5,"action":"start","fault":{"a":["wnam"],"b":["enam"],"kind":"partition"}}"#;
        let history = History::read_jsonl(text.as_bytes()).unwrap();
        let cut = Fault::Partition { a: vec!["wnam".into()], b: vec!["enam".into()] };
        assert_eq!(history.faults[0].fault, cut);
        let mut out = Vec::new();
        history.write_jsonl(&mut out).unwrap();
        let line = String::from_utf8(out).unwrap();
        assert!(
            line.contains(r#""fault":{"kind":"partition","a":["wnam"],"b":["enam"]}"#),
            "{line}"
        );
        let unknown = text.replace("partition", "meteor");
        assert!(History::read_jsonl(unknown.as_bytes()).is_err());
    }
}
