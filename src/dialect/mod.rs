//! Wire formats ("dialects") and the translations between them. Chat Completions is the hub:
//! a client dialect that differs from the upstream's is translated to Chat and from there to
//! the upstream's, and the response takes the reverse way. Same dialect on both sides: bytes
//! pass through (only `model` is spliced).
//!
//! - `messages/`: Anthropic's Messages API. `upstream/` — Chat client, Anthropic upstream;
//!   `client/` — Messages client, Chat upstream.
//! - `responses/`: OpenAI's Responses API, as a client dialect translated to Chat.

pub mod chat;
pub mod convert;
pub mod json;
pub mod messages;
pub mod replay;
pub mod responses;
pub mod sse;

use std::collections::HashSet;
use std::sync::Mutex;

use crate::error::ApiError;

/// The wire format a client speaks or an upstream serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// OpenAI Chat Completions (`POST /v1/chat/completions`), and the other OpenAI-compatible
    /// operations (embeddings, completions).
    Chat,
    /// Anthropic Messages (`POST /v1/messages`).
    Messages,
    /// OpenAI Responses (`POST /v1/responses`).
    Responses,
}

impl Dialect {
    /// The event that ends a broken or failed stream, in this dialect. It starts with a blank
    /// line, which ends whatever event the client had half-read.
    pub fn error_event(self, err: &ApiError) -> Vec<u8> {
        self.event_of(err.body_in(self), None)
    }

    /// The event for an error answer whose status line could not be sent (a stream that
    /// waited in the queue has already had its `200`, and no event): the answer's body, in this
    /// dialect's error shape — the upstream's own when it is one, so its `code` and `type`
    /// reach the client as they would have without the wait.
    pub fn error_event_for(self, status: http::StatusCode, body: &[u8]) -> Vec<u8> {
        let body = match self {
            Dialect::Messages => messages::client::response::error(status, body),
            Dialect::Chat | Dialect::Responses => convert::openai_error(status, body),
        };
        self.event_of(body, Some(0))
    }

    /// `sequence`: the Responses event's `sequence_number`, when it is known.
    fn event_of(self, mut body: serde_json::Value, sequence: Option<u64>) -> Vec<u8> {
        let mut out = b"\n\n".to_vec();
        match self {
            Dialect::Chat => out.extend_from_slice(b"data: "),
            Dialect::Messages => out.extend_from_slice(b"event: error\ndata: "),
            // The Responses API's `error` event; its `error` object is what makes the openai
            // SDK raise (Codex, ignoring it, fails on the missing `response.completed`). Its
            // own fields as the API types them: `code` a string or null, `message` a string.
            Dialect::Responses => {
                out.extend_from_slice(b"event: error\ndata: ");
                let error = &body["error"];
                let code = match &error["code"] {
                    serde_json::Value::String(code) => code.as_str().into(),
                    serde_json::Value::Null => serde_json::Value::Null,
                    other => other.to_string().into(),
                };
                let message = error["message"].as_str().unwrap_or("the upstream answered with an error").to_owned();
                let param = error["param"].clone();
                body["type"] = "error".into();
                body["code"] = code;
                body["message"] = message.into();
                body["param"] = param;
                if let Some(n) = sequence {
                    body["sequence_number"] = n.into();
                }
            }
        }
        let _ = serde_json::to_writer(&mut out, &body);
        out.extend_from_slice(b"\n\n");
        out
    }

    /// The `dialect` label in logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Dialect::Chat => "chat",
            Dialect::Messages => "messages",
            Dialect::Responses => "responses",
        }
    }
}

