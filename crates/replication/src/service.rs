//! The gRPC side a region serves to its peers: Push, Digest, Reconcile.

use std::sync::Arc;

use edgekv_core::digest::LeafId;
use edgekv_core::Timestamp;
use edgekv_core::{ItemId, ReplicatedWrite};
use edgekv_proto::pb::replication_server::{Replication, ReplicationServer};
use edgekv_proto::pb::{self};
use tonic::codegen::{http, BoxFuture, Context, Poll, Service as TowerService};
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use crate::{Shared, MAX_MESSAGE_BYTES};

/// The largest number of leaves one Reconcile may name: bounds the work of one request.
pub(crate) const MAX_RECONCILE_LEAVES: usize = 4096;

/// What applying one replicated write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// It changed the state.
    Changed,
    /// It was already known, or older than what is stored.
    Unchanged,
    /// Its timestamp is too far ahead of this region's clock; the sender should retry later.
    Skewed,
    /// It can never apply here (a namespace of another account).
    Refused,
}

impl Shared {
    /// Applies a write that arrived from `sender` by `path` (`push` or `anti_entropy`): checks
    /// its timestamp against the clock bound, applies it by LWW, and records metrics.
    pub(crate) fn apply_remote(&self, write: ReplicatedWrite, path: &'static str) -> Applied {
        let version = write.version();
        if let Err(err) = self.store.hlc().observe(version.ts) {
            self.metrics.reject("skew");
            tracing::debug!(origin = %version.origin, ahead_ms = err.ahead_ms, "refused a write from the future");
            return Applied::Skewed;
        }
        match self.store.apply_replicated(write) {
            Ok(true) => {
                let origin = version.origin.as_str();
                self.metrics.applied.with(&[origin, path]).inc();
                if path == "push" {
                    let now = self.store.hlc().physical_now_ms();
                    let lag_ms = now.saturating_sub(version.ts.physical_ms());
                    self.metrics.lag.with(&[origin]).observe(lag_ms as f64 / 1000.0);
                }
                Applied::Changed
            }
            Ok(false) => Applied::Unchanged,
            Err(err) => {
                self.metrics.reject("account");
                tracing::warn!(error = %err, "refused a replicated write");
                Applied::Refused
            }
        }
    }

    /// Whether a version is old enough to be in a digest, and so for anti-entropy to send.
    pub(crate) fn is_mature(&self, ts: Timestamp) -> bool {
        let horizon = self.store.digest_horizon().as_millis() as u64;
        ts.physical_ms().saturating_add(horizon) <= self.store.hlc().physical_now_ms()
    }

    fn check_sender(&self, sender: &str) -> Result<(), Status> {
        if sender.parse::<edgekv_core::RegionId>().is_err() {
            self.metrics.reject("malformed");
            return Err(Status::invalid_argument(format!("invalid sender region {sender:?}")));
        }
        if self.faults.blocked(sender, self.region.as_str()) {
            self.metrics.reject("partition");
            return Err(Status::unavailable("partitioned (injected fault)"));
        }
        Ok(())
    }

    fn raise_watermark(&self, sender: &str, through: u64) {
        if let (Ok(origin), true) = (sender.parse(), through > 0) {
            self.store.raise_watermark(origin, Timestamp(through));
        }
    }
}

/// The tonic service over the region's shared state.
#[derive(Clone)]
pub(crate) struct Service(pub(crate) Arc<Shared>);

#[tonic::async_trait]
impl Replication for Service {
    async fn push(
        &self,
        request: Request<pb::PushRequest>,
    ) -> Result<Response<pb::PushResponse>, Status> {
        let request = request.into_inner();
        self.0.check_sender(&request.sender)?;
        let writes = request
            .writes
            .into_iter()
            .map(ReplicatedWrite::try_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| {
                self.0.metrics.reject("malformed");
                Status::invalid_argument(err.to_string())
            })?;
        let mut response = pb::PushResponse::default();
        for (i, write) in writes.into_iter().enumerate() {
            match self.0.apply_remote(write, "push") {
                Applied::Changed => response.applied += 1,
                Applied::Skewed => response.refused.push(i as u32),
                Applied::Unchanged | Applied::Refused => {}
            }
        }
        self.0.raise_watermark(&request.sender, request.replicated_through);
        // The sender forgets what it has delivered once acknowledged: acknowledge only what
        // is durable here.
        self.0.store.flushed().await.map_err(|err| Status::unavailable(err.to_string()))?;
        Ok(Response::new(response))
    }

