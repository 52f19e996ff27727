//! The store's anti-entropy digest: which items are in the tree, and when young items mature.
//!
//! An item enters the digest only once it is older than the horizon (the longest propagation
//! delay a link may have, plus a margin). Anti-entropy compares digests, so it only ever sees
//! items the outbox should already have delivered: it repairs what delivery lost without
//! publishing a write in a region before the emulated delay has passed. Tombstones are never in
//! the digest; reconciliation looks them up in the store, which keeps deletes winning without
//! a collected tombstone ever reappearing as a difference.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use edgekv_core::digest::{item_hash, leaf_of, DigestTree, LeafId};
use edgekv_core::Version;

use crate::ItemId;

/// The digest and its membership. `members` is the authority on what the tree holds, so a
/// removal always undoes exactly one earlier insertion.
#[derive(Debug, Default)]
pub(crate) struct Digest {
    pub(crate) tree: DigestTree,
    members: BTreeMap<(LeafId, ItemId), Version>,
    /// Every item with a `mature_at` at or below this has been considered for the tree.
    pub(crate) matured_through_ms: u64,
}

/// An item version waiting to mature.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Maturing {
    pub(crate) mature_at_ms: u64,
    pub(crate) item: ItemId,
    pub(crate) version: Version,
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
        due
    }
}

fn leaf(item: &ItemId) -> LeafId {
    leaf_of(item.account.as_str(), item.namespace.as_str(), item.key.as_deref())
}

fn hash(item: &ItemId, version: Version) -> u64 {
    item_hash(item.account.as_str(), item.namespace.as_str(), item.key.as_deref(), version)
}

impl Digest {
    /// Puts `version` of `item` in the tree, replacing whatever version of it was there.
    pub(crate) fn insert(&mut self, item: ItemId, version: Version) {
        self.remove(&item);
        let leaf = leaf(&item);
        self.tree.insert(leaf, hash(&item, version));
        self.members.insert((leaf, item), version);
    }

    /// Takes `item` out of the tree if it is in it.
    pub(crate) fn remove(&mut self, item: &ItemId) {
        let leaf = leaf(item);
        if let Some(version) = self.members.remove(&(leaf, item.clone())) {
            self.tree.remove(leaf, hash(item, version));
        }
    }

    /// Every item in the tree under `leaf_id`.
    pub(crate) fn members_of(&self, leaf_id: LeafId) -> impl Iterator<Item = (&ItemId, Version)> {
        self.members
            .range((leaf_id, ItemId::min())..)
            .take_while(move |((l, _), _)| *l == leaf_id)
            .map(|((_, item), version)| (item, *version))
    }
}

impl ItemId {
    /// The smallest identity, to start a range scan of a leaf.
    fn min() -> Self {
        ItemId { account: crate::AccountId::min(), namespace: crate::NamespaceId::min(), key: None }
    }
}
