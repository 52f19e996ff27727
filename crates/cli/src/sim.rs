//! `edgekv sim`: a lab scenario run on the real cluster code under virtual time.
//!
//! Every region is the code that runs in production, from the routers down: the API handlers,
//! the edge cache, the in-memory store, the replication sender, handler and anti-entropy, the
//! faults and the HLC. Only the edges are simulated:
//! - the network, by the in-memory transport (the link delays are the senders' own due times,
//!   sampled from the seed);
//! - the clock, one virtual clock, which every region skews as its scenario says;
//! - processes (kill, stop, freeze, wipe), by stopping and rewiring a region's parts.
//!
//! The lab's own runner drives the scenario, with its clients reaching the regions' routers in
//! process. It all runs on one thread of a paused tokio runtime, which moves the clock only
//! when every task waits. So a run takes as little wall time as its work needs, and a seed
//! replays byte for byte: nothing reads the wall clock or the OS's randomness, and every random
//! draw comes from the seed.
//!
//! A sweep runs many seeds (one thread per core, each with its own runtime); `--shrink` makes
//! a failing seed's scenario smaller while it still fails (see [`shrink`]).

mod clock;
mod cluster;
pub mod shrink;

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use edgekv_lab::scenario::Scenario;
use tokio_util::sync::CancellationToken;

use crate::lab::{self, Clock, Lab, Output, Progress};
use clock::VirtualClock;
use cluster::SimCluster;

/// Where every simulation's clock starts: 2026-01-01T00:00:00Z. Fixed, so that expirations and
/// timestamps are the same in every run.
const EPOCH_US: u64 = 1_767_225_600_000_000;

/// The checker's verdicts, as `lab check` exits.
const VALID: i32 = 0;

/// What `edgekv sim` was asked.
#[derive(Debug)]
pub struct SimArgs {
    /// The scenario file.
    pub scenario: PathBuf,
    /// Where a single run writes its files (a sweep: where failing seeds write theirs).
    pub out: PathBuf,
    /// One seed (default: the scenario's, else 1).
    pub seed: Option<u64>,
    /// Many seeds.
    pub seeds: Option<RangeInclusive<u64>>,
    /// Shrink a failing run.
    pub shrink: bool,
}

/// Runs `edgekv sim`; returns the exit code: 0 when every run is valid, 1 when one is not, 2
/// when the checker could not decide.
pub fn run(args: SimArgs) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(&args.scenario)
        .with_context(|| format!("read scenario {}", args.scenario.display()))?;
    let scenario = Scenario::parse_simulated(&text)
        .with_context(|| format!("scenario {}", args.scenario.display()))?;
    if let Some(seeds) = args.seeds.clone() {
        return sweep(&args, &scenario, &text, seeds);
    }
    let seed = args.seed.or(scenario.seed).unwrap_or(1);
    lab::setup::prepare_out(&args.out)?;
    let code = simulate(&scenario, &text, seed, &args.out)?;
    if code != VALID && args.shrink {
        shrink::shrink(&args.scenario, &text, seed, &args.out)?;
    }
    Ok(code)
}

/// One run of `scenario` with `seed`, writing the lab's files to `out` and printing its
/// summary; the checker's code.
pub fn simulate(scenario: &Scenario, text: &str, seed: u64, out: &Path) -> anyhow::Result<i32> {
    simulate_with(scenario, text, seed, out, Output::Summary)
}

/// [`simulate`], printing nothing.
pub fn simulate_quietly(
    scenario: &Scenario,
    text: &str,
    seed: u64,
    out: &Path,
) -> anyhow::Result<i32> {
    simulate_with(scenario, text, seed, out, Output::Silent)
}

fn simulate_with(
    scenario: &Scenario,
    text: &str,
    seed: u64,
    out: &Path,
    output: Output,
) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .context("start the simulation's runtime")?;
    runtime.block_on(async {
        let clock = Arc::new(VirtualClock::new(EPOCH_US));
        let root = CancellationToken::new();
        let cluster = SimCluster::start(scenario, seed, clock, &root)?;
        let regions = cluster.regions(scenario);
        let lab = Lab {
            scenario,
            text,
            seed,
            regions: &regions,
            out,
            clock: Clock::starting_at(EPOCH_US * 1000),
            processes: cluster,
            output,
        };
        let code = lab::drive(lab, Arc::new(Progress::default())).await;
        root.cancel();
        code
    })
}

