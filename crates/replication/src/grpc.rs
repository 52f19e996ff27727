//! The gRPC transport: the server a region mounts for its peers (protobuf in, the
//! [`Handler`] behind it, behind the cluster secret) and the client its senders and
//! anti-entropy call them with. Conversions between protobuf and the domain messages are here
//! and only here; a message that does not convert is refused as malformed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use edgekv_core::{ItemId, RegionId, ReplicatedWrite, Timestamp, Version};
use edgekv_proto::pb::replication_client::ReplicationClient;
use edgekv_proto::pb::replication_server::{Replication, ReplicationServer};
use edgekv_proto::pb::{self};
use futures_util::future::BoxFuture;
use parking_lot::RwLock;
use tonic::codegen::{http, Context, Poll, Service as TowerService};
use tonic::metadata::MetadataValue;
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status};

use crate::handler::{Handler, MAX_RECONCILE_LEAVES};
use crate::messages::{
    DigestQuery, DigestReply, Purpose, Push, PushReply, ReconcileQuery, ReconcileReply,
    TransportError,
};
use crate::transport::Transport;
use crate::{PeerConfig, Shared, StartError, KEEPALIVE, MAX_MESSAGE_BYTES};

/// The tonic service over a region's handler.
#[derive(Clone)]
pub(crate) struct Server(Handler);

fn status(err: TransportError) -> Status {
    match err {
        TransportError::Unavailable(why) => Status::unavailable(why),
        TransportError::Lost => Status::unavailable("lost"),
        TransportError::Refused(why) => Status::invalid_argument(why),
        TransportError::NotMember(why) => Status::failed_precondition(why),
    }
}

fn region(raw: &str, shared: &Shared) -> Result<RegionId, Status> {
    raw.parse().map_err(|_| {
        shared.metrics.reject("malformed");
        Status::invalid_argument(format!("invalid sender region {raw:?}"))
    })
}

fn malformed(shared: &Shared, err: impl std::fmt::Display) -> Status {
    shared.metrics.reject("malformed");
    Status::invalid_argument(err.to_string())
}

#[tonic::async_trait]
impl Replication for Server {
    async fn push(
        &self,
        request: Request<pb::PushRequest>,
    ) -> Result<Response<pb::PushResponse>, Status> {
        let shared = &self.0 .0;
        let request = request.into_inner();
        let sender = region(&request.sender, shared)?;
        let writes = request
            .writes
            .into_iter()
            .map(ReplicatedWrite::try_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| malformed(shared, err))?;
        let push = Push {
            sender,
            born: Timestamp(request.born),
            writes,
            replicated_through: request.replicated_through,
            purpose: Purpose::Delivery,
        };
        let reply = self.0.push(push).await.map_err(status)?;
        Ok(Response::new(pb::PushResponse { applied: reply.applied, refused: reply.refused }))
    }

    async fn digest(
        &self,
        request: Request<pb::DigestRequest>,
    ) -> Result<Response<pb::DigestResponse>, Status> {
        let shared = &self.0 .0;
        let request = request.into_inner();
        let query = DigestQuery {
            sender: region(&request.sender, shared)?,
            born: Timestamp(request.born),
            root: request.root,
            branches: request.branches,
            replicated_through: request.replicated_through,
        };
        let reply = self.0.digest(query).map_err(status)?;
        let differing = reply
            .differing
            .into_iter()
            .map(|(branch, leaves)| pb::BranchLeaves { branch: branch as u32, leaves })
            .collect();
        Ok(Response::new(pb::DigestResponse { root: reply.root, differing, born: reply.born.0 }))
    }

