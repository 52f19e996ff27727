//! Per-origin watermarks, and the rule that says when a tombstone may be forgotten.
//!
//! A tombstone is what makes an older write of its key lose when it arrives late. Forgetting
//! it is safe only once no older write of the key can arrive anywhere any more; the watermarks
//! are how a region knows that without asking. The rule lives here, free of the store's
//! locks and disk, so the store and the model checker (`edgekv-model`) share one definition.

use std::collections::BTreeMap;

use crate::{RegionId, Timestamp, Version};

/// Per origin region, the timestamp through which all of its writes have reached every
/// configured region (or been superseded there by a newer write of the same item).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Watermarks {
    marks: BTreeMap<RegionId, Timestamp>,
}

impl Watermarks {
    /// Records that every write of `origin` at or below `through` is everywhere. Watermarks
    /// only rise: messages carrying them arrive in any order.
    pub fn raise(&mut self, origin: RegionId, through: Timestamp) {
        let mark = self.marks.entry(origin).or_default();
        *mark = (*mark).max(through);
    }

    /// Whether every region has the write of `version` (or a newer one of its item).
    pub fn covers(&self, version: Version) -> bool {
        self.marks.get(&version.origin).is_some_and(|through| version.ts <= *through)
    }

    /// The mark of `origin`, zero when nothing was heard from it.
    pub fn get(&self, origin: RegionId) -> Timestamp {
        self.marks.get(&origin).copied().unwrap_or_default()
    }
}

/// Whether a tombstone of `version` may be forgotten, its grace period over: no region can
/// still bring back an older value of its key (a test build may break that rule through
/// [`Failpoint::CollectEarly`](crate::failpoint::Failpoint::CollectEarly)).
pub fn may_collect(watermarks: &Watermarks, version: Version) -> bool {
    use crate::failpoint::{active, Failpoint};
    watermarks.covers(version) || active(Failpoint::CollectEarly)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ts: u64, region: &str) -> Version {
        Version::new(Timestamp(ts), region.parse().unwrap())
    }

    #[test]
    fn a_mark_covers_its_origins_writes_at_or_below_it() {
        let mut marks = Watermarks::default();
        assert!(!marks.covers(v(5, "weur")));
        marks.raise("weur".parse().unwrap(), Timestamp(5));
        marks.raise("weur".parse().unwrap(), Timestamp(3));
        assert!(marks.covers(v(5, "weur")));
        assert!(!marks.covers(v(6, "weur")));
    }
}
