//! How much memory the storage engine holds: a block cache and write buffers (memtables),
//! within the region's budget and, below it, in proportion to its data.
//!
//! The block cache holds only blocks that reads touched, so it never outgrows the data. A
//! memtable keeps every version written since its last flush, so it fills whatever the data
//! size: with fixed 32 + 16 MiB memtables, three minutes of PUTs to 10,000 keys (2 MB of tables
//! per region) took a process of three regions to 337 MB. So the active memtables together stay under
//! an eighth of what the region's tables hold, never under [`MIN_WRITE_BUFFER`] nor over three
//! quarters of the budget. An eighth keeps compaction cheap at any size: fjall merges level 0
//! into level 1 once four memtables have piled up, and with half the data's size in them each
//! merge writes about three bytes per byte flushed.
//!
//! The store rotates the memtables itself, after each commit, rather than give fjall sizes:
//! fjall stores a keyspace's options in the directory when it creates the keyspace and reads
//! them back from there, so a size given at open would reach new directories only, and fjall
//! 3.1's database-wide write buffer limit is not enforced. Its own per-keyspace size (64 MiB,
//! or what an older directory stored) remains as a backstop. The calls that read and rotate
//! memtables are fjall's unstable ones (hidden from its docs): Cargo.lock pins the version, and
//! the tests below fail if they stop holding the memtables down.

use std::sync::atomic::{AtomicU64, Ordering};

use fjall::{
    AbstractTree, Database, DatabaseBuilder, Keyspace, KeyspaceCreateOptions, KvSeparationOptions,
};
use parking_lot::Mutex;

/// The write buffer of a region with little data: flushing much less than this at a time would
/// only make more, smaller tables to compact.
const MIN_WRITE_BUFFER: u64 = 4 << 20;

/// Data bytes per byte of write buffer.
const DATA_PER_WRITE_BUFFER: u64 = 8;

/// Bounds what a restart replays: past this the journal is flushed into tables. fjall's
/// smallest.
const MAX_JOURNALING: u64 = 64 << 20;

/// The memory budget of one region's engine, split between the cache and the write buffers.
#[derive(Debug)]
pub(crate) struct Budget {
    cache: u64,
    write_buffer: u64,
    /// The limit of the active memtables together: [`MIN_WRITE_BUFFER`] at first, sized to the
    /// data again whenever they exceed it.
    limit: AtomicU64,
    /// Held by the one commit that checks the memtables, so that commits arriving together do
    /// not all rotate the same memtable.
    checking: Mutex<()>,
}

impl Budget {
    /// A quarter of `memory` for the cache, the rest for the write buffers; never less than
    /// [`MIN_WRITE_BUFFER`] for them.
    pub(crate) fn new(memory: u64) -> Budget {
        let cache = memory / 4;
        let write_buffer = (memory - cache).max(MIN_WRITE_BUFFER);
        Budget {
            cache,
            write_buffer,
            limit: AtomicU64::new(MIN_WRITE_BUFFER),
            checking: Mutex::new(()),
        }
    }

    /// The engine-wide settings of the database.
    pub(crate) fn configure(
        &self,
        builder: DatabaseBuilder<Database>,
    ) -> DatabaseBuilder<Database> {
        builder.max_journaling_size(MAX_JOURNALING).cache_size(self.cache)
    }

    /// The write buffer limit for `data` bytes of tables.
    fn limit_for(&self, data: u64) -> u64 {
        (data / DATA_PER_WRITE_BUFFER).clamp(MIN_WRITE_BUFFER, self.write_buffer)
    }

    /// After a commit: if the active memtables together are over the limit, flushes the largest
    /// one, unless its previous flush is still running (a second would only queue behind it
    /// and make fjall stall writes).
    pub(crate) fn after_commit(&self, keyspaces: &[&Keyspace]) {
        if active(keyspaces).0 <= self.limit.load(Ordering::Relaxed) {
            return;
        }
        let Some(_checking) = self.checking.try_lock() else { return };
        // Again, under the lock: another commit may just have flushed.
        let (total, largest) = active(keyspaces);
        // The data grew since the limit was set, by the flushes that the limit caused.
        let limit = self.limit_for(keyspaces.iter().map(|k| k.disk_space()).sum());
        self.limit.store(limit, Ordering::Relaxed);
        let Some(largest) = largest.filter(|k| total > limit && k.sealed_memtable_count() == 0)
        else {
            return;
        };
        if let Err(error) = largest.rotate_memtable() {
            // The next commit meets the same failure and reports it.
            tracing::warn!(%error, keyspace = %largest.name(), "could not flush a memtable");
        }
    }

    /// The limit the active memtables are held under now.
    #[cfg(test)]
    pub(crate) fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }
}

/// The bytes in the active memtables of `keyspaces` together, and the keyspace with the most.
fn active<'k>(keyspaces: &[&'k Keyspace]) -> (u64, Option<&'k Keyspace>) {
    let mut total = 0;
    let mut largest = None;
    for &keyspace in keyspaces {
        let size = keyspace.tree.active_memtable().size();
        total += size;
        if largest.is_none_or(|(most, _)| size > most) {
            largest = Some((size, keyspace));
        }
    }
    (total, largest.map(|(_, keyspace)| keyspace))
}

/// The options of a keyspace whose values go to blob files once large, so that compaction and
/// the recovery scan do not drag them through the tree.
pub(crate) fn separated() -> KeyspaceCreateOptions {
    KeyspaceCreateOptions::default().with_kv_separation(Some(KvSeparationOptions::default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::{Disk, Durability};
    use crate::space::Reserve;

    #[test]
    fn the_write_buffer_follows_the_data_within_the_budget() {
        let budget = Budget::new(64 << 20);
        assert_eq!(budget.cache, 16 << 20);
        assert_eq!(budget.limit_for(0), MIN_WRITE_BUFFER);
        assert_eq!(budget.limit_for(80 << 20), 10 << 20);
        assert_eq!(budget.limit_for(1 << 30), 48 << 20);
        let tiny = Budget::new(0);
        assert_eq!((tiny.cache, tiny.limit_for(1 << 30)), (0, MIN_WRITE_BUFFER));
    }

    /// Overwriting a few keys fills no memtable past a small multiple of the limit (fjall alone
    /// would hold all ~27 MB until its own 64 MiB), and what was flushed reaches the tables.
    #[test]
    fn overwriting_few_keys_keeps_the_memtables_small() {
        let dir = tempfile::tempdir().unwrap();
        let region = "wnam".parse().unwrap();
        let (disk, _) =
            Disk::open(dir.path(), region, Durability::None, Reserve::default(), 64 << 20).unwrap();
        let value = vec![7u8; 1000];
        let mut most = 0;
        for i in 0..2_500 {
            let mut batch = disk.batch();
            for j in 0..10 {
                batch.insert(&disk.items, format!("key-{:04}", (i * 10 + j) % 1000), value.clone());
            }
            disk.commit(batch).unwrap();
            most = most.max(active(&[&disk.items, &disk.outbox, &disk.namespaces, &disk.meta]).0);
        }
        let limit = disk.memory.limit();
        assert_eq!(limit, MIN_WRITE_BUFFER, "1,000 keys are little data");
        assert!(most < 4 * limit, "the memtables held {most} bytes, the limit is {limit}");
        let flushed = (0..500).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            disk.items.disk_space() > 0
        });
        assert!(flushed, "nothing reached a table");
        disk.close().unwrap();
    }
}
