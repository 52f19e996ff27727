//! The durable backend: a fjall database in the region's data directory, and group commit.
//!
//! # Layout
//! Four keyspaces. `items` maps namespace id (32 ASCII bytes) + key to the encoded entry, value
//! or tombstone, so a namespace is one contiguous range. `namespaces` maps a namespace id to its
//! record. `outbox` maps a timestamp (8 bytes, big-endian, so byte order is time order) to this
//! region's write with that timestamp, until every peer has it. `meta` holds the region name the
//! directory belongs to, the store's birth, the clock's upper bound, each peer's delivery
//! position and the membership (see `meta`).
//!
//! A local write's entry, its outbox record and the clock bound go into one fjall batch, which
//! is atomic: after a crash either all of it is there or none of it is. The anti-entropy digest
//! is not stored; recovery rebuilds it from the entries, so it cannot disagree with them.
//!
//! # Group commit
//! A write commits its batch (to the journal's OS buffer and the memtable) while it holds the
//! store's locks, then waits on [`Disk::flushed`] outside them. One syncer thread turns every
//! commit that happened before it woke into one `fsync`, so writers that arrive together share
//! it: the more concurrent writers, the bigger each group. Under `periodic(ms)` the syncer runs
//! on a timer and writers do not wait; under `none` only the OS and a clean shutdown flush.
//! A kill -9 loses nothing acknowledged in any mode; the modes differ on power loss.
//!
//! # Durable before visible
//! In `fsync` mode a local write is not shown to anyone (readers, listings, the replication
//! senders, anti-entropy) until its group commit's fsync has succeeded, because until then it
//! may still be refused: a failed fsync answers its writer 500, and a write that was refused
//! must never be seen. The syncer keeps [`Disk::visible_through`], the newest local timestamp
//! known durable, and a fjall snapshot taken at exactly that point (every batch committed
//! before the group's fsync began, none after), from which a read of a key whose newest version
//! is still in flight gets the key's durable state instead. Writes from peers are shown at once:
//! their origin acknowledged them already, so showing them cannot expose a refused write.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use edgekv_core::{Entry, RegionId, Timestamp};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};
use parking_lot::Mutex;

use crate::codec::{self, DecodeError};
use crate::space::{NoSpace, Reserve, SpaceGuard};
use crate::{StoreError, WriteListener};

mod group;
mod meta;
mod tuning;

use edgekv_core::{NamespaceId, NamespaceRecord, ReplicatedWrite};
pub use group::Flushed;
use group::{sync_journals, syncer, wake_all, SyncState};
pub(crate) use meta::Meta;
use meta::{claim_for_region, read_meta, read_u64, META_HLC};
use tuning::{separated, Budget};

/// When an acknowledged write reaches the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// The ack follows the fsync of the write's group commit.
    #[default]
    Fsync,
    /// The journal is fsynced every so often; the ack does not wait for it.
    Periodic(Duration),
    /// Never fsynced except at shutdown; the OS writes back when it likes.
    None,
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Durability::Fsync => f.write_str("fsync"),
            Durability::Periodic(every) => write!(f, "periodic({}ms)", every.as_millis()),
            Durability::None => f.write_str("none"),
        }
    }
}

impl FromStr for Durability {
    type Err = String;

    /// `fsync`, `none`, or `periodic(MS)` (`periodic(100)` or `periodic(100ms)`).
    fn from_str(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        match raw {
            "fsync" => return Ok(Durability::Fsync),
            "none" => return Ok(Durability::None),
            _ => {}
        }
        let bad = || format!("durability {raw:?}: expected fsync, periodic(MS) or none");
        let inner =
            raw.strip_prefix("periodic(").and_then(|r| r.strip_suffix(')')).ok_or_else(bad)?;
        let ms: u64 = inner.trim().trim_end_matches("ms").parse().map_err(|_| bad())?;
        if !(1..=60_000).contains(&ms) {
            return Err(format!("durability {raw:?}: the period must be 1 to 60000 ms"));
        }
        Ok(Durability::Periodic(Duration::from_millis(ms)))
    }
}

