//! Durable regions as real processes: kill -9 under load, restarts with the clock set back, a
//! peer that was down while the origin crashed, and expirations and tombstones across restarts.
//!
//! Every node here has its own data directory and fixed ports (taken free at the start), so a
//! restarted node comes back on the same data and its peers find it where it was.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edgekv_tests::{free_port, http, wait_until, Edgekv};

const TOKEN: &str = "durability-token";
const AUTH: [(&str, &str); 1] = [("Authorization", "Bearer durability-token")];
const NAMESPACES: &str = "/client/v4/accounts/acct/storage/kv/namespaces";

/// One region's fixed identity across restarts: name, ports, data directory, extra flags.
struct RegionSpec {
    name: &'static str,
    http_port: u16,
    grpc_port: u16,
    data_dir: PathBuf,
    flags: Vec<String>,
}

impl RegionSpec {
    fn new(name: &'static str, root: &Path, flags: &[&str]) -> Self {
        RegionSpec {
            name,
            http_port: free_port(),
            grpc_port: free_port(),
            data_dir: root.join(name),
            flags: flags.iter().map(|f| f.to_string()).collect(),
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.http_port)
    }

    /// Starts the region peered with `peers`, with `extra` flags for this run only.
    fn start(&self, peers: &[&RegionSpec], extra: &[&str]) -> Edgekv {
        let mut args: Vec<String> = vec![
            "node".into(),
            "--region".into(),
            self.name.into(),
            "--listen".into(),
            self.addr(),
            "--grpc-listen".into(),
            format!("127.0.0.1:{}", self.grpc_port),
            "--data-dir".into(),
            self.data_dir.display().to_string(),
        ];
        for peer in peers {
            args.push("--peer".into());
            args.push(format!("{}=http://127.0.0.1:{}", peer.name, peer.grpc_port));
        }
        args.extend(self.flags.iter().cloned());
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Edgekv::must_start(&args, &[("EDGEKV_API_TOKEN", TOKEN)])
    }
}

/// Kills a node with SIGKILL and waits until it is gone.
fn kill_9(node: Edgekv) {
    node.signal("KILL");
    let status = node.wait_for_exit(Duration::from_secs(10));
    assert!(!status.success(), "a killed node does not exit cleanly");
}

fn create_namespace(addr: &str) -> String {
    let reply = http(addr, "POST", NAMESPACES, &AUTH, br#"{"title":"durable"}"#);
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    reply.json()["result"]["id"].as_str().expect("a namespace id").to_owned()
}

/// Creates a namespace in `origin` and waits until `peer` has it too.
fn create_replicated_namespace(origin: &RegionSpec, peer: &RegionSpec) -> String {
    let ns = create_namespace(&origin.addr());
    wait_until(Duration::from_secs(15), "the namespace in the peer", || {
        http(&peer.addr(), "GET", &format!("{NAMESPACES}/{ns}"), &AUTH, b"").status == 200
    });
    ns
}

fn value_path(ns: &str, key: &str) -> String {
    format!("{NAMESPACES}/{ns}/values/{key}")
}

/// The value of `key`, or `None` if the region answers 404.
fn get(addr: &str, ns: &str, key: &str) -> Option<Vec<u8>> {
    let reply = http(addr, "GET", &value_path(ns, key), &AUTH, b"");
    match reply.status {
        200 => Some(reply.body),
        404 => None,
        other => panic!("GET {key} answered {other}: {}", String::from_utf8_lossy(&reply.body)),
    }
}

/// PUT that reports the version header, panicking unless it is acknowledged.
fn must_put(addr: &str, ns: &str, key: &str, value: &[u8]) -> String {
    let reply = http(addr, "PUT", &value_path(ns, key), &AUTH, value);
    assert_eq!(reply.status, 200, "PUT {key}: {}", String::from_utf8_lossy(&reply.body));
    reply.headers.get("edgekv-version").cloned().expect("a version header")
}

/// A PUT that may fail (the node is being killed): `true` only for a 200, an acknowledgement.
fn try_put(addr: &str, path: &str, value: &[u8]) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let head = format!(
            "PUT {path} HTTP/1.1\r\nHost: edgekv\r\nConnection: close\r\nContent-Length: {}\r\n\
             Authorization: Bearer {TOKEN}\r\n\r\n",
            value.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(value)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        Ok(raw.starts_with(b"HTTP/1.1 200 "))
    };
    attempt().unwrap_or(false)
}

