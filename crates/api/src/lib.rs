//! The Cloudflare Workers KV APIs, served from an EdgeKV store: the REST API, and the protocol
//! workerd speaks to a KV service for a Worker's binding.
//!
//! All 14 Workers KV operations under `/client/v4`, with Cloudflare's limits, statuses, error
//! codes and envelope, so that the official SDKs and wrangler work against a node unchanged.
//! [`binding`] serves a `kvNamespace` binding on a listener of its own, so Worker code reaches
//! a region through workerd (or `wrangler dev`) as it would reach Workers KV.
//! Two extension headers expose what the API otherwise hides, for consistency experiments:
//! `edgekv-region` (the region that served the response) on every response, and
//! `edgekv-version` (the LWW version of the entry served) on reads.
//!
//! # Layout
//! - [`route`]: the raw path to one of the operations (keys may contain `/`).
//! - [`App`]: what a listener serves: the API around axum's router, the rest through it.
//! - `auth`: API tokens; `body`: bodies read within limits, multipart values; `query`: query
//!   strings.
//! - `handlers`, `bulk`: one function per REST operation; [`binding`]: the binding protocol.
//! - `edge`: what both APIs read and write through, as on a Workers KV location: the
//!   [`cache`] (reads stay what they were for their cacheTtl) and the write [`rate`] (one
//!   write per second per key).
//! - [`ApiError`]: every failure with its status and Cloudflare code.

mod app;
mod auth;
pub mod binding;
mod body;
mod budget;
mod bulk;
pub mod cache;
mod edge;
mod envelope;
mod error;
mod handlers;
mod query;
pub mod rate;
mod region_header;
pub mod route;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use edgekv_metrics::{Counter, Family, Registry};
use edgekv_store::Store;

pub use app::{App, AppFuture};
pub use auth::{bearer_token, Auth, DEV_TOKEN};
pub use budget::BodyBudget;
pub use edge::{Edge, EdgeConfig};
pub use error::{refusal_envelope, ApiError};

/// The header naming the region that served a response.
pub const REGION_HEADER: HeaderName = HeaderName::from_static("edgekv-region");
/// The header carrying the version of the entry a read served.
pub const VERSION_HEADER: HeaderName = HeaderName::from_static("edgekv-version");

/// What every request handler needs.
#[derive(Debug)]
pub struct AppState {
    /// The region's store.
    pub store: Arc<Store>,
    /// Accepted credentials.
    pub auth: Auth,
    /// Request counters.
    pub metrics: ApiMetrics,
    /// Memory all requests together may hold for bodies.
    pub budget: BodyBudget,
    /// The edge read cache and the write rate.
    pub edge: Edge,
}

/// The API's series in the node's metrics registry.
#[derive(Debug, Clone)]
pub struct ApiMetrics {
    /// Requests by operation and HTTP status.
    pub requests: Arc<Family<Counter>>,
}

impl ApiMetrics {
    /// Registers the API's series in `registry`.
    pub fn register(registry: &Registry) -> Self {
        ApiMetrics {
            requests: registry.counter(
                "edgekv_http_requests_total",
                "Workers KV API requests by operation and HTTP status.",
                &["op", "status"],
            ),
        }
    }
}

/// The HTTP application of one regional node: the Workers KV API, `/healthz` and `/readyz`.
pub fn app(state: Arc<AppState>) -> App {
    let region = HeaderValue::from_str(state.store.region().as_str())
        .expect("region names are ASCII and valid header values");
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .fallback(|State(state), request| dispatch(state, request))
        .with_state(Arc::clone(&state))
        .layer(region_header::RegionLayer(region.clone()));
    let api = app::Api {
        state,
        region,
        prefix: route::BASE_PATH,
        dispatch: |state, request| Box::pin(async move { Ok(dispatch(state, request).await) }),
    };
    App::new(api, router)
}

/// Ready when the store takes writes: a node whose disk is nearly full, or whose store failed
/// and waits to reopen, answers 503 with the reason (reads still work there, but a load
/// balancer should send writes elsewhere).
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state.store.health() {
        Ok(()) => "ready".into_response(),
        Err(reason) => {
            let body = serde_json::json!({ "ready": false, "reason": reason });
            (axum::http::StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
    }
}

/// Routes on the raw path, authenticates, then runs the operation. Unknown routes answer 404
/// before authentication, as Cloudflare's edge does.
async fn dispatch(state: Arc<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    tracing::debug!(method = %parts.method, path = %parts.uri.path(), "request");
    let route = match route::route(&parts.method, parts.uri.path()) {
        Ok(route) => route,
        Err(err) => return count(&state, "no_route", err.into_response()),
    };
    let op = route.op();
    if !state.auth.allows(&parts.headers) {
        return count(&state, op, ApiError::Unauthorized.into_response());
    }
    let result = async {
        let query = query::Query::parse(parts.uri.query())?;
        handlers::handle(&state, route, &parts.headers, &query, body).await
    }
    .await;
    let response = match result {
        Ok(response) => response,
        Err(err) => {
            log_refusal(&parts, &err);
            err.into_response()
        }
    };
    count(&state, op, response)
}

/// A failure of the node itself is logged with the whole chain of causes (the client gets only
/// the first link); a refused request and a store that is refusing writes are the client's
/// business, and the store logs its own state changes once.
fn log_refusal(parts: &axum::http::request::Parts, err: &ApiError) {
    let (method, path, status) = (&parts.method, parts.uri.path(), err.status().as_u16());
    if matches!(err, ApiError::Storage { .. }) {
        let error = edgekv_store::chain(err);
        tracing::error!(%method, path, status, %error, "request failed");
    } else {
        tracing::debug!(%method, path, status, error = %err, "request refused");
    }
}

fn count(state: &AppState, op: &str, response: Response) -> Response {
    state.metrics.requests.with(&[op, response.status().as_str()]).inc();
    response
}
