//! What a region's cached reads showed after a newer version arrived in its store, by what its
//! cache held at the arrival: an older value, "not found" (negative caching), or nothing.
//!
//! An arrival is a step of what the region certainly held (a remote write, or a newer one
//! subsuming it; the region's own writes replace its cached copy and are left out). The reads
//! it is measured by are the region's reads that may be cached (binding reads) sent after it
//! and before the next arrival. Whether the cache held the key at the arrival comes from the
//! cached-path reads before it: one whose answer plus its cacheTtl reaches past the arrival
//! may have left (a miss) or found (a hit) an entry still fresh then. A read after the arrival that returns the older state was hidden from by
//! the cache; with nothing cached, none should.

use std::collections::BTreeMap;

use super::cache::{behind, Certain};
use super::index::Index;
use super::ms;
use super::stats::quantiles;
use crate::history::{Nanos, Op};
use crate::summary::{ArrivalStats, HiddenSeries};

/// Points per cache state kept for the figure.
const SAMPLES: usize = 300;

/// What the cache held of a key at an arrival.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Held {
    Value,
    NotFound,
    Nothing,
}

impl Held {
    fn name(self) -> &'static str {
        match self {
            Held::Value => "value",
            Held::NotFound => "not found",
            Held::Nothing => "nothing",
        }
    }
}

/// One arrival's reads.
#[derive(Default)]
struct Seen {
    reads: usize,
    stale: usize,
    /// The last stale read and the first fresh one, ns after the arrival.
    last_stale: Option<Nanos>,
    first_fresh: Option<Nanos>,
}

/// The arrivals of one cache state and cacheTtl.
#[derive(Default)]
struct Group {
    arrivals: usize,
    reads: usize,
    stale: usize,
    hidden: Vec<f64>,
    seen: Vec<f64>,
    points: Vec<(f64, f64)>,
}

/// Every arrival with cached reads after it, grouped by what the cache held, with the figure's
/// points per state.
pub(super) fn arrivals(
    ix: &Index<'_>,
    certain: &Certain<'_>,
) -> (Vec<ArrivalStats>, Vec<HiddenSeries>) {
    let mut groups: BTreeMap<(Held, Option<u64>), Group> = BTreeMap::new();
    for (key, gets) in ix.gets_by_key.iter().enumerate() {
        for region in 0..ix.regions.len() {
            let reads: Vec<&Op> = gets
                .iter()
                .filter(|&&(r, g)| r == region && g.cache_ttl.is_some())
                .map(|&(_, g)| g)
                .collect();
            let Some(steps) = certain.get(&(key, region)).filter(|_| !reads.is_empty()) else {
                continue;
            };
            let own = ix.regions.get(region).copied().unwrap_or("");
            for (i, &(at, w)) in steps.iter().enumerate().filter(|(_, (_, w))| w.region != own) {
                let next = steps.get(i + 1).map_or(Nanos::MAX, |&(t, _)| t);
                let seen = seen_after(&reads, (at, next), w);
                if seen.reads > 0 {
                    let group = groups.entry(held_at(&reads, at)).or_default();
                    group.add(&seen, at);
                }
            }
        }
    }
    summarize(groups)
}

/// What the cache may have held at `at`, from the cached-path reads before it: one that filled
/// the cache, or a hit (whose fill the history may lack), whose answer plus its cacheTtl
/// reaches past `at`.
fn held_at(reads: &[&Op], at: Nanos) -> (Held, Option<u64>) {
    let before = reads.partition_point(|r| r.invoke < at);
    let mut live = reads[..before].iter().filter(|r| {
        let ttl = r.cache_ttl.unwrap_or(0).saturating_mul(1_000_000_000);
        r.complete.saturating_add(ttl) > at
    });
    // Fills overwrite each other, so the cache holds the latest; but two reads in flight at
    // once may land in either order, so any that is still fresh may be what it holds.
    match live.next_back() {
        Some(read) if read.version.is_none() => (Held::NotFound, read.cache_ttl),
        Some(read) => (Held::Value, read.cache_ttl),
        None => (Held::Nothing, None),
    }
}

/// The reads sent after the arrival of `w` at `at` and before the next arrival (`until`).
fn seen_after(reads: &[&Op], (at, until): (Nanos, Nanos), w: &Op) -> Seen {
    let mut seen = Seen::default();
    let from = reads.partition_point(|r| r.invoke <= at);
    for read in reads[from..].iter().take_while(|r| r.invoke < until) {
        seen.reads += 1;
        let after = read.invoke - at;
        if behind(read, w) {
            seen.stale += 1;
            seen.last_stale = Some(after);
        } else if seen.first_fresh.is_none() {
            seen.first_fresh = Some(after);
        }
    }
    seen
}

impl Group {
    fn add(&mut self, seen: &Seen, at: Nanos) {
        self.arrivals += 1;
        self.reads += seen.reads;
        self.stale += seen.stale;
        if let Some(hidden) = seen.last_stale {
            self.hidden.push(ms(hidden));
            self.points.push((ms(at) / 1000.0, ms(hidden)));
        }
        if let Some(first) = seen.first_fresh {
            self.seen.push(ms(first));
        }
    }
}

fn summarize(
    groups: BTreeMap<(Held, Option<u64>), Group>,
) -> (Vec<ArrivalStats>, Vec<HiddenSeries>) {
    let mut rows = Vec::new();
    let mut series: BTreeMap<Held, Vec<(f64, f64)>> = BTreeMap::new();
    for ((held, ttl), g) in groups {
        if !g.points.is_empty() {
            series.entry(held).or_default().extend(g.points.iter().copied());
        }
        rows.push(ArrivalStats {
            cached: held.name().to_owned(),
            cache_ttl_s: ttl,
            arrivals: g.arrivals,
            reads: g.reads,
            stale_reads: g.stale,
            hidden_arrivals: g.hidden.len(),
            hidden_ms: quantiles(g.hidden),
            seen_ms: quantiles(g.seen),
        });
    }
    let series = series
        .into_iter()
        .map(|(held, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let step = points.len().div_ceil(SAMPLES).max(1);
            let points = points.into_iter().step_by(step).collect();
            HiddenSeries { cached: held.name().to_owned(), points }
        })
        .collect();
    (rows, series)
}
