//! `edgekv lab check` as users run it: exit codes 0 / 1 / 2 and the files it writes.

use edgekv_tests::must_run;

const PUT: &str = r#"{"type":"op","index":0,"process":0,"region":"wnam","f":"put","key":"k","value":"v","version":"0000000000000001-wnam","invoke":1,"complete":2,"outcome":"ok"}"#;

fn run_check(history: &str) -> (i32, String, serde_json::Value) {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(dir.path().join("history.jsonl"), history).expect("write the history");
    let path = dir.path().display().to_string();
    let (status, stderr) = must_run(&["lab", "check", &path], &[]);
    let check = std::fs::read(dir.path().join("check.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(serde_json::Value::Null);
    (status.code().expect("an exit code"), stderr, check)
}

#[test]
fn lab_check_exits_0_1_or_2_and_writes_its_verdict() {
    let kept = r#"{"type":"final","region":"wnam","key":"k","value":"v","version":"0000000000000001-wnam","at":3}"#;
    let (code, _, check) = run_check(&format!("{PUT}\n{kept}\n"));
    assert_eq!((code, check["validity"].as_str()), (0, Some("valid")));

    let lost = r#"{"type":"final","region":"wnam","key":"k","at":3}"#;
    let (code, _, check) = run_check(&format!("{PUT}\n{lost}\n"));
    assert_eq!((code, check["validity"].as_str()), (1, Some("invalid")));
    assert_eq!(check["anomalies"][0]["kind"], "lost_write");
    assert_eq!(check["anomalies"][0]["ops"], serde_json::json!([0]));

    let (code, _, check) = run_check(&format!("{PUT}\n"));
    assert_eq!((code, check["validity"].as_str()), (2, Some("unknown")), "no final reads");

    let (code, stderr, _) = run_check("not json\n");
    assert_eq!(code, 2);
    assert!(stderr.contains("history.jsonl") && stderr.contains("line 1"), "{stderr}");
}

/// A scenario for a short run: three in-process regions, every link uniform(300ms,900ms), a key
/// space so large that writes almost never overwrite each other (so visibility is the link
/// delay's alone), and a partition in the middle to have a heal to converge from.
fn scenario(duration: &str, partition: bool) -> String {
    let fault = if partition {
        "[[faults]]\nat = \"4s\"\nfor = \"2s\"\n\
         fault = { kind = \"partition\", a = [\"wnam\"], b = [\"enam\", \"weur\"] }\n"
    } else {
        ""
    };
    format!(
        r#"
name = "ci-visibility"
duration = "{duration}"
[cluster]
delay = "uniform(300ms,900ms)"
anti_entropy_interval = "1s"
[[regions]]
name = "wnam"
[[regions]]
name = "enam"
[[regions]]
name = "weur"
[workload]
writers = 2
readers = 1
rate = 15
keys = 1000000
mix = {{ put = 8, delete = 1, get = 1 }}
{fault}"#
    )
}

fn lab_run(dir: &std::path::Path, text: &str, seed: &str) -> (i32, String) {
    let path = dir.join("scenario.toml");
    std::fs::write(&path, text).expect("write the scenario");
    let out = dir.join("out");
    let (status, stderr) = must_run(
        &[
            "lab",
            "run",
            &path.display().to_string(),
            "--out",
            &out.display().to_string(),
            "--seed",
            seed,
        ],
        &[],
    );
    (status.code().expect("an exit code"), stderr)
}

fn json(path: &std::path::Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_lab_run_measures_the_visibility_the_cluster_was_configured_with() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (code, stderr) = lab_run(dir.path(), &scenario("12s", true), "7");
    assert_eq!(code, 0, "a healthy cluster is valid; stderr: {stderr}");
    assert!(stderr.contains("seed 7"), "the seed is printed: {stderr}");
    let out = dir.path().join("out");
    let summary = json(&out.join("summary.json"));
    assert_eq!(summary["run"]["seed"], 7);
    assert_eq!(summary["check"]["validity"], "valid");

    // Every write reached both other regions: well over a hundred measured deliveries per pair.
    let overall = &summary["visibility"]["overall"];
    let pairs = summary["visibility"]["pairs"].as_array().expect("pairs");
    assert_eq!(pairs.len(), 6, "every directed pair of three regions");
    for pair in pairs {
        assert!(pair["count"].as_f64().unwrap_or(0.0) >= 100.0, "{pair}");
    }
    // Measured against configured: the median lands near the model's 600 ms (the partition
    // delays a few writes by up to 2 s, which moves the tail, not the middle), and the CDFs are
    // close everywhere.
    let p50 = overall["p50_ms"].as_f64().expect("p50");
    let predicted = overall["predicted_p50_ms"].as_f64().expect("predicted p50");
    assert!((predicted - 600.0).abs() < 30.0, "the model's median is 600 ms: {predicted}");
    assert!((p50 - predicted).abs() < 100.0, "measured p50 {p50} vs predicted {predicted}");
    let ks = overall["ks_distance"].as_f64().expect("ks");
    assert!(ks < 0.2, "KS distance {ks} between measured and configured visibility");
    assert!(overall["p99_ms"].as_f64().expect("p99") >= 800.0, "{overall}");

    // The heal converged, and the report is one self-contained file.
    let convergence = summary["convergence"].as_array().expect("convergence");
    assert_eq!(convergence.len(), 1, "one heal: {convergence:?}");
    assert!(convergence[0]["convergence_ms"].as_f64().expect("ms") < 5_000.0);
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert!(html.contains("<svg") && !html.contains("<script"), "inline SVG, no scripts");
    let run = json(&out.join("run.json"));
    assert_eq!(run["links"].as_array().map(Vec::len), Some(6));
    assert!(run["applies_missed"].as_array().is_some_and(Vec::is_empty), "{run}");
    assert!(out.join("history.edn").exists() && out.join("check.json").exists());

    // The output directory is not overwritten by a second run.
    let (code, stderr) = lab_run(dir.path(), &scenario("1s", false), "7");
    assert_eq!(code, 2, "a run that cannot be made decides nothing: {stderr}");
    assert!(stderr.contains("already holds"), "{stderr}");
}

#[test]
fn the_same_seed_issues_the_same_operations() {
    let ops = |seed: &str| {
        let dir = tempfile::tempdir().expect("a temp dir");
        let (code, stderr) = lab_run(dir.path(), &scenario("2s", false), seed);
        assert!(code == 0 || code == 2, "{stderr}");
        let text = std::fs::read_to_string(dir.path().join("out/history.jsonl")).expect("history");
        let mut ops: Vec<(u64, String, String, String)> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["type"] == "op" && e["f"] != "get")
            .map(|e| {
                let s = |k: &str| e[k].as_str().unwrap_or("").to_owned();
                (e["process"].as_u64().unwrap_or(0), s("f"), s("key"), s("value"))
            })
            .collect();
        ops.sort();
        ops
    };
    let (a, b, c) = (ops("11"), ops("11"), ops("12"));
    assert!(a.len() > 50, "{}", a.len());
    assert_eq!(a, b, "same seed, same writes by every process");
    assert_ne!(a, c);
}

/// The busy canned scenario (hot keys, deletes, a partition; events crowding the same
/// millisecond) comes back valid: the checker proves anomalies from what the history shows,
/// and does not cry wolf on reads that overlap an apply. Seed 3 is one whose history the
/// checker before the fix called invalid (a "resurrection" inside one millisecond).
#[test]
fn a_busy_run_with_a_partition_is_valid() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/scenarios/busy-partition.toml"),
    )
    .expect("the canned scenario");
    let (code, stderr) = lab_run(dir.path(), &text, "3");
    assert_eq!(code, 0, "valid expected; stderr: {stderr}");
    let check = json(&dir.path().join("out/check.json"));
    assert_eq!(check["validity"], "valid", "{check}");
    assert!(check["ops"].as_u64().unwrap_or(0) > 3000, "{check}");
}

