//! `edgekv lab run`: drives a scenario against a cluster and records what happened.
//!
//! The run has five phases: set up (start an in-process cluster if the scenario has no URLs,
//! create a namespace and wait until every region has it), the workload (clients and the fault
//! schedule, while pollers collect every region's apply events), the quiet period (no faults,
//! no writes: longer than the longest delay), the final reads of every key in every region, and
//! the verdict and report. Everything is timed on one monotonic clock from the run's start;
//! the nodes' apply times, read on their own clocks, are mapped onto it as the windows they
//! certainly lie in (see the `applies` module).
//!
//! One module per phase: `setup` (the cluster, the regions' endpoints, the namespace),
//! `worker` (the clients), `faults` (the fault schedule), `finals` (the final reads),
//! `applies` (the apply events) and `output` (the files and the verdict), with `progress` (the
//! progress line and the clean-up of a failed run) and `client` (HTTP) beneath them.

mod applies;
pub(crate) mod client;
mod faults;
mod finals;
mod output;
mod processes;
mod progress;
pub(crate) mod setup;
mod worker;

pub(crate) use processes::Processes;
pub(crate) use worker::encode as encode_key;

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use anyhow::Context;
use edgekv_lab::history::{FaultEvent, Function, History, Nanos, Op};
use edgekv_lab::meta::ClockStep;
use edgekv_lab::scenario::{Scenario, Target};
use edgekv_lab::workload;
use tokio_util::sync::CancellationToken;

use self::applies::APPLY_POLL;
use self::client::Endpoint;
pub(crate) use self::progress::Progress;

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
pub(crate) struct Region {
    pub(crate) name: String,
    pub(crate) api: Endpoint,
    /// Its Workers binding listener, when the run knows it (in-process always; external when
    /// the scenario names it).
    pub(crate) binding: Option<Endpoint>,
    pub(crate) admin: Endpoint,
    pub(crate) token: String,
    pub(crate) admin_token: String,
}

/// The run's clock: monotonic nanoseconds since the start, and the wall clock at the start.
/// Both come from the async runtime's clock, so under a simulation's paused runtime the run is
/// timed on virtual time like everything else.
#[derive(Clone, Copy)]
pub(crate) struct Clock {
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
    /// Starts now, paired with the system's wall clock.
    fn new() -> Self {
        let start = Instant::now();
        let wall_ns =
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let pairing_ns = start.elapsed().as_nanos() as u64;
        Clock { start, wall_ms: wall_ns / 1_000_000, wall_ns, pairing_ns }
    }

    /// Starts now, the wall clock reading `wall_ns` at this instant exactly (a simulation's
    /// clocks are one).
    pub(crate) fn starting_at(wall_ns: u64) -> Self {
        Clock { start: Instant::now(), wall_ms: wall_ns / 1_000_000, wall_ns, pairing_ns: 0 }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// The wall clock now, epoch ms: the start's reading plus the time since.
    fn wall_ms(&self) -> u64 {
        self.wall_ms + self.start.elapsed().as_millis() as u64
    }
}

/// What every phase of a run works with.
#[derive(Clone, Copy)]
struct Run<'a> {
    scenario: &'a Scenario,
    seed: u64,
    regions: &'a [Region],
    clock: Clock,
    progress: &'a Arc<Progress>,
    processes: &'a Arc<dyn Processes>,
}

/// Runs the scenario; returns the checker's exit code (0 valid, 1 invalid, 2 unknown).
pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(&args.scenario)
        .with_context(|| format!("read scenario {}", args.scenario.display()))?;
    // Parsing validates every fault, so nothing starts with a schedule that cannot be run.
    let scenario =
        Scenario::parse(&text).with_context(|| format!("scenario {}", args.scenario.display()))?;
    setup::prepare_out(&args.out)?;
    let seed = args.seed.or(scenario.seed).unwrap_or_else(|| {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
    });
    eprintln!(
        "lab: scenario {:?}, seed {seed} (rerun: edgekv lab run {} --seed {seed})",
        scenario.name,
        args.scenario.display()
    );
    let shutdown = CancellationToken::new();
    let (regions, cluster) = setup::connect(&scenario, seed, &args.out, &shutdown).await?;
    let progress = Arc::new(Progress::default());
    let lab = Lab {
        scenario: &scenario,
        text: &text,
        seed,
        regions: &regions,
        out: &args.out,
        clock: Clock::new(),
        processes: processes::docker(&scenario, &regions),
        output: Output::Progress,
    };
    let result = tokio::select! {
        result = drive(lab, Arc::clone(&progress)) => result,
        () = crate::process::shutdown_signal() => Err(anyhow::anyhow!("interrupted")),
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

/// What a run is given: what to run, against what, and how.
pub(crate) struct Lab<'a> {
    pub(crate) scenario: &'a Scenario,
    /// The scenario's text, kept in run.json.
    pub(crate) text: &'a str,
    pub(crate) seed: u64,
    pub(crate) regions: &'a [Region],
    pub(crate) out: &'a Path,
    pub(crate) clock: Clock,
    /// What carries out process faults.
    pub(crate) processes: Arc<dyn Processes>,
    /// What to print as it goes.
    pub(crate) output: Output,
}

