//! The admin HTTP API: faults, status and metrics, on the region's HTTP listener.
//!
//! `/admin/*` is protected by its own token (`EDGEKV_ADMIN_TOKEN`), separate from the API
//! tokens: a client of the KV API must not be able to partition the cluster. `/metrics` is open,
//! as Prometheus scrapes it.
//!
//! - `GET /admin/faults`: the faults in force.
//! - `POST /admin/faults` with a fault as JSON (`{"kind": "partition", "a": [...], "b": [...]}`,
//!   see `edgekv_replication::Fault`): adds it, answers its id.
//! - `DELETE /admin/faults`: clears every fault. `DELETE /admin/faults/{id}`: removes one.
//! - `GET /admin/status`: region, peers, outbox and digest figures.
//! - `/admin/peers` and `/admin/drain`: membership (see `members`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use edgekv_metrics::{Counter, Family, Gauge, Registry};
use edgekv_replication::{Fault, Faults};
use edgekv_store::Store;
use serde_json::json;

/// What the admin routes need.
pub(crate) struct AdminState {
    pub(crate) tokens: edgekv_core::Tokens,
    pub(crate) faults: Arc<Faults>,
    pub(crate) store: Arc<Store>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) store_metrics: StoreMetrics,
    /// Who is in the cluster, changed at runtime through `/admin/peers`.
    pub(crate) members: edgekv_replication::Members,
    /// Names this process's apply log: positions restart from 1 when the node does, so a
    /// reader that sees a new boot id must start over.
    pub(crate) boot: String,
    /// What the dashboard shows of the configuration: the seed, each outgoing link's delay
    /// model, the clock offset set at start.
    pub(crate) seed: u64,
    pub(crate) delays: edgekv_core::LatencyMatrix,
    pub(crate) clock_offset_ms: i64,
}

/// `/metrics`, open to scrapers, served with the API.
pub(crate) fn metrics_router(state: Arc<AdminState>) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(state)
}

/// The `/admin/*` routes: with the API, or on a listener of their own (`--admin-listen`).
pub(crate) fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/admin/faults", get(list).post(add).delete(clear))
        .route("/admin/faults/{id}", axum::routing::delete(remove))
        .route("/admin/status", get(status))
        .route("/admin/applies", get(applies))
        .with_state(Arc::clone(&state))
        .merge(crate::members::router(state))
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

pub(crate) fn authorized(state: &AdminState, headers: &HeaderMap) -> bool {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(edgekv_api::bearer_token);
    token.is_some_and(|t| state.tokens.accepts(t))
}

pub(crate) fn denied() -> Response {
    error(StatusCode::FORBIDDEN, "missing or wrong admin token")
}

/// The store's series, refreshed from the store when `/metrics` is scraped.
pub(crate) struct StoreMetrics {
    fsyncs: Arc<Family<Counter>>,
    outbox: Arc<Family<Gauge>>,
}

impl StoreMetrics {
    pub(crate) fn register(registry: &Registry, store: &Store) -> Self {
        let mode = registry.gauge(
            "edgekv_store_durability",
            "The storage mode this region runs with (1 for the mode in effect).",
            &["mode"],
        );
        let shown = store.durability().map_or_else(|| "in-memory".to_owned(), |d| d.to_string());
        mode.with(&[shown.as_str()]).set(1);
        StoreMetrics {
            fsyncs: registry.counter(
                "edgekv_store_fsyncs_total",
                "Group-commit fsyncs of the journal.",
                &[],
            ),
            outbox: registry.gauge(
                "edgekv_store_outbox_writes",
                "Writes of this region kept until every peer has them.",
                &[],
            ),
        }
    }

    fn refresh(&self, store: &Store) {
        let counter = self.fsyncs.with(&[]);
        counter.add(store.fsyncs().saturating_sub(counter.get()));
        self.outbox.with(&[]).set(store.outbox_len() as i64);
    }
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    state.store.mature();
    state.store_metrics.refresh(&state.store);
    let body = state.registry.render();
    ([(header::CONTENT_TYPE, edgekv_metrics::CONTENT_TYPE)], body).into_response()
}

async fn list(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return denied();
    }
    Json(json!({ "faults": state.faults.list() })).into_response()
}

async fn add(State(state): State<Arc<AdminState>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&state, &headers) {
        return denied();
    }
    let fault: Fault = match serde_json::from_slice(&body) {
        Ok(fault) => fault,
        Err(err) => return error(StatusCode::BAD_REQUEST, format!("invalid fault: {err}")),
    };
    match state.faults.add(fault) {
        Ok(id) => Json(json!({ "id": id })).into_response(),
        Err(err) => error(StatusCode::BAD_REQUEST, err.to_string()),
    }
}

async fn clear(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return denied();
    }
    state.faults.clear();
    Json(json!({ "faults": [] })).into_response()
}

async fn remove(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !authorized(&state, &headers) {
        return denied();
    }
    match id.parse::<u64>() {
        Ok(id) if state.faults.remove(id) => Json(json!({ "removed": id })).into_response(),
        _ => error(StatusCode::NOT_FOUND, format!("no fault {id}")),
    }
}

/// The apply events after position `after`, oldest first: `?after=SEQ&limit=N`.
async fn applies(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    if !authorized(&state, &headers) {
        return denied();
    }
    let (mut after, mut limit) = (0u64, 10_000usize);
    for pair in uri.query().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let parsed = match pair.split_once('=') {
            Some(("after", v)) => v.parse().map(|v| after = v).is_ok(),
            Some(("limit", v)) => v.parse().map(|v| limit = v).is_ok(),
            _ => false,
        };
        if !parsed {
            return error(
                StatusCode::BAD_REQUEST,
                format!("bad query parameter {pair:?}: expected after=SEQ and limit=N"),
            );
        }
    }
    let Some(page) = state.store.applies_after(after, limit.min(100_000)) else {
        return error(
            StatusCode::CONFLICT,
            "the apply log is off: start the node with --apply-log N",
        );
    };
    let events: Vec<serde_json::Value> = page
        .events
        .iter()
        .map(|e| {
            json!({
                "seq": e.seq,
                "namespace": e.namespace.as_str(),
                "key": &*e.key,
                "version": e.version.to_string(),
                "at_ms": e.at_ms,
                "system_us": e.system_us,
            })
        })
        .collect();
    Json(json!({
        "region": state.store.region().as_str(),
        "boot": state.boot,
        "events": events,
        "next": page.next,
        "missed": page.missed,
    }))
    .into_response()
}

async fn status(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return denied();
    }
    let store = &state.store;
    let me = store.region();
    let peers: Vec<String> =
        state.members.regions().into_iter().filter(|r| *r != me).map(|r| r.to_string()).collect();
    let links: Vec<serde_json::Value> = peers
        .iter()
        .map(|to| json!({"to": to, "model": state.delays.model(me.as_str(), to).to_string()}))
        .collect();
    Json(json!({
        "region": store.region().as_str(),
        "peers": peers,
        "outbox": store.outbox_len(),
        "digest": { "items": store.digest_len(), "root": format!("{:016x}", store.digest_root()) },
        "digest_horizon_ms": store.digest_horizon().as_millis() as u64,
        "faults": state.faults.list().len(),
        "keys": store.key_count(),
        "seed": state.seed,
        "links": links,
        "clock_offset_ms": state.clock_offset_ms + state.faults.clock_offset_ms(store.region().as_str()),
        "storage": {
            "mode": store.durability().map_or_else(|| "in-memory".to_owned(), |d| d.to_string()),
            "data_dir": store.data_dir().map(|d| d.display().to_string()),
        },
    }))
    .into_response()
}
