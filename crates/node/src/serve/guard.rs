//! The connection guard: an I/O wrapper that closes a connection which stalls, and that turns
//! the bodiless refusals hyper writes by itself into Cloudflare's JSON envelope.
//!
//! # Timeouts
//! What a connection may wait for depends on where it is, which the guard reads from the
//! connection's [`Phase`] (the service marks requests in flight, the guard marks the first
//! byte of a new request):
//! - **idle** (no request, no byte of a new one): `idle_timeout` after the last byte either way;
//! - **head** (bytes of a request head arrived, the head is not complete): `header_timeout`
//!   from the first of them, however slowly the rest trickles in, so a slowloris client that
//!   sends one byte at a time gets no longer than a fast one;
//! - **busy** (a request in flight, its response not started): `body_timeout` after the last
//!   byte either way, so a body that stops arriving is given up on;
//! - **sending** (the response is being written): no read timeout, since a client downloading
//!   has nothing to say; instead any write that makes no progress for `send_timeout` (a client
//!   that does not read) ends the connection, and with it the response it held in memory,
//!   while a slow download that keeps moving is left alone.
//!
//! A connection in stream mode (the gRPC listener, whose peers multiplex long-lived HTTP/2
//! connections and ping them) must send the 24-byte HTTP/2 preface within `header_timeout` of
//! connecting; after that it has only the idle timeout, counted from the last byte.
//!
//! # Refusals hyper makes itself
//! hyper answers a request head it cannot parse (bad framing, NUL bytes, a URI over 64 KB,
//! headers too large) with a bodiless 400, 414 or 431 before any service sees it. Such an answer
//! is written while the connection is in the head phase, which no response to a request ever
//! is; the guard recognizes its exact shape there and writes Cloudflare's envelope instead.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Where a connection is; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    Idle = 0,
    Head = 1,
    Busy = 2,
    Sending = 3,
}

/// Why a connection was closed by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Closed {
    Idle,
    Head,
    Body,
    Send,
    Evicted,
}

impl Closed {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Closed::Idle => "idle_timeout",
            Closed::Head => "header_timeout",
            Closed::Body => "body_timeout",
            Closed::Send => "send_timeout",
            Closed::Evicted => "evicted",
        }
    }
}

/// The timeouts of one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest time to receive a request head, from its first byte.
    pub header: Duration,
    /// Longest pause in a connection's traffic while a request is in flight.
    pub body: Duration,
    /// Longest time a connection may sit with no request.
    pub idle: Duration,
    /// Longest time a response write may make no progress.
    pub send: Duration,
}

/// What a connection's guard, its service and the listener's registry share.
#[derive(Debug)]
pub(crate) struct ConnState {
    phase: AtomicU8,
    in_flight: AtomicUsize,
    /// The last byte either way, in ms since `opened`.
    last_io_ms: AtomicU64,
    pub(crate) opened: Instant,
    /// Cancelled to close the connection at once (eviction).
    pub(crate) close: CancellationToken,
    closed_by: AtomicU8,
}

const NOT_CLOSED: u8 = u8::MAX;

/// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, what every HTTP/2 connection opens with.
const H2_PREFACE_LEN: usize = 24;

impl ConnState {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(ConnState {
            phase: AtomicU8::new(Phase::Idle as u8),
            in_flight: AtomicUsize::new(0),
            last_io_ms: AtomicU64::new(0),
            opened: Instant::now(),
            close: CancellationToken::new(),
            closed_by: AtomicU8::new(NOT_CLOSED),
        })
    }

    pub(crate) fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            1 => Phase::Head,
            2 => Phase::Busy,
            3 => Phase::Sending,
            _ => Phase::Idle,
        }
    }

    /// When the connection last moved a byte.
    pub(crate) fn last_io(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_io_ms.load(Ordering::Relaxed))
    }

    fn touch(&self, now: Instant) {
        let ms = now.saturating_duration_since(self.opened).as_millis() as u64;
        self.last_io_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// A request was dispatched to the service.
    pub(crate) fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.phase.store(Phase::Busy as u8, Ordering::Release);
    }

    /// A request's response is ready to be written.
    pub(crate) fn response_started(&self) {
        let _ = self.phase.compare_exchange(
            Phase::Busy as u8,
            Phase::Sending as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// A request's response ended (or was dropped).
    pub(crate) fn request_ended(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.touch(Instant::now());
            self.phase.store(Phase::Idle as u8, Ordering::Release);
        }
    }

    /// Closes the connection at once, recording why.
    pub(crate) fn evict(&self) {
        self.closed_by.store(Closed::Evicted as u8, Ordering::Release);
        self.close.cancel();
    }

    /// Why the server closed it, if it did.
    pub(crate) fn closed_by(&self) -> Option<Closed> {
        match self.closed_by.load(Ordering::Acquire) {
            0 => Some(Closed::Idle),
            1 => Some(Closed::Head),
            2 => Some(Closed::Body),
            3 => Some(Closed::Send),
            4 => Some(Closed::Evicted),
            _ => None,
        }
    }

    fn record(&self, why: Closed) {
        let _ = self.closed_by.compare_exchange(
            NOT_CLOSED,
            why as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }
}

/// Whether a guard follows requests (HTTP/1 and HTTP/2 to the API) or only traffic (gRPC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Requests,
    Stream,
}

