//! The transport seam: how a region's replication reaches its peers.
//!
//! Senders and anti-entropy call a [`Transport`]; a region answers its peers through a
//! [`Handler`](crate::Handler). Two transports implement the seam: gRPC between processes (the
//! wire format of `proto/`), and [`MemoryTransport`] within one process, for tests and for a
//! simulator that runs every region on one thread. Faults are applied at the seam by one
//! filter, [`Filtered`], that both share, so a partition or a lossy link behaves the same
//! whichever carries the messages.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use edgekv_core::RegionId;
use futures_util::future::BoxFuture;
use parking_lot::RwLock;

use crate::faults::Faults;
use crate::handler::Handler;
use crate::messages::{
    DigestQuery, DigestReply, Purpose, Push, PushReply, ReconcileQuery, ReconcileReply,
    TransportError,
};
use crate::metrics::ReplicationMetrics;
use crate::PeerConfig;

/// How replication reaches a peer: one call per exchange, to the region named `to`.
pub trait Transport: Send + Sync + 'static {
    /// Makes `peer` reachable at its endpoint (or moves it there): a region that joined.
    /// Transports that need no endpoint (in process) have nothing to do.
    fn connect(&self, peer: &PeerConfig) -> Result<(), TransportError> {
        let _ = peer;
        Ok(())
    }
    /// Forgets how to reach `peer`: a region that left.
    fn disconnect(&self, peer: RegionId) {
        let _ = peer;
    }
    /// Delivers writes.
    fn push(&self, to: RegionId, push: Push) -> BoxFuture<'_, Result<PushReply, TransportError>>;
    /// Compares digests.
    fn digest(
        &self,
        to: RegionId,
        query: DigestQuery,
    ) -> BoxFuture<'_, Result<DigestReply, TransportError>>;
    /// Compares the items of some leaves.
    fn reconcile(
        &self,
        to: RegionId,
        query: ReconcileQuery,
    ) -> BoxFuture<'_, Result<ReconcileReply, TransportError>>;
}

impl<T: Transport + ?Sized> Transport for Arc<T> {
    fn connect(&self, peer: &PeerConfig) -> Result<(), TransportError> {
        (**self).connect(peer)
    }

    fn disconnect(&self, peer: RegionId) {
        (**self).disconnect(peer)
    }

    fn push(&self, to: RegionId, push: Push) -> BoxFuture<'_, Result<PushReply, TransportError>> {
        (**self).push(to, push)
    }

    fn digest(
        &self,
        to: RegionId,
        query: DigestQuery,
    ) -> BoxFuture<'_, Result<DigestReply, TransportError>> {
        (**self).digest(to, query)
    }

    fn reconcile(
        &self,
        to: RegionId,
        query: ReconcileQuery,
    ) -> BoxFuture<'_, Result<ReconcileReply, TransportError>> {
        (**self).reconcile(to, query)
    }
}

/// Regions of one process, reached by calling their handlers directly.
#[derive(Default)]
pub struct MemoryTransport {
    handlers: RwLock<HashMap<RegionId, Handler>>,
}

impl std::fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let regions: Vec<RegionId> = self.handlers.read().keys().copied().collect();
        f.debug_struct("MemoryTransport").field("regions", &regions).finish()
    }
}

impl MemoryTransport {
    /// Makes `region` reachable through `handler` (replacing a previous one: a restart).
    pub fn register(&self, region: RegionId, handler: Handler) {
        self.handlers.write().insert(region, handler);
    }

    /// Makes `region` unreachable (a region that is down).
    pub fn unregister(&self, region: RegionId) {
        self.handlers.write().remove(&region);
    }

    fn handler(&self, to: RegionId) -> Result<Handler, TransportError> {
        self.handlers
            .read()
            .get(&to)
            .cloned()
            .ok_or_else(|| TransportError::Unavailable(format!("region {to} is not reachable")))
    }
}