/// The canned edge-cache scenario: enam reads every key through the binding with a cacheTtl of
/// 30 s, so a write that reaches its store stays hidden behind what it cached (a value, or "not
/// found" for a new key) for up to 30 s; weur rarely has a key cached when a write arrives, and
/// then its next read sees it. The checker allows the first and nothing more: the run is valid.
#[test]
fn the_edge_cache_hides_a_remote_write_for_up_to_its_cache_ttl() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/scenarios/edge-cache.toml"),
    )
    .expect("the canned scenario");
    let (code, stderr) = lab_run(dir.path(), &text, "9");
    assert_eq!(code, 0, "valid expected; stderr: {stderr}");
    let out = dir.path().join("out");
    let check = json(&out.join("check.json"));
    assert_eq!(check["validity"], "valid", "{check}");
    assert!(check["cached"].as_u64().unwrap_or(0) > 100, "hits judged as cached: {check}");
    let summary = json(&out.join("summary.json"));
    let cache = &summary["cache"];
    let path = |label: &str| {
        let paths = cache["paths"].as_array().expect("paths");
        paths
            .iter()
            .find(|p| p["label"] == label)
            .cloned()
            .unwrap_or_else(|| panic!("{label}: {cache}"))
    };
    let n = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);

    // Through the binding, the stale reads are cache hits; REST reads are never behind their
    // region's store.
    let binding = path("binding, cacheTtl 30 s");
    assert!(n(&binding["stale_hits"]) > 0.0, "{binding}");
    assert!(n(&cache["stale_hit_share"]) > 0.5, "{cache}");
    assert!(n(&binding["behind_store"]) > 0.0, "stale by the cache, not propagation: {binding}");
    assert_eq!(n(&path("REST")["behind_store"]), 0.0, "{cache}");

    // A region that had read the key keeps the older state after the arrival, never longer
    // than the ttl (plus a read's latency); "not found" is cached too.
    let arrivals = cache["arrivals"].as_array().expect("arrivals");
    let held = |what: &'static str| arrivals.iter().filter(move |a| a["cached"] == what);
    let hidden: Vec<&serde_json::Value> = held("value").chain(held("not found")).collect();
    assert!(hidden.iter().map(|a| n(&a["stale_reads"])).sum::<f64>() > 0.0, "{cache}");
    for a in &hidden {
        assert_eq!(a["cache_ttl_s"], 30, "{a}");
        let longest = a["hidden_ms"]["max_ms"].as_f64().unwrap_or(0.0);
        assert!(longest <= 31_000.0, "hidden past its cacheTtl: {a}");
    }
    assert!(held("not found").any(|a| n(&a["hidden_arrivals"]) > 0.0), "negative caching: {cache}");
    // A region that had cached nothing sees the arrival at its next read.
    let cold: Vec<&serde_json::Value> = held("nothing").collect();
    assert!(cold.iter().map(|a| n(&a["arrivals"])).sum::<f64>() > 0.0, "{cache}");
    assert!(cold.iter().all(|a| n(&a["stale_reads"]) == 0.0), "{cache}");
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert!(html.contains("3. Edge cache") && html.contains("cache held not found"));

    // The same history with one of those hits moved past its cacheTtl is caught.
    let history = std::fs::read_to_string(out.join("history.jsonl")).expect("history");
    let (code, _, check) = run_check(&hit_moved_past_its_ttl(&history));
    assert_eq!(code, 1, "{check}");
    let kinds: Vec<&str> = check["anomalies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["stale_read"], "{check}");
}