/// Why a data directory could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The storage engine refused the directory (I/O error, corrupt file, locked by another
    /// process).
    #[error("cannot open the store in {dir}: {message}")]
    Engine {
        /// The data directory.
        dir: PathBuf,
        /// The engine's explanation.
        message: String,
    },
    /// A record in a file of the store cannot be decoded.
    #[error("corrupt store: a record of keyspace {keyspace} in {file} (key {key}) cannot be read: {error}")]
    Corrupt {
        /// The keyspace's name.
        keyspace: &'static str,
        /// The keyspace directory holding the record.
        file: PathBuf,
        /// The record's key, escaped.
        key: String,
        /// What is wrong with it.
        error: DecodeError,
    },
    /// The directory holds another region's data.
    #[error("{dir} holds the data of region {found}, not {expected}")]
    WrongRegion {
        /// The data directory.
        dir: PathBuf,
        /// The region this node runs as.
        expected: RegionId,
        /// The region the directory belongs to.
        found: String,
    },
}

/// How far ahead of the newest issued timestamp the stored clock bound is. Short enough that a
/// restarted node, whose clock starts at the bound, stays well within a peer's 500 ms
/// tolerance for clocks running ahead.
pub(crate) const CLOCK_LEASE: Duration = Duration::from_millis(200);

/// Length of a namespace id, the prefix of every item key.
const NS_LEN: usize = 32;

/// The open durable store of one region.
pub(crate) struct Disk {
    dir: PathBuf,
    region: RegionId,
    db: Database,
    pub(crate) items: Keyspace,
    pub(crate) namespaces: Keyspace,
    outbox: Keyspace,
    meta: Keyspace,
    durability: Durability,
    sync: Arc<SyncState>,
    syncer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Outbox records at or below this are already deleted.
    compacted_through: Mutex<u64>,
    /// The clock bound stored (or being committed): no timestamp at or above it was issued.
    clock_bound: Mutex<Timestamp>,
    space: SpaceGuard,
    memory: Budget,
}

impl fmt::Debug for Disk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Disk")
            .field("dir", &self.dir)
            .field("durability", &self.durability)
            .finish()
    }
}

impl Disk {
    /// Opens (or creates) the store in `dir` for `region`, its engine within `memory` bytes.
    pub(crate) fn open(
        dir: &Path,
        region: RegionId,
        durability: Durability,
        reserve: Reserve,
        memory: u64,
    ) -> Result<(Disk, Meta), OpenError> {
        let engine = opening(dir);
        std::fs::create_dir_all(dir).map_err(|e| engine(&e))?;
        let memory = Budget::new(memory);
        let db = open_database(dir, durability, &memory)?;
        let items = db.keyspace("items", separated).map_err(|e| engine(&e))?;
        let outbox = db.keyspace("outbox", separated).map_err(|e| engine(&e))?;
        let namespaces =
            db.keyspace("namespaces", KeyspaceCreateOptions::default).map_err(|e| engine(&e))?;
        let meta = db.keyspace("meta", KeyspaceCreateOptions::default).map_err(|e| engine(&e))?;
        claim_for_region(&db, &meta, dir, region)?;
        let found = read_meta(&meta, dir)?;
        // What recovery found may have reached only the OS before a kill -9: make it durable
        // before anything of it is shown as such.
        sync_journals(dir).map_err(|e| engine(&e))?;
        // Recovery itself may have committed nothing new; start with the counters level.
        let sync = Arc::new(SyncState::default());
        if durability != Durability::Fsync {
            // The other modes acknowledge before any fsync: nothing waits to be shown.
            sync.local_durable.store(u64::MAX, Ordering::Release);
        }
        *sync.durable.lock() = Some(db.snapshot());
        let disk = Disk {
            dir: dir.to_path_buf(),
            region,
            db,
            items,
            namespaces,
            outbox,
            meta,
            durability,
            sync,
            syncer: Mutex::new(None),
            compacted_through: Mutex::new(0),
            clock_bound: Mutex::new(found.hlc_bound),
            space: SpaceGuard::new(dir, reserve),
            memory,
        };
        disk.start_syncer();
        Ok((disk, found))
    }

    /// The data directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Tests: makes the next group commit fail after its fsync.
    #[cfg(test)]
    pub(crate) fn fail_next_group(&self) {
        self.sync.fail_next_group.store(true, Ordering::Release);
    }

