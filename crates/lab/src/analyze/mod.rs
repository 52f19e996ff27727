//! The measurements of EXPERIMENTS.md §(b), computed from a history: t-visibility (B1), stale
//! reads (B2), conflicts and inversions (B3), convergence after heal (B4), divergence (B5) and
//! the supporting figures (B6).
//!
//! Apply events are the white-box truth: a region "holds w" from the first apply of w's version
//! or a newer one, since LWW makes a newer version subsume an older. To answer that question
//! for millions of applies, each (key, region)'s applies are reduced once to the steps where the
//! region's greatest version grew; "when did r first hold v or newer" is then a binary search,
//! and so is "what did r hold at t". Everything else is a sweep per key in time order, so the
//! whole analysis is O(n log n) in the history's size.
//!
//! Versions compare as text (16 hex digits of the hybrid logical clock, a dash, the origin), as
//! in the checker.
//!
//! The measurements place each apply at one instant: its recorded estimate, moved into what the
//! history proves ([`crate::bounds::apply_estimate`]: never before its write was sent). They
//! are estimates, not verdicts; the checker alone reasons with the whole window. On one machine
//! with the nodes' microsecond readings the window is a few microseconds wide, so the choice of
//! point inside it does not show in figures measured in milliseconds.
//!
//! One module per measurement, each over the shared `index::Index`: `visibility` (B1),
//! `stale` (B2), `cache` and `arrivals` (B2 split into propagation and the edge cache),
//! `conflicts` (B3), `convergence` (B4), `divergence` (B5), `operations` (B6:
//! availability, latency, throughput, clocks), `traces` (the excerpts the report draws), `run`
//! (the run's metadata), with `faults` (fault windows) and `stats` (quantiles, intervals,
//! distances) beneath them.

mod arrivals;
mod cache;
mod conflicts;
mod convergence;
mod divergence;
mod faults;
mod index;
mod operations;
mod run;
mod stale;
mod stats;
mod traces;
mod visibility;

use crate::history::{History, Nanos};
use crate::meta::RunMeta;
use crate::summary::{CheckSummary, Summary};

use self::faults::{fault_windows, FaultSet, FaultWin};
use self::index::Index;
use self::visibility::VisibilityOut;

/// Samples drawn from a link's delay model to build its predicted distribution: enough for the
/// 99.9th percentile to rest on 20 samples, and deterministic (seeded like the run).
pub const PREDICTION_SAMPLES: u64 = 20_000;
/// Samples of the divergent-keys series: enough for a smooth line, few enough for the JSON.
pub const DIVERGENCE_SAMPLES: usize = 200;
/// Time buckets of the latency and throughput series.
pub const TIME_BUCKETS: usize = 60;
/// Δ buckets of the stale-read figure (plus one open bucket beyond).
pub const STALE_BUCKETS: usize = 25;
/// The k-staleness histogram's last bin: this many versions behind or more.
pub const K_BINS: usize = 10;

const NS_PER_MS: f64 = 1e6;

/// An instant on the run's clock in milliseconds.
fn ms(ns: Nanos) -> f64 {
    ns as f64 / NS_PER_MS
}

/// `a − b` in milliseconds, negative when `a` is earlier.
fn diff_ms(a: Nanos, b: Nanos) -> f64 {
    (a as f64 - b as f64) / NS_PER_MS
}

/// Whole milliseconds, for tables.
fn whole_ms(ns: Nanos) -> u64 {
    ns / 1_000_000
}

/// Computes the summary of a run. `meta` is `run.json` (absent: defaults, and the summary says
/// so); `check` is the checker's verdict as read from `check.json` (absent: the checker runs).
pub fn summarize(
    history: &History,
    meta: Option<&RunMeta>,
    check: Option<CheckSummary>,
) -> Summary {
    let default_meta = RunMeta::default();
    let meta_present = meta.is_some();
    let meta = meta.unwrap_or(&default_meta);
    let mut notes = Vec::new();
    if !meta_present {
        notes.push(META_ABSENT.to_owned());
    }
    let models = visibility::parse_models(meta, &mut notes);
    notes.extend(history_notes(history, meta));
    let check = check
        .unwrap_or_else(|| CheckSummary::from_report(&crate::check::check(history), "computed"));
    let ix = Index::new(history, meta);
    let end = ix.end_of_run(meta);
    let windows = fault_windows(&history.faults, ix.workload_end(meta));
    let faults = FaultSet::new(&windows);

    let has_applies = !history.applies.is_empty();
    let vis = if has_applies {
        visibility::visibility(&ix, meta, &models)
    } else {
        VisibilityOut::default()
    };
    let (latency, throughput) = operations::latency_and_throughput(history);
    let stale = stale::stale_reads(&ix, &faults, stale::stale_bucket_ms(&vis.summary));
    Summary {
        run: run::run_summary(&ix, meta, meta_present, &models),
        faults: windows.iter().map(FaultWin::to_summary).collect(),
        cache: cache::cache(&ix, &stale.by_path),
        stale: stale.summary,
        conflicts: conflicts::conflicts(&ix, meta, has_applies, &vis.summary),
        convergence: convergence::convergence(&ix, &history.faults, has_applies),
        divergence: divergence::divergence(&ix, history, end, vis.windows, has_applies),
        lag_heatmap: visibility::lag_heatmap(&ix, &vis.summary),
        traces: traces::traces(&ix, history, &check, &windows),
        availability: operations::availability(&ix, history, &faults),
        clocks: operations::clocks(meta, &windows),
        visibility: vis.summary,
        check,
        latency,
        throughput,
        notes,
    }
}

/// Said first when there is no run.json to read.
const META_ABSENT: &str = "run.json is absent or unreadable: seed, scenario, topology and link \
                           models are defaults, and no prediction can be made";

/// What the history lacks, said up front: every figure that depends on it shows less or no data.
fn history_notes(history: &History, meta: &RunMeta) -> Vec<String> {
    let mut notes = Vec::new();
    if history.applies.is_empty() {
        notes.push(
            "the history has no apply events: visibility, conflicts, convergence and divergence \
             need them and show no data"
                .to_owned(),
        );
    }
    if !meta.applies_missed.is_empty() {
        notes.push(format!(
            "the apply logs of {} dropped events: visibility, convergence and divergence figures \
             involving them are incomplete",
            meta.applies_missed.join(", ")
        ));
    }
    if history.finals.is_empty() {
        notes.push("the history has no final reads".to_owned());
    }
    notes
}

#[cfg(test)]
mod tests;