    async fn reconcile(
        &self,
        request: Request<pb::ReconcileRequest>,
    ) -> Result<Response<pb::ReconcileResponse>, Status> {
        let shared = &self.0 .0;
        let request = request.into_inner();
        let sender = region(&request.sender, shared)?;
        if request.leaves.len() > MAX_RECONCILE_LEAVES
            || request.leaves.iter().any(|l| *l > u32::from(u16::MAX))
        {
            return Err(malformed(shared, "too many or invalid leaves"));
        }
        let items = request
            .items
            .into_iter()
            .map(<(ItemId, Version)>::try_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| malformed(shared, err))?;
        let leaves = request.leaves.iter().map(|l| *l as u16).collect();
        let query = ReconcileQuery { sender, born: Timestamp(request.born), leaves, items };
        let reply = self.0.reconcile(query).map_err(status)?;
        Ok(Response::new(pb::ReconcileResponse {
            newer: reply.newer.iter().map(pb::Write::from).collect(),
            wanted: reply
                .wanted
                .iter()
                .map(|(item, v)| pb::ItemVersion::from((item, *v)))
                .collect(),
            born: reply.born.0,
        }))
    }

    async fn identify(
        &self,
        request: Request<pb::IdentifyRequest>,
    ) -> Result<Response<pb::IdentifyResponse>, Status> {
        let shared = &self.0 .0;
        region(&request.into_inner().sender, shared)?;
        let (region, born) = self.0.identify();
        Ok(Response::new(pb::IdentifyResponse { region: region.as_str().to_owned(), born: born.0 }))
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
    type Future = tonic::codegen::BoxFuture<S::Response, S::Error>;

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
    handler: Handler,
) -> CountMalformed<InterceptedService<ReplicationServer<Server>, CheckSecret>> {
    let shared = Arc::clone(&handler.0);
    let check = CheckSecret { expected: Arc::clone(&shared.secret), shared: Arc::clone(&shared) };
    let server = ReplicationServer::new(Server(handler))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    CountMalformed { inner: InterceptedService::new(server, check), shared }
}

/// Adds the cluster secret to every outgoing call.
#[derive(Clone)]
pub(crate) struct AddSecret(MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for AddSecret {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A client of one peer.
type PeerClient = ReplicationClient<InterceptedService<Channel, AddSecret>>;

/// Reaches a region's peers over gRPC. Peers can be added, moved and dropped while it runs.
pub struct GrpcTransport {
    region: RegionId,
    header: MetadataValue<tonic::metadata::Ascii>,
    timeout: Duration,
    peers: RwLock<HashMap<RegionId, (String, PeerClient)>>,
}

impl std::fmt::Debug for GrpcTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let peers: Vec<RegionId> = self.peers.read().keys().copied().collect();
        f.debug_struct("GrpcTransport").field("peers", &peers).finish()
    }
}

impl GrpcTransport {
    /// Clients of `peers`, presenting `secret`, each call timing out after `timeout`. Nothing
    /// connects until the first call.
    pub fn new(
        region: RegionId,
        peers: &[PeerConfig],
        secret: &str,
        timeout: Duration,
    ) -> Result<Self, StartError> {
        let secret = secret.trim();
        if secret.is_empty() {
            return Err(StartError::Secret);
        }
        let header =
            MetadataValue::try_from(format!("Bearer {secret}")).map_err(|_| StartError::Secret)?;
        let transport =
            GrpcTransport { region, header, timeout, peers: RwLock::new(HashMap::new()) };
        for peer in peers {
            transport
                .connect(peer)
                .map_err(|_| StartError::PeerUrl { peer: peer.name, url: peer.url.clone() })?;
        }
        Ok(transport)
    }

