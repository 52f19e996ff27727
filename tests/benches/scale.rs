//! How EdgeKV scales with the number of regions on one machine: `edgekv cluster` (the release
//! binary, every region in one process) with 5, 20 and 50 regions, full mesh, delay 0.
//!
//! For each size, durable (fsync, the default) and in memory, it prints:
//! - resident memory per region at rest (the process's VmRSS after start-up, divided by the
//!   region count) and after the load;
//! - replication cost per write: push messages and bytes sent by all regions, divided by the
//!   writes (a full mesh sends each write to N-1 peers, batched);
//! - time to converge (every region's digest equal and nothing queued on any link) after the
//!   load, and after healing a partition that split the regions in half while both halves
//!   took writes;
//! - anti-entropy cost per round at rest: digest and reconcile messages and bytes.
//!
//! Figures only; nothing fails on speed. `cargo bench -p edgekv-tests --bench scale`;
//! `EDGEKV_BENCH_REGIONS=5,20` picks the sizes, `EDGEKV_BENCH_WRITES` the writes of the load
//! (default 2000, spread over the regions).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use edgekv_tests::{edgekv_release_bin, http, Edgekv};
use serde_json::{json, Value};

const TOKEN: (&str, &str) = ("Authorization", "Bearer edgekv-dev-token");
const ADMIN: (&str, &str) = ("Authorization", "Bearer edgekv-dev-admin-token");
const JSON: (&str, &str) = ("Content-Type", "application/json");
const ACCOUNT: &str = "scale";
const BULK: usize = 100;
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(300);
/// Anti-entropy interval of the runs: long enough that the load is carried by pushes.
const AE_INTERVAL: &str = "5s";
const AE_WINDOW: Duration = Duration::from_secs(20);

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn rss_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Sums of a node's metrics by name and one label (`""` for none).
fn metrics(addr: &str) -> HashMap<(String, String), f64> {
    let text = String::from_utf8_lossy(&http(addr, "GET", "/metrics", &[], b"").body).into_owned();
    let mut sums = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let rpc = labels
            .split(',')
            .find_map(|l| l.strip_prefix("rpc=\""))
            .map(|v| v.trim_end_matches(['"', '}']).to_owned())
            .unwrap_or_default();
        *sums.entry((name.to_owned(), rpc)).or_insert(0.0) += value;
    }
    sums
}

fn total(regions: &[String], name: &str, rpc: &str) -> f64 {
    regions
        .iter()
        .map(|a| metrics(a).get(&(name.to_owned(), rpc.to_owned())).copied().unwrap_or(0.0))
        .sum()
}

/// Every region's digest equal and nothing queued on any link.
fn converged(regions: &[String]) -> bool {
    let mut roots = Vec::new();
    for addr in regions {
        let status = http(addr, "GET", "/admin/status", &[ADMIN], b"");
        let status: Value = serde_json::from_slice(&status.body).unwrap_or(Value::Null);
        roots.push(status["digest"]["root"].as_str().unwrap_or("?").to_owned());
        let queued = metrics(addr).get(&("edgekv_outbox_depth".to_owned(), String::new())).copied();
        if queued.unwrap_or(1.0) > 0.0 {
            return false;
        }
    }
    roots.iter().all(|r| *r == roots[0] && r != "?")
}

