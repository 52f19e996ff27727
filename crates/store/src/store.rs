//! The store itself: namespace catalog, LWW apply, ordered listing, purging, and the state
//! replication needs (outbox, digest, watermarks).
//!
//! This file holds the types and the machinery every part shares (stamping, committing, the
//! side effects a change leaves); each concern has a module of its own: `catalog`
//! (namespaces), `keys` (reads, listings, writes, the LWW apply), `digesting` (the anti-entropy
//! digest), `purge` (expiry and tombstone collection), `replica` (outbox, positions,
//! watermarks, repair reads) and `recovery` (rebuilding the index at open).
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

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU64;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use edgekv_core::digest::LeafId;
use edgekv_core::{Entry, Hlc, RegionId, Timestamp, Version};
use parking_lot::{Mutex, RwLock};

use crate::applies::ApplyLog;
use crate::digest::{Digest, Maturing, MaturityQueue};
use crate::disk::{Disk, Durability, Flushed, OpenError, Unwritable};
use crate::error::StoreError;
use crate::expiry::{Due, PurgeQueue};
use crate::outbox::Outbox;
use crate::space::Reserve;
use edgekv_core::Watermarks;
use edgekv_core::{NamespaceId, NamespaceRecord, ReplicatedWrite};

mod catalog;
mod digesting;
mod keys;
mod purge;
mod recovery;
mod replica;

/// A hasher with fixed keys, for maps whose iteration order must not vary from run to run.
pub(crate) type FixedState = std::hash::BuildHasherDefault<std::hash::DefaultHasher>;

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

/// The default of [`StoreConfig::engine_memory`]: the 16 MiB cache and 48 MiB of memtables
/// a region with a million keys was measured with.
pub const DEFAULT_ENGINE_MEMORY: u64 = 64 << 20;

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
    /// Free space the durable store keeps for its engine; writes are refused below it.
    pub reserve: Reserve,
    /// Most memory the durable store's engine holds for its block cache and write buffers,
    /// in bytes; it holds less while the data is small.
    pub engine_memory: u64,
}

impl StoreConfig {
    /// A configuration for tests: region `region`, a one-minute grace and horizon.
    pub fn for_test(region: &str) -> Self {
        StoreConfig {
            region: region.parse().expect("a valid test region name"),
            tombstone_grace: Duration::from_secs(60),
            digest_horizon: Duration::from_secs(60),
            reserve: Reserve::default(),
            engine_memory: DEFAULT_ENGINE_MEMORY,
        }
    }
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

impl WriteOp {
    /// About what the write adds to the journal, for the free-space guard.
    fn weight(&self) -> u64 {
        let value = self.value.as_ref().map_or(0, Bytes::len);
        let metadata = self.metadata.as_ref().map_or(0, Bytes::len);
        (128 + self.key.len() + value + metadata) as u64
    }
}

/// Whether an entry is a value that has not expired at `now_ms`.
fn entry_is_live(entry: &Entry, now_ms: u64) -> bool {
    entry.value.is_some() && entry.expiration.is_none_or(|secs| now_ms < secs.saturating_mul(1000))
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
/// number of keys, not with the bytes stored. Every field is as small as it can be (64 bytes
/// in all, checked below): there is one per key, and a node of the index's B-tree holds
/// eleven. At 64 bytes a node takes jemalloc's 896-byte size class; at 72 (the value as an
/// enum, whose tag takes eight bytes) it took the 1,024-byte one.
#[derive(Clone, Debug)]
struct Slot {
    version: Version,
    /// Absolute expiry in epoch seconds; 0 (an instant long past) is stored as 1.
    expiration: Option<NonZeroU64>,
    metadata: Option<Box<[u8]>>,
    /// The value, in the in-memory store; `None` for a tombstone and in the durable store.
    memory: Option<Box<Bytes>>,
    /// The key's digest leaf, computed once.
    leaf: LeafId,
    /// Whether this version is in the digest tree.
    digested: bool,
    tombstone: bool,
}

/// Where a new slot's value is.
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
        self.tombstone
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

const _: () = assert!(std::mem::size_of::<Slot>() <= 64);

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
    /// Hashed with a fixed key: walks over it (the digest's members, the catalog) come out in
    /// the same order in every run, which a simulation replaying from its seed needs. Ids are
    /// random and made here, so a fixed key gives a client nothing to collide on.
    namespaces: DashMap<NamespaceId, Arc<Namespace>, FixedState>,
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
    /// Local namespace deletes whose keys are dropped once the delete is durable: until then
    /// the delete may still be refused, and the keys must still be there if it is.
    pending_drops: Mutex<Vec<NamespaceId>>,
    /// The durable store's engine. Every operation holds it shared from its first step, before
    /// any other lock; recovery after a storage failure holds it alone while it reopens the
    /// engine and rebuilds the index, so no operation sees a half-built state.
    disk: RwLock<Option<Disk>>,
    /// Where the durable store lives, and its mode (`None`: in memory).
    location: Option<(std::path::PathBuf, Durability)>,
    /// Why the durable store's engine is gone for good (it could not be reopened).
    closed: Mutex<Option<String>>,
    /// Apply events, when the lab asked for them.
    applies: std::sync::OnceLock<Mutex<ApplyLog>>,
    /// Where new namespace ids come from: random unless a simulation seeded them.
    namespace_ids: std::sync::OnceLock<edgekv_core::NamespaceIds>,
    /// When this store was created (its directory, for a durable one): peers tell a store that
    /// left the cluster from a wiped one that rejoins by it.
    born: AtomicU64,
    /// The membership replication last saved (see [`Store::save_membership_record`]).
    membership: Mutex<Option<String>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("config", &self.config)
            .field("namespaces", &self.namespaces.len())
            .field("location", &self.location)
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
        Self::empty(config, hlc, None)
    }

