//! The free-space guard: writes are refused before they reach the storage engine when the data
//! directory's filesystem is about to fill up.
//!
//! A storage engine that meets `ENOSPC` halfway through a journal write or a memtable flush
//! cannot tell which of its batches made it: fjall poisons itself and refuses everything until
//! it is reopened. Refusing a write up front is exact instead: nothing of it was written, the
//! client is told so (503, retry later), reads go on, and writes resume by themselves once
//! space is back. So every commit first asks the guard for room: its own bytes (an estimate of
//! what it adds to the journal) on top of a reserve kept free for the engine's own work (memtable
//! flushes and compactions write new tables before they delete old ones).
//!
//! The free space is read with `statvfs` and cached; the cache is refreshed at least every
//! [`REFRESH`], and on every commit once free space is within [`CLOSE_FACTOR`] reserves of the
//! limit, where a stale reading could let a write through that no longer fits.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How old a cached reading may be while there is plenty of room.
const REFRESH: Duration = Duration::from_millis(10);

/// Below this many reserves of free space, every commit reads the free space afresh.
const CLOSE_FACTOR: u64 = 16;

/// Readiness fails once free space is within half a reserve of the reserve, a little before
/// writes are refused, so that a load balancer turns writers away before they see 503s.
const READY_HEADROOM_DIVISOR: u64 = 2;

/// Internal commits (expiry, tombstone collection, delivery positions) may dig into the reserve
/// down to this fraction of it: they are small, and they are what frees the index of expired
/// entries. Client and peer writes stop at the full reserve.
const INTERNAL_FLOOR_DIVISOR: u64 = 4;

/// How much free space the store keeps for the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reserve {
    /// A fixed number of bytes.
    Bytes(u64),
    /// A share of the filesystem's size, in percent (0 to 50).
    Percent(u8),
}

impl Default for Reserve {
    /// 64 MiB, or 10 % of a smaller filesystem: room for a memtable flush on a normal disk,
    /// and still most of a small test filesystem for data.
    fn default() -> Self {
        Reserve::Bytes(DEFAULT_RESERVE_BYTES)
    }
}

const DEFAULT_RESERVE_BYTES: u64 = 64 << 20;

impl Reserve {
    /// The reserve in bytes on a filesystem of `total` bytes. A fixed reserve is capped at a
    /// tenth of the filesystem, so a small filesystem is not all reserve.
    pub fn bytes(self, total: u64) -> u64 {
        match self {
            Reserve::Bytes(bytes) => bytes.min(total / 10),
            Reserve::Percent(percent) => total / 100 * u64::from(percent),
        }
    }
}

impl std::fmt::Display for Reserve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reserve::Bytes(bytes) => f.write_str(&human_bytes(*bytes)),
            Reserve::Percent(percent) => write!(f, "{percent}%"),
        }
    }
}

impl FromStr for Reserve {
    type Err = String;

    /// `64MiB`, `512KB`, `1GiB`, `1000000` (bytes) or `5%`.
    fn from_str(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if let Some(percent) = raw.strip_suffix('%') {
            return match percent.trim().parse::<u8>() {
                Ok(p) if p <= 50 => Ok(Reserve::Percent(p)),
                _ => Err(format!("storage reserve {raw:?}: a percentage must be 0% to 50%")),
            };
        }
        edgekv_core::parse_bytes(raw).map(Reserve::Bytes).map_err(|_| {
            format!("storage reserve {raw:?}: expected a size such as 64MiB or 1GB, or a percentage such as 5%")
        })
    }
}

/// A byte count for people: `16.0 MiB`, `512 B`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Why the guard refused a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NoSpace {
    pub(crate) free: u64,
    pub(crate) reserve: u64,
    pub(crate) needed: u64,
}

impl std::fmt::Display for NoSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the data directory's filesystem has {} free and keeps {} for the storage engine: \
             not enough for {} more; writes resume once space is freed",
            human_bytes(self.free),
            human_bytes(self.reserve),
            human_bytes(self.needed)
        )
    }
}

