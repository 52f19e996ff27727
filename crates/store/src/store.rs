//! The store itself: namespace catalog, LWW apply, ordered listing, purging.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use edgekv_core::limits::MAX_NAMESPACES_PER_ACCOUNT;
use edgekv_core::{Entry, Hlc, RegionId, Version};
use parking_lot::{Mutex, RwLock};

use crate::expiry::{Due, PurgeKind, PurgeQueue};
use crate::{AccountId, NamespaceId, NamespaceOrder, NamespaceRecord};

/// How many keys a listing may step over (tombstones, expired entries) beyond the page it
/// returns. Past this budget the page is cut short and the cursor resumes the walk, which bounds
/// one request's work even in a namespace that is mostly tombstones.
const LIST_SKIP_BUDGET: usize = 100_000;

/// Settings of a [`Store`].
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// The region this store accepts writes for; the origin of every local version.
    pub region: RegionId,
    /// How long a tombstone (from a delete or an expiry) is kept before it is forgotten. It must
    /// outlast the longest time a stale write can still arrive from another region.
    pub tombstone_grace: Duration,
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No live namespace with that id in that account.
    #[error("namespace not found")]
    NamespaceNotFound,
    /// The account already has a live namespace with that title.
    #[error("a namespace with this account ID and title already exists")]
    DuplicateTitle,
    /// The account is at its namespace limit.
    #[error("an account may have at most {MAX_NAMESPACES_PER_ACCOUNT} namespaces")]
    TooManyNamespaces,
}

/// One write of a batch: a put when `value` is `Some`, a delete when it is `None`.
#[derive(Clone, Debug)]
pub struct WriteOp {
    /// The key, already validated.
    pub key: String,
    /// The new value, or `None` to delete.
    pub value: Option<Bytes>,
    /// Compact JSON metadata.
    pub metadata: Option<Bytes>,
    /// Absolute expiry in epoch seconds.
    pub expiration: Option<u64>,
}

/// The outcome of one applied local write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteResult {
    /// The version the write was stamped with.
    pub version: Version,
}

/// One key of a listing page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedKey {
    /// The key name.
    pub name: String,
    /// Its expiry, if it has one.
    pub expiration: Option<u64>,
    /// Its metadata, if it has any.
    pub metadata: Option<Bytes>,
}

/// A page of a key listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// Live keys in UTF-8 byte order.
    pub keys: Vec<ListedKey>,
    /// Where the next page starts (after this key), or `None` when the listing is complete.
    pub resume_after: Option<String>,
}

/// What one purge pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeStats {
    /// Entries that expired and became tombstones.
    pub expired: usize,
    /// Tombstones forgotten after their grace period.
    pub collected: usize,
}

/// A namespace's record and keys.
#[derive(Debug)]
struct Namespace {
    record: RwLock<NamespaceRecord>,
    keys: RwLock<BTreeMap<String, Entry>>,
}

/// The in-memory, versioned store of one region. Shared as `Arc<Store>`; every method is
/// synchronous and short.
#[derive(Debug)]
pub struct Store {
    config: StoreConfig,
    hlc: Arc<Hlc>,
    namespaces: DashMap<NamespaceId, Arc<Namespace>>,
    /// Serializes namespace create/rename/delete so that two of them cannot both pass the
    /// title-uniqueness check. They are rare; key operations never take this lock.
    catalog: Mutex<()>,
    purge_queue: Mutex<PurgeQueue>,
}

impl Store {
    /// An empty store for `config.region`, stamping versions from `hlc`.
    pub fn new(config: StoreConfig, hlc: Arc<Hlc>) -> Self {
        Store {
            config,
            hlc,
            namespaces: DashMap::new(),
            catalog: Mutex::new(()),
            purge_queue: Mutex::new(PurgeQueue::default()),
        }
    }

    /// The region this store writes as.
    pub fn region(&self) -> RegionId {
        self.config.region
    }

    /// The store's clock, which also decides expiry.
    pub fn hlc(&self) -> &Arc<Hlc> {
        &self.hlc
    }

    fn now_ms(&self) -> u64 {
        self.hlc.physical_now_ms()
    }

    fn next_version(&self) -> Version {
        Version::new(self.hlc.now(), self.config.region)
    }

    // ---- namespaces -------------------------------------------------------------------------

    /// Creates a namespace with a fresh random id.
    pub fn create_namespace(
        &self,
        account: &AccountId,
        title: &str,
    ) -> Result<NamespaceRecord, StoreError> {
        let _catalog = self.catalog.lock();
        let live = self.live_records(account);
        if live.len() >= MAX_NAMESPACES_PER_ACCOUNT {
            return Err(StoreError::TooManyNamespaces);
        }
        if live.iter().any(|r| r.title == title) {
            return Err(StoreError::DuplicateTitle);
        }
        let record = NamespaceRecord {
            account: account.clone(),
            id: NamespaceId::random(),
            title: title.to_owned(),
            deleted: false,
            version: self.next_version(),
        };
        let namespace =
            Namespace { record: RwLock::new(record.clone()), keys: RwLock::new(BTreeMap::new()) };
        self.namespaces.insert(record.id.clone(), Arc::new(namespace));
        Ok(record)
    }