    /// A store with nothing in it yet; a durable one (`location` given) gets its engine once
    /// the index is recovered from it.
    fn empty(
        config: StoreConfig,
        hlc: Arc<Hlc>,
        location: Option<(std::path::PathBuf, Durability)>,
    ) -> Self {
        Store {
            config,
            namespaces: DashMap::with_hasher(FixedState::default()),
            catalog: Mutex::new(()),
            purge_queue: Mutex::new(PurgeQueue::default()),
            outbox: Mutex::new(Outbox::default()),
            watermarks: RwLock::new(Watermarks::default()),
            digest: Mutex::new(Digest::default()),
            maturing: Mutex::new(MaturityQueue::default()),
            listener: RwLock::new(None),
            logging: AtomicBool::new(true),
            positions: Mutex::new(HashMap::new()),
            pending_drops: Mutex::new(Vec::new()),
            disk: RwLock::new(None),
            location,
            closed: Mutex::new(None),
            applies: std::sync::OnceLock::new(),
            namespace_ids: std::sync::OnceLock::new(),
            born: AtomicU64::new(Timestamp::from_physical_ms(hlc.physical_now_ms()).0),
            membership: Mutex::new(None),
            hlc,
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
        let (disk, meta) =
            Disk::open(dir, config.region, durability, config.reserve, config.engine_memory)?;
        let store = Self::empty(config, hlc, Some((dir.to_path_buf(), durability)));
        let recovered = store.recover(&disk, meta)?;
        *store.disk.write() = Some(disk);
        Ok((store, recovered))
    }

    /// The durable engine, held shared for the rest of an operation (see the field).
    fn disk(&self) -> parking_lot::RwLockReadGuard<'_, Option<Disk>> {
        self.disk.read_recursive()
    }