/// The I/O wrapper; see the module docs.
pub(crate) struct Guarded<IO> {
    inner: IO,
    state: Arc<ConnState>,
    timeouts: Timeouts,
    mode: Mode,
    /// When the head being received began.
    head_since: Option<Instant>,
    /// Bytes read so far, up to the HTTP/2 preface's length (stream mode).
    preface: usize,
    read_timer: Pin<Box<Sleep>>,
    read_deadline: Option<Instant>,
    write_since: Option<Instant>,
    write_timer: Pin<Box<Sleep>>,
    write_deadline: Option<Instant>,
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The envelope written in place of one of hyper's own refusals, and how much of it is out.
    replacement: Option<(Bytes, usize)>,
    /// Renders the response for a refusal status, if this listener rewrites them.
    refusal: Option<super::Refusal>,
}

impl<IO> Guarded<IO> {
    pub(crate) fn new(
        inner: IO,
        state: Arc<ConnState>,
        timeouts: Timeouts,
        mode: Mode,
        refusal: Option<super::Refusal>,
    ) -> Self {
        let now = tokio::time::Instant::now();
        Guarded {
            inner,
            closed: Box::pin(state.close.clone().cancelled_owned()),
            state,
            timeouts,
            mode,
            head_since: None,
            preface: 0,
            read_timer: Box::pin(tokio::time::sleep_until(now)),
            read_deadline: None,
            write_since: None,
            write_timer: Box::pin(tokio::time::sleep_until(now)),
            write_deadline: None,
            replacement: None,
            refusal,
        }
    }

    /// The inner I/O.
    pub(crate) fn get_ref(&self) -> &IO {
        &self.inner
    }

    /// When a read that is waiting must give up, and why; `None` while a response is being
    /// written, which the send timeout watches instead.
    fn read_deadline(&mut self) -> Option<(Instant, Closed)> {
        if self.write_since.is_some() {
            // A write is stuck: the send timeout decides (the response may be handed over to
            // the connection already, which looks idle to the service).
            return None;
        }
        let last = self.state.last_io();
        Some(match (self.mode, self.state.phase()) {
            (Mode::Stream, _) if self.preface < H2_PREFACE_LEN => {
                (self.state.opened + self.timeouts.header, Closed::Head)
            }
            (Mode::Stream, _) | (Mode::Requests, Phase::Idle) => {
                (last + self.timeouts.idle, Closed::Idle)
            }
            (Mode::Requests, Phase::Head) => {
                let since = *self.head_since.get_or_insert(last);
                (since + self.timeouts.header, Closed::Head)
            }
            (Mode::Requests, Phase::Busy) => (last + self.timeouts.body, Closed::Body),
            (Mode::Requests, Phase::Sending) => return None,
        })
    }

