//! A regional node as a library: bind and start a region (store, HTTP API, admin API,
//! replication, purging), or a cluster of them in one process. The `edgekv` binary
//! (`edgekv-cli`) and the test kit start regions through here.
//!
//! A region is a store, its HTTP API (with the admin routes and `/metrics`), its replication
//! (gRPC service, per-peer senders, anti-entropy) and its purge task, all stopped by one
//! [`CancellationToken`]. Starting is two steps, [`bind`] then [`start`], so that a cluster in one
//! process can bind every region's listeners (port 0 included) before any region needs to know
//! its peers' addresses.

mod admin;
pub mod config;
pub mod serve;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use edgekv_api::{app, ApiMetrics, AppState, Auth};
use edgekv_core::{Hlc, OffsetClock};
use edgekv_metrics::Registry;
use edgekv_replication::{
    digest_horizon, serve_grpc, spawn_replication, Faults, GrpcTransport, PeerConfig,
    ReplicationHandle, ReplicationMetrics,
};
use edgekv_store::{Store, StoreConfig};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use config::{RegionConfig, Storage};

/// How often expired entries and old tombstones are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(1);

/// Most purges done in one batch before the task yields to request handling.
const PURGE_BATCH: usize = 10_000;

/// A region whose listeners are bound but which serves nothing yet.
#[derive(Debug)]
pub struct BoundRegion {
    /// Its configuration.
    pub config: RegionConfig,
    /// The HTTP address actually bound.
    pub http_addr: SocketAddr,
    /// The gRPC address actually bound.
    pub grpc_addr: SocketAddr,
    /// The Workers binding protocol's address actually bound.
    pub binding_addr: SocketAddr,
    http: TcpListener,
    grpc: TcpListener,
    binding: TcpListener,
}

/// Binds a region's HTTP and gRPC listeners.
pub async fn bind(config: RegionConfig) -> anyhow::Result<BoundRegion> {
    let region = config.region;
    let http = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("bind HTTP listener of region {region} on {}", config.listen))?;
    let grpc = TcpListener::bind(config.grpc_listen).await.with_context(|| {
        format!("bind gRPC listener of region {region} on {}", config.grpc_listen)
    })?;
    let binding = TcpListener::bind(config.binding_listen).await.with_context(|| {
        format!("bind the binding listener of region {region} on {}", config.binding_listen)
    })?;
    let http_addr = http.local_addr().context("read the bound HTTP address")?;
    let grpc_addr = grpc.local_addr().context("read the bound gRPC address")?;
    let binding_addr = binding.local_addr().context("read the bound binding address")?;
    Ok(BoundRegion { config, http_addr, grpc_addr, binding_addr, http, grpc, binding })
}

/// A region that is serving.
pub struct RunningRegion {
    /// The region's configuration.
    pub config: RegionConfig,
    /// The address its HTTP API listens on.
    pub http_addr: SocketAddr,
    /// The address its gRPC replication service listens on.
    pub grpc_addr: SocketAddr,
    /// The address its Workers binding protocol listens on.
    pub binding_addr: SocketAddr,
    /// The region's store.
    pub store: Arc<Store>,
    /// Its replication.
    pub replication: ReplicationHandle,
    /// Its metrics.
    pub registry: Arc<Registry>,
    /// Its replication series, for tests and benchmarks that read them directly.
    pub replication_metrics: Arc<ReplicationMetrics>,
    server: JoinHandle<()>,
    binding_server: JoinHandle<()>,
    grpc_server: JoinHandle<()>,
    purger: JoinHandle<()>,
}

impl std::fmt::Debug for RunningRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningRegion").field("region", &self.config.region).finish_non_exhaustive()
    }
}

impl RunningRegion {
    /// Waits until the region has stopped after its shutdown token was cancelled: the listeners
    /// are closed and requests in flight have finished.
    pub async fn stopped(self) -> anyhow::Result<()> {
        let region = self.config.region;
        self.server.await.context("HTTP server task panicked")?;
        self.binding_server.await.context("binding server task panicked")?;
        self.purger.await.context("purge task panicked")?;
        self.replication.stopped().await;
        self.grpc_server.await.context("gRPC server task panicked")?;
        if let Some(reason) = self.store.closed() {
            anyhow::bail!("the store of region {region} is closed: {reason}");
        }
        // Last: replication saved its delivery positions on its way out.
        self.store.close().with_context(|| format!("flush the store of region {region}"))?;
        Ok(())
    }
}

