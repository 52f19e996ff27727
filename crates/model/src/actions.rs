//! What can happen next in a state, and what each step does: writes, the sender's batches,
//! deliveries and their failures, partitions, a restart, anti-entropy, the hub's tick and
//! tombstone collection. Every rule that decides something is the project's own function.

use edgekv_core::failpoint::{self, Failpoint};
use edgekv_core::Timestamp;
use std::rc::Rc;

use edgekv_replication::sans_io::{reconcile_items, Batch, Outcome, SenderMachine};

use crate::explore::Bounds;
use crate::properties::{self, Violation};
use crate::state::{ids, machine, peer, slot, Msg, World, NAMES, REGIONS, W};

/// One step. Message indexes are into the state's sorted multiset of messages in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// A region accepts a put of the key.
    Put(u8),
    /// A region accepts a delete of the key.
    Delete(u8),
    /// A region's sender towards a peer takes its outbox's new writes and sends what is due.
    Send(u8, u8),
    /// A message arrives and is answered.
    Deliver(usize),
    /// A push arrives twice, as the fault filter duplicates it, then is answered. Unbounded:
    /// LWW apply is idempotent, so it must reach the very state a single delivery does, and
    /// the visited set checks that at no cost in states.
    DeliverTwice(usize),
    /// A message is lost: a push's sender sees `Outcome::Lost`; an anti-entropy exchange fails.
    Lose(usize),
    /// A push gets no answer (its sender sees `Outcome::Failed`); `applied` when the peer took
    /// it anyway and only the answer was lost.
    Fail(usize, bool),
    /// The link between two regions is cut both ways.
    Partition(u8, u8),
    /// The cut link works again.
    Heal,
    /// A region restarts: its durable state stays, its senders resume from their positions.
    Restart(u8),
    /// A region starts an anti-entropy round with a peer.
    AntiEntropy(u8, u8),
    /// A region forgets its tombstone.
    Collect(u8),
}

/// Every action the bounds allow in `world`, with its successor (actions that change nothing
/// are left out), and a violation a transition itself showed.
pub fn successors(world: &World, bounds: &Bounds) -> Vec<(Action, World, Option<Violation>)> {
    let mut out = Vec::new();
    let mut candidates = Vec::new();
    let used = world.used;
    let room = world.net.len() < bounds.in_flight;
    let exchanges = world.net.iter().filter(|m| !matches!(m, Msg::Push { repair: None, .. }));
    let room_for_round =
        if bounds.eager_sends { exchanges.count() < bounds.in_flight } else { room };
    for r in 0..REGIONS as u8 {
        if used.puts < bounds.puts {
            candidates.push(Action::Put(r));
        }
        if used.deletes < bounds.deletes {
            candidates.push(Action::Delete(r));
        }
        for p in 0..REGIONS as u8 {
            if !bounds.eager_sends && p != r && room && has_to_send(world, r as usize, p as usize) {
                candidates.push(Action::Send(r, p));
            }
            if p != r
                && room_for_round
                && used.rounds < bounds.rounds
                && !world.blocked(r.into(), p.into())
            {
                candidates.push(Action::AntiEntropy(r, p));
            }
            if p > r && used.partitions < bounds.partitions && world.partition.is_none() {
                candidates.push(Action::Partition(r, p));
            }
        }
        if used.restarts < bounds.restarts {
            candidates.push(Action::Restart(r));
        }
        if world.regions[r as usize].entry.is_some_and(|w| w.tomb) {
            candidates.push(Action::Collect(r));
        }
    }
    if world.partition.is_some() {
        candidates.push(Action::Heal);
    }
    for (i, msg) in world.net.iter().enumerate() {
        let (a, b) = msg.link();
        let delivery = matches!(msg, Msg::Push { repair: None, .. });
        if world.blocked(a, b) {
            // A cut link answers nothing: the exchange fails, free of any budget.
            candidates.push(if delivery { Action::Fail(i, false) } else { Action::Lose(i) });
            continue;
        }
        candidates.push(Action::Deliver(i));
        if delivery && bounds.dups {
            candidates.push(Action::DeliverTwice(i));
        }
        if used.losses < bounds.losses {
            candidates.push(Action::Lose(i));
        }
        if delivery && used.fails < bounds.fails {
            candidates.push(Action::Fail(i, false));
            candidates.push(Action::Fail(i, true));
        }
    }
    for action in candidates {
        let mut next = world.clone();
        match apply(&mut next, action, bounds.eager_sends) {
            Step::Unchanged => {}
            Step::Changed => out.push((action, next, None)),
            Step::Violated(v) => out.push((action, next, Some(v))),
        }
    }
    out
}

