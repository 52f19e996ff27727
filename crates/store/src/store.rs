//! The store itself: namespace catalog, LWW apply, ordered listing, purging, and the state
//! replication needs (outbox, digest, watermarks).
//!
//! # Locks
//! Locks are taken in one order only: the catalog, then a namespace's keys (or record), then
//! the outbox, the digest, the maturity queue, the purge queue. None is held across a call out
//! of the store (the write listener runs with nothing locked).
//!
//! # Durability
//! In the durable store every change commits to disk under the same locks that guard its
//! in-memory state, before that state changes: memory and disk see changes to a key in the
//! same order, and a change the disk refused is not applied. Commits reach the OS at once
//! and the disk at the next group fsync; callers acknowledge a write only once
//! [`Store::flushed`] resolves.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::num::NonZeroU64;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use edgekv_core::digest::{item_hash, leaf_of, LeafId};
use edgekv_core::limits::MAX_NAMESPACES_PER_ACCOUNT;
use edgekv_core::{Entry, Hlc, RegionId, Timestamp, Version};
use parking_lot::{Mutex, RwLock};

use crate::applies::{ApplyLog, ApplyPage};
use crate::digest::{Digest, Maturing, MaturityQueue};
use crate::disk::{Disk, Durability, Flushed, Meta, OpenError};
use crate::expiry::{Due, PurgeKind, PurgeQueue};
use crate::replicated::{Outbox, Watermarks};
use crate::{AccountId, ItemId, NamespaceId, NamespaceOrder, NamespaceRecord, ReplicatedWrite};

/// How many items `mature` handles under one hold of a namespace's lock.
const MATURE_SLICE: usize = 256;

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
    /// The durable store could not commit, fsync or read: the write was not applied (or, for
    /// a failed fsync, not acknowledged).
    #[error("storage error: {0}")]
    Storage(String),
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

/// What the index keeps of a key: its version and what listing needs, and its value only in
/// the in-memory store. The durable store reads values from disk, so memory grows with the
/// number of keys, not with the bytes stored. Every field is as small as it can be (72 bytes
/// in all, checked below): there is one per key.
#[derive(Clone, Debug)]
struct Slot {
    version: Version,
    /// Absolute expiry in epoch seconds; 0 (an instant long past) is stored as 1.
    expiration: Option<NonZeroU64>,
    metadata: Option<Box<[u8]>>,
    value: Value,
    /// The key's digest leaf, computed once.
    leaf: LeafId,
    /// Whether this version is in the digest tree.
    digested: bool,
}

#[derive(Clone, Debug)]
enum Value {
    Tombstone,
    /// Boxed: the in-memory store is not the one memory is tight for, the durable one is.
    Memory(Box<Bytes>),
    /// In the durable store's `items` keyspace.
    Disk,
}

impl Slot {
    fn is_tombstone(&self) -> bool {
        matches!(self.value, Value::Tombstone)
    }

    fn is_live(&self, now_ms: u64) -> bool {
        !self.is_tombstone()
            && self.expiration.is_none_or(|secs| now_ms < secs.get().saturating_mul(1000))
    }

    fn expiration(&self) -> Option<u64> {
        self.expiration.map(NonZeroU64::get)
    }

    fn metadata(&self) -> Option<Bytes> {
        self.metadata.as_deref().map(Bytes::copy_from_slice)
    }
}

const _: () = assert!(std::mem::size_of::<Slot>() <= 72);

type Keys = BTreeMap<Arc<str>, Slot>;

/// A namespace's record and keys.
#[derive(Debug)]
struct Namespace {
    record: RwLock<NamespaceRecord>,
    /// Whether the record's version is in the digest tree; changed under `record`'s write lock.
    record_digested: AtomicBool,
    keys: RwLock<Keys>,
}

