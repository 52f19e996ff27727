//! Harness for black-box tests: the built `edgekv` binary as a child process, and a minimal
//! HTTP/1.1 client.
//!
//! The tests talk to the real binary the way users and scripts do: flags, environment, config
//! files, the table it prints, signals and exit codes. The client is a few lines over
//! `std::net::TcpStream` so these tests depend on nothing that could hide a protocol mistake.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a test waits for the node to print its table or to exit.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The `edgekv` binary under test: `$EDGEKV_BIN` if set, else the workspace's debug build,
/// brought up to date with `cargo build` so a test never runs a stale binary.
pub fn edgekv_bin() -> PathBuf {
    match std::env::var_os("EDGEKV_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => build(false),
    }
}

/// The release build of `edgekv` for benchmarks: `$EDGEKV_BIN` if set (an absolute path),
/// else `cargo build --release` of the workspace's binary, so the figures are never those of
/// a stale build.
pub fn edgekv_release_bin() -> PathBuf {
    let Some(bin) = std::env::var_os("EDGEKV_BIN") else { return build(true) };
    let bin = PathBuf::from(bin);
    // cargo runs benches in the crate's directory, not where the command was typed.
    assert!(
        bin.is_file(),
        "EDGEKV_BIN={} is not a file (seen from {}); give an absolute path",
        bin.display(),
        std::env::current_dir().unwrap_or_default().display()
    );
    bin
}

/// Builds the workspace's `edgekv` (debug or release) and returns its path.
fn build(release: bool) -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut args = vec!["build", "--quiet", "-p", "edgekv-cli", "--bin", "edgekv"];
    if release {
        args.push("--release");
    }
    let status =
        Command::new(cargo).args(&args).current_dir(&workspace).status().expect("run cargo build");
    assert!(status.success(), "cargo {} failed: {status}", args.join(" "));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    target.join(if release { "release" } else { "debug" }).join("edgekv")
}

/// One region as listed in the table the binary prints.
#[derive(Debug, Clone)]
pub struct RegionRow {
    /// Region name.
    pub region: String,
    /// Base URL, `http://HOST:PORT/client/v4`.
    pub url: String,
    /// `host:port` of the URL.
    pub addr: String,
    /// Its gRPC URL, `http://HOST:PORT`.
    pub grpc: String,
    /// Its Workers binding listener, `http://HOST:PORT`.
    pub binding: String,
}

/// A running `edgekv` process, killed when dropped.
pub struct Edgekv {
    child: Child,
    /// The data directory the harness gave it when the test gave none; removed on drop.
    _data: Option<tempfile::TempDir>,
    /// The regions it printed.
    pub regions: Vec<RegionRow>,
    stderr_rx: mpsc::Receiver<String>,
    /// The stdout lines after the region table.
    stdout_rx: mpsc::Receiver<String>,
}

impl Edgekv {
    /// Starts `edgekv ARGS` with extra environment and waits for its region table.
    pub fn must_start(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::must_start_binary(&edgekv_bin(), args, env)
    }

    /// [`Edgekv::must_start`] with the binary at `bin` (a benchmark's release build).
    pub fn must_start_binary(bin: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(bin);
        command.args(args);
        Self::spawn(command, args, env)
    }

