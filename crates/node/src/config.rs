//! What one regional node needs, resolved and validated ([`RegionConfig`]), and how the
//! layered [`Settings`] of `edgekv node` and `edgekv cluster` become one or several of them.
//!
//! The credentials are resolved here once for all: blank entries of any token list or secret
//! are dropped (a trailing comma is a typo, not an empty token), a node on loopback with none
//! left gets the documented development default, and a node reachable from other machines
//! refuses to start without a real one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use edgekv_core::{RegionId, Tokens};
use edgekv_replication::{PeerConfig, ReplicationConfig};

use crate::settings::Settings;

/// Where data lives when no directory is given: `./data/REGION` for each region.
pub const DEFAULT_DATA_DIR: &str = "data";

/// The cluster secret regions on loopback use when none is configured.
pub const DEV_CLUSTER_SECRET: &str = "edgekv-dev-cluster-secret";

/// The admin token a node on loopback accepts when none is configured.
pub const DEV_ADMIN_TOKEN: &str = "edgekv-dev-admin-token";

/// Everything one regional node needs, resolved and validated.
#[derive(Debug, Clone)]
pub struct RegionConfig {
    /// The region's name.
    pub region: RegionId,
    /// Where its HTTP API listens.
    pub listen: SocketAddr,
    /// Where its gRPC replication service listens.
    pub grpc_listen: SocketAddr,
    /// Accepted API tokens; never empty once resolved.
    pub api_tokens: Vec<String>,
    /// Accepted admin tokens; never empty once resolved.
    pub admin_tokens: Vec<String>,
    /// How long tombstones are kept.
    pub tombstone_grace: Duration,
    /// Replication settings (peers, delays, seed, secret, intervals).
    pub replication: edgekv_replication::ReplicationConfig,
    /// Largest accepted lead of a peer's timestamp over the local clock.
    pub max_clock_skew: Duration,
    /// Where the region keeps its data.
    pub storage: Storage,
    /// A fixed offset added to the wall clock, in milliseconds (negative: behind). For
    /// experiments and tests of clock skew and of a clock set back across a restart.
    pub clock_offset_ms: i64,
    /// How many apply events to keep for the consistency lab (`/admin/applies`); 0: none.
    pub apply_log: usize,
    /// Free space the durable store keeps for its engine; writes are refused below it.
    pub storage_reserve: edgekv_store::Reserve,
    /// Timeouts and the connection bound of the HTTP and gRPC listeners.
    pub limits: crate::serve::Limits,
    /// Bytes of request and response bodies all requests together may hold.
    pub body_memory: u64,
    /// The physical clock under the region's HLC (the system clock; a simulator's virtual
    /// clock).
    pub clock: Arc<dyn edgekv_core::PhysicalClock>,
    /// What the region's replication waits on (the runtime's timers; a simulator's).
    pub timers: Arc<dyn edgekv_core::Timers>,
}

/// Where a region keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// Nothing survives a restart; for tests and quick experiments.
    InMemory,
    /// The durable store in `dir`.
    Disk {
        /// The region's data directory.
        dir: std::path::PathBuf,
        /// When an acknowledged write reaches the disk.
        durability: edgekv_store::Durability,
    },
}

impl std::fmt::Display for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Storage::InMemory => f.write_str("in-memory"),
            Storage::Disk { dir, durability } => write!(f, "{} ({durability})", dir.display()),
        }
    }
}

impl RegionConfig {
    /// A config for tests: loopback, port 0, development tokens, no peers, no delay.
    ///
    /// # Panics
    /// If `region` is not a valid region name; tests name their regions with literals.
    pub fn for_test(region: &str) -> Self {
        Self::loopback(region.parse().expect("test region names are valid"))
    }

    /// A region on loopback with system-chosen ports, the development tokens, no peers and no
    /// delay: the lab's in-process clusters and tests start from it.
    pub fn loopback(region: RegionId) -> Self {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut replication = edgekv_replication::ReplicationConfig::new(
            region,
            Vec::new(),
            DEV_CLUSTER_SECRET.to_owned(),
        );
        replication.anti_entropy_interval = Duration::from_secs(1);
        replication.max_backoff = Duration::from_millis(500);
        RegionConfig {
            region,
            listen: any_port,
            grpc_listen: any_port,
            api_tokens: vec![edgekv_api::DEV_TOKEN.to_owned()],
            admin_tokens: vec![DEV_ADMIN_TOKEN.to_owned()],
            tombstone_grace: Duration::from_secs(60),
            replication,
            max_clock_skew: edgekv_core::Hlc::DEFAULT_MAX_DELTA,
            storage: Storage::InMemory,
            clock_offset_ms: 0,
            apply_log: 0,
            storage_reserve: edgekv_store::Reserve::default(),
            limits: crate::serve::Limits::generous(),
            body_memory: 256 << 20,
            clock: Arc::new(edgekv_core::SystemClock),
            timers: Arc::new(edgekv_replication::TokioTimers),
        }
    }
}