    fn saw_bytes(&mut self, n: usize) {
        self.preface = (self.preface + n).min(H2_PREFACE_LEN);
        let now = Instant::now();
        self.state.touch(now);
        if self.mode == Mode::Requests {
            let went_head = self.state.phase.compare_exchange(
                Phase::Idle as u8,
                Phase::Head as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            if went_head.is_ok() {
                self.head_since = Some(now);
            }
        }
    }

    fn timed_out(&self, why: Closed) -> io::Error {
        self.state.record(why);
        io::Error::new(io::ErrorKind::TimedOut, why.as_str())
    }

    fn evicted(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        self.closed
            .as_mut()
            .poll(cx)
            .is_ready()
            .then(|| io::Error::new(io::ErrorKind::ConnectionAborted, "evicted"))
    }
}

/// Arms `timer` for `deadline` unless it already is, and says whether it has passed.
fn expired(
    timer: &mut Pin<Box<Sleep>>,
    armed: &mut Option<Instant>,
    deadline: Instant,
    cx: &mut Context<'_>,
) -> bool {
    if *armed != Some(deadline) {
        timer.as_mut().reset(tokio::time::Instant::from_std(deadline));
        *armed = Some(deadline);
    }
    timer.as_mut().poll(cx).is_ready()
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(err) = this.evicted(cx) {
            return Poll::Ready(Err(err));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len() - before;
                if n > 0 {
                    this.saw_bytes(n);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => {
                let Some((deadline, why)) = this.read_deadline() else { return Poll::Pending };
                if expired(&mut this.read_timer, &mut this.read_deadline, deadline, cx) {
                    return Poll::Ready(Err(this.timed_out(why)));
                }
                Poll::Pending
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> Guarded<IO> {
    /// Sends what is left of a replacement envelope; ready once it is all out.
    fn drain_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, sent)) = &mut self.replacement {
            if *sent == bytes.len() {
                self.replacement = None;
                break;
            }
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *sent += n;
        }
        Poll::Ready(Ok(()))
    }

    /// The envelope to send instead of `buf`, if `buf` is one of hyper's own refusals.
    fn replacement_for(&self, buf: &[u8]) -> Option<Bytes> {
        let refusal = self.refusal.as_ref()?;
        (self.mode == Mode::Requests && self.state.phase() == Phase::Head)
            .then(|| canned_refusal(buf))
            .flatten()
            .map(|status| refusal.response(status))
    }

    /// Records the outcome of a write: progress resets the send timer, a stall arms it.
    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Ready(Ok(n)) => {
                self.write_since = None;
                if n > 0 {
                    self.state.touch(Instant::now());
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => {
                let since = *self.write_since.get_or_insert_with(Instant::now);
                let deadline = since + self.timeouts.send;
                if expired(&mut self.write_timer, &mut self.write_deadline, deadline, cx) {
                    return Poll::Ready(Err(self.timed_out(Closed::Send)));
                }
                Poll::Pending
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let Some(err) = this.evicted(cx) {
            return Poll::Ready(Err(err));
        }
        std::task::ready!(this.drain_replacement(cx))?;
        if let Some(envelope) = this.replacement_for(buf) {
            this.replacement = Some((envelope, 0));
            // hyper's bytes count as written; the envelope goes out in their place.
            let _ = this.drain_replacement(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.after_write(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let Some(err) = this.evicted(cx) {
            return Poll::Ready(Err(err));
        }
        std::task::ready!(this.drain_replacement(cx))?;
        if let [only] = bufs {
            if let Some(envelope) = this.replacement_for(only) {
                this.replacement = Some((envelope, 0));
                let _ = this.drain_replacement(cx)?;
                return Poll::Ready(Ok(only.len()));
            }
        }
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.after_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        std::task::ready!(this.drain_replacement(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        std::task::ready!(this.drain_replacement(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// The status of `buf` if it is exactly one of hyper's own refusals: a status line of 400,
/// 414 or 431 and only the headers hyper puts on it (`content-length: 0`, `date`), no body.
pub(crate) fn canned_refusal(buf: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(buf).ok()?;
    let head = text.strip_suffix("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    if !matches!(status, 400 | 414 | 431) {
        return None;
    }
    let mut saw_length = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        match name.to_ascii_lowercase().as_str() {
            "content-length" if value.trim() == "0" => saw_length = true,
            "date" | "connection" => {}
            _ => return None,
        }
    }
    saw_length.then_some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_bare_refusals_are_recognized() {
        let date = "date: Tue, 01 Dec 2026 14:00:00 GMT";
        for (head, status) in [
            (format!("HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n{date}\r\n\r\n"), Some(431)),
            (format!("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n{date}\r\n\r\n"), Some(400)),
            (format!("HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n{date}\r\n\r\n"), Some(414)),
            // Anything more than the bare head is a real response.
            (format!("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nedgekv-region: wnam\r\n{date}\r\n\r\n"), None),
            (format!("HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n{date}\r\n\r\n{{}}"), None),
            (format!("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n{date}\r\n\r\n"), None),
            (format!("HTTP/1.1 400 Bad Request\r\n{date}\r\n\r\n"), None),
            ("not http".to_owned(), None),
        ] {
            assert_eq!(canned_refusal(head.as_bytes()), status, "{head}");
        }
    }
}
