//! The edge cache's part in staleness: per read path (REST, the binding with each cacheTtl)
//! its stale rate, the share of stale reads that were cache hits, the reads older than their
//! region's own store (stale by the cache, not by propagation) and black-box t-visibility; and
//! what cached reads showed after a newer version arrived in their region's store (the module
//! `arrivals`).
//!
//! "What the store held" is what the region had certainly applied: each apply at the latest
//! moment its window allows ([`apply_window`]), as the checker reasons, so that a read just
//! after an apply's estimate is never counted as behind a store that may not have had it yet.

use std::collections::BTreeMap;

use super::arrivals;
use super::index::{FastMap, Index};
use super::stale::{path_of, PathKey, PathTally};
use super::stats::{cdf_points, quantiles, ratio, sort};
use super::visibility::{visible_after_ms, StableReads};
use crate::bounds::{apply_window, completed_wall_ms, may_have_expired};
use crate::history::{CacheStatus, Function, Nanos, Op, Via};
use crate::summary::{CacheSummary, ReadPathStats};

/// Per (key, region): the steps where what the region certainly held grew, `(instant, the
/// write it then held)`, by time.
pub(super) type Certain<'a> = FastMap<(usize, usize), Vec<(Nanos, &'a Op)>>;

/// The edge cache's figures; `by_path` is the stale-read judgement of each path (B2's).
pub(super) fn cache(ix: &Index<'_>, by_path: &BTreeMap<PathKey, PathTally>) -> CacheSummary {
    let certain = certain_steps(ix);
    let mut paths: BTreeMap<PathKey, ReadPathStats> = BTreeMap::new();
    for (key, gets) in ix.gets_by_key.iter().enumerate() {
        for &(region, get) in gets {
            let row = paths.entry(path_of(get)).or_default();
            row.reads += 1;
            row.hits += usize::from(get.cache == Some(CacheStatus::Hit));
            row.misses += usize::from(get.cache == Some(CacheStatus::Miss));
            let held = certain.get(&(key, region)).and_then(|s| held_before(s, get.invoke));
            row.behind_store += usize::from(held.is_some_and(|w| behind(get, w)));
        }
    }
    let mut visibility = blackbox(ix);
    for (path, row) in &mut paths {
        let tally = by_path.get(path).copied().unwrap_or_default();
        fill_row(row, *path, tally, visibility.remove(path).unwrap_or_default());
    }
    let rows: Vec<ReadPathStats> = paths.into_values().collect();
    let stale_reads = rows.iter().map(|r| r.stale).sum();
    let stale_hits = rows.iter().map(|r| r.stale_hits).sum();
    let (arrivals, hidden_samples) = arrivals::arrivals(ix, &certain);
    CacheSummary {
        stale_reads,
        stale_hits,
        stale_hit_share: ratio(stale_hits, stale_reads),
        behind_store: rows.iter().map(|r| r.behind_store).sum(),
        paths: rows,
        arrivals,
        hidden_samples,
    }
}

fn fill_row(row: &mut ReadPathStats, (via, ttl): PathKey, tally: PathTally, mut vis: Vec<f64>) {
    row.via = via.as_str().to_owned();
    row.cache_ttl_s = ttl;
    row.label = match (via, ttl) {
        (Via::Rest, None) => "REST".to_owned(),
        (Via::Rest, Some(t)) => format!("REST, cached {t} s"),
        (Via::Binding, Some(t)) => format!("binding, cacheTtl {t} s"),
        (Via::Binding, None) => "binding".to_owned(),
    };
    row.judged = tally.judged;
    row.stale = tally.stale;
    row.stale_hits = tally.stale_hits;
    row.stale_rate = ratio(tally.stale, tally.judged);
    sort(&mut vis);
    row.visibility_cdf = cdf_points(&vis);
    row.visibility = quantiles(vis);
}

/// The write a region certainly held last before `t`, from its steps.
pub(super) fn held_before<'a>(steps: &[(Nanos, &'a Op)], t: Nanos) -> Option<&'a Op> {
    let n = steps.partition_point(|&(at, _)| at < t);
    n.checked_sub(1).and_then(|i| steps.get(i)).map(|&(_, w)| w)
}

/// Whether `read` returned something older than `held`: an older version, or nothing while
/// `held` is a put that cannot have expired by the read's end.
pub(super) fn behind(read: &Op, held: &Op) -> bool {
    match read.version.as_deref() {
        Some(v) => Some(v) < held.version.as_deref(),
        None => held.f == Function::Put && !may_have_expired(held, completed_wall_ms(read)),
    }
}

/// Per (key, region), the steps of what it certainly held (see the module doc).
fn certain_steps<'a>(ix: &Index<'a>) -> Certain<'a> {
    let mut by_version: FastMap<(usize, &str), &Op> = FastMap::default();
    for w in &ix.writes {
        by_version.entry((w.key, w.version)).or_insert(w.op);
    }
    let mut certain: Certain<'a> = FastMap::default();
    for a in &ix.history.applies {
        let (Some(&k), Some(&r)) =
            (ix.key_ix.get(a.key.as_str()), ix.region_ix.get(a.region.as_str()))
        else {
            continue;
        };
        let Some(&w) = by_version.get(&(k, a.version.as_str())) else { continue };
        let (_, latest) = apply_window(a, Some(w));
        certain.entry((k, r)).or_default().push((latest, w));
    }
    for list in certain.values_mut() {
        list.sort_by(|a, b| (a.0, a.1.version.as_deref()).cmp(&(b.0, b.1.version.as_deref())));
        let mut steps: Vec<(Nanos, &Op)> = Vec::new();
        for &(at, w) in list.iter() {
            if steps.last().is_none_or(|&(_, top)| w.version > top.version) {
                steps.push((at, w));
            }
        }
        *list = steps;
    }
    certain
}

/// Black-box t-visibility per path: for each acknowledged put and each other region, the first
/// read of the path there, at or after the put was sent, that returned it or newer and after
/// which no read of the path returned anything older.
fn blackbox(ix: &Index<'_>) -> BTreeMap<PathKey, Vec<f64>> {
    let mut out: BTreeMap<PathKey, Vec<f64>> = BTreeMap::new();
    for (key, gets) in ix.gets_by_key.iter().enumerate() {
        let mut readers: BTreeMap<(usize, PathKey), Vec<&Op>> = BTreeMap::new();
        for &(region, get) in gets {
            readers.entry((region, path_of(get))).or_default().push(get);
        }
        let stable: Vec<((usize, PathKey), StableReads<'_>)> =
            readers.iter().map(|(at, gets)| (*at, StableReads::new(gets))).collect();
        for w in ix.key_writes(key).filter(|w| w.op.f == Function::Put) {
            for ((_, path), reads) in stable.iter().filter(|((r, _), _)| *r != w.origin) {
                if let Some(at) = reads.first_stable(w.version, w.invoke()) {
                    out.entry(*path).or_default().push(visible_after_ms(at, w.ack()));
                }
            }
        }
    }
    out
}
