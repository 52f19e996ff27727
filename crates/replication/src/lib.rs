//! Last-writer-wins replication between EdgeKV regions, with an emulated propagation delay.
//!
//! Every region accepts writes locally (the store stamps each with a version and logs it in the
//! outbox) and delivers them to every peer over gRPC once the link's emulated delay has passed.
//! Receivers keep, per key, the write with the greatest version. Because that merge is
//! commutative, associative and idempotent, regions converge whatever the order of delivery, and
//! duplicates or replays change nothing.
//!
//! # Parts
//! - `sender`: one task per peer, a thin shell around a state machine without I/O
//!   ([`sans_io::SenderMachine`]); the outbox is the delay line and the retry queue.
//! - [`Transport`]: how a region reaches its peers, the seam between the logic and the network.
//!   [`GrpcTransport`] between processes, [`MemoryTransport`] within one; [`Filtered`] applies
//!   the faults to either.
//! - [`Handler`]: what a region answers its peers (Push, Digest, Reconcile), whatever carried
//!   the question; `grpc` serves it behind the cluster secret.
//! - `anti_entropy`: one task per peer comparing digests to repair what delivery lost.
//! - [`members`]: who is in the cluster, and the fence that keeps a removed region's stale
//!   data out; `control` starts and stops a peer's tasks as regions join and leave
//!   ([`Members`]).
//! - [`faults`]: partitions, one-way links, extra delay, loss, duplication, pauses, clock
//!   offsets, enforced by both ends of a link.
//! - the hub ([`spawn_replication`]): wiring, and the watermark that tells every region which
//!   of this region's writes all regions have, so its outbox can shrink and its tombstones can
//!   be forgotten.
//!
//! # What this does not guarantee
//! No read-your-writes across regions; concurrent writes within the clock skew resolve
//! arbitrarily, but identically everywhere. A write is visible in a peer no sooner than its
//! link's delay, and later when the link is cut, slow or the peer is down.

mod anti_entropy;
mod control;
pub mod faults;
mod grpc;
mod handler;
pub mod members;
pub mod messages;
mod metrics;
mod sender;
mod transport;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use edgekv_core::{LatencyMatrix, RegionId, Timers, Timestamp};
use edgekv_store::Replica;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use anti_entropy::RoundReport;
pub use control::{Drained, MemberError, Members, PeerStatus, Removed};
pub use edgekv_core::ActiveFault;
pub use edgekv_core::{Fault, FaultError};
pub use faults::Faults;
pub use grpc::GrpcTransport;
pub use handler::Handler;
pub use members::Membership;
pub use metrics::ReplicationMetrics;
pub use transport::{Filtered, MemoryTransport, Transport};

/// The replication rules without I/O, for tools that drive them directly: the per-peer sender
/// machine and the responder's reconcile decision. The model checker (`edgekv-model`) explores
/// these very functions, so what it proves is about the code the nodes run, not a copy.
pub mod sans_io {
    pub use crate::handler::reconcile_items;
    pub use crate::sender::machine::{Batch, Outcome, SenderMachine, Settled, FIRST_BACKOFF};
}

/// Largest gRPC message either way: a batch, or one write of a maximal 25 MiB value.
pub(crate) const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Added to the largest link delay to get the digest horizon: time for a due write to be sent
/// and applied, and for clocks that disagree by up to the skew bound.
pub const HORIZON_MARGIN: Duration = Duration::from_secs(2);

/// The digest horizon for a latency matrix: anti-entropy leaves younger writes to the outbox.
pub fn digest_horizon(delays: &LatencyMatrix) -> Duration {
    delays.max() + HORIZON_MARGIN
}

/// How often both ends of a peer connection ping it, so that a quiet but live link is never cut
/// as idle by a listener whose idle timeout is longer (see [`PEER_IDLE_FLOOR`]).
pub const KEEPALIVE: Duration = Duration::from_secs(20);

/// The shortest idle timeout a gRPC listener should put on peer connections: three keepalive
/// periods, so a live peer always pings in time.
pub const PEER_IDLE_FLOOR: Duration = Duration::from_secs(60);

/// How often the hub publishes watermarks and matures digest entries.
const HUB_TICK: Duration = Duration::from_millis(100);

