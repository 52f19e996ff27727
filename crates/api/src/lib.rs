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
//! - `auth`: API tokens; `body`: bodies read within limits, multipart values; `query`: query
//!   strings.
//! - `handlers`, `bulk`: one function per REST operation; [`binding`]: the binding protocol.
//! - `edge`: what both APIs read and write through, as on a Workers KV location: the
//!   [`cache`] (reads stay what they were for their cacheTtl) and the write [`rate`] (one
//!   write per second per key).
//! - [`ApiError`]: every failure with its status and Cloudflare code.

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
    App { api: Some((state, region)), router }
}

/// An HTTP application: the Workers KV API under [`route::BASE_PATH`], served without the
/// router, and the router's routes (health, metrics, admin) for everything else.
///
/// Going around axum for the API is what a request of it costs least: a path that matches
/// no route of the router takes the router's path lookup, its fallback's boxed service clone
/// and three wrapping futures before it reaches [`dispatch`], a sixth of a GET's instructions
/// (docs/performance.md). What the router did for the API, the region header, is done here.
#[derive(Clone)]
pub struct App {
    api: Option<(Arc<AppState>, HeaderValue)>,
    router: Router,
}

impl App {
    /// Adds the routes of `router` (which must not be under [`route::BASE_PATH`]: the API
    /// takes all of that).
    pub fn merge(self, router: Router) -> App {
        App { api: self.api, router: self.router.merge(router) }
    }

    /// Serves one request. `&self`, not `&mut self`: the connection's service calls it for
    /// every request without cloning the app.
    pub fn serve(&self, request: Request) -> AppFuture {
        let inner = match &self.api {
            Some((state, region)) if request.uri().path().starts_with(route::BASE_PATH) => {
                let state = Arc::clone(state);
                let dispatched: Dispatched = Box::pin(async move {
                    Ok::<_, std::convert::Infallible>(dispatch(state, request).await)
                });
                Either::Api { inner: region_header::Tagged::new(dispatched, region.clone()) }
            }
            _ => Either::Routed { inner: tower::Service::call(&mut self.router.clone(), request) },
        };
        AppFuture { inner }
    }
}

impl From<Router> for App {
    /// An app of `router`'s routes alone.
    fn from(router: Router) -> App {
        App { api: None, router }
    }
}

impl tower::Service<Request> for App {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = AppFuture;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> AppFuture {
        self.serve(request)
    }
}

type Dispatched = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response, std::convert::Infallible>> + Send>,
>;

pin_project_lite::pin_project! {
    #[project = EitherProj]
    enum Either {
        Api { #[pin] inner: region_header::Tagged<Dispatched> },
        Routed { #[pin] inner: axum::routing::future::RouteFuture<std::convert::Infallible> },
    }
}

pin_project_lite::pin_project! {
    /// The response to one request of an [`App`].
    pub struct AppFuture {
        #[pin]
        inner: Either,
    }
}

impl std::future::Future for AppFuture {
    type Output = Result<Response, std::convert::Infallible>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match self.project().inner.project() {
            EitherProj::Api { inner } => inner.poll(cx),
            EitherProj::Routed { inner } => inner.poll(cx),
        }
    }
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
