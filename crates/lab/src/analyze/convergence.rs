//! B4, convergence after heal: after each fault's stop, how long until every region held, for
//! every key written before the heal, the greatest version invoked before it (or newer).

use super::index::Index;
use super::ms;
use crate::history::{FaultEvent, Nanos};
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
    stops.into_iter().map(|stop| after_heal(ix, &running, stop, has_applies)).collect()
}

/// Convergence after one heal, given each key's running greatest version.
fn after_heal(
    ix: &Index<'_>,
    running: &[(Vec<Nanos>, Vec<&str>)],
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
        fault: stop.fault.kind().to_owned(),
        heal_at_ms: ms(heal),
        convergence_ms: (has_applies && unconverged == 0).then(|| ms(latest)),
        backlog,
        keys,
        unconverged,
    }
}
