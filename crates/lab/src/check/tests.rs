//! The checker on hand-made histories: a valid one (with a concurrent write lost to LWW, which
//! is allowed), and one for each anomaly, each of which must be caught with its witnesses.

use super::*;
use crate::history::{Apply, Op};

/// Wall clock of the runs below, epoch ms.
const WALL: u64 = 1_700_000_000_000;

fn version(ts: u64, region: &str) -> String {
    format!("{ts:016x}-{region}")
}

#[derive(Default)]
struct Builder {
    history: History,
    next: u64,
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn op(
        &mut self,
        region: &str,
        f: Function,
        key: &str,
        value: Option<&str>,
        version: Option<String>,
        invoke: u64,
        complete: u64,
        outcome: Outcome,
    ) -> u64 {
        let index = self.next;
        self.next += 1;
        self.history.ops.push(Op {
            index,
            process: index as u32,
            region: region.into(),
            f,
            key: key.into(),
            value: value.map(str::to_owned),
            expiration: None,
            version,
            invoke,
            complete,
            outcome,
            wall_ms: WALL + invoke / 1_000_000,
        });
        index
    }

    fn put(&mut self, region: &str, key: &str, value: &str, ts: u64, at: u64) -> u64 {
        let v = Some(version(ts, region));
        self.op(region, Function::Put, key, Some(value), v, at, at + 5, Outcome::Ok)
    }

    fn delete(&mut self, region: &str, key: &str, ts: u64, at: u64) -> u64 {
        let v = Some(version(ts, region));
        self.op(region, Function::Delete, key, None, v, at, at + 5, Outcome::Ok)
    }

    fn get(&mut self, region: &str, key: &str, read: Option<(&str, String)>, at: u64) -> u64 {
        let (value, v) = read.map_or((None, None), |(value, v)| (Some(value), Some(v)));
        self.op(region, Function::Get, key, value, v, at, at + 5, Outcome::Ok)
    }

    fn fin(&mut self, region: &str, key: &str, read: Option<(&str, String)>) {
        let (value, version) =
            read.map_or((None, None), |(value, v)| (Some(value.into()), Some(v)));
        self.history.finals.push(FinalRead {
            region: region.into(),
            key: key.into(),
            value,
            version,
            at: 1_000_000,
            wall_ms: WALL + 1_000,
        });
    }

    fn check(&self) -> CheckReport {
        check(&self.history)
    }
}

fn kinds(report: &CheckReport) -> Vec<AnomalyKind> {
    report.anomalies.iter().map(|a| a.kind).collect()
}

/// Two regions write one key concurrently; the greater version wins everywhere, each region
/// read its own write back, the other's write is an LWW loss: all valid.
fn concurrent_writers() -> Builder {
    let mut b = Builder::default();
    b.put("wnam", "k", "a", 100, 10);
    b.put("enam", "k", "b", 101, 11);
    b.get("wnam", "k", Some(("a", version(100, "wnam"))), 20);
    b.get("enam", "k", Some(("b", version(101, "enam"))), 21);
    b.fin("wnam", "k", Some(("b", version(101, "enam"))));
    b.fin("enam", "k", Some(("b", version(101, "enam"))));
    b
}

#[test]
fn a_concurrent_write_lost_to_lww_is_valid() {
    let report = concurrent_writers().check();
    assert_eq!(report.validity, Validity::Valid, "{report:?}");
    assert_eq!(report.validity.exit_code(), 0);
    assert_eq!((report.keys, report.ops), (1, 4));
}

#[test]
fn regions_that_disagree_after_the_quiet_period_diverge() {
    let mut b = concurrent_writers();
    b.history.finals[0].version = Some(version(100, "wnam"));
    b.history.finals[0].value = Some("a".into());
    let report = b.check();
    assert_eq!(report.validity, Validity::Invalid);
    assert_eq!(report.validity.exit_code(), 1);
    let divergence = report.anomalies.iter().find(|a| a.kind == AnomalyKind::Divergence).unwrap();
    assert_eq!(divergence.ops, [0, 1], "both writes whose versions the regions serve");
    // wnam's final state is also older than the newest acknowledged write.
    assert!(kinds(&report).contains(&AnomalyKind::LostWrite));
}

#[test]
fn a_final_state_older_than_the_newest_acknowledged_write_is_a_lost_write() {
    let mut b = concurrent_writers();
    for read in &mut b.history.finals {
        read.version = Some(version(100, "wnam"));
        read.value = Some("a".into());
    }
    let report = b.check();
    assert_eq!(kinds(&report), [AnomalyKind::LostWrite, AnomalyKind::LostWrite]);
    assert_eq!(report.anomalies[0].ops, [1], "the write that was lost");
}

#[test]
fn a_key_missing_at_the_end_although_its_newest_write_is_a_put_is_a_lost_write() {
    let mut b = Builder::default();
    let put = b.put("wnam", "k", "a", 100, 10);
    b.fin("wnam", "k", None);
    let report = b.check();
    assert_eq!(kinds(&report), [AnomalyKind::LostWrite]);
    assert_eq!(report.anomalies[0].ops, [put]);
}

#[test]
fn a_value_that_is_not_the_one_written_with_its_version_is_wrong() {
    let mut b = concurrent_writers();
    for read in &mut b.history.finals {
        read.value = Some("garbled".into());
    }
    let report = b.check();
    assert_eq!(kinds(&report), [AnomalyKind::WrongValue, AnomalyKind::WrongValue]);
    assert_eq!(report.anomalies[0].ops, [1]);
}

