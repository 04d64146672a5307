//! One log line per request, recorded when the response is finished (for streams: when the
//! last byte went out or the client left), so duration covers the whole exchange. The record
//! is queued unformatted ([`crate::log_sink`]); the log's writer thread formats it, in the
//! same text and JSON shapes as every other line, off the request's path.
//!
//! Every string field goes through [`Clean`]: control characters (CR, LF and the rest of C0,
//! DEL, C1) are written escaped, so nothing a client sends (a model name, a path, an error
//! quoting either) can end the line and forge another in the text format.

use std::io::Write as _;
use std::time::{Duration, Instant, SystemTime};

use crate::log_sink::{self, Line};
use crate::logging::LogFormat;
use crate::metrics;
use crate::usage::Tail;

/// A request's record, boxed: it moves through every layer of the request (the handler, the
/// upstream call, the response body and its wrappers), and a pointer moves where ~600 bytes
/// were copied at each step.
pub struct AccessLog(Box<Record>);

impl std::ops::Deref for AccessLog {
    type Target = Record;

    fn deref(&self) -> &Record {
        &self.0
    }
}

impl std::ops::DerefMut for AccessLog {
    fn deref_mut(&mut self) -> &mut Record {
        &mut self.0
    }
}

pub struct Record {
    /// The request's id (`request_id.rs`).
    pub request_id: Option<crate::request_id::RequestId>,
    pub method: http::Method,
    /// The request's path: one of the gateway's own without an allocation, else a copy.
    pub path: std::borrow::Cow<'static, str>,
    /// The client's dialect (`chat`, `messages`, `responses`).
    pub dialect: &'static str,
    pub key: Option<String>,
    /// The key's `user`, when it has one.
    pub user: Option<String>,
    pub model_asked: Option<String>,
    /// The model sent, when it is not the one asked (see [`Record::model_sent`]).
    model_sent: Option<String>,
    /// The model sent is the one asked: most requests, whose name is then not copied again.
    sent_as_asked: bool,
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
    /// The generation time the upstream reported (llama.cpp's `timings.predicted_ms`).
    pub generation: Option<Duration>,
    /// Record this request in the metrics (`metrics.enabled`).
    pub metrics: bool,
    /// Whether the model sent is its own metric label (else it is counted as `other`), once
    /// it is known: a flag, so the name is not copied a second time for every request.
    model_labelled: Option<bool>,
    /// The kind of upstream failure, for `llm_gateway_provider_errors_total`.
    pub error_type: Option<String>,
    /// Tokens reserved against the key's token limits, corrected when the answer is done.
    pub reservation: Option<crate::ratelimit::Reservation>,
    /// Events relayed of a passthrough stream (counted for a limited key only): a stream that
    /// ends without its usage is charged its prompt estimate plus one token per event.
    pub events: u64,
    /// Counted in the in-flight gauge (the real log, not a detached placeholder).
    counted: bool,
    pub error: Option<String>,
    /// When the response finished, and how long the exchange took (set when queued).
    finished: SystemTime,
    duration: Duration,
    /// The level lets this record's line be written.
    write: bool,
}

impl Record {
    /// The model the request is sent to, and (when it is metered) its metric label.
    pub fn set_model_sent(&mut self, model: &str, live: &crate::state::Live) {
        self.sent_as_asked = self.model_asked.as_deref() == Some(model);
        self.model_sent = (!self.sent_as_asked).then(|| model.to_owned());
        if self.metrics {
            self.model_labelled = Some(live.is_label(model));
        }
    }

    /// The model the request was sent to, once known.
    pub fn model_sent(&self) -> Option<&str> {
        if self.sent_as_asked { self.model_asked.as_deref() } else { self.model_sent.as_deref() }
    }

    /// The key the request came with (its name and user, for the line and the metrics).
    pub fn set_key(&mut self, key: Option<&llm_gateway_compiler::acl::KeyEntry>) {
        self.key = key.map(|k| k.name.clone());
        self.user = key.and_then(|k| k.user.clone());
    }

    fn build(method: &http::Method, path: &str, counted: bool) -> Self {
        Self {
            request_id: None,
            method: method.clone(),
            path: own_path(path),
            dialect: "chat",
            key: None,
            user: None,
            model_asked: None,
            model_sent: None,
            sent_as_asked: false,
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
            model_labelled: None,
            error_type: None,
            reservation: None,
            events: 0,
            generation: None,
            counted,
            error: None,
            finished: SystemTime::UNIX_EPOCH,
            duration: Duration::ZERO,
            write: false,
        }
    }
}

