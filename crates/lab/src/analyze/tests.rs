//! Each measurement on a small hand-made history whose figures can be worked out by hand.

use edgekv_core::Fault;

use super::*;
use crate::history::{Apply, FaultEvent, FinalRead, Function, Op, Outcome};
use crate::meta::{ClockStep, LinkMeta, RegionMeta};
use crate::summary::InversionExample;

/// One millisecond in the history's nanoseconds.
const MS: u64 = 1_000_000;

fn version(ts: u64, region: &str) -> String {
    format!("{ts:016x}-{region}")
}

fn close(actual: Option<f64>, expected: f64) {
    let actual = actual.unwrap_or(f64::NAN);
    assert!((actual - expected).abs() < 1e-6, "expected {expected}, got {actual}");
}

/// Two regions, wnam and enam, linked both ways by `model`.
fn meta(model: &str) -> RunMeta {
    let region =
        |name: &str| RegionMeta { name: name.into(), writers: 1, readers: 1, ..Default::default() };
    let link =
        |from: &str, to: &str| LinkMeta { from: from.into(), to: to.into(), model: model.into() };
    RunMeta {
        seed: 7,
        scenario: "two-regions".into(),
        topology: "in-process".into(),
        regions: vec![region("wnam"), region("enam")],
        links: vec![link("wnam", "enam"), link("enam", "wnam")],
        workload: (0, 1000 * MS),
        timestamp_source: "hlc".into(),
        ..Default::default()
    }
}

/// wnam cut off from enam.
fn cut() -> Fault {
    Fault::Partition { a: vec!["wnam".into()], b: vec!["enam".into()] }
}

#[derive(Default)]
struct Builder {
    history: History,
}

impl Builder {
    /// A put acknowledged 5 ms after `at_ms`, applied locally at its ack; returns its index.
    fn put(&mut self, region: &str, key: &str, ts: u64, at_ms: u64) -> u64 {
        let index = self.history.ops.len() as u64;
        let v = version(ts, region);
        self.history.ops.push(Op {
            index,
            process: index as u32,
            region: region.into(),
            f: Function::Put,
            key: key.into(),
            value: Some(format!("value-{index}")),
            expiration: None,
            version: Some(v.clone()),
            invoke: at_ms * MS,
            complete: (at_ms + 5) * MS,
            outcome: Outcome::Ok,
            wall_ms: 0,
            via: None,
            cache_ttl: None,
            cache: None,
        });
        self.apply(region, key, &v, at_ms + 5);
        index
    }

    /// A delete acknowledged 5 ms after `at_ms`, applied locally at its ack.
    fn delete(&mut self, region: &str, key: &str, ts: u64, at_ms: u64) {
        let index = self.put(region, key, ts, at_ms);
        let op = &mut self.history.ops[index as usize];
        (op.f, op.value) = (Function::Delete, None);
    }

    fn apply(&mut self, region: &str, key: &str, version: &str, at_ms: u64) {
        self.history.applies.push(Apply::exact(region, key, version, at_ms * MS));
    }

    /// An ok get invoked at `at_ms` that read `read` (a version; `None`: not found).
    fn get(&mut self, region: &str, key: &str, read: Option<String>, at_ms: u64) -> u64 {
        let index = self.history.ops.len() as u64;
        self.history.ops.push(Op {
            index,
            process: 100 + index as u32,
            region: region.into(),
            f: Function::Get,
            key: key.into(),
            value: self.value_of(read.as_deref()),
            expiration: None,
            version: read,
            invoke: at_ms * MS,
            complete: (at_ms + 1) * MS,
            outcome: Outcome::Ok,
            wall_ms: 0,
            via: None,
            cache_ttl: None,
            cache: None,
        });
        index
    }

    /// The value written with `version`, as a read of it returns.
    fn value_of(&self, version: Option<&str>) -> Option<String> {
        let version = version?;
        let write =
            self.history.ops.iter().find(|o| o.is_write() && o.version.as_deref() == Some(version));
        Some(write.and_then(|w| w.value.clone()).unwrap_or_default())
    }

    fn fault(&mut self, id: u64, action: &str, at_ms: u64, fault: Fault) {
        self.history.faults.push(FaultEvent {
            id: Some(id),
            at: at_ms * MS,
            action: action.into(),
            fault,
        });
    }

    fn fin(&mut self, region: &str, key: &str, version: Option<String>, at_ms: u64) {
        self.history.finals.push(FinalRead {
            region: region.into(),
            key: key.into(),
            value: self.value_of(version.as_deref()),
            version,
            at: at_ms * MS,
            complete: None,
            wall_ms: 0,
        });
    }

