//! Anthropic Messages API response → OpenAI chat completion; Anthropic errors → OpenAI errors.

use http::StatusCode;
use serde_json::{Value, json};

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

/// Anthropic usage → OpenAI usage. Prompt tokens include cache reads and writes (they are
/// input the model read); cached reads are also reported as `cached_tokens`.
pub fn usage(u: &Value) -> Value {
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    let cached = n("cache_read_input_tokens");
    let prompt = n("input_tokens") + cached + n("cache_creation_input_tokens");
    let completion = n("output_tokens");
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    })
}

/// A complete message → a `chat.completion`.
pub fn completion(msg: &Value) -> Value {
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in msg["content"].as_array().into_iter().flatten() {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or_default()),
            Some("tool_use") => calls.push(json!({
                "id": block["id"],
                "type": "function",
                "function": {"name": block["name"], "arguments": block["input"].to_string()},
            })),
            _ => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) }});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    json!({
        "id": msg["id"],
        "object": "chat.completion",
        "created": now(),
        "model": msg["model"],
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(msg["stop_reason"].as_str().unwrap_or_default()),
        }],
        "usage": usage(&msg["usage"]),
    })
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
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/upstream/anthropic").join(name);
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn text_message() {
        let got = completion(&fixture("message.json"));
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
        let got = completion(&fixture("message-tools.json"));
        let m = &got["choices"][0]["message"];
        assert_eq!(m["content"], "I will check both cities.");
        assert_eq!(m["tool_calls"][0]["id"], "toolu_01A09q90qw90lq917835lq9");
        assert_eq!(m["tool_calls"][0]["function"]["arguments"], r#"{"city":"Paris"}"#);
        assert_eq!(m["tool_calls"][1]["function"]["arguments"], r#"{"city":"Tokyo","unit":"celsius"}"#);
        assert_eq!(got["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(got["usage"]["prompt_tokens"], 389 + 128);
        assert_eq!(got["usage"]["prompt_tokens_details"]["cached_tokens"], 128);
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
