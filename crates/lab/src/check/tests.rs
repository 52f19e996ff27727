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
            via: None,
            cache_ttl: None,
            cache: None,
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
            complete: None,
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
    b.history.applies.push(Apply::exact("enam", "k", &version(200, "wnam"), 30));
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

// Events within one millisecond: the checker must prove an order from the bounds, not read it
// off a clock reading coarser than the events.

/// One millisecond in the history's nanoseconds.
const MS: u64 = 1_000_000;

/// The run, reduced: wnam writes `a`, enam deletes it 15.123550 s into the run, and a
/// get in enam that completed 20 µs before the delete was sent still serves `a`. enam's apply of
/// the delete reads 15.123 s in milliseconds.
fn read_just_before_a_delete() -> (Builder, u64, u64) {
    let mut b = Builder::default();
    b.op(
        "wnam",
        Function::Put,
        "k",
        Some("a"),
        Some(version(100, "wnam")),
        MS,
        2 * MS,
        Outcome::Ok,
    );
    let get = b.op(
        "enam",
        Function::Get,
        "k",
        Some("a"),
        Some(version(100, "wnam")),
        15_123_200_000,
        15_123_530_000,
        Outcome::Ok,
    );
    let delete = b.op(
        "enam",
        Function::Delete,
        "k",
        None,
        Some(version(200, "enam")),
        15_123_550_000,
        15_124_100_000,
        Outcome::Ok,
    );
    b.fin("wnam", "k", None);
    b.fin("enam", "k", None);
    (b, get, delete)
}

fn legacy_apply(region: &str, v: String, at: u64) -> Apply {
    Apply { region: region.into(), key: "k".into(), version: v, at, earliest: None, latest: None }
}

fn window_apply(region: &str, v: String, earliest: u64, latest: u64) -> Apply {
    Apply {
        region: region.into(),
        key: "k".into(),
        version: v,
        at: earliest + (latest - earliest) / 2,
        earliest: Some(earliest),
        latest: Some(latest),
    }
}

#[test]
fn a_read_before_the_delete_was_sent_is_no_resurrection_whatever_the_apply_reads() {
    // The bug: a millisecond reading (15.123 s) placed the apply before the get completed.
    let (mut b, ..) = read_just_before_a_delete();
    b.history.applies.push(legacy_apply("enam", version(200, "enam"), 15_123 * MS));
    let report = b.check();
    assert_eq!(report.validity, Validity::Valid, "{report:?}");
    assert_eq!(
        report.unordered, 0,
        "the delete was sent after the read: it cannot have come first"
    );
}

#[test]
fn the_same_history_as_an_old_file_is_valid() {
    let (b, ..) = read_just_before_a_delete();
    let mut text = Vec::new();
    b.history.write_jsonl(&mut text).unwrap();
    let mut text = String::from_utf8(text).unwrap();
    // An apply line as histories before apply windows wrote it.
    text.push_str(&format!(
        "{{\"type\":\"apply\",\"region\":\"enam\",\"key\":\"k\",\"version\":\"{}\",\"at\":{}}}\n",
        version(200, "enam"),
        15_123 * MS
    ));
    let history = History::read_jsonl(text.as_bytes()).unwrap();
    assert_eq!(history.applies[0].earliest, None);
    assert_eq!(check(&history).validity, Validity::Valid);
}

#[test]
fn an_apply_whose_window_overlaps_the_read_proves_nothing() {
    let mut b = Builder::default();
    b.put("wnam", "k", "a", 100, MS);
    b.op(
        "enam",
        Function::Delete,
        "k",
        None,
        Some(version(200, "enam")),
        10 * MS,
        10 * MS + 400_000,
        Outcome::Ok,
    );
    // enam applied the delete somewhere in 10.000..10.001 s (a millisecond reading); a get in
    // enam from 10.0003 to 10.0008 s still served `a`: the apply may have come after it.
    b.history.applies.push(window_apply("enam", version(200, "enam"), 10 * MS, 11 * MS));
    let get = b.op(
        "enam",
        Function::Get,
        "k",
        Some("a"),
        Some(version(100, "wnam")),
        10 * MS + 300_000,
        10 * MS + 800_000,
        Outcome::Ok,
    );
    for region in ["wnam", "enam"] {
        b.fin(region, "k", None);
    }
    let report = b.check();
    assert_eq!(report.validity, Validity::Valid, "{report:?}");
    assert!(report.unknowns.is_empty(), "concurrent, not undecided: {:?}", report.unknowns);
    assert_eq!(report.unordered, 1, "get {get} is counted as unordered");
}

