//! Group commit: the syncer thread, the groups it forms and the futures writers wait on.
//!
//! See the parent module for why there is one syncer and why it fsyncs outside fjall's
//! journal lock.

use std::fs::File;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use fjall::{Database, PersistMode, Snapshot};
use parking_lot::{Condvar, Mutex, RwLock};

use crate::{StoreError, WriteListener};

/// What the syncer and the writers waiting on it share.
#[derive(Default)]
pub(super) struct SyncState {
    /// Batches committed to the journal so far.
    pub(super) committed: AtomicU64,
    /// Batches known to be on disk.
    pub(super) synced: AtomicU64,
    /// Set when a write is waiting for the syncer.
    pub(super) wanted: Mutex<bool>,
    pub(super) wake_syncer: Condvar,
    pub(super) waiters: Mutex<Vec<Waker>>,
    pub(super) stopping: AtomicBool,
    /// An fsync failed: nothing can be acknowledged as durable any more.
    pub(super) failed: AtomicBool,
    /// Why the store cannot write any more, once it cannot.
    pub(super) failure: Mutex<Option<String>>,
    pub(super) fsyncs: AtomicU64,
    /// Commits hold it shared; the syncer holds it alone for the instant it reads how far the
    /// commits got and takes its snapshot, so the two describe exactly the same batches.
    pub(super) commit_gate: RwLock<()>,
    /// The newest timestamp of a local write committed so far.
    pub(super) local_committed: AtomicU64,
    /// Every local write at or below this timestamp is durable (and so may be shown).
    pub(super) local_durable: AtomicU64,
    /// The database as of the last successful group commit: what a refused write would roll
    /// back to.
    pub(super) durable: Mutex<Option<Snapshot>>,
    /// Called once more local writes became durable (wakes the replication senders).
    pub(super) on_durable: RwLock<Option<WriteListener>>,
    /// When local writes became readable: (every local write at or below this timestamp,
    /// the system clock then, epoch µs), the newest [`SHOWN_POINTS`] group commits.
    pub(super) shown: Mutex<std::collections::VecDeque<(u64, u64)>>,
    /// Tests: the next group commit reports a failure after its fsync did succeed, as when a
    /// failing disk wrote part of a group: the writers are refused, yet the batches are there.
    #[cfg(test)]
    pub(crate) fail_next_group: AtomicBool,
    /// Tests: the syncer starts no group while this is set.
    #[cfg(test)]
    pub(crate) hold_groups: AtomicBool,
}

impl SyncState {
    /// Records the first failure; the store refuses writes from then on.
    pub(super) fn fail(&self, reason: String) {
        let mut failure = self.failure.lock();
        if failure.is_none() {
            tracing::error!(%reason, "the store can no longer write; reads go on, writes are refused until it recovers");
            *failure = Some(reason);
        }
        self.failed.store(true, Ordering::Release);
    }
}

/// How many group commits' visibility times are kept for the apply log: many seconds' worth at
/// any rate the lab polls it.
pub(super) const SHOWN_POINTS: usize = 65_536;

/// The syncer thread: one fsync for every commit that happened before it began.
///
/// Two steps. First the journal's buffer goes to the OS (`Database::persist(Buffer)`: a write
/// under the journal lock, short). Then the syncer fsyncs the journal file through a
/// descriptor of its own, outside that lock: fjall's `persist(SyncAll)` would hold the lock
/// for the whole fsync and stall every commit behind it, the very writers that should form the
/// next group. fsync covers whatever was written to the file through any descriptor. A commit
/// that went to an older journal file is durable too: fjall fsyncs a journal before it rotates
/// to the next one, so the newest file is the only one that can hold unsynced batches.
///
/// A group starts as soon as the fsync before it returns, with whatever committed meanwhile:
/// an fsync is always in flight while there is anything to sync, and nothing waits for writers
/// that might still come. On two cores that beat holding each group back for the round of
/// writers the last one acknowledged (what this loop did before): that wait kept the CPU and
/// the disk idle for part of every round, because a closed-loop client answers its replies one
/// by one and the group waited for the last of them. The price is more, smaller fsyncs and a
/// longer tail where the disk limits fsyncs per second (docs/performance.md has the runs).
pub(super) fn syncer(db: &Database, dir: &Path, sync: &SyncState, interval: Option<Duration>) {
    let mut journal = ActiveJournal::default();
    loop {
        wait_for_work(sync, interval);
        if sync.stopping.load(Ordering::Acquire) {
            return;
        }
        #[cfg(test)]
        while sync.hold_groups.load(Ordering::Acquire) && !sync.stopping.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let Some(group) = Group::begin(db, sync, interval.is_none()) else { continue };
        let synced = db
            .persist(PersistMode::Buffer)
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|()| journal.sync(dir));
        #[cfg(test)]
        let synced =
            synced.and_then(|()| match sync.fail_next_group.swap(false, Ordering::AcqRel) {
                true => Err(std::io::Error::other("injected group-commit failure")),
                false => Ok(()),
            });
        if let Err(error) = synced {
            sync.fail(format!("the journal could not be written to disk: {error}"));
            wake_all(sync);
            return;
        }
        group.complete(sync);
        wake_all(sync);
    }
}

