//! Replication benchmarks; they print figures and assert nothing about speed.
//!
//! 1. Throughput: puts/s at one region while it replicates to 3 peers at delay 0, next to the
//!    same load on a region with no peer (the baseline), in one run; the outbox backlog each
//!    second (it must not grow); and the visibility lag (origin write to apply at the peer) at
//!    p50 and p99 under that load.
//!    The same through the HTTP API: 32 keep-alive connections PUTting to the region, with and
//!    without 3 peers, and the visibility lag under that load.
//! 2. Anti-entropy cost between two regions holding N keys (default 1,000,000), with 0 and then
//!    100 differing entries: round trips, bytes and time.
//!
//! Run: `cargo bench -p edgekv-testkit --bench replication`. `EDGEKV_BENCH_SECS` sets the
//! measured time of each throughput case (default 5), `EDGEKV_BENCH_AE_KEYS` the key count,
//! `EDGEKV_BENCH_FRACTIONS` the paced loads (fractions of the saturation rate, `0.8,1` say).

/// The allocator of the `edgekv` binary, so that the figures are the binary's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use edgekv_core::{Entry, Timestamp, Version};
use edgekv_core::{NamespaceRecord, ReplicatedWrite};
use edgekv_replication::Fault;
use edgekv_store::WriteOp;
use edgekv_testkit::TestCluster;

const WRITERS: usize = 8;
const VALUE: &[u8] = &[b'v'; 100];

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs WRITERS tasks writing 100-byte values in the first region for `secs`; returns puts/s
/// and the outbox depth sampled every second.
async fn write_load(cluster: &TestCluster, secs: u64) -> (f64, Vec<usize>) {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let store = Arc::clone(&cluster.regions[0].store);
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (store, stop, count) = (Arc::clone(&store), Arc::clone(&stop), Arc::clone(&count));
        let (account, ns) = (cluster.account.clone(), cluster.namespace.clone());
        writers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let op = WriteOp {
                    key: format!("w{w}-{}", i % 10_000),
                    value: Some(Bytes::from_static(VALUE)),
                    metadata: None,
                    expiration: None,
                };
                store.write(&account, &ns, vec![op]).expect("write");
                count.fetch_add(1, Ordering::Relaxed);
                i += 1;
                tokio::task::yield_now().await;
            }
        }));
    }
    let started = Instant::now();
    let mut depths = Vec::new();
    for _ in 0..secs {
        tokio::time::sleep(Duration::from_secs(1)).await;
        depths.push(store.outbox_len());
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    for writer in writers {
        writer.await.expect("writer");
    }
    (count.load(Ordering::Relaxed) as f64 / elapsed, depths)
}

async fn throughput(secs: u64) {
    println!(
        "== Replication throughput, {WRITERS} writers, 100-byte values, delay 0, {secs} s per case"
    );
    println!("{:<22} {:>10}   outbox depth each second", "case", "puts/s");
    let alone = TestCluster::builder().regions(&["wnam"]).start().await;
    let (baseline, depths) = write_load(&alone, secs).await;
    println!("{:<22} {:>10.0}   {depths:?}", "1 region (baseline)", baseline);
    drop(alone);

    let cluster = four_regions().await;
    let (rps, depths) = write_load(&cluster, secs).await;
    println!("{:<22} {:>10.0}   {depths:?}", "4 regions, 3 peers", rps);
    println!(
        "replicating costs {:.0} % of the baseline's throughput",
        (1.0 - rps / baseline) * 100.0
    );
    let drained = Instant::now();
    while cluster.regions[0].store.outbox_len() > 0 && drained.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("backlog drained {:?} after the load stopped", drained.elapsed());
    print_lag(&cluster, "at saturation (writers take every cycle the senders do not)");
    drop(cluster);

    // Paced loads below saturation: the lag replication itself adds, rather than time spent
    // queueing behind writers that take every cycle of a 2-core machine.
    println!(
        "{:<22} {:>10}   {:>9} {:>9} {:>9} {:>12}   outbox each second",
        "paced load", "puts/s", "lag p50", "p99", "p99 max", "writes/push"
    );
    for fraction in fractions() {
        let rate = ((rps * fraction) as u64).max(1000);
        let cluster = four_regions().await;
        let (achieved, depths) = paced_load(&cluster, rate, secs).await;
        let lags: Vec<(f64, f64)> = cluster.regions[1..]
            .iter()
            .map(|r| {
                let lag = r.replication_metrics.lag.with(&["wnam"]);
                (lag.quantile(0.5).unwrap_or(f64::NAN), lag.quantile(0.99).unwrap_or(f64::NAN))
            })
            .collect();
        let p50 = lags.iter().map(|l| l.0).sum::<f64>() / lags.len() as f64;
        let p99 = lags.iter().map(|l| l.1).sum::<f64>() / lags.len() as f64;
        let p99_max = lags.iter().map(|l| l.1).fold(0.0, f64::max);
        println!(
            "{:<22} {achieved:>10.0}   {:>7.2}ms {:>7.2}ms {:>7.2}ms {:>12.1}   {depths:?}",
            format!("{:.0} % of saturation", fraction * 100.0),
            p50 * 1000.0,
            p99 * 1000.0,
            p99_max * 1000.0,
            writes_per_push(&cluster)
        );
    }
    println!("(lag: origin write to apply at each of the 3 peers; p50 and p99 averaged over peers, p99 max the worst peer; targets: p99 <= 5 ms up to 80 % of saturation, <= 20 ms at it)");
}

