//! Reads through the edge cache: stale by up to their cacheTtl is valid, staler is an anomaly,
//! "not found" is cached too, and a region's own writes replace what it cached.

use super::*;
use edgekv_core::Fault;

use crate::history::{CacheStatus, FaultEvent, Via};

/// One second in the history's nanoseconds.
const S: u64 = 1_000_000_000;

impl Builder {
    /// A binding get of `key` in `region` at `at` with a cacheTtl of `ttl` seconds, answered
    /// with `status`.
    fn cached_get(
        &mut self,
        region: &str,
        read: Option<(&str, String)>,
        at: u64,
        (ttl, status): (u64, CacheStatus),
    ) -> u64 {
        let index = self.get(region, "k", read, at);
        let op = &mut self.history.ops[index as usize];
        op.via = Some(Via::Binding);
        op.cache_ttl = Some(ttl);
        op.cache = Some(status);
        index
    }

    fn applied(&mut self, region: &str, v: String, at: u64) {
        self.history.applies.push(Apply::exact(region, "k", &v, at));
    }

    /// Final reads in both regions, after everything, all serving `read`.
    fn finals(&mut self, read: Option<(&str, String)>) {
        for region in ["wnam", "enam"] {
            self.fin(region, "k", read.clone());
        }
        for f in &mut self.history.finals {
            f.at = 200 * S;
            f.wall_ms = WALL + 200_000;
        }
    }
}

const HIT: CacheStatus = CacheStatus::Hit;
const MISS: CacheStatus = CacheStatus::Miss;

/// wnam writes `a` at 1 s (enam applies it at 1.5 s), enam's binding read at 2 s misses and
/// caches `a` for 30 s, wnam writes `b` at 10 s and enam applies it at 11 s.
fn cached_then_overwritten() -> Builder {
    let mut b = Builder::default();
    b.put("wnam", "k", "a", 100, S);
    b.applied("enam", version(100, "wnam"), S + S / 2);
    b.cached_get("enam", Some(("a", version(100, "wnam"))), 2 * S, (30, MISS));
    b.put("wnam", "k", "b", 200, 10 * S);
    b.applied("enam", version(200, "wnam"), 11 * S);
    b.finals(Some(("b", version(200, "wnam"))));
    b
}

#[test]
fn a_hit_older_than_propagation_but_within_its_ttl_is_valid() {
    let mut b = cached_then_overwritten();
    // 20 s: enam has held `b` for 9 s, but its cache still serves `a`, filled at 2 s.
    b.cached_get("enam", Some(("a", version(100, "wnam"))), 20 * S, (30, HIT));
    let report = b.check();
    assert_eq!(report.validity, Validity::Valid, "{report:?}");
    assert_eq!(report.cached, 1, "the hit may have come from the cache; the miss did not");

    // The same answer from the store (a REST read) is a stale read.
    let rest = b.get("enam", "k", Some(("a", version(100, "wnam"))), 20 * S);
    let report = b.check();
    assert_eq!(kinds(&report), [AnomalyKind::StaleRead], "{report:?}");
    assert_eq!(report.anomalies[0].ops, [2, rest], "the put enam had applied, and the read");
}

#[test]
fn a_hit_older_than_its_ttl_allows_is_a_stale_read() {
    let mut b = cached_then_overwritten();
    // 42 s: no cache filled after 11 s, when enam applied `b`, can still serve; 41 s can.
    b.cached_get("enam", Some(("a", version(100, "wnam"))), 41 * S, (30, HIT));
    assert_eq!(b.check().validity, Validity::Valid, "{:?}", b.check());
    let late = b.cached_get("enam", Some(("a", version(100, "wnam"))), 42 * S, (30, HIT));
    let report = b.check();
    assert_eq!(kinds(&report), [AnomalyKind::StaleRead], "{report:?}");
    assert_eq!(report.anomalies[0].ops, [2, late]);
    assert!(
        report.anomalies[0].explanation.contains("30.001 s before the read began"),
        "{report:?}"
    );
}