#[test]
fn a_resurrection_a_microsecond_after_the_apply_is_still_caught() {
    let (mut b, _, delete) = read_just_before_a_delete();
    // enam certainly applied the delete by 15.124 s (a microsecond window), and a get invoked
    // 1 µs later serves the deleted value.
    let (applied, invoked) = (15_124_000_000, 15_124_001_000);
    b.history.applies.push(window_apply("enam", version(200, "enam"), applied - 1_000, applied));
    let late = b.op(
        "enam",
        Function::Get,
        "k",
        Some("a"),
        Some(version(100, "wnam")),
        invoked,
        invoked + 200_000,
        Outcome::Ok,
    );
    let report = b.check();
    // The delete's acknowledgement came only after the get was sent, so read-your-writes
    // cannot tell; the apply can.
    assert_eq!(kinds(&report), [AnomalyKind::Resurrection], "{report:?}");
    assert_eq!(report.anomalies[0].ops, [delete, late]);
}

#[test]
fn a_resurrection_in_another_region_is_caught_once_its_apply_certainly_came_first() {
    let mut b = Builder::default();
    b.put("wnam", "k", "a", 100, MS);
    let delete = b.op(
        "wnam",
        Function::Delete,
        "k",
        None,
        Some(version(200, "wnam")),
        10 * MS,
        10 * MS + 300_000,
        Outcome::Ok,
    );
    b.history.applies.push(window_apply("enam", version(200, "wnam"), 400 * MS, 400 * MS + 1_400));
    // Invoked 1 ns after the window ends: proven. Invoked at its end: not.
    let caught = b.op(
        "enam",
        Function::Get,
        "k",
        Some("a"),
        Some(version(100, "wnam")),
        400 * MS + 1_401,
        401 * MS,
        Outcome::Ok,
    );
    b.op(
        "enam",
        Function::Get,
        "k",
        Some("a"),
        Some(version(100, "wnam")),
        400 * MS + 1_400,
        401 * MS,
        Outcome::Ok,
    );
    b.fin("wnam", "k", None);
    b.fin("enam", "k", None);
    let report = b.check();
    assert_eq!(kinds(&report), [AnomalyKind::Resurrection], "{report:?}");
    assert_eq!(report.anomalies[0].ops, [delete, caught]);
    assert_eq!(report.unordered, 1);
}

#[test]
fn an_apply_logged_before_its_write_was_sent_proves_nothing() {
    // A clock that reads 5 ms early puts the apply before the delete's invoke: its window is no
    // evidence, and a get right after the reading is not a resurrection.
    let mut b = Builder::default();
    b.put("wnam", "k", "a", 100, MS);
    b.op(
        "wnam",
        Function::Delete,
        "k",
        None,
        Some(version(200, "wnam")),
        400 * MS,
        400 * MS + 300_000,
        Outcome::Ok,
    );
    b.history.applies.push(window_apply("enam", version(200, "wnam"), 395 * MS, 395 * MS + 1_000));
    b.op(
        "enam",
        Function::Get,
        "k",
        Some("a"),
        Some(version(100, "wnam")),
        396 * MS,
        397 * MS,
        Outcome::Ok,
    );
    b.op(
        "enam",
        Function::Get,
        "k",
        Some("a"),
        Some(version(100, "wnam")),
        401 * MS,
        402 * MS,
        Outcome::Ok,
    );
    b.fin("wnam", "k", None);
    b.fin("enam", "k", None);
    let report = b.check();
    assert_eq!(report.validity, Validity::Valid, "{report:?}");
}

#[test]
fn read_your_writes_is_judged_to_the_nanosecond_of_the_clients_clock() {
    let mut b = Builder::default();
    b.put("wnam", "k", "a", 100, MS);
    // Acknowledged at 10.000500 s; one read sent 1 ns later, one 1 ns before the ack, both
    // inside the same millisecond, both returning the older value.
    let put = b.op(
        "wnam",
        Function::Put,
        "k",
        Some("b"),
        Some(version(150, "wnam")),
        10 * MS,
        10 * MS + 500_000,
        Outcome::Ok,
    );
    let late = b.op(
        "wnam",
        Function::Get,
        "k",
        Some("a"),
        Some(version(100, "wnam")),
        10 * MS + 500_001,
        10 * MS + 900_000,
        Outcome::Ok,
    );
    b.op(
        "wnam",
        Function::Get,
        "k",
        Some("a"),
        Some(version(100, "wnam")),
        10 * MS + 499_999,
        10 * MS + 900_000,
        Outcome::Ok,
    );
    b.fin("wnam", "k", Some(("b", version(150, "wnam"))));
    let report = b.check();
    assert_eq!(kinds(&report), [AnomalyKind::ReadYourWrites], "{report:?}");
    assert_eq!(report.anomalies[0].ops, [put, late]);
}

