//! Keys: reads, listings, local writes and the LWW apply shared with replicated writes.

use std::num::NonZeroU64;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use edgekv_core::digest::{item_hash, leaf_of};
use edgekv_core::{Entry, Timestamp, Version};

use super::*;
use crate::applies::ApplyPage;
use crate::expiry::{Due, PurgeKind};
use edgekv_core::{AccountId, NamespaceId, NamespaceRecord, ReplicatedWrite};

impl Store {
    /// The full entry behind a slot, reading the value from disk if it lives there. Called
    /// with the namespace's keys locked, so the disk holds exactly the slot's version.
    pub(super) fn load(
        &self,
        namespace: &NamespaceId,
        key: &str,
        slot: &Slot,
    ) -> Result<Entry, StoreError> {
        if slot.tombstone {
            return Ok(Entry::tombstone(slot.version));
        }
        let value = match &slot.memory {
            Some(value) => Bytes::clone(value),
            None => {
                let stored = match &*self.disk() {
                    Some(disk) => disk.entry(namespace, key)?,
                    None => None,
                };
                match stored {
                    Some(entry) if entry.version == slot.version => return Ok(entry),
                    _ => {
                        return Err(StoreError::storage_bare(format!(
                            "the value of {key:?} is missing from disk"
                        )))
                    }
                }
            }
        };
        Ok(Entry {
            value: Some(value),
            metadata: slot.metadata(),
            expiration: slot.expiration(),
            version: slot.version,
        })
    }

    /// What a reader sees of `key` now: its live entry, or `None` if it is absent, deleted or
    /// expired. A newest version still in its group commit is not shown; the key's durable
    /// state is, as if the write had not happened yet (it has not been acknowledged).
    fn visible(
        &self,
        disk: Option<&Disk>,
        namespace: &NamespaceId,
        key: &str,
        slot: Option<&Slot>,
        now: u64,
    ) -> Result<Option<Entry>, StoreError> {
        match (slot, disk) {
            (Some(slot), Some(disk)) if self.hidden(Some(disk), slot.version) => {
                Ok(disk.durable_entry(namespace, key)?.filter(|e| entry_is_live(e, now)))
            }
            (Some(slot), _) if slot.is_live(now) => self.load(namespace, key, slot).map(Some),
            _ => Ok(None),
        }
    }

    /// The live entry of `key`, or `None` if it is absent, deleted or expired.
    pub fn get(
        &self,
        account: &AccountId,
        namespace: &NamespaceId,
        key: &str,
    ) -> Result<Option<Entry>, StoreError> {
        let disk = self.disk();
        let ns = self.namespace(account, namespace)?;
        let now = self.now_ms();
        let keys = ns.keys.read();
        self.visible(disk.as_ref(), namespace, key, keys.get(key), now)
    }

    /// The live entries of several keys, in the order asked, read under one lock so they are a
    /// consistent snapshot.
    pub fn get_many(
        &self,
        account: &AccountId,
        namespace: &NamespaceId,
        keys: &[String],
    ) -> Result<Vec<Option<Entry>>, StoreError> {
        let disk = self.disk();
        let ns = self.namespace(account, namespace)?;
        let now = self.now_ms();
        let map = ns.keys.read();
        keys.iter()
            .map(|k| self.visible(disk.as_ref(), namespace, k, map.get(k.as_str()), now))
            .collect()
    }

