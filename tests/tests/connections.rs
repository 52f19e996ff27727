//! Connections that stall, floods of them, clients that do not read, bodies that would hold too
//! much memory, and requests so malformed the HTTP layer refuses them before any route: each
//! against the real binary.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use edgekv_tests::{http, Edgekv};

const AUTH: (&str, &str) = ("Authorization", "Bearer edgekv-dev-token");
const NAMESPACES: &str = "/client/v4/accounts/acct/storage/kv/namespaces";

/// A node on loopback with 1 s timeouts, changed or added to by `extra` (flag, value) pairs.
fn node(extra: &[(&str, &str)]) -> Edgekv {
    let mut flags = vec![
        ("--header-timeout", "1s"),
        ("--body-timeout", "1s"),
        ("--idle-timeout", "1s"),
        ("--send-timeout", "1s"),
    ];
    for (flag, value) in extra {
        flags.retain(|(f, _)| f != flag);
        flags.push((flag, value));
    }
    let mut args = vec!["node", "--region", "wnam", "--listen", "127.0.0.1:0"];
    for (flag, value) in &flags {
        args.extend([*flag, *value]);
    }
    Edgekv::must_start(&args, &[])
}

fn create_namespace(addr: &str) -> String {
    let reply = http(addr, "POST", NAMESPACES, &[AUTH], br#"{"title":"conn"}"#);
    assert_eq!(reply.status, 200);
    reply.json()["result"]["id"].as_str().expect("an id").to_owned()
}

fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("set a read timeout");
    stream
}

/// Reads until the server closes the connection; what it sent, and how long that took.
fn until_closed(stream: &mut TcpStream) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                panic!("the server kept the connection open for {:?}", started.elapsed())
            }
            Err(_) => break, // reset by the server
        }
    }
    (got, started.elapsed())
}

/// Closed after about `timeout`: not before it, and well within a generous bound after it.
fn assert_closed_after(what: &str, took: Duration, timeout: Duration) {
    assert!(took >= timeout.mul_f32(0.8), "{what} closed after {took:?}, before {timeout:?}");
    assert!(took < timeout * 4, "{what} closed only after {took:?}");
}

