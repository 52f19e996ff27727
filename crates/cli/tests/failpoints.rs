//! The simulator finds bugs: each protocol rule broken through its failpoint is caught by a
//! sweep of at most 100 seeds of a scenario made to exercise that rule, while the same
//! scenario is valid with every rule intact. A caught seed also shrinks to a smaller scenario
//! that still fails.
//!
//! Needs a test build: `cargo test -p edgekv-cli --features failpoints --test failpoints`.
//! Failpoints are process-wide, so the rules are broken one after another in one test.
#![cfg(feature = "failpoints")]

use std::path::{Path, PathBuf};

use edgekv_cli::sim::{shrink, simulate_quietly};
use edgekv_core::failpoint::{self, Failpoint};
use edgekv_lab::scenario::Scenario;

/// The most seeds a sweep may need to catch a broken rule.
const SWEEP: u64 = 100;
/// The checker's verdict for an invalid history.
const INVALID: i32 = 1;

fn scenario_path(point: Failpoint) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios/failpoints")
        .join(format!("{}.toml", point.name()))
}

/// The first seed of 1..=SWEEP whose run is invalid, and that run's first anomaly kind.
fn first_failing(scenario: &Scenario, text: &str) -> Option<(u64, String)> {
    (1..=SWEEP).find_map(|seed| {
        let out = tempfile::tempdir().expect("a temporary directory");
        let code = simulate_quietly(scenario, text, seed, out.path()).expect("the run ends");
        (code == INVALID).then(|| {
            let check = std::fs::read_to_string(out.path().join("check.json")).expect("check");
            let check: serde_json::Value = serde_json::from_str(&check).expect("check.json");
            (seed, check["anomalies"][0]["kind"].as_str().unwrap_or("?").to_owned())
        })
    })
}

#[test]
fn a_sweep_catches_every_broken_rule_and_passes_the_intact_ones() {
    let mut caught = Vec::new();
    for point in Failpoint::ALL {
        let path = scenario_path(point);
        let text = std::fs::read_to_string(&path).expect("read the scenario");
        let scenario = Scenario::parse_simulated(&text).expect("a valid scenario");

        failpoint::set(&[]).expect("a failpoints build");
        let out = tempfile::tempdir().expect("a temporary directory");
        let intact = simulate_quietly(&scenario, &text, 1, out.path()).expect("the run ends");
        assert_eq!(intact, 0, "{}: seed 1 is invalid with every rule intact", point.name());

        failpoint::set(&[point]).expect("a failpoints build");
        let found = first_failing(&scenario, &text);
        let Some((seed, anomaly)) = found else {
            panic!("{}: no seed of 1..={SWEEP} caught the broken rule", point.name());
        };
        eprintln!("{}: caught by seed {seed} ({anomaly})", point.name());
        caught.push((point, seed));
    }

    // A caught run shrinks to a scenario that still fails with the rule broken.
    let (point, seed) = caught[0];
    failpoint::set(&[point]).expect("a failpoints build");
    let path = scenario_path(point);
    let text = std::fs::read_to_string(&path).expect("read the scenario");
    let out = tempfile::tempdir().expect("a temporary directory");
    shrink::shrink(&path, &text, seed, out.path()).expect("shrink");
    let shrunk = std::fs::read_to_string(out.path().join("shrunk.toml")).expect("shrunk.toml");
    let smaller = Scenario::parse_simulated(&shrunk).expect("shrunk.toml is a scenario");
    let original = Scenario::parse_simulated(&text).expect("a valid scenario");
    assert!(
        smaller.duration <= original.duration && smaller.workload.rate <= original.workload.rate,
        "the shrunk scenario is no bigger:\n{shrunk}"
    );
    let again = tempfile::tempdir().expect("a temporary directory");
    let code = simulate_quietly(&smaller, &shrunk, seed, again.path()).expect("the run ends");
    assert_eq!(code, INVALID, "the shrunk scenario no longer fails:\n{shrunk}");
    failpoint::set(&[]).expect("a failpoints build");
}
