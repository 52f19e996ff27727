//! `edgekv dash`: one live page for a whole cluster.
//!
//! The page is plain HTML, CSS and JavaScript compiled into the binary (no CDN, no build step;
//! charts are inline SVG drawn by the page), so it works offline. It listens to one
//! Server-Sent Events stream: on connect a `hello` with the timeline so far, then a
//! `snapshot` each second from the collector loop (`collect`), and `probe` events as a probe's write
//! spreads. The server keeps bounded rings per region and one timeline ring; the page keeps as
//! many points, so neither grows however long the page stays open.
//!
//! Controls (faults, heal, undo, stopping and starting a region under `edgekv cluster`) need
//! the admin token, which the page sends with each request; the dashboard passes link faults
//! on to every region's admin API, as `edgekv chaos` does.

mod collect;
mod controls;
mod probe;
mod prom;
mod state;
mod window;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::chaos;

/// Stops and starts regions of a cluster run in this process (`edgekv cluster`).
pub trait Supervisor: Send + Sync {
    /// Stops `region` as a process stop would (its in-memory state is gone; a durable store
    /// keeps what it acknowledged).
    fn stop<'a>(&'a self, region: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Starts a stopped `region` again on the same addresses.
    fn start<'a>(&'a self, region: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// What the dashboard watches and how.
pub struct DashConfig {
    /// Each region and its HTTP base, `http://host:port` (a `/client/v4` suffix is dropped).
    pub regions: Vec<(String, String)>,
    /// The admin token of the regions; the page's controls must present it.
    pub admin_token: String,
    /// The API token, for the probe's writes and reads.
    pub api_token: String,
    /// A directory of lab runs to list (each subdirectory with a report.html).
    pub runs: Option<PathBuf>,
    /// Present under `edgekv cluster`: region stop and start.
    pub supervisor: Option<Arc<dyn Supervisor>>,
}

/// What every handler shares.
struct Shared {
    config: DashConfig,
    cluster: Arc<Mutex<state::Cluster>>,
    updates: broadcast::Sender<Arc<String>>,
    chaos: chaos::Cluster,
    tokens: edgekv_core::Tokens,
    probes: AtomicU64,
}

/// Serves the dashboard on `listener` until `shutdown`.
pub async fn serve(
    config: DashConfig,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let regions: Vec<(String, String)> =
        config.regions.iter().map(|(name, url)| (name.clone(), base_of(url))).collect();
    let names: Vec<String> = regions.iter().map(|(n, _)| n.clone()).collect();
    let cluster = Arc::new(Mutex::new(state::Cluster::new(&names)));
    let (updates, _) = broadcast::channel(64);
    let chaos = chaos::Cluster {
        regions: regions.clone(),
        admin_token: config.admin_token.clone(),
        ..chaos::Cluster::compose_defaults()
    };
    let tokens = edgekv_core::Tokens::new(std::slice::from_ref(&config.admin_token));
    tokio::spawn(collect::run(
        regions.iter().map(|(_, base)| base.clone()).collect(),
        config.admin_token.clone(),
        Arc::clone(&cluster),
        updates.clone(),
        shutdown.clone(),
    ));
    let shared =
        Arc::new(Shared { config, cluster, updates, chaos, tokens, probes: AtomicU64::new(1) });
    let app = router(shared);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("serve the dashboard")
}

/// Binds `addr` and serves the dashboard there; returns the bound address once listening.
pub async fn spawn(
    config: DashConfig,
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("bind the dashboard on {addr}"))?;
    let bound = listener.local_addr().context("read the dashboard's address")?;
    tokio::spawn(async move {
        if let Err(err) = serve(config, listener, shutdown).await {
            tracing::error!(error = %err, "the dashboard stopped");
        }
    });
    Ok(bound)
}

/// A region's HTTP base from the URL given for it: `http://host:port`.
fn base_of(url: &str) -> String {
    let url = url.trim_end_matches('/');
    url.strip_suffix("/client/v4").unwrap_or(url).to_owned()
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", include_str!("dash/page/index.html"))))
        .route("/app.js", get(|| asset("text/javascript", include_str!("dash/page/app.js"))))
        .route("/app.css", get(|| asset("text/css", include_str!("dash/page/app.css"))))
        .route("/events", get(events))
        .route("/api/probe", post(controls::probe))
        .route("/api/faults", post(controls::add_fault))
        .route("/api/faults/remove", post(controls::remove_faults))
        .route("/api/heal", post(controls::heal))
        .route("/api/regions/{region}/{action}", post(controls::region_action))
        .route("/api/runs", get(controls::runs))
        .route("/runs/{run}/report.html", get(report))
        .with_state(shared)
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body)
        .into_response()
}

/// The event stream: a hello with the timeline so far, then every update.
async fn events(State(shared): State<Arc<Shared>>) -> Response {
    let receiver = shared.updates.subscribe();
    let hello = {
        let cluster = shared.cluster.lock();
        json!({
            "type": "hello",
            "regions": cluster.regions.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
            "timeline": cluster.timeline(),
            "dev_token": shared.config.admin_token == edgekv_node::config::DEV_ADMIN_TOKEN,
            "can_stop_regions": shared.config.supervisor.is_some(),
            "runs": shared.config.runs.is_some(),
        })
    };
    let first = futures_util::stream::once(async move { hello.to_string() });
    // A page too slow to keep up skips updates rather than holding them.
    let rest = futures_util::stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(update) => return Some((update.as_str().to_owned(), receiver)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let stream = first
        .chain(rest)
        .map(|data| Ok::<_, std::convert::Infallible>(Event::default().data(data)));
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

/// A lab run's report, from the runs directory.
async fn report(State(shared): State<Arc<Shared>>, Path(run): Path<String>) -> Response {
    let Some(dir) = &shared.config.runs else {
        return (StatusCode::NOT_FOUND, "no runs directory").into_response();
    };
    if run.is_empty() || run.starts_with('.') || run.contains(['/', '\\']) {
        return (StatusCode::BAD_REQUEST, "not a run name").into_response();
    }
    let path = dir.join(&run).join(edgekv_lab::files::REPORT);
    match tokio::task::spawn_blocking(move || std::fs::read(path)).await {
        Ok(Ok(body)) => {
            ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
        }
        _ => (StatusCode::NOT_FOUND, "no such report").into_response(),
    }
}
