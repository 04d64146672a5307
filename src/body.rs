//! The response body type every handler returns, and small constructors.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = BoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// Marks a response as an event stream that proxies in front must not buffer.
pub fn no_buffering(headers: &mut http::HeaderMap) {
    headers.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-cache"));
    headers.insert(http::HeaderName::from_static("x-accel-buffering"), http::HeaderValue::from_static("no"));
}

/// A JSON response with the given status.
pub fn json(status: http::StatusCode, value: &serde_json::Value) -> http::Response<Body> {
    let head = http::Response::new(()).into_parts().0;
    json_bytes(head, status, serde_json::to_vec(value).unwrap_or_default())
}

/// [`json`] for a body already serialised, in `head`: a translated answer keeps the upstream
/// response's headers (its `Retry-After`, rate limits and request id) less those that
/// described the upstream's body; extensions are dropped.
pub fn json_bytes(head: http::response::Parts, status: http::StatusCode, mut bytes: Vec<u8>) -> http::Response<Body> {
    bytes.push(b'\n');
    whole(head, status, bytes, "application/json")
}

/// [`json_bytes`] for a whole event stream (an answer replayed as events).
pub fn event_bytes(mut head: http::response::Parts, status: http::StatusCode, bytes: Vec<u8>) -> http::Response<Body> {
    no_buffering(&mut head.headers);
    whole(head, status, bytes, "text/event-stream")
}

fn whole(
    mut head: http::response::Parts,
    status: http::StatusCode,
    bytes: Vec<u8>,
    content_type: &'static str,
) -> http::Response<Body> {
    head.status = status;
    head.extensions.clear();
    head.headers.remove(http::header::CONTENT_LENGTH);
    head.headers.remove(http::header::CONTENT_ENCODING);
    head.headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    http::Response::from_parts(head, full(bytes))
}
