//! Scenario files: what a lab run does, in TOML, validated before anything starts.
//!
//! A scenario names its regions, either with URLs (an external cluster: `edgekv cluster`,
//! separate nodes, docker-compose) or without (the lab starts an in-process cluster from the
//! `[cluster]` table), a workload, and a fault schedule. Every mistake is reported with the
//! field it is in, since a typo found after a ten-minute run costs ten minutes.
//!
//! ```toml
//! name = "partition-heal"
//! duration = "40s"
//!
//! [cluster]
//! delay = "uniform(500ms,2s)"
//!
//! [[regions]]
//! name = "wnam"
//! [[regions]]
//! name = "enam"
//!
//! [workload]
//! writers = 2
//! readers = 2
//! rate = 20
//! keys = 200
//!
//! [[faults]]
//! at = "10s"
//! for = "15s"
//! fault = { kind = "partition", a = ["wnam"], b = ["enam"] }
//! ```
//!
//! See `deploy/scenarios/` for documented examples, and `reads` for how gets are sent (REST
//! or the Workers binding with a cacheTtl) and the regions' edge settings.

mod reads;

use std::collections::BTreeMap;
use std::time::Duration;

use edgekv_core::{parse_duration, DelayModel, Fault, LatencyMatrix, LinkDelay, RegionId};
use serde::Deserialize;

pub use self::reads::{
    EdgeSettings, ReadPath, Reads, DEFAULT_CACHE_TTL, MAX_CACHE_TTL, MIN_CACHE_TTL, REST_CACHE_TTL,
};

/// The development tokens a loopback cluster accepts when none are configured.
pub const DEV_TOKEN: &str = "edgekv-dev-token";
/// See [`DEV_TOKEN`].
pub const DEV_ADMIN_TOKEN: &str = "edgekv-dev-admin-token";

/// Added to the quiet period on top of the longest delay and an anti-entropy round, for the
/// final deliveries' own latency.
pub const QUIET_MARGIN: Duration = Duration::from_secs(2);

/// Anti-entropy interval of an in-process cluster unless the scenario sets one: short, so that
/// writes lost to a `loss` fault are repaired within a short quiet period.
pub const DEFAULT_LAB_ANTI_ENTROPY: Duration = Duration::from_secs(3);

/// What an external cluster's anti-entropy interval is assumed to be when not declared (the
/// node's default).
pub const DEFAULT_NODE_ANTI_ENTROPY: Duration = Duration::from_secs(30);

/// How far an external cluster's clocks are assumed to be from the lab's machine when the
/// scenario does not declare it: generous for NTP on one network. Apply times are only as good
/// as this bound; an in-process cluster shares the lab's clock and needs none.
pub const DEFAULT_EXTERNAL_CLOCK_ERROR: Duration = Duration::from_millis(10);

/// Workers KV's smallest expiration TTL; shorter ones are refused by the API.
pub const MIN_TTL: Duration = Duration::from_secs(60);