/// A small deterministic generator, so a failing run's crash moments can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // SplitMix64.
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low)
    }
}

/// The checker: every acknowledged write is in `addr`, with its value. Returns the keys that
/// are not (yet) there.
fn missing(addr: &str, ns: &str, acked: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    acked
        .iter()
        .filter(|(key, value)| get(addr, ns, key).as_deref() != Some(value.as_slice()))
        .map(|(key, _)| key.clone())
        .collect()
}

/// kill -9 at random moments under a concurrent write load; each time the node restarts on its
/// data. Every acknowledged write is there after the restarts, and reaches the peer: including
/// writes that were still waiting out their propagation delay in the outbox when the node died.
#[test]
fn kill_9_under_load_loses_no_acknowledged_write() {
    let root = tempfile::tempdir().expect("a temp dir");
    // Writes wait 1.5 s in wnam's outbox before they are due at enam, so every crash catches
    // some of them there. Anti-entropy is off (1h), so only the outbox can deliver them.
    let flags = ["--delay", "1500ms", "--anti-entropy-interval", "1h"];
    let wnam = RegionSpec::new("wnam", root.path(), &flags);
    let enam = RegionSpec::new("enam", root.path(), &flags);
    let mut origin = wnam.start(&[&enam], &[]);
    let _peer = enam.start(&[&wnam], &[]);
    let ns = create_replicated_namespace(&wnam, &enam);

    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let (acked, stop, addr, ns) =
                (Arc::clone(&acked), Arc::clone(&stop), wnam.addr(), ns.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("t{t}-{i:06}");
                    let value = format!("value of {key}").into_bytes();
                    if try_put(&addr, &value_path(&ns, &key), &value) {
                        acked.lock().expect("the log of acks").insert(key, value);
                    } else {
                        // Down: try again shortly, as a client would.
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    i += 1;
                }
            })
        })
        .collect();

    let seed = 0x5eed_d15c;
    let mut rng = Rng(seed);
    for crash in 0..3 {
        let at = Duration::from_millis(rng.between(300, 1200));
        std::thread::sleep(at);
        let before = acked.lock().expect("the log of acks").len();
        kill_9(origin);
        eprintln!("crash {crash} (seed {seed:#x}) after {at:?}: {before} writes acknowledged");
        origin = wnam.start(&[&enam], &[]);
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().expect("a writer thread");
    }
    let acked = acked.lock().expect("the log of acks").clone();
    assert!(acked.len() >= 100, "the load acknowledged only {} writes", acked.len());

    let lost = missing(&wnam.addr(), &ns, &acked);
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost in wnam: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    let mut left = acked;
    wait_until(Duration::from_secs(30), "every acknowledged write in enam", || {
        let absent = missing(&enam.addr(), &ns, &left);
        left.retain(|key, _| absent.contains(key));
        left.is_empty()
    });
    drop(origin);
}

/// The origin writes while its peer is down, then crashes too. Both come back (origin first):
/// the peer receives every write, from the outbox the origin kept on disk.
#[test]
fn a_peer_down_while_the_origin_crashed_still_receives_everything() {
    let root = tempfile::tempdir().expect("a temp dir");
    let flags = ["--anti-entropy-interval", "1h"];
    let wnam = RegionSpec::new("wnam", root.path(), &flags);
    let enam = RegionSpec::new("enam", root.path(), &flags);
    let origin = wnam.start(&[&enam], &[]);
    let peer = enam.start(&[&wnam], &[]);
    let ns = create_replicated_namespace(&wnam, &enam);

    kill_9(peer);
    let mut acked = BTreeMap::new();
    for i in 0..50 {
        let key = format!("while-down-{i:02}");
        let value = format!("v{i}").into_bytes();
        must_put(&wnam.addr(), &ns, &key, &value);
        acked.insert(key, value);
    }
    kill_9(origin);

    let _origin = wnam.start(&[&enam], &[]);
    let _peer = enam.start(&[&wnam], &[]);
    let mut left = acked.clone();
    wait_until(Duration::from_secs(30), "every write in enam", || {
        let absent = missing(&enam.addr(), &ns, &left);
        left.retain(|key, _| absent.contains(key));
        left.is_empty()
    });
    assert!(missing(&wnam.addr(), &ns, &acked).is_empty());
}

