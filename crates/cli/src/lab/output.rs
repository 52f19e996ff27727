//! The run's last phase: `history.jsonl` and `run.json`, then the checker's files and the
//! report, and the headline figures for a person at a terminal.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use edgekv_lab::history::{History, Nanos, Outcome};
use edgekv_lab::meta::{EdgeMeta, LinkMeta, RegionMeta, RunMeta};
use edgekv_lab::scenario::{Scenario, Target};
use edgekv_lab::summary::CheckSummary;

use super::{Clock, Region};

/// What the run was, without its clock offsets and lost apply events, which the caller knows
/// only once the apply events are in.
pub(super) fn run_meta(
    scenario: &Scenario,
    text: &str,
    seed: u64,
    regions: &[Region],
    clock: &Clock,
    workload: (Nanos, Nanos),
) -> RunMeta {
    RunMeta {
        seed,
        scenario: scenario.name.clone(),
        scenario_text: text.to_owned(),
        edgekv_version: env!("CARGO_PKG_VERSION").to_owned(),
        topology: match scenario.target {
            Target::InProcess { .. } => "in-process".into(),
            Target::External => "external".into(),
            Target::Simulated => "simulated".into(),
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
                reads: spec.reads.describe(),
                binding_url: r
                    .binding
                    .as_ref()
                    .filter(|_| spec.reads.uses_binding())
                    .map(|b| format!("http://{}{}", b.authority, b.prefix)),
            })
            .collect(),
        links: links(scenario),
        started_wall_ms: clock.wall_ms,
        workload,
        quiet_ms: scenario.quiet.as_millis() as u64,
        anti_entropy_ms: Some(scenario.anti_entropy.as_millis() as u64),
        timestamp_source: "hybrid logical clock: wall-clock milliseconds of the writing region \
                           plus a logical counter, ties broken by region name"
            .into(),
        clock_offsets: Vec::new(),
        applies_missed: Vec::new(),
        edge: Some(EdgeMeta {
            cache: scenario.edge.cache,
            rest_cache: scenario.edge.rest_cache,
            write_rate_limit: scenario.edge.write_rate_limit,
            declared: scenario.target == Target::External,
        }),
    }
}

/// Writes the run's files, checks the history and reports (and, if `print`, says what it
/// found); returns the checker's exit code.
pub(super) fn finish(
    out: &Path,
    history: &History,
    meta: &RunMeta,
    print: bool,
) -> anyhow::Result<i32> {
    write_run(out, history, meta)?;
    let report = edgekv_lab::files::write_check(out, history).context("check the history")?;
    let verdict = CheckSummary::from_report(&report, edgekv_lab::files::CHECK);
    let summary = edgekv_lab::files::write_report(out, history, Some(meta), Some(verdict), vec![])
        .context("write the report")?;
    if print {
        print_outcome(out, history, &report, &summary);
    }
    Ok(report.validity.exit_code())
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
    // The first few anomalies, so a failed run in CI says what it saw without its files.
    const SHOWN: usize = 5;
    for anomaly in report.anomalies.iter().take(SHOWN) {
        println!(
            "anomaly: {:?} on {} (ops {:?}): {}",
            anomaly.kind, anomaly.key, anomaly.ops, anomaly.explanation
        );
    }
    if report.anomalies.len() > SHOWN {
        println!("anomaly: {} more in the report", report.anomalies.len() - SHOWN);
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