impl AccessLog {
    pub fn new(method: &http::Method, path: &str) -> Self {
        metrics::request_started();
        Self(Box::new(Record::build(method, path, true)))
    }

    /// A log that writes nothing (a call of the gateway's own).
    pub fn detached() -> Self {
        Self(Box::new(Record::detached()))
    }
}

impl Record {
    /// A record that writes nothing: what stays behind when the real one is queued.
    fn detached() -> Self {
        Self::build(&http::Method::GET, "", false)
    }

    /// Records the size of an answer the gateway made whole (an error, a translated answer):
    /// `bytes` is what the client was sent, whoever wrote it.
    pub fn sent(&mut self, resp: &http::Response<crate::body::Body>) {
        use hyper::body::Body as _;
        self.body_bytes = resp.body().size_hint().exact().unwrap_or(0);
    }

    /// Records `e` as the request's outcome and answers it in the client's `dialect`.
    pub fn failed(
        &mut self,
        e: &crate::error::ApiError,
        dialect: crate::dialect::Dialect,
    ) -> http::Response<crate::body::Body> {
        self.status = e.status.as_u16();
        self.error = Some(e.message.clone());
        let resp = e.response_in(dialect);
        self.sent(&resp);
        resp
    }

    /// When the response finished (set when the record is queued).
    pub(crate) fn finished(&self) -> SystemTime {
        self.finished
    }

    pub(crate) fn stamp(&mut self, now: SystemTime) {
        self.finished = now;
    }

    /// Whether the writer formats a line for this record.
    pub(crate) fn writes_line(&self) -> bool {
        self.write
    }

    /// Records this request in the metrics, once (the log's writer does, or a scrape first).
    pub(crate) fn meter(&mut self) {
        if std::mem::take(&mut self.metrics) {
            self.record();
        }
    }

    fn record(&self) {
        let duration = self.duration;
        // Requests refused before a provider was chosen are counted too, under `-`.
        let provider = self.provider.unwrap_or("-");
        let model = match self.model_labelled {
            Some(true) => self.model_sent().unwrap_or("-"),
            Some(false) => "other",
            None => "-",
        };
        let m = metrics::get();
        let key = self.key.as_deref().unwrap_or("-");
        let code = http::StatusCode::from_u16(self.status);
        let status = code.as_ref().map_or("0", http::StatusCode::as_str);
        let streaming = if self.stream { "true" } else { "false" };
        m.requests.with_label_values(&[provider, model, streaming, status, self.dialect]).inc();
        m.duration.with_label_values(&[provider, model]).observe(duration.as_secs_f64());
        if let (true, Some(first)) = (self.stream, self.first_byte) {
            m.time_to_first_token.with_label_values(&[provider, model]).observe(first.as_secs_f64());
        }
        if let Some((prompt, completion)) = self.tokens {
            m.tokens_prompt.with_label_values(&[provider, model, key]).inc_by(prompt);
            m.tokens_completion.with_label_values(&[provider, model, key]).inc_by(completion);
            if let Some(user) = self.user.as_deref().or(self.key.as_deref()) {
                m.user_tokens.with_label_values(&[user, "prompt"]).inc_by(prompt);
                m.user_tokens.with_label_values(&[user, "completion"]).inc_by(completion);
            }
            // The upstream's own generation time when it gives one; else a stream's time after
            // its first token, or a whole answer's duration (its first byte is its last).
            let generating = match (self.generation, self.stream) {
                (Some(g), _) => g,
                (None, true) => duration.saturating_sub(self.first_byte.unwrap_or_default()),
                (None, false) => duration,
            }
            .as_secs_f64();
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
        self.0.finish();
    }
}

impl Record {
    /// Hands the record to the log's writer, which records its metrics and writes its line
    /// off the request's path.
    fn finish(&mut self) {
        if !self.counted {
            return;
        }
        // What is queued below is this record's data, not another request.
        self.counted = false;
        metrics::request_finished();
        self.duration = self.started.elapsed();
        self.write = if self.error.is_some() {
            tracing::enabled!(tracing::Level::WARN)
        } else {
            tracing::enabled!(tracing::Level::INFO)
        };
        if self.tokens.is_none() && (self.write || self.metrics || self.reservation.is_some()) {
            self.tokens = self.tail.tokens();
        }
        if self.generation.is_none() && self.metrics && self.tokens.is_some() {
            self.generation = self.tail.generation();
        }
        if let Some(reservation) = self.reservation.take() {
            let actual = match self.tokens {
                Some((prompt, completion)) => prompt.saturating_add(completion),
                // Refused or failed: nothing was generated.
                None if self.status == 0 || self.status >= 400 => 0,
                // Cut short before its usage (the client left), or an upstream that reports
                // none: the prompt's estimate, and a token per event relayed.
                None => reservation.estimate().saturating_add(self.events),
            };
            reservation.settle(actual);
        }
        if !self.write && !self.metrics {
            return;
        }
        self.tail = Tail::default();
        log_sink::push(Line::Access(std::mem::replace(self, Self::detached())));
    }
}

/// The paths most requests have, kept without an allocation (which the log's writer would
/// otherwise free, across threads, for every request).
fn own_path(path: &str) -> std::borrow::Cow<'static, str> {
    const COMMON: [&str; 6] =
        ["/v1/chat/completions", "/v1/messages", "/v1/responses", "/v1/embeddings", "/v1/completions", "/v1/models"];
    match COMMON.iter().find(|p| **p == path) {
        Some(p) => std::borrow::Cow::Borrowed(p),
        None => std::borrow::Cow::Owned(path.to_owned()),
    }
}

