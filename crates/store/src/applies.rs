//! An optional, bounded log of apply events: when this region applied which version of which
//! key, whether the write was its own or a peer's. The consistency lab reads it to measure
//! visibility from the servers' side rather than by polling. Off unless enabled, since it adds a
//! lock to every applied write.

use std::collections::VecDeque;
use std::sync::Arc;

use edgekv_core::{NamespaceId, PhysicalClock, Version};

/// A region applied `version` of `key` at `at_ms` (its wall clock, epoch milliseconds), which
/// its system clock read as `system_us`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyEvent {
    /// Position in the log, from 1; consecutive.
    pub seq: u64,
    /// The namespace.
    pub namespace: NamespaceId,
    /// The key.
    pub key: Arc<str>,
    /// The version applied.
    pub version: Version,
    /// When, on the region's wall clock: the one its versions and expiry use, offsets
    /// included.
    pub at_ms: u64,
    /// When, on the host's system clock (a simulator's virtual clock under simulation), epoch
    /// microseconds, read as the event is logged: finer than `at_ms`, and free of the offsets
    /// experiments add to the region's clock, so a lab on the same host can place the event on
    /// its own clock to the microsecond. The event is
    /// logged no earlier than the applied state became readable: a local write in a durable
    /// store is shown only once its group commit is durable, and its event carries that time.
    pub system_us: u64,
    /// The applied state was not readable yet when the event was logged (see `system_us`).
    pub(crate) hidden: bool,
}

/// The host's system clock, epoch microseconds (0 if it reads before 1970): what a durable
/// store's syncer thread stamps group commits with.
pub(crate) fn system_now_us() -> u64 {
    edgekv_core::SystemClock.now_us()
}

/// Events after a position.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyPage {
    /// The events, oldest first.
    pub events: Vec<ApplyEvent>,
    /// The position to ask from next.
    pub next: u64,
    /// Whether events after the position asked were already dropped (the log is bounded).
    pub missed: bool,
}

/// The log: the newest `capacity` events.
#[derive(Debug)]
pub(crate) struct ApplyLog {
    capacity: usize,
    /// The clock `system_us` is read from: the host's, or a simulator's virtual one.
    clock: Arc<dyn PhysicalClock>,
    /// When the log began, on that clock: it names the log, whose numbering starts at 1.
    started_us: u64,
    last_seq: u64,
    events: VecDeque<ApplyEvent>,
}

impl ApplyLog {
    pub(crate) fn new(capacity: usize, clock: Arc<dyn PhysicalClock>) -> Self {
        let started_us = clock.now_us();
        ApplyLog {
            capacity: capacity.max(1),
            clock,
            started_us,
            last_seq: 0,
            events: VecDeque::new(),
        }
    }

    /// When the log began (its name).
    pub(crate) fn started_us(&self) -> u64 {
        self.started_us
    }

    pub(crate) fn record(
        &mut self,
        namespace: &NamespaceId,
        key: &Arc<str>,
        version: Version,
        at_ms: u64,
        hidden: bool,
    ) {
        if self.events.len() == self.capacity {
            self.events.pop_front();
        }
        self.last_seq += 1;
        let event = ApplyEvent {
            seq: self.last_seq,
            namespace: namespace.clone(),
            key: Arc::clone(key),
            version,
            at_ms,
            system_us: self.clock.now_us(),
            hidden,
        };
        self.events.push_back(event);
    }

    pub(crate) fn after(&self, after: u64, limit: usize) -> ApplyPage {
        let oldest = self.events.front().map_or(self.last_seq + 1, |e| e.seq);
        let skip = after.saturating_add(1).saturating_sub(oldest) as usize;
        let events: Vec<ApplyEvent> = self.events.iter().skip(skip).take(limit).cloned().collect();
        let next = events.last().map_or(after.max(oldest.saturating_sub(1)), |e| e.seq);
        ApplyPage { events, next, missed: after.saturating_add(1) < oldest }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgekv_core::Timestamp;

    #[test]
    fn pages_resume_in_order_and_report_what_the_bound_dropped() {
        let ns = NamespaceId::random();
        let key: Arc<str> = Arc::from("k");
        let mut log = ApplyLog::new(3, Arc::new(edgekv_core::SystemClock));
        for ts in 1..=5 {
            log.record(&ns, &key, Version::new(Timestamp(ts), "wnam".parse().unwrap()), ts, false);
        }
        // Holds seq 3, 4, 5.
        let page = log.after(0, 10);
        assert!(page.missed, "seq 1 and 2 were dropped");
        assert_eq!(page.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!(page.next, 5);
        let page = log.after(3, 1);
        assert!(!page.missed);
        assert_eq!((page.events[0].seq, page.next), (4, 4));
        let page = log.after(5, 10);
        assert!(page.events.is_empty() && !page.missed);
        assert_eq!(page.next, 5);
    }

    #[test]
    fn an_event_carries_the_system_clock_in_microseconds() {
        let ns = NamespaceId::random();
        let key: Arc<str> = Arc::from("k");
        let mut log = ApplyLog::new(3, Arc::new(edgekv_core::SystemClock));
        let before = system_now_us();
        log.record(&ns, &key, Version::new(Timestamp(1), "wnam".parse().unwrap()), 7, false);
        let after = system_now_us();
        let event = &log.after(0, 1).events[0];
        assert!((before..=after).contains(&event.system_us), "{before} {event:?} {after}");
        assert_eq!(event.at_ms, 7, "the region's own clock is kept as given");
    }
}
