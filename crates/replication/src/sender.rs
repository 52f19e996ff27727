//! One sender per peer: the shell around [`SenderMachine`] that does its I/O. It reads new
//! writes from the store's outbox, samples each one's due time (the link's delay model and any
//! extra-delay fault, a pure function of the seed, the link and the write), hands the machine's
//! batches to the transport, and sleeps until the machine's next wake-up or a new write.

pub(crate) mod machine;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use edgekv_core::Timers;
use tokio_util::sync::CancellationToken;

pub(crate) use machine::SenderMachine;
use machine::{Batch, Outcome, Settled};

use crate::messages::{Purpose, Push, TransportError};
use crate::transport::Transport;
use crate::{PeerState, Shared};

/// How many outbox writes are read per refill.
const REFILL: usize = 4096;

/// The delivery task of one peer.
pub(crate) struct Sender {
    shared: Arc<Shared>,
    peer: Arc<PeerState>,
    transport: Arc<dyn Transport>,
    timers: Arc<dyn Timers>,
}

impl Sender {
    pub(crate) fn new(
        shared: Arc<Shared>,
        peer: Arc<PeerState>,
        transport: Arc<dyn Transport>,
        timers: Arc<dyn Timers>,
    ) -> Self {
        Sender { shared, peer, transport, timers }
    }

    /// Runs until `shutdown`.
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        loop {
            // Let writers that woke us finish their burst, so one Push carries it whole rather
            // than one RPC per write: the wait is one scheduler turn, far below a millisecond.
            tokio::task::yield_now().await;
            self.refill();
            self.deliver_due().await;
            let now = self.now_ms();
            let wake = self.publish(now);
            let sleep = self.timers.sleep(std::time::Duration::from_millis(wake - now));
            tokio::select! {
                // In order, not at random: a simulation must replay the same choice.
                biased;
                _ = shutdown.cancelled() => return,
                _ = self.peer.wake.notified() => {}
                _ = sleep => {}
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.shared.store.hlc().physical_now_ms()
    }

    fn paused(&self) -> bool {
        self.shared.faults.paused(self.shared.region.as_str(), self.peer.name.as_str())
    }

    /// Offers the machine every outbox write after its cursor, each with its due time.
    fn refill(&self) {
        let (me, peer) = (self.shared.region.as_str(), self.peer.name.as_str());
        let mut machine = self.peer.machine.lock();
        loop {
            let fresh = self.shared.store.outbox_after(machine.cursor(), REFILL);
            let n = fresh.len();
            for write in fresh {
                let ts = write.version().ts;
                let delay = self.shared.delays.sample(self.shared.seed, me, ts.0, peer)
                    + self.shared.faults.extra_delay(me, peer, ts.0);
                machine.offer(write, ts.physical_ms().saturating_add(delay.as_millis() as u64));
            }
            if n < REFILL {
                break;
            }
        }
        if machine.over_cap() {
            let held = machine.overflow();
            drop(machine);
            self.shared.metrics.overflows.with(&[peer]).inc();
            tracing::warn!(peer, held, "backlog over its cap; left to anti-entropy");
            self.peer.ae_now.notify_one();
        }
    }

    /// Delivers batches as long as some are due and the link works.
    async fn deliver_due(&self) {
        loop {
            let now = self.now_ms();
            let batch = self.peer.machine.lock().take_due(now, self.paused());
            let Some(batch) = batch else { return };
            let outcome = self.send(&batch).await;
            let failed = outcome == Outcome::Failed;
            let bytes = batch.bytes();
            let settled = self.peer.machine.lock().settle(batch, outcome, self.now_ms());
            self.report(settled, bytes);
            if failed {
                return;
            }
        }
    }

    async fn send(&self, batch: &Batch) -> Outcome {
        let push = Push {
            sender: self.shared.region,
            born: self.shared.born,
            writes: batch.writes.clone(),
            replicated_through: self.shared.replicated_through.load(Ordering::Relaxed),
            purpose: Purpose::Delivery,
        };
        match self.transport.push(self.peer.name, push).await {
            Ok(reply) => Outcome::Delivered { refused: reply.refused },
            Err(TransportError::Lost) => Outcome::Lost,
            Err(error) => {
                self.shared.metrics.send_failures.with(&[self.peer.name.as_str()]).inc();
                if !self.peer.machine.lock().is_failing() {
                    let peer = self.peer.name.as_str();
                    tracing::info!(peer, %error, "delivery failed; retrying with backoff");
                }
                Outcome::Failed
            }
        }
    }

    fn report(&self, settled: Settled, bytes: usize) {
        let peer = self.peer.name.as_str();
        if settled.delivered > 0 {
            self.shared.metrics.writes_sent.with(&[peer]).add(settled.delivered);
            self.shared.metrics.bytes_sent.with(&[peer]).add(bytes as u64);
        }
        if settled.recovered {
            tracing::info!(peer, "peer reachable again");
            self.peer.ae_now.notify_one();
        }
    }

    /// Publishes the acknowledged watermark and the backlog gauge; returns when to wake.
    fn publish(&self, now: u64) -> u64 {
        let machine = self.peer.machine.lock();
        self.peer.acked_through.store(machine.acked_through().0, Ordering::Relaxed);
        let peer = self.peer.name.as_str();
        self.shared.metrics.outbox_depth.with(&[peer]).set(machine.backlog() as i64);
        machine.next_wake(now, self.paused())
    }
}

#[cfg(test)]
mod tests;