#[test]
fn a_final_state_is_owed_only_the_writes_acknowledged_before_the_final_read() {
    let mut b = Builder::default();
    b.put("wnam", "k", "a", 100, MS);
    // Acknowledged 1 µs after the final read was sent: the final read need not show it.
    let put = b.op(
        "wnam",
        Function::Put,
        "k",
        Some("b"),
        Some(version(150, "wnam")),
        999 * MS,
        MS * 1000 + 1_000,
        Outcome::Ok,
    );
    b.fin("wnam", "k", Some(("a", version(100, "wnam"))));
    b.history.finals[0].at = 1000 * MS;
    assert_eq!(b.check().validity, Validity::Valid);
    // Acknowledged 1 µs before it: a lost write.
    b.history.ops[put as usize].complete = 1000 * MS - 1_000;
    let report = b.check();
    assert_eq!(kinds(&report), [AnomalyKind::LostWrite]);
    assert_eq!(report.anomalies[0].ops, [put]);
}

#[test]
fn an_expiry_is_judged_against_the_latest_second_the_server_can_have_set() {
    let mut b = Builder::default();
    // Invoked at .999 of a second and answered 2 ms later: the server may have counted the TTL
    // from the next second, so the value may live until 61 s after the recorded second.
    let put = b.op(
        "wnam",
        Function::Put,
        "k",
        Some("a"),
        Some(version(100, "wnam")),
        0,
        2 * MS,
        Outcome::Ok,
    );
    b.history.ops[0].wall_ms = WALL + 999;
    b.history.ops[0].expiration = Some(WALL / 1000 + 60);
    b.fin("wnam", "k", Some(("a", version(100, "wnam"))));
    b.history.finals[0].wall_ms = WALL + 61_500;
    assert_eq!(b.check().validity, Validity::Valid, "within the tolerance of the later expiry");
    b.history.finals[0].wall_ms = WALL + 62_000;
    let report = b.check();
    assert_eq!(kinds(&report), [AnomalyKind::NotExpired]);
    assert_eq!(report.anomalies[0].ops, [put]);
}

#[test]
fn not_found_is_judged_at_the_latest_the_read_can_have_been_served() {
    let mut b = Builder::default();
    let expires = WALL / 1000 + 60;
    b.op("wnam", Function::Put, "k", Some("a"), Some(version(100, "wnam")), 0, MS, Outcome::Ok);
    b.history.ops[0].expiration = Some(expires);
    // Sent 2 s before the expiry but answered 1.5 s later: the server may have judged it after
    // the expiry, less the clock tolerance.
    let get =
        b.op("wnam", Function::Get, "k", None, None, 10 * MS, 10 * MS + 1_500 * MS, Outcome::Ok);
    b.history.ops[get as usize].wall_ms = expires * 1000 - 2_000;
    b.fin("wnam", "k", None);
    b.history.finals[0].wall_ms = expires * 1000 + 5_000;
    assert_eq!(b.check().validity, Validity::Valid);
    // Answered at once, the same read breaks read-your-writes.
    b.history.ops[get as usize].complete = 10 * MS + 100_000;
    assert_eq!(kinds(&b.check()), [AnomalyKind::ReadYourWrites]);
}

#[test]
fn not_found_after_ones_own_put_is_explained_by_a_newer_put_that_expired() {
    let mut b = Builder::default();
    b.put("wnam", "k", "a", 100, MS);
    // enam's newer put expires 60 s after it; wnam's get 70 s in finds nothing.
    let newer = b.op(
        "enam",
        Function::Put,
        "k",
        Some("b"),
        Some(version(150, "enam")),
        2 * MS,
        3 * MS,
        Outcome::Ok,
    );
    b.history.ops[newer as usize].expiration = Some(WALL / 1000 + 60);
    let get = b.op("wnam", Function::Get, "k", None, None, 70_000 * MS, 70_001 * MS, Outcome::Ok);
    b.history.ops[get as usize].wall_ms = WALL + 70_000;
    b.fin("wnam", "k", None);
    b.fin("enam", "k", None);
    b.history.finals.iter_mut().for_each(|f| f.wall_ms = WALL + 80_000);
    assert_eq!(b.check().validity, Validity::Valid, "{:?}", b.check());
    // Without the expiry it is a violation.
    b.history.ops[newer as usize].expiration = None;
    assert!(kinds(&b.check()).contains(&AnomalyKind::ReadYourWrites));
}

mod cache;
