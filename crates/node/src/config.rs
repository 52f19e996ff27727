//! Node configuration, layered: TOML file, then `EDGEKV_*` environment, then command-line flags,
//! each overriding the one before. `deploy/edgekv.toml` is a commented sample.
//!
//! clap reads each flag with its environment variable as the fallback, so "flag over
//! environment" comes from clap, and [`FileConfig`] fills in whatever neither set.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use edgekv_core::RegionId;
use serde::Deserialize;

/// Default HTTP listen address of `edgekv node`, and base port of `edgekv cluster`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";

/// Default time a tombstone is kept before it is forgotten.
pub const DEFAULT_TOMBSTONE_GRACE: Duration = Duration::from_secs(24 * 3600);

/// Where data lives when no directory is given: `./data/REGION` for each region.
pub const DEFAULT_DATA_DIR: &str = "data";

/// The TOML configuration file. Every field is optional; see `deploy/edgekv.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Region name of `edgekv node`.
    pub region: Option<String>,
    /// HTTP listen address of `edgekv node`.
    pub listen: Option<SocketAddr>,
    /// Regions of `edgekv cluster`.
    pub regions: Option<Vec<String>>,
    /// Base HTTP port of `edgekv cluster`.
    pub port: Option<u16>,
    /// Host that `edgekv cluster` binds every region to.
    pub host: Option<std::net::IpAddr>,
    /// Accepted API tokens.
    pub api_tokens: Option<Vec<String>>,
    /// Keep all data in memory instead of in `data_dir`.
    pub in_memory: Option<bool>,
    /// Data directory: the region's own for `edgekv node`, one subdirectory per region for
    /// `edgekv cluster`.
    pub data_dir: Option<std::path::PathBuf>,
    /// `fsync` (default), `periodic(MS)` or `none`.
    pub durability: Option<String>,
    /// Offset added to the wall clock, e.g. `"-1h"` (experiments only).
    pub clock_offset: Option<String>,
    /// Apply events kept for the consistency lab (`/admin/applies`); 0 or absent: off.
    pub apply_log: Option<usize>,
    /// How long tombstones are kept, e.g. `"24h"`.
    pub tombstone_grace: Option<String>,
    /// gRPC listen address of `edgekv node`, for peers.
    pub grpc_listen: Option<SocketAddr>,
    /// Base gRPC port of `edgekv cluster`; region i listens on `grpc_port + i`.
    pub grpc_port: Option<u16>,
    /// Peer regions of `edgekv node`: region name to gRPC URL.
    pub peers: Option<std::collections::BTreeMap<String, String>>,
    /// Default propagation delay model of every link, e.g. `"uniform(1s,5s)"`.
    pub delay: Option<String>,
    /// Per-link overrides, e.g. `["wnam->weur=normal(8s,2s)"]`.
    pub link_delays: Option<Vec<String>>,
    /// Seed of every sampled delay and fault decision.
    pub seed: Option<u64>,
    /// Secret every region presents to its peers.
    pub cluster_secret: Option<String>,
    /// Tokens of the admin API.
    pub admin_tokens: Option<Vec<String>>,
    /// Mean interval between anti-entropy rounds, e.g. `"30s"`.
    pub anti_entropy_interval: Option<String>,
    /// Largest lead of a peer's timestamp over the local clock that is accepted, e.g. `"500ms"`.
    pub max_clock_skew: Option<String>,
}

impl FileConfig {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parse config file {}", path.display()))
    }
}

/// The cluster secret regions on loopback use when none is configured.
pub const DEV_CLUSTER_SECRET: &str = "edgekv-dev-cluster-secret";

/// The admin token a node on loopback accepts when none is configured.
pub const DEV_ADMIN_TOKEN: &str = "edgekv-dev-admin-token";

/// Default interval between anti-entropy rounds with each peer.
pub const DEFAULT_ANTI_ENTROPY_INTERVAL: Duration = Duration::from_secs(30);

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
        }
    }
}

/// Like [`resolve_tokens`] for a secret that has a development default on loopback.
pub fn resolve_secret(
    configured: Option<String>,
    listen: SocketAddr,
    dev_default: &str,
    what: &str,
    variable: &str,
) -> anyhow::Result<String> {
    match configured.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
        Some(secret) => Ok(secret),
        None if listen.ip().is_loopback() => Ok(dev_default.to_owned()),
        None => bail!(
            "refusing to listen on {listen} without a {what}: set {variable} or the config file; \
             the development default is only used on loopback"
        ),
    }
}