/// A response stream rewritten on its way to the client: upstream bytes in, split anywhere;
/// client bytes out. Implementations buffer at most one event plus what the final summary
/// needs.
pub trait StreamTranslator: Send + Sync {
    /// Feeds upstream bytes; appends translated bytes to `out`.
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>);
    /// The upstream ended: closing events, or an error event when the stream stopped before
    /// its end (never a clean-looking truncated stream).
    fn finish(&mut self, out: &mut Vec<u8>);
    /// The stream failed outside the translator (upstream broke off, went silent): an error
    /// event in the client's dialect, once; nothing after it.
    fn fail(&mut self, code: &str, message: &str, out: &mut Vec<u8>);
    /// `(prompt, completion)` tokens, once the stream reported them.
    fn tokens(&self) -> Option<(u64, u64)>;
    /// The message of the error event the stream ended with, if it did (the upstream's error,
    /// an event that could not be read, a stream cut short): the request's log line has it.
    fn failure(&self) -> Option<&str>;
    /// Bounds one upstream event (and whatever else the translator keeps) to `max_bytes`;
    /// past it the stream ends with an error event.
    fn limit_events(&mut self, max_bytes: usize);
}

/// The field names [`dropped`] has logged. Callers pass names from fixed lists, never what a
/// client made up; the bound holds memory even if one slips through.
pub(crate) static DROPPED_SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
const MAX_DROPPED_NAMES: usize = 128;

/// Logs, once per process and field, that a request field was dropped because the upstream
/// dialect has no equivalent (clients such as Claude Code and Codex send them on every turn).
pub fn dropped(field: &str, why: &str) {
    let mut seen = DROPPED_SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let seen = seen.get_or_insert_with(HashSet::new);
    if !seen.contains(field) && seen.len() < MAX_DROPPED_NAMES && seen.insert(field.to_owned()) {
        tracing::info!("dropping `{field}` from requests: {why} (logged once)");
    }
}

/// Seconds since the Unix epoch, for `created` fields.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `serde_json::from_slice`, with the bytes checked as UTF-8 once instead of string by string:
/// reading from bytes validates every borrowed string and raw value on its own, which for the
/// many short strings of a stream chunk costs more than one pass over the whole text. Bytes
/// that are not UTF-8 take `from_slice` itself (it accepts them inside skipped strings), so
/// what is accepted, and every error, stays the same.
pub fn from_json<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    }
}

/// The error for a request body the checking reader refused, in the words of serde_json's
/// (line and column) when it has some.
pub fn refused_body(body: &[u8]) -> ApiError {
    if body.trim_ascii_start().first() != Some(&b'{') {
        return ApiError::bad_request("invalid_json", "request body must be a JSON object");
    }
    let why = match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
        Err(e) => e.to_string(),
        Ok(_) => "not UTF-8, or nested deeper than 128 levels".to_owned(),
    };
    ApiError::bad_request("invalid_json", format!("invalid JSON in request body: {why}"))
}

/// Appends `s` as a JSON string.
pub fn json_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Appends the head of an event whose data names its type, as Anthropic's and the Responses
/// events do: `event: <kind>` and `data: {"type":"<kind>"` (the caller writes the rest).
pub fn event_head(out: &mut Vec<u8>, kind: &str) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: {\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.push(b'"');
}

/// Appends `n` in decimal: the stream translators write several numbers per event, and
/// `write!` costs tens of nanoseconds each through the formatting machinery (serde_json
/// writes integers without it).
pub fn push_u64(out: &mut Vec<u8>, n: u64) {
    let _ = serde_json::to_writer(&mut *out, &n);
}

#[cfg(test)]
mod writers_tests;

