//! A region's parts wired together, serving nothing yet: its store, its routers (the REST API
//! with the admin routes, and the Workers binding), its replication over whatever transport it
//! is given, and its purge task.
//!
//! [`crate::start`] serves these on TCP listeners with the gRPC transport. A simulator serves
//! the same routers in process, with an in-memory transport and virtual time: so everything
//! from the router down is the code that runs in production.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use edgekv_api::{app, ApiMetrics, AppState, Auth};
use edgekv_core::{Hlc, OffsetClock};
use edgekv_metrics::Registry;
use edgekv_replication::{
    digest_horizon, spawn_replication, Faults, ReplicationHandle, ReplicationMetrics, Transport,
};
use edgekv_store::{Store, StoreConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{admin, RegionConfig, Storage};

/// How often expired entries and old tombstones are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(1);

/// Most purges done in one batch before the task yields to request handling.
const PURGE_BATCH: usize = 10_000;

/// A region's parts, wired and running, with nothing listening.
pub struct Parts {
    /// The REST API with `/metrics`, and the admin routes unless they have a listener of their
    /// own.
    pub api: edgekv_api::App,
    /// The admin routes when `config.admin_listen` gives them a listener of their own.
    pub admin: Option<Router>,
    /// The Workers binding protocol.
    pub binding: edgekv_api::App,
    /// Its replication; serve its handler for the peers to reach it.
    pub replication: ReplicationHandle,
    /// Its metrics.
    pub registry: Arc<Registry>,
    /// Its replication series.
    pub replication_metrics: Arc<ReplicationMetrics>,
    /// The purge task.
    pub purger: JoinHandle<()>,
}

/// Wires a region around `store`: its routers, its replication reaching its peers through
/// `transport`, its purge task, all stopped by `shutdown`. The store outlives the parts, so a
/// region can be stopped and assembled again over the same store, as a process restarts over
/// its data directory.
pub fn assemble(
    config: &RegionConfig,
    store: Arc<Store>,
    faults: Arc<Faults>,
    transport: Arc<dyn Transport>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Parts> {
    let registry = Arc::new(Registry::default());
    let replication_metrics = Arc::new(ReplicationMetrics::register(&registry));
    let state = Arc::new(AppState {
        store: Arc::clone(&store),
        auth: Auth::new(config.api_tokens.iter().cloned()),
        metrics: ApiMetrics::register(&registry),
        budget: edgekv_api::BodyBudget::new(config.body_memory),
        edge: edgekv_api::Edge::new(config.edge, &registry),
    });
    let replication = spawn_replication(
        config.replication.clone(),
        Arc::clone(&store) as Arc<dyn edgekv_store::Replica>,
        Arc::clone(&faults),
        Arc::clone(&replication_metrics),
        transport,
        Arc::clone(&config.timers),
        shutdown.clone(),
    )
    .with_context(|| format!("start replication of region {}", config.region))?;
    let admin = admin_state(config, &store, &faults, &registry, replication.members());
    let api = app(Arc::clone(&state)).merge(admin::metrics_router(Arc::clone(&admin)));
    let admin_routes = config.admin_listen.map(|_| admin::router(Arc::clone(&admin)));
    let span = tracing::Span::current();
    let purger = tokio::spawn(purge_loop(store, shutdown.clone()).instrument(span));
    Ok(Parts {
        api: match config.admin_listen {
            None => api.merge(admin::router(admin)),
            Some(_) => api,
        },
        admin: admin_routes,
        binding: edgekv_api::binding::app(state),
        replication,
        registry,
        replication_metrics,
        purger,
    })
}

/// The region's store on its clock. The clock has two offset layers over the configured
/// physical clock: the configured offset below, the clock_offset fault (which resets its own
/// layer when cleared) on top.
pub fn open_store(config: &RegionConfig, faults: &Faults) -> anyhow::Result<Arc<Store>> {
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
        engine_memory: config.storage_memory,
    };
    let store = Arc::new(open_engine(config, store_config, hlc)?);
    if config.apply_log > 0 {
        store.enable_apply_log(config.apply_log, Arc::clone(&config.clock));
    }
    Ok(store)
}

/// What the admin routes need.
fn admin_state(
    config: &RegionConfig,
    store: &Arc<Store>,
    faults: &Arc<Faults>,
    registry: &Arc<Registry>,
    members: edgekv_replication::Members,
) -> Arc<admin::AdminState> {
    Arc::new(admin::AdminState {
        tokens: edgekv_core::Tokens::new(&config.admin_tokens),
        faults: Arc::clone(faults),
        store: Arc::clone(store),
        store_metrics: admin::StoreMetrics::register(registry, store),
        registry: Arc::clone(registry),
        members,
        // Names the apply log the lab's pollers follow. A restarted process has a new log,
        // numbered from 1 again, so a new name, and the pollers start over; a region restarted
        // over the same store (under simulation) keeps its log and its name. Read from the
        // region's clock, so that under simulation it is virtual too.
        boot: store.apply_log_started_us().unwrap_or_else(|| config.clock.now_us()).to_string(),
        seed: config.replication.seed,
        delays: config.replication.delays.clone(),
        clock_offset_ms: config.clock_offset_ms,
    })
}

/// Opens the region's storage engine: recovers the durable one from its data directory.
fn open_engine(
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

/// Purges expired entries and old tombstones until shutdown, and reopens the store after a
/// storage failure once its disk has room again. A store that cannot be reopened stops the
/// process (every region of it): exiting non-zero lets a supervisor restart it.
async fn purge_loop(store: Arc<Store>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(PURGE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // In order, not at random: a simulation must replay the same choice.
            biased;
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Only a durable store can fail and reopen; an in-memory one (and a simulation) never
        // needs the blocking thread.
        if store.durability().is_some() {
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
