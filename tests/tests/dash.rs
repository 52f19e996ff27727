//! The dashboard of `edgekv cluster`, through its HTTP API and event stream as the page uses
//! them: the stream outlives a region going down and coming back, controls need the admin
//! token and show on the links they cut, a probe reaches every region, the page is served from
//! the binary, and `edgekv dash` lists a directory of lab runs.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use edgekv_tests::{http, write_head, Edgekv};
use serde_json::{json, Value};

const ADMIN: (&str, &str) = ("Authorization", "Bearer edgekv-dev-admin-token");
const JSON: (&str, &str) = ("Content-Type", "application/json");
const WAIT: Duration = Duration::from_secs(20);

/// A three-region cluster (in memory, short delays) and its dashboard's address.
fn cluster() -> (Edgekv, String) {
    let cluster = Edgekv::must_start(
        &["cluster", "--port", "0", "--in-memory", "--delay", "uniform(100ms,300ms)"],
        &[],
    );
    let line = cluster.wait_for_stdout("dashboard ", WAIT);
    let addr = line.trim_start_matches("dashboard http://").trim_end_matches('/').to_owned();
    (cluster, addr)
}

/// The dashboard's event stream, one parsed event per message.
fn events(addr: &str) -> mpsc::Receiver<Value> {
    let mut stream = TcpStream::connect(addr).expect("connect to the dashboard");
    write_head(&mut stream, "GET", "/events", &[], 0);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        // The head, up to its blank line.
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
        }
        // Chunked: a hex size line, that many bytes, CRLF.
        let mut text = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let Ok(size) = usize::from_str_radix(line.trim(), 16) else { return };
            if size == 0 {
                return;
            }
            let mut chunk = vec![0; size + 2];
            if reader.read_exact(&mut chunk).is_err() {
                return;
            }
            text.push_str(&String::from_utf8_lossy(&chunk[..size]));
            while let Some(end) = text.find("\n\n") {
                let message: String = text.drain(..end + 2).collect();
                for data in message.lines().filter_map(|l| l.strip_prefix("data: ")) {
                    if let Ok(event) = serde_json::from_str(data) {
                        if tx.send(event).is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    rx
}

/// The first event within [`WAIT`] that `check` accepts.
fn next_where(rx: &mpsc::Receiver<Value>, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(event) if check(&event) => return event,
            Ok(_) => {}
            Err(_) => panic!("no event within {WAIT:?} where {what}"),
        }
    }
}

fn region<'a>(snapshot: &'a Value, name: &str) -> &'a Value {
    let regions = snapshot["regions"].as_array().expect("regions");
    regions.iter().find(|r| r["name"] == name).expect("the region")
}

fn is_snapshot(event: &Value) -> bool {
    event["t_ms"].is_u64() && event["type"].is_null()
}

fn post(addr: &str, path: &str, headers: &[(&str, &str)], body: Value) -> (u16, Value) {
    let reply = http(addr, "POST", path, headers, body.to_string().as_bytes());
    (reply.status, serde_json::from_slice(&reply.body).unwrap_or(Value::Null))
}