    /// The engine a change commits to: `None` for the in-memory store, an error for a durable
    /// store whose engine is gone (a change must never land in memory alone there).
    fn engine<'a>(&self, disk: &'a Option<Disk>) -> Result<Option<&'a Disk>, StoreError> {
        match disk {
            Some(disk) => Ok(Some(disk)),
            None if self.location.is_none() => Ok(None),
            None => Err(StoreError::Unavailable(
                self.closed.lock().clone().unwrap_or_else(|| "the store is closed".to_owned()),
            )),
        }
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
        self.location.as_ref().map(|(_, durability)| *durability)
    }

    /// The data directory, or `None` for the in-memory store.
    pub fn data_dir(&self) -> Option<&Path> {
        self.location.as_ref().map(|(dir, _)| dir.as_path())
    }

    /// How many group-commit fsyncs the store has done (since it last recovered).
    pub fn fsyncs(&self) -> u64 {
        self.disk().as_ref().map_or(0, Disk::fsyncs)
    }

    /// Resolves once every write that returned before this call is as durable as the mode
    /// promises. A write is acknowledged only after this.
    pub fn flushed(&self) -> Flushed {
        match &*self.disk() {
            Some(disk) => disk.flushed(),
            None => Flushed::ready(),
        }
    }

    /// Flushes everything to disk and stops the syncer. Call once, at shutdown.
    pub fn close(&self) -> Result<(), StoreError> {
        match &*self.disk() {
            Some(disk) => disk.close(),
            None => Ok(()),
        }
    }

    /// Whether the store takes writes now: `Err` says why not (its filesystem is about to fill
    /// up, or it failed and waits to recover). Reads work either way. Takes a fresh reading of
    /// the free space, so it is for readiness probes, not for every request.
    pub fn health(&self) -> Result<(), String> {
        let disk = self.disk();
        let disk = self.engine(&disk).map_err(|e| e.to_string())?;
        match disk {
            Some(disk) => disk.health().map_err(|why| match why {
                Unwritable::Full(full) => full.to_string(),
                Unwritable::Failed(reason) => {
                    format!("{reason}; the store reopens once its filesystem has room again")
                }
            }),
            None => Ok(()),
        }
    }

    /// Why the durable store's engine is gone for good, if it is: it failed and could not be
    /// reopened. Such a store refuses every write; the process should exit.
    pub fn closed(&self) -> Option<String> {
        self.closed.lock().clone()
    }

    /// Registers the function called after each local write becomes visible (replacing any
    /// earlier one): at once in the in-memory store and in the durable store's `periodic` and
    /// `none` modes, after its group commit in `fsync` mode.
    pub fn on_write(&self, listener: WriteListener) {
        *self.listener.write() = Some(Arc::clone(&listener));
        if let Some(disk) = &*self.disk() {
            disk.on_durable(Some(listener));
        }
    }

    /// Whether `version` must not be shown yet: a local write whose group commit has not
    /// succeeded (see the `disk` module). Such a read serves the key's durable state instead.
    fn hidden(&self, disk: Option<&Disk>, version: Version) -> bool {
        disk.is_some_and(|disk| {
            version.origin == self.config.region && version.ts > disk.visible_through()
        })
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
    ///
    /// `bytes` estimates what the writes weigh; the durable store refuses them up front,
    /// before any timestamp is taken, when its filesystem has no room for them.
    fn stamp_and_log(
        &self,
        bytes: u64,
        makes: Vec<Box<dyn FnOnce(Version) -> ReplicatedWrite + '_>>,
    ) -> Result<Vec<ReplicatedWrite>, StoreError> {
        let logging = self.logging.load(Ordering::Relaxed);
        let disk = self.disk();
        let disk = self.engine(&disk)?;
        if let Some(disk) = disk {
            // Each write goes to the journal twice when logged: its entry and its outbox record.
            disk.admit(bytes.saturating_mul(1 + u64::from(logging)), false)?;
        }
        let mut outbox = self.outbox.lock();
        let writes: Vec<ReplicatedWrite> = makes
            .into_iter()
            .map(|make| make(Version::new(self.hlc.now(), self.config.region)))
            .collect();
        match disk {
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
                let last = writes.last().map(|w| w.version().ts);
                if let Some(last) = last {
                    disk.cover_timestamp(&mut batch, last);
                }
                disk.commit_local(batch, last)?;
            }
        }
        Ok(writes)
    }

    /// Stamps and logs one write; see [`Store::stamp_and_log`].
    fn stamp_one(
        &self,
        make: impl FnOnce(Version) -> ReplicatedWrite,
    ) -> Result<ReplicatedWrite, StoreError> {
        let mut writes = self.stamp_and_log(256, vec![Box::new(make)])?;
        writes.pop().ok_or_else(|| StoreError::storage_bare("no write was stamped"))
    }

    /// Commits changes that need no outbox record or timestamp: replicated writes (`bytes`
    /// their weight), and, when `bytes` is `None`, the store's own small changes (purges,
    /// dropped keys, placeholders), which may use part of the space reserve.
    fn commit_with(
        &self,
        bytes: Option<u64>,
        fill: impl FnOnce(&Disk, &mut fjall::OwnedWriteBatch),
    ) -> Result<(), StoreError> {
        let disk = self.disk();
        let Some(disk) = self.engine(&disk)? else { return Ok(()) };
        disk.admit(bytes.unwrap_or(256), bytes.is_none())?;
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
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod durable_tests;

#[cfg(test)]
mod failure_tests;
