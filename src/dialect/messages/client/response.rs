//! OpenAI `chat.completion` → Anthropic message; upstream error bodies → Anthropic errors.

use http::StatusCode;
use serde_json::{Value, json};

/// `finish_reason` → `stop_reason`. Chat does not say which stop sequence matched, so a stop
/// is always `end_turn`.
pub fn stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// A Chat id as a message id: Anthropic ids start with `msg_`.
pub fn message_id(id: &str) -> String {
    if id.starts_with("msg_") { id.to_owned() } else { format!("msg_{id}") }
}

/// Chat usage → Anthropic usage. Chat's prompt tokens include cached ones; Anthropic counts
/// cache reads apart from `input_tokens`.
pub fn usage(u: &Value) -> Value {
    let prompt = u["prompt_tokens"].as_u64().unwrap_or(0);
    let mut out = json!({"input_tokens": prompt, "output_tokens": u["completion_tokens"].as_u64().unwrap_or(0)});
    if let Some(cached) = u["prompt_tokens_details"]["cached_tokens"].as_u64() {
        out["input_tokens"] = json!(prompt.saturating_sub(cached));
        out["cache_read_input_tokens"] = json!(cached);
    }
    out
}

/// A whole `chat.completion` → an Anthropic message.
pub fn from_chat(chat: &Value) -> Value {
    let choice = &chat["choices"][0];
    let msg = &choice["message"];
    let mut content = Vec::new();
    // Some servers send content as a list of text parts; a refusal is the answer's text.
    let text = match &msg["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => msg["refusal"].as_str().unwrap_or_default().to_owned(),
    };
    let calls = msg["tool_calls"].as_array().map(Vec::as_slice).unwrap_or_default();
    let legacy = msg["function_call"].is_object().then_some(msg);
    if !text.is_empty() || (calls.is_empty() && legacy.is_none()) {
        content.push(json!({"type": "text", "text": text}));
    }
    let id = chat["id"].as_str().unwrap_or_default();
    for (i, call) in calls.iter().enumerate() {
        content.push(tool_use(&call["id"], &call["function"], id, i));
    }
    if let Some(m) = legacy {
        content.push(tool_use(&Value::Null, &m["function_call"], id, 0));
    }
    json!({
        "id": message_id(id),
        "type": "message",
        "role": "assistant",
        "model": chat["model"].as_str().unwrap_or_default(),
        "content": content,
        "stop_reason": stop_reason(choice["finish_reason"].as_str().unwrap_or_default()),
        "stop_sequence": null,
        "usage": usage(&chat["usage"]),
    })
}

