//! Every setting of `edgekv node` and `edgekv cluster`, each defined once.
//!
//! A setting is one line of the `settings!` table below: its name (also its key in the TOML
//! file), its type, its default, its flag, its environment variable, the commands that take it,
//! and its help text. From that one line come the command-line flag (the binary builds its
//! parser from [`SPECS`]), the environment variable, the file key, the default, the help and
//! the field of [`Settings`]. Adding a setting touches only the table and the code that uses it.
//!
//! Precedence, lowest to highest: the default, the file (`--config`), the environment, the
//! flag. The command line and the environment arrive together, already layered by the parser
//! (a flag wins over its variable), as the text the user typed; the file arrives as TOML values.
//! Every value is parsed by its type's [`Setting`] implementation, so a mistake names the flag
//! or file key it came from.
//!
//! This module knows nothing about any argument parser: the binary turns [`SPECS`] into flags
//! and hands back what was given.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use edgekv_core::{DelayModel, LinkDelay, RegionId};
use edgekv_replication::PeerConfig;
use edgekv_store::{Durability, Reserve};

/// The commands that take settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// `edgekv node`: one regional node.
    Node,
    /// `edgekv cluster`: every region in one process.
    Cluster,
}

/// What the parser needs to know of one setting.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// The field name, which is also the key in the config file.
    pub name: &'static str,
    /// The long flag, without its dashes.
    pub flag: &'static str,
    /// The environment variable.
    pub env: &'static str,
    /// Help text: the first sentence is the summary.
    pub help: &'static str,
    /// Whether the flag may be repeated (and its variable hold a list), with the separator.
    pub list: Option<char>,
    /// Whether the flag is a switch: given alone it means `true`.
    pub switch: bool,
    /// The commands that take it.
    pub commands: &'static [Command],
}

impl Spec {
    /// Whether `command` takes this setting.
    pub fn applies_to(&self, command: Command) -> bool {
        self.commands.contains(&command)
    }
}

/// What the command line and environment gave: per setting name, the values typed (one, or
/// several for a list setting).
pub type Given = BTreeMap<&'static str, Vec<String>>;

/// A type a setting can have: parsed from what was typed, or read from the file.
pub trait Setting: Sized {
    /// From the values typed on the command line or in the environment.
    fn from_args(values: &[String]) -> Result<Self, String>;
    /// From the config file.
    fn from_file(value: &toml::Value) -> Result<Self, String>;
}

/// The text a scalar file value stands for, so that `seed = 42` and `seed = "42"` both work.
fn scalar_text(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(format!("expected a single value, found {}", other.type_str())),
    }
}

fn one(values: &[String]) -> Result<&str, String> {
    match values {
        [value] => Ok(value.as_str()),
        _ => Err(format!("expected one value, got {}", values.len())),
    }
}

/// `Setting` for types that parse from text.
macro_rules! scalar_settings {
    ($($ty:ty => $parse:expr),+ $(,)?) => {$(
        impl Setting for $ty {
            fn from_args(values: &[String]) -> Result<Self, String> {
                ($parse)(one(values)?.trim())
            }
            fn from_file(value: &toml::Value) -> Result<Self, String> {
                ($parse)(scalar_text(value)?.trim())
            }
        }
    )+};
}

/// An on/off setting: `on`, `off`, `true`, `false`, `yes`, `no`, `1` or `0`.
fn parse_switch(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!("{text:?} is neither on nor off")),
    }
}

fn parsed<T: std::str::FromStr>(text: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e: T::Err| e.to_string())
}

