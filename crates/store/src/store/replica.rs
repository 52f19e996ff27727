//! What replication reads and records: the outbox, delivery positions, watermarks, and the
//! current state of an item for repair.

use std::sync::Arc;

use edgekv_core::{RegionId, Timestamp};

use super::*;
use edgekv_core::{ItemId, ReplicatedWrite};

impl Store {
    /// Up to `max` of this region's writes with timestamps after `after`, in timestamp order.
    /// Only writes that may be shown are sent: in `fsync` mode, those whose group commit has
    /// succeeded (a refused write must never reach a peer).
    pub fn outbox_after(&self, after: Timestamp, max: usize) -> Vec<ReplicatedWrite> {
        match &*self.disk() {
            None => self.outbox.lock().after(after, max),
            Some(disk) => {
                disk.outbox_after(after, disk.visible_through(), max).unwrap_or_else(|error| {
                    tracing::error!(%error, "cannot read the outbox");
                    Vec::new()
                })
            }
        }
    }

    /// Drops outbox entries at or below `through`: every peer has them.
    pub fn compact_outbox(&self, through: Timestamp) {
        match &*self.disk() {
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
        match &*self.disk() {
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
        let disk = self.disk();
        let mut positions = self.positions.lock();
        let known = positions.entry(peer.to_owned()).or_default();
        if *known == through {
            return;
        }
        *known = through;
        if let Some(disk) = &*disk {
            if let Err(error) = disk.save_position(peer, through) {
                tracing::warn!(%error, peer, "delivery position not stored");
            }
        }
    }

    /// When this store was created: the first reading of its clock in a new data directory (in
    /// memory, at start). A store wiped and made again is born later, which is how peers tell
    /// it from the one that left the cluster.
    pub fn born(&self) -> Timestamp {
        Timestamp(self.born.load(Ordering::Relaxed))
    }

    /// The membership record replication saved last, if any (in memory: in this run).
    pub fn membership_record(&self) -> Option<String> {
        self.membership.lock().clone()
    }

    /// Saves replication's membership record; in the durable store, on disk before this
    /// returns.
    pub fn save_membership_record(&self, record: &str) -> Result<(), StoreError> {
        let disk = self.disk();
        if let Some(disk) = self.engine(&disk)? {
            disk.save_membership(record)?;
        }
        *self.membership.lock() = Some(record.to_owned());
        Ok(())
    }

    /// Logs local writes for peers again, after [`Store::disable_outbox`]: a region that was
    /// alone has been given a peer. What it wrote alone reaches the peer by anti-entropy.
    pub fn enable_outbox(&self) {
        let _stamping = self.outbox.lock();
        self.logging.store(true, Ordering::Relaxed);
    }

    /// Records that every write of `origin` at or below `through` has reached every region,
    /// which lets tombstones from `origin` up to there be collected after their grace period.
    pub fn raise_watermark(&self, origin: RegionId, through: Timestamp) {
        self.watermarks.write().raise(origin, through);
    }

    /// The watermark `origin` published last: every write of it at or below this has reached
    /// every region it replicates with (zero if nothing was heard).
    pub fn watermark(&self, origin: RegionId) -> Timestamp {
        self.watermarks.read().get(origin)
    }

    /// Declares the regions of the cluster, this one included: a tombstone is then forgotten
    /// only once every one of them has published a watermark past it (see
    /// [`edgekv_core::Watermarks::covers`]).
    pub fn declare_regions(&self, regions: &[RegionId]) {
        self.watermarks.write().set_members(regions.iter().copied());
    }

    /// A timestamp through which every write this region will ever send is already in its
    /// outbox: later local writes are stamped above it, in this run and after a restart. An
    /// idle sender moves its cursor there, so a region with nothing new to send still
    /// publishes a rising watermark, which every tombstone's collection waits for.
    ///
    /// Taken under the outbox lock, which every stamping holds. The durable store's bound is
    /// extended here when the clock has passed it, as a local write would, so that an idle
    /// region's frontier keeps following its clock.
    pub fn outbox_frontier(&self) -> Timestamp {
        let disk = self.disk();
        let _stamping = self.outbox.lock();
        let now = self.hlc.now();
        let Some(disk) = &*disk else { return now };
        // The frontier is taken before the bound moves: a bound only counts once committed.
        let frontier = disk.local_frontier(now);
        if let Err(error) = disk.extend_clock_bound(now) {
            tracing::debug!(%error, "clock bound not extended; the frontier waits");
        }
        frontier
    }

    /// The current state of an item as a replicated write, tombstones included, or `None`. As
    /// readers see it: a local write still in its group commit is not sent to repair a peer.
    pub fn current(&self, item: &ItemId) -> Option<ReplicatedWrite> {
        let disk = self.disk();
        let ns = self.namespaces.get(&item.namespace).map(|ns| Arc::clone(&ns))?;
        let record = ns.record.read().clone();
        if record.account != item.account {
            return None;
        }
        let unreadable =
            |error: &StoreError| tracing::warn!(%error, "cannot read an item to repair");
        match &item.key {
            None => {
                let shown =
                    self.visible_record(disk.as_ref(), &ns).inspect_err(unreadable).ok()??;
                (!is_placeholder(&shown)).then_some(ReplicatedWrite::Namespace(shown))
            }
            Some(key) => {
                let keys = ns.keys.read();
                let slot = keys.get(key.as_str())?;
                let entry = match &*disk {
                    Some(disk) if self.hidden(Some(disk), slot.version) => {
                        disk.durable_entry(&record.id, key)
                    }
                    _ => self.load(&record.id, key, slot).map(Some),
                };
                let entry = entry.inspect_err(unreadable).ok()??;
                Some(ReplicatedWrite::Key {
                    account: record.account,
                    namespace: record.id,
                    key: key.clone(),
                    entry,
                })
            }
        }
    }

    /// Forgets this region's newest local write, from its outbox and its keys, as if it had
    /// never been acknowledged: what the `restart-loses-write` failpoint does to a restarted
    /// region. Only in-memory stores; says whether there was one to forget.
    #[cfg(feature = "failpoints")]
    pub fn lose_newest_local_write(&self) -> bool {
        let Some(write) = self.outbox.lock().pop_newest() else { return false };
        let ReplicatedWrite::Key { account, namespace, key, .. } = &write else { return true };
        let Some(ns) = self.namespaces.get(namespace).map(|ns| Arc::clone(&ns)) else {
            return true;
        };
        let mut keys = ns.keys.write();
        if let Some(slot) = keys.get(key.as_str()).filter(|s| s.version == write.version()) {
            if slot.digested {
                let hash = edgekv_core::digest::item_hash(
                    account.as_str(),
                    namespace.as_str(),
                    Some(key),
                    slot.version,
                );
                self.digest.lock().tree.remove(slot.leaf, hash);
            }
            keys.remove(key.as_str());
        }
        true
    }
}