/// The fields of a line, in order, as tracing's formatter writes them.
enum Value<'a> {
    /// Written as given on a text line (escaped by [`Clean`]), as a JSON string.
    Text(&'a str),
    /// Quoted on a text line too (a `&str` field in tracing's text format).
    Quoted(&'a str),
    Number(i64),
    Bool(bool),
}

/// How many fields a line has.
const FIELDS: usize = 19;

/// A field's name as each format writes it before the value (` name=` on a text line,
/// `,"name":` in JSON): one copy per field instead of three.
struct Name {
    text: &'static str,
    json: &'static str,
}

macro_rules! name {
    ($name:literal) => {
        Name { text: concat!(" ", $name, "="), json: concat!(",\"", $name, "\":") }
    };
}

impl Record {
    fn fields(&self) -> [(Name, Value<'_>); FIELDS] {
        /// Any count fits; saturated rather than wrapped if one ever did not.
        fn count(n: impl TryInto<i64>) -> i64 {
            n.try_into().unwrap_or(i64::MAX)
        }
        fn text(v: &Option<String>) -> Value<'_> {
            Value::Text(v.as_deref().unwrap_or_default())
        }
        let tokens = |pick: fn((u64, u64)) -> u64| Value::Number(self.tokens.map_or(-1, |t| count(pick(t))));
        [
            (
                name!("request_id"),
                Value::Text(self.request_id.as_ref().map_or("", crate::request_id::RequestId::as_str)),
            ),
            (name!("method"), Value::Text(self.method.as_str())),
            (name!("path"), Value::Text(&self.path)),
            (name!("dialect"), Value::Text(self.dialect)),
            (name!("key"), text(&self.key)),
            (name!("user"), text(&self.user)),
            (name!("model_asked"), text(&self.model_asked)),
            (name!("model_sent"), Value::Text(self.model_sent().unwrap_or_default())),
            (name!("route"), text(&self.route)),
            (name!("provider"), Value::Quoted(self.provider.unwrap_or_default())),
            (name!("endpoint"), text(&self.endpoint)),
            (name!("status"), Value::Number(self.status.into())),
            (name!("stream"), Value::Bool(self.stream)),
            (name!("duration_ms"), Value::Number(count(self.duration.as_millis()))),
            (name!("ttfb_ms"), Value::Number(self.ttfb_ms.map_or(-1, count))),
            (name!("bytes"), Value::Number(count(self.body_bytes))),
            (name!("prompt_tokens"), tokens(|t| t.0)),
            (name!("completion_tokens"), tokens(|t| t.1)),
            (name!("error"), text(&self.error)),
        ]
    }

    /// Appends this record's line (newline included) in the log's format.
    pub(crate) fn write_line(&self, out: &mut Vec<u8>, format: LogFormat, ansi: bool) {
        match format {
            LogFormat::Text => {
                let paint = |out: &mut Vec<u8>, code: &[u8], text: &[u8]| {
                    if ansi {
                        out.extend_from_slice(b"\x1b[");
                        out.extend_from_slice(code);
                        out.push(b'm');
                    }
                    out.extend_from_slice(text);
                    if ansi {
                        out.extend_from_slice(b"\x1b[0m");
                    }
                };
                paint(out, b"2", &timestamp_bytes(self.finished));
                out.push(b' ');
                // Padded to five characters, as tracing pads levels.
                let (colour, padded): (&[u8], &[u8]) =
                    if self.error.is_some() { (b"33", b" WARN") } else { (b"32", b" INFO") };
                paint(out, colour, padded);
                out.push(b' ');
                paint(out, b"2", concat!(module_path!(), ":").as_bytes());
                out.extend_from_slice(b" request");
                // Written as they are, then looked at once: nearly every line needs no escape,
                // and one pass over the whole line costs a fraction of one per field.
                let fields = out.len();
                self.write_text_fields(out, |out, v| out.extend_from_slice(v.as_bytes()));
                if !is_plain(&out[fields..]) {
                    out.truncate(fields);
                    self.write_text_fields(out, |out, v| Clean(v).push(out));
                }
            }
            LogFormat::Json => {
                out.extend_from_slice(b"{\"timestamp\":\"");
                out.extend_from_slice(&timestamp_bytes(self.finished));
                out.extend_from_slice(if self.error.is_some() {
                    b"\",\"level\":\"WARN"
                } else {
                    b"\",\"level\":\"INFO"
                });
                out.extend_from_slice(b"\",\"message\":\"request\"");
                // As on a text line: strings written as they are, then looked at once. A quote
                // inside one shows as more quotes than the names' and strings' own.
                let fields = out.len();
                let mut quotes = 2 * FIELDS;
                self.write_json_fields(out, |out, v| {
                    quotes += 2;
                    out.push(b'"');
                    out.extend_from_slice(v.as_bytes());
                    out.push(b'"');
                });
                let written = &out[fields..];
                if !is_plain(written) || written.iter().fold(0, |n, &b| n + usize::from(b == b'"')) != quotes {
                    out.truncate(fields);
                    self.write_json_fields(out, |out, v| Value::Text(v).write_json(out));
                }
                out.extend_from_slice(concat!(",\"target\":\"", module_path!(), "\"}").as_bytes());
            }
        }
        out.push(b'\n');
    }
}

impl Record {
    /// The JSON line's fields, each string written by `text`.
    fn write_json_fields(&self, out: &mut Vec<u8>, mut text: impl FnMut(&mut Vec<u8>, &str)) {
        for (name, value) in self.fields() {
            out.extend_from_slice(name.json.as_bytes());
            match value {
                Value::Text(v) | Value::Quoted(v) => text(out, v),
                other => other.write_json(out),
            }
        }
    }

    /// The text line's fields, each string written by `text`.
    fn write_text_fields(&self, out: &mut Vec<u8>, text: impl Fn(&mut Vec<u8>, &str)) {
        for (name, value) in self.fields() {
            out.extend_from_slice(name.text.as_bytes());
            match value {
                Value::Text(v) => text(out, v),
                Value::Quoted(v) => {
                    out.push(b'"');
                    text(out, v);
                    out.push(b'"');
                }
                other => other.write_json(out),
            }
        }
    }
}

impl Value<'_> {
    /// As JSON; strings as [`Clean`] writes them.
    fn write_json(&self, out: &mut Vec<u8>) {
        let _ = match *self {
            Value::Text(v) | Value::Quoted(v) if Clean(v).is_plain() => serde_json::to_writer(&mut *out, v),
            Value::Text(v) | Value::Quoted(v) => serde_json::to_writer(&mut *out, &Clean(v).to_string()),
            Value::Number(n) => serde_json::to_writer(&mut *out, &n),
            Value::Bool(b) => {
                out.extend_from_slice(if b { b"true" } else { b"false" });
                Ok(())
            }
        };
    }
}