    fn summarize(&self, meta: &RunMeta) -> Summary {
        summarize(&self.history, Some(meta), None)
    }
}

/// Three writes from wnam reach enam 100, 200 and 300 ms after their acks; a fourth never does.
fn three_writes() -> Builder {
    let mut b = Builder::default();
    for (i, at) in [10u64, 20, 30].into_iter().enumerate() {
        let v = version(100 + i as u64, "wnam");
        b.put("wnam", &format!("k{i}"), 100 + i as u64, at);
        b.apply("enam", &format!("k{i}"), &v, at + 5 + 100 * (i as u64 + 1));
    }
    b.put("wnam", "k3", 200, 500);
    b
}

#[test]
fn visibility_quantiles_and_model_errors_are_exact_on_three_writes() {
    let s = three_writes().summarize(&meta("100ms"));
    let pair = s.visibility.pairs.iter().find(|p| p.from == "wnam" && p.to == "enam").unwrap();
    let v = &pair.stats;
    assert_eq!((v.count, v.missing), (3, 1));
    close(v.min_ms, 100.0);
    close(v.p50_ms, 200.0);
    close(v.p90_ms, 300.0);
    close(v.p99_ms, 300.0);
    close(v.max_ms, 300.0);
    close(v.mean_ms, 200.0);
    // Four writes, one never arrived: P(visible) never reaches 99.9 %.
    assert_eq!(v.t_999_ms, None);
    // The model is a constant 100 ms.
    close(v.predicted_p50_ms, 100.0);
    close(v.predicted_p99_ms, 100.0);
    // F_measured(100) = 1/3 against F_predicted(100) = 1.
    close(v.ks_distance, 2.0 / 3.0);
    // p1..p33 are 100 (error 0), p34..p66 200 (100), p67..p99 300 (200).
    close(v.rmse_ms, (50_000.0f64 / 3.0).sqrt());
    close(v.mean_offset_ms, 100.0);
    assert_eq!(v.cdf, [(100.0, 1.0 / 3.0), (200.0, 2.0 / 3.0), (300.0, 1.0)]);
    assert_eq!(pair.model.as_deref(), Some("100ms"));
    // No writes from enam: no enam -> wnam pair.
    assert_eq!(s.visibility.pairs.len(), 1);
    // Overall pools the one pair; the global curve is the same with two regions.
    assert_eq!(s.visibility.overall.count, 3);
    close(s.visibility.overall.p50_ms, 200.0);
    close(s.visibility.overall.predicted_p50_ms, 100.0);
    assert_eq!((s.visibility.global.count, s.visibility.global.missing), (3, 1));
    close(s.visibility.global.p99_ms, 300.0);
    close(s.visibility.global.predicted_p50_ms, 100.0);
    // Divergence windows: last minus first region to hold each write.
    assert_eq!(s.divergence.window.count, 3);
    close(s.divergence.window.p50_ms, 200.0);
    // The lag heatmap holds the pair's p99, nothing on the diagonal.
    assert_eq!(s.lag_heatmap.origins, ["wnam", "enam"]);
    assert_eq!(s.lag_heatmap.p99_ms, vec![vec![None, Some(300.0)], vec![None, None]]);
}

#[test]
fn t_999_counts_every_write_once_all_arrived() {
    let mut b = three_writes();
    b.apply("enam", "k3", &version(200, "wnam"), 505 + 50);
    let s = b.summarize(&meta("100ms"));
    let v = &s.visibility.overall;
    assert_eq!((v.count, v.missing), (4, 0));
    close(v.t_999_ms, 300.0);
    // Sorted 50, 100, 200, 300: nearest rank of the median is the second.
    close(v.p50_ms, 100.0);
}

#[test]
fn a_region_holding_a_newer_version_holds_the_older_write_too() {
    let mut b = Builder::default();
    b.put("wnam", "k", 100, 10);
    b.put("wnam", "k", 101, 20);
    // enam only ever places the newer version, at 125 ms.
    b.apply("enam", "k", &version(101, "wnam"), 125);
    let s = b.summarize(&meta("100ms"));
    let v = &s.visibility.overall;
    assert_eq!((v.count, v.missing), (2, 0));
    // 125 − 15 and 125 − 25.
    close(v.min_ms, 100.0);
    close(v.max_ms, 110.0);
}