/// A peer region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    /// Its region name.
    pub name: RegionId,
    /// Its gRPC endpoint, e.g. `http://127.0.0.1:9788`.
    pub url: String,
}

/// Settings of a region's replication.
#[derive(Clone, Debug)]
pub struct ReplicationConfig {
    /// This region.
    pub region: RegionId,
    /// Every other region.
    pub peers: Vec<PeerConfig>,
    /// Propagation delay per link.
    pub delays: LatencyMatrix,
    /// Seed of every sampled delay and fault decision.
    pub seed: u64,
    /// Shared secret every peer presents.
    pub cluster_secret: String,
    /// Mean interval between anti-entropy rounds with each peer.
    pub anti_entropy_interval: Duration,
    /// Longest wait between delivery retries to a peer that is down.
    pub max_backoff: Duration,
    /// Timeout of one RPC.
    pub request_timeout: Duration,
    /// Most writes held for one peer before the backlog is left to anti-entropy.
    pub outbox_peer_cap: usize,
}

impl ReplicationConfig {
    /// Defaults for everything but the region, peers and secret.
    pub fn new(region: RegionId, peers: Vec<PeerConfig>, cluster_secret: String) -> Self {
        ReplicationConfig {
            region,
            peers,
            delays: LatencyMatrix::default(),
            seed: 0,
            cluster_secret,
            anti_entropy_interval: Duration::from_secs(30),
            max_backoff: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            outbox_peer_cap: 1_000_000,
        }
    }
}

/// State shared by a region's replication tasks and its handler.
pub(crate) struct Shared {
    pub(crate) region: RegionId,
    pub(crate) store: Arc<dyn Replica>,
    pub(crate) faults: Arc<Faults>,
    pub(crate) metrics: Arc<ReplicationMetrics>,
    pub(crate) delays: LatencyMatrix,
    pub(crate) seed: u64,
    /// The cluster secret, as the one accepted credential of peers.
    pub(crate) secret: Arc<edgekv_core::Tokens>,
    pub(crate) ae_interval: Duration,
    /// Every write of this region at or below this timestamp has reached every peer.
    pub(crate) replicated_through: AtomicU64,
    /// When this region's store was born, sent with every message.
    pub(crate) born: Timestamp,
    /// Who is in the cluster: only members are answered.
    pub(crate) members: parking_lot::RwLock<Membership>,
    /// The members' delivery states, one per member.
    pub(crate) peers: parking_lot::RwLock<Vec<Arc<PeerState>>>,
}

/// What the tasks of one peer share.
pub(crate) struct PeerState {
    pub(crate) name: RegionId,
    pub(crate) wake: Notify,
    pub(crate) ae_now: Notify,
    /// The sender's logic; anti-entropy confirms what it repaired through it.
    pub(crate) machine: Mutex<sender::SenderMachine>,
    pub(crate) acked_through: AtomicU64,
    /// Stops this peer's tasks: the region left (a child of the replication's shutdown).
    pub(crate) stop: CancellationToken,
}

impl PeerState {
    /// The state of delivery to `peer`, resumed where the last run of this region left it.
    fn resume(
        max_backoff: Duration,
        outbox_peer_cap: usize,
        store: &dyn Replica,
        peer: RegionId,
        stop: CancellationToken,
    ) -> PeerState {
        let position = store.delivery_position(peer.as_str());
        let machine = sender::SenderMachine::new(position, max_backoff, outbox_peer_cap);
        PeerState {
            name: peer,
            wake: Notify::new(),
            ae_now: Notify::new(),
            machine: Mutex::new(machine),
            acked_through: AtomicU64::new(position.0),
            stop,
        }
    }
}

/// Why replication could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A peer URL is not a valid endpoint.
    #[error("invalid URL {url:?} for peer {peer}")]
    PeerUrl {
        /// The peer.
        peer: RegionId,
        /// The URL given.
        url: String,
    },
    /// The cluster secret cannot be sent as a header.
    #[error("the cluster secret must be printable ASCII and not blank")]
    Secret,
    /// The membership saved in the store does not parse.
    #[error(transparent)]
    Membership(#[from] members::Damaged),
}