    /// Like [`Edgekv::must_start`], with the process's file descriptor limit set to `fds`.
    pub fn must_start_with_fd_limit(fds: u64, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new("sh");
        command
            .args(["-c", "ulimit -n \"$0\" && exec \"$@\"", &fds.to_string()])
            .arg(edgekv_bin())
            .args(args);
        Self::spawn(command, args, env)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn spawn(mut command: Command, args: &[&str], env: &[(&str, &str)]) -> Self {
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for var in [
            "EDGEKV_API_TOKEN",
            "EDGEKV_REGION",
            "EDGEKV_LISTEN",
            "EDGEKV_CONFIG",
            "EDGEKV_CLUSTER_SECRET",
            "EDGEKV_ADMIN_TOKEN",
            "EDGEKV_DATA_DIR",
            "EDGEKV_DURABILITY",
            "EDGEKV_IN_MEMORY",
            "EDGEKV_CLOCK_OFFSET",
        ] {
            command.env_remove(var);
        }
        // A test that names no storage gets a fresh data directory of its own, never ./data.
        let named = args.iter().any(|a| a.starts_with("--data-dir") || *a == "--in-memory")
            || env.iter().any(|(k, _)| *k == "EDGEKV_DATA_DIR" || *k == "EDGEKV_IN_MEMORY");
        let data = (!named).then(|| tempfile::tempdir().expect("create a data directory"));
        if let Some(dir) = &data {
            command.env("EDGEKV_DATA_DIR", dir.path());
        }
        command.env("EDGEKV_LOG", "info").envs(env.iter().copied());
        let mut child = command.spawn().expect("spawn edgekv");
        let stderr_rx = forward_lines(child.stderr.take().expect("piped stderr"));
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let (row_tx, row_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if row_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut regions = Vec::new();
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut header_seen = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match row_rx.recv_timeout(left) {
                Ok(line) => line,
                // The deadline passed, or the process closed its stdout (it exited): say which,
                // with what it printed on stderr, or the failure cannot be diagnosed.
                Err(why) => {
                    let timed_out = why == mpsc::RecvTimeoutError::Timeout;
                    let _ = child.kill();
                    let status = child.wait().map_or_else(|e| e.to_string(), |s| s.to_string());
                    // Until the forwarder sees the end of the dead process's stderr.
                    let log: Vec<String> =
                        std::iter::from_fn(|| stderr_rx.recv_timeout(Duration::from_secs(2)).ok())
                            .collect();
                    let tail = log[log.len().saturating_sub(20)..].join("\n");
                    if timed_out {
                        panic!("edgekv printed no complete region table within {STARTUP_TIMEOUT:?}; its stderr ended:\n{tail}");
                    }
                    panic!("edgekv closed its stdout ({status}) before it printed its region table; its stderr ended:\n{tail}");
                }
            };
            let cols: Vec<&str> = line.split_whitespace().collect();
            match cols.as_slice() {
                ["REGION", "URL", "GRPC", "BINDING", "TOKEN"] => header_seen = true,
                [region, url, grpc, binding, _token]
                    if header_seen && url.starts_with("http://") =>
                {
                    let addr = url
                        .trim_start_matches("http://")
                        .split('/')
                        .next()
                        .unwrap_or("")
                        .to_owned();
                    regions.push(RegionRow {
                        region: region.to_string(),
                        url: url.to_string(),
                        addr,
                        grpc: grpc.to_string(),
                        binding: binding.to_string(),
                    });
                }
                _ if header_seen => break,
                _ => {}
            }
            if header_seen && args.first() == Some(&"node") && regions.len() == 1 {
                break;
            }
        }
        Edgekv { child, _data: data, regions, stderr_rx, stdout_rx: row_rx }
    }

    /// The region called `name`.
    pub fn region(&self, name: &str) -> &RegionRow {
        self.regions.iter().find(|r| r.region == name).unwrap_or_else(|| panic!("no region {name}"))
    }

    /// Sends a signal (`TERM`, `INT`, `KILL`) to the process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits until a stdout line after the region table starts with `prefix`; the line.
    pub fn wait_for_stdout(&self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout_rx.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(_) => panic!("no stdout line starting with {prefix:?} within {timeout:?}"),
            }
        }
    }

    /// Waits until a stderr line contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr_rx.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line containing {needle:?} within {timeout:?}"),
            }
        }
    }

    /// Waits for the process to exit.
    pub fn wait_for_exit(mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll child") {
                return status;
            }
            assert!(Instant::now() < deadline, "edgekv did not exit within {timeout:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Edgekv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn forward_lines(stderr: ChildStderr) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs `edgekv ARGS` to completion (for commands expected to fail fast) and returns its exit
/// status and stderr.
pub fn must_run(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String) {
    let (status, _stdout, stderr) = must_run_out(args, env);
    (status, stderr)
}

/// Runs `edgekv ARGS` to completion and returns its exit status, stdout and stderr.
pub fn must_run_out(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let mut command = Command::new(edgekv_bin());
    command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for var in ["EDGEKV_API_TOKEN", "EDGEKV_CLUSTER_SECRET", "EDGEKV_ADMIN_TOKEN"] {
        command.env_remove(var);
    }
    // Should one start after all, it must not leave a ./data behind.
    command.env_remove("EDGEKV_DATA_DIR");
    let named = args.iter().any(|a| a.starts_with("--data-dir"))
        || env.iter().any(|(k, _)| *k == "EDGEKV_DATA_DIR");
    if !named {
        command.env("EDGEKV_IN_MEMORY", "true");
    }
    command.envs(env.iter().copied());
    let mut child = command.spawn().expect("spawn edgekv");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    // Long enough for a lab run on a loaded machine; a command that hangs still fails.
    let timeout = Duration::from_secs(600);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("edgekv {args:?} did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = |t: std::thread::JoinHandle<String>| t.join().unwrap_or_default();
    (status, text(stdout), text(stderr))
}

/// Waits until `condition` holds, polling every 20 ms, or panics after `timeout` naming
/// `what`.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port that was free a moment ago, for processes that must know each other's
/// addresses before they start (two `edgekv node`s peering) and keep them across restarts.
///
/// Taken below the kernel's ephemeral range. A port from that range (what binding port 0
/// gives) is free only until the kernel hands it out again, as a listener's port or as the
/// source port of any outgoing connection, and with the whole suite running in parallel a node
/// restarted on it after a kill -9 could find it taken. Below the range only another caller of
/// this function can take it, and each starts at a different random point.
pub fn free_port() -> u16 {
    let (low, _) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| {
            let mut bounds = range.split_whitespace().map(|b| b.parse::<u16>().ok());
            Some((bounds.next()??, bounds.next()??))
        })
        .unwrap_or((32768, 60999));
    const FLOOR: u16 = 10_000;
    // Two calls of one process in the same nanosecond start at different points too.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    if low > FLOOR + 1_000 {
        let span = u64::from(low - FLOOR);
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ (u64::from(std::process::id()) << 32)
            ^ CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed).wrapping_mul(0x9e37_79b9);
        let mut next = seed;
        for _ in 0..200 {
            next = next.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let port = FLOOR + ((next >> 33) % span) as u16;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: HashMap<String, String>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// Sends one request with `Connection: close` and reads the whole response.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(STARTUP_TIMEOUT)).expect("set timeout");
    write_head(&mut stream, method, path, headers, body.len());
    stream.write_all(body).expect("write body");
    read_response(stream)
}

/// Writes a request line and headers, declaring `content_length` body bytes to follow.
pub fn write_head(
    stream: &mut TcpStream,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    content_length: usize,
) {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: edgekv\r\nConnection: close\r\nContent-Length: {content_length}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("write request head");
}

/// Reads a whole `Connection: close` response.
pub fn read_response(mut stream: TcpStream) -> Response {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Response { status, headers, body: raw[split + 4..].to_vec() }
}
