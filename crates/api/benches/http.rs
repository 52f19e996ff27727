//! HTTP throughput and latency of the EdgeKV API, next to a minimal axum baseline.
//!
//! **What it measures.** GET and PUT of 100-byte values through the full EdgeKV path (axum
//! router, raw-path routing, bearer auth, body limits, store, envelope, `edgekv-region` header)
//! over 32 keep-alive HTTP/1.1 connections sending requests back to back: requests/s, p50 and
//! p99 latency, errors. The same, in the same run and on the same store, through the Workers
//! binding protocol (what workerd sends for `env.KV.get`/`put`): its GETs go through the edge
//! cache, so after the warm-up they are cache hits, as a hot key's reads are on Workers KV; its
//! PUTs rewrite each key about ten times a second, so the write rate limit is off for the bench
//! (it would refuse most of them, and the bench measures the protocol's cost, not the limit).
//!
//! **Why the baseline.** Absolute figures mostly measure the machine. The baseline is an axum
//! server doing only a `DashMap` lookup (`GET /v/{key}`) or insert (`PUT /v/{key}`), served and
//! loaded the same way in the same process, so the ratio edgekv/baseline is the cost of EdgeKV's
//! own work. Cases run interleaved (baseline GET, edgekv GET, baseline PUT, edgekv PUT) so
//! that noise hits both sides, in several rounds; the verdict uses the median of the per-round
//! ratios. Targets: GET ≥ 90 %, PUT ≥ 85 % of the baseline; the bench
//! reports PASS/BELOW but does not fail on speed. It does fail if any request is not a 200.
//!
//! **How to run.** `cargo bench -p edgekv-api --bench http`. Each case warms up 1 s and is then
//! measured for `EDGEKV_BENCH_SECS` seconds (default 3), in `EDGEKV_BENCH_ROUNDS` rounds
//! (default 3). Servers and load generator share one
//! tokio multi-thread runtime, so run it on an otherwise idle machine.

/// The allocator of the `edgekv` binary, so that the figures are the binary's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use dashmap::DashMap;
use edgekv_api::{app, ApiMetrics, AppState, Auth, DEV_TOKEN};
use edgekv_core::AccountId;
use edgekv_core::{Hlc, SystemClock};
use edgekv_metrics::Registry;
use edgekv_store::{Store, StoreConfig, WriteOp};
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

const CONNECTIONS: usize = 32;
const KEYS: usize = 10_000;
const VALUE_LEN: usize = 100;
const WARMUP: Duration = Duration::from_secs(1);
const GET_TARGET: f64 = 0.90;
const PUT_TARGET: f64 = 0.85;

type Map = Arc<DashMap<String, Bytes>>;

/// One server under load: where it listens and the request URI of every key.
struct Target {
    name: &'static str,
    addr: SocketAddr,
    uris: Arc<[Uri]>,
}

/// The namespace header every request carries (the binding needs it; the others ignore it, so
/// the client does the same work for each).
static NAMESPACE: std::sync::OnceLock<HeaderValue> = std::sync::OnceLock::new();

/// What one case (or one connection of it) observed.
#[derive(Default)]
struct Stats {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

impl Stats {
    fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }
}

fn key(i: usize) -> String {
    format!("key-{i:05}")
}

fn value() -> Bytes {
    Bytes::from(vec![b'v'; VALUE_LEN])
}

/// Serves `app` as the node does for the API: its KV routes around axum's router.
async fn serve(app: impl Into<edgekv_api::App>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("bound address");
    let app = axum::ServiceExt::<axum::extract::Request>::into_make_service(app.into());
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    addr
}

async fn baseline_get(
    State(map): State<Map>,
    Path(key): Path<String>,
) -> Result<Bytes, StatusCode> {
    map.get(&key).map(|v| v.clone()).ok_or(StatusCode::NOT_FOUND)
}

async fn baseline_put(State(map): State<Map>, Path(key): Path<String>, body: Bytes) -> StatusCode {
    // Copied, as EdgeKV does: keeping `body` itself would pin hyper's read buffer in the map.
    map.insert(key, Bytes::copy_from_slice(&body));
    StatusCode::OK
}

async fn start_baseline() -> Target {
    let map: Map = Arc::new((0..KEYS).map(|i| (key(i), value())).collect());
    let router =
        Router::new().route("/v/{key}", get(baseline_get).put(baseline_put)).with_state(map);
    let uris = (0..KEYS).map(|i| format!("/v/{}", key(i)).parse().expect("uri")).collect();
    Target { name: "baseline", addr: serve(router).await, uris }
}