/// Starts serving a bound region until `shutdown` is cancelled. `faults` may be shared with
/// other regions of the same process (as `edgekv cluster` does).
pub fn start(
    bound: BoundRegion,
    faults: Arc<Faults>,
    shutdown: CancellationToken,
) -> anyhow::Result<RunningRegion> {
    let BoundRegion { config, http_addr, grpc_addr, binding_addr, http, grpc, binding } = bound;
    let span = tracing::info_span!("region", region = %config.region);
    let store = region_store(&config, &faults)?;
    let registry = Arc::new(Registry::default());
    let replication_metrics = Arc::new(ReplicationMetrics::register(&registry));
    let serve_metrics = serve::ServeMetrics::register(&registry);
    let state = Arc::new(AppState {
        store: Arc::clone(&store),
        auth: Auth::new(config.api_tokens.iter().cloned()),
        metrics: ApiMetrics::register(&registry),
        budget: edgekv_api::BodyBudget::new(config.body_memory),
        edge: edgekv_api::Edge::new(config.edge, &registry),
    });
    let admin = admin_state(&config, &store, &faults, &registry);
    let (replication, grpc_server) = span.in_scope(|| {
        let metrics = (Arc::clone(&replication_metrics), serve_metrics.clone());
        start_replication(&config, &store, faults, metrics, grpc, &shutdown)
    })?;
    span.in_scope(|| {
        tracing::info!(
            %http_addr,
            %grpc_addr,
            %binding_addr,
            peers = config.replication.peers.len(),
            delay = %config.replication.delays.default_model(),
            seed = config.replication.seed,
            "serving"
        )
    });
    let router = app(Arc::clone(&state)).merge(admin::router(admin));
    let binding_server = tokio::spawn(
        serve::serve_http(
            "binding",
            config.region,
            binding,
            edgekv_api::binding::app(state),
            config.limits,
            serve_metrics.clone(),
            shutdown.clone(),
        )
        .instrument(span.clone()),
    );
    let server = tokio::spawn(
        serve::serve_http(
            "http",
            config.region,
            http,
            router,
            config.limits,
            serve_metrics,
            shutdown.clone(),
        )
        .instrument(span.clone()),
    );
    let purger = tokio::spawn(purge_loop(Arc::clone(&store), shutdown).instrument(span));
    Ok(RunningRegion {
        config,
        http_addr,
        grpc_addr,
        binding_addr,
        store,
        replication,
        registry,
        replication_metrics,
        server,
        binding_server,
        grpc_server,
        purger,
    })
}

/// The region's store on its clock. The clock has two offset layers over the configured
/// physical clock: the configured offset below, the clock_offset fault (which resets its own
/// layer when cleared) on top.
fn region_store(config: &RegionConfig, faults: &Faults) -> anyhow::Result<Arc<Store>> {
    let skewed = OffsetClock::new(Arc::clone(&config.clock));
    skewed.set_offset_ms(config.clock_offset_ms);
    let clock = Arc::new(OffsetClock::new(Arc::new(skewed)));
    faults.register_clock(config.region, Arc::clone(&clock));
    let hlc = Arc::new(Hlc::new(clock, config.max_clock_skew));
    let store_config = StoreConfig {
        region: config.region,
        tombstone_grace: config.tombstone_grace,
        digest_horizon: digest_horizon(&config.replication.delays),
        reserve: config.storage_reserve,
    };
    let store = Arc::new(open_store(config, store_config, hlc)?);
    if config.apply_log > 0 {
        store.enable_apply_log(config.apply_log);
    }
    Ok(store)
}

/// What the admin routes need.
fn admin_state(
    config: &RegionConfig,
    store: &Arc<Store>,
    faults: &Arc<Faults>,
    registry: &Arc<Registry>,
) -> Arc<admin::AdminState> {
    Arc::new(admin::AdminState {
        tokens: edgekv_core::Tokens::new(&config.admin_tokens),
        faults: Arc::clone(faults),
        store: Arc::clone(store),
        store_metrics: admin::StoreMetrics::register(registry, store),
        registry: Arc::clone(registry),
        peers: config.replication.peers.iter().map(|p| p.name.to_string()).collect(),
        // Tells a restarted node from the one before it (the lab's pollers start over).
        boot: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            .to_string(),
    })
}

