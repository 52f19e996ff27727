//! The `edgekv` binary as users run it: configuration layering, token rules, the cluster table,
//! and graceful shutdown.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use edgekv_tests::{free_port, http, must_run, read_response, wait_until, write_head, Edgekv};

const TOKEN: &str = "blackbox-token";

fn auth() -> [(&'static str, &'static str); 1] {
    [("Authorization", "Bearer blackbox-token")]
}

fn namespaces_path() -> &'static str {
    "/client/v4/accounts/acct/storage/kv/namespaces"
}

/// Creates a namespace and returns its id.
fn must_create_namespace(addr: &str, title: &str) -> String {
    let body = format!(r#"{{"title":"{title}"}}"#);
    let reply = http(addr, "POST", namespaces_path(), &auth(), body.as_bytes());
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    reply.json()["result"]["id"].as_str().expect("an id").to_owned()
}

/// Off loopback, the API token, the cluster secret and the admin token must all be configured:
/// the documented development defaults would let anyone in.
#[test]
fn a_node_off_loopback_refuses_to_start_without_each_secret() {
    let args = ["node", "--region", "wnam", "--listen", "0.0.0.0:0"];
    let (status, stderr) = must_run(&args, &[]);
    assert!(!status.success());
    assert!(stderr.contains("EDGEKV_API_TOKEN"), "{stderr}");
    let (status, stderr) = must_run(&args, &[("EDGEKV_API_TOKEN", "t")]);
    assert!(!status.success());
    assert!(stderr.contains("EDGEKV_CLUSTER_SECRET"), "{stderr}");
    let (status, stderr) =
        must_run(&args, &[("EDGEKV_API_TOKEN", "t"), ("EDGEKV_CLUSTER_SECRET", "s")]);
    assert!(!status.success());
    assert!(stderr.contains("EDGEKV_ADMIN_TOKEN"), "{stderr}");
}

#[test]
fn a_node_on_loopback_without_a_token_accepts_only_the_dev_token() {
    let node = Edgekv::must_start(&["node", "--region", "wnam", "--listen", "127.0.0.1:0"], &[]);
    let addr = &node.region("wnam").addr;
    let ok =
        http(addr, "GET", namespaces_path(), &[("Authorization", "Bearer edgekv-dev-token")], b"");
    assert_eq!(ok.status, 200);
    let wrong = http(addr, "GET", namespaces_path(), &auth(), b"");
    assert_eq!((wrong.status, wrong.json()["errors"][0]["code"].as_u64()), (403, Some(10000)));
}

#[test]
fn flags_override_environment_which_overrides_the_config_file() {
    let dir = std::env::temp_dir().join(format!("edgekv-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("edgekv.toml");
    std::fs::write(
        &file,
        "region = \"fromfile\"\nlisten = \"127.0.0.1:0\"\napi_tokens = [\"filetoken\"]\n",
    )
    .unwrap();
    let config = file.to_str().unwrap();

    let region_of = |args: &[&str], env: &[(&str, &str)]| -> (String, u16) {
        let node = Edgekv::must_start(args, env);
        let row = &node.regions[0];
        let reply = http(
            &row.addr,
            "GET",
            namespaces_path(),
            &[("Authorization", "Bearer filetoken")],
            b"",
        );
        (row.region.clone(), reply.status)
    };
    assert_eq!(region_of(&["node", "--config", config], &[]), ("fromfile".into(), 200));
    assert_eq!(
        region_of(&["node", "--config", config], &[("EDGEKV_REGION", "fromenv")]),
        ("fromenv".into(), 200)
    );
    assert_eq!(
        region_of(
            &["node", "--config", config, "--region", "fromflag"],
            &[("EDGEKV_REGION", "fromenv")]
        ),
        ("fromflag".into(), 200)
    );
    // The environment's tokens replace the file's.
    assert_eq!(region_of(&["node", "--config", config], &[("EDGEKV_API_TOKEN", "a,b")]).1, 403);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("edgekv-badconfig-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.toml");
    std::fs::write(&file, "region = [not toml\n").unwrap();
    let (status, stderr) = must_run(&["node", "--config", file.to_str().unwrap()], &[]);
    assert!(!status.success());
    assert!(stderr.contains("broken.toml"), "the error names the file: {stderr}");

    let (status, stderr) = must_run(&["node", "--region", "Not-A-Region"], &[]);
    assert!(!status.success());
    assert!(stderr.contains("invalid region name"), "{stderr}");
    let (status, stderr) = must_run(&["node"], &[]);
    assert!(!status.success());
    assert!(stderr.contains("--region"), "{stderr}");
    let (status, stderr) = must_run(&["cluster", "--regions", "a,a", "--port", "0"], &[]);
    assert!(!status.success());
    assert!(stderr.contains("twice"), "{stderr}");
    let (status, stderr) = must_run(&["node", "--region", "r", "--tombstone-grace", "soon"], &[]);
    assert!(!status.success());
    assert!(stderr.contains("duration"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `edgekv cluster` runs one node per region, each serving as itself and replicating to the
/// others.
#[test]
fn a_cluster_prints_its_regions_and_each_serves_as_itself() {
    let cluster = Edgekv::must_start(
        &["cluster", "--regions", "wnam,enam,weur", "--port", "0"],
        &[("EDGEKV_API_TOKEN", TOKEN)],
    );
    let names: Vec<&str> = cluster.regions.iter().map(|r| r.region.as_str()).collect();
    assert_eq!(names, ["wnam", "enam", "weur"]);
    for row in &cluster.regions {
        assert!(row.url.ends_with("/client/v4"), "{}", row.url);
        let reply = http(&row.addr, "GET", namespaces_path(), &auth(), b"");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.headers.get("edgekv-region"), Some(&row.region));
    }
    let wnam = &cluster.region("wnam").addr;
    let id = must_create_namespace(wnam, "replicated");
    // With the default delay of 0 the namespace reaches the other regions within moments.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let enam = http(&cluster.region("enam").addr, "GET", namespaces_path(), &auth(), b"");
        if enam.json()["result"][0]["id"] == serde_json::json!(id) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the namespace never reached enam");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM stops accepting, lets the request in flight finish, and exits 0.
#[test]
fn sigterm_finishes_the_request_in_flight_and_exits_zero() {
    let data = tempfile::tempdir().expect("a data directory");
    let dir = data.path().display().to_string();
    let args = ["node", "--region", "wnam", "--listen", "127.0.0.1:0", "--data-dir", &dir];
    let node = Edgekv::must_start(
        &args,
        &[("EDGEKV_API_TOKEN", TOKEN), ("EDGEKV_LOG", "info,edgekv_api=debug")],
    );
    let addr = node.region("wnam").addr.clone();
    let ns = must_create_namespace(&addr, "t");
    let path = format!("{}/{ns}/values/inflight", namespaces_path());

    // Start a PUT and send half of its body.
    let mut stream = TcpStream::connect(&addr).unwrap();
    write_head(&mut stream, "PUT", &path, &auth(), 10);
    stream.write_all(b"hello").unwrap();
    stream.flush().unwrap();
    // The request is in flight once the API has logged it.
    node.wait_for_log("values/inflight", Duration::from_secs(10));

    node.signal("TERM");
    node.wait_for_log("shutting down", Duration::from_secs(10));
    stream.write_all(b"world").unwrap();
    let reply = read_response(stream);
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));

    let status = node.wait_for_exit(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
    assert!(TcpStream::connect(&addr).is_err(), "the listener is closed");

    // The write finished during shutdown is on disk: the next start has it.
    let node = Edgekv::must_start(&args, &[("EDGEKV_API_TOKEN", TOKEN)]);
    let reply = http(&node.region("wnam").addr, "GET", &path, &auth(), b"");
    assert_eq!((reply.status, reply.body.as_slice()), (200, &b"helloworld"[..]));
}

/// The durability mode is logged at startup and exported in /metrics; a bad one is refused.
#[test]
fn the_durability_mode_shows_at_startup_and_in_metrics() {
    let node = Edgekv::must_start(
        &["node", "--region", "wnam", "--listen", "127.0.0.1:0", "--durability", "periodic(50)"],
        &[("EDGEKV_API_TOKEN", TOKEN)],
    );
    node.wait_for_log("durability=periodic(50ms)", Duration::from_secs(10));
    let metrics = http(&node.region("wnam").addr, "GET", "/metrics", &[], b"");
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    assert!(text.contains("edgekv_store_durability{mode=\"periodic(50ms)\"} 1"), "{text}");

    let memory = Edgekv::must_start(
        &["node", "--region", "wnam", "--listen", "127.0.0.1:0", "--in-memory"],
        &[("EDGEKV_API_TOKEN", TOKEN)],
    );
    let metrics = http(&memory.region("wnam").addr, "GET", "/metrics", &[], b"");
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    assert!(text.contains("edgekv_store_durability{mode=\"in-memory\"} 1"), "{text}");

    let (status, stderr) = must_run(&["node", "--region", "r", "--durability", "sometimes"], &[]);
    assert!(!status.success());
    assert!(stderr.contains("expected fsync, periodic(MS) or none"), "{stderr}");
}

/// Two regions as two processes (`edgekv node --peer ...`), as in a multi-host deployment:
/// a write in one reaches the other after the configured delay, with its origin's version.
#[test]
fn two_node_processes_replicate_to_each_other() {
    let grpc = [free_port(), free_port()];
    let start = |region: &str, grpc_port: u16, peer: &str, peer_port: u16| {
        let grpc_listen = format!("127.0.0.1:{grpc_port}");
        let peer = format!("{peer}=http://127.0.0.1:{peer_port}");
        let args = [
            "node",
            "--region",
            region,
            "--listen",
            "127.0.0.1:0",
            "--grpc-listen",
            &grpc_listen,
            "--peer",
            &peer,
            "--delay",
            "200ms",
            // The key is rewritten every 50 ms until it shows up in the peer.
            "--write-rate-limit",
            "off",
        ];
        Edgekv::must_start(&args, &[("EDGEKV_API_TOKEN", TOKEN)])
    };
    let wnam = start("wnam", grpc[0], "enam", grpc[1]);
    let enam = start("enam", grpc[1], "wnam", grpc[0]);
    let (w, e) = (wnam.region("wnam").addr.clone(), enam.region("enam").addr.clone());
    let ns = must_create_namespace(&w, "shared");
    let path = format!("{}/{ns}/values/k", namespaces_path());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    // The namespace and then the key reach enam.
    loop {
        let put = http(&w, "PUT", &path, &auth(), b"from wnam");
        assert_eq!(put.status, 200);
        let got = http(&e, "GET", &path, &auth(), b"");
        if got.status == 200 {
            assert_eq!(got.body, b"from wnam");
            assert!(got.headers["edgekv-version"].ends_with("-wnam"), "{:?}", got.headers);
            assert_eq!(got.headers["edgekv-region"], "enam");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the write never reached enam");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// With `--admin-listen` the admin API moves to a listener of its own (what a NetworkPolicy
/// can keep private) and is gone from the KV API's port, where `/metrics` stays.
#[test]
fn the_admin_api_can_listen_on_its_own_port() {
    let admin_port = free_port();
    let admin_listen = format!("127.0.0.1:{admin_port}");
    let args =
        ["node", "--region", "wnam", "--listen", "127.0.0.1:0", "--admin-listen", &admin_listen];
    let node = Edgekv::must_start(&args, &[]);
    let api = node.region("wnam").addr.clone();
    let token = [("Authorization", "Bearer edgekv-dev-admin-token")];
    assert_eq!(http(&admin_listen, "GET", "/admin/status", &token, b"").status, 200);
    assert_eq!(http(&admin_listen, "GET", "/admin/peers", &token, b"").status, 200);
    assert_eq!(http(&api, "GET", "/admin/status", &token, b"").status, 404);
    assert_eq!(http(&api, "GET", "/metrics", &[], b"").status, 200);
    assert_eq!(http(&admin_listen, "GET", "/admin/status", &[], b"").status, 403);
}

/// `edgekv probe`, the image's healthcheck: 0 for a 2xx, 1 for anything else or no answer.
#[test]
fn probe_succeeds_on_a_healthy_node_and_fails_on_a_closed_port() {
    let node = Edgekv::must_start(&["cluster", "--regions", "wnam", "--port", "0"], &[]);
    let addr = node.region("wnam").addr.clone();
    let (status, stderr) = must_run(&["probe", &format!("http://{addr}/healthz")], &[]);
    assert!(status.success(), "{stderr}");
    let (status, stderr) = must_run(&["probe", &format!("http://{addr}/no-such-page")], &[]);
    assert_eq!(status.code(), Some(1), "a 404 is unhealthy: {stderr}");
    drop(node);
    let (status, stderr) = must_run(&["probe", &format!("http://{addr}/healthz")], &[]);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("unhealthy"), "{stderr}");
}

/// The admin API of `edgekv cluster`: its own token, faults added through one region apply to
/// the cluster, they show in /metrics, and removing them heals the link.
#[test]
fn faults_through_the_admin_api_cut_and_heal_replication() {
    let cluster = Edgekv::must_start(
        &["cluster", "--regions", "wnam,enam", "--port", "0"],
        &[("EDGEKV_API_TOKEN", TOKEN), ("EDGEKV_ADMIN_TOKEN", "admin-secret")],
    );
    let (w, e) = (cluster.region("wnam").addr.clone(), cluster.region("enam").addr.clone());
    let admin = [("Authorization", "Bearer admin-secret")];
    let partition = br#"{"kind":"partition","a":["wnam"],"b":["enam"]}"#;

    // The API token is not an admin token.
    assert_eq!(http(&w, "POST", "/admin/faults", &auth(), partition).status, 403);
    let bad = http(
        &w,
        "POST",
        "/admin/faults",
        &admin,
        br#"{"kind":"loss","from":"*","to":"*","rate":2}"#,
    );
    assert_eq!(bad.status, 400);
    assert!(
        String::from_utf8_lossy(&bad.body).contains("rate"),
        "{}",
        String::from_utf8_lossy(&bad.body)
    );

    let ns = must_create_namespace(&w, "t");
    let path = format!("{}/{ns}/values/k", namespaces_path());
    wait_until(Duration::from_secs(10), "the namespace in enam", || {
        http(&e, "GET", &format!("{}/{ns}", namespaces_path()), &auth(), b"").status == 200
    });
    let added = http(&w, "POST", "/admin/faults", &admin, partition);
    assert_eq!(added.status, 200);
    let id = added.json()["id"].as_u64().expect("an id");
    let listed = http(&e, "GET", "/admin/faults", &admin, b"");
    assert_eq!(
        listed.json()["faults"][0]["kind"],
        "partition",
        "one fault set for the whole cluster"
    );
    wait_until(Duration::from_secs(10), "the fault gauge", || {
        let metrics = http(&w, "GET", "/metrics", &[], b"");
        String::from_utf8_lossy(&metrics.body)
            .contains("edgekv_faults_active{kind=\"partition\"} 1")
    });

    assert_eq!(http(&w, "PUT", &path, &auth(), b"across").status, 200);
    // wnam's sender keeps failing against the partition and says so in its metrics.
    wait_until(Duration::from_secs(10), "blocked deliveries", || {
        let metrics =
            String::from_utf8_lossy(&http(&w, "GET", "/metrics", &[], b"").body).into_owned();
        metrics.contains("edgekv_fault_effects_total{peer=\"enam\",effect=\"blocked\"}")
    });
    assert_eq!(http(&e, "GET", &path, &auth(), b"").status, 404, "the write crossed the partition");

    let removed = http(&w, "DELETE", &format!("/admin/faults/{id}"), &admin, b"");
    assert_eq!(removed.status, 200);
    assert_eq!(http(&w, "DELETE", &format!("/admin/faults/{id}"), &admin, b"").status, 404);
    wait_until(Duration::from_secs(15), "the write to reach enam after the heal", || {
        http(&e, "GET", &path, &auth(), b"").status == 200
    });
    let status = http(&w, "GET", "/admin/status", &admin, b"").json();
    assert_eq!(status["region"], "wnam");
    assert_eq!(status["peers"], serde_json::json!(["enam"]));
}

/// With `--apply-log`, each region reports when it applied which version of which key: the
/// lab's view of visibility from the servers' side.
#[test]
fn regions_report_their_apply_events_to_the_admin_api() {
    let cluster = Edgekv::must_start(
        &["cluster", "--regions", "wnam,enam", "--port", "0", "--apply-log", "1000"],
        &[("EDGEKV_API_TOKEN", TOKEN), ("EDGEKV_ADMIN_TOKEN", "admin-secret")],
    );
    let (w, e) = (cluster.region("wnam").addr.clone(), cluster.region("enam").addr.clone());
    let admin = [("Authorization", "Bearer admin-secret")];
    let ns = must_create_namespace(&w, "applies");
    let put = http(&w, "PUT", &format!("{}/{ns}/values/k", namespaces_path()), &auth(), b"v");
    let version = put.headers.get("edgekv-version").cloned().expect("a version");

    let has_k = |addr: &str| {
        let page = http(addr, "GET", "/admin/applies?after=0", &admin, b"").json();
        page["events"].as_array().expect("events").iter().any(|event| {
            event["key"] == "k"
                && event["namespace"] == ns.as_str()
                && event["version"] == version.as_str()
        })
    };
    assert!(has_k(&w), "the origin logs its own write");
    wait_until(Duration::from_secs(10), "enam's apply of the write", || has_k(&e));
    let page = http(&e, "GET", "/admin/applies?after=0&limit=1", &admin, b"").json();
    assert_eq!(page["events"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["next"], page["events"][0]["seq"]);
    assert_eq!(http(&e, "GET", "/admin/applies?after=x", &admin, b"").status, 400);
    assert_eq!(http(&e, "GET", "/admin/applies", &auth(), b"").status, 403);

    let plain = Edgekv::must_start(
        &["node", "--region", "wnam", "--listen", "127.0.0.1:0"],
        &[("EDGEKV_API_TOKEN", TOKEN), ("EDGEKV_ADMIN_TOKEN", "admin-secret")],
    );
    let off = http(&plain.region("wnam").addr, "GET", "/admin/applies", &admin, b"");
    assert_eq!(off.status, 409, "the log is off by default");
}

/// One request over HTTP/2 with prior knowledge (h2c), as `curl --http2-prior-knowledge` sends
/// it: the status, and the grpc-status if the answer has one.
fn h2c(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Option<String>) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .expect("an HTTP/2 handshake with prior knowledge");
        tokio::spawn(connection);
        let mut request =
            hyper::Request::builder().method(method).uri(format!("http://{addr}{path}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request =
            request.body(http_body_util::Full::new(bytes::Bytes::copy_from_slice(body))).unwrap();
        let response = sender.send_request(request).await.expect("an HTTP/2 response");
        let grpc = response.headers().get("grpc-status").map(|v| v.to_str().unwrap().to_owned());
        (response.status().as_u16(), grpc)
    })
}

/// A blank entry in a token list or secret is never a credential: not over HTTP/1.1, and not
/// over HTTP/2, which keeps the trailing space of `Authorization: Bearer ` that HTTP/1.1
/// parsers strip. `'realsecret,'` is a typo for one token, and `' , '` for none.
#[test]
fn blank_tokens_and_secrets_are_never_credentials_over_http1_or_http2() {
    let env = [
        ("EDGEKV_API_TOKEN", "apitoken, ,"),
        ("EDGEKV_ADMIN_TOKEN", "realsecret,"),
        ("EDGEKV_CLUSTER_SECRET", " "),
    ];
    let node = Edgekv::must_start(&["node", "--region", "wnam", "--listen", "127.0.0.1:0"], &env);
    let row = node.region("wnam");
    let addr = row.addr.as_str();
    let empty = [("Authorization", "Bearer ")];
    for (path, good) in [(namespaces_path(), "apitoken"), ("/admin/status", "realsecret")] {
        let bearer = format!("Bearer {good}");
        let ok = [("Authorization", bearer.as_str())];
        assert_eq!(http(addr, "GET", path, &ok, b"").status, 200, "{path} over HTTP/1.1");
        assert_eq!(h2c(addr, "GET", path, &ok, b"").0, 200, "{path} over HTTP/2");
        assert_eq!(http(addr, "GET", path, &empty, b"").status, 403, "{path} over HTTP/1.1");
        assert_eq!(h2c(addr, "GET", path, &empty, b"").0, 403, "{path} over HTTP/2");
        assert_eq!(h2c(addr, "GET", path, &[("Authorization", "Bearer")], b"").0, 403);
    }
    assert_eq!(
        h2c(addr, "POST", "/admin/faults", &empty, br#"{"kind":"pause","from":"*","to":"*"}"#).0,
        403
    );
    // The blank cluster secret left the development default in force on loopback, and an
    // empty secret is refused by the gRPC service.
    let grpc = row.grpc.trim_start_matches("http://");
    let frame = [0u8, 0, 0, 0, 0]; // an empty DigestRequest
    let call = |secret: &str| {
        let header = format!("Bearer {secret}");
        let headers = [
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("authorization", header.as_str()),
        ];
        h2c(grpc, "POST", "/edgekv.replication.v1.Replication/Digest", &headers, &frame).1
    };
    assert_eq!(call("").as_deref(), Some("16"), "UNAUTHENTICATED");
    assert_eq!(call(" ").as_deref(), Some("16"));
    assert_ne!(call(edgekv_dev_cluster_secret()).as_deref(), Some("16"));
}

/// The development cluster secret (the node crate's `DEV_CLUSTER_SECRET`).
fn edgekv_dev_cluster_secret() -> &'static str {
    "edgekv-dev-cluster-secret"
}

#[test]
fn a_node_off_loopback_with_only_blank_tokens_refuses_to_start() {
    let args = ["node", "--region", "wnam", "--listen", "0.0.0.0:0"];
    let env =
        [("EDGEKV_API_TOKEN", "t"), ("EDGEKV_CLUSTER_SECRET", "s"), ("EDGEKV_ADMIN_TOKEN", " , ")];
    let (status, stderr) = must_run(&args, &env);
    assert!(!status.success());
    assert!(stderr.contains("EDGEKV_ADMIN_TOKEN"), "{stderr}");
    let env =
        [("EDGEKV_API_TOKEN", ","), ("EDGEKV_CLUSTER_SECRET", "s"), ("EDGEKV_ADMIN_TOKEN", "a")];
    let (status, stderr) = must_run(&args, &env);
    assert!(!status.success());
    assert!(stderr.contains("EDGEKV_API_TOKEN"), "{stderr}");
}
