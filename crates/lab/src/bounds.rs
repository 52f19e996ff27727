//! What a history proves about when things happened.
//!
//! Operations are timed on the run's one monotonic clock, in nanoseconds, by the client: a
//! server handled an operation somewhere between its `invoke` and its `complete`, and nothing
//! finer is known. Apply events come from the nodes' clocks, so an apply is only known to lie in
//! a window ([`Apply::window`]); the write that produced its version narrows it, since no region
//! can apply a write before the client sent it. Expiry is judged on wall clocks: the client's,
//! the server's, and the second the server read when it computed the expiry.
//!
//! The checker proves an order only from these bounds (an apply certainly before a read began,
//! a write certainly acknowledged before it) and the measurements place events at a point
//! inside them, so that neither depends on a clock being finer than it is.

use crate::history::{Apply, FinalRead, Function, Nanos, Op};

/// How far the client's and the servers' wall clocks may disagree when judging expiry.
pub const CLOCK_TOLERANCE_MS: u64 = 1000;

/// When `apply` can have happened, both ends included, given `write`, the operation that
/// produced its version (if the history has it).
///
/// A region applies a write only after the client sent it, so never before `write.invoke`
/// (strictly after: the request must first reach a server). If the node's window ends before
/// that, the node's clock was off and its window is no evidence at all: the apply is placed
/// after the invoke with no upper bound, which proves nothing against later reads.
pub fn apply_window(apply: &Apply, write: Option<&Op>) -> (Nanos, Nanos) {
    let (earliest, latest) = apply.window();
    let Some(write) = write else { return (earliest, latest) };
    let floor = write.invoke.saturating_add(1);
    if latest < floor {
        return (floor, Nanos::MAX);
    }
    (earliest.max(floor), latest)
}

/// The best single estimate of when `apply` happened, inside [`apply_window`]: its recorded
/// `at`, moved into the window where the write's invoke rules `at` out.
pub fn apply_estimate(apply: &Apply, write: Option<&Op>) -> Nanos {
    let (earliest, latest) = apply_window(apply, write);
    apply.at.clamp(earliest, latest)
}

/// Whole milliseconds from `from` to `to` on the run's clock, rounded up.
fn span_ms(from: Nanos, to: Nanos) -> u64 {
    to.saturating_sub(from).div_ceil(1_000_000)
}

/// The client's wall clock when `op` completed, at the latest (epoch ms): its reading at the
/// invoke plus the operation's duration, rounded up.
pub fn completed_wall_ms(op: &Op) -> u64 {
    op.wall_ms.saturating_add(span_ms(op.invoke, op.complete))
}

/// The client's wall clock when `read` was answered, at the latest (epoch ms). A final read
/// without a completion time (older histories) is taken as instantaneous.
pub fn final_answered_wall_ms(read: &FinalRead) -> u64 {
    read.wall_ms.saturating_add(span_ms(read.at, read.complete.unwrap_or(read.at)))
}

/// When `put` expires, the earliest and the latest possibility (epoch ms), if it expires.
///
/// The lab records a TTL write's expiry from the client's second at the invoke, but the server
/// computes it from its own second when the request arrives, which can be any second up to the
/// client's at completion: the expiry may be that many seconds later than recorded.
pub fn expiry_ms(put: &Op) -> Option<(u64, u64)> {
    if put.f != Function::Put {
        return None;
    }
    let secs = put.expiration?;
    let drift = completed_wall_ms(put) / 1000 - put.wall_ms / 1000;
    let earliest = secs.saturating_mul(1000);
    Some((earliest, secs.saturating_add(drift).saturating_mul(1000)))
}

/// Whether `put` had certainly expired for a server judging it no earlier than the client's
/// wall clock read `wall_ms`, beyond any doubt from clock differences.
pub fn expired(put: &Op, wall_ms: u64) -> bool {
    expiry_ms(put).is_some_and(|(_, latest)| latest.saturating_add(CLOCK_TOLERANCE_MS) <= wall_ms)
}

/// Whether `put` may have expired for a server judging it no later than the client's wall
/// clock read `wall_ms`.
pub fn may_have_expired(put: &Op, wall_ms: u64) -> bool {
    expiry_ms(put)
        .is_some_and(|(earliest, _)| earliest <= wall_ms.saturating_add(CLOCK_TOLERANCE_MS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Outcome;

    const MS: Nanos = 1_000_000;

    fn op(f: Function, invoke: Nanos, complete: Nanos) -> Op {
        Op {
            index: 0,
            process: 0,
            region: "wnam".into(),
            f,
            key: "k".into(),
            value: None,
            expiration: None,
            version: Some("v".into()),
            invoke,
            complete,
            outcome: Outcome::Ok,
            wall_ms: 1_700_000_000_900,
            via: None,
            cache_ttl: None,
            cache: None,
        }
    }

    #[test]
    fn an_apply_is_never_placed_before_its_write_was_sent() {
        let write = op(Function::Delete, 15_123_550_000, 15_124_000_000);
        // A millisecond reading of 15.123 s: the window is 15.122..15.124 s, cut at the invoke.
        let apply =
            Apply { earliest: None, latest: None, ..Apply::exact("r", "k", "v", 15_123 * MS) };
        assert_eq!(apply_window(&apply, Some(&write)), (15_123_550_001, 15_124 * MS));
        assert_eq!(apply_estimate(&apply, Some(&write)), 15_123_550_001);
        assert_eq!(apply_window(&apply, None), (15_122 * MS, 15_124 * MS));
        // A window that ends before the invoke is a wrong clock: no upper bound is left.
        let wrong = Apply::exact("r", "k", "v", 15_000 * MS);
        assert_eq!(apply_window(&wrong, Some(&write)), (15_123_550_001, Nanos::MAX));
    }

    #[test]
    fn an_expiry_may_be_later_than_recorded_by_the_seconds_the_put_took() {
        // Invoked at .900 of a second, completed 200 ms later, in the next second.
        let mut put = op(Function::Put, 0, 200 * MS);
        put.expiration = Some(1_700_000_060);
        assert_eq!(expiry_ms(&put), Some((1_700_000_060_000, 1_700_000_061_000)));
        assert!(!expired(&put, 1_700_000_061_500), "the server may have set 061");
        assert!(expired(&put, 1_700_000_062_000));
        assert!(may_have_expired(&put, 1_700_000_059_000));
        assert!(!may_have_expired(&put, 1_700_000_058_999));
        put.complete = 50 * MS;
        assert_eq!(expiry_ms(&put), Some((1_700_000_060_000, 1_700_000_060_000)));
        assert_eq!(expiry_ms(&op(Function::Delete, 0, 1)), None);
    }
}
