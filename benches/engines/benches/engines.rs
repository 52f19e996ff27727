//! Storage engine benchmark for issue 4: the group-commit write path of EdgeKV on redb and on
//! fjall, side by side in one run.
//!
//! Write path: N client threads each send one write at a time to a single committer thread
//! through a channel and wait for its ack. The committer drains whatever is queued (up to
//! `MAX_BATCH` writes), writes every entry (20-byte key, 100-byte value) and its outbox record
//! (12-byte key, 150-byte value) in ONE atomic transaction/batch, makes it durable (redb:
//! `commit()` with `Durability::Immediate`; fjall: one cross-keyspace batch, then
//! `Database::persist(SyncAll | SyncData)`), and only then acks every write of the batch.
//! The same path with durability off (redb `Durability::None`; fjall batch without persist)
//! shows what the fsync costs. Each case also reports the bytes written to storage per write
//! and how much CPU other processes took meanwhile (the machine is shared).
//!
//! Load/recovery: a child process (this binary re-executed) loads `EDGEKV_BENCH_KEYS` entries
//! in durable batches of `MAX_BATCH`, reports load time, disk size and RSS, then keeps
//! committing until the parent kills it with SIGKILL. The parent times the reopen after the
//! kill, checks that every loaded key is there, measures single-thread random point reads,
//! closes cleanly and times a clean reopen.
//!
//! Environment: `EDGEKV_BENCH_SECS` (seconds per write case and for the read phase, default 5),
//! `EDGEKV_BENCH_KEYS` (keys loaded for size/read/recovery, default 1000000),
//! `EDGEKV_BENCH_CLIENTS` (comma-separated client counts, default 1,8,32),
//! `EDGEKV_BENCH_SKIP_LOAD=1` (write path only).

use std::error::Error;
use std::fmt;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// Largest number of client writes the committer puts into one transaction.
const MAX_BATCH: usize = 1024;
const KEY_LEN: usize = 20;
const VALUE_LEN: usize = 100;
const OUTBOX_KEY_LEN: usize = 12;
const OUTBOX_VALUE_LEN: usize = 150;
const CHILD_ENV: &str = "EDGEKV_BENCH_CHILD";
const WRITE_HEADER: &str = "| N   | engine             | durability             |   writes/s | commits/s | w/commit | p50 ms  | p99 ms  |   max ms | KiB/write | other % |";
const WRITE_RULE: &str = "|-----|--------------------|------------------------|------------|-----------|----------|---------|---------|----------|-----------|---------|";
/// Client count of the write-path case run on the preloaded store.
const PRELOADED_CLIENTS: usize = 32;

const ENTRIES: redb::TableDefinition<'static, &[u8], &[u8]> = redb::TableDefinition::new("entries");
const OUTBOX: redb::TableDefinition<'static, &[u8], &[u8]> = redb::TableDefinition::new("outbox");

// ---------------------------------------------------------------------------------------------
// Engines

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// redb, `Durability::Immediate` (the default), 1-phase commit, no quick-repair.
    Redb,
    /// redb, `Durability::Immediate` with `set_quick_repair(true)` (2-phase commit, allocator
    /// state saved in each commit so that reopening after a crash needs no full repair).
    RedbQuickRepair,
    /// redb, `Durability::None`.
    RedbNoSync,
    /// fjall, batch then `persist(PersistMode::SyncAll)` (fsync).
    Fjall,
    /// fjall, batch then `persist(PersistMode::SyncData)` (fdatasync).
    FjallSyncData,
    /// fjall, batch only (journal written to OS buffers, no fsync).
    FjallNoSync,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Self::Redb => "redb",
            Self::RedbQuickRepair => "redb+quick_repair",
            Self::RedbNoSync => "redb",
            Self::Fjall => "fjall",
            Self::FjallSyncData => "fjall",
            Self::FjallNoSync => "fjall",
        }
    }

    fn durability(self) -> &'static str {
        match self {
            Self::Redb | Self::RedbQuickRepair => "Immediate (fsync)",
            Self::RedbNoSync => "None (no fsync)",
            Self::Fjall => "SyncAll (fsync)",
            Self::FjallSyncData => "SyncData (fdatasync)",
            Self::FjallNoSync => "no persist (no fsync)",
        }
    }

    fn is_redb(self) -> bool {
        matches!(self, Self::Redb | Self::RedbQuickRepair | Self::RedbNoSync)
    }

    /// Identifier used between parent and child process.
    fn id(self) -> &'static str {
        match self {
            Self::Redb => "redb",
            Self::RedbQuickRepair => "redb-qr",
            Self::RedbNoSync => "redb-nosync",
            Self::Fjall => "fjall",
            Self::FjallSyncData => "fjall-syncdata",
            Self::FjallNoSync => "fjall-nosync",
        }
    }

    fn from_id(id: &str) -> Option<Self> {
        [
            Self::Redb,
            Self::RedbQuickRepair,
            Self::RedbNoSync,
            Self::Fjall,
            Self::FjallSyncData,
            Self::FjallNoSync,
        ]
        .into_iter()
        .find(|v| v.id() == id)
    }
}

