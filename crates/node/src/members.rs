//! The membership routes of the admin API: who is in the cluster, as this region sees it, and
//! changes to it while everything runs. Each region keeps its own list, so a change is made on
//! every region it concerns (`edgekv members` does that for a whole cluster).
//!
//! - `GET /admin/peers`: every region known, members and removed ones, with what this region
//!   has delivered to each and the watermark each published last.
//! - `PUT /admin/peers/{region}` with `{"url": "http://host:9787"}`: adds the region (or moves
//!   it to a new endpoint). A new member is compared with by anti-entropy at once.
//! - `DELETE /admin/peers/{region}`: removes it; answers how many of this region's writes it
//!   had not acknowledged. Its store as it is now is refused from then on.
//! - `POST /admin/drain?timeout=30s`: waits until every member has acknowledged every write
//!   this region had accepted, up to the timeout; answers what is still pending. A region that
//!   leaves drains first, so that what it alone holds is not lost.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use edgekv_core::{RegionId, Timestamp};
use edgekv_replication::members::{Change, Refusal};
use edgekv_replication::{MemberError, PeerConfig};
use serde_json::json;

use crate::admin::{authorized, denied, error, AdminState};

/// Longest drain one request may ask for.
const MAX_DRAIN: Duration = Duration::from_secs(600);

/// What a drain waits without a `timeout` parameter.
const DEFAULT_DRAIN: Duration = Duration::from_secs(30);

pub(crate) fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/admin/peers", axum::routing::get(list))
        .route("/admin/peers/{region}", put(add).delete(remove))
        .route("/admin/drain", post(drain))
        .with_state(state)
}

fn ms(ts: Timestamp) -> u64 {
    ts.physical_ms()
}

async fn list(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return denied();
    }
    let peers: Vec<serde_json::Value> = state
        .members
        .list()
        .into_iter()
        .map(|p| {
            json!({
                "region": p.name.as_str(),
                "url": p.url,
                "member": p.member,
                "removed_at_ms": (p.fence.0 > 0).then(|| ms(p.fence)),
                "delivered_through_ms": ms(p.acked_through),
                "backlog": p.backlog,
                "watermark_ms": ms(state.store.watermark(p.name)),
            })
        })
        .collect();
    Json(json!({ "region": state.store.region().as_str(), "peers": peers })).into_response()
}

fn region_of(raw: &str) -> Option<RegionId> {
    raw.parse().ok()
}

fn bad_region(raw: &str) -> Response {
    error(StatusCode::BAD_REQUEST, format!("invalid region name {raw:?}"))
}

fn refused(err: MemberError) -> Response {
    let status = match &err {
        MemberError::Refused(Refusal::NotMember(_)) => StatusCode::NOT_FOUND,
        MemberError::Refused(_) | MemberError::Url(_) => StatusCode::BAD_REQUEST,
        MemberError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, err.to_string())
}

async fn add(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Path(region): Path<String>,
    body: Bytes,
) -> Response {
    if !authorized(&state, &headers) {
        return denied();
    }
    let Some(name) = region_of(&region) else { return bad_region(&region) };
    let Some(url) = peer_url(&body) else {
        let why = "expected a JSON body {\"url\": \"http://host:port\"} and nothing else";
        return error(StatusCode::BAD_REQUEST, why);
    };
    let peer = PeerConfig { name, url };
    match state.members.add(&peer) {
        Ok(change) => {
            let change = match change {
                Change::Joined => "joined",
                Change::Moved => "moved",
                Change::Unchanged => "unchanged",
            };
            Json(json!({ "region": name.as_str(), "url": peer.url, "change": change }))
                .into_response()
        }
        Err(err) => refused(err),
    }
}

/// The `url` of a `{"url": ...}` body, the only field allowed.
fn peer_url(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object().filter(|o| o.len() == 1)?;
    object.get("url")?.as_str().map(str::to_owned)
}

async fn remove(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Path(region): Path<String>,
) -> Response {
    if !authorized(&state, &headers) {
        return denied();
    }
    let Some(name) = region_of(&region) else { return bad_region(&region) };
    match state.members.remove(name) {
        Ok(removed) => Json(json!({
            "region": removed.region.as_str(),
            "removed": true,
            "undelivered": removed.undelivered,
            "watermark_ms": ms(state.store.watermark(name)),
        }))
        .into_response(),
        Err(err) => refused(err),
    }
}

async fn drain(State(state): State<Arc<AdminState>>, headers: HeaderMap, uri: Uri) -> Response {
    if !authorized(&state, &headers) {
        return denied();
    }
    let mut timeout = DEFAULT_DRAIN;
    for pair in uri.query().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let parsed = match pair.split_once('=') {
            Some(("timeout", v)) => edgekv_core::parse_duration(v)
                .ok()
                .filter(|d| *d <= MAX_DRAIN)
                .map(|d| timeout = d)
                .is_some(),
            _ => false,
        };
        if !parsed {
            return error(
                StatusCode::BAD_REQUEST,
                format!("bad query parameter {pair:?}: expected timeout=DURATION (at most 10m)"),
            );
        }
    }
    let drained = state.members.drain(timeout).await;
    let pending: Vec<serde_json::Value> = drained
        .pending
        .iter()
        .map(|(region, n)| json!({ "region": region.as_str(), "undelivered": n }))
        .collect();
    Json(json!({
        "region": state.store.region().as_str(),
        "drained": pending.is_empty(),
        "through_ms": ms(drained.through),
        "pending": pending,
    }))
    .into_response()
}
