//! Serving a listener: the accept loop, a bound on open connections, and the per-connection
//! guard that closes connections which stall (see `guard`).
//!
//! The bound holds even under a flood of connections that never finish a request: when every
//! slot is taken, the oldest connection that has no request in flight (idle, or still sending
//! its head) is closed to make room for the new one; only when every connection is busy with a
//! request is the newcomer refused (a 503 in Cloudflare's envelope, then closed). A process
//! that runs out of file descriptors evicts the same way instead of spinning on `accept`. So a
//! slowloris flood can neither exhaust descriptors nor keep a real client out.
//!
//! Graceful shutdown: the listener stops accepting, connections finish the request they are
//! serving (HTTP/1) or their open streams (HTTP/2) and close, and serving returns once all
//! have.

mod drain;
mod guard;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use edgekv_metrics::{Counter, Family, Gauge, Registry};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use guard::Timeouts;
use guard::{ConnState, Guarded, Mode, Phase};

/// The limits of one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// See [`Timeouts`].
    pub timeouts: Timeouts,
    /// Most connections open at once (lowered to what the process's descriptor limit allows).
    pub max_connections: usize,
}

impl Limits {
    /// Settings for tests and in-process clusters.
    pub fn generous() -> Self {
        Limits {
            timeouts: Timeouts {
                header: Duration::from_secs(10),
                body: Duration::from_secs(30),
                idle: Duration::from_secs(60),
                send: Duration::from_secs(30),
            },
            max_connections: 1024,
        }
    }
}

/// Descriptors kept for everything but client connections: data files, peers, the gRPC side.
const RESERVED_FDS: u64 = 128;

/// `max` lowered so that connections alone cannot exhaust the process's descriptors.
fn fd_bounded(max: usize) -> usize {
    match rustix::process::getrlimit(rustix::process::Resource::Nofile).current {
        Some(fds) => max.min(fds.saturating_sub(RESERVED_FDS).max(16) as usize),
        None => max,
    }
}

/// The series of one listener.
#[derive(Clone)]
pub(crate) struct ServeMetrics {
    open: Arc<Family<Gauge>>,
    closed: Arc<Family<Counter>>,
}

impl ServeMetrics {
    pub(crate) fn register(registry: &Registry) -> Self {
        ServeMetrics {
            open: registry.gauge(
                "edgekv_connections_open",
                "Connections open, by listener.",
                &["listener"],
            ),
            closed: registry.counter(
                "edgekv_connections_closed_total",
                "Connections the server closed or refused, by listener and reason.",
                &["listener", "reason"],
            ),
        }
    }
}

/// The open connections of a listener.
struct Open {
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
    next: AtomicU64,
}

impl Open {
    /// Closes the oldest connection with no request in flight; whether there was one. In
    /// stream mode (no requests) the one whose last byte is oldest.
    fn evict_one(&self, mode: Mode) -> bool {
        let conns = self.conns.lock();
        let victim = conns
            .values()
            .filter(|c| mode == Mode::Stream || matches!(c.phase(), Phase::Idle | Phase::Head))
            .filter(|c| !c.close.is_cancelled())
            .min_by_key(|c| if mode == Mode::Stream { c.last_io() } else { c.opened });
        match victim {
            Some(conn) => {
                conn.evict();
                true
            }
            None => false,
        }
    }
}

/// One listener being served.
struct Listener {
    name: &'static str,
    /// The region, named on the refusals the listener writes itself.
    region: String,
    limits: Limits,
    metrics: ServeMetrics,
    registry: Open,
}

impl Listener {
    fn new(name: &'static str, region: &str, limits: Limits, metrics: ServeMetrics) -> Arc<Self> {
        let limits = Limits { max_connections: fd_bounded(limits.max_connections), ..limits };
        let registry = Open { conns: Mutex::new(HashMap::new()), next: AtomicU64::new(0) };
        Arc::new(Listener { name, region: region.to_owned(), limits, metrics, registry })
    }

    /// Makes room for one more connection; `false` when every connection is busy.
    fn admit(&self, mode: Mode) -> bool {
        // An evicted connection closes on its own task shortly; it no longer counts.
        let open = self.registry.conns.lock().values().filter(|c| !c.close.is_cancelled()).count();
        if open < self.limits.max_connections {
            return true;
        }
        let evicted = self.registry.evict_one(mode);
        if evicted {
            self.metrics.closed.with(&[self.name, "evicted"]).inc();
        }
        evicted
    }