/// The one region of `edgekv node`.
pub fn node_config(settings: &Settings) -> anyhow::Result<RegionConfig> {
    let region = settings.region.context(
        "no region given: pass --region NAME, set EDGEKV_REGION, or set region in the config file",
    )?;
    let listen = settings.listen;
    let grpc_listen = match settings.grpc_listen {
        Some(addr) => addr,
        None => grpc_beside(listen)?,
    };
    let peers = settings.peers.0.clone();
    if peers.iter().any(|p| p.name == region) {
        bail!("region {region} lists itself as a peer");
    }
    // An explicit directory is the region's own; the default keeps the cluster's layout, so
    // `edgekv node --region wnam` finds the data `edgekv cluster` wrote for wnam.
    region_config(settings, region, listen, grpc_listen, peers, |root| {
        if settings.data_dir.is_some() {
            root.to_path_buf()
        } else {
            root.join(region.as_str())
        }
    })
}

/// Every region of `edgekv cluster`: region i on port + i and grpc_port + i, each with its
/// directory under the data directory. Peers are filled in once every region is bound.
pub fn cluster_configs(settings: &Settings) -> anyhow::Result<Vec<RegionConfig>> {
    let host = settings.host;
    let base_port = settings.port;
    let grpc_base = match settings.grpc_port {
        Some(port) => port,
        None => grpc_beside(SocketAddr::new(host, base_port))?.port(),
    };
    let port_of = |base: u16, i: usize| -> anyhow::Result<u16> {
        if base == 0 {
            return Ok(0);
        }
        let offset = u16::try_from(i).context("too many regions")?;
        base.checked_add(offset).context("region ports run past 65535")
    };
    let mut configs: Vec<RegionConfig> = Vec::new();
    for (i, &region) in settings.regions.iter().enumerate() {
        if configs.iter().any(|r| r.region == region) {
            bail!("region {region} is listed twice");
        }
        let listen = SocketAddr::new(host, port_of(base_port, i)?);
        let grpc = SocketAddr::new(host, port_of(grpc_base, i)?);
        let dir = |root: &std::path::Path| root.join(region.as_str());
        configs.push(region_config(settings, region, listen, grpc, Vec::new(), dir)?);
    }
    if configs.is_empty() {
        bail!("--regions needs at least one region name");
    }
    Ok(configs)
}

fn region_config(
    settings: &Settings,
    region: RegionId,
    listen: SocketAddr,
    grpc_listen: SocketAddr,
    peers: Vec<PeerConfig>,
    dir: impl FnOnce(&std::path::Path) -> PathBuf,
) -> anyhow::Result<RegionConfig> {
    let api_tokens = resolve_tokens(&settings.api_tokens, listen, Credential::Api)?;
    let secret =
        resolve_tokens(settings.cluster_secret.as_slice(), grpc_listen, Credential::ClusterSecret)?;
    let admin_tokens = resolve_tokens(&settings.admin_tokens, listen, Credential::Admin)?;
    let mut replication =
        ReplicationConfig::new(region, peers, secret.first().unwrap_or_default().to_owned());
    replication.delays = latency_matrix(&settings.delay, &settings.link_delays);
    replication.seed = settings.seed;
    replication.anti_entropy_interval = settings.anti_entropy_interval;
    let storage = match &settings.data_dir {
        _ if settings.in_memory => Storage::InMemory,
        Some(root) => Storage::Disk { dir: dir(root), durability: settings.durability },
        None => Storage::Disk {
            dir: dir(std::path::Path::new(DEFAULT_DATA_DIR)),
            durability: settings.durability,
        },
    };
    Ok(RegionConfig {
        region,
        listen,
        grpc_listen,
        api_tokens: api_tokens.iter().map(str::to_owned).collect(),
        admin_tokens: admin_tokens.iter().map(str::to_owned).collect(),
        tombstone_grace: settings.tombstone_grace,
        replication,
        max_clock_skew: settings.max_clock_skew,
        storage,
        clock_offset_ms: settings.clock_offset.0,
        apply_log: settings.apply_log,
        storage_reserve: settings.storage_reserve,
        limits: crate::serve::Limits {
            timeouts: crate::serve::Timeouts {
                header: settings.header_timeout,
                body: settings.body_timeout,
                idle: settings.idle_timeout,
                send: settings.send_timeout,
            },
            max_connections: settings.max_connections.max(1),
        },
        body_memory: settings.body_memory.0,
        clock: Arc::new(edgekv_core::SystemClock),
        timers: Arc::new(edgekv_replication::TokioTimers),
    })
}