    /// Tests: holds (or releases) every group commit.
    #[cfg(test)]
    pub(crate) fn hold_groups(&self, hold: bool) {
        self.sync.hold_groups.store(hold, Ordering::Release);
    }

    /// The region the directory belongs to.
    pub(crate) fn region(&self) -> RegionId {
        self.region
    }

    /// Whether the engine failed and its filesystem has room again, so reopening it may work.
    pub(crate) fn needs_reopen(&self) -> bool {
        self.sync.failed.load(Ordering::Acquire) && self.space.check().is_ok()
    }

    /// Makes everything committed durable, now.
    pub(crate) fn sync_all(&self) -> Result<(), StoreError> {
        self.db.persist(PersistMode::SyncAll).map_err(engine_failed("could not sync the store"))
    }

    pub(crate) fn durability(&self) -> Durability {
        self.durability
    }

    fn start_syncer(&self) {
        let interval = match self.durability {
            Durability::Fsync => None,
            Durability::Periodic(every) => Some(every),
            Durability::None => return,
        };
        let sync = Arc::clone(&self.sync);
        let dir = self.dir.clone();
        let db = self.db.clone();
        let handle = std::thread::Builder::new()
            .name("edgekv-syncer".into())
            .spawn(move || syncer(&db, &dir, &sync, interval))
            .ok();
        if handle.is_none() {
            // No thread, no group commit: mark the store failed rather than hang writers.
            self.sync.failed.store(true, Ordering::Release);
        }
        *self.syncer.lock() = handle;
    }

    /// Commits `batch` atomically. Durable once [`Disk::flushed`] resolves.
    pub(crate) fn commit(&self, batch: fjall::OwnedWriteBatch) -> Result<(), StoreError> {
        self.commit_local(batch, None)
    }

    /// Commits `batch`, which holds local writes up to timestamp `local` if given: those are
    /// shown once their group commit is durable (see [`Disk::visible_through`]).
    pub(crate) fn commit_local(
        &self,
        batch: fjall::OwnedWriteBatch,
        local: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let gate = self.sync.commit_gate.read();
        if self.sync.failed.load(Ordering::Acquire) {
            return Err(self.unavailable());
        }
        if let Err(error) = batch.commit() {
            self.sync.fail(format!("a commit failed: {error}"));
            return Err(engine_failed("could not commit a write")(error));
        }
        self.sync.committed.fetch_add(1, Ordering::AcqRel);
        if let Some(ts) = local {
            self.sync.local_committed.fetch_max(ts.0, Ordering::AcqRel);
            if self.durability == Durability::Fsync {
                // Nobody sees these writes until they are durable: have them synced soon even
                // if no one waits for them.
                self.request_sync();
            }
        }
        // A memtable rotation must not hold up the syncer's snapshot.
        drop(gate);
        self.memory.after_commit(&[&self.items, &self.outbox, &self.namespaces, &self.meta]);
        Ok(())
    }

    /// Asks for room for a commit of about `bytes`: refused when the filesystem is about to
    /// fill up (see [`crate::space`]) or the store has failed. `internal` commits (expiry,
    /// tombstone collection, positions) may use part of the reserve.
    pub(crate) fn admit(&self, bytes: u64, internal: bool) -> Result<(), StoreError> {
        if self.sync.failed.load(Ordering::Acquire) {
            return Err(self.unavailable());
        }
        self.space.admit(bytes, internal).map_err(|full| StoreError::Unavailable(full.to_string()))
    }

    fn unavailable(&self) -> StoreError {
        let reason = self.sync.failure.lock().clone();
        StoreError::Unavailable(reason.unwrap_or_else(|| "the store has failed".to_owned()))
    }

    /// Why the store cannot take writes now, if it cannot: it failed, or its filesystem is
    /// about to fill up (a fresh reading).
    pub(crate) fn health(&self) -> Result<(), Unwritable> {
        if let Some(reason) = self.sync.failure.lock().clone() {
            return Err(Unwritable::Failed(reason));
        }
        self.space.check().map_err(Unwritable::Full)
    }

    /// Every local write at or below this timestamp is durable and may be shown; a newer one
    /// is still in its group commit (or was refused, if the store failed).
    pub(crate) fn visible_through(&self) -> Timestamp {
        Timestamp(self.sync.local_durable.load(Ordering::Acquire))
    }