/// The paced loads, as fractions of the saturation rate: `EDGEKV_BENCH_FRACTIONS` (a comma
/// list, `0.8,1` say) or the default ladder.
fn fractions() -> Vec<f64> {
    let parsed = std::env::var("EDGEKV_BENCH_FRACTIONS").ok().and_then(|list| {
        list.split(',').map(|f| f.trim().parse().ok()).collect::<Option<Vec<f64>>>()
    });
    parsed.filter(|f| !f.is_empty()).unwrap_or_else(|| vec![0.05, 0.1, 0.25, 0.5, 0.8, 1.0])
}

/// Writes the first region delivered per Push, over its three peers: how well the senders
/// batch (one write per Push is one RPC per write).
fn writes_per_push(cluster: &TestCluster) -> f64 {
    let metrics = &cluster.regions[0].replication_metrics;
    let (mut writes, mut pushes) = (0, 0);
    for peer in &cluster.regions[1..] {
        let name = peer.config.region.as_str();
        writes += metrics.writes_sent.with(&[name]).get();
        pushes += metrics.messages_sent.with(&[name, "push"]).get();
    }
    writes as f64 / pushes.max(1) as f64
}

/// Writes at `rate` puts/s for `secs`, in a burst every millisecond.
async fn paced_load(cluster: &TestCluster, rate: u64, secs: u64) -> (f64, Vec<usize>) {
    let store = Arc::clone(&cluster.regions[0].store);
    let (account, ns) = (cluster.account.clone(), cluster.namespace.clone());
    let per_tick = (rate / 1000).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut written = 0u64;
    let mut depths = Vec::new();
    let mut next_sample = Duration::from_secs(1);
    while started.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        let ops = (0..per_tick)
            .map(|i| WriteOp {
                key: format!("p{}", (written + i) % 10_000),
                value: Some(Bytes::from_static(VALUE)),
                metadata: None,
                expiration: None,
            })
            .collect();
        store.write(&account, &ns, ops).expect("write");
        written += per_tick;
        if started.elapsed() >= next_sample {
            depths.push(store.outbox_len());
            next_sample += Duration::from_secs(1);
        }
    }
    (written as f64 / started.elapsed().as_secs_f64(), depths)
}