/// Waits until a writer asks for a group commit, or the period (or a second) has passed.
fn wait_for_work(sync: &SyncState, interval: Option<Duration>) {
    let mut wanted = sync.wanted.lock();
    if !sync.stopping.load(Ordering::Acquire) {
        match interval {
            // Also once a second unasked: commits nobody waits for (purges, delivery
            // positions, anti-entropy repairs) reach the disk within a second too.
            None if !*wanted => {
                sync.wake_syncer.wait_for(&mut wanted, Duration::from_secs(1));
            }
            None => {}
            Some(every) => {
                sync.wake_syncer.wait_for(&mut wanted, every);
            }
        }
    }
    *wanted = false;
}

/// One group commit: the batches committed before it began.
struct Group {
    /// How many batches will be durable once it is done.
    target: u64,
    /// The newest local timestamp among them.
    local: u64,
    /// The database holding exactly those batches (`fsync` mode only).
    snapshot: Option<Snapshot>,
}

impl Group {
    /// Reads how far the commits got, or `None` when there is nothing new to sync.
    fn begin(db: &Database, sync: &SyncState, fsync_mode: bool) -> Option<Group> {
        let _gate = sync.commit_gate.write();
        let target = sync.committed.load(Ordering::Acquire);
        let before = sync.synced.load(Ordering::Acquire);
        if before >= target {
            return None;
        }
        Some(Group {
            target,
            local: sync.local_committed.load(Ordering::Acquire),
            snapshot: fsync_mode.then(|| db.snapshot()),
        })
    }

    /// The group is on disk: acknowledge its writers and show its local writes.
    fn complete(self, sync: &SyncState) {
        sync.fsyncs.fetch_add(1, Ordering::Relaxed);
        sync.synced.store(self.target, Ordering::Release);
        let Some(snapshot) = self.snapshot else { return };
        *sync.durable.lock() = Some(snapshot);
        let before = sync.local_durable.fetch_max(self.local, Ordering::AcqRel);
        if before < self.local {
            // Read after the writes became readable: never earlier than the true moment.
            let now_us = crate::applies::system_now_us();
            let mut shown = sync.shown.lock();
            if shown.len() == SHOWN_POINTS {
                shown.pop_front();
            }
            shown.push_back((self.local, now_us));
            drop(shown);
            let listener = sync.on_durable.read().clone();
            if let Some(listener) = listener {
                listener();
            }
        }
    }
}

/// The newest journal file, kept open between fsyncs.
#[derive(Default)]
struct ActiveJournal {
    open: Option<(u64, File)>,
}

impl ActiveJournal {
    /// Syncs the newest journal file. fjall names the journal it rotates to after the one
    /// before (`N.jnl`, then `N+1.jnl`), so once the newest is known, one `stat` of its
    /// successor per group finds a rotation; the directory is read only to find the first.
    fn sync(&mut self, dir: &Path) -> std::io::Result<()> {
        let mut newest = match &self.open {
            Some((id, _)) => *id,
            None => newest_journal(dir)?,
        };
        while dir.join(format!("{}.jnl", newest + 1)).try_exists()? {
            newest += 1;
        }
        if self.open.as_ref().is_none_or(|(id, _)| *id != newest) {
            let file = File::open(dir.join(format!("{newest}.jnl")))?;
            self.open = Some((newest, file));
        }
        match &self.open {
            Some((_, file)) => file.sync_data(),
            None => Ok(()),
        }
    }
}

