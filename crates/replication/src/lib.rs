//! Last-writer-wins replication between EdgeKV regions, with an emulated propagation delay.
//!
//! Every region accepts writes locally (the store stamps each with a version and logs it in the
//! outbox) and delivers them to every peer over gRPC once the link's emulated delay has passed.
//! Receivers keep, per key, the write with the greatest version. Because that merge is
//! commutative, associative and idempotent, regions converge whatever the order of delivery, and
//! duplicates or replays change nothing.
//!
//! # Parts
//! - `sender`: one task per peer; the outbox is the delay line and the retry queue.
//! - `service`: the gRPC service peers call (Push, Digest, Reconcile), behind the cluster secret.
//! - `anti_entropy`: one task per peer comparing digests to repair what delivery lost.
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
pub mod faults;
mod metrics;
mod sender;
mod service;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use edgekv_core::{LatencyMatrix, RegionId, Timestamp};
use edgekv_proto::pb::replication_client::ReplicationClient;
use edgekv_store::Store;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

pub use anti_entropy::RoundReport;
pub use edgekv_core::{Fault, FaultError};
pub use faults::{ActiveFault, Faults};
pub use metrics::ReplicationMetrics;

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

/// State shared by a region's replication tasks and gRPC service.
pub(crate) struct Shared {
    pub(crate) region: RegionId,
    pub(crate) store: Arc<Store>,
    pub(crate) faults: Arc<Faults>,
    pub(crate) metrics: Arc<ReplicationMetrics>,
    pub(crate) delays: LatencyMatrix,
    pub(crate) seed: u64,
    /// The cluster secret, as the one accepted credential of peers.
    pub(crate) secret: Arc<edgekv_core::Tokens>,
    pub(crate) ae_interval: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) outbox_peer_cap: usize,
    /// Every write of this region at or below this timestamp has reached every peer.
    pub(crate) replicated_through: AtomicU64,
}

/// What the tasks of one peer share.
pub(crate) struct PeerState {
    pub(crate) name: RegionId,
    pub(crate) wake: Notify,
    pub(crate) ae_now: Notify,
    pub(crate) pending: Mutex<sender::Pending>,
    pub(crate) acked_through: AtomicU64,
}

/// Adds the cluster secret to every outgoing call.
#[derive(Clone)]
pub(crate) struct AddSecret(MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for AddSecret {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A client of one peer.
pub(crate) type PeerClient = ReplicationClient<InterceptedService<Channel, AddSecret>>;

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
    /// The gRPC listener failed.
    #[error("serve gRPC")]
    Serve(#[source] tonic::transport::Error),
}

/// A running replication: its tasks and its gRPC server.
pub struct ReplicationHandle {
    shared: Arc<Shared>,
    peers: Vec<(Arc<PeerState>, PeerClient)>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ReplicationHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationHandle")
            .field("region", &self.shared.region)
            .finish_non_exhaustive()
    }
}

impl ReplicationHandle {
    /// Waits for every task after the shutdown token was cancelled.
    pub async fn stopped(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// Runs one anti-entropy round with `peer` now and reports what it did (for tests and the
    /// anti-entropy benchmark).
    pub async fn anti_entropy_round(&self, peer: RegionId) -> Result<RoundReport, tonic::Status> {
        let (_, client) = self
            .peers
            .iter()
            .find(|(p, _)| p.name == peer)
            .ok_or_else(|| tonic::Status::not_found(format!("no peer {peer}")))?;
        anti_entropy::round(&self.shared, peer.as_str(), client).await
    }

    /// Every write of this region at or below this timestamp has reached every peer.
    pub fn replicated_through(&self) -> Timestamp {
        Timestamp(self.shared.replicated_through.load(Ordering::Relaxed))
    }
}

/// Starts replication for `store`: serves peers on the connections `incoming` yields (the
/// gRPC listener's, which the caller bounds and times out) and delivers to them, until
/// `shutdown` is cancelled.
pub fn spawn_replication<I, IO, E>(
    config: ReplicationConfig,
    store: Arc<Store>,
    faults: Arc<Faults>,
    metrics: Arc<ReplicationMetrics>,
    incoming: I,
    shutdown: CancellationToken,
) -> Result<ReplicationHandle, StartError>
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
    if config.cluster_secret.trim().is_empty() {
        return Err(StartError::Secret);
    }
    let header = MetadataValue::try_from(format!("Bearer {}", config.cluster_secret.trim()))
        .map_err(|_| StartError::Secret)?;
    let shared = Arc::new(Shared {
        region: config.region,
        store: Arc::clone(&store),
        faults,
        metrics,
        delays: config.delays.clone(),
        seed: config.seed,
        secret: Arc::new(edgekv_core::Tokens::new([config.cluster_secret.as_str()])),
        ae_interval: config.anti_entropy_interval,
        max_backoff: config.max_backoff,
        outbox_peer_cap: config.outbox_peer_cap,
        replicated_through: AtomicU64::new(0),
    });

    let mut peers = Vec::new();
    for peer in &config.peers {
        let endpoint = Endpoint::from_shared(peer.url.clone())
            .map_err(|_| StartError::PeerUrl { peer: peer.name, url: peer.url.clone() })?
            .connect_timeout(Duration::from_secs(2))
            .timeout(config.request_timeout)
            // Small responses must not wait for Nagle's algorithm to meet the peer's delayed
            // ACK: that adds tens of milliseconds to the tail of every delivery.
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE)
            .keep_alive_while_idle(true)
            .keep_alive_timeout(KEEPALIVE);
        let client =
            ReplicationClient::with_interceptor(endpoint.connect_lazy(), AddSecret(header.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let state = Arc::new(PeerState {
            name: peer.name,
            wake: Notify::new(),
            ae_now: Notify::new(),
            pending: Mutex::new(sender::Pending::default()),
            // A restarted region resumes each peer where the last run left it.
            acked_through: AtomicU64::new(store.delivery_position(peer.name.as_str()).0),
        });
        peers.push((state, client));
    }

    if peers.is_empty() {
        store.disable_outbox();
    }
    let wakers: Vec<Arc<PeerState>> = peers.iter().map(|(p, _)| Arc::clone(p)).collect();
    store.on_write(Arc::new(move || {
        for peer in &wakers {
            peer.wake.notify_one();
        }
    }));

    let mut tasks = Vec::new();
    for (state, client) in &peers {
        let sender = sender::Sender::new(Arc::clone(&shared), Arc::clone(state), client.clone());
        tasks.push(tokio::spawn(sender.run(shutdown.clone())));
        tasks.push(tokio::spawn(anti_entropy::run(
            Arc::clone(&shared),
            Arc::clone(state),
            client.clone(),
            shutdown.clone(),
        )));
    }
    let states: Vec<Arc<PeerState>> = peers.iter().map(|(p, _)| Arc::clone(p)).collect();
    tasks.push(tokio::spawn(hub(Arc::clone(&shared), states, shutdown.clone())));

    let server = service::server(Arc::clone(&shared));
    let region = config.region;
    tasks.push(tokio::spawn(async move {
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
    }));
    Ok(ReplicationHandle { shared, peers, tasks })
}

/// Publishes this region's replicated-through watermark, compacts the outbox below it, matures
/// digest entries and keeps the fault gauge current.
async fn hub(shared: Arc<Shared>, peers: Vec<Arc<PeerState>>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(HUB_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                save_positions(&shared, &peers);
                return;
            }
            _ = tick.tick() => {}
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
