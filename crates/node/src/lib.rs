//! The `edgekv` binary's building blocks: configuration, and starting a regional node.
//!
//! A region is a store, its HTTP API and its background purge task, all stopped by one
//! [`CancellationToken`]. `edgekv node` starts one region per process; `edgekv cluster` starts
//! several in one process, each in its own tracing span so their logs stay apart.

pub mod config;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use edgekv_api::{app, AppState, Auth};
use edgekv_core::{Hlc, SystemClock, Timestamp};
use edgekv_store::{Store, StoreConfig};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use config::RegionConfig;

/// How often expired entries and old tombstones are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(1);

/// Most purges done in one batch before the task yields to request handling.
const PURGE_BATCH: usize = 10_000;

/// A region that is serving.
#[derive(Debug)]
pub struct RunningRegion {
    /// The region's configuration.
    pub config: RegionConfig,
    /// The address its HTTP API actually listens on (the real port when configured with 0).
    pub http_addr: SocketAddr,
    /// The region's store.
    pub store: Arc<Store>,
    server: JoinHandle<std::io::Result<()>>,
    purger: JoinHandle<()>,
}

impl RunningRegion {
    /// Waits until the region has stopped after its shutdown token was cancelled: the listener
    /// is closed and requests in flight have finished.
    pub async fn stopped(self) -> anyhow::Result<()> {
        let region = self.config.region;
        self.server
            .await
            .context("HTTP server task panicked")?
            .with_context(|| format!("HTTP server of region {region}"))?;
        self.purger.await.context("purge task panicked")?;
        Ok(())
    }
}

/// Binds the region's listener and starts serving until `shutdown` is cancelled.
pub async fn start_region(
    config: RegionConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<RunningRegion> {
    let span = tracing::info_span!("region", region = %config.region);
    let hlc = Arc::new(Hlc::new(Arc::new(SystemClock), Hlc::DEFAULT_MAX_DELTA));
    let store_config = StoreConfig {
        region: config.region,
        tombstone_grace: config.tombstone_grace,
        digest_horizon: Duration::from_secs(60),
    };
    let store = Arc::new(Store::new(store_config, hlc));
    // With no peer, every write has reached every region the moment it is made.
    store.raise_watermark(config.region, Timestamp(u64::MAX));
    let state = Arc::new(AppState {
        store: Arc::clone(&store),
        auth: Auth::new(config.api_tokens.iter().cloned()),
    });

    let listener = TcpListener::bind(config.listen).await.with_context(|| {
        format!("bind HTTP listener of region {} on {}", config.region, config.listen)
    })?;
    let http_addr = listener.local_addr().context("read the bound address")?;
    span.in_scope(|| tracing::info!(%http_addr, "serving the Workers KV API"));

    let server = {
        let shutdown = shutdown.clone();
        let serve =
            axum::serve(listener, app(state)).with_graceful_shutdown(shutdown.cancelled_owned());
        tokio::spawn(async move { serve.await }.instrument(span.clone()))
    };
    let purger = tokio::spawn(purge_loop(Arc::clone(&store), shutdown).instrument(span));
    Ok(RunningRegion { config, http_addr, store, server, purger })
}

/// Purges expired entries and old tombstones until shutdown.
async fn purge_loop(store: Arc<Store>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(PURGE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => loop {
                // No peer to deliver to: the outbox has nothing to keep.
                store.compact_outbox(Timestamp(u64::MAX));
                store.mature();
                let stats = store.purge(PURGE_BATCH);
                if stats.expired + stats.collected > 0 {
                    tracing::debug!(expired = stats.expired, collected = stats.collected, "purged");
                }
                if stats.expired + stats.collected < PURGE_BATCH {
                    break;
                }
                tokio::task::yield_now().await;
            },
        }
    }
}

/// Resolves when the process receives SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only SIGINT stops the node");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// Installs the global tracing subscriber: `EDGEKV_LOG` (or `RUST_LOG`) filters, default
/// `info`; `EDGEKV_LOG_FORMAT=json` switches to one JSON object per line. Logs go to stderr so
/// that stdout carries only what the command prints for people and scripts.
pub fn init_tracing() {
    let filter = std::env::var("EDGEKV_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if std::env::var("EDGEKV_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().init();
    } else {
        builder.init();
    }
}