/// The id of the newest journal file in a data directory.
fn newest_journal(dir: &Path) -> std::io::Result<u64> {
    std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".jnl")?.parse::<u64>().ok())
        .max()
        .ok_or_else(|| std::io::Error::other(format!("no journal file in {}", dir.display())))
}

/// Wakes every writer waiting for a group commit.
pub(super) fn wake_all(sync: &SyncState) {
    let waiters = std::mem::take(&mut *sync.waiters.lock());
    for waker in waiters {
        waker.wake();
    }
}

/// Waits for a group commit's fsync; returned by [`crate::Store::flushed`].
#[must_use = "the write is not durable until this resolves"]
pub struct Flushed {
    pub(super) wait: Option<(Arc<SyncState>, u64)>,
}

impl Flushed {
    /// Already durable (the in-memory store, or a mode whose ack does not wait).
    pub(crate) fn ready() -> Self {
        Flushed { wait: None }
    }
}

impl Future for Flushed {
    type Output = Result<(), StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some((sync, target)) = &self.wait else { return Poll::Ready(Ok(())) };
        let check = || {
            if sync.synced.load(Ordering::Acquire) >= *target {
                Some(Ok(()))
            } else if sync.failed.load(Ordering::Acquire) {
                Some(Err(StoreError::storage_bare("the store could not fsync its journal")))
            } else {
                None
            }
        };
        if let Some(done) = check() {
            return Poll::Ready(done);
        }
        sync.waiters.lock().push(cx.waker().clone());
        // Checked again after registering: the syncer may have finished in between.
        match check() {
            Some(done) => Poll::Ready(done),
            None => Poll::Pending,
        }
    }
}

/// fsyncs every journal file of a data directory.
pub(super) fn sync_journals(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|x| x == "jnl") {
            File::open(&path)?.sync_data()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Past this many bytes fjall rotates its journal at the next memtable flush.
    const ROTATES_PAST: usize = 64_000_000;

    /// Writes more than a journal holds and flushes, then waits until fjall has rotated to
    /// journal `id`.
    fn fill_and_rotate(db: &Database, items: &fjall::Keyspace, dir: &Path, id: u64) {
        // Incompressible, or the journal's compression keeps it small.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ id;
        let mut noise = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        };
        for n in 0..=(ROTATES_PAST >> 20) {
            let value: Vec<u8> = (0..(1 << 17)).flat_map(|_| noise()).collect();
            items.insert(format!("{id}-{n}"), value).unwrap();
        }
        items.rotate_memtable().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while newest_journal(dir).unwrap() < id {
            assert!(Instant::now() < deadline, "fjall did not rotate to journal {id}");
            std::thread::sleep(Duration::from_millis(10));
        }
        db.persist(PersistMode::Buffer).unwrap();
    }

    /// The syncer finds a rotation by the successor's name alone, so fjall must name the journal
    /// it rotates to `N+1`: were that to change in an upgrade, the syncer would fsync a journal
    /// that no longer takes writes and acknowledge writes that only the OS holds.
    #[test]
    fn the_syncer_follows_the_journal_through_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::builder(dir.path()).open().unwrap();
        let items = db.keyspace("items", fjall::KeyspaceCreateOptions::default).unwrap();
        let mut journal = ActiveJournal::default();
        items.insert("first", "x").unwrap();
        journal.sync(dir.path()).unwrap();
        assert_eq!(journal.open.as_ref().map(|(id, _)| *id), Some(0));
        // Two rotations between one group and the next: the syncer must skip to the newest.
        fill_and_rotate(&db, &items, dir.path(), 1);
        fill_and_rotate(&db, &items, dir.path(), 2);
        journal.sync(dir.path()).unwrap();
        assert_eq!(
            journal.open.as_ref().map(|(id, _)| *id),
            Some(newest_journal(dir.path()).unwrap())
        );
        assert_eq!(journal.open.as_ref().map(|(id, _)| *id), Some(2));
    }
}
