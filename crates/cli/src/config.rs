//! How the layered [`Settings`] of `edgekv node` and `edgekv cluster` become one or several
//! [`RegionConfig`]s.
//!
//! The credentials are resolved here once for all: blank entries of any token list or secret
//! are dropped (a trailing comma is a typo, not an empty token), a node on loopback with none
//! left gets the documented development default, and a node reachable from other machines
//! refuses to start without a real one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use edgekv_api::EdgeConfig;
use edgekv_core::{RegionId, Tokens};
use edgekv_node::config::{latency_matrix, DEFAULT_DATA_DIR, DEV_ADMIN_TOKEN, DEV_CLUSTER_SECRET};
use edgekv_node::serve::{Limits, Timeouts};
use edgekv_node::{RegionConfig, Storage};
use edgekv_replication::{PeerConfig, ReplicationConfig};

use crate::settings::Settings;

/// The one region of `edgekv node`.
pub fn node_config(settings: &Settings) -> anyhow::Result<RegionConfig> {
    let region = settings.region.context(
        "no region given: pass --region NAME, set EDGEKV_REGION, or set region in the config file",
    )?;
    let listen = settings.listen;
    let grpc_listen = match settings.grpc_listen {
        Some(addr) => addr,
        None => beside(listen, GRPC_OFFSET, "--grpc-listen")?,
    };
    let binding_listen = match settings.binding_listen {
        Some(addr) => addr,
        None => beside(listen, BINDING_OFFSET, "--binding-listen")?,
    };
    let peers = settings.peers.0.clone();
    if peers.iter().any(|p| p.name == region) {
        bail!("region {region} lists itself as a peer");
    }
    // An explicit directory is the region's own; the default keeps the cluster's layout, so
    // `edgekv node --region wnam` finds the data `edgekv cluster` wrote for wnam.
    let addrs =
        Addrs { listen, grpc: grpc_listen, binding: binding_listen, admin: settings.admin_listen };
    let mut config = region_config(settings, region, addrs, peers, |root| {
        if settings.data_dir.is_some() {
            root.to_path_buf()
        } else {
            root.join(region.as_str())
        }
    })?;
    for name in &settings.peer_dns {
        let port = name.rsplit_once(':').and_then(|(host, port)| {
            (!host.is_empty()).then_some(port).and_then(|p| p.parse::<u16>().ok())
        });
        if port.is_none_or(|p| p == 0) {
            bail!("invalid --peer-dns {name:?}: expected HOST:PORT, the peers' gRPC port");
        }
    }
    if settings.peer_dns_interval.is_zero() {
        bail!("--peer-dns-interval must be longer than zero");
    }
    config.discovery = edgekv_node::discover::Discovery {
        names: settings.peer_dns.clone(),
        interval: settings.peer_dns_interval,
    };
    Ok(config)
}

/// Every region of `edgekv cluster`: region i on port + i and grpc_port + i, each with its
/// directory under the data directory. Peers are filled in once every region is bound.
pub fn cluster_configs(settings: &Settings) -> anyhow::Result<Vec<RegionConfig>> {
    let host = settings.host;
    let base_port = settings.port;
    let grpc_base = match settings.grpc_port {
        Some(port) => port,
        None => beside(SocketAddr::new(host, base_port), GRPC_OFFSET, "--grpc-port")?.port(),
    };
    let binding_base = match settings.binding_port {
        Some(port) => port,
        None => beside(SocketAddr::new(host, base_port), BINDING_OFFSET, "--binding-port")?.port(),
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
        let addrs = Addrs {
            listen: SocketAddr::new(host, port_of(base_port, i)?),
            grpc: SocketAddr::new(host, port_of(grpc_base, i)?),
            binding: SocketAddr::new(host, port_of(binding_base, i)?),
            admin: None,
        };
        let dir = |root: &std::path::Path| root.join(region.as_str());
        configs.push(region_config(settings, region, addrs, Vec::new(), dir)?);
    }
    if configs.is_empty() {
        bail!("--regions needs at least one region name");
    }
    Ok(configs)
}

/// Where a region listens.
struct Addrs {
    listen: SocketAddr,
    grpc: SocketAddr,
    binding: SocketAddr,
    /// The admin API's own listener, if not with the REST API.
    admin: Option<SocketAddr>,
}

fn region_config(
    settings: &Settings,
    region: RegionId,
    addrs: Addrs,
    peers: Vec<PeerConfig>,
    dir: impl FnOnce(&std::path::Path) -> PathBuf,
) -> anyhow::Result<RegionConfig> {
    let Addrs { listen, grpc: grpc_listen, binding: binding_listen, admin: admin_listen } = addrs;
    let api_tokens = resolve_tokens(&settings.api_tokens, listen, Credential::Api)?;
    let secret =
        resolve_tokens(settings.cluster_secret.as_slice(), grpc_listen, Credential::ClusterSecret)?;
    // The admin token guards the admin API wherever it listens: off loopback it must be real.
    let admin_tokens =
        resolve_tokens(&settings.admin_tokens, admin_listen.unwrap_or(listen), Credential::Admin)?;
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
        binding_listen,
        admin_listen,
        api_tokens: api_tokens.iter().map(str::to_owned).collect(),
        admin_tokens: admin_tokens.iter().map(str::to_owned).collect(),
        tombstone_grace: settings.tombstone_grace,
        replication,
        max_clock_skew: settings.max_clock_skew,
        storage,
        clock_offset_ms: settings.clock_offset.0,
        apply_log: settings.apply_log,
        storage_reserve: settings.storage_reserve,
        storage_memory: settings.storage_memory.0,
        limits: Limits {
            timeouts: Timeouts {
                header: settings.header_timeout,
                body: settings.body_timeout,
                idle: settings.idle_timeout,
                send: settings.send_timeout,
            },
            max_connections: settings.max_connections.max(1),
        },
        body_memory: settings.body_memory.0,
        edge: EdgeConfig {
            cache_memory: settings.edge_cache.then_some(settings.edge_cache_memory.0),
            rest_cache: settings.rest_cache,
            write_rate_limit: settings.write_rate_limit,
        },
        clock: Arc::new(edgekv_core::SystemClock),
        timers: Arc::new(edgekv_replication::TokioTimers),
        discovery: edgekv_node::discover::Discovery::default(),
    })
}

/// Where a region's gRPC listener goes by default, from its HTTP port.
const GRPC_OFFSET: u16 = 1000;
/// Where a region's binding listener goes by default, from its HTTP port.
const BINDING_OFFSET: u16 = 2000;

/// The address next to an HTTP address: same host, port + `offset` (0 stays 0), or an error
/// naming `flag`, which sets it instead.
fn beside(http: SocketAddr, offset: u16, flag: &str) -> anyhow::Result<SocketAddr> {
    let port = match http.port() {
        0 => 0,
        p => p.checked_add(offset).with_context(|| {
            format!("the HTTP port is too high to put this listener at port + {offset}; set {flag}")
        })?,
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
}
