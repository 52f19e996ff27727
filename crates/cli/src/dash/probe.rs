//! The probe: one write in one region, and the moment each other region first serves it.
//!
//! The dashboard writes through the regions' own API, in a namespace of its own (created on
//! first use in the probing region, and waited for until every region has it), then reads the
//! key in every other region every [`POLL`] until it answers with the written version. Each
//! step is published to the page as it happens, with what the link's delay model predicted
//! (its median and 99th percentile, from draws of the configured model).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use edgekv_core::DelayModel;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::lab::client::{Client, Endpoint};

/// How often the other regions are read.
const POLL: Duration = Duration::from_millis(50);
/// How long to wait for a region: past Workers KV's 60 s and an anti-entropy round.
const GIVE_UP: Duration = Duration::from_secs(150);
/// The account and namespace title the probes write in.
pub(crate) const ACCOUNT: &str = "edgekv-dash";
const TITLE: &str = "edgekv-dash-probe";
/// Draws of a delay model for its predicted quantiles.
const DRAWS: u64 = 2000;

/// Where a probe writes and reads.
#[derive(Clone)]
pub(crate) struct Regions {
    /// (name, API base `http://host:port/client/v4`).
    pub(crate) apis: Vec<(String, String)>,
    pub(crate) token: String,
}

/// One probe, as the page asked for it.
pub(crate) struct Probe {
    pub(crate) id: u64,
    pub(crate) origin: String,
    pub(crate) key: String,
    pub(crate) value: String,
    /// The origin's configured model towards each region (from its status).
    pub(crate) models: Vec<(String, String)>,
    pub(crate) seed: u64,
}

/// The predicted (p50, p99) milliseconds of a delay model, `None` if it does not parse.
pub(crate) fn predicted(model: &str, seed: u64, origin: &str, to: &str) -> Option<(f64, f64)> {
    let model: DelayModel = model.parse().ok()?;
    let mut draws: Vec<f64> =
        (0..DRAWS).map(|i| model.sample(seed, origin, i, to).as_secs_f64() * 1000.0).collect();
    draws.sort_by(f64::total_cmp);
    let at = |q: f64| draws[((draws.len() - 1) as f64 * q).round() as usize];
    Some((at(0.5), at(0.99)))
}

