//! The workload's clients: each one connection to one region, issuing one operation at a time
//! at the instants its seeded generator picks, and recording each as Jepsen does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use anyhow::bail;
use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use edgekv_api::binding::{CACHE_STATUS_HEADER, NAMESPACE_HEADER};
use edgekv_lab::history::{CacheStatus, Function, Op, Outcome, Via};
use edgekv_lab::workload::{self, Generator, Planned};
use serde_json::Value;
use tokio::task::JoinSet;

use super::client::{CallError, Client, Reply};
use super::progress::Progress;
use super::{Clock, Region, Run};

/// Starts every client of the scenario; each returns its operations when the workload ends.
pub(super) fn spawn(run: Run<'_>, namespace: &str) -> anyhow::Result<JoinSet<Vec<Op>>> {
    let scenario = run.scenario;
    let index = Arc::new(AtomicU64::new(0));
    let mut clients = JoinSet::new();
    for c in workload::clients(scenario) {
        let Some(region) = run.regions.get(c.region) else { continue };
        let worker = Worker {
            process: c.process,
            region: region.name.clone(),
            client: Client::new(region.api.clone(), &region.token)?,
            binding: binding_client(region, namespace, c.reads.uses_binding())?,
            rest_cache_ttl: scenario.edge.rest_cache_ttl(),
            base: format!("/accounts/{}/storage/kv/namespaces/{namespace}", scenario.account),
            generator: Generator::new(run.seed, &c, &scenario.workload),
            clock: run.clock,
            index: Arc::clone(&index),
            progress: Arc::clone(run.progress),
        };
        clients.spawn(worker.run(scenario.duration));
    }
    Ok(clients)
}

/// A connection to `region`'s binding listener for the run's namespace, if the client's gets
/// use it.
fn binding_client(region: &Region, namespace: &str, used: bool) -> anyhow::Result<Option<Client>> {
    if !used {
        return Ok(None);
    }
    let Some(endpoint) = &region.binding else {
        bail!("region {}'s gets use the binding, but its binding URL is not known", region.name);
    };
    Ok(Some(
        Client::new(endpoint.clone(), &region.token)?.with_header(NAMESPACE_HEADER, namespace)?,
    ))
}

/// One client of the workload.
struct Worker {
    process: u32,
    region: String,
    client: Client,
    /// Its region's binding listener, for the gets that use it.
    binding: Option<Client>,
    /// How long a REST read may have been cached, when the regions cache REST reads.
    rest_cache_ttl: Option<u64>,
    base: String,
    generator: Generator,
    clock: Clock,
    index: Arc<AtomicU64>,
    progress: Arc<Progress>,
}

impl Worker {
    async fn run(mut self, duration: Duration) -> Vec<Op> {
        let start = Instant::now();
        let mut due = Duration::ZERO;
        let mut ops = Vec::new();
        loop {
            due += self.generator.gap();
            if due >= duration {
                return ops;
            }
            // Poisson arrivals on schedule; a client that fell behind by more than a second
            // (a stalled server) resumes from now instead of bursting to catch up.
            let behind = start.elapsed().saturating_sub(due);
            if behind > Duration::from_secs(1) {
                due = start.elapsed();
            }
            tokio::time::sleep_until(start + due).await;
            let planned = self.generator.next_op();
            let op = self.issue(planned).await;
            self.progress.ops.fetch_add(1, Ordering::Relaxed);
            if op.outcome != Outcome::Ok {
                self.progress.errors.fetch_add(1, Ordering::Relaxed);
            }
            ops.push(op);
        }
    }

