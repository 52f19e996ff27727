//! Replication metrics, registered in the node's [`Registry`].

use std::sync::Arc;

use edgekv_metrics::{Counter, Family, Gauge, Histogram, Registry};

/// Buckets of the lag histogram, in seconds: fine below a second (delay-0 fidelity), then up
/// to past the 60 s propagation window.
const LAG_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 300.0,
];

/// Every replication series of a node.
#[derive(Debug)]
pub struct ReplicationMetrics {
    /// Origin write time to apply time, per origin region, for writes delivered by the outbox.
    pub lag: Arc<Family<Histogram>>,
    /// Writes in the outbox not yet delivered to each peer.
    pub outbox_depth: Arc<Family<Gauge>>,
    /// Replication RPCs sent, per peer and rpc.
    pub messages_sent: Arc<Family<Counter>>,
    /// Bytes of writes sent, per peer.
    pub bytes_sent: Arc<Family<Counter>>,
    /// Writes delivered, per peer.
    pub writes_sent: Arc<Family<Counter>>,
    /// Failed deliveries (peer down, partition), per peer.
    pub send_failures: Arc<Family<Counter>>,
    /// Writes applied from peers, per origin and path (`push`, `anti_entropy`).
    pub applied: Arc<Family<Counter>>,
    /// Peer messages or writes refused, per reason (`auth`, `malformed`, `skew`, `partition`,
    /// `account`).
    pub rejected: Arc<Family<Counter>>,
    /// Anti-entropy rounds, per peer and result (`equal`, `repaired`, `failed`, `skipped`).
    pub ae_rounds: Arc<Family<Counter>>,
    /// Entries repaired by anti-entropy, per peer and direction (`pulled`, `pushed`).
    pub ae_repaired: Arc<Family<Counter>>,
    /// Deliveries affected by faults, per peer and effect (`lost`, `duplicated`, `blocked`).
    pub fault_effects: Arc<Family<Counter>>,
    /// Times a peer's backlog overflowed and was left to anti-entropy.
    pub overflows: Arc<Family<Counter>>,
    /// Faults in force, per kind.
    pub faults_active: Arc<Family<Gauge>>,
}

impl ReplicationMetrics {
    /// Registers the series in `registry`.
    pub fn register(registry: &Registry) -> Self {
        ReplicationMetrics {
            lag: registry.histogram(
                "edgekv_replication_lag_seconds",
                "Time from a write at its origin to its apply here, by origin region.",
                &["origin"],
                LAG_BUCKETS,
            ),
            outbox_depth: registry.gauge(
                "edgekv_outbox_depth",
                "Writes waiting in the outbox for each peer.",
                &["peer"],
            ),
            messages_sent: registry.counter(
                "edgekv_replication_messages_sent_total",
                "Replication RPCs sent.",
                &["peer", "rpc"],
            ),
            bytes_sent: registry.counter(
                "edgekv_replication_bytes_sent_total",
                "Approximate bytes of writes sent.",
                &["peer"],
            ),
            writes_sent: registry.counter(
                "edgekv_replication_writes_sent_total",
                "Writes delivered to each peer.",
                &["peer"],
            ),
            send_failures: registry.counter(
                "edgekv_replication_send_failures_total",
                "Failed deliveries, retried with backoff.",
                &["peer"],
            ),
            applied: registry.counter(
                "edgekv_replication_applied_total",
                "Writes from peers that changed this region's state.",
                &["origin", "path"],
            ),
            rejected: registry.counter(
                "edgekv_replication_rejected_total",
                "Peer messages or writes refused.",
                &["reason"],
            ),
            ae_rounds: registry.counter(
                "edgekv_anti_entropy_rounds_total",
                "Anti-entropy rounds by result.",
                &["peer", "result"],
            ),
            ae_repaired: registry.counter(
                "edgekv_anti_entropy_repaired_total",
                "Entries repaired by anti-entropy.",
                &["peer", "direction"],
            ),
            fault_effects: registry.counter(
                "edgekv_fault_effects_total",
                "Deliveries affected by injected faults.",
                &["peer", "effect"],
            ),
            overflows: registry.counter(
                "edgekv_outbox_overflows_total",
                "Times a peer's backlog overflowed and was left to anti-entropy.",
                &["peer"],
            ),
            faults_active: registry.gauge(
                "edgekv_faults_active",
                "Faults in force, by kind.",
                &["kind"],
            ),
        }
    }

    /// Counts a refused peer message or write.
    pub fn reject(&self, reason: &str) {
        self.rejected.with(&[reason]).inc();
    }
}
