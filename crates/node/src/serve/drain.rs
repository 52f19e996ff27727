//! Reading what the app left of a request body before its answer is written.
//!
//! The app refuses many requests without reading their bodies: a value over 25 MiB declared by
//! its `Content-Length`, a bad token, a namespace that does not exist, a body the memory budget
//! cannot hold. hyper then writes the answer and closes the connection with the rest of the
//! body unread, and the kernel answers the bytes still arriving with a reset. A client that
//! sends its whole body before it reads (Node's fetch, Python's requests, most simple clients)
//! sees that reset, "EPIPE" or "connection reset", and never the 413 or 403 that says what it
//! did wrong. So an HTTP/1 request body the app drops unfinished comes back here, and the rest
//! of it is read and thrown away before the response goes out; the connection then stays open
//! for the next request.
//!
//! It costs bandwidth, never memory: nothing is kept. It stops at [`MAX_DRAINED_BYTES`], and a
//! body that stops arriving is cut off by the connection's body timeout, as any other. A client
//! that asked to be told before it sends (`Expect: 100-continue`) and was not yet told is not
//! asked for its body only to have it thrown away: it gets the answer at once, and sends nothing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use edgekv_core::limits::MAX_BULK_BODY_BYTES;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::header::{CONTENT_LENGTH, EXPECT};
use hyper::{Request, Version};
use parking_lot::Mutex;

/// The most of a body the server reads to throw away: the largest body any route takes (a bulk
/// write's) and as much again, so that a client over a limit by a mistake of any likely size is
/// answered. A client sending more than that is not making a mistake worth the bandwidth; its
/// connection is closed as hyper would.
pub(crate) const MAX_DRAINED_BYTES: usize = 2 * MAX_BULK_BODY_BYTES;

/// Where a request body the app dropped unfinished is put back.
#[derive(Clone, Default)]
pub(crate) struct Returns(Arc<Mutex<Option<Unread>>>);

/// The rest of a request body, and whether the app ever asked for any of it.
pub(crate) struct Unread {
    body: Incoming,
    polled: bool,
}

/// A request's body as the app sees it: [`Lent`] when what the app leaves of it is worth
/// reading, else the body itself, at no cost (a GET, whose body is empty, is never lent).
pub(crate) fn lend(request: Request<Incoming>) -> (Request<axum::body::Body>, Option<Drainer>) {
    let worth = matches!(request.version(), Version::HTTP_10 | Version::HTTP_11)
        && !request.body().is_end_stream()
        && declared_length(&request).is_none_or(|len| len <= MAX_DRAINED_BYTES as u64);
    if !worth {
        return (request.map(axum::body::Body::new), None);
    }
    let continues = request
        .headers()
        .get(EXPECT)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let returns = Returns::default();
    let (parts, body) = request.into_parts();
    let lent = Lent { body: Some(body), polled: false, returns: returns.clone() };
    let drainer = Drainer { returns, continues };
    (Request::from_parts(parts, axum::body::Body::new(lent)), Some(drainer))
}

fn declared_length<B>(request: &Request<B>) -> Option<u64> {
    request.headers().get(CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Takes back, once the app has answered, what it left of a lent body.
pub(crate) struct Drainer {
    returns: Returns,
    /// The client asked to be told before it sends its body.
    continues: bool,
}

impl Drainer {
    /// The reading of the rest of the body, if the app left any worth reading.
    pub(crate) fn rest(self) -> Option<Drain> {
        let unread = self.returns.0.lock().take()?;
        // Not yet told to send: reading now would ask for a body only to throw it away.
        if self.continues && !unread.polled {
            return None;
        }
        Some(Drain { body: unread.body, left: MAX_DRAINED_BYTES })
    }
}

/// A request body lent to the app; dropped unfinished, it goes back to its [`Returns`].
pub(crate) struct Lent {
    body: Option<Incoming>,
    polled: bool,
    returns: Returns,
}

impl hyper::body::Body for Lent {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        self.polled = true;
        match self.body.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body.as_ref().map(Incoming::size_hint).unwrap_or_else(|| SizeHint::with_exact(0))
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(body) = self.body.take().filter(|body| !body.is_end_stream()) {
            *self.returns.0.lock() = Some(Unread { body, polled: self.polled });
        }
    }
}

/// Reads the rest of a body and drops it; done at its end, at an error, or past
/// [`MAX_DRAINED_BYTES`].
pub(crate) struct Drain {
    body: Incoming,
    left: usize,
}

impl Future for Drain {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match std::task::ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let len = frame.data_ref().map_or(0, Bytes::len);
                    match self.left.checked_sub(len) {
                        Some(left) => self.left = left,
                        None => return Poll::Ready(()),
                    }
                }
                Some(Err(_)) | None => return Poll::Ready(()),
            }
        }
    }
}
