//! Membership while the region runs: the tasks of a peer start when it joins and stop when it
//! leaves, and each change is saved before it takes effect. The rules of who is answered are
//! in `members`; this is the I/O around them.
//!
//! A region that joins bootstraps by anti-entropy (its first round with each member starts at
//! once); delivery from the outbox covers only what is still in it. A region that is removed
//! is fenced (see `members`), its writes no longer awaited by outbox compaction and tombstone
//! collection. A region that leaves on its own first drains: it waits until every member has
//! acknowledged its writes, or reports, per member, what has not arrived.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use edgekv_core::{RegionId, Timers, Timestamp};
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::members::{Change, Refusal};
use crate::transport::Transport;
use crate::{anti_entropy, sender, PeerConfig, PeerState, Shared};

/// How often a drain looks at the members' acknowledgements.
const DRAIN_POLL: Duration = Duration::from_millis(50);

/// What runs a region's replication: its shared state and everything needed to start the
/// tasks of a peer that joins.
pub(crate) struct Runtime {
    pub(crate) shared: Arc<Shared>,
    pub(crate) transport: Arc<dyn Transport>,
    timers: Arc<dyn Timers>,
    shutdown: CancellationToken,
    max_backoff: Duration,
    outbox_peer_cap: usize,
    pub(crate) tasks: Mutex<Vec<JoinHandle<()>>>,
    /// One membership change at a time, from its check to its effect.
    changing: Mutex<()>,
}

/// A member as this region sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// The region.
    pub name: RegionId,
    /// Its gRPC endpoint.
    pub url: String,
    /// Whether it is a member now (or was removed).
    pub member: bool,
    /// Stores of it born before this are refused (zero: it never was removed).
    pub fence: Timestamp,
    /// Every write of this region at or below this has reached it (members only).
    pub acked_through: Timestamp,
    /// Writes of this region it has not acknowledged yet (members only).
    pub backlog: usize,
}

/// What removing a member left behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removed {
    /// The region removed.
    pub region: RegionId,
    /// Writes of this region it had not acknowledged: they will not reach it now.
    pub undelivered: usize,
}

/// How draining the outbox ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drained {
    /// Every write of this region up to here was to be acknowledged by every member.
    pub through: Timestamp,
    /// The members that had not acknowledged it all, with how many writes they lack.
    pub pending: Vec<(RegionId, usize)>,
}

/// Why a membership change was refused.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    /// The change itself is refused (this region, not a member).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The endpoint is not a usable URL.
    #[error("invalid peer URL {0:?}: expected http://host:port")]
    Url(String),
    /// The change could not be saved; nothing changed.
    #[error("the membership could not be saved: {0}")]
    Store(String),
}

/// A handle on the region's membership: list, add, remove, drain. Cheap to clone.
#[derive(Clone)]
pub struct Members(pub(crate) Arc<Runtime>);

impl std::fmt::Debug for Members {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Members({})", self.0.shared.members.read())
    }
}

impl Runtime {
    pub(crate) fn new(
        shared: Arc<Shared>,
        transport: Arc<dyn Transport>,
        timers: Arc<dyn Timers>,
        shutdown: CancellationToken,
        config: &crate::ReplicationConfig,
    ) -> Self {
        Runtime {
            shared,
            transport,
            timers,
            shutdown,
            max_backoff: config.max_backoff,
            outbox_peer_cap: config.outbox_peer_cap,
            tasks: Mutex::new(Vec::new()),
            changing: Mutex::new(()),
        }
    }

    /// Starts delivery and anti-entropy towards `peer`, resumed where the store left them.
    pub(crate) fn start_peer(&self, peer: RegionId) -> Arc<PeerState> {
        let stop = self.shutdown.child_token();
        let store = &*self.shared.store;
        let state = Arc::new(PeerState::resume(
            self.max_backoff,
            self.outbox_peer_cap,
            store,
            peer,
            stop.clone(),
        ));
        self.shared.peers.write().push(Arc::clone(&state));
        let sender = sender::Sender::new(
            Arc::clone(&self.shared),
            Arc::clone(&state),
            Arc::clone(&self.transport),
            Arc::clone(&self.timers),
        );
        let mut tasks = self.tasks.lock();
        tasks.retain(|t| !t.is_finished());
        tasks.push(tokio::spawn(sender.run(stop.clone())));
        tasks.push(tokio::spawn(anti_entropy::run(
            Arc::clone(&self.shared),
            Arc::clone(&state),
            Arc::clone(&self.transport),
            Arc::clone(&self.timers),
            stop,
        )));
        state
    }

    /// Stops the tasks of `peer`; how many of this region's writes it had not acknowledged.
    fn stop_peer(&self, peer: RegionId) -> usize {
        let mut peers = self.shared.peers.write();
        let Some(at) = peers.iter().position(|p| p.name == peer) else { return 0 };
        let state = peers.remove(at);
        drop(peers);
        state.stop.cancel();
        let undelivered = state.machine.lock().backlog();
        undelivered
    }

