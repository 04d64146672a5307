//! The upstream response body on its way to the client: frames pass through untouched as
//! they arrive, or through a [`StreamTranslator`] when the client speaks another dialect; a
//! body that stays silent too long or breaks ends an event stream with an error event in the
//! client's dialect when its length is open (never a silent truncation); the request's log
//! line is written when the body is done or dropped (client gone).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep, sleep};

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
        // The dialect of the error event that ends a broken event stream; `None`: the body
        // is not an open-length event stream, so a break fails it.
        errors: Option<Dialect>,
        done: bool,
        // A non-data frame or a failure met while batching, delivered on the next poll.
        held_frame: Option<Frame<Bytes>>,
        held_failure: Option<String>,
        // Rewrites the stream on its way; `None` passes bytes through.
        translator: Option<Box<dyn StreamTranslator>>,
        log: AccessLog,
    }
}

impl Relay {
    pub fn new(inner: Incoming, idle_after: Duration, errors: Option<Dialect>, log: AccessLog) -> Self {
        Self {
            inner,
            idle: None,
            idle_after,
            errors,
            done: false,
            held_frame: None,
            held_failure: None,
            translator: None,
            log,
        }
    }

    pub fn translated(mut self, translator: Box<dyn StreamTranslator>) -> Self {
        self.translator = Some(translator);
        self
    }
}

/// Adds `data` to what will go out as one frame (no copy when it is the first piece).
fn append(batch: &mut Option<Bytes>, data: Bytes) {
    *batch = Some(match batch.take() {
        None => data,
        Some(first) => {
            let mut joined = bytes::BytesMut::with_capacity(first.len() + data.len());
            joined.extend_from_slice(&first);
            joined.extend_from_slice(&data);
            joined.freeze()
        }
    });
}

impl HttpBody for Relay {
    type Data = Bytes;
    type Error = BoxError;

    /// Passes data through unchanged, but hands hyper everything that has already arrived
    /// as one frame: one write for a burst of SSE events instead of one per event.
    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if let Some(frame) = this.held_frame.take() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if *this.done {
            return Poll::Ready(None);
        }
        let mut batch: Option<Bytes> = None;
        let mut failure = this.held_failure.take();
        while failure.is_none() {
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(idle) = this.idle.as_mut() {
                        idle.as_mut().reset(Instant::now() + *this.idle_after);
                    }
                    match frame.into_data() {
                        Ok(data) => {
                            let data = match this.translator.as_mut() {
                                None => data,
                                Some(t) => {
                                    let mut out = Vec::new();
                                    t.feed(&data, &mut out);
                                    Bytes::from(out)
                                }
                            };
                            if data.is_empty() {
                                continue;
                            }
                            if this.log.first_byte.is_none() {
                                this.log.first_byte = Some(this.log.started.elapsed());
                            }
                            this.log.body_bytes += data.len() as u64;
                            this.log.tail.push(&data);
                            append(&mut batch, data);
                        }
                        Err(other) if batch.is_none() => return Poll::Ready(Some(Ok(other))),
                        Err(other) => {
                            *this.held_frame = Some(other);
                            break;
                        }
                    }
                }
                Poll::Ready(None) => {
                    *this.done = true;
                    if let Some(t) = this.translator.as_mut() {
                        this.log.tokens = t.tokens();
                        let mut tail = Vec::new();
                        t.finish(&mut tail);
                        if !tail.is_empty() {
                            append(&mut batch, Bytes::from(tail));
                        }
                    }
                    break;
                }
                Poll::Ready(Some(Err(e))) => failure = Some(format!("upstream response broke off: {e}")),
                Poll::Pending if batch.is_some() => break,
                Poll::Pending => {
                    let after = *this.idle_after;
                    ready!(this.idle.get_or_insert_with(|| Box::pin(sleep(after))).as_mut().poll(cx));
                    failure =
                        Some(format!("upstream sent nothing for {} s (timeouts.idle_stream_seconds)", after.as_secs()));
                }
            }
        }
        match (batch, failure) {
            (Some(data), failure) => {
                *this.held_failure = failure;
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            (None, None) => Poll::Ready(None),
            (None, Some(failure)) => {
                *this.done = true;
                this.log.error = Some(failure.clone());
                let err = ApiError::bad_gateway(failure);
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
        self.done && self.held_frame.is_none() && self.held_failure.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.errors.is_some() || self.translator.is_some() { SizeHint::default() } else { self.inner.size_hint() }
    }
}