    /// Issues one operation and records it, with its outcome as the reply (or its absence)
    /// decides it.
    async fn issue(&mut self, planned: Planned) -> Op {
        let index = self.index.fetch_add(1, Ordering::Relaxed);
        let invoke_wall = self.clock.wall_ms();
        let invoke = self.clock.now();
        let (f, key, value, expiration) = match &planned {
            Planned::Put { key, value, ttl } => (
                Function::Put,
                key.clone(),
                Some(value.clone()),
                ttl.map(|t| invoke_wall / 1000 + t),
            ),
            Planned::Delete { key } => (Function::Delete, key.clone(), None, None),
            Planned::Get { key, .. } => (Function::Get, key.clone(), None, None),
            Planned::List { prefix, .. } => (Function::List, prefix.clone(), None, None),
        };
        let reply = self.send(&planned).await;
        let complete = self.clock.now();
        let (via, cache_ttl) = self.read_path(&planned);
        let mut op = Op {
            index,
            process: self.process,
            region: self.region.clone(),
            f,
            key,
            value,
            expiration,
            version: None,
            invoke,
            complete,
            outcome: Outcome::Ok,
            wall_ms: invoke_wall,
            via,
            cache_ttl,
            cache: None,
        };
        match reply {
            Ok(reply) => judge(&mut op, &reply),
            // A write that may have reached the server may have happened.
            Err(CallError::Unknown(_)) if op.is_write() => op.outcome = Outcome::Info,
            Err(_) => op.outcome = Outcome::Fail,
        }
        op
    }

    /// How a read is recorded: the API it goes through, and how long its answer may have been
    /// cached (a binding read's cacheTtl; a REST read's when the regions cache REST reads).
    fn read_path(&self, planned: &Planned) -> (Option<Via>, Option<u64>) {
        match planned {
            Planned::Get { path, .. } if path.via == Via::Binding => {
                (Some(Via::Binding), path.cache_ttl)
            }
            Planned::Get { .. } => (Some(Via::Rest), self.rest_cache_ttl),
            Planned::List { .. } => (Some(Via::Rest), None),
            Planned::Put { .. } | Planned::Delete { .. } => (None, None),
        }
    }

    /// The request of a planned operation.
    async fn send(&mut self, planned: &Planned) -> Result<Reply, CallError> {
        match planned {
            Planned::Put { key, value, ttl } => {
                let query = ttl.map_or_else(String::new, |t| format!("?expiration_ttl={t}"));
                let path = format!("{}/values/{}{query}", self.base, encode(key));
                let body = Bytes::from(value.clone().into_bytes());
                self.client.call(Method::PUT, &path, Some((body, "text/plain"))).await
            }
            Planned::Delete { key } => {
                let path = format!("{}/values/{}", self.base, encode(key));
                self.client.call(Method::DELETE, &path, None).await
            }
            Planned::Get { key, path } if path.via == Via::Binding => {
                // workerd's form: the key as one encodeURIComponent segment.
                let ttl = path.cache_ttl.map_or_else(String::new, |t| format!("&cache_ttl={t}"));
                let path = format!("/{}?urlencoded=true{ttl}", encode(key));
                let Some(binding) = self.binding.as_mut() else {
                    return Err(CallError::NotSent("no binding listener".into()));
                };
                binding.call(Method::GET, &path, None).await
            }
            Planned::Get { key, .. } => {
                let path = format!("{}/values/{}", self.base, encode(key));
                self.client.call(Method::GET, &path, None).await
            }
            Planned::List { prefix, limit } => {
                let path = format!("{}/keys?prefix={}&limit={limit}", self.base, encode(prefix));
                self.client.call(Method::GET, &path, None).await
            }
        }
    }
}