/// A node restarted with its wall clock an hour behind still gives each new write a version
/// above every version it gave before, so the new write wins by LWW.
#[test]
fn a_restart_with_the_clock_set_back_keeps_versions_increasing() {
    let root = tempfile::tempdir().expect("a temp dir");
    let wnam = RegionSpec::new("wnam", root.path(), &[]);
    let node = wnam.start(&[], &[]);
    let ns = create_namespace(&wnam.addr());
    let before = must_put(&wnam.addr(), &ns, "k", b"before");
    kill_9(node);

    let _node = wnam.start(&[], &["--clock-offset=-1h"]);
    let after = must_put(&wnam.addr(), &ns, "k", b"after");
    // Versions are `{16 hex digits of HLC}-{region}`: text order is version order.
    assert!(after > before, "version {after} is not above {before}");
    assert_eq!(get(&wnam.addr(), &ns, "k").as_deref(), Some(&b"after"[..]));
}

/// A delete survives a crash as a tombstone: an older write of the key, arriving from a peer
/// after the restart, still loses to it.
#[test]
fn a_tombstone_survives_a_crash_and_still_beats_an_older_write() {
    let root = tempfile::tempdir().expect("a temp dir");
    // enam's writes take 4 s to reach wnam; wnam's reach enam at once.
    let flags = ["--link-delay", "enam->wnam=4s", "--anti-entropy-interval", "1h"];
    let wnam = RegionSpec::new("wnam", root.path(), &flags);
    let enam = RegionSpec::new("enam", root.path(), &flags);
    let origin = wnam.start(&[&enam], &[]);
    let _peer = enam.start(&[&wnam], &[]);
    let ns = create_replicated_namespace(&wnam, &enam);

    must_put(&enam.addr(), &ns, "k", b"older");
    let delete = http(&wnam.addr(), "DELETE", &value_path(&ns, "k"), &AUTH, b"");
    assert_eq!(delete.status, 200);
    kill_9(origin);
    let _origin = wnam.start(&[&enam], &[]);

    // Wait until enam has delivered its older write to the restarted wnam.
    wait_until(Duration::from_secs(20), "enam's write delivered to wnam", || {
        let metrics = http(&enam.addr(), "GET", "/metrics", &[], b"");
        String::from_utf8_lossy(&metrics.body)
            .contains("edgekv_replication_writes_sent_total{peer=\"wnam\"} 1")
    });
    assert_eq!(get(&wnam.addr(), &ns, "k"), None, "the older write beat the tombstone");
    wait_until(Duration::from_secs(10), "the delete in enam", || {
        get(&enam.addr(), &ns, "k").is_none()
    });
}

/// Expirations are stored with their keys: after a crash a key still expires at its time, and
/// one that has not expired yet still lists its expiration.
#[test]
fn expirations_survive_restarts() {
    let root = tempfile::tempdir().expect("a temp dir");
    let wnam = RegionSpec::new("wnam", root.path(), &[]);
    let node = wnam.start(&[], &[]);
    let ns = create_namespace(&wnam.addr());
    let path = format!("{}?expiration_ttl=60", value_path(&ns, "short"));
    assert_eq!(http(&wnam.addr(), "PUT", &path, &AUTH, b"soon gone").status, 200);
    must_put(&wnam.addr(), &ns, "lasting", b"stays");
    let keys_path = format!("{NAMESPACES}/{ns}/keys");
    let listed = http(&wnam.addr(), "GET", &keys_path, &AUTH, b"").json();
    let expiration = listed["result"][1]["expiration"].as_u64().expect("an expiration");
    kill_9(node);

    let node = wnam.start(&[], &[]);
    let listed = http(&wnam.addr(), "GET", &keys_path, &AUTH, b"").json();
    assert_eq!(listed["result"][1]["name"], "short");
    assert_eq!(listed["result"][1]["expiration"].as_u64(), Some(expiration));
    kill_9(node);

    // Two minutes later (by the node's clock), the key has expired; the other has not.
    let _node = wnam.start(&[], &["--clock-offset=2m"]);
    assert_eq!(get(&wnam.addr(), &ns, "short"), None);
    assert_eq!(get(&wnam.addr(), &ns, "lasting").as_deref(), Some(&b"stays"[..]));
    let listed = http(&wnam.addr(), "GET", &keys_path, &AUTH, b"").json();
    let names: Vec<&str> = listed["result"]
        .as_array()
        .expect("a key list")
        .iter()
        .filter_map(|k| k["name"].as_str())
        .collect();
    assert_eq!(names, ["lasting"]);
}