/// One client write: the entry and its outbox record.
struct Write {
    key: [u8; KEY_LEN],
    value: [u8; VALUE_LEN],
    outbox_key: [u8; OUTBOX_KEY_LEN],
    outbox_value: [u8; OUTBOX_VALUE_LEN],
}

enum Store {
    Redb {
        db: redb::Database,
        durability: redb::Durability,
        quick_repair: bool,
    },
    Fjall {
        db: fjall::Database,
        entries: fjall::Keyspace,
        outbox: fjall::Keyspace,
        persist: Option<fjall::PersistMode>,
    },
}

/// Outcome of opening a store: the store, and whether redb ran its repair.
struct Opened {
    store: Store,
    repaired: bool,
}

impl Store {
    fn open(variant: Variant, dir: &Path) -> Res<Opened> {
        if variant.is_redb() {
            let repaired = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&repaired);
            let db = redb::Database::builder()
                .set_repair_callback(move |_| flag.store(true, Ordering::Relaxed))
                .create(dir.join("store.redb"))?;
            // Create both tables up front so that read transactions find them.
            let txn = db.begin_write()?;
            txn.open_table(ENTRIES)?;
            txn.open_table(OUTBOX)?;
            txn.commit()?;
            let durability = if variant == Variant::RedbNoSync {
                redb::Durability::None
            } else {
                redb::Durability::Immediate
            };
            let quick_repair = variant == Variant::RedbQuickRepair;
            let store = Self::Redb { db, durability, quick_repair };
            Ok(Opened { store, repaired: repaired.load(Ordering::Relaxed) })
        } else {
            let db = fjall::Database::builder(dir).open()?;
            let entries = db.keyspace("entries", fjall::KeyspaceCreateOptions::default)?;
            let outbox = db.keyspace("outbox", fjall::KeyspaceCreateOptions::default)?;
            let persist = match variant {
                Variant::FjallSyncData => Some(fjall::PersistMode::SyncData),
                Variant::FjallNoSync => None,
                _ => Some(fjall::PersistMode::SyncAll),
            };
            Ok(Opened { store: Self::Fjall { db, entries, outbox, persist }, repaired: false })
        }
    }

    /// Writes the batch atomically and returns once it is as durable as the variant makes it.
    fn commit(&self, batch: &[Write], with_outbox: bool) -> Res<()> {
        match self {
            Self::Redb { db, durability, quick_repair } => {
                let mut txn = db.begin_write()?;
                txn.set_durability(*durability)?;
                if *quick_repair {
                    txn.set_quick_repair(true);
                }
                {
                    let mut entries = txn.open_table(ENTRIES)?;
                    let mut outbox = txn.open_table(OUTBOX)?;
                    for w in batch {
                        entries.insert(w.key.as_slice(), w.value.as_slice())?;
                        if with_outbox {
                            outbox.insert(w.outbox_key.as_slice(), w.outbox_value.as_slice())?;
                        }
                    }
                }
                txn.commit()?;
            }
            Self::Fjall { db, entries, outbox, persist } => {
                let mut b = db.batch();
                for w in batch {
                    b.insert(entries, w.key.as_slice(), w.value.as_slice());
                    if with_outbox {
                        b.insert(outbox, w.outbox_key.as_slice(), w.outbox_value.as_slice());
                    }
                }
                b.commit()?;
                if let Some(mode) = persist {
                    db.persist(*mode)?;
                }
            }
        }
        Ok(())
    }
}

/// Random point reads: one read transaction (redb) / one keyspace get (fjall) per key, as a
/// node serving independent GET requests would do.
struct Reader<'a>(&'a Store);

