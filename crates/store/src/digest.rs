//! The store's anti-entropy digest and the queue of young versions waiting to enter it.
//!
//! An item enters the digest only once it is older than the horizon (the longest propagation
//! delay a link may have, plus a margin). Anti-entropy compares digests, so it only ever sees
//! items the outbox should already have delivered: it repairs what delivery lost without
//! publishing a write in a region before the emulated delay has passed. Tombstones are never in
//! the digest; reconciliation looks them up in the store, which keeps deletes winning without
//! a collected tombstone ever reappearing as a difference.
//!
//! Which items the tree holds is recorded on the items themselves (a flag next to each key's
//! version in the store's index), not in a second map: a membership map costs a copy of every
//! key, and anti-entropy asks for a leaf's members only when digests differ.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use edgekv_core::digest::DigestTree;
use edgekv_core::Version;

use edgekv_core::NamespaceId;

/// The digest tree, and how far maturing has got.
#[derive(Debug, Default)]
pub(crate) struct Digest {
    pub(crate) tree: DigestTree,
    /// Every item with a `mature_at` at or below this has been considered for the tree.
    pub(crate) matured_through_ms: u64,
}

/// An item version waiting to mature: a key of `namespace`, or its record when `key` is `None`.
/// Ordered by `mature_at_ms` alone: the queue only needs the earliest, and comparing names on
/// every tie (thousands of writes share a millisecond) would cost more than the rest of it.
#[derive(Debug)]
pub(crate) struct Maturing {
    pub(crate) mature_at_ms: u64,
    pub(crate) namespace: NamespaceId,
    pub(crate) key: Option<Arc<str>>,
    pub(crate) version: Version,
}

impl PartialEq for Maturing {
    fn eq(&self, other: &Self) -> bool {
        self.mature_at_ms == other.mature_at_ms
    }
}

impl Eq for Maturing {}

impl PartialOrd for Maturing {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Maturing {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.mature_at_ms.cmp(&other.mature_at_ms)
    }
}

/// Min-heap of [`Maturing`] items.
#[derive(Debug, Default)]
pub(crate) struct MaturityQueue(BinaryHeap<Reverse<Maturing>>);

impl MaturityQueue {
    pub(crate) fn push(&mut self, item: Maturing) {
        self.0.push(Reverse(item));
    }

    pub(crate) fn pop_due(&mut self, now_ms: u64) -> Vec<Maturing> {
        let mut due = Vec::new();
        while self.0.peek().is_some_and(|Reverse(m)| m.mature_at_ms <= now_ms) {
            if let Some(Reverse(m)) = self.0.pop() {
                due.push(m);
            }
        }
        shrink(&mut self.0);
        due
    }
}

/// Gives back the memory of a queue that a burst of writes grew and that has since drained: a
/// heap keeps its capacity, and a million-write burst would otherwise hold tens of megabytes.
/// Only a queue that has drained to a sixteenth of its capacity is shrunk (to twice its
/// length), so one that merely breathes is never reallocated back and forth.
pub(crate) fn shrink<T: Ord>(heap: &mut BinaryHeap<T>) {
    if heap.capacity() > 65_536 && heap.len() < heap.capacity() / 16 {
        heap.shrink_to(2 * heap.len());
    }
}
