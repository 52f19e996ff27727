//! The four properties, checked on every state reached (or, for tombstone safety, on the
//! transition that collects).

use crate::actions::{deliver, hub, peers, send_due, start_round};
use crate::state::{slot, World, NAMES, REGIONS, W};

/// A broken property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which one: `convergence`, `no-resurrection`, `tombstone-safety`, `watermark-safety`.
    pub property: &'static str,
    /// What was seen.
    pub detail: String,
}

/// Every property's name, in the order they are checked.
pub const PROPERTIES: [&str; 4] =
    ["no-resurrection", "watermark-safety", "tombstone-safety", "convergence"];

/// The properties checked on a state: no resurrection and watermark safety on every state,
/// convergence on every quiescent one (nothing in flight).
pub fn check(world: &World) -> Option<Violation> {
    no_resurrection(world).or_else(|| watermark_safety(world)).or_else(|| {
        if world.net.is_empty() {
            convergence(world)
        } else {
            None
        }
    })
}

/// Property 2: once a delete is the greatest write, a region that held it never again reads a live
/// value older than it.
fn no_resurrection(world: &World) -> Option<Violation> {
    let delete = world.greatest().filter(|w| w.tomb)?;
    for (i, r) in world.regions.iter().enumerate() {
        let held = r.floor.is_some_and(|f| f >= delete);
        if let Some(live) = r.entry.filter(|w| !w.tomb && *w < delete && held) {
            return Some(Violation {
                property: "no-resurrection",
                detail: format!("{} held {delete} and now reads {live}", NAMES[i]),
            });
        }
    }
    None
}

/// Property 4: a region's published watermark never passes one of its writes that a peer has neither
/// received nor superseded with a newer write.
fn watermark_safety(world: &World) -> Option<Violation> {
    for (i, r) in world.regions.iter().enumerate() {
        for w in world.issued.iter().filter(|w| w.origin as usize == i) {
            if w.ts > r.replicated_through {
                continue;
            }
            for p in peers(i) {
                if world.regions[p].floor.is_none_or(|f| f < *w) {
                    return Some(Violation {
                        property: "watermark-safety",
                        detail: format!(
                            "{} publishes rt={} but {} never had {w} or anything newer",
                            NAMES[i], r.replicated_through, NAMES[p]
                        ),
                    });
                }
            }
        }
    }
    None
}

/// Property 3: when region `r` forgets `tomb`, no region holds an older live value of the key, none is
/// in flight, and no outbox still has one to send to a peer that has not acknowledged it.
pub(crate) fn tombstone_safety(world: &World, r: usize, tomb: W) -> Option<Violation> {
    let older = |w: &W| !w.tomb && *w < tomb;
    let found = |what: String| {
        Some(Violation {
            property: "tombstone-safety",
            detail: format!("{} collects {tomb} while {what}", NAMES[r]),
        })
    };
    for (i, region) in world.regions.iter().enumerate() {
        if let Some(w) = region.entry.filter(older) {
            return found(format!("{} holds {w}", NAMES[i]));
        }
        for p in peers(i) {
            let acked = region.senders[slot(i, p)].acked_through().0;
            if let Some(w) = region.outbox.values().find(|w| w.ts > acked && older(w)) {
                return found(format!("{}'s outbox may still send {w} to {}", NAMES[i], NAMES[p]));
            }
        }
    }
    for msg in &world.net {
        if let Some(w) = msg.writes().iter().find(|w| older(w)) {
            return found(format!("{msg} is in flight with {w}"));
        }
    }
    None
}

/// Property 1: from this state, with no more writes: heal, deliver everything, let the hubs tick, then
/// one anti-entropy round per pair of regions (initiated by the first of the two by name, as
/// a round repairs both ways) and deliver again. Every region must then hold the greatest write
/// issued, or, when it is a delete, nothing or that tombstone.
fn convergence(world: &World) -> Option<Violation> {
    let mut w = world.clone();
    w.partition = None;
    drain(&mut w);
    for _ in 0..2 {
        for a in 0..REGIONS {
            for b in a + 1..REGIONS {
                start_round(&mut w, a, b);
                drain(&mut w);
            }
        }
    }
    let greatest = world.greatest();
    for (i, r) in w.regions.iter().enumerate() {
        let ok = match greatest {
            None => r.entry.is_none(),
            Some(g) if g.tomb => r.entry.is_none_or(|e| e == g),
            Some(g) => r.entry == Some(g),
        };
        if !ok {
            let has = r.entry.map_or("nothing".to_owned(), |e| e.to_string());
            let wanted = greatest.map_or("nothing".to_owned(), |g| g.to_string());
            return Some(Violation {
                property: "convergence",
                detail: format!(
                    "after delivering everything and anti-entropy between every pair, {} holds {has}, not {wanted}",
                    NAMES[i]
                ),
            });
        }
    }
    None
}

/// Delivers every message, lets every sender send and every hub tick, until nothing moves.
fn drain(w: &mut World) {
    for _ in 0..64 {
        let mut moved = false;
        while !w.net.is_empty() {
            let msg = w.net.remove(0);
            deliver(w, msg, 1);
            moved = true;
        }
        for r in 0..REGIONS {
            for p in peers(r) {
                moved |= send_due(w, r, p);
            }
        }
        for r in 0..REGIONS {
            moved |= hub(w, r);
        }
        if !moved {
            return;
        }
    }
}
