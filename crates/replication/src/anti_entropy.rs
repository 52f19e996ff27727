//! The caller's side of anti-entropy, one task per peer.
//!
//! A round compares digest roots (one small exchange when nothing differs), then branch hashes,
//! then the items of the differing leaves, and finally takes the peer's newer writes and pushes
//! the ones it wants. Rounds run on a jittered interval, and at once when a sender finds its
//! peer reachable again or gives up on a backlog. A round is a short sequence of exchanges over
//! the [`Transport`] with the logic between them, readable as it is, so it stays one async
//! function rather than a state machine; tests drive it over the in-memory transport.
//!
//! A round is skipped while a fault cuts or pauses the link, or while an extra-delay fault makes
//! the link slower than the digest horizon: repairing then would deliver writes sooner than the
//! link is meant to.

use std::sync::Arc;

use edgekv_core::digest::{differing, LeafId, FANOUT};
use edgekv_core::{RegionId, ReplicatedWrite, Timers, Timestamp};
use tokio_util::sync::CancellationToken;

use crate::handler::{Applied, MAX_RECONCILE_LEAVES};
use crate::messages::{DigestQuery, Purpose, Push, ReconcileQuery, TransportError};
use crate::transport::Transport;
use crate::{PeerState, Shared};

/// Most writes pushed in one anti-entropy Push.
const PUSH_CHUNK: usize = 256;

/// What one round found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoundReport {
    /// Round trips made.
    pub round_trips: u32,
    /// Approximate bytes exchanged (hashes, item lists and writes).
    pub bytes: u64,
    /// Writes taken from the peer.
    pub pulled: u64,
    /// Writes pushed to the peer.
    pub pushed: u64,
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    peer: Arc<PeerState>,
    transport: Arc<dyn Transport>,
    timers: Arc<dyn Timers>,
    shutdown: CancellationToken,
) {
    let mut jitter = shared.seed ^ fnv(peer.name.as_str());
    loop {
        jitter = jitter.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        // Between 0.75 and 1.25 of the interval, so peers do not all sync at once.
        let factor = 0.75 + ((jitter >> 33) % 1000) as f64 / 2000.0;
        let wait = timers.sleep(shared.ae_interval.mul_f64(factor));
        tokio::select! {
            // In order, not at random: a simulation must replay the same choice.
            biased;
            _ = shutdown.cancelled() => return,
            _ = wait => {}
            _ = peer.ae_now.notified() => {}
        }
        let name = peer.name.as_str();
        if !eligible(&shared, name) {
            shared.metrics.ae_rounds.with(&[name, "skipped"]).inc();
            continue;
        }
        let started = shared.store.hlc().physical_now_ms();
        match round(&shared, peer.name, transport.as_ref()).await {
            Ok(report) => finished(&shared, &peer, report, started),
            Err(error) => {
                shared.metrics.ae_rounds.with(&[name, "failed"]).inc();
                tracing::debug!(peer = name, %error, "anti-entropy round failed");
            }
        }
    }
}

/// Records a round that succeeded: metrics, and the confirmation it gives the sender.
fn finished(shared: &Shared, peer: &PeerState, report: RoundReport, started_ms: u64) {
    let name = peer.name.as_str();
    let result = if report.pulled + report.pushed == 0 { "equal" } else { "repaired" };
    shared.metrics.ae_rounds.with(&[name, result]).inc();
    shared.metrics.ae_repaired.with(&[name, "pulled"]).add(report.pulled);
    shared.metrics.ae_repaired.with(&[name, "pushed"]).add(report.pushed);
    if report.pulled + report.pushed > 0 {
        tracing::info!(
            peer = name,
            pulled = report.pulled,
            pushed = report.pushed,
            "anti-entropy repaired"
        );
    }
    // Everything older than the horizon at the start of the round is now on both sides,
    // including writes the sender lost.
    let horizon = shared.store.digest_horizon().as_millis() as u64;
    let through = Timestamp::from_physical_ms(started_ms.saturating_sub(horizon));
    peer.machine.lock().confirm_through(through);
}

