//! `edgekv lab run`: drives a scenario against a cluster and records what happened.
//!
//! The run has five phases: set up (start an in-process cluster if the scenario has no URLs,
//! create a namespace and wait until every region has it), the workload (clients and the fault
//! schedule, while pollers collect every region's apply events), the quiet period (no faults,
//! no writes: longer than the longest delay), the final reads of every key in every region, and
//! the verdict and report. Everything is timed on one monotonic clock from the run's start;
//! the nodes' apply times, read on their own clocks, are mapped onto it as the windows they
//! certainly lie in (see the `applies` module).

mod applies;
pub(crate) mod client;

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use edgekv_lab::history::{FaultEvent, FinalRead, Function, History, Op, Outcome};
use edgekv_lab::meta::{ClockStep, LinkMeta, RegionMeta, RunMeta};
use edgekv_lab::scenario::{is_process_fault, Scenario, Target};
use edgekv_lab::summary::CheckSummary;
use edgekv_lab::workload::{self, Generator, Planned, Scheduled};
use edgekv_replication::{Fault, Faults};
use serde_json::Value;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use self::applies::{apply_on_run_clock, Poller, APPLY_POLL};
use self::client::{CallError, Client, Endpoint, Reply};
use crate::chaos::{self, Process};
use crate::config::Storage;
use crate::{start_cluster, RegionConfig, RunningRegion};

/// Apply events an in-process region keeps for the lab between two polls.
const APPLY_LOG: usize = 2_000_000;
/// Connections per region used for the final reads.
const FINAL_READERS: usize = 8;
/// How long tombstones of an in-process cluster live: longer than any run, so that no delete
/// is forgotten while the checker still judges it.
const LAB_TOMBSTONE_GRACE: Duration = Duration::from_secs(24 * 3600);

/// What `edgekv lab run` was asked.
#[derive(Debug)]
pub struct RunArgs {
    /// The scenario file.
    pub scenario: PathBuf,
    /// The output directory.
    pub out: PathBuf,
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
}

/// One region as the run reaches it.
struct Region {
    name: String,
    api: Endpoint,
    admin: Endpoint,
    token: String,
    admin_token: String,
}

/// The run's clock: monotonic nanoseconds since the start, and the wall clock at the start.
#[derive(Clone, Copy)]
struct Clock {
    start: Instant,
    /// The wall clock at the start, epoch ms (for people and expiry).
    wall_ms: u64,
    /// The same reading in epoch ns, to map the nodes' wall-clock readings onto the run's.
    wall_ns: u64,
    /// How long reading the wall clock took: the run's clock stood somewhere in
    /// `[0, pairing_ns]` at the moment `wall_ns` was read.
    pairing_ns: u64,
}

