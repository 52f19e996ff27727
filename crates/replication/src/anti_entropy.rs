//! The caller's side of anti-entropy, one task per peer.
//!
//! A round compares digest roots (one small exchange when nothing differs), then branch hashes,
//! then the items of the differing leaves, and finally takes the peer's newer writes and pushes
//! the ones it wants. Rounds run on a jittered interval, and at once when a sender finds its
//! peer reachable again or gives up on a backlog.
//!
//! A round is skipped while a fault cuts or pauses the link, or while an extra-delay fault makes
//! the link slower than the digest horizon: repairing then would deliver writes sooner than the
//! link is meant to.

use std::sync::Arc;

use edgekv_core::digest::{differing, LeafId, FANOUT};
use edgekv_core::Timestamp;
use edgekv_core::{ItemId, ReplicatedWrite};
use edgekv_proto::pb;
use tokio_util::sync::CancellationToken;

use crate::service::{Applied, MAX_RECONCILE_LEAVES};
use crate::{PeerClient, PeerState, Shared};

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
    client: PeerClient,
    shutdown: CancellationToken,
) {
    let mut jitter = shared.seed ^ u64::from_le_bytes(fnv(peer.name.as_str()).to_le_bytes());
    loop {
        jitter = jitter.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        // Between 0.75 and 1.25 of the interval, so peers do not all sync at once.
        let factor = 0.75 + ((jitter >> 33) % 1000) as f64 / 2000.0;
        let wait = shared.ae_interval.mul_f64(factor);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = peer.ae_now.notified() => {}
        }
        let name = peer.name.as_str();
        if !eligible(&shared, name) {
            shared.metrics.ae_rounds.with(&[name, "skipped"]).inc();
            continue;
        }
        let started = shared.store.hlc().physical_now_ms();
        match round(&shared, name, &client).await {
            Ok(report) => {
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
                // Everything older than the horizon at the start of the round is now on both
                // sides, including writes the sender lost.
                let horizon = shared.store.digest_horizon().as_millis() as u64;
                let through = Timestamp::from_physical_ms(started.saturating_sub(horizon));
                peer.pending.lock().confirm_through(through);
            }
            Err(status) => {
                shared.metrics.ae_rounds.with(&[name, "failed"]).inc();
                tracing::debug!(peer = name, error = %status.message(), "anti-entropy round failed");
            }
        }
    }
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
    peer: &str,
    client: &PeerClient,
) -> Result<RoundReport, tonic::Status> {
    let mut report = RoundReport::default();
    let me = shared.region.as_str().to_owned();
    let through = shared.replicated_through.load(std::sync::atomic::Ordering::Relaxed);
    let store = &shared.store;
    store.mature();

    // 1. Roots.
    let root = store.digest_root();
    let request = pb::DigestRequest {
        sender: me.clone(),
        root,
        branches: Vec::new(),
        replicated_through: through,
    };
    shared.metrics.messages_sent.with(&[peer, "digest"]).inc();
    let response = client.clone().digest(request).await?.into_inner();
    report.round_trips += 1;
    report.bytes += 16;
    if response.root == root {
        return Ok(report);
    }

    // 2. Branches; the peer answers with its leaves under the branches that differ.
    let branches = store.digest_branches();
    report.bytes += (branches.len() * 8) as u64;
    let request = pb::DigestRequest {
        sender: me.clone(),
        root,
        branches: branches.clone(),
        replicated_through: through,
    };
    shared.metrics.messages_sent.with(&[peer, "digest"]).inc();
    let response = client.clone().digest(request).await?.into_inner();
    report.round_trips += 1;
    let mut leaves = Vec::new();
    for theirs in response.differing {
        let branch = theirs.branch as usize;
        if branch >= FANOUT {
            continue;
        }
        report.bytes += (theirs.leaves.len() * 8) as u64;
        let mine = store.digest_leaves(&[branch]).pop().unwrap_or_default();
        for leaf in differing(&mine, &theirs.leaves) {
            if leaf < FANOUT {
                leaves.push(LeafId((branch * FANOUT + leaf) as u16));
            }
        }
    }

    // 3. Items of the differing leaves, in chunks; take what is newer there, push what is
    //    newer here.
    for chunk in leaves.chunks(MAX_RECONCILE_LEAVES) {
        let items = store.digest_members(chunk);
        let request = pb::ReconcileRequest {
            sender: me.clone(),
            leaves: chunk.iter().map(|l| u32::from(l.0)).collect(),
            items: items.iter().map(|(item, v)| pb::ItemVersion::from((item, *v))).collect(),
        };
        report.bytes += (items.len() * 64) as u64;
        shared.metrics.messages_sent.with(&[peer, "reconcile"]).inc();
        let response = client.clone().reconcile(request).await?.into_inner();
        report.round_trips += 1;
        for write in response.newer {
            let Ok(write) = ReplicatedWrite::try_from(write) else {
                shared.metrics.reject("malformed");
                continue;
            };
            report.bytes += write.size_hint() as u64;
            if shared.apply_remote(write, "anti_entropy") == Applied::Changed {
                report.pulled += 1;
            }
        }
        let wanted: Vec<ReplicatedWrite> = response
            .wanted
            .into_iter()
            .filter_map(|item| <(ItemId, edgekv_core::Version)>::try_from(item).ok())
            .filter_map(|(item, _)| store.current(&item))
            .filter(|write| shared.is_mature(write.version().ts))
            .collect();
        for batch in wanted.chunks(PUSH_CHUNK) {
            let request = pb::PushRequest {
                sender: me.clone(),
                writes: batch.iter().map(pb::Write::from).collect(),
                replicated_through: through,
            };
            report.bytes += batch.iter().map(|w| w.size_hint() as u64).sum::<u64>();
            shared.metrics.messages_sent.with(&[peer, "push"]).inc();
            let response = client.clone().push(request).await?.into_inner();
            report.round_trips += 1;
            report.pushed += u64::from(response.applied);
        }
    }
    Ok(report)
}