/// RFC 3339 in UTC with microseconds (`2026-12-02T09:24:57.224230Z`), as tracing writes it.
/// The date and time to the second are kept from the line before (the writer stamps every
/// line, most in the second of the one before): only the microseconds are written afresh.
fn timestamp_bytes(at: SystemTime) -> [u8; 27] {
    thread_local! {
        static SECOND: std::cell::Cell<(u64, [u8; 27])> = const { std::cell::Cell::new((u64::MAX, [0; 27])) };
    }
    let since = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (last, mut out) = SECOND.get();
    if last != secs {
        out = to_the_second(secs);
        SECOND.set((secs, out));
    }
    write_digits(&mut out[20..26], u64::from(since.subsec_micros()));
    out
}

/// `YYYY-MM-DDTHH:MM:SS.000000Z` of `secs` since the epoch.
fn to_the_second(secs: u64) -> [u8; 27] {
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Days to a civil date (Howard Hinnant's algorithm), valid for any date after 1970.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    write_digits(&mut out[0..4], year.clamp(0, 9999) as u64);
    write_digits(&mut out[5..7], month as u64);
    write_digits(&mut out[8..10], day as u64);
    write_digits(&mut out[11..13], rest / 3_600);
    write_digits(&mut out[14..16], rest / 60 % 60);
    write_digits(&mut out[17..19], rest % 60);
    out
}

/// `n`'s last `slots.len()` decimal digits, zero-padded, written in place (`write!` costs
/// several times this).
fn write_digits(slots: &mut [u8], mut n: u64) {
    for slot in slots.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// A string written with its control characters escaped (`\n`, `\r`, `\t`, `\u{1b}`…) and
/// backslashes doubled, so it stays on one line and reads back unambiguously.
pub struct Clean<'a>(pub &'a str);

/// No byte that may need escaping: no ASCII control, no backslash, and no lead byte of a C1
/// control (`0xC2`) or of U+2028/U+2029 (`0xE2`). Nearly every field of every line.
fn is_plain(text: &[u8]) -> bool {
    let suspect = |b: u8| b < 0x20 || b == 0x7f || b == b'\\' || b == 0xc2 || b == 0xe2;
    // Not short-circuiting, so it is compiled to vector instructions.
    !text.iter().fold(false, |any, &b| any | suspect(b))
}

impl Clean<'_> {
    /// Nothing in it needs escaping: its bytes are looked at first, its characters only when
    /// a byte is suspect.
    fn is_plain(&self) -> bool {
        is_plain(self.0.as_bytes())
            || !self.0.chars().any(|c| c.is_control() || c == '\\' || c == '\u{2028}' || c == '\u{2029}')
    }

    fn push(&self, out: &mut Vec<u8>) {
        if self.is_plain() {
            out.extend_from_slice(self.0.as_bytes());
        } else {
            let _ = write!(out, "{self}");
        }
    }
}

