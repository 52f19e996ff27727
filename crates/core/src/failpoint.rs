//! Failpoints: named rules of the replication protocol that a test build can break on purpose,
//! to show that the simulator and the model checker catch each broken rule.
//!
//! Without the `failpoints` feature every check is a constant `false` that the compiler removes,
//! so a normal build pays nothing. With it, the set of broken rules is process-wide: taken from
//! `EDGEKV_FAILPOINTS` (comma-separated names) at first use, or set by [`set`].

/// A rule that can be broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Failpoint {
    /// A replicated write older than the key's current version replaces it: last-writer-wins
    /// broken.
    ApplyOlder,
    /// Anti-entropy leaves the least differing item out of every reconcile it answers, in
    /// both directions: it never repairs that difference.
    AntiEntropySkipsItem,
    /// Tombstones are collected after their grace period even when some region may not have
    /// the delete yet.
    CollectEarly,
    /// A restarted region has forgotten its newest local write: acknowledged, and gone.
    RestartLosesWrite,
}

impl Failpoint {
    /// Every failpoint.
    pub const ALL: [Failpoint; 4] = [
        Failpoint::ApplyOlder,
        Failpoint::AntiEntropySkipsItem,
        Failpoint::CollectEarly,
        Failpoint::RestartLosesWrite,
    ];

    /// Its name, as `EDGEKV_FAILPOINTS` and `--failpoint` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Failpoint::ApplyOlder => "apply-older",
            Failpoint::AntiEntropySkipsItem => "anti-entropy-skips-item",
            Failpoint::CollectEarly => "collect-early",
            Failpoint::RestartLosesWrite => "restart-loses-write",
        }
    }

    /// The failpoint named `name`.
    pub fn parse(name: &str) -> Option<Failpoint> {
        Failpoint::ALL.into_iter().find(|f| f.name() == name.trim())
    }
}

#[cfg(feature = "failpoints")]
mod enabled {
    use std::sync::RwLock;

    use super::Failpoint;

    static BROKEN: RwLock<Option<Vec<Failpoint>>> = RwLock::new(None);

    pub(super) fn active(point: Failpoint) -> bool {
        if let Ok(broken) = BROKEN.read() {
            if let Some(broken) = broken.as_ref() {
                return broken.contains(&point);
            }
        }
        let from_env: Vec<Failpoint> = std::env::var("EDGEKV_FAILPOINTS")
            .unwrap_or_default()
            .split(',')
            .filter_map(Failpoint::parse)
            .collect();
        let on = from_env.contains(&point);
        if let Ok(mut broken) = BROKEN.write() {
            broken.get_or_insert(from_env);
        }
        on
    }

    pub(super) fn set(points: &[Failpoint]) {
        if let Ok(mut broken) = BROKEN.write() {
            *broken = Some(points.to_vec());
        }
    }
}

/// Whether `point` is broken in this process (always `false` without the feature).
#[inline(always)]
pub fn active(point: Failpoint) -> bool {
    #[cfg(feature = "failpoints")]
    {
        enabled::active(point)
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = point;
        false
    }
}

/// Breaks exactly `points` from now on, in the whole process (with the feature; otherwise it
/// reports that it cannot).
pub fn set(points: &[Failpoint]) -> Result<(), &'static str> {
    #[cfg(feature = "failpoints")]
    {
        enabled::set(points);
        Ok(())
    }
    #[cfg(not(feature = "failpoints"))]
    {
        if points.is_empty() {
            Ok(())
        } else {
            Err("this build has no failpoints: build with --features failpoints")
        }
    }
}

/// Whether this build can break rules at all.
pub const COMPILED: bool = cfg!(feature = "failpoints");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for point in Failpoint::ALL {
            assert_eq!(Failpoint::parse(point.name()), Some(point));
        }
        assert_eq!(Failpoint::parse("nothing"), None);
    }

    #[cfg(not(feature = "failpoints"))]
    #[test]
    fn without_the_feature_nothing_breaks() {
        assert!(!active(Failpoint::ApplyOlder));
        assert!(set(&[Failpoint::ApplyOlder]).is_err());
        assert!(set(&[]).is_ok());
    }
}