impl Reader<'_> {
    fn get(&self, key: &[u8]) -> Res<Option<usize>> {
        match self.0 {
            Store::Redb { db, .. } => {
                use redb::ReadableDatabase as _;
                let txn = db.begin_read()?;
                let table = txn.open_table(ENTRIES)?;
                Ok(table.get(key)?.map(|v| v.value().len()))
            }
            Store::Fjall { entries, .. } => Ok(entries.get(key)?.map(|v| v.len())),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Data

/// SplitMix64: deterministic pseudo-random keys and incompressible values.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Key number `i` of stream `stream`: "ns1/" + 16 hex digits (20 bytes), spread at random.
fn entry_key(stream: u64, i: u64) -> [u8; KEY_LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut k = [0u8; KEY_LEN];
    k[..4].copy_from_slice(b"ns1/");
    let h = mix(mix(stream) ^ i);
    for (n, byte) in k[4..].iter_mut().enumerate() {
        *byte = HEX[((h >> (60 - 4 * n)) & 0xf) as usize];
    }
    k
}

fn fill(seed: u64, out: &mut [u8]) {
    let mut s = seed;
    for chunk in out.chunks_mut(8) {
        s = mix(s);
        let bytes = s.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

fn make_write(stream: u64, i: u64, outbox_seq: u64) -> Write {
    let mut w = Write {
        key: entry_key(stream, i),
        value: [0; VALUE_LEN],
        outbox_key: [0; OUTBOX_KEY_LEN],
        outbox_value: [0; OUTBOX_VALUE_LEN],
    };
    fill(stream ^ i.rotate_left(17), &mut w.value);
    fill(stream ^ i.rotate_left(29) ^ 1, &mut w.outbox_value);
    // Outbox keys are append-ordered (sequence number, then origin), as an HLC-ordered log.
    w.outbox_key[..8].copy_from_slice(&outbox_seq.to_be_bytes());
    w.outbox_key[8..].copy_from_slice(&(stream as u32).to_be_bytes());
    w
}

// ---------------------------------------------------------------------------------------------
// Temp dirs, sizes, environment

static DIR_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A directory under `std::env::temp_dir()` removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Res<Self> {
        let n = DIR_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir()
            .join(format!("edgekv-engine-bench-{}-{nanos}-{n}-{label}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// (apparent bytes, allocated bytes) of every file under `dir`.
fn disk_usage(dir: &Path) -> Res<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let mut total = (0, 0);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            let (a, b) = disk_usage(&entry.path())?;
            total.0 += a;
            total.1 += b;
        } else {
            total.0 += meta.len();
            total.1 += meta.blocks() * 512;
        }
    }
    Ok(total)
}

/// VmRSS and VmHWM of this process in MiB.
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU ticks: (busy on all CPUs, total on all CPUs, used by this process).
#[derive(Clone, Copy)]
struct CpuTicks {
    busy: u64,
    total: u64,
    own: u64,
}

fn cpu_ticks() -> CpuTicks {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let field = |i: usize| cpu.get(i).copied().unwrap_or(0);
    let busy = field(0) + field(1) + field(2) + field(5) + field(6);
    let total = busy + field(3) + field(4) + field(7);
    // utime and stime are fields 14 and 15; the command name (field 2) may contain spaces.
    let own_stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = own_stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> =
        after_name.split_whitespace().skip(11).take(2).filter_map(|f| f.parse().ok()).collect();
    CpuTicks { busy, total, own: fields.iter().sum() }
}

/// Share of the whole machine's CPU time used by other processes between two snapshots, in %.
fn others_cpu_percent(before: CpuTicks, after: CpuTicks) -> f64 {
    let total = after.total.saturating_sub(before.total).max(1) as f64;
    let busy = after.busy.saturating_sub(before.busy);
    let own = after.own.saturating_sub(before.own);
    busy.saturating_sub(own) as f64 * 100.0 / total
}

/// Bytes this process caused to be sent to the storage layer (`write_bytes` of /proc/self/io).
fn io_write_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[idx]) / 1000.0
}

// ---------------------------------------------------------------------------------------------
// Group-commit write path

struct Request {
    write: Write,
    ack: mpsc::Sender<()>,
}

struct WriteResult {
    variant: Variant,
    clients: usize,
    acked: u64,
    commits: u64,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    written: u64,
    others_cpu: f64,
}

fn run_write_case(variant: Variant, clients: usize, secs: f64) -> Res<WriteResult> {
    let dir = TempDir::new(variant.id())?;
    let store = Store::open(variant, &dir.0)?.store;
    let (result, store) = drive_writes(store, variant, clients, secs)?;
    drop(store);
    drop(dir);
    Ok(result)
}

/// Runs the group-commit write path against `store` for `secs` seconds and hands the store back.
fn drive_writes(
    store: Store,
    variant: Variant,
    clients: usize,
    secs: f64,
) -> Res<(WriteResult, Store)> {
    let (tx, rx) = mpsc::channel::<Request>();
    let commits = Arc::new(AtomicU64::new(0));
    let commits_in = Arc::clone(&commits);

    let committer = thread::spawn(move || -> Res<Store> {
        let mut batch: Vec<Write> = Vec::with_capacity(MAX_BATCH);
        let mut acks: Vec<mpsc::Sender<()>> = Vec::with_capacity(MAX_BATCH);
        while let Ok(first) = rx.recv() {
            batch.push(first.write);
            acks.push(first.ack);
            while batch.len() < MAX_BATCH {
                let Ok(next) = rx.try_recv() else { break };
                batch.push(next.write);
                acks.push(next.ack);
            }
            store.commit(&batch, true)?;
            commits_in.fetch_add(1, Ordering::Relaxed);
            for ack in acks.drain(..) {
                let _ = ack.send(());
            }
            batch.clear();
        }
        Ok(store)
    });

    let start_line = Arc::new(Barrier::new(clients + 1));
    let outbox_seq = Arc::new(AtomicU64::new(0));
    let duration = Duration::from_secs_f64(secs);
    let mut handles = Vec::with_capacity(clients);
    for client in 0..clients {
        let tx = tx.clone();
        let start_line = Arc::clone(&start_line);
        let outbox_seq = Arc::clone(&outbox_seq);
        handles.push(thread::spawn(move || -> Res<Vec<u32>> {
            let (ack_tx, ack_rx) = mpsc::channel();
            let mut latencies = Vec::with_capacity(1 << 16);
            let stream = 1000 + client as u64;
            start_line.wait();
            let deadline = Instant::now() + duration;
            let mut i = 0u64;
            loop {
                let write = make_write(stream, i, outbox_seq.fetch_add(1, Ordering::Relaxed));
                let sent = Instant::now();
                if sent >= deadline {
                    break;
                }
                tx.send(Request { write, ack: ack_tx.clone() })?;
                ack_rx.recv()?;
                let micros = sent.elapsed().as_micros();
                latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
                i += 1;
            }
            Ok(latencies)
        }));
    }
    drop(tx);
    start_line.wait();
    let started = Instant::now();
    let cpu_before = cpu_ticks();
    let io_before = io_write_bytes();
    let mut all = Vec::new();
    for h in handles {
        let lat = h.join().map_err(|_| "client thread panicked")??;
        all.extend(lat);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let store = committer.join().map_err(|_| "committer thread panicked")??;
    let written = io_write_bytes().saturating_sub(io_before);
    let others_cpu = others_cpu_percent(cpu_before, cpu_ticks());
    all.sort_unstable();
    let result = WriteResult {
        variant,
        clients,
        acked: all.len() as u64,
        commits: commits.load(Ordering::Relaxed),
        secs: elapsed,
        p50_ms: percentile(&all, 0.50),
        p99_ms: percentile(&all, 0.99),
        max_ms: all.last().map_or(f64::NAN, |&m| f64::from(m) / 1000.0),
        written,
        others_cpu,
    };
    Ok((result, store))
}

impl fmt::Display for WriteResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per_s = self.acked as f64 / self.secs;
        let commits_s = self.commits as f64 / self.secs;
        let avg_batch = self.acked as f64 / self.commits.max(1) as f64;
        let kib_per_write = self.written as f64 / 1024.0 / self.acked.max(1) as f64;
        write!(
            f,
            "| {:>3} | {:<18} | {:<22} | {:>10.0} | {:>9.0} | {:>8.1} | {:>7.3} | {:>7.3} | {:>8.2} | {:>9.2} | {:>7.0} |",
            self.clients,
            self.variant.name(),
            self.variant.durability(),
            per_s,
            commits_s,
            avg_batch,
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            kib_per_write,
            self.others_cpu,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Load, size, crash recovery, point reads

/// Child process: load `keys` entries in durable batches, report, then keep committing until
/// killed.
fn child_main(spec: &str) -> Res<()> {
    let mut parts = spec.splitn(3, ':');
    let (Some(id), Some(keys), Some(dir)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("bad {CHILD_ENV}: {spec}").into());
    };
    let variant = Variant::from_id(id).ok_or("unknown variant")?;
    let keys: u64 = keys.parse()?;
    let dir = Path::new(dir);
    let store = Store::open(variant, dir)?.store;
    let started = Instant::now();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut i = 0u64;
    while i < keys {
        batch.clear();
        while batch.len() < MAX_BATCH && i < keys {
            batch.push(make_write(1, i, i));
            i += 1;
        }
        // Entries only: outbox records are deleted once delivered, so the steady-state size of
        // a store is its entries.
        store.commit(&batch, false)?;
    }
    let load_secs = started.elapsed().as_secs_f64();
    let (apparent, allocated) = disk_usage(dir)?;
    let (rss, hwm) = rss_mib();
    let mut out = std::io::stdout().lock();
    writeln!(out, "LOADED {load_secs} {apparent} {allocated} {rss} {hwm}")?;
    out.flush()?;
    drop(out);
    // Keep writing (keys the parent does not check) so that the kill lands mid-commit.
    let mut j = 0u64;
    loop {
        batch.clear();
        for _ in 0..MAX_BATCH {
            batch.push(make_write(2, j, keys + j));
            j += 1;
        }
        store.commit(&batch, true)?;
    }
}

struct LoadResult {
    variant: Variant,
    keys: u64,
    load_secs: f64,
    apparent: u64,
    allocated: u64,
    rss_mib: f64,
    hwm_mib: f64,
    crash_open_secs: f64,
    repaired: bool,
    missing: u64,
    reads_per_s: f64,
    clean_open_secs: f64,
    preloaded_writes: WriteResult,
}

fn run_load_case(variant: Variant, keys: u64, secs: f64) -> Res<LoadResult> {
    let dir = TempDir::new(&format!("load-{}", variant.id()))?;
    let exe = std::env::current_exe()?;
    let spec = format!("{}:{keys}:{}", variant.id(), dir.0.display());
    let mut child = Command::new(exe)
        .env(CHILD_ENV, spec)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no child stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.first() != Some(&"LOADED") || fields.len() != 6 {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("child failed to load: {line:?}").into());
    }
    let load_secs: f64 = fields[1].parse()?;
    let apparent: u64 = fields[2].parse()?;
    let allocated: u64 = fields[3].parse()?;
    let rss_mib: f64 = fields[4].parse()?;
    let hwm_mib: f64 = fields[5].parse()?;
    // Let it commit a little more, then kill -9 it in the middle of its write loop.
    thread::sleep(Duration::from_millis(300));
    child.kill()?;
    child.wait()?;

    let t = Instant::now();
    let opened = Store::open(variant, &dir.0)?;
    let crash_open_secs = t.elapsed().as_secs_f64();
    let store = opened.store;

    // Every key loaded before "LOADED" was acknowledged: all must be there.
    let reader = Reader(&store);
    let mut missing = 0u64;
    for i in 0..keys {
        if reader.get(&entry_key(1, i))? != Some(VALUE_LEN) {
            missing += 1;
        }
    }

    // Random point reads of existing keys, single thread.
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut reads = 0u64;
    let mut rng = 7u64;
    while Instant::now() < deadline {
        for _ in 0..256 {
            rng = mix(rng);
            let key = entry_key(1, rng % keys);
            if reader.get(&key)?.is_none() {
                return Err("point read missed an existing key".into());
            }
        }
        reads += 256;
    }
    let reads_per_s = reads as f64 / started.elapsed().as_secs_f64();

    // The write path again, now on a store that already holds `keys` entries.
    let (preloaded_writes, store) = drive_writes(store, variant, PRELOADED_CLIENTS, secs)?;
    drop(store);

    let t = Instant::now();
    let reopened = Store::open(variant, &dir.0)?;
    let clean_open_secs = t.elapsed().as_secs_f64();
    drop(reopened);

    Ok(LoadResult {
        variant,
        keys,
        load_secs,
        apparent,
        allocated,
        rss_mib,
        hwm_mib,
        crash_open_secs,
        repaired: opened.repaired,
        missing,
        reads_per_s,
        clean_open_secs,
        preloaded_writes,
    })
}

impl fmt::Display for LoadResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MIB: f64 = 1024.0 * 1024.0;
        let repair = if !self.variant.is_redb() {
            "n/a"
        } else if self.repaired {
            "yes"
        } else {
            "no"
        };
        write!(
            f,
            "| {:<18} | {:>9} | {:>6.1} | {:>9.0} | {:>8.1} | {:>9.1} | {:>7.0} | {:>7.0} | {:>12.3} | {:<6} | {:>7} | {:>12.3} | {:>9.0} |",
            self.variant.name(),
            self.keys,
            self.load_secs,
            self.keys as f64 / self.load_secs,
            self.apparent as f64 / MIB,
            self.allocated as f64 / MIB,
            self.rss_mib,
            self.hwm_mib,
            self.crash_open_secs,
            repair,
            self.missing,
            self.clean_open_secs,
            self.reads_per_s,
        )
    }
}

