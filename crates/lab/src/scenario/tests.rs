//! Scenario files: defaults, every mistake named by its field, and the canned scenarios.

use super::*;

const SMALL: &str = r#"
name = "small"
duration = "10s"
[cluster]
delay = "uniform(100ms,500ms)"
[[regions]]
name = "wnam"
[[regions]]
name = "enam"
writers = 3
[workload]
rate = 5
keys = 10
"#;

#[test]
fn a_small_scenario_gets_the_documented_defaults() {
    let s = Scenario::parse(SMALL).unwrap();
    assert_eq!(s.target, Target::InProcess { durable: false });
    assert_eq!((s.regions[0].writers, s.regions[1].writers), (1, 3));
    assert_eq!(s.regions[0].token, DEV_TOKEN);
    assert_eq!(s.workload.mix, Mix { put: 6, delete: 1, get: 3, ..Mix::default() });
    // quiet = longest delay + anti-entropy + margin
    assert_eq!(s.quiet, Duration::from_millis(500) + DEFAULT_LAB_ANTI_ENTROPY + QUIET_MARGIN);
    assert_eq!(s.account, "edgekv-lab");
    assert_eq!(s.edge, EdgeSettings::WORKERS_KV, "Workers KV's edge unless the scenario says");
    assert!(s.regions.iter().all(|r| r.reads == Reads::default() && r.binding_url.is_none()));
}

#[test]
fn gets_go_through_the_binding_with_a_cache_ttl_per_workload_or_region() {
    let text = SMALL
        .replace("keys = 10", "keys = 10\nreads = { via = \"binding\", cache_ttl = 30 }")
        .replace(
            "writers = 3",
            "writers = 3\nreads = [{ via = \"binding\", weight = 3 }, { via = \"rest\" }]",
        )
        .replace("[cluster]", "[cluster]\nedge_cache = true\nwrite_rate_limit = false");
    let s = Scenario::parse(&text).unwrap();
    let binding = |ttl| ReadPath { via: crate::history::Via::Binding, cache_ttl: Some(ttl) };
    assert_eq!(s.regions[0].reads.paths(), [(binding(30), 1)]);
    assert_eq!(s.regions[1].reads.paths(), [(binding(DEFAULT_CACHE_TTL), 3), (ReadPath::REST, 1)]);
    assert_eq!(s.regions[1].reads.describe(), "binding (cacheTtl 60 s) ×3, rest ×1");
    assert_eq!(s.edge, EdgeSettings { write_rate_limit: false, ..EdgeSettings::WORKERS_KV });
    assert_eq!(s.edge.rest_cache_ttl(), None);
    let rest =
        Scenario::parse(&SMALL.replace("[cluster]", "[cluster]\nrest_cache = true")).unwrap();
    assert_eq!(rest.edge.rest_cache_ttl(), Some(REST_CACHE_TTL));
    assert!(
        rest.quiet > Duration::from_secs(REST_CACHE_TTL),
        "the final reads wait out the REST cache: {:?}",
        rest.quiet
    );
}

#[test]
fn read_path_mistakes_name_their_field() {
    let reads = |r: &str| SMALL.replace("keys = 10", &format!("keys = 10\nreads = {r}"));
    let cases = [
        (reads("{ via = \"cdn\" }"), "workload.reads.via"),
        (reads("{ via = \"binding\", cache_ttl = 10 }"), "workload.reads.cache_ttl: 10 s"),
        (reads("{ via = \"binding\", cache_ttl = -1 }"), "workload.reads.cache_ttl"),
        (reads("{ via = \"rest\", cache_ttl = 30 }"), "only binding reads ask a cacheTtl"),
        (
            reads("[{ via = \"binding\" }, { via = \"rest\", weight = 0 }]"),
            "workload.reads[1].weight",
        ),
        (reads("[]"), "workload.reads: at least one"),
        (reads("\"binding\""), "workload.reads: a table"),
        (reads("{ via = \"binding\", ttl = 30 }"), "workload.reads: unknown field `ttl`"),
        (
            SMALL.replace("writers = 3", "writers = 3\nreads = { via = \"x\" }"),
            "regions[1].reads.via",
        ),
        (
            SMALL.replace("[cluster]", "[cluster]\nedge_cache = false\nrest_cache = true"),
            "cluster.rest_cache",
        ),
        (
            SMALL.replace("writers = 3", "writers = 3\nbinding_url = \"http://127.0.0.1:1\""),
            "regions[1].binding_url: only for an external cluster",
        ),
        (
            SMALL
                .replace("[cluster]", "[cluster]\nrest_cache = true")
                .replace("duration = \"10s\"", "duration = \"10s\"\nquiet = \"30s\""),
            "quiet: 30s is not longer than the REST cache's ttl",
        ),
    ];
    for (text, expected) in cases {
        let error = Scenario::parse(&text).unwrap_err().to_string();
        assert!(error.contains(expected), "expected {expected:?} in {error:?}");
    }
}

#[test]
fn an_external_region_read_through_the_binding_names_its_listener() {
    let text = r#"
name = "ext"
duration = "5s"
[workload]
reads = { via = "binding", cache_ttl = 30 }
[[regions]]
name = "wnam"
url = "http://127.0.0.1:8787/client/v4"
"#;
    let error = Scenario::parse(text).unwrap_err().to_string();
    assert!(error.contains("regions[0].binding_url: the region's gets use the binding"), "{error}");
    let named =
        text.replace("/client/v4\"", "/client/v4\"\nbinding_url = \"http://127.0.0.1:10787/\"");
    let s = Scenario::parse(&named).unwrap();
    assert_eq!(s.regions[0].binding_url.as_deref(), Some("http://127.0.0.1:10787"));
}

