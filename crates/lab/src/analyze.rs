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

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use edgekv_core::DelayModel;

use crate::bounds::{apply_estimate, completed_wall_ms, may_have_expired};
use crate::history::{FaultEvent, Function, History, Nanos, Op, Outcome};
use crate::meta::{RegionMeta, RunMeta};
use crate::summary::{
    ApplyRow, AvailabilityRow, CheckSummary, ClockSeries, ConflictRegion, ConflictSummary,
    ConvergenceAfterHeal, DivergenceSample, DivergenceSummary, FaultWindow, FinalRow,
    HistoryCounts, InversionExample, KBin, KeyTrace, LagHeatmap, LatencyBucket, LatencySeries,
    LatencySummary, LinkRow, OpRow, OutcomeCounts, PairVisibility, Quantiles, RateWithInterval,
    RunSummary, StaleBucket, StaleSummary, Summary, ThroughputSeries, ThroughputSummary, Traces,
    VisibilityStats, VisibilitySummary,
};

/// Samples drawn from a link's delay model to build its predicted distribution: enough for the
/// 99.9th percentile to rest on 20 samples, and deterministic (seeded like the run).
pub const PREDICTION_SAMPLES: u64 = 20_000;
/// Samples of the divergent-keys series: enough for a smooth line, few enough for the JSON.
pub const DIVERGENCE_SAMPLES: usize = 200;
/// Time buckets of the latency and throughput series.
pub const TIME_BUCKETS: usize = 60;
/// Δ buckets of the stale-read figure (plus one open bucket beyond).
pub const STALE_BUCKETS: usize = 25;
/// Whether two versions carry the same clock reading and differ only by their tie-breaking
/// region (`TIMESTAMP-REGION`): their order says nothing about real time.
fn same_timestamp(a: &str, b: &str) -> bool {
    match (a.split_once('-'), b.split_once('-')) {
        (Some((ta, _)), Some((tb, _))) => ta == tb,
        _ => false,
    }
}

/// The k-staleness histogram's last bin: this many versions behind or more.
pub const K_BINS: usize = 10;
/// Points kept of each CDF for the plot.
const CDF_POINTS: usize = 200;
/// Anomalous keys given a drill-down.
const MAX_DRILLDOWNS: usize = 8;
/// Operations kept per key excerpt.
const TRACE_OPS: usize = 60;
/// Applies kept per key excerpt.
const TRACE_APPLIES: usize = 200;
/// Writes of the most-written key shown in its diagram.
const HOT_KEY_WRITES: usize = 12;
/// Operations in the per-process timeline.
const TIMELINE_OPS: usize = 150;
/// Inversions listed as examples.
const INVERSION_EXAMPLES: usize = 10;
/// The Wilson interval's z for 95 %.
const Z95: f64 = 1.959_963_984_540_054;

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
        notes.push(
            "run.json is absent or unreadable: seed, scenario, topology and link models are defaults, and no \
             prediction can be made"
                .to_owned(),
        );
    }
    let check = check
        .unwrap_or_else(|| CheckSummary::from_report(&crate::check::check(history), "computed"));
    let ix = Index::new(history, meta);
    let end = ix.end_of_run(meta);
    let workload_end = ix.workload_end(meta);
    let windows = fault_windows(&history.faults, workload_end);
    let faults = FaultSet::new(&windows);
    let models = parse_models(meta, &mut notes);

    let has_applies = !history.applies.is_empty();
    if !has_applies {
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

    let vis = if has_applies { visibility(&ix, meta, &models) } else { VisibilityOut::default() };
    let stale = stale_reads(&ix, &faults, stale_bucket_ms(&vis.summary));
    let conflicts = conflicts(&ix, meta, has_applies, &vis.summary);
    let convergence = convergence(&ix, &history.faults, has_applies);
    let divergence = divergence(&ix, history, end, vis.windows, has_applies);
    let lag_heatmap = lag_heatmap(&ix, &vis.summary);
    let (latency, throughput) = latency_and_throughput(history);
    let traces = traces(&ix, history, &check, &windows);
    let run = run_summary(&ix, meta, meta_present, &models);
    let mut summary = Summary {
        run,
        check,
        faults: windows.iter().map(FaultWin::to_summary).collect(),
        visibility: vis.summary,
        stale,
        conflicts,
        convergence,
        divergence,
        availability: availability(&ix, history, &faults),
        latency,
        throughput,
        lag_heatmap,
        clocks: clocks(meta, &windows),
        traces,
        notes,
    };
    summary.run.incomplete = !meta.applies_missed.is_empty() || !has_applies;
    summary.run.history = HistoryCounts {
        ops: history.ops.len(),
        applies: history.applies.len(),
        faults: history.faults.len(),
        finals: history.finals.len(),
        keys: ix.keys.len(),
        acked_writes: ix.writes.len(),
    };
    summary
}

// ---------------------------------------------------------------------------------------------
// The index.

/// An acknowledged write with a version.
struct Write<'a> {
    op: &'a Op,
    key: usize,
    origin: usize,
    version: &'a str,
}

impl Write<'_> {
    fn ack(&self) -> Nanos {
        self.op.complete
    }
    fn invoke(&self) -> Nanos {
        self.op.invoke
    }
}

/// The multiply-rotate hash of rustc (FxHash): the index's maps are keyed by small integers and
/// short names from the run's own history, where SipHash's flooding resistance buys nothing and
/// costs a third of the analysis time on a million operations.
#[derive(Clone, Copy, Default)]
struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            for (slot, &byte) in word.iter_mut().zip(chunk) {
                *slot = byte;
            }
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;
type FastSet<K> = HashSet<K, BuildHasherDefault<FxHasher>>;

/// The history, interned and indexed for the questions the measurements ask.
struct Index<'a> {
    history: &'a History,
    regions: Vec<&'a str>,
    region_ix: FastMap<&'a str, usize>,
    keys: Vec<&'a str>,
    key_ix: FastMap<&'a str, usize>,
    /// Per (key, region): the steps where the region's greatest version grew, by time.
    held: FastMap<(usize, usize), Vec<(Nanos, &'a str)>>,
    writes: Vec<Write<'a>>,
    /// When each region first held each write (or newer): `holds[write × regions + region]`.
    holds: Vec<Option<Nanos>>,
    /// Each write's version rank among its key's writes, from 1 (equal versions, equal ranks).
    ranks: Vec<usize>,
    /// Per key: its writes (indexes into `writes`) by invoke time.
    writes_by_key: Vec<Vec<usize>>,
    /// Per key: its acknowledged gets, with their region's index, by invoke time.
    gets_by_key: Vec<Vec<(usize, &'a Op)>>,
    /// Per key: all its operations (listings excluded) in history order.
    ops_by_key: Vec<Vec<&'a Op>>,
}

fn intern<'a>(map: &mut FastMap<&'a str, usize>, names: &mut Vec<&'a str>, name: &'a str) -> usize {
    if let Some(&i) = map.get(name) {
        return i;
    }
    map.insert(name, names.len());
    names.push(name);
    names.len() - 1
}

