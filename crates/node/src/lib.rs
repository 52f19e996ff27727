//! A regional node as a library: bind and start a region (store, HTTP API, admin API,
//! replication, purging), or a cluster of them in one process. The `edgekv` binary
//! (`edgekv-cli`) and the test kit start regions through here.
//!
//! A region is a store, its HTTP API (with the admin routes and `/metrics`), its Workers
//! binding, its replication (gRPC service, per-peer senders, anti-entropy) and its purge task,
//! all stopped by one [`CancellationToken`]. Starting is two steps, [`bind`] then [`start`], so
//! that a cluster in one process can bind every region's listeners (port 0 included) before any
//! region needs to know its peers' addresses. [`region`] wires the parts without listeners, for
//! [`start`] and for a simulator that serves them in process.

mod admin;
pub mod config;
pub mod discover;
mod members;
pub mod region;
pub mod serve;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use edgekv_metrics::Registry;
use edgekv_replication::{
    serve_grpc, Faults, GrpcTransport, PeerConfig, ReplicationHandle, ReplicationMetrics,
};
use edgekv_store::Store;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use config::{RegionConfig, Storage};

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
    /// The admin API's own address, when it has one.
    pub admin_addr: Option<SocketAddr>,
    http: TcpListener,
    grpc: TcpListener,
    binding: TcpListener,
    admin: Option<TcpListener>,
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
    let admin =
        match config.admin_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| {
                format!("bind the admin listener of region {region} on {addr}")
            })?),
            None => None,
        };
    let http_addr = http.local_addr().context("read the bound HTTP address")?;
    let grpc_addr = grpc.local_addr().context("read the bound gRPC address")?;
    let binding_addr = binding.local_addr().context("read the bound binding address")?;
    let admin_addr = admin
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()
        .context("read the admin address")?;
    Ok(BoundRegion {
        config,
        http_addr,
        grpc_addr,
        binding_addr,
        admin_addr,
        http,
        grpc,
        binding,
        admin,
    })
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
    /// The admin API's own address, when it has one (else it is on `http_addr`).
    pub admin_addr: Option<SocketAddr>,
    /// The region's store.
    pub store: Arc<Store>,
    /// Its replication.
    pub replication: ReplicationHandle,
    /// Its metrics.
    pub registry: Arc<Registry>,
    /// Its replication series, for tests and benchmarks that read them directly.
    pub replication_metrics: Arc<ReplicationMetrics>,
    /// Cancelling it stops this region alone (it is a child of the cluster's token under
    /// [`start_cluster`]).
    pub shutdown: CancellationToken,
    server: JoinHandle<()>,
    binding_server: JoinHandle<()>,
    admin_server: Option<JoinHandle<()>>,
    grpc_server: JoinHandle<()>,
    purger: JoinHandle<()>,
    discovery: Option<JoinHandle<()>>,
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
        if let Some(admin) = self.admin_server {
            admin.await.context("admin server task panicked")?;
        }
        self.purger.await.context("purge task panicked")?;
        if let Some(discovery) = self.discovery {
            discovery.await.context("discovery task panicked")?;
        }
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
    let BoundRegion {
        config,
        http_addr,
        grpc_addr,
        binding_addr,
        admin_addr,
        http,
        grpc,
        binding,
        admin,
    } = bound;
    let span = tracing::info_span!("region", region = %config.region);
    let store = region::open_store(&config, &faults)?;
    // Peers are connected as replication starts, saved membership included.
    let transport = GrpcTransport::new(
        config.region,
        &[],
        &config.replication.cluster_secret,
        config.replication.request_timeout,
    )
    .with_context(|| format!("start replication of region {}", config.region))?;
    let transport = Arc::new(transport);
    let parts = span.in_scope(|| {
        let grpc = Arc::clone(&transport) as Arc<dyn edgekv_replication::Transport>;
        region::assemble(&config, Arc::clone(&store), faults, grpc, &shutdown)
    })?;
    let discovery = (!config.discovery.names.is_empty()).then(|| {
        let run = discover::run(
            config.region,
            config.discovery.clone(),
            Arc::new(discover::SystemResolver),
            transport,
            parts.replication.members(),
            shutdown.clone(),
        );
        tokio::spawn(run.instrument(span.clone()))
    });
    let serve_metrics = serve::ServeMetrics::register(&parts.registry);
    // Peers ping every 20 s; an idle timeout shorter than three pings would cut quiet links.
    let mut grpc_limits = config.limits;
    grpc_limits.timeouts.idle = grpc_limits.timeouts.idle.max(edgekv_replication::PEER_IDLE_FLOOR);
    let incoming = serve::grpc_incoming(
        config.region,
        grpc,
        grpc_limits,
        serve_metrics.clone(),
        shutdown.clone(),
    );
    let grpc_server =
        span.in_scope(|| serve_grpc(parts.replication.handler(), incoming, shutdown.clone()));
    span.in_scope(|| {
        tracing::info!(
            %http_addr,
            %grpc_addr,
            %binding_addr,
            admin_addr = ?admin_addr,
            peers = config.replication.peers.len(),
            delay = %config.replication.delays.default_model(),
            seed = config.replication.seed,
            "serving"
        )
    });
    let serve = |name, listener, router| {
        let served = serve::serve_http(
            name,
            config.region,
            listener,
            router,
            config.limits,
            serve_metrics.clone(),
            shutdown.clone(),
        );
        tokio::spawn(served.instrument(span.clone()))
    };
    let binding_server = serve("binding", binding, parts.binding);
    let admin_server = match (admin, parts.admin) {
        (Some(listener), Some(router)) => Some(serve("admin", listener, router.into())),
        _ => None,
    };
    let server = serve("http", http, parts.api);
    Ok(RunningRegion {
        config,
        http_addr,
        grpc_addr,
        binding_addr,
        admin_addr,
        store,
        replication: parts.replication,
        registry: parts.registry,
        replication_metrics: parts.replication_metrics,
        shutdown,
        server,
        binding_server,
        admin_server,
        grpc_server,
        purger: parts.purger,
        discovery,
    })
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
        match start(region, Arc::clone(&faults), shutdown.child_token()) {
            Ok(r) => running.push(r),
            Err(err) => {
                shutdown.cancel();
                return Err(err);
            }
        }
    }
    Ok(running)
}
