//! Reading just enough of a client's JSON body to route it, and splicing a new `model` into
//! the original bytes so every other field reaches the upstream byte-identical.

use std::borrow::Cow;

use serde::Deserialize;

use crate::dialect::json::{self, Invalid, Reader, unescaped};
use crate::error::ApiError;

/// The fields a decision needs, as the raw JSON text of their values; everything else is
/// checked and skipped, not copied. `null` reads as absent, except where noted.
#[derive(Debug, Default)]
pub struct Probe<'a> {
    /// Present even when `null`, so the gateway replaces it where it is instead of adding the
    /// key a second time.
    pub model: Option<&'a str>,
    pub messages: Option<&'a str>,
    pub stream: Option<bool>,
    /// Any JSON number: llama.cpp and LM Studio take `-1` for "no limit", and some clients
    /// send `256.0`. Only routing reads it, as an estimate.
    pub max_tokens: Option<serde_json::Number>,
    pub tools: Option<&'a str>,
    /// Messages: the system prompt (a string or text blocks).
    pub system: Option<&'a str>,
    /// Responses: the conversation (a string or items) and the system prompt.
    pub input: Option<&'a str>,
    pub instructions: Option<&'a str>,
    pub max_output_tokens: Option<serde_json::Number>,
    /// Chat and Completions: `include_usage` asks for a usage chunk at a stream's end. Present
    /// even when `null`, as `model`.
    pub stream_options: Option<&'a str>,
}

impl<'a> Probe<'a> {
    /// Reads a body with the checking JSON reader; the error says what is wrong with it. A key
    /// is matched as it reads unescaped (`"\u006dodel"` is `model`), and a probed key written
    /// twice is refused: the gateway and the upstream could each take a different one.
    fn read(body: &'a [u8]) -> Result<Self, String> {
        let mut check = Check::default();
        let read = Reader::document(body, |r| {
            let mut probe = Probe::default();
            r.members(|key, r| {
                let spelled = json::key(key);
                let key = spelled.as_ref();
                let number = |r: &mut Reader<'a>, check: &mut Check| {
                    r.raw()?.map(str::parse).transpose().map_err(|_| check.mistyped(key, "a number"))
                };
                match key {
                    b"model" => {
                        check.once(0, key)?;
                        probe.model = Some(r.value()?);
                    }
                    b"messages" => {
                        check.once(1, key)?;
                        probe.messages = r.raw()?;
                    }
                    b"stream" => {
                        check.once(2, key)?;
                        probe.stream = match r.value()? {
                            "true" => Some(true),
                            "false" => Some(false),
                            "null" => None,
                            _ => return Err(check.mistyped(key, "true or false")),
                        };
                    }
                    b"max_tokens" => {
                        check.once(3, key)?;
                        probe.max_tokens = number(r, &mut check)?;
                    }
                    b"max_output_tokens" => {
                        check.once(4, key)?;
                        probe.max_output_tokens = number(r, &mut check)?;
                    }
                    b"tools" => {
                        check.once(5, key)?;
                        probe.tools = r.raw()?;
                    }
                    b"system" => {
                        check.once(6, key)?;
                        probe.system = r.raw()?;
                    }
                    b"input" => {
                        check.once(7, key)?;
                        probe.input = r.raw()?;
                    }
                    b"instructions" => {
                        check.once(8, key)?;
                        probe.instructions = r.raw()?;
                    }
                    b"stream_options" => {
                        check.once(9, key)?;
                        probe.stream_options = Some(r.value()?);
                    }
                    _ => r.skip()?,
                }
                Ok(())
            })?;
            Ok(probe)
        });
        // What went wrong, on this cold path, when the reader did not say.
        read.map_err(|Invalid| {
            check.problem.unwrap_or_else(|| {
                if std::str::from_utf8(body).is_err() {
                    return "the body is not UTF-8".to_owned();
                }
                match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                    // serde_json says where.
                    Err(e) => e.to_string(),
                    // The one UTF-8 text it takes that the reader refuses.
                    Ok(_) => "the body nests deeper than 128 levels".to_owned(),
                }
            })
        })
    }
}

/// The probed keys read so far, and what is wrong with the body when reading stopped early.
#[derive(Default)]
struct Check {
    seen: u16,
    problem: Option<String>,
}

