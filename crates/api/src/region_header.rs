//! The `edgekv-region` header on every response.
//!
//! A layer of its own rather than `axum::middleware::map_response`, which boxes every
//! response future and takes the request apart and back together for its extractors: an
//! allocation and a few hundred instructions per request, on a path where a GET costs a few
//! tens of thousands in all (docs/performance.md).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::http::HeaderValue;
use axum::response::Response;

use crate::REGION_HEADER;

/// Adds the region's name to every response of the service it wraps.
#[derive(Clone, Debug)]
pub(crate) struct RegionLayer(pub(crate) HeaderValue);

impl<S> tower::Layer<S> for RegionLayer {
    type Service = WithRegion<S>;

    fn layer(&self, inner: S) -> WithRegion<S> {
        WithRegion { inner, region: self.0.clone() }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct WithRegion<S> {
    inner: S,
    region: HeaderValue,
}

impl<S, R> tower::Service<R> for WithRegion<S>
where
    S: tower::Service<R, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Tagged<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        Tagged::new(self.inner.call(request), self.region.clone())
    }
}

pin_project_lite::pin_project! {
    /// The wrapped service's future, and the header its response gets.
    pub(crate) struct Tagged<F> {
        #[pin]
        inner: F,
        region: Option<HeaderValue>,
    }
}

impl<F> Tagged<F> {
    pub(crate) fn new(inner: F, region: HeaderValue) -> Self {
        Tagged { inner, region: Some(region) }
    }
}

impl<F, E> Future for Tagged<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(region) = this.region.take() {
            response.headers_mut().insert(REGION_HEADER, region);
        }
        Poll::Ready(Ok(response))
    }
}
