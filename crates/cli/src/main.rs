//! `edgekv`: run one regional node, or a local multi-region cluster in one process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Arg, ArgAction, ArgMatches, Args, FromArgMatches, Parser, Subcommand};
use edgekv_cli::config::{cluster_configs, node_config};
use edgekv_cli::dash::DashConfig;
use edgekv_cli::process::{init_tracing, shutdown_signal};
use edgekv_cli::settings::{self, Given, Settings, SPECS};
use edgekv_cli::supervise::Supervised;
use edgekv_node::config::DEV_ADMIN_TOKEN;
use edgekv_node::{bind, start, start_cluster, RunningRegion};
use edgekv_replication::Faults;
use tokio_util::sync::CancellationToken;

/// jemalloc rather than the C library's allocator: a request allocates a few dozen small
/// objects across threads (hyper's buffers on one worker, freed on another), and glibc's
/// malloc spent an eighth of a durable PUT's CPU time on them, consolidating and unlinking
/// chunks; jemalloc's per-thread caches do the same work for a fraction of that
/// (docs/performance.md has the before and after).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    Node(SettingsArgs<false>),
    /// Run one node per region in this process, replicating with each other; region i serves
    /// HTTP on PORT+i, gRPC on GRPC_PORT+i and the Workers binding on BINDING_PORT+i.
    Cluster(SettingsArgs<true>),
    /// The consistency lab.
    #[command(subcommand)]
    Lab(LabCommand),
    /// Run a lab scenario on the real cluster code under virtual time: every region in this
    /// process on one thread, the network, the clocks and every random choice driven from the
    /// seed, so a run replays exactly. Writes what `lab run` writes; exit 0 valid, 1 invalid,
    /// 2 unknown.
    Sim(SimArgs),
    /// Faults on a running cluster by region name: link faults through every region's admin
    /// API, process faults through docker (the compose cluster of deploy/up.sh by default).
    Chaos(ChaosArgs),
    /// Serve the live dashboard of a running cluster: its regions, links, lag and faults,
    /// updated every second, with a probe write and fault controls.
    Dash(DashArgs),
    /// Exit 0 if GET URL answers 2xx within two seconds: the container healthcheck, since the
    /// image has no shell and no curl.
    Probe {
        /// e.g. http://127.0.0.1:8787/healthz
        url: String,
    },
}

#[derive(Args)]
struct DashArgs {
    /// A region and its HTTP base URL, NAME=http://HOST:PORT (repeatable) [default: the
    /// compose cluster, wnam..apac on 127.0.0.1:8787..8791].
    #[arg(long = "region", env = "EDGEKV_DASH_REGIONS", value_delimiter = ',')]
    regions: Option<Vec<String>>,
    /// The regions' admin token; the page's controls ask for it [default:
    /// edgekv-dev-admin-token].
    #[arg(long, env = "EDGEKV_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// The API token the probe writes and reads with [default: edgekv-dev-token].
    #[arg(long = "api-token", env = "EDGEKV_API_TOKEN", hide_env_values = true)]
    api_token: Option<String>,
    /// Where to serve the page.
    #[arg(long, env = "EDGEKV_DASH_LISTEN", default_value = "127.0.0.1:8780")]
    listen: SocketAddr,
    /// A directory of lab runs (`lab run --out DIR/NAME`) whose reports the page lists.
    #[arg(long)]
    runs: Option<PathBuf>,
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
    /// Compose project (or swarm stack) of the containers.
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
    /// Add a region to the cluster while it runs: every region listed in --region takes it
    /// as a member at GRPC_URL. Start it first with --peer for each member (or --peer-dns);
    /// it fills up by anti-entropy.
    Join {
        /// The region joining.
        region: String,
        /// Its gRPC endpoint, e.g. http://10.0.0.7:9787.
        grpc_url: String,
    },
    /// Take a region out of the cluster: it drains (every member acknowledges its writes),
    /// then the others remove it and it removes them. Its store is refused from then on: to
    /// come back it must be wiped.
    Leave {
        /// The region leaving.
        region: String,
        /// How long it may take to drain.
        #[arg(long, default_value = "30s", value_parser = settings::parse_duration)]
        timeout: std::time::Duration,
        /// Remove it even if it cannot drain (down, cut off, too slow), reporting what may be
        /// lost.
        #[arg(long)]
        force: bool,
    },
    /// Every region's members, as each sees them.
    Members,
}