#[test]
fn the_largest_ttl_asked_of_a_key_in_a_region_bounds_its_hits() {
    let mut b = cached_then_overwritten();
    // A read with a 60 s ttl may have filled the cache that a 30 s read hits.
    b.cached_get("enam", None, 3 * S, (60, CacheStatus::Hit));
    b.cached_get("enam", Some(("a", version(100, "wnam"))), 50 * S, (30, HIT));
    assert_eq!(b.check().validity, Validity::Valid, "{:?}", b.check());
    // The bound is per region: in weur no read asked 60 s.
    b.applied("weur", version(200, "wnam"), 11 * S);
    let stale = b.op(
        "weur",
        Function::Get,
        "k",
        Some("a"),
        Some(version(100, "wnam")),
        50 * S,
        50 * S + 5,
        Outcome::Ok,
    );
    b.history.ops[stale as usize].via = Some(Via::Binding);
    b.history.ops[stale as usize].cache_ttl = Some(30);
    let report = b.check();
    assert_eq!(kinds(&report), [AnomalyKind::StaleRead], "{report:?}");
    assert_eq!(report.anomalies[0].ops, [2, stale]);
}

#[test]
fn a_clock_offset_keeps_a_cached_copy_longer_by_as_much() {
    let mut b = cached_then_overwritten();
    b.cached_get("enam", Some(("a", version(100, "wnam"))), 42 * S, (30, HIT));
    assert_eq!(kinds(&b.check()), [AnomalyKind::StaleRead]);
    // enam's clock was set 2 s ahead from 5 s to 30 s: stepping back, it kept entries 2 s longer.
    let offset = Fault::ClockOffset { region: "enam".into(), offset_ms: 2_000 };
    for (at, action) in [(5 * S, "start"), (30 * S, "stop")] {
        b.history.faults.push(FaultEvent {
            id: Some(0),
            at,
            action: action.into(),
            fault: offset.clone(),
        });
    }
    assert_eq!(b.check().validity, Validity::Valid, "{:?}", b.check());
}

#[test]
fn negative_caching_keeps_a_new_key_missing_up_to_the_ttl() {
    let mut b = Builder::default();
    // enam looks the key up at 1 s and caches "not found"; wnam creates it at 5 s, enam applies
    // it at 6 s.
    b.cached_get("enam", None, S, (30, MISS));
    b.put("wnam", "k", "a", 100, 5 * S);
    b.applied("enam", version(100, "wnam"), 6 * S);
    b.finals(Some(("a", version(100, "wnam"))));
    b.cached_get("enam", None, 30 * S, (30, HIT));
    assert_eq!(b.check().validity, Validity::Valid, "{:?}", b.check());

    let late = b.cached_get("enam", None, 37 * S, (30, HIT));
    let report = b.check();
    assert_eq!(kinds(&report), [AnomalyKind::StaleRead], "{report:?}");
    assert_eq!(report.anomalies[0].ops, [1, late]);
    assert!(report.anomalies[0].explanation.contains("finds nothing"), "{report:?}");
    b.history.ops.pop();

    // Not found through REST after the apply is stale; after a delete it is not.
    b.get("enam", "k", None, 7 * S);
    assert_eq!(kinds(&b.check()), [AnomalyKind::StaleRead]);
    b.delete("enam", "k", 150, 6 * S + S / 2);
    b.finals(None);
    b.history.finals.drain(..2);
    assert_eq!(b.check().validity, Validity::Valid, "{:?}", b.check());
}