/// Whether region `r`'s sender to `p` may have something to send: held writes, or outbox
/// writes past its cursor (a cheap filter; the step itself decides).
fn has_to_send(world: &World, r: usize, p: usize) -> bool {
    let region = &world.regions[r];
    let machine = &region.senders[slot(r, p)];
    machine.backlog() > 0
        || region.outbox.range(machine.cursor().0.saturating_add(1)..).next().is_some()
}

/// Whether region `r`'s sender to `p` has a batch in flight: its push is on the wire (a
/// restart drops what the region had sent, along with the machine that sent it).
fn in_flight(world: &World, r: usize, p: usize) -> bool {
    let inc = world.regions[r].incarnation;
    world.net.iter().any(|m| {
        matches!(m, Msg::Push { from, to, repair: None, inc: i, .. }
            if (*from as usize, *to as usize, *i) == (r, p, inc))
    })
}

/// What a step did.
pub(crate) enum Step {
    /// Nothing: the action is not enabled.
    Unchanged,
    /// A new state.
    Changed,
    /// A new state, reached by a transition that broke a property.
    Violated(Violation),
}

fn changed(yes: bool) -> Step {
    if yes {
        Step::Changed
    } else {
        Step::Unchanged
    }
}

/// Applies `action` to `world` in place, then lets every hub tick.
///
/// The hubs tick after every step rather than as steps of their own: publishing a watermark as
/// soon as it may rise is the adversary's choice for every safety property (a later tick
/// publishes a value an earlier state already allowed, and a lower watermark only delays
/// compaction and collection), and it divides the state space by the interleavings of ticks.
///
/// With `eager_sends`, every sender that has writes due and no batch in flight then sends
/// them, as the node's sender does the moment a write or an answer wakes it (delays are zero
/// here): when a push arrives is still any order, but when it leaves is no longer a choice.
pub(crate) fn apply(world: &mut World, action: Action, eager_sends: bool) -> Step {
    let step = apply_only(world, action);
    if !matches!(step, Step::Unchanged) {
        for r in 0..REGIONS {
            hub(world, r);
        }
        if eager_sends {
            for r in 0..REGIONS {
                for p in peers(r) {
                    send_due(world, r, p);
                }
            }
        }
    }
    step
}

