//! Responses request → Chat Completions request.

use serde_json::{Map, Value, json};

use crate::dialect::dropped;
use crate::error::ApiError;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("unsupported_for_chat_upstream", message)
}

fn stateless(what: &str) -> ApiError {
    ApiError::bad_request(
        "stateless_gateway",
        format!(
            "{what} needs server-side state, but this gateway is stateless and its upstream has no Responses API: \
             resend the whole conversation in `input` with `store: false`"
        ),
    )
}

/// Fields with no Chat equivalent that clients send on every turn: dropped, logged once.
const IGNORED: &[&str] = &[
    "include",
    "prompt_cache_key",
    "prompt_cache_retention",
    "metadata",
    "truncation",
    "service_tier",
    "stream_options",
    "top_logprobs",
    "max_tool_calls",
    "client_metadata",
];

/// Hosted and special tool types, named in the drop log. Other types are logged under one
/// name: the set of logged names must not grow with what clients send.
const TOOL_TYPES: &[&str] = &[
    "web_search",
    "web_search_preview",
    "file_search",
    "code_interpreter",
    "computer_use_preview",
    "image_generation",
    "local_shell",
    "mcp",
    "custom",
    "namespace",
];

/// Translates a Responses request; `model` is the model to send, `openai` whether the upstream
/// is OpenAI itself (which takes `max_completion_tokens` and `reasoning_effort`).
pub fn to_chat(req: &Value, model: &str, openai: bool) -> Result<Value, ApiError> {
    let req = req.as_object().ok_or_else(|| bad("the request body must be a JSON object"))?;
    refuse_stateful(req)?;
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    let mut messages = Vec::new();
    if let Some(text) = req.get("instructions").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        messages.push(json!({"role": "system", "content": text}));
    }
    match req.get("input") {
        Some(Value::String(s)) if !s.is_empty() => messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                input_item(i, item, &mut messages)?;
            }
        }
        _ => return Err(ApiError::bad_request("input_required", "`input` is required: a string or a list of items")),
    }
    if !messages.iter().any(|m| m["role"] != "system") {
        return Err(ApiError::bad_request("input_required", "`input` has no message besides system ones"));
    }
    out.insert("messages".into(), Value::Array(messages));

    let tools = tools(req.get("tools"))?;
    let has_tools = !tools.is_empty();
    if has_tools {
        out.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = req.get("tool_choice").filter(|v| !v.is_null()) {
            out.insert("tool_choice".into(), tool_choice(choice));
        }
        if let Some(p) = req.get("parallel_tool_calls").filter(|v| v.is_boolean()) {
            out.insert("parallel_tool_calls".into(), p.clone());
        }
    }
    for (key, value) in req {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "model" | "input" | "instructions" | "tools" | "tool_choice" | "parallel_tool_calls" => {}
            "store" | "previous_response_id" | "background" | "conversation" => {} // refused above when set
            "max_output_tokens" => {
                let name = if openai { "max_completion_tokens" } else { "max_tokens" };
                out.insert(name.into(), value.clone());
            }
            "temperature" | "top_p" => {
                out.insert(key.clone(), value.clone());
            }
            "user" => {
                out.insert("user".into(), value.clone());
            }
            "safety_identifier" => {
                out.entry("user").or_insert_with(|| value.clone());
            }
            "text" => text(value, &mut out),
            "reasoning" => match value["effort"].as_str() {
                Some(effort) if openai => {
                    out.insert("reasoning_effort".into(), json!(effort));
                }
                _ => dropped("reasoning", "the upstream is not OpenAI: no portable reasoning setting"),
            },
            "stream" => {
                if value == true {
                    out.insert("stream".into(), json!(true));
                    out.insert("stream_options".into(), json!({"include_usage": true}));
                }
            }
            "prompt" => {
                return Err(bad("`prompt` (a stored prompt template) is not available: send the text in `input`"));
            }
            other => match IGNORED.iter().find(|&&f| f == other) {
                Some(f) => dropped(f, "no Chat Completions equivalent"),
                None => {
                    tracing::debug!(field = other, "responses: unknown field dropped");
                    dropped("(unknown Responses fields)", "not part of the translation; see debug logs for names");
                }
            },
        }
    }
    Ok(Value::Object(out))
}

/// Refuses what only a stateful Responses server could do.
fn refuse_stateful(req: &Map<String, Value>) -> Result<(), ApiError> {
    let set = |k: &str| req.get(k).is_some_and(|v| !v.is_null());
    if set("previous_response_id") {
        return Err(stateless("`previous_response_id`"));
    }
    if set("conversation") {
        return Err(stateless("`conversation`"));
    }
    if req.get("store") == Some(&Value::Bool(true)) {
        return Err(stateless("`store: true`"));
    }
    if req.get("background") == Some(&Value::Bool(true)) {
        return Err(stateless("`background: true`"));
    }
    Ok(())
}