    /// The live namespace `id` of `account`.
    pub fn get_namespace(
        &self,
        account: &AccountId,
        id: &NamespaceId,
    ) -> Result<NamespaceRecord, StoreError> {
        Ok(self.namespace(account, id)?.record.read().clone())
    }

    /// Renames a namespace. Renaming to its current title is allowed and bumps the version.
    pub fn rename_namespace(
        &self,
        account: &AccountId,
        id: &NamespaceId,
        title: &str,
    ) -> Result<NamespaceRecord, StoreError> {
        let _catalog = self.catalog.lock();
        let namespace = self.namespace(account, id)?;
        if self.live_records(account).iter().any(|r| r.title == title && r.id != *id) {
            return Err(StoreError::DuplicateTitle);
        }
        let mut record = namespace.record.write();
        record.title = title.to_owned();
        record.version = self.next_version();
        Ok(record.clone())
    }

    /// Deletes a namespace and all of its keys. The record stays behind as a tombstone.
    pub fn delete_namespace(
        &self,
        account: &AccountId,
        id: &NamespaceId,
    ) -> Result<(), StoreError> {
        let _catalog = self.catalog.lock();
        let namespace = self.namespace(account, id)?;
        {
            let mut record = namespace.record.write();
            record.deleted = true;
            record.version = self.next_version();
        }
        // Dropping the map outside the record lock: freeing many values can take a while.
        let keys = std::mem::take(&mut *namespace.keys.write());
        drop(keys);
        Ok(())
    }

    /// The live namespaces of `account`, sorted.
    pub fn list_namespaces(
        &self,
        account: &AccountId,
        order: NamespaceOrder,
        descending: bool,
    ) -> Vec<NamespaceRecord> {
        let mut records = self.live_records(account);
        match order {
            NamespaceOrder::Id => records.sort_by(|a, b| a.id.cmp(&b.id)),
            NamespaceOrder::Title => {
                records.sort_by(|a, b| a.title.cmp(&b.title).then_with(|| a.id.cmp(&b.id)))
            }
        }
        if descending {
            records.reverse();
        }
        records
    }

    fn live_records(&self, account: &AccountId) -> Vec<NamespaceRecord> {
        self.namespaces
            .iter()
            .map(|ns| ns.record.read().clone())
            .filter(|r| !r.deleted && r.account == *account)
            .collect()
    }

    fn namespace(
        &self,
        account: &AccountId,
        id: &NamespaceId,
    ) -> Result<Arc<Namespace>, StoreError> {
        let namespace = self.namespaces.get(id).map(|ns| Arc::clone(&ns));
        let visible = |ns: &Namespace| {
            let record = ns.record.read();
            record.account == *account && !record.deleted
        };
        namespace.filter(|ns| visible(ns)).ok_or(StoreError::NamespaceNotFound)
    }

    // ---- keys -------------------------------------------------------------------------------

    /// The live entry of `key`, or `None` if it is absent, deleted or expired.
    pub fn get(
        &self,
        account: &AccountId,
        namespace: &NamespaceId,
        key: &str,
    ) -> Result<Option<Entry>, StoreError> {
        let ns = self.namespace(account, namespace)?;
        let now = self.now_ms();
        let keys = ns.keys.read();
        Ok(keys.get(key).filter(|e| e.is_live(now)).cloned())
    }

    /// The live entries of several keys, in the order asked, read under one lock so they are a
    /// consistent snapshot.
    pub fn get_many(
        &self,
        account: &AccountId,
        namespace: &NamespaceId,
        keys: &[String],
    ) -> Result<Vec<Option<Entry>>, StoreError> {
        let ns = self.namespace(account, namespace)?;
        let now = self.now_ms();
        let map = ns.keys.read();
        Ok(keys.iter().map(|k| map.get(k).filter(|e| e.is_live(now)).cloned()).collect())
    }