/// A scenario file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    #[serde(default)]
    description: String,
    seed: Option<u64>,
    duration: String,
    quiet: Option<String>,
    account: Option<String>,
    cluster: Option<ClusterFile>,
    compose: Option<ComposeFile>,
    regions: Vec<RegionFile>,
    #[serde(default)]
    workload: WorkloadFile,
    #[serde(default)]
    faults: Vec<FaultFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterFile {
    delay: Option<String>,
    #[serde(default)]
    link_delays: Vec<String>,
    anti_entropy_interval: Option<String>,
    #[serde(default)]
    durable: bool,
    clock_error: Option<String>,
    edge_cache: Option<bool>,
    rest_cache: Option<bool>,
    write_rate_limit: Option<bool>,
    tombstone_grace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComposeFile {
    project: Option<String>,
    file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionFile {
    name: String,
    url: Option<String>,
    token: Option<String>,
    admin_token: Option<String>,
    admin_url: Option<String>,
    writers: Option<u32>,
    readers: Option<u32>,
    clock_offset: Option<String>,
    reads: Option<toml::Value>,
    binding_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadFile {
    writers: Option<u32>,
    readers: Option<u32>,
    rate: Option<f64>,
    keys: Option<u32>,
    hot_keys: Option<u32>,
    hot_fraction: Option<f64>,
    value_size: Option<[u32; 2]>,
    ttl: Option<String>,
    list_limit: Option<u32>,
    mix: Option<BTreeMap<String, u32>>,
    read_mix: Option<BTreeMap<String, u32>>,
    reads: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultFile {
    at: String,
    #[serde(rename = "for")]
    lasts: Option<String>,
    jitter: Option<String>,
    fault: toml::Value,
}

/// A validated scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Its name, shown in the report.
    pub name: String,
    /// What it shows, for the report.
    pub description: String,
    /// The seed unless `--seed` overrides it.
    pub seed: Option<u64>,
    /// How long the workload runs.
    pub duration: Duration,
    /// How long to wait after the workload before the final reads.
    pub quiet: Duration,
    /// The account id in every API path.
    pub account: String,
    /// Where the regions are.
    pub target: Target,
    /// The regions, in the file's order.
    pub regions: Vec<RegionSpec>,
    /// What the clients do.
    pub workload: Workload,
    /// The fault schedule, in the file's order (a fault's position is its id).
    pub faults: Vec<FaultSpec>,
    /// The delay model of every directed link, when known.
    pub delays: Option<LatencyMatrix>,
    /// The anti-entropy interval in force (configured, declared or assumed).
    pub anti_entropy: Duration,
    /// How far the nodes' clocks may be from the lab's (declared or assumed; zero in-process),
    /// which widens every apply time's window by as much either way.
    pub clock_error: Duration,
    /// Where the regions' containers are, for process faults.
    pub compose: Compose,
    /// The regions' edge cache and write limit: configured in-process, declared for an
    /// external cluster.
    pub edge: EdgeSettings,
    /// How long a tombstone is kept after its delete has reached every region, when the file
    /// sets it (in-process and simulated regions; otherwise the lab's default of a day, so
    /// that no tombstone is collected within a run unless a scenario asks for it).
    pub tombstone_grace: Option<Duration>,
}

/// The docker-compose project whose containers process faults act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compose {
    /// The project name (`edgekv` for `deploy/up.sh`).
    pub project: String,
    /// The compose file, to recreate a wiped region.
    pub file: String,
}

/// The cluster a scenario runs against.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// The lab starts one node per region in its own process.
    InProcess {
        /// Whether each region keeps its data on disk (in a temporary directory) rather than
        /// in memory.
        durable: bool,
    },
    /// The regions' URLs are given.
    External,
    /// `edgekv sim` runs every region itself, under virtual time: any URLs in the file are
    /// ignored, and process faults act on the simulated regions.
    Simulated,
}

/// One region.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionSpec {
    /// Its name.
    pub name: String,
    /// Its API base URL (`http://host:port/client/v4`); empty for an in-process region until
    /// the cluster is started.
    pub url: String,
    /// Its API token.
    pub token: String,
    /// Its admin token.
    pub admin_token: String,
    /// Where its `/admin` routes are (`http://host:port`); by default the host of `url`.
    pub admin_url: Option<String>,
    /// Clients writing (and reading) in this region.
    pub writers: u32,
    /// Clients only reading in this region.
    pub readers: u32,
    /// Its clock's offset, milliseconds: configured on an in-process node, declared for an
    /// external one (so that its apply times can be corrected).
    pub clock_offset_ms: i64,
    /// How its clients' gets are sent.
    pub reads: Reads,
    /// Its Workers binding listener (`http://host:port`), for an external region whose gets use
    /// it; an in-process region's is known once the cluster is started.
    pub binding_url: Option<String>,
}

/// The clients' behaviour.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// Operations per second per client, on average (Poisson arrivals).
    pub rate: f64,
    /// Keys in the key space.
    pub keys: u32,
    /// The first `hot_keys` keys receive `hot_fraction` of the operations.
    pub hot_keys: u32,
    /// See `hot_keys`.
    pub hot_fraction: f64,
    /// Smallest and largest value size, bytes.
    pub value_size: (u32, u32),
    /// TTL of expiring writes.
    pub ttl: Duration,
    /// `limit` of list operations.
    pub list_limit: u32,
    /// Writers' operation weights.
    pub mix: Mix,
    /// Readers' operation weights.
    pub read_mix: Mix,
    /// How gets are sent, unless a region says otherwise.
    pub reads: Reads,
}

/// Relative weights of the operations a client picks from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mix {
    /// Plain puts.
    pub put: u32,
    /// Puts with an expiration TTL.
    pub put_ttl: u32,
    /// Deletes.
    pub delete: u32,
    /// Reads of one key.
    pub get: u32,
    /// Listings.
    pub list: u32,
}