#[test]
fn mistakes_name_their_field() {
    let cases = [
        (SMALL.replace("duration = \"10s\"", "duration = \"ten\""), "duration"),
        (SMALL.replace("rate = 5", "rate = 0"), "workload.rate"),
        (SMALL.replace("keys = 10", "keys = 10\nhot_keys = 11"), "workload.hot_keys"),
        (SMALL.replace("keys = 10", "keys = 10\nttl = \"30s\""), "workload.ttl"),
        (SMALL.replace("uniform(100ms,500ms)", "uniform(1s,90s)"), "cluster.delay"),
        (SMALL.replace("name = \"enam\"", "name = \"wnam\""), "listed twice"),
        (SMALL.replace("name = \"enam\"", "name = \"EN AM\""), "regions[1].name"),
        (SMALL.replace("keys = 10", "keys = 10\nmix = { put = 1, jump = 2 }"), "jump"),
        (SMALL.replace("keys = 10", "keys = 10\nread_mix = { put = 1 }"), "read_mix"),
        (SMALL.replace("duration = \"10s\"", "duration = \"10s\"\nquiet = \"100ms\""), "quiet"),
        (format!("{SMALL}\n[[faults]]\nat = \"11s\"\nfault = {{ kind = \"pause\", from = \"*\", to = \"*\" }}\n"), "faults[0].at"),
        (format!("{SMALL}\n[[faults]]\nat = \"1s\"\nfault = {{ from = \"*\" }}\n"), "faults[0].fault"),
        (SMALL.replace("writers = 3", "url = \"http://127.0.0.1:1/client/v4\""), "every region a url"),
        (format!("{SMALL}bogus = 1\n"), "bogus"),
        (
            format!("{SMALL}\n[[faults]]\nat = \"1s\"\nfault = {{ kind = \"kill\", region = \"wnam\" }}\n"),
            "needs an external (compose) cluster",
        ),
    ];
    for (text, expected) in cases {
        let error = Scenario::parse(&text).unwrap_err().to_string();
        assert!(error.contains(expected), "expected {expected:?} in {error:?}");
    }
}

#[test]
fn faults_keep_their_order_and_a_delay_fault_lengthens_the_quiet_period() {
    let text = format!(
        "{SMALL}\n[[faults]]\nat = \"2s\"\nfor = \"3s\"\njitter = \"500ms\"\n\
         fault = {{ kind = \"delay\", from = \"wnam\", to = \"*\", extra = \"4s\" }}\n\
         [[faults]]\nat = \"1s\"\nfault = {{ kind = \"partition\", a = [\"wnam\"], b = [\"enam\"] }}\n"
    );
    let s = Scenario::parse(&text).unwrap();
    assert_eq!(s.faults.len(), 2);
    assert_eq!(s.faults[0].lasts, Some(Duration::from_secs(3)));
    assert_eq!(s.faults[0].jitter, Duration::from_millis(500));
    assert!(
        matches!(&s.faults[0].fault, Fault::Delay { extra, .. } if extra == "4s"),
        "{:?}",
        s.faults[0].fault
    );
    assert_eq!(s.faults[1].lasts, None);
    assert!(
        matches!(&s.faults[1].fault, Fault::Partition { a, .. } if a[0] == "wnam"),
        "{:?}",
        s.faults[1].fault
    );
    assert_eq!(s.longest_delay(), Duration::from_millis(4500));
}

#[test]
fn every_canned_scenario_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/scenarios");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        // Valid for `lab run`, or (with process faults, which only a compose cluster or the
        // simulator can carry out) for `edgekv sim`.
        let scenario = Scenario::parse(&text)
            .or_else(|_| Scenario::parse_simulated(&text))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(text.starts_with('#'), "{} starts with what to expect", path.display());
        assert_eq!(path.file_stem().unwrap().to_str(), Some(scenario.name.as_str()));
        names.push(scenario.name);
    }
    assert!(names.len() >= 10, "{names:?}");
}

#[test]
fn an_external_cluster_without_declared_delays_is_assumed_to_take_up_to_60_s() {
    let text = r#"
name = "ext"
duration = "5s"
[[regions]]
name = "wnam"
url = "http://127.0.0.1:8787/client/v4/"
token = "t"
admin_token = "a"
clock_offset = "-1.5s"
"#;
    let s = Scenario::parse(text).unwrap();
    assert_eq!(s.target, Target::External);
    assert_eq!(
        s.compose,
        Compose { project: "edgekv".into(), file: "deploy/docker-compose.yml".into() }
    );
    let kill = |region: &str| {
        format!("{text}\n[[faults]]\nat = \"1s\"\nfor = \"2s\"\nfault = {{ kind = \"kill\", region = \"{region}\" }}\n")
    };
    let killed = Scenario::parse(&kill("wnam")).unwrap();
    assert!(killed.faults[0].fault.is_process());
    let err = Scenario::parse(&kill("mars")).unwrap_err().to_string();
    assert!(err.contains("\"mars\" is not one of"), "{err}");
    assert_eq!(s.delays, None);
    assert_eq!(s.regions[0].url, "http://127.0.0.1:8787/client/v4");
    assert_eq!(s.regions[0].clock_offset_ms, -1500);
    assert_eq!(s.quiet, Duration::from_secs(60) + DEFAULT_NODE_ANTI_ENTROPY + QUIET_MARGIN);
    assert_eq!(s.clock_error, DEFAULT_EXTERNAL_CLOCK_ERROR);
    let declared = Scenario::parse(&format!("{text}[cluster]\nclock_error = \"2ms\"\n")).unwrap();
    assert_eq!(declared.clock_error, Duration::from_millis(2));
}

#[test]
fn an_in_process_cluster_shares_the_labs_clock() {
    assert_eq!(Scenario::parse(SMALL).unwrap().clock_error, Duration::ZERO);
}
