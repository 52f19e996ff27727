//! How old a read's answer may be, and which of its region's applies it must show.
//!
//! A read that cannot have been cached reads its region's store, which under LWW never goes
//! back: it shows at least every version the region had certainly applied before the read was
//! sent.
//!
//! A read that may have come from the region's edge cache shows the state the cache was filled
//! with. A read that misses reads the region's clock, then the store, and caches what it found
//! until that reading plus its cacheTtl; a hit is served only while the region's clock is short
//! of that. So a hit served at `t` shows the store as it was at some instant after `t - ttl`,
//! where `ttl` is the filling read's cacheTtl: at most the largest any read of the key in that
//! region asked. Two things stretch the bound:
//! - the cache keeps time on the region's clock, and a clock offset that steps it back by X ms
//!   keeps an entry X ms longer; the sizes of all the offsets a region was given bound any step
//!   back, so that sum is added, plus a millisecond for the clock's reading;
//! - a write made in the region replaces its cached copy and keeps the entry's expiry, so the
//!   copy can also be the state that write left: the region's, at some instant while the write
//!   was in flight, which can be before `t - ttl` if the write took long to become durable.
//!
//! A wipe loses a region's state and its cache, so what it applied before a wipe proves nothing
//! about what it serves after: each region's applies are split into epochs at its wipes.

use std::collections::HashMap;

use edgekv_core::Fault;

use super::Timeline;
use crate::bounds::apply_window;
use crate::history::{Apply, Function, History, Nanos, Op, Outcome};

/// Added to a cached read's reach for the region's millisecond clock reading and the slew of its
/// system clock against the run's over a cacheTtl.
pub(super) const CACHE_SLACK: Nanos = 1_000_000;

const NS_PER_S: Nanos = 1_000_000_000;
const NS_PER_MS: Nanos = 1_000_000;

/// What the history says about each region that bounds its reads: its wipes, and how far clock
/// offsets can stretch its cache's ttl.
#[derive(Default)]
pub(super) struct RegionFacts {
    /// Per region, its wipes' starts, in time order.
    wipes: HashMap<String, Vec<Nanos>>,
    /// Per region, the sizes of the clock offsets set on it, summed.
    stretch: HashMap<String, Nanos>,
    /// The same for offsets set on every region (`*`).
    stretch_all: Nanos,
}

impl RegionFacts {
    pub(super) fn new(history: &History) -> Self {
        let mut facts = RegionFacts::default();
        for event in history.faults.iter().filter(|f| f.action == "start") {
            match &event.fault {
                Fault::Wipe { region } => {
                    facts.wipes.entry(region.clone()).or_default().push(event.at);
                }
                Fault::ClockOffset { region, offset_ms } => {
                    let ns = offset_ms.unsigned_abs().saturating_mul(NS_PER_MS);
                    let slot = match region.as_str() {
                        "*" => &mut facts.stretch_all,
                        r => facts.stretch.entry(r.to_owned()).or_default(),
                    };
                    *slot = slot.saturating_add(ns);
                }
                _ => {}
            }
        }
        for list in facts.wipes.values_mut() {
            list.sort_unstable();
        }
        facts
    }

    /// Which of `region`'s epochs `t` is in: how many of its wipes had started by then.
    pub(super) fn epoch(&self, region: &str, t: Nanos) -> usize {
        self.wipes.get(region).map_or(0, |w| w.partition_point(|&at| at <= t))
    }

    fn stretch(&self, region: &str) -> Nanos {
        self.stretch.get(region).copied().unwrap_or(0).saturating_add(self.stretch_all)
    }
}

/// A region and one of its epochs.
type Place<'a> = (&'a str, usize);
type ByPlace<'a> = HashMap<Place<'a>, Timeline<'a>>;

/// What each region applied of one key, per epoch: puts and deletes by the latest moment each
/// apply can have happened (what it certainly held before an instant), deletes also by the
/// earliest (what it may have held).
#[derive(Default)]
pub(super) struct Applied<'a> {
    puts: ByPlace<'a>,
    deletes: ByPlace<'a>,
    maybe_deletes: ByPlace<'a>,
}