#[test]
fn a_version_no_write_produced_is_wrong() {
    let mut b = Builder::default();
    b.put("wnam", "k", "a", 100, 10);
    b.fin("wnam", "k", Some(("z", version(999, "enam"))));
    assert_eq!(kinds(&b.check()), [AnomalyKind::WrongValue]);
}

#[test]
fn a_deleted_key_served_at_the_end_is_a_resurrection() {
    let mut b = Builder::default();
    b.put("wnam", "k", "a", 100, 10);
    let delete = b.delete("enam", "k", 200, 20);
    b.fin("wnam", "k", None);
    b.fin("enam", "k", Some(("a", version(100, "wnam"))));
    let report = b.check();
    assert!(kinds(&report).contains(&AnomalyKind::Resurrection), "{report:?}");
    let resurrection =
        report.anomalies.iter().find(|a| a.kind == AnomalyKind::Resurrection).unwrap();
    assert_eq!(resurrection.ops, [delete]);
}

#[test]
fn a_region_serving_a_value_after_applying_its_delete_resurrects_it() {
    let mut b = Builder::default();
    b.put("wnam", "k", "a", 100, 10);
    let delete = b.delete("wnam", "k", 200, 20);
    b.history.applies.push(Apply {
        region: "enam".into(),
        key: "k".into(),
        version: version(200, "wnam"),
        at: 30,
    });
    // Before the apply, a stale read is allowed; after it, not.
    b.get("enam", "k", Some(("a", version(100, "wnam"))), 25);
    let late = b.get("enam", "k", Some(("a", version(100, "wnam"))), 40);
    b.fin("wnam", "k", None);
    b.fin("enam", "k", None);
    let report = b.check();
    assert_eq!(kinds(&report), [AnomalyKind::Resurrection]);
    assert_eq!(report.anomalies[0].ops, [delete, late]);
}

#[test]
fn a_region_that_hides_a_clients_own_acknowledged_write_breaks_read_your_writes() {
    let mut b = Builder::default();
    b.put("wnam", "k", "a", 100, 10);
    let put = b.put("wnam", "k", "b", 150, 20);
    let stale = b.get("wnam", "k", Some(("a", version(100, "wnam"))), 30);
    // A read in another region may be stale: that is eventual consistency, not an anomaly.
    b.get("enam", "k", Some(("a", version(100, "wnam"))), 31);
    // A read that began before the write was acknowledged may miss it too.
    b.get("wnam", "k", Some(("a", version(100, "wnam"))), 21);
    b.fin("wnam", "k", Some(("b", version(150, "wnam"))));
    b.fin("enam", "k", Some(("b", version(150, "wnam"))));
    let report = b.check();
    assert_eq!(kinds(&report), [AnomalyKind::ReadYourWrites]);
    assert_eq!(report.anomalies[0].ops, [put, stale]);
}

#[test]
fn not_finding_ones_own_put_breaks_read_your_writes_unless_a_delete_explains_it() {
    let mut b = Builder::default();
    b.put("wnam", "k", "a", 100, 10);
    b.get("wnam", "k", None, 30);
    b.fin("wnam", "k", Some(("a", version(100, "wnam"))));
    assert_eq!(kinds(&b.check()), [AnomalyKind::ReadYourWrites]);

    b.delete("enam", "k", 120, 12);
    b.history.finals.clear();
    b.fin("wnam", "k", None);
    b.fin("enam", "k", None);
    assert_eq!(b.check().validity, Validity::Valid);
}

#[test]
fn a_value_served_after_its_expiry_is_caught() {
    let mut b = Builder::default();
    let put = b.put("wnam", "k", "a", 100, 10);
    // Expires 60 s into the run; the final read is at +1 s, so move it to +2 min.
    b.history.ops[0].expiration = Some(WALL / 1000 + 60);
    b.fin("wnam", "k", Some(("a", version(100, "wnam"))));
    assert_eq!(b.check().validity, Validity::Valid, "not expired yet at +1 s");
    b.history.finals[0].wall_ms = WALL + 120_000;
    let report = b.check();
    assert_eq!(kinds(&report), [AnomalyKind::NotExpired]);
    assert_eq!(report.anomalies[0].ops, [put]);
    // Gone at the end is right for an expired put.
    b.history.finals[0].version = None;
    b.history.finals[0].value = None;
    assert_eq!(b.check().validity, Validity::Valid);
}

#[test]
fn what_the_history_cannot_decide_is_unknown() {
    // A region without a final read.
    let mut b = concurrent_writers();
    b.history.finals.pop();
    let report = b.check();
    assert_eq!(report.validity, Validity::Unknown);
    assert_eq!(report.validity.exit_code(), 2);
    assert!(report.unknowns[0].contains("no final read in enam"), "{:?}", report.unknowns);

    // A put's key missing at the end, with a delete that timed out: it may have happened.
    let mut b = Builder::default();
    b.put("wnam", "k", "a", 100, 10);
    b.op("wnam", Function::Delete, "k", None, None, 20, 9_000, Outcome::Info);
    b.fin("wnam", "k", None);
    assert_eq!(b.check().validity, Validity::Unknown);

    // No final reads at all.
    let mut b = Builder::default();
    b.put("wnam", "k", "a", 100, 10);
    assert_eq!(b.check().validity, Validity::Unknown);
}
