//! What one regional node needs, resolved and validated: [`RegionConfig`]. How settings from a
//! file, the environment and flags become one is the command line's business (`edgekv-cli`);
//! tests, the lab and a simulator build theirs directly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use edgekv_core::RegionId;

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
    /// Where it serves the Workers binding protocol (workerd's KV service).
    pub binding_listen: SocketAddr,
    /// Where the admin API listens when not with the REST API: a port of its own lets a
    /// firewall or a NetworkPolicy keep it private while the KV API is public.
    pub admin_listen: Option<SocketAddr>,
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
    /// Most memory the durable store's engine holds, in bytes (see
    /// [`edgekv_store::StoreConfig::engine_memory`]).
    pub storage_memory: u64,
    /// Timeouts and the connection bound of the HTTP and gRPC listeners.
    pub limits: crate::serve::Limits,
    /// Bytes of request and response bodies all requests together may hold.
    pub body_memory: u64,
    /// The edge read cache and the write rate, as on a Workers KV location.
    pub edge: edgekv_api::EdgeConfig,
    /// The physical clock under the region's HLC (the system clock; a simulator's virtual
    /// clock).
    pub clock: Arc<dyn edgekv_core::PhysicalClock>,
    /// What the region's replication waits on (the runtime's timers; a simulator's).
    pub timers: Arc<dyn edgekv_core::Timers>,
    /// DNS names to find peers by, besides `replication.peers`.
    pub discovery: crate::discover::Discovery,
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
            binding_listen: any_port,
            admin_listen: None,
            api_tokens: vec![edgekv_api::DEV_TOKEN.to_owned()],
            admin_tokens: vec![DEV_ADMIN_TOKEN.to_owned()],
            tombstone_grace: Duration::from_secs(60),
            replication,
            max_clock_skew: edgekv_core::Hlc::DEFAULT_MAX_DELTA,
            storage: Storage::InMemory,
            clock_offset_ms: 0,
            apply_log: 0,
            storage_reserve: edgekv_store::Reserve::default(),
            storage_memory: edgekv_store::DEFAULT_ENGINE_MEMORY,
            limits: crate::serve::Limits::generous(),
            body_memory: 256 << 20,
            edge: edgekv_api::EdgeConfig::WORKERS_KV,
            clock: Arc::new(edgekv_core::SystemClock),
            timers: Arc::new(edgekv_replication::TokioTimers),
            discovery: crate::discover::Discovery::default(),
        }
    }
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
    fn latency_matrices_parse() {
        let matrix = parse_latency_matrix("uniform(1s,5s)", &["wnam->weur=30s".into()]).unwrap();
        assert_eq!(matrix.model("wnam", "weur").max(), Duration::from_secs(30));
        let err = parse_latency_matrix("90s", &[]).unwrap_err();
        assert!(format!("{err:#}").contains("60 s"), "{err:#}");
    }
}