fn apply_only(world: &mut World, action: Action) -> Step {
    match action {
        Action::Put(r) => {
            world.used.puts += 1;
            local_write(world, r as usize, false);
            Step::Changed
        }
        Action::Delete(r) => {
            world.used.deletes += 1;
            local_write(world, r as usize, true);
            Step::Changed
        }
        Action::Send(r, p) => changed(send_due(world, r as usize, p as usize)),
        Action::Deliver(i) => {
            let msg = world.net.remove(i);
            deliver(world, msg, 1);
            Step::Changed
        }
        Action::DeliverTwice(i) => {
            let msg = world.net.remove(i);
            deliver(world, msg, 2);
            Step::Changed
        }
        Action::Lose(i) => {
            let msg = world.net.remove(i);
            let (a, b) = msg.link();
            if !world.blocked(a, b) {
                world.used.losses += 1;
            }
            if let Msg::Push { repair: None, .. } = msg {
                settle(world, &msg, Outcome::Lost);
            }
            Step::Changed
        }
        Action::Fail(i, applied) => {
            let msg = world.net.remove(i);
            let (a, b) = msg.link();
            if !world.blocked(a, b) {
                world.used.fails += 1;
            }
            if applied {
                apply_push(world, &msg, 1);
            }
            settle(world, &msg, Outcome::Failed);
            Step::Changed
        }
        Action::Partition(a, b) => {
            world.used.partitions += 1;
            world.partition = Some((a, b));
            Step::Changed
        }
        Action::Heal => {
            world.partition = None;
            Step::Changed
        }
        Action::Restart(r) => {
            world.used.restarts += 1;
            restart(world, r as usize);
            Step::Changed
        }
        Action::AntiEntropy(r, p) => {
            let (r, p) = (r as usize, p as usize);
            if world.blocked(r, p) {
                return Step::Unchanged; // a round is skipped while the link is cut
            }
            world.used.rounds += 1;
            start_round(world, r, p);
            Step::Changed
        }
        Action::Collect(r) => {
            let r = r as usize;
            let Some(tomb) = world.regions[r].entry.filter(|w| w.tomb) else {
                return Step::Unchanged;
            };
            if !edgekv_core::may_collect(&world.regions[r].watermarks, tomb.version()) {
                return Step::Unchanged;
            }
            if world.net.iter().any(|m| in_round_of(m, r)) {
                // The grace period outlasts any exchange: a round this region started before
                // it had the tombstone has been answered, or has failed, by the time it may
                // be forgotten.
                return Step::Unchanged;
            }
            let unsafe_collect = properties::tombstone_safety(world, r, tomb);
            world.region_mut(r).entry = None;
            match unsafe_collect {
                Some(v) => Step::Violated(v),
                None => Step::Changed,
            }
        }
    }
}

/// A local write: a timestamp above everything the region has seen, as its HLC issues, the
/// entry replaced and the write logged in the outbox.
fn local_write(world: &mut World, r: usize, tomb: bool) {
    let region = world.region_mut(r);
    region.clock += 1;
    let w = W { ts: region.clock, origin: r as u8, tomb };
    region.entry = Some(w);
    region.floor = region.floor.max(Some(w));
    region.outbox.insert(w.ts, w);
    world.issued.push(w);
}

/// The sender's loop body: refill the machine from the outbox after its cursor, then take what
/// is due (everything: delays are not modelled) and put it on the wire. Whether it sent.
///
/// Nothing happens while a batch is in flight: the node's sender is then waiting for its
/// answer, and refills only after it.
pub(crate) fn send_due(world: &mut World, r: usize, p: usize) -> bool {
    if !has_to_send(world, r, p) || in_flight(world, r, p) {
        return false;
    }
    let region = world.region_mut(r);
    let machine = Rc::make_mut(&mut region.senders[slot(r, p)]);
    let after = machine.cursor().0;
    for w in region.outbox.range(after.saturating_add(1)..).map(|(_, w)| *w) {
        machine.offer(w.to_write(), 0);
    }
    let Some(batch) = machine.take_due(u64::MAX, false) else { return false };
    let writes = batch.writes.iter().map(W::from_write).collect();
    let msg = Msg::Push {
        from: r as u8,
        to: p as u8,
        writes,
        rt: region.replicated_through,
        repair: None,
        inc: region.incarnation,
    };
    world.send(msg);
    true
}

