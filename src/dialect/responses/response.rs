//! `chat.completion` → Response object; what a Response repeats from its request.

use std::io::Write as _;

use serde::Deserialize;
use serde_json::{Map, Value, json};

/// What a Response object repeats from the request that asked for it.
#[derive(Debug, Clone)]
pub struct Echo {
    /// The model the client asked for: the Response's `model` when the upstream names none.
    pub model: Value,
    pub instructions: Value,
    /// As the client sent them, hosted tools included.
    pub tools: Value,
    pub tool_choice: Value,
    pub parallel_tool_calls: Value,
    pub temperature: Value,
    pub top_p: Value,
    pub max_output_tokens: Value,
    pub metadata: Value,
}

/// What a request that set none of the fields gets (`tools: []`, `tool_choice: "auto"`, …).
impl Default for Echo {
    fn default() -> Self {
        Echo::from_request(&Value::Null)
    }
}

impl Echo {
    pub fn from_request(req: &Value) -> Echo {
        let or = |key: &str, default: Value| match &req[key] {
            Value::Null => default,
            v => v.clone(),
        };
        Echo {
            model: req["model"].clone(),
            instructions: req["instructions"].clone(),
            tools: or("tools", json!([])),
            tool_choice: or("tool_choice", json!("auto")),
            parallel_tool_calls: or("parallel_tool_calls", json!(true)),
            temperature: req["temperature"].clone(),
            top_p: req["top_p"].clone(),
            max_output_tokens: req["max_output_tokens"].clone(),
            metadata: or("metadata", json!({})),
        }
    }

    /// The echoed fields of a Response object, with `store: false` (nothing is stored).
    pub(super) fn fields(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("instructions".into(), self.instructions.clone());
        m.insert("max_output_tokens".into(), self.max_output_tokens.clone());
        m.insert("metadata".into(), self.metadata.clone());
        m.insert("parallel_tool_calls".into(), self.parallel_tool_calls.clone());
        m.insert("store".into(), json!(false));
        m.insert("temperature".into(), self.temperature.clone());
        m.insert("tool_choice".into(), self.tool_choice.clone());
        m.insert("tools".into(), self.tools.clone());
        m.insert("top_p".into(), self.top_p.clone());
        m
    }
}

/// Chat usage, as both a complete response and the stream's usage chunk carry it.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(super) struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    total_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl Usage {
    pub(super) fn input(&self) -> u64 {
        self.prompt_tokens.unwrap_or(0)
    }

    pub(super) fn output(&self) -> u64 {
        self.completion_tokens.unwrap_or(0)
    }

    /// Appends the Responses usage object.
    pub(super) fn write(&self, out: &mut Vec<u8>) {
        let cached = self.prompt_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0);
        let reasoning = self.completion_tokens_details.and_then(|d| d.reasoning_tokens).unwrap_or(0);
        let total = self.total_tokens.unwrap_or(self.input().saturating_add(self.output()));
        let _ = write!(
            out,
            concat!(
                r#"{{"input_tokens":{},"input_tokens_details":{{"cached_tokens":{}}},"#,
                r#""output_tokens":{},"output_tokens_details":{{"reasoning_tokens":{}}},"total_tokens":{}}}"#,
            ),
            self.input(),
            cached,
            self.output(),
            reasoning,
            total,
        );
    }
}

/// Why a response stopped short, from a Chat `finish_reason`: the Responses
/// `incomplete_details.reason`, or None when it completed.
pub(super) fn incomplete_reason(finish_reason: &str) -> Option<&'static str> {
    match finish_reason {
        "length" => Some("max_output_tokens"),
        "content_filter" => Some("content_filter"),
        _ => None,
    }
}

/// A random id suffix (hex): Response and item ids must not repeat across responses, and Chat
/// ids cannot be trusted for that (Ollama's are `chatcmpl-` and three digits).
pub(super) fn new_id_base() -> String {
    let mut hex = crate::request_id::unique_hex();
    hex.truncate(24);
    hex
}

/// A `chat.completion` → a Response object.
pub fn from_chat(chat: &Value, echo: &Echo) -> Value {
    build(chat, echo, &new_id_base())
}

