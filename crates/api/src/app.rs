//! What a listener serves: one of the APIs, reached without axum's router, and a router for
//! everything else (health, metrics, admin).
//!
//! Going around the router is what an API request costs least: a path that matches no route
//! takes the router's path lookup, its fallback's boxed service clone and three wrapping
//! futures before it reaches the API's dispatch, a sixth of a GET's instructions
//! (docs/performance.md). The one thing the router's layers did for the API, the region
//! header, is done here.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::response::Response;
use axum::Router;

use crate::region_header::Tagged;
use crate::AppState;

/// A request's answer from an API's dispatch.
pub(crate) type Dispatched = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// An API served around the router: every request whose path starts with `prefix`.
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) state: Arc<AppState>,
    /// The `edgekv-region` header of every response.
    pub(crate) region: HeaderValue,
    pub(crate) prefix: &'static str,
    pub(crate) dispatch: fn(Arc<AppState>, Request) -> Dispatched,
}

/// An HTTP application: an API (the REST API under `/client/v4`, or the binding protocol on
/// every path of its listener) and a router for the other paths.
#[derive(Clone)]
pub struct App {
    api: Option<Api>,
    router: Router,
}

impl App {
    pub(crate) fn new(api: Api, router: Router) -> App {
        App { api: Some(api), router }
    }

    /// Adds the routes of `router`, which must not be under the API's prefix: the API takes
    /// all of that.
    pub fn merge(self, router: Router) -> App {
        App { api: self.api, router: self.router.merge(router) }
    }

    /// Serves one request. `&self`, not `&mut self`: the connection's service calls it for
    /// every request without cloning the app.
    pub fn serve(&self, request: Request) -> AppFuture {
        let inner = match &self.api {
            Some(api) if request.uri().path().starts_with(api.prefix) => {
                let dispatched = (api.dispatch)(Arc::clone(&api.state), request);
                Either::Api { inner: Tagged::new(dispatched, api.region.clone()) }
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
    type Error = Infallible;
    type Future = AppFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> AppFuture {
        self.serve(request)
    }
}

pin_project_lite::pin_project! {
    #[project = EitherProj]
    enum Either {
        Api { #[pin] inner: Tagged<Dispatched> },
        Routed { #[pin] inner: axum::routing::future::RouteFuture<Infallible> },
    }
}

pin_project_lite::pin_project! {
    /// The response to one request of an [`App`].
    pub struct AppFuture {
        #[pin]
        inner: Either,
    }
}

impl Future for AppFuture {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().inner.project() {
            EitherProj::Api { inner } => inner.poll(cx),
            EitherProj::Routed { inner } => inner.poll(cx),
        }
    }
}