/// Sets an operation's outcome, version and (for reads) value from the reply.
fn judge(op: &mut Op, reply: &Reply) {
    let version = reply
        .headers
        .get(edgekv_api::VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let writes = matches!(op.f, Function::Put | Function::Delete);
    op.outcome = match reply.status {
        s if s.is_success() => Outcome::Ok,
        StatusCode::NOT_FOUND if op.f == Function::Get && !namespace_missing(reply) => Outcome::Ok,
        // A server error on a write leaves its effect unknown (it may be committed).
        s if s.is_server_error() && writes => Outcome::Info,
        _ => Outcome::Fail,
    };
    if op.outcome != Outcome::Ok {
        return;
    }
    if op.f == Function::Get {
        op.cache = match reply.headers.get(CACHE_STATUS_HEADER).map(|v| v.as_bytes()) {
            Some(b"HIT") => Some(CacheStatus::Hit),
            Some(b"MISS") => Some(CacheStatus::Miss),
            _ => None,
        };
    }
    match op.f {
        Function::Put | Function::Delete => op.version = version,
        Function::Get if reply.status == StatusCode::NOT_FOUND => op.value = None,
        Function::Get => {
            op.value = Some(String::from_utf8_lossy(&reply.body).into_owned());
            op.version = version;
        }
        Function::List => {
            let listed: Option<usize> = serde_json::from_slice::<Value>(&reply.body)
                .ok()
                .and_then(|v| v["result"].as_array().map(Vec::len));
            op.value = listed.map(|n| n.to_string());
        }
    }
}

/// Whether a 404 says the region does not know the namespace (Cloudflare's code 10013), which
/// is the region failing to serve the read, not the key being absent: a wiped region that has
/// not yet got the namespace back from its peers answers so.
pub(super) fn namespace_missing(reply: &Reply) -> bool {
    const NAMESPACE_NOT_FOUND: u64 = 10013;
    serde_json::from_slice::<Value>(&reply.body).ok().is_some_and(|body| {
        body["errors"]
            .as_array()
            .is_some_and(|errors| errors.iter().any(|e| e["code"] == NAMESPACE_NOT_FOUND))
    })
}

/// Percent-encodes a key for a URL path or query (keys here are ASCII letters and digits, but a
/// scenario's prefix may not be).
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(f: Function) -> Op {
        Op {
            index: 0,
            process: 0,
            region: "wnam".into(),
            f,
            key: "k".into(),
            value: Some("written".into()),
            expiration: None,
            version: None,
            invoke: 0,
            complete: 1,
            outcome: Outcome::Ok,
            wall_ms: 0,
            via: None,
            cache_ttl: None,
            cache: None,
        }
    }

    fn reply(status: u16, version: Option<&str>, body: &str) -> Reply {
        let mut headers = axum::http::HeaderMap::new();
        if let Some(v) = version {
            headers.insert(edgekv_api::VERSION_HEADER, v.parse().unwrap());
        }
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn replies_decide_outcomes_the_way_jepsen_reads_them() {
        let mut put = op(Function::Put);
        judge(&mut put, &reply(200, Some("v1"), "{}"));
        assert_eq!((put.outcome, put.version.as_deref()), (Outcome::Ok, Some("v1")));
        let mut put = op(Function::Put);
        judge(&mut put, &reply(500, None, ""));
        assert_eq!(put.outcome, Outcome::Info, "a server error may have committed");
        let mut put = op(Function::Put);
        judge(&mut put, &reply(429, None, ""));
        assert_eq!(put.outcome, Outcome::Fail);
        let mut get = op(Function::Get);
        judge(&mut get, &reply(404, None, "{}"));
        assert_eq!((get.outcome, get.value), (Outcome::Ok, None), "not found is a read");
        let mut get = op(Function::Get);
        let unknown =
            r#"{"success":false,"errors":[{"code":10013,"message":"namespace not found"}]}"#;
        judge(&mut get, &reply(404, None, unknown));
        assert_eq!(get.outcome, Outcome::Fail, "a region without the namespace served nothing");
        let mut get = op(Function::Get);
        judge(&mut get, &reply(200, Some("v2"), "seen"));
        assert_eq!((get.value.as_deref(), get.version.as_deref()), (Some("seen"), Some("v2")));
        let mut get = op(Function::Get);
        judge(&mut get, &reply(503, None, ""));
        assert_eq!(get.outcome, Outcome::Fail, "a failed read changed nothing");
        let mut hit = op(Function::Get);
        let mut cached = reply(404, None, "Not Found");
        cached.headers.insert(CACHE_STATUS_HEADER, "HIT".parse().unwrap());
        judge(&mut hit, &cached);
        assert_eq!(
            (hit.outcome, hit.value, hit.cache),
            (Outcome::Ok, None, Some(CacheStatus::Hit))
        );
        let mut list = op(Function::List);
        judge(&mut list, &reply(200, None, r#"{"result":[{"name":"a"},{"name":"b"}]}"#));
        assert_eq!(list.value.as_deref(), Some("2"));
    }

    #[test]
    fn keys_are_percent_encoded() {
        assert_eq!(encode("k000001"), "k000001");
        assert_eq!(encode("a b/ü"), "a%20b%2F%C3%BC");
    }
}