/// Starts the region's replication over gRPC and serves its peers on `grpc`.
fn start_replication(
    config: &RegionConfig,
    store: &Arc<Store>,
    faults: Arc<Faults>,
    (metrics, serve_metrics): (Arc<ReplicationMetrics>, serve::ServeMetrics),
    grpc: TcpListener,
    shutdown: &CancellationToken,
) -> anyhow::Result<(ReplicationHandle, JoinHandle<()>)> {
    // Peers ping every 20 s; an idle timeout shorter than three pings would cut quiet links.
    let mut grpc_limits = config.limits;
    grpc_limits.timeouts.idle = grpc_limits.timeouts.idle.max(edgekv_replication::PEER_IDLE_FLOOR);
    let incoming =
        serve::grpc_incoming(config.region, grpc, grpc_limits, serve_metrics, shutdown.clone());
    let transport = GrpcTransport::new(
        config.region,
        &config.replication.peers,
        &config.replication.cluster_secret,
        config.replication.request_timeout,
    )
    .with_context(|| format!("start replication of region {}", config.region))?;
    let replication = spawn_replication(
        config.replication.clone(),
        Arc::clone(store) as Arc<dyn edgekv_store::Replica>,
        faults,
        metrics,
        Arc::new(transport),
        Arc::clone(&config.timers),
        shutdown.clone(),
    );
    let grpc_server = serve_grpc(replication.handler(), incoming, shutdown.clone());
    Ok((replication, grpc_server))
}

/// Opens the region's store: recovers the durable one from its data directory.
fn open_store(
    config: &RegionConfig,
    store_config: StoreConfig,
    hlc: Arc<Hlc>,
) -> anyhow::Result<Store> {
    let (dir, durability) = match &config.storage {
        Storage::InMemory => return Ok(Store::new(store_config, hlc)),
        Storage::Disk { dir, durability } => (dir, *durability),
    };
    let started = std::time::Instant::now();
    let (store, recovered) = Store::open(store_config, hlc, dir, durability)
        .with_context(|| format!("open the store of region {}", config.region))?;
    tracing::info!(
        region = %config.region,
        dir = %dir.display(),
        %durability,
        namespaces = recovered.namespaces,
        keys = recovered.keys,
        clock_floor = recovered.clock_floor.0,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "store opened"
    );
    Ok(store)
}

/// Binds and starts several regions that replicate with each other, on loopback or wherever
/// their configs say. Each config's peer list is replaced by the other regions' bound gRPC
/// addresses.
pub async fn start_cluster(
    configs: Vec<RegionConfig>,
    faults: Arc<Faults>,
    shutdown: CancellationToken,
) -> anyhow::Result<Vec<RunningRegion>> {
    let mut bound = Vec::new();
    for config in configs {
        bound.push(bind(config).await?);
    }
    let addresses: Vec<PeerConfig> = bound
        .iter()
        .map(|b| PeerConfig {
            name: b.config.region,
            url: edgekv_replication::grpc_url(b.grpc_addr),
        })
        .collect();
    let mut running = Vec::new();
    for mut region in bound {
        region.config.replication.peers =
            addresses.iter().filter(|p| p.name != region.config.region).cloned().collect();
        match start(region, Arc::clone(&faults), shutdown.clone()) {
            Ok(r) => running.push(r),
            Err(err) => {
                shutdown.cancel();
                return Err(err);
            }
        }
    }
    Ok(running)
}

/// Purges expired entries and old tombstones until shutdown, and reopens the store after a
/// storage failure once its disk has room again. A store that cannot be reopened stops the
/// process (every region of it): exiting non-zero lets a supervisor restart it.
async fn purge_loop(store: Arc<Store>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(PURGE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let reopen = Arc::clone(&store);
        match tokio::task::spawn_blocking(move || reopen.recover_storage()).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::error!(%error, "stopping: the store cannot be reopened");
                shutdown.cancel();
                return;
            }
            Err(error) => tracing::error!(%error, "the storage recovery task panicked"),
        }
        loop {
            let stats = store.purge(PURGE_BATCH);
            if stats.expired + stats.collected > 0 {
                tracing::debug!(expired = stats.expired, collected = stats.collected, "purged");
            }
            if stats.expired + stats.collected < PURGE_BATCH {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
}