fn wait_converged(regions: &[String]) -> Duration {
    let started = Instant::now();
    while !converged(regions) {
        assert!(started.elapsed() < CONVERGE_TIMEOUT, "no convergence within {CONVERGE_TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    started.elapsed()
}

fn create_namespace(addr: &str, regions: &[String]) -> String {
    let path = format!("/client/v4/accounts/{ACCOUNT}/storage/kv/namespaces");
    let body = json!({ "title": "scale" }).to_string();
    let reply = http(addr, "POST", &path, &[TOKEN, JSON], body.as_bytes());
    let id = reply.json()["result"]["id"].as_str().expect("a namespace id").to_owned();
    for region in regions {
        let started = Instant::now();
        while http(region, "GET", &format!("{path}/{id}"), &[TOKEN], b"").status != 200 {
            assert!(started.elapsed() < CONVERGE_TIMEOUT, "the namespace never reached {region}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    id
}

/// `count` writes of 100-byte values, spread over `regions` in bulk requests; returns how many.
fn write(regions: &[String], ns: &str, prefix: &str, count: usize) -> usize {
    let path = format!("/client/v4/accounts/{ACCOUNT}/storage/kv/namespaces/{ns}/bulk");
    let mut written = 0;
    let mut i = 0;
    while written < count {
        let addr = &regions[i % regions.len()];
        let n = BULK.min(count - written);
        let items: Vec<Value> = (0..n)
            .map(|j| json!({"key": format!("{prefix}-{i}-{j}"), "value": "v".repeat(100)}))
            .collect();
        let reply =
            http(addr, "PUT", &path, &[TOKEN, JSON], Value::from(items).to_string().as_bytes());
        assert_eq!(
            reply.status,
            200,
            "bulk write refused: {}",
            String::from_utf8_lossy(&reply.body)
        );
        written += n;
        i += 1;
    }
    written
}

fn set_partition(regions: &[String], names: &[String], on: bool) {
    let half = names.len() / 2;
    let fault = json!({"kind": "partition", "a": names[..half], "b": names[half..]}).to_string();
    for addr in regions {
        let reply = if on {
            http(addr, "POST", "/admin/faults", &[ADMIN, JSON], fault.as_bytes())
        } else {
            http(addr, "DELETE", "/admin/faults", &[ADMIN], b"")
        };
        assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    }
}

struct Row {
    regions: usize,
    mode: &'static str,
    rest_mib: f64,
    load_mib: f64,
    pushes_per_write: f64,
    bytes_per_write: f64,
    converge_load: Duration,
    converge_heal: Duration,
    ae_msgs_per_round: f64,
    ae_rounds: f64,
}

fn run(bin: &std::path::Path, n: usize, in_memory: bool, writes: usize) -> Row {
    let names: Vec<String> = (0..n).map(|i| format!("r{i:02}")).collect();
    let list = names.join(",");
    let mut args = vec!["cluster", "--regions", &list, "--port", "0", "--delay", "0s"];
    args.extend(["--anti-entropy-interval", AE_INTERVAL, "--write-rate-limit", "off"]);
    if in_memory {
        args.push("--in-memory");
    }
    let cluster = Edgekv::must_start_binary(bin, &args, &[]);
    let regions: Vec<String> = cluster.regions.iter().map(|r| r.addr.clone()).collect();
    let pid = cluster.pid();
    std::thread::sleep(Duration::from_secs(3));
    let rest_mib = rss_mib(pid, "VmRSS:") / n as f64;

    let ns = create_namespace(&regions[0], &regions);
    let pushes_before = total(&regions, "edgekv_replication_messages_sent_total", "push");
    let bytes_before = total(&regions, "edgekv_replication_bytes_sent_total", "");
    let written = write(&regions, &ns, "load", writes);
    let converge_load = wait_converged(&regions);
    let pushes = total(&regions, "edgekv_replication_messages_sent_total", "push") - pushes_before;
    let bytes = total(&regions, "edgekv_replication_bytes_sent_total", "") - bytes_before;
    let load_mib = rss_mib(pid, "VmHWM:") / n as f64;

    set_partition(&regions, &names, true);
    write(&regions, &ns, "split", 20 * n);
    std::thread::sleep(Duration::from_secs(2));
    set_partition(&regions, &names, false);
    let converge_heal = wait_converged(&regions);

    let rounds_before = total(&regions, "edgekv_anti_entropy_rounds_total", "");
    let ae_before = total(&regions, "edgekv_replication_messages_sent_total", "digest")
        + total(&regions, "edgekv_replication_messages_sent_total", "reconcile");
    std::thread::sleep(AE_WINDOW);
    let ae_rounds = total(&regions, "edgekv_anti_entropy_rounds_total", "") - rounds_before;
    let ae = total(&regions, "edgekv_replication_messages_sent_total", "digest")
        + total(&regions, "edgekv_replication_messages_sent_total", "reconcile")
        - ae_before;
    Row {
        regions: n,
        mode: if in_memory { "in memory" } else { "durable" },
        rest_mib,
        load_mib,
        pushes_per_write: pushes / written as f64,
        bytes_per_write: bytes / written as f64,
        converge_load,
        converge_heal,
        ae_msgs_per_round: if ae_rounds > 0.0 { ae / ae_rounds } else { f64::NAN },
        ae_rounds,
    }
}

fn main() {
    let bin = edgekv_release_bin();
    let sizes = env_list("EDGEKV_BENCH_REGIONS", &[5, 20, 50]);
    let writes = env_list("EDGEKV_BENCH_WRITES", &[2000])[0];
    println!("edgekv cluster, full mesh, delay 0, anti-entropy every {AE_INTERVAL}; {writes} writes of 100 B");
    println!(
        "{:>7} {:<9} {:>10} {:>11} {:>13} {:>12} {:>12} {:>12} {:>14}",
        "regions",
        "storage",
        "MiB/region",
        "peak/region",
        "pushes/write",
        "bytes/write",
        "converge",
        "after heal",
        "AE msgs/round"
    );
    for &n in &sizes {
        for in_memory in [true, false] {
            let row = run(&bin, n, in_memory, writes);
            println!(
                "{:>7} {:<9} {:>10.1} {:>11.1} {:>13.2} {:>12.0} {:>10.2} s {:>10.2} s {:>9.1} ({:.0} rounds)",
                row.regions,
                row.mode,
                row.rest_mib,
                row.load_mib,
                row.pushes_per_write,
                row.bytes_per_write,
                row.converge_load.as_secs_f64(),
                row.converge_heal.as_secs_f64(),
                row.ae_msgs_per_round,
                row.ae_rounds,
            );
        }
    }
}
