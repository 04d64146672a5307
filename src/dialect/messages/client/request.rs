//! Anthropic Messages request → OpenAI Chat Completions request.
//!
//! Dropped (logged once): server tools, `thinking` and thinking blocks in history,
//! `cache_control`, and top-level fields Chat has no form for (`context_management`,
//! `container`, `mcp_servers`, `service_tier`, …). Approximated: text blocks are joined into
//! one string; a tool result's images move to the user message after the tool messages.
//! Refused (400): content Chat cannot carry (`document`, file-id images, unknown blocks).

use serde_json::{Map, Value, json};

use crate::dialect::dropped;
use crate::error::ApiError;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("unsupported_for_chat", message)
}

/// Translates a Messages request. `model` is the model to send; `openai` is true when the
/// upstream is OpenAI itself, which rejects fields local servers accept (`top_k`) and wants
/// `max_completion_tokens` instead of the deprecated `max_tokens`.
pub fn to_chat(req: &Value, model: &str, openai: bool) -> Result<Value, ApiError> {
    let req = req.as_object().ok_or_else(|| ApiError::bad_request("invalid_request", "the body must be an object"))?;
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    let mut messages = Vec::new();
    let mut tools = None;
    let mut choice = None;
    let mut max_tokens = None;
    for (key, value) in req {
        // A null is an absent field (SDKs send them); `max_tokens` then stays missing.
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "model" | "messages" => {}
            "system" => {
                let text = system(value)?;
                if !text.is_empty() {
                    messages.push(json!({"role": "system", "content": text}));
                }
            }
            "max_tokens" => max_tokens = value.as_u64(),
            "stop_sequences" => match value {
                Value::Array(list) if !list.is_empty() => {
                    out.insert("stop".into(), value.clone());
                }
                Value::Array(_) => {}
                _ => return Err(bad("`stop_sequences` must be a list of strings")),
            },
            "temperature" | "top_p" => {
                out.insert(key.clone(), value.clone());
            }
            "top_k" => {
                if openai {
                    dropped("top_k", "OpenAI's Chat Completions has no top_k");
                } else {
                    out.insert(key.clone(), value.clone());
                }
            }
            "metadata" => {
                if let Some(user) = value["user_id"].as_str() {
                    out.insert("user".into(), json!(user));
                }
            }
            "stream" => {
                if value == &json!(true) {
                    out.insert("stream".into(), json!(true));
                    // The stream translator needs the usage chunk for `message_delta`.
                    out.insert("stream_options".into(), json!({"include_usage": true}));
                }
            }
            "tools" => tools = Some(self::tools(value)?),
            "tool_choice" => choice = Some(value),
            "thinking" => {
                dropped("thinking", "Chat Completions has no extended-thinking switch every upstream accepts")
            }
            other => dropped(other, "no Chat Completions equivalent"),
        }
    }
    let list = req.get("messages").and_then(Value::as_array).filter(|m| !m.is_empty());
    let list = list.ok_or_else(|| {
        ApiError::bad_request("messages_required", "`messages` is required and must be a non-empty list")
    })?;
    for (i, m) in list.iter().enumerate() {
        message(i, m, &mut messages)?;
    }
    out.insert("messages".into(), Value::Array(messages));
    let max_tokens = max_tokens.ok_or_else(|| {
        ApiError::bad_request("max_tokens_required", "`max_tokens` is required and must be a non-negative integer")
    })?;
    out.insert(if openai { "max_completion_tokens" } else { "max_tokens" }.into(), json!(max_tokens));
    // Only with tools left: OpenAI rejects `tool_choice` and `parallel_tool_calls` without them,
    // and every tool may have been a server tool.
    if let Some(tools) = tools.filter(|t| !t.is_empty()) {
        if let Some(choice) = choice {
            if let Some(c) = tool_choice(choice, &tools)? {
                out.insert("tool_choice".into(), c);
            }
            if choice["disable_parallel_tool_use"] == true {
                out.insert("parallel_tool_calls".into(), json!(false));
            }
        }
        out.insert("tools".into(), Value::Array(tools));
    }
    Ok(Value::Object(out))
}

/// `system`: a string or text blocks, joined into one string.
fn system(value: &Value) -> Result<String, ApiError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Array(blocks) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for b in blocks {
                match (b["type"].as_str(), b["text"].as_str()) {
                    (Some("text"), Some(t)) => texts.push(t),
                    _ => return Err(bad(format!("system: blocks must be text blocks, not {}", b["type"]))),
                }
            }
            Ok(texts.join("\n\n"))
        }
        _ => Err(bad("`system` must be a string or a list of text blocks")),
    }
}

