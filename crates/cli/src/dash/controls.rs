//! The page's requests: faults (add, undo, heal), region stop and start, probes, the runs list.
//! Every answer is JSON, `{"ok": true, "message": ...}` or `{"ok": false, "error": ...}`, so
//! the page can say what happened. Everything that changes the cluster needs the admin token.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use edgekv_core::Fault;
use serde::Deserialize;
use serde_json::{json, Value};

use super::probe::{self, Probe};
use super::state::describe;
use super::Shared;

/// Longest probe value the page may write.
const MAX_PROBE_VALUE: usize = 1024;

fn ok(message: String, extra: Value) -> Response {
    let mut body = json!({ "ok": true, "message": message });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    Json(body).into_response()
}

fn refuse(status: StatusCode, error: impl Into<String>) -> Response {
    (status, Json(json!({ "ok": false, "error": error.into() }))).into_response()
}

/// Whether the request carries the admin token.
fn admitted(shared: &Shared, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if shared.tokens.accepts(token) {
        Ok(())
    } else {
        Err(Box::new(refuse(
            StatusCode::UNAUTHORIZED,
            "this control needs the cluster's admin token",
        )))
    }
}

#[derive(Deserialize)]
pub(super) struct AddFault {
    fault: Fault,
}

/// Installs a link fault on every region.
pub(super) async fn add_fault(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(request): Json<AddFault>,
) -> Response {
    if let Err(refused) = admitted(&shared, &headers) {
        return *refused;
    }
    match shared.chaos.add_fault(&request.fault).await {
        Ok(ids) => ok(format!("added: {}", describe(&request.fault)), json!({ "ids": ids })),
        Err(err) => refuse(StatusCode::BAD_REQUEST, format!("{err:#}")),
    }
}

#[derive(Deserialize)]
pub(super) struct RemoveFaults {
    ids: Vec<(String, u64)>,
}

/// Undoes one fault: removes it from every region that has it.
pub(super) async fn remove_faults(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(request): Json<RemoveFaults>,
) -> Response {
    if let Err(refused) = admitted(&shared, &headers) {
        return *refused;
    }
    let failed = shared.chaos.remove_fault_ids(&request.ids).await;
    if failed.is_empty() {
        ok(format!("removed from {} regions", request.ids.len()), json!({}))
    } else {
        refuse(StatusCode::BAD_GATEWAY, format!("not removed everywhere: {}", failed.join("; ")))
    }
}

/// Removes every link fault everywhere.
pub(super) async fn heal(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(refused) = admitted(&shared, &headers) {
        return *refused;
    }
    let failed = shared.chaos.clear_everywhere().await;
    if failed.is_empty() {
        ok("healed: every link fault removed in every region".to_owned(), json!({}))
    } else {
        refuse(
            StatusCode::BAD_GATEWAY,
            format!("healed where reachable; failed: {}", failed.join("; ")),
        )
    }
}

/// Stops or starts a region (under `edgekv cluster` only).
pub(super) async fn region_action(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((region, action)): Path<(String, String)>,
) -> Response {
    if let Err(refused) = admitted(&shared, &headers) {
        return *refused;
    }
    let Some(supervisor) = &shared.config.supervisor else {
        return refuse(
            StatusCode::NOT_FOUND,
            "regions can be stopped from here only under edgekv cluster (use edgekv chaos for containers)",
        );
    };
    if !shared.config.regions.iter().any(|(name, _)| *name == region) {
        return refuse(StatusCode::NOT_FOUND, format!("no region {region}"));
    }
    let done = match action.as_str() {
        "stop" => supervisor.stop(&region).await,
        "start" => supervisor.start(&region).await,
        _ => return refuse(StatusCode::NOT_FOUND, format!("no action {action}: stop or start")),
    };
    match done {
        Ok(()) => {
            ok(format!("{region}: {action}ped"), json!({ "region": region, "action": action }))
        }
        Err(err) => refuse(StatusCode::CONFLICT, format!("{region}: {err:#}")),
    }
}

#[derive(Deserialize)]
pub(super) struct ProbeRequest {
    region: String,
    key: String,
    value: String,
}

/// Starts a probe; its steps arrive on the event stream.
pub(super) async fn probe(
    State(shared): State<Arc<Shared>>,
    Json(request): Json<ProbeRequest>,
) -> Response {
    if let Err(err) = edgekv_core::validate_key(&request.key) {
        return refuse(StatusCode::BAD_REQUEST, format!("key: {err}"));
    }
    if request.value.len() > MAX_PROBE_VALUE {
        return refuse(StatusCode::BAD_REQUEST, format!("value: at most {MAX_PROBE_VALUE} bytes"));
    }
    let (models, seed) = {
        let cluster = shared.cluster.lock();
        match cluster.links_of(&request.region) {
            Some(found) => found,
            None => return refuse(StatusCode::NOT_FOUND, format!("no region {}", request.region)),
        }
    };
    let id = shared.probes.fetch_add(1, Ordering::Relaxed);
    let regions = probe::Regions {
        apis: shared
            .config
            .regions
            .iter()
            .map(|(name, url)| (name.clone(), format!("{}/client/v4", super::base_of(url))))
            .collect(),
        token: shared.config.api_token.clone(),
    };
    let probe = Probe {
        id,
        origin: request.region.clone(),
        key: request.key,
        value: request.value,
        models,
        seed,
    };
    tokio::spawn(probe::run(regions, probe, shared.updates.clone()));
    ok(format!("probe {id}: writing in {}", request.region), json!({ "id": id }))
}

/// The lab runs in the runs directory, newest first.
pub(super) async fn runs(State(shared): State<Arc<Shared>>) -> Response {
    let Some(dir) = shared.config.runs.clone() else {
        return Json(json!({ "runs": [] })).into_response();
    };
    let listed = tokio::task::spawn_blocking(move || list_runs(&dir)).await.unwrap_or_default();
    Json(json!({ "runs": listed })).into_response()
}

fn list_runs(dir: &std::path::Path) -> Vec<Value> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut runs: Vec<(std::time::SystemTime, Value)> = entries
        .flatten()
        .filter(|e| e.path().join(edgekv_lab::files::REPORT).is_file())
        .map(|e| {
            let path = e.path();
            let modified = std::fs::metadata(path.join(edgekv_lab::files::REPORT))
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            let summary = std::fs::read_to_string(path.join("summary.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .unwrap_or(Value::Null);
            let name = e.file_name().to_string_lossy().into_owned();
            let run = json!({
                "name": name,
                "scenario": summary["run"]["scenario"],
                "verdict": summary["check"]["validity"],
                "report": format!("/runs/{name}/report.html"),
            });
            (modified, run)
        })
        .collect();
    runs.sort_by_key(|run| std::cmp::Reverse(run.0));
    runs.into_iter().map(|(_, run)| run).collect()
}