/// Runs a probe to the end, publishing each step on `updates`.
pub(crate) async fn run(regions: Regions, probe: Probe, updates: broadcast::Sender<Arc<String>>) {
    let publish = |event: Value| {
        let _ = updates.send(Arc::new(event.to_string()));
    };
    let step = |stage: &str, extra: Value| {
        let mut event = json!({"type": "probe", "id": probe.id, "stage": stage,
                               "origin": probe.origin, "key": probe.key});
        if let (Some(event), Some(extra)) = (event.as_object_mut(), extra.as_object()) {
            event.extend(extra.clone());
        }
        event
    };
    let namespace = match ensure_namespace(&regions, &probe.origin).await {
        Ok(namespace) => namespace,
        Err(why) => return publish(step("failed", json!({ "error": why }))),
    };
    let predictions: Vec<Value> = probe
        .models
        .iter()
        .map(|(to, model)| {
            let quantiles = predicted(model, probe.seed, &probe.origin, to);
            json!({"region": to, "model": model,
                   "p50_ms": quantiles.map(|q| q.0), "p99_ms": quantiles.map(|q| q.1)})
        })
        .collect();
    let path = format!(
        "/accounts/{ACCOUNT}/storage/kv/namespaces/{namespace}/values/{}",
        crate::lab::encode_key(&probe.key)
    );
    let Some(mut origin) = client(&regions, &probe.origin) else {
        return publish(step("failed", json!({"error": "unknown region"})));
    };
    let body = Bytes::from(probe.value.clone().into_bytes());
    let written = origin.call(Method::PUT, &path, Some((body, "text/plain"))).await;
    let started = Instant::now();
    let version = match written {
        Ok(reply) if reply.status == StatusCode::OK => reply
            .headers
            .get(edgekv_api::VERSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        Ok(reply) => {
            let why = format!("the write answered {}: {}", reply.status, text(&reply.body));
            return publish(step("failed", json!({ "error": why })));
        }
        Err(err) => return publish(step("failed", json!({"error": err.to_string()}))),
    };
    publish(step("written", json!({"version": version, "predicted": predictions})));
    let others: Vec<String> =
        regions.apis.iter().map(|(n, _)| n.clone()).filter(|n| *n != probe.origin).collect();
    let waits = others.into_iter().map(|region| {
        let (regions, path, version, value) = (&regions, &path, &version, probe.value.as_str());
        async move {
            let arrived = wait_for(regions, &region, path, version, value).await;
            let ms = arrived.then(|| started.elapsed().as_secs_f64() * 1000.0);
            (region, ms)
        }
    });
    let mut waits: futures_util::stream::FuturesUnordered<_> = waits.collect();
    use futures_util::StreamExt;
    while let Some((region, ms)) = waits.next().await {
        match ms {
            Some(ms) => publish(step("arrived", json!({"region": region, "after_ms": ms}))),
            None => publish(step("gave_up", json!({"region": region, "after_ms": null}))),
        }
    }
    publish(step("done", json!({})));
}

fn client(regions: &Regions, name: &str) -> Option<Client> {
    let (_, api) = regions.apis.iter().find(|(n, _)| n == name)?;
    Client::new(Endpoint::parse(api).ok()?, &regions.token).ok()
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(300).collect()
}

/// Reads `path` in `region` until it serves `version` (or a value written after it); whether
/// it did before [`GIVE_UP`].
async fn wait_for(regions: &Regions, region: &str, path: &str, version: &str, value: &str) -> bool {
    let Some(mut client) = client(regions, region) else { return false };
    let deadline = Instant::now() + GIVE_UP;
    while Instant::now() < deadline {
        if let Ok(reply) = client.call(Method::GET, path, None).await {
            let seen = reply.headers.get(edgekv_api::VERSION_HEADER).and_then(|v| v.to_str().ok());
            let newer = seen.is_some_and(|seen| !version.is_empty() && seen >= version);
            if reply.status == StatusCode::OK && (newer || reply.body == value.as_bytes()) {
                return true;
            }
        }
        tokio::time::sleep(POLL).await;
    }
    false
}

/// The probe namespace's id: found by title in `origin`, or created there; then waited for
/// until every region has it (namespaces replicate like keys).
async fn ensure_namespace(regions: &Regions, origin: &str) -> Result<String, String> {
    let mut origin = client(regions, origin).ok_or("unknown region")?;
    let list = format!("/accounts/{ACCOUNT}/storage/kv/namespaces?per_page=100");
    let listed = origin.call(Method::GET, &list, None).await.map_err(|e| e.to_string())?;
    let found = serde_json::from_slice::<Value>(&listed.body).ok().and_then(|v| {
        v["result"].as_array()?.iter().find(|n| n["title"] == TITLE)?["id"]
            .as_str()
            .map(str::to_owned)
    });
    let id = match found {
        Some(id) => id,
        None => {
            let create = format!("/accounts/{ACCOUNT}/storage/kv/namespaces");
            let body = Bytes::from(json!({ "title": TITLE }).to_string());
            let reply = origin
                .call(Method::POST, &create, Some((body, "application/json")))
                .await
                .map_err(|e| e.to_string())?;
            let created: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            created["result"]["id"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("create the probe namespace: {}", text(&reply.body)))?
        }
    };
    let deadline = Instant::now() + GIVE_UP;
    for (name, _) in &regions.apis {
        let mut region = client(regions, name).ok_or("unknown region")?;
        let path = format!("/accounts/{ACCOUNT}/storage/kv/namespaces/{id}");
        loop {
            if let Ok(reply) = region.call(Method::GET, &path, None).await {
                if reply.status == StatusCode::OK {
                    break;
                }
            }
            if Instant::now() > deadline {
                return Err(format!("{name} did not get the probe namespace within {GIVE_UP:?}"));
            }
            tokio::time::sleep(POLL * 4).await;
        }
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predictions_follow_the_model() {
        let (p50, p99) = predicted("uniform(1s,3s)", 7, "wnam", "enam").unwrap();
        assert!((1900.0..2100.0).contains(&p50), "{p50}");
        assert!((2900.0..=3000.0).contains(&p99), "{p99}");
        assert_eq!(predicted("2s", 7, "wnam", "enam"), Some((2000.0, 2000.0)));
        assert_eq!(predicted("soon", 7, "wnam", "enam"), None);
    }
}
