//! Purging: expired entries become tombstones, old tombstones are forgotten.

use std::sync::Arc;

use edgekv_core::digest::item_hash;
use edgekv_core::Entry;

use super::*;
use crate::expiry::{Due, PurgeKind};
use edgekv_core::{AccountId, NamespaceId};

impl Store {
    /// Whether a tombstone of `version` may be forgotten: the rule is
    /// [`edgekv_core::may_collect`], shared with the model checker.
    fn may_collect(&self, version: Version) -> bool {
        edgekv_core::may_collect(&self.watermarks.read(), version)
    }

    /// Turns expired entries into tombstones and forgets tombstones past their grace period
    /// whose delete has reached every region. Does at most `max` items per call so that a
    /// caller can yield between batches.
    pub fn purge(&self, max: usize) -> PurgeStats {
        let _disk = self.disk();
        self.drop_deleted();
        let now = self.now_ms();
        let due = self.purge_queue.lock().pop_due(now, max);
        let mut stats = PurgeStats::default();
        let mut follow_ups = Vec::new();
        for item in due {
            let Some(ns) = self.namespaces.get(&item.namespace).map(|ns| Arc::clone(&ns)) else {
                continue;
            };
            let account = ns.record.read().account.clone();
            let mut keys = ns.keys.write();
            let Some(slot) = keys.get_mut(&item.key) else { continue };
            if slot.version != item.version {
                continue; // Rewritten since it was queued; the newer write has its own item.
            }
            let next = match item.kind {
                PurgeKind::Expire => self.expire(&account, slot, item, now, &mut stats),
                PurgeKind::Collect if self.may_collect(item.version) => {
                    let committed = self.commit_with(None, |disk, batch| {
                        disk.remove_entry(batch, &item.namespace, &item.key)
                    });
                    match committed {
                        Ok(()) => {
                            keys.remove(&item.key);
                            stats.collected += 1;
                            None
                        }
                        Err(error) => {
                            tracing::warn!(%error, "tombstone collection not stored; retried later");
                            Some(Due { at_ms: now.saturating_add(1000), ..item })
                        }
                    }
                }
                PurgeKind::Collect => {
                    // Some region may not have the delete yet: forgetting it now could let an
                    // older value come back from there. Try again later.
                    let wait =
                        COLLECT_RETRY.min(self.config.tombstone_grace).max(MIN_COLLECT_RETRY);
                    Some(Due { at_ms: now.saturating_add(wait.as_millis() as u64), ..item })
                }
            };
            follow_ups.extend(next);
        }
        self.finish(Effects { purges: follow_ups, maturing: Vec::new() });
        stats
    }

    /// Turns an expired entry into a tombstone of the same version (an older write of the key
    /// arriving later must still lose to it); what to do with the item next: collect the
    /// tombstone after its grace period, or retry the expiry if it could not be stored.
    fn expire(
        &self,
        account: &AccountId,
        slot: &mut Slot,
        item: Due,
        now: u64,
        stats: &mut PurgeStats,
    ) -> Option<Due> {
        let tombstone = Entry::tombstone(item.version);
        let committed = self.commit_with(None, |disk, batch| {
            disk.put_entry(batch, &item.namespace, &item.key, &tombstone)
        });
        if let Err(error) = committed {
            tracing::warn!(%error, "expiry not stored; retried later");
            return Some(Due { at_ms: now.saturating_add(1000), ..item });
        }
        if slot.digested {
            let hash =
                item_hash(account.as_str(), item.namespace.as_str(), Some(&item.key), slot.version);
            self.digest.lock().tree.remove(slot.leaf, hash);
        }
        *slot = Slot {
            expiration: None,
            metadata: None,
            memory: None,
            tombstone: true,
            digested: false,
            ..slot.clone()
        };
        stats.expired += 1;
        let grace_ms = self.config.tombstone_grace.as_millis() as u64;
        Some(Due { at_ms: item.at_ms.saturating_add(grace_ms), kind: PurgeKind::Collect, ..item })
    }

    /// How many purges are scheduled (a gauge for tests and metrics).
    pub fn pending_purges(&self) -> usize {
        self.purge_queue.lock().len()
    }

    /// Whether `key` has any state at all, live or tombstone (for tests of purging).
    pub fn has_state(&self, namespace: &NamespaceId, key: &str) -> bool {
        self.namespaces.get(namespace).is_some_and(|ns| ns.keys.read().contains_key(key))
    }

    /// Drops the keys of namespaces whose local delete has become durable.
    fn drop_deleted(&self) {
        let waiting = std::mem::take(&mut *self.pending_drops.lock());
        if waiting.is_empty() {
            return;
        }
        let disk = self.disk();
        let mut still = Vec::new();
        for id in waiting {
            let Some(ns) = self.namespaces.get(&id).map(|ns| Arc::clone(&ns)) else { continue };
            let version = ns.record.read().version;
            let dropped = if self.hidden(disk.as_ref(), version) {
                Ok(false)
            } else {
                self.drop_keys(&ns).map(|()| true)
            };
            match dropped {
                Ok(true) => {}
                Ok(false) => still.push(id),
                Err(error) => {
                    tracing::warn!(%error, namespace = %id, "keys of a deleted namespace not dropped; retried later");
                    still.push(id);
                }
            }
        }
        self.pending_drops.lock().extend(still);
    }
}