impl std::fmt::Display for Clean<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        let text = self.0;
        if self.is_plain() {
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
    use std::time::{Duration, SystemTime};

    use super::{AccessLog, Clean, timestamp_bytes};
    use crate::logging::LogFormat;

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let at = |secs: u64, micros: u64| {
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros);
            String::from_utf8(timestamp_bytes(at).to_vec()).unwrap()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(1_709_251_199, 1), "2024-02-29T23:59:59.000001Z");
        assert_eq!(at(951_868_800, 999_999), "2000-03-01T00:00:00.999999Z");
        assert_eq!(at(1_796_203_497, 224_230), "2026-12-02T09:24:57.224230Z");
        assert_eq!(at(1_796_203_497, 5), "2026-12-02T09:24:57.000005Z", "the same second, kept");
        assert_eq!(at(1_796_203_496, 999_999), "2026-12-02T09:24:56.999999Z", "a second before");
        assert_eq!(at(4_133_980_799, 0), "2100-12-31T23:59:59.000000Z");
    }

    fn record() -> AccessLog {
        let mut log = AccessLog::detached();
        log.request_id = Some(crate::request_id::RequestId::fixed("rid-1"));
        log.method = http::Method::POST;
        log.path = "/v1/chat/completions".into();
        log.model_asked = Some("gpt\n\"x\"".into());
        log.model_sent = Some("llama3".into());
        log.provider = Some("local");
        log.endpoint = Some("gpu-a".into());
        log.status = 200;
        log.ttfb_ms = Some(3);
        log.body_bytes = 619;
        log.tokens = Some((19, 10));
        log.finished = SystemTime::UNIX_EPOCH + Duration::from_micros(1_796_203_497_224_230);
        log.duration = Duration::from_millis(12);
        log
    }

    /// The shapes tracing's own formatter gives every other line (text, and JSON with the
    /// event's fields flattened), so one parser reads the whole log.
    #[test]
    fn lines_have_the_shape_of_the_other_log_lines() {
        let mut text = Vec::new();
        record().write_line(&mut text, LogFormat::Text, false);
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "2026-12-02T09:24:57.224230Z  INFO llm_gateway::access_log: request request_id=rid-1 method=POST \
             path=/v1/chat/completions dialect=chat key= user= model_asked=gpt\\n\"x\" model_sent=llama3 route= \
             provider=\"local\" endpoint=gpu-a status=200 stream=false duration_ms=12 ttfb_ms=3 bytes=619 \
             prompt_tokens=19 completion_tokens=10 error=\n"
        );
        // A line with nothing to escape is written as it is, as is one whose suspect bytes are
        // characters that need no escape.
        for model in ["gpt-4o", "gpt – 4o ¢"] {
            let mut plain = record();
            plain.model_asked = Some(model.into());
            let mut line = Vec::new();
            plain.write_line(&mut line, LogFormat::Text, false);
            let line = String::from_utf8(line).unwrap();
            assert!(line.contains(&format!(" model_asked={model} model_sent=llama3 ")), "{line}");
        }
        // Strings with nothing to escape are written as they are; a quote alone is escaped.
        let json_line = |model: &str| {
            let mut plain = record();
            plain.model_asked = Some(model.into());
            let mut line = Vec::new();
            plain.write_line(&mut line, LogFormat::Json, false);
            String::from_utf8(line).unwrap()
        };
        assert_eq!(
            json_line("gpt-4o"),
            "{\"timestamp\":\"2026-12-02T09:24:57.224230Z\",\"level\":\"INFO\",\"message\":\"request\",\
             \"request_id\":\"rid-1\",\"method\":\"POST\",\"path\":\"/v1/chat/completions\",\"dialect\":\"chat\",\
             \"key\":\"\",\"user\":\"\",\"model_asked\":\"gpt-4o\",\"model_sent\":\"llama3\",\"route\":\"\",\
             \"provider\":\"local\",\"endpoint\":\"gpu-a\",\"status\":200,\"stream\":false,\"duration_ms\":12,\
             \"ttfb_ms\":3,\"bytes\":619,\"prompt_tokens\":19,\"completion_tokens\":10,\"error\":\"\",\
             \"target\":\"llm_gateway::access_log\"}\n"
        );
        let quoted: serde_json::Value = serde_json::from_str(&json_line("a\"b")).unwrap();
        assert_eq!(quoted["model_asked"], "a\"b");
        let mut json = Vec::new();
        let mut failed = record();
        failed.error = Some("upstream\rbroke".into());
        failed.tokens = None;
        failed.write_line(&mut json, LogFormat::Json, false);
        assert_eq!(json.iter().filter(|&&b| b == b'\n').count(), 1);
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["timestamp"], "2026-12-02T09:24:57.224230Z");
        assert_eq!((value["level"].as_str(), value["message"].as_str()), (Some("WARN"), Some("request")));
        assert_eq!(value["model_asked"], "gpt\\n\"x\"", "escaped as on a text line, then as JSON");
        assert_eq!(value["error"], "upstream\\rbroke");
        assert_eq!((value["status"].as_u64(), value["duration_ms"].as_u64()), (Some(200), Some(12)));
        assert_eq!((value["prompt_tokens"].as_i64(), value["stream"].as_bool()), (Some(-1), Some(false)));
        assert_eq!(value["target"], "llm_gateway::access_log");
        let mut painted = Vec::new();
        record().write_line(&mut painted, LogFormat::Text, true);
        assert!(String::from_utf8(painted).unwrap().contains("\x1b[32m INFO\x1b[0m"), "a terminal gets colours");
    }

    #[test]
    fn control_characters_cannot_start_a_line() {
        let forged = "gpt-4o\n2026-01-01T00:00:00Z  INFO request status=200\r\u{1b}[2J\u{85}";
        let written = Clean(forged).to_string();
        assert!(!written.chars().any(char::is_control), "{written}");
        assert_eq!(written, "gpt-4o\\n2026-01-01T00:00:00Z  INFO request status=200\\r\\u{1b}[2J\\u{85}");
        assert_eq!(Clean("a\\nb").to_string(), "a\\\\nb", "a literal backslash-n stays distinct");
        assert_eq!(Clean("plain ünïcode").to_string(), "plain ünïcode");
        // Lead bytes shared with controls (0xC2, 0xE2) on characters that are not controls.
        assert_eq!(Clean("¢ – € ₂").to_string(), "¢ – € ₂");
        assert_eq!(Clean("a\u{2028}b\u{9f}c").to_string(), "a\\u{2028}b\\u{9f}c");
    }
}