    /// Applies local writes in order, each stamped with a fresh version and logged for the
    /// peers. The batch is applied under one lock, so a reader sees all of it or none of it,
    /// and in the durable store it commits as one unit. Durable once [`Store::flushed`]
    /// resolves.
    pub fn write(
        &self,
        account: &AccountId,
        namespace: &NamespaceId,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<WriteResult>, StoreError> {
        let _disk = self.disk();
        let ns = self.namespace_for_write(account, namespace)?;
        let bytes: u64 = ops.iter().map(WriteOp::weight).sum();
        let mut effects = Effects::default();
        let results = {
            let mut keys = ns.keys.write();
            // Checked again under the keys lock: a namespace deleted since the lookup above has
            // had its keys dropped, and must not take new ones.
            if !is_live(&ns.record.read()) {
                return Err(StoreError::NamespaceNotFound);
            }
            let makes = ops
                .into_iter()
                .map(|op| -> Box<dyn FnOnce(Version) -> ReplicatedWrite> {
                    Box::new(move |version| ReplicatedWrite::Key {
                        account: account.clone(),
                        namespace: namespace.clone(),
                        key: op.key,
                        entry: Entry {
                            value: op.value,
                            metadata: op.metadata,
                            expiration: op.expiration,
                            version,
                        },
                    })
                })
                .collect();
            let writes = self.stamp_and_log(bytes, makes)?;
            let mut results = Vec::with_capacity(writes.len());
            for write in writes {
                let ReplicatedWrite::Key { key, entry, .. } = write else {
                    unreachable!("built above")
                };
                results.push(WriteResult { version: entry.version });
                let key: Arc<str> = Arc::from(key);
                let value = self.resident(&entry);
                let slot = self.new_slot(account, namespace, &key, &entry, value);
                self.place(&mut keys, account, namespace, key, slot, &mut effects);
            }
            results
        };
        self.finish(effects);
        self.notify();
        Ok(results)
    }

    /// What the index keeps of an entry's value.
    pub(super) fn resident(&self, entry: &Entry) -> Value {
        match (&entry.value, &*self.disk()) {
            (None, _) => Value::Tombstone,
            (Some(_), Some(_)) => Value::Disk,
            (Some(value), None) => Value::Memory(Box::new(value.clone())),
        }
    }

    pub(super) fn new_slot(
        &self,
        account: &AccountId,
        namespace: &NamespaceId,
        key: &str,
        entry: &Entry,
        value: Value,
    ) -> Slot {
        Slot {
            version: entry.version,
            expiration: entry
                .expiration
                .map(|secs| NonZeroU64::new(secs).unwrap_or(NonZeroU64::MIN)),
            metadata: entry.metadata.as_deref().map(Box::from),
            tombstone: matches!(value, Value::Tombstone),
            memory: match value {
                Value::Memory(value) => Some(value),
                Value::Tombstone | Value::Disk => None,
            },
            leaf: leaf_of(account.as_str(), namespace.as_str(), Some(key)),
            digested: false,
        }
    }

    /// Applies a write from another region by LWW. Returns whether it changed the stored state:
    /// an older or duplicate write changes nothing, so replays and reordering are harmless.
    /// Durable once [`Store::flushed`] resolves.
    pub fn apply_replicated(&self, write: ReplicatedWrite) -> Result<bool, StoreError> {
        let _disk = self.disk();
        let weight = write.size_hint() as u64;
        match write {
            ReplicatedWrite::Key { account, namespace, key, entry } => {
                let ns = self.namespace_for_replica(&account, &namespace)?;
                let mut effects = Effects::default();
                {
                    let mut keys = ns.keys.write();
                    // Checked under the keys lock: a concurrent delete empties the map under it.
                    if !takes_keys(&ns.record.read()) {
                        return Ok(false);
                    }
                    if keys
                        .get(key.as_str())
                        .is_some_and(|s| !edgekv_core::replaces(s.version, entry.version))
                    {
                        return Ok(false);
                    }
                    self.commit_with(Some(weight), |disk, batch| {
                        disk.put_entry(batch, &namespace, &key, &entry)
                    })?;
                    let key: Arc<str> = Arc::from(key);
                    let slot =
                        self.new_slot(&account, &namespace, &key, &entry, self.resident(&entry));
                    self.place(&mut keys, &account, &namespace, key, slot, &mut effects);
                }
                self.finish(effects);
                Ok(true)
            }
            ReplicatedWrite::Namespace(record) => self.apply_namespace_record(record),
        }
    }

    /// The namespace a replicated key write goes to, creating a placeholder when the key has
    /// outrun its namespace's create.
    pub(super) fn namespace_for_replica(
        &self,
        account: &AccountId,
        id: &NamespaceId,
    ) -> Result<Arc<Namespace>, StoreError> {
        // Look up under the shard's read lock first: the namespace nearly always exists.
        let existing = self.namespaces.get(id).map(|ns| Arc::clone(&ns));
        let ns = match existing {
            Some(ns) => ns,
            None => {
                let placeholder = NamespaceRecord {
                    account: account.clone(),
                    id: id.clone(),
                    title: String::new(),
                    deleted: false,
                    version: Version::new(Timestamp(0), self.config.region),
                };
                let mut created = false;
                let ns = self
                    .namespaces
                    .entry(id.clone())
                    .or_insert_with(|| {
                        created = true;
                        Arc::new(Namespace::new(placeholder.clone()))
                    })
                    .clone();
                if created {
                    // Stored so that recovery knows the account of the keys it holds.
                    self.commit_with(Some(256), |disk, batch| {
                        disk.put_record(batch, &placeholder)
                    })?;
                }
                ns
            }
        };
        if ns.record.read().account != *account {
            return Err(StoreError::AccountMismatch(id.clone()));
        }
        Ok(ns)
    }

    pub(super) fn apply_namespace_record(
        &self,
        record: NamespaceRecord,
    ) -> Result<bool, StoreError> {
        let _disk = self.disk();
        let _catalog = self.catalog.lock();
        let ns = self.namespace_for_replica(&record.account, &record.id)?;
        let mut effects = Effects::default();
        let deleted = {
            let mut current = ns.record.write();
            if current.version >= record.version {
                return Ok(false);
            }
            self.commit_with(Some(256), |disk, batch| disk.put_record(batch, &record))?;
            self.untrack_record(&ns, &current);
            *current = record.clone();
            self.track_record(&ns, &record, &mut effects);
            record.deleted
        };
        if deleted {
            self.drop_keys(&ns)?;
        }
        self.finish(effects);
        Ok(true)
    }

    /// The in-memory half of the LWW step shared by local and remote writes: `slot` has already
    /// won against the stored version (and is on disk in the durable store); keep the digest in
    /// step, queue its purge and maturing, and log the apply if the lab asked.
    pub(super) fn place(
        &self,
        keys: &mut Keys,
        account: &AccountId,
        namespace: &NamespaceId,
        key: Arc<str>,
        mut slot: Slot,
        effects: &mut Effects,
    ) {
        {
            let mut digest = self.digest.lock();
            if let Some(old) = keys.get(&key).filter(|old| old.digested) {
                digest.tree.remove(
                    old.leaf,
                    item_hash(account.as_str(), namespace.as_str(), Some(&key), old.version),
                );
            }
            self.enter_digest(&mut digest, account, namespace, &key, &mut slot, effects);
        }
        effects.purges.extend(self.purge_for(namespace, &key, &slot));
        if let Some(log) = self.applies.get() {
            let hidden = self.hidden(self.disk().as_ref(), slot.version);
            log.lock().record(namespace, &key, slot.version, self.now_ms(), hidden);
        }
        keys.insert(key, slot);
    }

    /// Starts logging apply events, keeping the newest `capacity` (for the consistency lab),
    /// each stamped with `clock`, the region's unskewed clock. Only the first call takes effect.
    pub fn enable_apply_log(&self, capacity: usize, clock: Arc<dyn edgekv_core::PhysicalClock>) {
        let _ = self.applies.set(Mutex::new(ApplyLog::new(capacity, clock)));
    }

    /// Draws this store's new namespace ids from `seed` rather than the OS's randomness (a
    /// simulation, which must replay). Only the first call counts.
    pub fn seed_namespace_ids(&self, seed: u64) {
        let _ = self.namespace_ids.set(edgekv_core::NamespaceIds::seeded(seed));
    }

    /// When the apply log began, on its clock, if it is on: a name for the log, whose events
    /// are numbered from 1.
    pub fn apply_log_started_us(&self) -> Option<u64> {
        self.applies.get().map(|log| log.lock().started_us())
    }

    /// Up to `limit` apply events after position `after`, or `None` if the log is off. An
    /// event of a local write that was not shown yet when it was logged carries the time its
    /// group commit made it readable; the page stops before one still waiting for that, and
    /// leaves out one its store's failure refused (it was never shown).
    pub fn applies_after(&self, after: u64, limit: usize) -> Option<ApplyPage> {
        let mut page = self.applies.get().map(|log| log.lock().after(after, limit))?;
        let disk = self.disk();
        let Some(disk) = disk.as_ref() else { return Some(page) };
        let mut shown = Vec::with_capacity(page.events.len());
        // The position just before the first event of the page.
        let mut next = page.events.first().map_or(page.next, |e| e.seq.saturating_sub(1));
        for mut event in std::mem::take(&mut page.events) {
            if event.hidden {
                match disk.shown_at(event.version.ts) {
                    Some(us) => {
                        let later_ms = us.saturating_sub(event.system_us) / 1000;
                        event.at_ms = event.at_ms.saturating_add(later_ms);
                        event.system_us = us;
                        event.hidden = false;
                    }
                    None if disk.refused(event.version.ts) => {
                        next = event.seq;
                        continue;
                    }
                    None => {
                        page.next = next;
                        page.events = shown;
                        return Some(page);
                    }
                }
            }
            next = event.seq;
            shown.push(event);
        }
        page.events = shown;
        Some(page)
    }

    pub(super) fn purge_for(
        &self,
        namespace: &NamespaceId,
        key: &Arc<str>,
        slot: &Slot,
    ) -> Option<Due> {
        let grace_ms = self.config.tombstone_grace.as_millis() as u64;
        let (at_ms, kind) = match (slot.is_tombstone(), slot.expiration()) {
            (true, _) => {
                (slot.version.ts.physical_ms().saturating_add(grace_ms), PurgeKind::Collect)
            }
            (false, Some(secs)) => (secs.saturating_mul(1000), PurgeKind::Expire),
            (false, None) => return None,
        };
        Some(Due {
            at_ms,
            kind,
            namespace: namespace.clone(),
            key: Arc::clone(key),
            version: slot.version,
        })
    }

    /// A page of live keys with `prefix`, in UTF-8 byte order, starting after `resume_after`.
    pub fn list_keys(
        &self,
        account: &AccountId,
        namespace: &NamespaceId,
        prefix: &str,
        resume_after: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage, StoreError> {
        let disk = self.disk();
        let ns = self.namespace(account, namespace)?;
        let now = self.now_ms();
        let keys = ns.keys.read();
        let start = match resume_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let mut page = KeyPage::default();
        let mut skipped = 0;
        let range = keys.range::<str, _>((start, Bound::Unbounded));
        for (name, slot) in range.take_while(|(name, _)| name.starts_with(prefix)) {
            let listed = self.listed(disk.as_ref(), namespace, name, slot, now)?;
            let Some(listed) = listed else {
                skipped += 1;
                // Out of budget: resume from here rather than scan on, but never with an empty
                // page: the official SDKs stop paginating at the first empty page, so one would
                // hide every key after it.
                if skipped > LIST_SKIP_BUDGET && !page.keys.is_empty() {
                    page.resume_after = Some(name.to_string());
                    return Ok(page);
                }
                continue;
            };
            if page.keys.len() == limit {
                // There is at least one more live key: the page is full and not the last.
                page.resume_after = page.keys.last().map(|k| k.name.clone());
                return Ok(page);
            }
            page.keys.push(listed);
        }
        Ok(page)
    }

    /// How `name` shows in a listing now, or `None` if it does not (see [`Store::visible`]).
    fn listed(
        &self,
        disk: Option<&Disk>,
        namespace: &NamespaceId,
        name: &str,
        slot: &Slot,
        now: u64,
    ) -> Result<Option<ListedKey>, StoreError> {
        if self.hidden(disk, slot.version) {
            let durable = self.visible(disk, namespace, name, Some(slot), now)?;
            return Ok(durable.map(|entry| ListedKey {
                name: name.to_owned(),
                expiration: entry.expiration,
                metadata: entry.metadata,
            }));
        }
        Ok(slot.is_live(now).then(|| ListedKey {
            name: name.to_owned(),
            expiration: slot.expiration(),
            metadata: slot.metadata(),
        }))
    }
}