/// The newest journal file of a data directory.
fn newest_journal(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .expect("read the data directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jnl"))
        .max_by_key(|p| {
            p.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
        })
        .expect("a journal file")
}

/// A crash in the middle of writing a batch leaves a torn record at the end of the journal.
/// The node drops it and starts with everything before it.
#[test]
fn a_torn_last_write_is_dropped_and_the_node_starts() {
    let root = tempfile::tempdir().expect("a temp dir");
    let wnam = RegionSpec::new("wnam", root.path(), &[]);
    let node = wnam.start(&[], &[]);
    let ns = create_namespace(&wnam.addr());
    must_put(&wnam.addr(), &ns, "kept", b"before the tear");
    // Incompressible, so the last batch spans thousands of bytes of the journal.
    let mut rng = Rng(7);
    let value: Vec<u8> = (0..8000).map(|_| rng.next() as u8).collect();
    must_put(&wnam.addr(), &ns, "torn", &value);
    kill_9(node);
    // The journal file is preallocated: its records end at the last byte that is not zero.
    let journal = newest_journal(&wnam.data_dir);
    let bytes = std::fs::read(&journal).expect("read the journal");
    let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    assert!(end > 8000, "the last write is in {}", journal.display());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .and_then(|f| f.set_len((end - 4000) as u64))
        .expect("tear the journal");

    let _node = wnam.start(&[], &[]);
    assert_eq!(get(&wnam.addr(), &ns, "kept").as_deref(), Some(&b"before the tear"[..]));
    let torn = get(&wnam.addr(), &ns, "torn").map(|v| v.len());
    assert_eq!(torn, None, "the torn write is dropped");
}

/// A store whose files are damaged is refused with an error that names the file, rather than
/// served with data silently missing.
#[test]
fn a_corrupt_store_is_a_clear_error_naming_the_file() {
    let root = tempfile::tempdir().expect("a temp dir");
    let wnam = RegionSpec::new("wnam", root.path(), &[]);
    let node = wnam.start(&[], &[]);
    create_namespace(&wnam.addr());
    node.signal("TERM");
    assert!(node.wait_for_exit(Duration::from_secs(10)).success());
    let version = wnam.data_dir.join("version");
    std::fs::write(&version, b"not a version file").expect("damage the version file");

    let args = ["node", "--region", "wnam", "--listen", "127.0.0.1:0"];
    let dir = wnam.data_dir.display().to_string();
    let (status, stderr) = edgekv_tests::must_run(&args, &[("EDGEKV_DATA_DIR", dir.as_str())]);
    assert!(!status.success());
    assert!(stderr.contains(&version.display().to_string()), "the error names the file: {stderr}");
}

/// A restart does not make a write early: it reaches the peer no sooner than its propagation
/// delay after it was written, although the origin crashed and came back in between.
#[test]
fn a_restart_sends_nothing_before_its_due_time() {
    let root = tempfile::tempdir().expect("a temp dir");
    let flags = ["--link-delay", "wnam->enam=3s", "--anti-entropy-interval", "1h"];
    let wnam = RegionSpec::new("wnam", root.path(), &flags);
    let enam = RegionSpec::new("enam", root.path(), &flags);
    let origin = wnam.start(&[&enam], &[]);
    let _peer = enam.start(&[&wnam], &[]);
    let ns = create_replicated_namespace(&wnam, &enam);

    let written = Instant::now();
    must_put(&wnam.addr(), &ns, "k", b"delayed");
    kill_9(origin);
    let _origin = wnam.start(&[&enam], &[]);
    wait_until(Duration::from_secs(20), "the write in enam", || {
        get(&enam.addr(), &ns, "k").is_some()
    });
    let arrived = written.elapsed();
    // The write's version was taken after `written`, and its due time is version + 3 s.
    assert!(
        arrived >= Duration::from_secs(3),
        "the write arrived after {arrived:?}, before its delay"
    );
}