    /// A lazily connecting client of the region at `url`.
    fn client_of(&self, url: &str) -> Result<PeerClient, TransportError> {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|_| TransportError::Refused(format!("invalid URL {url:?}")))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(self.timeout)
            // Small responses must not wait for Nagle's algorithm to meet the peer's delayed
            // ACK: that adds tens of milliseconds to the tail of every delivery.
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE)
            .keep_alive_while_idle(true)
            .keep_alive_timeout(KEEPALIVE);
        Ok(ReplicationClient::with_interceptor(
            endpoint.connect_lazy(),
            AddSecret(self.header.clone()),
        )
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    fn client(&self, to: RegionId) -> Result<PeerClient, TransportError> {
        let peers = self.peers.read();
        let found = peers.get(&to).map(|(_, client)| client.clone());
        found.ok_or_else(|| TransportError::Refused(format!("no peer {to}")))
    }

    /// Asks the region at `url` its name and its store's birth.
    pub async fn identify(&self, url: &str) -> Result<(RegionId, Timestamp), TransportError> {
        let request = pb::IdentifyRequest { sender: self.region.as_str().to_owned() };
        let reply = self.client_of(url)?.identify(request).await.map_err(transport_error)?;
        let reply = reply.into_inner();
        let region = reply.region.parse().map_err(|_| {
            TransportError::Refused(format!("{url} answered an invalid region {:?}", reply.region))
        })?;
        Ok((region, Timestamp(reply.born)))
    }
}

fn transport_error(status: Status) -> TransportError {
    match status.code() {
        Code::FailedPrecondition => TransportError::NotMember(status.message().to_owned()),
        Code::InvalidArgument | Code::Unauthenticated | Code::PermissionDenied => {
            TransportError::Refused(status.message().to_owned())
        }
        _ => TransportError::Unavailable(status.message().to_owned()),
    }
}

/// A value of a peer's answer, or `None` (logged) if it does not decode.
fn decoded<W, T>(peer: RegionId, wire: W) -> Option<T>
where
    T: TryFrom<W>,
    T::Error: std::fmt::Display,
{
    T::try_from(wire)
        .inspect_err(
            |error| tracing::warn!(%peer, %error, "skipped an undecodable item of a peer's answer"),
        )
        .ok()
}

impl Transport for GrpcTransport {
    fn connect(&self, peer: &PeerConfig) -> Result<(), TransportError> {
        let mut peers = self.peers.write();
        if peers.get(&peer.name).is_some_and(|(url, _)| *url == peer.url) {
            return Ok(());
        }
        let client = self.client_of(&peer.url)?;
        peers.insert(peer.name, (peer.url.clone(), client));
        Ok(())
    }

    fn disconnect(&self, peer: RegionId) {
        self.peers.write().remove(&peer);
    }

    fn push(&self, to: RegionId, push: Push) -> BoxFuture<'_, Result<PushReply, TransportError>> {
        Box::pin(async move {
            let request = pb::PushRequest {
                sender: self.region.as_str().to_owned(),
                writes: push.writes.iter().map(pb::Write::from).collect(),
                replicated_through: push.replicated_through,
                born: push.born.0,
            };
            let reply = self.client(to)?.push(request).await.map_err(transport_error)?;
            let reply = reply.into_inner();
            Ok(PushReply { applied: reply.applied, refused: reply.refused })
        })
    }

    fn digest(
        &self,
        to: RegionId,
        query: DigestQuery,
    ) -> BoxFuture<'_, Result<DigestReply, TransportError>> {
        Box::pin(async move {
            let request = pb::DigestRequest {
                sender: self.region.as_str().to_owned(),
                root: query.root,
                branches: query.branches,
                replicated_through: query.replicated_through,
                born: query.born.0,
            };
            let reply = self.client(to)?.digest(request).await.map_err(transport_error)?;
            let reply = reply.into_inner();
            let differing =
                reply.differing.into_iter().map(|b| (b.branch as usize, b.leaves)).collect();
            Ok(DigestReply { born: Timestamp(reply.born), root: reply.root, differing })
        })
    }

    fn reconcile(
        &self,
        to: RegionId,
        query: ReconcileQuery,
    ) -> BoxFuture<'_, Result<ReconcileReply, TransportError>> {
        Box::pin(async move {
            let request = pb::ReconcileRequest {
                sender: self.region.as_str().to_owned(),
                leaves: query.leaves.iter().map(|l| u32::from(*l)).collect(),
                items: query.items.iter().map(|(i, v)| pb::ItemVersion::from((i, *v))).collect(),
                born: query.born.0,
            };
            let reply = self.client(to)?.reconcile(request).await.map_err(transport_error)?;
            let reply = reply.into_inner();
            // One undecodable item does not spoil the rest of a repair.
            let newer = reply.newer.into_iter().filter_map(|w| decoded(to, w)).collect();
            let wanted = reply.wanted.into_iter().filter_map(|i| decoded(to, i)).collect();
            Ok(ReconcileReply { born: Timestamp(reply.born), newer, wanted })
        })
    }
}
