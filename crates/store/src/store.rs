//! The store itself: namespace catalog, LWW apply, ordered listing, purging, and the state
//! replication needs (outbox, digest, watermarks).
//!
//! # Locks
//! Locks are taken in one order only: the catalog, then a namespace's keys (or record), then
//! the outbox, the digest, the maturity queue, the purge queue. None is held across a call out
//! of the store (the write listener runs with nothing locked).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use edgekv_core::digest::LeafId;
use edgekv_core::limits::MAX_NAMESPACES_PER_ACCOUNT;
use edgekv_core::{Entry, Hlc, RegionId, Timestamp, Version};
use parking_lot::{Mutex, RwLock};

use crate::digest::{Digest, Maturing, MaturityQueue};
use crate::expiry::{Due, PurgeKind, PurgeQueue};
use crate::replicated::{Outbox, Watermarks};
use crate::{AccountId, ItemId, NamespaceId, NamespaceOrder, NamespaceRecord, ReplicatedWrite};

/// How many keys a listing may step over (tombstones, expired entries) once its page holds at
/// least one key. Past this budget the page is cut short and the cursor resumes the walk, which
/// bounds one request's work in a namespace that is mostly tombstones. An empty page is only
/// ever the last one (tombstones are forgotten after their grace period, which bounds the walk
/// to the first live key).
pub(crate) const LIST_SKIP_BUDGET: usize = 100_000;

/// How long a tombstone whose delete has not yet reached every region waits before collection
/// is tried again.
/// A short grace period (experiments) retries sooner, but not more often than the floor.
const COLLECT_RETRY: Duration = Duration::from_secs(10);
/// See [`COLLECT_RETRY`].
const MIN_COLLECT_RETRY: Duration = Duration::from_millis(100);

/// Settings of a [`Store`].
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// The region this store accepts writes for; the origin of every local version.
    pub region: RegionId,
    /// How long a tombstone (from a delete or an expiry) is kept before it is forgotten. It must
    /// outlast the longest time a stale write can still arrive from another region.
    pub tombstone_grace: Duration,
    /// How old a version must be before it enters the anti-entropy digest: the longest delay a
    /// link may have, plus a margin. Younger versions are left to the outbox.
    pub digest_horizon: Duration,
}

impl StoreConfig {
    /// A configuration for tests: region `region`, a one-minute grace and horizon.
    pub fn for_test(region: &str) -> Self {
        StoreConfig {
            region: region.parse().expect("a valid test region name"),
            tombstone_grace: Duration::from_secs(60),
            digest_horizon: Duration::from_secs(60),
        }
    }
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
    /// A replicated write names a namespace that belongs to another account here.
    #[error("namespace {0} belongs to another account")]
    AccountMismatch(NamespaceId),
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

impl Namespace {
    fn new(record: NamespaceRecord) -> Self {
        Namespace { record: RwLock::new(record), keys: RwLock::new(BTreeMap::new()) }
    }
}

/// Whether a record is a placeholder: a namespace whose keys arrived from another region before
/// its create did. It holds those keys, invisibly, until the real record arrives.
fn is_placeholder(record: &NamespaceRecord) -> bool {
    record.version.ts == Timestamp(0)
}

/// Whether clients see a namespace: created, not deleted.
fn is_live(record: &NamespaceRecord) -> bool {
    !record.deleted && !is_placeholder(record)
}

/// Whether a namespace takes key writes: live, or a placeholder waiting for its record. Key
/// writes to a deleted namespace are dropped, because the delete removed all its keys.
fn takes_keys(record: &NamespaceRecord) -> bool {
    !record.deleted || is_placeholder(record)
}

/// Called after every local write with nothing locked, to wake the replication senders.
pub type WriteListener = Arc<dyn Fn() + Send + Sync>;

/// The versioned store of one region. Shared as `Arc<Store>`; every method is synchronous and
/// short.
pub struct Store {
    config: StoreConfig,
    hlc: Arc<Hlc>,
    namespaces: DashMap<NamespaceId, Arc<Namespace>>,
    /// Serializes namespace create/rename/delete so that two of them cannot both pass the
    /// title-uniqueness check. They are rare; key operations never take this lock.
    catalog: Mutex<()>,
    purge_queue: Mutex<PurgeQueue>,
    /// This region's own writes until every peer has them. Locked while a local write takes its
    /// timestamp and appends, so the log fills in timestamp order: a reader that has seen
    /// timestamp `t` never later finds a smaller one appear.
    outbox: Mutex<Outbox>,
    watermarks: RwLock<Watermarks>,
    digest: Mutex<Digest>,
    maturing: Mutex<MaturityQueue>,
    listener: RwLock<Option<WriteListener>>,
    /// Whether local writes are logged for peers: a region without peers keeps no outbox.
    logging: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("config", &self.config)
            .field("namespaces", &self.namespaces.len())
            .finish_non_exhaustive()
    }
}