/// The receiving end: as `Handler::push`, `Handler::digest`/`reconcile` and the initiator's
/// handling of the reply.
pub(crate) fn deliver(world: &mut World, msg: Msg, copies: usize) {
    match &msg {
        Msg::Push { repair: None, .. } => {
            apply_push(world, &msg, copies);
            settle(world, &msg, Outcome::Delivered { refused: Vec::new() });
        }
        Msg::Push { from, to, repair: Some(started), inc, .. } => {
            apply_push(world, &msg, copies);
            let (from, to) = (*from as usize, *to as usize);
            let initiator = world.region_mut(from);
            if initiator.incarnation == *inc {
                initiator.sender_mut(slot(from, to)).confirm_through(Timestamp(*started));
            }
        }
        Msg::Query { from, to, item, rt, started, inc } => {
            let (from, to) = (*from as usize, *to as usize);
            let responder = world.region_mut(to);
            raise(responder, from, *rt);
            let mine = responder.entry;
            let item_id = &ids().item;
            let theirs = item.iter().map(|w| (item_id.clone(), w.version())).collect();
            let reply = reconcile_items(
                theirs,
                |_| mine.map(W::to_write),
                |_| true,
                || mine.iter().map(|w| (item_id.clone(), w.version())).collect(),
            );
            world.send(Msg::Reply {
                from: to as u8,
                to: from as u8,
                newer: reply.newer.iter().map(W::from_write).collect(),
                wanted: !reply.wanted.is_empty(),
                started: *started,
                inc: *inc,
            });
        }
        Msg::Reply { from, to, newer, wanted, started, inc } => {
            let (responder, initiator) = (*from as usize, *to as usize);
            let region = world.region_mut(initiator);
            if region.incarnation != *inc {
                return; // the round belonged to a run before a restart
            }
            for w in newer {
                region.receive(*w);
            }
            let push = if *wanted { region.entry } else { None };
            match push {
                Some(w) => {
                    let msg = Msg::Push {
                        from: initiator as u8,
                        to: responder as u8,
                        writes: vec![w],
                        rt: region.replicated_through,
                        repair: Some(*started),
                        inc: *inc,
                    };
                    world.send(msg);
                }
                None => {
                    region
                        .sender_mut(slot(initiator, responder))
                        .confirm_through(Timestamp(*started));
                }
            }
        }
    }
}

fn raise(region: &mut crate::state::Region, origin: usize, rt: u64) {
    if rt > 0 {
        region.watermarks.raise(ids().regions[origin], Timestamp(rt));
    }
}

/// The peer applies a push's writes (`copies` times) and raises the sender's watermark.
fn apply_push(world: &mut World, msg: &Msg, copies: usize) {
    let Msg::Push { from, to, writes, rt, .. } = msg else { return };
    let receiver = world.region_mut(*to as usize);
    for _ in 0..copies {
        for w in writes {
            receiver.receive(*w);
        }
    }
    raise(receiver, *from as usize, *rt);
}

/// The sender learns how its delivery ended, unless it restarted since.
fn settle(world: &mut World, msg: &Msg, outcome: Outcome) {
    let Msg::Push { from, to, writes, repair: None, inc, .. } = msg else { return };
    let (from, to) = (*from as usize, *to as usize);
    let region = world.region_mut(from);
    if region.incarnation != *inc {
        return;
    }
    let batch = Batch { writes: writes.iter().map(|w| w.to_write()).collect() };
    region.sender_mut(slot(from, to)).settle(batch, outcome, 0);
}

/// A restart as the node does it: entry, outbox and watermarks are durable; each sender
/// resumes from its saved delivery position (the hub saves acked_through at shutdown); the
/// published watermark starts again from zero. With `restart-loses-write`, the region forgets
/// its newest local write, as the simulator's restart does.
///
/// Its connections die with it: what it had sent and was not yet received is gone (a push's
/// sender is the one restarting, and forgets it), pushes to it fail, and rounds it took part
/// in fail. Delivering them before the restart is another interleaving.
fn restart(world: &mut World, r: usize) {
    let net = std::mem::take(&mut world.net);
    for msg in net {
        let (from, to) = msg.link();
        if to == r && from != r {
            settle(world, &msg, Outcome::Failed);
        }
        if from != r && to != r {
            world.send(msg);
        }
    }
    let region = world.region_mut(r);
    for s in 0..REGIONS - 1 {
        let position = region.senders[s].acked_through();
        region.senders[s] = Rc::new(machine(position));
    }
    region.replicated_through = 0;
    region.incarnation += 1;
    if failpoint::active(Failpoint::RestartLosesWrite) {
        if let Some((_, lost)) = region.outbox.pop_last() {
            if region.entry == Some(lost) {
                region.entry = None;
            }
        }
    }
}

/// The initiator's first message, its digest of the key, its watermark and its clock, and the
/// responder's answer to it, in one step.
///
/// Answering on arrival rather than at a later step of its own loses nothing that matters: the
/// query reads only the initiator and the answer only the responder, so a step between the two
/// that changes one region commutes with the one that does not read it. The one thing it
/// leaves out is a query carrying a watermark older than the initiator's current one, and a
/// lower watermark is the safer one. The answer, and the repair push after it, are messages.
pub(crate) fn start_round(world: &mut World, r: usize, p: usize) {
    let region = &world.regions[r];
    let msg = Msg::Query {
        from: r as u8,
        to: p as u8,
        item: region.entry,
        rt: region.replicated_through,
        started: region.clock,
        inc: region.incarnation,
    };
    deliver(world, msg, 1);
}