/// Appends one input item as Chat messages.
fn input_item(i: usize, item: &Value, messages: &mut Vec<Value>) -> Result<(), ApiError> {
    // Easy input messages (`{role, content}`) may leave out `type`.
    let kind = item["type"].as_str().unwrap_or("message");
    match kind {
        "message" => {
            let role = match item["role"].as_str().unwrap_or_default() {
                "system" | "developer" => "system",
                "user" => "user",
                "assistant" => "assistant",
                other => return Err(bad(format!("input[{i}]: role `{other}` is not supported"))),
            };
            messages.push(json!({"role": role, "content": content(i, &item["content"])?}));
        }
        "function_call" | "custom_tool_call" => {
            // Custom tool calls carry `input` instead of `arguments`.
            let raw = if item["arguments"].is_null() { &item["input"] } else { &item["arguments"] };
            let arguments = match raw {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            let call = json!({
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": arguments},
            });
            // Calls right after an assistant turn belong to it: chat templates expect one
            // assistant message holding the text and all its parallel calls.
            match messages.last_mut() {
                Some(m) if m["role"] == "assistant" => match m.get_mut("tool_calls").and_then(Value::as_array_mut) {
                    Some(calls) => calls.push(call),
                    None => m["tool_calls"] = json!([call]),
                },
                _ => messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
            }
        }
        "function_call_output" | "custom_tool_call_output" => {
            let output = match &item["output"] {
                Value::String(s) => s.clone(),
                Value::Array(parts) => text_parts(i, parts)?,
                _ => return Err(bad(format!("input[{i}]: `output` must be a string or a list of input_text parts"))),
            };
            messages.push(json!({"role": "tool", "tool_call_id": item["call_id"], "content": output}));
        }
        "reasoning" => dropped("input[type=reasoning]", "Chat upstreams take no reasoning items"),
        "item_reference" => dropped("input[type=item_reference]", "the gateway stores no items to refer to"),
        "web_search_call" => dropped("input[type=web_search_call]", "hosted tools are not available"),
        other => return Err(bad(format!("input[{i}]: item type `{other}` is not supported by the Chat translation"))),
    }
    Ok(())
}

/// Message content → Chat content: a string when it is all text (what every Chat server
/// takes, for every role), else a list of text and image parts.
fn content(i: usize, content: &Value) -> Result<Value, ApiError> {
    let parts = match content {
        Value::String(s) => return Ok(json!(s)),
        Value::Array(parts) => parts,
        _ => return Err(bad(format!("input[{i}]: `content` must be a string or a list of parts"))),
    };
    if parts.iter().all(|p| text_of(p).is_some()) {
        return Ok(json!(text_parts(i, parts)?));
    }
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        if let Some(text) = text_of(part) {
            out.push(json!({"type": "text", "text": text}));
            continue;
        }
        let kind = part["type"].as_str().unwrap_or_default();
        match (kind, part["image_url"].as_str()) {
            ("input_image", Some(url)) => {
                let mut image = json!({"url": url});
                if let Some(detail) = part["detail"].as_str() {
                    image["detail"] = json!(detail);
                }
                out.push(json!({"type": "image_url", "image_url": image}));
            }
            ("input_image", None) => {
                return Err(bad(format!(
                    "input[{i}]: input_image by `file_id` is not supported: the upstream has no Files API; \
                     send `image_url`"
                )));
            }
            _ => {
                return Err(bad(format!("input[{i}]: content part `{kind}` is not supported by the Chat translation")));
            }
        }
    }
    Ok(Value::Array(out))
}

/// The text of a text part (`input_text`, `output_text`, `refusal`).
fn text_of(part: &Value) -> Option<&str> {
    match part["type"].as_str()? {
        "input_text" | "output_text" | "text" => part["text"].as_str(),
        "refusal" => part["refusal"].as_str(),
        _ => None,
    }
}

/// Text parts joined with newlines; any other part is refused.
fn text_parts(i: usize, parts: &[Value]) -> Result<String, ApiError> {
    let mut text = String::new();
    for (n, part) in parts.iter().enumerate() {
        let t = text_of(part).ok_or_else(|| {
            let kind = part["type"].as_str().unwrap_or_default();
            bad(format!("input[{i}]: content part `{kind}` is not supported here (text only)"))
        })?;
        if n > 0 {
            text.push('\n');
        }
        text.push_str(t);
    }
    Ok(text)
}

/// Function tools → Chat tools; other types (hosted, custom, namespaces) are dropped.
fn tools(value: Option<&Value>) -> Result<Vec<Value>, ApiError> {
    let list = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(bad("`tools` must be a list")),
    };
    let mut out = Vec::with_capacity(list.len());
    for t in list {
        let kind = t["type"].as_str().unwrap_or_default();
        if kind != "function" {
            let field = match TOOL_TYPES.iter().find(|&&k| k == kind) {
                Some(k) => format!("tools[type={k}]"),
                None => "tools[type=other]".to_owned(),
            };
            dropped(&field, "only function tools can be served by a Chat upstream");
            continue;
        }
        let mut function = Map::new();
        for key in ["name", "description", "parameters", "strict"] {
            if let Some(v) = t.get(key).filter(|v| !v.is_null()) {
                function.insert(key.into(), v.clone());
            }
        }
        out.push(json!({"type": "function", "function": function}));
    }
    Ok(out)
}

