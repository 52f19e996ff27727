//! The anti-entropy digest: which versions are in it, maturing young ones into it, and what
//! anti-entropy asks of it.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use edgekv_core::digest::{item_hash, leaf_of, LeafId};
use edgekv_core::Version;

use super::*;
use crate::digest::Maturing;
use edgekv_core::{AccountId, ItemId, NamespaceId, NamespaceRecord};

impl Store {
    /// Puts a new key version in the digest now if it is old enough, else queues it to mature.
    /// Tombstones never enter.
    pub(super) fn enter_digest(
        &self,
        digest: &mut Digest,
        account: &AccountId,
        namespace: &NamespaceId,
        key: &Arc<str>,
        slot: &mut Slot,
        effects: &mut Effects,
    ) {
        if slot.is_tombstone() {
            return;
        }
        let horizon_ms = self.config.digest_horizon.as_millis() as u64;
        let mature_at_ms = slot.version.ts.physical_ms().saturating_add(horizon_ms);
        if mature_at_ms <= digest.matured_through_ms {
            let hash = item_hash(account.as_str(), namespace.as_str(), Some(key), slot.version);
            digest.tree.insert(slot.leaf, hash);
            slot.digested = true;
        } else {
            effects.maturing.push(Maturing {
                mature_at_ms,
                namespace: namespace.clone(),
                key: Some(Arc::clone(key)),
                version: slot.version,
            });
        }
    }

    /// Puts a namespace record's version in the digest (now if old enough, else when it
    /// matures). Deleted records stay in the digest: they are how a namespace delete reaches a
    /// region that missed it. Called with the record's write lock held (or before sharing).
    pub(super) fn track_record(
        &self,
        ns: &Namespace,
        record: &NamespaceRecord,
        effects: &mut Effects,
    ) {
        let mature_at_ms = record
            .version
            .ts
            .physical_ms()
            .saturating_add(self.config.digest_horizon.as_millis() as u64);
        let mut digest = self.digest.lock();
        if mature_at_ms <= digest.matured_through_ms {
            digest.tree.insert(record_leaf(record), record_hash(record));
            ns.record_digested.store(true, Ordering::Relaxed);
        } else {
            effects.maturing.push(Maturing {
                mature_at_ms,
                namespace: record.id.clone(),
                key: None,
                version: record.version,
            });
        }
    }

    /// Takes a namespace record's version out of the digest, if it is there.
    pub(super) fn untrack_record(&self, ns: &Namespace, record: &NamespaceRecord) {
        if ns.record_digested.swap(false, Ordering::Relaxed) {
            self.digest.lock().tree.remove(record_leaf(record), record_hash(record));
        }
    }

    /// Moves every version that has become older than the digest horizon into the digest.
    pub fn mature(&self) {
        let disk = self.disk();
        let now = self.now_ms();
        let mut due = self.maturing.lock().pop_due(now);
        // A version not shown yet (its store failed before its group commit) waits: the digest
        // holds only what anti-entropy may send.
        let (hidden, mut due): (Vec<Maturing>, Vec<Maturing>) =
            due.drain(..).partition(|item| self.hidden(disk.as_ref(), item.version));
        if !hidden.is_empty() {
            let mut queue = self.maturing.lock();
            for item in hidden {
                queue.push(Maturing { mature_at_ms: now.saturating_add(1000), ..item });
            }
        }
        // One lock per namespace and slice of items, not per item (writers contend for the
        // same lock), nor per whole namespace (that would stall its writers for milliseconds).
        due.sort_by(|a, b| a.namespace.cmp(&b.namespace));
        let groups = due
            .chunk_by(|a, b| a.namespace == b.namespace)
            .flat_map(|group| group.chunks(MATURE_SLICE));
        for group in groups {
            let Some(ns) = self.namespaces.get(&group[0].namespace).map(|ns| Arc::clone(&ns))
            else {
                continue;
            };
            let account = ns.record.read().account.clone();
            // The item's lock is held while the digest changes, so a concurrent write cannot
            // replace the version between the check and the insert and leave a stale member.
            let mut keys = ns.keys.write();
            for item in group {
                match &item.key {
                    None => {
                        let record = ns.record.read();
                        if record.version == item.version
                            && !ns.record_digested.swap(true, Ordering::Relaxed)
                        {
                            let mut digest = self.digest.lock();
                            digest.tree.insert(record_leaf(&record), record_hash(&record));
                        }
                    }
                    Some(key) => {
                        let Some(slot) = keys.get_mut(key) else { continue };
                        if slot.version == item.version && !slot.is_tombstone() && !slot.digested {
                            let hash = item_hash(
                                account.as_str(),
                                item.namespace.as_str(),
                                Some(key),
                                slot.version,
                            );
                            self.digest.lock().tree.insert(slot.leaf, hash);
                            slot.digested = true;
                        }
                    }
                }
            }
        }
        let mut digest = self.digest.lock();
        digest.matured_through_ms = digest.matured_through_ms.max(now);
    }