    /// When the local write stamped `ts` became readable (the system clock then, epoch µs), or
    /// `None` if it is not readable yet. A write older than the times kept gets the oldest
    /// one: it was readable by then.
    pub(crate) fn shown_at(&self, ts: Timestamp) -> Option<u64> {
        if ts > self.visible_through() {
            return None;
        }
        let shown = self.sync.shown.lock();
        let first = shown.partition_point(|(through, _)| *through < ts.0);
        match shown.get(first).or(shown.back()) {
            Some((_, us)) => Some(*us),
            // Shown before this engine was opened (or in a mode that shows writes at once).
            None => Some(crate::applies::system_now_us()),
        }
    }

    /// Whether the local write stamped `ts` was refused: the store failed before its group
    /// commit, so it is never shown.
    pub(crate) fn refused(&self, ts: Timestamp) -> bool {
        self.sync.failed.load(Ordering::Acquire) && ts > self.visible_through()
    }

    /// Declares everything at or below `floor` durable: what recovery found on disk.
    pub(crate) fn recovered_through(&self, floor: Timestamp) {
        if self.durability == Durability::Fsync {
            self.sync.local_durable.fetch_max(floor.0, Ordering::AcqRel);
        }
    }

    /// Registers what to call once more local writes became durable.
    pub(crate) fn on_durable(&self, listener: Option<WriteListener>) {
        *self.sync.on_durable.write() = listener;
    }

    /// A key's entry as of the last successful group commit.
    pub(crate) fn durable_entry(
        &self,
        namespace: &NamespaceId,
        key: &str,
    ) -> Result<Option<Entry>, StoreError> {
        let snapshot = self.sync.durable.lock().clone();
        let raw = match &snapshot {
            Some(snapshot) => snapshot.get(&self.items, Self::item_key(namespace, key)),
            None => self.items.get(Self::item_key(namespace, key)),
        }
        .map_err(engine_failed("could not read a key's durable state"))?;
        raw.map(|raw| codec::decode_entry(&Bytes::from(raw.to_vec())))
            .transpose()
            .map_err(undecodable(self.items.path()))
    }

    /// A namespace's record as of the last successful group commit.
    pub(crate) fn durable_record(
        &self,
        namespace: &NamespaceId,
    ) -> Result<Option<NamespaceRecord>, StoreError> {
        let snapshot = self.sync.durable.lock().clone();
        let raw = match &snapshot {
            Some(snapshot) => snapshot.get(&self.namespaces, namespace.as_str()),
            None => self.namespaces.get(namespace.as_str()),
        }
        .map_err(engine_failed("could not read a namespace's durable state"))?;
        raw.map(|raw| codec::decode_record(&raw))
            .transpose()
            .map_err(undecodable(self.namespaces.path()))
    }

    pub(crate) fn batch(&self) -> fjall::OwnedWriteBatch {
        self.db.batch()
    }

    /// Resolves once every batch committed before this call is on disk (in `fsync` mode; at
    /// once in the others).
    pub(crate) fn flushed(&self) -> Flushed {
        if self.durability != Durability::Fsync {
            return Flushed { wait: None };
        }
        let target = self.sync.committed.load(Ordering::Acquire);
        if self.sync.synced.load(Ordering::Acquire) >= target {
            return Flushed { wait: None };
        }
        self.request_sync();
        Flushed { wait: Some((Arc::clone(&self.sync), target)) }
    }

    /// Asks the syncer for a group commit soon. Only the first request of a group wakes it;
    /// the rest find it already asked.
    fn request_sync(&self) {
        let asked = std::mem::replace(&mut *self.sync.wanted.lock(), true);
        if !asked {
            self.sync.wake_syncer.notify_one();
        }
    }

    /// How many fsyncs the syncer has done.
    pub(crate) fn fsyncs(&self) -> u64 {
        self.sync.fsyncs.load(Ordering::Relaxed)
    }

    /// Stops the syncer and makes everything committed durable.
    pub(crate) fn close(&self) -> Result<(), StoreError> {
        if let Some(reason) = self.sync.failure.lock().clone() {
            self.stop_syncer();
            return Err(StoreError::Unavailable(reason));
        }
        self.stop_syncer();
        self.db.persist(PersistMode::SyncAll).map_err(engine_failed("could not sync the store"))?;
        self.sync.synced.store(self.sync.committed.load(Ordering::Acquire), Ordering::Release);
        wake_all(&self.sync);
        Ok(())
    }

