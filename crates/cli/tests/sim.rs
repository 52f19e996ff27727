//! `edgekv sim` as CI holds it to its promises: a seed replays byte for byte, another seed takes
//! another path, every fault kind runs to a valid verdict, and a sweep of 50 seeds is clean.

use std::path::{Path, PathBuf};
use std::process::Command;

use edgekv_cli::sim::simulate_quietly;
use edgekv_lab::scenario::Scenario;
use sha2::{Digest, Sha256};

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

fn scenario(path: &str) -> (Scenario, String) {
    let text = std::fs::read_to_string(repo_file(path)).expect("read the scenario");
    let scenario = Scenario::parse_simulated(&text).expect("a valid scenario");
    (scenario, text)
}

fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs the scenario with `seed` into a fresh directory: (its verdict code, the digests of
/// history.jsonl and summary.json, the directory).
fn run(scenario: &(Scenario, String), seed: u64) -> (i32, String, String, tempfile::TempDir) {
    let out = tempfile::tempdir().expect("a temporary directory");
    let code = simulate_quietly(&scenario.0, &scenario.1, seed, out.path()).expect("the run ends");
    let history = sha256(&out.path().join("history.jsonl"));
    let summary = sha256(&out.path().join("summary.json"));
    (code, history, summary, out)
}

#[test]
fn the_same_seed_replays_byte_for_byte_and_another_seed_does_not() {
    let every_fault = scenario("deploy/scenarios/every-fault.toml");
    let (code, history, summary, out) = run(&every_fault, 11);
    assert_eq!(code, 0, "every fault kind, healed, leaves a valid history");
    let (again_code, again_history, again_summary, _again) = run(&every_fault, 11);
    assert_eq!(again_code, code);
    assert_eq!(again_history, history, "history.jsonl differs between two runs of seed 11");
    assert_eq!(again_summary, summary, "summary.json differs between two runs of seed 11");
    for file in ["check.json", "history.edn", "report.html", "run.json"] {
        assert!(out.path().join(file).is_file(), "{file} is written as lab run writes it");
    }
    let (_, other_history, _, _other) = run(&every_fault, 12);
    assert_ne!(other_history, history, "seed 12 took the same path as seed 11");
}

#[test]
fn every_fault_kind_is_applied_and_undone() {
    let every_fault = scenario("deploy/scenarios/every-fault.toml");
    let (_, _, _, out) = run(&every_fault, 3);
    let history = std::fs::read_to_string(out.path().join("history.jsonl")).expect("history");
    let kinds = [
        "partition",
        "one_way",
        "delay",
        "loss",
        "duplicate",
        "pause",
        "clock_offset",
        "kill",
        "stop",
        "freeze",
        "wipe",
    ];
    for kind in kinds {
        let started = history.lines().any(|line| {
            line.contains(r#""type":"fault""#)
                && line.contains(r#""action":"start""#)
                && line.contains(&format!(r#""kind":"{kind}""#))
        });
        assert!(started, "no {kind} fault started in the history");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap())
            .expect("summary.json parses");
    assert_eq!(summary["check"]["validity"], "valid", "seed 3: {}", summary["check"]);
}

#[test]
fn a_sweep_of_fifty_seeds_is_clean() {
    let out = tempfile::tempdir().expect("a temporary directory");
    let sweep = Command::new(env!("CARGO_BIN_EXE_edgekv"))
        .args(["sim", "--seeds", "1..50", "--out"])
        .arg(out.path())
        .arg(repo_file("crates/cli/tests/scenarios/sweep.toml"))
        .output()
        .expect("run edgekv sim");
    let stdout = String::from_utf8_lossy(&sweep.stdout);
    assert!(
        sweep.status.success(),
        "sweep failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&sweep.stderr)
    );
    assert!(stdout.contains("50 seeds in"), "{stdout}");
    assert!(stdout.contains(": 50 valid, 0 invalid"), "{stdout}");
    let left: Vec<_> = std::fs::read_dir(out.path()).expect("the out dir").collect();
    assert!(left.is_empty(), "a valid seed's files are not kept: {left:?}");
}

#[test]
fn simulated_visibility_follows_the_configured_delay_model() {
    for delay in ["uniform(1s,5s)", "lognormal(1s,6s)"] {
        let text = format!(
            "name = \"fidelity\"\nduration = \"30s\"\n[cluster]\ndelay = \"{delay}\"\n\
             [[regions]]\nname = \"wnam\"\n[[regions]]\nname = \"enam\"\n[[regions]]\nname = \"weur\"\n\
             [workload]\nwriters = 2\nreaders = 1\nrate = 10\nkeys = 100000\nmix = {{ put = 9, get = 1 }}\n"
        );
        let scenario = Scenario::parse_simulated(&text).expect("a valid scenario");
        let out = tempfile::tempdir().expect("a temporary directory");
        let code = simulate_quietly(&scenario, &text, 5, out.path()).expect("the run ends");
        assert_eq!(code, 0);
        let summary = std::fs::read_to_string(out.path().join("summary.json")).expect("summary");
        let summary: serde_json::Value = serde_json::from_str(&summary).expect("summary.json");
        let visibility = &summary["visibility"]["overall"];
        let ks = visibility["ks_distance"].as_f64().expect("a KS distance");
        let count = visibility["count"].as_u64().unwrap_or(0);
        assert!(count > 1000, "{delay}: only {count} visibility samples");
        assert!(ks < 0.05, "{delay}: KS distance {ks:.3} from the configured model");
    }
}