/// Reads a filesystem's free and total bytes.
type Source = Box<dyn Fn(&Path) -> std::io::Result<(u64, u64)> + Send + Sync>;

/// Free and total bytes of the filesystem holding `dir`, as an unprivileged writer sees them.
fn statvfs(dir: &Path) -> std::io::Result<(u64, u64)> {
    let stat = rustix::fs::statvfs(dir)?;
    let unit = stat.f_frsize.max(1);
    Ok((stat.f_bavail.saturating_mul(unit), stat.f_blocks.saturating_mul(unit)))
}

/// The guard of one data directory.
pub(crate) struct SpaceGuard {
    dir: PathBuf,
    reserve: Reserve,
    source: Source,
    /// Free bytes at the last reading, less what was admitted since.
    free: AtomicU64,
    /// The reserve in bytes, from the filesystem's size at the last reading.
    reserve_bytes: AtomicU64,
    /// When the last reading was taken; the lock also keeps two readings from racing.
    read_at: Mutex<Instant>,
}

impl std::fmt::Debug for SpaceGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpaceGuard")
            .field("dir", &self.dir)
            .field("reserve", &self.reserve)
            .finish()
    }
}

impl SpaceGuard {
    /// A guard for `dir`, with a first reading taken now. A filesystem whose free space cannot
    /// be read is not guarded (the engine's own errors still stop writes there).
    pub(crate) fn new(dir: &Path, reserve: Reserve) -> Self {
        Self::with_source(dir, reserve, Box::new(statvfs))
    }

    fn with_source(dir: &Path, reserve: Reserve, source: Source) -> Self {
        let guard = SpaceGuard {
            dir: dir.to_path_buf(),
            reserve,
            source,
            free: AtomicU64::new(u64::MAX),
            reserve_bytes: AtomicU64::new(0),
            read_at: Mutex::new(Instant::now()),
        };
        guard.read();
        guard
    }

    /// Reads the free space afresh.
    fn read(&self) {
        match (self.source)(&self.dir) {
            Ok((free, total)) => {
                self.free.store(free, Ordering::Release);
                self.reserve_bytes.store(self.reserve.bytes(total), Ordering::Release);
            }
            Err(error) => {
                tracing::debug!(%error, dir = %self.dir.display(), "cannot read the free space");
                self.free.store(u64::MAX, Ordering::Release);
            }
        }
    }

    /// Makes sure the cached reading is fresh enough for a commit of `bytes`.
    fn refresh_for(&self, bytes: u64) {
        let free = self.free.load(Ordering::Acquire);
        let reserve = self.reserve_bytes.load(Ordering::Acquire);
        let close = free < reserve.saturating_add(bytes).saturating_mul(CLOSE_FACTOR);
        let mut read_at = self.read_at.lock();
        if close || read_at.elapsed() >= REFRESH {
            self.read();
            *read_at = Instant::now();
        }
    }

    /// Admits a commit that adds about `bytes` to the disk, or refuses it. `internal` commits
    /// may use part of the reserve.
    pub(crate) fn admit(&self, bytes: u64, internal: bool) -> Result<(), NoSpace> {
        self.refresh_for(bytes);
        let reserve = self.reserve_bytes.load(Ordering::Acquire);
        let floor = if internal { reserve / INTERNAL_FLOOR_DIVISOR } else { reserve };
        let taken = self.free.fetch_update(Ordering::AcqRel, Ordering::Acquire, |free| {
            (free >= floor.saturating_add(bytes)).then(|| free - bytes)
        });
        taken.map(|_| ()).map_err(|free| NoSpace { free, reserve, needed: bytes })
    }

