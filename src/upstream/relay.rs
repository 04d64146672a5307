//! The upstream response body on its way to the client: frames pass through untouched as
//! they arrive, or through a [`StreamTranslator`] when the client speaks another dialect; a
//! body that stays silent too long or breaks ends an event stream with an error event in the
//! client's dialect when its length is open (never a silent truncation); a body whose length
//! is open and that ends short of a whole answer (an event stream without its dialect's last
//! event, a JSON document cut mid-way) ends with that error event too, or fails (so the client
//! sees a broken response, never a clean-looking truncated one); the request's log line is
//! written when the body is done or dropped (client gone).
//!
//! Data that has already arrived goes out as one frame (one write for a burst of events),
//! up to [`BATCH`] bytes: relaying is linear in the body's size and holds at most a batch.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep, sleep};

use super::scan::Check;
use super::strip::UsageStrip;
use crate::access_log::AccessLog;
use crate::body::BoxError;
use crate::dialect::{Dialect, StreamTranslator};
use crate::error::ApiError;

pin_project_lite::pin_project! {
    pub struct Relay {
        #[pin]
        inner: Incoming,
        // Armed at the first wait, so a body that is already complete costs no timer.
        idle: Option<Pin<Box<Sleep>>>,
        idle_after: Duration,
        // The timer runs for the current wait: a wait starts when the body is polled and the
        // upstream has nothing (time the client spent not reading is not upstream silence).
        waiting: bool,
        // The dialect of the error event that ends a broken event stream; `None`: the body
        // is not an open-length event stream, so a break fails it.
        errors: Option<Dialect>,
        done: bool,
        // Data past the batch's size, or a failure, met while batching: for the next poll.
        held: Option<Bytes>,
        held_failure: Option<ApiError>,
        // Rewrites the stream on its way; `None` passes bytes through.
        translator: Option<Box<dyn StreamTranslator>>,
        // Tells whether a body passed through ended whole.
        check: Option<Check>,
        // Takes out the usage chunk the gateway asked for on the client's behalf.
        strip: Option<UsageStrip>,
        log: AccessLog,
    }
}

/// Data is batched into one frame up to this size; past it the frame goes out.
pub const BATCH: usize = 64 << 10;

impl Relay {
    pub fn new(inner: Incoming, idle_after: Duration, errors: Option<Dialect>, log: AccessLog) -> Self {
        Self {
            inner,
            idle: None,
            idle_after,
            waiting: false,
            errors,
            done: false,
            held: None,
            held_failure: None,
            translator: None,
            check: None,
            strip: None,
            log,
        }
    }

    /// Checks at the end that the body passed through is whole (see [`Check`]).
    pub fn checked(mut self, check: Check) -> Self {
        self.check = Some(check);
        self
    }

    /// Removes the usage chunk the gateway asked for (see [`UsageStrip`]).
    pub fn stripped(mut self, strip: UsageStrip) -> Self {
        self.strip = Some(strip);
        self
    }

    pub fn translated(mut self, translator: Box<dyn StreamTranslator>) -> Self {
        self.translator = Some(translator);
        self
    }
}

/// A translated stream that ended with an error event is a failed request in its log line,
/// as a relayed one that broke off is.
fn note_failure(log: &mut AccessLog, translator: &dyn StreamTranslator) {
    if log.error.is_none()
        && let Some(message) = translator.failure()
    {
        log.error = Some(message.to_owned());
    }
}

/// What will go out as one frame: the first piece as it came (no copy), later ones copied
/// after it, up to about [`BATCH`] bytes.
#[derive(Default)]
struct Batch {
    first: Option<Bytes>,
    joined: BytesMut,
}