/// One tool call as a `tool_use` block. Arguments that are not a JSON object (truncated by
/// `length`, or a model's invalid output) become `{}`: Anthropic's `input` is always an object.
fn tool_use(call_id: &Value, function: &Value, chat_id: &str, i: usize) -> Value {
    let input = function["arguments"]
        .as_str()
        .and_then(|a| serde_json::from_str::<Value>(a).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    // The client answers with `tool_result.tool_use_id`, so an id is needed even when the
    // server sent none.
    let id = match call_id.as_str() {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => format!("toolu_{chat_id}_{i}"),
    };
    json!({"type": "tool_use", "id": id, "name": function["name"].as_str().unwrap_or_default(), "input": input})
}

/// Anthropic's error `type` for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

/// Longest upstream body kept as a message when it is not JSON (an HTML error page, say).
const MAX_RAW_MESSAGE: usize = 500;

/// An upstream error body (OpenAI `{"error":{"message"}}`, Ollama `{"error":"…"}`, vLLM
/// `{"message"}`, FastAPI `{"detail"}`, or plain text) → an Anthropic error body.
pub fn error(status: StatusCode, body: &[u8]) -> Value {
    let parsed: Value = serde_json::from_slice(body).unwrap_or_default();
    let found = [&parsed["error"]["message"], &parsed["error"], &parsed["message"], &parsed["detail"]]
        .into_iter()
        .find_map(|v| v.as_str().filter(|s| !s.is_empty()));
    let message = match found {
        Some(m) => m.to_owned(),
        None if parsed.is_null() => {
            let raw = String::from_utf8_lossy(body);
            let raw = raw.trim();
            match raw.char_indices().nth(MAX_RAW_MESSAGE) {
                _ if raw.is_empty() => format!("the upstream answered {status} with no error message"),
                Some((end, _)) => format!("the upstream answered {status}: {}…", &raw[..end]),
                None => format!("the upstream answered {status}: {raw}"),
            }
        }
        None => format!("the upstream answered {status} with no error message"),
    };
    json!({"type": "error", "error": {"type": error_type(status.as_u16()), "message": message}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_completion() {
        let chat = json!({
            "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "object": "chat.completion", "created": 1741570283,
            "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there!", "refusal": null},
                         "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1117, "completion_tokens": 46, "total_tokens": 1163,
                      "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0}}
        });
        assert_eq!(
            from_chat(&chat),
            json!({
                "id": "msg_chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "type": "message", "role": "assistant",
                "model": "gpt-4o-2024-08-06", "content": [{"type": "text", "text": "Hello there!"}],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": 93, "output_tokens": 46, "cache_read_input_tokens": 1024}
            })
        );
    }

    #[test]
    fn tool_calls_and_bad_arguments() {
        let chat = json!({
            "id": "msg_already", "model": "qwen3",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "",
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"type": "function", "function": {"name": "get_time", "arguments": "{\"city\":"}}
                ]}}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 9}
        });
        assert_eq!(
            from_chat(&chat),
            json!({
                "id": "msg_already", "type": "message", "role": "assistant", "model": "qwen3",
                "content": [
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_msg_already_1", "name": "get_time", "input": {}}
                ],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 20, "output_tokens": 9}
            })
        );
    }

    #[test]
    fn stop_reasons_and_odd_bodies() {
        assert_eq!(stop_reason("stop"), "end_turn");
        assert_eq!(stop_reason("length"), "max_tokens");
        assert_eq!(stop_reason("tool_calls"), "tool_use");
        assert_eq!(stop_reason("function_call"), "tool_use");
        assert_eq!(stop_reason("content_filter"), "refusal");
        // Empty text without tool calls stays a (empty) text block; nothing at all never panics.
        let got = from_chat(&json!({"choices": [{"message": {"content": null}, "finish_reason": "length"}]}));
        assert_eq!(got["content"], json!([{"type": "text", "text": ""}]));
        assert_eq!(got["stop_reason"], "max_tokens");
        assert_eq!(from_chat(&json!("nonsense"))["usage"], json!({"input_tokens": 0, "output_tokens": 0}));
        let legacy = json!({"choices": [{"message": {"function_call": {"name": "f", "arguments": "{}"}}, "finish_reason": "function_call"}]});
        assert_eq!(from_chat(&legacy)["content"][0]["name"], "f");
    }

    #[test]
    fn error_types() {
        let cases = [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (413, "request_too_large"),
            (422, "invalid_request_error"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (502, "api_error"),
            (503, "overloaded_error"),
            (529, "overloaded_error"),
        ];
        for (status, kind) in cases {
            assert_eq!(error_type(status), kind, "{status}");
        }
    }

    #[test]
    fn error_bodies() {
        let openai = br#"{"error":{"message":"Incorrect API key provided: sk-abc.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        assert_eq!(
            error(StatusCode::UNAUTHORIZED, openai),
            json!({"type": "error", "error": {"type": "authentication_error", "message": "Incorrect API key provided: sk-abc."}})
        );
        let msg = |status: u16, body: &[u8]| {
            let e = error(StatusCode::from_u16(status).unwrap(), body);
            (e["error"]["type"].as_str().unwrap().to_owned(), e["error"]["message"].as_str().unwrap().to_owned())
        };
        assert_eq!(msg(404, br#"{"error":"model \"x\" not found"}"#).1, "model \"x\" not found");
        assert_eq!(msg(400, br#"{"object":"error","message":"too long","type":"BadRequestError"}"#).1, "too long");
        assert_eq!(msg(422, br#"{"detail":"bad field"}"#).1, "bad field");
        assert_eq!(
            msg(502, b"<html>Bad Gateway</html>\n"),
            ("api_error".into(), "the upstream answered 502 Bad Gateway: <html>Bad Gateway</html>".into())
        );
        assert!(msg(500, b"").1.contains("no error message"));
        assert!(msg(500, b"{}").1.contains("no error message"));
        assert!(msg(500, &[b'x'; 2000]).1.ends_with('…'));
    }
}
