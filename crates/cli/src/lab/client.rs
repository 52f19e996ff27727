//! A minimal HTTP/1.1 client over one keep-alive connection: a lab client is one Jepsen process,
//! issuing one request at a time, and it must know whether a failed request reached the server
//! (the write may have happened: outcome `info`) or not (outcome `fail`).
//!
//! An endpoint may also be a region of a simulation ([`Local`]): the same request then goes
//! straight to the region's router in process, with no socket, so that a whole run can go on
//! virtual time and replay exactly.

use std::time::Duration;

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long one request may take before its outcome is declared unknown.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a base URL points: the `host:port` to connect to and the path prefix of every request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) authority: String,
    pub(crate) prefix: String,
    /// A simulated region's router, reached in process instead of at `authority`.
    pub(crate) local: Option<Local>,
}

/// A router served in process: a simulated region's API, binding or admin routes. It can be
/// down (a killed region refuses connections) or frozen (a stopped one answers nothing until
/// it resumes).
#[derive(Clone)]
pub(crate) struct Local(std::sync::Arc<LocalState>);

struct LocalState {
    router: parking_lot::RwLock<Option<edgekv_api::App>>,
    /// Whether requests go through; while not, they wait for `resumed`. A `Notify` rather
    /// than a watch channel: a watch wakes its waiters in an order drawn at random, and a
    /// simulation must replay the order in which held requests are answered.
    running: std::sync::atomic::AtomicBool,
    resumed: tokio::sync::Notify,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Local")
    }
}

impl PartialEq for Local {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Local {}

impl Local {
    /// Nothing served yet: connections are refused until [`Local::set`].
    pub(crate) fn down() -> Self {
        Local(std::sync::Arc::new(LocalState {
            router: parking_lot::RwLock::new(None),
            running: std::sync::atomic::AtomicBool::new(true),
            resumed: tokio::sync::Notify::new(),
        }))
    }

    /// Serves `router` from now on, or nothing (`None`: connections are refused).
    pub(crate) fn set(&self, router: Option<edgekv_api::App>) {
        *self.0.router.write() = router;
    }

    /// Holds every request until resumed (`false`), or lets them through (`true`).
    pub(crate) fn set_running(&self, running: bool) {
        self.0.running.store(running, std::sync::atomic::Ordering::SeqCst);
        if running {
            self.0.resumed.notify_waiters();
        }
    }

    /// Returns once requests may go through.
    async fn until_running(&self) {
        loop {
            let resumed = self.0.resumed.notified();
            tokio::pin!(resumed);
            // Registered before the check, so a resume between the two is not missed.
            resumed.as_mut().enable();
            if self.0.running.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            resumed.await;
        }
    }

    async fn call(&self, request: Request<Full<Bytes>>) -> Result<Reply, CallError> {
        use tower::ServiceExt;
        let Some(router) = self.0.router.read().clone() else {
            return Err(CallError::NotSent("connection refused: the region is down".into()));
        };
        let exchange = async move {
            // A frozen region takes the request and answers nothing until it resumes.
            self.until_running().await;
            let response = router.oneshot(request.map(axum::body::Body::new)).await;
            let (parts, body) = match response {
                Ok(response) => response.into_parts(),
                Err(never) => match never {},
            };
            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            Reply { status: parts.status, headers: parts.headers, body }
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| CallError::Unknown(format!("no response within {REQUEST_TIMEOUT:?}")))
    }
}

impl Endpoint {
    /// Parses `http://host:port/path`; the lab speaks plain HTTP only (loopback, docker
    /// networks).
    pub(crate) fn parse(url: &str) -> anyhow::Result<Self> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("{url:?}: the lab speaks plain http:// (use a loopback or private address)");
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() {
            bail!("{url:?}: no host");
        }
        Ok(Endpoint {
            authority: authority.to_owned(),
            prefix: path.trim_end_matches('/').to_owned(),
            local: None,
        })
    }

