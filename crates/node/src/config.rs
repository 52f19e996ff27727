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
    /// Keep all data in memory (today the only storage mode).
    pub in_memory: Option<bool>,
    /// How long tombstones are kept, e.g. `"24h"`.
    pub tombstone_grace: Option<String>,
}

impl FileConfig {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parse config file {}", path.display()))
    }
}

/// Everything one regional node needs, resolved and validated.
#[derive(Debug, Clone)]
pub struct RegionConfig {
    /// The region's name.
    pub region: RegionId,
    /// Where its HTTP API listens.
    pub listen: SocketAddr,
    /// Accepted API tokens; never empty once resolved.
    pub api_tokens: Vec<String>,
    /// How long tombstones are kept.
    pub tombstone_grace: Duration,
}

impl RegionConfig {
    /// A config for tests: loopback, port 0, the development token, a short grace.
    pub fn for_test(region: &str) -> Self {
        RegionConfig {
            region: region.parse().expect("test region names are valid"),
            listen: "127.0.0.1:0".parse().expect("a valid address"),
            api_tokens: vec![edgekv_api::DEV_TOKEN.to_owned()],
            tombstone_grace: Duration::from_secs(60),
        }
    }
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
    fn config_file_rejects_unknown_fields() {
        let parsed: Result<FileConfig, _> = toml::from_str("region = \"wnam\"\nbogus = 1\n");
        assert!(parsed.is_err());
        let parsed: FileConfig =
            toml::from_str("region = \"wnam\"\napi_tokens = [\"a\"]\ntombstone_grace = \"1h\"\n")
                .unwrap();
        assert_eq!(parsed.region.as_deref(), Some("wnam"));
    }
}