#[test]
fn a_stalled_head_a_stalled_body_and_an_idle_connection_are_closed_within_their_timeouts() {
    let node = node(&[]);
    let addr = node.region("wnam").addr.clone();
    let ns = create_namespace(&addr);
    let second = Duration::from_secs(1);

    let mut idle = connect(&addr);
    let (_, took) = until_closed(&mut idle);
    assert_closed_after("an idle connection", took, second);

    // A head sent a byte at a time gets no more time than one sent at once.
    let mut slow = connect(&addr);
    let started = Instant::now();
    for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: yes".iter() {
        if slow.write_all(&[*byte]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, _) = until_closed(&mut slow);
    assert_closed_after("a slowloris head", started.elapsed(), second);

    let mut body = connect(&addr);
    let head = format!(
        "PUT {NAMESPACES}/{ns}/values/k HTTP/1.1\r\nHost: x\r\n{}: {}\r\n\
         Content-Length: 100\r\n\r\nabc",
        AUTH.0, AUTH.1
    );
    body.write_all(head.as_bytes()).unwrap();
    let (answer, took) = until_closed(&mut body);
    assert_closed_after("a stalled body", took, second);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // Nothing of the stalled write was stored.
    let get = http(&addr, "GET", &format!("{NAMESPACES}/{ns}/values/k"), &[AUTH], b"");
    assert_eq!(get.status, 404);

    // A keep-alive connection that was served goes idle and is closed too.
    let mut kept = connect(&addr);
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (answer, took) = until_closed(&mut kept);
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    assert_closed_after("a served keep-alive connection", took, second);
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// 2,000 connections that never finish a head: the node keeps at most its bound open (closing
/// the oldest that has no request in flight), and a real client is served at once.
#[test]
fn a_slowloris_flood_neither_exhausts_descriptors_nor_keeps_a_client_out() {
    let node = node(&[("--max-connections", "200"), ("--header-timeout", "60s")]);
    let addr = node.region("wnam").addr.clone();
    let before = open_fds(node.pid());
    let mut flood = Vec::new();
    for _ in 0..2000 {
        let mut stream = TcpStream::connect(&addr).expect("connect");
        let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
        flood.push(stream);
    }
    let started = Instant::now();
    let reply = http(&addr, "GET", "/healthz", &[], b"");
    assert_eq!(reply.status, 200);
    assert!(started.elapsed() < Duration::from_secs(2), "served after {:?}", started.elapsed());
    // Evicted connections close on their own tasks, a moment after the flood.
    let bound = before + 200 + 8;
    let fds = wait_for(|| Some(open_fds(node.pid())).filter(|fds| *fds <= bound));
    assert!(fds <= bound, "{fds} descriptors open ({before} before the flood)");
    let metrics =
        String::from_utf8_lossy(&http(&addr, "GET", "/metrics", &[], b"").body).into_owned();
    assert!(
        metrics.contains("edgekv_connections_closed_total{listener=\"http\",reason=\"evicted\"}")
    );
}

/// Under a descriptor limit of 256, 300 idle connections still leave room for a client.
#[test]
fn idle_connections_under_a_low_descriptor_limit_leave_room_for_a_client() {
    let args = ["node", "--region", "wnam", "--listen", "127.0.0.1:0", "--idle-timeout", "60s"];
    let node = Edgekv::must_start_with_fd_limit(256, &args, &[]);
    let addr = node.region("wnam").addr.clone();
    let idle: Vec<TcpStream> =
        (0..300).map(|_| TcpStream::connect(&addr).expect("connect")).collect();
    assert_eq!(http(&addr, "GET", "/healthz", &[], b"").status, 200);
    assert!(open_fds(node.pid()) < 256);
    drop(idle);
}

/// Clients that never read a 25 MiB value are dropped after the send timeout, and the body
/// budget refuses (503) what would hold more than it.
#[test]
fn clients_that_do_not_read_are_dropped_and_bodies_stay_within_the_budget() {
    let node = node(&[("--body-memory", "64MiB")]);
    let addr = node.region("wnam").addr.clone();
    let ns = create_namespace(&addr);
    let value: Vec<u8> =
        (0..25u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let path = format!("{NAMESPACES}/{ns}/values/big");
    assert_eq!(http(&addr, "PUT", &path, &[AUTH], &value).status, 200);
    let get = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{}: {}\r\n\r\n", AUTH.0, AUTH.1);
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut stream = connect_with_small_window(&addr);
        stream.write_all(get.as_bytes()).unwrap();
        // Its answer has begun: it holds its share of the budget.
        let mut start = [0u8; 12];
        stream.read_exact(&mut start).unwrap();
        assert_eq!(&start, b"HTTP/1.1 200");
        stalled.push(stream);
    }
    // Two 25 MiB answers are held; a third does not fit in 64 MiB.
    let third = wait_for(|| {
        let reply = http(&addr, "GET", &path, &[AUTH], b"");
        (reply.status == 503).then_some(reply)
    });
    assert_eq!(third.headers.get("retry-after").map(String::as_str), Some("5"));
    assert_eq!(third.json()["success"], false);
    // The server gives up on them after the send timeout...
    wait_for(|| {
        let metrics = http(&addr, "GET", "/metrics", &[], b"");
        let text = String::from_utf8_lossy(&metrics.body).into_owned();
        let line = "edgekv_connections_closed_total{listener=\"http\",reason=\"send_timeout\"} ";
        let closed = text.lines().find_map(|l| l.strip_prefix(line)?.parse::<f64>().ok());
        closed.filter(|n| *n >= 2.0)
    });
    // ...so they never get the whole value.
    for mut stream in stalled {
        let (got, _) = until_closed(&mut stream);
        assert!(got.len() < value.len(), "a client that did not read was sent everything");
    }
    // Once they are dropped, the value is served whole again.
    let reply = http(&addr, "GET", &path, &[AUTH], b"");
    assert_eq!((reply.status, reply.body.len()), (200, value.len()));
}

/// A connection whose receive buffer stays small, so that a server writing to it cannot hand
/// its whole answer to the kernel: the answer stays in the server's memory while unread.
fn connect_with_small_window(addr: &str) -> TcpStream {
    use rustix::net::{connect, socket, sockopt, AddressFamily, SocketType};
    let target: std::net::SocketAddr = addr.parse().expect("a socket address");
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).expect("a socket");
    sockopt::set_socket_recv_buffer_size(&fd, 4096).expect("a small receive buffer");
    connect(&fd, &target).expect("connect");
    let stream = TcpStream::from(fd);
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("set a read timeout");
    stream
}

fn wait_for<T>(check: impl FnMut() -> Option<T>) -> T {
    wait_within(Duration::from_secs(10), check)
}

