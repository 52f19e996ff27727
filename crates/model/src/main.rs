//! `cargo run --release -p edgekv-model [-- --run NAME] [--failpoint NAME] [--puts N ...]`:
//! explores the model under each run's bounds (or one run, or bounds given by flags) and prints
//! what it found. A failpoint needs `--features failpoints`. Exits 1 on a counterexample.

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use edgekv_core::failpoint::{self, Failpoint};
use edgekv_model::{explore, Bounds, Report};

fn main() -> ExitCode {
    let mut runs: Vec<Bounds> = Bounds::RUNS.to_vec();
    let mut custom: Option<Bounds> = None;
    let mut broken = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--run" => {
                let name = args.next().unwrap_or_default();
                let all = Bounds::RUNS.iter().chain([&Bounds::TEST, &Bounds::TEST_CLEAN]);
                let Some(run) = all.clone().find(|b| b.name == name) else {
                    let names: Vec<&str> = all.map(|b| b.name).collect();
                    eprintln!("--run takes one of: {}", names.join(", "));
                    return ExitCode::from(2);
                };
                runs = vec![*run];
            }
            "--lazy-sends" => custom.get_or_insert(Bounds::NONE).eager_sends = false,
            "--puts" | "--deletes" | "--in-flight" | "--losses" | "--fails" | "--partitions"
            | "--restarts" | "--rounds" => {
                let Some(n) = args.next().and_then(|n| n.parse::<u8>().ok()) else {
                    eprintln!("{arg} takes a number");
                    return ExitCode::from(2);
                };
                let bounds = custom.get_or_insert(Bounds::NONE);
                match arg.as_str() {
                    "--puts" => bounds.puts = n,
                    "--deletes" => bounds.deletes = n,
                    "--in-flight" => bounds.in_flight = usize::from(n),
                    "--losses" => bounds.losses = n,
                    "--fails" => bounds.fails = n,
                    "--partitions" => bounds.partitions = n,
                    "--restarts" => bounds.restarts = n,
                    _ => bounds.rounds = n,
                }
            }
            "--failpoint" => {
                let Some(point) = args.next().as_deref().and_then(Failpoint::parse) else {
                    let names: Vec<&str> = Failpoint::ALL.iter().map(|f| f.name()).collect();
                    eprintln!("--failpoint takes one of: {}", names.join(", "));
                    return ExitCode::from(2);
                };
                broken.push(point);
            }
            other => {
                eprintln!("unknown argument {other:?}: see the doc comment of src/main.rs");
                return ExitCode::from(2);
            }
        }
    }
    if let Err(err) = failpoint::set(&broken) {
        eprintln!("{err}");
        return ExitCode::from(2);
    }
    let names: Vec<&str> = broken.iter().map(|f| f.name()).collect();
    println!("failpoints: {}", if names.is_empty() { "none".to_owned() } else { names.join(", ") });
    if let Some(bounds) = custom {
        runs = vec![bounds];
    }
    let mut failed = false;
    for report in explore_all(&runs) {
        print(&report);
        failed |= report.counterexample.is_some();
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Explores every run, as many at once as there are cores (each run is a search of its own),
/// and returns their reports in the order of `runs`.
fn explore_all(runs: &[Bounds]) -> Vec<Report> {
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(runs.len());
    let mut done: Vec<(usize, Report)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(bounds) = runs.get(i) else { return mine };
                        mine.push((i, explore(bounds)));
                    }
                })
            })
            .collect();
        let mut done = Vec::new();
        for handle in handles {
            match handle.join() {
                Ok(reports) => done.extend(reports),
                Err(_) => {
                    eprintln!("an exploration panicked");
                    std::process::exit(101);
                }
            }
        }
        done
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, report)| report).collect()
}

fn print(report: &Report) {
    println!();
    println!("run {}", report.bounds);
    println!(
        "states: {}, transitions: {}, max depth: {}, time: {:.2?}{}",
        report.states,
        report.transitions,
        report.max_depth,
        report.elapsed,
        if report.truncated { " (stopped at max_states)" } else { "" }
    );
    match &report.counterexample {
        None => {
            println!("ok: convergence, no-resurrection, tombstone-safety, watermark-safety hold")
        }
        Some(cx) => print!("{cx}"),
    }
}