/// The gRPC address next to an HTTP address: same host, port + 1000 (0 stays 0).
fn grpc_beside(http: SocketAddr) -> anyhow::Result<SocketAddr> {
    let port = match http.port() {
        0 => 0,
        p => p
            .checked_add(1000)
            .context("the HTTP port is too high to put gRPC at port + 1000; set --grpc-listen")?,
    };
    Ok(SocketAddr::new(http.ip(), port))
}

/// The credentials a node checks, each with its development default and its variable.
#[derive(Clone, Copy, Debug)]
enum Credential {
    Api,
    Admin,
    ClusterSecret,
}

impl Credential {
    fn dev_default(self) -> &'static str {
        match self {
            Credential::Api => edgekv_api::DEV_TOKEN,
            Credential::Admin => DEV_ADMIN_TOKEN,
            Credential::ClusterSecret => DEV_CLUSTER_SECRET,
        }
    }

    fn describe(self) -> (&'static str, &'static str) {
        match self {
            Credential::Api => ("an API token", "EDGEKV_API_TOKEN (comma-separated)"),
            Credential::Admin => ("an admin token", "EDGEKV_ADMIN_TOKEN (comma-separated)"),
            Credential::ClusterSecret => ("a cluster secret", "EDGEKV_CLUSTER_SECRET"),
        }
    }
}

/// Decides which tokens a node listening on `listen` accepts for `what`: the configured ones
/// without blanks; with none left, the development default on loopback, and on any other
/// address a refusal to start, because a node reachable from other machines would otherwise be
/// open to anyone who has read the README.
fn resolve_tokens(
    configured: &[String],
    listen: SocketAddr,
    what: Credential,
) -> anyhow::Result<Tokens> {
    let tokens = Tokens::new(configured);
    if !tokens.is_empty() {
        return Ok(tokens);
    }
    if listen.ip().is_loopback() {
        return Ok(Tokens::new([what.dev_default()]));
    }
    let (name, variable) = what.describe();
    bail!(
        "refusing to listen on {listen} without {name}: set {variable} or the config file \
         (blank entries do not count); the development default is only used on loopback"
    )
}

/// The latency matrix of a default model and per-link overrides.
pub fn latency_matrix(
    default: &edgekv_core::DelayModel,
    links: &[edgekv_core::LinkDelay],
) -> edgekv_core::LatencyMatrix {
    let mut matrix = edgekv_core::LatencyMatrix::new(default.clone());
    for link in links {
        matrix.set(link.clone());
    }
    matrix
}

/// Builds the latency matrix from a model and per-link overrides written as text (tests).
pub fn parse_latency_matrix(
    default: &str,
    links: &[String],
) -> anyhow::Result<edgekv_core::LatencyMatrix> {
    let default = default.parse().with_context(|| format!("delay {default:?}"))?;
    let links = links
        .iter()
        .map(|l| l.parse().with_context(|| format!("link delay {l:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(latency_matrix(&default, &links))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_tokens_are_dropped_and_none_left_means_the_dev_default_on_loopback_only() {
        let loopback: SocketAddr = "127.0.0.1:8787".parse().unwrap();
        let v6: SocketAddr = "[::1]:8787".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8787".parse().unwrap();
        for what in [Credential::Api, Credential::Admin, Credential::ClusterSecret] {
            let dev = Tokens::new([what.dev_default()]);
            assert_eq!(resolve_tokens(&[], loopback, what).unwrap(), dev);
            assert_eq!(resolve_tokens(&[" ".into(), "".into()], v6, what).unwrap(), dev);
            let err = resolve_tokens(&[" ".into(), "".into()], any, what).unwrap_err();
            assert!(err.to_string().contains(what.describe().1), "{err}");
            let real = resolve_tokens(&["realsecret".into(), "".into()], any, what).unwrap();
            assert!(real.accepts("realsecret") && !real.accepts(""));
        }
    }

    #[test]
    fn latency_matrices_parse() {
        let matrix = parse_latency_matrix("uniform(1s,5s)", &["wnam->weur=30s".into()]).unwrap();
        assert_eq!(matrix.model("wnam", "weur").max(), Duration::from_secs(30));
        let err = parse_latency_matrix("90s", &[]).unwrap_err();
        assert!(format!("{err:#}").contains("60 s"), "{err:#}");
    }
}
