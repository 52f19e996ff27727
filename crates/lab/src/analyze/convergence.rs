//! B4, convergence after heal: after each fault's stop, how long until every region held, for
//! every key written before the heal, the greatest version invoked before it (or newer).
//!
//! A region wiped before the heal counts only what it applied since its last wipe: what it held
//! before went with its disk. And it holds a delete's state while nothing of the key has come
//! back to it, since an empty store reads as the delete left the key; anti-entropy sends no
//! tombstone to a region that lacks the key (tombstones are kept out of digests), so that
//! absence is how a wiped region converges on a delete.

use edgekv_core::Fault;

use super::index::{FastMap, Index};
use super::ms;
use crate::bounds::apply_estimate;
use crate::history::{FaultEvent, Function, Nanos, Op};
use crate::summary::ConvergenceAfterHeal;

/// Convergence after each heal (B4): per key, when every region held the greatest version
/// written before the heal. Assumes the apply estimates: a region whose apply window straddles
/// the heal counts on the side its estimate falls, so the figure is as exact as the estimates
/// (microseconds on one machine, a millisecond either way from older histories).
pub(super) fn convergence(
    ix: &Index<'_>,
    faults: &[FaultEvent],
    has_applies: bool,
) -> Vec<ConvergenceAfterHeal> {
    let mut stops: Vec<&FaultEvent> = faults.iter().filter(|f| f.action == "stop").collect();
    stops.sort_by_key(|f| f.at);
    // Per key: the greatest version among writes invoked so far, by invoke time, and whether
    // its write is a delete.
    let running: Vec<(Vec<Nanos>, Vec<Top<'_>>)> = ix
        .writes_by_key
        .iter()
        .map(|ws| {
            let mut top = Top { version: "", delete: false };
            ws.iter()
                .filter_map(|&w| ix.writes.get(w))
                .map(|w| {
                    if w.version > top.version {
                        top = Top { version: w.version, delete: w.op.f == Function::Delete };
                    }
                    (w.invoke(), top)
                })
                .unzip()
        })
        .collect();
    let wiped = Wiped::new(ix, faults);
    stops.into_iter().map(|stop| after_heal(ix, &running, &wiped, stop, has_applies)).collect()
}

/// A key's greatest version so far.
#[derive(Clone, Copy)]
struct Top<'a> {
    version: &'a str,
    delete: bool,
}

/// The regions wiped during the run: when, and what each applied, per key, by time.
#[derive(Default)]
struct Wiped<'a> {
    wipes: FastMap<usize, Vec<Nanos>>,
    applies: FastMap<(usize, usize), Vec<(Nanos, &'a str)>>,
}

impl<'a> Wiped<'a> {
    fn new(ix: &Index<'a>, faults: &[FaultEvent]) -> Self {
        let mut wiped = Wiped::default();
        for fault in faults.iter().filter(|f| f.action == "start") {
            if let Fault::Wipe { region } = &fault.fault {
                if let Some(&r) = ix.region_ix.get(region.as_str()) {
                    wiped.wipes.entry(r).or_default().push(fault.at);
                }
            }
        }
        if wiped.wipes.is_empty() {
            return wiped;
        }
        let writes: FastMap<(usize, &str), &Op> =
            ix.writes.iter().map(|w| ((w.key, w.version), w.op)).collect();
        for a in &ix.history.applies {
            let (Some(&k), Some(&r)) =
                (ix.key_ix.get(a.key.as_str()), ix.region_ix.get(a.region.as_str()))
            else {
                continue;
            };
            if wiped.wipes.contains_key(&r) {
                let at = apply_estimate(a, writes.get(&(k, a.version.as_str())).copied());
                wiped.applies.entry((k, r)).or_default().push((at, a.version.as_str()));
            }
        }
        for list in wiped.wipes.values_mut() {
            list.sort_unstable();
        }
        for list in wiped.applies.values_mut() {
            list.sort_unstable();
        }
        wiped
    }

    /// The start of `region`'s last wipe before `t`, if it had one.
    fn last_before(&self, region: usize, t: Nanos) -> Option<Nanos> {
        self.wipes.get(&region)?.iter().rev().find(|&&at| at < t).copied()
    }

    /// When `region`, wiped at `wipe`, first held `top` or newer since then (see the module
    /// doc for a delete).
    fn first_hold(&self, key: usize, region: usize, top: Top<'_>, wipe: Nanos) -> Option<Nanos> {
        let since = self
            .applies
            .get(&(key, region))
            .map_or(&[][..], |list| &list[list.partition_point(|&(at, _)| at < wipe)..]);
        let reached = since.iter().find(|&&(_, v)| v >= top.version).map(|&(at, _)| at);
        // An older version came back before the target: the key was not in the delete's state.
        let older_first =
            since.first().is_some_and(|&(at, v)| v < top.version && reached.is_none_or(|r| at < r));
        if top.delete && !older_first {
            return Some(wipe);
        }
        reached
    }
}

/// Convergence after one heal, given each key's running greatest version.
fn after_heal(
    ix: &Index<'_>,
    running: &[(Vec<Nanos>, Vec<Top<'_>>)],
    wiped: &Wiped<'_>,
    stop: &FaultEvent,
    has_applies: bool,
) -> ConvergenceAfterHeal {
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
            let held = match wiped.last_before(r, heal) {
                Some(wipe) => wiped.first_hold(key, r, target, wipe),
                None => ix.first_hold(key, r, target.version),
            };
            match held {
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
        fault: stop.fault.kind().to_owned(),
        heal_at_ms: ms(heal),
        convergence_ms: (has_applies && unconverged == 0).then(|| ms(latest)),
        backlog,
        keys,
        unconverged,
    }
}