fn tool_choice(value: &Value) -> Value {
    match value {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => value.clone(),
        Value::Object(o) if o.get("type") == Some(&json!("function")) => {
            json!({"type": "function", "function": {"name": value["name"]}})
        }
        _ => {
            dropped("tool_choice (non-function)", "only auto/none/required/function map to Chat; using auto");
            json!("auto")
        }
    }
}

/// `text.format` → `response_format`; `text.verbosity` is dropped.
fn text(value: &Value, out: &mut Map<String, Value>) {
    let format = &value["format"];
    match format["type"].as_str() {
        Some("json_schema") => {
            let mut schema = Map::new();
            for key in ["name", "description", "schema", "strict"] {
                if let Some(v) = format.get(key).filter(|v| !v.is_null()) {
                    schema.insert(key.into(), v.clone());
                }
            }
            out.insert("response_format".into(), json!({"type": "json_schema", "json_schema": schema}));
        }
        Some("json_object") => {
            out.insert("response_format".into(), json!({"type": "json_object"}));
        }
        _ => {}
    }
    if value.get("verbosity").is_some_and(|v| !v.is_null()) {
        dropped("text.verbosity", "no Chat Completions equivalent");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dialects/responses").join(name);
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn err(body: Value) -> ApiError {
        to_chat(&body, "m", false).unwrap_err()
    }

    #[test]
    fn codex_turn() {
        let got = to_chat(&fixture("codex-request.json"), "qwen3-coder", false).unwrap();
        assert_eq!(got, fixture("codex-request.chat.json"));
    }

    #[test]
    fn codex_turn_for_openai() {
        let got = to_chat(&fixture("codex-request.json"), "gpt-5", true).unwrap();
        assert_eq!(got["reasoning_effort"], "medium");
        assert_eq!(got["max_completion_tokens"], 8000);
        assert!(got.get("max_tokens").is_none());
    }

    #[test]
    fn string_input_and_options() {
        let got = to_chat(
            &json!({
                "model": "x", "input": "Hello", "instructions": "Be brief.", "max_output_tokens": 50,
                "temperature": 0.2, "top_p": 0.9, "safety_identifier": "u-1", "tool_choice": "required",
                "text": {"format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}, "strict": true}},
                "store": false, "previous_response_id": null
            }),
            "local",
            false,
        )
        .unwrap();
        assert_eq!(
            got,
            json!({
                "model": "local",
                "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
                "max_tokens": 50, "temperature": 0.2, "top_p": 0.9, "user": "u-1",
                "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": true}}
            })
        );
        let got = to_chat(&json!({"input": "x", "text": {"format": {"type": "json_object"}}}), "m", false).unwrap();
        assert_eq!(got["response_format"], json!({"type": "json_object"}));
    }

    #[test]
    fn images_tool_choice_and_outputs_as_parts() {
        let got = to_chat(
            &json!({
                "input": [
                    {"role": "user", "content": [{"type": "input_text", "text": "What is this?"},
                        {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}]},
                    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                    {"type": "function_call_output", "call_id": "c1", "output": [
                        {"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]}
                ],
                "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
                "tool_choice": {"type": "function", "name": "f"}
            }),
            "m",
            false,
        )
        .unwrap();
        assert_eq!(
            got["messages"],
            json!([
                {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "a\nb"}
            ])
        );
        assert_eq!(got["tool_choice"], json!({"type": "function", "function": {"name": "f"}}));
        let allowed = json!({"type": "allowed_tools", "mode": "auto", "tools": []});
        assert_eq!(tool_choice(&allowed), json!("auto"));
    }

    #[test]
    fn stateful_requests_are_refused() {
        for body in [
            json!({"input": "x", "previous_response_id": "resp_1"}),
            json!({"input": "x", "store": true}),
            json!({"input": "x", "background": true}),
            json!({"input": "x", "conversation": "conv_1"}),
        ] {
            let e = err(body.clone());
            assert_eq!((e.status.as_u16(), e.code), (400, "stateless_gateway"), "{body}");
            assert!(e.message.contains("store: false"), "{}", e.message);
        }
    }

    #[test]
    fn what_cannot_be_translated_is_refused() {
        let e = err(json!({"input": []}));
        assert_eq!(e.code, "input_required");
        assert_eq!(err(json!({"model": "x"})).code, "input_required");
        assert_eq!(err(json!({"input": ""})).code, "input_required");
        assert_eq!(err(json!({"input": [{"role": "developer", "content": "only"}]})).code, "input_required");
        let file = json!({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]});
        assert!(err(file).message.contains("`input_file`"));
        let image = json!({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]});
        assert!(err(image).message.contains("file_id"));
        assert!(err(json!({"input": [{"type": "computer_call"}]})).message.contains("`computer_call`"));
        assert!(err(json!({"input": "x", "prompt": {"id": "p"}})).message.contains("prompt"));
        assert!(err(json!({"input": "x", "tools": {}})).message.contains("list"));
    }
}