#[test]
fn a_regions_own_write_replaces_its_cached_copy() {
    let mut b = cached_then_overwritten();
    // enam writes `c` at 12 s: its cached `a` is replaced, so a hit at 13 s must show `c`.
    let own = b.put("enam", "k", "c", 300, 12 * S);
    b.applied("wnam", version(300, "enam"), 13 * S);
    b.history.finals.clear();
    b.finals(Some(("c", version(300, "enam"))));
    b.cached_get("enam", Some(("c", version(300, "enam"))), 13 * S, (30, HIT));
    assert_eq!(b.check().validity, Validity::Valid, "{:?}", b.check());

    let stale = b.cached_get("enam", Some(("a", version(100, "wnam"))), 14 * S, (30, HIT));
    let report = b.check();
    assert_eq!(kinds(&report), [AnomalyKind::ReadYourWrites], "within the ttl, yet its own write");
    assert_eq!(report.anomalies[0].ops, [own, stale]);
}

#[test]
fn a_copy_a_slow_own_write_left_in_the_cache_is_that_writes_state() {
    // enam filled its cache at 2 s; its own write of `c` took from 3 s to 40 s to be durable
    // and replaced the cached copy at the end, keeping the expiry of the 2 s fill; meanwhile
    // it applied wnam's newer `d` at 4 s. A hit at 31 s showing `c` is valid: the copy is the
    // state `c` left, not the store's at 1 s.
    let mut b = Builder::default();
    b.put("wnam", "k", "a", 100, S);
    b.applied("enam", version(100, "wnam"), S + S / 2);
    b.cached_get("enam", Some(("a", version(100, "wnam"))), 2 * S, (30, MISS));
    b.op(
        "enam",
        Function::Put,
        "k",
        Some("c"),
        Some(version(300, "enam")),
        3 * S,
        40 * S,
        Outcome::Ok,
    );
    b.put("wnam", "k", "d", 400, 3 * S + S / 2);
    b.applied("enam", version(400, "wnam"), 4 * S);
    b.cached_get("enam", Some(("c", version(300, "enam"))), 31 * S, (30, HIT));
    b.finals(Some(("d", version(400, "wnam"))));
    assert_eq!(b.check().validity, Validity::Valid, "{:?}", b.check());
}

#[test]
fn a_hit_may_resurrect_a_delete_only_within_its_ttl() {
    let mut b = Builder::default();
    b.put("wnam", "k", "a", 100, S);
    b.applied("enam", version(100, "wnam"), S + S / 2);
    b.cached_get("enam", Some(("a", version(100, "wnam"))), 2 * S, (30, MISS));
    let delete = b.delete("wnam", "k", 200, 10 * S);
    b.applied("enam", version(200, "wnam"), 11 * S);
    b.finals(None);
    b.cached_get("enam", Some(("a", version(100, "wnam"))), 25 * S, (30, HIT));
    let report = b.check();
    assert_eq!(report.validity, Validity::Valid, "{report:?}");
    assert_eq!(report.unordered, 0, "a cached answer is not a close race");
    let late = b.cached_get("enam", Some(("a", version(100, "wnam"))), 45 * S, (30, HIT));
    let report = b.check();
    assert_eq!(kinds(&report), [AnomalyKind::Resurrection], "{report:?}");
    assert_eq!(report.anomalies[0].ops, [delete, late]);
}

#[test]
fn what_a_region_applied_before_a_wipe_proves_nothing_after_it() {
    let mut b = cached_then_overwritten();
    let stale = b.get("enam", "k", Some(("a", version(100, "wnam"))), 30 * S);
    assert_eq!(kinds(&b.check()), [AnomalyKind::StaleRead]);
    // enam was wiped at 20 s and pulled `a` back from a peer that had not had `b` yet.
    b.history.faults.push(FaultEvent {
        id: Some(0),
        at: 20 * S,
        action: "start".into(),
        fault: Fault::Wipe { region: "enam".into() },
    });
    assert_eq!(b.check().validity, Validity::Valid, "{:?}", b.check());
    // After the wipe, what it applies again counts.
    b.applied("enam", version(200, "wnam"), 25 * S);
    let report = b.check();
    assert_eq!(kinds(&report), [AnomalyKind::StaleRead]);
    assert_eq!(report.anomalies[0].ops, [2, stale]);
}