#[test]
fn blackbox_visibility_is_the_first_read_after_which_none_is_older() {
    let mut b = three_writes();
    let (v0, v1, v2) = (version(100, "wnam"), version(101, "wnam"), version(102, "wnam"));
    // All three writes are on one key here, so reads can see each in turn.
    for op in &mut b.history.ops {
        op.key = "k".into();
    }
    for apply in &mut b.history.applies {
        apply.key = "k".into();
    }
    b.history.ops.truncate(3);
    b.history.applies.retain(|a| a.version != version(200, "wnam"));
    b.get("enam", "k", None, 100);
    b.get("enam", "k", Some(v0), 150);
    b.get("enam", "k", Some(v1), 260);
    b.get("enam", "k", Some(v2), 400);
    let s = b.summarize(&meta("100ms"));
    let v = &s.visibility.overall;
    // White-box: each write reaches enam at 115, 225 and 335 ms: V = 100, 200, 300 ms.
    close(v.p50_ms, 200.0);
    // Black-box: 150 − 15, 260 − 25, 400 − 35 (the not-found read at 100 ms is older than all).
    assert_eq!(v.blackbox_count, 3);
    close(v.blackbox_p50_ms, 235.0);
    close(v.blackbox_gap_ms, 35.0);
}

#[test]
fn stale_reads_are_judged_against_the_newest_write_acknowledged_before_them() {
    let mut b = Builder::default();
    let (v1, v2, v3) = (version(1, "wnam"), version(2, "wnam"), version(3, "wnam"));
    b.put("wnam", "k", 1, 0); // ack 5
    b.put("wnam", "k", 2, 10); // ack 15
    b.put("wnam", "k", 3, 20); // ack 25
    b.apply("enam", "k", &v1, 105);
    b.apply("enam", "k", &v2, 215);
    b.apply("enam", "k", &v3, 325);
    b.get("wnam", "k", None, 2); // nothing acknowledged yet: not judged
    b.get("wnam", "k", Some(v3.clone()), 35); // local, fresh, Δ 10
    b.get("enam", "k", None, 100); // remote, stale by 3 versions, Δ 75
    b.get("enam", "k", Some(v1), 145); // stale by 2, Δ 120
    b.get("enam", "k", Some(v2), 255); // stale by 1, Δ 230
    b.get("enam", "k", Some(v3), 395); // fresh, Δ 370
    b.fault(0, "start", 90, cut());
    b.fault(0, "stop", 200, cut());
    let s = b.summarize(&meta("100ms"));
    let st = &s.stale;
    assert_eq!((st.reads, st.stale, st.unjudged), (5, 3, 1));
    close(st.overall_rate, 0.6);
    assert_eq!((st.local.n, st.local.hits), (1, 0));
    assert_eq!((st.remote.n, st.remote.hits), (4, 3));
    close(st.remote.low, 0.300_641_842_582_401_8);
    close(st.remote.high, 0.954_412_739_190_299_5);
    // Reads invoked during the partition (90..200 ms): at 100 and 145, both stale.
    assert_eq!((st.during_faults.n, st.during_faults.hits), (2, 2));
    assert_eq!((st.outside_faults.n, st.outside_faults.hits), (3, 1));
    let k: Vec<usize> = st.k_histogram.iter().map(|b| b.reads).collect();
    assert_eq!(k, [2, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]);
    assert!(st.k_histogram[K_BINS].or_more);
    // Measured p99 300 ms (the model's is 100 ms) → 300 × 1.5 / 25 = 18 → 20 ms buckets.
    close(Some(st.bucket_ms), 20.0);
    assert_eq!(st.buckets.len(), STALE_BUCKETS + 1);
    let remote = |i: usize| (st.buckets[i].remote.n, st.buckets[i].remote.hits);
    assert_eq!(remote(3), (1, 1), "Δ 75 ms");
    assert_eq!(remote(6), (1, 1), "Δ 120 ms");
    assert_eq!(remote(11), (1, 1), "Δ 230 ms");
    assert_eq!(remote(18), (1, 0), "Δ 370 ms");
    assert_eq!((st.buckets[0].local.n, st.buckets[0].local.hits), (1, 0), "Δ 10 ms");
    assert_eq!(st.buckets[STALE_BUCKETS].to_ms, None);
}

#[test]
fn not_found_after_a_delete_is_fresh() {
    let mut b = Builder::default();
    b.put("wnam", "k", 1, 0);
    b.history.ops[0].f = Function::Delete;
    b.history.ops[0].value = None;
    b.get("enam", "k", None, 50);
    let s = b.summarize(&meta("100ms"));
    assert_eq!((s.stale.reads, s.stale.stale), (1, 0));
}