/// Side effects of applying writes, carried out once the namespace lock is released.
#[derive(Default)]
struct Effects {
    purges: Vec<Due>,
    maturing: Vec<Maturing>,
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
            outbox: Mutex::new(Outbox::default()),
            watermarks: RwLock::new(Watermarks::default()),
            digest: Mutex::new(Digest::default()),
            maturing: Mutex::new(MaturityQueue::default()),
            listener: RwLock::new(None),
            logging: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Stops logging local writes to the outbox, for a region that has no peer to send them
    /// to (and so nothing that would ever compact the log).
    pub fn disable_outbox(&self) {
        self.logging.store(false, std::sync::atomic::Ordering::Relaxed);
        self.outbox.lock().compact_through(Timestamp(u64::MAX));
    }

    /// The region this store writes as.
    pub fn region(&self) -> RegionId {
        self.config.region
    }

    /// The store's clock, which also decides expiry.
    pub fn hlc(&self) -> &Arc<Hlc> {
        &self.hlc
    }

    /// How old a version must be to enter the digest (and to be sent by anti-entropy).
    pub fn digest_horizon(&self) -> Duration {
        self.config.digest_horizon
    }

    /// Registers the function called after each local write (replacing any earlier one).
    pub fn on_write(&self, listener: WriteListener) {
        *self.listener.write() = Some(listener);
    }

    fn notify(&self) {
        let listener = self.listener.read().clone();
        if let Some(listener) = listener {
            listener();
        }
    }

    fn now_ms(&self) -> u64 {
        self.hlc.physical_now_ms()
    }

    /// Takes a fresh version and appends the write it stamps to the outbox, atomically.
    fn stamp_and_log(&self, make: impl FnOnce(Version) -> ReplicatedWrite) -> ReplicatedWrite {
        let mut outbox = self.outbox.lock();
        let write = make(Version::new(self.hlc.now(), self.config.region));
        if self.logging.load(std::sync::atomic::Ordering::Relaxed) {
            outbox.append(write.clone());
        }
        write
    }

    fn finish(&self, effects: Effects) {
        if !effects.purges.is_empty() {
            let mut queue = self.purge_queue.lock();
            for due in effects.purges {
                queue.push(due);
            }
        }
        if !effects.maturing.is_empty() {
            let mut queue = self.maturing.lock();
            for item in effects.maturing {
                queue.push(item);
            }
        }
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
        let id = NamespaceId::random();
        let write = self.stamp_and_log(|version| {
            ReplicatedWrite::Namespace(NamespaceRecord {
                account: account.clone(),
                id: id.clone(),
                title: title.to_owned(),
                deleted: false,
                version,
            })
        });
        let ReplicatedWrite::Namespace(record) = write else { unreachable!("built above") };
        let mut effects = Effects::default();
        self.namespaces.insert(id, Arc::new(Namespace::new(record.clone())));
        self.track_record(&record, &mut effects);
        self.finish(effects);
        self.notify();
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
        let mut effects = Effects::default();
        let record = {
            let mut record = namespace.record.write();
            let write = self.stamp_and_log(|version| {
                ReplicatedWrite::Namespace(NamespaceRecord {
                    title: title.to_owned(),
                    version,
                    ..record.clone()
                })
            });
            let ReplicatedWrite::Namespace(new) = write else { unreachable!("built above") };
            *record = new.clone();
            self.track_record(&new, &mut effects);
            new
        };
        self.finish(effects);
        self.notify();
        Ok(record)
    }

