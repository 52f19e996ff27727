//! One sender per peer: delivers this region's outbox to the peer when each write is due.
//!
//! A write is due on a link at its origin time plus a delay sampled from the link's model (and
//! any extra-delay fault), so it becomes visible at the peer no sooner than the link's delay.
//! The sender keeps the writes it has scheduled in a min-heap by due time, sends whatever is due
//! in batches, and on failure puts the batch back with a capped exponential backoff: the outbox
//! is the delay line and the retry queue at once. Receivers apply idempotently, so a batch sent
//! twice (a retry after a lost reply, an injected duplicate) changes nothing.
//!
//! The sender also tracks what the peer has for sure: every scheduled write not yet acknowledged
//! (and every write lost to an injected fault or an overflow, until anti-entropy has confirmed
//! the peer caught up) holds back the peer's acknowledged watermark, which in turn holds back
//! outbox compaction and tombstone collection.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use edgekv_core::ReplicatedWrite;
use edgekv_core::Timestamp;
use edgekv_proto::pb;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{PeerClient, PeerState, Shared};

/// Most writes in one Push.
const MAX_BATCH_WRITES: usize = 512;
/// Most bytes of writes in one Push (a single larger write still goes alone).
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// How many outbox writes are scheduled per refill.
const REFILL: usize = 4096;
/// First retry delay after a failed delivery; it doubles up to the configured cap.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// The per-peer delivery task.
pub(crate) struct Sender {
    shared: Arc<Shared>,
    peer: Arc<PeerState>,
    client: PeerClient,
    /// The newest outbox timestamp scheduled for this peer.
    cursor: Timestamp,
    /// (due time in ms on this region's clock, write timestamp), soonest first.
    queue: BinaryHeap<Reverse<(u64, Timestamp)>>,
    writes: HashMap<Timestamp, ReplicatedWrite>,
    backoff: Duration,
    failing: bool,
}

impl Sender {
    pub(crate) fn new(shared: Arc<Shared>, peer: Arc<PeerState>, client: PeerClient) -> Self {
        // Everything at or below the peer's saved position is there; the sender resumes
        // after it, and each write keeps the due time its timestamp and the seed give it.
        let cursor = Timestamp(peer.acked_through.load(Ordering::Relaxed));
        Sender {
            shared,
            peer,
            client,
            cursor,
            queue: BinaryHeap::new(),
            writes: HashMap::new(),
            backoff: FIRST_BACKOFF,
            failing: false,
        }
    }