    // ---- record keys ------------------------------------------------------------------------

    pub(crate) fn item_key(namespace: &NamespaceId, key: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(NS_LEN + key.len());
        out.extend_from_slice(namespace.as_str().as_bytes());
        out.extend_from_slice(key.as_bytes());
        out
    }

    pub(crate) fn put_entry(
        &self,
        batch: &mut fjall::OwnedWriteBatch,
        namespace: &NamespaceId,
        key: &str,
        entry: &Entry,
    ) {
        let mut value = Vec::with_capacity(64 + entry.value.as_ref().map_or(0, Bytes::len));
        codec::encode_entry(entry, &mut value);
        batch.insert(&self.items, Self::item_key(namespace, key), value);
    }

    pub(crate) fn remove_entry(
        &self,
        batch: &mut fjall::OwnedWriteBatch,
        namespace: &NamespaceId,
        key: &str,
    ) {
        batch.remove(&self.items, Self::item_key(namespace, key));
    }

    pub(crate) fn remove_record(
        &self,
        batch: &mut fjall::OwnedWriteBatch,
        namespace: &NamespaceId,
    ) {
        batch.remove(&self.namespaces, namespace.as_str());
    }

    /// Adds the removal of every outbox record after `after` to `batch`.
    pub(crate) fn remove_outbox_after(
        &self,
        batch: &mut fjall::OwnedWriteBatch,
        after: Timestamp,
    ) -> Result<(), StoreError> {
        let Some(start) = after.0.checked_add(1) else { return Ok(()) };
        for guard in self.outbox.range(start.to_be_bytes()..) {
            batch.remove(
                &self.outbox,
                guard.key().map_err(engine_failed("could not read the outbox"))?,
            );
        }
        Ok(())
    }

    pub(crate) fn put_record(&self, batch: &mut fjall::OwnedWriteBatch, record: &NamespaceRecord) {
        let mut value = Vec::with_capacity(64 + record.title.len());
        codec::encode_record(record, &mut value);
        batch.insert(&self.namespaces, record.id.as_str(), value);
    }

    pub(crate) fn put_outbox(&self, batch: &mut fjall::OwnedWriteBatch, write: &ReplicatedWrite) {
        let mut value = Vec::with_capacity(write.size_hint());
        codec::encode_write(write, &mut value);
        batch.insert(&self.outbox, write.version().ts.0.to_be_bytes(), value);
    }

    /// The newest timestamp through which every local write this run or a later one may
    /// send is already readable from the outbox, for a caller that holds the store's outbox
    /// lock (so no write is being stamped) and has just taken `now` from the clock: the
    /// visible prefix while a group commit is pending, else `now`, but never past the stored
    /// clock bound, above which a restart after a crash may stamp again.
    pub(crate) fn local_frontier(&self, now: Timestamp) -> Timestamp {
        let visible = self.visible_through();
        let committed = Timestamp(self.sync.local_committed.load(Ordering::Acquire));
        if committed > visible {
            return visible;
        }
        now.min(*self.clock_bound.lock())
    }

    /// Stores a new clock bound if the clock, at `now`, has passed the stored one: what a local
    /// write's batch does, for a region that has none to write, so its outbox frontier keeps
    /// following its clock (see [`Disk::local_frontier`]).
    pub(crate) fn extend_clock_bound(&self, now: Timestamp) -> Result<(), StoreError> {
        if now < *self.clock_bound.lock() {
            return Ok(());
        }
        self.admit(256, true)?;
        let mut batch = self.batch();
        self.cover_timestamp(&mut batch, now);
        self.commit(batch)
    }

    /// Adds a new clock bound to `batch` if `issued` is past the stored one. The bound is a
    /// lease [`CLOCK_LEASE`] ahead of `issued`, so it is written about once per lease, not per
    /// write, and is always above every timestamp issued: the batch that first goes past a
    /// bound also carries the next one.
    pub(crate) fn cover_timestamp(&self, batch: &mut fjall::OwnedWriteBatch, issued: Timestamp) {
        let mut bound = self.clock_bound.lock();
        if issued < *bound {
            return;
        }
        let lease_ms = CLOCK_LEASE.as_millis() as u64;
        let next = Timestamp::from_physical_ms(issued.physical_ms().saturating_add(lease_ms));
        batch.insert(&self.meta, META_HLC, next.0.to_be_bytes());
        *bound = next;
    }

