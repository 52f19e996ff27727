//! B6, the supporting figures: availability per region during and outside faults, latency and
//! throughput over time, and each region's clock offset over the run.

use edgekv_core::Fault;

use super::faults::{FaultSet, FaultWin};
use super::index::Index;
use super::stats::{nice, quantile, ratio, sort};
use super::{diff_ms, ms, TIME_BUCKETS};
use crate::history::{Function, History, Nanos, Outcome};
use crate::meta::RunMeta;
use crate::summary::{
    AvailabilityRow, ClockSeries, LatencyBucket, LatencySeries, LatencySummary, OutcomeCounts,
    ThroughputSeries, ThroughputSummary,
};

pub(super) fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => "ok",
        Outcome::Fail => "fail",
        Outcome::Info => "info",
    }
}

pub(super) fn function_name(f: Function) -> &'static str {
    match f {
        Function::Put => "put",
        Function::Delete => "delete",
        Function::Get => "get",
        Function::List => "list",
    }
}

#[derive(Default, Clone, Copy)]
struct Outcomes {
    ok: usize,
    fail: usize,
    info: usize,
}

impl Outcomes {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Fail => self.fail += 1,
            Outcome::Info => self.info += 1,
        }
    }
    fn counts(self) -> OutcomeCounts {
        let ops = self.ok + self.fail + self.info;
        OutcomeCounts {
            ops,
            ok: self.ok,
            fail: self.fail,
            info: self.info,
            ok_fraction: ratio(self.ok, ops),
            fail_fraction: ratio(self.fail, ops),
            info_fraction: ratio(self.info, ops),
        }
    }
}

/// Outcomes per region (and all regions), during and outside faults.
pub(super) fn availability(
    ix: &Index<'_>,
    history: &History,
    faults: &FaultSet,
) -> Vec<AvailabilityRow> {
    // [total, during, outside] per region, with `all` last.
    let all = ix.regions.len();
    let mut table = vec![[Outcomes::default(); 3]; all + 1];
    for op in &history.ops {
        let during = faults.contains(op.invoke);
        let region = ix.region_ix.get(op.region.as_str()).copied().unwrap_or(all);
        for row in [region, all] {
            if let Some(cells) = table.get_mut(row) {
                cells[0].add(op.outcome);
                cells[if during { 1 } else { 2 }].add(op.outcome);
            }
        }
    }
    let row = |name: &str, cells: &[Outcomes; 3]| AvailabilityRow {
        region: name.to_owned(),
        total: cells[0].counts(),
        during_faults: cells[1].counts(),
        outside_faults: cells[2].counts(),
    };
    let mut rows = Vec::new();
    if let Some(cells) = table.get(all) {
        rows.push(row("all", cells));
    }
    for (name, cells) in ix.regions.iter().zip(&table) {
        if cells[0].counts().ops > 0 {
            rows.push(row(name, cells));
        }
    }
    rows
}

const FUNCTIONS: [Function; 4] = [Function::Put, Function::Delete, Function::Get, Function::List];
const OUTCOMES: [Outcome; 3] = [Outcome::Ok, Outcome::Fail, Outcome::Info];

/// Time buckets over the operations: round widths, about [`TIME_BUCKETS`] of them.
struct Buckets {
    ms: f64,
    count: usize,
}

impl Buckets {
    fn new(history: &History) -> Self {
        let end = history.ops.iter().map(|o| o.complete.max(o.invoke)).max().unwrap_or(0);
        let width = nice(ms(end) / TIME_BUCKETS as f64).max(1.0);
        Buckets { ms: width, count: ((ms(end) / width).floor() as usize + 1).max(1) }
    }

    fn of(&self, t: Nanos) -> usize {
        ((ms(t) / self.ms) as usize).min(self.count - 1)
    }
}

/// Latency per operation kind over invocation time, and throughput per kind and outcome over
/// completion time.
pub(super) fn latency_and_throughput(history: &History) -> (LatencySummary, ThroughputSummary) {
    let buckets = Buckets::new(history);
    (
        LatencySummary { bucket_ms: buckets.ms, series: latency(history, &buckets) },
        ThroughputSummary { bucket_ms: buckets.ms, series: throughput(history, &buckets) },
    )
}

fn latency(history: &History, buckets: &Buckets) -> Vec<LatencySeries> {
    let mut latency = Vec::new();
    for f in FUNCTIONS {
        let mut all: Vec<f64> = Vec::new();
        let mut per_bucket: Vec<Vec<f64>> = vec![Vec::new(); buckets.count];
        for op in history.ops.iter().filter(|o| o.f == f && o.outcome == Outcome::Ok) {
            let l = diff_ms(op.complete, op.invoke);
            all.push(l);
            if let Some(b) = per_bucket.get_mut(buckets.of(op.invoke)) {
                b.push(l);
            }
        }
        if all.is_empty() {
            continue;
        }
        sort(&mut all);
        let series = per_bucket
            .iter_mut()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
            .filter_map(|(i, v)| {
                sort(v);
                Some(LatencyBucket {
                    at_ms: i as f64 * buckets.ms,
                    count: v.len(),
                    p50_ms: quantile(v, 0.5)?,
                    p99_ms: quantile(v, 0.99)?,
                })
            })
            .collect();
        latency.push(LatencySeries {
            f: function_name(f).to_owned(),
            count: all.len(),
            p50_ms: quantile(&all, 0.5),
            p99_ms: quantile(&all, 0.99),
            buckets: series,
        });
    }
    latency
}

fn throughput(history: &History, buckets: &Buckets) -> Vec<ThroughputSeries> {
    let mut throughput = Vec::new();
    for (f, outcome) in FUNCTIONS.into_iter().flat_map(|f| OUTCOMES.map(|o| (f, o))) {
        let mut counts = vec![0usize; buckets.count];
        let mut any = false;
        for op in history.ops.iter().filter(|o| o.f == f && o.outcome == outcome) {
            any = true;
            if let Some(c) = counts.get_mut(buckets.of(op.complete)) {
                *c += 1;
            }
        }
        if !any {
            continue;
        }
        throughput.push(ThroughputSeries {
            f: function_name(f).to_owned(),
            outcome: outcome_name(outcome).to_owned(),
            points: counts
                .iter()
                .enumerate()
                .map(|(i, &c)| (i as f64 * buckets.ms, c as f64 * 1000.0 / buckets.ms))
                .collect(),
        });
    }
    throughput
}

/// Clock offsets per region as steps: run.json's, plus those of clock faults (a stop restores
/// the offset in force before the start).
pub(super) fn clocks(meta: &RunMeta, windows: &[FaultWin<'_>]) -> Vec<ClockSeries> {
    let mut steps: Vec<(String, Nanos, f64)> =
        meta.clock_offsets.iter().map(|s| (s.region.clone(), s.at, s.offset_ms as f64)).collect();
    for w in windows {
        let Fault::ClockOffset { region, offset_ms } = w.fault else { continue };
        let before = steps
            .iter()
            .filter(|(r, at, _)| r == region && *at <= w.start)
            .max_by_key(|(_, at, _)| *at)
            .map_or(0.0, |s| s.2);
        steps.push((region.clone(), w.start, *offset_ms as f64));
        if w.stopped {
            steps.push((region.clone(), w.end, before));
        }
    }
    steps.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let mut series: Vec<ClockSeries> = Vec::new();
    for (region, at, offset) in steps {
        match series.last_mut() {
            Some(s) if s.region == region => s.steps.push((ms(at), offset)),
            _ => series.push(ClockSeries { region, steps: vec![(ms(at), offset)] }),
        }
    }
    series
}
