//! This region's outbox of its own writes. The watermarks that make tombstone collection safe
//! are [`edgekv_core::Watermarks`].

use std::collections::BTreeMap;

use edgekv_core::{ReplicatedWrite, Timestamp};

/// This region's own writes in HLC order, kept until every peer has them.
///
/// The HLC timestamp is the outbox sequence number: a region's timestamps are unique and
/// strictly increasing, so they order the log and name each entry without a second counter.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    entries: BTreeMap<Timestamp, ReplicatedWrite>,
}

impl Outbox {
    pub(crate) fn append(&mut self, write: ReplicatedWrite) {
        self.entries.insert(write.version().ts, write);
    }

    pub(crate) fn after(&self, after: Timestamp, max: usize) -> Vec<ReplicatedWrite> {
        use std::ops::Bound;
        self.entries
            .range((Bound::Excluded(after), Bound::Unbounded))
            .take(max)
            .map(|(_, w)| w.clone())
            .collect()
    }

    pub(crate) fn compact_through(&mut self, through: Timestamp) {
        // `split_off` keeps everything above `through` and drops the rest in one step.
        let keep = self.entries.split_off(&Timestamp(through.0.saturating_add(1)));
        self.entries = keep;
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Takes the newest write out (a test build's failpoint: a restart that forgot it).
    #[cfg(feature = "failpoints")]
    pub(crate) fn pop_newest(&mut self) -> Option<ReplicatedWrite> {
        self.entries.pop_last().map(|(_, write)| write)
    }
}
