//! What a region answers its peers, whatever transport carried the question: the Push, Digest
//! and Reconcile exchanges over the region's store, with the receiving end's fault checks.

use std::collections::HashSet;

use edgekv_core::failpoint::{self, Failpoint};
use std::sync::Arc;

use edgekv_core::digest::{differing, LeafId, FANOUT};
use edgekv_core::{ItemId, ReplicatedWrite, Timestamp, Version};

use crate::messages::{
    DigestQuery, DigestReply, Push, PushReply, ReconcileQuery, ReconcileReply, TransportError,
};
use crate::Shared;

/// The largest number of leaves one Reconcile may name: bounds the work of one request.
pub(crate) const MAX_RECONCILE_LEAVES: usize = 4096;

/// What applying one replicated write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// It changed the state.
    Changed,
    /// It was already known, or older than what is stored.
    Unchanged,
    /// Its timestamp is too far ahead of this region's clock; the sender should retry later.
    Skewed,
    /// It can never apply here (a namespace of another account).
    Refused,
}

/// Answers a region's peers. Cheap to clone: it shares the region's replication state.
#[derive(Clone)]
pub struct Handler(pub(crate) Arc<Shared>);

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Handler").field(&self.0.region).finish()
    }
}

impl Handler {
    /// Applies a peer's writes by LWW. Answered only once they are durable here: the sender
    /// forgets what it has delivered once acknowledged.
    pub async fn push(&self, push: Push) -> Result<PushReply, TransportError> {
        let shared = &self.0;
        shared.check_sender(push.sender, push.born)?;
        let mut reply = PushReply::default();
        for (i, write) in push.writes.into_iter().enumerate() {
            match shared.apply_remote(write, "push") {
                Applied::Changed => reply.applied += 1,
                Applied::Skewed => reply.refused.push(i as u32),
                Applied::Unchanged | Applied::Refused => {}
            }
        }
        shared.raise_watermark(push.sender, push.replicated_through);
        shared.store.flushed().await.map_err(|err| TransportError::Unavailable(err.to_string()))?;
        Ok(reply)
    }

    /// Compares roots, and under the branches that differ answers with this region's leaves.
    pub fn digest(&self, query: DigestQuery) -> Result<DigestReply, TransportError> {
        let shared = &self.0;
        shared.check_sender(query.sender, query.born)?;
        shared.raise_watermark(query.sender, query.replicated_through);
        let store = &shared.store;
        let root = store.digest_root();
        let mut reply = DigestReply { born: shared.born, root, differing: Vec::new() };
        if root != query.root && !query.branches.is_empty() {
            let branches: Vec<usize> = differing(&store.digest_branches(), &query.branches)
                .into_iter()
                .filter(|b| *b < FANOUT)
                .collect();
            let leaves = store.digest_leaves(&branches);
            reply.differing = branches.into_iter().zip(leaves).collect();
        }
        Ok(reply)
    }

    /// The responder's half of reconciliation: the writes the asking region should take and
    /// the items it should push.
    pub fn reconcile(&self, query: ReconcileQuery) -> Result<ReconcileReply, TransportError> {
        let shared = &self.0;
        shared.check_sender(query.sender, query.born)?;
        if query.leaves.len() > MAX_RECONCILE_LEAVES {
            shared.metrics.reject("malformed");
            return Err(TransportError::Refused("too many leaves".into()));
        }
        let leaves: Vec<LeafId> = query.leaves.iter().map(|l| LeafId(*l)).collect();
        Ok(ReconcileReply { born: shared.born, ..shared.reconcile(&leaves, query.items) })
    }

    /// This region's name and its store's birth, for a region discovering its peers.
    pub fn identify(&self) -> (edgekv_core::RegionId, Timestamp) {
        (self.0.region, self.0.born)
    }
}

impl Shared {
    /// Applies a write that arrived by `path` (`push` or `anti_entropy`): checks its timestamp
    /// against the clock bound, applies it by LWW, and records metrics.
    pub(crate) fn apply_remote(&self, write: ReplicatedWrite, path: &'static str) -> Applied {
        let version = write.version();
        if let Err(err) = self.store.hlc().observe(version.ts) {
            self.metrics.reject("skew");
            tracing::debug!(origin = %version.origin, ahead_ms = err.ahead_ms, "refused a write from the future");
            return Applied::Skewed;
        }
        match self.store.apply_replicated(write) {
            Ok(true) => {
                let origin = version.origin.as_str();
                self.metrics.applied.with(&[origin, path]).inc();
                if path == "push" {
                    let now = self.store.hlc().physical_now_ms();
                    let lag_ms = now.saturating_sub(version.ts.physical_ms());
                    self.metrics.lag.with(&[origin]).observe(lag_ms as f64 / 1000.0);
                }
                Applied::Changed
            }
            Ok(false) => Applied::Unchanged,
            Err(err) => {
                self.metrics.reject("account");
                tracing::warn!(error = %err, "refused a replicated write");
                Applied::Refused
            }
        }
    }