impl<'a> Applied<'a> {
    /// The applies of acknowledged writes, each placed by [`apply_window`] and in the epoch its
    /// window starts in (an apply that may precede a wipe belongs before it).
    pub(super) fn new(
        by_version: &HashMap<&'a str, &'a Op>,
        applies: &[&'a Apply],
        facts: &RegionFacts,
    ) -> Self {
        let (mut puts, mut deletes, mut maybe) = (Vec::new(), Vec::new(), Vec::new());
        for apply in applies {
            let Some(&w) = by_version.get(apply.version.as_str()) else { continue };
            if w.outcome != Outcome::Ok {
                continue;
            }
            let (earliest, latest) = apply_window(apply, Some(w));
            let place = (apply.region.as_str(), facts.epoch(&apply.region, earliest));
            match w.f {
                Function::Put => puts.push((place, latest, w)),
                Function::Delete => {
                    deletes.push((place, latest, w));
                    maybe.push((place, earliest, w));
                }
                Function::Get | Function::List => {}
            }
        }
        Applied { puts: group(puts), deletes: group(deletes), maybe_deletes: group(maybe) }
    }

    /// The greatest-version put (`Function::Put`) or delete the region certainly applied in
    /// its epoch before `t`.
    pub(super) fn certain_before(&self, f: Function, at: Place<'_>, t: Nanos) -> Option<&'a Op> {
        let timelines = match f {
            Function::Delete => &self.deletes,
            _ => &self.puts,
        };
        timelines.get(&at)?.before(t)
    }

    /// The greatest-version write, put or delete, the region certainly applied before `t`.
    pub(super) fn newest_before(&self, at: Place<'_>, t: Nanos) -> Option<&'a Op> {
        let put = self.certain_before(Function::Put, at, t);
        let delete = self.certain_before(Function::Delete, at, t);
        match (put, delete) {
            (Some(p), Some(d)) => Some(if d.version > p.version { d } else { p }),
            (p, d) => p.or(d),
        }
    }

    /// The greatest-version delete the region may have applied in its epoch before `t`.
    pub(super) fn maybe_delete_before(&self, at: Place<'_>, t: Nanos) -> Option<&'a Op> {
        self.maybe_deletes.get(&at)?.before(t)
    }
}

fn group<'a>(entries: Vec<(Place<'a>, Nanos, &'a Op)>) -> ByPlace<'a> {
    let mut by_place: HashMap<Place<'a>, Vec<(Nanos, &'a Op)>> = HashMap::new();
    for (place, t, op) in entries {
        by_place.entry(place).or_default().push((t, op));
    }
    by_place.into_iter().map(|(p, list)| (p, Timeline::new(list))).collect()
}

/// One key's edge-cache facts per region: the largest cacheTtl any read asked there, and the
/// region's own deletes, whose replacement of a cached copy can be served as "not found".
#[derive(Default)]
pub(super) struct Cached<'a> {
    ttl_s: HashMap<&'a str, u64>,
    own_deletes: HashMap<&'a str, Spans>,
}

impl<'a> Cached<'a> {
    pub(super) fn new(ops: &[&'a Op]) -> Self {
        let mut cached = Cached::default();
        let mut deletes: HashMap<&str, Vec<(Nanos, Nanos)>> = HashMap::new();
        for op in ops {
            if let Some(ttl) = op.cache_ttl.filter(|_| op.f == Function::Get) {
                let slot = cached.ttl_s.entry(op.region.as_str()).or_default();
                *slot = (*slot).max(ttl);
            }
            // A delete that may have happened may have replaced the cached copy before its
            // answer was lost.
            if op.f == Function::Delete && op.outcome != Outcome::Fail {
                deletes.entry(op.region.as_str()).or_default().push((op.complete, op.invoke));
            }
        }
        cached.own_deletes = deletes.into_iter().map(|(r, d)| (r, Spans::new(d))).collect();
        cached
    }

    /// The earliest instant whose state of its region `read` may show (see the module doc).
    /// `own`: the write of the read's region that produced the version it served, if any.
    pub(super) fn served_from(&self, read: &Op, own: Option<&Op>, facts: &RegionFacts) -> Nanos {
        if !read.may_be_cached() {
            return read.invoke;
        }
        let region = read.region.as_str();
        let ttl_s = self.ttl_s.get(region).copied().unwrap_or(0).max(read.cache_ttl.unwrap_or(0));
        let reach = ttl_s
            .saturating_mul(NS_PER_S)
            .saturating_add(CACHE_SLACK)
            .saturating_add(facts.stretch(region));
        let from = read.invoke.saturating_sub(reach);
        let replaced = match read.version {
            Some(_) => own.map(|w| w.invoke),
            None => self.own_deletes.get(region).and_then(|d| d.earliest_invoke_after(from)),
        };
        replaced.map_or(from, |t| from.min(t))
    }
}

/// Writes as (completion, invoke) spans by completion, each with the earliest invoke among those
/// completing at or after it.
#[derive(Default)]
struct Spans {
    completes: Vec<Nanos>,
    earliest_invoke: Vec<Nanos>,
}

impl Spans {
    fn new(mut spans: Vec<(Nanos, Nanos)>) -> Self {
        spans.sort_unstable();
        let mut min = Nanos::MAX;
        let mut earliest_invoke: Vec<Nanos> = spans
            .iter()
            .rev()
            .map(|&(_, invoke)| {
                min = min.min(invoke);
                min
            })
            .collect();
        earliest_invoke.reverse();
        Spans { completes: spans.into_iter().map(|(c, _)| c).collect(), earliest_invoke }
    }

    /// The earliest invoke of the writes that completed after `t`.
    fn earliest_invoke_after(&self, t: Nanos) -> Option<Nanos> {
        let i = self.completes.partition_point(|&c| c <= t);
        self.earliest_invoke.get(i).copied()
    }
}
