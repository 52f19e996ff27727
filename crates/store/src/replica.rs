//! The part of a store that replication uses, as a trait of its own.
//!
//! Replication needs far less than the API does: this region's outbox and delivery positions,
//! the LWW apply of peers' writes, the anti-entropy digest and the clock. Naming that surface
//! keeps the dependency honest (replication cannot reach for listings or namespaces by
//! accident) and lets its tests, and a simulator, stand in a store of their own.

use std::sync::Arc;
use std::time::Duration;

use edgekv_core::digest::LeafId;
use edgekv_core::{Hlc, ItemId, RegionId, ReplicatedWrite, Timestamp, Version};

use crate::{Flushed, Store, StoreError, WriteListener};

/// What replication reads from and records in a region's store. See [`Store`]'s methods of
/// the same names for what each one promises.
pub trait Replica: Send + Sync + 'static {
    /// The store's clock: stamps, expiry, and what "old enough for the digest" means.
    fn hlc(&self) -> &Arc<Hlc>;
    /// How old a version must be to enter the digest (and to be sent by anti-entropy).
    fn digest_horizon(&self) -> Duration;
    /// Registers what to call once a local write may be sent.
    fn on_write(&self, listener: WriteListener);
    /// Resolves once every write applied before the call is as durable as the mode promises.
    fn flushed(&self) -> Flushed;

    /// Up to `max` of this region's sendable writes after `after`, in timestamp order.
    fn outbox_after(&self, after: Timestamp, max: usize) -> Vec<ReplicatedWrite>;
    /// Every peer has this region's writes at or below `through`.
    fn compact_outbox(&self, through: Timestamp);
    /// For a region with no peers: keep no outbox at all.
    fn disable_outbox(&self);
    /// For a region given its first peer: log local writes for peers again.
    fn enable_outbox(&self);
    /// When this store was created.
    fn born(&self) -> Timestamp;
    /// The membership record saved last.
    fn membership_record(&self) -> Option<String>;
    /// Saves the membership record (durably, in a durable store).
    fn save_membership_record(&self, record: &str) -> Result<(), StoreError>;
    /// Where delivery to `peer` resumes.
    fn delivery_position(&self, peer: &str) -> Timestamp;
    /// Records where delivery to `peer` resumes.
    fn save_delivery_position(&self, peer: &str, through: Timestamp);
    /// Every write of `origin` at or below `through` has reached every region.
    fn raise_watermark(&self, origin: RegionId, through: Timestamp);
    /// The regions of the cluster, this one included, whose watermarks collection waits for.
    fn declare_regions(&self, regions: &[RegionId]);
    /// A timestamp through which every write this region will send is already in the outbox.
    fn outbox_frontier(&self) -> Timestamp;

    /// Applies a peer's write by LWW; whether it changed anything.
    fn apply_replicated(&self, write: ReplicatedWrite) -> Result<bool, StoreError>;
    /// An item's current state as readers see it, tombstones included.
    fn current(&self, item: &ItemId) -> Option<ReplicatedWrite>;

    /// Moves versions past the digest horizon into the digest.
    fn mature(&self);
    /// The digest's root hash.
    fn digest_root(&self) -> u64;
    /// The digest's branch hashes.
    fn digest_branches(&self) -> Vec<u64>;
    /// The leaf hashes under each of `branches`.
    fn digest_leaves(&self, branches: &[usize]) -> Vec<Vec<u64>>;
    /// The items under `leaves`, with their versions.
    fn digest_members(&self, leaves: &[LeafId]) -> Vec<(ItemId, Version)>;
}

impl Replica for Store {
    fn hlc(&self) -> &Arc<Hlc> {
        Store::hlc(self)
    }
    fn digest_horizon(&self) -> Duration {
        Store::digest_horizon(self)
    }
    fn on_write(&self, listener: WriteListener) {
        Store::on_write(self, listener)
    }
    fn flushed(&self) -> Flushed {
        Store::flushed(self)
    }
    fn outbox_after(&self, after: Timestamp, max: usize) -> Vec<ReplicatedWrite> {
        Store::outbox_after(self, after, max)
    }
    fn compact_outbox(&self, through: Timestamp) {
        Store::compact_outbox(self, through)
    }
    fn disable_outbox(&self) {
        Store::disable_outbox(self)
    }
    fn enable_outbox(&self) {
        Store::enable_outbox(self)
    }
    fn born(&self) -> Timestamp {
        Store::born(self)
    }
    fn membership_record(&self) -> Option<String> {
        Store::membership_record(self)
    }
    fn save_membership_record(&self, record: &str) -> Result<(), StoreError> {
        Store::save_membership_record(self, record)
    }
    fn delivery_position(&self, peer: &str) -> Timestamp {
        Store::delivery_position(self, peer)
    }
    fn save_delivery_position(&self, peer: &str, through: Timestamp) {
        Store::save_delivery_position(self, peer, through)
    }
    fn raise_watermark(&self, origin: RegionId, through: Timestamp) {
        Store::raise_watermark(self, origin, through)
    }
    fn declare_regions(&self, regions: &[RegionId]) {
        Store::declare_regions(self, regions)
    }
    fn outbox_frontier(&self) -> Timestamp {
        Store::outbox_frontier(self)
    }
    fn apply_replicated(&self, write: ReplicatedWrite) -> Result<bool, StoreError> {
        Store::apply_replicated(self, write)
    }
    fn current(&self, item: &ItemId) -> Option<ReplicatedWrite> {
        Store::current(self, item)
    }
    fn mature(&self) {
        Store::mature(self)
    }
    fn digest_root(&self) -> u64 {
        Store::digest_root(self)
    }
    fn digest_branches(&self) -> Vec<u64> {
        Store::digest_branches(self)
    }
    fn digest_leaves(&self, branches: &[usize]) -> Vec<Vec<u64>> {
        Store::digest_leaves(self, branches)
    }
    fn digest_members(&self, leaves: &[LeafId]) -> Vec<(ItemId, Version)> {
        Store::digest_members(self, leaves)
    }
}