impl Check {
    /// Key number `n`, `key`, read: refused the second time.
    fn once(&mut self, n: u16, key: &[u8]) -> Result<(), Invalid> {
        if self.seen & (1 << n) != 0 {
            self.problem = Some(format!("duplicate field `{}`", String::from_utf8_lossy(key)));
            return Err(Invalid);
        }
        self.seen |= 1 << n;
        Ok(())
    }

    fn mistyped(&mut self, key: &[u8], what: &str) -> Invalid {
        self.problem = Some(format!("`{}` must be {what}", String::from_utf8_lossy(key)));
        Invalid
    }
}

/// The parsed request: the probe plus where its `model` value sits in the body.
#[derive(Debug)]
pub struct Parsed<'a> {
    pub probe: Probe<'a>,
    /// The client's model as a string (`None` when absent or null), borrowed from the body
    /// unless it has escapes.
    pub model: Option<Cow<'a, str>>,
    /// Byte range of the `model` value in the body, when present.
    model_span: Option<std::ops::Range<usize>>,
    /// Byte range of the `stream_options` value, when present.
    options_span: Option<std::ops::Range<usize>>,
}

/// Where a raw value sits in the body it was borrowed from.
fn span_of(body: &[u8], raw: &str) -> std::ops::Range<usize> {
    let start = raw.as_ptr() as usize - body.as_ptr() as usize;
    start..start + raw.len()
}

pub fn parse(body: &[u8]) -> Result<Parsed<'_>, ApiError> {
    let first = body.iter().copied().find(|b| !b.is_ascii_whitespace());
    if first != Some(b'{') {
        return Err(ApiError::bad_request("invalid_json", "request body must be a JSON object"));
    }
    let probe = Probe::read(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid JSON in request body: {e}")))?;
    let (model, model_span) = match probe.model {
        None => (None, None),
        Some(raw @ "null") => (None, Some(span_of(body, raw))),
        // Borrowed from the body unless the string has escapes to undo.
        Some(raw) => match unescaped(raw) {
            Some(m) => (Some(m), Some(span_of(body, raw))),
            None => return Err(ApiError::bad_request("invalid_model", "`model` must be a string")),
        },
    };
    let options_span = probe.stream_options.map(|raw| span_of(body, raw));
    Ok(Parsed { probe, model, model_span, options_span })
}

impl Parsed<'_> {
    pub fn is_stream(&self) -> bool {
        self.probe.stream == Some(true)
    }

    pub fn has_tools(&self) -> bool {
        self.probe.tools.is_some_and(json::is_nonempty_list)
    }

    /// `messages` is present and a non-empty array. The value is already valid JSON, so
    /// looking at its first two tokens is enough.
    pub fn has_messages(&self) -> bool {
        self.probe.messages.is_some_and(json::is_nonempty_list)
    }

    /// Responses: `input` is a non-empty string or a non-empty list.
    pub fn has_input(&self) -> bool {
        self.probe.input.is_some_and(|v| json::is_nonempty_list(v) || json::is_nonempty_string(v))
    }

    /// The output token limit, whichever dialect's name it has; `None` when absent or not a
    /// limit (negative: "unlimited"). A fraction counts as its whole part.
    pub fn max_tokens(&self) -> Option<u64> {
        let limit = |n: &serde_json::Number| {
            n.as_u64().or_else(|| n.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f as u64))
        };
        self.probe.max_tokens.as_ref().or(self.probe.max_output_tokens.as_ref()).and_then(limit)
    }
}

/// What `stream_options` says about a usage chunk.
#[derive(Debug, PartialEq, Eq)]
pub enum UsageAsked {
    /// `include_usage: true`: the client wants the chunk.
    Yes,
    /// Absent, null, or an object without `include_usage: true`: the gateway may ask for it.
    No,
    /// Not an object: left for the upstream to judge.
    Unreadable,
}

impl Parsed<'_> {
    pub fn usage_asked(&self) -> UsageAsked {
        #[derive(Deserialize)]
        struct Options {
            include_usage: Option<bool>,
        }
        match self.probe.stream_options {
            None | Some("null") => UsageAsked::No,
            Some(text) => match serde_json::from_str::<Options>(text) {
                Ok(Options { include_usage: Some(true) }) => UsageAsked::Yes,
                Ok(_) => UsageAsked::No,
                Err(_) => UsageAsked::Unreadable,
            },
        }
    }
}

/// The body with `model` set to `model`: the value replaced in place, or the key inserted
/// first when the client sent none. All other bytes are kept.
pub fn with_model(body: &[u8], parsed: &Parsed, model: &str) -> Vec<u8> {
    rewrite(body, parsed, Some(model), false)
}