/// Builds the latency matrix from a default model and per-link overrides.
pub fn latency_matrix(
    default: Option<&str>,
    links: &[String],
) -> anyhow::Result<edgekv_core::LatencyMatrix> {
    let default = match default {
        Some(text) => text.parse().with_context(|| format!("delay {text:?}"))?,
        None => edgekv_core::DelayModel::default(),
    };
    let mut matrix = edgekv_core::LatencyMatrix::new(default);
    for link in links {
        matrix.set(link.parse().with_context(|| format!("link delay {link:?}"))?);
    }
    Ok(matrix)
}

/// Parses a `NAME=URL` peer.
pub fn parse_peer(text: &str) -> anyhow::Result<edgekv_replication::PeerConfig> {
    let (name, url) = text
        .split_once('=')
        .with_context(|| format!("invalid peer {text:?}: expected NAME=http://HOST:PORT"))?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("invalid peer {text:?}: the URL must start with http:// or https://");
    }
    Ok(edgekv_replication::PeerConfig { name: parse_region(name)?, url: url.trim().to_owned() })
}

/// Parses a region name with a message that says what is allowed.
pub fn parse_region(name: &str) -> anyhow::Result<RegionId> {
    Ok(name.trim().parse()?)
}

/// Decides which API tokens a node on `listen` accepts.
///
/// With none configured, a node on loopback accepts the documented development token so that a
/// local cluster works out of the box; a node reachable from other machines refuses to start,
/// because it would otherwise be open to anyone who has read the README.
pub fn resolve_tokens(configured: Vec<String>, listen: SocketAddr) -> anyhow::Result<Vec<String>> {
    let tokens: Vec<String> =
        configured.into_iter().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect();
    if !tokens.is_empty() {
        return Ok(tokens);
    }
    if listen.ip().is_loopback() {
        return Ok(vec![edgekv_api::DEV_TOKEN.to_owned()]);
    }
    bail!(
        "refusing to listen on {listen} without an API token: set EDGEKV_API_TOKEN (comma-separated) \
         or api_tokens in the config file; the development token is only accepted on loopback"
    )
}

/// Parses a duration such as `500ms`, `90s`, `15m`, `24h` or `7d`.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().with_context(|| {
        format!("invalid duration {text:?}: expected a number and a unit, e.g. 90s")
    })?;
    let secs = |k: u64| n.checked_mul(k).map(Duration::from_secs);
    let duration = match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => bail!("invalid duration {text:?}: the unit must be one of ms, s, m, h, d"),
    };
    duration.with_context(|| format!("duration {text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration(" 24h ").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        for bad in ["", "s", "10", "10x", "-1s", "1.5s", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dev_token_only_on_loopback() {
        let loopback: SocketAddr = "127.0.0.1:8787".parse().unwrap();
        let v6: SocketAddr = "[::1]:8787".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8787".parse().unwrap();
        assert_eq!(resolve_tokens(vec![], loopback).unwrap(), [edgekv_api::DEV_TOKEN]);
        assert_eq!(resolve_tokens(vec![" ".into()], v6).unwrap(), [edgekv_api::DEV_TOKEN]);
        let err = resolve_tokens(vec![], any).unwrap_err().to_string();
        assert!(err.contains("EDGEKV_API_TOKEN"), "{err}");
        assert_eq!(resolve_tokens(vec!["s3cret".into()], any).unwrap(), ["s3cret"]);
    }

    #[test]
    fn peers_and_delays() {
        let peer = parse_peer("enam=http://10.0.0.2:9787").unwrap();
        assert_eq!((peer.name.as_str(), peer.url.as_str()), ("enam", "http://10.0.0.2:9787"));
        assert!(parse_peer("enam").is_err());
        assert!(parse_peer("enam=10.0.0.2:9787").is_err());
        assert!(parse_peer("EN AM=http://x").is_err());
        let matrix = latency_matrix(Some("uniform(1s,5s)"), &["wnam->weur=30s".into()]).unwrap();
        assert_eq!(matrix.model("wnam", "weur").max(), Duration::from_secs(30));
        let err = latency_matrix(Some("90s"), &[]).unwrap_err();
        assert!(format!("{err:#}").contains("60 s"), "{err:#}");
    }

    #[test]
    fn config_file_rejects_unknown_fields() {
        let parsed: Result<FileConfig, _> = toml::from_str("region = \"wnam\"\nbogus = 1\n");
        assert!(parsed.is_err());
        let parsed: FileConfig =
            toml::from_str("region = \"wnam\"\napi_tokens = [\"a\"]\ntombstone_grace = \"1h\"\n")
                .unwrap();
        assert_eq!(parsed.region.as_deref(), Some("wnam"));
    }
}
