//! Waiting for slots: admission with position reports, permits held by response bodies,
//! and the streaming answer that tells a queued client where it stands.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Body as HttpBody, Frame};
use tokio::sync::{mpsc, oneshot};

use super::{Full, Gate, Permit};
use crate::access_log::AccessLog;
use crate::body::{Body, BoxError};
use crate::error::ApiError;
use crate::metrics;
use crate::proxy::{Job, attempt};

/// Waits for a slot of `gate`, telling `on_queue` each new position; `scope` names the
/// queue in metrics. Full queue: 429; waited too long: 503; both with `Retry-After`.
pub async fn admit(
    gate: &Arc<Gate>,
    scope: &str,
    timeout: std::time::Duration,
    on_queue: &mut (dyn FnMut(usize) + Send),
) -> Result<Permit, ApiError> {
    let m = metrics::get();
    let mut ticket = match gate.enter() {
        Ok(Ok(permit)) => return Ok(permit),
        Ok(Err(ticket)) => ticket,
        Err(Full) => {
            return Err(ApiError::too_many("queue_full", format!("the queue for {scope} is full; retry shortly")));
        }
    };
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
                return Err(ApiError::queue_timeout(format!(
                    "waited {} s in the queue for {scope} (limits.queue_timeout_seconds)",
                    timeout.as_secs()
                )));
            }
        }
    };
    m.queue_depth.with_label_values(&[scope]).set(gate.depth() as i64);
    m.queue_wait.with_label_values(&[scope]).observe(started.elapsed().as_secs_f64());
    Ok(permit)
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
    /// It never waited: the ordinary response (or error), unchanged.
    Done(Response<Body>),
}

/// Writes the request's log line with its error.
fn failed(mut log: AccessLog, e: &ApiError) {
    log.status = e.status.as_u16();
    log.error = Some(e.message.clone());
}

fn comment(position: usize) -> Bytes {
    Bytes::from(format!(": queue position {position}\n\n"))
}

/// A streaming request that may have to queue. If it is admitted at once, the answer is the
/// ordinary one. If it has to wait, the client gets an event stream at once, SSE comments
/// `: queue position N` as its place changes (SDKs ignore comments), then the upstream's
/// events — or an error event, since the status line has gone out. A client that leaves
/// leaves the queue.
pub(crate) async fn streaming(job: Job, mut log: AccessLog) -> Result<Response<Body>, ApiError> {
    let (first_tx, first_rx) = oneshot::channel::<First>();
    let (tx, rx) = mpsc::channel::<Bytes>(32);
    tokio::spawn(async move {
        let mut first = Some(first_tx);
        let result = {
            let mut on_queue = |position: usize| match first.take() {
                Some(f) => {
                    let _ = f.send(First::Queued(position));
                }
                None => {
                    let _ = tx.try_send(comment(position));
                }
            };
            // The receiver lives until the answer is chosen, and then in the response body:
            // it closes only when a queued client leaves, which drops the ticket too.
            tokio::select! {
                r = attempt(&job, &mut log, &mut on_queue) => r,
                () = tx.closed() => return,
            }
        };
        match (first.take(), result) {
            (Some(f), Ok(resp)) => {
                let _ = f.send(First::Done(resp));
            }
            (Some(f), Err(e)) => {
                failed(log, &e);
                let _ = f.send(First::Done(e.response()));
            }
            (None, Ok(resp)) => {
                let ok = resp.status().is_success();
                let mut body = resp.into_body();
                if !ok {
                    // The status line went out long ago: the upstream's error becomes an event.
                    let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                    let text = String::from_utf8_lossy(&bytes);
                    let _ = tx.send(Bytes::from(format!("data: {}\n\n", text.trim()))).await;
                    return;
                }
                while let Some(Ok(frame)) = body.frame().await {
                    if let Ok(data) = frame.into_data()
                        && tx.send(data).await.is_err()
                    {
                        return;
                    }
                }
            }
            (None, Err(e)) => {
                failed(log, &e);
                let _ = tx.send(Bytes::from(format!("data: {}\n\n", e.body()))).await;
            }
        }
    });
    match first_rx.await {
        Ok(First::Done(resp)) => Ok(resp),
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
            Ok(resp)
        }
        Err(_) => Err(ApiError::internal("queue_task_failed", "the queued request's task ended unexpectedly")),
    }
}