#[test]
fn not_found_is_fresh_when_the_region_held_a_newer_delete() {
    let mut b = Builder::default();
    b.put("wnam", "k", 1, 0); // acknowledged at 5 ms
                              // A delete from enam is invoked at 40 ms and applied in wnam at 45 ms, but acknowledged
                              // only at 60 ms: a read in wnam at 50 ms finds nothing, which is newer than the put.
    let delete = b.put("enam", "k", 2, 40);
    b.history.ops[delete as usize].f = Function::Delete;
    b.history.ops[delete as usize].value = None;
    b.history.ops[delete as usize].complete = 60 * MS;
    b.apply("wnam", "k", &version(2, "enam"), 45);
    b.get("wnam", "k", None, 50);
    // Without the apply, the same read is stale: nothing says wnam had the delete.
    b.get("weur", "k", None, 50);
    let s = b.summarize(&meta("100ms"));
    assert_eq!((s.stale.reads, s.stale.stale), (2, 1));
}

/// wnam and enam write `k` at about the same time; wnam writes again after seeing enam's.
fn concurrent_pair() -> (Builder, u64, u64, u64) {
    let mut b = Builder::default();
    let w1 = b.put("wnam", "k", 100, 10); // ack 15
    let w2 = b.put("enam", "k", 101, 12); // ack 17: enam holds 101 > 100 from then on
    b.apply("wnam", "k", &version(101, "enam"), 115);
    let w3 = b.put("wnam", "k", 200, 300); // ack 305, after wnam applied w2
    b.apply("enam", "k", &version(200, "wnam"), 400);
    (b, w1, w2, w3)
}

#[test]
fn concurrent_writes_lose_to_the_greater_version_and_an_unread_loser_is_silent() {
    let (b, ..) = concurrent_pair();
    let s = b.summarize(&meta("100ms"));
    let c = &s.conflicts;
    assert!(c.determined);
    assert_eq!((c.writes, c.concurrent, c.losers, c.silent_losses), (3, 2, 1, 1));
    close(c.conflict_rate, 2.0 / 3.0);
    close(c.loser_rate, 1.0 / 3.0);
    close(c.silent_loss_rate, 1.0 / 3.0);
    assert_eq!(c.inversions, 0);
    assert_eq!(c.timestamp_source, "hlc");
    let wnam = c.per_region.iter().find(|r| r.region == "wnam").unwrap();
    assert_eq!((wnam.writes, wnam.concurrent, wnam.losers), (2, 1, 1));
    close(wnam.loser_rate, 0.5);
    let enam = c.per_region.iter().find(|r| r.region == "enam").unwrap();
    close(enam.conflict_rate, 1.0);
    close(enam.loser_rate, 0.0);
    // Poisson: mean visibility (2 + 98 + 95) / 3 = 65 ms over a 1 s workload; on k, wnam's two
    // writes see enam's rate of 1/s, enam's one sees 2/s.
    let d: f64 = 0.065;
    let expected = (2.0 * (1.0 - (-2.0 * d).exp()) + (1.0 - (-4.0 * d).exp())) / 3.0;
    close(c.poisson_delay_ms, 65.0);
    close(c.poisson_estimate, expected);
    close(wnam.poisson_estimate, 1.0 - (-2.0 * d).exp());
    close(enam.poisson_estimate, 1.0 - (-4.0 * d).exp());
}

#[test]
fn two_concurrent_writes_alone_conflict_at_rate_one() {
    let (mut b, ..) = concurrent_pair();
    b.history.ops.truncate(2);
    b.history.applies.retain(|a| a.version != version(200, "wnam"));
    let c = b.summarize(&meta("100ms")).conflicts;
    close(c.conflict_rate, 1.0);
    assert_eq!(c.losers, 1);
    close(c.loser_rate, 0.5);
}

#[test]
fn a_loser_that_some_read_returned_is_not_silent() {
    let (mut b, ..) = concurrent_pair();
    b.get("wnam", "k", Some(version(100, "wnam")), 20);
    let c = b.summarize(&meta("100ms")).conflicts;
    assert_eq!((c.losers, c.silent_losses), (1, 0));
    close(c.silent_loss_rate, 0.0);

    // A final read counts as well.
    let (mut b, ..) = concurrent_pair();
    b.fin("enam", "k", Some(version(100, "wnam")), 900);
    assert_eq!(b.summarize(&meta("100ms")).conflicts.silent_losses, 0);
}

#[test]
fn a_write_that_began_after_a_greater_version_was_acknowledged_is_an_inversion() {
    let mut b = Builder::default();
    let earlier = b.put("enam", "j", 500, 10); // ack 15
    b.apply("wnam", "j", &version(500, "enam"), 18);
    let later = b.put("wnam", "j", 400, 20); // wnam's clock is behind
    let s = b.summarize(&meta("100ms"));
    let c = &s.conflicts;
    assert_eq!(c.inversions, 1);
    assert_eq!(c.inversion_examples, [InversionExample { key: "j".into(), earlier, later }]);
    // wnam had applied enam's write before its own began: not concurrent, so not a conflict.
    assert_eq!(c.concurrent, 0);
    assert_eq!(c.tied_inversions, 0, "400 < 500: wnam's clock was behind");
}

