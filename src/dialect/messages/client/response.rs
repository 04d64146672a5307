//! OpenAI `chat.completion` → Anthropic message; upstream error bodies → Anthropic errors.

use std::borrow::Cow;

use http::StatusCode;
use serde_json::{Value, json};

use crate::dialect::chat::{Call, Completion, Content, Usage};
use crate::dialect::json::{self, Invalid, unescaped};
use crate::dialect::{convert, json_str, push_u64};

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

/// Appends Chat `usage` as Anthropic's. Chat's prompt tokens include cached ones; Anthropic
/// counts cache reads apart from `input_tokens`.
pub fn write_usage(usage: &Usage, out: &mut Vec<u8>) {
    let cached = usage.cached_tokens;
    out.extend_from_slice(br#"{"input_tokens":"#);
    push_u64(out, usage.prompt_tokens.unwrap_or(0).saturating_sub(cached.unwrap_or(0)));
    out.extend_from_slice(br#","output_tokens":"#);
    push_u64(out, usage.completion_tokens.unwrap_or(0));
    if let Some(cached) = cached {
        out.extend_from_slice(br#","cache_read_input_tokens":"#);
        push_u64(out, cached);
    }
    out.push(b'}');
}

/// A whole `chat.completion` → an Anthropic message, written straight from the completion's
/// raw members: no JSON tree is built on either side, and text, names and tool inputs are
/// copied as the upstream wrote them. `Err` when the body is not a completion.
pub fn from_chat(body: &[u8]) -> Result<Vec<u8>, Invalid> {
    from_completion(&Completion::read(body)?, body.len())
}

/// A completion read → an Anthropic message of about `size` bytes. `Err` when it has no answer.
pub fn from_completion(chat: &Completion, size: usize) -> Result<Vec<u8>, Invalid> {
    let (choice, msg) = chat.answer()?;
    let chat_id = chat.id.and_then(unescaped).unwrap_or_default();
    // The answer's text, escaped. Some servers send content as a list of text parts; a
    // refusal is the answer's text.
    let answer = match &msg.content {
        Content::Text(raw) => Cow::Borrowed(json::contents(raw).unwrap_or_default()),
        Content::Parts(parts) => json::joined(parts, ""),
        Content::Absent | Content::Other => Cow::Borrowed(msg.refusal.and_then(json::contents).unwrap_or_default()),
    };
    let calls = msg.tool_calls.iter().chain(&msg.function_call);
    let calls_made = calls.clone().next().is_some();
    let mut out = Vec::with_capacity(size + 256);
    out.extend_from_slice(br#"{"id":"#);
    match chat_id.starts_with("msg_") {
        true => json_str(&mut out, &chat_id),
        false => json_str(&mut out, &format!("msg_{chat_id}")),
    }
    out.extend_from_slice(br#","type":"message","role":"assistant","model":"#);
    out.extend_from_slice(json::string_or_empty(chat.model).as_bytes());
    out.extend_from_slice(br#","content":["#);
    let mut first = true;
    let mut block = |out: &mut Vec<u8>| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
    };
    if !answer.is_empty() || !calls_made {
        block(&mut out);
        out.extend_from_slice(br#"{"type":"text","text":"#);
        json::quote(&mut out, &answer);
        out.push(b'}');
    }
    for (i, call) in calls.enumerate() {
        block(&mut out);
        tool_use(call, &chat_id, i, &mut out);
    }
    out.extend_from_slice(br#"],"stop_reason":""#);
    // A tool call's answer that ends with `stop` (as some servers do) or with no reason
    // stops for `tool_use`: the client runs the tools.
    out.extend_from_slice(
        match stop_reason(choice.finish_reason.and_then(unescaped).as_deref().unwrap_or_default()) {
            "end_turn" if calls_made => "tool_use",
            reason => reason,
        }
        .as_bytes(),
    );
    out.extend_from_slice(br#"","stop_sequence":null,"usage":"#);
    write_usage(&chat.usage.unwrap_or_default(), &mut out);
    out.push(b'}');
    Ok(out)
}

/// One tool call as a `tool_use` block. Arguments that are not a JSON object (truncated by
/// `length`, or a model's invalid output) become `{}`: Anthropic's `input` is always an object.
fn tool_use(call: &Call, chat_id: &str, i: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(br#"{"type":"tool_use","id":"#);
    // The client answers with `tool_result.tool_use_id`, so an id is needed even when the
    // server sent none.
    match call.id.filter(|id| json::is_nonempty_string(id)) {
        Some(id) => out.extend_from_slice(id.as_bytes()),
        None => json_str(out, &format!("toolu_{chat_id}_{i}")),
    }
    out.extend_from_slice(br#","name":"#);
    out.extend_from_slice(json::string_or_empty(call.name).as_bytes());
    out.extend_from_slice(br#","input":"#);
    let arguments = call.arguments.unwrap_or_default();
    // Some servers send the arguments as an object rather than its text.
    let text = match arguments.starts_with('{') {
        true => Some(Cow::Borrowed(arguments)),
        false => unescaped(arguments),
    };
    let object = text.as_deref().and_then(|t| json::Reader::document(t.as_bytes(), |r| r.value()).ok());
    out.extend_from_slice(object.filter(|o| o.starts_with('{')).unwrap_or("{}").as_bytes());
    out.push(b'}');
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

/// An upstream error body (see [`convert::error_message`] for the shapes it reads) → an
/// Anthropic error body; one that already is one (Anthropic's own, or the gateway's) is kept.
pub fn error(status: StatusCode, body: &[u8]) -> Value {
    let parsed: Value = serde_json::from_slice(body).unwrap_or_default();
    if parsed["type"] == "error" && parsed["error"]["type"].is_string() && parsed["error"]["message"].is_string() {
        return parsed;
    }
    let message = convert::error_message(status, &parsed, body);
    json!({"type": "error", "error": {"type": error_type(status.as_u16()), "message": message}})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message for a completion written from `chat`, read back as a tree.
    fn from_chat(chat: &Value) -> Value {
        serde_json::from_slice(&super::from_chat(&serde_json::to_vec(chat).unwrap()).unwrap()).unwrap()
    }

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
        // Arguments sent as an object are the input; a call that ends with `stop` (as some
        // servers do) or no reason still stops for `tool_use`.
        for finish in [json!("stop"), json!(null)] {
            let chat = json!({"choices": [{"finish_reason": finish, "message": {"tool_calls": [
                {"id": "call_1", "function": {"name": "f", "arguments": {"a": [1, {"b": null}]}}}]}}]});
            let got = from_chat(&chat);
            assert_eq!(got["content"][0]["input"], json!({"a": [1, {"b": null}]}));
            assert_eq!(got["stop_reason"], "tool_use", "{finish}");
        }
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
        let answer = json!({"choices": [{"message": {"content": "x"}}]});
        assert_eq!(from_chat(&answer)["usage"], json!({"input_tokens": 0, "output_tokens": 0}));
        assert!(super::from_chat(b"\"nonsense\"").is_err());
        assert!(super::from_chat(br#" ["object"]"#).is_err(), "a list is not read as an object");
        // Without a choice there is no answer: an error, never an empty message.
        for body in [
            &br#"{}"#[..],
            br#"{"foo": 1}"#,
            br#"{"choices": []}"#,
            br#"{"choices": null}"#,
            br#"{"choices": [{}]}"#,
            br#"{"choices": [{"message": null}]}"#,
            br#"{"choices": [{"message": "x", "finish_reason": "stop"}]}"#,
        ] {
            assert!(super::from_chat(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
        // A filtered answer may come without its message: an empty refusal.
        let filtered = from_chat(&json!({"choices": [{"index": 0, "finish_reason": "content_filter"}]}));
        let empty = json!([{"type": "text", "text": ""}]);
        assert_eq!((&filtered["stop_reason"], &filtered["content"]), (&json!("refusal"), &empty));
        let mut nulls = answer.clone();
        nulls["usage"] = json!({"prompt_tokens": null, "completion_tokens": null});
        assert_eq!(from_chat(&nulls)["usage"], json!({"input_tokens": 0, "output_tokens": 0}));
        // Counts written as floats are counts; other odd counts are none, not a lost answer.
        let mut odd = answer.clone();
        odd["usage"] =
            json!({"prompt_tokens": 10.0, "completion_tokens": -5, "prompt_tokens_details": {"cached_tokens": "2"}});
        assert_eq!(from_chat(&odd)["usage"], json!({"input_tokens": 10, "output_tokens": 0}));
        // So are usage and details that are no objects.
        for (usage, input) in [(json!("lots"), 0), (json!({"prompt_tokens": 3, "prompt_tokens_details": 5}), 3)] {
            odd["usage"] = usage;
            let got = from_chat(&odd);
            assert_eq!((&got["content"][0]["text"], &got["usage"]["input_tokens"]), (&json!("x"), &json!(input)));
        }
        assert!(super::from_chat(br#"{"choices": {"message": {}}}"#).is_err());
        let legacy = json!({"choices": [{"message": {"function_call": {"name": "f", "arguments": "{}"}}, "finish_reason": "function_call"}]});
        assert_eq!(from_chat(&legacy)["content"][0]["name"], "f");
    }

    /// Read from the completion's own bytes: escaped text and ids are kept as written, text
    /// parts are joined, a refusal is the text, and only the first choice counts.
    #[test]
    fn escapes_parts_refusals_and_choices() {
        let body = br#"{"id": "c\"1", "model": "m\u00e9", "choices": [
            {"index": 0, "finish_reason": "tool_calls", "message": {"content": "say \"hi\"\n", "tool_calls": [
                {"id": "", "function": {"name": "f", "arguments": " {\"a\": [1, 2]} "}},
                {"id": "call\/2", "function": {"name": 5, "arguments": "[1]"}}, "odd"]}},
            {"index": 1, "message": {"content": "second"}}], "usage": null}"#;
        let got: Value = serde_json::from_slice(&super::from_chat(body).unwrap()).unwrap();
        assert_eq!(got["id"], "msg_c\"1");
        assert_eq!(got["model"], "m\u{e9}");
        assert_eq!(
            got["content"],
            json!([
                {"type": "text", "text": "say \"hi\"\n"},
                {"type": "tool_use", "id": "toolu_c\"1_0", "name": "f", "input": {"a": [1, 2]}},
                {"type": "tool_use", "id": "call/2", "name": "", "input": {}},
                {"type": "tool_use", "id": "toolu_c\"1_2", "name": "", "input": {}}
            ])
        );
        assert_eq!(got["usage"], json!({"input_tokens": 0, "output_tokens": 0}));
        let parts = from_chat(
            &json!({"choices": [{"message": {"content": [{"type": "text", "text": "a"}, 3, {"text": "b"}]}}]}),
        );
        assert_eq!(parts["content"], json!([{"type": "text", "text": "ab"}]));
        let refusal = from_chat(
            &json!({"choices": [{"message": {"content": null, "refusal": "no"}, "finish_reason": "content_filter"}]}),
        );
        assert_eq!(refusal["content"], json!([{"type": "text", "text": "no"}]));
        assert_eq!(refusal["stop_reason"], "refusal");
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
        // Already Anthropic's shape (its own, or the gateway's with its request id): kept.
        let anthropic = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}, "request_id": "req_1"});
        assert_eq!(error(StatusCode::INTERNAL_SERVER_ERROR, anthropic.to_string().as_bytes()), anthropic);
    }
}
