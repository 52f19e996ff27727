//! The hybrid logical clock that stamps every write.
//!
//! A [`Timestamp`] packs milliseconds since the Unix epoch in its upper 48 bits and a logical
//! counter in its lower 16. A region issues `max(physical_now, last + 1)`, so its timestamps
//! increase strictly even when the wall clock stalls or steps back, and stay close to real time
//! so that "last writer wins" means what a user expects. Receiving a remote timestamp advances
//! `last` past it (a causally later write always wins), unless it lies further ahead of the local
//! physical clock than `max_delta`: a peer with a runaway clock must not drag everyone's clock
//! into the future, so such timestamps are refused with [`SkewError`].
//!
//! The physical clock is a trait object. Tests drive a [`ManualClock`]; clock-skew experiments
//! wrap the system clock with an offset. Nothing else in EdgeKV reads the wall clock for
//! versioning or expiry, so one injected clock moves both.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bits of a [`Timestamp`] that hold the logical counter.
const LOGICAL_BITS: u32 = 16;

/// A hybrid logical clock reading: physical milliseconds and a logical counter, as one `u64`
/// whose integer order is the clock order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The timestamp at physical time `ms` with a zero logical counter.
    pub fn from_physical_ms(ms: u64) -> Self {
        Timestamp(ms << LOGICAL_BITS)
    }

    /// Milliseconds since the Unix epoch.
    pub fn physical_ms(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    /// The logical counter, which orders timestamps issued within one millisecond.
    pub fn logical(self) -> u16 {
        (self.0 & ((1 << LOGICAL_BITS) - 1)) as u16
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({}ms+{})", self.physical_ms(), self.logical())
    }
}

/// Waits on behalf of a region's tasks. The default waits on the async runtime's timers; a
/// simulator supplies its own, on virtual time, together with a physical clock that reads the
/// same virtual time.
pub trait Timers: Send + Sync + fmt::Debug {
    /// A future that is ready once `duration` has passed.
    fn sleep(
        &self,
        duration: std::time::Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
}

/// A source of physical time in milliseconds since the Unix epoch.
pub trait PhysicalClock: Send + Sync + fmt::Debug {
    /// The current physical time.
    fn now_ms(&self) -> u64;

    /// The same in microseconds, for clocks that read finer (the lab places events with it).
    fn now_us(&self) -> u64 {
        self.now_ms().saturating_mul(1000)
    }
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl PhysicalClock for SystemClock {
    fn now_ms(&self) -> u64 {
        // A clock before 1970 is a broken machine; treating it as the epoch keeps the node up and
        // the HLC still issues increasing timestamps from its persisted floor.
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis() as u64
    }

    fn now_us(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_micros() as u64
    }
}

/// A clock that only moves when told to: for tests and deterministic experiments.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock reading `ms`.
    pub fn new(ms: u64) -> Self {
        ManualClock(Arc::new(AtomicU64::new(ms)))
    }

    /// Sets the reading, forwards or backwards.
    pub fn set_ms(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    /// Moves the reading forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }
}

impl PhysicalClock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Another clock shifted by an adjustable offset: the clock-offset fault of chaos experiments,
/// which skews one region's HLC (and its expiry decisions) without touching the machine's clock.
#[derive(Debug)]
pub struct OffsetClock {
    inner: Arc<dyn PhysicalClock>,
    offset_ms: std::sync::atomic::AtomicI64,
}

impl OffsetClock {
    /// `inner` with no offset.
    pub fn new(inner: Arc<dyn PhysicalClock>) -> Self {
        OffsetClock { inner, offset_ms: std::sync::atomic::AtomicI64::new(0) }
    }

    /// Sets the offset in milliseconds (negative puts the clock behind).
    pub fn set_offset_ms(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, Ordering::SeqCst);
    }

    /// The current offset in milliseconds.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::SeqCst)
    }
}

impl PhysicalClock for OffsetClock {
    fn now_ms(&self) -> u64 {
        self.inner.now_ms().saturating_add_signed(self.offset_ms())
    }
}

/// A remote timestamp was too far ahead of the local physical clock to be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("remote timestamp is {ahead_ms} ms ahead of the local clock (limit {max_delta_ms} ms)")]
pub struct SkewError {
    /// How far ahead the remote timestamp was.
    pub ahead_ms: u64,
    /// The configured limit.
    pub max_delta_ms: u64,
}

/// A hybrid logical clock over an injectable physical clock. Shared by reference; lock-free.
#[derive(Debug)]
pub struct Hlc {
    physical: Arc<dyn PhysicalClock>,
    last: AtomicU64,
    max_delta_ms: u64,
}

impl Hlc {
    /// The default bound on how far a remote timestamp may lead the local clock.
    pub const DEFAULT_MAX_DELTA: Duration = Duration::from_millis(500);

