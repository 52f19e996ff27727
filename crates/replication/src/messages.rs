//! What regions say to each other, independent of how it travels: the three exchanges of
//! replication (Push, Digest, Reconcile) as domain values, and what can go wrong on the way.
//!
//! The gRPC transport turns them into protobuf on the wire (`edgekv-proto`); the in-memory
//! transport hands them over as they are. Everything above a transport (the senders,
//! anti-entropy, the handler that answers peers) speaks only these.

use edgekv_core::{ItemId, RegionId, ReplicatedWrite, Timestamp, Version};

/// Writes delivered to a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Push {
    /// The sending region.
    pub sender: RegionId,
    /// When the sending region's store was born: a region removed from the cluster is
    /// answered again only with a newer store (see `members`).
    pub born: Timestamp,
    /// The writes, each applied by LWW.
    pub writes: Vec<ReplicatedWrite>,
    /// Every write of the sender at or below this timestamp has reached every region.
    pub replicated_through: u64,
    /// Why it is sent: the fault filter rolls loss and duplication for the outbox's
    /// deliveries only, each purpose on a counter of its own, so the rolls do not depend on
    /// how the sender's and anti-entropy's tasks interleave.
    pub purpose: Purpose,
}

/// Why a Push is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// The outbox delivering writes as they fall due.
    Delivery,
    /// Anti-entropy pushing what a peer lacks.
    Repair,
}

/// A peer's answer to a Push.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushReply {
    /// How many writes changed the peer's state.
    pub applied: u32,
    /// Indexes of writes the peer could not take yet (their timestamps lead its clock by more
    /// than it accepts); the sender retries them later.
    pub refused: Vec<u32>,
}

/// One step of comparing digests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestQuery {
    /// The asking region.
    pub sender: RegionId,
    /// As in [`Push::born`].
    pub born: Timestamp,
    /// Its digest root.
    pub root: u64,
    /// Its branch hashes, or empty to compare roots only.
    pub branches: Vec<u64>,
    /// As in [`Push::replicated_through`].
    pub replicated_through: u64,
}

/// The answer to a [`DigestQuery`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DigestReply {
    /// When the answering region's store was born: the asking region takes nothing from a
    /// store it has fenced (see `members`).
    pub born: Timestamp,
    /// The peer's root.
    pub root: u64,
    /// For each branch that differs, the peer's leaf hashes under it.
    pub differing: Vec<(usize, Vec<u64>)>,
}

/// The items of some leaves, to find which side is newer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconcileQuery {
    /// The asking region.
    pub sender: RegionId,
    /// As in [`Push::born`].
    pub born: Timestamp,
    /// The leaves compared.
    pub leaves: Vec<u16>,
    /// The asking region's items in those leaves, with their versions.
    pub items: Vec<(ItemId, Version)>,
}

/// The answer to a [`ReconcileQuery`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReply {
    /// As in [`DigestReply::born`].
    pub born: Timestamp,
    /// Writes the asking region should take: the peer holds them newer, or alone.
    pub newer: Vec<ReplicatedWrite>,
    /// Items the asking region should push: the peer lacks them or holds them older.
    pub wanted: Vec<(ItemId, Version)>,
}

/// Why an exchange did not happen, or was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The peer could not be reached, is partitioned away, or cannot take writes now; worth
    /// retrying later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The message was lost on the way (an injected fault): it may or may not have arrived,
    /// and no answer came.
    #[error("lost (injected fault)")]
    Lost,
    /// The peer refused the message itself (malformed, wrong secret); retrying it unchanged
    /// will not help.
    #[error("refused: {0}")]
    Refused(String),
    /// The peer does not count the sender as a member of the cluster (not added yet, removed,
    /// or back with the store it had when it was removed).
    #[error("not a member: {0}")]
    NotMember(String),
}
