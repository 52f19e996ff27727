//! The whole report on a small run with an anomaly, and on an empty one.

use edgekv_core::Fault;

use super::*;
use crate::analyze::summarize;
use crate::history::{
    Apply, CacheStatus, FaultEvent, FinalRead, Function, History, Op, Outcome, Via,
};
use crate::meta::{LinkMeta, RegionMeta, RunMeta};
use crate::report::svg::escape;

fn small_run() -> (History, RunMeta) {
    let mut h = History::default();
    let ms = 1_000_000;
    let op = |index: u64, region: &str, f: Function, version: &str, at: u64| Op {
        index,
        process: index as u32 % 3,
        region: region.into(),
        f,
        key: "k<&>".into(),
        value: Some(format!("v{index}")),
        expiration: None,
        version: Some(version.into()),
        invoke: at * ms,
        complete: (at + 5) * ms,
        outcome: Outcome::Ok,
        wall_ms: 0,
        via: None,
        cache_ttl: None,
        cache: None,
    };
    h.ops.push(op(0, "wnam", Function::Put, "0000000000000001-wnam", 10));
    h.ops.push(op(1, "enam", Function::Put, "0000000000000002-enam", 12));
    h.ops.push(op(2, "enam", Function::Get, "0000000000000001-wnam", 400));
    h.ops[2].value = Some("v0".into());
    for (region, version, at) in [
        ("wnam", "0000000000000001-wnam", 15),
        ("enam", "0000000000000002-enam", 17),
        ("wnam", "0000000000000002-enam", 300),
    ] {
        h.applies.push(Apply::exact(region, "k<&>", version, at * ms));
    }
    let fault = Fault::Partition { a: vec!["wnam".into()], b: vec!["enam".into()] };
    h.faults.push(FaultEvent {
        id: Some(0),
        at: 100 * ms,
        action: "start".into(),
        fault: fault.clone(),
    });
    h.faults.push(FaultEvent { id: Some(0), at: 250 * ms, action: "stop".into(), fault });
    let clock = Fault::ClockOffset { region: "enam".into(), offset_ms: 200 };
    h.faults.push(FaultEvent {
        id: Some(1),
        at: 50 * ms,
        action: "start".into(),
        fault: clock.clone(),
    });
    h.faults.push(FaultEvent { id: Some(1), at: 350 * ms, action: "stop".into(), fault: clock });
    // wnam ends on the loser: an anomaly to drill into.
    for (region, version, value) in
        [("wnam", "0000000000000001-wnam", "v0"), ("enam", "0000000000000002-enam", "v1")]
    {
        h.finals.push(FinalRead {
            region: region.into(),
            key: "k<&>".into(),
            value: Some(value.into()),
            version: Some(version.into()),
            at: 2000 * ms,
            complete: None,
            wall_ms: 0,
        });
    }
    let region = |name: &str| RegionMeta {
        name: name.into(),
        url: format!("http://127.0.0.1:{}/client/v4", if name == "wnam" { 8787 } else { 8788 }),
        writers: 1,
        readers: 1,
        ..RegionMeta::default()
    };
    let link = |from: &str, to: &str| LinkMeta {
        from: from.into(),
        to: to.into(),
        model: "uniform(50ms,300ms)".into(),
    };
    let meta = RunMeta {
        seed: 42,
        scenario: "partition-<heal>".into(),
        scenario_text: "name: partition-<heal>\n".into(),
        edgekv_version: "0.1.0".into(),
        topology: "in-process".into(),
        regions: vec![region("wnam"), region("enam")],
        links: vec![link("wnam", "enam"), link("enam", "wnam")],
        workload: (0, 500 * ms),
        quiet_ms: 1000,
        timestamp_source: "hlc".into(),
        ..RunMeta::default()
    };
    (h, meta)
}

#[test]
fn the_report_has_every_section_in_order_and_nothing_external() {
    let (history, meta) = small_run();
    let summary = summarize(&history, Some(&meta), None);
    assert_eq!(summary.check.validity, "invalid");
    let html = render(&summary);
    let mut from = 0;
    for title in SECTIONS {
        let heading = format!("<h2>{}</h2>", escape(title));
        let at = html[from..]
            .find(&heading)
            .unwrap_or_else(|| panic!("{title} missing or out of order"));
        from += at + heading.len();
    }
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("edgekv lab run partition-&lt;heal&gt; --seed 42"));
    assert!(html.contains("id=\"drill-0\""), "a drill-down for the anomaly");
    assert!(html.contains("<span class=\"badge invalid\">invalid</span>"));
    assert!(html.contains("uniform(50ms,300ms)"));
    assert!(html.contains("t-visibility CDF of writes made in wnam"));
    assert!(html.contains("Clock offset per region"));
    assert!(!html.contains("No clock offsets"));
    // The key's markup characters are escaped everywhere.
    assert!(!html.contains("k<&>"));
    assert!(html.contains("k&lt;&amp;&gt;"));
    assert!(!html.contains("NaN"));
    // Self-contained: no script, no external resource. The only URLs are the SVG namespace
    // (an identifier, never fetched) and the regions' endpoints printed as text.
    let lower = html.to_lowercase();
    assert!(!lower.contains("<script"));
    assert!(!lower.contains("src="));
    assert!(!lower.contains("href=\"http") && !lower.contains("url(http"));
    assert!(!lower.contains("https://"));
    let namespace = lower.matches("xmlns=\"http://www.w3.org/2000/svg\"").count();
    let endpoints = lower.matches("<td>http://127.0.0.1:").count();
    assert_eq!(endpoints, 2);
    assert_eq!(lower.matches("http://").count(), namespace + endpoints);
}

#[test]
fn an_empty_summary_renders_with_no_data_notes() {
    let summary = summarize(&History::default(), None, None);
    let html = render(&summary);
    for title in SECTIONS {
        assert!(html.contains(&format!("<h2>{}</h2>", escape(title))), "{title}");
    }
    assert!(html.contains("run.json was not found"));
    assert!(html.contains("No data: no acknowledged write"));
    assert!(html.contains("edgekv lab run SCENARIO --seed 0"));
    assert!(html.contains("No clock offsets were injected."));
    assert!(!html.contains("NaN"));
}

#[test]
fn the_edge_cache_section_says_when_no_read_could_be_cached() {
    let (mut history, meta) = small_run();
    let rest = render(&summarize(&history, Some(&meta), None));
    assert!(rest.contains("Every get went through the REST API"), "REST only");
    // wnam caches v0 at 200 ms; enam's write reaches wnam at 300 ms; wnam's hit at 350 ms
    // still serves v0.
    let ms = 1_000_000;
    for (at, status) in [(200, CacheStatus::Miss), (350, CacheStatus::Hit)] {
        let mut get = history.ops[2].clone();
        get.index = history.ops.len() as u64;
        get.region = "wnam".into();
        (get.invoke, get.complete) = (at * ms, (at + 1) * ms);
        (get.via, get.cache_ttl, get.cache) = (Some(Via::Binding), Some(30), Some(status));
        history.ops.push(get);
    }
    let summary = summarize(&history, Some(&meta), None);
    assert_eq!(summary.cache.stale_hits, 1, "{:?}", summary.cache);
    let html = render(&summary);
    assert!(!html.contains("Every get went through the REST API"));
    assert!(html.contains("binding, cacheTtl 30 s"));
    assert!(html.contains("How long a cached copy hid a version its region held"));
    assert!(html.contains("cache held value"), "wnam's hit served the value it had cached");
    assert!(!html.contains("NaN") && !html.to_lowercase().contains("<script"));
}