impl Batch {
    fn len(&self) -> usize {
        self.first.as_ref().map_or(0, Bytes::len) + self.joined.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes `data`, or gives it back when it should be a frame of its own (the batch has
    /// something and `data` would take it past [`BATCH`]).
    fn push(&mut self, data: Bytes) -> Option<Bytes> {
        let len = self.len();
        if len == 0 {
            self.first = Some(data);
            return None;
        }
        if len + data.len() > BATCH {
            return Some(data);
        }
        if let Some(first) = self.first.take() {
            self.joined.reserve(BATCH.min(len + data.len()).max(first.len() + data.len()));
            self.joined.extend_from_slice(&first);
        }
        self.joined.extend_from_slice(&data);
        None
    }

    fn take(self) -> Option<Bytes> {
        match self.first {
            Some(first) => Some(first),
            None if self.joined.is_empty() => None,
            None => Some(self.joined.freeze()),
        }
    }
}

impl HttpBody for Relay {
    type Data = Bytes;
    type Error = BoxError;

    /// Passes data through unchanged, but hands hyper everything that has already arrived
    /// (up to [`BATCH`] bytes) as one frame: one write for a burst of SSE events instead of
    /// one per event.
    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if let Some(data) = this.held.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        let mut failure = this.held_failure.take();
        if *this.done && failure.is_none() {
            return Poll::Ready(None);
        }
        let mut batch = Batch::default();
        while failure.is_none() && !*this.done && batch.len() < BATCH {
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    *this.waiting = false;
                    match frame.into_data() {
                        Ok(data) => {
                            if let Some(check) = this.check.as_mut() {
                                check.feed(&data);
                            }
                            if this.log.reservation.is_some() {
                                // What a stream cut short is charged by: its events so far.
                                this.log.events += memchr::memmem::find_iter(&data, b"\n\n").count() as u64;
                            }
                            let data = match (this.translator.as_mut(), this.strip.as_mut()) {
                                (None, Some(strip)) => {
                                    let out = strip.feed(data);
                                    if let Some(usage) = strip.take_usage() {
                                        this.log.tail.push(&usage);
                                    }
                                    out
                                }
                                (None, None) => data,
                                (Some(t), _) => {
                                    // About what a translation writes (events in another
                                    // dialect run up to twice as long, and the first ones
                                    // are added): room made once, not grown event by event.
                                    let mut out = Vec::with_capacity(2 * data.len() + 512);
                                    t.feed(&data, &mut out);
                                    note_failure(this.log, t.as_ref());
                                    Bytes::from(out)
                                }
                            };
                            if data.is_empty() {
                                continue;
                            }
                            // Only a stream's first byte is reported (time to first token).
                            if this.log.stream && this.log.first_byte.is_none() {
                                this.log.first_byte = Some(this.log.started.elapsed());
                            }
                            this.log.body_bytes += data.len() as u64;
                            // A translated stream's counts are its translator's: the usage the
                            // gateway writes says no more, and before the end it says 0.
                            if this.translator.is_none() {
                                this.log.tail.push_bytes(&data);
                            }
                            if let Some(own) = batch.push(data) {
                                *this.held = Some(own);
                                break;
                            }
                        }
                        // Trailers, the only other frame, come last: read past, not sent on (hyper
                        // would end the response at them, before the body's end is judged; and
                        // the `Trailer` header that would announce them is hop-by-hop).
                        Err(_trailers) => {}
                    }
                }
                Poll::Ready(None) => {
                    *this.done = true;
                    if let Some(strip) = this.strip.as_mut() {
                        let rest = strip.finish();
                        if !rest.is_empty() {
                            this.log.body_bytes += rest.len() as u64;
                            this.log.tail.push(&rest);
                            if let Some(own) = batch.push(rest) {
                                *this.held = Some(own);
                            }
                        }
                    }
                    if let Some(t) = this.translator.as_mut() {
                        this.log.tokens = t.tokens();
                        let mut tail = Vec::new();
                        t.finish(&mut tail);
                        note_failure(this.log, t.as_ref());
                        if !tail.is_empty()
                            && let Some(own) = batch.push(Bytes::from(tail))
                        {
                            *this.held = Some(own);
                        }
                    }
                    if this.check.as_ref().is_some_and(|c| !c.complete()) {
                        failure = Some(ApiError::bad_answer("the upstream's answer ended before it was complete"));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    failure = Some(ApiError::bad_gateway(format!("upstream response broke off: {e}")));
                }
                Poll::Pending if !batch.is_empty() => break,
                Poll::Pending => {
                    let after = *this.idle_after;
                    let idle = this.idle.get_or_insert_with(|| Box::pin(sleep(after)));
                    if !*this.waiting {
                        idle.as_mut().reset(Instant::now() + after);
                        *this.waiting = true;
                    }
                    ready!(idle.as_mut().poll(cx));
                    failure = Some(ApiError::gateway_timeout(format!(
                        "upstream sent nothing for {} s (timeouts.idle_stream_seconds)",
                        after.as_secs()
                    )));
                }
            }
        }
        match (batch.take(), failure) {
            (Some(data), failure) => {
                *this.held_failure = failure;
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            (None, None) => Poll::Ready(None),
            (None, Some(err)) => {
                *this.done = true;
                this.log.error = Some(err.message.clone());
                let event = match (this.translator.as_mut(), *this.errors) {
                    (Some(t), _) => {
                        let mut out = Vec::new();
                        t.fail(err.code, &err.message, &mut out);
                        out
                    }
                    (None, Some(dialect)) => dialect.error_event(&err),
                    (None, None) => return Poll::Ready(Some(Err(err.message.into()))),
                };
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(event)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.held.is_none() && self.held_failure.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.errors.is_some() || self.translator.is_some() || self.strip.is_some() {
            SizeHint::default()
        } else {
            self.inner.size_hint()
        }
    }
}

pin_project_lite::pin_project! {
    /// Holds back the last data frame of a body until the body has ended well: a body that
    /// fails at its end (a [`Relay`] whose [`Check`] found the answer incomplete) then reaches
    /// the client short of its length, or without its last chunk, which every HTTP client
    /// reports as a broken response — never as a whole one. For bodies a client reads whole
    /// (JSON), not for event streams, whose events must not wait for the next one.
    pub struct HoldLast<B> {
        #[pin]
        inner: B,
        held: Option<Bytes>,
        ended: bool,
    }
}

impl<B> HoldLast<B> {
    pub fn new(inner: B) -> Self {
        Self { inner, held: None, ended: false }
    }
}

impl<B: HttpBody<Data = Bytes>> HttpBody for HoldLast<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        if *this.ended {
            return Poll::Ready(this.held.take().map(|data| Ok(Frame::data(data))));
        }
        loop {
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                // A [`Relay`] sends data frames only.
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && let Some(previous) = this.held.replace(data)
                    {
                        return Poll::Ready(Some(Ok(Frame::data(previous))));
                    }
                }
                Some(Err(e)) => {
                    *this.ended = true;
                    *this.held = None;
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    *this.ended = true;
                    return Poll::Ready(this.held.take().map(|data| Ok(Frame::data(data))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.held.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