#[test]
fn the_stream_survives_a_region_going_down_and_coming_back() {
    let (_cluster, dash) = cluster();
    let rx = events(&dash);
    let hello = next_where(&rx, "a hello", |e| e["type"] == "hello");
    assert_eq!(hello["regions"], json!(["wnam", "enam", "weur"]));
    assert_eq!(hello["can_stop_regions"], true);
    next_where(&rx, "every region is up", |e| {
        is_snapshot(e) && e["regions"].as_array().is_some_and(|r| r.iter().all(|r| r["up"] == true))
    });

    let (status, answer) = post(&dash, "/api/regions/enam/stop", &[ADMIN], json!({}));
    assert_eq!(status, 200, "{answer}");
    let down =
        next_where(&rx, "enam is down", |e| is_snapshot(e) && region(e, "enam")["up"] == false);
    assert!(region(&down, "enam")["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(region(&down, "wnam")["up"], true, "the other regions stay up");

    let (status, answer) = post(&dash, "/api/regions/enam/start", &[ADMIN], json!({}));
    assert_eq!(status, 200, "{answer}");
    next_where(&rx, "enam is up again", |e| is_snapshot(e) && region(e, "enam")["up"] == true);
    let (status, _) = post(&dash, "/api/regions/enam/start", &[ADMIN], json!({}));
    assert_eq!(status, 409, "a running region cannot be started twice");
}

#[test]
fn controls_need_the_admin_token_and_faults_show_on_the_links_they_cut() {
    let (_cluster, dash) = cluster();
    let rx = events(&dash);
    let cut = json!({ "fault": { "kind": "one_way", "from": "wnam", "to": "enam" } });
    let (status, answer) = post(&dash, "/api/faults", &[JSON], cut.clone());
    assert_eq!((status, answer["ok"].clone()), (401, json!(false)), "{answer}");
    let (status, answer) = post(&dash, "/api/regions/enam/stop", &[], json!({}));
    assert_eq!(status, 401, "{answer}");

    let (status, answer) = post(&dash, "/api/faults", &[JSON, ADMIN], cut);
    assert_eq!(status, 200, "{answer}");
    // One copy per region, installed one region after another.
    let installed = answer["ids"].as_array().cloned().unwrap_or_default();
    assert!(!installed.is_empty(), "{answer}");
    let link = |e: &Value, from: &str, to: &str| -> Value {
        let links = e["links"].as_array().cloned().unwrap_or_default();
        links.into_iter().find(|l| l["from"] == from && l["to"] == to).unwrap_or(Value::Null)
    };
    // A snapshot collected while the copies were still going in lists only some of them, and
    // removing those would leave the rest in force: wait for one that has them all.
    let faulted = next_where(&rx, "the cut shows on wnam -> enam with every copy", |e| {
        let listed = e["faults"][0]["ids"].as_array().cloned().unwrap_or_default();
        is_snapshot(e)
            && link(e, "wnam", "enam")["faults"].as_array().is_some_and(|f| !f.is_empty())
            && installed.iter().all(|id| listed.contains(id))
    });
    assert_eq!(link(&faulted, "enam", "wnam")["faults"], json!([]), "one way only");
    assert_eq!(link(&faulted, "wnam", "enam")["model"], "uniform(100ms,300ms)");
    let ids = faulted["faults"][0]["ids"].clone();

    let bad = json!({ "fault": { "kind": "loss", "from": "wnam", "to": "enam", "rate": 7 } });
    let (status, answer) = post(&dash, "/api/faults", &[JSON, ADMIN], bad);
    assert_eq!((status, answer["ok"].clone()), (400, json!(false)), "{answer}");

    let (status, answer) = post(&dash, "/api/faults/remove", &[JSON, ADMIN], json!({ "ids": ids }));
    assert_eq!(status, 200, "{answer}");
    next_where(&rx, "the cut is undone", |e| {
        is_snapshot(e) && e["faults"] == json!([]) && link(e, "wnam", "enam")["faults"] == json!([])
    });
}

#[test]
fn a_probe_is_seen_in_every_region() {
    let (_cluster, dash) = cluster();
    let rx = events(&dash);
    // Once the dashboard has read the regions' configured delays.
    next_where(&rx, "a snapshot with links", |e| {
        is_snapshot(e) && e["links"][0]["model"].is_string()
    });
    let probe = json!({ "region": "weur", "key": "probe-key", "value": "hello" });
    let (status, answer) = post(&dash, "/api/probe", &[JSON], probe);
    assert_eq!(status, 200, "{answer}");
    let written = next_where(&rx, "the probe is written", |e| e["stage"] == "written");
    let predicted = written["predicted"].as_array().expect("predictions");
    assert_eq!(predicted.len(), 2);
    for p in predicted {
        let p50 = p["p50_ms"].as_f64().expect("a predicted median");
        assert!((100.0..=300.0).contains(&p50), "{p}");
    }
    let mut arrived = Vec::new();
    for _ in 0..2 {
        let a = next_where(&rx, "the probe arrives", |e| e["stage"] == "arrived");
        assert!(a["after_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{a}");
        arrived.push(a["region"].as_str().unwrap_or("").to_owned());
    }
    arrived.sort();
    assert_eq!(arrived, ["enam", "wnam"]);
    let (status, answer) =
        post(&dash, "/api/probe", &[JSON], json!({"region": "weur", "key": "", "value": "x"}));
    assert_eq!(status, 400, "{answer}");
}

#[test]
fn the_page_is_served_from_the_binary() {
    let (_cluster, dash) = cluster();
    let page = http(&dash, "GET", "/", &[], b"");
    assert_eq!(page.status, 200);
    let html = String::from_utf8_lossy(&page.body);
    assert!(html.contains("<table id=\"matrix\">") && html.contains("/app.js"));
    assert!(!html.contains("https://"), "nothing is loaded from the network");
    let script = http(&dash, "GET", "/app.js", &[], b"");
    assert_eq!(script.status, 200);
    assert!(script.headers["content-type"].starts_with("text/javascript"));
    assert!(String::from_utf8_lossy(&script.body).contains("new EventSource(\"/events\")"));
}

#[test]
fn edgekv_dash_lists_lab_runs_and_serves_their_reports() {
    let runs = tempfile::tempdir().expect("a runs directory");
    let run = runs.path().join("heal-1");
    std::fs::create_dir(&run).unwrap();
    std::fs::write(run.join("report.html"), "<html>the report</html>").unwrap();
    let summary = json!({"run": {"scenario": "partition-heal"}, "check": {"validity": "valid"}});
    std::fs::write(run.join("summary.json"), summary.to_string()).unwrap();
    std::fs::create_dir(runs.path().join("no-report")).unwrap();

    let mut dash = Command::new(edgekv_tests::edgekv_bin())
        .args(["dash", "--listen", "127.0.0.1:0", "--region", "wnam=http://127.0.0.1:9", "--runs"])
        .arg(runs.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start edgekv dash");
    let mut first = String::new();
    BufReader::new(dash.stdout.take().expect("stdout")).read_line(&mut first).expect("a line");
    let addr =
        first.trim().trim_start_matches("dashboard http://").trim_end_matches('/').to_owned();

    let listed = http(&addr, "GET", "/api/runs", &[], b"").body;
    let listed: Value = serde_json::from_slice(&listed).expect("JSON");
    assert_eq!(
        listed["runs"],
        json!([{"name": "heal-1", "scenario": "partition-heal", "verdict": "valid",
                "report": "/runs/heal-1/report.html"}])
    );
    let report = http(&addr, "GET", "/runs/heal-1/report.html", &[], b"");
    assert_eq!((report.status, report.body.as_slice()), (200, &b"<html>the report</html>"[..]));
    assert_eq!(http(&addr, "GET", "/runs/..%2F..%2Fetc/report.html", &[], b"").status, 400);
    assert_eq!(http(&addr, "GET", "/runs/none/report.html", &[], b"").status, 404);
    // A region that cannot be reached is shown as down, not an error of the page.
    let rx = events(&addr);
    let snapshot = next_where(&rx, "a snapshot", is_snapshot);
    assert_eq!(region(&snapshot, "wnam")["up"], false);
    let _ = dash.kill();
    let _ = dash.wait();
}
