//! The body budget: a bound on the memory all requests together hold for bodies.
//!
//! Every body is read or built whole before it is used (a value is stored as one piece, a bulk
//! request is validated whole), so memory grows with the bodies in flight: six concurrent
//! bulk writes of 72 MiB held 649 MB before this bound. A request now takes its share of the
//! budget before it reads a body (from `Content-Length`, or chunk by chunk as a chunked body
//! arrives) and a read answers with its value's share, held until the response is sent or
//! dropped. A request that finds no room is refused at once with 503 and `Retry-After`:
//! nothing of it is stored, and memory does not grow. A request larger than the whole budget
//! may still run when it has the budget to itself, so every valid request can succeed.

use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::ApiError;

/// Bodies all requests may hold together, in bytes.
#[derive(Clone, Debug)]
pub struct BodyBudget {
    permits: Arc<Semaphore>,
    total: u32,
}

/// Memory taken from the budget; given back when dropped.
#[derive(Debug, Default)]
pub(crate) struct Held(Vec<OwnedSemaphorePermit>);

impl Held {
    /// How many bytes it holds.
    pub(crate) fn bytes(&self) -> usize {
        self.0.iter().map(|p| p.num_permits()).sum()
    }
}

impl BodyBudget {
    /// A budget of `bytes` (at most 4 GiB).
    pub fn new(bytes: u64) -> Self {
        let total = u32::try_from(bytes).unwrap_or(u32::MAX).max(1);
        BodyBudget { permits: Arc::new(Semaphore::new(total as usize)), total }
    }

    /// Takes `bytes` more into `held`, or refuses the request.
    pub(crate) fn take(&self, held: &mut Held, bytes: usize) -> Result<(), ApiError> {
        if bytes == 0 {
            return Ok(());
        }
        let already = held.bytes();
        // A request may have the whole budget, never more: past that it needs nothing more.
        let room = (self.total as usize).saturating_sub(already);
        let wanted = bytes.min(room);
        if wanted == 0 {
            return Ok(());
        }
        match Arc::clone(&self.permits).try_acquire_many_owned(wanted as u32) {
            Ok(permit) => {
                held.0.push(permit);
                Ok(())
            }
            Err(_) => Err(ApiError::Unavailable(format!(
                "the node holds as many request and response bodies as it may ({} bytes, \
                 --body-memory); retry shortly",
                self.total
            ))),
        }
    }

    /// A response body of `bytes` that holds its share until it has been written out: the
    /// share goes with the bytes themselves, so it is given back when the connection drops
    /// its last reference to them, not when the body is handed over.
    pub(crate) fn response(&self, bytes: Bytes) -> Result<Body, ApiError> {
        let mut held = Held::default();
        self.take(&mut held, bytes.len())?;
        Ok(Body::from(Bytes::from_owner(HeldBytes { bytes, _held: held })))
    }
}

/// Bytes and the budget they hold.
struct HeldBytes {
    bytes: Bytes,
    _held: Held,
}

impl AsRef<[u8]> for HeldBytes {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_share_the_budget_and_give_it_back() {
        let budget = BodyBudget::new(100);
        let mut a = Held::default();
        budget.take(&mut a, 60).unwrap();
        let mut b = Held::default();
        assert!(matches!(budget.take(&mut b, 50), Err(ApiError::Unavailable(_))));
        budget.take(&mut b, 40).unwrap();
        assert!(budget.take(&mut Held::default(), 1).is_err(), "all of it is held");
        drop(a);
        budget.take(&mut Held::default(), 60).unwrap();
        // One request larger than the whole budget takes all of it, then needs no more.
        drop(b);
        let mut big = Held::default();
        budget.take(&mut big, 500).unwrap();
        budget.take(&mut big, 500).unwrap();
        assert_eq!(big.bytes(), 100);
        assert!(budget.take(&mut Held::default(), 1).is_err());
    }

    #[test]
    fn a_response_holds_its_share_until_dropped() {
        let budget = BodyBudget::new(10);
        let body = budget.response(Bytes::from_static(b"12345678")).unwrap();
        assert!(budget.response(Bytes::from_static(b"123")).is_err());
        drop(body);
        let _body = budget.response(Bytes::from_static(b"123")).unwrap();
    }
}
