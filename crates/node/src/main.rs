//! `edgekv`: run one regional node, or a local multi-region cluster in one process.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use edgekv_node::config::{
    parse_duration, parse_region, resolve_tokens, FileConfig, DEFAULT_LISTEN,
    DEFAULT_TOMBSTONE_GRACE,
};
use edgekv_node::{init_tracing, shutdown_signal, start_region, RegionConfig, RunningRegion};
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
    /// Run one node per region in this process, region i on port PORT+i.
    Cluster(ClusterArgs),
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
    /// How long deletes and expiries are remembered as tombstones (e.g. 24h, 30m).
    #[arg(long, env = "EDGEKV_TOMBSTONE_GRACE")]
    tombstone_grace: Option<String>,
    /// Keep all data in memory. Today this is the only storage mode.
    #[arg(long, env = "EDGEKV_IN_MEMORY")]
    in_memory: bool,
}

#[derive(Args)]
struct NodeArgs {
    /// This node's region name (1-16 characters of a-z, 0-9, _).
    #[arg(long, env = "EDGEKV_REGION")]
    region: Option<String>,
    /// HTTP listen address [default: 127.0.0.1:8787].
    #[arg(long, env = "EDGEKV_LISTEN")]
    listen: Option<SocketAddr>,
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
    /// Address every region binds to [default: 127.0.0.1].
    #[arg(long, env = "EDGEKV_HOST")]
    host: Option<IpAddr>,
    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Node(args) => run_node(args).await,
            Command::Cluster(args) => run_cluster(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The settings every region of one invocation shares.
struct Shared {
    file: FileConfig,
    api_tokens: Vec<String>,
    tombstone_grace: std::time::Duration,
}

fn shared(common: CommonArgs) -> anyhow::Result<Shared> {
    let file = match &common.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let grace = match common.tombstone_grace.as_deref().or(file.tombstone_grace.as_deref()) {
        Some(text) => parse_duration(text).context("tombstone grace")?,
        None => DEFAULT_TOMBSTONE_GRACE,
    };
    let api_tokens = common.api_tokens.or_else(|| file.api_tokens.clone()).unwrap_or_default();
    if common.in_memory || file.in_memory.unwrap_or(false) {
        tracing::debug!("in-memory storage requested (the only mode so far)");
    }
    Ok(Shared { file, api_tokens, tombstone_grace: grace })
}

async fn run_node(args: NodeArgs) -> anyhow::Result<()> {
    let shared = shared(args.common)?;
    let region = args.region.or_else(|| shared.file.region.clone()).context(
        "no region given: pass --region NAME, set EDGEKV_REGION, or set region in the config file",
    )?;
    let listen = match args.listen.or(shared.file.listen) {
        Some(addr) => addr,
        None => DEFAULT_LISTEN.parse().context("default listen address")?,
    };
    let config = RegionConfig {
        region: parse_region(&region)?,
        listen,
        api_tokens: resolve_tokens(shared.api_tokens, listen)?,
        tombstone_grace: shared.tombstone_grace,
    };
    let shutdown = CancellationToken::new();
    let running = start_region(config, shutdown.clone()).await?;
    print_table(std::slice::from_ref(&running));
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
    let mut regions = Vec::new();
    for name in &names {
        let region = parse_region(name)?;
        if regions.iter().any(|r: &RegionConfig| r.region == region) {
            bail!("region {region} is listed twice");
        }
        let offset = u16::try_from(regions.len()).context("too many regions")?;
        let port = if base_port == 0 {
            0
        } else {
            base_port.checked_add(offset).context("region ports run past 65535")?
        };
        let listen = SocketAddr::new(host, port);
        regions.push(RegionConfig {
            region,
            listen,
            api_tokens: resolve_tokens(shared.api_tokens.clone(), listen)?,
            tombstone_grace: shared.tombstone_grace,
        });
    }
    if regions.is_empty() {
        bail!("--regions needs at least one region name");
    }

    let shutdown = CancellationToken::new();
    let mut running = Vec::new();
    for config in regions {
        match start_region(config, shutdown.clone()).await {
            Ok(region) => running.push(region),
            Err(err) => {
                shutdown.cancel();
                return Err(err);
            }
        }
    }
    print_table(&running);
    println!("Regions are independent until replication is enabled. Ctrl-C stops the cluster.");
    serve_until_signal(running, shutdown).await
}

fn base_url(addr: SocketAddr) -> String {
    format!("http://{addr}/client/v4")
}

/// Prints where each region listens, once every listener is bound (so a script that has read the
/// table can connect at once). Scripts parse it: one header line, then one line per region with
/// the columns REGION, URL, TOKEN separated by whitespace.
fn print_table(regions: &[RunningRegion]) {
    println!("{:<8} {:<40} TOKEN", "REGION", "URL");
    for region in regions {
        let token = region.config.api_tokens.first().map(String::as_str).unwrap_or("");
        let shown = if token == edgekv_api::DEV_TOKEN { token } else { "(configured)" };
        println!("{:<8} {:<40} {}", region.config.region, base_url(region.http_addr), shown);
    }
}

async fn serve_until_signal(
    regions: Vec<RunningRegion>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    shutdown_signal().await;
    tracing::info!("shutting down: finishing requests in flight");
    shutdown.cancel();
    for region in regions {
        region.stopped().await?;
    }
    tracing::info!("stopped");
    Ok(())
}
