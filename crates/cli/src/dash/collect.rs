//! The collector: once a second it reads every region's `/admin/status`, `/admin/faults` and
//! `/metrics` (in parallel, each bounded by a timeout, so a region that hangs shows as down
//! instead of stalling the page), records them in the [`Cluster`] and publishes a snapshot to
//! every page that listens.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use edgekv_core::ActiveFault;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::prom;
use super::state::{Cluster, Poll};
use crate::lab::client::{Client, Endpoint};

/// How often the regions are read and the page updated.
pub(crate) const TICK: Duration = Duration::from_secs(1);
/// How long one region's three reads may take before it is shown as down.
const POLL_TIMEOUT: Duration = Duration::from_millis(900);

/// Reads the regions each [`TICK`] until `shutdown`; every snapshot goes to `updates`.
/// `bases` are the regions' HTTP bases, `http://host:port` (the admin routes and `/metrics`
/// are there), in the cluster's order.
pub(crate) async fn run(
    bases: Vec<String>,
    admin_token: String,
    cluster: Arc<Mutex<Cluster>>,
    updates: broadcast::Sender<Arc<String>>,
    shutdown: CancellationToken,
) {
    let mut clients: Vec<Option<Client>> = bases
        .iter()
        .map(|base| Endpoint::parse(base).and_then(|e| Client::new(e, &admin_token)).ok())
        .collect();
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let polls = futures_util::future::join_all(clients.iter_mut().map(|client| async move {
            let Some(client) = client else { return Poll::Down("invalid URL".to_owned()) };
            match tokio::time::timeout(POLL_TIMEOUT, poll(client)).await {
                Ok(poll) => poll,
                Err(_) => Poll::Down(format!("no answer within {POLL_TIMEOUT:?}")),
            }
        }))
        .await;
        let now_ms = now_ms(started);
        let snapshot = {
            let mut cluster = cluster.lock();
            cluster.record(now_ms, polls);
            cluster.snapshot(now_ms)
        };
        // No page listening is not an error.
        let _ = updates.send(Arc::new(snapshot.to_string()));
    }
}

/// Milliseconds since the dashboard started: the page's clock for timelines.
pub(crate) fn now_ms(started: std::time::Instant) -> u64 {
    started.elapsed().as_millis() as u64
}

async fn poll(client: &mut Client) -> Poll {
    let status = match get_json(client, "/admin/status").await {
        Ok(status) => status,
        Err(why) => return Poll::Down(why),
    };
    let faults = match get_json(client, "/admin/faults").await {
        Ok(listing) => serde_json::from_value::<Vec<ActiveFault>>(listing["faults"].clone())
            .unwrap_or_default(),
        Err(why) => return Poll::Down(why),
    };
    let metrics = match client.call(Method::GET, "/metrics", None).await {
        Ok(reply) if reply.status == StatusCode::OK => {
            prom::parse(&String::from_utf8_lossy(&reply.body))
        }
        Ok(reply) => return Poll::Down(format!("/metrics answered {}", reply.status)),
        Err(err) => return Poll::Down(err.to_string()),
    };
    Poll::Up { status, faults, metrics }
}

async fn get_json(client: &mut Client, path: &str) -> Result<Value, String> {
    let reply = client.call(Method::GET, path, None).await.map_err(|e| e.to_string())?;
    if reply.status != StatusCode::OK {
        return Err(format!("{path} answered {}", reply.status));
    }
    serde_json::from_slice(&reply.body).map_err(|e| format!("{path}: {e}"))
}
