//! B2, stale reads: how often a read returned something older than the newest write
//! acknowledged before it began, by the time since that write, local and remote, during and
//! outside faults; and how many versions behind (k-staleness).

use std::collections::BTreeMap;

use super::faults::FaultSet;
use super::index::{FastSet, Index, Write};
use super::stats::{nice, ratio, wilson};
use super::{diff_ms, K_BINS, STALE_BUCKETS};
use crate::bounds::{completed_wall_ms, may_have_expired};
use crate::history::{CacheStatus, Function, Nanos, Op, Via};
use crate::summary::{KBin, RateWithInterval, StaleBucket, StaleSummary, VisibilitySummary};

/// Δ buckets sized to the bulk of visibility (1.5 × the greater of the measured and predicted
/// p99), so that the figure spans the interval where staleness fades, and the open last bucket
/// holds the tail (partitions, unbounded models truncated at 60 s) without stretching the axis.
pub(super) fn stale_bucket_ms(vis: &VisibilitySummary) -> f64 {
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

/// A read path: its API and the cacheTtl its reads may have been cached for.
pub(super) type PathKey = (Via, Option<u64>);

/// The path of `get`: REST when the history does not say (it predates the binding).
pub(super) fn path_of(get: &Op) -> PathKey {
    (get.via.unwrap_or(Via::Rest), get.cache_ttl)
}

/// The judged reads of one path.
#[derive(Default, Clone, Copy)]
pub(super) struct PathTally {
    pub(super) judged: usize,
    pub(super) stale: usize,
    pub(super) stale_hits: usize,
}

/// The stale-read figures, and the same judgements per read path (for the edge cache's
/// figures).
pub(super) struct StaleOut {
    pub(super) summary: StaleSummary,
    pub(super) by_path: BTreeMap<PathKey, PathTally>,
}

/// Stale reads (B2): a read is stale when it returns something older than the newest write
/// acknowledged before it was invoked (exact: both are client instants on the run's clock). A
/// not-found read is judged by what its region held by the read's end, from apply estimates,
/// and left unjudged when the newest write may have expired by the read's end.
pub(super) fn stale_reads(ix: &Index<'_>, faults: &FaultSet, bucket_ms: f64) -> StaleOut {
    let mut tallies = Tallies {
        buckets: vec![(Tally::default(), Tally::default()); STALE_BUCKETS + 1],
        ..Tallies::default()
    };
    let mut by_path: BTreeMap<PathKey, PathTally> = BTreeMap::new();
    for (key, gets) in ix.gets_by_key.iter().enumerate() {
        if gets.is_empty() {
            continue;
        }
        let mut acked = Acked::new(ix, key);
        for &(region, get) in gets {
            acked.advance(get.invoke);
            let Some(newest) = acked.newest else {
                tallies.unjudged += 1;
                continue;
            };
            let Some(stale) = is_stale(ix, (key, region), get, newest, &acked.deletes) else {
                tallies.unjudged += 1;
                continue;
            };
            let k = if stale { acked.behind(get.version.as_deref()) } else { 0 };
            let delta = diff_ms(get.invoke, newest.ack());
            let bucket = ((delta / bucket_ms).floor().max(0.0) as usize).min(STALE_BUCKETS);
            let local = region == newest.origin;
            tallies.add(stale, k, faults.contains(get.invoke), local, bucket);
            let path = by_path.entry(path_of(get)).or_default();
            path.judged += 1;
            path.stale += usize::from(stale);
            path.stale_hits += usize::from(stale && get.cache == Some(CacheStatus::Hit));
        }
    }
    StaleOut { summary: tallies.summary(bucket_ms), by_path }
}

/// Whether `get` (in `region`) is older than `newest`; `None` when it cannot be judged. A
/// not-found read carries no version, but the region's apply events say what it held: a
/// tombstone at least as new as `newest` (a delete still in flight when the read began, say)
/// makes "not found" fresh, not stale; an expiry that may have come makes it unjudged. (Holding
/// a put does not: a cache that looked the key up before the put came still says "not found".)
fn is_stale(
    ix: &Index<'_>,
    (key, region): (usize, usize),
    get: &Op,
    newest: &Write<'_>,
    deletes: &FastSet<&str>,
) -> Option<bool> {
    let held = ix.held.get(&(key, region)).and_then(|steps| {
        let n = steps.partition_point(|(at, _)| *at <= get.complete);
        n.checked_sub(1).and_then(|i| steps.get(i)).map(|(_, v)| *v)
    });
    Some(match get.version.as_deref() {
        Some(v) => v < newest.version,
        None if newest.op.f == Function::Delete => false,
        None if held.is_some_and(|h| h >= newest.version && deletes.contains(h)) => false,
        None if may_have_expired(newest.op, completed_wall_ms(get)) => return None,
        None => true,
    })
}

/// One key's acknowledged writes, taken in ack order as the reads' invokes advance, so that
/// "the newest write acknowledged before the read" and "how many versions newer than what it
/// read" cost O(log n) a read.
struct Acked<'w, 'a> {
    by_ack: Vec<&'w Write<'a>>,
    /// The key's distinct versions, sorted: the Fenwick tree's positions.
    versions: Vec<&'a str>,
    fenwick: Fenwick,
    next: usize,
    inserted: usize,
    newest: Option<&'w Write<'a>>,
    /// The versions of the key's deletes.
    deletes: FastSet<&'a str>,
}

impl<'w, 'a> Acked<'w, 'a> {
    fn new(ix: &'w Index<'a>, key: usize) -> Self {
        let mut by_ack: Vec<&Write<'_>> = ix.key_writes(key).collect();
        by_ack.sort_by_key(|w| (w.ack(), w.op.index));
        let mut versions: Vec<&str> = by_ack.iter().map(|w| w.version).collect();
        versions.sort_unstable();
        versions.dedup();
        let fenwick = Fenwick::new(versions.len());
        let deletes =
            by_ack.iter().filter(|w| w.op.f == Function::Delete).map(|w| w.version).collect();
        Acked { by_ack, versions, fenwick, next: 0, inserted: 0, newest: None, deletes }
    }

    /// Takes in every write acknowledged before `t`.
    fn advance(&mut self, t: Nanos) {
        while let Some(&w) = self.by_ack.get(self.next).filter(|w| w.ack() < t) {
            self.fenwick.add(self.versions.partition_point(|&v| v < w.version));
            self.inserted += 1;
            if self.newest.is_none_or(|n| w.version > n.version) {
                self.newest = Some(w);
            }
            self.next += 1;
        }
    }

    /// How many of the writes taken in have a version newer than `read` (`None`: not found).
    fn behind(&self, read: Option<&str>) -> usize {
        let read_rank = self.versions.partition_point(|&v| v <= read.unwrap_or(""));
        self.inserted - self.fenwick.below(read_rank)
    }
}

/// The judged reads, counted every way the figure and the table split them.
#[derive(Default)]
struct Tallies {
    total: Tally,
    during: Tally,
    outside: Tally,
    local: Tally,
    remote: Tally,
    /// Per Δ bucket: (local, remote).
    buckets: Vec<(Tally, Tally)>,
    k_bins: [usize; K_BINS + 1],
    unjudged: usize,
}

impl Tallies {
    fn add(&mut self, stale: bool, k: usize, during: bool, local: bool, bucket: usize) {
        if let Some(bin) = self.k_bins.get_mut(k.min(K_BINS)) {
            *bin += 1;
        }
        self.total.add(stale);
        if during { &mut self.during } else { &mut self.outside }.add(stale);
        if local { &mut self.local } else { &mut self.remote }.add(stale);
        if let Some((l, r)) = self.buckets.get_mut(bucket) {
            if local { l } else { r }.add(stale);
        }
    }

    fn summary(self, bucket_ms: f64) -> StaleSummary {
        StaleSummary {
            reads: self.total.n,
            stale: self.total.hits,
            overall_rate: ratio(self.total.hits, self.total.n),
            unjudged: self.unjudged,
            during_faults: self.during.wilson(),
            outside_faults: self.outside.wilson(),
            local: self.local.wilson(),
            remote: self.remote.wilson(),
            bucket_ms,
            buckets: self
                .buckets
                .iter()
                .enumerate()
                .map(|(i, (l, r))| StaleBucket {
                    from_ms: i as f64 * bucket_ms,
                    to_ms: (i < STALE_BUCKETS).then(|| (i + 1) as f64 * bucket_ms),
                    local: l.wilson(),
                    remote: r.wilson(),
                })
                .collect(),
            k_histogram: self
                .k_bins
                .iter()
                .enumerate()
                .map(|(k, &reads)| KBin { k, or_more: k == K_BINS, reads })
                .collect(),
        }
    }
}
