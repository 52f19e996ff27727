//! An optional, bounded log of apply events: when this region applied which version of which
//! key, whether the write was its own or a peer's. The consistency lab reads it to measure
//! visibility from the servers' side rather than by polling. Off unless enabled, since it adds a
//! lock to every applied write.

use std::collections::VecDeque;
use std::sync::Arc;

use edgekv_core::Version;

use crate::NamespaceId;

/// A region applied `version` of `key` at `at_ms` (its wall clock, epoch milliseconds).
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
    /// When, on the region's wall clock.
    pub at_ms: u64,
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
    last_seq: u64,
    events: VecDeque<ApplyEvent>,
}

impl ApplyLog {
    pub(crate) fn new(capacity: usize) -> Self {
        ApplyLog { capacity: capacity.max(1), last_seq: 0, events: VecDeque::new() }
    }

    pub(crate) fn record(
        &mut self,
        namespace: &NamespaceId,
        key: &Arc<str>,
        version: Version,
        at_ms: u64,
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
        let mut log = ApplyLog::new(3);
        for ts in 1..=5 {
            log.record(&ns, &key, Version::new(Timestamp(ts), "wnam".parse().unwrap()), ts);
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
}
