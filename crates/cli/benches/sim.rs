//! How much faster than real time `edgekv sim` runs, on the machine at hand.
//!
//! Five regions with the compose cluster's delay matrix (medians of seconds, tails cut at
//! 60 s), 50 operations a second in all, anti-entropy on. The simulated run covers an hour;
//! the baseline beside it is the same scenario through `lab run` in process, which can only
//! go as fast as the clock, for a short workload. Prints, for each: virtual seconds, wall
//! seconds, their ratio, events (client operations and apply events) per wall second, and the
//! process's peak resident memory after it.
//!
//! `cargo bench -p edgekv-cli --bench sim` (release build). `EDGEKV_BENCH_SIM_MINUTES` sets
//! the simulated workload's length (default 60), `EDGEKV_BENCH_LAB_SECONDS` the baseline's
//! (default 20; 0 skips it), `EDGEKV_BENCH_SIM_WIDE_MINUTES` the length of a second run with
//! 50 regions (default 5; 0 skips it).

use std::time::Instant;

use edgekv_cli::sim::simulate_quietly;
use edgekv_lab::scenario::Scenario;

/// The compose cluster's delay matrix (deploy/docker-compose.yml), link by link.
const COMPOSE_LINKS: &[(&str, &str, &str)] = &[
    ("wnam", "enam", "lognormal(1400ms,5600ms)"),
    ("wnam", "weur", "lognormal(2800ms,11200ms)"),
    ("wnam", "eeur", "lognormal(3400ms,13600ms)"),
    ("wnam", "apac", "lognormal(2200ms,8800ms)"),
    ("enam", "weur", "lognormal(1600ms,6400ms)"),
    ("enam", "eeur", "lognormal(2200ms,8800ms)"),
    ("enam", "apac", "lognormal(3600ms,14400ms)"),
    ("weur", "eeur", "lognormal(600ms,2400ms)"),
    ("weur", "apac", "lognormal(4400ms,17600ms)"),
    ("eeur", "apac", "lognormal(3800ms,15200ms)"),
];

/// Five regions with the compose delay matrix; ten clients (a writer and a reader per region)
/// at 5 operations a second: 50 in all.
fn scenario_text(duration: &str) -> String {
    let links: Vec<String> = COMPOSE_LINKS
        .iter()
        .flat_map(|(a, b, model)| {
            [format!("\"{a}->{b}={model}\""), format!("\"{b}->{a}={model}\"")]
        })
        .collect();
    let regions = ["wnam", "enam", "weur", "eeur", "apac"].map(String::from);
    scenario(duration, &regions, &format!("link_delays = [{}]\n", links.join(", ")))
}

/// `n` regions on one delay model (every link alike), a writer and a reader per region at 5
/// operations a second: what the cost of a wider mesh is per event.
fn wide_scenario_text(duration: &str, n: usize) -> String {
    let regions: Vec<String> = (0..n).map(|i| format!("r{i:02}")).collect();
    scenario(duration, &regions, "")
}

fn scenario(duration: &str, regions: &[String], links: &str) -> String {
    let regions: String =
        regions.iter().map(|r| format!("[[regions]]\nname = \"{r}\"\n")).collect();
    format!(
        "name = \"sim-bench\"\nseed = 1\nduration = \"{duration}\"\n\n\
         [cluster]\ndelay = \"lognormal(2s,8s)\"\n{links}anti_entropy_interval = \"30s\"\n\n\
         {regions}\n\
         [workload]\nwriters = 1\nreaders = 1\nrate = 5\nkeys = 10000\nhot_keys = 100\nhot_fraction = 0.1\n\
         mix = {{ put = 3, delete = 1, get = 5, list = 1 }}\n"
    )
}

/// The process's peak resident set, from /proc (Linux), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Client operations and apply events in a run's history.
fn events(out: &std::path::Path) -> u64 {
    let history = std::fs::read_to_string(out.join("history.jsonl")).unwrap_or_default();
    history
        .lines()
        .filter(|l| l.starts_with("{\"type\":\"op\"") || l.starts_with("{\"type\":\"apply\""))
        .count() as u64
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn print_row(what: &str, virtual_s: f64, wall_s: f64, events: u64) {
    println!(
        "{what:<34} {virtual_s:>9.0} {wall_s:>9.1} {:>9.1}x {:>12.0} {:>10.0}",
        virtual_s / wall_s,
        events as f64 / wall_s,
        peak_rss_mib().unwrap_or(f64::NAN),
    );
}

/// Runs one simulated scenario and prints its row and verdict.
fn simulate(what: &str, text: &str) -> anyhow::Result<()> {
    let scenario = Scenario::parse_simulated(text)?;
    let out = tempfile::tempdir()?;
    let started = Instant::now();
    let code = simulate_quietly(&scenario, text, 1, out.path())?;
    let wall = started.elapsed().as_secs_f64();
    let virtual_s = (scenario.duration + scenario.quiet).as_secs_f64();
    print_row(what, virtual_s, wall, events(out.path()));
    println!("sim verdict: {}", if code == 0 { "valid" } else { "NOT valid" });
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes --bench; nothing else is taken.
    let minutes = env_u64("EDGEKV_BENCH_SIM_MINUTES", 60);
    let lab_seconds = env_u64("EDGEKV_BENCH_LAB_SECONDS", 20);
    println!("5 regions, compose delay matrix, 50 ops/s, anti-entropy every 30 s");
    println!(
        "{:<34} {:>9} {:>9} {:>10} {:>12} {:>10}",
        "run", "virtual s", "wall s", "speed", "events/s", "peak MiB"
    );

    if lab_seconds > 0 {
        let text = scenario_text(&format!("{lab_seconds}s"));
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("scenario.toml");
        std::fs::write(&path, &text)?;
        let scenario = Scenario::parse(&text)?;
        let out = dir.path().join("lab");
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let started = Instant::now();
        let args = edgekv_cli::lab::RunArgs { scenario: path, out: out.clone(), seed: Some(1) };
        runtime.block_on(edgekv_cli::lab::run(args))?;
        let wall = started.elapsed().as_secs_f64();
        let virtual_s = (scenario.duration + scenario.quiet).as_secs_f64();
        print_row(
            &format!("baseline: lab run, {lab_seconds} s workload"),
            virtual_s,
            wall,
            events(&out),
        );
    }

    simulate(&format!("sim, {minutes} min workload"), &scenario_text(&format!("{minutes}m")))?;

    let wide = env_u64("EDGEKV_BENCH_SIM_WIDE_MINUTES", 5);
    if wide > 0 {
        println!();
        println!("50 regions, every link lognormal(2s,8s), 500 ops/s, anti-entropy every 30 s");
        simulate(
            &format!("sim, 50 regions, {wide} min"),
            &wide_scenario_text(&format!("{wide}m"), 50),
        )?;
    }
    Ok(())
}