/// The REST API and the binding protocol of one region, on one store.
async fn start_edgekv() -> (Target, Target) {
    let hlc = Arc::new(Hlc::new(Arc::new(SystemClock), Hlc::DEFAULT_MAX_DELTA));
    let config = StoreConfig::for_test("bench");
    let store = Arc::new(Store::new(config, hlc));
    // As in a node without peers: nothing would ever drain an outbox.
    store.disable_outbox();
    let account = AccountId::parse("bench").expect("account");
    let ns = store.create_namespace(&account, "bench").expect("namespace").id;
    let ops = (0..KEYS)
        .map(|i| WriteOp { key: key(i), value: Some(value()), metadata: None, expiration: None })
        .collect();
    store.write(&account, &ns, ops).expect("pre-populate");
    let state = Arc::new(AppState {
        store,
        auth: Auth::new(vec![DEV_TOKEN.into()]),
        metrics: ApiMetrics::register(&Registry::default()),
        budget: edgekv_api::BodyBudget::new(256 << 20),
        // The edge cache as on Workers KV (the REST API does not read through it); no write
        // rate limit, which this load would hit (see the module docs).
        edge: edgekv_api::Edge::new(
            edgekv_api::EdgeConfig {
                write_rate_limit: false,
                ..edgekv_api::EdgeConfig::WORKERS_KV
            },
            &Registry::default(),
        ),
    });
    NAMESPACE.get_or_init(|| HeaderValue::from_str(ns.as_str()).expect("a header value"));
    let prefix = format!("/client/v4/accounts/{account}/storage/kv/namespaces/{ns}/values");
    let uris = (0..KEYS).map(|i| format!("{prefix}/{}", key(i)).parse().expect("uri")).collect();
    let rest = Target { name: "edgekv", addr: serve(app(Arc::clone(&state))).await, uris };
    let uris =
        (0..KEYS).map(|i| format!("/{}?urlencoded=true", key(i)).parse().expect("uri")).collect();
    let binding = edgekv_api::binding::app(state);
    (rest, Target { name: "binding", addr: serve(binding).await, uris })
}

/// One keep-alive connection sending requests back to back until `until`, recording the
/// latency of those that start at or after `measure_from`. Every response must be a 200.
async fn connection(
    addr: SocketAddr,
    uris: Arc<[Uri]>,
    method: Method,
    first: usize,
    measure_from: Instant,
    until: Instant,
) -> Stats {
    let mut stats = Stats::default();
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    // Both servers get the same headers, so the client does the same work for each.
    let auth = HeaderValue::from_str(&format!("Bearer {DEV_TOKEN}")).expect("header");
    let octets = HeaderValue::from_static("application/octet-stream");
    let value = value();
    let mut i = first;
    loop {
        let started = Instant::now();
        if started >= until {
            break;
        }
        let mut request = Request::builder()
            .method(method.clone())
            .uri(uris[i].clone())
            .header(AUTHORIZATION, auth.clone());
        if let Some(ns) = NAMESPACE.get() {
            request = request.header("edgekv-namespace", ns.clone());
        }
        let body = if method == Method::PUT {
            request = request.header(CONTENT_TYPE, octets.clone());
            Full::new(value.clone())
        } else {
            Full::default()
        };
        i = (i + 1) % uris.len();
        if let Err(err) = sender.ready().await {
            stats.error(format!("connection closed: {err}"));
            break;
        }
        let response = match sender.send_request(request.body(body).expect("request")).await {
            Ok(response) => response,
            Err(err) => {
                stats.error(format!("request failed: {err}"));
                break;
            }
        };
        let status = response.status();
        let body = match response.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(err) => {
                stats.error(format!("reading the response body failed: {err}"));
                break;
            }
        };
        if status != StatusCode::OK {
            stats.error(format!("{method} -> {status}: {}", String::from_utf8_lossy(&body)));
        } else if started >= measure_from {
            let micros = started.elapsed().as_micros();
            stats.latencies_us.push(u32::try_from(micros).unwrap_or(u32::MAX));
        }
    }
    stats
}