/// The async runtime's timers: the default [`Timers`].
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioTimers;

impl Timers for TokioTimers {
    fn sleep(
        &self,
        duration: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A running replication: its tasks.
pub struct ReplicationHandle {
    runtime: Arc<control::Runtime>,
}

impl std::fmt::Debug for ReplicationHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationHandle")
            .field("region", &self.runtime.shared.region)
            .finish_non_exhaustive()
    }
}

impl ReplicationHandle {
    /// Waits for every task after the shutdown token was cancelled.
    pub async fn stopped(self) {
        loop {
            let tasks = std::mem::take(&mut *self.runtime.tasks.lock());
            if tasks.is_empty() {
                return;
            }
            for task in tasks {
                let _ = task.await;
            }
        }
    }

    /// What this region answers its peers: serve it with [`serve_grpc`] or register it with a
    /// [`MemoryTransport`].
    pub fn handler(&self) -> Handler {
        Handler(Arc::clone(&self.runtime.shared))
    }

    /// The region's membership, to change while it runs.
    pub fn members(&self) -> Members {
        Members(Arc::clone(&self.runtime))
    }

    /// Runs one anti-entropy round with `peer` now and reports what it did (for tests and the
    /// anti-entropy benchmark).
    pub async fn anti_entropy_round(
        &self,
        peer: RegionId,
    ) -> Result<RoundReport, messages::TransportError> {
        let shared = &self.runtime.shared;
        if !shared.peers.read().iter().any(|p| p.name == peer) {
            return Err(messages::TransportError::Refused(format!("no peer {peer}")));
        }
        anti_entropy::round(shared, peer, self.runtime.transport.as_ref()).await
    }

    /// Every write of this region at or below this timestamp has reached every peer.
    pub fn replicated_through(&self) -> Timestamp {
        Timestamp(self.runtime.shared.replicated_through.load(Ordering::Relaxed))
    }
}

/// Starts replication for `store` towards its members (`config.peers`, with the changes saved
/// in the store on top), reached through `transport` (with the faults applied to it here),
/// waiting on `timers`, until `shutdown` is cancelled. Serve the returned handle's
/// [`ReplicationHandle::handler`] for the peers to reach this region.
pub fn spawn_replication(
    config: ReplicationConfig,
    store: Arc<dyn Replica>,
    faults: Arc<Faults>,
    metrics: Arc<ReplicationMetrics>,
    transport: Arc<dyn Transport>,
    timers: Arc<dyn Timers>,
    shutdown: CancellationToken,
) -> Result<ReplicationHandle, StartError> {
    let saved = store.membership_record();
    let membership = Membership::new(config.region, &config.peers, saved.as_deref())?;
    let secret = Arc::new(edgekv_core::Tokens::new([config.cluster_secret.as_str()]));
    let transport: Arc<dyn Transport> = Arc::new(Filtered::new(
        transport,
        config.region,
        Arc::clone(&faults),
        Arc::clone(&metrics),
    ));
    for peer in membership.members() {
        transport
            .connect(&peer)
            .map_err(|_| StartError::PeerUrl { peer: peer.name, url: peer.url.clone() })?;
    }
    let members = membership.members();
    if members.is_empty() {
        store.disable_outbox();
    }
    store.declare_regions(&membership.regions());
    let shared = Arc::new(Shared {
        region: config.region,
        store: Arc::clone(&store),
        faults,
        metrics,
        delays: config.delays.clone(),
        seed: config.seed,
        secret,
        ae_interval: config.anti_entropy_interval,
        replicated_through: AtomicU64::new(0),
        born: store.born(),
        members: parking_lot::RwLock::new(membership),
        peers: parking_lot::RwLock::new(Vec::new()),
    });
    let runtime = Arc::new(control::Runtime::new(
        Arc::clone(&shared),
        transport,
        Arc::clone(&timers),
        shutdown.clone(),
        &config,
    ));
    for peer in &members {
        let _ = runtime.start_peer(peer.name);
    }
    // Weak: the store holds the listener, and must not keep the replication alive.
    let wakers = Arc::downgrade(&shared);
    store.on_write(Arc::new(move || {
        if let Some(shared) = wakers.upgrade() {
            for peer in shared.peers.read().iter() {
                peer.wake.notify_one();
            }
        }
    }));
    let hub = tokio::spawn(hub(Arc::clone(&shared), timers, shutdown));
    runtime.tasks.lock().push(hub);
    Ok(ReplicationHandle { runtime })
}