    /// Saves `next` and makes it the membership, or changes nothing.
    fn install(&self, next: crate::Membership) -> Result<(), MemberError> {
        let store = &self.shared.store;
        store
            .save_membership_record(&next.encode())
            .map_err(|e| MemberError::Store(e.to_string()))?;
        store.declare_regions(&next.regions());
        *self.shared.members.write() = next;
        Ok(())
    }
}

impl Members {
    /// Every region this one knows, members and removed ones.
    pub fn list(&self) -> Vec<PeerStatus> {
        let shared = &self.0.shared;
        let peers = shared.peers.read().clone();
        let members = shared.members.read();
        members
            .known()
            .map(|(name, peer)| {
                let state = peers.iter().find(|p| p.name == name);
                PeerStatus {
                    name,
                    url: peer.url.clone(),
                    member: peer.member,
                    fence: peer.fence,
                    acked_through: state.map_or(Timestamp(0), |s| {
                        Timestamp(s.acked_through.load(Ordering::Relaxed))
                    }),
                    backlog: state.map_or(0, |s| s.machine.lock().backlog()),
                }
            })
            .collect()
    }

    /// Every member, this region included.
    pub fn regions(&self) -> Vec<RegionId> {
        self.0.shared.members.read().regions()
    }

    /// Makes `peer` a member at its endpoint (or moves it there). A region that joins gets
    /// its first anti-entropy round at once: that is how a new or wiped region fills up.
    pub fn add(&self, peer: &PeerConfig) -> Result<Change, MemberError> {
        if !valid_url(&peer.url) {
            return Err(MemberError::Url(peer.url.clone()));
        }
        let runtime = &self.0;
        let _one_at_a_time = runtime.changing.lock();
        let mut next = runtime.shared.members.read().clone();
        let change = next.add(peer)?;
        if change == Change::Unchanged {
            return Ok(change);
        }
        runtime.transport.connect(peer).map_err(|_| MemberError::Url(peer.url.clone()))?;
        if let Err(error) = runtime.install(next) {
            if change == Change::Joined {
                runtime.transport.disconnect(peer.name);
            }
            return Err(error);
        }
        if change == Change::Joined {
            let store = &runtime.shared.store;
            store.enable_outbox();
            // The outbox holds writes older than the join, some of them overwritten or deleted
            // since by other regions, whose tombstones may be forgotten before these arrive.
            // A region that joins takes the present state by anti-entropy instead, and from
            // the outbox only what is written from now on.
            store.save_delivery_position(peer.name.as_str(), store.outbox_frontier());
            // Compared with at once: a region that joins may be new or wiped.
            runtime.start_peer(peer.name).ae_now.notify_one();
            tracing::info!(peer = %peer.name, url = %peer.url, "a region joined");
        } else {
            tracing::info!(peer = %peer.name, url = %peer.url, "a region moved");
        }
        Ok(change)
    }

    /// Takes `region` out of the cluster: its tasks stop, nothing waits for it any more, and
    /// the store it has now is refused should it come back.
    pub fn remove(&self, region: RegionId) -> Result<Removed, MemberError> {
        let runtime = &self.0;
        let _one_at_a_time = runtime.changing.lock();
        let mut next = runtime.shared.members.read().clone();
        next.remove(region, runtime.shared.store.hlc().now())?;
        runtime.install(next)?;
        let undelivered = runtime.stop_peer(region);
        runtime.transport.disconnect(region);
        tracing::info!(peer = %region, undelivered, "a region was removed");
        Ok(Removed { region, undelivered })
    }

    /// Waits, up to `timeout`, until every member has acknowledged every write this region
    /// had accepted when the drain began.
    pub async fn drain(&self, timeout: Duration) -> Drained {
        let shared = &self.0.shared;
        let through = shared.store.outbox_frontier();
        let started = shared.store.hlc().physical_now_ms();
        loop {
            let pending: Vec<(RegionId, usize)> = shared
                .peers
                .read()
                .iter()
                .filter(|p| p.acked_through.load(Ordering::Relaxed) < through.0)
                .map(|p| (p.name, p.machine.lock().backlog()))
                .collect();
            let waited = shared.store.hlc().physical_now_ms().saturating_sub(started);
            if pending.is_empty() || waited >= timeout.as_millis() as u64 {
                return Drained { through, pending };
            }
            for peer in shared.peers.read().iter() {
                peer.wake.notify_one();
            }
            self.0.timers.sleep(DRAIN_POLL).await;
        }
    }
}

/// Whether `url` can be a peer's endpoint: an http(s) URL with a host, nothing that would not
/// survive the saved record's one-line format.
fn valid_url(url: &str) -> bool {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    rest.is_some_and(|r| !r.is_empty()) && url.chars().all(|c| c.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    #[test]
    fn peer_urls_are_http_with_a_host_and_nothing_odd() {
        for good in ["http://127.0.0.1:9787", "https://weur-0.weur:9787"] {
            assert!(super::valid_url(good), "{good}");
        }
        for bad in ["", "http://", "127.0.0.1:9787", "http://a b", "http://a\nb", "ftp://x"] {
            assert!(!super::valid_url(bad), "{bad:?}");
        }
    }
}