impl<'a> Index<'a> {
    fn new(history: &'a History, meta: &'a RunMeta) -> Self {
        let mut regions = Vec::new();
        let mut region_ix = FastMap::default();
        for region in &meta.regions {
            intern(&mut region_ix, &mut regions, region.name.as_str());
        }
        // Regions the history names but run.json does not, in a stable order.
        let extra: FastSet<&str> = history
            .ops
            .iter()
            .map(|o| o.region.as_str())
            .chain(history.applies.iter().map(|a| a.region.as_str()))
            .chain(history.finals.iter().map(|f| f.region.as_str()))
            .filter(|r| !region_ix.contains_key(r))
            .collect();
        let extra: BTreeSet<&str> = extra.into_iter().collect();
        for region in extra {
            intern(&mut region_ix, &mut regions, region);
        }

        let mut keys = Vec::new();
        let mut key_ix = FastMap::default();
        let mut ops_by_key: Vec<Vec<&Op>> = Vec::new();
        for op in history.ops.iter().filter(|o| o.f != Function::List) {
            let k = intern(&mut key_ix, &mut keys, op.key.as_str());
            if ops_by_key.len() <= k {
                ops_by_key.push(Vec::new());
            }
            if let Some(list) = ops_by_key.get_mut(k) {
                list.push(op);
            }
        }
        for key in history.applies.iter().map(|a| a.key.as_str()) {
            intern(&mut key_ix, &mut keys, key);
        }
        for key in history.finals.iter().map(|f| f.key.as_str()) {
            intern(&mut key_ix, &mut keys, key);
        }
        ops_by_key.resize_with(keys.len(), Vec::new);

        let held = held_steps(history, &key_ix, &region_ix, &ops_by_key);

        let mut writes = Vec::new();
        let mut writes_by_key = vec![Vec::new(); keys.len()];
        let mut gets_by_key = vec![Vec::new(); keys.len()];
        for (k, ops) in ops_by_key.iter().enumerate() {
            for &op in ops {
                if op.outcome != Outcome::Ok {
                    continue;
                }
                if op.is_write() {
                    let (Some(version), Some(&origin)) =
                        (op.version.as_deref(), region_ix.get(op.region.as_str()))
                    else {
                        continue;
                    };
                    if let Some(list) = writes_by_key.get_mut(k) {
                        list.push(writes.len());
                    }
                    writes.push(Write { op, key: k, origin, version });
                } else if op.f == Function::Get {
                    if let (Some(list), Some(&r)) =
                        (gets_by_key.get_mut(k), region_ix.get(op.region.as_str()))
                    {
                        list.push((r, op));
                    }
                }
            }
        }
        for list in &mut writes_by_key {
            list.sort_by_key(|&w| writes.get(w).map(|w| (w.invoke(), w.op.index)));
        }
        for list in &mut gets_by_key {
            list.sort_by_key(|(_, o)| (o.invoke, o.index));
        }
        // Holds and ranks walk each key's writes in version order alongside each region's steps
        // (also in version order): linear, where a binary search per write and region would
        // compare strings a few million times more on a long run.
        let r_count = regions.len();
        let mut holds = vec![None; writes.len() * r_count];
        let mut ranks = vec![0; writes.len()];
        for (k, list) in writes_by_key.iter().enumerate() {
            let mut by_version: Vec<(&str, usize)> =
                list.iter().filter_map(|&w| writes.get(w).map(|x| (x.version, w))).collect();
            by_version.sort_unstable();
            let mut rank = 0;
            let mut previous = None;
            for &(version, w) in &by_version {
                if previous != Some(version) {
                    rank += 1;
                    previous = Some(version);
                }
                if let Some(slot) = ranks.get_mut(w) {
                    *slot = rank;
                }
            }
            for r in 0..r_count {
                let Some(steps) = held.get(&(k, r)) else { continue };
                let mut p = 0;
                for &(version, w) in &by_version {
                    while steps.get(p).is_some_and(|&(_, v)| v < version) {
                        p += 1;
                    }
                    if let Some(slot) = holds.get_mut(w * r_count + r) {
                        *slot = steps.get(p).map(|&(at, _)| at);
                    }
                }
            }
        }
        Index {
            history,
            regions,
            region_ix,
            keys,
            key_ix,
            held,
            writes,
            holds,
            ranks,
            writes_by_key,
            gets_by_key,
            ops_by_key,
        }
    }

    /// Write `w`'s version rank among its key's writes.
    fn rank(&self, w: usize) -> usize {
        self.ranks.get(w).copied().unwrap_or(0)
    }

    /// When `region` first held write `w` (an index into `writes`) or a newer version.
    fn hold(&self, w: usize, region: usize) -> Option<Nanos> {
        self.holds.get(w * self.regions.len() + region).copied().flatten()
    }

    /// When `region` first held `version` of `key` or a newer one.
    fn first_hold(&self, key: usize, region: usize, version: &str) -> Option<Nanos> {
        let steps = self.held.get(&(key, region))?;
        let i = steps.partition_point(|&(_, v)| v < version);
        steps.get(i).map(|&(at, _)| at)
    }

    /// The writes of one key, by invoke time.
    fn key_writes(&self, key: usize) -> impl Iterator<Item = &Write<'a>> + '_ {
        self.writes_by_key.get(key).into_iter().flatten().filter_map(|&w| self.writes.get(w))
    }

    /// The end of the workload: run.json's, else the last completion.
    fn workload_end(&self, meta: &RunMeta) -> Nanos {
        if meta.workload.1 > 0 {
            meta.workload.1
        } else {
            self.history.ops.iter().map(|o| o.complete).max().unwrap_or(0)
        }
    }

    /// The last instant the history mentions.
    fn end_of_run(&self, meta: &RunMeta) -> Nanos {
        let h = self.history;
        h.ops
            .iter()
            .map(|o| o.complete.max(o.invoke))
            .chain(h.applies.iter().map(|a| a.at))
            .chain(h.faults.iter().map(|f| f.at))
            .chain(h.finals.iter().map(|f| f.at))
            .chain([meta.workload.1])
            .max()
            .unwrap_or(0)
    }
}

/// Per (key, region): the steps where the region's greatest version grew, by time. Each apply is
/// placed at [`apply_estimate`], given the write (of any outcome) that produced its version.
fn held_steps<'a>(
    history: &'a History,
    key_ix: &FastMap<&'a str, usize>,
    region_ix: &FastMap<&'a str, usize>,
    ops_by_key: &[Vec<&'a Op>],
) -> FastMap<(usize, usize), Vec<(Nanos, &'a str)>> {
    let mut writes: FastMap<(usize, &str), &Op> = FastMap::default();
    for (k, ops) in ops_by_key.iter().enumerate() {
        for op in ops.iter().filter(|o| o.is_write()) {
            if let Some(v) = op.version.as_deref() {
                writes.entry((k, v)).or_insert(op);
            }
        }
    }
    let mut held: FastMap<(usize, usize), Vec<(Nanos, &str)>> = FastMap::default();
    for a in &history.applies {
        if let (Some(&k), Some(&r)) = (key_ix.get(a.key.as_str()), region_ix.get(a.region.as_str()))
        {
            let at = apply_estimate(a, writes.get(&(k, a.version.as_str())).copied());
            held.entry((k, r)).or_default().push((at, a.version.as_str()));
        }
    }
    for list in held.values_mut() {
        list.sort_unstable();
        let mut steps: Vec<(Nanos, &str)> = Vec::new();
        for &(at, version) in list.iter() {
            if steps.last().is_none_or(|&(_, top)| version > top) {
                steps.push((at, version));
            }
        }
        *list = steps;
    }
    held
}

// ---------------------------------------------------------------------------------------------
// Faults.

/// A fault's window on the run's clock.
struct FaultWin<'a> {
    id: Option<u64>,
    kind: String,
    fault: &'a serde_json::Value,
    start: Nanos,
    end: Nanos,
    stopped: bool,
}

impl FaultWin<'_> {
    fn to_summary(&self) -> FaultWindow {
        let mut description = self.fault.to_string();
        if description.chars().count() > 160 {
            description = description.chars().take(159).chain(['…']).collect();
        }
        FaultWindow {
            id: self.id,
            kind: self.kind.clone(),
            description,
            start_ms: ms(self.start),
            end_ms: ms(self.end),
            stopped: self.stopped,
        }
    }
}

fn fault_kind(fault: &serde_json::Value) -> String {
    fault.get("kind").and_then(|k| k.as_str()).unwrap_or("fault").to_owned()
}

/// Pairs starts with stops: by id when recorded, else by an identical fault. A start without a
/// stop lasts until the end of the workload.
fn fault_windows(events: &[FaultEvent], workload_end: Nanos) -> Vec<FaultWin<'_>> {
    let mut sorted: Vec<&FaultEvent> = events.iter().collect();
    sorted.sort_by_key(|e| (e.at, e.action != "start"));
    let mut windows: Vec<FaultWin<'_>> = Vec::new();
    for event in sorted {
        match event.action.as_str() {
            "start" => windows.push(FaultWin {
                id: event.id,
                kind: fault_kind(&event.fault),
                fault: &event.fault,
                start: event.at,
                end: workload_end.max(event.at),
                stopped: false,
            }),
            "stop" => {
                let open = windows.iter_mut().find(|w| {
                    !w.stopped
                        && match event.id {
                            Some(id) => w.id == Some(id),
                            None => w.id.is_none() && *w.fault == event.fault,
                        }
                });
                if let Some(w) = open {
                    w.end = event.at.max(w.start);
                    w.stopped = true;
                }
            }
            _ => {}
        }
    }
    windows
}

/// The union of the fault windows, for "during a fault" questions.
struct FaultSet {
    spans: Vec<(Nanos, Nanos)>,
}

impl FaultSet {
    fn new(windows: &[FaultWin<'_>]) -> Self {
        let mut raw: Vec<(Nanos, Nanos)> = windows.iter().map(|w| (w.start, w.end)).collect();
        raw.sort_unstable();
        let mut spans: Vec<(Nanos, Nanos)> = Vec::new();
        for (start, end) in raw {
            match spans.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => spans.push((start, end)),
            }
        }
        FaultSet { spans }
    }