scalar_settings! {
    String => |t: &str| Ok(t.to_owned()),
    u64 => parsed::<u64>,
    u16 => parsed::<u16>,
    usize => parsed::<usize>,
    bool => parse_switch,
    SocketAddr => parsed::<SocketAddr>,
    IpAddr => parsed::<IpAddr>,
    PathBuf => |t: &str| Ok(PathBuf::from(t)),
    RegionId => |t: &str| t.parse::<RegionId>().map_err(|e| e.to_string()),
    Duration => parse_duration,
    Offset => parse_offset,
    Durability => |t: &str| t.parse::<Durability>(),
    Reserve => |t: &str| t.parse::<Reserve>(),
    ByteSize => |t: &str| edgekv_core::parse_bytes(t).map(ByteSize),
    DelayModel => parsed::<DelayModel>,
    LinkDelay => parsed::<LinkDelay>,
    PeerConfig => parse_peer,
}

impl<T: Setting> Setting for Option<T> {
    fn from_args(values: &[String]) -> Result<Self, String> {
        T::from_args(values).map(Some)
    }
    fn from_file(value: &toml::Value) -> Result<Self, String> {
        T::from_file(value).map(Some)
    }
}

impl<T: Setting> Setting for Vec<T> {
    fn from_args(values: &[String]) -> Result<Self, String> {
        values.iter().map(|v| T::from_args(std::slice::from_ref(v))).collect()
    }
    fn from_file(value: &toml::Value) -> Result<Self, String> {
        match value {
            toml::Value::Array(items) => items.iter().map(T::from_file).collect(),
            other => Err(format!("expected an array, found {}", other.type_str())),
        }
    }
}

/// A signed duration in milliseconds (`-1h`, `+30s`, `250ms`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offset(pub i64);

/// A size in bytes (`512KiB`, `256MiB`, `1GB`, `1000000`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