    async fn digest(
        &self,
        request: Request<pb::DigestRequest>,
    ) -> Result<Response<pb::DigestResponse>, Status> {
        let request = request.into_inner();
        self.0.check_sender(&request.sender)?;
        self.0.raise_watermark(&request.sender, request.replicated_through);
        let store = &self.0.store;
        let root = store.digest_root();
        let mut response = pb::DigestResponse { root, differing: Vec::new() };
        if root != request.root && !request.branches.is_empty() {
            let differing =
                edgekv_core::digest::differing(&store.digest_branches(), &request.branches);
            let differing: Vec<usize> =
                differing.into_iter().filter(|b| *b < edgekv_core::digest::FANOUT).collect();
            let leaves = store.digest_leaves(&differing);
            response.differing = differing
                .into_iter()
                .zip(leaves)
                .map(|(branch, leaves)| pb::BranchLeaves { branch: branch as u32, leaves })
                .collect();
        }
        Ok(Response::new(response))
    }

    async fn reconcile(
        &self,
        request: Request<pb::ReconcileRequest>,
    ) -> Result<Response<pb::ReconcileResponse>, Status> {
        let request = request.into_inner();
        self.0.check_sender(&request.sender)?;
        if request.leaves.len() > MAX_RECONCILE_LEAVES
            || request.leaves.iter().any(|l| *l > u32::from(u16::MAX))
        {
            self.0.metrics.reject("malformed");
            return Err(Status::invalid_argument("too many or invalid leaves"));
        }
        let leaves: Vec<LeafId> = request.leaves.iter().map(|l| LeafId(*l as u16)).collect();
        let theirs = request
            .items
            .into_iter()
            .map(<(ItemId, edgekv_core::Version)>::try_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| {
                self.0.metrics.reject("malformed");
                Status::invalid_argument(err.to_string())
            })?;
        let (newer, wanted) = self.0.reconcile(&leaves, theirs);
        let response = pb::ReconcileResponse {
            newer: newer.iter().map(pb::Write::from).collect(),
            wanted: wanted.iter().map(|(item, v)| pb::ItemVersion::from((item, *v))).collect(),
        };
        Ok(Response::new(response))
    }
}

impl Shared {
    /// The responder's half of reconciliation. Given the caller's items in `leaves`, returns the
    /// writes the caller should take (this region holds them newer, or the caller lacks them) and
    /// the items the caller should push (this region lacks them or holds them older). Only
    /// versions older than the digest horizon are sent, so anti-entropy never outruns the delay.
    pub(crate) fn reconcile(
        &self,
        leaves: &[LeafId],
        theirs: Vec<(ItemId, edgekv_core::Version)>,
    ) -> (Vec<ReplicatedWrite>, Vec<(ItemId, edgekv_core::Version)>) {
        let mut newer = Vec::new();
        let mut wanted = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (item, their_version) in theirs {
            match self.store.current(&item) {
                Some(mine) if mine.version() > their_version => {
                    if self.is_mature(mine.version().ts) {
                        newer.push(mine);
                    }
                }
                Some(mine) if mine.version() == their_version => {}
                _ => wanted.push((item.clone(), their_version)),
            }
            seen.insert(item);
        }
        for (item, _) in self.store.digest_members(leaves) {
            if seen.contains(&item) {
                continue;
            }
            if let Some(mine) = self.store.current(&item).filter(|w| self.is_mature(w.version().ts))
            {
                newer.push(mine);
            }
        }
        (newer, wanted)
    }
}

/// Checks the cluster secret on every call, and counts refusals.
#[derive(Clone)]
pub(crate) struct CheckSecret {
    expected: Arc<edgekv_core::Tokens>,
    shared: Arc<Shared>,
}

impl tonic::service::Interceptor for CheckSecret {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let given = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let ok = given.is_some_and(|g| self.expected.accepts(g));
        if ok {
            Ok(request)
        } else {
            self.shared.metrics.reject("auth");
            tracing::info!("refused a peer without the cluster secret");
            Err(Status::unauthenticated("missing or wrong cluster secret"))
        }
    }
}

/// Counts the requests refused before any handler ran because they are not protobuf messages.
/// The codec ([`edgekv_proto::codec`]) answers them with INVALID_ARGUMENT but cannot reach the
/// metrics; it marks the status, which tonic leaves in the response's extensions.
#[derive(Clone)]
pub(crate) struct CountMalformed<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, B, R> TowerService<http::Request<B>> for CountMalformed<S>
where
    S: TowerService<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let response = self.inner.call(request);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let response = response.await?;
            let status = response.extensions().get::<Status>();
            if status.is_some_and(edgekv_proto::codec::is_malformed_request) {
                shared.metrics.reject("malformed");
                tracing::debug!("refused a request that is not a protobuf message");
            }
            Ok(response)
        })
    }
}

impl<S: NamedService> NamedService for CountMalformed<S> {
    const NAME: &'static str = S::NAME;
}

/// The server a node mounts on its gRPC listener.
pub(crate) fn server(
    shared: Arc<Shared>,
) -> CountMalformed<InterceptedService<ReplicationServer<Service>, CheckSecret>> {
    let check = CheckSecret { expected: Arc::clone(&shared.secret), shared: Arc::clone(&shared) };
    let server = ReplicationServer::new(Service(Arc::clone(&shared)))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    CountMalformed { inner: InterceptedService::new(server, check), shared }
}
