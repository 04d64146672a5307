//! The upstream response body on its way to the client: frames pass through untouched as
//! they arrive; a body that stays silent too long or breaks ends an event stream with an
//! SSE error event (never a silent truncation); the request's log line is written when the
//! body is done or dropped (client gone).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep, sleep};

use crate::access_log::AccessLog;
use crate::body::BoxError;
use crate::error::ApiError;

pin_project_lite::pin_project! {
    pub struct Relay {
        #[pin]
        inner: Incoming,
        #[pin]
        idle: Sleep,
        idle_after: Duration,
        sse: bool,
        done: bool,
        pending_error: Option<Bytes>,
        log: AccessLog,
    }
}

impl Relay {
    pub fn new(inner: Incoming, idle_after: Duration, sse: bool, log: AccessLog) -> Self {
        Self { inner, idle: sleep(idle_after), idle_after, sse, done: false, pending_error: None, log }
    }
}

impl HttpBody for Relay {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if let Some(event) = this.pending_error.take() {
            return Poll::Ready(Some(Ok(Frame::data(event))));
        }
        if *this.done {
            return Poll::Ready(None);
        }
        let failure = match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.log.body_bytes += data.len() as u64;
                }
                this.idle.as_mut().reset(Instant::now() + *this.idle_after);
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(None) => {
                *this.done = true;
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Err(e))) => format!("upstream response broke off: {e}"),
            Poll::Pending => {
                ready!(this.idle.as_mut().poll(cx));
                format!("upstream sent nothing for {} s (timeouts.idle_stream_seconds)", this.idle_after.as_secs())
            }
        };
        *this.done = true;
        this.log.error = Some(failure.clone());
        if !*this.sse {
            return Poll::Ready(Some(Err(failure.into())));
        }
        let err = ApiError::bad_gateway(failure);
        let mut event = b"\n\ndata: ".to_vec();
        event.extend_from_slice(err.body().to_string().as_bytes());
        event.extend_from_slice(b"\n\n");
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(event)))))
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.pending_error.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.sse { SizeHint::default() } else { self.inner.size_hint() }
    }
}
