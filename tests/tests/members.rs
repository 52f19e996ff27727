//! Membership as users change it: regions that find each other through DNS, and a region
//! joining and leaving a running cluster with `edgekv chaos join` and `leave`.

use std::time::Duration;

use edgekv_tests::{free_port, http, must_run_out, wait_until, Edgekv};

const NS_PATH: &str = "/client/v4/accounts/acct/storage/kv/namespaces";

fn api() -> [(&'static str, &'static str); 1] {
    [("Authorization", "Bearer edgekv-dev-token")]
}

fn admin() -> [(&'static str, &'static str); 1] {
    [("Authorization", "Bearer edgekv-dev-admin-token")]
}

fn create_namespace(addr: &str) -> String {
    let reply = http(addr, "POST", NS_PATH, &api(), br#"{"title":"members"}"#);
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    reply.json()["result"]["id"].as_str().expect("an id").to_owned()
}

fn get(addr: &str, ns: &str, key: &str) -> Option<Vec<u8>> {
    let reply = http(addr, "GET", &format!("{NS_PATH}/{ns}/values/{key}"), &api(), b"");
    (reply.status == 200).then_some(reply.body)
}

fn put(addr: &str, ns: &str, key: &str, value: &[u8]) {
    let reply = http(addr, "PUT", &format!("{NS_PATH}/{ns}/values/{key}"), &api(), value);
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
}

/// What this region's admin API lists as members.
fn members(addr: &str) -> Vec<String> {
    let reply = http(addr, "GET", "/admin/peers", &admin(), b"");
    assert_eq!(reply.status, 200);
    let peers = reply.json()["peers"].as_array().cloned().unwrap_or_default();
    peers
        .iter()
        .filter(|p| p["member"] == true)
        .filter_map(|p| p["region"].as_str().map(str::to_owned))
        .collect()
}

/// Two nodes given only a DNS name for their peers (`localhost:PORT`, resolved by the system
/// resolver) find each other, add each other and replicate.
#[test]
fn nodes_find_each_other_through_dns_and_replicate() {
    let grpc = [free_port(), free_port()];
    let start = |region: &str, own: u16, other: u16| {
        let listen = format!("127.0.0.1:{own}");
        let dns = format!("localhost:{other}");
        let args = [
            "node",
            "--region",
            region,
            "--listen",
            "127.0.0.1:0",
            "--grpc-listen",
            &listen,
            "--peer-dns",
            &dns,
            "--peer-dns-interval",
            "200ms",
            "--delay",
            "0s",
            "--anti-entropy-interval",
            "500ms",
            "--in-memory",
        ];
        Edgekv::must_start(&args, &[])
    };
    let wnam = start("wnam", grpc[0], grpc[1]);
    let enam = start("enam", grpc[1], grpc[0]);
    let (w, e) = (wnam.region("wnam").addr.clone(), enam.region("enam").addr.clone());
    wait_until(Duration::from_secs(15), "each to discover the other", || {
        members(&w) == ["enam"] && members(&e) == ["wnam"]
    });
    let ns = create_namespace(&w);
    wait_until(Duration::from_secs(15), "the namespace to reach enam", || {
        http(&e, "GET", &format!("{NS_PATH}/{ns}"), &api(), b"").status == 200
    });
    put(&w, &ns, "k", b"found by name");
    wait_until(Duration::from_secs(15), "the key to reach enam", || {
        get(&e, &ns, "k").as_deref() == Some(b"found by name")
    });
}

/// A node started next to a running cluster joins it with `edgekv chaos join`: it fills up by
/// anti-entropy and its writes replicate. `edgekv chaos leave` drains it and takes it out:
/// the others list it as removed and no longer take its writes.
#[test]
fn a_region_joins_and_leaves_a_running_cluster_with_edgekv_chaos() {
    let common = ["--delay", "0s", "--anti-entropy-interval", "500ms", "--in-memory"];
    let mut args = vec!["cluster", "--regions", "wnam,enam", "--port", "0"];
    args.extend(common);
    let cluster = Edgekv::must_start(&args, &[]);
    let (w, e) = (cluster.region("wnam"), cluster.region("enam"));
    let ns = create_namespace(&w.addr);
    put(&w.addr, &ns, "before", b"there first");

    let peers = format!("wnam={},enam={}", w.grpc, e.grpc);
    let mut args = vec!["node", "--region", "apac", "--listen", "127.0.0.1:0", "--peer", &peers];
    args.extend(common);
    let node = Edgekv::must_start(&args, &[]);
    let apac = node.region("apac");
    let regions =
        format!("wnam=http://{},enam=http://{},apac=http://{}", w.addr, e.addr, apac.addr);
    let chaos = |action: &[&str]| {
        let mut args = vec!["chaos", "--region", &regions];
        args.extend(action);
        let (status, stdout, stderr) = must_run_out(&args, &[]);
        assert!(status.success(), "edgekv {args:?}: {stderr}");
        stdout
    };

    let joined = chaos(&["join", "apac", &apac.grpc]);
    assert!(joined.contains("wnam: apac joined"), "{joined}");
    assert!(joined.contains("enam: apac joined"), "{joined}");
    wait_until(Duration::from_secs(20), "apac to bootstrap", || {
        get(&apac.addr, &ns, "before").as_deref() == Some(b"there first")
    });
    put(&apac.addr, &ns, "from-apac", b"hello");
    wait_until(Duration::from_secs(10), "apac's write to reach wnam", || {
        get(&w.addr, &ns, "from-apac").is_some()
    });
    let listed = chaos(&["members"]);
    assert!(listed.contains("wnam: apac (backlog"), "{listed}");

    let left = chaos(&["leave", "apac", "--timeout", "10s"]);
    assert!(left.contains("apac: drained"), "{left}");
    assert!(left.contains("wnam: removed apac") && left.contains("enam: removed apac"), "{left}");
    assert!(members(&w.addr) == ["enam"] && members(&apac.addr).is_empty());
    put(&apac.addr, &ns, "after", b"alone");
    put(&e.addr, &ns, "marker", b"m");
    wait_until(Duration::from_secs(10), "enam's marker to reach wnam", || {
        get(&w.addr, &ns, "marker").is_some()
    });
    assert_eq!(get(&w.addr, &ns, "after"), None, "a removed region's write arrived");
    let again = must_run_out(&["chaos", "--region", &regions, "leave", "apac"], &[]);
    assert!(again.0.success(), "leaving twice is harmless: {}", again.2);
    assert!(again.1.contains("was not a member"), "{}", again.1);
}

/// Bad membership requests get a clear error with the right status and change nothing.
#[test]
fn bad_membership_requests_are_refused_and_change_nothing() {
    let node = Edgekv::must_start(&["node", "--region", "wnam", "--listen", "127.0.0.1:0"], &[]);
    let addr = node.region("wnam").addr.clone();
    let call = |method: &str, path: &str, body: &[u8]| {
        let reply = http(&addr, method, path, &admin(), body);
        let error = reply.json()["error"].as_str().unwrap_or_default().to_owned();
        (reply.status, error)
    };
    let url = br#"{"url":"http://127.0.0.1:9"}"#;
    let cases: [(&str, &str, &[u8], u16, &str); 8] = [
        ("PUT", "/admin/peers/Not-A-Region", url, 400, "invalid region name"),
        ("PUT", "/admin/peers/wnam", url, 400, "this region"),
        ("PUT", "/admin/peers/enam", br#"{"url":"127.0.0.1:9"}"#, 400, "invalid peer URL"),
        ("PUT", "/admin/peers/enam", br#"{"url":"http://a b"}"#, 400, "invalid peer URL"),
        ("PUT", "/admin/peers/enam", br#"{"url":"http://h:1","x":1}"#, 400, "nothing else"),
        ("PUT", "/admin/peers/enam", b"not json", 400, "expected a JSON body"),
        ("DELETE", "/admin/peers/enam", b"", 404, "not a member"),
        ("POST", "/admin/drain?timeout=1y", b"", 400, "timeout=DURATION"),
    ];
    for (method, path, body, status, needle) in cases {
        let (got, error) = call(method, path, body);
        assert_eq!(got, status, "{method} {path}: {error}");
        assert!(error.contains(needle), "{method} {path}: {error}");
    }
    assert!(members(&addr).is_empty(), "a refused change was applied");
    let denied = http(&addr, "PUT", "/admin/peers/enam", &api(), url);
    assert_eq!(denied.status, 403, "the API token is not an admin token");
    assert!(members(&addr).is_empty());
}
