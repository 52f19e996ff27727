//! The sender's logic, without I/O: what to send to one peer and when, fed with the time, the
//! outbox's records and the outcome of each delivery.
//!
//! The outbox is the delay line and the retry queue at once. Each write offered is due at the
//! time the shell computed for it (its origin time plus the link's sampled delay); the machine
//! keeps the writes in a min-heap by due time and hands out batches of what is due, one at a
//! time. A batch that fails goes back with a capped exponential backoff; one the peer refuses
//! in part (its clock is behind) goes back in part; one lost to an injected fault is not sent
//! again but stays *unconfirmed* until anti-entropy has compared the two regions. Receivers
//! apply idempotently, so a batch sent twice changes nothing.
//!
//! The machine also says what the peer has for sure: every write scheduled and not yet
//! acknowledged, and every write lost and not yet confirmed, holds back the peer's
//! acknowledged watermark, which in turn holds back outbox compaction and tombstone collection.
//!
//! Times are milliseconds on the region's clock, the one its versions come from.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::hash::{Hash, Hasher};
use std::time::Duration;

use edgekv_core::{ReplicatedWrite, Timestamp};

/// Most writes in one batch.
pub(crate) const MAX_BATCH_WRITES: usize = 512;
/// Most bytes of writes in one batch (a single larger write still goes alone).
pub(crate) const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// First retry delay after a failed delivery; it doubles up to the configured cap.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// How long the machine may sleep with nothing due, when new writes wake it anyway.
pub(crate) const IDLE_WAKE: Duration = Duration::from_secs(1);
/// How often a paused link is looked at again.
pub(crate) const PAUSED_WAKE: Duration = Duration::from_millis(100);

/// A batch handed out for delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// The writes, in due order.
    pub writes: Vec<ReplicatedWrite>,
}

impl Batch {
    fn timestamps(&self) -> impl Iterator<Item = Timestamp> + '_ {
        self.writes.iter().map(|w| w.version().ts)
    }

    /// Approximate bytes on the wire.
    pub fn bytes(&self) -> usize {
        self.writes.iter().map(ReplicatedWrite::size_hint).sum()
    }
}

/// How a delivery ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The peer took the batch, except the writes at these indexes (its clock is behind
    /// them), which are retried.
    Delivered { refused: Vec<u32> },
    /// No answer: the peer is down, the link cut, the call timed out. Retried after backoff.
    Failed,
    /// Lost on the way (an injected fault): not retried, left to anti-entropy.
    Lost,
}

/// What a completed delivery changed, for the shell's metrics and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Writes the peer now has.
    pub delivered: u64,
    /// The link works again after failing.
    pub recovered: bool,
}

/// The machine of one peer.
///
/// `Clone` so that a model checker can branch a state into its successors.
#[derive(Clone, Debug)]
pub struct SenderMachine {
    /// The newest outbox timestamp offered.
    cursor: Timestamp,
    /// (due ms, timestamp), soonest first.
    queue: BinaryHeap<Reverse<(u64, Timestamp)>>,
    writes: HashMap<Timestamp, ReplicatedWrite>,
    /// Offered and not yet acknowledged.
    undelivered: BTreeSet<Timestamp>,
    /// Lost (injected loss, overflow) and not yet confirmed by anti-entropy.
    unconfirmed: BTreeSet<Timestamp>,
    in_flight: bool,
    backoff: Duration,
    max_backoff: Duration,
    failing: bool,
    /// Most writes held before the backlog is left to anti-entropy.
    cap: usize,
}

impl SenderMachine {
    /// A machine resuming after `position` (every write at or below it is at the peer).
    pub fn new(position: Timestamp, max_backoff: Duration, cap: usize) -> Self {
        SenderMachine {
            cursor: position,
            queue: BinaryHeap::new(),
            writes: HashMap::new(),
            undelivered: BTreeSet::new(),
            unconfirmed: BTreeSet::new(),
            in_flight: false,
            backoff: FIRST_BACKOFF,
            max_backoff,
            failing: false,
            cap: cap.max(1),
        }
    }

    /// Whether the last delivery failed (the link is down, as far as the sender knows).
    pub fn is_failing(&self) -> bool {
        self.failing
    }

    /// The newest outbox timestamp offered: the shell offers what comes after it.
    pub fn cursor(&self) -> Timestamp {
        self.cursor
    }

    /// Schedules a write of the outbox (newer than the cursor), due at `due_ms`.
    pub fn offer(&mut self, write: ReplicatedWrite, due_ms: u64) {
        let ts = write.version().ts;
        if ts <= self.cursor {
            return;
        }
        self.queue.push(Reverse((due_ms, ts)));
        self.writes.insert(ts, write);
        self.undelivered.insert(ts);
        self.cursor = ts;
    }

    /// The shell found the outbox empty between the cursor and `frontier`, and no write at or
    /// below `frontier` can be logged later: the cursor moves there. Without this an idle
    /// link's acknowledged watermark would stay at the last write offered, and one region that
    /// never writes would hold back every tombstone's collection.
    pub fn advance_to(&mut self, frontier: Timestamp) {
        self.cursor = self.cursor.max(frontier);
    }

    /// Whether more writes are held than the cap allows. The shell then calls
    /// [`SenderMachine::overflow`] and asks anti-entropy for a round.
    pub fn over_cap(&self) -> bool {
        self.writes.len() > self.cap
    }

