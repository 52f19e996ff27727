//! Per-origin watermarks, and the rule that says when a tombstone may be forgotten.
//!
//! A tombstone is what makes an older write of its key lose when it arrives late. Forgetting
//! it is safe only once no older write of the key can arrive anywhere any more; the watermarks
//! are how a region knows that without asking. The rule lives here, free of the store's
//! locks and disk, so the store and the model checker (`edgekv-model`) share one definition.

use std::collections::{BTreeMap, BTreeSet};

use crate::{RegionId, Timestamp, Version};

/// Per origin region, the timestamp through which all of its writes have reached every
/// configured region (or been superseded there by a newer write of the same item), and which
/// regions make up the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Watermarks {
    marks: BTreeMap<RegionId, Timestamp>,
    /// Every region of the cluster, this one included; empty for a store that was never told
    /// (a region alone, or a test), where only a tombstone's origin is asked.
    members: BTreeSet<RegionId>,
}

impl Watermarks {
    /// Watermarks of a cluster of `members` (this region included), none heard from yet.
    pub fn with_members(members: impl IntoIterator<Item = RegionId>) -> Self {
        Watermarks { marks: BTreeMap::new(), members: members.into_iter().collect() }
    }

    /// Declares the regions of the cluster, this one included.
    pub fn set_members(&mut self, members: impl IntoIterator<Item = RegionId>) {
        self.members = members.into_iter().collect();
    }

    /// Records that every write of `origin` at or below `through` is everywhere. Watermarks
    /// only rise: messages carrying them arrive in any order.
    pub fn raise(&mut self, origin: RegionId, through: Timestamp) {
        let mark = self.marks.entry(origin).or_default();
        *mark = (*mark).max(through);
    }

    /// Whether no write older than `version`, of any origin, can still arrive anywhere: every
    /// member's mark, and the origin's, is at or past its timestamp.
    ///
    /// The origin's mark alone says that every region has this write; it says nothing of an
    /// older write of the same key from a third region, still on its way to somewhere. A
    /// tombstone forgotten before that write lands lets it bring the value back (the model
    /// checker's counterexample, `docs/model.md`). An older write has a timestamp at or below
    /// this one, so every origin's mark reaching it rules that out.
    pub fn covers(&self, version: Version) -> bool {
        let reached = |origin: &RegionId| {
            self.marks.get(origin).is_some_and(|through| version.ts <= *through)
        };
        reached(&version.origin) && self.members.iter().all(reached)
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

    #[test]
    fn every_member_must_be_past_a_tombstone_before_it_is_covered() {
        let region = |n: &str| n.parse::<RegionId>().unwrap();
        let mut marks = Watermarks::with_members(["apac", "enam", "weur"].map(region));
        marks.raise(region("enam"), Timestamp(5));
        marks.raise(region("weur"), Timestamp(9));
        assert!(!marks.covers(v(5, "enam")), "apac may still send an older write");
        marks.raise(region("apac"), Timestamp(4));
        assert!(!marks.covers(v(5, "enam")), "apac's write at 5 may still be on its way");
        marks.raise(region("apac"), Timestamp(5));
        assert!(marks.covers(v(5, "enam")));
        assert!(!marks.covers(v(6, "enam")));
    }
}