/// The hub's tick: publish the least acknowledged position over the peers, raise this
/// region's own watermark to it, compact the outbox below it. Whether anything changed.
///
/// First, as the node's hub does, each idle sender's cursor moves to the region's frontier (its
/// clock: every later local write is stamped above it) when the outbox holds nothing up to
/// there.
pub(crate) fn hub(world: &mut World, r: usize) -> bool {
    // Copy-on-write: the region is copied only when the tick changes it.
    let region = &world.regions[r];
    let frontier = region.clock;
    let idle = |m: &SenderMachine| {
        let cursor = m.cursor().0;
        cursor < frontier && region.outbox.range(cursor + 1..=frontier).next().is_none()
    };
    let advance = [idle(&region.senders[0]), idle(&region.senders[1])];
    if advance.contains(&true) {
        let region = world.region_mut(r);
        for (m, go) in region.senders.iter_mut().zip(advance) {
            if go {
                Rc::make_mut(m).advance_to(Timestamp(frontier));
            }
        }
    }
    let region = &world.regions[r];
    let through = region.senders.iter().map(|m| m.acked_through().0).min().unwrap_or(u64::MAX);
    let me = ids().regions[r];
    let stale = region.replicated_through != through
        || region.watermarks.get(me).0 < through
        || region.outbox.first_key_value().is_some_and(|(ts, _)| *ts <= through);
    if stale {
        let region = world.region_mut(r);
        region.replicated_through = through;
        region.watermarks.raise(me, Timestamp(through));
        region.outbox = region.outbox.split_off(&through.saturating_add(1));
    }
    stale || advance.contains(&true)
}

/// Describes `action` as taken in `world` (the state before it).
pub fn describe(world: &World, action: Action) -> String {
    let name = |r: u8| NAMES[r as usize];
    let msg = |i: usize| world.net.get(i).map_or("?".to_owned(), |m| m.to_string());
    match action {
        Action::Put(r) => format!("{} accepts put v{}@{}", name(r), next_ts(world, r), name(r)),
        Action::Delete(r) => {
            format!("{} accepts del v{}@{}", name(r), next_ts(world, r), name(r))
        }
        Action::Send(r, p) => format!("{} sender to {} sends its due writes", name(r), name(p)),
        Action::Deliver(i) => format!("{} delivered", msg(i)),
        Action::DeliverTwice(i) => format!("{} delivered twice", msg(i)),
        Action::Lose(i) => format!("{} lost", msg(i)),
        Action::Fail(i, false) => format!("{} failed (no answer)", msg(i)),
        Action::Fail(i, true) => format!("{} applied, but the answer was lost", msg(i)),
        Action::Partition(a, b) => format!("partition {} | {}", name(a), name(b)),
        Action::Heal => "heal".to_owned(),
        Action::Restart(r) => format!("{} restarts", name(r)),
        Action::AntiEntropy(r, p) => format!("{} starts anti-entropy with {}", name(r), name(p)),
        Action::Collect(r) => {
            let tomb = world.regions[r as usize].entry.map_or("?".to_owned(), |w| w.to_string());
            format!("{} collects its tombstone {tomb}", name(r))
        }
    }
}

fn next_ts(world: &World, r: u8) -> u64 {
    world.regions[r as usize].clock + 1
}

/// Whether `msg` belongs to an anti-entropy round region `r` started.
fn in_round_of(msg: &Msg, r: usize) -> bool {
    match msg {
        Msg::Query { from, .. } | Msg::Push { from, repair: Some(_), .. } => *from as usize == r,
        Msg::Reply { to, .. } => *to as usize == r,
        Msg::Push { repair: None, .. } => false,
    }
}

/// Every peer index of region `r`.
pub(crate) fn peers(r: usize) -> impl Iterator<Item = usize> {
    (0..REGIONS - 1).map(move |s| peer(r, s))
}