    // ---- reads ------------------------------------------------------------------------------

    /// The stored entry of a key.
    pub(crate) fn entry(
        &self,
        namespace: &NamespaceId,
        key: &str,
    ) -> Result<Option<Entry>, StoreError> {
        let Some(raw) = self
            .items
            .get(Self::item_key(namespace, key))
            .map_err(engine_failed("could not read a key"))?
        else {
            return Ok(None);
        };
        codec::decode_entry(&Bytes::from(raw.to_vec()))
            .map(Some)
            .map_err(undecodable(self.items.path()))
    }

    /// The stored record of a namespace.
    pub(crate) fn record(
        &self,
        namespace: &NamespaceId,
    ) -> Result<Option<NamespaceRecord>, StoreError> {
        let raw = self
            .namespaces
            .get(namespace.as_str())
            .map_err(engine_failed("could not read a namespace"))?;
        raw.map(|raw| codec::decode_record(&raw))
            .transpose()
            .map_err(undecodable(self.namespaces.path()))
    }

    /// Every stored namespace record.
    pub(crate) fn records(&self) -> Result<Vec<NamespaceRecord>, OpenError> {
        let mut out = Vec::new();
        for guard in self.namespaces.iter() {
            let (key, value) = guard.into_inner().map_err(|e| self.engine_error(&e))?;
            let record = codec::decode_record(&value).map_err(|error| OpenError::Corrupt {
                keyspace: "namespaces",
                file: self.namespaces.path().to_path_buf(),
                key: String::from_utf8_lossy(&key).into_owned(),
                error,
            })?;
            out.push(record);
        }
        Ok(out)
    }

    /// Calls `each` with every stored entry, in key order: namespace id, key, and the entry
    /// without its value (see [`codec::decode_head`]).
    pub(crate) fn scan_entries(
        &self,
        mut each: impl FnMut(NamespaceId, &str, Entry),
    ) -> Result<(), OpenError> {
        for guard in self.items.iter() {
            let (key, value) = guard.into_inner().map_err(|e| self.engine_error(&e))?;
            let corrupt = |error| OpenError::Corrupt {
                keyspace: "items",
                file: self.items.path().to_path_buf(),
                key: String::from_utf8_lossy(&key).escape_debug().to_string(),
                error,
            };
            let (ns, name) =
                key.split_at_checked(NS_LEN).ok_or_else(|| corrupt(DecodeError("short key")))?;
            let ns = std::str::from_utf8(ns)
                .ok()
                .and_then(NamespaceId::parse)
                .ok_or_else(|| corrupt(DecodeError("bad namespace id")))?;
            let name =
                std::str::from_utf8(name).map_err(|_| corrupt(DecodeError("key is not UTF-8")))?;
            let entry = codec::decode_head(&value).map_err(corrupt)?;
            each(ns, name, entry);
        }
        Ok(())
    }

    /// The newest outbox timestamp, if the outbox holds anything.
    pub(crate) fn outbox_last(&self) -> Result<Option<Timestamp>, OpenError> {
        match self.outbox.last_key_value() {
            None => Ok(None),
            Some(guard) => {
                let key = guard.key().map_err(|e| self.engine_error(&e))?;
                Ok(read_u64(&key).map(Timestamp))
            }
        }
    }

    /// Up to `max` outbox writes after `after` and at or below `through`, in timestamp order.
    pub(crate) fn outbox_after(
        &self,
        after: Timestamp,
        through: Timestamp,
        max: usize,
    ) -> Result<Vec<ReplicatedWrite>, StoreError> {
        let Some(start) = after.0.checked_add(1) else { return Ok(Vec::new()) };
        if start > through.0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let range = self.outbox.range(start.to_be_bytes()..=through.0.to_be_bytes());
        for guard in range.take(max) {
            let value = guard.value().map_err(engine_failed("could not read the outbox"))?;
            let write = codec::decode_write(&Bytes::from(value.to_vec()))
                .map_err(undecodable(self.outbox.path()))?;
            out.push(write);
        }
        Ok(out)
    }