    /// Stops holding the backlog: every held write becomes unconfirmed, for anti-entropy to
    /// repair. Returns how many were let go.
    pub fn overflow(&mut self) -> usize {
        let held = self.writes.len();
        for ts in self.writes.keys() {
            self.undelivered.remove(ts);
            self.unconfirmed.insert(*ts);
        }
        self.writes.clear();
        self.queue.clear();
        held
    }

    /// The next batch due at `now_ms`, if no other is in flight and the link is not paused.
    pub fn take_due(&mut self, now_ms: u64, paused: bool) -> Option<Batch> {
        if self.in_flight || paused {
            return None;
        }
        let mut writes = Vec::new();
        let mut bytes = 0;
        while let Some(Reverse((due, ts))) = self.queue.peek().copied() {
            if due > now_ms || writes.len() >= MAX_BATCH_WRITES {
                break;
            }
            let Some(write) = self.writes.get(&ts) else {
                self.queue.pop(); // delivered meanwhile by an earlier copy
                continue;
            };
            if !writes.is_empty() && bytes + write.size_hint() > MAX_BATCH_BYTES {
                break;
            }
            self.queue.pop();
            bytes += write.size_hint();
            writes.push(write.clone());
        }
        if writes.is_empty() {
            return None;
        }
        self.in_flight = true;
        Some(Batch { writes })
    }

    /// Records how the batch in flight ended, at `now_ms`.
    pub fn settle(&mut self, batch: Batch, outcome: Outcome, now_ms: u64) -> Settled {
        self.in_flight = false;
        match outcome {
            Outcome::Delivered { refused } => self.delivered(batch, &refused, now_ms),
            Outcome::Failed => {
                self.failing = true;
                self.retry(batch.timestamps().collect(), now_ms);
                Settled::default()
            }
            Outcome::Lost => {
                for ts in batch.timestamps() {
                    self.undelivered.remove(&ts);
                    self.unconfirmed.insert(ts);
                    self.writes.remove(&ts);
                }
                Settled::default()
            }
        }
    }

    fn delivered(&mut self, batch: Batch, refused: &[u32], now_ms: u64) -> Settled {
        let mut settled = Settled { recovered: self.failing, ..Settled::default() };
        self.failing = false;
        self.backoff = FIRST_BACKOFF;
        let mut retry = Vec::new();
        for (i, ts) in batch.timestamps().enumerate() {
            if refused.contains(&(i as u32)) {
                retry.push(ts);
                continue;
            }
            self.undelivered.remove(&ts);
            self.writes.remove(&ts);
            settled.delivered += 1;
        }
        if !retry.is_empty() {
            // The peer's clock is behind these writes' timestamps; it will take them later.
            self.retry(retry, now_ms);
        }
        settled
    }

    fn retry(&mut self, timestamps: Vec<Timestamp>, now_ms: u64) {
        let at = now_ms.saturating_add(self.backoff.as_millis() as u64);
        for ts in timestamps {
            self.queue.push(Reverse((at, ts)));
        }
        self.backoff = (self.backoff * 2).min(self.max_backoff);
    }

    /// Anti-entropy found the peer holding everything up to `through`: lost writes at or below
    /// it no longer hold the watermark back.
    pub fn confirm_through(&mut self, through: Timestamp) {
        self.unconfirmed = self.unconfirmed.split_off(&Timestamp(through.0.saturating_add(1)));
    }

    /// The timestamp through which the peer has every write: just below the oldest write it
    /// may lack, or the cursor when it lacks none.
    pub fn acked_through(&self) -> Timestamp {
        let oldest =
            [self.undelivered.first(), self.unconfirmed.first()].into_iter().flatten().min();
        match oldest {
            Some(ts) => Timestamp(ts.0.saturating_sub(1)),
            None => self.cursor,
        }
    }

    /// Writes held for the peer (the backlog gauge).
    pub fn backlog(&self) -> usize {
        self.writes.len()
    }

    /// When to look again, at `now_ms`: the next due write, at most `IDLE_WAKE` away (new
    /// writes wake the shell anyway), or soon when the link is paused.
    pub fn next_wake(&self, now_ms: u64, paused: bool) -> u64 {
        if paused {
            return now_ms.saturating_add(PAUSED_WAKE.as_millis() as u64);
        }
        let idle = now_ms.saturating_add(IDLE_WAKE.as_millis() as u64);
        match self.queue.peek() {
            Some(Reverse((due, _))) => (*due).clamp(now_ms, idle),
            None => idle,
        }
    }

    /// Feeds the whole state to `h` in a canonical order, so two machines in the same state
    /// hash alike: the queue and the held writes are kept in orders (a heap, a `HashMap`) that
    /// depend on their history, so they are sorted first. A held write is named by its version:
    /// a version names exactly one write. For a model checker's set of visited states.
    pub fn fingerprint<H: Hasher>(&self, h: &mut H) {
        self.cursor.hash(h);
        let mut queue: Vec<(u64, Timestamp)> = self.queue.iter().map(|Reverse(e)| *e).collect();
        queue.sort_unstable();
        queue.hash(h);
        let mut held: Vec<_> = self.writes.iter().map(|(ts, w)| (*ts, w.version())).collect();
        held.sort_unstable();
        held.hash(h);
        self.undelivered.hash(h);
        self.unconfirmed.hash(h);
        (self.in_flight, self.failing, self.cap).hash(h);
        (self.backoff, self.max_backoff).hash(h);
    }
}