    fn contains(&self, t: Nanos) -> bool {
        let i = self.spans.partition_point(|&(start, _)| start <= t);
        i > 0 && self.spans.get(i - 1).is_some_and(|&(_, end)| t <= end)
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics.

/// Nearest-rank quantile of sorted samples: the smallest sample with at least a fraction `p` of
/// the samples at or below it (exact and reproducible, no interpolation).
fn quantile(sorted: &[f64], p: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    // The epsilon keeps 0.9 × 10 from ranking as 10.000000000000002 → 11.
    let rank = ((p * n as f64) - 1e-9).ceil().max(1.0) as usize;
    sorted.get(rank.min(n) - 1).copied()
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn ratio(hits: usize, n: usize) -> Option<f64> {
    (n > 0).then(|| hits as f64 / n as f64)
}

/// A fraction with its Wilson score interval at 95 %.
fn wilson(hits: usize, n: usize) -> RateWithInterval {
    if n == 0 {
        return RateWithInterval { n, hits, rate: None, low: None, high: None };
    }
    let nf = n as f64;
    let p = hits as f64 / nf;
    let z2 = Z95 * Z95;
    let denominator = 1.0 + z2 / nf;
    let center = (p + z2 / (2.0 * nf)) / denominator;
    let half = Z95 * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt() / denominator;
    RateWithInterval {
        n,
        hits,
        rate: Some(p),
        low: Some((center - half).max(0.0)),
        high: Some((center + half).min(1.0)),
    }
}

/// Kolmogorov–Smirnov distance between two empirical distributions (sorted samples).
fn ks_distance(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    while let (Some(&x), Some(&y)) = (a.get(i), b.get(j)) {
        let at = x.min(y);
        while a.get(i).is_some_and(|&v| v <= at) {
            i += 1;
        }
        while b.get(j).is_some_and(|&v| v <= at) {
            j += 1;
        }
        d = d.max((i as f64 / na - j as f64 / nb).abs());
    }
    Some(d)
}

/// Root mean square of the quantile differences at p1..p99.
fn quantile_rmse(measured: &[f64], predicted: &[f64]) -> Option<f64> {
    let mut sum = 0.0;
    for p in 1..=99 {
        let p = f64::from(p) / 100.0;
        let d = quantile(measured, p)? - quantile(predicted, p)?;
        sum += d * d;
    }
    Some((sum / 99.0).sqrt())
}

/// The CDF of sorted samples as step points `(value, P(X <= value))`, downsampled to about
/// [`CDF_POINTS`] with the tail kept.
fn cdf_points(sorted: &[f64]) -> Vec<(f64, f64)> {
    let n = sorted.len();
    if n == 0 {
        return Vec::new();
    }
    let mut ranks: Vec<usize> = if n <= CDF_POINTS {
        (1..=n).collect()
    } else {
        let mut ranks: Vec<usize> =
            (1..=CDF_POINTS).map(|j| (j * n).div_ceil(CDF_POINTS)).collect();
        for tail in [0.001, 0.01, 0.99, 0.995, 0.999, 0.9999] {
            ranks.push(((tail * n as f64).ceil() as usize).clamp(1, n));
        }
        ranks.sort_unstable();
        ranks.dedup();
        ranks
    };
    ranks.retain(|&r| r >= 1 && r <= n);
    ranks.iter().filter_map(|&r| sorted.get(r - 1).map(|&v| (v, r as f64 / n as f64))).collect()
}

fn sort(values: &mut [f64]) {
    values.sort_unstable_by(f64::total_cmp);
}

/// Rounds up to 1, 2 or 5 × a power of ten, so bucket edges read well on an axis.
fn nice(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 || x.is_infinite() {
        return 1.0;
    }
    let base = 10f64.powf(x.log10().floor());
    for m in [1.0, 2.0, 5.0] {
        if m * base >= x * (1.0 - 1e-12) {
            return m * base;
        }
    }
    10.0 * base
}

fn quantiles(mut values: Vec<f64>) -> Quantiles {
    sort(&mut values);
    Quantiles {
        count: values.len(),
        p50_ms: quantile(&values, 0.5),
        p90_ms: quantile(&values, 0.9),
        p99_ms: quantile(&values, 0.99),
        max_ms: values.last().copied(),
    }
}

// ---------------------------------------------------------------------------------------------
// B1: t-visibility.

fn parse_models(meta: &RunMeta, notes: &mut Vec<String>) -> HashMap<(String, String), DelayModel> {
    let mut models = HashMap::new();
    for link in &meta.links {
        match link.model.parse::<DelayModel>() {
            Ok(model) => {
                models.insert((link.from.clone(), link.to.clone()), model);
            }
            Err(e) => notes.push(format!(
                "the model of {} -> {} does not parse ({e}): no prediction for it",
                link.from, link.to
            )),
        }
    }
    models
}

/// Delay samples of one link, in ms, sorted.
fn predicted_samples(model: &DelayModel, seed: u64, from: &str, to: &str, n: u64) -> Vec<f64> {
    let mut samples: Vec<f64> =
        (0..n).map(|i| model.sample(seed, from, i, to).as_secs_f64() * 1000.0).collect();
    sort(&mut samples);
    samples
}

/// How many prediction samples a part of a pooled distribution gets: in proportion to its
/// measured samples, so the pooled prediction mixes the links as the measurement does.
fn share(count: usize, total: usize) -> u64 {
    if total == 0 {
        return 0;
    }
    ((PREDICTION_SAMPLES as f64 * count as f64 / total as f64).round() as u64).max(1)
}

/// Measured (unsorted) and predicted (sorted) samples into the figures.
fn visibility_stats(
    mut measured: Vec<f64>,
    missing: usize,
    predicted: Option<&[f64]>,
    mut blackbox: Vec<f64>,
) -> VisibilityStats {
    sort(&mut measured);
    sort(&mut blackbox);
    let n = measured.len();
    let total = n + missing;
    let t_999_ms = if total == 0 {
        None
    } else {
        let rank = ((0.999 * total as f64) - 1e-9).ceil().max(1.0) as usize;
        if rank <= n {
            measured.get(rank - 1).copied()
        } else {
            None
        }
    };
    let p50 = quantile(&measured, 0.5);
    let bb50 = quantile(&blackbox, 0.5);
    let predicted = predicted.filter(|p| !p.is_empty());
    let pq = |p: f64| predicted.and_then(|s| quantile(s, p));
    VisibilityStats {
        count: n,
        missing,
        min_ms: measured.first().copied(),
        p50_ms: p50,
        p90_ms: quantile(&measured, 0.9),
        p99_ms: quantile(&measured, 0.99),
        p999_ms: quantile(&measured, 0.999),
        max_ms: measured.last().copied(),
        mean_ms: mean(&measured),
        t_999_ms,
        predicted_p50_ms: pq(0.5),
        predicted_p90_ms: pq(0.9),
        predicted_p99_ms: pq(0.99),
        predicted_p999_ms: pq(0.999),
        predicted_mean_ms: predicted.and_then(mean),
        ks_distance: predicted.and_then(|p| ks_distance(&measured, p)),
        rmse_ms: predicted.and_then(|p| quantile_rmse(&measured, p)),
        mean_offset_ms: p50.zip(pq(0.5)).map(|(m, p)| m - p),
        blackbox_count: blackbox.len(),
        blackbox_p50_ms: bb50,
        blackbox_gap_ms: bb50.zip(p50).map(|(b, w)| b - w),
        cdf: cdf_points(&measured),
        predicted_cdf: predicted.map(cdf_points).unwrap_or_default(),
    }
}

#[derive(Default)]
struct VisibilityOut {
    summary: VisibilitySummary,
    /// DW(w) samples in ms, for B5.
    windows: Vec<f64>,
}

/// The black-box view of one (key, region): its acknowledged gets by invoke time, and for each
/// position the oldest version returned from there on (not found counts as the oldest).
struct StableReads<'a> {
    invokes: Vec<Nanos>,
    suffix_min: Vec<&'a str>,
}

impl<'a> StableReads<'a> {
    fn new(gets: &[&'a Op]) -> Self {
        let invokes = gets.iter().map(|g| g.invoke).collect();
        let mut suffix_min: Vec<&str> =
            gets.iter().map(|g| g.version.as_deref().unwrap_or("")).collect();
        for i in (0..suffix_min.len().saturating_sub(1)).rev() {
            if let (Some(&next), Some(cur)) = (suffix_min.get(i + 1), suffix_min.get(i)) {
                if next < *cur {
                    suffix_min[i] = next;
                }
            }
        }
        StableReads { invokes, suffix_min }
    }

    /// The invoke time of the first get at or after `from` that returned `version` or newer and
    /// after which no get returned anything older.
    fn first_stable(&self, version: &str, from: Nanos) -> Option<Nanos> {
        let by_version = self.suffix_min.partition_point(|&v| v < version);
        let by_time = self.invokes.partition_point(|&t| t < from);
        self.invokes.get(by_version.max(by_time)).copied()
    }
}

/// How long after a write's ack `seen` (when a region first held it or newer, or a read first
/// returned it for good) came, in ms: t-visibility as PBS defines it, the time after the commit
/// from which a read sees the write. A region that held the write, or a newer version, before
/// the ack shows it to a read at the ack already: 0, not a negative time.
fn visible_after_ms(seen: Nanos, ack: Nanos) -> f64 {
    diff_ms(seen, ack).max(0.0)
}

/// t-visibility per region pair, pooled and global (B1). Assumes apply estimates are accurate to
/// well under the figures' milliseconds, and that "holds w" may be reached through a newer
/// version (a local overwrite), which makes the curve run ahead of the link model on hot keys.
fn visibility(
    ix: &Index<'_>,
    meta: &RunMeta,
    models: &HashMap<(String, String), DelayModel>,
) -> VisibilityOut {
    let r_count = ix.regions.len();
    let mut pair_values: Vec<Vec<f64>> = vec![Vec::new(); r_count * r_count];
    let mut pair_missing = vec![0usize; r_count * r_count];
    let mut pair_blackbox: Vec<Vec<f64>> = vec![Vec::new(); r_count * r_count];
    let mut global_by_origin: Vec<Vec<f64>> = vec![Vec::new(); r_count];
    let mut global_missing = 0;
    let mut windows = Vec::new();
    let mut holds: Vec<Option<Nanos>> = vec![None; r_count];

    for (key, writes) in ix.writes_by_key.iter().enumerate() {
        if writes.is_empty() {
            continue;
        }
        // Black-box readers of this key, per region.
        let gets = ix.gets_by_key.get(key).map_or(&[][..], Vec::as_slice);
        let mut in_region: Vec<Vec<&Op>> = vec![Vec::new(); r_count];
        for &(r, get) in gets {
            if let Some(list) = in_region.get_mut(r) {
                list.push(get);
            }
        }
        let stable: Vec<StableReads<'_>> = in_region.iter().map(|g| StableReads::new(g)).collect();
        for (i, w) in writes.iter().filter_map(|&i| ix.writes.get(i).map(|w| (i, w))) {
            for (r, hold) in holds.iter_mut().enumerate() {
                *hold = ix.hold(i, r);
            }
            let mut global: Option<f64> = Some(f64::NEG_INFINITY);
            for (r, hold) in holds.iter().enumerate() {
                if r == w.origin {
                    continue;
                }
                let pair = w.origin * r_count + r;
                match hold {
                    Some(at) => {
                        let v = visible_after_ms(*at, w.ack());
                        if let Some(values) = pair_values.get_mut(pair) {
                            values.push(v);
                        }
                        global = global.map(|g| g.max(v));
                    }
                    None => {
                        if let Some(m) = pair_missing.get_mut(pair) {
                            *m += 1;
                        }
                        global = None;
                    }
                }
                // A delete's effect cannot be told from a key never written by a read.
                if w.op.f == Function::Put {
                    if let Some(at) =
                        stable.get(r).and_then(|s| s.first_stable(w.version, w.invoke()))
                    {
                        if let Some(values) = pair_blackbox.get_mut(pair) {
                            values.push(visible_after_ms(at, w.ack()));
                        }
                    }
                }
            }
            if r_count > 1 {
                match global {
                    Some(g) => {
                        if let Some(values) = global_by_origin.get_mut(w.origin) {
                            values.push(g);
                        }
                    }
                    None => global_missing += 1,
                }
            }
            if holds.iter().all(Option::is_some) {
                let times = holds.iter().flatten();
                if let (Some(first), Some(last)) = (times.clone().min(), times.max()) {
                    windows.push(diff_ms(*last, *first));
                }
            }
        }
    }

    let model = |from: usize, to: usize| -> Option<&DelayModel> {
        let from = ix.regions.get(from)?;
        let to = ix.regions.get(to)?;
        models.get(&((*from).to_owned(), (*to).to_owned()))
    };

    let mut pairs = Vec::new();
    let mut overall_values = Vec::new();
    let mut overall_missing = 0;
    let mut overall_blackbox = Vec::new();
    let mut overall_predicted: Option<Vec<f64>> = Some(Vec::new());
    let total: usize = pair_values.iter().map(Vec::len).sum();
    for from in 0..r_count {
        for to in 0..r_count {
            let pair = from * r_count + to;
            let values = pair_values.get(pair).cloned().unwrap_or_default();
            let missing = pair_missing.get(pair).copied().unwrap_or(0);
            if from == to || values.len() + missing == 0 {
                continue;
            }
            let (from_name, to_name) = (
                ix.regions.get(from).copied().unwrap_or(""),
                ix.regions.get(to).copied().unwrap_or(""),
            );
            let link = model(from, to);
            let predicted = link
                .map(|m| predicted_samples(m, meta.seed, from_name, to_name, PREDICTION_SAMPLES));
            match (link, overall_predicted.as_mut()) {
                (Some(m), Some(pool)) if !values.is_empty() => {
                    pool.extend(predicted_samples(
                        m,
                        meta.seed,
                        from_name,
                        to_name,
                        share(values.len(), total),
                    ));
                }
                (None, _) if !values.is_empty() => overall_predicted = None,
                _ => {}
            }
            let blackbox = pair_blackbox.get(pair).cloned().unwrap_or_default();
            overall_values.extend_from_slice(&values);
            overall_missing += missing;
            overall_blackbox.extend_from_slice(&blackbox);
            pairs.push(PairVisibility {
                from: from_name.to_owned(),
                to: to_name.to_owned(),
                model: meta
                    .links
                    .iter()
                    .find(|l| l.from == from_name && l.to == to_name)
                    .map(|l| l.model.clone()),
                stats: visibility_stats(values, missing, predicted.as_deref(), blackbox),
            });
        }
    }
    if let Some(pool) = overall_predicted.as_mut() {
        sort(pool);
    }

    // The global prediction: per write, the slowest of the origin's links, drawn with one
    // sequence number as the nodes do for one write.
    let global_total: usize = global_by_origin.iter().map(Vec::len).sum();
    let mut global_predicted: Option<Vec<f64>> = Some(Vec::new());
    for (origin, values) in global_by_origin.iter().enumerate() {
        if values.is_empty() {
            continue;
        }
        let links: Option<Vec<(&DelayModel, &str)>> = (0..r_count)
            .filter(|&to| to != origin)
            .map(|to| Some((model(origin, to)?, *ix.regions.get(to)?)))
            .collect();
        match (links, global_predicted.as_mut(), ix.regions.get(origin)) {
            (Some(links), Some(pool), Some(from)) => {
                for i in 0..share(values.len(), global_total) {
                    let slowest = links
                        .iter()
                        .map(|(m, to)| m.sample(meta.seed, from, i, to).as_secs_f64() * 1000.0)
                        .fold(0.0, f64::max);
                    pool.push(slowest);
                }
            }
            _ => global_predicted = None,
        }
    }
    if let Some(pool) = global_predicted.as_mut() {
        sort(pool);
    }
    let global_values: Vec<f64> = global_by_origin.into_iter().flatten().collect();
    VisibilityOut {
        summary: VisibilitySummary {
            overall: visibility_stats(
                overall_values,
                overall_missing,
                overall_predicted.as_deref(),
                overall_blackbox,
            ),
            global: visibility_stats(
                global_values,
                global_missing,
                global_predicted.as_deref(),
                Vec::new(),
            ),
            pairs,
        },
        windows,
    }
}

fn lag_heatmap(ix: &Index<'_>, vis: &VisibilitySummary) -> LagHeatmap {
    let names: Vec<String> = ix.regions.iter().map(|r| (*r).to_owned()).collect();
    let p99_ms = names
        .iter()
        .map(|from| {
            names
                .iter()
                .map(|to| {
                    vis.pairs
                        .iter()
                        .find(|p| &p.from == from && &p.to == to)
                        .and_then(|p| p.stats.p99_ms)
                })
                .collect()
        })
        .collect();
    LagHeatmap { origins: names.clone(), destinations: names, p99_ms }
}

// ---------------------------------------------------------------------------------------------
// B2: stale reads.

/// Δ buckets sized to the bulk of visibility (1.5 × the greater of the measured and predicted
/// p99), so that the figure spans the interval where staleness fades, and the open last bucket
/// holds the tail (partitions, unbounded models truncated at 60 s) without stretching the axis.
fn stale_bucket_ms(vis: &VisibilitySummary) -> f64 {
    let overall = &vis.overall;
    let horizon = overall.p99_ms.unwrap_or(0.0).max(overall.predicted_p99_ms.unwrap_or(0.0));
    if horizon > 0.0 {
        nice(horizon * 1.5 / STALE_BUCKETS as f64).max(1.0)
    } else {
        100.0
    }
}

/// Counts positions inserted below a rank (a Fenwick tree), so "how many acknowledged versions
/// are newer than what was read" costs O(log n) per read.
struct Fenwick(Vec<usize>);

impl Fenwick {
    fn new(n: usize) -> Self {
        Fenwick(vec![0; n + 1])
    }

    fn add(&mut self, rank: usize) {
        let mut i = rank + 1;
        while let Some(slot) = self.0.get_mut(i) {
            *slot += 1;
            i += i & i.wrapping_neg();
        }
    }

    /// Inserted positions below `rank`.
    fn below(&self, rank: usize) -> usize {
        let mut i = rank.min(self.0.len().saturating_sub(1));
        let mut sum = 0;
        while i > 0 {
            sum += self.0.get(i).copied().unwrap_or(0);
            i &= i - 1;
        }
        sum
    }
}

#[derive(Default, Clone, Copy)]
struct Tally {
    n: usize,
    hits: usize,
}

impl Tally {
    fn add(&mut self, hit: bool) {
        self.n += 1;
        self.hits += usize::from(hit);
    }
    fn wilson(self) -> RateWithInterval {
        wilson(self.hits, self.n)
    }
}

/// Stale reads (B2): a read is stale when it returns something older than the newest write
/// acknowledged before it was invoked (exact: both are client instants on the run's clock). A
/// not-found read is judged by what its region held by the read's end, from apply estimates,
/// and left unjudged when the newest write may have expired by the read's end.
fn stale_reads(ix: &Index<'_>, faults: &FaultSet, bucket_ms: f64) -> StaleSummary {
    let mut total = Tally::default();
    let (mut during, mut outside, mut local, mut remote) =
        (Tally::default(), Tally::default(), Tally::default(), Tally::default());
    let mut buckets = vec![(Tally::default(), Tally::default()); STALE_BUCKETS + 1];
    let mut k_bins = [0usize; K_BINS + 1];
    let mut unjudged = 0;

    for (key, gets) in ix.gets_by_key.iter().enumerate() {
        if gets.is_empty() {
            continue;
        }
        let mut by_ack: Vec<&Write<'_>> = ix.key_writes(key).collect();
        by_ack.sort_by_key(|w| (w.ack(), w.op.index));
        let mut versions: Vec<&str> = by_ack.iter().map(|w| w.version).collect();
        versions.sort_unstable();
        versions.dedup();
        let mut fenwick = Fenwick::new(versions.len());
        let (mut next, mut inserted) = (0, 0);
        let mut newest: Option<&Write<'_>> = None;
        for &(region, get) in gets {
            while let Some(w) = by_ack.get(next).filter(|w| w.ack() < get.invoke) {
                fenwick.add(versions.partition_point(|&v| v < w.version));
                inserted += 1;
                if newest.is_none_or(|n| w.version > n.version) {
                    newest = Some(w);
                }
                next += 1;
            }
            let Some(newest) = newest else {
                unjudged += 1;
                continue;
            };
            let read = get.version.as_deref();
            // A not-found read carries no version, but the region's apply events say what it
            // held: a tombstone at least as new as `newest` (a delete still in flight when the
            // read began, say) makes "not found" fresh, not stale.
            let held = ix.held.get(&(key, region)).and_then(|steps| {
                let n = steps.partition_point(|(at, _)| *at <= get.complete);
                n.checked_sub(1).and_then(|i| steps.get(i)).map(|(_, v)| *v)
            });
            let stale = match read {
                Some(v) => v < newest.version,
                None if newest.op.f == Function::Delete => false,
                None if held.is_some_and(|h| h >= newest.version) => false,
                None if may_have_expired(newest.op, completed_wall_ms(get)) => {
                    unjudged += 1;
                    continue;
                }
                None => true,
            };
            let k = if stale {
                let read_rank = versions.partition_point(|&v| v <= read.unwrap_or(""));
                inserted - fenwick.below(read_rank)
            } else {
                0
            };
            if let Some(bin) = k_bins.get_mut(k.min(K_BINS)) {
                *bin += 1;
            }
            total.add(stale);
            if faults.contains(get.invoke) { &mut during } else { &mut outside }.add(stale);
            let is_local = region == newest.origin;
            if is_local { &mut local } else { &mut remote }.add(stale);
            let delta = diff_ms(get.invoke, newest.ack());
            let b = ((delta / bucket_ms).floor().max(0.0) as usize).min(STALE_BUCKETS);
            if let Some((l, r)) = buckets.get_mut(b) {
                if is_local { l } else { r }.add(stale);
            }
        }
    }
    StaleSummary {
        reads: total.n,
        stale: total.hits,
        overall_rate: ratio(total.hits, total.n),
        unjudged,
        during_faults: during.wilson(),
        outside_faults: outside.wilson(),
        local: local.wilson(),
        remote: remote.wilson(),
        bucket_ms,
        buckets: buckets
            .iter()
            .enumerate()
            .map(|(i, (l, r))| StaleBucket {
                from_ms: i as f64 * bucket_ms,
                to_ms: (i < STALE_BUCKETS).then(|| (i + 1) as f64 * bucket_ms),
                local: l.wilson(),
                remote: r.wilson(),
            })
            .collect(),
        k_histogram: k_bins
            .iter()
            .enumerate()
            .map(|(k, &reads)| KBin { k, or_more: k == K_BINS, reads })
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// B3: conflicts.

/// Conflicts, LWW losers, silent losses and real-time inversions (B3). Concurrency compares a
/// write's invoke with when the other region held the other write, from apply estimates; an
/// estimate is never before its own write's invoke, so a region that holds an older write
/// through its own newer one holds it after that newer write was sent. Inversions compare client
/// instants only (acks and invokes), which are exact.
fn conflicts(
    ix: &Index<'_>,
    meta: &RunMeta,
    determined: bool,
    vis: &VisibilitySummary,
) -> ConflictSummary {
    let r_count = ix.regions.len();
    let mut concurrent = vec![false; ix.writes.len()];
    let mut loser = vec![false; ix.writes.len()];
    let mut inversions = 0;
    let mut tied_inversions = 0;
    let mut inversion_examples = Vec::new();

    // What any read (or final read) returned: a loser seen once was not lost silently.
    let mut returned: FastSet<(usize, &str)> = FastSet::default();
    for (key, gets) in ix.gets_by_key.iter().enumerate() {
        for v in gets.iter().filter_map(|(_, g)| g.version.as_deref()) {
            returned.insert((key, v));
        }
    }
    for read in &ix.history.finals {
        if let (Some(&k), Some(v)) = (ix.key_ix.get(read.key.as_str()), read.version.as_deref()) {
            returned.insert((k, v));
        }
    }

    for (key, writes) in ix.writes_by_key.iter().enumerate() {
        if writes.len() < 2 {
            continue;
        }
        if determined {
            // Per origin region: its writes by invoke time.
            let mut by_region: Vec<Vec<usize>> = vec![Vec::new(); r_count];
            for &w in writes {
                if let Some(group) =
                    ix.writes.get(w).and_then(|write| by_region.get_mut(write.origin))
                {
                    group.push(w);
                }
            }
            let active: Vec<usize> =
                (0..r_count).filter(|&r| by_region.get(r).is_some_and(|g| !g.is_empty())).collect();
            if active.len() >= 2 {
                mark_concurrent(ix, &by_region, &active, &mut concurrent, &mut loser);
            }
        }
        // Real-time inversions: in invoke order, against every write acknowledged before.
        let mut by_ack: Vec<&Write<'_>> = writes.iter().filter_map(|&w| ix.writes.get(w)).collect();
        by_ack.sort_by_key(|w| (w.ack(), w.op.index));
        let mut next = 0;
        let mut newest: Option<&Write<'_>> = None;
        for w in writes.iter().filter_map(|&w| ix.writes.get(w)) {
            while let Some(done) = by_ack.get(next).filter(|d| d.ack() < w.invoke()) {
                if newest.is_none_or(|n| done.version > n.version) {
                    newest = Some(done);
                }
                next += 1;
            }
            if let Some(n) = newest.filter(|n| n.version > w.version) {
                inversions += 1;
                if same_timestamp(n.version, w.version) {
                    tied_inversions += 1;
                }
                if inversion_examples.len() < INVERSION_EXAMPLES {
                    inversion_examples.push(InversionExample {
                        key: ix.keys.get(key).copied().unwrap_or("").to_owned(),
                        earlier: n.op.index,
                        later: w.op.index,
                    });
                }
            }
        }
    }

    let silent: Vec<bool> = ix
        .writes
        .iter()
        .zip(&loser)
        .map(|(w, &l)| l && !returned.contains(&(w.key, w.version)))
        .collect();
    let mut per_region: Vec<ConflictRegion> = ix
        .regions
        .iter()
        .map(|r| ConflictRegion { region: (*r).to_owned(), ..ConflictRegion::default() })
        .collect();
    for (i, w) in ix.writes.iter().enumerate() {
        if let Some(row) = per_region.get_mut(w.origin) {
            row.writes += 1;
            row.concurrent += usize::from(concurrent.get(i).copied().unwrap_or(false));
            row.losers += usize::from(loser.get(i).copied().unwrap_or(false));
            row.silent_losses += usize::from(silent.get(i).copied().unwrap_or(false));
        }
    }
    per_region.retain(|r| r.writes > 0);
    for row in &mut per_region {
        if determined {
            row.conflict_rate = ratio(row.concurrent, row.writes);
            row.loser_rate = ratio(row.losers, row.writes);
            row.silent_loss_rate = ratio(row.silent_losses, row.writes);
        }
    }
    let count = |flags: &[bool]| flags.iter().filter(|&&f| f).count();
    let (n_concurrent, n_losers, n_silent) = (count(&concurrent), count(&loser), count(&silent));
    let writes = ix.writes.len();
    let delay = vis.overall.mean_ms.or(vis.overall.predicted_mean_ms);
    let poisson = delay.and_then(|d| poisson_estimate(ix, meta, d));
    for row in &mut per_region {
        let origin = ix.region_ix.get(row.region.as_str()).copied();
        row.poisson_estimate = poisson
            .as_ref()
            .and_then(|(_, by_region)| origin.and_then(|o| by_region.get(o).copied().flatten()));
    }
    ConflictSummary {
        timestamp_source: meta.timestamp_source.clone(),
        determined,
        writes,
        concurrent: n_concurrent,
        losers: n_losers,
        silent_losses: n_silent,
        conflict_rate: if determined { ratio(n_concurrent, writes) } else { None },
        loser_rate: if determined { ratio(n_losers, writes) } else { None },
        silent_loss_rate: if determined { ratio(n_silent, writes) } else { None },
        inversions,
        tied_inversions,
        inversion_examples,
        poisson_estimate: poisson.map(|(overall, _)| overall),
        poisson_delay_ms: delay,
        per_region,
    }
}

/// Marks the concurrent writes and the LWW losers of one key.
///
/// w1 (from A) and w2 (from B) are concurrent when each was invoked before its region held the
/// other: inv(w2) < hold_B(w1) and inv(w1) < hold_A(w2). For w1, the B-writes meeting the first
/// condition are a prefix of B's writes by invoke time. Taking A's writes by decreasing invoke
/// time, the B-writes meeting the second condition only accumulate; kept in a prefix-maximum
/// tree over their positions, with their version ranks as values, one query per write answers
/// both "is some B-write concurrent" (the maximum is not empty) and "does a concurrent one win"
/// (its rank exceeds w1's): O(n log n) per pair of regions, however hot the key.
fn mark_concurrent(
    ix: &Index<'_>,
    by_region: &[Vec<usize>],
    active: &[usize],
    concurrent: &mut [bool],
    loser: &mut [bool],
) {
    let never = Nanos::MAX;
    for &b in active {
        let Some(group_b) = by_region.get(b) else { continue };
        let writes_b: Vec<(usize, &Write<'_>)> =
            group_b.iter().filter_map(|&i| ix.writes.get(i).map(|w| (i, w))).collect();
        let invokes_b: Vec<Nanos> = writes_b.iter().map(|(_, w)| w.invoke()).collect();
        // Ranks start at 1, so that 0 means "no concurrent write".
        let ranks_b: Vec<usize> = writes_b.iter().map(|&(i, _)| ix.rank(i)).collect();
        for &a in active.iter().filter(|&&a| a != b) {
            let Some(group_a) = by_region.get(a) else { continue };
            let hold_a: Vec<Nanos> =
                writes_b.iter().map(|&(i, _)| ix.hold(i, a).unwrap_or(never)).collect();
            let mut by_hold: Vec<usize> = (0..writes_b.len()).collect();
            by_hold.sort_unstable_by_key(|&j| std::cmp::Reverse(hold_a.get(j).copied()));
            let mut tree = PrefixMax::new(writes_b.len());
            let mut next = 0;
            for &i in group_a.iter().rev() {
                let Some(w1) = ix.writes.get(i) else { continue };
                while let Some(&j) =
                    by_hold.get(next).filter(|&&j| hold_a.get(j).is_some_and(|&h| h > w1.invoke()))
                {
                    tree.raise(j, ranks_b.get(j).copied().unwrap_or(0));
                    next += 1;
                }
                let hold_b = ix.hold(i, b).unwrap_or(never);
                let best = tree.max_below(invokes_b.partition_point(|&t| t < hold_b));
                if best == 0 {
                    continue;
                }
                if let Some(flag) = concurrent.get_mut(i) {
                    *flag = true;
                }
                if best > ix.rank(i) {
                    if let Some(flag) = loser.get_mut(i) {
                        *flag = true;
                    }
                }
            }
        }
    }
}

/// Maximum over a prefix of positions whose values only grow (a Fenwick tree for max).
struct PrefixMax(Vec<usize>);

impl PrefixMax {
    fn new(n: usize) -> Self {
        PrefixMax(vec![0; n + 1])
    }

    fn raise(&mut self, position: usize, value: usize) {
        let mut i = position + 1;
        while let Some(slot) = self.0.get_mut(i) {
            *slot = (*slot).max(value);
            i += i & i.wrapping_neg();
        }
    }

    /// The greatest value at positions below `end` (0 if none).
    fn max_below(&self, end: usize) -> usize {
        let mut i = end.min(self.0.len().saturating_sub(1));
        let mut max = 0;
        while i > 0 {
            max = max.max(self.0.get(i).copied().unwrap_or(0));
            i &= i - 1;
        }
        max
    }
}

/// The conflict rate a Poisson process predicts: a write conflicts when another region writes
/// the key within the mean visibility delay d before or after it, so with λ the key's write rate
/// from other regions, P = 1 − exp(−2 d λ), averaged over the writes: overall, and per origin
/// region.
fn poisson_estimate(
    ix: &Index<'_>,
    meta: &RunMeta,
    delay_ms: f64,
) -> Option<(f64, Vec<Option<f64>>)> {
    let span = if meta.workload.1 > meta.workload.0 {
        meta.workload.1 - meta.workload.0
    } else {
        let first = ix.writes.iter().map(Write::invoke).min()?;
        let last = ix.writes.iter().map(Write::ack).max()?;
        last.saturating_sub(first)
    };
    let seconds = span as f64 / 1e9;
    if seconds <= 0.0 || ix.writes.is_empty() {
        return None;
    }
    let d = delay_ms.max(0.0) / 1000.0;
    let r_count = ix.regions.len();
    let (mut sums, mut writes) = (vec![0.0; r_count], vec![0usize; r_count]);
    let mut per_region = vec![0usize; r_count];
    for key_writes in &ix.writes_by_key {
        per_region.iter_mut().for_each(|c| *c = 0);
        for w in key_writes.iter().filter_map(|&w| ix.writes.get(w)) {
            if let Some(c) = per_region.get_mut(w.origin) {
                *c += 1;
            }
        }
        let total: usize = per_region.iter().sum();
        for ((&mine, sum), n) in per_region.iter().zip(&mut sums).zip(&mut writes) {
            let lambda = (total - mine) as f64 / seconds;
            *sum += mine as f64 * (1.0 - (-2.0 * d * lambda).exp());
            *n += mine;
        }
    }
    let overall = sums.iter().sum::<f64>() / ix.writes.len() as f64;
    let by_region =
        sums.iter().zip(&writes).map(|(&s, &n)| (n > 0).then(|| s / n as f64)).collect();
    Some((overall, by_region))
}

// ---------------------------------------------------------------------------------------------
// B4: convergence after heal.

/// Convergence after each heal (B4): per key, when every region held the greatest version
/// written before the heal. Assumes the apply estimates: a region whose apply window straddles
/// the heal counts on the side its estimate falls, so the figure is as exact as the estimates
/// (microseconds on one machine, a millisecond either way from older histories).
fn convergence(
    ix: &Index<'_>,
    faults: &[FaultEvent],
    has_applies: bool,
) -> Vec<ConvergenceAfterHeal> {
    let mut stops: Vec<&FaultEvent> = faults.iter().filter(|f| f.action == "stop").collect();
    stops.sort_by_key(|f| f.at);
    // Per key: the greatest version among writes invoked so far, by invoke time.
    let running: Vec<(Vec<Nanos>, Vec<&str>)> = ix
        .writes_by_key
        .iter()
        .map(|ws| {
            let mut top = "";
            ws.iter()
                .filter_map(|&w| ix.writes.get(w))
                .map(|w| {
                    top = top.max(w.version);
                    (w.invoke(), top)
                })
                .unzip()
        })
        .collect();
    stops
        .into_iter()
        .map(|stop| {
            let heal = stop.at;
            let (mut keys, mut backlog, mut unconverged, mut latest) = (0, 0, 0, 0);
            for (key, (invokes, tops)) in running.iter().enumerate() {
                let p = invokes.partition_point(|&t| t < heal);
                let Some(&target) = p.checked_sub(1).and_then(|i| tops.get(i)) else { continue };
                keys += 1;
                if !has_applies {
                    continue;
                }
                for r in 0..ix.regions.len() {
                    match ix.first_hold(key, r, target) {
                        Some(at) if at <= heal => {}
                        Some(at) => {
                            backlog += 1;
                            latest = latest.max(at - heal);
                        }
                        None => {
                            backlog += 1;
                            unconverged += 1;
                        }
                    }
                }
            }
            ConvergenceAfterHeal {
                fault_id: stop.id,
                fault: fault_kind(&stop.fault),
                heal_at_ms: ms(heal),
                convergence_ms: (has_applies && unconverged == 0).then(|| ms(latest)),
                backlog,
                keys,
                unconverged,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// B5: divergence.

/// Divergent keys over time (B5), from apply estimates: a key diverges while some region's
/// greatest version differs from another's, to the estimates' precision.
fn divergence(
    ix: &Index<'_>,
    history: &History,
    end: Nanos,
    windows: Vec<f64>,
    has_applies: bool,
) -> DivergenceSummary {
    let window = quantiles(windows);
    if !has_applies {
        return DivergenceSummary { window, ..DivergenceSummary::default() };
    }
    let r_count = ix.regions.len();
    // Every time a region's greatest version of a key grew, by time.
    let mut events: Vec<(Nanos, usize, &str)> = ix
        .held
        .iter()
        .flat_map(|(&(key, _), steps)| steps.iter().map(move |&(at, v)| (at, key, v)))
        .collect();
    events.sort_unstable();
    // Per key: the greatest version any region holds, and how many regions hold it. A region
    // only ever moves up, so one that reaches the greatest version either ties it or replaces it.
    let mut top: Vec<Option<(&str, usize)>> = vec![None; ix.keys.len()];
    let (mut divergent, mut seen) = (0usize, 0usize);
    let sample_times: Vec<Nanos> = (0..DIVERGENCE_SAMPLES)
        .map(|i| (end as f64 * i as f64 / (DIVERGENCE_SAMPLES - 1) as f64) as Nanos)
        .collect();
    let mut samples = Vec::with_capacity(DIVERGENCE_SAMPLES);
    let mut next_sample = 0;
    let (mut max_divergent, mut max_at) = (0, None);
    let (mut weighted, mut covered, mut last_t) = (0.0, 0.0, 0u64);
    let mut i = 0;
    while i < events.len() || next_sample < sample_times.len() {
        let t_event = events.get(i).map(|e| e.0);
        let t_sample = sample_times.get(next_sample).copied();
        // Samples at an instant see the events of that instant.
        if let Some(ts) = t_sample.filter(|&ts| t_event.is_none_or(|te| ts < te)) {
            samples.push(DivergenceSample { at_ms: ms(ts), divergent, keys: seen });
            next_sample += 1;
            continue;
        }
        let Some(t) = t_event else { break };
        if seen > 0 {
            let dt = t.saturating_sub(last_t) as f64;
            weighted += dt * divergent as f64 / seen as f64;
            covered += dt;
        }
        last_t = t;
        while let Some(&(_, key, version)) = events.get(i).filter(|e| e.0 == t) {
            if let Some(slot) = top.get_mut(key) {
                let was = match *slot {
                    None => {
                        seen += 1;
                        None
                    }
                    Some((_, holders)) => Some(holders < r_count),
                };
                *slot = match *slot {
                    Some((v, holders)) if version == v => Some((v, holders + 1)),
                    Some((v, holders)) if version < v => Some((v, holders)),
                    _ => Some((version, 1)),
                };
                let now = slot.is_some_and(|(_, holders)| holders < r_count);
                match (was.unwrap_or(false), now) {
                    (false, true) => divergent += 1,
                    (true, false) => divergent -= 1,
                    _ => {}
                }
            }
            i += 1;
        }
        if divergent > max_divergent {
            max_divergent = divergent;
            max_at = Some(ms(t));
        }
    }
    if seen > 0 && end > last_t {
        let dt = (end - last_t) as f64;
        weighted += dt * divergent as f64 / seen as f64;
        covered += dt;
    }

    // Before the final reads, every region should hold every key's greatest acknowledged version.
    let first_final = history.finals.iter().map(|f| f.at).min();
    let mut unconverged_at_finals = 0;
    if let Some(t_final) = first_final {
        for (key, _) in ix.writes_by_key.iter().enumerate() {
            let Some(target) = ix.key_writes(key).map(|w| w.version).max() else { continue };
            for r in 0..r_count {
                if ix.first_hold(key, r, target).is_none_or(|at| at > t_final) {
                    unconverged_at_finals += 1;
                }
            }
        }
    }
    DivergenceSummary {
        samples,
        max_divergent,
        max_at_ms: max_at,
        time_weighted_fraction: (covered > 0.0).then(|| weighted / covered),
        window,
        converged_within_quiet: first_final.map(|_| unconverged_at_finals == 0),
        unconverged_at_finals,
    }
}

// ---------------------------------------------------------------------------------------------
// B6: availability, latency, throughput, clocks.

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => "ok",
        Outcome::Fail => "fail",
        Outcome::Info => "info",
    }
}

fn function_name(f: Function) -> &'static str {
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

fn availability(ix: &Index<'_>, history: &History, faults: &FaultSet) -> Vec<AvailabilityRow> {
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

fn latency_and_throughput(history: &History) -> (LatencySummary, ThroughputSummary) {
    let end = history.ops.iter().map(|o| o.complete.max(o.invoke)).max().unwrap_or(0);
    let bucket_ms = nice(ms(end) / TIME_BUCKETS as f64).max(1.0);
    let n_buckets = ((ms(end) / bucket_ms).floor() as usize + 1).max(1);
    let bucket = |t: Nanos| ((ms(t) / bucket_ms) as usize).min(n_buckets - 1);

    let mut latency = Vec::new();
    for f in FUNCTIONS {
        let mut all: Vec<f64> = Vec::new();
        let mut per_bucket: Vec<Vec<f64>> = vec![Vec::new(); n_buckets];
        for op in history.ops.iter().filter(|o| o.f == f && o.outcome == Outcome::Ok) {
            let l = diff_ms(op.complete, op.invoke);
            all.push(l);
            if let Some(b) = per_bucket.get_mut(bucket(op.invoke)) {
                b.push(l);
            }
        }
        if all.is_empty() {
            continue;
        }
        sort(&mut all);
        let buckets = per_bucket
            .iter_mut()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
            .filter_map(|(i, v)| {
                sort(v);
                Some(LatencyBucket {
                    at_ms: i as f64 * bucket_ms,
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
            buckets,
        });
    }

    let mut throughput = Vec::new();
    for f in FUNCTIONS {
        for outcome in OUTCOMES {
            let mut counts = vec![0usize; n_buckets];
            let mut any = false;
            for op in history.ops.iter().filter(|o| o.f == f && o.outcome == outcome) {
                any = true;
                if let Some(c) = counts.get_mut(bucket(op.complete)) {
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
                    .map(|(i, &c)| (i as f64 * bucket_ms, c as f64 * 1000.0 / bucket_ms))
                    .collect(),
            });
        }
    }
    (
        LatencySummary { bucket_ms, series: latency },
        ThroughputSummary { bucket_ms, series: throughput },
    )
}

/// Clock offsets per region as steps: run.json's, plus those of clock faults (a stop restores
/// the offset in force before the start).
fn clocks(meta: &RunMeta, windows: &[FaultWin<'_>]) -> Vec<ClockSeries> {
    let mut steps: Vec<(String, Nanos, f64)> =
        meta.clock_offsets.iter().map(|s| (s.region.clone(), s.at, s.offset_ms as f64)).collect();
    for w in windows.iter().filter(|w| w.kind == "clock_offset") {
        let Some(region) = w.fault.get("region").and_then(|r| r.as_str()) else { continue };
        let Some(offset) = w.fault.get("offset_ms").and_then(serde_json::Value::as_f64) else {
            continue;
        };
        let before = steps
            .iter()
            .filter(|(r, at, _)| r == region && *at <= w.start)
            .max_by_key(|(_, at, _)| *at)
            .map_or(0.0, |s| s.2);
        steps.push((region.to_owned(), w.start, offset));
        if w.stopped {
            steps.push((region.to_owned(), w.end, before));
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

// ---------------------------------------------------------------------------------------------
// Traces.

fn op_row(op: &Op) -> OpRow {
    OpRow {
        index: op.index,
        process: op.process,
        region: op.region.clone(),
        f: function_name(op.f).to_owned(),
        key: op.key.clone(),
        value: op.value.clone(),
        version: op.version.clone(),
        invoke_ms: whole_ms(op.invoke),
        complete_ms: whole_ms(op.complete),
        outcome: outcome_name(op.outcome).to_owned(),
    }
}

/// An excerpt of one key: the operations named in `focus`, then those nearest to them in time,
/// up to [`TRACE_OPS`]; the applies of the versions those wrote; the final reads.
fn key_trace(ix: &Index<'_>, key: usize, reason: String, focus: &[u64]) -> KeyTrace {
    let ops = ix.ops_by_key.get(key).map_or(&[][..], Vec::as_slice);
    let name = ix.keys.get(key).copied().unwrap_or("");
    let mut chosen: Vec<&Op> = ops.iter().copied().filter(|o| focus.contains(&o.index)).collect();
    let truncated_ops = ops.len() > TRACE_OPS;
    if truncated_ops {
        let center = if chosen.is_empty() {
            ops.first().map_or(0, |o| o.invoke)
        } else {
            chosen.iter().map(|o| o.invoke).min().unwrap_or(0)
        };
        let mut rest: Vec<&Op> =
            ops.iter().copied().filter(|o| !focus.contains(&o.index)).collect();
        rest.sort_by_key(|o| o.invoke.abs_diff(center));
        let room = TRACE_OPS.saturating_sub(chosen.len());
        chosen.extend(rest.into_iter().take(room));
    } else {
        chosen = ops.to_vec();
    }
    chosen.sort_by_key(|o| (o.invoke, o.index));
    let versions: HashSet<&str> =
        chosen.iter().filter(|o| o.is_write()).filter_map(|o| o.version.as_deref()).collect();
    let mut applies: Vec<ApplyRow> = ix
        .history
        .applies
        .iter()
        .filter(|a| a.key == name && versions.contains(a.version.as_str()))
        .map(|a| ApplyRow {
            region: a.region.clone(),
            version: a.version.clone(),
            at_ms: whole_ms(a.at),
        })
        .collect();
    applies.sort_by_key(|a| a.at_ms);
    let truncated = truncated_ops || applies.len() > TRACE_APPLIES;
    applies.truncate(TRACE_APPLIES);
    let finals = ix
        .history
        .finals
        .iter()
        .filter(|f| f.key == name)
        .map(|f| FinalRow {
            region: f.region.clone(),
            value: f.value.clone(),
            version: f.version.clone(),
            at_ms: whole_ms(f.at),
        })
        .collect();
    KeyTrace {
        key: name.to_owned(),
        reason,
        ops: chosen.iter().map(|o| op_row(o)).collect(),
        applies,
        finals,
        truncated,
    }
}

fn traces(
    ix: &Index<'_>,
    history: &History,
    check: &CheckSummary,
    windows: &[FaultWin<'_>],
) -> Traces {
    let mut drilldowns: Vec<KeyTrace> = Vec::new();
    for anomaly in &check.anomalies {
        if drilldowns.len() >= MAX_DRILLDOWNS {
            break;
        }
        if drilldowns.iter().any(|d| d.key == anomaly.key) {
            continue;
        }
        let Some(&key) = ix.key_ix.get(anomaly.key.as_str()) else { continue };
        let focus: Vec<u64> = check
            .anomalies
            .iter()
            .filter(|a| a.key == anomaly.key)
            .flat_map(|a| a.ops.iter().copied())
            .collect();
        drilldowns.push(key_trace(
            ix,
            key,
            format!("{} on {:?}", anomaly.kind, anomaly.key),
            &focus,
        ));
    }

    let first_fault = windows.iter().map(|w| w.start).min();
    // The most-written key, its writes from the first fault on (or from the start).
    let hot_key = (0..ix.keys.len())
        .filter(|&k| ix.writes_by_key.get(k).is_some_and(|w| !w.is_empty()))
        .max_by_key(|&k| (ix.writes_by_key.get(k).map_or(0, Vec::len), std::cmp::Reverse(k)))
        .map(|key| {
            let writes: Vec<&Write<'_>> = ix.key_writes(key).collect();
            let from = first_fault.map_or(0, |t| writes.partition_point(|w| w.invoke() < t));
            let from = from.min(writes.len().saturating_sub(HOT_KEY_WRITES));
            let focus: Vec<u64> =
                writes.iter().skip(from).take(HOT_KEY_WRITES).map(|w| w.op.index).collect();
            let mut trace = key_trace(ix, key, "the most-written key".to_owned(), &focus);
            // Only the chosen writes and the reads among them in time.
            let (lo, hi) = trace
                .ops
                .iter()
                .filter(|o| focus.contains(&o.index))
                .fold((u64::MAX, 0), |(lo, hi), o| (lo.min(o.invoke_ms), hi.max(o.complete_ms)));
            trace.ops.retain(|o| {
                focus.contains(&o.index) || (o.f == "get" && o.invoke_ms >= lo && o.invoke_ms <= hi)
            });
            trace.truncated |= writes.len() > focus.len();
            trace
        });

    let window_start = first_fault.map_or(0, |t| t.saturating_sub(1_000_000_000));
    let mut timeline: Vec<&Op> = history.ops.iter().filter(|o| o.invoke >= window_start).collect();
    timeline.sort_by_key(|o| (o.invoke, o.index));
    timeline.truncate(TIMELINE_OPS);
    Traces { timeline: timeline.into_iter().map(op_row).collect(), hot_key, drilldowns }
}

// ---------------------------------------------------------------------------------------------
// Run metadata.

fn run_summary(
    ix: &Index<'_>,
    meta: &RunMeta,
    meta_present: bool,
    models: &HashMap<(String, String), DelayModel>,
) -> RunSummary {
    let mut regions: Vec<RegionMeta> = meta.regions.clone();
    for name in ix.regions.iter().skip(meta.regions.len()) {
        regions.push(RegionMeta { name: (*name).to_owned(), ..RegionMeta::default() });
    }
    RunSummary {
        seed: meta.seed,
        scenario: meta.scenario.clone(),
        scenario_text: meta.scenario_text.clone(),
        edgekv_version: meta.edgekv_version.clone(),
        topology: meta.topology.clone(),
        regions,
        links: meta
            .links
            .iter()
            .map(|l| LinkRow {
                from: l.from.clone(),
                to: l.to.clone(),
                model: l.model.clone(),
                max_ms: models
                    .get(&(l.from.clone(), l.to.clone()))
                    .map(|m| m.max().as_secs_f64() * 1000.0),
            })
            .collect(),
        started_wall_ms: meta.started_wall_ms,
        workload_start_ms: ms(meta.workload.0),
        workload_end_ms: ms(meta.workload.1),
        quiet_ms: meta.quiet_ms,
        anti_entropy_ms: meta.anti_entropy_ms,
        timestamp_source: meta.timestamp_source.clone(),
        applies_missed: meta.applies_missed.clone(),
        meta_present,
        incomplete: false,
        history: HistoryCounts::default(),
    }
}

#[cfg(test)]
mod tests;