    /// Applies local writes in order, each stamped with a fresh version. The batch is applied
    /// under one lock, so a reader sees all of it or none of it.
    pub fn write(
        &self,
        account: &AccountId,
        namespace: &NamespaceId,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<WriteResult>, StoreError> {
        let ns = self.namespace(account, namespace)?;
        let mut results = Vec::with_capacity(ops.len());
        let mut dues = Vec::new();
        {
            let mut keys = ns.keys.write();
            for op in ops {
                let version = self.next_version();
                let entry = Entry {
                    value: op.value,
                    metadata: op.metadata,
                    expiration: op.expiration,
                    version,
                };
                self.apply_locked(&mut keys, namespace, op.key, entry, &mut dues);
                results.push(WriteResult { version });
            }
        }
        self.schedule(dues);
        Ok(results)
    }

    /// Applies a write that already has a version (one from another region) by LWW. Returns
    /// whether it changed the stored state: an older or duplicate write changes nothing.
    pub fn apply(
        &self,
        account: &AccountId,
        namespace: &NamespaceId,
        key: String,
        entry: Entry,
    ) -> Result<bool, StoreError> {
        let ns = self.namespace(account, namespace)?;
        let mut dues = Vec::new();
        let applied = self.apply_locked(&mut ns.keys.write(), namespace, key, entry, &mut dues);
        self.schedule(dues);
        Ok(applied)
    }

    /// The LWW step shared by local and remote writes: store `entry` if its version is greater
    /// than the stored one, and queue its purge if it will need one.
    fn apply_locked(
        &self,
        keys: &mut BTreeMap<String, Entry>,
        namespace: &NamespaceId,
        key: String,
        entry: Entry,
        dues: &mut Vec<Due>,
    ) -> bool {
        if keys.get(&key).is_some_and(|current| current.version >= entry.version) {
            return false;
        }
        dues.extend(self.purge_for(namespace, &key, &entry));
        keys.insert(key, entry);
        true
    }

    fn purge_for(&self, namespace: &NamespaceId, key: &str, entry: &Entry) -> Option<Due> {
        let grace_ms = self.config.tombstone_grace.as_millis() as u64;
        let (at_ms, kind) = match (entry.is_tombstone(), entry.expiration) {
            (true, _) => {
                (entry.version.ts.physical_ms().saturating_add(grace_ms), PurgeKind::Collect)
            }
            (false, Some(secs)) => (secs.saturating_mul(1000), PurgeKind::Expire),
            (false, None) => return None,
        };
        Some(Due {
            at_ms,
            kind,
            namespace: namespace.clone(),
            key: key.to_owned(),
            version: entry.version,
        })
    }

    fn schedule(&self, dues: Vec<Due>) {
        if dues.is_empty() {
            return;
        }
        let mut queue = self.purge_queue.lock();
        for due in dues {
            queue.push(due);
        }
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
        for (name, entry) in range.take_while(|(name, _)| name.starts_with(prefix)) {
            if !entry.is_live(now) {
                skipped += 1;
                if skipped > LIST_SKIP_BUDGET {
                    // Out of budget: resume from here rather than scan on.
                    page.resume_after = Some(name.clone());
                    return Ok(page);
                }
                continue;
            }
            if page.keys.len() == limit {
                // There is at least one more live key: the page is full and not the last.
                page.resume_after = page.keys.last().map(|k| k.name.clone());
                return Ok(page);
            }
            page.keys.push(ListedKey {
                name: name.clone(),
                expiration: entry.expiration,
                metadata: entry.metadata.clone(),
            });
        }
        Ok(page)
    }

    // ---- purging ----------------------------------------------------------------------------

    /// Turns expired entries into tombstones and forgets tombstones past their grace period.
    /// Does at most `max` items per call so that a caller can yield between batches.
    pub fn purge(&self, max: usize) -> PurgeStats {
        let now = self.now_ms();
        let due = self.purge_queue.lock().pop_due(now, max);
        let mut stats = PurgeStats::default();
        let mut follow_ups = Vec::new();
        for item in due {
            let Some(ns) = self.namespaces.get(&item.namespace).map(|ns| Arc::clone(&ns)) else {
                continue;
            };
            let mut keys = ns.keys.write();
            let Some(entry) = keys.get_mut(&item.key) else { continue };
            if entry.version != item.version {
                continue; // Rewritten since it was queued; the newer write has its own item.
            }
            match item.kind {
                PurgeKind::Expire => {
                    // Keep the version: an older write of this key arriving later must still
                    // lose to it.
                    *entry = Entry::tombstone(item.version);
                    let grace_ms = self.config.tombstone_grace.as_millis() as u64;
                    follow_ups.push(Due {
                        at_ms: item.at_ms.saturating_add(grace_ms),
                        kind: PurgeKind::Collect,
                        ..item
                    });
                    stats.expired += 1;
                }
                PurgeKind::Collect => {
                    keys.remove(&item.key);
                    stats.collected += 1;
                }
            }
        }
        self.schedule(follow_ups);
        stats
    }

    /// How many purges are scheduled (a gauge for tests and metrics).
    pub fn pending_purges(&self) -> usize {
        self.purge_queue.lock().len()
    }

    /// Whether `key` has any state at all, live or tombstone (for tests of purging).
    pub fn has_state(&self, namespace: &NamespaceId, key: &str) -> bool {
        self.namespaces.get(namespace).is_some_and(|ns| ns.keys.read().contains_key(key))
    }
}

#[cfg(test)]
mod tests;