fn build(chat: &Value, echo: &Echo, base: &str) -> Value {
    let choice = &chat["choices"][0];
    let message = &choice["message"];
    let reason = incomplete_reason(choice["finish_reason"].as_str().unwrap_or_default());
    let mut output = Vec::new();
    let text = match &message["content"] {
        Value::String(s) => s.clone(),
        // Some servers answer with a list of text parts.
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    };
    if !text.is_empty() {
        output.push(json!({
            "type": "message",
            "id": format!("msg_{base}_{}", output.len()),
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }));
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        let arguments = match &call["function"]["arguments"] {
            Value::String(s) => json!(s),
            Value::Null => json!(""),
            other => json!(other.to_string()),
        };
        output.push(json!({
            "type": "function_call",
            "id": format!("fc_{base}_{}", output.len()),
            "call_id": call["id"],
            "name": call["function"]["name"],
            "arguments": arguments,
            "status": "completed",
        }));
    }
    // Only the last item was cut short.
    if let (Some(_), Some(last)) = (reason, output.last_mut()) {
        last["status"] = json!("incomplete");
    }
    let usage = match Usage::deserialize(&chat["usage"]) {
        Ok(u) if chat["usage"].is_object() => {
            let mut bytes = Vec::new();
            u.write(&mut bytes);
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        }
        _ => Value::Null,
    };
    let model = match &chat["model"] {
        Value::String(m) if !m.is_empty() => json!(m),
        _ => echo.model.clone(),
    };
    let mut resp = echo.fields();
    resp.extend([
        ("id".into(), json!(format!("resp_{base}"))),
        ("object".into(), json!("response")),
        ("created_at".into(), json!(chat["created"].as_u64().unwrap_or_else(crate::dialect::now))),
        ("status".into(), json!(if reason.is_some() { "incomplete" } else { "completed" })),
        ("error".into(), Value::Null),
        ("incomplete_details".into(), reason.map_or(Value::Null, |r| json!({"reason": r}))),
        ("model".into(), model),
        ("output".into(), Value::Array(output)),
        ("usage".into(), usage),
    ]);
    Value::Object(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dialects/responses").join(name);
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn echo() -> Echo {
        Echo::from_request(&json!({
            "model": "qwen3", "instructions": "Be brief.", "input": "hi",
            "tools": [{"type": "function", "name": "get_weather"}, {"type": "web_search"}],
            "temperature": 0.2, "metadata": {"k": "v"}
        }))
    }

    #[test]
    fn text_response() {
        let got = build(&fixture("chat-completion-text.json"), &echo(), "t");
        assert_eq!(
            got,
            json!({
                "id": "resp_t", "object": "response", "created_at": 1_750_000_000u64, "status": "completed",
                "error": null, "incomplete_details": null, "model": "qwen3-coder-30b",
                "output": [{"type": "message", "id": "msg_t_0", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": "Hello! How can I help?", "annotations": []}]}],
                "usage": {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 7,
                    "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 19},
                "instructions": "Be brief.", "max_output_tokens": null, "metadata": {"k": "v"},
                "parallel_tool_calls": true, "store": false, "temperature": 0.2, "tool_choice": "auto",
                "tools": [{"type": "function", "name": "get_weather"}, {"type": "web_search"}], "top_p": null
            })
        );
    }

    #[test]
    fn tool_calls_follow_the_text() {
        let got = build(&fixture("chat-completion-tools.json"), &echo(), "t");
        assert_eq!(got["status"], "completed");
        assert_eq!(
            got["output"],
            json!([
                {"type": "message", "id": "msg_t_0", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": "Checking both.", "annotations": []}]},
                {"type": "function_call", "id": "fc_t_1", "call_id": "call_1", "name": "get_weather",
                    "arguments": "{\"city\":\"Paris\"}", "status": "completed"},
                {"type": "function_call", "id": "fc_t_2", "call_id": "call_2", "name": "get_weather",
                    "arguments": "{\"city\":\"Tokyo\"}", "status": "completed"}
            ])
        );
        assert_eq!(got["usage"]["output_tokens_details"]["reasoning_tokens"], 5);
    }

    #[test]
    fn length_is_incomplete() {
        let got = build(&fixture("chat-completion-length.json"), &Echo::from_request(&json!({"model": "asked"})), "t");
        assert_eq!(got["status"], "incomplete");
        assert_eq!(got["incomplete_details"], json!({"reason": "max_output_tokens"}));
        assert_eq!(got["output"][0]["status"], "incomplete");
        assert_eq!(got["output"][0]["content"][0]["text"], "The answer is long and");
        assert_eq!(got["model"], "asked", "the upstream named no model");
        assert_eq!(got["usage"], Value::Null);
    }

    #[test]
    fn ids_are_random_per_response() {
        let chat = fixture("chat-completion-text.json");
        let (a, b) = (from_chat(&chat, &echo()), from_chat(&chat, &echo()));
        assert_ne!(a["id"], b["id"]);
        assert!(a["id"].as_str().unwrap().starts_with("resp_"));
    }
}