impl Mix {
    /// The sum of the weights.
    pub fn total(&self) -> u32 {
        self.put + self.put_ttl + self.delete + self.get + self.list
    }
}

/// One scheduled fault.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultSpec {
    /// When it starts, from the start of the workload.
    pub at: Duration,
    /// How long it lasts; `None`: until the end of the workload.
    pub lasts: Option<Duration>,
    /// The start is moved later by a seeded amount up to this.
    pub jitter: Duration,
    /// The fault, validated. A link fault goes to the admin API as it is; a process fault
    /// (`{ kind = "kill", region = "weur" }`) goes to the region's container through docker:
    /// `kill` kills it at `at` and starts it again when the fault ends, `stop` stops it
    /// gracefully, `freeze` pauses its processes, `wipe` deletes its container and volume and
    /// starts it empty (at once: the fault has no end).
    pub fault: Fault,
}

/// A scenario that cannot be used, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScenarioError(pub String);

fn err(text: impl Into<String>) -> ScenarioError {
    ScenarioError(text.into())
}

fn duration(field: &str, text: &str) -> Result<Duration, ScenarioError> {
    parse_duration(text).map_err(|e| err(format!("{field}: {e}")))
}

fn signed_ms(field: &str, text: &str) -> Result<i64, ScenarioError> {
    let t = text.trim();
    let (sign, magnitude) = match t.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, t.strip_prefix('+').unwrap_or(t)),
    };
    let ms = i64::try_from(duration(field, magnitude)?.as_millis())
        .map_err(|_| err(format!("{field}: {text:?} is too large")))?;
    Ok(sign * ms)
}

fn mix(field: &str, weights: &BTreeMap<String, u32>) -> Result<Mix, ScenarioError> {
    let mut mix = Mix::default();
    for (name, &weight) in weights {
        let slot = match name.as_str() {
            "put" => &mut mix.put,
            "put_ttl" => &mut mix.put_ttl,
            "delete" => &mut mix.delete,
            "get" => &mut mix.get,
            "list" => &mut mix.list,
            other => {
                return Err(err(format!(
                    "{field}: unknown operation {other:?}: use put, put_ttl, delete, get or list"
                )))
            }
        };
        *slot = weight;
    }
    Ok(mix)
}

impl File {
    /// In-process when no region has a URL, external when all have one.
    fn target(&self) -> Result<Target, ScenarioError> {
        let external = self.regions.iter().filter(|r| r.url.is_some()).count();
        match external {
            0 => Ok(Target::InProcess {
                durable: self.cluster.as_ref().is_some_and(|c| c.durable),
            }),
            n if n == self.regions.len() => Ok(Target::External),
            _ => Err(err("regions: give every region a url (an external cluster) or none (an in-process one)")),
        }
    }

    /// The regions in the file's order, each named once, with the workload's client counts
    /// and read paths unless the region overrides them; at least one must have a writer.
    fn resolve_regions(
        &self,
        workload: &Workload,
        target: &Target,
    ) -> Result<Vec<RegionSpec>, ScenarioError> {
        let mut regions: Vec<RegionSpec> = Vec::new();
        for (i, r) in self.regions.iter().enumerate() {
            let field = format!("regions[{i}]");
            let region = r.resolve(&field, (&self.workload, workload), target)?;
            if regions.iter().any(|other| other.name == region.name) {
                return Err(err(format!("{field}.name: region {} is listed twice", r.name)));
            }
            regions.push(region);
        }
        if regions.iter().all(|r| r.writers == 0) {
            return Err(err("workload.writers: no region has a writer, so nothing is measured"));
        }
        Ok(regions)
    }
}

