//! Breadth-first exploration with a visited set of state fingerprints. Breadth first, so the
//! first violation found has a shortest trace.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::time::{Duration, Instant};

use crate::actions::{successors, Action};
use crate::properties::{check, Violation};
use crate::state::{Prehashed, World};

/// For each state, how it was first reached: (parent, action), to rebuild a trace.
pub(crate) type Parents = HashMap<u128, Option<(u128, Action)>, BuildHasherDefault<Prehashed>>;
use crate::trace::{replay, Counterexample};

/// How far the exploration goes: the state space is finite because every source of new
/// states is bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// What the run is called.
    pub name: &'static str,
    /// Local puts in a run.
    pub puts: u8,
    /// Local deletes in a run.
    pub deletes: u8,
    /// Most messages in flight at once for a step to add one (with eager sends, only
    /// anti-entropy rounds wait for room; a sender has one batch in flight at most anyway).
    pub in_flight: usize,
    /// Whether senders send as soon as they can, rather than at a time of the search's choice.
    pub eager_sends: bool,
    /// Messages lost (on a working link).
    pub losses: u8,
    /// Whether a push may be delivered twice (unbounded: it adds no state, see
    /// [`Action::DeliverTwice`]).
    pub dups: bool,
    /// Deliveries that got no answer (on a working link).
    pub fails: u8,
    /// Partitions of one link.
    pub partitions: u8,
    /// Restarts of a region.
    pub restarts: u8,
    /// Anti-entropy rounds started (beyond those of the convergence check).
    pub rounds: u8,
    /// Give up after this many distinct states.
    pub max_states: usize,
}

impl Bounds {
    /// No writes and no faults: add what a run needs.
    pub const NONE: Bounds = Bounds {
        name: "custom",
        puts: 0,
        deletes: 0,
        in_flight: 1,
        eager_sends: true,
        losses: 0,
        dups: true,
        fails: 0,
        partitions: 0,
        restarts: 0,
        rounds: 0,
        max_states: 50_000_000,
    };

    /// The runs of `cargo run --release -p edgekv-model`, each a set of features explored
    /// together. Everything at once is out of reach (every budget multiplies the states), so
    /// each run takes three or four writes and the faults that matter to one mechanism.
    pub const RUNS: [Bounds; 5] = [
        // LWW and delivery: three puts and a delete from any regions, a lost push, duplicates.
        Bounds { name: "delivery", puts: 3, deletes: 1, losses: 1, ..Bounds::NONE },
        // Pushes that get no answer (applied or not), and a loss.
        Bounds { name: "no-answer", puts: 2, deletes: 1, losses: 1, fails: 1, ..Bounds::NONE },
        // Anti-entropy repairing a lost push, racing deliveries and collection.
        Bounds { name: "anti-entropy", puts: 2, deletes: 1, losses: 1, rounds: 1, ..Bounds::NONE },
        // A cut link and a restart.
        Bounds {
            name: "partition-restart",
            puts: 2,
            deletes: 1,
            partitions: 1,
            restarts: 1,
            ..Bounds::NONE
        },
        // A restart between anti-entropy rounds, with a loss to repair.
        Bounds {
            name: "restart-repair",
            puts: 1,
            deletes: 1,
            losses: 1,
            restarts: 1,
            rounds: 2,
            ..Bounds::NONE
        },
    ];

    /// Small enough to explore whole in a debug build's tests: two puts, a delete, a loss.
    pub const TEST_CLEAN: Bounds =
        Bounds { name: "test-clean", puts: 2, deletes: 1, losses: 1, ..Bounds::NONE };

    /// Small enough for a debug build's tests, large enough for every failpoint to show.
    pub const TEST: Bounds = Bounds {
        name: "test",
        puts: 2,
        deletes: 1,
        losses: 1,
        restarts: 1,
        max_states: 2_000_000,
        ..Bounds::NONE
    };
}

impl std::fmt::Display for Bounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: 3 regions, 1 key, {} puts, {} delete, <= {} messages in flight, {} loss, duplicates: {}, \
             {} failed delivery, {} partition, {} restart, {} anti-entropy rounds",
            self.name,
            self.puts,
            self.deletes,
            self.in_flight,
            self.losses,
            self.dups,
            self.fails,
            self.partitions,
            self.restarts,
            self.rounds
        )
    }
}

/// What an exploration found.
#[derive(Debug)]
pub struct Report {
    /// The bounds it ran under.
    pub bounds: Bounds,
    /// Distinct states reached.
    pub states: usize,
    /// Transitions taken (successors generated, new or not).
    pub transitions: u64,
    /// The deepest level of the search.
    pub max_depth: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// Whether `max_states` stopped it before the space was exhausted.
    pub truncated: bool,
    /// The first violation, with a shortest trace to it.
    pub counterexample: Option<Counterexample>,
}

/// Explores every state reachable from the empty cluster within `bounds`.
pub fn explore(bounds: &Bounds) -> Report {
    let started = Instant::now();
    let init = World::new();
    let root = init.fingerprint();
    let mut parents = Parents::default();
    parents.insert(root, None);
    let mut report = Report {
        bounds: *bounds,
        states: 1,
        transitions: 0,
        max_depth: 0,
        elapsed: Duration::ZERO,
        truncated: false,
        counterexample: None,
    };
    if let Some(v) = check(&init) {
        report.counterexample = Some(replay(&parents, root, v, bounds.eager_sends));
        report.elapsed = started.elapsed();
        return report;
    }
    let mut queue = VecDeque::from([(init, root, 0usize)]);
    while let Some((world, fp, depth)) = queue.pop_front() {
        report.max_depth = report.max_depth.max(depth);
        for (action, next, violated) in successors(&world, bounds) {
            report.transitions += 1;
            let next_fp = next.fingerprint();
            let found = |v: Violation, parents: &mut Parents| {
                parents.entry(next_fp).or_insert(Some((fp, action)));
                // A transition's violation belongs to this edge, even if its target was seen.
                let mut trace = replay(parents, fp, v, bounds.eager_sends);
                trace.push_last(&world, action, &next);
                trace
            };
            if let Some(v) = violated {
                report.counterexample = Some(found(v, &mut parents));
                break;
            }
            if parents.contains_key(&next_fp) {
                continue;
            }
            parents.insert(next_fp, Some((fp, action)));
            report.states += 1;
            if let Some(v) = check(&next) {
                report.counterexample = Some(found(v, &mut parents));
                break;
            }
            queue.push_back((next, next_fp, depth + 1));
        }
        if report.counterexample.is_some() {
            break;
        }
        if report.states >= bounds.max_states {
            report.truncated = true;
            break;
        }
    }
    report.elapsed = started.elapsed();
    report
}
