//! What durability costs the `edgekv` release binary, measured over HTTP, with Redis for scale.
//!
//! One run answers three questions and prints the figures as tables; nothing fails on speed.
//!
//! 1. **Throughput of acknowledged-durable writes.** 32 clients, each on its own keep-alive
//!    HTTP/1.1 connection, all driven by one thread, PUT 100-byte values to distinct keys, back to back, for
//!    `EDGEKV_BENCH_SECS` seconds (default 10) after a 1 s warm-up. Cases: a node with a data
//!    directory (default durability `fsync`: the ack follows the group commit's fsync), the same
//!    node `--in-memory` (what the fsync costs), and Redis with `appendfsync always` driven by
//!    `redis-benchmark` at the same concurrency and value size (what a well-known durable store
//!    gets from the same disk). Every case starts a fresh server, and the cases alternate over
//!    `EDGEKV_BENCH_ROUNDS` rounds (default 2) so that noise shows as disagreement between rounds
//!    rather than as a verdict.
//!    Both load generators are one event-loop thread with 32 connections, so neither server
//!    competes with 32 client threads for the CPUs; the in-memory row shows what the fsync
//!    costs on top of the HTTP path. A fourth row, a bare axum server that only inserts into a
//!    `DashMap`, is the floor of an HTTP PUT on this machine: what no HTTP API can beat, for
//!    scale next to Redis's binary protocol.
//! 2. **Restart time with `EDGEKV_BENCH_KEYS` keys** (default 1,000,000), bulk-loaded 10,000 per
//!    request: stop the node (SIGTERM, and in a second data directory kill -9), start it again
//!    and time spawn → region table → `GET /healthz` = 200. Target ≤ 5 s. A few random keys
//!    must read back, so a fast restart that lost data cannot pass for a good one.
//! 3. **Resident memory for those keys:** VmRSS after the load and after the restart, target
//!    ≤ 400 MB (10^6 bytes), with the `--in-memory` node's RSS and the data directory's size for
//!    scale.
//!
//! The bench does panic, after printing everything, when a write is refused or a key reads back
//! wrong: the figures of a node that loses or refuses data mean nothing.
//!
//! Run `cargo bench -p edgekv-tests --bench durability`. It builds `target/release/edgekv`
//! first unless `EDGEKV_BIN` names a binary. `EDGEKV_BIN_BEFORE` names a second binary (an
//! earlier build, say) measured in the same run: a durable row of its own in every round, and
//! its own restart and memory figures, so a change's before and after share one machine state. Node logs go to files in temporary directories
//! that are removed at the end; set `EDGEKV_BENCH_KEEP_LOGS=1` to keep them for a post-mortem.
//! The machine should be otherwise idle: client, servers and the disk are shared.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 32;
const VALUE_LEN: usize = 100;
const BULK_ITEMS: usize = 10_000;
const WARMUP: Duration = Duration::from_secs(1);
const RESTART_TARGET: Duration = Duration::from_secs(5);
const RSS_TARGET_MB: f64 = 400.0;
/// Random keys read back after each restart, besides the first and the last.
const VERIFY_KEYS: usize = 20;
const ACCOUNT: &str = "bench";
const TOKEN: &str = "edgekv-dev-token";
const REGION: &str = "wnam";
/// Generous on purpose: a slow restart is a figure to report, not a reason to give up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(300);
const STOP_TIMEOUT: Duration = Duration::from_secs(120);
/// A bulk write of 10,000 items commits and fsyncs about 1.3 MB; minutes means something broke.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
const REDIS_SERVER: &str = "/usr/bin/redis-server";
const REDIS_BENCHMARK: &str = "/usr/bin/redis-benchmark";
/// Requests of the first, unreported redis-benchmark run, which sizes the measured runs: about
/// a second's worth, as a shorter run's rate is mostly start-up and sized round 1 50 % too long.
const REDIS_CALIBRATION_REQUESTS: u64 = 30_000;

