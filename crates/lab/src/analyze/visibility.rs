//! B1, t-visibility: how long after a write's ack each region held it (or a newer version), per
//! region pair, pooled and for every region at once, next to what the links' delay models
//! predict; and the black-box estimate a reader would make.

use std::collections::HashMap;

use edgekv_core::DelayModel;

use super::index::{Index, Write};
use super::stats::{cdf_points, ks_distance, mean, quantile, quantile_rmse, sort};
use super::{diff_ms, PREDICTION_SAMPLES};
use crate::history::{Function, Nanos, Op};
use crate::meta::RunMeta;
use crate::summary::{LagHeatmap, PairVisibility, VisibilityStats, VisibilitySummary};

/// The delay model of each directed link, by region names.
pub(super) type Models = HashMap<(String, String), DelayModel>;

pub(super) fn parse_models(meta: &RunMeta, notes: &mut Vec<String>) -> Models {
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
pub(super) struct VisibilityOut {
    pub(super) summary: VisibilitySummary,
    /// DW(w) samples in ms, for B5.
    pub(super) windows: Vec<f64>,
}

/// The black-box view of one (key, region): its acknowledged gets by invoke time, and for each
/// position the oldest version returned from there on (not found counts as the oldest).
pub(super) struct StableReads<'a> {
    invokes: Vec<Nanos>,
    suffix_min: Vec<&'a str>,
}