/// Damage in the middle of the journal (not a torn tail) is refused: dropping the journal from
/// there on would silently lose acknowledged writes that follow it.
#[test]
fn a_damaged_journal_is_refused_naming_the_journal() {
    let root = tempfile::tempdir().expect("a temp dir");
    let wnam = RegionSpec::new("wnam", root.path(), &[]);
    let node = wnam.start(&[], &[]);
    let ns = create_namespace(&wnam.addr());
    let mut rng = Rng(11);
    for i in 0..20 {
        let value: Vec<u8> = (0..3000).map(|_| rng.next() as u8).collect();
        must_put(&wnam.addr(), &ns, &format!("k{i}"), &value);
    }
    kill_9(node);
    let journal = newest_journal(&wnam.data_dir);
    let mut bytes = std::fs::read(&journal).expect("read the journal");
    let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    bytes[end / 2] ^= 0xff;
    std::fs::write(&journal, &bytes).expect("damage the journal");

    let args = ["node", "--region", "wnam", "--listen", "127.0.0.1:0"];
    let dir = wnam.data_dir.display().to_string();
    let (status, stderr) = edgekv_tests::must_run(&args, &[("EDGEKV_DATA_DIR", dir.as_str())]);
    assert!(!status.success(), "a damaged journal must not be served");
    assert!(
        stderr.contains(&journal.display().to_string()),
        "the error names the journal: {stderr}"
    );
}

/// A small tmpfs mounted for one test and unmounted when dropped. Mounting needs root: where it
/// cannot be mounted the test says so and does nothing, except in CI, where that is a failure.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(root: &Path, size: &str) -> Option<Tmpfs> {
        let dir = root.join("tmpfs");
        std::fs::create_dir_all(&dir).expect("create the mount point");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            return Some(Tmpfs { dir });
        }
        assert!(std::env::var_os("CI").is_none(), "CI must be able to mount a tmpfs (root)");
        eprintln!("skipped: mounting a tmpfs needs root");
        None
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Fills the filesystem holding `dir` to the last byte with one file, returned.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("create the filler");
    for chunk in [1 << 20, 4096, 1] {
        let bytes = vec![0u8; chunk];
        while file.write_all(&bytes).and_then(|()| file.flush()).is_ok() {}
    }
    path
}