impl RegionFile {
    /// The region at `field`, with the workload's client counts (as written) and read paths
    /// (resolved) unless it sets its own.
    fn resolve(
        &self,
        field: &str,
        (w, workload): (&WorkloadFile, &Workload),
        target: &Target,
    ) -> Result<RegionSpec, ScenarioError> {
        self.name.parse::<RegionId>().map_err(|e| err(format!("{field}.name: {e}")))?;
        if let Some(url) = &self.url {
            if !url.starts_with("http://") && !url.starts_with("https://") {
                return Err(err(format!("{field}.url: {url:?} must start with http://")));
            }
        }
        let clock_offset_ms = match &self.clock_offset {
            Some(t) => signed_ms(&format!("{field}.clock_offset"), t)?,
            None => 0,
        };
        let reads = match &self.reads {
            Some(value) => reads::reads(&format!("{field}.reads"), value)?,
            None => workload.reads.clone(),
        };
        let binding_url = reads::binding_url(field, self.binding_url.as_deref(), &reads, target)?;
        Ok(RegionSpec {
            name: self.name.clone(),
            url: self.url.as_deref().unwrap_or("").trim_end_matches('/').to_owned(),
            token: self.token.clone().unwrap_or_else(|| DEV_TOKEN.to_owned()),
            admin_token: self.admin_token.clone().unwrap_or_else(|| DEV_ADMIN_TOKEN.to_owned()),
            admin_url: self.admin_url.as_ref().map(|u| u.trim_end_matches('/').to_owned()),
            writers: self.writers.or(w.writers).unwrap_or(1),
            readers: self.readers.or(w.readers).unwrap_or(1),
            clock_offset_ms,
            reads,
            binding_url,
        })
    }
}

impl WorkloadFile {
    /// The workload with the documented defaults, validated.
    fn resolve(&self) -> Result<Workload, ScenarioError> {
        let workload = Workload {
            rate: self.rate.unwrap_or(10.0),
            keys: self.keys.unwrap_or(100),
            hot_keys: self.hot_keys.unwrap_or(0),
            hot_fraction: self.hot_fraction.unwrap_or(0.0),
            value_size: self.value_size.map_or((16, 64), |[a, b]| (a, b)),
            ttl: match &self.ttl {
                Some(t) => duration("workload.ttl", t)?,
                None => MIN_TTL,
            },
            list_limit: self.list_limit.unwrap_or(100),
            mix: match &self.mix {
                Some(m) => mix("workload.mix", m)?,
                None => Mix { put: 6, delete: 1, get: 3, ..Mix::default() },
            },
            read_mix: match &self.read_mix {
                Some(m) => mix("workload.read_mix", m)?,
                None => Mix { get: 1, ..Mix::default() },
            },
            reads: match &self.reads {
                Some(value) => reads::reads("workload.reads", value)?,
                None => Reads::default(),
            },
        };
        workload.validate()?;
        Ok(workload)
    }
}

impl ClusterFile {
    /// Every link's delay model; unknown for an external cluster that declares none.
    fn delays(&self, target: &Target) -> Result<Option<LatencyMatrix>, ScenarioError> {
        if *target == Target::External && self.delay.is_none() && self.link_delays.is_empty() {
            // Only a real cluster can have delays the file does not say; a simulated one has
            // what the file says (no delay if it says none).
            return Ok(None);
        }
        let default = match &self.delay {
            Some(text) => {
                text.parse::<DelayModel>().map_err(|e| err(format!("cluster.delay: {e}")))?
            }
            None => DelayModel::default(),
        };
        let mut matrix = LatencyMatrix::new(default);
        for (i, link) in self.link_delays.iter().enumerate() {
            let link: LinkDelay =
                link.parse().map_err(|e| err(format!("cluster.link_delays[{i}]: {e}")))?;
            matrix.set(link);
        }
        Ok(Some(matrix))
    }

    /// The anti-entropy interval: configured, else the lab's short default in-process and the
    /// node's default for an external cluster.
    fn anti_entropy(&self, target: &Target) -> Result<Duration, ScenarioError> {
        let interval = match (&self.anti_entropy_interval, target) {
            (Some(t), _) => duration("cluster.anti_entropy_interval", t)?,
            (None, Target::InProcess { .. } | Target::Simulated) => DEFAULT_LAB_ANTI_ENTROPY,
            (None, Target::External) => DEFAULT_NODE_ANTI_ENTROPY,
        };
        if interval.is_zero() {
            return Err(err("cluster.anti_entropy_interval: must be longer than zero"));
        }
        Ok(interval)
    }

    /// How far the nodes' clocks may be from the lab's: none in-process (one clock).
    fn clock_error(&self, target: &Target) -> Result<Duration, ScenarioError> {
        Ok(match (&self.clock_error, target) {
            (Some(t), _) => duration("cluster.clock_error", t)?,
            (None, Target::InProcess { .. } | Target::Simulated) => Duration::ZERO,
            (None, Target::External) => DEFAULT_EXTERNAL_CLOCK_ERROR,
        })
    }

