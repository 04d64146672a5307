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
use futures_util::task::AtomicWaker;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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
    /// Asked to close because too many connections are open (see [`Registry`]).
    shed: AtomicBool,
    /// The server is shutting down (see [`Registry::drain`]).
    draining: AtomicBool,
    /// Set by [`Watch::wake`], taken by [`Watch::poll_woken`].
    woken: AtomicBool,
    /// The connection's task, woken when it is asked to close (deadlines it looks at itself).
    /// Not a `Notify`: that takes a lock on every poll, and the task is polled on every read.
    waker: AtomicWaker,
}

impl Watch {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            inflight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            reading_since: AtomicU64::new(0),
            h2: AtomicBool::new(false),
            shed: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            woken: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        })
    }

    /// Whether the connection was asked to close to make room (it closes when no request of
    /// its is in flight).
    pub fn is_shed(&self) -> bool {
        self.shed.load(Ordering::Acquire)
    }

    fn shed(&self) {
        self.shed.store(true, Ordering::Release);
        self.wake();
    }

    /// Whether the server is shutting down.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    fn wake(&self) {
        self.woken.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Ready once after each time the connection was asked to close (to make room, or
    /// because the server is shutting down).
    pub fn poll_woken(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.woken.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        if self.woken.swap(false, Ordering::AcqRel) { Poll::Ready(()) } else { Poll::Pending }
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
        }
    }
}

/// The open client connections, oldest first, and how many may be open at once. Past the
/// limit, connections with no request in flight (silent ones, idle keep-alives) are asked to
/// close, oldest first: a flood of idle sockets costs the flooder its oldest sockets, not
/// other clients their access. Busy connections are never shed.
pub struct Registry {
    open: std::sync::Mutex<std::collections::VecDeque<std::sync::Weak<Watch>>>,
    limit: usize,
    /// Set by [`Registry::drain`] (under the lock): a connection admitted afterwards — one
    /// handed to another thread just before shutdown — is told to drain at once.
    draining: AtomicBool,
}

impl Registry {
    pub fn new(limit: usize) -> Self {
        Self { open: Default::default(), limit: limit.max(1), draining: AtomicBool::new(false) }
    }

