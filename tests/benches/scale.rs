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
//! With `EDGEKV_BENCH_COMPOSE=1`, each size also runs as one container per region
//! (deploy/scale/compose.py; needs the image of deploy/build-image.sh and docker-compose), its
//! memory from `docker stats`.
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

/// The measurements on `regions` (HTTP addresses, in `names` order); `memory` reads the
/// resident memory per region (now, peak).
fn measure(
    regions: &[String],
    names: &[String],
    writes: usize,
    memory: &dyn Fn() -> (f64, f64),
) -> Row {
    std::thread::sleep(Duration::from_secs(3));
    let rest_mib = memory().0;
    let ns = create_namespace(&regions[0], regions);
    let pushes_before = total(regions, "edgekv_replication_messages_sent_total", "push");
    let bytes_before = total(regions, "edgekv_replication_bytes_sent_total", "");
    let written = write(regions, &ns, "load", writes);
    let converge_load = wait_converged(regions);
    let pushes = total(regions, "edgekv_replication_messages_sent_total", "push") - pushes_before;
    let bytes = total(regions, "edgekv_replication_bytes_sent_total", "") - bytes_before;
    let load_mib = memory().1;

    set_partition(regions, names, true);
    write(regions, &ns, "split", 20 * names.len());
    std::thread::sleep(Duration::from_secs(2));
    set_partition(regions, names, false);
    let converge_heal = wait_converged(regions);

    let ae_messages = || {
        total(regions, "edgekv_replication_messages_sent_total", "digest")
            + total(regions, "edgekv_replication_messages_sent_total", "reconcile")
    };
    let rounds_before = total(regions, "edgekv_anti_entropy_rounds_total", "");
    let ae_before = ae_messages();
    std::thread::sleep(AE_WINDOW);
    let ae_rounds = total(regions, "edgekv_anti_entropy_rounds_total", "") - rounds_before;
    let ae = ae_messages() - ae_before;
    Row {
        regions: names.len(),
        mode: "",
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

fn region_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("r{i:02}")).collect()
}

/// Every region in one `edgekv cluster` process; memory is the process's divided by `n`.
fn run(bin: &std::path::Path, n: usize, in_memory: bool, writes: usize) -> Row {
    let names = region_names(n);
    let list = names.join(",");
    let mut args = vec!["cluster", "--regions", &list, "--port", "0", "--delay", "0s"];
    args.extend(["--anti-entropy-interval", AE_INTERVAL, "--write-rate-limit", "off"]);
    if in_memory {
        args.push("--in-memory");
    }
    let cluster = Edgekv::must_start_binary(bin, &args, &[]);
    let regions: Vec<String> = cluster.regions.iter().map(|r| r.addr.clone()).collect();
    let pid = cluster.pid();
    let memory = || (rss_mib(pid, "VmRSS:") / n as f64, rss_mib(pid, "VmHWM:") / n as f64);
    let row = measure(&regions, &names, writes, &memory);
    Row { mode: if in_memory { "in memory" } else { "durable" }, ..row }
}

/// One container per region (deploy/scale/compose.py, durable); memory is the containers'
/// average as `docker stats` reports it (no peak: both columns are the current figure).
fn run_compose(n: usize, writes: usize) -> Result<Row, String> {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let generated = std::process::Command::new("python3")
        .arg(repo.join("deploy/scale/compose.py"))
        .arg(n.to_string())
        .output()
        .map_err(|e| format!("run deploy/scale/compose.py: {e}"))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("compose.yml");
    std::fs::write(&file, &generated.stdout).map_err(|e| e.to_string())?;
    let compose = |args: &[&str]| -> Result<(), String> {
        let status = std::process::Command::new("docker-compose")
            .args(["-p", COMPOSE_PROJECT, "-f"])
            .arg(&file)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map_err(|e| format!("run docker-compose: {e}"))?;
        status.success().then_some(()).ok_or_else(|| format!("docker-compose {args:?} failed"))
    };
    let _ = compose(&["down", "-v"]);
    compose(&["up", "-d"])?;
    let names = region_names(n);
    let regions: Vec<String> =
        (0..n).map(|i| format!("127.0.0.1:{}", COMPOSE_BASE_PORT + i)).collect();
    let started = Instant::now();
    for addr in &regions {
        while std::net::TcpStream::connect(addr).is_err()
            || http(addr, "GET", "/readyz", &[], b"").status != 200
        {
            if started.elapsed() > CONVERGE_TIMEOUT {
                let _ = compose(&["down", "-v"]);
                return Err(format!("{addr} never became ready"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let memory = || {
        let mib = docker_stats_mib(COMPOSE_PROJECT);
        (mib, mib)
    };
    let row = measure(&regions, &names, writes, &memory);
    compose(&["down", "-v"])?;
    Ok(Row { mode: "compose", ..row })
}

const COMPOSE_PROJECT: &str = "edgekvscale";
const COMPOSE_BASE_PORT: usize = 18787;

/// The average memory of the project's containers, in MiB.
fn docker_stats_mib(project: &str) -> f64 {
    let out = std::process::Command::new("docker")
        .args(["stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let figures: Vec<f64> = out
        .lines()
        .filter(|l| l.starts_with(&format!("{project}_")))
        .filter_map(|l| parse_size_mib(l.split_whitespace().nth(1)?))
        .collect();
    figures.iter().sum::<f64>() / figures.len().max(1) as f64
}

/// `12.5MiB`, `1.2GiB`, `900KiB` in MiB.
fn parse_size_mib(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    Some(match unit {
        "B" => number / 1048576.0,
        "KiB" | "kB" => number / 1024.0,
        "MiB" | "MB" => number,
        "GiB" | "GB" => number * 1024.0,
        _ => return None,
    })
}

fn print_row(row: &Row) {
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

fn main() {
    let bin = edgekv_release_bin();
    let sizes = env_list("EDGEKV_BENCH_REGIONS", &[5, 20, 50]);
    let writes = env_list("EDGEKV_BENCH_WRITES", &[2000])[0];
    // The compose rows need the image (deploy/build-image.sh) and docker-compose.
    let with_compose = std::env::var("EDGEKV_BENCH_COMPOSE").is_ok_and(|v| v == "1");
    println!("full mesh, delay 0, anti-entropy every {AE_INTERVAL}; {writes} writes of 100 B");
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
            print_row(&run(&bin, n, in_memory, writes));
        }
        if with_compose {
            match run_compose(n, writes) {
                Ok(row) => print_row(&row),
                Err(why) => println!("{n:>7} compose   could not run: {why}"),
            }
        }
    }
}