#[test]
fn an_inversion_between_equal_clock_readings_is_a_tie_not_skew() {
    let mut b = Builder::default();
    b.put("wnam", "j", 500, 10); // ack 15, version 500-wnam
    b.put("enam", "j", 500, 20); // same reading; "enam" < "wnam" breaks the tie
    let c = b.summarize(&meta("100ms")).conflicts;
    assert_eq!((c.inversions, c.tied_inversions), (1, 1));
}

/// A partition from 100 to 1000 ms; `b` and `c` are written during it and cross after the heal.
fn partition() -> Builder {
    let mut b = Builder::default();
    let fault = cut();
    b.fault(0, "start", 100, fault.clone());
    b.fault(0, "stop", 1000, fault);
    b.put("wnam", "a", 1, 50); // ack 55
    b.apply("enam", "a", &version(1, "wnam"), 80);
    b.put("wnam", "b", 2, 200); // ack 205
    b.apply("enam", "b", &version(2, "wnam"), 1300);
    b.put("enam", "c", 3, 300); // ack 305
    b.apply("wnam", "c", &version(3, "enam"), 1100);
    b.put("wnam", "d", 4, 1500); // ack 1505, after the heal
    b.apply("enam", "d", &version(4, "wnam"), 1600);
    for key in ["a", "b", "c", "d"] {
        let v = match key {
            "a" => version(1, "wnam"),
            "b" => version(2, "wnam"),
            "c" => version(3, "enam"),
            _ => version(4, "wnam"),
        };
        b.fin("wnam", key, Some(v.clone()), 2000);
        b.fin("enam", key, Some(v), 2000);
    }
    b
}

#[test]
fn convergence_after_heal_waits_for_the_backlog() {
    let s = partition().summarize(&meta("100ms"));
    assert_eq!(s.convergence.len(), 1);
    let heal = &s.convergence[0];
    assert_eq!((heal.fault_id, heal.fault.as_str()), (Some(0), "partition"));
    close(Some(heal.heal_at_ms), 1000.0);
    // (b, enam) and (c, wnam) lacked their targets; the last arrived 300 ms after the heal.
    assert_eq!((heal.backlog, heal.keys, heal.unconverged), (2, 3, 0));
    close(heal.convergence_ms, 300.0);
    assert_eq!(s.divergence.converged_within_quiet, Some(true));
    assert_eq!(s.faults.len(), 1);
    assert!(s.faults[0].stopped);
    close(Some(s.faults[0].end_ms), 1000.0);
}

#[test]
fn a_region_that_never_catches_up_leaves_convergence_undetermined() {
    let mut b = partition();
    b.history.applies.retain(|a| !(a.region == "enam" && a.key == "b"));
    let s = b.summarize(&meta("100ms"));
    assert_eq!(s.convergence[0].unconverged, 1);
    assert_eq!(s.convergence[0].convergence_ms, None);
    assert_eq!(s.divergence.converged_within_quiet, Some(false));
    assert_eq!(s.divergence.unconverged_at_finals, 1);
}

/// enam is wiped from 100 ms (the wipe stops with the workload at 1000 ms). Before the wipe it
/// had `a`, and `b` put then deleted; after it, `a` comes back 200 ms after the heal and `b`
/// never does, as a delete leaves it.
fn wiped() -> Builder {
    let mut b = Builder::default();
    let wipe = Fault::Wipe { region: "enam".into() };
    b.fault(0, "start", 100, wipe.clone());
    b.fault(0, "stop", 1000, wipe);
    b.put("wnam", "a", 1, 10);
    b.apply("enam", "a", &version(1, "wnam"), 50);
    b.put("wnam", "b", 2, 20);
    b.apply("enam", "b", &version(2, "wnam"), 60);
    b.delete("wnam", "b", 3, 30);
    b.apply("enam", "b", &version(3, "wnam"), 70);
    b.apply("enam", "a", &version(1, "wnam"), 1200);
    b
}

