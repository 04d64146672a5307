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
    json_bytes(status, serde_json::to_vec(value).unwrap_or_default())
}

/// [`json`] for a body already serialised.
pub fn json_bytes(status: http::StatusCode, mut bytes: Vec<u8>) -> http::Response<Body> {
    bytes.push(b'\n');
    let mut resp = http::Response::new(full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    resp
}
