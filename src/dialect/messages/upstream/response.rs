//! Anthropic Messages API response → OpenAI chat completion; Anthropic errors → OpenAI errors.

use std::borrow::Cow;

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::dialect::chat::ToolCall;
use crate::dialect::now;

/// `stop_reason` → `finish_reason`.
pub fn finish_reason(stop: &str) -> &'static str {
    match stop {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// A complete message → a `chat.completion`, written straight from the message's borrowed
/// fields: no JSON tree is built on either side. `Err` when the body is not a message.
pub fn completion(body: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
    let msg: Message = crate::dialect::from_json(body)?;
    // A message has its content list (empty when the model said nothing): a body without one
    // is not an answer, and must not become a clean-looking empty one.
    if msg.content.is_none() {
        return Err(serde::de::Error::custom("a message without content"));
    }
    let mut text: Option<Cow<str>> = None;
    let mut tool_calls = Vec::new();
    for block in msg.content.iter().flatten() {
        match block.kind.as_deref() {
            Some("text") => {
                let part = block.text.as_deref().unwrap_or_default();
                match text.as_mut() {
                    Some(t) => t.to_mut().push_str(part),
                    None => text = Some(Cow::Borrowed(part)),
                }
            }
            Some("tool_use") => {
                tool_calls.push(ToolCall::new(block.id, block.name, block.input.map_or("null", RawValue::get)))
            }
            _ => {}
        }
    }
    let content = match text {
        None if !tool_calls.is_empty() => None,
        t => Some(t.unwrap_or_default()),
    };
    let u = msg.usage.unwrap_or_default();
    let out = Completion {
        id: msg.id,
        object: "chat.completion",
        created: now(),
        model: msg.model,
        choices: [Choice {
            index: 0,
            message: ChatMessage { role: "assistant", content, tool_calls },
            logprobs: None,
            finish_reason: finish_reason(msg.stop_reason.as_deref().unwrap_or_default()),
        }],
        // Last, where the access log's token count looks for it.
        usage: u.chat(u.output_tokens.unwrap_or(0)),
    };
    crate::dialect::to_json(&out, body.len())
}

/// The fields of a message the translation reads; the rest is skipped, not built.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    model: Option<&'a RawValue>,
    #[serde(default, borrow)]
    content: Option<Vec<Block<'a>>>,
    #[serde(default, borrow)]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "crate::dialect::shape")]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    name: Option<&'a RawValue>,
    /// The tool's input as Anthropic wrote it: it becomes the call's `arguments` text as is.
    #[serde(default, borrow)]
    input: Option<&'a RawValue>,
}

#[derive(Default, Deserialize)]
pub(super) struct Usage {
    #[serde(default, deserialize_with = "crate::dialect::count")]
    input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "crate::dialect::count")]
    output_tokens: Option<u64>,
    #[serde(default, deserialize_with = "crate::dialect::count")]
    cache_read_input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "crate::dialect::count")]
    cache_creation_input_tokens: Option<u64>,
}

impl Usage {
    /// Chat's usage for these counts, with `output` completion tokens. Prompt tokens include
    /// cache reads and writes (they are input the model read); cached reads are also reported
    /// as `cached_tokens`.
    pub(super) fn chat(&self, output: u64) -> ChatUsage {
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        let prompt = self.prompt();
        ChatUsage {
            prompt_tokens: prompt,
            completion_tokens: output,
            total_tokens: prompt.saturating_add(output),
            prompt_tokens_details: Cached { cached_tokens: cached },
        }
    }

    pub(super) fn prompt(&self) -> u64 {
        let n = |count: Option<u64>| count.unwrap_or(0);
        // Counts are the upstream's word: a huge one must not overflow.
        n(self.input_tokens)
            .saturating_add(n(self.cache_read_input_tokens))
            .saturating_add(n(self.cache_creation_input_tokens))
    }
}

#[derive(Serialize)]
struct Completion<'a> {
    id: Option<&'a RawValue>,
    object: &'static str,
    created: u64,
    model: Option<&'a RawValue>,
    choices: [Choice<'a>; 1],
    usage: ChatUsage,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: ChatMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCall<'a, &'a str>>,
}

#[derive(Serialize)]
pub(super) struct ChatUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: Cached,
}

#[derive(Serialize)]
struct Cached {
    cached_tokens: u64,
}

