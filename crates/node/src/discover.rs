//! Peers found through DNS: a name that resolves to every region's address (a Kubernetes
//! headless Service, a Docker network alias shared by the regions' services), looked up again
//! and again. Each address not yet a member's is asked who it is (the Identify call) and added.
//!
//! Discovery only adds. A region that disappears from DNS is most often down or being
//! rescheduled, not gone; removing it would stop the others waiting for it and fence its data.
//! Leaving is an explicit act (`DELETE /admin/peers/{region}`, `edgekv chaos leave`), and a
//! region removed that way is not added back by discovery, even while its name still
//! resolves. A member found at a new address (a pod rescheduled) is moved there.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use edgekv_core::RegionId;
use edgekv_replication::members::Change;
use edgekv_replication::{GrpcTransport, Members, PeerConfig};
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

/// Longest wait for one address to say who it is.
const IDENTIFY_TIMEOUT: Duration = Duration::from_secs(2);

/// DNS names (`host:port`) to find the peers by, and how often to look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discovery {
    /// Names that resolve to the peers' gRPC addresses, each with the port.
    pub names: Vec<String>,
    /// How often they are resolved again.
    pub interval: Duration,
}

impl Default for Discovery {
    fn default() -> Self {
        Discovery { names: Vec::new(), interval: Duration::from_secs(10) }
    }
}

/// How names become addresses: the system resolver, or a test's table.
pub trait Resolve: Send + Sync + 'static {
    /// The addresses `name` (`host:port`) resolves to now.
    fn resolve<'a>(&'a self, name: &'a str) -> BoxFuture<'a, std::io::Result<Vec<SocketAddr>>>;
}

/// The system's resolver, as every other program on the host uses it.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(&'a self, name: &'a str) -> BoxFuture<'a, std::io::Result<Vec<SocketAddr>>> {
        Box::pin(async move { Ok(tokio::net::lookup_host(name).await?.collect()) })
    }
}

/// Who an address is: the gRPC transport's Identify, or a test's stand-in.
pub trait Identify: Send + Sync + 'static {
    /// The region answering at `url`.
    fn identify<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Option<RegionId>>;
}

impl Identify for GrpcTransport {
    fn identify<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Option<RegionId>> {
        Box::pin(async move {
            match tokio::time::timeout(IDENTIFY_TIMEOUT, GrpcTransport::identify(self, url)).await {
                Ok(Ok((region, _born))) => Some(region),
                Ok(Err(error)) => {
                    tracing::debug!(url, %error, "an address did not say who it is");
                    None
                }
                Err(_) => None,
            }
        })
    }
}

/// Resolves the names every interval and adds the regions found, until `shutdown`.
pub async fn run(
    me: RegionId,
    discovery: Discovery,
    resolver: Arc<dyn Resolve>,
    identify: Arc<dyn Identify>,
    members: Members,
    shutdown: CancellationToken,
) {
    let mut round = Round { me, own: HashSet::new(), warned: HashSet::new() };
    loop {
        for name in &discovery.names {
            match resolver.resolve(name).await {
                Ok(addrs) => round.consider(&addrs, identify.as_ref(), &members).await,
                Err(error) => tracing::debug!(name, %error, "peer name did not resolve"),
            }
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(discovery.interval) => {}
        }
    }
}

/// What discovery remembers between lookups.
struct Round {
    me: RegionId,
    /// Addresses that turned out to be this region.
    own: HashSet<String>,
    /// Removed regions already logged as not added back.
    warned: HashSet<RegionId>,
}

impl Round {
    async fn consider(&mut self, addrs: &[SocketAddr], identify: &dyn Identify, members: &Members) {
        for addr in addrs {
            let url = edgekv_replication::grpc_url(*addr);
            let known = members.list();
            if self.own.contains(&url) || known.iter().any(|p| p.member && p.url == url) {
                continue;
            }
            let Some(region) = identify.identify(&url).await else { continue };
            if region == self.me {
                self.own.insert(url);
                continue;
            }
            if known.iter().any(|p| p.name == region && !p.member) {
                if self.warned.insert(region) {
                    tracing::warn!(%region, %url, "found a region that was removed; not adding it back");
                }
                continue;
            }
            match members.add(&PeerConfig { name: region, url: url.clone() }) {
                Ok(Change::Joined) => tracing::info!(%region, %url, "discovered a peer"),
                Ok(Change::Moved) => tracing::info!(%region, %url, "a peer moved"),
                Ok(Change::Unchanged) => {}
                Err(error) => {
                    tracing::warn!(%region, %url, %error, "could not add a discovered peer")
                }
            }
        }
    }
}