#[test]
fn a_wiped_region_converges_on_what_it_pulls_back_and_on_deletes_by_absence() {
    let heal = &wiped().summarize(&meta("100ms")).convergence[0];
    assert_eq!((heal.backlog, heal.keys, heal.unconverged), (1, 2, 0), "{heal:?}");
    close(heal.convergence_ms, 200.0);

    // A key whose older put comes back and whose delete does not has not converged.
    let mut b = wiped();
    b.apply("enam", "b", &version(2, "wnam"), 1100);
    let heal = &b.summarize(&meta("100ms")).convergence[0];
    assert_eq!((heal.unconverged, heal.convergence_ms), (1, None), "{heal:?}");

    // Nor has one it held before the wipe and never got back.
    let mut b = wiped();
    b.history.applies.retain(|a| !(a.region == "enam" && a.key == "a" && a.at > 1000 * MS));
    let heal = &b.summarize(&meta("100ms")).convergence[0];
    assert_eq!((heal.unconverged, heal.convergence_ms), (1, None), "{heal:?}");
}

#[test]
fn divergent_keys_are_counted_over_time() {
    let s = partition().summarize(&meta("100ms"));
    let d = &s.divergence;
    // b (from 205 ms) and c (from 305 ms) differ until 1100 and 1300 ms.
    assert_eq!(d.max_divergent, 2);
    close(d.max_at_ms, 305.0);
    assert_eq!(d.samples.len(), DIVERGENCE_SAMPLES);
    let at = |i: usize| (d.samples[i].divergent, d.samples[i].keys);
    assert_eq!(at(0), (0, 0));
    assert!((d.samples[50].at_ms - 2000.0 * 50.0 / 199.0).abs() < 1e-3, "≈ 502.5 ms");
    assert_eq!(at(50), (2, 3));
    assert_eq!(at(DIVERGENCE_SAMPLES - 1), (0, 4));
    // ∫ divergent/keys dt from the first apply (55 ms) to the end (2000 ms).
    let integral = 25.0 + 100.0 / 2.0 + 795.0 * 2.0 / 3.0 + 200.0 / 3.0 + 95.0 / 4.0;
    close(d.time_weighted_fraction, integral / 1945.0);
    // Windows: 25, 1095, 795, 95 ms.
    assert_eq!(d.window.count, 4);
    close(d.window.p50_ms, 95.0);
    close(d.window.max_ms, 1095.0);
}

#[test]
fn availability_splits_outcomes_by_region_and_fault() {
    let mut b = partition();
    let failed = b.get("enam", "a", None, 500);
    b.history.ops[failed as usize].outcome = Outcome::Fail;
    let unknown = b.get("enam", "a", None, 600);
    b.history.ops[unknown as usize].outcome = Outcome::Info;
    let s = b.summarize(&meta("100ms"));
    let all = &s.availability[0];
    assert_eq!(all.region, "all");
    assert_eq!((all.total.ops, all.total.ok, all.total.fail, all.total.info), (6, 4, 1, 1));
    let enam = s.availability.iter().find(|r| r.region == "enam").unwrap();
    assert_eq!((enam.total.ops, enam.during_faults.ops, enam.outside_faults.ops), (3, 3, 0));
    close(enam.during_faults.ok_fraction, 1.0 / 3.0);
    close(enam.during_faults.fail_fraction, 1.0 / 3.0);
    let wnam = s.availability.iter().find(|r| r.region == "wnam").unwrap();
    assert_eq!((wnam.during_faults.ops, wnam.outside_faults.ops), (1, 2));
    close(wnam.outside_faults.ok_fraction, 1.0);
}

#[test]
fn latency_and_throughput_are_bucketed_over_time() {
    let mut b = Builder::default();
    for (at, latency) in [(0u64, 10u64), (100, 20), (200, 30)] {
        let i = b.get("wnam", "k", None, at);
        b.history.ops[i as usize].complete = (at + latency) * MS;
    }
    let s = b.summarize(&meta("100ms"));
    // The run ends at 230 ms: 230 / 60 → 5 ms buckets.
    close(Some(s.latency.bucket_ms), 5.0);
    let get = &s.latency.series[0];
    assert_eq!((get.f.as_str(), get.count), ("get", 3));
    close(get.p50_ms, 20.0);
    close(get.p99_ms, 30.0);
    assert_eq!(get.buckets.len(), 3);
    assert_eq!((get.buckets[1].at_ms, get.buckets[1].p99_ms), (100.0, 20.0));
    let ok = &s.throughput.series[0];
    assert_eq!((ok.f.as_str(), ok.outcome.as_str()), ("get", "ok"));
    assert_eq!(ok.points.len(), 47);
    // One completion in the 5 ms bucket at 10 ms: 200 per second.
    assert_eq!(ok.points[2], (10.0, 200.0));
    assert_eq!(ok.points[3], (15.0, 0.0));
}