// ---------------------------------------------------------------------------------------------

fn main() -> Res<()> {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return child_main(&spec);
    }
    let secs = env_u64("EDGEKV_BENCH_SECS", 5) as f64;
    let keys = env_u64("EDGEKV_BENCH_KEYS", 1_000_000).max(1);
    let clients: Vec<usize> = std::env::var("EDGEKV_BENCH_CLIENTS")
        .unwrap_or_else(|_| "1,8,32".to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let skip_load = std::env::var("EDGEKV_BENCH_SKIP_LOAD").is_ok_and(|v| v == "1");
    let only: Option<Vec<Variant>> = std::env::var("EDGEKV_BENCH_VARIANTS")
        .ok()
        .map(|v| v.split(',').filter_map(|s| Variant::from_id(s.trim())).collect());

    println!("EdgeKV storage engine benchmark (redb 4.x vs fjall 3.x)");
    println!(
        "temp dir: {}; {secs} s per write case; {} keys for load/read/recovery; loadavg at start: {}",
        std::env::temp_dir().display(),
        keys,
        loadavg(),
    );
    println!(
        "write = 20 B key + 100 B value, plus a 12 B key + 150 B outbox record in the same \
         transaction; up to {MAX_BATCH} writes per commit"
    );
    println!();

    // Interleaved: engines alternate within each client count, and which engine goes first
    // alternates between client counts.
    let pairs = [
        (Variant::Redb, Variant::Fjall),
        (Variant::RedbQuickRepair, Variant::FjallSyncData),
        (Variant::RedbNoSync, Variant::FjallNoSync),
    ];
    println!("Group-commit write path (acknowledged writes; latency = send to ack, per write)");
    println!(
        "KiB/write = bytes this process sent to storage (/proc/self/io write_bytes, including \
         background threads) per acknowledged write; other % = share of the machine's \
         CPU time used by other processes during the case (noise indicator)"
    );
    println!("{WRITE_HEADER}");
    println!("{WRITE_RULE}");
    for (round, &n) in clients.iter().enumerate() {
        for &(a, b) in &pairs {
            let order = if round.is_multiple_of(2) { [a, b] } else { [b, a] };
            for v in order {
                if only.as_ref().is_some_and(|o| !o.contains(&v)) {
                    continue;
                }
                let r = run_write_case(v, n, secs)?;
                println!("{r}");
            }
        }
    }
    println!("loadavg after write cases: {}", loadavg());
    println!();

    if !skip_load {
        println!(
            "Load {keys} entries (20 B key + 100 B value, batches of {MAX_BATCH}, durable commit \
             each), kill -9 the writer, reopen, verify, point reads ({secs} s, 1 thread), clean \
             reopen"
        );
        println!(
            "| engine             |      keys | load s |    keys/s | disk MiB | alloc MiB | RSS MiB | HWM MiB | crash open s | repair | missing | clean open s |   reads/s |"
        );
        println!(
            "|--------------------|-----------|--------|-----------|----------|-----------|---------|---------|--------------|--------|---------|--------------|-----------|"
        );
        let mut preloaded = Vec::new();
        for v in [Variant::Redb, Variant::Fjall, Variant::RedbQuickRepair] {
            if only.as_ref().is_some_and(|o| !o.contains(&v)) {
                continue;
            }
            let r = run_load_case(v, keys, secs)?;
            println!("{r}");
            preloaded.push(r.preloaded_writes);
        }
        println!();
        println!(
            "Group-commit write path on the store preloaded with {keys} entries (after the reopen \
             above), {PRELOADED_CLIENTS} clients, {secs} s"
        );
        println!("{WRITE_HEADER}");
        println!("{WRITE_RULE}");
        for r in &preloaded {
            println!("{r}");
        }
        println!("loadavg at end: {}", loadavg());
    }
    Ok(())
}