    /// The digest's root hash.
    pub fn digest_root(&self) -> u64 {
        self.digest.lock().tree.root()
    }

    /// The digest's 256 branch hashes.
    pub fn digest_branches(&self) -> Vec<u64> {
        self.digest.lock().tree.branches().to_vec()
    }

    /// The 256 leaf hashes under each of `branches`.
    pub fn digest_leaves(&self, branches: &[usize]) -> Vec<Vec<u64>> {
        let digest = self.digest.lock();
        branches.iter().map(|b| digest.tree.leaves_of(*b).to_vec()).collect()
    }

    /// The items in the digest under `leaves`, with their versions. One pass over the index:
    /// anti-entropy asks only when digests differ, and a membership map would cost a copy of
    /// every key.
    pub fn digest_members(&self, leaves: &[LeafId]) -> Vec<(ItemId, Version)> {
        let wanted: HashSet<LeafId> = leaves.iter().copied().collect();
        let mut out = Vec::new();
        let namespaces: Vec<Arc<Namespace>> =
            self.namespaces.iter().map(|ns| Arc::clone(&ns)).collect();
        for ns in namespaces {
            let record = ns.record.read().clone();
            if ns.record_digested.load(Ordering::Relaxed) && wanted.contains(&record_leaf(&record))
            {
                let item = ItemId {
                    account: record.account.clone(),
                    namespace: record.id.clone(),
                    key: None,
                };
                out.push((item, record.version));
            }
            let keys = ns.keys.read();
            for (key, slot) in keys.iter().filter(|(_, s)| s.digested && wanted.contains(&s.leaf)) {
                let item = ItemId {
                    account: record.account.clone(),
                    namespace: record.id.clone(),
                    key: Some(key.to_string()),
                };
                out.push((item, slot.version));
            }
        }
        out
    }

    /// The root a digest built from scratch over the current contents would have: every live
    /// key and namespace record whose version is older than the horizon at the last maturing.
    /// Equal to [`Store::digest_root`] unless the incremental digest has drifted; it costs a
    /// full scan, so it is for checks, not for the request path.
    pub fn rebuilt_digest_root(&self) -> u64 {
        let horizon = self.config.digest_horizon.as_millis() as u64;
        let cutoff = self.digest.lock().matured_through_ms;
        let mature = |v: Version| v.ts.physical_ms().saturating_add(horizon) <= cutoff;
        let mut root = 0;
        for ns in self.namespaces.iter() {
            let record = ns.record.read();
            if is_placeholder(&record) {
                continue;
            }
            let (account, id) = (record.account.as_str(), record.id.as_str());
            if mature(record.version) {
                root ^= item_hash(account, id, None, record.version);
            }
            for (key, slot) in ns.keys.read().iter() {
                if !slot.is_tombstone() && mature(slot.version) {
                    root ^= item_hash(account, id, Some(key), slot.version);
                }
            }
        }
        root
    }

    /// How many items the digest holds.
    pub fn digest_len(&self) -> u64 {
        self.digest.lock().tree.len()
    }
}

pub(super) fn record_leaf(record: &NamespaceRecord) -> LeafId {
    leaf_of(record.account.as_str(), record.id.as_str(), None)
}

pub(super) fn record_hash(record: &NamespaceRecord) -> u64 {
    item_hash(record.account.as_str(), record.id.as_str(), None, record.version)
}