impl Namespace {
    fn new(record: NamespaceRecord) -> Self {
        Namespace {
            record: RwLock::new(record),
            record_digested: AtomicBool::new(false),
            keys: RwLock::new(BTreeMap::new()),
        }
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
/// short, except that a durable write is acknowledged only once [`Store::flushed`] resolves.
pub struct Store {
    config: StoreConfig,
    hlc: Arc<Hlc>,
    namespaces: DashMap<NamespaceId, Arc<Namespace>>,
    /// Serializes namespace create/rename/delete so that two of them cannot both pass the
    /// title-uniqueness check. They are rare; key operations never take this lock.
    catalog: Mutex<()>,
    purge_queue: Mutex<PurgeQueue>,
    /// This region's own writes until every peer has them (in the durable store, on disk and
    /// this stays empty). Locked while a local write takes its timestamp and appends (commits),
    /// so the log fills in timestamp order: a reader that has seen timestamp `t` never later
    /// finds a smaller one appear.
    outbox: Mutex<Outbox>,
    watermarks: RwLock<Watermarks>,
    digest: Mutex<Digest>,
    maturing: Mutex<MaturityQueue>,
    listener: RwLock<Option<WriteListener>>,
    /// Whether local writes are logged for peers: a region without peers keeps no outbox.
    logging: AtomicBool,
    /// Each peer's delivery position: every write of this region at or below it is there.
    positions: Mutex<HashMap<String, Timestamp>>,
    disk: Option<Disk>,
    /// Apply events, when the lab asked for them.
    applies: std::sync::OnceLock<Mutex<ApplyLog>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("config", &self.config)
            .field("namespaces", &self.namespaces.len())
            .field("disk", &self.disk)
            .finish_non_exhaustive()
    }
}

/// Side effects of applying writes, carried out once the namespace lock is released.
#[derive(Default)]
struct Effects {
    purges: Vec<Due>,
    maturing: Vec<Maturing>,
}

/// What a durable store found when it opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Namespace records, placeholders and deleted ones included.
    pub namespaces: usize,
    /// Keys, tombstones included.
    pub keys: usize,
    /// Writes still waiting in the outbox for some peer.
    pub outbox_last: Option<Timestamp>,
    /// The clock floor the store set: no version at or below it will be issued again.
    pub clock_floor: Timestamp,
}

impl Store {
    /// An empty in-memory store for `config.region`, stamping versions from `hlc`. Nothing
    /// survives a restart.
    pub fn new(config: StoreConfig, hlc: Arc<Hlc>) -> Self {
        Self::with_disk(config, hlc, None)
    }