/// Shared by the translators' tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::StreamTranslator;

    /// A Chat stream of two tool calls both numbered 0, as some servers send them: `fa`
    /// (`call_A`, its id repeated in its second piece) with `{"a":1}`, then `fb` (`call_B`)
    /// with `{"b":2}`.
    pub fn calls_on_one_index() -> String {
        let delta = |fields: &str| {
            format!(
                "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"tool_calls\":[{{\"index\":0,{fields}}}]}}}}]}}\n\n"
            )
        };
        [
            delta(r#""id":"call_A","function":{"name":"fa","arguments":"{\"a\":"}"#),
            delta(r#""id":"call_A","function":{"name":"fa","arguments":"1}"}"#),
            delta(r#""id":"call_B","function":{"name":"fb","arguments":"{\"b\":2}"}"#),
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n"
                .into(),
        ]
        .concat()
    }

    /// A file under `fixtures/`.
    pub fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(path)).unwrap()
    }

    /// Feeds `input` cut at `splits` (sorted offsets), then finishes; the output as text.
    pub fn feed_split(t: &mut dyn StreamTranslator, input: &[u8], splits: &[usize]) -> String {
        let mut out = Vec::new();
        let mut last = 0;
        for &s in splits.iter().chain([input.len()].iter()) {
            t.feed(&input[last..s], &mut out);
            last = s;
        }
        t.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    /// Any split of the byte stream gives the same output: every single split point, and
    /// 300 random eight-way splits.
    pub fn assert_split_invariant(name: &str, input: &[u8], translate: impl Fn(&[u8], &[usize]) -> String) {
        let whole = translate(input, &[]);
        for s in 0..=input.len() {
            assert_eq!(translate(input, &[s]), whole, "{name} split at {s}");
        }
        let mut seed = 0x2545f4914f6cdd1du64;
        for _ in 0..300 {
            let mut splits: Vec<usize> = (0..8)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed % (input.len() as u64 + 1)) as usize
                })
                .collect();
            splits.sort_unstable();
            assert_eq!(translate(input, &splits), whole, "{name} splits {splits:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde::de::IgnoredAny;
    use serde_json::value::RawValue;

    #[derive(Deserialize, Debug)]
    struct Probe<'a> {
        #[serde(borrow)]
        a: &'a RawValue,
        #[serde(default)]
        b: Option<String>,
    }

    #[test]
    fn from_json_accepts_and_refuses_what_from_slice_does() {
        let cases: [&[u8]; 6] = [
            br#"{"a":"x\u00e9","b":"\u00e9","c":1}"#,
            b"{\"a\":1,\"skipped\":\"\xff\xfe\"}",
            b"{\"a\":\"\xff\"}",
            b"{\"a\":1,\"b\":\"\xc3\xa9\"}",
            br#"{"a":1,"b":2}"#,
            b"{\"a\":[1,\n2,}",
        ];
        for case in cases {
            let ours = super::from_json::<Probe>(case).map(|p| (p.a.get().to_owned(), p.b)).map_err(|e| e.to_string());
            let serdes =
                serde_json::from_slice::<Probe>(case).map(|p| (p.a.get().to_owned(), p.b)).map_err(|e| e.to_string());
            assert_eq!(ours, serdes, "{}", String::from_utf8_lossy(case));
        }
        assert!(super::from_json::<IgnoredAny>(b"{\"skipped\":\"\xff\"}").is_ok(), "as from_slice accepts it");
    }

    /// The Responses `error` event's own fields are typed as the API types them, whatever the
    /// upstream's body held: `code` a string or null, `message` a string.
    #[test]
    fn a_responses_error_event_has_the_apis_types() {
        let event = |body: &[u8]| {
            let out = super::Dialect::Responses.error_event_for(http::StatusCode::BAD_REQUEST, body);
            let text = String::from_utf8(out).unwrap();
            let data = text.trim().strip_prefix("event: error\ndata: ").unwrap().to_owned();
            serde_json::from_str::<serde_json::Value>(&data).unwrap()
        };
        // vLLM's error: a numeric code.
        let v = event(br#"{"object":"error","message":"too long","type":"BadRequestError","param":null,"code":400}"#);
        assert_eq!(
            (&v["code"], &v["message"], &v["sequence_number"]),
            (&"http_400".into(), &"too long".into(), &0.into())
        );
        let v = event(br#"{"error":{"message":"bad","type":"invalid_request_error","param":"input","code":400}}"#);
        assert_eq!((&v["code"], &v["message"], &v["param"]), (&"400".into(), &"bad".into(), &"input".into()));
        let v = event(br#"{"error":{"type":"server_error"}}"#);
        assert_eq!(
            (&v["code"], v["message"].is_string(), &v["type"]),
            (&serde_json::Value::Null, true, &"error".into())
        );
    }
}