/// Appends the Chat messages for one Messages turn. A user turn's `tool_result` blocks become
/// `tool` messages placed first: Chat wants them right after the assistant message that made
/// the calls, before any other user content.
fn message(i: usize, m: &Value, out: &mut Vec<Value>) -> Result<(), ApiError> {
    let role = m["role"].as_str().unwrap_or_default();
    if role != "user" && role != "assistant" {
        return Err(bad(format!("messages[{i}]: role `{role}` is not supported (use user or assistant)")));
    }
    let blocks = match &m["content"] {
        Value::String(s) => {
            out.push(json!({"role": role, "content": s}));
            return Ok(());
        }
        Value::Array(blocks) => blocks,
        _ => return Err(bad(format!("messages[{i}]: content must be a string or a list of blocks"))),
    };
    let mut parts = Vec::new();
    let mut calls = Vec::new();
    for b in blocks {
        let kind = b["type"].as_str().unwrap_or_default();
        match (role, kind) {
            (_, "text") => parts.push(json!({"type": "text", "text": b["text"].as_str().unwrap_or_default()})),
            ("user", "image") => parts.push(image(i, b)?),
            ("user", "tool_result") => {
                let (content, images) = tool_result(i, b)?;
                out.push(json!({"role": "tool", "tool_call_id": b["tool_use_id"], "content": content}));
                parts.extend(images);
            }
            ("assistant", "tool_use") => {
                // A missing input is an empty object, Anthropic's own default.
                let arguments = if b["input"].is_null() { "{}".to_owned() } else { b["input"].to_string() };
                let function = json!({"name": b["name"], "arguments": arguments});
                calls.push(json!({"id": b["id"], "type": "function", "function": function}));
            }
            (_, "thinking" | "redacted_thinking") => {
                dropped("thinking blocks", "reasoning from earlier turns has no Chat Completions form")
            }
            _ => {
                let kind = if kind.is_empty() { "(missing)" } else { kind };
                return Err(bad(format!(
                    "messages[{i}]: content block type `{kind}` in a {role} message has no Chat Completions equivalent"
                )));
            }
        }
    }
    if role == "assistant" {
        let text = join_texts(&parts);
        let mut msg = json!({"role": "assistant", "content": text});
        if !calls.is_empty() {
            if parts.is_empty() {
                msg["content"] = Value::Null;
            }
            msg["tool_calls"] = Value::Array(calls);
        }
        // An assistant turn that only held thinking stays, as empty text: dropping it would
        // put two user messages in a row, which some chat templates reject.
        out.push(msg);
    } else if parts.iter().all(|p| p["type"] == "text") {
        // Text only: one string, which every server accepts (not all take a list of parts).
        if !parts.is_empty() {
            out.push(json!({"role": "user", "content": join_texts(&parts)}));
        }
    } else {
        out.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

/// The texts of Chat text parts, joined as separate paragraphs.
fn join_texts(parts: &[Value]) -> String {
    parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n\n")
}

/// An `image` block → an `image_url` part (base64 sources as a data URL).
fn image(i: usize, b: &Value) -> Result<Value, ApiError> {
    let source = &b["source"];
    let url = match source["type"].as_str() {
        Some("base64") => {
            let (Some(media), Some(data)) = (source["media_type"].as_str(), source["data"].as_str()) else {
                return Err(bad(format!("messages[{i}]: base64 image needs media_type and data")));
            };
            format!("data:{media};base64,{data}")
        }
        Some("url") => match source["url"].as_str() {
            Some(url) => url.to_owned(),
            None => return Err(bad(format!("messages[{i}]: url image needs a url"))),
        },
        _ => return Err(bad(format!("messages[{i}]: image source type {} is not supported", source["type"]))),
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// A `tool_result` → the `tool` message's text, and its images as parts for the user message
/// that follows (Chat tool messages carry text only; Claude Code's Read tool returns images).
fn tool_result(i: usize, b: &Value) -> Result<(String, Vec<Value>), ApiError> {
    let mut texts = Vec::new();
    let mut images = Vec::new();
    match &b["content"] {
        Value::String(s) => texts.push(s.as_str()),
        Value::Array(blocks) => {
            for c in blocks {
                match c["type"].as_str().unwrap_or_default() {
                    "text" => texts.push(c["text"].as_str().unwrap_or_default()),
                    "image" => images.push(image(i, c)?),
                    other => {
                        return Err(bad(format!(
                            "messages[{i}]: tool_result content block type `{other}` has no Chat Completions equivalent"
                        )));
                    }
                }
            }
        }
        Value::Null => {}
        _ => return Err(bad(format!("messages[{i}]: tool_result content must be a string or a list of blocks"))),
    }
    let mut content = if b["is_error"] == true { "Error: ".to_owned() } else { String::new() };
    content.push_str(&texts.join("\n\n"));
    if !images.is_empty() {
        // Says where the tool's images went, so the model connects them to this call.
        content.push_str(if texts.is_empty() { "(image attached below)" } else { "\n\n(image attached below)" });
    }
    Ok((content, images))
}

/// Custom tools → Chat function tools; server tools (a `type` other than `custom`) run on
/// Anthropic's side only, so they are dropped.
fn tools(value: &Value) -> Result<Vec<Value>, ApiError> {
    let list = value.as_array().ok_or_else(|| bad("`tools` must be a list"))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        match t["type"].as_str() {
            None | Some("custom") => {}
            Some(kind) => {
                dropped(&format!("tool type {kind}"), "a server tool only Anthropic can run");
                continue;
            }
        }
        let name = t["name"].as_str().ok_or_else(|| bad(format!("tools[{i}]: `name` is required")))?;
        let mut parameters = match &t["input_schema"] {
            Value::Object(schema) => schema.clone(),
            _ => Map::from_iter([("type".to_owned(), json!("object")), ("properties".to_owned(), json!({}))]),
        };
        // A draft marker constrains nothing, and some servers' schema converters reject it.
        parameters.remove("$schema");
        let mut function = json!({"name": name, "parameters": parameters});
        if let Some(d) = t["description"].as_str() {
            function["description"] = json!(d);
        }
        out.push(json!({"type": "function", "function": function}));
    }
    Ok(out)
}

/// `tool_choice`; `None` when it leaves the upstream's default. A named tool must be one of
/// the tools sent (not a dropped server tool).
fn tool_choice(choice: &Value, tools: &[Value]) -> Result<Option<Value>, ApiError> {
    Ok(Some(match choice["type"].as_str() {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let name = choice["name"].as_str().unwrap_or_default();
            if !tools.iter().any(|t| t["function"]["name"] == name) {
                return Err(bad(format!("tool_choice names `{name}`, which is not a custom tool of this request")));
            }
            json!({"type": "function", "function": {"name": name}})
        }
        None => return Ok(None),
        Some(other) => return Err(bad(format!("tool_choice type `{other}` is not supported"))),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dialects/messages").join(name);
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn err(req: Value) -> String {
        to_chat(&req, "m", false).unwrap_err().message
    }

    #[test]
    fn claude_code_request() {
        let got = to_chat(&fixture("claude-code-request.json"), "qwen3-coder", false).unwrap();
        let want = json!({
            "model": "qwen3-coder",
            "messages": [
                {"role": "system", "content": "You are Claude Code, Anthropic's official CLI for Claude.\n\nYou are an interactive CLI tool that helps users with software engineering tasks."},
                {"role": "user", "content": "<system-reminder>\nAs you answer the user's questions, you can use the following context.\n</system-reminder>\n\nWhat is in src/main.rs? Also describe these screenshots."},
                {"role": "assistant", "content": "I'll read the file first.", "tool_calls": [
                    {"id": "toolu_01A", "type": "function", "function": {"name": "Read", "arguments": "{\"file_path\":\"/repo/src/main.rs\"}"}},
                    {"id": "toolu_01B", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"ls /nope\",\"description\":\"List\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "toolu_01A", "content": "1\tfn main() {\n2\t    println!(\"hi\");\n3\t}"},
                {"role": "tool", "tool_call_id": "toolu_01B", "content": "Error: ls: cannot access '/nope': No such file or directory"},
                {"role": "user", "content": [
                    {"type": "text", "text": "Here they are:"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/screenshot.jpg"}}
                ]},
                {"role": "assistant", "content": ""},
                {"role": "user", "content": "Go on."}
            ],
            "tools": [
                {"type": "function", "function": {
                    "name": "Read",
                    "description": "Reads a file from the local filesystem.",
                    "parameters": {"type": "object", "properties": {"file_path": {"type": "string", "description": "The absolute path to the file to read"}}, "required": ["file_path"], "additionalProperties": false}
                }},
                {"type": "function", "function": {
                    "name": "Bash",
                    "description": "Executes a given bash command.",
                    "parameters": {"type": "object", "properties": {"command": {"type": "string"}, "description": {"type": "string"}}, "required": ["command"], "additionalProperties": false}
                }}
            ],
            "tool_choice": "auto",
            "parallel_tool_calls": false,
            "max_tokens": 32000,
            "temperature": 1,
            "top_k": 40,
            "user": "user_abc123_account__session_42",
            "stream": true,
            "stream_options": {"include_usage": true}
        });
        assert_eq!(got, want, "got {}", serde_json::to_string_pretty(&got).unwrap());
    }

    #[test]
    fn openai_gets_max_completion_tokens_and_no_top_k() {
        let got = to_chat(&fixture("claude-code-request.json"), "gpt-4.1", true).unwrap();
        assert_eq!(got["max_completion_tokens"], 32000);
        assert!(got.get("max_tokens").is_none());
        assert!(got.get("top_k").is_none());
    }

    #[test]
    fn minimal_request_and_tool_choice_forms() {
        let base = json!({"max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(
            to_chat(&base, "m", false).unwrap(),
            json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
        );
        let tool = json!({"name": "f", "input_schema": {"type": "object"}});
        let with = |choice: Value| {
            let mut r = base.clone();
            r["tools"] = json!([tool]);
            r["tool_choice"] = choice;
            to_chat(&r, "m", false).unwrap()
        };
        assert_eq!(with(json!({"type": "any"}))["tool_choice"], "required");
        assert_eq!(with(json!({"type": "none"}))["tool_choice"], "none");
        assert_eq!(with(json!({"type": "auto"}))["tool_choice"], "auto");
        assert_eq!(
            with(json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true})),
            json!({
                "model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
                "tool_choice": {"type": "function", "function": {"name": "f"}},
                "parallel_tool_calls": false
            })
        );
    }

    #[test]
    fn server_tools_are_dropped_with_their_choice() {
        let req = json!({
            "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
                      {"type": "bash_20250124", "name": "bash"}],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "context_management": {}, "container": "c", "mcp_servers": [], "service_tier": "auto"
        });
        let got = to_chat(&req, "m", true).unwrap();
        assert_eq!(
            got,
            json!({"model": "m", "max_completion_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
        );
        let mut named = req.clone();
        named["tools"] =
            json!([{"type": "custom", "name": "f"}, {"type": "web_search_20250305", "name": "web_search"}]);
        named["tool_choice"] = json!({"type": "tool", "name": "web_search"});
        assert!(to_chat(&named, "m", false).unwrap_err().message.contains("`web_search`"));
    }

    #[test]
    fn tool_result_images_follow_the_tool_message() {
        let req = json!({"max_tokens": 10, "messages": [
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
                {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}]}
        ]});
        assert_eq!(
            to_chat(&req, "m", false).unwrap()["messages"],
            json!([
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "Read", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "t1", "content": "(image attached below)"},
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}
            ])
        );
    }

    #[test]
    fn invalid_requests_are_refused() {
        let m = json!([{"role": "user", "content": "hi"}]);
        assert!(err(json!({"max_tokens": 1})).contains("`messages` is required"));
        assert!(err(json!({"max_tokens": 1, "messages": []})).contains("`messages` is required"));
        assert!(err(json!({"messages": m})).contains("`max_tokens`"));
        assert!(err(json!({"messages": m, "max_tokens": "10"})).contains("`max_tokens`"));
        let doc = json!([{"role": "user", "content": [{"type": "document", "source": {"type": "text", "data": "x"}}]}]);
        assert!(err(json!({"max_tokens": 1, "messages": doc})).contains("`document`"));
        let odd = json!([{"role": "user", "content": [{"text": "no type"}]}]);
        assert!(err(json!({"max_tokens": 1, "messages": odd})).contains("`(missing)`"));
        let file =
            json!([{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]);
        assert!(err(json!({"max_tokens": 1, "messages": file})).contains("\"file\""));
        assert!(err(json!({"max_tokens": 1, "messages": [{"role": "system", "content": "x"}]})).contains("role"));
        assert!(err(json!([])).contains("object"));
    }
}