#[test]
fn clock_offsets_step_at_clock_faults_and_come_back_at_their_stop() {
    let mut b = Builder::default();
    let fault = Fault::ClockOffset { region: "enam".into(), offset_ms: 500 };
    b.fault(3, "start", 100, fault.clone());
    b.fault(3, "stop", 300, fault);
    let mut m = meta("100ms");
    m.clock_offsets = vec![ClockStep { region: "enam".into(), at: 0, offset_ms: -20 }];
    let s = b.summarize(&m);
    assert_eq!(s.clocks.len(), 1);
    assert_eq!(s.clocks[0].region, "enam");
    assert_eq!(s.clocks[0].steps, [(0.0, -20.0), (100.0, 500.0), (300.0, -20.0)]);
}

#[test]
fn a_fault_without_a_stop_lasts_to_the_end_of_the_workload() {
    let mut b = Builder::default();
    b.fault(1, "start", 100, Fault::Pause { from: "*".into(), to: "enam".into() });
    let s = b.summarize(&meta("100ms"));
    assert_eq!(s.faults.len(), 1);
    assert!(!s.faults[0].stopped);
    close(Some(s.faults[0].end_ms), 1000.0);
    assert!(s.convergence.is_empty(), "no heal without a stop");
}

#[test]
fn predictions_follow_the_link_model() {
    let s = three_writes().summarize(&meta("uniform(0ms,1000ms)"));
    let v = &s.visibility.overall;
    let p50 = v.predicted_p50_ms.unwrap();
    assert!((p50 - 500.0).abs() < 20.0, "{p50}");
    let p99 = v.predicted_p99_ms.unwrap();
    assert!((p99 - 990.0).abs() < 10.0, "{p99}");
    // Deterministic: the same seed predicts the same.
    let again = three_writes().summarize(&meta("uniform(0ms,1000ms)"));
    assert_eq!(again.visibility.overall.predicted_cdf, v.predicted_cdf);
    // The global prediction of two regions is the single link's.
    assert_eq!(s.visibility.global.predicted_p50_ms, s.visibility.overall.predicted_p50_ms);
}

#[test]
fn a_link_without_a_model_or_with_a_bad_one_predicts_nothing() {
    let mut m = meta("bogus(1s)");
    m.links.truncate(1);
    let s = three_writes().summarize(&m);
    assert_eq!(s.visibility.overall.predicted_p50_ms, None);
    assert_eq!(s.visibility.overall.ks_distance, None);
    assert!(s.notes.iter().any(|n| n.contains("does not parse")), "{:?}", s.notes);
}

#[test]
fn an_empty_history_without_metadata_summarizes_to_no_data() {
    let s = summarize(&History::default(), None, None);
    assert!(!s.run.meta_present);
    assert!(s.run.incomplete);
    assert!(s.notes.iter().any(|n| n.contains("run.json is absent")));
    assert!(s.notes.iter().any(|n| n.contains("no apply events")));
    assert_eq!(s.check.validity, "unknown");
    assert_eq!(s.check.source, "computed");
    assert_eq!(s.visibility.overall.count, 0);
    assert_eq!(s.visibility.overall.p50_ms, None);
    assert_eq!(s.stale.overall_rate, None);
    assert_eq!(s.conflicts.conflict_rate, None);
    assert_eq!(s.conflicts.poisson_estimate, None);
    assert!(s.convergence.is_empty());
    assert_eq!(s.divergence.time_weighted_fraction, None);
    assert!(s.latency.series.is_empty());
    // No NaN anywhere: the JSON round-trips to an equal summary.
    let json = serde_json::to_string(&s).unwrap();
    assert!(!json.contains("NaN"));
    assert_eq!(serde_json::from_str::<Summary>(&json).unwrap(), s);
}

#[test]
fn a_history_without_applies_measures_reads_but_not_visibility() {
    let mut b = partition();
    b.history.applies.clear();
    b.get("enam", "a", Some(version(1, "wnam")), 700);
    let s = b.summarize(&meta("100ms"));
    assert_eq!(s.visibility.overall.count, 0);
    assert!(!s.conflicts.determined);
    assert_eq!(s.conflicts.conflict_rate, None);
    assert_eq!(s.convergence[0].convergence_ms, None);
    assert_eq!(s.convergence[0].keys, 3);
    assert_eq!((s.stale.reads, s.stale.stale), (1, 0));
    assert_eq!(s.divergence.samples.len(), 0);
}