#[derive(Args)]
struct SimArgs {
    /// The scenario file (the same as `lab run` takes; region URLs are ignored).
    scenario: PathBuf,
    /// Output directory (with --seeds: where failing seeds keep their files, one per seed).
    #[arg(long)]
    out: PathBuf,
    /// Seed of the run (overrides the scenario's; default 1).
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run many seeds, e.g. 1..500, as many at once as there are cores; prints every invalid
    /// seed with the command that replays it.
    #[arg(long, value_parser = parse_seeds)]
    seeds: Option<std::ops::RangeInclusive<u64>>,
    /// If the run is invalid, shrink its scenario (fewer faults, shorter, fewer clients) while
    /// it stays invalid, and write the result as DIR/shrunk.toml.
    #[arg(long, conflicts_with = "seeds")]
    shrink: bool,
}

/// `A..B` or `A..=B` (both inclusive) or a single seed.
fn parse_seeds(text: &str) -> Result<std::ops::RangeInclusive<u64>, String> {
    let number = |t: &str| t.trim().parse::<u64>().map_err(|e| format!("{t:?}: {e}"));
    match text.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (number(a)?, number(b.trim_start_matches('='))?);
            if a > b {
                return Err(format!("{text}: the first seed is after the last"));
            }
            Ok(a..=b)
        }
        None => number(text).map(|n| n..=n),
    }
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

/// The settings of `node` (`CLUSTER` false) or `cluster`, as flags built from their one
/// definition in [`settings::SPECS`].
struct SettingsArgs<const CLUSTER: bool> {
    config: Option<PathBuf>,
    given: Given,
}

impl<const CLUSTER: bool> SettingsArgs<CLUSTER> {
    const COMMAND: settings::Command =
        if CLUSTER { settings::Command::Cluster } else { settings::Command::Node };

    fn resolve(&self) -> anyhow::Result<Settings> {
        Settings::resolve(Self::COMMAND, &self.given, self.config.as_deref())
    }
}