    /// Deletes outbox records at or below `through`.
    pub(crate) fn compact_outbox(&self, through: Timestamp) -> Result<(), StoreError> {
        let mut done = self.compacted_through.lock();
        if through.0 <= *done {
            return Ok(());
        }
        self.admit(64, true)?;
        let mut batch = self.batch();
        let from = done.saturating_add(1);
        for guard in self.outbox.range(from.to_be_bytes()..=through.0.to_be_bytes()) {
            batch.remove(
                &self.outbox,
                guard.key().map_err(engine_failed("could not read the outbox"))?,
            );
        }
        if !batch.is_empty() {
            self.commit(batch)?;
        }
        *done = through.0;
        Ok(())
    }

    /// How many records the outbox holds (approximate: the engine's estimate).
    pub(crate) fn outbox_len(&self) -> usize {
        self.outbox.approximate_len()
    }

    fn engine_error(&self, e: &dyn fmt::Display) -> OpenError {
        opening(&self.dir)(e)
    }
}

impl Disk {
    /// Stops the syncer thread and wakes whoever still waits on it.
    fn stop_syncer(&self) {
        self.sync.stopping.store(true, Ordering::Release);
        self.sync.wake_syncer.notify_all();
        if let Some(handle) = self.syncer.lock().take() {
            let _ = handle.join();
        }
        wake_all(&self.sync);
    }
}

impl Drop for Disk {
    /// Stops the syncer, which holds the database open. No flush: a store dropped without
    /// [`Disk::close`] keeps what it committed, as after a crash of the process.
    fn drop(&mut self) {
        self.stop_syncer();
    }
}

/// Why a durable store cannot take writes now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Unwritable {
    /// The filesystem is about to fill up.
    Full(NoSpace),
    /// A commit or an fsync failed; the engine must be reopened.
    Failed(String),
}

/// The journal files of a data directory, for an error message.
fn journal_files(dir: &Path) -> String {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jnl"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    if files.is_empty() {
        format!("{}/*.jnl", dir.display())
    } else {
        files.join(", ")
    }
}

/// Maps an engine error met while opening the store in `dir`.
fn opening(dir: &Path) -> impl Fn(&dyn fmt::Display) -> OpenError + '_ {
    move |e| OpenError::Engine { dir: dir.to_path_buf(), message: e.to_string() }
}

/// Opens the fjall database of a data directory, naming the file behind each kind of failure
/// (the engine's errors rarely do).
fn open_database(
    dir: &Path,
    durability: Durability,
    memory: &Budget,
) -> Result<Database, OpenError> {
    memory
        .configure(Database::builder(dir))
        // In fsync mode the syncer hands the journal's buffer to the OS once per group,
        // rather than every commit making its own write(2). The other modes ack before any
        // fsync, so there every commit reaches the OS at once and survives a kill -9.
        .manual_journal_persist(durability == Durability::Fsync)
        .open()
        .map_err(|e| {
            let message = match e {
                fjall::Error::Locked => {
                    "another process has it open (its lock file is held)".to_owned()
                }
                fjall::Error::InvalidVersion(_) => format!(
                    "{} is damaged or not an EdgeKV store's format version file",
                    dir.join("version").display()
                ),
                fjall::Error::JournalRecovery(error) => format!(
                    "a journal file ({}) cannot be recovered: {error:?}",
                    journal_files(dir)
                ),
                fjall::Error::Storage(error) => format!(
                    "a table file under {} cannot be read: {error}",
                    dir.join("keyspaces").display()
                ),
                other => other.to_string(),
            };
            OpenError::Engine { dir: dir.to_path_buf(), message }
        })
}

/// Maps an engine error met while doing `context`.
fn engine_failed(context: &'static str) -> impl FnOnce(fjall::Error) -> StoreError {
    move |e| StoreError::storage(context, e)
}

/// Maps a record that does not decode, found in the keyspace at `file`.
fn undecodable(file: &Path) -> impl FnOnce(DecodeError) -> StoreError + '_ {
    move |e| {
        StoreError::storage(format!("a stored record in {} does not decode", file.display()), e)
    }
}
