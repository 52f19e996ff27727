//! The simulation's one clock: the async runtime's, which a paused runtime moves only when
//! every task waits, so time is virtual and the same in every run of a seed.

use edgekv_core::PhysicalClock;

/// Wall-clock time on the runtime's (virtual) clock: `epoch_us` when it was made.
#[derive(Debug)]
pub(super) struct VirtualClock {
    epoch_us: u64,
    start: tokio::time::Instant,
}

impl VirtualClock {
    /// A clock reading `epoch_us` now.
    pub(super) fn new(epoch_us: u64) -> Self {
        VirtualClock { epoch_us, start: tokio::time::Instant::now() }
    }
}

impl PhysicalClock for VirtualClock {
    fn now_ms(&self) -> u64 {
        self.now_us() / 1000
    }

    fn now_us(&self) -> u64 {
        self.epoch_us.saturating_add(self.start.elapsed().as_micros() as u64)
    }
}
