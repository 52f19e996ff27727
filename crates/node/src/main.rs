//! `edgekv`: run one regional node, or a local multi-region cluster in one process.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use edgekv_node::config::{
    latency_matrix, parse_duration, parse_peer, parse_region, resolve_secret, resolve_tokens,
    FileConfig, Storage, DEFAULT_ANTI_ENTROPY_INTERVAL, DEFAULT_DATA_DIR, DEFAULT_LISTEN,
    DEFAULT_TOMBSTONE_GRACE, DEV_ADMIN_TOKEN, DEV_CLUSTER_SECRET,
};
use edgekv_node::{
    bind, init_tracing, shutdown_signal, start, start_cluster, RegionConfig, RunningRegion,
};
use edgekv_replication::{Faults, ReplicationConfig};
use tokio_util::sync::CancellationToken;

/// EdgeKV: an eventually consistent, multi-region key-value store that speaks the Cloudflare
/// Workers KV REST API.
#[derive(Parser)]
#[command(name = "edgekv", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one regional node.
    Node(NodeArgs),
    /// Run one node per region in this process, replicating with each other; region i serves
    /// HTTP on PORT+i and gRPC on GRPC_PORT+i.
    Cluster(ClusterArgs),
    /// The consistency lab.
    #[command(subcommand)]
    Lab(LabCommand),
    /// Faults on a running cluster by region name: link faults through every region's admin
    /// API, process faults through docker (the compose cluster of deploy/up.sh by default).
    Chaos(ChaosArgs),
    /// Exit 0 if GET URL answers 2xx within two seconds: the container healthcheck, since the
    /// image has no shell and no curl.
    Probe {
        /// e.g. http://127.0.0.1:8787/healthz
        url: String,
    },
}

#[derive(Args)]
struct ChaosArgs {
    /// A region and its admin base URL, NAME=http://HOST:PORT (repeatable) [default: the
    /// compose cluster, wnam..apac on 127.0.0.1:8787..8791].
    #[arg(long = "region", env = "EDGEKV_CHAOS_REGIONS", value_delimiter = ',')]
    regions: Option<Vec<String>>,
    /// Admin token [default: edgekv-dev-admin-token].
    #[arg(long, env = "EDGEKV_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Compose project of the containers.
    #[arg(long, env = "EDGEKV_COMPOSE_PROJECT", default_value = "edgekv")]
    project: String,
    /// Compose file, to recreate a wiped region.
    #[arg(long, env = "EDGEKV_COMPOSE_FILE", default_value = "deploy/docker-compose.yml")]
    compose_file: String,
    #[command(subcommand)]
    action: ChaosAction,
}

#[derive(Subcommand)]
enum ChaosAction {
    /// Cut every link between two sets of regions, both ways: `partition wnam,enam weur,apac`.
    Partition {
        /// One side, comma-separated.
        a: String,
        /// The other side, comma-separated.
        b: String,
    },
    /// Cut one region off from every other.
    Isolate {
        /// The region.
        region: String,
    },
    /// Cut the FROM -> TO direction only.
    OneWay {
        /// Sending region.
        from: String,
        /// Receiving region.
        to: String,
    },
    /// Remove every link fault on every region.
    Heal,
    /// Add an extra delay on FROM -> TO (`*` for any): MODEL like 5s or uniform(1s,10s).
    Delay {
        /// Sending region or `*`.
        from: String,
        /// Receiving region or `*`.
        to: String,
        /// Extra delay model.
        extra: String,
    },
    /// Lose a fraction of the deliveries FROM -> TO.
    Loss {
        /// Sending region or `*`.
        from: String,
        /// Receiving region or `*`.
        to: String,
        /// Probability, 0 to 1.
        rate: f64,
    },
    /// Skew a region's clock: OFFSET like +2s or -500ms.
    Clock {
        /// The region.
        region: String,
        /// The offset.
        #[arg(allow_hyphen_values = true)]
        offset: String,
    },
    /// Hold replication FROM -> TO in the outbox until resumed.
    PauseReplication {
        /// Sending region or `*`.
        from: String,
        /// Receiving region or `*`.
        to: String,
    },
    /// Remove every pause-replication fault.
    ResumeReplication,
    /// SIGKILL a region's container.
    Kill {
        /// The region.
        region: String,
    },
    /// Stop a region's container gracefully.
    Stop {
        /// The region.
        region: String,
    },
    /// Start a stopped or killed region.
    Start {
        /// The region.
        region: String,
    },
    /// Restart a region's container gracefully.
    Restart {
        /// The region.
        region: String,
    },
    /// Freeze a region's processes (docker pause).
    Freeze {
        /// The region.
        region: String,
    },
    /// Thaw a frozen region.
    Unfreeze {
        /// The region.
        region: String,
    },
    /// Delete a region's container and volume and start it empty.
    Wipe {
        /// The region.
        region: String,
    },
    /// List every region's faults.
    Status,
}

