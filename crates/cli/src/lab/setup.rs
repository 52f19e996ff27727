//! The run's first phase: its output directory, the cluster (started in-process when the
//! scenario has no URLs), every region's endpoints, and a fresh namespace that every region
//! has before the workload writes to it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use edgekv_api::EdgeConfig;
use edgekv_lab::scenario::{EdgeSettings, RegionSpec, Scenario, Target};
use edgekv_replication::Faults;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::client::{Client, Endpoint};
use super::{Clock, Region};
use edgekv_node::Storage;
use edgekv_node::{start_cluster, RegionConfig, RunningRegion};

/// Apply events an in-process region keeps for the lab between two polls.
const APPLY_LOG: usize = 2_000_000;
/// How long tombstones of an in-process cluster live: longer than any run, so that no delete
/// is forgotten while the checker still judges it.
const LAB_TOMBSTONE_GRACE: Duration = Duration::from_secs(24 * 3600);

/// Refuses to mix two runs in one directory.
pub(crate) fn prepare_out(out: &Path) -> anyhow::Result<()> {
    if out.join(edgekv_lab::files::HISTORY).exists() {
        bail!("{} already holds a run's history; choose another --out or remove it", out.display());
    }
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))
}

/// The regions as the run reaches them, and the in-process cluster it started (empty for an
/// external one), which `shutdown` stops.
pub(super) async fn connect(
    scenario: &Scenario,
    seed: u64,
    out: &Path,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Vec<Region>, Vec<RunningRegion>)> {
    match scenario.target {
        Target::InProcess { durable } => {
            let running = start_in_process(scenario, seed, durable, out, shutdown).await?;
            let regions = running
                .iter()
                .zip(&scenario.regions)
                .map(|(r, spec)| {
                    let base = format!("http://{}", r.http_addr);
                    let api = Endpoint::parse(&format!("{base}/client/v4"))?;
                    let binding = Endpoint::parse(&format!("http://{}", r.binding_addr))?;
                    Ok(region(spec, api, Some(binding), Endpoint::parse(&base)?))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok((regions, running))
        }
        Target::Simulated => bail!("a simulated scenario is run by `edgekv sim`, not `lab run`"),
        Target::External => {
            let regions = scenario
                .regions
                .iter()
                .map(|spec| {
                    let api = Endpoint::parse(&spec.url)?;
                    let admin = match &spec.admin_url {
                        Some(url) => Endpoint::parse(url)?,
                        None => Endpoint {
                            authority: api.authority.clone(),
                            prefix: String::new(),
                            local: None,
                        },
                    };
                    let binding = spec.binding_url.as_deref().map(Endpoint::parse).transpose()?;
                    Ok(region(spec, api, binding, admin))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok((regions, Vec::new()))
        }
    }
}

pub(crate) fn region(
    spec: &RegionSpec,
    api: Endpoint,
    binding: Option<Endpoint>,
    admin: Endpoint,
) -> Region {
    Region {
        name: spec.name.clone(),
        api,
        binding,
        admin,
        token: spec.token.clone(),
        admin_token: spec.admin_token.clone(),
    }
}

/// One node per region in this process, configured as the scenario says.
async fn start_in_process(
    scenario: &Scenario,
    seed: u64,
    durable: bool,
    out: &Path,
    shutdown: &CancellationToken,
) -> anyhow::Result<Vec<RunningRegion>> {
    let configs = region_configs(scenario, seed, durable, out)?;
    start_cluster(configs, Arc::new(Faults::new(seed)), shutdown.clone()).await
}

/// Each region's configuration as the scenario sets it, in memory or (`durable`) in a data
/// directory under `out`; peers are left for whoever starts the regions to fill in.
pub(crate) fn region_configs(
    scenario: &Scenario,
    seed: u64,
    durable: bool,
    out: &Path,
) -> anyhow::Result<Vec<RegionConfig>> {
    let mut configs = Vec::new();
    for spec in &scenario.regions {
        let region = spec.name.parse().with_context(|| format!("region {:?}", spec.name))?;
        let mut config = RegionConfig::loopback(region);
        config.replication.delays = scenario.delays.clone().unwrap_or_default();
        config.replication.seed = seed;
        config.replication.anti_entropy_interval = scenario.anti_entropy;
        config.tombstone_grace = scenario.tombstone_grace.unwrap_or(LAB_TOMBSTONE_GRACE);
        config.apply_log = APPLY_LOG;
        config.clock_offset_ms = spec.clock_offset_ms;
        config.api_tokens = vec![spec.token.clone()];
        config.admin_tokens = vec![spec.admin_token.clone()];
        config.edge = edge_config(scenario.edge);
        if durable {
            config.storage = Storage::Disk {
                dir: out.join("data").join(&spec.name),
                durability: edgekv_store::Durability::default(),
            };
        }
        configs.push(config);
    }
    Ok(configs)
}

/// A region's edge as the scenario sets it: Workers KV's cache size when the cache is on.
fn edge_config(edge: EdgeSettings) -> EdgeConfig {
    EdgeConfig {
        cache_memory: EdgeConfig::WORKERS_KV.cache_memory.filter(|_| edge.cache),
        rest_cache: edge.rest_cache,
        write_rate_limit: edge.write_rate_limit,
    }
}

/// Creates the run's namespace in the first region and waits until every region has it, so
/// that no write of the workload lands before its namespace.
pub(super) async fn create_namespace(
    scenario: &Scenario,
    seed: u64,
    regions: &[Region],
    clock: &Clock,
) -> anyhow::Result<String> {
    let Some(first) = regions.first() else { bail!("the scenario has no region") };
    let mut client = Client::new(first.api.clone(), &first.token)?;
    let title = format!("edgekv-lab {} seed {seed} at {}", scenario.name, clock.wall_ms());
    let body = serde_json::to_vec(&serde_json::json!({ "title": title }))?;
    let path = format!("/accounts/{}/storage/kv/namespaces", scenario.account);
    let reply = client
        .call(Method::POST, &path, Some((Bytes::from(body), "application/json")))
        .await
        .map_err(|e| anyhow::anyhow!("create the lab's namespace in {}: {e}", first.name))?;
    if reply.status != StatusCode::OK {
        bail!(
            "create the lab's namespace in {}: {} {}",
            first.name,
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
    }
    let answer: Value = serde_json::from_slice(&reply.body).context("namespace creation reply")?;
    let Some(id) = answer["result"]["id"].as_str().map(str::to_owned) else {
        bail!("namespace creation reply has no result.id: {answer}");
    };
    let patience = scenario.longest_delay() + scenario.anti_entropy + Duration::from_secs(10);
    let clients = regions
        .iter()
        .map(|r| Client::new(r.api.clone(), &r.token).map(|c| (r.name.as_str(), c)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(region) = wait_everywhere(clients, &format!("{path}/{id}"), patience).await {
        bail!("namespace {id} did not reach region {region} within {patience:?}");
    }
    Ok(id)
}

/// Waits until `GET path` answers 200 in every region, for `patience` at most; returns the
/// first region that did not in time.
async fn wait_everywhere<'a>(
    clients: Vec<(&'a str, Client)>,
    path: &str,
    patience: Duration,
) -> Option<&'a str> {
    let deadline = Instant::now() + patience;
    for (region, mut client) in clients {
        loop {
            let reply = client.call(Method::GET, path, None).await;
            if matches!(&reply, Ok(r) if r.status == StatusCode::OK) {
                break;
            }
            if Instant::now() > deadline {
                return Some(region);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    None
}