/// The body with `model` set (when given) and, with `ask_usage`, `stream_options` asking for
/// the usage chunk (the client's other options kept). Values are replaced in place, missing
/// keys inserted first; every other byte is kept.
pub fn rewrite(body: &[u8], parsed: &Parsed, model: Option<&str>, ask_usage: bool) -> Vec<u8> {
    let mut edits: Vec<(std::ops::Range<usize>, Vec<u8>)> = Vec::new();
    let mut inserted: Vec<u8> = Vec::new();
    if let Some(model) = model {
        let quoted = serde_json::to_vec(model).unwrap_or_default();
        match &parsed.model_span {
            Some(span) => edits.push((span.clone(), quoted)),
            None => {
                inserted.extend_from_slice(b"\"model\":");
                inserted.extend_from_slice(&quoted);
            }
        }
    }
    if ask_usage {
        // Most requests have no `stream_options`: the object is then a constant, not a map built,
        // serialised and dropped.
        let options = match parsed.probe.stream_options {
            None => br#"{"include_usage":true}"#.to_vec(),
            Some(raw) => {
                let mut options =
                    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(raw).unwrap_or_default();
                options.insert("include_usage".into(), true.into());
                serde_json::to_vec(&options).unwrap_or_default()
            }
        };
        match &parsed.options_span {
            Some(span) => edits.push((span.clone(), options)),
            None => {
                if !inserted.is_empty() {
                    inserted.push(b',');
                }
                inserted.extend_from_slice(b"\"stream_options\":");
                inserted.extend_from_slice(&options);
            }
        }
    }
    if !inserted.is_empty() {
        let brace = body.iter().position(|&b| b == b'{').unwrap_or(0);
        if body[brace + 1..].iter().any(|b| !b.is_ascii_whitespace() && *b != b'}') {
            inserted.push(b',');
        }
        edits.push((brace + 1..brace + 1, inserted));
    }
    edits.sort_by_key(|(span, _)| span.start);
    let mut out = Vec::with_capacity(body.len() + edits.iter().map(|(_, e)| e.len()).sum::<usize>());
    let mut at = 0;
    for (span, replacement) in edits {
        out.extend_from_slice(&body[at..span.start]);
        out.extend_from_slice(&replacement);
        at = span.end;
    }
    out.extend_from_slice(&body[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splices_model_and_keeps_every_other_byte() {
        let body =
            br#"{ "messages":[{"role":"user","content":"hi"}], "model" : "auto", "logprobs":true,"x":{"y":[1,2.50]} }"#;
        let p = parse(body).unwrap();
        assert_eq!(p.model.as_deref(), Some("auto"));
        let out = with_model(body, &p, "llama\"3");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{ "messages":[{"role":"user","content":"hi"}], "model" : "llama\"3", "logprobs":true,"x":{"y":[1,2.50]} }"#
        );
    }

    #[test]
    fn a_model_is_borrowed_unless_it_has_escapes() {
        let p = parse(br#"{"model":"llama3"}"#).unwrap();
        assert!(matches!(p.model, Some(Cow::Borrowed("llama3"))));
        let p = parse(br#"{"model":"a\u0062c\"d"}"#).unwrap();
        assert!(matches!(p.model.as_ref(), Some(Cow::Owned(m)) if m == "abc\"d"));
        assert!(parse(br#"{"model":null}"#).unwrap().model.is_none());
        assert!(parse(br#"{"model":3}"#).is_err());
    }

    #[test]
    fn inserts_a_missing_model() {
        let body = br#"  {"messages":[]}"#;
        let p = parse(body).unwrap();
        assert_eq!(String::from_utf8(with_model(body, &p, "m")).unwrap(), r#"  {"model":"m","messages":[]}"#);
        let null = br#"{"model":null,"messages":[]}"#;
        let p = parse(null).unwrap();
        assert_eq!(p.model, None);
        assert_eq!(
            String::from_utf8(with_model(null, &p, "m")).unwrap(),
            r#"{"model":"m","messages":[]}"#,
            "replaced, not added twice"
        );
        let empty = b"{ }";
        let p = parse(empty).unwrap();
        assert_eq!(String::from_utf8(with_model(empty, &p, "m")).unwrap(), r#"{"model":"m" }"#);
    }

    #[test]
    fn asks_for_usage_keeping_the_clients_other_options() {
        let ask = |body: &str, model: Option<&str>| {
            let p = parse(body.as_bytes()).unwrap();
            let asked = p.usage_asked();
            (asked, String::from_utf8(rewrite(body.as_bytes(), &p, model, true)).unwrap())
        };
        assert_eq!(
            ask(r#"{"model":"a","stream":true}"#, Some("b")),
            (UsageAsked::No, r#"{"stream_options":{"include_usage":true},"model":"b","stream":true}"#.into())
        );
        assert_eq!(
            ask(r#"{"stream":true}"#, Some("b")),
            (UsageAsked::No, r#"{"model":"b","stream_options":{"include_usage":true},"stream":true}"#.into())
        );
        assert_eq!(
            ask(r#"{"stream_options":{"include_usage":false,"x":1},"model":"a"}"#, None),
            (UsageAsked::No, r#"{"stream_options":{"include_usage":true,"x":1},"model":"a"}"#.into())
        );
        assert_eq!(
            ask(r#"{"stream_options":null}"#, None),
            (UsageAsked::No, r#"{"stream_options":{"include_usage":true}}"#.into())
        );
        assert_eq!(ask(r#"{"stream_options":{"include_usage":true}}"#, None).0, UsageAsked::Yes);
        assert_eq!(ask(r#"{"stream_options":[1]}"#, None).0, UsageAsked::Unreadable);
        assert_eq!(ask("{}", None).1, r#"{"stream_options":{"include_usage":true}}"#);
    }

    #[test]
    fn rejects_bad_bodies_with_a_reason() {
        assert!(parse(b"[1]").unwrap_err().message.contains("JSON object"));
        let e = parse(b"{\"model\": \"x\",\n \"messages\": [}").unwrap_err();
        assert!(e.message.contains("line 2"), "{}", e.message);
        assert!(parse(br#"{"model": 3}"#).unwrap_err().message.contains("must be a string"));
        assert!(parse(br#"{"model":"a","model":"b"}"#).is_err(), "duplicate keys are ambiguous");
        assert!(parse(br#"{"stream":"yes"}"#).is_err());
        let message = |body: &[u8]| parse(body).unwrap_err().message;
        // A key spelled with escapes is the key it spells: no second `model` gets past.
        assert_eq!(parse(br#"{"\u006dodel":"a"}"#).unwrap().model.as_deref(), Some("a"));
        assert!(message(br#"{"model":"a","\u006dodel":"b"}"#).ends_with("duplicate field `model`"));
        assert!(message(br#"{"stream":1}"#).ends_with("`stream` must be true or false"));
        assert!(message(br#"{"max_tokens":"256"}"#).ends_with("`max_tokens` must be a number"));
        assert!(message(b"{\"model\":\"\xff\"}").ends_with("the body is not UTF-8"));
        assert!(message(br#"{"model":"m"} x"#).contains("trailing characters at line 1 column 15"));
        let deep = format!("{{\"tools\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(message(deep.as_bytes()).ends_with("the body nests deeper than 128 levels"));
        // Unprobed keys may repeat (a JSON tree keeps the last).
        assert!(parse(br#"{"user":"a","user":"b"}"#).is_ok());
    }

    #[test]
    fn any_number_is_a_token_limit_and_negative_means_none() {
        let limit = |body: &str| parse(body.as_bytes()).ok().map(|p| p.max_tokens());
        assert_eq!(limit(r#"{"max_tokens":256}"#), Some(Some(256)));
        assert_eq!(limit(r#"{"max_tokens":256.0}"#), Some(Some(256)), "a float");
        assert_eq!(limit(r#"{"max_tokens":-1}"#), Some(None), "llama.cpp's and LM Studio's unlimited");
        assert_eq!(limit(r#"{"max_tokens":1e3}"#), Some(Some(1000)));
        assert_eq!(limit(r#"{"max_output_tokens":-1.5}"#), Some(None));
        assert_eq!(limit(r#"{"max_tokens":null,"max_output_tokens":64}"#), Some(Some(64)));
        assert!(parse(br#"{"max_tokens":"256"}"#).is_err(), "a string is not a number");
    }

    #[test]
    fn reads_stream_tools_and_messages() {
        let p = parse(br#"{"stream":true,"tools":[{"type":"function"}],"messages":[{"role":"user"}]}"#).unwrap();
        assert!(p.is_stream() && p.has_tools() && p.has_messages());
        let q = parse(br#"{"model":null,"tools":[],"messages":[]}"#).unwrap();
        assert!(!q.is_stream() && !q.has_tools() && !q.has_messages() && q.model.is_none());
    }
}