    /// A clock over `physical` that refuses remote timestamps more than `max_delta` ahead.
    pub fn new(physical: Arc<dyn PhysicalClock>, max_delta: Duration) -> Self {
        Hlc { physical, last: AtomicU64::new(0), max_delta_ms: max_delta.as_millis() as u64 }
    }

    /// The current physical time, from the same source the HLC uses (for expiry decisions).
    pub fn physical_now_ms(&self) -> u64 {
        self.physical.now_ms()
    }

    /// Issues a new timestamp, strictly greater than every timestamp issued or observed before.
    pub fn now(&self) -> Timestamp {
        let physical = Timestamp::from_physical_ms(self.physical.now_ms()).0;
        let mut last = self.last.load(Ordering::Acquire);
        loop {
            let next = physical.max(last.saturating_add(1));
            match self.last.compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Timestamp(next),
                Err(actual) => last = actual,
            }
        }
    }

    /// Observes a timestamp from a peer so that later local writes order after it.
    pub fn observe(&self, remote: Timestamp) -> Result<(), SkewError> {
        let now = self.physical.now_ms();
        let ahead_ms = remote.physical_ms().saturating_sub(now);
        if ahead_ms > self.max_delta_ms {
            return Err(SkewError { ahead_ms, max_delta_ms: self.max_delta_ms });
        }
        self.last.fetch_max(remote.0, Ordering::AcqRel);
        Ok(())
    }

    /// Raises the clock's floor, e.g. to a persisted upper bound after a restart, so no
    /// timestamp at or below `floor` is ever issued again.
    pub fn raise_floor(&self, floor: Timestamp) {
        self.last.fetch_max(floor.0, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hlc_at(ms: u64) -> (ManualClock, Hlc) {
        let clock = ManualClock::new(ms);
        let hlc = Hlc::new(Arc::new(clock.clone()), Hlc::DEFAULT_MAX_DELTA);
        (clock, hlc)
    }

    #[test]
    fn follows_physical_time_when_it_moves() {
        let (clock, hlc) = hlc_at(1_000);
        assert_eq!(hlc.now(), Timestamp::from_physical_ms(1_000));
        clock.advance(Duration::from_millis(5));
        assert_eq!(hlc.now(), Timestamp::from_physical_ms(1_005));
    }

    #[test]
    fn counts_logically_when_the_clock_stalls_or_steps_back() {
        let (clock, hlc) = hlc_at(1_000);
        let a = hlc.now();
        let b = hlc.now();
        clock.set_ms(900);
        let c = hlc.now();
        assert!(a < b && b < c);
        assert_eq!((c.physical_ms(), c.logical()), (1_000, 2));
    }

    #[test]
    fn observing_a_remote_timestamp_orders_later_writes_after_it() {
        let (_clock, hlc) = hlc_at(1_000);
        let remote = Timestamp::from_physical_ms(1_400);
        hlc.observe(remote).unwrap();
        assert!(hlc.now() > remote);
    }

    #[test]
    fn refuses_remote_timestamps_too_far_ahead_without_moving() {
        let (_clock, hlc) = hlc_at(1_000);
        let err = hlc.observe(Timestamp::from_physical_ms(1_501)).unwrap_err();
        assert_eq!(err, SkewError { ahead_ms: 501, max_delta_ms: 500 });
        assert_eq!(hlc.now(), Timestamp::from_physical_ms(1_000));
        hlc.observe(Timestamp::from_physical_ms(1_500)).unwrap();
    }

    #[test]
    fn an_offset_clock_shifts_both_ways_without_wrapping() {
        let base = ManualClock::new(10_000);
        let clock = OffsetClock::new(Arc::new(base));
        clock.set_offset_ms(5_000);
        assert_eq!(clock.now_ms(), 15_000);
        clock.set_offset_ms(-4_000);
        assert_eq!(clock.now_ms(), 6_000);
        clock.set_offset_ms(-20_000);
        assert_eq!(clock.now_ms(), 0);
    }

    #[test]
    fn raised_floor_survives_a_clock_set_back() {
        let (_clock, hlc) = hlc_at(1_000);
        hlc.raise_floor(Timestamp::from_physical_ms(50_000));
        assert!(hlc.now() > Timestamp::from_physical_ms(50_000));
    }

    proptest! {
        /// Whatever the physical clock does, issued timestamps strictly increase.
        #[test]
        fn issued_timestamps_strictly_increase(steps in proptest::collection::vec((0u64..3_000, any::<bool>()), 1..200)) {
            let (clock, hlc) = hlc_at(1_000_000);
            let mut prev = Timestamp(0);
            for (ms, observe) in steps {
                clock.set_ms(999_000 + ms);
                if observe {
                    let _ = hlc.observe(Timestamp::from_physical_ms(999_000 + ms * 2));
                }
                let ts = hlc.now();
                prop_assert!(ts > prev);
                prev = ts;
            }
        }
    }
}