impl<'a> StableReads<'a> {
    pub(super) fn new(gets: &[&'a Op]) -> Self {
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
    pub(super) fn first_stable(&self, version: &str, from: Nanos) -> Option<Nanos> {
        let by_version = self.suffix_min.partition_point(|&v| v < version);
        let by_time = self.invokes.partition_point(|&t| t < from);
        self.invokes.get(by_version.max(by_time)).copied()
    }
}

/// How long after a write's ack `seen` (when a region first held it or newer, or a read first
/// returned it for good) came, in ms: t-visibility as PBS defines it, the time after the commit
/// from which a read sees the write. A region that held the write, or a newer version, before
/// the ack shows it to a read at the ack already: 0, not a negative time.
pub(super) fn visible_after_ms(seen: Nanos, ack: Nanos) -> f64 {
    diff_ms(seen, ack).max(0.0)
}

/// t-visibility per region pair, pooled and global (B1). Assumes apply estimates are accurate to
/// well under the figures' milliseconds, and that "holds w" may be reached through a newer
/// version (a local overwrite), which makes the curve run ahead of the link model on hot keys.
pub(super) fn visibility(ix: &Index<'_>, meta: &RunMeta, models: &Models) -> VisibilityOut {
    let measured = measure(ix);
    let (pairs, overall) = pairs(ix, meta, models, &measured);
    let global_predicted = global_prediction(ix, meta.seed, models, &measured.global);
    let global_values: Vec<f64> = measured.global.into_iter().flatten().collect();
    let global = visibility_stats(
        global_values,
        measured.global_missing,
        global_predicted.as_deref(),
        Vec::new(),
    );
    VisibilityOut {
        summary: VisibilitySummary { overall, global, pairs },
        windows: measured.windows,
    }
}

/// What the sweep over the writes measured, per directed region pair (`from × regions + to`)
/// and per origin region, in ms.
struct Measured {
    /// Per pair: the t-visibility of each write that arrived.
    values: Vec<Vec<f64>>,
    /// Per pair: the writes that never arrived.
    missing: Vec<usize>,
    /// Per pair: the black-box estimate of each put a reader settled on.
    blackbox: Vec<Vec<f64>>,
    /// Per origin: how long each write took to reach every other region.
    global: Vec<Vec<f64>>,
    /// Writes some region never held.
    global_missing: usize,
    /// DW(w) samples, for B5.
    windows: Vec<f64>,
}

/// Measures every acknowledged write, key by key.
fn measure(ix: &Index<'_>) -> Measured {
    let r_count = ix.regions.len();
    let mut measured = Measured {
        values: vec![Vec::new(); r_count * r_count],
        missing: vec![0; r_count * r_count],
        blackbox: vec![Vec::new(); r_count * r_count],
        global: vec![Vec::new(); r_count],
        global_missing: 0,
        windows: Vec::new(),
    };
    let mut holds: Vec<Option<Nanos>> = vec![None; r_count];
    for (key, writes) in ix.writes_by_key.iter().enumerate() {
        if writes.is_empty() {
            continue;
        }
        let stable = stable_reads(ix, key);
        for (i, w) in writes.iter().filter_map(|&i| ix.writes.get(i).map(|w| (i, w))) {
            for (r, hold) in holds.iter_mut().enumerate() {
                *hold = ix.hold(i, r);
            }
            measured.add(w, &holds, &stable);
        }
    }
    measured
}

impl Measured {
    /// Adds one write, given when each region first held it: its visibility in every other
    /// region, in all of them, and its divergence window.
    fn add(&mut self, w: &Write<'_>, holds: &[Option<Nanos>], stable: &[StableReads<'_>]) {
        let r_count = holds.len();
        let mut global: Option<f64> = Some(f64::NEG_INFINITY);
        for (r, hold) in holds.iter().enumerate().filter(|&(r, _)| r != w.origin) {
            let pair = w.origin * r_count + r;
            match hold {
                Some(at) => {
                    let v = visible_after_ms(*at, w.ack());
                    push(&mut self.values, pair, v);
                    global = global.map(|g| g.max(v));
                }
                None => {
                    if let Some(m) = self.missing.get_mut(pair) {
                        *m += 1;
                    }
                    global = None;
                }
            }
            // A delete's effect cannot be told from a key never written by a read.
            if w.op.f == Function::Put {
                if let Some(at) = stable.get(r).and_then(|s| s.first_stable(w.version, w.invoke()))
                {
                    push(&mut self.blackbox, pair, visible_after_ms(at, w.ack()));
                }
            }
        }
        if r_count > 1 {
            match global {
                Some(g) => push(&mut self.global, w.origin, g),
                None => self.global_missing += 1,
            }
        }
        if holds.iter().all(Option::is_some) {
            let times = holds.iter().flatten();
            if let (Some(first), Some(last)) = (times.clone().min(), times.max()) {
                self.windows.push(diff_ms(*last, *first));
            }
        }
    }
}

fn push(lists: &mut [Vec<f64>], at: usize, value: f64) {
    if let Some(list) = lists.get_mut(at) {
        list.push(value);
    }
}

/// The black-box readers of one key, per region: the reads that cannot have been cached, since
/// a cache hit can hide a write its region holds (the edge cache's figures measure those).
fn stable_reads<'a>(ix: &Index<'a>, key: usize) -> Vec<StableReads<'a>> {
    let gets = ix.gets_by_key.get(key).map_or(&[][..], Vec::as_slice);
    let mut in_region: Vec<Vec<&Op>> = vec![Vec::new(); ix.regions.len()];
    for &(r, get) in gets.iter().filter(|(_, g)| g.cache_ttl.is_none()) {
        if let Some(list) = in_region.get_mut(r) {
            list.push(get);
        }
    }
    in_region.iter().map(|g| StableReads::new(g)).collect()
}

/// The model of the link between two regions (by index), when run.json gives one that parses.
fn link_model<'m>(
    ix: &Index<'_>,
    models: &'m Models,
    from: usize,
    to: usize,
) -> Option<&'m DelayModel> {
    let from = ix.regions.get(from)?;
    let to = ix.regions.get(to)?;
    models.get(&((*from).to_owned(), (*to).to_owned()))
}

/// Samples of several pairs pooled, with a prediction mixed from their links' models in
/// proportion to each pair's measured writes (none once a measured pair's link has no model).
struct Pool {
    values: Vec<f64>,
    missing: usize,
    blackbox: Vec<f64>,
    predicted: Option<Vec<f64>>,
}