fn wait_within<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "the condition did not hold within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A bulk write takes three times its body from the budget before reading it: a second one
/// that does not fit is refused at once, nothing of it stored.
#[test]
fn concurrent_bulk_writes_past_the_budget_are_refused() {
    let node = node(&[("--body-memory", "64MiB"), ("--body-timeout", "10s")]);
    let addr = node.region("wnam").addr.clone();
    let ns = create_namespace(&addr);
    let bulk = format!("{NAMESPACES}/{ns}/bulk");
    // The first declares 20 MiB (60 MiB of budget) and sends it slowly. It asks to be told
    // when its body is wanted (100 Continue), which is once it holds its share of the budget:
    // only then is the second sent, so that the second cannot overtake it on a busy machine.
    let mut first = connect(&addr);
    let head = format!(
        "PUT {bulk} HTTP/1.1\r\nHost: x\r\n{}: {}\r\nContent-Length: {}\r\n\
         Expect: 100-continue\r\n\r\n",
        AUTH.0,
        AUTH.1,
        20 << 20
    );
    first.write_all(head.as_bytes()).unwrap();
    let mut continued = Vec::new();
    let mut byte = [0u8; 1];
    while !continued.ends_with(b"\r\n\r\n") {
        let n = first.read(&mut byte).expect("the first hears back before its read timeout");
        assert_eq!(n, 1, "the first was closed before it was told to continue");
        continued.push(byte[0]);
    }
    let continued = String::from_utf8_lossy(&continued);
    assert!(continued.starts_with("HTTP/1.1 100"), "{continued}");
    first.write_all(b"[").unwrap();
    // A second of 2 MiB would take 6 MiB more: past the budget. It asks before it sends, so it
    // is refused as soon as its head arrives, and no body of it is asked for or read.
    let items = format!(r#"[{{"key":"k","value":"{}"}}]"#, "v".repeat(2 << 20));
    let second = wait_within(Duration::from_secs(40), || {
        let mut stream = connect(&addr);
        let head = format!(
            "PUT {bulk} HTTP/1.1\r\nHost: x\r\n{}: {}\r\nContent-Length: {}\r\n\
             Expect: 100-continue\r\nConnection: close\r\n\r\n",
            AUTH.0,
            AUTH.1,
            items.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        let reply = edgekv_tests::read_response(stream);
        match reply.status {
            503 => Some(reply),
            // The first's share not yet taken: this one was told to send (100), or gave up on
            // its body (400).
            100 | 400 => None,
            other => panic!("{other}"),
        }
    });
    assert_eq!(second.json()["errors"][0]["code"], 10000);
    assert_eq!(second.headers.get("retry-after").map(String::as_str), Some("5"));
    let key = http(&addr, "GET", &format!("{NAMESPACES}/{ns}/values/k"), &[AUTH], b"");
    assert_eq!(key.status, 404, "nothing of the refused bulk write is stored");
    drop(first);
    // With the first gone, the same request fits.
    let again = wait_for(|| {
        let reply = http(&addr, "PUT", &bulk, &[AUTH], items.as_bytes());
        (reply.status == 200).then_some(reply)
    });
    assert_eq!(again.json()["result"]["successful_key_count"], 1);
}

/// Requests the HTTP layer refuses before any route sees them answer in Cloudflare's envelope.
#[test]
fn refusals_of_the_http_layer_carry_the_envelope() {
    let node = node(&[]);
    let addr = node.region("wnam").addr.clone();
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    let big_head =
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(500_000));
    for (request, status) in [
        (long_uri.into_bytes(), 414),
        (big_head.into_bytes(), 431),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Nul: a\0b\r\n\r\n".to_vec(), 400),
        (b"NOT HTTP AT ALL\r\n\r\n".to_vec(), 400),
        (b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(), 400),
    ] {
        let mut stream = connect(&addr);
        let _ = stream.write_all(&request);
        let (answer, _) = until_closed(&mut stream);
        let text = String::from_utf8_lossy(&answer).into_owned();
        assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{status}: {text}");
        assert!(text.contains("content-type: application/json"), "{text}");
        assert!(text.contains("edgekv-region: wnam"), "{text}");
        let body = &text[text.find("\r\n\r\n").expect("a head") + 4..];
        let json: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
        assert_eq!(json["success"], false, "{body}");
        assert!(json["errors"][0]["code"].as_u64().is_some(), "{body}");
    }
    // Bad chunked framing is found while the body is read, and answered by the API itself.
    let mut stream = connect(&addr);
    let request = format!(
        "PUT {NAMESPACES}/x/values/k HTTP/1.1\r\nHost: x\r\n{}: {}\r\n\
         Transfer-Encoding: chunked\r\n\r\nzz\r\n",
        AUTH.0, AUTH.1
    );
    stream.write_all(request.as_bytes()).unwrap();
    let (answer, _) = until_closed(&mut stream);
    let text = String::from_utf8_lossy(&answer).into_owned();
    assert!(text.contains("\"success\":false"), "{text}");
}

/// The gRPC listener is guarded too: a connection that never sends the HTTP/2 preface is
/// closed after the header timeout, and a flood of them cannot hold more than the bound.
#[test]
fn the_grpc_listener_closes_silent_connections_and_bounds_floods() {
    let node = node(&[("--max-connections", "50")]);
    let grpc = node.region("wnam").grpc.trim_start_matches("http://").to_owned();
    let mut silent = connect(&grpc);
    let (_, took) = until_closed(&mut silent);
    assert_closed_after("a silent gRPC connection", took, Duration::from_secs(1));
    let before = open_fds(node.pid());
    let flood: Vec<TcpStream> =
        (0..500).map(|_| TcpStream::connect(&grpc).expect("connect")).collect();
    let bound = before + 50 + 8;
    wait_for(|| Some(open_fds(node.pid())).filter(|fds| *fds <= bound));
    drop(flood);
}

/// Reads one response off a connection that stays open: its head, then as many body bytes as
/// its `Content-Length` says.
fn read_one(stream: &mut TcpStream) -> edgekv_tests::Response {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let split = loop {
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break split;
        }
        let n = stream.read(&mut buf).expect("an answer before the read timeout");
        assert!(n > 0, "closed before a whole head: {:?}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status");
    let headers: std::collections::HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    let mut body = raw[split + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut buf).expect("the whole body before the read timeout");
        assert!(n > 0, "closed after {} of {len} body bytes", body.len());
        body.extend_from_slice(&buf[..n]);
    }
    edgekv_tests::Response { status, headers, body }
}