#[derive(Subcommand)]
enum LabCommand {
    /// Check a run's history (DIR/history.jsonl): exit 0 valid, 1 invalid, 2 unknown. Writes
    /// DIR/check.json and DIR/history.edn (for Jepsen's tools).
    Check {
        /// The run's output directory.
        dir: PathBuf,
    },
    /// Run a scenario (deploy/scenarios/*.toml): workload, faults, quiet period, final reads;
    /// then check and report. Exit 0 valid, 1 invalid, 2 unknown.
    Run {
        /// The scenario file.
        scenario: PathBuf,
        /// Output directory for history.jsonl, run.json, check.json, summary.json, report.html.
        #[arg(long)]
        out: PathBuf,
        /// Seed of the workload, the fault schedule and the delays (overrides the scenario's).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Write DIR/summary.json and DIR/report.html from a run's files.
    Report {
        /// The run's output directory.
        dir: PathBuf,
    },
}

/// Settings shared by `node` and `cluster`.
#[derive(Args)]
struct CommonArgs {
    /// TOML configuration file; environment variables and flags override it.
    #[arg(long, env = "EDGEKV_CONFIG")]
    config: Option<PathBuf>,
    /// Accepted API tokens, comma-separated. Without one, a node on loopback accepts
    /// `edgekv-dev-token` and a node on any other address refuses to start.
    #[arg(
        long = "api-token",
        env = "EDGEKV_API_TOKEN",
        value_delimiter = ',',
        hide_env_values = true
    )]
    api_tokens: Option<Vec<String>>,
    /// Admin API tokens, comma-separated; on loopback `edgekv-dev-admin-token` by default.
    #[arg(
        long = "admin-token",
        env = "EDGEKV_ADMIN_TOKEN",
        value_delimiter = ',',
        hide_env_values = true
    )]
    admin_tokens: Option<Vec<String>>,
    /// Secret regions present to each other; on loopback a development default.
    #[arg(long, env = "EDGEKV_CLUSTER_SECRET", hide_env_values = true)]
    cluster_secret: Option<String>,
    /// Propagation delay of every link: 5s, uniform(1s,5s), normal(3s,1s), lognormal(p50,p99),
    /// exponential(mean), pareto(scale,shape) or mix(w:model,...); at most 60 s [default: 0s].
    #[arg(long, env = "EDGEKV_DELAY")]
    delay: Option<String>,
    /// Delay of one link, overriding --delay: ORIGIN->DESTINATION=MODEL (repeatable).
    #[arg(long = "link-delay", env = "EDGEKV_LINK_DELAYS", value_delimiter = ';')]
    link_delays: Option<Vec<String>>,
    /// Seed of every sampled delay and fault decision, so a run replays [default: 0].
    #[arg(long, env = "EDGEKV_SEED")]
    seed: Option<u64>,
    /// How long deletes and expiries are remembered as tombstones (e.g. 24h, 30m).
    #[arg(long, env = "EDGEKV_TOMBSTONE_GRACE")]
    tombstone_grace: Option<String>,
    /// Mean interval between anti-entropy rounds with each peer [default: 30s].
    #[arg(long, env = "EDGEKV_ANTI_ENTROPY_INTERVAL")]
    anti_entropy_interval: Option<String>,
    /// Largest lead of a peer's timestamp over the local clock that is accepted [default: 500ms].
    #[arg(long, env = "EDGEKV_MAX_CLOCK_SKEW")]
    max_clock_skew: Option<String>,
    /// Keep all data in memory: nothing survives a restart (tests, quick experiments).
    #[arg(long, env = "EDGEKV_IN_MEMORY", conflicts_with = "data_dir")]
    in_memory: bool,
    /// Data directory. `node`: the region's own [default: ./data/REGION]; `cluster`: one
    /// subdirectory per region under it [default: ./data].
    #[arg(long, env = "EDGEKV_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// When a write is acknowledged: fsync (after the group commit's fsync), periodic(MS)
    /// (fsync every MS milliseconds, ack before it) or none (the OS flushes) [default: fsync].
    #[arg(long, env = "EDGEKV_DURABILITY")]
    durability: Option<String>,
    /// Offset added to the wall clock, e.g. -1h or 30s: starts the node with a skewed clock
    /// (experiments; the HLC still never goes back) [default: 0s].
    #[arg(long, env = "EDGEKV_CLOCK_OFFSET", allow_hyphen_values = true)]
    clock_offset: Option<String>,
    /// Keep the newest N apply events (which version of which key the region applied, when)
    /// for the consistency lab, served at /admin/applies [default: 0, off].
    #[arg(long, env = "EDGEKV_APPLY_LOG")]
    apply_log: Option<usize>,
}