    fn with_disk(config: StoreConfig, hlc: Arc<Hlc>, disk: Option<Disk>) -> Self {
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
            logging: AtomicBool::new(true),
            positions: Mutex::new(HashMap::new()),
            disk,
            applies: std::sync::OnceLock::new(),
        }
    }

    /// Opens the durable store in `dir` (creating it if needed) and recovers its state: every
    /// committed entry and namespace, the outbox, each peer's delivery position, and a clock
    /// floor above every version this region issued or stored, so versions keep increasing even
    /// if the wall clock went back while the node was down.
    pub fn open(
        config: StoreConfig,
        hlc: Arc<Hlc>,
        dir: &Path,
        durability: Durability,
    ) -> Result<(Self, Recovered), OpenError> {
        let (disk, meta) = Disk::open(dir, config.region, durability)?;
        let store = Self::with_disk(config, hlc, Some(disk));
        let recovered = store.recover(meta)?;
        Ok((store, recovered))
    }

    fn recover(&self, meta: Meta) -> Result<Recovered, OpenError> {
        let Some(disk) = &self.disk else { return Ok(Recovered::default()) };
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
        // Keys of a namespace deleted just before a crash (the record committed, the key
        // removal not yet): removed now, as the delete would have.
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
        {
            let mut digest = self.digest.lock();
            disk.scan_entries(|ns_id, key, entry| {
                floor = floor.max(entry.version.ts);
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
                self.enter_digest(&mut digest, account, id, &key, &mut slot, &mut effects);
                effects.purges.extend(self.purge_for(id, &key, &slot));
                keys.push((key, slot));
                recovered.keys += 1;
            })?;
            finish(loading.take());
        }
        if !orphans.is_empty() {
            let mut batch = disk.batch();
            for (ns, key) in &orphans {
                disk.remove_entry(&mut batch, ns, key);
            }
            disk.commit(batch).map_err(|e| OpenError::Engine {
                dir: disk.dir().to_path_buf(),
                message: e.to_string(),
            })?;
        }
        recovered.outbox_last = disk.outbox_last()?;
        if let Some(last) = recovered.outbox_last {
            floor = floor.max(last);
        }
        self.hlc.raise_floor(floor);
        recovered.clock_floor = floor;
        self.positions.lock().extend(meta.positions);
        self.finish(effects);
        Ok(recovered)
    }

    /// Stops logging local writes to the outbox, for a region that has no peer to send them
    /// to (and so nothing that would ever compact the log).
    pub fn disable_outbox(&self) {
        self.logging.store(false, Ordering::Relaxed);
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

    /// The durability mode, or `None` for the in-memory store.
    pub fn durability(&self) -> Option<Durability> {
        self.disk.as_ref().map(Disk::durability)
    }

    /// The data directory, or `None` for the in-memory store.
    pub fn data_dir(&self) -> Option<&Path> {
        self.disk.as_ref().map(Disk::dir)
    }

    /// How many group-commit fsyncs the store has done.
    pub fn fsyncs(&self) -> u64 {
        self.disk.as_ref().map_or(0, Disk::fsyncs)
    }

    /// Resolves once every write that returned before this call is as durable as the mode
    /// promises. A write is acknowledged only after this.
    pub fn flushed(&self) -> Flushed {
        match &self.disk {
            Some(disk) => disk.flushed(),
            None => Flushed::ready(),
        }
    }

    /// Flushes everything to disk and stops the syncer. Call once, at shutdown.
    pub fn close(&self) -> Result<(), StoreError> {
        match &self.disk {
            Some(disk) => disk.close(),
            None => Ok(()),
        }
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

    /// Stamps local writes with fresh versions and logs them for the peers. The versions are
    /// taken and the log appended under the outbox lock, so the log fills in timestamp order;
    /// in the durable store the same batch carries the new states and, when they pass it, a new
    /// clock bound, so each write, its outbox record and the bound commit together or not at
    /// all.
    fn stamp_and_log(
        &self,
        makes: Vec<Box<dyn FnOnce(Version) -> ReplicatedWrite + '_>>,
    ) -> Result<Vec<ReplicatedWrite>, StoreError> {
        let mut outbox = self.outbox.lock();
        let writes: Vec<ReplicatedWrite> = makes
            .into_iter()
            .map(|make| make(Version::new(self.hlc.now(), self.config.region)))
            .collect();
        let logging = self.logging.load(Ordering::Relaxed);
        match &self.disk {
            None => {
                if logging {
                    for write in &writes {
                        outbox.append(write.clone());
                    }
                }
            }
            Some(disk) => {
                let mut batch = disk.batch();
                for write in &writes {
                    match write {
                        ReplicatedWrite::Key { namespace, key, entry, .. } => {
                            disk.put_entry(&mut batch, namespace, key, entry);
                        }
                        ReplicatedWrite::Namespace(record) => disk.put_record(&mut batch, record),
                    }
                    if logging {
                        disk.put_outbox(&mut batch, write);
                    }
                }
                if let Some(last) = writes.last() {
                    disk.cover_timestamp(&mut batch, last.version().ts);
                }
                disk.commit(batch)?;
            }
        }
        Ok(writes)
    }

    /// Stamps and logs one write; see [`Store::stamp_and_log`].
    fn stamp_one(
        &self,
        make: impl FnOnce(Version) -> ReplicatedWrite,
    ) -> Result<ReplicatedWrite, StoreError> {
        let mut writes = self.stamp_and_log(vec![Box::new(make)])?;
        writes.pop().ok_or_else(|| StoreError::Storage("no write was stamped".into()))
    }

    /// Commits changes that need no outbox record or timestamp (replicated writes, purges).
    fn commit_with(
        &self,
        fill: impl FnOnce(&Disk, &mut fjall::OwnedWriteBatch),
    ) -> Result<(), StoreError> {
        let Some(disk) = &self.disk else { return Ok(()) };
        let mut batch = disk.batch();
        fill(disk, &mut batch);
        disk.commit(batch)
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
        let write = self.stamp_one(|version| {
            ReplicatedWrite::Namespace(NamespaceRecord {
                account: account.clone(),
                id: id.clone(),
                title: title.to_owned(),
                deleted: false,
                version,
            })
        })?;
        let ReplicatedWrite::Namespace(record) = write else { unreachable!("built above") };
        let mut effects = Effects::default();
        let ns = Arc::new(Namespace::new(record.clone()));
        self.track_record(&ns, &record, &mut effects);
        self.namespaces.insert(id, ns);
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
        let record = self.rewrite_record(&namespace, &mut effects, |current, version| {
            NamespaceRecord { title: title.to_owned(), version, ..current.clone() }
        })?;
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
        self.rewrite_record(&namespace, &mut effects, |current, version| NamespaceRecord {
            deleted: true,
            version,
            ..current.clone()
        })?;
        self.drop_keys(&namespace)?;
        self.finish(effects);
        self.notify();
        Ok(())
    }

    /// Replaces a namespace's record with `change` of it at a fresh version, logged for the
    /// peers, and moves the digest from the old version to the new one.
    fn rewrite_record(
        &self,
        namespace: &Namespace,
        effects: &mut Effects,
        change: impl FnOnce(&NamespaceRecord, Version) -> NamespaceRecord,
    ) -> Result<NamespaceRecord, StoreError> {
        let mut record = namespace.record.write();
        let write =
            self.stamp_one(|version| ReplicatedWrite::Namespace(change(&record, version)))?;
        let ReplicatedWrite::Namespace(new) = write else { unreachable!("built above") };
        self.untrack_record(namespace, &record);
        *record = new.clone();
        self.track_record(namespace, &new, effects);
        Ok(new)
    }

    /// Forgets every key of a deleted namespace, and takes them out of the digest. On disk the
    /// removal follows the record's commit; recovery finishes it if a crash comes in between.
    fn drop_keys(&self, namespace: &Namespace) -> Result<(), StoreError> {
        let (account, id) = {
            let record = namespace.record.read();
            (record.account.clone(), record.id.clone())
        };
        let mut map = namespace.keys.write();
        self.commit_with(|disk, batch| {
            for key in map.keys() {
                disk.remove_entry(batch, &id, key);
            }
        })?;
        let keys = std::mem::take(&mut *map);
        let mut digest = self.digest.lock();
        for (key, slot) in keys {
            if slot.digested {
                let hash = item_hash(account.as_str(), id.as_str(), Some(&key), slot.version);
                digest.tree.remove(slot.leaf, hash);
            }
        }
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

    /// The full entry behind a slot, reading the value from disk if it lives there. Called
    /// with the namespace's keys locked, so the disk holds exactly the slot's version.
    fn load(&self, namespace: &NamespaceId, key: &str, slot: &Slot) -> Result<Entry, StoreError> {
        let value = match &slot.value {
            Value::Tombstone => return Ok(Entry::tombstone(slot.version)),
            Value::Memory(value) => Bytes::clone(value),
            Value::Disk => {
                let stored = match &self.disk {
                    Some(disk) => disk.entry(namespace, key)?,
                    None => None,
                };
                match stored {
                    Some(entry) if entry.version == slot.version => return Ok(entry),
                    _ => {
                        return Err(StoreError::Storage(format!(
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
        match keys.get(key).filter(|s| s.is_live(now)) {
            Some(slot) => self.load(namespace, key, slot).map(Some),
            None => Ok(None),
        }
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
        keys.iter()
            .map(|k| match map.get(k.as_str()).filter(|s| s.is_live(now)) {
                Some(slot) => self.load(namespace, k, slot).map(Some),
                None => Ok(None),
            })
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
        let ns = self.namespace(account, namespace)?;
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
            let writes = self.stamp_and_log(makes)?;
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
    fn resident(&self, entry: &Entry) -> Value {
        match (&entry.value, &self.disk) {
            (None, _) => Value::Tombstone,
            (Some(_), Some(_)) => Value::Disk,
            (Some(value), None) => Value::Memory(Box::new(value.clone())),
        }
    }

    fn new_slot(
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
            value,
            leaf: leaf_of(account.as_str(), namespace.as_str(), Some(key)),
            digested: false,
        }
    }

    /// Applies a write from another region by LWW. Returns whether it changed the stored state:
    /// an older or duplicate write changes nothing, so replays and reordering are harmless.
    /// Durable once [`Store::flushed`] resolves.
    pub fn apply_replicated(&self, write: ReplicatedWrite) -> Result<bool, StoreError> {
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
                    if keys.get(key.as_str()).is_some_and(|s| s.version >= entry.version) {
                        return Ok(false);
                    }
                    self.commit_with(|disk, batch| {
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
    fn namespace_for_replica(
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
                    self.commit_with(|disk, batch| disk.put_record(batch, &placeholder))?;
                }
                ns
            }
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
            self.commit_with(|disk, batch| disk.put_record(batch, &record))?;
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
    fn place(
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
            log.lock().record(namespace, &key, slot.version, self.now_ms());
        }
        keys.insert(key, slot);
    }

    /// Starts logging apply events, keeping the newest `capacity` (for the consistency lab).
    /// Only the first call takes effect.
    pub fn enable_apply_log(&self, capacity: usize) {
        let _ = self.applies.set(Mutex::new(ApplyLog::new(capacity)));
    }

    /// Up to `limit` apply events after position `after`, or `None` if the log is off.
    pub fn applies_after(&self, after: u64, limit: usize) -> Option<ApplyPage> {
        self.applies.get().map(|log| log.lock().after(after, limit))
    }

    /// Puts a new key version in the digest now if it is old enough, else queues it to mature.
    /// Tombstones never enter.
    fn enter_digest(
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
    fn track_record(&self, ns: &Namespace, record: &NamespaceRecord, effects: &mut Effects) {
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
    fn untrack_record(&self, ns: &Namespace, record: &NamespaceRecord) {
        if ns.record_digested.swap(false, Ordering::Relaxed) {
            self.digest.lock().tree.remove(record_leaf(record), record_hash(record));
        }
    }

    fn purge_for(&self, namespace: &NamespaceId, key: &Arc<str>, slot: &Slot) -> Option<Due> {
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
            if !slot.is_live(now) {
                skipped += 1;
                // Out of budget: resume from here rather than scan on, but never with an empty
                // page: the official SDKs stop paginating at the first empty page, so one would
                // hide every key after it.
                if skipped > LIST_SKIP_BUDGET && !page.keys.is_empty() {
                    page.resume_after = Some(name.to_string());
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
                name: name.to_string(),
                expiration: slot.expiration(),
                metadata: slot.metadata(),
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
            let Some(slot) = keys.get_mut(&item.key) else { continue };
            if slot.version != item.version {
                continue; // Rewritten since it was queued; the newer write has its own item.
            }
            match item.kind {
                PurgeKind::Expire => {
                    // Keep the version: an older write of this key arriving later must still
                    // lose to it.
                    let tombstone = Entry::tombstone(item.version);
                    let committed = self.commit_with(|disk, batch| {
                        disk.put_entry(batch, &item.namespace, &item.key, &tombstone)
                    });
                    if let Err(error) = committed {
                        tracing::warn!(%error, "expiry not stored; retried later");
                        follow_ups.push(Due { at_ms: now.saturating_add(1000), ..item });
                        continue;
                    }
                    if slot.digested {
                        let hash = item_hash(
                            account.as_str(),
                            item.namespace.as_str(),
                            Some(&item.key),
                            slot.version,
                        );
                        self.digest.lock().tree.remove(slot.leaf, hash);
                    }
                    *slot = Slot {
                        expiration: None,
                        metadata: None,
                        value: Value::Tombstone,
                        digested: false,
                        ..slot.clone()
                    };
                    let grace_ms = self.config.tombstone_grace.as_millis() as u64;
                    follow_ups.push(Due {
                        at_ms: item.at_ms.saturating_add(grace_ms),
                        kind: PurgeKind::Collect,
                        ..item
                    });
                    stats.expired += 1;
                }
                PurgeKind::Collect if self.watermarks.read().covers(item.version) => {
                    let committed = self.commit_with(|disk, batch| {
                        disk.remove_entry(batch, &item.namespace, &item.key)
                    });
                    if let Err(error) = committed {
                        tracing::warn!(%error, "tombstone collection not stored; retried later");
                        follow_ups.push(Due { at_ms: now.saturating_add(1000), ..item });
                        continue;
                    }
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
        match &self.disk {
            None => self.outbox.lock().after(after, max),
            Some(disk) => disk.outbox_after(after, max).unwrap_or_else(|error| {
                tracing::error!(%error, "cannot read the outbox");
                Vec::new()
            }),
        }
    }

    /// Drops outbox entries at or below `through`: every peer has them.
    pub fn compact_outbox(&self, through: Timestamp) {
        match &self.disk {
            None => self.outbox.lock().compact_through(through),
            Some(disk) => {
                if let Err(error) = disk.compact_outbox(through) {
                    tracing::warn!(%error, "outbox compaction failed; retried next time");
                }
            }
        }
    }

    /// How many writes the outbox holds (in the durable store, the engine's estimate).
    pub fn outbox_len(&self) -> usize {
        match &self.disk {
            None => self.outbox.lock().len(),
            Some(disk) => disk.outbox_len(),
        }
    }

    /// Where delivery to `peer` resumes: every write of this region at or below it is there.
    /// Zero for a peer never delivered to (or for the in-memory store after a restart).
    pub fn delivery_position(&self, peer: &str) -> Timestamp {
        self.positions.lock().get(peer).copied().unwrap_or_default()
    }

    /// Records `peer`'s delivery position (persisted in the durable store, not waited for).
    pub fn save_delivery_position(&self, peer: &str, through: Timestamp) {
        let mut positions = self.positions.lock();
        let known = positions.entry(peer.to_owned()).or_default();
        if *known == through {
            return;
        }
        *known = through;
        if let Some(disk) = &self.disk {
            if let Err(error) = disk.save_position(peer, through) {
                tracing::warn!(%error, peer, "delivery position not stored");
            }
        }
    }

    /// Records that every write of `origin` at or below `through` has reached every region,
    /// which lets tombstones from `origin` up to there be collected after their grace period.
    pub fn raise_watermark(&self, origin: RegionId, through: Timestamp) {
        self.watermarks.write().raise(origin, through);
    }

    /// Moves every version that has become older than the digest horizon into the digest.
    pub fn mature(&self) {
        let now = self.now_ms();
        let mut due = self.maturing.lock().pop_due(now);
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

    /// The current state of an item as a replicated write, tombstones included, or `None`.
    pub fn current(&self, item: &ItemId) -> Option<ReplicatedWrite> {
        let ns = self.namespaces.get(&item.namespace).map(|ns| Arc::clone(&ns))?;
        let record = ns.record.read().clone();
        if record.account != item.account {
            return None;
        }
        match &item.key {
            None => (!is_placeholder(&record)).then_some(ReplicatedWrite::Namespace(record)),
            Some(key) => {
                let keys = ns.keys.read();
                let slot = keys.get(key.as_str())?;
                let entry = self
                    .load(&record.id, key, slot)
                    .inspect_err(|error| tracing::warn!(%error, "cannot read an item to repair"))
                    .ok()?;
                Some(ReplicatedWrite::Key {
                    account: record.account,
                    namespace: record.id,
                    key: key.clone(),
                    entry,
                })
            }
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

fn record_leaf(record: &NamespaceRecord) -> LeafId {
    leaf_of(record.account.as_str(), record.id.as_str(), None)
}

fn record_hash(record: &NamespaceRecord) -> u64 {
    item_hash(record.account.as_str(), record.id.as_str(), None, record.version)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod durable_tests;
