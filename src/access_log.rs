//! One log line per request, written when the response is finished (for streams: when the
//! last byte went out or the client left), so duration covers the whole exchange.

use std::time::Instant;

use tracing::{info, warn};

use crate::usage::Tail;

pub struct AccessLog {
    pub method: http::Method,
    pub path: String,
    pub key: Option<String>,
    pub model_asked: Option<String>,
    pub model_sent: Option<String>,
    pub route: Option<String>,
    pub provider: Option<&'static str>,
    pub endpoint: Option<String>,
    pub status: u16,
    pub stream: bool,
    pub started: Instant,
    /// Time to the upstream's response headers.
    pub ttfb_ms: Option<u128>,
    pub body_bytes: u64,
    /// `(prompt, completion)` tokens, when the response said.
    pub tokens: Option<(u64, u64)>,
    /// The end of the response body, read for `usage` when the line is written (after the
    /// response went out, so it never delays it).
    pub tail: Tail,
    pub error: Option<String>,
}

impl AccessLog {
    pub fn new(method: &http::Method, path: &str) -> Self {
        Self {
            method: method.clone(),
            path: path.to_owned(),
            key: None,
            model_asked: None,
            model_sent: None,
            route: None,
            provider: None,
            endpoint: None,
            status: 0,
            stream: false,
            started: Instant::now(),
            ttfb_ms: None,
            body_bytes: 0,
            tokens: None,
            tail: Tail::default(),
            error: None,
        }
    }
}

impl AccessLog {
    /// A log that writes nothing: what stays behind when the real one moves into a body.
    pub fn detached() -> Self {
        Self::new(&http::Method::GET, "")
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        if self.status == 0 && self.path.is_empty() {
            return;
        }
        let duration_ms = self.started.elapsed().as_millis();
        if self.tokens.is_none() && tracing::enabled!(tracing::Level::WARN) {
            self.tokens = self.tail.tokens();
        }
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        macro_rules! line {
            ($level:ident) => {
                $level!(
                    method = %self.method,
                    path = %self.path,
                    key = %o(&self.key),
                    model_asked = %o(&self.model_asked),
                    model_sent = %o(&self.model_sent),
                    route = %o(&self.route),
                    provider = self.provider.unwrap_or(""),
                    endpoint = %o(&self.endpoint),
                    status = self.status,
                    stream = self.stream,
                    duration_ms,
                    ttfb_ms = self.ttfb_ms.map(|t| t as i64).unwrap_or(-1),
                    bytes = self.body_bytes,
                    prompt_tokens = self.tokens.map(|t| t.0 as i64).unwrap_or(-1),
                    completion_tokens = self.tokens.map(|t| t.1 as i64).unwrap_or(-1),
                    error = %o(&self.error),
                    "request"
                )
            };
        }
        if self.error.is_some() { line!(warn) } else { line!(info) }
    }
}
