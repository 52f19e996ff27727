//! The queue of future purges: entries that will expire and tombstones that will be collected.
//!
//! Purging walks this queue instead of the whole store, so its cost is proportional to what is
//! actually due. A queued item names the version it was queued for; if the key has been written
//! again since, the item is stale and is dropped when it comes up.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use edgekv_core::Version;

use edgekv_core::NamespaceId;

/// What to do with a key when its time comes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum PurgeKind {
    /// The value expires: replace it with a tombstone of the same version.
    Expire,
    /// The tombstone's grace period is over: forget the key.
    Collect,
}

/// One scheduled purge, ordered by `at_ms` alone (see [`crate::digest::Maturing`]).
#[derive(Clone, Debug)]
pub(crate) struct Due {
    pub(crate) at_ms: u64,
    pub(crate) kind: PurgeKind,
    pub(crate) namespace: NamespaceId,
    pub(crate) key: Arc<str>,
    pub(crate) version: Version,
}

/// A min-heap of [`Due`] items by time.
#[derive(Default, Debug)]
pub(crate) struct PurgeQueue(BinaryHeap<Reverse<Due>>);

impl PurgeQueue {
    pub(crate) fn push(&mut self, due: Due) {
        self.0.push(Reverse(due));
    }

    /// Removes and returns up to `max` items due at or before `now_ms`.
    pub(crate) fn pop_due(&mut self, now_ms: u64, max: usize) -> Vec<Due> {
        let mut out = Vec::new();
        while out.len() < max && self.0.peek().is_some_and(|Reverse(d)| d.at_ms <= now_ms) {
            if let Some(Reverse(due)) = self.0.pop() {
                out.push(due);
            }
        }
        crate::digest::shrink(&mut self.0);
        out
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at_ms == other.at_ms
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at_ms.cmp(&other.at_ms)
    }
}