impl Clock {
    fn new() -> Self {
        let start = Instant::now();
        let wall_ns =
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let pairing_ns = start.elapsed().as_nanos() as u64;
        Clock { start, wall_ms: wall_ns / 1_000_000, wall_ns, pairing_ns }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Counters the progress line shows.
#[derive(Default)]
struct Progress {
    ops: AtomicU64,
    errors: AtomicU64,
    phase: parking_lot::Mutex<String>,
    faults: parking_lot::Mutex<BTreeSet<String>>,
    /// Faults set and not yet removed: (admin endpoint, admin token, fault id), so that a run
    /// that fails or is interrupted does not leave a cluster partitioned.
    applied: parking_lot::Mutex<Vec<(Endpoint, String, u64)>>,
    /// Process faults in force, with what ends them: a failed run must not leave a region
    /// killed or frozen.
    undo: parking_lot::Mutex<Vec<(chaos::Cluster, Process, String)>>,
}

impl Progress {
    /// Removes every fault this run set and did not remove (best effort: the run is failing).
    async fn remove_leftover_faults(&self) {
        let undo = std::mem::take(&mut *self.undo.lock());
        for (cluster, action, region) in undo {
            let done = tokio::task::spawn_blocking(move || {
                cluster.process(action, &region).map(|()| region)
            })
            .await;
            if !matches!(done, Ok(Ok(_))) {
                eprintln!(
                    "lab: could not undo a process fault; check the containers with docker ps"
                );
            }
        }
        let leftovers = std::mem::take(&mut *self.applied.lock());
        for (endpoint, token, id) in leftovers {
            let Ok(mut admin) = Client::new(endpoint, &token) else { continue };
            if admin.call(Method::DELETE, &format!("/admin/faults/{id}"), None).await.is_err() {
                eprintln!(
                    "lab: could not remove fault {id}; remove it with DELETE /admin/faults/{id}"
                );
            }
        }
    }
}

/// Runs the scenario; returns the checker's exit code (0 valid, 1 invalid, 2 unknown).
pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(&args.scenario)
        .with_context(|| format!("read scenario {}", args.scenario.display()))?;
    let scenario =
        Scenario::parse(&text).with_context(|| format!("scenario {}", args.scenario.display()))?;
    for (i, spec) in scenario.faults.iter().enumerate().filter(|(_, f)| !is_process_fault(&f.fault))
    {
        let fault: Fault = serde_json::from_value(spec.fault.clone())
            .with_context(|| format!("faults[{i}].fault"))?;
        fault.validate().with_context(|| format!("faults[{i}].fault"))?;
    }
    prepare_out(&args.out)?;
    let seed = args.seed.or(scenario.seed).unwrap_or_else(|| {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
    });
    eprintln!(
        "lab: scenario {:?}, seed {seed} (rerun: edgekv lab run {} --seed {seed})",
        scenario.name,
        args.scenario.display()
    );

    let shutdown = CancellationToken::new();
    let (regions, cluster) = match scenario.target {
        Target::InProcess { durable } => {
            let running = start_in_process(&scenario, seed, durable, &args.out, &shutdown).await?;
            let regions = running
                .iter()
                .zip(&scenario.regions)
                .map(|(r, spec)| {
                    let base = format!("http://{}", r.http_addr);
                    Ok(Region {
                        name: spec.name.clone(),
                        api: Endpoint::parse(&format!("{base}/client/v4"))?,
                        admin: Endpoint::parse(&base)?,
                        token: spec.token.clone(),
                        admin_token: spec.admin_token.clone(),
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            (regions, running)
        }
        Target::External => {
            let regions = scenario
                .regions
                .iter()
                .map(|spec| {
                    let api = Endpoint::parse(&spec.url)?;
                    let admin = match &spec.admin_url {
                        Some(url) => Endpoint::parse(url)?,
                        None => {
                            Endpoint { authority: api.authority.clone(), prefix: String::new() }
                        }
                    };
                    Ok(Region {
                        name: spec.name.clone(),
                        api,
                        admin,
                        token: spec.token.clone(),
                        admin_token: spec.admin_token.clone(),
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            (regions, Vec::new())
        }
    };
    let progress = Arc::new(Progress::default());
    let result = tokio::select! {
        result = drive(&scenario, &text, seed, &regions, &args.out, Arc::clone(&progress)) => result,
        () = crate::shutdown_signal() => Err(anyhow::anyhow!("interrupted")),
    };
    if result.is_err() {
        progress.remove_leftover_faults().await;
    }
    if !cluster.is_empty() {
        shutdown.cancel();
        for region in cluster {
            region.stopped().await?;
        }
        if let Target::InProcess { durable: true } = scenario.target {
            let _ = std::fs::remove_dir_all(args.out.join("data"));
        }
    }
    result
}

/// Refuses to mix two runs in one directory.
fn prepare_out(out: &Path) -> anyhow::Result<()> {
    if out.join(edgekv_lab::files::HISTORY).exists() {
        bail!("{} already holds a run's history; choose another --out or remove it", out.display());
    }
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))
}

async fn start_in_process(
    scenario: &Scenario,
    seed: u64,
    durable: bool,
    out: &Path,
    shutdown: &CancellationToken,
) -> anyhow::Result<Vec<RunningRegion>> {
    let mut configs = Vec::new();
    for spec in &scenario.regions {
        let region = spec.name.parse().with_context(|| format!("region {:?}", spec.name))?;
        let mut config = RegionConfig::loopback(region);
        config.replication.delays = scenario.delays.clone().unwrap_or_default();
        config.replication.seed = seed;
        config.replication.anti_entropy_interval = scenario.anti_entropy;
        config.tombstone_grace = LAB_TOMBSTONE_GRACE;
        config.apply_log = APPLY_LOG;
        config.clock_offset_ms = spec.clock_offset_ms;
        config.api_tokens = vec![spec.token.clone()];
        config.admin_tokens = vec![spec.admin_token.clone()];
        if durable {
            config.storage = Storage::Disk {
                dir: out.join("data").join(&spec.name),
                durability: edgekv_store::Durability::default(),
            };
        }
        configs.push(config);
    }
    start_cluster(configs, Arc::new(Faults::new(seed)), shutdown.clone()).await
}

/// Set up, workload, quiet period, final reads, files.
async fn drive(
    scenario: &Scenario,
    text: &str,
    seed: u64,
    regions: &[Region],
    out: &Path,
    progress: Arc<Progress>,
) -> anyhow::Result<i32> {
    let clock = Clock::new();
    let namespace = create_namespace(scenario, seed, regions).await?;
    eprintln!(
        "lab: namespace {namespace} is in every region; workload for {:?}",
        scenario.duration
    );

    let stop_polling = CancellationToken::new();
    let mut pollers = JoinSet::new();
    for (i, region) in regions.iter().enumerate() {
        let poller = Poller {
            index: i,
            admin: Client::new(region.admin.clone(), &region.admin_token)?,
            namespace: namespace.clone(),
            clock,
        };
        pollers.spawn(poller.run(stop_polling.clone()));
    }
    let show = tokio::spawn(show_progress(Arc::clone(&progress), clock, scenario.duration));

    // The workload and the fault schedule.
    let workload_start = clock.now();
    *progress.phase.lock() = "workload".into();
    let index = Arc::new(AtomicU64::new(0));
    let mut clients = JoinSet::new();
    for c in workload::clients(scenario) {
        let region = &regions[c.region];
        let worker = Worker {
            process: c.process,
            region: region.name.clone(),
            client: Client::new(region.api.clone(), &region.token)?,
            base: format!("/accounts/{}/storage/kv/namespaces/{namespace}", scenario.account),
            generator: Generator::new(seed, &c, &scenario.workload),
            clock,
            index: Arc::clone(&index),
            progress: Arc::clone(&progress),
        };
        clients.spawn(worker.run(scenario.duration));
    }
    let schedule = workload::schedule(seed, &scenario.faults, scenario.duration);
    let faults = drive_faults(scenario, &schedule, regions, clock, &progress).await;
    let mut history = History::default();
    while let Some(ops) = clients.join_next().await {
        history.ops.extend(ops.context("a lab client panicked")?);
    }
    let (fault_events, clock_steps) = faults?;
    history.faults = fault_events;
    let workload_end = clock.now();

    *progress.phase.lock() = format!("quiet period of {:?}", scenario.quiet);
    tokio::time::sleep(scenario.quiet).await;
    *progress.phase.lock() = "final reads".into();
    let keys: BTreeSet<String> =
        history.ops.iter().filter(|o| o.f != Function::List).map(|o| o.key.clone()).collect();
    history.finals = final_reads(scenario, regions, &namespace, &keys, clock).await?;

    // One last poll after the final reads, then stop.
    tokio::time::sleep(APPLY_POLL * 2).await;
    stop_polling.cancel();
    let mut missed = Vec::new();
    let mut raw = Vec::new();
    while let Some(result) = pollers.join_next().await {
        let polled = result.context("an apply poller panicked")?;
        if polled.missed {
            missed.push(regions[polled.index].name.clone());
        }
        raw.extend(polled.events.into_iter().map(|e| (polled.index, e)));
    }
    show.abort();
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    let steps = clock_offsets(scenario, &clock_steps);
    history.applies = raw
        .into_iter()
        .map(|(i, e)| apply_on_run_clock(&regions[i].name, e, &steps, &clock, scenario.clock_error))
        .collect();
    history.applies.sort_by_key(|a| a.at);
    history.ops.sort_by_key(|o| o.index);

    let meta = RunMeta {
        seed,
        scenario: scenario.name.clone(),
        scenario_text: text.to_owned(),
        edgekv_version: env!("CARGO_PKG_VERSION").to_owned(),
        topology: match scenario.target {
            Target::InProcess { .. } => "in-process".into(),
            Target::External => "external".into(),
        },
        regions: scenario
            .regions
            .iter()
            .zip(regions)
            .map(|(spec, r)| RegionMeta {
                name: spec.name.clone(),
                url: format!("http://{}{}", r.api.authority, r.api.prefix),
                writers: spec.writers,
                readers: spec.readers,
            })
            .collect(),
        links: links(scenario),
        started_wall_ms: clock.wall_ms,
        workload: (workload_start, workload_end),
        quiet_ms: scenario.quiet.as_millis() as u64,
        anti_entropy_ms: Some(scenario.anti_entropy.as_millis() as u64),
        timestamp_source: "hybrid logical clock: wall-clock milliseconds of the writing region \
                           plus a logical counter, ties broken by region name"
            .into(),
        clock_offsets: steps,
        applies_missed: missed,
    };
    write_run(out, &history, &meta)?;
    let report = edgekv_lab::files::write_check(out, &history).context("check the history")?;
    let verdict = CheckSummary::from_report(&report, edgekv_lab::files::CHECK);
    let summary =
        edgekv_lab::files::write_report(out, &history, Some(&meta), Some(verdict), vec![])
            .context("write the report")?;
    print_outcome(out, &history, &report, &summary);
    Ok(report.validity.exit_code())
}

/// Creates the run's namespace in the first region and waits until every region has it, so
/// that no write of the workload lands before its namespace.
async fn create_namespace(
    scenario: &Scenario,
    seed: u64,
    regions: &[Region],
) -> anyhow::Result<String> {
    let first = &regions[0];
    let mut client = Client::new(first.api.clone(), &first.token)?;
    let title = format!("edgekv-lab {} seed {seed} at {}", scenario.name, wall_ms());
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
    let deadline = Instant::now() + patience;
    for region in regions {
        let mut client = Client::new(region.api.clone(), &region.token)?;
        loop {
            let reply = client.call(Method::GET, &format!("{path}/{id}"), None).await;
            if matches!(&reply, Ok(r) if r.status == StatusCode::OK) {
                break;
            }
            if Instant::now() > deadline {
                bail!("namespace {id} did not reach region {} within {patience:?}", region.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(id)
}

/// One client of the workload.
struct Worker {
    process: u32,
    region: String,
    client: Client,
    base: String,
    generator: Generator,
    clock: Clock,
    index: Arc<AtomicU64>,
    progress: Arc<Progress>,
}

impl Worker {
    async fn run(mut self, duration: Duration) -> Vec<Op> {
        let start = Instant::now();
        let mut due = Duration::ZERO;
        let mut ops = Vec::new();
        loop {
            due += self.generator.gap();
            if due >= duration {
                return ops;
            }
            // Poisson arrivals on schedule; a client that fell behind by more than a second
            // (a stalled server) resumes from now instead of bursting to catch up.
            let behind = start.elapsed().saturating_sub(due);
            if behind > Duration::from_secs(1) {
                due = start.elapsed();
            }
            tokio::time::sleep_until((start + due).into()).await;
            let planned = self.generator.next_op();
            let op = self.issue(planned).await;
            self.progress.ops.fetch_add(1, Ordering::Relaxed);
            if op.outcome != Outcome::Ok {
                self.progress.errors.fetch_add(1, Ordering::Relaxed);
            }
            ops.push(op);
        }
    }

    async fn issue(&mut self, planned: Planned) -> Op {
        let index = self.index.fetch_add(1, Ordering::Relaxed);
        let invoke_wall = wall_ms();
        let invoke = self.clock.now();
        let (f, key, value, expiration) = match &planned {
            Planned::Put { key, value, ttl } => (
                Function::Put,
                key.clone(),
                Some(value.clone()),
                ttl.map(|t| invoke_wall / 1000 + t),
            ),
            Planned::Delete { key } => (Function::Delete, key.clone(), None, None),
            Planned::Get { key } => (Function::Get, key.clone(), None, None),
            Planned::List { prefix, .. } => (Function::List, prefix.clone(), None, None),
        };
        let reply = match &planned {
            Planned::Put { key, value, ttl } => {
                let query = ttl.map_or_else(String::new, |t| format!("?expiration_ttl={t}"));
                let path = format!("{}/values/{}{query}", self.base, encode(key));
                let body = Bytes::from(value.clone().into_bytes());
                self.client.call(Method::PUT, &path, Some((body, "text/plain"))).await
            }
            Planned::Delete { key } => {
                let path = format!("{}/values/{}", self.base, encode(key));
                self.client.call(Method::DELETE, &path, None).await
            }
            Planned::Get { key } => {
                let path = format!("{}/values/{}", self.base, encode(key));
                self.client.call(Method::GET, &path, None).await
            }
            Planned::List { prefix, limit } => {
                let path = format!("{}/keys?prefix={}&limit={limit}", self.base, encode(prefix));
                self.client.call(Method::GET, &path, None).await
            }
        };
        let complete = self.clock.now();
        let mut op = Op {
            index,
            process: self.process,
            region: self.region.clone(),
            f,
            key,
            value,
            expiration,
            version: None,
            invoke,
            complete,
            outcome: Outcome::Ok,
            wall_ms: invoke_wall,
        };
        let writes = matches!(f, Function::Put | Function::Delete);
        match reply {
            Ok(reply) => judge(&mut op, &reply),
            // A write that may have reached the server may have happened.
            Err(CallError::Unknown(_)) if writes => op.outcome = Outcome::Info,
            Err(_) => op.outcome = Outcome::Fail,
        }
        op
    }
}

/// Sets an operation's outcome, version and (for reads) value from the reply.
fn judge(op: &mut Op, reply: &Reply) {
    let version = reply
        .headers
        .get(edgekv_api::VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let writes = matches!(op.f, Function::Put | Function::Delete);
    op.outcome = match reply.status {
        s if s.is_success() => Outcome::Ok,
        StatusCode::NOT_FOUND if op.f == Function::Get => Outcome::Ok,
        // A server error on a write leaves its effect unknown (it may be committed).
        s if s.is_server_error() && writes => Outcome::Info,
        _ => Outcome::Fail,
    };
    if op.outcome != Outcome::Ok {
        return;
    }
    match op.f {
        Function::Put | Function::Delete => op.version = version,
        Function::Get if reply.status == StatusCode::NOT_FOUND => op.value = None,
        Function::Get => {
            op.value = Some(String::from_utf8_lossy(&reply.body).into_owned());
            op.version = version;
        }
        Function::List => {
            let listed: Option<usize> = serde_json::from_slice::<Value>(&reply.body)
                .ok()
                .and_then(|v| v["result"].as_array().map(Vec::len));
            op.value = listed.map(|n| n.to_string());
        }
    }
}

/// Percent-encodes a key for a URL path or query (keys here are ASCII letters and digits, but a
/// scenario's prefix may not be).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Applies the fault schedule through the admin API; every fault still in force at the end of
/// the workload is removed then. Returns the fault events and the clock steps it caused.
async fn drive_faults(
    scenario: &Scenario,
    schedule: &[Scheduled],
    regions: &[Region],
    clock: Clock,
    progress: &Progress,
) -> anyhow::Result<(Vec<FaultEvent>, Vec<ClockStep>)> {
    // An in-process cluster shares one fault table, so one region's admin API sets it for all;
    // separate nodes each enforce the faults on their own links and all need them.
    let targets: Vec<&Region> = match scenario.target {
        Target::InProcess { .. } => regions.iter().take(1).collect(),
        Target::External => regions.iter().collect(),
    };
    let mut admins = targets
        .iter()
        .map(|r| Client::new(r.admin.clone(), &r.admin_token).map(|c| (r.name.clone(), c)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let docker = chaos::Cluster {
        regions: regions
            .iter()
            .map(|r| (r.name.clone(), format!("http://{}{}", r.admin.authority, r.admin.prefix)))
            .collect(),
        admin_token: regions.first().map(|r| r.admin_token.clone()).unwrap_or_default(),
        project: scenario.compose.project.clone(),
        compose_file: scenario.compose.file.clone(),
    };
    let endpoints: Vec<(Endpoint, String)> =
        targets.iter().map(|r| (r.admin.clone(), r.admin_token.clone())).collect();
    // (time from the start of the workload, is a start, schedule entry)
    let mut steps: Vec<(Duration, bool, &Scheduled)> = Vec::new();
    for s in schedule {
        steps.push((s.start, true, s));
        steps.push((s.stop.unwrap_or(scenario.duration), false, s));
    }
    steps.sort_by_key(|(at, start, s)| (*at, *start, s.id));
    let begun = Instant::now();
    let mut events = Vec::new();
    let mut clock_steps = Vec::new();
    let mut ids: Vec<Vec<Option<u64>>> = vec![vec![None; admins.len()]; schedule.len()];
    for (at, is_start, s) in steps {
        tokio::time::sleep_until((begun + at).into()).await;
        let when = clock.now();
        let name = describe(&s.fault);
        if is_process_fault(&s.fault) {
            process_fault(&docker, &s.fault, is_start, progress).await?;
            if is_start {
                progress.faults.lock().insert(name.clone());
            } else {
                progress.faults.lock().remove(&name);
            }
        } else if is_start {
            for (slot, (region, admin)) in admins.iter_mut().enumerate() {
                let body = Bytes::from(serde_json::to_vec(&s.fault)?);
                let reply = admin
                    .call(Method::POST, "/admin/faults", Some((body, "application/json")))
                    .await
                    .map_err(|e| anyhow::anyhow!("start fault {name} in {region}: {e}"))?;
                if reply.status != StatusCode::OK {
                    bail!(
                        "start fault {name} in {region}: {} {}",
                        reply.status,
                        String::from_utf8_lossy(&reply.body)
                    );
                }
                let id = serde_json::from_slice::<Value>(&reply.body)
                    .ok()
                    .and_then(|v| v["id"].as_u64());
                ids[s.id as usize][slot] = id;
                if let Some(id) = id {
                    let (endpoint, token) = endpoints[slot].clone();
                    progress.applied.lock().push((endpoint, token, id));
                }
            }
            progress.faults.lock().insert(name);
        } else {
            for (slot, (region, admin)) in admins.iter_mut().enumerate() {
                let Some(id) = ids[s.id as usize][slot] else { continue };
                let reply = admin.call(Method::DELETE, &format!("/admin/faults/{id}"), None).await;
                if !matches!(&reply, Ok(r) if r.status == StatusCode::OK) {
                    bail!("stop fault {name} in {region}: the admin API did not confirm");
                }
                progress.applied.lock().retain(|(e, _, i)| !(*i == id && *e == endpoints[slot].0));
            }
            progress.faults.lock().remove(&name);
        }
        if let (Some("clock_offset"), Some(region)) =
            (s.fault["kind"].as_str(), s.fault["region"].as_str())
        {
            let offset_ms = if is_start { s.fault["offset_ms"].as_i64().unwrap_or(0) } else { 0 };
            clock_steps.push(ClockStep { region: region.to_owned(), at: when, offset_ms });
        }
        events.push(FaultEvent {
            id: Some(s.id),
            at: when,
            action: if is_start { "start" } else { "stop" }.into(),
            fault: s.fault.clone(),
        });
    }
    Ok((events, clock_steps))
}

/// Starts or ends a process fault on a region's container. Docker is driven by blocking
/// commands, so they run off the async workers.
async fn process_fault(
    docker: &chaos::Cluster,
    fault: &Value,
    is_start: bool,
    progress: &Progress,
) -> anyhow::Result<()> {
    let region = fault["region"].as_str().unwrap_or_default().to_owned();
    let (action, undo) = match (fault["kind"].as_str().unwrap_or_default(), is_start) {
        ("kill", true) => (Process::Kill, Some(Process::Start)),
        ("stop", true) => (Process::Stop, Some(Process::Start)),
        ("freeze", true) => (Process::Freeze, Some(Process::Unfreeze)),
        ("wipe", true) => (Process::Wipe, None),
        ("kill" | "stop", false) => (Process::Start, None),
        ("freeze", false) => (Process::Unfreeze, None),
        _ => return Ok(()),
    };
    let cluster = docker.clone();
    let target = region.clone();
    tokio::task::spawn_blocking(move || cluster.process(action, &target))
        .await
        .context("a docker command panicked")?
        .with_context(|| format!("{action:?} {region}"))?;
    let mut pending = progress.undo.lock();
    match undo {
        Some(undo) => pending.push((docker.clone(), undo, region)),
        None => pending.retain(|(_, _, r)| *r != region),
    }
    Ok(())
}

/// A fault in a few words, for the progress line.
fn describe(fault: &Value) -> String {
    let kind = fault["kind"].as_str().unwrap_or("fault");
    let side = |v: &Value| match v {
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
        Value::String(s) => s.clone(),
        _ => String::new(),
    };
    match kind {
        "partition" => format!("partition {}|{}", side(&fault["a"]), side(&fault["b"])),
        "clock_offset" => format!("clock {} {}ms", side(&fault["region"]), fault["offset_ms"]),
        "kill" | "stop" | "freeze" | "wipe" => format!("{kind} {}", side(&fault["region"])),
        _ => format!("{kind} {}->{}", side(&fault["from"]), side(&fault["to"])),
    }
}

/// Every region's clock offset over the run: its static offset from time 0, and each
/// `clock_offset` fault on top of it while in force (the fault layer replaces, not adds to, an
/// earlier fault's offset).
fn clock_offsets(scenario: &Scenario, faults: &[ClockStep]) -> Vec<ClockStep> {
    let mut steps: Vec<ClockStep> = scenario
        .regions
        .iter()
        .filter(|r| r.clock_offset_ms != 0)
        .map(|r| ClockStep { region: r.name.clone(), at: 0, offset_ms: r.clock_offset_ms })
        .collect();
    for step in faults {
        let base = scenario
            .regions
            .iter()
            .find(|r| r.name == step.region)
            .map_or(0, |r| r.clock_offset_ms);
        steps.push(ClockStep { offset_ms: base + step.offset_ms, ..step.clone() });
    }
    steps.sort_by_key(|s| s.at);
    steps
}

/// Reads every key in every region, a few connections per region at a time.
async fn final_reads(
    scenario: &Scenario,
    regions: &[Region],
    namespace: &str,
    keys: &BTreeSet<String>,
    clock: Clock,
) -> anyhow::Result<Vec<FinalRead>> {
    let keys: Arc<Vec<String>> = Arc::new(keys.iter().cloned().collect());
    let mut readers = JoinSet::new();
    for region in regions {
        for part in 0..FINAL_READERS {
            let mut client = Client::new(region.api.clone(), &region.token)?;
            let keys = Arc::clone(&keys);
            let name = region.name.clone();
            let base = format!("/accounts/{}/storage/kv/namespaces/{namespace}", scenario.account);
            readers.spawn(async move {
                let mut reads = Vec::new();
                for key in keys.iter().skip(part).step_by(FINAL_READERS) {
                    let wall = wall_ms();
                    let at = clock.now();
                    let path = format!("{base}/values/{}", encode(key));
                    // A read that fails is left out: the checker reports the key as undecided.
                    let Ok(reply) = client.call(Method::GET, &path, None).await else { continue };
                    let complete = clock.now();
                    let version = reply
                        .headers
                        .get(edgekv_api::VERSION_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let (value, version) = match reply.status {
                        StatusCode::OK => {
                            (Some(String::from_utf8_lossy(&reply.body).into_owned()), version)
                        }
                        StatusCode::NOT_FOUND => (None, None),
                        _ => continue,
                    };
                    reads.push(FinalRead {
                        region: name.clone(),
                        key: key.clone(),
                        value,
                        version,
                        at,
                        complete: Some(complete),
                        wall_ms: wall,
                    });
                }
                reads
            });
        }
    }
    let mut finals = Vec::new();
    while let Some(reads) = readers.join_next().await {
        finals.extend(reads.context("a final reader panicked")?);
    }
    finals.sort_by(|a, b| (&a.key, &a.region).cmp(&(&b.key, &b.region)));
    Ok(finals)
}

/// Every directed link's model, when the scenario knows them.
fn links(scenario: &Scenario) -> Vec<LinkMeta> {
    let Some(delays) = &scenario.delays else { return Vec::new() };
    let mut links = Vec::new();
    for from in &scenario.regions {
        for to in scenario.regions.iter().filter(|r| r.name != from.name) {
            links.push(LinkMeta {
                from: from.name.clone(),
                to: to.name.clone(),
                model: delays.model(&from.name, &to.name).to_string(),
            });
        }
    }
    links
}

fn write_run(out: &Path, history: &History, meta: &RunMeta) -> anyhow::Result<()> {
    let path = out.join(edgekv_lab::files::HISTORY);
    let file =
        std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    history.write_jsonl(&mut writer).with_context(|| format!("write {}", path.display()))?;
    writer.flush().with_context(|| format!("write {}", path.display()))?;
    let path = out.join(edgekv_lab::files::RUN);
    std::fs::write(&path, serde_json::to_vec_pretty(meta)?)
        .with_context(|| format!("write {}", path.display()))
}

/// Shows elapsed time, operations, errors and active faults: rewritten in place on a terminal,
/// a line every ten seconds otherwise (CI logs).
async fn show_progress(progress: Arc<Progress>, clock: Clock, duration: Duration) {
    let terminal = std::io::stderr().is_terminal();
    let every = if terminal { Duration::from_secs(1) } else { Duration::from_secs(10) };
    loop {
        tokio::time::sleep(every).await;
        let faults = progress.faults.lock().iter().cloned().collect::<Vec<_>>().join(", ");
        let line = format!(
            "[{:>6.1}s] {} (workload {:?}): {} ops, {} errors, faults: {}",
            clock.start.elapsed().as_secs_f64(),
            progress.phase.lock(),
            duration,
            progress.ops.load(Ordering::Relaxed),
            progress.errors.load(Ordering::Relaxed),
            if faults.is_empty() { "none".to_owned() } else { faults },
        );
        if terminal {
            eprint!("\r{line:<100}");
        } else {
            eprintln!("{line}");
        }
    }
}

/// The run's headline figures, for a person at a terminal; the report has the rest.
fn print_outcome(
    out: &Path,
    history: &History,
    report: &edgekv_lab::check::CheckReport,
    summary: &edgekv_lab::summary::Summary,
) {
    let ok = history.ops.iter().filter(|o| o.outcome == Outcome::Ok).count();
    println!(
        "{} operations ({ok} ok), {} apply events, {} final reads",
        history.ops.len(),
        history.applies.len(),
        history.finals.len()
    );
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0} ms"));
    let pct = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{:.2} %", v * 100.0));
    let v = &summary.visibility.overall;
    println!(
        "visibility: p50 {} p99 {} (configured: p50 {} p99 {}; KS distance {})",
        ms(v.p50_ms),
        ms(v.p99_ms),
        ms(v.predicted_p50_ms),
        ms(v.predicted_p99_ms),
        v.ks_distance.map_or_else(|| "-".to_owned(), |d| format!("{d:.3}")),
    );
    let c = &summary.conflicts;
    println!(
        "stale reads {}; conflicts {}, LWW losers {}, silent losses {}, real-time inversions {} \
         ({} between equal clock readings)",
        pct(summary.stale.overall_rate),
        pct(c.conflict_rate),
        pct(c.loser_rate),
        pct(c.silent_loss_rate),
        c.inversions,
        c.tied_inversions
    );
    for heal in &summary.convergence {
        println!("converged {} after the heal of {}", ms(heal.convergence_ms), heal.fault);
    }
    for note in &summary.notes {
        println!("note: {note}");
    }
    println!(
        "verdict: {:?}, {} anomalies, {} undecided, {} reads too close to an apply to order",
        report.validity,
        report.anomalies.len(),
        report.unknowns.len(),
        report.unordered
    );
    println!("report: {}", out.join(edgekv_lab::files::REPORT).display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_fault_adds_to_the_static_offset_and_its_stop_restores_it() {
        let scenario = Scenario::parse(
            "name = \"s\"\nduration = \"5s\"\n[[regions]]\nname = \"wnam\"\nclock_offset = \"100ms\"\n",
        )
        .unwrap();
        let faults = vec![
            ClockStep { region: "wnam".into(), at: 10, offset_ms: 50 },
            ClockStep { region: "wnam".into(), at: 20, offset_ms: 0 },
        ];
        let offsets: Vec<(u64, i64)> =
            clock_offsets(&scenario, &faults).iter().map(|s| (s.at, s.offset_ms)).collect();
        assert_eq!(offsets, [(0, 100), (10, 150), (20, 100)]);
    }

    fn op(f: Function) -> Op {
        Op {
            index: 0,
            process: 0,
            region: "wnam".into(),
            f,
            key: "k".into(),
            value: Some("written".into()),
            expiration: None,
            version: None,
            invoke: 0,
            complete: 1,
            outcome: Outcome::Ok,
            wall_ms: 0,
        }
    }

    fn reply(status: u16, version: Option<&str>, body: &str) -> Reply {
        let mut headers = axum::http::HeaderMap::new();
        if let Some(v) = version {
            headers.insert(edgekv_api::VERSION_HEADER, v.parse().unwrap());
        }
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn replies_decide_outcomes_the_way_jepsen_reads_them() {
        let mut put = op(Function::Put);
        judge(&mut put, &reply(200, Some("v1"), "{}"));
        assert_eq!((put.outcome, put.version.as_deref()), (Outcome::Ok, Some("v1")));
        let mut put = op(Function::Put);
        judge(&mut put, &reply(500, None, ""));
        assert_eq!(put.outcome, Outcome::Info, "a server error may have committed");
        let mut put = op(Function::Put);
        judge(&mut put, &reply(429, None, ""));
        assert_eq!(put.outcome, Outcome::Fail);
        let mut get = op(Function::Get);
        judge(&mut get, &reply(404, None, "{}"));
        assert_eq!((get.outcome, get.value), (Outcome::Ok, None), "not found is a read");
        let mut get = op(Function::Get);
        judge(&mut get, &reply(200, Some("v2"), "seen"));
        assert_eq!((get.value.as_deref(), get.version.as_deref()), (Some("seen"), Some("v2")));
        let mut get = op(Function::Get);
        judge(&mut get, &reply(503, None, ""));
        assert_eq!(get.outcome, Outcome::Fail, "a failed read changed nothing");
        let mut list = op(Function::List);
        judge(&mut list, &reply(200, None, r#"{"result":[{"name":"a"},{"name":"b"}]}"#));
        assert_eq!(list.value.as_deref(), Some("2"));
    }

    #[test]
    fn keys_are_percent_encoded_and_faults_described() {
        assert_eq!(encode("k000001"), "k000001");
        assert_eq!(encode("a b/ü"), "a%20b%2F%C3%BC");
        let partition =
            serde_json::json!({"kind": "partition", "a": ["wnam"], "b": ["enam", "weur"]});
        assert_eq!(describe(&partition), "partition wnam|enam,weur");
        let one_way = serde_json::json!({"kind": "one_way", "from": "wnam", "to": "enam"});
        assert_eq!(describe(&one_way), "one_way wnam->enam");
    }
}