/// `history` with one of enam's cache hits that served a value older than a version enam
/// applied moved to 31 s after that apply: no cache filled before the apply can still serve it
/// then. (enam writes nothing, so the hit breaks no read-your-writes.)
fn hit_moved_past_its_ttl(history: &str) -> String {
    let events: Vec<serde_json::Value> =
        history.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let applied = |read: &serde_json::Value| {
        events
            .iter()
            .filter(|e| {
                e["type"] == "apply" && e["region"] == read["region"] && e["key"] == read["key"]
            })
            .filter(|e| e["version"].as_str() > read["version"].as_str())
            .filter_map(|e| e["latest"].as_u64())
            .min()
    };
    let (at, latest) = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e["type"] == "op" && e["region"] == "enam" && e["cache"] == "hit")
        .filter(|(_, e)| e["version"].is_string())
        .find_map(|(i, e)| applied(e).map(|latest| (i, latest)))
        .expect("a hit that served a value older than its region's store");
    let mut events = events;
    let moved = latest + 31_000_000_000 + 1_000_000;
    let read = &mut events[at];
    let shift_ms = moved.saturating_sub(read["invoke"].as_u64().unwrap_or(0)) / 1_000_000;
    read["wall_ms"] = (read["wall_ms"].as_u64().unwrap_or(0) + shift_ms).into();
    read["invoke"] = moved.into();
    read["complete"] = (moved + 1_000).into();
    events.iter().map(|e| format!("{e}\n")).collect()
}
