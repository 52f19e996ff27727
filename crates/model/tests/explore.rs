//! The explorer over the real rules: every property holds as the code stands, and every rule
//! broken through a failpoint is caught, with the property it breaks named.
//!
//! Failpoints are process-wide, so with the feature one test runs the clean exploration and
//! then each failpoint in turn; nothing else in this binary touches them.

use edgekv_model::{explore, Bounds, Report};

/// Explores `bounds` and checks that nothing was found, the space exhausted, and that it was
/// not trivially small (a model that stopped moving would pass too).
fn assert_clean(bounds: &Bounds) -> Report {
    let report = explore(bounds);
    if let Some(cx) = &report.counterexample {
        panic!("{} under {}:\n{cx}", cx.violation.property, report.bounds);
    }
    assert!(!report.truncated, "{} states: the space was not exhausted", report.states);
    assert!(report.states > 20_000, "only {} states: the model hardly moves", report.states);
    assert!(report.max_depth >= 8, "depth {} only", report.max_depth);
    report
}

#[cfg(not(feature = "failpoints"))]
#[test]
fn every_property_holds_in_every_reachable_state() {
    assert_clean(&Bounds::TEST);
}

#[cfg(feature = "failpoints")]
#[test]
fn every_property_holds_and_every_broken_rule_is_caught() {
    use edgekv_core::failpoint::{self, Failpoint};

    failpoint::set(&[]).expect("the feature is on");
    assert_clean(&Bounds::TEST);
    let expected = [
        (Failpoint::ApplyOlder, "no-resurrection"),
        (Failpoint::AntiEntropySkipsItem, "convergence"),
        (Failpoint::CollectEarly, "tombstone-safety"),
        (Failpoint::RestartLosesWrite, "watermark-safety"),
    ];
    for (point, property) in expected {
        failpoint::set(&[point]).expect("the feature is on");
        let report = explore(&Bounds::TEST);
        failpoint::set(&[]).expect("the feature is on");
        let Some(cx) = report.counterexample else {
            panic!("{} broke nothing in {} states", point.name(), report.states);
        };
        assert_eq!(cx.violation.property, property, "{}:\n{cx}", point.name());
        assert!(!cx.steps.is_empty(), "{}: an empty trace", point.name());
        assert!(cx.end.contains("apac:"), "{}: no final state in\n{cx}", point.name());
    }
}