fn fnv(s: &str) -> u64 {
    s.bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn eligible(shared: &Shared, peer: &str) -> bool {
    let me = shared.region.as_str();
    let faults = &shared.faults;
    if faults.blocked(me, peer) || faults.blocked(peer, me) || faults.paused(me, peer) {
        return false;
    }
    let horizon = shared.store.digest_horizon();
    [(me, peer), (peer, me)].iter().all(|(a, b)| {
        let extra = faults.max_extra_delay(a, b);
        extra.is_zero() || shared.delays.model(a, b).max() + extra <= horizon
    })
}

/// One anti-entropy round with `peer`.
pub(crate) async fn round(
    shared: &Shared,
    peer: RegionId,
    transport: &dyn Transport,
) -> Result<RoundReport, TransportError> {
    let mut report = RoundReport::default();
    shared.store.mature();
    let Some(leaves) = differing_leaves(shared, peer, transport, &mut report).await? else {
        return Ok(report);
    };
    for chunk in leaves.chunks(MAX_RECONCILE_LEAVES) {
        reconcile(shared, peer, transport, chunk, &mut report).await?;
    }
    Ok(report)
}

/// Compares roots, then branches: the leaves whose hashes differ, or `None` when the roots
/// are equal.
async fn differing_leaves(
    shared: &Shared,
    peer: RegionId,
    transport: &dyn Transport,
    report: &mut RoundReport,
) -> Result<Option<Vec<LeafId>>, TransportError> {
    let store = &shared.store;
    let through = shared.replicated_through.load(std::sync::atomic::Ordering::Relaxed);
    let root = store.digest_root();
    let query = DigestQuery {
        sender: shared.region,
        born: shared.born,
        root,
        branches: Vec::new(),
        replicated_through: through,
    };
    let reply = transport.digest(peer, query).await?;
    shared.check_member(peer, reply.born)?;
    report.round_trips += 1;
    report.bytes += 16;
    if reply.root == root {
        return Ok(None);
    }
    // The peer answers with its leaves under the branches that differ.
    let branches = store.digest_branches();
    report.bytes += (branches.len() * 8) as u64;
    let query = DigestQuery {
        sender: shared.region,
        born: shared.born,
        root,
        branches,
        replicated_through: through,
    };
    let reply = transport.digest(peer, query).await?;
    report.round_trips += 1;
    let mut leaves = Vec::new();
    for (branch, theirs) in reply.differing {
        if branch >= FANOUT {
            continue;
        }
        report.bytes += (theirs.len() * 8) as u64;
        let mine = store.digest_leaves(&[branch]).pop().unwrap_or_default();
        for leaf in differing(&mine, &theirs) {
            if leaf < FANOUT {
                leaves.push(LeafId((branch * FANOUT + leaf) as u16));
            }
        }
    }
    Ok(Some(leaves))
}

/// The items of some differing leaves: takes what is newer there, pushes what is newer here.
async fn reconcile(
    shared: &Shared,
    peer: RegionId,
    transport: &dyn Transport,
    leaves: &[LeafId],
    report: &mut RoundReport,
) -> Result<(), TransportError> {
    let store = &shared.store;
    let items = store.digest_members(leaves);
    report.bytes += (items.len() * 64) as u64;
    let query = ReconcileQuery {
        sender: shared.region,
        born: shared.born,
        leaves: leaves.iter().map(|l| l.0).collect(),
        items,
    };
    let reply = transport.reconcile(peer, query).await?;
    shared.check_member(peer, reply.born)?;
    report.round_trips += 1;
    for write in reply.newer {
        report.bytes += write.size_hint() as u64;
        if shared.apply_remote(write, "anti_entropy") == Applied::Changed {
            report.pulled += 1;
        }
    }
    let wanted: Vec<ReplicatedWrite> = reply
        .wanted
        .into_iter()
        .filter_map(|(item, _)| store.current(&item))
        .filter(|write| shared.is_mature(write.version().ts))
        .collect();
    let through = shared.replicated_through.load(std::sync::atomic::Ordering::Relaxed);
    for batch in wanted.chunks(PUSH_CHUNK) {
        report.bytes += batch.iter().map(|w| w.size_hint() as u64).sum::<u64>();
        let push = Push {
            sender: shared.region,
            born: shared.born,
            writes: batch.to_vec(),
            replicated_through: through,
            purpose: Purpose::Repair,
        };
        let reply = transport.push(peer, push).await?;
        report.round_trips += 1;
        report.pushed += u64::from(reply.applied);
    }
    Ok(())
}