/// Serves `handler` to the peers over gRPC, on the connections `incoming` yields (the gRPC
/// listener's, which the caller bounds and times out), until `shutdown`.
pub fn serve_grpc<I, IO, E>(
    handler: Handler,
    incoming: I,
    shutdown: CancellationToken,
) -> JoinHandle<()>
where
    I: futures_util::Stream<Item = Result<IO, E>> + Send + 'static,
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Send
        + Unpin
        + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let region = handler.0.region;
    let server = grpc::server(handler);
    tokio::spawn(async move {
        // Pings find a peer that is gone; a live peer's pings also keep its connection from
        // looking idle to the listener's guard.
        let served = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(KEEPALIVE))
            .http2_keepalive_timeout(Some(KEEPALIVE))
            .add_service(server)
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
            .await;
        if let Err(err) = served {
            tracing::error!(%region, error = %err, "gRPC server failed");
        }
    })
}

/// Publishes this region's replicated-through watermark, compacts the outbox below it, matures
/// digest entries and keeps the fault gauge current.
async fn hub(shared: Arc<Shared>, timers: Arc<dyn Timers>, shutdown: CancellationToken) {
    // Ticks at a fixed rate on the region's clock, not a fixed pause after each tick's work, so
    // the watermark is published every HUB_TICK and does not drift. A wait is never longer
    // than a tick, even when the clock was set back; a late tick is not made up for.
    let tick_ms = HUB_TICK.as_millis() as u64;
    let now_ms = || shared.store.hlc().physical_now_ms();
    let mut next = now_ms().saturating_add(tick_ms);
    loop {
        let wait = next.saturating_sub(now_ms()).min(tick_ms);
        tokio::select! {
            // In order, not at random: a simulation must replay the same choice.
            biased;
            _ = shutdown.cancelled() => {
                save_positions(&shared, &shared.peers.read());
                return;
            }
            _ = timers.sleep(std::time::Duration::from_millis(wait)) => {}
        }
        let now = now_ms();
        next = next.saturating_add(tick_ms);
        if next <= now {
            next = now.saturating_add(tick_ms);
        }
        let peers = shared.peers.read().clone();
        let frontier = shared.store.outbox_frontier();
        for peer in &peers {
            advance_idle(&shared, peer, frontier);
        }
        let through =
            peers.iter().map(|p| p.acked_through.load(Ordering::Relaxed)).min().unwrap_or(u64::MAX);
        save_positions(&shared, &peers);
        shared.replicated_through.store(through, Ordering::Relaxed);
        shared.store.raise_watermark(shared.region, Timestamp(through));
        shared.store.compact_outbox(Timestamp(through));
        shared.store.mature();
        shared.metrics.faults_active.clear();
        for (kind, n) in shared.faults.counts() {
            shared.metrics.faults_active.with(&[kind]).set(n as i64);
        }
    }
}

/// Moves the cursor of `peer`'s sender to `frontier` when the outbox holds nothing of this
/// region's up to there, so a region with no new writes still publishes a watermark that
/// follows its clock: a tombstone is forgotten only once every region's watermark is past it.
fn advance_idle(shared: &Shared, peer: &PeerState, frontier: Timestamp) {
    let mut machine = peer.machine.lock();
    let next = shared.store.outbox_after(machine.cursor(), 1);
    if next.first().is_none_or(|w| w.version().ts > frontier) {
        machine.advance_to(frontier);
        peer.acked_through.store(machine.acked_through().0, Ordering::Relaxed);
    }
}

/// Saves each peer's delivery position, so a restart resumes delivery where this run left it.
fn save_positions(shared: &Shared, peers: &[Arc<PeerState>]) {
    for peer in peers {
        let acked = Timestamp(peer.acked_through.load(Ordering::Relaxed));
        shared.store.save_delivery_position(peer.name.as_str(), acked);
    }
}

/// The address a gRPC listener is bound to, as a URL peers can use.
pub fn grpc_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}