    /// Whether the store should count as ready for writes, from a fresh reading: free space is
    /// more than the reserve and a headroom (see [`READY_HEADROOM_DIVISOR`]); `Err` says why not.
    pub(crate) fn check(&self) -> Result<(), NoSpace> {
        let mut read_at = self.read_at.lock();
        self.read();
        *read_at = Instant::now();
        let free = self.free.load(Ordering::Acquire);
        let reserve = self.reserve_bytes.load(Ordering::Acquire);
        let headroom = reserve / READY_HEADROOM_DIVISOR;
        if free > reserve.saturating_add(headroom) {
            Ok(())
        } else {
            Err(NoSpace { free, reserve, needed: headroom })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn reserves_parse_and_scale() {
        assert_eq!("64MiB".parse::<Reserve>(), Ok(Reserve::Bytes(64 << 20)));
        assert_eq!(" 5% ".parse::<Reserve>(), Ok(Reserve::Percent(5)));
        assert_eq!("1000".parse::<Reserve>(), Ok(Reserve::Bytes(1000)));
        assert_eq!("2GB".parse::<Reserve>(), Ok(Reserve::Bytes(2_000_000_000)));
        for bad in ["", "MiB", "-1MiB", "64 megs", "51%", "1.5GiB", "99999999999999999999GiB"] {
            assert!(bad.parse::<Reserve>().is_err(), "{bad}");
        }
        // A fixed reserve is at most a tenth of the filesystem.
        assert_eq!(Reserve::Bytes(64 << 20).bytes(16 << 20), (16 << 20) / 10);
        assert_eq!(Reserve::Bytes(64 << 20).bytes(100 << 30), 64 << 20);
        assert_eq!(Reserve::Percent(10).bytes(1000), 100);
    }

    /// A filesystem of 10,000 bytes whose free space the test sets.
    fn fake(free: &Arc<AtomicU64>, reserve: Reserve) -> SpaceGuard {
        let free = Arc::clone(free);
        let source: Source = Box::new(move |_| Ok((free.load(Ordering::Acquire), 10_000)));
        SpaceGuard::with_source(Path::new("/fake"), reserve, source)
    }

    #[test]
    fn admission_stops_at_the_reserve_and_resumes_when_space_returns() {
        let free = Arc::new(AtomicU64::new(1000));
        let guard = fake(&free, Reserve::Bytes(100));
        guard.admit(800, false).unwrap();
        // The journal grew by what was admitted; near the limit every commit reads afresh.
        free.store(200, Ordering::Release);
        let err = guard.admit(101, false).unwrap_err();
        assert_eq!(err, NoSpace { free: 200, reserve: 100, needed: 101 });
        guard.admit(100, false).unwrap();
        free.store(100, Ordering::Release);
        assert!(guard.admit(1, false).is_err());
        assert!(guard.check().is_err(), "no room above the reserve");
        guard.admit(70, true).unwrap();
        free.store(30, Ordering::Release);
        assert!(guard.admit(10, true).is_err(), "internal commits stop at a quarter reserve");
        free.store(5000, Ordering::Release);
        guard.admit(4000, false).unwrap();
        assert!(guard.check().is_ok());
    }

    #[test]
    fn an_unreadable_filesystem_is_not_guarded() {
        let source: Source = Box::new(|_| Err(std::io::Error::other("no statvfs here")));
        let guard = SpaceGuard::with_source(Path::new("/fake"), Reserve::Percent(50), source);
        guard.admit(1 << 40, false).unwrap();
    }

    #[test]
    fn a_real_directory_has_room_for_a_small_write() {
        let dir = tempfile::tempdir().unwrap();
        let guard = SpaceGuard::new(dir.path(), Reserve::Bytes(0));
        guard.admit(1, false).unwrap();
        guard.check().unwrap();
        let huge = SpaceGuard::new(dir.path(), Reserve::Percent(50));
        let err = huge.admit(u64::MAX / 2, false).unwrap_err();
        assert!(err.to_string().contains("writes resume once space is freed"), "{err}");
    }
}
