//! Deadlines for a client connection that hyper does not give on its own: the protocol
//! detection of the auto (HTTP/1.1 + h2c) server has no deadline, hyper's HTTP/1 header
//! timer also runs while a keep-alive connection is idle, and an HTTP/2 connection with no
//! open stream is kept forever. [`Watch`] tracks what a connection is doing (requests in
//! flight, when it went idle, when bytes of a next request started to arrive) and
//! [`Watch::due`] says what its next deadline is:
//!
//! - from connecting to the first request's headers: `request_header_timeout`;
//! - HTTP/1.1, between requests: `idle_connection_timeout` until the next request's first
//!   byte, then `request_header_timeout` for its headers;
//! - HTTP/2, no stream open: `idle_connection_timeout` (frames such as PING do not count);
//! - a request in flight: none here (its body has `request_body_timeout`, see
//!   `request_body.rs`; the upstream has its own timeouts).
//!
//! A connection past a header deadline is dropped (it has nothing to answer); an idle one is
//! shut down gracefully (HTTP/2 GOAWAY) and dropped if that takes longer than a header
//! timeout.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The connection deadlines, from the plan (`timeouts.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header: Duration,
    pub idle: Duration,
}

/// What a connection's next deadline does when it passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Headers did not arrive in time: drop the connection.
    Headers(Instant),
    /// Idle too long: shut down gracefully.
    Idle(Instant),
    /// A request is in flight: no connection deadline.
    Busy,
}

/// A connection's activity, shared by its IO, its requests and its task.
pub struct Watch {
    base: Instant,
    inflight: AtomicUsize,
    /// Milliseconds after `base`, plus one, when the last request finished; 0 before the
    /// first request.
    idle_since: AtomicU64,
    /// Milliseconds after `base`, plus one, when a byte arrived on an idle HTTP/1.1
    /// connection (a next request starting); 0 when none did since it went idle.
    reading_since: AtomicU64,
    h2: AtomicBool,
    /// Wakes the connection's task when its deadline may have moved earlier or gone.
    pub wake: Notify,
}

impl Watch {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            inflight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            reading_since: AtomicU64::new(0),
            h2: AtomicBool::new(false),
            wake: Notify::new(),
        })
    }

    fn stamp(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    fn at(&self, stamp: u64) -> Instant {
        self.base + Duration::from_millis(stamp.saturating_sub(1))
    }

    /// The connection's next deadline.
    pub fn due(&self, limits: Limits) -> Due {
        if self.inflight.load(Ordering::Acquire) > 0 {
            return Due::Busy;
        }
        let idle_since = self.idle_since.load(Ordering::Acquire);
        if idle_since == 0 {
            return Due::Headers(self.base + limits.header);
        }
        let reading = self.reading_since.load(Ordering::Acquire);
        if reading != 0 && !self.h2.load(Ordering::Relaxed) {
            return Due::Headers(self.at(reading) + limits.header);
        }
        Due::Idle(self.at(idle_since) + limits.idle)
    }

    /// A request's headers arrived: the connection is busy until the returned guard (held by
    /// the response body) is dropped.
    pub fn begin(self: &Arc<Self>, version: http::Version) -> Busy {
        if version == http::Version::HTTP_2 {
            self.h2.store(true, Ordering::Relaxed);
        }
        self.inflight.fetch_add(1, Ordering::AcqRel);
        self.reading_since.store(0, Ordering::Release);
        Busy(self.clone())
    }

    fn read_some(&self) {
        if self.reading_since.load(Ordering::Relaxed) == 0
            && self.idle_since.load(Ordering::Relaxed) != 0
            && self.inflight.load(Ordering::Relaxed) == 0
            && !self.h2.load(Ordering::Relaxed)
        {
            self.reading_since.store(self.stamp(), Ordering::Release);
            self.wake.notify_one();
        }
    }
}

/// A request in flight on a connection; dropping it (with the response body, or with the
/// request's future when the client leaves first) ends it.
pub struct Busy(Arc<Watch>);

impl Drop for Busy {
    fn drop(&mut self) {
        let w = &self.0;
        w.idle_since.store(w.stamp(), Ordering::Release);
        if w.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
            w.wake.notify_one();
        }
    }
}

/// A response body that keeps its request counted as in flight until it is dropped.
pub struct Tracked<B> {
    inner: B,
    _busy: Busy,
}

impl<B> Tracked<B> {
    pub fn new(inner: B, busy: Busy) -> Self {
        Self { inner, _busy: busy }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A client stream that tells its [`Watch`] when bytes arrive.
pub struct Watched<S> {
    inner: S,
    watch: Arc<Watch>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, watch: Arc<Watch>) -> Self {
        Self { inner, watch }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watch.read_some();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { header: Duration::from_secs(2), idle: Duration::from_secs(10) };

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_the_connection() {
        let w = Watch::new();
        let start = w.base;
        assert_eq!(w.due(LIMITS), Due::Headers(start + LIMITS.header), "from connecting to the first headers");
        w.read_some();
        assert_eq!(w.due(LIMITS), Due::Headers(start + LIMITS.header), "bytes do not extend the first request's");
        let busy = w.begin(http::Version::HTTP_11);
        assert_eq!(w.due(LIMITS), Due::Busy);
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(busy);
        let idle = start + Duration::from_secs(5);
        assert_eq!(w.due(LIMITS), Due::Idle(idle + LIMITS.idle), "idle keep-alive");
        tokio::time::advance(Duration::from_secs(3)).await;
        w.read_some();
        assert_eq!(
            w.due(LIMITS),
            Due::Headers(idle + Duration::from_secs(3) + LIMITS.header),
            "a next request started"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn http2_is_idle_while_no_stream_is_open() {
        let w = Watch::new();
        let a = w.begin(http::Version::HTTP_2);
        let b = w.begin(http::Version::HTTP_2);
        drop(a);
        assert_eq!(w.due(LIMITS), Due::Busy, "one stream still open");
        drop(b);
        w.read_some();
        assert!(matches!(w.due(LIMITS), Due::Idle(_)), "frames on an idle HTTP/2 connection are not a request");
    }
}