/// A client that sends its whole body before it reads (Node's fetch, Python's requests) hears
/// why a request was refused, not a reset connection: whether the value is over 25 MiB by its
/// `Content-Length`, as it streams in chunks, or inside a form, and whether the token is
/// wrong (403). The connection then serves the next request. A client that asks before it sends
/// (`Expect: 100-continue`) is answered at once and sends nothing.
#[test]
fn a_refused_body_sent_whole_is_answered_and_the_connection_kept() {
    let node = node(&[("--body-timeout", "20s")]);
    let addr = node.region("wnam").addr.clone();
    let ns = create_namespace(&addr);
    let path = format!("{NAMESPACES}/{ns}/values/big");
    let over = 25 * 1024 * 1024 + 1;
    let value = vec![b'v'; over];

    let mut chunked = Vec::new();
    for piece in value.chunks(1 << 20) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let boundary = "edgekv-drain";
    let mut form =
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"value\"\r\n\r\n")
            .into_bytes();
    form.extend_from_slice(&value);
    form.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n\
             {{\"after\":\"the value\"}}\r\n--{boundary}--\r\n"
        )
        .as_bytes(),
    );
    let form_type = format!("multipart/form-data; boundary={boundary}");
    let sized = format!("Content-Length: {over}");
    let cases: [(&str, String, &[u8], u16); 4] = [
        ("declared", format!("{}: {}\r\n{sized}", AUTH.0, AUTH.1), &value, 413),
        ("chunked", format!("{}: {}\r\nTransfer-Encoding: chunked", AUTH.0, AUTH.1), &chunked, 413),
        (
            "a form",
            format!(
                "{}: {}\r\nContent-Type: {form_type}\r\nContent-Length: {}",
                AUTH.0,
                AUTH.1,
                form.len()
            ),
            &form,
            413,
        ),
        ("a wrong token", format!("{}: Bearer wrong\r\n{sized}", AUTH.0), &value, 403),
    ];
    for (what, headers, body, status) in cases {
        let mut stream = connect(&addr);
        stream
            .write_all(format!("PUT {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n\r\n").as_bytes())
            .unwrap();
        stream.write_all(body).unwrap_or_else(|e| panic!("{what}: the body was cut off: {e}"));
        let reply = read_one(&mut stream);
        assert_eq!(reply.status, status, "{what}: {}", String::from_utf8_lossy(&reply.body));
        let json: serde_json::Value = serde_json::from_slice(&reply.body).expect("an envelope");
        assert_eq!(json["success"], false, "{what}: {json}");
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(
            read_one(&mut stream).status,
            200,
            "{what}: the connection serves the next request"
        );
    }
    let kept = http(&addr, "GET", &path, &[AUTH], b"");
    assert_eq!(kept.status, 404, "nothing of a refused write is stored");

    let mut asking = connect(&addr);
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\n{}: {}\r\n{sized}\r\nExpect: 100-continue\r\n\r\n",
        AUTH.0, AUTH.1
    );
    asking.write_all(head.as_bytes()).unwrap();
    let reply = read_one(&mut asking);
    assert_eq!(reply.status, 413, "answered without a 100 Continue, before any body");
}