/// The longest duration any setting takes: past it a value is surely a typo.
const MAX_SETTING_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Parses a duration such as `500ms`, `1.5s`, `15m`, `24h` or `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = edgekv_core::parse_duration(text)
        .map_err(|e| format!("invalid duration {text:?}: {}", e.reason))?;
    if duration > MAX_SETTING_DURATION {
        return Err(format!("duration {text:?} is too long"));
    }
    Ok(duration)
}

/// Parses a signed duration such as `-1h`, `+30s` or `250ms`.
pub fn parse_offset(text: &str) -> Result<Offset, String> {
    let (negative, magnitude) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let ms = i64::try_from(parse_duration(magnitude)?.as_millis())
        .map_err(|_| format!("offset {text:?} is too large"))?;
    Ok(Offset(if negative { -ms } else { ms }))
}

/// Parses a `NAME=URL` peer.
pub fn parse_peer(text: &str) -> Result<PeerConfig, String> {
    let (name, url) = text
        .split_once('=')
        .ok_or_else(|| format!("invalid peer {text:?}: expected NAME=http://HOST:PORT"))?;
    let url = url.trim();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("invalid peer {text:?}: the URL must start with http:// or https://"));
    }
    let name = name.trim().parse().map_err(|e: edgekv_core::RegionIdError| e.to_string())?;
    Ok(PeerConfig { name, url: url.to_owned() })
}

/// The peers of a node: `--peer NAME=URL`, or in the file a table `{ NAME = "URL" }`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peers(pub Vec<PeerConfig>);

impl Setting for Peers {
    fn from_args(values: &[String]) -> Result<Self, String> {
        Vec::<PeerConfig>::from_args(values).map(Peers)
    }
    fn from_file(value: &toml::Value) -> Result<Self, String> {
        match value {
            toml::Value::Table(table) => table
                .iter()
                .map(|(name, url)| parse_peer(&format!("{name}={}", scalar_text(url)?)))
                .collect::<Result<_, _>>()
                .map(Peers),
            other => Vec::<PeerConfig>::from_file(other).map(Peers),
        }
    }
}

/// The settings table. Each entry: doc comment (the help), `[commands]`, `name: Type =
/// default`, the flag, the variable, then `list 'c'` for a setting that takes several values
/// (the flag repeats, the variable separates them with `c`) or `switch` for a flag that means
/// `true` on its own.
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])+
        [$($command:ident),+] $name:ident: $ty:ty = $default:expr,
        flag $flag:literal, env $env:literal $(, $kind:ident $($sep:literal)?)?;
    )+) => {
        /// Every setting, for the argument parser.
        pub const SPECS: &[Spec] = &[$(
            Spec {
                name: stringify!($name),
                flag: $flag,
                env: $env,
                help: concat!($($doc),+),
                list: settings!(@list $($kind $($sep)?)?),
                switch: settings!(@switch $($kind $($sep)?)?),
                commands: &[$(Command::$command),+],
            },
        )+];

        /// Every setting, resolved: default, file, environment and flag layered.
        #[derive(Clone, Debug)]
        pub struct Settings {
            $($(#[doc = $doc])+ pub $name: $ty,)+
        }

        impl Settings {
            fn layer(given: &Given, file: &toml::Table) -> anyhow::Result<Settings> {
                Ok(Settings {$(
                    $name: layered::<$ty>(stringify!($name), $flag, given, file, || $default)?,
                )+})
            }
        }
    };
    (@list list $sep:literal) => { Some($sep) };
    (@list $($other:tt)*) => { None };
    (@switch switch) => { true };
    (@switch $($other:tt)*) => { false };
}

/// One setting's value: flag or variable, else the file, else the default.
fn layered<T: Setting>(
    name: &str,
    flag: &str,
    given: &Given,
    file: &toml::Table,
    default: impl FnOnce() -> T,
) -> anyhow::Result<T> {
    if let Some(values) = given.get(name) {
        return T::from_args(values).map_err(|e| anyhow::anyhow!("--{flag}: {e}"));
    }
    match file.get(name) {
        Some(value) => {
            T::from_file(value).map_err(|e| anyhow::anyhow!("{name} in the config file: {e}"))
        }
        None => Ok(default()),
    }
}

/// Default HTTP listen address of `edgekv node`.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8787);

settings! {
    /// This node's region name (1-16 characters of a-z, 0-9, _).
    [Node] region: Option<RegionId> = None, flag "region", env "EDGEKV_REGION";
    /// HTTP listen address [default: 127.0.0.1:8787].
    [Node] listen: SocketAddr = DEFAULT_LISTEN, flag "listen", env "EDGEKV_LISTEN";
    /// gRPC listen address for peers [default: the HTTP address with port + 1000].
    [Node] grpc_listen: Option<SocketAddr> = None, flag "grpc-listen", env "EDGEKV_GRPC_LISTEN";
    /// Listen address of the Workers binding protocol, which workerd (and `wrangler dev`) speak
    /// to a KV service [default: the HTTP address with port + 2000].
    [Node] binding_listen: Option<SocketAddr> = None, flag "binding-listen", env "EDGEKV_BINDING_LISTEN";
    /// Serve the admin API (`/admin/*`) on a listener of its own instead of with the KV API,
    /// so that a firewall or a NetworkPolicy can keep it private [default: with the KV API].
    [Node] admin_listen: Option<SocketAddr> = None, flag "admin-listen", env "EDGEKV_ADMIN_LISTEN";
    /// A peer region: NAME=http://HOST:PORT, its gRPC address (repeatable; in the file a table
    /// of NAME = "URL").
    [Node] peers: Peers = Peers::default(), flag "peer", env "EDGEKV_PEERS", list ',';
    /// A DNS name that resolves to the peers' gRPC addresses, HOST:PORT (a headless Service, a
    /// network alias the regions share); resolved again every --peer-dns-interval, each new
    /// address asked its region and added (repeatable).
    [Node] peer_dns: Vec<String> = Vec::new(), flag "peer-dns", env "EDGEKV_PEER_DNS", list ',';
    /// How often the --peer-dns names are resolved again [default: 10s].
    [Node] peer_dns_interval: Duration = Duration::from_secs(10), flag "peer-dns-interval", env "EDGEKV_PEER_DNS_INTERVAL";
    /// Region names, comma-separated [default: wnam,enam,weur].
    [Cluster] regions: Vec<RegionId> = default_regions(), flag "regions", env "EDGEKV_REGIONS", list ',';
    /// HTTP port of the first region; region i listens on PORT+i. 0 picks free ports
    /// [default: 8787].
    [Cluster] port: u16 = DEFAULT_LISTEN.port(), flag "port", env "EDGEKV_PORT";
    /// gRPC port of the first region [default: PORT+1000, or free ports when PORT is 0].
    [Cluster] grpc_port: Option<u16> = None, flag "grpc-port", env "EDGEKV_GRPC_PORT";
    /// Workers binding port of the first region; region i listens on BINDING_PORT+i
    /// [default: PORT+2000, or free ports when PORT is 0].
    [Cluster] binding_port: Option<u16> = None, flag "binding-port", env "EDGEKV_BINDING_PORT";
    /// Port of the cluster's live dashboard, on the regions' host [default: 8780, or a free
    /// port when PORT is 0].
    [Cluster] dash_port: Option<u16> = None, flag "dash-port", env "EDGEKV_DASH_PORT";
    /// Address every region binds to [default: 127.0.0.1].
    [Cluster] host: IpAddr = DEFAULT_LISTEN.ip(), flag "host", env "EDGEKV_HOST";
    /// Accepted API tokens, comma-separated. Without one, a node on loopback accepts
    /// `edgekv-dev-token` and a node on any other address refuses to start.
    [Node, Cluster] api_tokens: Vec<String> = Vec::new(), flag "api-token", env "EDGEKV_API_TOKEN", list ',';
    /// Admin API tokens, comma-separated; on loopback `edgekv-dev-admin-token` by default.
    [Node, Cluster] admin_tokens: Vec<String> = Vec::new(), flag "admin-token", env "EDGEKV_ADMIN_TOKEN", list ',';
    /// Secret regions present to each other; on loopback a development default.
    [Node, Cluster] cluster_secret: Option<String> = None, flag "cluster-secret", env "EDGEKV_CLUSTER_SECRET";
    /// Propagation delay of every link: 5s, uniform(1s,5s), normal(3s,1s), lognormal(p50,p99),
    /// exponential(mean), pareto(scale,shape) or mix(w:model,...); at most 60 s [default: 0s].
    [Node, Cluster] delay: DelayModel = DelayModel::default(), flag "delay", env "EDGEKV_DELAY";
    /// Delay of one link, overriding --delay: ORIGIN->DESTINATION=MODEL (repeatable).
    [Node, Cluster] link_delays: Vec<LinkDelay> = Vec::new(), flag "link-delay", env "EDGEKV_LINK_DELAYS", list ';';
    /// Seed of every sampled delay and fault decision, so a run replays [default: 0].
    [Node, Cluster] seed: u64 = 0, flag "seed", env "EDGEKV_SEED";
    /// How long deletes and expiries are remembered as tombstones (e.g. 24h, 30m) [default: 24h].
    [Node, Cluster] tombstone_grace: Duration = Duration::from_secs(24 * 3600), flag "tombstone-grace", env "EDGEKV_TOMBSTONE_GRACE";
    /// Mean interval between anti-entropy rounds with each peer [default: 30s].
    [Node, Cluster] anti_entropy_interval: Duration = Duration::from_secs(30), flag "anti-entropy-interval", env "EDGEKV_ANTI_ENTROPY_INTERVAL";
    /// Largest lead of a peer's timestamp over the local clock that is accepted [default: 500ms].
    [Node, Cluster] max_clock_skew: Duration = edgekv_core::Hlc::DEFAULT_MAX_DELTA, flag "max-clock-skew", env "EDGEKV_MAX_CLOCK_SKEW";
    /// Keep all data in memory: nothing survives a restart (tests, quick experiments).
    [Node, Cluster] in_memory: bool = false, flag "in-memory", env "EDGEKV_IN_MEMORY", switch;
    /// Data directory. `node`: the region's own [default: ./data/REGION]; `cluster`: one
    /// subdirectory per region under it [default: ./data].
    [Node, Cluster] data_dir: Option<PathBuf> = None, flag "data-dir", env "EDGEKV_DATA_DIR";
    /// When a write is acknowledged: fsync (after the group commit's fsync), periodic(MS)
    /// (fsync every MS milliseconds, ack before it) or none (the OS flushes) [default: fsync].
    [Node, Cluster] durability: Durability = Durability::default(), flag "durability", env "EDGEKV_DURABILITY";
    /// Free space the store keeps for its engine; writes are refused (503) below it: a size
    /// such as 64MiB or a share such as 5% [default: 64MiB, at most a tenth of the disk].
    [Node, Cluster] storage_reserve: Reserve = Reserve::default(), flag "storage-reserve", env "EDGEKV_STORAGE_RESERVE";
    /// Most memory each region's storage engine holds for its block cache (a quarter) and its
    /// write buffers; a region with little data holds much less, as its write buffers stay
    /// near an eighth of its data (at least 4 MiB) [default: 64MiB].
    [Node, Cluster] storage_memory: ByteSize = ByteSize(edgekv_store::DEFAULT_ENGINE_MEMORY), flag "storage-memory", env "EDGEKV_STORAGE_MEMORY";
    /// Offset added to the wall clock, e.g. -1h or 30s: starts the node with a skewed clock
    /// (experiments; the HLC still never goes back) [default: 0s].
    [Node, Cluster] clock_offset: Offset = Offset::default(), flag "clock-offset", env "EDGEKV_CLOCK_OFFSET";
    /// Keep the newest N apply events (which version of which key the region applied, when)
    /// for the consistency lab, served at /admin/applies [default: 0, off].
    [Node, Cluster] apply_log: usize = 0, flag "apply-log", env "EDGEKV_APPLY_LOG";
    /// Longest time a client may take to send a request head, from its first byte, however
    /// slowly the rest arrives (on the gRPC listener: the HTTP/2 preface, from connecting)
    /// [default: 10s].
    [Node, Cluster] header_timeout: Duration = Duration::from_secs(10), flag "header-timeout", env "EDGEKV_HEADER_TIMEOUT";
    /// Longest pause in a connection's traffic while a request is in flight, such as a body
    /// that stops arriving [default: 30s].
    [Node, Cluster] body_timeout: Duration = Duration::from_secs(30), flag "body-timeout", env "EDGEKV_BODY_TIMEOUT";
    /// Longest time a connection may stay open with no request (on the gRPC listener: with
    /// no traffic, and never less than 60 s, since peers ping every 20 s) [default: 60s].
    [Node, Cluster] idle_timeout: Duration = Duration::from_secs(60), flag "idle-timeout", env "EDGEKV_IDLE_TIMEOUT";
    /// Longest time a response may wait on a client that does not read it; the connection and
    /// what it held are then dropped [default: 30s].
    [Node, Cluster] send_timeout: Duration = Duration::from_secs(30), flag "send-timeout", env "EDGEKV_SEND_TIMEOUT";
    /// Most connections open at once on each listener; past it the oldest connection without
    /// a request in flight is closed, and a newcomer is refused (503) only if all are busy
    /// [default: 1024, lowered to fit the process's file descriptor limit].
    [Node, Cluster] max_connections: usize = 1024, flag "max-connections", env "EDGEKV_MAX_CONNECTIONS";
    /// Memory all requests together may hold for bodies: values and bulk requests being read,
    /// values being sent. Past it a request is refused with 503 and Retry-After rather than
    /// let memory grow; one request may always have it all [default: 256MiB].
    [Node, Cluster] body_memory: ByteSize = ByteSize(256 << 20), flag "body-memory", env "EDGEKV_BODY_MEMORY";
    /// Keep Workers KV's edge read cache: a region serves what a binding read found, even
    /// "not found", for the read's cacheTtl (default 60 s) while newer versions arrive
    /// (on/off) [default: on].
    [Node, Cluster] edge_cache: bool = true, flag "edge-cache", env "EDGEKV_EDGE_CACHE";
    /// Memory of each region's edge cache; past it the least recently used entries go
    /// [default: 64MiB].
    [Node, Cluster] edge_cache_memory: ByteSize = ByteSize(64 << 20), flag "edge-cache-memory", env "EDGEKV_EDGE_CACHE_MEMORY";
    /// Read through the edge cache on the REST API too (Cloudflare's REST API reads central
    /// storage, uncached) (on/off) [default: off].
    [Node, Cluster] rest_cache: bool = false, flag "rest-cache", env "EDGEKV_REST_CACHE";
    /// Refuse a second write to the same key within a second in a region, with 429, as Workers
    /// KV does (on/off) [default: on].
    [Node, Cluster] write_rate_limit: bool = true, flag "write-rate-limit", env "EDGEKV_WRITE_RATE_LIMIT";
}

fn default_regions() -> Vec<RegionId> {
    ["wnam", "enam", "weur"].iter().filter_map(|r| r.parse().ok()).collect()
}

impl Settings {
    /// Layers the settings `command` takes: `given` from the command line and environment
    /// over the config file at `file` (if any) over the defaults. A file key that is no
    /// setting is an error; a setting of the other command in the file is ignored, so one file
    /// can serve both.
    pub fn resolve(command: Command, given: &Given, file: Option<&Path>) -> anyhow::Result<Self> {
        let table = match file {
            Some(path) => load(path)?,
            None => toml::Table::new(),
        };
        for key in table.keys() {
            if !SPECS.iter().any(|s| s.name == key) {
                bail!("unknown setting {key:?} in the config file {}", file_name(file));
            }
        }
        let table = table
            .into_iter()
            .filter(|(key, _)| SPECS.iter().any(|s| s.name == key && s.applies_to(command)))
            .collect();
        let settings = Settings::layer(given, &table)
            .with_context(|| format!("settings (config file {})", file_name(file)))?;
        if settings.anti_entropy_interval.is_zero() {
            bail!("the anti-entropy interval must be longer than zero");
        }
        Ok(settings)
    }
}

fn file_name(file: Option<&Path>) -> String {
    file.map_or_else(|| "none".to_owned(), |p| p.display().to_string())
}

/// Reads and parses a TOML config file.
fn load(path: &Path) -> anyhow::Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parse config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(pairs: &[(&'static str, &[&str])]) -> Given {
        pairs.iter().map(|(k, v)| (*k, v.iter().map(|s| s.to_string()).collect())).collect()
    }

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edgekv.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn defaults_then_file_then_given() {
        let none = Settings::resolve(Command::Node, &Given::new(), None).unwrap();
        assert_eq!(none.listen, DEFAULT_LISTEN);
        assert_eq!(none.tombstone_grace, Duration::from_secs(86_400));
        assert_eq!(none.storage_reserve, Reserve::default());
        let (_dir, path) =
            file("seed = 7\ntombstone_grace = \"1h\"\n[peers]\nenam = \"http://10.0.0.2:9787\"\n");
        let from_file = Settings::resolve(Command::Node, &Given::new(), Some(&path)).unwrap();
        assert_eq!((from_file.seed, from_file.tombstone_grace), (7, Duration::from_secs(3600)));
        assert_eq!(from_file.peers.0[0].url, "http://10.0.0.2:9787");
        let over = given(&[("seed", &["9"]), ("peers", &["weur=http://h:1", "apac=http://h:2"])]);
        let both = Settings::resolve(Command::Node, &over, Some(&path)).unwrap();
        assert_eq!(both.seed, 9);
        assert_eq!(both.peers.0.len(), 2, "given lists replace the file's");
        assert_eq!(both.tombstone_grace, Duration::from_secs(3600));
    }

    #[test]
    fn mistakes_name_their_flag_or_key() {
        let bad = |pairs: &[(&'static str, &[&str])]| {
            format!("{:#}", Settings::resolve(Command::Node, &given(pairs), None).unwrap_err())
        };
        assert!(bad(&[("tombstone_grace", &["soon"])]).contains("--tombstone-grace"));
        assert!(bad(&[("region", &["Not-A-Region"])]).contains("invalid region name"));
        assert!(bad(&[("peers", &["enam"])]).contains("NAME=http"));
        assert!(bad(&[("peers", &["enam=10.0.0.2:9787"])]).contains("http://"));
        assert!(bad(&[("delay", &["90s"])]).contains("60 s"));
        assert!(bad(&[("anti_entropy_interval", &["0s"])]).contains("longer than zero"));
        assert!(bad(&[("storage_reserve", &["lots"])]).contains("storage reserve"));
        let (_dir, path) = file("bogus = 1\n");
        let err = Settings::resolve(Command::Node, &Given::new(), Some(&path)).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
        let (_dir, path) = file("seed = \"many\"\n");
        let err = Settings::resolve(Command::Node, &Given::new(), Some(&path)).unwrap_err();
        assert!(format!("{err:#}").contains("seed in the config file"), "{err:#}");
    }

    #[test]
    fn a_file_serves_both_commands() {
        let (_dir, path) = file("region = \"wnam\"\nregions = [\"a\", \"b\"]\nport = 0\n");
        let node = Settings::resolve(Command::Node, &Given::new(), Some(&path)).unwrap();
        assert_eq!(node.region.map(|r| r.to_string()).as_deref(), Some("wnam"));
        assert_eq!(node.regions, default_regions(), "a cluster setting does not reach a node");
        let cluster = Settings::resolve(Command::Cluster, &Given::new(), Some(&path)).unwrap();
        assert_eq!(cluster.regions.len(), 2);
        assert_eq!(cluster.region, None);
    }

    #[test]
    fn values_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration(" 24h "), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        for bad in ["", "s", "10", "10x", "-1s", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_offset("-1h"), Ok(Offset(-3_600_000)));
        assert_eq!(parse_offset("+250ms"), Ok(Offset(250)));
        let peer = parse_peer("enam=http://10.0.0.2:9787").unwrap();
        assert_eq!((peer.name.as_str(), peer.url.as_str()), ("enam", "http://10.0.0.2:9787"));
    }

    /// The commented sample in deploy/ names every setting (as a key, set or commented out),
    /// and what it sets parses.
    #[test]
    fn the_sample_config_file_documents_every_setting() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/edgekv.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        for spec in SPECS {
            let key = |line: &str| {
                let line = line.trim_start_matches('#').trim_start();
                line.starts_with(&format!("{} =", spec.name))
                    || line.starts_with(&format!("[{}]", spec.name))
            };
            assert!(text.lines().any(key), "deploy/edgekv.toml does not mention {}", spec.name);
            assert!(text.contains(spec.env), "deploy/edgekv.toml does not name {}", spec.env);
        }
        for command in [Command::Node, Command::Cluster] {
            Settings::resolve(command, &Given::new(), Some(&path)).unwrap();
        }
    }

    #[test]
    fn every_setting_is_named_once() {
        for (i, spec) in SPECS.iter().enumerate() {
            for other in &SPECS[i + 1..] {
                assert!(spec.name != other.name && spec.flag != other.flag, "{}", spec.name);
                assert!(spec.env != other.env, "{}", spec.env);
            }
            assert!(spec.env.starts_with("EDGEKV_"), "{}", spec.env);
            assert!(!spec.help.trim().is_empty(), "{}", spec.name);
        }
    }
}