impl Pool {
    /// Adds a pair's share of the prediction: `count` of the pool's `total` measured writes.
    fn predict(
        &mut self,
        link: Option<&DelayModel>,
        seed: u64,
        names: (&str, &str),
        count: usize,
        total: usize,
    ) {
        if count == 0 {
            return;
        }
        match (link, self.predicted.as_mut()) {
            (Some(m), Some(pool)) => {
                pool.extend(predicted_samples(m, seed, names.0, names.1, share(count, total)));
            }
            (None, _) => self.predicted = None,
            _ => {}
        }
    }

    fn stats(mut self) -> VisibilityStats {
        if let Some(pool) = self.predicted.as_mut() {
            sort(pool);
        }
        visibility_stats(self.values, self.missing, self.predicted.as_deref(), self.blackbox)
    }
}

/// Every measured pair's figures, and all pairs pooled.
fn pairs(
    ix: &Index<'_>,
    meta: &RunMeta,
    models: &Models,
    m: &Measured,
) -> (Vec<PairVisibility>, VisibilityStats) {
    let r_count = ix.regions.len();
    let total: usize = m.values.iter().map(Vec::len).sum();
    let mut pairs = Vec::new();
    let mut pool =
        Pool { values: Vec::new(), missing: 0, blackbox: Vec::new(), predicted: Some(Vec::new()) };
    for (from, to) in (0..r_count).flat_map(|f| (0..r_count).map(move |t| (f, t))) {
        let pair = from * r_count + to;
        let values = m.values.get(pair).cloned().unwrap_or_default();
        let missing = m.missing.get(pair).copied().unwrap_or(0);
        if from == to || values.len() + missing == 0 {
            continue;
        }
        let names = (
            ix.regions.get(from).copied().unwrap_or(""),
            ix.regions.get(to).copied().unwrap_or(""),
        );
        let link = link_model(ix, models, from, to);
        pool.predict(link, meta.seed, names, values.len(), total);
        let predicted =
            link.map(|l| predicted_samples(l, meta.seed, names.0, names.1, PREDICTION_SAMPLES));
        let blackbox = m.blackbox.get(pair).cloned().unwrap_or_default();
        pool.values.extend_from_slice(&values);
        pool.missing += missing;
        pool.blackbox.extend_from_slice(&blackbox);
        pairs.push(PairVisibility {
            from: names.0.to_owned(),
            to: names.1.to_owned(),
            model: meta
                .links
                .iter()
                .find(|l| l.from == names.0 && l.to == names.1)
                .map(|l| l.model.clone()),
            stats: visibility_stats(values, missing, predicted.as_deref(), blackbox),
        });
    }
    (pairs, pool.stats())
}

/// The global prediction: per write, the slowest of the origin's links, drawn with one
/// sequence number as the nodes do for one write. None when a link of a measured origin has no
/// model.
fn global_prediction(
    ix: &Index<'_>,
    seed: u64,
    models: &Models,
    global: &[Vec<f64>],
) -> Option<Vec<f64>> {
    let r_count = ix.regions.len();
    let total: usize = global.iter().map(Vec::len).sum();
    let mut pool = Vec::new();
    for (origin, values) in global.iter().enumerate().filter(|(_, v)| !v.is_empty()) {
        let links: Vec<(&DelayModel, &str)> = (0..r_count)
            .filter(|&to| to != origin)
            .map(|to| Some((link_model(ix, models, origin, to)?, *ix.regions.get(to)?)))
            .collect::<Option<_>>()?;
        let from = ix.regions.get(origin)?;
        for i in 0..share(values.len(), total) {
            let slowest = links
                .iter()
                .map(|(m, to)| m.sample(seed, from, i, to).as_secs_f64() * 1000.0)
                .fold(0.0, f64::max);
            pool.push(slowest);
        }
    }
    sort(&mut pool);
    Some(pool)
}

/// p99 visibility by origin (rows) and destination (columns).
pub(super) fn lag_heatmap(ix: &Index<'_>, vis: &VisibilitySummary) -> LagHeatmap {
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