fn main() {
    let secs = env_number("EDGEKV_BENCH_SECS", 10.0);
    let rounds = (env_number("EDGEKV_BENCH_ROUNDS", 2.0) as usize).max(1);
    let keys = env_number("EDGEKV_BENCH_KEYS", 1_000_000.0) as usize;
    let measure = Duration::from_secs_f64(secs);
    let bin = edgekv_tests::edgekv_release_bin();
    let keep_logs = std::env::var_os("EDGEKV_BENCH_KEEP_LOGS").is_some();
    println!(
        "binary {}, {} CPUs",
        bin.display(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // A second binary (an earlier build) measured in the same run, for before/after figures.
    let before = std::env::var_os("EDGEKV_BIN_BEFORE").map(PathBuf::from);
    if let Some(before) = &before {
        println!("before: {}", before.display());
    }

    let mut problems = Vec::new();
    throughput(&bin, before.as_deref(), measure, rounds, keep_logs, &mut problems);
    if let Some(before) = &before {
        println!();
        println!("-- restarts and memory of the binary before: {}", before.display());
        restarts_and_memory(before, keys, keep_logs, &mut problems);
        println!();
        println!("-- restarts and memory of the binary after: {}", bin.display());
    }
    restarts_and_memory(&bin, keys, keep_logs, &mut problems);

    if !problems.is_empty() {
        eprintln!();
        for problem in &problems {
            eprintln!("ERROR {problem}");
        }
        panic!("{} problem(s) above: the figures they concern are not valid", problems.len());
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Throughput

/// What one throughput case measured.
struct CaseResult {
    writes_per_sec: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    errors: u64,
    /// How long the measured part ran.
    measured: Duration,
    note: String,
}

fn throughput(
    bin: &Path,
    before: Option<&Path>,
    measure: Duration,
    rounds: usize,
    keep_logs: bool,
    problems: &mut Vec<String>,
) {
    println!();
    println!(
        "== 1. Durable PUT throughput: {CLIENTS} clients, {VALUE_LEN}-byte values, distinct keys, \
         {:.0} s per case (edgekv after {WARMUP:?} warm-up), {rounds} rounds ==",
        measure.as_secs_f64()
    );
    let redis_missing =
        [REDIS_SERVER, REDIS_BENCHMARK].into_iter().find(|p| !Path::new(p).exists());
    if let Some(missing) = redis_missing {
        println!(
            "note: {missing} is missing, so the redis row is skipped \
             (Debian: apt-get install redis-server redis-tools)"
        );
    }
    println!(
        "{:<6} {:<26} {:>10} {:>9} {:>9} {:>7} {:>10}  note",
        "round", "case", "writes/s", "p50 ms", "p99 ms", "errors", "measured s"
    );
    // Sized from the calibration run, then from each measured run.
    let mut redis_rate: Option<f64> = None;
    let mut per_round: Vec<[Option<f64>; 5]> = Vec::new();
    let cases = [
        "edgekv fsync",
        "edgekv in-memory",
        "redis appendfsync always",
        "bare axum PUT",
        "edgekv fsync, before",
    ];
    for round in 1..=rounds {
        let mut rates = [None; 5];
        for (c, case) in cases.into_iter().enumerate() {
            let seed = round * cases.len() + c;
            let result = match c {
                0 | 1 => Ok(edgekv_case(bin, c == 0, seed, measure, keep_logs)),
                2 if redis_missing.is_some() => continue,
                2 => redis_case(measure, &mut redis_rate),
                3 => Ok(bare_http_case(seed, measure)),
                _ => match before {
                    Some(before) => Ok(edgekv_case(before, true, seed, measure, keep_logs)),
                    None => continue,
                },
            };
            match result {
                Ok(r) => {
                    println!(
                        "{round:<6} {case:<26} {:>10.0} {:>9} {:>9} {:>7} {:>10.1}  {}",
                        r.writes_per_sec,
                        ms(r.p50_ms),
                        ms(r.p99_ms),
                        r.errors,
                        r.measured.as_secs_f64(),
                        r.note
                    );
                    if r.errors > 0 {
                        problems.push(format!("round {round} {case}: {}", r.note));
                    }
                    rates[c] = Some(r.writes_per_sec);
                }
                Err(err) => {
                    println!("{round:<6} {case:<26} {:>10}  failed: {err}", "-");
                    problems.push(format!("round {round} {case}: {err}"));
                }
            }
        }
        per_round.push(rates);
    }
    for (round, [fsync, memory, redis, bare, earlier]) in per_round.iter().enumerate() {
        let ratio = |a: &Option<f64>, b: &Option<f64>| match (a, b) {
            (Some(a), Some(b)) if *b > 0.0 => format!("{:.2}", a / b),
            _ => "-".to_owned(),
        };
        println!(
            "round {}: edgekv fsync / in-memory = {}, edgekv fsync / redis = {}, \
             bare axum PUT / redis = {}",
            round + 1,
            ratio(fsync, memory),
            ratio(fsync, redis),
            ratio(bare, redis)
        );
        if before.is_some() {
            println!(
                "round {}: edgekv fsync before / redis = {}",
                round + 1,
                ratio(earlier, redis)
            );
        }
    }
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
}

/// One edgekv case on a fresh node: [`CLIENTS`] threads, each on its own connection.
fn edgekv_case(
    bin: &Path,
    durable: bool,
    seed: usize,
    measure: Duration,
    keep_logs: bool,
) -> CaseResult {
    let dir = scratch_dir(keep_logs);
    let data = dir.path().join("data");
    let storage = if durable { Storage::Disk(&data) } else { Storage::InMemory };
    let node = Node::start(bin, storage, &dir.path().join("node.log"));
    node.wait_healthy();
    let ns = create_namespace(&node.addr);
    let prefix = format!("{}/values", namespace_path(&ns));
    let (total, mut result) = load(&node.addr, &prefix, seed, measure);
    result.note = match &total.first_error {
        Some(err) => format!("first error: {err}"),
        None if durable => match fsync_count(&node.addr) {
            Some(fsyncs) if fsyncs > 0 => {
                format!("{:.1} writes per fsync", total.ok as f64 / fsyncs as f64)
            }
            _ => "fsync count not in /metrics".to_owned(),
        },
        None => String::new(),
    };
    result
}

/// The same load against the floor of any HTTP server on this machine: axum (as edgekv uses)
/// answering the same PUT path with the same success envelope after one `DashMap` insert, no
/// validation, no versions, no disk. What no HTTP PUT can beat here, for scale next to Redis.
fn bare_http_case(seed: usize, measure: Duration) -> CaseResult {
    use axum::extract::{Path as UrlPath, State};
    use axum::routing::put;
    type Map = std::sync::Arc<dashmap::DashMap<String, axum::body::Bytes>>;
    async fn store(
        State(map): State<Map>,
        UrlPath((_, _, key)): UrlPath<(String, String, String)>,
        body: axum::body::Bytes,
    ) -> ([(&'static str, &'static str); 1], &'static str) {
        map.insert(key, body);
        (
            [("content-type", "application/json")],
            r#"{"success":true,"errors":[],"messages":[],"result":null}"#,
        )
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build the server runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind the bare HTTP server");
    let addr = listener.local_addr().expect("its address").to_string();
    let app = axum::Router::new()
        .route("/client/v4/accounts/{a}/storage/kv/namespaces/{ns}/values/{key}", put(store))
        .with_state(Map::default());
    runtime.spawn(async move { axum::serve(listener, app).await });
    let prefix = format!("{}/values", namespace_path("00000000000000000000000000000000"));
    let (_, result) = load(&addr, &prefix, seed, measure);
    runtime.shutdown_background();
    result
}

/// Runs the 32 clients against `addr` for the warm-up and `measure`.
fn load(addr: &str, prefix: &str, seed: usize, measure: Duration) -> (Stats, CaseResult) {
    let measure_from = Instant::now() + WARMUP;
    let until = measure_from + measure;
    // One thread drives all 32 connections, as redis-benchmark does for Redis: 32 client
    // threads would compete with the server for the 2 CPUs and measure the client as much as
    // the server.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build the client runtime");
    let mut total = runtime.block_on(async {
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (addr, prefix) = (addr.to_owned(), prefix.to_owned());
                let first = ((seed as u64) << 48) | ((client as u64) << 32);
                tokio::spawn(put_client(addr, prefix, first, measure_from, until))
            })
            .collect();
        let mut total = Stats::default();
        for task in tasks {
            total.merge(task.await.expect("a PUT client task panicked"));
        }
        total
    });
    let measured = until.saturating_duration_since(measure_from);
    total.latencies_us.sort_unstable();
    let percentile = |p: usize| -> Option<f64> {
        let sorted = &total.latencies_us;
        (!sorted.is_empty())
            .then(|| f64::from(sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]) / 1000.0)
    };
    let result = CaseResult {
        writes_per_sec: total.latencies_us.len() as f64 / measured.as_secs_f64(),
        p50_ms: percentile(50),
        p99_ms: percentile(99),
        errors: total.errors,
        measured,
        note: total.first_error.clone().map(|e| format!("first error: {e}")).unwrap_or_default(),
    };
    (total, result)
}

/// The node's count of group-commit fsyncs, from `/metrics`, so the table shows how many writes
/// each one carried.
fn fsync_count(addr: &str) -> Option<u64> {
    let mut conn = Conn::connect(addr).ok()?;
    let (status, body) = conn.send("GET", "/metrics", None, b"").ok()?;
    if status != 200 {
        return None;
    }
    let text = String::from_utf8_lossy(&body);
    let line = text.lines().find(|l| l.starts_with("edgekv_store_fsyncs_total"))?;
    line.split_whitespace().last()?.parse::<f64>().ok().map(|n| n as u64)
}

/// What PUT clients observed.
#[derive(Default)]
struct Stats {
    /// Successful writes, warm-up included.
    ok: u64,
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

impl Stats {
    fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }

    fn merge(&mut self, other: Stats) {
        self.ok += other.ok;
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// One client: PUTs back to back on one keep-alive connection until `until`, timing those that
/// start at or after `measure_from`. Keys are `first, first + 1, ...` scrambled, so they are
/// distinct across clients and rounds yet spread over the key space as real keys would be.
async fn put_client(
    addr: String,
    prefix: String,
    first: u64,
    measure_from: Instant,
    until: Instant,
) -> Stats {
    let mut stats = Stats::default();
    let value = [b'v'; VALUE_LEN];
    let mut conn = match AsyncConn::connect(&addr).await {
        Ok(conn) => conn,
        Err(err) => {
            stats.error(format!("connect: {err}"));
            return stats;
        }
    };
    let mut path = String::new();
    for i in first.. {
        let started = Instant::now();
        if started >= until {
            break;
        }
        path.clear();
        let _ = write!(path, "{prefix}/k{:016x}", scramble(i));
        match conn.put(&path, &value).await {
            Ok((200, _)) => {
                stats.ok += 1;
                if started >= measure_from {
                    let micros = started.elapsed().as_micros();
                    stats.latencies_us.push(u32::try_from(micros).unwrap_or(u32::MAX));
                }
            }
            Ok((status, body)) => {
                stats.error(format!("PUT -> {status}: {}", String::from_utf8_lossy(&body)));
            }
            Err(err) => {
                stats.error(format!("PUT: {err}"));
                // The connection is in an unknown state: a fresh one, or give up.
                match AsyncConn::connect(&addr).await {
                    Ok(fresh) => conn = fresh,
                    Err(_) => break,
                }
            }
        }
    }
    stats
}

/// A keep-alive HTTP/1.1 connection for the load: just enough HTTP to send a PUT and read a
/// response with a Content-Length.
struct AsyncConn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl AsyncConn {
    async fn connect(addr: &str) -> io::Result<Self> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(AsyncConn { stream, buf: Vec::with_capacity(4096) })
    }

    async fn put(&mut self, path: &str, body: &[u8]) -> io::Result<(u16, Vec<u8>)> {
        use tokio::io::AsyncWriteExt;
        let mut request = format!(
            "PUT {path} HTTP/1.1\r\nHost: edgekv\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        self.stream.write_all(&request).await?;
        loop {
            if let Some(head_end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| io::Error::other(format!("bad status line in {head:?}")))?;
                let length = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                    .ok_or_else(|| io::Error::other("a response without Content-Length"))?;
                let total = head_end + 4 + length;
                while self.buf.len() < total {
                    self.fill().await?;
                }
                let body = self.buf[head_end + 4..total].to_vec();
                self.buf.drain(..total);
                return Ok((status, body));
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> io::Result<()> {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// The splitmix64 finalizer: a bijection, so distinct inputs stay distinct keys.
fn scramble(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One Redis case: a fresh `redis-server` with `appendfsync always`, loaded by
/// `redis-benchmark` with as many requests as it did in `secs` last time, so the runs are
/// about as long as edgekv's.
fn redis_case(measure: Duration, rate: &mut Option<f64>) -> Result<CaseResult, String> {
    let redis = Redis::start()?;
    let mut note = String::new();
    let per_sec = match *rate {
        Some(r) => r,
        None => {
            let calibration = redis_benchmark(redis.port, REDIS_CALIBRATION_REQUESTS)?;
            note = format!("sized by a {REDIS_CALIBRATION_REQUESTS}-request run; ");
            calibration.writes_per_sec
        }
    };
    let requests = ((per_sec * measure.as_secs_f64()) as u64).max(1_000);
    let mut result = redis_benchmark(redis.port, requests)?;
    *rate = Some(result.writes_per_sec);
    result.note = format!("{note}redis-benchmark -n {requests}");
    Ok(result)
}

/// Runs `redis-benchmark` and parses its CSV: one header line of column names, then a `SET` row.
fn redis_benchmark(port: u16, requests: u64) -> Result<CaseResult, String> {
    let started = Instant::now();
    let output = Command::new(REDIS_BENCHMARK)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "set"])
        .args(["-c", &CLIENTS.to_string(), "-d", &VALUE_LEN.to_string(), "-r", "1000000"])
        .args(["-n", &requests.to_string(), "--csv"])
        .stdin(Stdio::null())
        .output()
        .map_err(|err| format!("run {REDIS_BENCHMARK}: {err}"))?;
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "redis-benchmark {}: {}{}",
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(|f| f.trim().trim_matches('"')).collect())
        .collect();
    let (Some(header), Some(row)) = (rows.first(), rows.iter().find(|r| r.first() == Some(&"SET")))
    else {
        return Err(format!("no SET row in redis-benchmark's CSV: {stdout:?}"));
    };
    let column = |name: &str| -> Option<f64> {
        let at = header.iter().position(|h| *h == name)?;
        row.get(at)?.parse().ok()
    };
    let writes_per_sec = column("rps")
        .ok_or_else(|| format!("no rps column in redis-benchmark's CSV: {stdout:?}"))?;
    Ok(CaseResult {
        writes_per_sec,
        p50_ms: column("p50_latency_ms"),
        p99_ms: column("p99_latency_ms"),
        errors: 0,
        measured: elapsed,
        note: String::new(),
    })
}

/// A running `redis-server`, killed when dropped.
struct Redis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Result<Redis, String> {
        let dir = tempfile::tempdir().map_err(|err| format!("create redis's directory: {err}"))?;
        let log = File::create(dir.path().join("redis.log"))
            .map_err(|err| format!("create redis's log file: {err}"))?;
        let log_err = log.try_clone().map_err(|err| format!("share redis's log file: {err}"))?;
        let port = free_port();
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--appendonly", "yes", "--appendfsync", "always", "--save", ""])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|err| format!("spawn {REDIS_SERVER}: {err}"))?;
        let redis = Redis { child, port, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !redis.answers_ping() {
            if Instant::now() > deadline {
                return Err(format!("redis-server on port {port} did not answer PING within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(redis)
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let mut reply = [0; 7];
        stream.set_read_timeout(Some(Duration::from_secs(1))).is_ok()
            && stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// 2 and 3. Restart and memory

#[derive(Clone, Copy)]
enum Stop {
    Term,
    Kill,
}

impl Stop {
    fn name(self) -> &'static str {
        match self {
            Stop::Term => "SIGTERM",
            Stop::Kill => "kill -9",
        }
    }
}

/// One load-stop-restart cycle.
struct Restart {
    stop: Stop,
    load: Duration,
    loaded: Memory,
    disk_loaded: DiskUse,
    stopping: Duration,
    exit: ExitStatus,
    disk_stopped: DiskUse,
    disk_restarted: DiskUse,
    table: Duration,
    healthy: Duration,
    /// The node's own account of recovery: milliseconds to open the store, keys recovered.
    store_opened: Option<(u64, u64)>,
    restarted: Memory,
    verified: usize,
}

fn restarts_and_memory(bin: &Path, keys: usize, keep_logs: bool, problems: &mut Vec<String>) {
    println!();
    println!(
        "== 2. Restart with {keys} keys ({VALUE_LEN}-byte values, loaded {BULK_ITEMS} per bulk \
         request, durability fsync) =="
    );
    let mut cycles = Vec::new();
    for stop in [Stop::Term, Stop::Kill] {
        match restart_cycle(bin, keys, stop, keep_logs) {
            Ok(cycle) => cycles.push(cycle),
            Err(err) => {
                println!("{}: failed: {err}", stop.name());
                problems.push(format!("restart after {}: {err}", stop.name()));
            }
        }
    }
    let memory_only = in_memory_load(bin, keys, keep_logs);
    if let Err(err) = &memory_only {
        problems.push(format!("in-memory load: {err}"));
    }

    println!(
        "{:<10} {:>8} {:>9} {:>8} {:>9} {:>10} {:>12} {:>9}  {:<10} exit of the stopped node",
        "stopped by",
        "load s",
        "keys/s",
        "stop s",
        "table s",
        "healthz s",
        "store open s",
        "verified",
        "target"
    );
    for c in &cycles {
        let (open, recovered) = match c.store_opened {
            Some((ms, recovered)) => (format!("{:.2}", ms as f64 / 1000.0), recovered.to_string()),
            None => ("?".to_owned(), "?".to_owned()),
        };
        let verdict = if c.healthy <= RESTART_TARGET { "ok" } else { "OVER" };
        println!(
            "{:<10} {:>8.1} {:>9.0} {:>8.2} {:>9.2} {:>10.2} {:>12} {:>9}  <= {:.0} s {verdict:<4} {}",
            c.stop.name(),
            c.load.as_secs_f64(),
            keys as f64 / c.load.as_secs_f64(),
            c.stopping.as_secs_f64(),
            c.table.as_secs_f64(),
            c.healthy.as_secs_f64(),
            open,
            format!("{}/{}", c.verified, VERIFY_KEYS + 2),
            RESTART_TARGET.as_secs_f64(),
            c.exit,
        );
        if recovered != keys.to_string() {
            println!("    the restarted node reports {recovered} keys recovered, expected {keys}");
        }
        if c.verified != VERIFY_KEYS + 2 {
            problems.push(format!(
                "after {}: only {} of {} keys read back right",
                c.stop.name(),
                c.verified,
                VERIFY_KEYS + 2
            ));
        }
    }
    println!(
        "(times from spawn; 'store open' is the node's own log of opening the data directory)"
    );

    println!();
    println!(
        "== 3. Resident memory with {keys} keys of {VALUE_LEN}-byte values (MB = 10^6 bytes) =="
    );
    println!("{:<40} {:>9} {:>9}  target", "node", "VmRSS MB", "VmHWM MB");
    let row = |what: String, m: Memory, judged: bool| {
        let verdict = match (judged, m.rss_mb() <= RSS_TARGET_MB) {
            (false, _) => "(for comparison)".to_owned(),
            (true, ok) => format!("<= {RSS_TARGET_MB:.0} MB {}", if ok { "ok" } else { "OVER" }),
        };
        println!("{what:<40} {:>9.1} {:>9.1}  {verdict}", m.rss_mb(), m.hwm_mb());
    };
    for c in &cycles {
        row(format!("durable, after the load ({} run)", c.stop.name()), c.loaded, true);
        row(format!("durable, restarted after {}", c.stop.name()), c.restarted, true);
    }
    if let Ok((load, memory)) = &memory_only {
        row(format!("in-memory, after the load ({:.1} s)", load.as_secs_f64()), *memory, false);
    }
    for c in &cycles {
        println!(
            "data dir ({} run): {} after the load, {} after the stop, {} once restarted",
            c.stop.name(),
            c.disk_loaded,
            c.disk_stopped,
            c.disk_restarted
        );
    }
    println!(
        "raw size of the data: {:.1} MB of values, {:.1} MB of keys",
        (keys * VALUE_LEN) as f64 / 1e6,
        (keys * key(0).len()) as f64 / 1e6
    );
}

/// Loads `keys` keys into a fresh durable node, stops it the `stop` way and starts it again on
/// the same data directory.
fn restart_cycle(bin: &Path, keys: usize, stop: Stop, keep_logs: bool) -> Result<Restart, String> {
    let dir = scratch_dir(keep_logs);
    let data = dir.path().join("data");
    let mut first = Node::start(bin, Storage::Disk(&data), &dir.path().join("loaded.log"));
    first.wait_healthy();
    let ns = create_namespace(&first.addr);
    let load = bulk_load(&first.addr, &ns, keys)?;
    let loaded = first.memory();
    let disk_loaded = dir_size(&data);
    let stop_started = Instant::now();
    match stop {
        Stop::Term => first.signal_term(),
        Stop::Kill => first.kill(),
    }
    let exit = first.wait_exit(STOP_TIMEOUT);
    let stopping = stop_started.elapsed();
    drop(first);
    let disk_stopped = dir_size(&data);

    let second = Node::start(bin, Storage::Disk(&data), &dir.path().join("restarted.log"));
    let healthy = second.wait_healthy();
    let restarted = second.memory();
    let disk_restarted = dir_size(&data);
    let store_opened = second.store_opened();
    let verified = verify(&second.addr, &ns, keys);
    Ok(Restart {
        stop,
        load,
        loaded,
        disk_loaded,
        stopping,
        exit,
        disk_stopped,
        disk_restarted,
        table: second.table,
        healthy,
        store_opened,
        restarted,
        verified,
    })
}

/// The same load into an `--in-memory` node: its RSS is what the keys and values cost without
/// a storage engine.
fn in_memory_load(bin: &Path, keys: usize, keep_logs: bool) -> Result<(Duration, Memory), String> {
    let dir = scratch_dir(keep_logs);
    let node = Node::start(bin, Storage::InMemory, &dir.path().join("node.log"));
    node.wait_healthy();
    let ns = create_namespace(&node.addr);
    let load = bulk_load(&node.addr, &ns, keys)?;
    Ok((load, node.memory()))
}

fn key(i: usize) -> String {
    format!("key-{i:08}")
}

/// A value unique to key `i`, so a read that returns another key's value is caught.
fn value(i: usize) -> String {
    let mut value = format!("value-{i:010}-");
    let mut n = i;
    while value.len() < VALUE_LEN {
        value.push(char::from(b'a' + (n % 26) as u8));
        n = n / 26 + value.len();
    }
    value
}

/// Writes keys `0..keys` with bulk PUTs of [`BULK_ITEMS`] over one connection.
fn bulk_load(addr: &str, ns: &str, keys: usize) -> Result<Duration, String> {
    let path = format!("{}/bulk", namespace_path(ns));
    let mut conn = Conn::connect(addr).map_err(|err| format!("connect to {addr}: {err}"))?;
    let started = Instant::now();
    let mut body = String::new();
    for from in (0..keys).step_by(BULK_ITEMS) {
        body.clear();
        body.push('[');
        for i in from..(from + BULK_ITEMS).min(keys) {
            if i > from {
                body.push(',');
            }
            // Keys and values are plain ASCII: nothing to escape.
            let _ = write!(body, r#"{{"key":"{}","value":"{}"}}"#, key(i), value(i));
        }
        body.push(']');
        let (status, response) = conn
            .send("PUT", &path, Some("application/json"), body.as_bytes())
            .map_err(|err| format!("bulk write of keys {from}..: {err}"))?;
        if status != 200 {
            return Err(format!(
                "bulk write of keys {from}.. -> {status}: {}",
                String::from_utf8_lossy(&response)
            ));
        }
    }
    Ok(started.elapsed())
}

/// Reads back the first, the last and [`VERIFY_KEYS`] random keys; returns how many match.
fn verify(addr: &str, ns: &str, keys: usize) -> usize {
    let Ok(mut conn) = Conn::connect(addr) else { return 0 };
    let mut picks = vec![0, keys - 1];
    picks.extend((0..VERIFY_KEYS as u64).map(|n| (scramble(n ^ 0x5eed) % keys as u64) as usize));
    let mut good = 0;
    for i in picks {
        let path = format!("{}/values/{}", namespace_path(ns), key(i));
        match conn.send("GET", &path, None, b"") {
            Ok((200, body)) if body == value(i).as_bytes() => good += 1,
            Ok((status, body)) => {
                println!("    {} -> {status}: {}", key(i), String::from_utf8_lossy(&body));
            }
            Err(err) => println!("    {} -> {err}", key(i)),
        }
    }
    good
}

/// Bytes under `dir`: allocated on disk, and the files' apparent length. They differ because
/// the storage engine preallocates its journal.
fn dir_size(dir: &Path) -> DiskUse {
    let mut total = DiskUse::default();
    let Ok(entries) = std::fs::read_dir(dir) else { return total };
    for entry in entries.filter_map(Result::ok) {
        match entry.metadata() {
            Ok(meta) if meta.is_dir() => {
                let inner = dir_size(&entry.path());
                total.allocated += inner.allocated;
                total.apparent += inner.apparent;
            }
            Ok(meta) => {
                // st_blocks counts 512-byte units whatever the file system's block size.
                total.allocated += meta.blocks() * 512;
                total.apparent += meta.len();
            }
            Err(_) => {}
        }
    }
    total
}

#[derive(Clone, Copy, Default)]
struct DiskUse {
    allocated: u64,
    apparent: u64,
}

impl std::fmt::Display for DiskUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} MB ({:.1} MB apparent)",
            self.allocated as f64 / 1e6,
            self.apparent as f64 / 1e6
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The node

/// Memory of a process, from `/proc/PID/status`, in kB.
#[derive(Clone, Copy)]
struct Memory {
    rss_kb: u64,
    hwm_kb: u64,
}

impl Memory {
    fn rss_mb(self) -> f64 {
        self.rss_kb as f64 * 1024.0 / 1e6
    }

    fn hwm_mb(self) -> f64 {
        self.hwm_kb as f64 * 1024.0 / 1e6
    }
}

enum Storage<'a> {
    Disk(&'a Path),
    InMemory,
}

/// A running `edgekv node`, killed when dropped.
struct Node {
    child: Child,
    /// `host:port` of its HTTP API.
    addr: String,
    log: PathBuf,
    spawned: Instant,
    /// From spawn until the region table was printed.
    table: Duration,
}

impl Node {
    /// Spawns a node on free ports and waits for its region table.
    fn start(bin: &Path, storage: Storage<'_>, log: &Path) -> Node {
        let mut command = Command::new(bin);
        command.args(["node", "--region", REGION, "--listen", "127.0.0.1:0"]);
        command.args(["--grpc-listen", "127.0.0.1:0"]);
        match storage {
            Storage::Disk(dir) => command.arg("--data-dir").arg(dir),
            Storage::InMemory => command.arg("--in-memory"),
        };
        // Only the flags above decide how the node runs, whatever the caller's environment says.
        for var in [
            "EDGEKV_CONFIG",
            "EDGEKV_API_TOKEN",
            "EDGEKV_DURABILITY",
            "EDGEKV_DATA_DIR",
            "EDGEKV_IN_MEMORY",
            "EDGEKV_PEERS",
            "EDGEKV_DELAY",
            "EDGEKV_LOG_FORMAT",
        ] {
            command.env_remove(var);
        }
        let stderr = File::create(log).expect("create the node's log file");
        command
            .env("EDGEKV_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let spawned = Instant::now();
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("spawn the edgekv binary {}: {err}", bin.display()));
        let stdout = child.stdout.take().expect("the node's stdout is piped");
        let (tx, rx) = mpsc::channel();
        // Drains stdout for the node's whole life: a closed pipe would fail its later prints.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut node = Node {
            child,
            addr: String::new(),
            log: log.to_path_buf(),
            spawned,
            table: Duration::ZERO,
        };
        let deadline = spawned + STARTUP_TIMEOUT;
        while node.addr.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                panic!(
                    "edgekv printed no region table within {STARTUP_TIMEOUT:?} (exit: {:?}); log: {}",
                    node.child.try_wait(),
                    node.log_tail()
                );
            };
            // A region row: REGION URL GRPC BINDING TOKEN, the URL `http://HOST:PORT/client/v4`.
            if let Some(url) =
                line.split_whitespace().nth(1).and_then(|u| u.strip_prefix("http://"))
            {
                node.addr = url.split('/').next().unwrap_or_default().to_owned();
                node.table = spawned.elapsed();
            }
        }
        node
    }

    /// Polls `GET /healthz` until it answers 200; returns the time since spawn.
    fn wait_healthy(&self) -> Duration {
        let deadline = self.spawned + STARTUP_TIMEOUT;
        loop {
            let answer =
                Conn::connect(&self.addr).and_then(|mut c| c.send("GET", "/healthz", None, b""));
            let last = match answer {
                Ok((200, _)) => return self.spawned.elapsed(),
                Ok((status, body)) => format!("{status} {}", String::from_utf8_lossy(&body)),
                Err(err) => err.to_string(),
            };
            assert!(
                Instant::now() < deadline,
                "GET /healthz did not answer 200 within {STARTUP_TIMEOUT:?}; last: {last}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn memory(&self) -> Memory {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path).expect("read the node's /proc/PID/status");
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kb| kb.parse().ok())
                .unwrap_or_else(|| panic!("{path} has no {name} line"))
        };
        Memory { rss_kb: field("VmRSS:"), hwm_kb: field("VmHWM:") }
    }

    fn signal_term(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM {} failed: {status}", self.child.id());
    }

    fn kill(&mut self) {
        self.child.kill().expect("send SIGKILL to the node");
    }

    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the node for its exit") {
                return status;
            }
            assert!(Instant::now() < deadline, "the node did not exit within {timeout:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `elapsed_ms` and `keys` of the node's `store opened` log line.
    fn store_opened(&self) -> Option<(u64, u64)> {
        let log = std::fs::read_to_string(&self.log).ok()?;
        let line = log.lines().find(|l| l.contains("store opened"))?;
        let field = |name: &str| {
            line.split_whitespace().find_map(|w| w.strip_prefix(name)).and_then(|v| v.parse().ok())
        };
        Some((field("elapsed_ms=")?, field("keys=")?))
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn namespace_path(ns: &str) -> String {
    format!("/client/v4/accounts/{ACCOUNT}/storage/kv/namespaces/{ns}")
}

fn create_namespace(addr: &str) -> String {
    let mut conn = Conn::connect(addr).expect("connect to the node to create a namespace");
    let path = format!("/client/v4/accounts/{ACCOUNT}/storage/kv/namespaces");
    let (status, body) = conn
        .send("POST", &path, Some("application/json"), br#"{"title":"bench"}"#)
        .expect("POST a namespace");
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    match json["result"]["id"].as_str() {
        Some(id) if status == 200 => id.to_owned(),
        _ => panic!("creating a namespace answered {status}: {}", String::from_utf8_lossy(&body)),
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 client

/// One keep-alive connection. Responses are read by their Content-Length, which is how the
/// connection stays usable for the next request.
struct Conn {
    reader: BufReader<TcpStream>,
    request: Vec<u8>,
}

impl Conn {
    fn connect(addr: &str) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        Ok(Conn { reader: BufReader::new(stream), request: Vec::new() })
    }

    /// Sends one request and reads its response: status and body.
    fn send(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> io::Result<(u16, Vec<u8>)> {
        self.request.clear();
        write!(
            self.request,
            "{method} {path} HTTP/1.1\r\nHost: edgekv\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Length: {}\r\n",
            body.len()
        )?;
        if let Some(content_type) = content_type {
            write!(self.request, "Content-Type: {content_type}\r\n")?;
        }
        self.request.extend_from_slice(b"\r\n");
        self.request.extend_from_slice(body);
        // One write per request: head and body in separate segments would cost a round trip.
        self.reader.get_mut().write_all(&self.request)?;

        let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("bad status line {line:?}")))?;
        let mut length = None;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed in the head"));
            }
            if line == "\r\n" {
                break;
            }
            let Some((name, value)) = line.split_once(':') else { continue };
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse().map_err(|_| bad(format!("bad {line:?}")))?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(bad(format!("unsupported {line:?}: this client reads Content-Length")));
            }
        }
        let length: usize =
            length.ok_or_else(|| bad("a response without Content-Length".into()))?;
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok((status, body))
    }
}

// ---------------------------------------------------------------------------------------------
// Setup

/// A temporary directory for a node's data and log; left behind if the logs are to be kept.
fn scratch_dir(keep: bool) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("edgekv-durability-")
        .disable_cleanup(keep)
        .tempdir()
        .expect("create a temporary directory for the node");
    if keep {
        eprintln!("keeping {}", dir.path().display());
    }
    dir
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    listener.local_addr().expect("the bound listener's address").port()
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