    fn edge(&self) -> Result<EdgeSettings, ScenarioError> {
        reads::edge(self.edge_cache, self.rest_cache, self.write_rate_limit)
    }
}

impl ComposeFile {
    /// The project of `deploy/up.sh` unless the scenario names another.
    fn resolve(self) -> Compose {
        Compose {
            project: self.project.unwrap_or_else(|| "edgekv".to_owned()),
            file: self.file.unwrap_or_else(|| "deploy/docker-compose.yml".to_owned()),
        }
    }
}

impl FaultFile {
    /// The fault at `field`, starting before the workload ends (`workload`: its length and how
    /// the file wrote it).
    fn resolve(
        &self,
        field: &str,
        target: &Target,
        regions: &[RegionSpec],
        workload: (Duration, &str),
    ) -> Result<FaultSpec, ScenarioError> {
        let fault = typed_fault(&format!("{field}.fault"), &self.fault, target, regions)?;
        let spec = FaultSpec {
            at: duration(&format!("{field}.at"), &self.at)?,
            lasts: self
                .lasts
                .as_deref()
                .map(|t| duration(&format!("{field}.for"), t))
                .transpose()?,
            jitter: match &self.jitter {
                Some(t) => duration(&format!("{field}.jitter"), t)?,
                None => Duration::ZERO,
            },
            fault,
        };
        if spec.at + spec.jitter >= workload.0 {
            return Err(err(format!(
                "{field}.at: starts after the workload ends ({})",
                workload.1
            )));
        }
        Ok(spec)
    }
}

/// A fault table as the typed [`Fault`], validated. A process fault also needs what only the
/// scenario knows: containers (an external cluster) and a region of its own.
fn typed_fault(
    field: &str,
    value: &toml::Value,
    target: &Target,
    regions: &[RegionSpec],
) -> Result<Fault, ScenarioError> {
    if value.get("kind").and_then(toml::Value::as_str).is_none() {
        return Err(err(format!("{field}: needs a kind, e.g. kind = \"partition\"")));
    }
    let fault: Fault =
        value.clone().try_into().map_err(|e| err(format!("{field}: {}", e.to_string().trim())))?;
    fault.validate().map_err(|e| err(format!("{field}: {e}")))?;
    if let Some(region) = fault.process_region() {
        if matches!(target, Target::InProcess { .. }) {
            return Err(err(format!(
                "{field}: {:?} acts on a container; it needs an external (compose) cluster, i.e. \
                 regions with URLs (or `edgekv sim`, which simulates the regions' processes)",
                fault.kind()
            )));
        }
        if !regions.iter().any(|r| r.name == region) {
            return Err(err(format!(
                "{field}: region = {region:?} is not one of the scenario's regions"
            )));
        }
    }
    Ok(fault)
}

/// The quiet period: as written, which must outlast the longest delay, or that delay plus an
/// anti-entropy round and [`QUIET_MARGIN`]. When the regions cache REST reads, the final reads
/// (REST) could be answered from the cache, so the quiet period must also outlast the REST
/// cache's ttl (`rest_cache`).
fn quiet(
    written: Option<&str>,
    longest: Duration,
    anti_entropy: Duration,
    rest_cache: Option<Duration>,
) -> Result<Duration, ScenarioError> {
    let cached = rest_cache.unwrap_or_default();
    let Some(t) = written else {
        return Ok((longest + anti_entropy).max(cached) + QUIET_MARGIN);
    };
    let quiet = duration("quiet", t)?;
    if quiet <= longest {
        return Err(err(format!(
            "quiet: {t} is not longer than the longest delay ({longest:?}); the final reads would \
             judge writes still in flight"
        )));
    }
    if quiet <= cached {
        return Err(err(format!(
            "quiet: {t} is not longer than the REST cache's ttl ({cached:?}, rest_cache = true); \
             the final reads could be answered from the cache"
        )));
    }
    Ok(quiet)
}

impl Scenario {
    /// Parses and validates a scenario file for `edgekv lab run`: each table is resolved in
    /// turn, in the order its mistakes are reported.
    pub fn parse(text: &str) -> Result<Self, ScenarioError> {
        Self::parse_for(text, false)
    }

    /// Parses a scenario file for `edgekv sim`: the same file, with every region simulated.
    pub fn parse_simulated(text: &str) -> Result<Self, ScenarioError> {
        Self::parse_for(text, true)
    }