    /// Runs until `shutdown`.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        loop {
            // Let writers that woke us finish their burst, so one Push carries it whole rather
            // than one RPC per write: the wait is one scheduler turn, far below a millisecond.
            tokio::task::yield_now().await;
            self.refill();
            let now = self.shared.store.hlc().physical_now_ms();
            if !self.paused() {
                while let Some(batch) = self.take_due(now) {
                    let delivered = self.deliver(batch).await;
                    if !delivered {
                        break;
                    }
                }
            }
            self.publish();
            let wait = self.next_wake();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.peer.wake.notified() => {}
                _ = tokio::time::sleep_until(wait) => {}
            }
        }
    }

    fn paused(&self) -> bool {
        self.shared.faults.paused(self.shared.region.as_str(), self.peer.name.as_str())
    }

    /// Schedules outbox writes newer than the cursor.
    fn refill(&mut self) {
        let (me_id, peer_id) = (self.shared.region, self.peer.name);
        let (me, peer) = (me_id.as_str(), peer_id.as_str());
        loop {
            let fresh = self.shared.store.outbox_after(self.cursor, REFILL);
            let n = fresh.len();
            for write in fresh {
                let ts = write.version().ts;
                let delay = self.shared.delays.sample(self.shared.seed, me, ts.0, peer)
                    + self.shared.faults.extra_delay(me, peer, ts.0);
                let due = ts.physical_ms().saturating_add(delay.as_millis() as u64);
                self.queue.push(Reverse((due, ts)));
                self.writes.insert(ts, write);
                self.peer.pending.lock().undelivered.insert(ts);
                self.cursor = ts;
            }
            if n < REFILL {
                break;
            }
        }
        if self.writes.len() > self.shared.outbox_peer_cap {
            self.overflow();
        }
    }

    /// Too much backlog for one peer: stop holding it, and let anti-entropy repair the peer.
    fn overflow(&mut self) {
        let mut pending = self.peer.pending.lock();
        let held: Vec<Timestamp> = self.writes.keys().copied().collect();
        for ts in held {
            pending.undelivered.remove(&ts);
            pending.unconfirmed.insert(ts);
        }
        drop(pending);
        self.writes.clear();
        self.queue.clear();
        self.shared.metrics.overflows.with(&[self.peer.name.as_str()]).inc();
        tracing::warn!(peer = %self.peer.name, "backlog over its cap; left to anti-entropy");
        self.peer.ae_now.notify_one();
    }

    /// Pops the writes due at `now`, up to the batch limits.
    fn take_due(&mut self, now: u64) -> Option<Vec<ReplicatedWrite>> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(Reverse((due, ts))) = self.queue.peek().copied() {
            if due > now || batch.len() >= MAX_BATCH_WRITES {
                break;
            }
            let Some(write) = self.writes.get(&ts) else {
                self.queue.pop();
                continue;
            };
            if !batch.is_empty() && bytes + write.size_hint() > MAX_BATCH_BYTES {
                break;
            }
            self.queue.pop();
            bytes += write.size_hint();
            batch.push(write.clone());
        }
        (!batch.is_empty()).then_some(batch)
    }

    /// Sends one batch. Returns whether the link worked (so more due batches may follow).
    async fn deliver(&mut self, batch: Vec<ReplicatedWrite>) -> bool {
        let (me_id, peer_id) = (self.shared.region, self.peer.name);
        let (me, peer) = (me_id.as_str(), peer_id.as_str());
        let faults = Arc::clone(&self.shared.faults);
        if faults.blocked(me, peer) {
            self.shared.metrics.fault_effects.with(&[peer, "blocked"]).inc();
            self.retry(batch);
            return false;
        }
        if faults.roll_loss(me, peer) {
            self.shared.metrics.fault_effects.with(&[peer, "lost"]).inc();
            let mut pending = self.peer.pending.lock();
            for write in &batch {
                let ts = write.version().ts;
                pending.undelivered.remove(&ts);
                pending.unconfirmed.insert(ts);
                self.writes.remove(&ts);
            }
            return true;
        }
        let copies = if faults.roll_duplicate(me, peer) {
            self.shared.metrics.fault_effects.with(&[peer, "duplicated"]).inc();
            2
        } else {
            1
        };
        let bytes: usize = batch.iter().map(ReplicatedWrite::size_hint).sum();
        let request = pb::PushRequest {
            sender: me.to_owned(),
            writes: batch.iter().map(pb::Write::from).collect(),
            replicated_through: self.shared.replicated_through.load(Ordering::Relaxed),
        };
        let mut outcome = Ok(pb::PushResponse::default());
        for _ in 0..copies {
            self.shared.metrics.messages_sent.with(&[peer, "push"]).inc();
            outcome = self.client.clone().push(request.clone()).await.map(|r| r.into_inner());
            if outcome.is_err() {
                break;
            }
        }
        match outcome {
            Ok(response) => {
                self.shared.metrics.bytes_sent.with(&[peer]).add(bytes as u64);
                self.acknowledge(batch, &response.refused);
                if self.failing {
                    self.failing = false;
                    tracing::info!(peer, "peer reachable again");
                    self.peer.ae_now.notify_one();
                }
                self.backoff = FIRST_BACKOFF;
                true
            }
            Err(status) => {
                self.shared.metrics.send_failures.with(&[peer]).inc();
                if !self.failing {
                    tracing::info!(peer, error = %status.message(), "delivery failed; retrying with backoff");
                }
                self.failing = true;
                self.retry(batch);
                false
            }
        }
    }

    fn acknowledge(&mut self, batch: Vec<ReplicatedWrite>, refused: &[u32]) {
        let mut retry = Vec::new();
        let mut delivered = 0;
        {
            let mut pending = self.peer.pending.lock();
            for (i, write) in batch.into_iter().enumerate() {
                if refused.contains(&(i as u32)) {
                    retry.push(write);
                    continue;
                }
                let ts = write.version().ts;
                pending.undelivered.remove(&ts);
                self.writes.remove(&ts);
                delivered += 1;
            }
        }
        self.shared.metrics.writes_sent.with(&[self.peer.name.as_str()]).add(delivered);
        if !retry.is_empty() {
            // The peer's clock is behind these writes' timestamps; it will take them later.
            self.retry(retry);
        }
    }

    fn retry(&mut self, batch: Vec<ReplicatedWrite>) {
        let at = self
            .shared
            .store
            .hlc()
            .physical_now_ms()
            .saturating_add(self.backoff.as_millis() as u64);
        for write in batch {
            self.queue.push(Reverse((at, write.version().ts)));
        }
        self.backoff = (self.backoff * 2).min(self.shared.max_backoff);
    }

    /// Publishes the acknowledged watermark and the backlog gauge.
    fn publish(&self) {
        let through = self.peer.pending.lock().acknowledged_through(self.cursor);
        self.peer.acked_through.store(through.0, Ordering::Relaxed);
        self.shared
            .metrics
            .outbox_depth
            .with(&[self.peer.name.as_str()])
            .set(self.writes.len() as i64);
    }

    /// When to look again: the next due write, or in a while if nothing is queued (new writes
    /// wake the sender anyway).
    fn next_wake(&self) -> Instant {
        let idle = Instant::now() + Duration::from_secs(1);
        if self.paused() {
            return Instant::now() + Duration::from_millis(100);
        }
        match self.queue.peek() {
            Some(Reverse((due, _))) => {
                let now = self.shared.store.hlc().physical_now_ms();
                Instant::now()
                    + Duration::from_millis(due.saturating_sub(now)).min(Duration::from_secs(1))
            }
            None => idle,
        }
    }
}

/// What a peer does not have for sure yet.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Scheduled and not yet acknowledged.
    pub(crate) undelivered: BTreeSet<Timestamp>,
    /// Lost (injected loss, overflow) and not yet confirmed by anti-entropy.
    pub(crate) unconfirmed: BTreeSet<Timestamp>,
}

impl Pending {
    /// The timestamp through which the peer has every write: just below the oldest write it may
    /// lack, or `cursor` (the newest scheduled) when it lacks none.
    pub(crate) fn acknowledged_through(&self, cursor: Timestamp) -> Timestamp {
        let oldest =
            [self.undelivered.first(), self.unconfirmed.first()].into_iter().flatten().min();
        match oldest {
            Some(ts) => Timestamp(ts.0.saturating_sub(1)),
            None => cursor,
        }
    }

    /// Anti-entropy found the peer holding everything up to `through`: lost writes at or below
    /// it no longer hold the watermark back.
    pub(crate) fn confirm_through(&mut self, through: Timestamp) {
        let keep = self.unconfirmed.split_off(&Timestamp(through.0.saturating_add(1)));
        self.unconfirmed = keep;
    }
}
