//! Reading just enough of a client's JSON body to route it, and splicing a new `model` into
//! the original bytes so every other field reaches the upstream byte-identical.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::ApiError;

/// The fields a decision needs; everything else is skipped, not copied.
#[derive(Debug, Deserialize)]
pub struct Probe<'a> {
    #[serde(borrow, default)]
    pub model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub messages: Option<&'a RawValue>,
    #[serde(default)]
    pub stream: Option<bool>,
    /// Any JSON number: llama.cpp and LM Studio take `-1` for "no limit", and some clients
    /// send `256.0`. Only routing reads it, as an estimate.
    #[serde(default)]
    pub max_tokens: Option<serde_json::Number>,
    #[serde(borrow, default)]
    pub tools: Option<&'a RawValue>,
    /// Messages: the system prompt (a string or text blocks).
    #[serde(borrow, default)]
    pub system: Option<&'a RawValue>,
    /// Responses: the conversation (a string or items) and the system prompt.
    #[serde(borrow, default)]
    pub input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub instructions: Option<&'a RawValue>,
    #[serde(default)]
    pub max_output_tokens: Option<serde_json::Number>,
}

/// The parsed request: the probe plus where its `model` value sits in the body.
#[derive(Debug)]
pub struct Parsed<'a> {
    pub probe: Probe<'a>,
    /// The client's model as a string (`None` when absent or null).
    pub model: Option<String>,
    /// Byte range of the `model` value in the body, when present.
    model_span: Option<std::ops::Range<usize>>,
}

pub fn parse(body: &[u8]) -> Result<Parsed<'_>, ApiError> {
    let first = body.iter().copied().find(|b| !b.is_ascii_whitespace());
    if first != Some(b'{') {
        return Err(ApiError::bad_request("invalid_json", "request body must be a JSON object"));
    }
    let probe: Probe = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid JSON in request body: {e}")))?;
    let (model, model_span) = match probe.model {
        None => (None, None),
        Some(raw) => {
            let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
            let span = start..start + raw.get().len();
            match serde_json::from_str::<Option<String>>(raw.get()) {
                Ok(m) => (m, Some(span)),
                Err(_) => return Err(ApiError::bad_request("invalid_model", "`model` must be a string")),
            }
        }
    };
    Ok(Parsed { probe, model, model_span })
}

impl Parsed<'_> {
    pub fn is_stream(&self) -> bool {
        self.probe.stream == Some(true)
    }

    pub fn has_tools(&self) -> bool {
        self.probe.tools.is_some_and(|t| t.get().trim_start().starts_with('[') && t.get().trim() != "[]")
    }

    /// `messages` is present and a non-empty array. The value is already valid JSON, so
    /// looking at its first two tokens is enough.
    pub fn has_messages(&self) -> bool {
        self.probe
            .messages
            .is_some_and(|m| m.get().strip_prefix('[').is_some_and(|rest| !rest.trim_start().starts_with(']')))
    }

    /// Responses: `input` is a non-empty string or a non-empty list.
    pub fn has_input(&self) -> bool {
        self.probe.input.is_some_and(|i| {
            let v = i.get();
            v.strip_prefix('[').is_some_and(|rest| !rest.trim_start().starts_with(']'))
                || (v.starts_with('"') && v != "\"\"")
        })
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

/// The body with `model` set to `model`: the value replaced in place, or the key inserted
/// first when the client sent none. All other bytes are kept.
pub fn with_model(body: &[u8], parsed: &Parsed, model: &str) -> Vec<u8> {
    let quoted = serde_json::to_string(model).unwrap_or_default();
    let mut out = Vec::with_capacity(body.len() + quoted.len() + 10);
    match &parsed.model_span {
        Some(span) => {
            out.extend_from_slice(&body[..span.start]);
            out.extend_from_slice(quoted.as_bytes());
            out.extend_from_slice(&body[span.end..]);
        }
        None => {
            let brace = body.iter().position(|&b| b == b'{').unwrap_or(0);
            out.extend_from_slice(&body[..=brace]);
            out.extend_from_slice(b"\"model\":");
            out.extend_from_slice(quoted.as_bytes());
            let rest = &body[brace + 1..];
            if rest.iter().any(|b| !b.is_ascii_whitespace() && *b != b'}') {
                out.push(b',');
            }
            out.extend_from_slice(rest);
        }
    }
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
    fn inserts_a_missing_model() {
        let body = br#"  {"messages":[]}"#;
        let p = parse(body).unwrap();
        assert_eq!(String::from_utf8(with_model(body, &p, "m")).unwrap(), r#"  {"model":"m","messages":[]}"#);
        let empty = b"{ }";
        let p = parse(empty).unwrap();
        assert_eq!(String::from_utf8(with_model(empty, &p, "m")).unwrap(), r#"{"model":"m" }"#);
    }

    #[test]
    fn rejects_bad_bodies_with_a_reason() {
        assert!(parse(b"[1]").unwrap_err().message.contains("JSON object"));
        let e = parse(b"{\"model\": \"x\",\n \"messages\": [}").unwrap_err();
        assert!(e.message.contains("line 2"), "{}", e.message);
        assert!(parse(br#"{"model": 3}"#).unwrap_err().message.contains("must be a string"));
        assert!(parse(br#"{"model":"a","model":"b"}"#).is_err(), "duplicate keys are ambiguous");
        assert!(parse(br#"{"stream":"yes"}"#).is_err());
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