/// How many anti-entropy rounds `addr` has finished with any peer.
fn anti_entropy_rounds(addr: &str) -> u64 {
    let reply = http(addr, "GET", "/metrics", &[], b"");
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    text.lines()
        .filter(|l| l.starts_with("edgekv_anti_entropy_rounds_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A disk filled to the brim by someone else: writes are refused before anything of them is
/// stored (503 with Retry-After), readiness says why, what was refused is seen nowhere, not in
/// the region nor in its peer, and once space is freed writes resume by themselves and what
/// they acknowledge survives a kill -9.
#[test]
fn a_full_disk_refuses_writes_that_are_never_seen_and_writes_resume_when_space_returns() {
    let root = tempfile::tempdir().expect("a temp dir");
    let Some(tmpfs) = Tmpfs::mount(root.path(), "16m") else { return };
    // Rewrites k at once: without the one-write-per-second limit, so the disk is what refuses.
    let flags = ["--anti-entropy-interval", "300ms", "--write-rate-limit", "off"];
    let wnam = RegionSpec::new("wnam", &tmpfs.dir, &flags);
    let enam = RegionSpec::new("enam", root.path(), &flags);
    let origin = wnam.start(&[&enam], &[]);
    let _peer = enam.start(&[&wnam], &[]);
    let ns = create_replicated_namespace(&wnam, &enam);
    must_put(&wnam.addr(), &ns, "k", b"before");
    wait_until(Duration::from_secs(10), "the first write in the peer", || {
        get(&enam.addr(), &ns, "k").as_deref() == Some(b"before")
    });

    let filler = fill(&tmpfs.dir);
    for key in ["k", "fresh"] {
        let reply = http(&wnam.addr(), "PUT", &value_path(&ns, key), &AUTH, b"refused");
        assert_eq!(reply.status, 503, "PUT {key}: {}", String::from_utf8_lossy(&reply.body));
        assert_eq!(reply.headers.get("retry-after").map(String::as_str), Some("5"));
        assert_eq!(reply.json()["success"], false);
    }
    let ready = http(&wnam.addr(), "GET", "/readyz", &[], b"");
    assert_eq!(ready.status, 503);
    let reason = ready.json()["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("free"), "{reason}");
    assert_eq!(http(&wnam.addr(), "GET", "/healthz", &[], b"").status, 200, "still alive");

    // Never seen: not in the region, and not in the peer after anti-entropy has compared
    // them twice (the link has no delay, so delivery would have come first).
    assert_eq!(get(&wnam.addr(), &ns, "k").as_deref(), Some(&b"before"[..]));
    assert_eq!(get(&wnam.addr(), &ns, "fresh"), None);
    let rounds = anti_entropy_rounds(&enam.addr());
    wait_until(Duration::from_secs(10), "two anti-entropy rounds", || {
        anti_entropy_rounds(&enam.addr()) >= rounds + 2
    });
    assert_eq!(get(&enam.addr(), &ns, "k").as_deref(), Some(&b"before"[..]));
    assert_eq!(get(&enam.addr(), &ns, "fresh"), None);

    std::fs::remove_file(&filler).expect("free the space");
    wait_until(Duration::from_secs(10), "readiness once space is back", || {
        http(&wnam.addr(), "GET", "/readyz", &[], b"").status == 200
    });
    must_put(&wnam.addr(), &ns, "k", b"after");
    wait_until(Duration::from_secs(10), "the write after the heal in the peer", || {
        get(&enam.addr(), &ns, "k").as_deref() == Some(b"after")
    });
    kill_9(origin);
    let _origin = wnam.start(&[&enam], &[]);
    assert_eq!(get(&wnam.addr(), &ns, "k").as_deref(), Some(&b"after"[..]));
    assert_eq!(get(&wnam.addr(), &ns, "fresh"), None);
}

/// A region that fills its own disk: writes are acknowledged until the free-space guard
/// refuses them, never a 500 (the engine never meets ENOSPC), and after a kill -9 the region
/// starts again on that disk with every acknowledged write.
#[test]
fn writes_that_would_fill_the_disk_are_refused_before_the_engine_fails() {
    let root = tempfile::tempdir().expect("a temp dir");
    let Some(tmpfs) = Tmpfs::mount(root.path(), "16m") else { return };
    let wnam = RegionSpec::new("wnam", &tmpfs.dir, &[]);
    let enam = RegionSpec::new("enam", root.path(), &[]);
    let origin = wnam.start(&[&enam], &[]);
    let _peer = enam.start(&[&wnam], &[]);
    let ns = create_replicated_namespace(&wnam, &enam);
    // Incompressible, or the journal's compression would let far more fit.
    let mut rng = Rng(7);
    let value: Vec<u8> = (0..64 * 1024).map(|_| rng.next() as u8).collect();
    let mut acked = Vec::new();
    loop {
        let key = format!("k{:04}", acked.len());
        let reply = http(&wnam.addr(), "PUT", &value_path(&ns, &key), &AUTH, &value);
        match reply.status {
            200 => acked.push(key),
            503 => break,
            other => panic!("PUT {key} answered {other}: {}", String::from_utf8_lossy(&reply.body)),
        }
        assert!(acked.len() < 1000, "a 16 MiB disk cannot take 64 MB");
    }
    assert!(acked.len() > 20, "only {} writes fitted", acked.len());
    assert_eq!(http(&wnam.addr(), "GET", "/readyz", &[], b"").status, 503);
    kill_9(origin);
    let _origin = wnam.start(&[&enam], &[]);
    for key in &acked {
        assert_eq!(get(&wnam.addr(), &ns, key).as_deref(), Some(value.as_slice()), "{key}");
    }
}
