//! OpenAI `chat.completion` → Anthropic message; upstream error bodies → Anthropic errors.

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::dialect::borrowed::{Fields, Input, Text, is_string, list, text};
use crate::dialect::convert;

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

/// Chat usage, as a completion or the last stream chunk reports it.
#[derive(Deserialize, Clone, Copy, Default)]
pub struct Usage {
    #[serde(default, deserialize_with = "null_as_zero")]
    pub prompt_tokens: u64,
    #[serde(default, deserialize_with = "null_as_zero")]
    pub completion_tokens: u64,
    #[serde(default, deserialize_with = "crate::dialect::within")]
    prompt_tokens_details: Option<Details>,
}

#[derive(Deserialize, Clone, Copy)]
struct Details {
    #[serde(default, deserialize_with = "crate::dialect::count")]
    cached_tokens: Option<u64>,
}

/// A count some servers send as `null` when they have none (or as a float: [`count`]).
fn null_as_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    crate::dialect::count(d).map(Option::unwrap_or_default)
}

/// Anthropic usage. Chat's prompt tokens include cached ones; Anthropic counts cache reads
/// apart from `input_tokens`.
#[derive(Serialize)]
pub struct AnthropicUsage {
    input_tokens: u64,
    output_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_read_input_tokens: Option<u64>,
}

impl Usage {
    pub fn anthropic(&self) -> AnthropicUsage {
        let cached = self.prompt_tokens_details.and_then(|d| d.cached_tokens);
        AnthropicUsage {
            input_tokens: self.prompt_tokens.saturating_sub(cached.unwrap_or(0)),
            output_tokens: self.completion_tokens,
            cache_read_input_tokens: cached,
        }
    }
}

/// A whole `chat.completion` → an Anthropic message, written from the completion's borrowed
/// fields: no JSON tree is built on either side. `Err` when the body is not a completion.
pub fn from_chat(body: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
    // A typed reader would take a list for an object, member by member.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(serde::de::Error::custom("not a JSON object"));
    }
    let chat: Completion = crate::dialect::from_json(body)?;
    // A completion without a choice (and its message) is not an answer, and must not become
    // an empty one. A choice without a message that says why (a filtered answer's
    // `finish_reason: content_filter`) is an empty answer.
    let Some((choice, msg)) = chat.choices.unwrap_or_default().into_iter().next().and_then(|mut c| {
        let reason = c.finish_reason.is_some_and(is_string);
        let msg = c.message.take().or_else(|| reason.then(ChatMessage::default))?;
        Some((c, msg))
    }) else {
        return Err(serde::de::Error::custom("a completion without a choice"));
    };
    let chat_id = chat.id.and_then(text).unwrap_or_default();
    let calls = msg.tool_calls.and_then(list).unwrap_or_default();
    let legacy = msg.function_call.filter(|f| f.get().starts_with('{'));
    let calls_made = !calls.is_empty() || legacy.is_some();
    let mut content = Vec::with_capacity(1 + calls.len());
    // Some servers send content as a list of text parts; a refusal is the answer's text.
    let answer = match msg.content {
        Some(c) if is_string(c) => Text::Raw(c),
        Some(c) if c.get().starts_with('[') => Text::Owned(
            list(c)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| Fields::of(p).and_then(|p| p.get("text")).and_then(text))
                .collect(),
        ),
        _ => match msg.refusal.filter(|r| is_string(r)) {
            Some(r) => Text::Raw(r),
            None => Text::Owned(String::new()),
        },
    };
    if !answer.is_empty() || (calls.is_empty() && legacy.is_none()) {
        content.push(Block::Text { text: answer });
    }
    for (i, call) in calls.iter().enumerate() {
        let call = Fields::of(call).unwrap_or_default();
        content.push(tool_use(call.get("id"), call.get("function"), &chat_id, i));
    }
    if let Some(f) = legacy {
        content.push(tool_use(None, Some(f), &chat_id, 0));
    }
    let out = Message {
        id: if chat_id.starts_with("msg_") { chat_id.into_owned() } else { format!("msg_{chat_id}") },
        kind: "message",
        role: "assistant",
        model: Text::of(chat.model),
        content,
        // A tool call's answer that ends with `stop` (as some servers do) or with no reason
        // stops for `tool_use`: the client runs the tools.
        stop_reason: match stop_reason(choice.finish_reason.and_then(text).as_deref().unwrap_or_default()) {
            "end_turn" if calls_made => "tool_use",
            reason => reason,
        },
        stop_sequence: None,
        usage: chat.usage.unwrap_or_default().anthropic(),
    };
    crate::dialect::to_json(&out, body.len())
}

/// One tool call as a `tool_use` block. Arguments that are not a JSON object (truncated by
/// `length`, or a model's invalid output) become `{}`: Anthropic's `input` is always an object.
fn tool_use<'a>(id: Option<&'a RawValue>, function: Option<&'a RawValue>, chat_id: &str, i: usize) -> Block<'a> {
    let function = function.and_then(Fields::of).unwrap_or_default();
    let arguments = function.get("arguments");
    let input = match arguments.filter(|a| a.get().starts_with('{')) {
        // Some servers send the arguments as an object rather than its text.
        Some(object) => Some(object.to_owned()),
        None => arguments.and_then(text).and_then(|a| serde_json::from_str::<Box<RawValue>>(&a).ok()),
    }
    .filter(|a| a.get().starts_with('{'))
    .map_or(Input::Empty, Input::Raw);
    // The client answers with `tool_result.tool_use_id`, so an id is needed even when the
    // server sent none.
    let id = match id.filter(|id| is_string(id) && id.get() != "\"\"") {
        Some(id) => Text::Raw(id),
        None => Text::Owned(format!("toolu_{chat_id}_{i}")),
    };
    Block::ToolUse { id, name: Text::of(function.get("name")), input }
}

/// The fields of a completion the translation reads; the rest is skipped, not built.
#[derive(Deserialize)]
struct Completion<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    model: Option<&'a RawValue>,
    #[serde(default, borrow)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(default, deserialize_with = "crate::dialect::shape")]
    usage: Option<Usage>,
}

#[derive(Deserialize, Default)]
struct Choice<'a> {
    #[serde(default, borrow)]
    message: Option<ChatMessage<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct ChatMessage<'a> {
    #[serde(default, borrow)]
    content: Option<&'a RawValue>,
    #[serde(default, borrow)]
    refusal: Option<&'a RawValue>,
    #[serde(default, borrow)]
    tool_calls: Option<&'a RawValue>,
    #[serde(default, borrow)]
    function_call: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct Message<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: Text<'a>,
    content: Vec<Block<'a>>,
    stop_reason: &'static str,
    stop_sequence: Option<()>,
    usage: AnthropicUsage,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text { text: Text<'a> },
    ToolUse { id: Text<'a>, name: Text<'a>, input: Input },
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