    /// Deletes a namespace and all of its keys. The record stays behind as a tombstone.
    pub fn delete_namespace(
        &self,
        account: &AccountId,
        id: &NamespaceId,
    ) -> Result<(), StoreError> {
        let _catalog = self.catalog.lock();
        let namespace = self.namespace(account, id)?;
        let mut effects = Effects::default();
        {
            let mut record = namespace.record.write();
            let write = self.stamp_and_log(|version| {
                ReplicatedWrite::Namespace(NamespaceRecord {
                    deleted: true,
                    version,
                    ..record.clone()
                })
            });
            let ReplicatedWrite::Namespace(new) = write else { unreachable!("built above") };
            *record = new.clone();
            self.track_record(&new, &mut effects);
        }
        self.drop_keys(&namespace);
        self.finish(effects);
        self.notify();
        Ok(())
    }

    /// Forgets every key of a deleted namespace, and takes them out of the digest.
    fn drop_keys(&self, namespace: &Namespace) {
        let (account, id) = {
            let record = namespace.record.read();
            (record.account.clone(), record.id.clone())
        };
        let keys = std::mem::take(&mut *namespace.keys.write());
        let mut digest = self.digest.lock();
        for key in keys.into_keys() {
            digest.remove(&ItemId {
                account: account.clone(),
                namespace: id.clone(),
                key: Some(key),
            });
        }
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
            .filter(|r| is_live(r) && r.account == *account)
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
            record.account == *account && is_live(&record)
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

    /// Applies local writes in order, each stamped with a fresh version and logged for the
    /// peers. The batch is applied under one lock, so a reader sees all of it or none of it.
    pub fn write(
        &self,
        account: &AccountId,
        namespace: &NamespaceId,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<WriteResult>, StoreError> {
        let ns = self.namespace(account, namespace)?;
        let mut results = Vec::with_capacity(ops.len());
        let mut effects = Effects::default();
        {
            let mut keys = ns.keys.write();
            // Checked again under the keys lock: a namespace deleted since the lookup above has
            // had its keys dropped, and must not take new ones.
            if !is_live(&ns.record.read()) {
                return Err(StoreError::NamespaceNotFound);
            }
            for op in ops {
                let write = self.stamp_and_log(|version| ReplicatedWrite::Key {
                    account: account.clone(),
                    namespace: namespace.clone(),
                    key: op.key,
                    entry: Entry {
                        value: op.value,
                        metadata: op.metadata,
                        expiration: op.expiration,
                        version,
                    },
                });
                let ReplicatedWrite::Key { key, entry, .. } = write else {
                    unreachable!("built above")
                };
                results.push(WriteResult { version: entry.version });
                let item = ItemId {
                    account: account.clone(),
                    namespace: namespace.clone(),
                    key: Some(key),
                };
                self.apply_key_locked(&mut keys, item, entry, &mut effects);
            }
        }
        self.finish(effects);
        self.notify();
        Ok(results)
    }

    /// Applies a write from another region by LWW. Returns whether it changed the stored state:
    /// an older or duplicate write changes nothing, so replays and reordering are harmless.
    pub fn apply_replicated(&self, write: ReplicatedWrite) -> Result<bool, StoreError> {
        match write {
            ReplicatedWrite::Key { account, namespace, key, entry } => {
                let ns = self.namespace_for_replica(&account, &namespace)?;
                let mut effects = Effects::default();
                let applied = {
                    let mut keys = ns.keys.write();
                    // Checked under the keys lock: a concurrent delete empties the map under it.
                    if !takes_keys(&ns.record.read()) {
                        return Ok(false);
                    }
                    let item = ItemId { account, namespace, key: Some(key) };
                    self.apply_key_locked(&mut keys, item, entry, &mut effects)
                };
                self.finish(effects);
                Ok(applied)
            }
            ReplicatedWrite::Namespace(record) => self.apply_namespace_record(record),
        }
    }

    /// The namespace a replicated key write goes to, creating a placeholder when the key has
    /// outrun its namespace's create.
    fn namespace_for_replica(
        &self,
        account: &AccountId,
        id: &NamespaceId,
    ) -> Result<Arc<Namespace>, StoreError> {
        // Look up under the shard's read lock first: the namespace nearly always exists.
        let existing = self.namespaces.get(id).map(|ns| Arc::clone(&ns));
        let ns = match existing {
            Some(ns) => ns,
            None => self
                .namespaces
                .entry(id.clone())
                .or_insert_with(|| {
                    Arc::new(Namespace::new(NamespaceRecord {
                        account: account.clone(),
                        id: id.clone(),
                        title: String::new(),
                        deleted: false,
                        version: Version::new(Timestamp(0), self.config.region),
                    }))
                })
                .clone(),
        };
        if ns.record.read().account != *account {
            return Err(StoreError::AccountMismatch(id.clone()));
        }
        Ok(ns)
    }

    fn apply_namespace_record(&self, record: NamespaceRecord) -> Result<bool, StoreError> {
        let _catalog = self.catalog.lock();
        let ns = self.namespace_for_replica(&record.account, &record.id)?;
        let mut effects = Effects::default();
        let deleted = {
            let mut current = ns.record.write();
            if current.version >= record.version {
                return Ok(false);
            }
            *current = record.clone();
            self.track_record(&record, &mut effects);
            record.deleted
        };
        if deleted {
            self.drop_keys(&ns);
        }
        self.finish(effects);
        Ok(true)
    }

    /// The LWW step shared by local and remote key writes: store `entry` if its version is
    /// greater than the stored one, keep the digest in step, and queue its purge and maturing.
    fn apply_key_locked(
        &self,
        keys: &mut BTreeMap<String, Entry>,
        item: ItemId,
        entry: Entry,
        effects: &mut Effects,
    ) -> bool {
        let key = item.key.clone().unwrap_or_default();
        if keys.get(&key).is_some_and(|current| current.version >= entry.version) {
            return false;
        }
        effects.purges.extend(self.purge_for(&item, &entry));
        self.track_version(&item, entry.version, entry.is_tombstone(), effects);
        keys.insert(key, entry);
        true
    }

    /// Moves the digest to a new version of `item`: the old version leaves at once; the new one
    /// enters now if it is already old enough, else when it matures. Tombstones never enter.
    fn track_version(
        &self,
        item: &ItemId,
        version: Version,
        tombstone: bool,
        effects: &mut Effects,
    ) {
        let mature_at_ms =
            version.ts.physical_ms().saturating_add(self.config.digest_horizon.as_millis() as u64);
        let mut digest = self.digest.lock();
        digest.remove(item);
        if tombstone {
            return;
        }
        if mature_at_ms <= digest.matured_through_ms {
            digest.insert(item.clone(), version);
        } else {
            effects.maturing.push(Maturing { mature_at_ms, item: item.clone(), version });
        }
    }

    fn track_record(&self, record: &NamespaceRecord, effects: &mut Effects) {
        let item =
            ItemId { account: record.account.clone(), namespace: record.id.clone(), key: None };
        // Deleted records stay in the digest: they are how a namespace delete reaches a region
        // that missed it.
        self.track_version(&item, record.version, false, effects);
    }

    fn purge_for(&self, item: &ItemId, entry: &Entry) -> Option<Due> {
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
            namespace: item.namespace.clone(),
            key: item.key.clone().unwrap_or_default(),
            version: entry.version,
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
                // Out of budget: resume from here rather than scan on, but never with an empty
                // page: the official SDKs stop paginating at the first empty page, so one would
                // hide every key after it.
                if skipped > LIST_SKIP_BUDGET && !page.keys.is_empty() {
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

    /// Turns expired entries into tombstones and forgets tombstones past their grace period
    /// whose delete has reached every region. Does at most `max` items per call so that a
    /// caller can yield between batches.
    pub fn purge(&self, max: usize) -> PurgeStats {
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
            let Some(entry) = keys.get_mut(&item.key) else { continue };
            if entry.version != item.version {
                continue; // Rewritten since it was queued; the newer write has its own item.
            }
            let id =
                ItemId { account, namespace: item.namespace.clone(), key: Some(item.key.clone()) };
            match item.kind {
                PurgeKind::Expire => {
                    // Keep the version: an older write of this key arriving later must still
                    // lose to it.
                    *entry = Entry::tombstone(item.version);
                    self.digest.lock().remove(&id);
                    let grace_ms = self.config.tombstone_grace.as_millis() as u64;
                    follow_ups.push(Due {
                        at_ms: item.at_ms.saturating_add(grace_ms),
                        kind: PurgeKind::Collect,
                        ..item
                    });
                    stats.expired += 1;
                }
                PurgeKind::Collect if self.watermarks.read().covers(item.version) => {
                    keys.remove(&item.key);
                    stats.collected += 1;
                }
                PurgeKind::Collect => {
                    // Some region may not have the delete yet: forgetting it now could let an
                    // older value come back from there. Try again later.
                    let wait =
                        COLLECT_RETRY.min(self.config.tombstone_grace).max(MIN_COLLECT_RETRY);
                    let retry = now.saturating_add(wait.as_millis() as u64);
                    follow_ups.push(Due { at_ms: retry, ..item });
                }
            }
        }
        self.finish(Effects { purges: follow_ups, maturing: Vec::new() });
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

    // ---- replication ------------------------------------------------------------------------

    /// Up to `max` of this region's writes with timestamps after `after`, in timestamp order.
    pub fn outbox_after(&self, after: Timestamp, max: usize) -> Vec<ReplicatedWrite> {
        self.outbox.lock().after(after, max)
    }

    /// Drops outbox entries at or below `through`: every peer has them.
    pub fn compact_outbox(&self, through: Timestamp) {
        self.outbox.lock().compact_through(through);
    }

    /// How many writes the outbox holds.
    pub fn outbox_len(&self) -> usize {
        self.outbox.lock().len()
    }

    /// Records that every write of `origin` at or below `through` has reached every region,
    /// which lets tombstones from `origin` up to there be collected after their grace period.
    pub fn raise_watermark(&self, origin: RegionId, through: Timestamp) {
        self.watermarks.write().raise(origin, through);
    }

    /// Moves every version that has become older than the digest horizon into the digest.
    pub fn mature(&self) {
        let now = self.now_ms();
        let due = self.maturing.lock().pop_due(now);
        for item in due {
            let Some(ns) = self.namespaces.get(&item.item.namespace).map(|ns| Arc::clone(&ns))
            else {
                continue;
            };
            // The item's lock is held while the digest changes, so a concurrent write cannot
            // replace the version between the check and the insert and leave a stale member.
            match &item.item.key {
                None => {
                    let record = ns.record.read();
                    if record.version == item.version {
                        self.digest.lock().insert(item.item.clone(), item.version);
                    }
                }
                Some(key) => {
                    let keys = ns.keys.read();
                    if keys.get(key).is_some_and(|e| e.version == item.version && !e.is_tombstone())
                    {
                        self.digest.lock().insert(item.item.clone(), item.version);
                    }
                }
            }
        }
        let mut digest = self.digest.lock();
        digest.matured_through_ms = digest.matured_through_ms.max(now);
    }

    /// The current state of an item as a replicated write, tombstones included, or `None`.
    pub fn current(&self, item: &ItemId) -> Option<ReplicatedWrite> {
        let ns = self.namespaces.get(&item.namespace).map(|ns| Arc::clone(&ns))?;
        let record = ns.record.read().clone();
        if record.account != item.account {
            return None;
        }
        match &item.key {
            None => (!is_placeholder(&record)).then_some(ReplicatedWrite::Namespace(record)),
            Some(key) => ns.keys.read().get(key).map(|entry| ReplicatedWrite::Key {
                account: record.account.clone(),
                namespace: record.id.clone(),
                key: key.clone(),
                entry: entry.clone(),
            }),
        }
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

    /// The items in the digest under `leaves`, with their versions.
    pub fn digest_members(&self, leaves: &[LeafId]) -> Vec<(ItemId, Version)> {
        let digest = self.digest.lock();
        leaves
            .iter()
            .flat_map(|leaf| {
                digest.members_of(*leaf).map(|(i, v)| (i.clone(), v)).collect::<Vec<_>>()
            })
            .collect()
    }

    /// The root a digest built from scratch over the current contents would have: every live
    /// key and namespace record whose version is older than the horizon at the last maturing.
    /// Equal to [`Store::digest_root`] unless the incremental digest has drifted; it costs a
    /// full scan, so it is for checks, not for the request path.
    pub fn rebuilt_digest_root(&self) -> u64 {
        use edgekv_core::digest::item_hash;
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
            for (key, entry) in ns.keys.read().iter() {
                if !entry.is_tombstone() && mature(entry.version) {
                    root ^= item_hash(account, id, Some(key), entry.version);
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

#[cfg(test)]
mod tests;