#[test]
fn the_summary_json_has_the_paths_the_end_to_end_test_reads() {
    let s = partition().summarize(&meta("100ms"));
    let json = serde_json::to_value(&s).unwrap();
    for field in
        ["p50_ms", "p99_ms", "predicted_p50_ms", "predicted_p99_ms", "ks_distance", "rmse_ms"]
    {
        assert!(json["visibility"]["overall"][field].is_number(), "{field}");
        assert!(json["visibility"]["pairs"][0][field].is_number(), "{field}");
    }
    assert!(json["visibility"]["overall"]["count"].is_number());
    assert_eq!(json["visibility"]["pairs"][0]["from"], "wnam");
    assert_eq!(json["visibility"]["pairs"][0]["to"], "enam");
    assert_eq!(json["check"]["validity"], "valid");
    for field in ["conflict_rate", "loser_rate", "silent_loss_rate", "inversions"] {
        assert!(json["conflicts"][field].is_number(), "{field}");
    }
    for field in ["heal_at_ms", "convergence_ms", "backlog"] {
        assert!(json["convergence"][0][field].is_number(), "{field}");
    }
    assert!(json["stale"]["overall_rate"].is_null(), "no reads in this history");
    assert_eq!(json["run"]["seed"], 7);
}

#[test]
fn excerpts_follow_the_anomalies_and_the_most_written_key() {
    let mut b = partition();
    // enam ends on an older state of b: divergence and a lost write.
    b.history.finals.retain(|f| !(f.region == "enam" && f.key == "b"));
    b.fin("enam", "b", None, 2000);
    // A second write to d makes it the most-written key.
    let second = b.put("wnam", "d", 5, 1700);
    b.apply("enam", "d", &version(5, "wnam"), 1800);
    for read in b.history.finals.iter_mut().filter(|f| f.key == "d") {
        read.version = Some(version(5, "wnam"));
        read.value = Some(format!("value-{second}"));
    }
    let s = b.summarize(&meta("100ms"));
    assert_eq!(s.check.validity, "invalid");
    assert_eq!(s.traces.drilldowns.len(), 1);
    let drill = &s.traces.drilldowns[0];
    assert_eq!(drill.key, "b");
    assert_eq!(drill.ops.len(), 1);
    assert_eq!(drill.applies.len(), 2);
    assert_eq!(drill.finals.len(), 2);
    let hot = s.traces.hot_key.as_ref().unwrap();
    assert_eq!(hot.key, "d");
    assert_eq!(hot.ops.len(), 2);
    assert_eq!(s.traces.timeline.len(), 5);
}

/// wnam and enam write `k` concurrently; enam's own apply of its write was logged in whole
/// milliseconds by an older node (12 ms) although the write was only sent at 12.4 ms.
fn concurrent_pair_read_early() -> Builder {
    let mut b = Builder::default();
    b.put("wnam", "k", 100, 10); // ack 15
    let w2 = b.put("enam", "k", 101, 12);
    b.history.ops[w2 as usize].invoke = 12 * MS + 400_000;
    b.history.applies.retain(|a| a.region != "enam");
    let legacy = Apply { earliest: None, latest: None, ..Apply::exact("enam", "k", "", 12 * MS) };
    b.history.applies.push(Apply { version: version(101, "enam"), ..legacy });
    b.apply("wnam", "k", &version(101, "enam"), 115);
    b
}

#[test]
fn an_apply_is_never_placed_before_its_write_was_sent() {
    let s = concurrent_pair_read_early().summarize(&meta("100ms"));
    // Placed at 12 ms, enam's apply would make enam hold wnam's write (through the newer
    // version) before enam's own write was sent: not concurrent, no loser.
    let c = &s.conflicts;
    assert_eq!((c.concurrent, c.losers), (2, 1), "{c:?}");
}

#[test]
fn visibility_is_never_negative() {
    let s = concurrent_pair_read_early().summarize(&meta("100ms"));
    let pair = |from: &str| {
        s.visibility.pairs.iter().find(|p| p.from == from).map(|p| p.stats.clone()).unwrap()
    };
    // enam held a newer version than wnam's write before wnam's ack at 15 ms: visible at once.
    close(pair("wnam").min_ms, 0.0);
    close(pair("enam").min_ms, 98.0);
    close(s.visibility.overall.min_ms, 0.0);
    // A read in enam that returned wnam's write before its ack does not make it negative either.
    let mut b = concurrent_pair_read_early();
    b.history.ops.remove(1);
    b.history.applies.retain(|a| a.region == "wnam");
    b.apply("enam", "k", &version(100, "wnam"), 13);
    b.get("enam", "k", Some(version(100, "wnam")), 12);
    let s = b.summarize(&meta("100ms"));
    assert_eq!(s.visibility.overall.blackbox_count, 1);
    close(s.visibility.overall.blackbox_p50_ms, 0.0);
}

mod cache;