#[derive(Args)]
struct NodeArgs {
    /// This node's region name (1-16 characters of a-z, 0-9, _).
    #[arg(long, env = "EDGEKV_REGION")]
    region: Option<String>,
    /// HTTP listen address [default: 127.0.0.1:8787].
    #[arg(long, env = "EDGEKV_LISTEN")]
    listen: Option<SocketAddr>,
    /// gRPC listen address for peers [default: the HTTP address with port + 1000].
    #[arg(long, env = "EDGEKV_GRPC_LISTEN")]
    grpc_listen: Option<SocketAddr>,
    /// A peer region: NAME=http://HOST:PORT (its gRPC address; repeatable).
    #[arg(long = "peer", env = "EDGEKV_PEERS", value_delimiter = ',')]
    peers: Option<Vec<String>>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct ClusterArgs {
    /// Region names, comma-separated [default: wnam,enam,weur].
    #[arg(long, env = "EDGEKV_REGIONS", value_delimiter = ',')]
    regions: Option<Vec<String>>,
    /// HTTP port of the first region; region i listens on PORT+i. 0 picks free ports
    /// [default: 8787].
    #[arg(long, env = "EDGEKV_PORT")]
    port: Option<u16>,
    /// gRPC port of the first region [default: PORT+1000, or free ports when PORT is 0].
    #[arg(long, env = "EDGEKV_GRPC_PORT")]
    grpc_port: Option<u16>,
    /// Address every region binds to [default: 127.0.0.1].
    #[arg(long, env = "EDGEKV_HOST")]
    host: Option<IpAddr>,
    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match &cli.command {
        Command::Lab(LabCommand::Check { dir }) => return lab_check(dir),
        Command::Lab(LabCommand::Report { dir }) => return lab_report(dir),
        Command::Probe { url } => {
            return match edgekv_node::probe(url, std::time::Duration::from_secs(2)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("unhealthy: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {}
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    // A lab run that cannot finish has decided nothing: exit 2, like `lab check` on a history
    // it cannot read.
    let failure = match &cli.command {
        Command::Lab(_) => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Node(args) => run_node(args).await.map(|()| 0),
            Command::Cluster(args) => run_cluster(args).await.map(|()| 0),
            Command::Lab(LabCommand::Run { scenario, out, seed }) => {
                let args = edgekv_node::lab::RunArgs { scenario, out, seed };
                edgekv_node::lab::run(args).await.map(|code| code as u8)
            }
            Command::Chaos(args) => run_chaos(args).await.map(|()| 0),
            Command::Lab(_) | Command::Probe { .. } => Ok(0),
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("error: {err:#}");
            failure
        }
    }
}

/// `edgekv lab check DIR`: prints the verdict and each anomaly with its witnesses.
fn lab_check(dir: &std::path::Path) -> ExitCode {
    let report = match edgekv_lab::files::check_dir(dir) {
        Ok(report) => report,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    println!(
        "{}: {} keys, {} operations, {} anomalies, {} undecided",
        match report.validity {
            edgekv_lab::check::Validity::Valid => "valid",
            edgekv_lab::check::Validity::Invalid => "INVALID",
            edgekv_lab::check::Validity::Unknown => "unknown",
        },
        report.keys,
        report.ops,
        report.anomalies.len(),
        report.unknowns.len()
    );
    for anomaly in &report.anomalies {
        println!(
            "  {:?} on key {:?} (operations {:?}): {}",
            anomaly.kind, anomaly.key, anomaly.ops, anomaly.explanation
        );
    }
    for reason in report.unknowns.iter().take(10) {
        println!("  undecided: {reason}");
    }
    if report.unknowns.len() > 10 {
        println!("  ... and {} more undecided (see check.json)", report.unknowns.len() - 10);
    }
    ExitCode::from(report.validity.exit_code() as u8)
}

/// `edgekv chaos ACTION`: one fault, applied and confirmed.
async fn run_chaos(args: ChaosArgs) -> anyhow::Result<()> {
    use edgekv_node::chaos::{region_list, Cluster, Process};
    use serde_json::json;
    let mut cluster = Cluster::compose_defaults();
    if let Some(regions) = args.regions {
        cluster.regions = regions
            .iter()
            .map(|r| {
                let (name, url) = r.split_once('=').with_context(|| {
                    format!("invalid --region {r:?}: expected NAME=http://HOST:PORT")
                })?;
                Ok((name.trim().to_owned(), url.trim().to_owned()))
            })
            .collect::<anyhow::Result<_>>()?;
    }
    if let Some(token) = args.admin_token {
        cluster.admin_token = token;
    }
    cluster.project = args.project;
    cluster.compose_file = args.compose_file;
    let process = |action: Process, region: &str| -> anyhow::Result<()> {
        cluster.process(action, region)?;
        println!("{action:?} {region}: done");
        Ok(())
    };
    let fault = match args.action {
        ChaosAction::Partition { a, b } => {
            json!({"kind": "partition", "a": region_list(&a), "b": region_list(&b)})
        }
        ChaosAction::Isolate { region } => {
            let others: Vec<String> =
                cluster.regions.iter().map(|(r, _)| r.clone()).filter(|r| *r != region).collect();
            json!({"kind": "partition", "a": [region], "b": others})
        }
        ChaosAction::OneWay { from, to } => json!({"kind": "one_way", "from": from, "to": to}),
        ChaosAction::Delay { from, to, extra } => {
            json!({"kind": "delay", "from": from, "to": to, "extra": extra})
        }
        ChaosAction::Loss { from, to, rate } => {
            json!({"kind": "loss", "from": from, "to": to, "rate": rate})
        }
        ChaosAction::Clock { region, offset } => {
            let offset_ms = signed_millis(&offset).context("clock offset")?;
            json!({"kind": "clock_offset", "region": region, "offset_ms": offset_ms})
        }
        ChaosAction::PauseReplication { from, to } => {
            json!({"kind": "pause", "from": from, "to": to})
        }
        ChaosAction::Heal => {
            let n = cluster.remove_faults(None).await?;
            println!("healed: {n} faults removed");
            return Ok(());
        }
        ChaosAction::ResumeReplication => {
            let n = cluster.remove_faults(Some("pause")).await?;
            println!("resumed: {n} pause faults removed");
            return Ok(());
        }
        ChaosAction::Status => {
            for (region, faults) in cluster.status().await? {
                println!("{region}: {faults}");
            }
            return Ok(());
        }
        ChaosAction::Kill { region } => return process(Process::Kill, &region),
        ChaosAction::Stop { region } => return process(Process::Stop, &region),
        ChaosAction::Start { region } => return process(Process::Start, &region),
        ChaosAction::Restart { region } => return process(Process::Restart, &region),
        ChaosAction::Freeze { region } => return process(Process::Freeze, &region),
        ChaosAction::Unfreeze { region } => return process(Process::Unfreeze, &region),
        ChaosAction::Wipe { region } => return process(Process::Wipe, &region),
    };
    let ids = cluster.add_fault(&fault).await?;
    let shown: Vec<String> = ids.iter().map(|(r, id)| format!("{r}#{id}")).collect();
    println!("{fault} in force ({})", shown.join(", "));
    Ok(())
}

/// `edgekv lab report DIR`: the figures of a run, as summary.json and report.html.
fn lab_report(dir: &std::path::Path) -> ExitCode {
    match edgekv_lab::files::report_dir(dir) {
        Ok(_) => {
            println!("{}", dir.join(edgekv_lab::files::REPORT).display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The settings every region of one invocation shares, resolved from file, environment and
/// flags.
struct Shared {
    file: FileConfig,
    api_tokens: Vec<String>,
    admin_tokens: Vec<String>,
    cluster_secret: Option<String>,
    tombstone_grace: std::time::Duration,
    delays: edgekv_core::LatencyMatrix,
    seed: u64,
    anti_entropy_interval: std::time::Duration,
    max_clock_skew: std::time::Duration,
    /// The data directory (`None`: in memory) and the durability mode.
    data_dir: Option<PathBuf>,
    durability: edgekv_store::Durability,
    clock_offset_ms: i64,
    apply_log: usize,
}

fn shared(common: CommonArgs) -> anyhow::Result<Shared> {
    let file = match &common.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let duration = |flag: Option<&str>, file: Option<&str>, default, what: &str| match flag.or(file)
    {
        Some(text) => parse_duration(text).with_context(|| what.to_owned()),
        None => Ok(default),
    };
    let tombstone_grace = duration(
        common.tombstone_grace.as_deref(),
        file.tombstone_grace.as_deref(),
        DEFAULT_TOMBSTONE_GRACE,
        "tombstone grace",
    )?;
    let anti_entropy_interval = duration(
        common.anti_entropy_interval.as_deref(),
        file.anti_entropy_interval.as_deref(),
        DEFAULT_ANTI_ENTROPY_INTERVAL,
        "anti-entropy interval",
    )?;
    if anti_entropy_interval.is_zero() {
        bail!("the anti-entropy interval must be longer than zero");
    }
    let max_clock_skew = duration(
        common.max_clock_skew.as_deref(),
        file.max_clock_skew.as_deref(),
        edgekv_core::Hlc::DEFAULT_MAX_DELTA,
        "max clock skew",
    )?;
    let links = common.link_delays.or_else(|| file.link_delays.clone()).unwrap_or_default();
    let delays = latency_matrix(common.delay.as_deref().or(file.delay.as_deref()), &links)?;
    let in_memory = common.in_memory || file.in_memory.unwrap_or(false);
    let data_dir = match common.data_dir.clone().or_else(|| file.data_dir.clone()) {
        _ if in_memory => None,
        Some(dir) => Some(dir),
        None => Some(PathBuf::from(DEFAULT_DATA_DIR)),
    };
    let durability = match common.durability.as_deref().or(file.durability.as_deref()) {
        Some(text) => text.parse().map_err(|e: String| anyhow::anyhow!(e))?,
        None => edgekv_store::Durability::default(),
    };
    let clock_offset_ms = match common.clock_offset.as_deref().or(file.clock_offset.as_deref()) {
        Some(text) => signed_millis(text).context("clock offset")?,
        None => 0,
    };
    Ok(Shared {
        data_dir,
        durability,
        clock_offset_ms,
        apply_log: common.apply_log.or(file.apply_log).unwrap_or(0),
        api_tokens: common.api_tokens.or_else(|| file.api_tokens.clone()).unwrap_or_default(),
        admin_tokens: common.admin_tokens.or_else(|| file.admin_tokens.clone()).unwrap_or_default(),
        cluster_secret: common.cluster_secret.or_else(|| file.cluster_secret.clone()),
        seed: common.seed.or(file.seed).unwrap_or(0),
        file,
        tombstone_grace,
        delays,
        anti_entropy_interval,
        max_clock_skew,
    })
}

impl Shared {
    fn region_config(
        &self,
        region: edgekv_core::RegionId,
        listen: SocketAddr,
        grpc_listen: SocketAddr,
        peers: Vec<edgekv_replication::PeerConfig>,
        dir: impl FnOnce(&std::path::Path) -> PathBuf,
    ) -> anyhow::Result<RegionConfig> {
        let api_tokens = resolve_tokens(self.api_tokens.clone(), listen)?;
        let secret = resolve_secret(
            self.cluster_secret.clone(),
            grpc_listen,
            DEV_CLUSTER_SECRET,
            "cluster secret",
            "EDGEKV_CLUSTER_SECRET",
        )?;
        let admin = resolve_secret(
            (!self.admin_tokens.is_empty()).then(|| self.admin_tokens.join(",")),
            listen,
            DEV_ADMIN_TOKEN,
            "admin token",
            "EDGEKV_ADMIN_TOKEN",
        )?;
        let mut replication = ReplicationConfig::new(region, peers, secret);
        replication.delays = self.delays.clone();
        replication.seed = self.seed;
        replication.anti_entropy_interval = self.anti_entropy_interval;
        Ok(RegionConfig {
            region,
            listen,
            grpc_listen,
            api_tokens,
            admin_tokens: admin.split(',').map(str::to_owned).collect(),
            tombstone_grace: self.tombstone_grace,
            replication,
            max_clock_skew: self.max_clock_skew,
            storage: self.storage(dir),
            clock_offset_ms: self.clock_offset_ms,
            apply_log: self.apply_log,
            storage_reserve: edgekv_store::Reserve::default(),
        })
    }

    /// Where a region keeps its data: `dir` under the data directory, or in memory.
    fn storage(&self, dir: impl FnOnce(&std::path::Path) -> PathBuf) -> Storage {
        match &self.data_dir {
            None => Storage::InMemory,
            Some(root) => Storage::Disk { dir: dir(root), durability: self.durability },
        }
    }
}

/// Parses a signed duration such as `-1h`, `+30s` or `250ms` into milliseconds.
fn signed_millis(text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    let (negative, magnitude) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let ms = i64::try_from(parse_duration(magnitude)?.as_millis()).context("offset too large")?;
    Ok(if negative { -ms } else { ms })
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

async fn run_node(args: NodeArgs) -> anyhow::Result<()> {
    let flag_dir = args.common.data_dir.is_some();
    let shared = shared(args.common)?;
    let region = args.region.or_else(|| shared.file.region.clone()).context(
        "no region given: pass --region NAME, set EDGEKV_REGION, or set region in the config file",
    )?;
    let region = parse_region(&region)?;
    let listen = match args.listen.or(shared.file.listen) {
        Some(addr) => addr,
        None => DEFAULT_LISTEN.parse().context("default listen address")?,
    };
    let grpc_listen = match args.grpc_listen.or(shared.file.grpc_listen) {
        Some(addr) => addr,
        None => grpc_beside(listen)?,
    };
    let peers = match args.peers {
        Some(list) => list.iter().map(|p| parse_peer(p)).collect::<anyhow::Result<Vec<_>>>()?,
        None => shared
            .file
            .peers
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(name, url)| parse_peer(&format!("{name}={url}")))
            .collect::<anyhow::Result<Vec<_>>>()?,
    };
    if peers.iter().any(|p| p.name == region) {
        bail!("region {region} lists itself as a peer");
    }
    // An explicit directory is the region's own; the default keeps the cluster's layout, so
    // `edgekv node --region wnam` finds the data `edgekv cluster` wrote for wnam.
    let explicit = flag_dir || shared.file.data_dir.is_some();
    let config = shared.region_config(region, listen, grpc_listen, peers, |root| {
        if explicit {
            root.to_path_buf()
        } else {
            root.join(region.as_str())
        }
    })?;
    let shutdown = CancellationToken::new();
    let faults = Arc::new(Faults::new(shared.seed));
    let running = start(bind(config).await?, faults, shutdown.clone())?;
    print_table(std::slice::from_ref(&running), &shared);
    serve_until_signal(vec![running], shutdown).await
}

async fn run_cluster(args: ClusterArgs) -> anyhow::Result<()> {
    let shared = shared(args.common)?;
    let names = args
        .regions
        .or_else(|| shared.file.regions.clone())
        .unwrap_or_else(|| vec!["wnam".into(), "enam".into(), "weur".into()]);
    let host = args.host.or(shared.file.host).unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let base_port = args.port.or(shared.file.port).unwrap_or(8787);
    let grpc_base = match args.grpc_port.or(shared.file.grpc_port) {
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
    for (i, name) in names.iter().enumerate() {
        let region = parse_region(name)?;
        if configs.iter().any(|r| r.region == region) {
            bail!("region {region} is listed twice");
        }
        let listen = SocketAddr::new(host, port_of(base_port, i)?);
        let grpc = SocketAddr::new(host, port_of(grpc_base, i)?);
        configs.push(
            shared.region_config(region, listen, grpc, Vec::new(), |root| {
                root.join(region.as_str())
            })?,
        );
    }
    if configs.is_empty() {
        bail!("--regions needs at least one region name");
    }
    let shutdown = CancellationToken::new();
    let faults = Arc::new(Faults::new(shared.seed));
    let running = start_cluster(configs, faults, shutdown.clone()).await?;
    print_table(&running, &shared);
    println!("Ctrl-C stops the cluster.");
    serve_until_signal(running, shutdown).await
}

fn base_url(addr: SocketAddr) -> String {
    format!("http://{addr}/client/v4")
}

/// Prints where each region listens, once every listener is bound (so a script that has read
/// the table can connect at once). Scripts parse it: one header line, then one line per region
/// with the columns REGION, URL, GRPC, TOKEN separated by whitespace.
fn print_table(regions: &[RunningRegion], shared: &Shared) {
    println!("{:<8} {:<40} {:<26} TOKEN", "REGION", "URL", "GRPC");
    for region in regions {
        let token = region.config.api_tokens.first().map(String::as_str).unwrap_or("");
        let shown = if token == edgekv_api::DEV_TOKEN { token } else { "(configured)" };
        let grpc = edgekv_replication::grpc_url(region.grpc_addr);
        println!(
            "{:<8} {:<40} {:<26} {}",
            region.config.region,
            base_url(region.http_addr),
            grpc,
            shown
        );
    }
    let admin = regions
        .first()
        .and_then(|r| r.config.admin_tokens.first())
        .map(|t| if t == DEV_ADMIN_TOKEN { t.as_str() } else { "(configured)" })
        .unwrap_or("");
    let storage = match &shared.data_dir {
        None => "in memory".to_owned(),
        Some(dir) => format!("{} ({})", dir.display(), shared.durability),
    };
    println!(
        "delay {} (max {:?}), seed {}, admin token {admin}, storage {storage}",
        shared.delays.default_model(),
        shared.delays.max(),
        shared.seed
    );
}

async fn serve_until_signal(
    regions: Vec<RunningRegion>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    tokio::select! {
        () = shutdown_signal() => {}
        () = shutdown.cancelled() => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
    shutdown.cancel();
    let mut failed = None;
    for region in regions {
        if let Err(err) = region.stopped().await {
            failed.get_or_insert(err);
        }
    }
    if let Some(err) = failed {
        return Err(err);
    }
    tracing::info!("stopped");
    Ok(())
}
