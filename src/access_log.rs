//! One log line per request, written when the response is finished (for streams: when the
//! last byte went out or the client left), so duration covers the whole exchange.
//!
//! Every string field goes through [`Clean`]: control characters (CR, LF and the rest of C0,
//! DEL, C1) are written escaped, so nothing a client sends (a model name, a path, an error
//! quoting either) can end the line and forge another in the text format.

use std::time::Instant;

use tracing::{info, warn};

use crate::metrics;
use crate::usage::Tail;

pub struct AccessLog {
    /// The request's id (`request_id.rs`).
    pub request_id: Option<crate::request_id::RequestId>,
    pub method: http::Method,
    pub path: String,
    /// The client's dialect (`chat`, `messages`, `responses`).
    pub dialect: &'static str,
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
    /// Time to the first response body bytes (streams).
    pub first_byte: Option<std::time::Duration>,
    /// Record this request in the metrics (`metrics.enabled`).
    pub metrics: bool,
    /// The (bounded) model label, once the model is known.
    pub metric_model: Option<String>,
    /// The kind of upstream failure, for `llm_gateway_provider_errors_total`.
    pub error_type: Option<String>,
    /// Counted in the in-flight gauge (the real log, not a detached placeholder).
    counted: bool,
    pub error: Option<String>,
}

impl AccessLog {
    pub fn new(method: &http::Method, path: &str) -> Self {
        metrics::get().inflight.inc();
        Self::build(method, path, true)
    }

    fn build(method: &http::Method, path: &str, counted: bool) -> Self {
        Self {
            request_id: None,
            method: method.clone(),
            path: path.to_owned(),
            dialect: "chat",
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
            first_byte: None,
            metrics: false,
            metric_model: None,
            error_type: None,
            counted,
            error: None,
        }
    }
}

impl AccessLog {
    /// A log that writes nothing: what stays behind when the real one moves into a body.
    pub fn detached() -> Self {
        Self::build(&http::Method::GET, "", false)
    }

    fn record(&self, duration: std::time::Duration) {
        if !self.metrics {
            return;
        }
        // Requests refused before a provider was chosen are counted too, under `-`.
        let provider = self.provider.unwrap_or("-");
        let model = self.metric_model.as_deref().unwrap_or("-");
        let m = metrics::get();
        let key = self.key.as_deref().unwrap_or("-");
        let status = self.status.to_string();
        let streaming = if self.stream { "true" } else { "false" };
        m.requests.with_label_values(&[provider, model, streaming, &status, self.dialect]).inc();
        m.duration.with_label_values(&[provider, model]).observe(duration.as_secs_f64());
        if let (true, Some(first)) = (self.stream, self.first_byte) {
            m.time_to_first_token.with_label_values(&[provider, model]).observe(first.as_secs_f64());
        }
        if let Some((prompt, completion)) = self.tokens {
            m.tokens_prompt.with_label_values(&[provider, model, key]).inc_by(prompt);
            m.tokens_completion.with_label_values(&[provider, model, key]).inc_by(completion);
            let generating = duration.saturating_sub(self.first_byte.unwrap_or_default()).as_secs_f64();
            if completion > 0 && generating > 0.0 {
                m.tokens_per_second.with_label_values(&[model, key]).observe(completion as f64 / generating);
            }
        }
        if let Some(kind) = &self.error_type {
            m.provider_errors.with_label_values(&[provider, kind]).inc();
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        metrics::get().inflight.dec();
        let duration = self.started.elapsed();
        let duration_ms = duration.as_millis();
        if self.tokens.is_none() && (self.metrics || tracing::enabled!(tracing::Level::WARN)) {
            self.tokens = self.tail.tokens();
        }
        self.record(duration);
        fn o(v: &Option<String>) -> Clean<'_> {
            Clean(v.as_deref().unwrap_or_default())
        }
        macro_rules! line {
            ($level:ident) => {
                $level!(
                    request_id = %Clean(self.request_id.as_deref().unwrap_or_default()),
                    method = %Clean(self.method.as_str()),
                    path = %Clean(&self.path),
                    dialect = %self.dialect,
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

/// A string written with its control characters escaped (`\n`, `\r`, `\t`, `\u{1b}`…) and
/// backslashes doubled, so it stays on one line and reads back unambiguously.
pub struct Clean<'a>(pub &'a str);

impl std::fmt::Display for Clean<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        let text = self.0;
        if !text.chars().any(|c| c.is_control() || c == '\\' || c == '\u{2028}' || c == '\u{2029}') {
            return f.write_str(text);
        }
        for c in text.chars() {
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\\' => f.write_str("\\\\")?,
                c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => write!(f, "\\u{{{:x}}}", u32::from(c))?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Clean;

    #[test]
    fn control_characters_cannot_start_a_line() {
        let forged = "gpt-4o\n2026-01-01T00:00:00Z  INFO request status=200\r\u{1b}[2J\u{85}";
        let written = Clean(forged).to_string();
        assert!(!written.chars().any(char::is_control), "{written}");
        assert_eq!(written, "gpt-4o\\n2026-01-01T00:00:00Z  INFO request status=200\\r\\u{1b}[2J\\u{85}");
        assert_eq!(Clean("a\\nb").to_string(), "a\\\\nb", "a literal backslash-n stays distinct");
        assert_eq!(Clean("plain ünïcode").to_string(), "plain ünïcode");
    }
}
