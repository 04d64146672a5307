//! Errors the gateway itself answers with, in the client's dialect: OpenAI's
//! `{"error":{"message","type","code"}}` (Chat and Responses) or Anthropic's
//! `{"type":"error","error":{"type","message"}}` (Messages), the right status, and
//! `x-llm-gateway-error` saying which side failed. Every body carries the request's id
//! (`request_id.rs`) when one is current: inside `error` in OpenAI's shape (the openai SDKs
//! expose that object as the exception's body; OpenAI itself sends the id only as the
//! `x-request-id` header), at the top level in Anthropic's (as Anthropic's API does).

use http::{HeaderName, HeaderValue, Response, StatusCode};
use serde_json::json;

use crate::body::{Body, json};
use crate::dialect::Dialect;
use crate::dialect::messages::client::response::error_type;

pub const SIDE_HEADER: HeaderName = HeaderName::from_static("x-llm-gateway-error");

/// Which side a gateway-made error blames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The request or the gateway's own configuration.
    Gateway,
    /// The upstream could not be reached or did not answer in time.
    Upstream,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
    pub side: Side,
    /// For 405: the methods the path accepts.
    pub allow: Option<&'static str>,
    /// Seconds for `Retry-After` (queue full or timed out, a key over its limits).
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, kind, code, message: message.into(), side: Side::Gateway, allow: None, retry_after: None }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", code, message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_error", code, message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_error", code, message)
    }

    pub fn not_found(path: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found_error", "unknown_url", format!("no route for `{path}`"))
    }

    pub fn method_not_allowed(method: &http::Method, path: &str, allow: &'static str) -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "method_not_allowed",
            format!("`{method} {path}` is not supported; use {allow}"),
        );
        e.allow = Some(allow);
        e
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            format!("request body is larger than the gateway's limit of {limit} bytes (limits.max_body_bytes)"),
        )
    }

    /// 408: the client did not send its request body in time (`timeouts.request_body_seconds`).
    pub fn request_timeout(limit: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            "request_timeout",
            format!("the request body did not arrive within {} s (timeouts.request_body_seconds)", limit.as_secs_f64()),
        )
    }

    pub fn internal(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", code, message)
    }

    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, "server_error", "not_implemented", message)
    }

    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self {
            side: Side::Upstream,
            ..Self::new(StatusCode::BAD_GATEWAY, "upstream_error", "upstream_unreachable", message)
        }
    }

    /// The upstream answered, but not with a whole answer: a body that is not one, larger than
    /// the limit, or a stream that ended before its last event. (`bad_gateway`: it could not
    /// be reached, or its connection broke.)
    pub fn bad_answer(message: impl Into<String>) -> Self {
        Self {
            side: Side::Upstream,
            ..Self::new(StatusCode::BAD_GATEWAY, "upstream_error", "upstream_bad_response", message)
        }
    }

    /// 429 with `Retry-After`.
    pub fn too_many(code: &'static str, message: impl Into<String>) -> Self {
        Self { retry_after: Some(1), ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", code, message) }
    }

    /// The rate-limit backend failed and `rate_limits.on_backend_error` is `deny`.
    pub fn rate_limit_backend() -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "rate_limit_backend_unavailable",
                "the rate-limit backend cannot be reached (rate_limits.on_backend_error: deny)",
            )
        }
    }

    /// A key over its `rpm`, `tpm` or `tokens_per_day`.
    pub fn rate_limited(limit: &str, retry_after: std::time::Duration) -> Self {
        let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
        Self {
            retry_after: Some(secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "rate_limit_exceeded",
                format!("this API key is over its `{limit}` limit; retry in {secs} s"),
            )
        }
    }

    /// 503 with `Retry-After`: waited too long in a queue.
    pub fn queue_timeout(message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", "queue_timeout", message)
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            side: Side::Upstream,
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "upstream_error", "all_endpoints_failed", message)
        }
    }

    pub fn gateway_timeout(message: impl Into<String>) -> Self {
        Self {
            side: Side::Upstream,
            ..Self::new(StatusCode::GATEWAY_TIMEOUT, "upstream_error", "upstream_timeout", message)
        }
    }

    /// The error object as it appears in a body or an SSE error event.
    pub fn body(&self) -> serde_json::Value {
        self.body_in(Dialect::Chat)
    }

    /// The error object in `dialect`'s shape, with the current request's id.
    pub fn body_in(&self, dialect: Dialect) -> serde_json::Value {
        let id = crate::request_id::current();
        match dialect {
            Dialect::Messages => {
                let mut body = json!({
                    "type": "error",
                    "error": {"type": error_type(self.status.as_u16()), "message": self.message},
                });
                if let Some(id) = id {
                    body["request_id"] = id.as_str().into();
                }
                body
            }
            Dialect::Chat | Dialect::Responses => {
                let mut body = json!({"error": {"message": self.message, "type": self.kind, "code": self.code}});
                if let Some(id) = id {
                    body["error"]["request_id"] = id.as_str().into();
                }
                body
            }
        }
    }

    pub fn response(&self) -> Response<Body> {
        self.response_in(Dialect::Chat)
    }

    pub fn response_in(&self, dialect: Dialect) -> Response<Body> {
        let mut resp = json(self.status, &self.body_in(dialect));
        let side = match self.side {
            Side::Gateway => "gateway",
            Side::Upstream => "upstream",
        };
        resp.headers_mut().insert(SIDE_HEADER, HeaderValue::from_static(side));
        if let Some(allow) = self.allow {
            resp.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}