    fn parse_for(text: &str, simulated: bool) -> Result<Self, ScenarioError> {
        let file: File = toml::from_str(text).map_err(|e| err(e.to_string().trim().to_owned()))?;
        let duration_total = duration("duration", &file.duration)?;
        if duration_total.is_zero() {
            return Err(err("duration: the workload must run for longer than zero"));
        }
        let target = if simulated { Target::Simulated } else { file.target()? };
        if file.regions.is_empty() {
            return Err(err("regions: at least one [[regions]] entry is needed"));
        }
        let workload = file.workload.resolve()?;
        let regions = file.resolve_regions(&workload, &target)?;
        let cluster = file.cluster.unwrap_or_default();
        let delays = cluster.delays(&target)?;
        let anti_entropy = cluster.anti_entropy(&target)?;
        let clock_error = cluster.clock_error(&target)?;
        let edge = cluster.edge()?;
        let tombstone_grace = cluster
            .tombstone_grace
            .as_deref()
            .map(|t| duration("cluster.tombstone_grace", t))
            .transpose()?;
        let workload_end = (duration_total, file.duration.as_str());
        let faults = file
            .faults
            .iter()
            .enumerate()
            .map(|(i, f)| f.resolve(&format!("faults[{i}]"), &target, &regions, workload_end))
            .collect::<Result<Vec<_>, _>>()?;
        let longest = longest_delay(delays.as_ref(), &faults);
        let rest_cache = edge.rest_cache_ttl().map(Duration::from_secs);
        let quiet = quiet(file.quiet.as_deref(), longest, anti_entropy, rest_cache)?;
        Ok(Scenario {
            name: file.name,
            description: file.description,
            seed: file.seed,
            duration: duration_total,
            quiet,
            account: file.account.unwrap_or_else(|| "edgekv-lab".to_owned()),
            target,
            regions,
            workload,
            faults,
            delays,
            anti_entropy,
            clock_error,
            compose: file.compose.unwrap_or_default().resolve(),
            edge,
            tombstone_grace,
        })
    }

    /// The longest time a write may take to reach every region, faults included (the Workers
    /// KV contract, 60 s, when the cluster's delays are not known).
    pub fn longest_delay(&self) -> Duration {
        longest_delay(self.delays.as_ref(), &self.faults)
    }
}

impl Workload {
    fn validate(&self) -> Result<(), ScenarioError> {
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 10_000.0) {
            return Err(err(
                "workload.rate: operations per second per client, above 0 and at most 10000",
            ));
        }
        if self.keys == 0 {
            return Err(err("workload.keys: at least one key"));
        }
        if self.hot_keys > self.keys {
            return Err(err("workload.hot_keys: more hot keys than keys"));
        }
        if !(0.0..=1.0).contains(&self.hot_fraction) {
            return Err(err("workload.hot_fraction: a fraction from 0 to 1"));
        }
        if self.hot_fraction > 0.0 && self.hot_keys == 0 {
            return Err(err("workload.hot_fraction: set hot_keys too"));
        }
        let (min, max) = self.value_size;
        if min > max || max > 1024 * 1024 {
            return Err(err("workload.value_size: [MIN, MAX] bytes, MIN <= MAX <= 1 MiB"));
        }
        if self.ttl < MIN_TTL {
            return Err(err("workload.ttl: Workers KV refuses expiration TTLs under 60s"));
        }
        if !(1..=1000).contains(&self.list_limit) {
            return Err(err("workload.list_limit: from 1 to 1000, as the API allows"));
        }
        if self.mix.total() == 0 {
            return Err(err("workload.mix: at least one operation with a weight above 0"));
        }
        if self.read_mix.total() == 0
            || self.read_mix.put + self.read_mix.put_ttl + self.read_mix.delete > 0
        {
            return Err(err("workload.read_mix: readers only get and list"));
        }
        Ok(())
    }
}

/// The longest delay of any link plus the longest extra delay any fault adds.
fn longest_delay(delays: Option<&LatencyMatrix>, faults: &[FaultSpec]) -> Duration {
    let links = delays.map_or(edgekv_core::MAX_DELAY, LatencyMatrix::max);
    let extra = faults
        .iter()
        .filter_map(|f| match &f.fault {
            Fault::Delay { extra, .. } => extra.parse::<DelayModel>().ok(),
            _ => None,
        })
        .map(|m| m.max())
        .max()
        .unwrap_or_default();
    links + extra
}

#[cfg(test)]
mod tests;