    fn register(self: &Arc<Self>) -> (u64, Arc<ConnState>) {
        let id = self.registry.next.fetch_add(1, Ordering::Relaxed);
        let state = ConnState::new();
        let mut conns = self.registry.conns.lock();
        conns.insert(id, Arc::clone(&state));
        self.metrics.open.with(&[self.name]).set(conns.len() as i64);
        (id, state)
    }

    fn deregister(&self, id: u64, state: &ConnState) {
        let mut conns = self.registry.conns.lock();
        conns.remove(&id);
        self.metrics.open.with(&[self.name]).set(conns.len() as i64);
        drop(conns);
        if let Some(why) = state.closed_by().filter(|w| *w != guard::Closed::Evicted) {
            self.metrics.closed.with(&[self.name, why.as_str()]).inc();
        }
    }

    /// Accepts the next connection, evicting or refusing as the bound requires. `None` on
    /// shutdown.
    async fn accept(
        &self,
        listener: &TcpListener,
        mode: Mode,
        shutdown: &CancellationToken,
    ) -> Option<TcpStream> {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return None,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, _)) if self.admit(mode) => {
                    let _ = stream.set_nodelay(true);
                    return Some(stream);
                }
                Ok((stream, _)) => {
                    self.metrics.closed.with(&[self.name, "refused"]).inc();
                    refuse(stream, mode, &self.region);
                }
                Err(err) => {
                    // Out of descriptors (EMFILE, ENFILE) or a connection reset before it was
                    // accepted: make room, and do not spin.
                    tracing::debug!(listener = self.name, error = %err, "accept failed");
                    if self.registry.evict_one(mode) {
                        self.metrics.closed.with(&[self.name, "evicted"]).inc();
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
}

/// Tells a client the server is full (HTTP only; a gRPC peer just sees the close) and drops it.
fn refuse(stream: TcpStream, mode: Mode, region: &str) {
    if mode == Mode::Requests {
        let _ = stream.try_write(&refusal_response(region, 503));
    }
}

/// A whole HTTP/1.1 response refusing a request before any route saw it, in Cloudflare's
/// envelope, closing the connection.
pub(crate) fn refusal_response(region: &str, status: u16) -> Bytes {
    let body = edgekv_api::refusal_envelope(status);
    let reason = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let retry = if status == 503 {
        "retry-after: 1\r\nx-should-retry: true"
    } else {
        "x-should-retry: false"
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         {retry}\r\nedgekv-region: {region}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    Bytes::from([head.as_bytes(), &body].concat())
}

/// Serves the HTTP `app` of `region` on `listener` until `shutdown`, then finishes gracefully.
pub(crate) async fn serve_http(
    name: &'static str,
    region: edgekv_core::RegionId,
    listener: TcpListener,
    app: edgekv_api::App,
    limits: Limits,
    metrics: ServeMetrics,
    shutdown: CancellationToken,
) {
    let this = Listener::new(name, region.as_str(), limits, metrics);
    let mut connections = JoinSet::new();
    while let Some(stream) = this.accept(&listener, Mode::Requests, &shutdown).await {
        let (id, state) = this.register();
        let (this, app, shutdown) = (Arc::clone(&this), app.clone(), shutdown.clone());
        connections.spawn(async move {
            let refusal = Refusal(Arc::from(this.region.as_str()));
            serve_connection(stream, &state, app, this.limits.timeouts, refusal, shutdown).await;
            this.deregister(id, &state);
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// What a connection writes in place of hyper's bare refusals.
#[derive(Clone)]
pub(crate) struct Refusal(Arc<str>);

impl Refusal {
    pub(crate) fn response(&self, status: u16) -> Bytes {
        refusal_response(&self.0, status)
    }
}

async fn serve_connection(
    stream: TcpStream,
    state: &Arc<ConnState>,
    app: edgekv_api::App,
    timeouts: Timeouts,
    refusal: Refusal,
    shutdown: CancellationToken,
) {
    let io = Guarded::new(stream, Arc::clone(state), timeouts, Mode::Requests, Some(refusal));
    let service = Tracked { app, state: Arc::clone(state) };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // The guard times heads out (and tells an idle connection from a slow head); hyper's own
    // head timer would also cut idle keep-alive connections.
    builder.http1().timer(TokioTimer::new()).header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(timeouts.idle / 2)
        .keep_alive_timeout(timeouts.send);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        _ = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = served {
        tracing::debug!(%error, "connection ended");
    }
}

/// The app, marking each request in flight on its connection until its response has been
/// sent or dropped.
#[derive(Clone)]
struct Tracked {
    app: edgekv_api::App,
    state: Arc<ConnState>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Tracked {
    type Response = hyper::Response<TrackedBody>;
    type Error = Infallible;
    type Future = TrackedFuture;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::new(Arc::clone(&self.state));
        let (request, drainer) = drain::lend(request);
        let inner = self.app.serve(request);
        TrackedFuture { inner, in_flight: Some(in_flight), drainer, answer: None, rest: None }
    }
}

pin_project_lite::pin_project! {
    /// The app's future for one request, named rather than boxed: one allocation and one
    /// indirect call less per request.
    struct TrackedFuture {
        #[pin]
        inner: edgekv_api::AppFuture,
        in_flight: Option<InFlight>,
        drainer: Option<drain::Drainer>,
        // The app's answer, held while `rest` reads what it left of the request body.
        answer: Option<axum::response::Response>,
        rest: Option<drain::Drain>,
    }
}

impl Future for TrackedFuture {
    type Output = Result<hyper::Response<TrackedBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if this.answer.is_none() {
            *this.answer = Some(std::task::ready!(this.inner.poll(cx))?);
            *this.rest = this.drainer.take().and_then(drain::Drainer::rest);
        }
        if let Some(rest) = this.rest.as_mut() {
            std::task::ready!(Pin::new(rest).poll(cx));
            *this.rest = None;
        }
        let response = this.answer.take().expect("a TrackedFuture polled after it was ready");
        let in_flight = this.in_flight.take();
        if let Some(in_flight) = &in_flight {
            in_flight.0.response_started();
        }
        Poll::Ready(Ok(response.map(|body| TrackedBody { body, _in_flight: in_flight })))
    }
}

/// Holds a request in flight; dropping it ends it.
struct InFlight(Arc<ConnState>);

impl InFlight {
    fn new(state: Arc<ConnState>) -> Self {
        state.request_started();
        InFlight(state)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// A response body that keeps its request in flight until it is done.
struct TrackedBody {
    body: Body,
    _in_flight: Option<InFlight>,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// The connections of the gRPC listener, each guarded in stream mode and bounded, as a stream
/// tonic serves.
pub(crate) fn grpc_incoming(
    region: edgekv_core::RegionId,
    listener: TcpListener,
    limits: Limits,
    metrics: ServeMetrics,
    shutdown: CancellationToken,
) -> impl futures_util::Stream<Item = std::io::Result<GuardedTcp>> {
    let this = Listener::new("grpc", region.as_str(), limits, metrics);
    futures_util::stream::unfold(
        (this, listener, shutdown),
        |(this, listener, shutdown)| async move {
            let stream = this.accept(&listener, Mode::Stream, &shutdown).await?;
            let (id, state) = this.register();
            let io =
                Guarded::new(stream, Arc::clone(&state), this.limits.timeouts, Mode::Stream, None);
            let conn = GuardedTcp { io, done: Some((Arc::clone(&this), id, state)) };
            Some((Ok(conn), (this, listener, shutdown)))
        },
    )
}

/// A gRPC connection: deregistered from its listener when tonic drops it.
pub(crate) struct GuardedTcp {
    io: Guarded<TcpStream>,
    done: Option<(Arc<Listener>, u64, Arc<ConnState>)>,
}

impl Drop for GuardedTcp {
    fn drop(&mut self) {
        if let Some((listener, id, state)) = self.done.take() {
            listener.deregister(id, &state);
        }
    }
}

impl tonic::transport::server::Connected for GuardedTcp {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.get_ref().connect_info()
    }
}

impl tokio::io::AsyncRead for GuardedTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for GuardedTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