    /// A simulated region's router, with the path prefix its requests carry.
    pub(crate) fn local(name: &str, prefix: &str, local: Local) -> Self {
        Endpoint { authority: name.to_owned(), prefix: prefix.to_owned(), local: Some(local) }
    }
}

/// A request that failed without an HTTP response.
#[derive(Debug)]
pub(crate) enum CallError {
    /// Nothing was sent: the connection could not be made.
    NotSent(String),
    /// It may have reached the server: a timeout or a connection lost mid-request.
    Unknown(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::NotSent(why) => write!(f, "not sent: {why}"),
            CallError::Unknown(why) => write!(f, "outcome unknown: {why}"),
        }
    }
}

/// A response, whole.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// One connection to one endpoint, made on first use and again after a failure.
pub(crate) struct Client {
    endpoint: Endpoint,
    token: HeaderValue,
    /// Sent with every request (the binding protocol names its namespace in a header).
    headers: Vec<(HeaderName, HeaderValue)>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Client {
    pub(crate) fn new(endpoint: Endpoint, token: &str) -> anyhow::Result<Self> {
        let token = HeaderValue::from_str(&format!("Bearer {token}"))
            .context("the token is not a valid header value")?;
        Ok(Client { endpoint, token, headers: Vec::new(), sender: None })
    }

    /// The same client, sending `name: value` with every request.
    pub(crate) fn with_header(mut self, name: HeaderName, value: &str) -> anyhow::Result<Self> {
        let value = HeaderValue::from_str(value)
            .with_context(|| format!("{value:?} is not a valid {name} header"))?;
        self.headers.push((name, value));
        Ok(self)
    }

    async fn open(&self) -> Result<SendRequest<Full<Bytes>>, CallError> {
        let authority = self.endpoint.authority.as_str();
        let stream = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(authority))
            .await
            .map_err(|_| CallError::NotSent(format!("connect to {authority} timed out")))?
            .map_err(|e| CallError::NotSent(format!("connect to {authority}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| CallError::NotSent(e.to_string()))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// Sends one request to `prefix + path` and reads the whole response.
    pub(crate) async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<(Bytes, &'static str)>,
    ) -> Result<Reply, CallError> {
        let uri = format!("{}{path}", self.endpoint.prefix);
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, self.endpoint.authority.as_str())
            .header(header::AUTHORIZATION, self.token.clone());
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let body = match body {
            Some((bytes, content_type)) => {
                request = request.header(header::CONTENT_TYPE, content_type);
                Full::new(bytes)
            }
            None => Full::default(),
        };
        let request = request.body(body).map_err(|e| CallError::NotSent(e.to_string()))?;
        if let Some(local) = &self.endpoint.local {
            return local.call(request).await;
        }
        if self.sender.as_ref().is_none_or(SendRequest::is_closed) {
            self.sender = Some(self.open().await?);
        }
        let Some(sender) = self.sender.as_mut() else {
            return Err(CallError::NotSent("no connection".into()));
        };
        if let Err(e) = sender.ready().await {
            self.sender = None;
            return Err(CallError::NotSent(format!("connection closed: {e}")));
        }
        let exchange = async {
            let response = sender.send_request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, hyper::Error>(Reply { status: parts.status, headers: parts.headers, body })
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => {
                self.sender = None;
                Err(CallError::Unknown(e.to_string()))
            }
            Err(_) => {
                self.sender = None;
                Err(CallError::Unknown(format!("no response within {REQUEST_TIMEOUT:?}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("http://127.0.0.1:8787/client/v4/").unwrap();
        assert_eq!((e.authority.as_str(), e.prefix.as_str()), ("127.0.0.1:8787", "/client/v4"));
        let e = Endpoint::parse("http://node:8787").unwrap();
        assert_eq!((e.authority.as_str(), e.prefix.as_str()), ("node:8787", ""));
        assert!(Endpoint::parse("https://x/client/v4").is_err());
        assert!(Endpoint::parse("http:///client/v4").is_err());
    }
}