/// How one seed of a sweep ended.
#[derive(Debug, Default)]
struct Verdict {
    seed: u64,
    /// The checker's code, or -1 when the run could not finish.
    code: i32,
    anomaly: Option<(String, String)>,
}

/// Runs every seed of `seeds`, as many at once as there are cores; prints each invalid one
/// with the command that replays it, then a summary. Exit 1 if any was invalid.
fn sweep(
    args: &SimArgs,
    scenario: &Scenario,
    text: &str,
    seeds: RangeInclusive<u64>,
) -> anyhow::Result<i32> {
    let next = AtomicU64::new(*seeds.start());
    let last = *seeds.end();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = std::time::Instant::now();
    let verdicts: Vec<Verdict> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| scope.spawn(|| sweep_worker(args, scenario, text, &next, last)))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    });
    let mut verdicts = verdicts;
    verdicts.sort_unstable_by_key(|v| v.seed);
    let invalid = verdicts.iter().filter(|v| v.code == 1).count();
    let unknown = verdicts.iter().filter(|v| v.code == 2).count();
    let failed = verdicts.iter().filter(|v| v.code < 0).count();
    println!(
        "\n{} seeds in {:.1} s: {} valid, {invalid} invalid, {unknown} unknown, {failed} failed to run",
        verdicts.len(),
        started.elapsed().as_secs_f64(),
        verdicts.len() - invalid - unknown - failed,
    );
    print_table(&verdicts);
    Ok(if invalid > 0 || failed > 0 {
        1
    } else if unknown > 0 {
        2
    } else {
        VALID
    })
}

/// Takes seeds until there are none left; each run's files are kept only if it is not valid.
fn sweep_worker(
    args: &SimArgs,
    scenario: &Scenario,
    text: &str,
    next: &AtomicU64,
    last: u64,
) -> Vec<Verdict> {
    let mut verdicts = Vec::new();
    loop {
        let seed = next.fetch_add(1, Ordering::Relaxed);
        if seed > last {
            return verdicts;
        }
        let out = args.out.join(format!("seed-{seed}"));
        let code = match std::fs::create_dir_all(&out) {
            Ok(()) => simulate_quietly(scenario, text, seed, &out).unwrap_or_else(|err| {
                println!("seed {seed}: could not run: {err:#}");
                -1
            }),
            Err(err) => {
                println!("seed {seed}: {}: {err}", out.display());
                -1
            }
        };
        let mut anomaly = None;
        if code == VALID {
            let _ = std::fs::remove_dir_all(&out);
        } else {
            anomaly = first_anomaly(&out);
            report_failing(args, seed, code, anomaly.as_ref());
        }
        verdicts.push(Verdict { seed, code, anomaly });
    }
}

/// The first anomaly a failing run's checker found: (its kind, its key).
fn first_anomaly(out: &Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string(out.join(edgekv_lab::files::CHECK)).ok()?;
    let check = serde_json::from_str::<serde_json::Value>(&text).ok()?;
    let first = check["anomalies"].get(0)?;
    Some((first["kind"].as_str()?.to_owned(), first["key"].as_str().unwrap_or("").to_owned()))
}

/// One line per failing seed: its first anomaly and the command that replays it.
fn report_failing(args: &SimArgs, seed: u64, code: i32, anomaly: Option<&(String, String)>) {
    let verdict = if code == 1 { "invalid" } else { "unknown" };
    let anomaly = anomaly.map(|(kind, key)| format!("{kind} {key}")).unwrap_or_default();
    println!(
        "seed {seed}: {verdict} {anomaly} (replay: edgekv sim {} --seed {seed} --out DIR)",
        args.scenario.display()
    );
}

/// The summary table: per first anomaly, how many seeds failed with it and the smallest.
fn print_table(verdicts: &[Verdict]) {
    let mut kinds: std::collections::BTreeMap<&str, (usize, u64)> = Default::default();
    for verdict in verdicts.iter().filter(|v| v.code != VALID) {
        let kind = match (&verdict.anomaly, verdict.code) {
            (Some((kind, _)), _) => kind.as_str(),
            (None, code) if code < 0 => "(could not run)",
            (None, _) => "(undecided)",
        };
        let entry = kinds.entry(kind).or_insert((0, verdict.seed));
        entry.0 += 1;
        entry.1 = entry.1.min(verdict.seed);
    }
    if kinds.is_empty() {
        return;
    }
    println!("{:<24} {:>6}  smallest seed", "first anomaly", "seeds");
    for (kind, (count, smallest)) in kinds {
        println!("{kind:<24} {count:>6}  {smallest}");
    }
}
