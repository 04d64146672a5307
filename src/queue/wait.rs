//! Waiting for slots: admission with position reports, permits held by response bodies,
//! and the streaming answer that tells a queued client where it stands.

use std::future::Future;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Body as HttpBody, Frame};
use tokio::sync::{mpsc, oneshot};

use super::{Full, Gate, Permit};
use crate::body::{Body, BoxError};
use crate::dialect::Dialect;
use crate::error::ApiError;
use crate::metrics;
use crate::upstream::OnQueue;

/// Waits for a slot of `gate`, telling `on_queue` each new position; `scope` names the
/// queue in metrics. Full queue: 429; waited too long: 503; both with `Retry-After`.
pub async fn admit(
    gate: &Arc<Gate>,
    scope: &str,
    timeout: std::time::Duration,
    on_queue: &mut OnQueue<'_>,
) -> Result<Permit, ApiError> {
    let m = metrics::get();
    // Declared before the ticket, so dropped after it: however `admit` ends (admitted, timed
    // out, or the client left and this future was dropped), the gauge counts the ticket gone.
    let _depth: DepthOnExit;
    let mut ticket = match gate.enter() {
        Ok(Ok(permit)) => return Ok(permit),
        Ok(Err(ticket)) => ticket,
        Err(Full) => {
            m.queue_rejected.with_label_values(&[scope, "queue_full"]).inc();
            return Err(ApiError::too_many("queue_full", format!("the queue for {scope} is full; retry shortly")));
        }
    };
    // Both refusals' series exist from a scope's first wait on, at zero: Prometheus then sees
    // the first refusal as an increase (a series born at 1 shows none).
    for reason in ["queue_full", "queue_timeout"] {
        m.queue_rejected.with_label_values(&[scope, reason]);
    }
    _depth = DepthOnExit { gate, scope };
    let started = tokio::time::Instant::now();
    let deadline = started + timeout;
    let mut last = 0;
    let permit = loop {
        m.queue_depth.with_label_values(&[scope]).set(gate.depth() as i64);
        if let Some(p) = ticket.try_admit() {
            break p;
        }
        let position = ticket.position();
        if position != last {
            on_queue(position);
            last = position;
        }
        tokio::select! {
            () = ticket.changed() => {}
            () = tokio::time::sleep_until(deadline) => {
                m.queue_rejected.with_label_values(&[scope, "queue_timeout"]).inc();
                return Err(ApiError::queue_timeout(format!(
                    "waited {} s in the queue for {scope} (limits.queue_timeout_seconds)",
                    timeout.as_secs()
                )));
            }
        }
    };
    m.queue_wait.with_label_values(&[scope]).observe(started.elapsed().as_secs_f64());
    Ok(permit)
}

struct DepthOnExit<'a> {
    gate: &'a Gate,
    scope: &'a str,
}

impl Drop for DepthOnExit<'_> {
    fn drop(&mut self) {
        metrics::get().queue_depth.with_label_values(&[self.scope]).set(self.gate.depth() as i64);
    }
}

/// A response body that keeps concurrency slots until it is finished or dropped.
struct Held {
    inner: Body,
    _permits: Vec<Permit>,
}

impl HttpBody for Held {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

pub fn hold(resp: Response<Body>, permits: Vec<Permit>) -> Response<Body> {
    if permits.is_empty() {
        return resp;
    }
    resp.map(|inner| Held { inner, _permits: permits }.boxed())
}

/// How a queued stream's task first answers.
enum First {
    /// It is waiting at this position: answer with an event stream now.
    Queued(usize),
    /// It never waited: the ordinary response, unchanged.
    Done(Response<Body>),
}

/// The most of an error answer a queued stream reads to make its error event from, and the
/// longest it waits for it.
const MAX_ERROR_BYTES: usize = 64 * 1024;
const ERROR_BODY_TIME: std::time::Duration = std::time::Duration::from_secs(10);

fn comment(position: usize) -> Bytes {
    Bytes::from(format!(": queue position {position}\n\n"))
}

/// A streaming request that may have to queue; `run` sends it, reporting queue positions to
/// the callback it is given, and answers in the client's dialect. If it is admitted at once,
/// the answer is the ordinary one. If it has to wait, the client gets an event stream at
/// once, SSE comments `: queue position N` as its place changes (every SSE client ignores
/// comments, in all three dialects), then the upstream's events — or an error event in
/// `dialect`, since the status line has gone out. A client that leaves leaves the queue.
pub fn streaming<F, Fut>(dialect: Dialect, run: F) -> impl Future<Output = Response<Body>> + Send
where
    F: FnOnce(Box<OnQueue<'static>>) -> Fut + Send + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let (first_tx, first_rx) = oneshot::channel::<First>();
    let (tx, rx) = mpsc::channel::<Bytes>(32);
    let first = Arc::new(Mutex::new(Some(first_tx)));
    let reporter = {
        let (first, tx) = (first.clone(), tx.clone());
        Box::new(move |position: usize| match first.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(f) => {
                let _ = f.send(First::Queued(position));
            }
            None => {
                let _ = tx.try_send(comment(position));
            }
        })
    };
    tokio::spawn(async move {
        // The receiver lives until the answer is chosen, and then in the response body: it
        // closes only when a queued client leaves, which drops the ticket too.
        let resp = tokio::select! {
            r = run(reporter) => r,
            () = tx.closed() => return,
        };
        if let Some(f) = first.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = f.send(First::Done(resp));
            return;
        }
        let status = resp.status();
        let mut body = resp.into_body();
        if !status.is_success() {
            // The status line went out long ago: the error becomes an event, made from what of
            // the body arrives within bounds (an error body is small, and comes at once).
            let mut bytes = Vec::new();
            let read = async {
                while let Some(Ok(frame)) = body.frame().await {
                    if let Ok(data) = frame.into_data() {
                        bytes.extend_from_slice(&data[..data.len().min(MAX_ERROR_BYTES - bytes.len())]);
                        if bytes.len() == MAX_ERROR_BYTES {
                            break;
                        }
                    }
                }
            };
            tokio::select! {
                // The client left: nothing to tell, and the slot is freed now.
                () = tx.closed() => return,
                _ = tokio::time::timeout(ERROR_BODY_TIME, read) => {}
            }
            let _ = tx.send(Bytes::from(dialect.error_event_for(status, &bytes))).await;
            return;
        }
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data()
                && tx.send(data).await.is_err()
            {
                return;
            }
        }
    });
    async move {
        match first_rx.await {
            Ok(First::Done(resp)) => resp,
            Ok(First::Queued(position)) => {
                let head = futures_util::stream::once(async move { comment(position) });
                let rest = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
                let frames = futures_util::StreamExt::map(futures_util::StreamExt::chain(head, rest), |b| {
                    Ok::<_, BoxError>(Frame::data(b))
                });
                let mut resp = Response::new(StreamBody::new(frames).boxed());
                let h = resp.headers_mut();
                h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
                crate::body::no_buffering(h);
                *resp.status_mut() = StatusCode::OK;
                resp
            }
            Err(_) => ApiError::internal("queue_task_failed", "the queued request's task ended unexpectedly")
                .response_in(dialect),
        }
    }
}