impl Transport for MemoryTransport {
    fn push(&self, to: RegionId, push: Push) -> BoxFuture<'_, Result<PushReply, TransportError>> {
        Box::pin(async move { self.handler(to)?.push(push).await })
    }

    fn digest(
        &self,
        to: RegionId,
        query: DigestQuery,
    ) -> BoxFuture<'_, Result<DigestReply, TransportError>> {
        Box::pin(async move { self.handler(to)?.digest(query) })
    }

    fn reconcile(
        &self,
        to: RegionId,
        query: ReconcileQuery,
    ) -> BoxFuture<'_, Result<ReconcileReply, TransportError>> {
        Box::pin(async move { self.handler(to)?.reconcile(query) })
    }
}

/// A transport with the faults of its region applied to what it sends: a cut link refuses
/// every exchange, and the outbox's deliveries are lost or duplicated at the faults' rates.
/// The receiving handler applies the same cuts to what arrives, so a fault set on either end
/// of a link cuts it.
pub struct Filtered<T> {
    inner: T,
    me: RegionId,
    faults: Arc<Faults>,
    metrics: Arc<ReplicationMetrics>,
    /// Per link and purpose, how many pushes the filter has rolled for: the loss and
    /// duplication decisions are a function of (seed, link, purpose, count).
    rolls: parking_lot::Mutex<HashMap<(RegionId, Purpose), Arc<AtomicU64>>>,
}

impl<T> Filtered<T> {
    /// `inner` with the faults of region `me` applied.
    pub fn new(
        inner: T,
        me: RegionId,
        faults: Arc<Faults>,
        metrics: Arc<ReplicationMetrics>,
    ) -> Self {
        Filtered { inner, me, faults, metrics, rolls: parking_lot::Mutex::new(HashMap::new()) }
    }

    fn blocked(&self, to: RegionId) -> Result<(), TransportError> {
        if self.faults.blocked(self.me.as_str(), to.as_str()) {
            self.metrics.fault_effects.with(&[to.as_str(), "blocked"]).inc();
            return Err(TransportError::Unavailable("partitioned (injected fault)".into()));
        }
        Ok(())
    }

    fn next_roll(&self, to: RegionId, purpose: Purpose) -> u64 {
        let counter = Arc::clone(self.rolls.lock().entry((to, purpose)).or_default());
        counter.fetch_add(1, Ordering::Relaxed)
    }
}

impl<T: Transport> Transport for Filtered<T> {
    fn connect(&self, peer: &PeerConfig) -> Result<(), TransportError> {
        self.inner.connect(peer)
    }

    fn disconnect(&self, peer: RegionId) {
        self.inner.disconnect(peer)
    }

    fn push(&self, to: RegionId, push: Push) -> BoxFuture<'_, Result<PushReply, TransportError>> {
        Box::pin(async move {
            self.blocked(to)?;
            let (me, peer) = (self.me.as_str(), to.as_str());
            let mut copies = 1;
            if push.purpose == Purpose::Delivery {
                let n = self.next_roll(to, push.purpose);
                if self.faults.roll_loss(me, peer, n) {
                    self.metrics.fault_effects.with(&[peer, "lost"]).inc();
                    return Err(TransportError::Lost);
                }
                if self.faults.roll_duplicate(me, peer, n) {
                    self.metrics.fault_effects.with(&[peer, "duplicated"]).inc();
                    copies = 2;
                }
            }
            let mut reply = Err(TransportError::Unavailable("nothing sent".into()));
            for _ in 0..copies {
                self.metrics.messages_sent.with(&[peer, "push"]).inc();
                reply = self.inner.push(to, push.clone()).await;
                if reply.is_err() {
                    break;
                }
            }
            reply
        })
    }

    fn digest(
        &self,
        to: RegionId,
        query: DigestQuery,
    ) -> BoxFuture<'_, Result<DigestReply, TransportError>> {
        Box::pin(async move {
            self.blocked(to)?;
            self.metrics.messages_sent.with(&[to.as_str(), "digest"]).inc();
            self.inner.digest(to, query).await
        })
    }

    fn reconcile(
        &self,
        to: RegionId,
        query: ReconcileQuery,
    ) -> BoxFuture<'_, Result<ReconcileReply, TransportError>> {
        Box::pin(async move {
            self.blocked(to)?;
            self.metrics.messages_sent.with(&[to.as_str(), "reconcile"]).inc();
            self.inner.reconcile(to, query).await
        })
    }
}
