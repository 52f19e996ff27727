//! Rebuilding the in-memory index from the durable store when it opens, and reopening the
//! engine after a storage failure.

use std::sync::Arc;

use edgekv_core::{Entry, Timestamp, Version};

use super::*;
use crate::digest::{Digest, MaturityQueue};
use crate::disk::{Disk, Meta, OpenError};
use crate::expiry::PurgeQueue;
use edgekv_core::{AccountId, NamespaceId, NamespaceRecord};

impl Store {
    /// Rebuilds the index from `disk`, which is not installed yet (or is being replaced, with
    /// the store's engine lock held alone).
    pub(super) fn recover(&self, disk: &Disk, meta: Meta) -> Result<Recovered, OpenError> {
        let mut recovered = Recovered::default();
        let mut floor = meta.hlc_bound;
        // Everything old enough goes straight into the digest; the rest matures as usual.
        self.digest.lock().matured_through_ms = self.now_ms();
        let mut effects = Effects::default();
        for record in disk.records()? {
            floor = floor.max(record.version.ts);
            let ns = Arc::new(Namespace::new(record.clone()));
            if !is_placeholder(&record) {
                self.track_record(&ns, &record, &mut effects);
            }
            self.namespaces.insert(record.id.clone(), ns);
            recovered.namespaces += 1;
        }
        let orphans = self.load_keys(disk, &mut floor, &mut recovered, &mut effects)?;
        remove_orphans(disk, &orphans)?;
        recovered.outbox_last = disk.outbox_last()?;
        if let Some(last) = recovered.outbox_last {
            floor = floor.max(last);
        }
        self.hlc.raise_floor(floor);
        // Every version of this region stamped before now was stamped by an earlier process:
        // on disk, or lost with it and perhaps held by a peer. None is a local write waiting
        // for this process's group commit, so none is hidden. Without this a store opened
        // empty (a wiped disk) would hide its own earlier writes as peers sent them back, and
        // keep them out of its digest and apply log, until a local write of its own passed
        // them.
        disk.recovered_through(self.hlc.now());
        recovered.clock_floor = floor;
        self.positions.lock().extend(meta.positions);
        *self.membership.lock() = meta.membership;
        let born = match meta.born {
            Some(born) => born,
            None => {
                let now = Timestamp::from_physical_ms(self.hlc.physical_now_ms());
                disk.save_born(now).map_err(|e| OpenError::Engine {
                    dir: disk.dir().to_path_buf(),
                    message: format!("record the store's birth: {e}"),
                })?;
                now
            }
        };
        self.born.store(born.0, std::sync::atomic::Ordering::Relaxed);
        self.finish(effects);
        Ok(recovered)
    }

    /// Loads every stored entry into its namespace's key map (and the digest and purge queue),
    /// raising `floor` past every version seen. Returns the orphans: keys of a namespace
    /// deleted just before a crash (the record committed, the key removal not yet).
    fn load_keys(
        &self,
        disk: &Disk,
        floor: &mut Timestamp,
        recovered: &mut Recovered,
        effects: &mut Effects,
    ) -> Result<Vec<(NamespaceId, String)>, OpenError> {
        let mut orphans = Vec::new();
        // A namespace's keys come in order, so its map is built in one pass (densely packed
        // nodes: less memory, and far faster than a million inserts).
        type Loading = (NamespaceId, Option<(Arc<Namespace>, AccountId)>, Vec<(Arc<str>, Slot)>);
        let mut loading: Option<Loading> = None;
        let finish = |loaded: Option<Loading>| {
            if let Some((_, Some((ns, _)), keys)) = loaded {
                // Sorted input: `collect` builds the tree bottom-up with full nodes.
                *ns.keys.write() = keys.into_iter().collect();
            }
        };
        let mut digest = self.digest.lock();
        disk.scan_entries(|ns_id, key, entry| {
            *floor = (*floor).max(entry.version.ts);
            if loading.as_ref().is_none_or(|(id, _, _)| *id != ns_id) {
                finish(loading.take());
                let target = self.namespaces.get(&ns_id).and_then(|ns| {
                    let record = ns.record.read();
                    takes_keys(&record).then(|| (Arc::clone(&ns), record.account.clone()))
                });
                loading = Some((ns_id.clone(), target, Vec::new()));
            }
            let Some((id, target, keys)) = loading.as_mut() else { return };
            let Some((_, account)) = target else {
                orphans.push((ns_id, key.to_owned()));
                return;
            };
            let key: Arc<str> = Arc::from(key);
            let value = if entry.is_tombstone() { Value::Tombstone } else { Value::Disk };
            let mut slot = self.new_slot(account, id, &key, &entry, value);
            self.enter_digest(&mut digest, account, id, &key, &mut slot, effects);
            effects.purges.extend(self.purge_for(id, &key, &slot));
            keys.push((key, slot));
            recovered.keys += 1;
        })?;
        finish(loading.take());
        Ok(orphans)
    }
}

/// Removes the keys of namespaces deleted just before a crash, as the delete would have.
fn remove_orphans(disk: &Disk, orphans: &[(NamespaceId, String)]) -> Result<(), OpenError> {
    if orphans.is_empty() {
        return Ok(());
    }
    let mut batch = disk.batch();
    for (ns, key) in orphans {
        disk.remove_entry(&mut batch, ns, key);
    }
    disk.commit(batch)
        .map_err(|e| OpenError::Engine { dir: disk.dir().to_path_buf(), message: e.to_string() })
}

