//! Reading a client's request body: within `timeouts.request_body_seconds` (else 408), into
//! one buffer of at most `limits.max_body_bytes` (else 413), never more than once in memory.
//!
//! A body refused as too large is read on and thrown away until it ends or its deadline passes
//! (like nginx's lingering close) before the 413 goes out: clients that write the whole body
//! before reading (Python's `http.client`, httpx) would otherwise hit a reset and never see
//! the answer. Not when the client waits for `100 Continue` (it sends no body then) or speaks
//! HTTP/2 (the stream is reset, the connection lives on).

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Version, header};
use http_body_util::BodyExt;
use hyper::body::Body;
use tokio::time::{Duration, Instant, timeout_at};

use crate::error::ApiError;

/// The limits a body is read under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    pub timeout: Duration,
}

/// Reads the whole body of a request with `headers` and `version`.
pub async fn read<B>(headers: &HeaderMap, version: Version, mut body: B, limits: Limits) -> Result<Bytes, ApiError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let deadline = Instant::now() + limits.timeout;
    let limit = limits.max_bytes;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        if lingers(headers, version) {
            discard(&mut body, deadline).await;
        }
        return Err(ApiError::too_large(limit));
    }
    // The first chunk is kept as it is (most bodies arrive in one); later ones are copied
    // into a buffer sized by Content-Length when there is one.
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    let mut len = 0usize;
    loop {
        // Most bodies have fully arrived with their headers: take what is there without
        // arming a timer (each costs the runtime handle's shared reference count).
        let frame = match futures_util::FutureExt::now_or_never(body.frame()) {
            Some(frame) => Ok(frame),
            None => timeout_at(deadline, body.frame()).await,
        };
        let frame = match frame {
            Err(_) => return Err(ApiError::request_timeout(limits.timeout)),
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(ApiError::bad_request("body_read_error", format!("could not read the request body: {e}")));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else { continue };
        len = len.saturating_add(data.len());
        if len > limit {
            drop((first, buf));
            // The body is already coming (any `100 Continue` went out when it was polled).
            if version != Version::HTTP_2 {
                discard(&mut body, deadline).await;
            }
            return Err(ApiError::too_large(limit));
        }
        match first.take() {
            None if buf.is_empty() => first = Some(data),
            None => buf.extend_from_slice(&data),
            Some(head) => {
                let size = declared.map_or(len, |n| usize::try_from(n).unwrap_or(limit)).max(len);
                buf.reserve(size);
                buf.extend_from_slice(&head);
                buf.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}

/// Whether a refused body is read on: HTTP/1.x, and the client did not ask to wait for
/// `100 Continue` before sending it.
fn lingers(headers: &HeaderMap, version: Version) -> bool {
    let expects = headers.get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    version != Version::HTTP_2 && !expects
}

/// Reads and drops the rest of `body` until it ends, fails or `deadline` passes.
async fn discard<B: Body + Unpin>(body: &mut B, deadline: Instant) {
    while let Ok(Some(Ok(_))) = timeout_at(deadline, body.frame()).await {}
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;
    use futures_util::{StreamExt, stream};
    use http_body_util::StreamBody;
    use hyper::body::Frame;

    const LIMITS: Limits = Limits { max_bytes: 10, timeout: Duration::from_secs(5) };

    fn chunks(
        parts: &[&'static str],
    ) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>>> {
        let frames: Vec<_> = parts.iter().map(|p| Ok(Frame::data(Bytes::from_static(p.as_bytes())))).collect();
        StreamBody::new(stream::iter(frames))
    }

    fn length(n: usize) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, n.into());
        h
    }

    #[tokio::test]
    async fn bodies_in_one_or_many_chunks() {
        let one = read(&HeaderMap::new(), Version::HTTP_11, chunks(&["hello"]), LIMITS).await.unwrap();
        assert_eq!(one, "hello");
        let many = read(&length(10), Version::HTTP_11, chunks(&["hel", "lo"]), LIMITS).await.unwrap();
        assert_eq!(many, "hello");
        let chunked = read(&HeaderMap::new(), Version::HTTP_11, chunks(&["ab", "cd", "ef"]), LIMITS).await.unwrap();
        assert_eq!(chunked, "abcdef");
    }

    #[tokio::test]
    async fn too_large_declared_or_sent() {
        let declared = read(&length(11), Version::HTTP_11, chunks(&["x"]), LIMITS).await.unwrap_err();
        assert_eq!(declared.status, 413);
        let sent = read(&HeaderMap::new(), Version::HTTP_11, chunks(&["123456", "789012"]), LIMITS).await.unwrap_err();
        assert_eq!(sent.status, 413);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_times_out() {
        let first = stream::iter([Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"ab")))]);
        let stalled = StreamBody::new(first.chain(stream::pending()));
        let e = read(&length(5), Version::HTTP_11, stalled, LIMITS).await.unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (408, "request_timeout"));
    }
}