    /// Whether a version is old enough to be in a digest, and so for anti-entropy to send.
    pub(crate) fn is_mature(&self, ts: Timestamp) -> bool {
        let horizon = self.store.digest_horizon().as_millis() as u64;
        ts.physical_ms().saturating_add(horizon) <= self.store.hlc().physical_now_ms()
    }

    /// The receiving end's half of the link faults: a message from a region this region is
    /// cut off from is refused, so a fault set on this node alone cuts both directions. Then
    /// membership: only members are answered, and a removed region only with a newer store.
    fn check_sender(
        &self,
        sender: edgekv_core::RegionId,
        born: Timestamp,
    ) -> Result<(), TransportError> {
        if self.faults.blocked(sender.as_str(), self.region.as_str()) {
            self.metrics.reject("partition");
            return Err(TransportError::Unavailable("partitioned (injected fault)".into()));
        }
        self.check_member(sender, born)
    }

    /// Whether `region`, with a store born at `born`, may be answered or listened to: a
    /// member, and not back with a store it had when it was removed. Checked on what a region
    /// asks and on what it answers, since either way its writes would be taken.
    pub(crate) fn check_member(
        &self,
        region: edgekv_core::RegionId,
        born: Timestamp,
    ) -> Result<(), TransportError> {
        if let Err(refusal) = self.members.read().admit(region, born) {
            self.metrics.reject("membership");
            tracing::debug!(%refusal, "refused a region that is not a member");
            return Err(TransportError::NotMember(refusal.to_string()));
        }
        Ok(())
    }

    fn raise_watermark(&self, sender: edgekv_core::RegionId, through: u64) {
        if through > 0 {
            self.store.raise_watermark(sender, Timestamp(through));
        }
    }

    /// Given the caller's items in `leaves`, the writes the caller should take (this region
    /// holds them newer, or the caller lacks them) and the items the caller should push (this
    /// region lacks them or holds them older). Only versions older than the digest horizon are
    /// sent, so anti-entropy never outruns the delay.
    pub(crate) fn reconcile(
        &self,
        leaves: &[LeafId],
        theirs: Vec<(ItemId, Version)>,
    ) -> ReconcileReply {
        reconcile_items(
            theirs,
            |item| self.store.current(item),
            |ts| self.is_mature(ts),
            || self.store.digest_members(leaves),
        )
    }
}

/// The responder's decision in reconciliation, without the store: given the caller's items
/// with their versions (`theirs`), this region's current write of an item (`current`, tombstones
/// included), which timestamps are old enough to send (`is_mature`) and this region's own items
/// in the leaves compared (`members`, asked for once the caller's items are done), the writes
/// the caller should take and the items it should push.
///
/// A function of its arguments so that the handler and the model checker (`edgekv-model`) run
/// one rule; a test build may break it through
/// [`Failpoint::AntiEntropySkipsItem`](edgekv_core::failpoint::Failpoint::AntiEntropySkipsItem).
pub fn reconcile_items(
    theirs: Vec<(ItemId, Version)>,
    mut current: impl FnMut(&ItemId) -> Option<ReplicatedWrite>,
    is_mature: impl Fn(Timestamp) -> bool,
    members: impl FnOnce() -> Vec<(ItemId, Version)>,
) -> ReconcileReply {
    let mut reply = ReconcileReply::default();
    let mut seen = HashSet::new();
    for (item, their_version) in theirs {
        match current(&item) {
            Some(mine) if mine.version() > their_version => {
                if is_mature(mine.version().ts) {
                    reply.newer.push(mine);
                }
            }
            Some(mine) if mine.version() == their_version => {}
            _ => reply.wanted.push((item.clone(), their_version)),
        }
        seen.insert(item);
    }
    for (item, _) in members() {
        if seen.contains(&item) {
            continue;
        }
        if let Some(mine) = current(&item).filter(|w| is_mature(w.version().ts)) {
            reply.newer.push(mine);
        }
    }
    if failpoint::active(Failpoint::AntiEntropySkipsItem) {
        skip_least_item(&mut reply);
    }
    reply
}

/// The broken rule of [`Failpoint::AntiEntropySkipsItem`]: the least differing item is left
/// out of both lists. Least by id, so that every round, in either direction, skips the same
/// item and it is never repaired.
fn skip_least_item(reply: &mut ReconcileReply) {
    let least = reply
        .newer
        .iter()
        .map(ReplicatedWrite::item)
        .chain(reply.wanted.iter().map(|(item, _)| item.clone()))
        .min();
    if let Some(least) = least {
        reply.newer.retain(|w| w.item() != least);
        reply.wanted.retain(|(item, _)| *item != least);
    }
}