fn print_lag(cluster: &TestCluster, load: &str) {
    for region in &cluster.regions[1..] {
        let lag = region.replication_metrics.lag.with(&["wnam"]);
        let ms = |q: f64| lag.quantile(q).map_or("-".into(), |s| format!("{:.2} ms", s * 1000.0));
        println!(
            "visibility lag wnam -> {} {load}: p50 {}, p99 {} over {} writes (target p99 <= 5 ms)",
            region.config.region,
            ms(0.5),
            ms(0.99),
            lag.count()
        );
    }
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

async fn anti_entropy(keys: u64) {
    println!();
    println!("== Anti-entropy cost, 2 regions holding {keys} keys");
    let cluster = TestCluster::builder().regions(&["wnam", "enam"]).start().await;
    // Stop delivery and periodic anti-entropy: the rounds below are the only traffic.
    for (from, to) in [("wnam", "enam"), ("enam", "wnam")] {
        cluster.must_fault(Fault::Pause { from: from.into(), to: to.into() });
    }
    let (wnam, enam) = (cluster.store("wnam"), cluster.store("enam"));
    let origin = "xsrc".parse().expect("region");
    // Versions an hour old are past the digest horizon, so they enter the digests at once.
    let base = Timestamp::from_physical_ms(wall_ms() - 3_600_000).0;
    let account = cluster.account.clone();
    // Created identically on both sides (a local create would exist in one region only).
    let ns = NamespaceRecord {
        account: account.clone(),
        id: edgekv_core::NamespaceId::random(),
        title: "bench".into(),
        deleted: false,
        version: Version::new(Timestamp(base), origin),
    };
    let record = ReplicatedWrite::Namespace(ns.clone());
    wnam.mature();
    enam.mature();
    enam.apply_replicated(record.clone()).expect("namespace");
    wnam.apply_replicated(record).expect("namespace");
    let write = |i: u64| ReplicatedWrite::Key {
        account: account.clone(),
        namespace: ns.id.clone(),
        key: format!("key-{i:08}"),
        entry: Entry {
            value: Some(Bytes::from_static(VALUE)),
            metadata: None,
            expiration: None,
            version: Version::new(Timestamp(base + 1 + i), origin),
        },
    };
    let loading = Instant::now();
    for i in 0..keys {
        let w = write(i);
        wnam.apply_replicated(w.clone()).expect("load");
        enam.apply_replicated(w).expect("load");
    }
    println!("loaded {keys} keys into both regions in {:.1} s", loading.elapsed().as_secs_f64());
    let handle = &cluster.region("wnam").replication;
    let peer = "enam".parse().expect("region");
    println!(
        "{:<12} {:>11} {:>12} {:>10} {:>8} {:>8}",
        "differing", "round trips", "bytes", "time", "pulled", "pushed"
    );
    for differing in [0u64, 100] {
        for i in 0..differing {
            // New keys on one side only, and as many changed versions on the other.
            if i.is_multiple_of(2) {
                wnam.apply_replicated(write(keys + i)).expect("diff");
            } else {
                let ReplicatedWrite::Key { entry, .. } = write(i) else { unreachable!() };
                let newer = Entry {
                    version: Version::new(Timestamp(base + keys + 1000 + i), origin),
                    ..entry
                };
                let w = ReplicatedWrite::Key {
                    account: account.clone(),
                    namespace: ns.id.clone(),
                    key: format!("key-{i:08}"),
                    entry: newer,
                };
                enam.apply_replicated(w).expect("diff");
            }
        }
        let started = Instant::now();
        let report = handle.anti_entropy_round(peer).await.expect("round");
        let time = started.elapsed();
        println!(
            "{differing:<12} {:>11} {:>12} {:>8.1}ms {:>8} {:>8}",
            report.round_trips,
            report.bytes,
            time.as_secs_f64() * 1000.0,
            report.pulled,
            report.pushed
        );
    }
    let after = handle.anti_entropy_round(peer).await.expect("round");
    println!(
        "a round right after the repair: {} round trip(s), roots equal: {}",
        after.round_trips,
        wnam.digest_root() == enam.digest_root()
    );
}

/// Four regions replicating at delay 0, with anti-entropy out of the way: the load's own
/// traffic is all there is.
async fn four_regions() -> TestCluster {
    TestCluster::builder()
        .regions(&["wnam", "enam", "weur", "apac"])
        .anti_entropy_interval(Duration::from_secs(3600))
        .start()
        .await
}

/// Connections of the HTTP case.
const CONNECTIONS: usize = 32;

/// One keep-alive connection PUTting 100-byte values back to back until `until`; returns how
/// many succeeded. Any other status fails the benchmark.
async fn put_loop(addr: std::net::SocketAddr, base: String, first: usize, until: Instant) -> u64 {
    use http_body_util::{BodyExt, Full};
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let mut done = 0u64;
    let mut i = first;
    while Instant::now() < until {
        // A key of its own each time: the write rate limit refuses a key written twice in a
        // second, as Workers KV does.
        let request = hyper::Request::put(format!("{base}/h{first}-{i}"))
            .header("authorization", "Bearer edgekv-dev-token")
            .body(Full::new(Bytes::from_static(VALUE)))
            .expect("request");
        let response = sender.send_request(request).await.expect("send");
        let status = response.status();
        let _ = response.into_body().collect().await.expect("body");
        assert_eq!(status, 200, "PUT failed");
        done += 1;
        i += 1;
    }
    done
}

/// PUTs through the first region's HTTP API for `secs` from [`CONNECTIONS`] connections.
async fn http_load(cluster: &TestCluster, secs: u64) -> f64 {
    let region = &cluster.regions[0];
    let base = format!(
        "/client/v4/accounts/{}/storage/kv/namespaces/{}/values",
        cluster.account, cluster.namespace
    );
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|c| tokio::spawn(put_loop(region.http_addr, base.clone(), c * 1000, until)))
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("load task");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

async fn http_throughput(secs: u64) {
    println!();
    println!("== Through the HTTP API: {CONNECTIONS} keep-alive connections PUTting 100-byte values, delay 0, {secs} s");
    let alone = TestCluster::builder().regions(&["wnam"]).start().await;
    let baseline = http_load(&alone, secs).await;
    drop(alone);
    let cluster = four_regions().await;
    let rps = http_load(&cluster, secs).await;
    println!("1 region (baseline)    {baseline:>10.0} PUT/s");
    println!(
        "4 regions, 3 peers     {rps:>10.0} PUT/s ({:.0} % of the baseline)",
        rps / baseline * 100.0
    );
    print_lag(&cluster, "under that HTTP load");
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    throughput(env_number("EDGEKV_BENCH_SECS", 5)).await;
    http_throughput(env_number("EDGEKV_BENCH_SECS", 5)).await;
    anti_entropy(env_number("EDGEKV_BENCH_AE_KEYS", 1_000_000)).await;
}