/// What a run prints on the terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    /// The progress line, the namespace and the summary (`lab run`).
    Progress,
    /// The namespace and the summary (a simulation, too fast for a progress line).
    Summary,
    /// Nothing (one seed of a sweep, which prints one line per failing seed itself).
    Silent,
}

/// The workload, quiet period, final reads and files, against regions that are up and have
/// `setup` done: returns the checker's exit code.
pub(crate) async fn drive(lab: Lab<'_>, progress: Arc<Progress>) -> anyhow::Result<i32> {
    let Lab { scenario, text, seed, regions, out, clock, processes, output } = lab;
    let show_progress = output == Output::Progress;
    let run = Run { scenario, seed, regions, clock, progress: &progress, processes: &processes };
    let namespace = setup::create_namespace(scenario, seed, regions, &clock).await?;
    if output != Output::Silent {
        eprintln!(
            "lab: namespace {namespace} is in every region; workload for {:?}",
            scenario.duration
        );
    }
    let stop_polling = CancellationToken::new();
    let pollers = applies::spawn_pollers(regions, &namespace, clock, &stop_polling)?;
    let show = show_progress
        .then(|| tokio::spawn(progress::show(Arc::clone(&progress), clock, scenario.duration)));

    let recorded = run_workload(run, &namespace).await?;
    let mut history = History { ops: recorded.ops, faults: recorded.faults, ..History::default() };

    *progress.phase.lock() = format!("quiet period of {:?}", scenario.quiet);
    tokio::time::sleep(scenario.quiet).await;
    *progress.phase.lock() = "final reads".into();
    let keys: BTreeSet<String> =
        history.ops.iter().filter(|o| o.f != Function::List).map(|o| o.key.clone()).collect();
    history.finals = finals::final_reads(run, &namespace, &keys).await?;

    // One last poll after the final reads, then stop.
    tokio::time::sleep(APPLY_POLL * 2).await;
    stop_polling.cancel();
    let mut polled = applies::join_pollers(pollers, regions).await?;
    let missed = std::mem::take(&mut polled.missed);
    if let Some(show) = show {
        show.abort();
    }
    if show_progress && std::io::stderr().is_terminal() {
        eprintln!();
    }
    let steps = faults::clock_offsets(scenario, &recorded.clock_steps);
    history.applies = polled.on_run_clock(regions, &steps, &clock, scenario.clock_error);
    history.ops.sort_by_key(|o| o.index);

    let mut meta = output::run_meta(scenario, text, seed, regions, &clock, recorded.span);
    meta.clock_offsets = steps;
    meta.applies_missed = missed;
    output::finish(out, &history, &meta, output != Output::Silent)
}

/// What the workload phase recorded.
struct Recorded {
    ops: Vec<Op>,
    faults: Vec<FaultEvent>,
    /// The clock offsets the fault schedule set, without the regions' static ones.
    clock_steps: Vec<ClockStep>,
    /// When the workload started and ended, on the run's clock.
    span: (Nanos, Nanos),
}

/// The clients and the fault schedule, until both are done.
async fn run_workload(run: Run<'_>, namespace: &str) -> anyhow::Result<Recorded> {
    let start = run.clock.now();
    *run.progress.phase.lock() = "workload".into();
    let mut clients = worker::spawn(run, namespace)?;
    let schedule = workload::schedule(run.seed, &run.scenario.faults, run.scenario.duration);
    let faults = faults::drive_faults(run, &schedule).await;
    let mut ops = Vec::new();
    while let Some(done) = clients.join_next().await {
        ops.extend(done.context("a lab client panicked")?);
    }
    let (faults, clock_steps) = faults?;
    Ok(Recorded { ops, faults, clock_steps, span: (start, run.clock.now()) })
}