impl<const CLUSTER: bool> Args for SettingsArgs<CLUSTER> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let config = Arg::new("config")
            .long("config")
            .env("EDGEKV_CONFIG")
            .value_parser(clap::value_parser!(PathBuf))
            .help("TOML configuration file; environment variables and flags override it");
        let specs = SPECS.iter().filter(|spec| spec.applies_to(Self::COMMAND));
        specs.fold(cmd.arg(config), |cmd, spec| {
            let help = spec.help.trim();
            let secret = spec.name.contains("token") || spec.name.contains("secret");
            let arg = Arg::new(spec.name)
                .long(spec.flag)
                .env(spec.env)
                .hide_env_values(secret)
                .help(help);
            let arg = match (spec.list, spec.switch) {
                (Some(separator), _) => arg.action(ArgAction::Append).value_delimiter(separator),
                (None, true) => arg.num_args(0..=1).default_missing_value("true"),
                (None, false) => arg.action(ArgAction::Set),
            };
            cmd.arg(arg)
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl<const CLUSTER: bool> FromArgMatches for SettingsArgs<CLUSTER> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut given = Given::new();
        for spec in SPECS.iter().filter(|spec| spec.applies_to(Self::COMMAND)) {
            if let Some(values) = matches.get_many::<String>(spec.name) {
                given.insert(spec.name, values.cloned().collect());
            }
        }
        Ok(SettingsArgs { config: matches.get_one::<PathBuf>("config").cloned(), given })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

fn run_sim(args: &SimArgs) -> ExitCode {
    let args = edgekv_cli::sim::SimArgs {
        scenario: args.scenario.clone(),
        out: args.out.clone(),
        seed: args.seed,
        seeds: args.seeds.clone(),
        shrink: args.shrink,
    };
    match edgekv_cli::sim::run(args) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(err) => {
            eprintln!("error: {err:#}");
            // A run that cannot finish has decided nothing, as for `lab run`.
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(match cli.command {
        Command::Sim(_) => edgekv_cli::process::SIM_LOG_FILTER,
        _ => edgekv_cli::process::DEFAULT_LOG_FILTER,
    });
    match &cli.command {
        Command::Lab(LabCommand::Check { dir }) => return lab_check(dir),
        Command::Lab(LabCommand::Report { dir }) => return lab_report(dir),
        // The simulation makes its own runtimes: one thread each, on virtual time.
        Command::Sim(args) => return run_sim(args),
        Command::Probe { url } => {
            return match edgekv_cli::process::probe(url, std::time::Duration::from_secs(2)) {
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
                let args = edgekv_cli::lab::RunArgs { scenario, out, seed };
                edgekv_cli::lab::run(args).await.map(|code| code as u8)
            }
            Command::Chaos(args) => run_chaos(args).await.map(|()| 0),
            Command::Dash(args) => run_dash(args).await.map(|()| 0),
            Command::Lab(_) | Command::Probe { .. } | Command::Sim(_) => Ok(0),
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
    use edgekv_cli::chaos::{region_list, Cluster, Process};
    use edgekv_core::Fault;
    let mut cluster = Cluster::compose_defaults();
    if let Some(regions) = &args.regions {
        cluster.set_regions(regions)?;
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
            Fault::Partition { a: region_list(&a), b: region_list(&b) }
        }
        ChaosAction::Isolate { region } => cluster.isolate(&region),
        ChaosAction::OneWay { from, to } => Fault::OneWay { from, to },
        ChaosAction::Delay { from, to, extra } => Fault::Delay { from, to, extra },
        ChaosAction::Loss { from, to, rate } => Fault::Loss { from, to, rate },
        ChaosAction::Clock { region, offset } => {
            let offset_ms = settings::parse_offset(offset.trim()).map_err(anyhow::Error::msg)?.0;
            Fault::ClockOffset { region, offset_ms }
        }
        ChaosAction::PauseReplication { from, to } => Fault::Pause { from, to },
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
        ChaosAction::Join { region, grpc_url } => {
            cluster.join(&region, &grpc_url).await?.iter().for_each(|l| println!("{l}"));
            return Ok(());
        }
        ChaosAction::Leave { region, timeout, force } => {
            let report = cluster.leave(&region, timeout, force).await?;
            report.lines.iter().for_each(|l| println!("{l}"));
            return Ok(());
        }
        ChaosAction::Members => {
            cluster.members().await?.iter().for_each(|l| println!("{l}"));
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
    println!("{} in force ({})", serde_json::to_string(&fault)?, shown.join(", "));
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

async fn run_node(args: SettingsArgs<false>) -> anyhow::Result<()> {
    let settings = args.resolve()?;
    let config = node_config(&settings)?;
    let shutdown = CancellationToken::new();
    let faults = Arc::new(Faults::new(settings.seed));
    let running = start(bind(config).await?, faults, shutdown.clone())?;
    print_table(std::slice::from_ref(&running), &settings);
    serve_until_signal(vec![running], shutdown).await
}

async fn run_cluster(args: SettingsArgs<true>) -> anyhow::Result<()> {
    let settings = args.resolve()?;
    let configs = cluster_configs(&settings)?;
    let shutdown = CancellationToken::new();
    let faults = Arc::new(Faults::new(settings.seed));
    let running = start_cluster(configs, Arc::clone(&faults), shutdown.clone()).await?;
    print_table(&running, &settings);
    let dash = dash_config(&running);
    let supervised = Arc::new(Supervised::new(running, faults, shutdown.clone()));
    let dash_port = match (settings.dash_port, settings.port) {
        (Some(port), _) => port,
        (None, 0) => 0,
        (None, _) => DEFAULT_DASH_PORT,
    };
    let dash = DashConfig { supervisor: Some(Arc::clone(&supervised) as _), ..dash };
    let addr = SocketAddr::new(settings.host, dash_port);
    match edgekv_cli::dash::spawn(dash, addr, shutdown.clone()).await {
        Ok(bound) => println!("dashboard http://{bound}/"),
        // The cluster is still useful without its page (another cluster may hold the port).
        Err(err) => eprintln!("warning: no dashboard: {err:#}"),
    }
    println!("Ctrl-C stops the cluster.");
    tokio::select! {
        () = shutdown_signal() => {}
        () = shutdown.cancelled() => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
    shutdown.cancel();
    supervised.stop_all().await?;
    tracing::info!("stopped");
    Ok(())
}

/// The dashboard's port under `edgekv cluster`, beside the first region's 8787.
const DEFAULT_DASH_PORT: u16 = 8780;

/// The dashboard of the regions `edgekv cluster` runs.
fn dash_config(running: &[RunningRegion]) -> DashConfig {
    let first = running.first().map(|r| &r.config);
    DashConfig {
        regions: running
            .iter()
            .map(|r| (r.config.region.to_string(), format!("http://{}", r.http_addr)))
            .collect(),
        admin_token: first
            .and_then(|c| c.admin_tokens.first().cloned())
            .unwrap_or_else(|| DEV_ADMIN_TOKEN.to_owned()),
        api_token: first
            .and_then(|c| c.api_tokens.first().cloned())
            .unwrap_or_else(|| edgekv_api::DEV_TOKEN.to_owned()),
        runs: None,
        supervisor: None,
    }
}

async fn run_dash(args: DashArgs) -> anyhow::Result<()> {
    let mut cluster = edgekv_cli::chaos::Cluster::compose_defaults();
    if let Some(regions) = &args.regions {
        cluster.set_regions(regions)?;
    }
    let config = DashConfig {
        regions: cluster.regions,
        admin_token: args.admin_token.unwrap_or_else(|| DEV_ADMIN_TOKEN.to_owned()),
        api_token: args.api_token.unwrap_or_else(|| edgekv_api::DEV_TOKEN.to_owned()),
        runs: args.runs,
        supervisor: None,
    };
    let shutdown = CancellationToken::new();
    let bound = edgekv_cli::dash::spawn(config, args.listen, shutdown.clone()).await?;
    println!("dashboard http://{bound}/");
    shutdown_signal().await;
    shutdown.cancel();
    Ok(())
}

fn base_url(addr: SocketAddr) -> String {
    format!("http://{addr}/client/v4")
}

/// Prints where each region listens, once every listener is bound (so a script that has read
/// the table can connect at once). Scripts parse it: one header line, then one line per region
/// with the columns REGION, URL, GRPC, BINDING, TOKEN separated by whitespace.
fn print_table(regions: &[RunningRegion], settings: &Settings) {
    println!("{:<8} {:<40} {:<26} {:<26} TOKEN", "REGION", "URL", "GRPC", "BINDING");
    for region in regions {
        let token = region.config.api_tokens.first().map(String::as_str).unwrap_or("");
        let shown = if token == edgekv_api::DEV_TOKEN { token } else { "(configured)" };
        println!(
            "{:<8} {:<40} {:<26} {:<26} {}",
            region.config.region,
            base_url(region.http_addr),
            edgekv_replication::grpc_url(region.grpc_addr),
            format!("http://{}", region.binding_addr),
            shown
        );
    }
    let admin = regions
        .first()
        .and_then(|r| r.config.admin_tokens.first())
        .map(|t| if t == DEV_ADMIN_TOKEN { t.as_str() } else { "(configured)" })
        .unwrap_or("");
    let storage = match regions.first().map(|r| &r.config.storage) {
        Some(edgekv_node::Storage::Disk { dir, durability }) if regions.len() == 1 => {
            format!("{} ({durability})", dir.display())
        }
        Some(edgekv_node::Storage::Disk { durability, .. }) => {
            let root = settings.data_dir.clone().unwrap_or_else(|| "data".into());
            format!("{} ({durability})", root.display())
        }
        _ => "in memory".to_owned(),
    };
    let delays = regions.first().map(|r| &r.config.replication.delays);
    let (model, max) =
        delays.map_or_else(Default::default, |d| (d.default_model().to_string(), d.max()));
    println!(
        "delay {model} (max {max:?}), seed {}, admin token {admin}, storage {storage}",
        settings.seed
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