/// A local write that may have been refused: its store failed before the write's group commit
/// succeeded. If the reopened engine holds it after all (part of the failed group reached the
/// journal), the key goes back to its durable state, the one readers were shown.
struct Refused {
    namespace: NamespaceId,
    /// `None`: the namespace's record.
    key: Option<Arc<str>>,
    /// The durable state to restore.
    durable: Restore,
}

enum Restore {
    Entry(Option<Entry>),
    Record(Option<NamespaceRecord>),
}

impl Store {
    /// After a storage failure, reopens the engine once the data directory's filesystem has
    /// room again, puts back the durable state of every write the failure refused, and
    /// rebuilds the index from the disk. Every operation waits meanwhile (see the `disk`
    /// field). Returns whether it reopened: `false` when the store has not failed, or when
    /// there is still no room. An error means the engine could not be opened again; the store
    /// then refuses every write, and the process should exit so that a supervisor restarts it.
    pub fn recover_storage(&self) -> Result<bool, StoreError> {
        match &*self.disk() {
            Some(disk) if disk.needs_reopen() => {}
            _ => return Ok(false),
        }
        let mut engine = self.disk.write();
        let Some(old) = engine.as_ref().filter(|d| d.needs_reopen()) else { return Ok(false) };
        let refused = self.refused(old)?;
        let through = old.visible_through();
        let (dir, durability) = (old.dir().to_path_buf(), old.durability());
        *engine = None;
        tracing::warn!(dir = %dir.display(), refused = refused.len(), "reopening the store");
        let (disk, meta) = Disk::open(
            &dir,
            self.config.region,
            durability,
            self.config.reserve,
            self.config.engine_memory,
        )
        .map_err(|e| self.close_for_good(format!("the store could not be reopened: {e}")))?;
        restore(&disk, &refused, through).map_err(|e| self.close_for_good(e.to_string()))?;
        self.clear_index();
        let recovered = self
            .recover(&disk, meta)
            .map_err(|e| self.close_for_good(format!("recovery failed: {e}")))?;
        if let Some(listener) = self.listener.read().clone() {
            disk.on_durable(Some(listener));
        }
        *engine = Some(disk);
        tracing::warn!(
            keys = recovered.keys,
            namespaces = recovered.namespaces,
            "store reopened; writes resume"
        );
        Ok(true)
    }

    /// Records why the engine is gone for good.
    fn close_for_good(&self, reason: String) -> StoreError {
        tracing::error!(%reason, "the store is closed; restart the node");
        *self.closed.lock() = Some(reason.clone());
        StoreError::Unavailable(reason)
    }

    /// Every local write not shown yet, with the durable state of its item.
    fn refused(&self, disk: &Disk) -> Result<Vec<Refused>, StoreError> {
        let mut out = Vec::new();
        let namespaces: Vec<Arc<Namespace>> =
            self.namespaces.iter().map(|ns| Arc::clone(&ns)).collect();
        for ns in namespaces {
            let record = ns.record.read().clone();
            if self.hidden(Some(disk), record.version) {
                let durable = Restore::Record(disk.durable_record(&record.id)?);
                out.push(Refused { namespace: record.id.clone(), key: None, durable });
            }
            let keys = ns.keys.read();
            for (key, _) in keys.iter().filter(|(_, s)| self.hidden(Some(disk), s.version)) {
                let durable = Restore::Entry(disk.durable_entry(&record.id, key)?);
                out.push(Refused {
                    namespace: record.id.clone(),
                    key: Some(Arc::clone(key)),
                    durable,
                });
            }
        }
        Ok(out)
    }

    /// Empties the index before it is rebuilt from a reopened engine.
    fn clear_index(&self) {
        self.namespaces.clear();
        *self.purge_queue.lock() = PurgeQueue::default();
        *self.digest.lock() = Digest::default();
        *self.maturing.lock() = MaturityQueue::default();
        self.positions.lock().clear();
        self.pending_drops.lock().clear();
    }
}

/// Puts back the durable state of every refused write the reopened engine still holds (a
/// local version newer than `through`), drops the refused writes' outbox records, and syncs.
fn restore(disk: &Disk, refused: &[Refused], through: Timestamp) -> Result<(), StoreError> {
    let region = disk.region();
    let was_refused = |v: Version| v.origin == region && v.ts > through;
    let mut batch = disk.batch();
    for item in refused {
        match (&item.key, &item.durable) {
            (Some(key), Restore::Entry(durable)) => {
                let found = disk.entry(&item.namespace, key)?;
                if found.is_some_and(|e| was_refused(e.version)) {
                    match durable {
                        Some(entry) => disk.put_entry(&mut batch, &item.namespace, key, entry),
                        None => disk.remove_entry(&mut batch, &item.namespace, key),
                    }
                }
            }
            (None, Restore::Record(durable)) => {
                let found = disk.record(&item.namespace)?;
                if found.is_some_and(|r| was_refused(r.version)) {
                    match durable {
                        Some(record) => disk.put_record(&mut batch, record),
                        None => disk.remove_record(&mut batch, &item.namespace),
                    }
                }
            }
            _ => {}
        }
    }
    disk.remove_outbox_after(&mut batch, through)?;
    disk.commit(batch)?;
    disk.sync_all()
}