/// A warm-up, then `measure` of load from [`CONNECTIONS`] connections. Returns requests/s
/// (of successful requests started in the measured window) and the merged stats.
async fn run_case(target: &Target, method: Method, measure: Duration) -> (f64, Stats) {
    let measure_from = Instant::now() + WARMUP;
    let until = measure_from + measure;
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let first = c * KEYS / CONNECTIONS;
            let uris = Arc::clone(&target.uris);
            tokio::spawn(connection(target.addr, uris, method.clone(), first, measure_from, until))
        })
        .collect();
    let mut total = Stats::default();
    for worker in workers {
        let stats = worker.await.expect("load task panicked");
        total.latencies_us.extend(stats.latencies_us);
        total.errors += stats.errors;
        if total.first_error.is_none() {
            total.first_error = stats.first_error;
        }
    }
    total.latencies_us.sort_unstable();
    let rps = total.latencies_us.len() as f64 / measure.as_secs_f64();
    (rps, total)
}

fn percentile(sorted: &[u32], p: usize) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// Reads a positive number from the environment, or `default`.
fn env_number(name: &str, default: f64) -> f64 {
    match std::env::var(name) {
        Ok(raw) => raw.parse().ok().filter(|n: &f64| *n > 0.0).unwrap_or_else(|| {
            panic!("{name} must be a positive number, got {raw:?}");
        }),
        Err(_) => default,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let measure = Duration::from_secs_f64(env_number("EDGEKV_BENCH_SECS", 3.0));
    let rounds = env_number("EDGEKV_BENCH_ROUNDS", 3.0) as usize;
    let baseline = start_baseline().await;
    let (edgekv, binding) = start_edgekv().await;
    println!(
        "{CONNECTIONS} connections, {VALUE_LEN}-byte values, {KEYS} keys, {rounds} rounds of \
         {WARMUP:?} warm-up + {measure:?} per case, {} worker threads",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<6} {:<14} {:>12} {:>9} {:>9} {:>7}",
        "round", "case", "requests/s", "p50 µs", "p99 µs", "errors"
    );

    // ratios[0] for GET, ratios[1] for PUT, one per round; binding[m]: binding/REST.
    let mut ratios = [Vec::new(), Vec::new()];
    let mut binding_ratios = [Vec::new(), Vec::new()];
    let mut failures = Vec::new();
    for round in 1..=rounds {
        for (m, method) in [Method::GET, Method::PUT].into_iter().enumerate() {
            let mut pair = [0.0; 3];
            for (t, target) in [&baseline, &edgekv, &binding].into_iter().enumerate() {
                let (r, stats) = run_case(target, method.clone(), measure).await;
                let case = format!("{} {method}", target.name);
                let (p50, p99) =
                    (percentile(&stats.latencies_us, 50), percentile(&stats.latencies_us, 99));
                println!("{round:<6} {case:<14} {r:>12.0} {p50:>9} {p99:>9} {:>7}", stats.errors);
                if let Some(err) = stats.first_error {
                    failures.push(format!("{case}: {} errors, first: {err}", stats.errors));
                }
                pair[t] = r;
            }
            ratios[m].push(pair[1] / pair[0]);
            binding_ratios[m].push(pair[2] / pair[1]);
        }
    }

    println!();
    for (m, (method, target)) in [("GET", GET_TARGET), ("PUT", PUT_TARGET)].into_iter().enumerate()
    {
        let each: Vec<String> = ratios[m].iter().map(|r| format!("{:.0} %", r * 100.0)).collect();
        let ratio = median(ratios[m].clone());
        let verdict = if ratio >= target { "PASS" } else { "BELOW" };
        println!(
            "{method} edgekv/baseline, median of rounds: {:>5.1} %  (rounds: {})  target >= {:.0} %  {verdict}",
            ratio * 100.0,
            each.join(", "),
            target * 100.0
        );
    }
    for (m, method) in ["GET", "PUT"].into_iter().enumerate() {
        let each: Vec<String> =
            binding_ratios[m].iter().map(|r| format!("{:.0} %", r * 100.0)).collect();
        println!(
            "{method} binding/REST, median of rounds:    {:>5.1} %  (rounds: {})",
            median(binding_ratios[m].clone()) * 100.0,
            each.join(", ")
        );
    }
    if !failures.is_empty() {
        for failure in &failures {
            eprintln!("ERROR {failure}");
        }
        panic!("{} case(s) had failed requests; the figures above are not valid", failures.len());
    }
}