    /// Records a new connection; sheds idle ones if that puts the count over the limit. Only
    /// connections not already asked to close count, and the new one is never shed (it has
    /// not had its header deadline yet).
    pub fn admit(&self, watch: &Arc<Watch>, limits: Limits) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if self.draining.load(Ordering::Acquire) {
            watch.draining.store(true, Ordering::Release);
            watch.wake();
        }
        open.push_back(Arc::downgrade(watch));
        if open.len() <= self.limit {
            return;
        }
        open.retain(|w| w.upgrade().is_some_and(|w| !w.is_shed()));
        let mut excess = open.len().saturating_sub(self.limit);
        let older = open.len() - 1;
        for w in open.iter().take(older).filter_map(std::sync::Weak::upgrade) {
            if excess == 0 {
                break;
            }
            if w.due(limits) != Due::Busy {
                w.shed();
                excess -= 1;
            }
        }
        if excess > 0 {
            tracing::debug!("{} connections open, every one busy; over limits.max_connections", open.len());
        }
    }

    /// Tells every open connection the server is shutting down.
    pub fn drain(&self) {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        self.draining.store(true, Ordering::Release);
        for w in open.iter().filter_map(std::sync::Weak::upgrade) {
            w.draining.store(true, Ordering::Release);
            w.wake();
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
        // A connection asked to make room closes as soon as it is idle.
        if w.inflight.fetch_sub(1, Ordering::AcqRel) == 1 && w.is_shed() {
            w.wake();
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

/// A client stream that tells its [`Watch`] when bytes arrive, and gives hyper's own error
/// answers a body (see [`with_body`]).
pub struct Watched<S> {
    inner: S,
    watch: Arc<Watch>,
    /// A rewritten answer being written: its bytes, how far, and the length hyper wrote.
    rewritten: Option<(Vec<u8>, usize, usize)>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, watch: Arc<Watch>) -> Self {
        Self { inner, watch, rewritten: None }
    }
}

/// hyper answers a request it cannot parse (400, 414, 431) itself, with an empty body and no
/// hook to change it: a client then sees a bare status. Such an answer is recognised on its
/// way out — written while no request is in flight, a 4xx status line, `content-length: 0`,
/// and none of the headers every answer of ours carries (`x-request-id`) — and rewritten with
/// a JSON error body in OpenAI's shape.
fn with_body(head: &[u8]) -> Option<Vec<u8>> {
    let rest = head.strip_prefix(b"HTTP/1.1 4")?;
    let end = memchr::memmem::find(head, b"\r\n\r\n")?;
    let lower = head[..end].to_ascii_lowercase();
    if end + 4 != head.len()
        || memchr::memmem::find(&lower, b"\r\ncontent-length: 0\r\n").is_none()
            && !lower.ends_with(b"\r\ncontent-length: 0")
        || memchr::memmem::find(&lower, b"x-request-id").is_some()
    {
        return None;
    }
    let (code, message) = match &rest[..2] {
        b"31" => ("request_header_fields_too_large", "the request's headers are too large"),
        b"14" => ("uri_too_long", "the request's URI is too long"),
        _ => ("bad_request", "the request is not valid HTTP"),
    };
    let body = format!(r#"{{"error":{{"message":"{message}","type":"invalid_request_error","code":"{code}"}}}}"#);
    let line_end = memchr::memmem::find(head, b"\r\n")?;
    let mut out = head[..line_end].to_vec();
    for line in head[line_end + 2..end].split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.to_ascii_lowercase().starts_with(b"content-length:") && !line.is_empty() {
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(
        format!("\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len()).as_bytes(),
    );
    out.extend_from_slice(body.as_bytes());
    Some(out)
}

impl<S: AsyncWrite + Unpin> Watched<S> {
    /// Writes the rewritten answer to its end; then tells hyper its own bytes were written.
    fn poll_rewritten(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        while let Some((bytes, done, theirs)) = self.rewritten.as_mut() {
            if *done == bytes.len() {
                let theirs = *theirs;
                self.rewritten = None;
                return Poll::Ready(Ok(theirs));
            }
            match std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*done..])) {
                Ok(0) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
                Ok(n) => *done += n,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(0))
    }

    /// Whether `buf` is one of hyper's bare error answers; if so, starts writing its rewrite.
    fn rewrite(&mut self, buf: &[u8]) -> bool {
        if self.watch.inflight.load(Ordering::Acquire) != 0 {
            return false;
        }
        match with_body(buf) {
            Some(bytes) => {
                self.rewritten = Some((bytes, 0, buf.len()));
                true
            }
            None => false,
        }
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
        if self.rewritten.is_some() || (buf.starts_with(b"HTTP/1.1 4") && self.rewrite(buf)) {
            return self.poll_rewritten(cx);
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let first = bufs.iter().find(|b| !b.is_empty());
        if self.rewritten.is_some() || first.is_some_and(|b| b.starts_with(b"HTTP/1.1 4")) {
            let whole: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            if self.rewritten.is_some() || self.rewrite(&whole) {
                return self.poll_rewritten(cx);
            }
        }
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

    #[test]
    fn hypers_bare_error_answers_get_a_json_body_and_nothing_else_is_touched() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 07:36:44 GMT\r\n\r\n";
        let out = String::from_utf8(with_body(bare).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len()))
                && head.contains("content-type: application/json")
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "request_header_fields_too_large");
        let ours = b"HTTP/1.1 404 Not Found\r\nx-request-id: 1\r\ncontent-length: 0\r\n\r\n";
        assert!(with_body(ours).is_none(), "our own answers carry x-request-id");
        let with_a_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 5\r\n\r\n";
        assert!(with_body(with_a_body).is_none());
        assert!(with_body(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
    }

    #[test]
    fn a_connection_admitted_after_drain_began_drains_too() {
        let registry = Registry::new(10);
        let (before, after) = (Watch::new(), Watch::new());
        registry.admit(&before, LIMITS);
        registry.drain();
        // Handed to another serving thread just before shutdown, admitted there just after.
        registry.admit(&after, LIMITS);
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        for w in [&before, &after] {
            assert!(w.is_draining());
            assert_eq!(w.poll_woken(&mut cx), Poll::Ready(()), "its task is woken to close");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn over_the_limit_the_oldest_idle_connections_are_shed_never_busy_ones() {
        let registry = Registry::new(2);
        let busy = Watch::new();
        let _request = busy.begin(http::Version::HTTP_11);
        let (silent, newest) = (Watch::new(), Watch::new());
        for w in [&busy, &silent, &newest] {
            registry.admit(w, LIMITS);
        }
        assert!(!busy.is_shed(), "a connection with a request in flight is never shed");
        assert!(silent.is_shed(), "the oldest idle one makes room");
        assert!(!newest.is_shed());
        // Already asked to close: not counted again, and the one arriving is never shed.
        let later = Watch::new();
        registry.admit(&later, LIMITS);
        assert!(!newest.is_shed() || !later.is_shed());
        assert!(!later.is_shed(), "the connection being admitted keeps its header deadline");
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