/// An Anthropic error body (`{"type":"error","error":{"type","message"}}`) → the status to
/// answer with and an OpenAI-shaped error. The upstream status is kept, except 529
/// (overloaded), which becomes 503 with the reason.
pub fn error(status: StatusCode, body: &[u8]) -> (StatusCode, Value) {
    let parsed: Value = serde_json::from_slice(body).unwrap_or_default();
    let kind = parsed["error"]["type"].as_str().unwrap_or("api_error").to_owned();
    let message = parsed["error"]["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("Anthropic answered {status} with no error message"));
    let (status, message) = if status.as_u16() == 529 {
        (StatusCode::SERVICE_UNAVAILABLE, format!("Anthropic is overloaded: {message}"))
    } else {
        (status, message)
    };
    (status, json!({"error": {"message": message, "type": kind, "code": kind}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        serde_json::from_slice(&raw(name)).unwrap()
    }

    fn raw(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/upstream/anthropic").join(name);
        std::fs::read(path).unwrap()
    }

    fn chat(name: &str) -> Value {
        serde_json::from_slice(&completion(&raw(name)).unwrap()).unwrap()
    }

    #[test]
    fn text_message() {
        let got = chat("message.json");
        assert_eq!(got["id"], "msg_01XFDUDYJgAACzvnptvVoYEL");
        assert_eq!(got["model"], "claude-sonnet-4-20250514");
        assert_eq!(
            got["choices"][0]["message"],
            json!({"role": "assistant", "content": "Hello! How can I help you today?"})
        );
        assert_eq!(got["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            got["usage"],
            json!({"prompt_tokens": 12, "completion_tokens": 11, "total_tokens": 23, "prompt_tokens_details": {"cached_tokens": 0}})
        );
    }

    #[test]
    fn two_tool_calls_and_cache_tokens() {
        let got = chat("message-tools.json");
        let m = &got["choices"][0]["message"];
        assert_eq!(m["content"], "I will check both cities.");
        assert_eq!(m["tool_calls"][0]["id"], "toolu_01A09q90qw90lq917835lq9");
        assert_eq!(m["tool_calls"][0]["function"]["arguments"], r#"{"city":"Paris"}"#);
        assert_eq!(m["tool_calls"][1]["function"]["arguments"], r#"{"city":"Tokyo","unit":"celsius"}"#);
        assert_eq!(got["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(got["usage"]["prompt_tokens"], 389 + 128);
        assert_eq!(got["usage"]["prompt_tokens_details"]["cached_tokens"], 128);
    }

    /// A body without the message's content is no answer; odd counts are none, not a lost
    /// answer, and counts written as floats are counts.
    #[test]
    fn odd_bodies_and_counts() {
        for body in [&b"{}"[..], br#"{"foo": 1}"#, br#"{"content": null}"#, b"null", b"[1]"] {
            assert!(completion(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
        let body = br#"{"content": [{"type": "text", "text": "hi"}], "usage": {"input_tokens": 10.0, "output_tokens": -5, "cache_read_input_tokens": "2"}}"#;
        let got: Value = serde_json::from_slice(&completion(body).unwrap()).unwrap();
        assert_eq!(got["choices"][0]["message"]["content"], "hi");
        assert_eq!((&got["usage"]["prompt_tokens"], &got["usage"]["completion_tokens"]), (&json!(10), &json!(0)));
        // Counts that would overflow when added are the largest count.
        let body = br#"{"content": [], "usage": {"input_tokens": 18446744073709551615, "cache_read_input_tokens": 5, "output_tokens": 1}}"#;
        let got: Value = serde_json::from_slice(&completion(body).unwrap()).unwrap();
        assert_eq!(
            (&got["usage"]["prompt_tokens"], &got["usage"]["total_tokens"]),
            (&json!(u64::MAX), &json!(u64::MAX))
        );
        // Usage that is no object is no usage, and the answer stands.
        let body = br#"{"content": [{"type": "text", "text": "hi"}], "usage": "lots"}"#;
        let got: Value = serde_json::from_slice(&completion(body).unwrap()).unwrap();
        assert_eq!(
            (&got["choices"][0]["message"]["content"], &got["usage"]["prompt_tokens"]),
            (&json!("hi"), &json!(0))
        );
    }

    #[test]
    fn stop_reasons() {
        assert_eq!(finish_reason("end_turn"), "stop");
        assert_eq!(finish_reason("stop_sequence"), "stop");
        assert_eq!(finish_reason("max_tokens"), "length");
        assert_eq!(finish_reason("tool_use"), "tool_calls");
        assert_eq!(finish_reason("refusal"), "content_filter");
    }

    #[test]
    fn errors_keep_status_and_overloaded_becomes_503() {
        let body = serde_json::to_vec(&fixture("error-overloaded.json")).unwrap();
        let (status, e) = error(StatusCode::from_u16(529).unwrap(), &body);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e["error"]["message"], "Anthropic is overloaded: Overloaded");
        let body = serde_json::to_vec(&fixture("error-rate-limit.json")).unwrap();
        let (status, e) = error(StatusCode::TOO_MANY_REQUESTS, &body);
        assert_eq!((status.as_u16(), e["error"]["type"].as_str()), (429, Some("rate_limit_error")));
        let (status, e) = error(StatusCode::BAD_GATEWAY, b"<html>");
        assert_eq!(status.as_u16(), 502);
        assert!(e["error"]["message"].as_str().unwrap().contains("no error message"));
    }
}
