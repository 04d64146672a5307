//! OpenAI chat-completions request → Anthropic Messages API request.

use serde_json::{Map, Value, json};
use tracing::debug;

use crate::error::ApiError;

/// `max_tokens` when the client sets neither `max_tokens` nor `max_completion_tokens`
/// (the Go gateway's fixed default; Anthropic requires the field).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// What the response side needs to remember about the request.
#[derive(Debug, Clone, Default)]
pub struct Asked {
    pub stream: bool,
    pub include_usage: bool,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("unsupported_for_anthropic", message)
}

/// Translates the client's body; `model` is the model to send.
pub fn translate(body: &[u8], model: &str) -> Result<(Vec<u8>, Asked), ApiError> {
    let req: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid JSON in request body: {e}")))?;
    let asked = Asked { stream: req["stream"] == true, include_usage: req["stream_options"]["include_usage"] == true };
    Ok((from_chat(&req, model, &asked)?, asked))
}

/// A Chat request (the client's, or the hub form of another dialect's) as Anthropic's body;
/// `asked.stream` decides whether to stream.
pub fn from_chat(chat: &Value, model: &str, asked: &Asked) -> Result<Vec<u8>, ApiError> {
    let req =
        chat.as_object().ok_or_else(|| ApiError::bad_request("invalid_json", "request body must be a JSON object"))?;
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<(String, Vec<Value>)> = Vec::new();
    let mut max_tokens = None;
    for (key, value) in req {
        match key.as_str() {
            "model" => {}
            "messages" => {
                let messages = value.as_array().ok_or_else(|| bad("`messages` must be an array"))?;
                for (i, m) in messages.iter().enumerate() {
                    message(i, m, &mut system, &mut turns)?;
                }
            }
            "max_completion_tokens" => max_tokens = value.as_u64().or(max_tokens),
            "max_tokens" => max_tokens = max_tokens.or(value.as_u64()),
            "temperature" | "top_p" if !value.is_null() => {
                out.insert(key.clone(), value.clone());
            }
            "stop" => {
                let list = match value {
                    Value::String(s) => vec![json!(s)],
                    Value::Array(a) => a.clone(),
                    Value::Null => Vec::new(),
                    _ => return Err(bad("`stop` must be a string or a list of strings")),
                };
                if !list.is_empty() {
                    out.insert("stop_sequences".into(), Value::Array(list));
                }
            }
            "user" if value.is_string() => {
                out.insert("metadata".into(), json!({"user_id": value}));
            }
            "stream" | "stream_options" => {}
            "tools" if !value.is_null() => {
                out.insert("tools".into(), tools(value)?);
            }
            "tool_choice" if !value.is_null() => {
                out.insert("tool_choice".into(), tool_choice(value)?);
            }
            "parallel_tool_calls" => {}
            "n" if value.as_u64().is_some_and(|n| n > 1) => {
                return Err(bad("`n` > 1 is not supported by Anthropic: it returns one choice"));
            }
            "logprobs" if value == &json!(true) => return Err(bad("`logprobs` is not supported by Anthropic")),
            "top_logprobs" if !value.is_null() => return Err(bad("`top_logprobs` is not supported by Anthropic")),
            "response_format" if value["type"] != "text" && !value.is_null() => {
                return Err(bad(
                    "`response_format` (JSON mode / structured output) is not supported by the Anthropic translation",
                ));
            }
            "audio" | "modalities" if value.to_string().contains("audio") => {
                return Err(bad("audio output is not supported by Anthropic"));
            }
            other => debug!(field = other, "dropped: no Anthropic equivalent"),
        }
    }
    if req.get("parallel_tool_calls") == Some(&json!(false)) && out.contains_key("tools") {
        let choice = out.entry("tool_choice").or_insert_with(|| json!({"type": "auto"}));
        if let Some(obj) = choice.as_object_mut()
            && obj.get("type").and_then(Value::as_str) != Some("none")
        {
            obj.insert("disable_parallel_tool_use".into(), json!(true));
        }
    }
    if !system.is_empty() {
        out.insert("system".into(), json!(system.join("\n\n")));
    }
    let messages: Vec<Value> =
        turns.into_iter().map(|(role, content)| json!({"role": role, "content": content})).collect();
    if messages.is_empty() {
        return Err(ApiError::bad_request("messages_required", "messages is required (besides system messages)"));
    }
    out.insert("messages".into(), Value::Array(messages));
    out.insert("max_tokens".into(), json!(max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)));
    if asked.stream {
        out.insert("stream".into(), json!(true));
    }
    Ok(serde_json::to_vec(&Value::Object(out)).unwrap_or_default())
}

/// Adds one OpenAI message: system text, or content blocks appended to the turn of its
/// role (consecutive same-role messages merge into one turn, as Anthropic requires).
fn message(
    i: usize,
    m: &Value,
    system: &mut Vec<String>,
    turns: &mut Vec<(String, Vec<Value>)>,
) -> Result<(), ApiError> {
    let role = m["role"].as_str().unwrap_or_default();
    let (turn_role, blocks) = match role {
        "system" | "developer" => {
            let text =
                text_of(&m["content"]).ok_or_else(|| bad(format!("messages[{i}]: system content must be text")))?;
            system.push(text);
            return Ok(());
        }
        "user" => ("user", content_blocks(i, &m["content"])?),
        "assistant" => {
            let mut blocks = content_blocks(i, &m["content"])?;
            for call in m["tool_calls"].as_array().into_iter().flatten() {
                let args = call["function"]["arguments"].as_str().unwrap_or("{}");
                let input: Value = if args.trim().is_empty() {
                    json!({})
                } else {
                    serde_json::from_str(args)
                        .map_err(|_| bad(format!("messages[{i}]: tool call arguments are not JSON")))?
                };
                blocks.push(json!({
                    "type": "tool_use",
                    "id": call["id"],
                    "name": call["function"]["name"],
                    "input": input,
                }));
            }
            ("assistant", blocks)
        }
        "tool" => {
            let content = match &m["content"] {
                Value::String(s) => json!(s),
                other => Value::Array(content_blocks(i, other)?),
            };
            let result = json!({"type": "tool_result", "tool_use_id": m["tool_call_id"], "content": content});
            ("user", vec![result])
        }
        other => return Err(bad(format!("messages[{i}]: role `{other}` is not supported by Anthropic"))),
    };
    if blocks.is_empty() {
        return Ok(());
    }
    match turns.last_mut() {
        Some((last, content)) if last == turn_role => content.extend(blocks),
        _ => turns.push((turn_role.to_owned(), blocks)),
    }
    Ok(())
}

/// String content or text parts joined with newlines.
fn text_of(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n")),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// OpenAI content → Anthropic blocks: text, and images (data URLs as base64, http(s) as url).
/// Empty text is left out (Anthropic rejects empty text blocks).
fn content_blocks(i: usize, content: &Value) -> Result<Vec<Value>, ApiError> {
    let parts = match content {
        Value::Null => return Ok(Vec::new()),
        Value::String(s) if s.is_empty() => return Ok(Vec::new()),
        Value::String(s) => return Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(parts) => parts,
        _ => return Err(bad(format!("messages[{i}]: content must be a string or a list of parts"))),
    };
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        match part["type"].as_str().unwrap_or_default() {
            "text" => {
                let text = part["text"].as_str().unwrap_or_default();
                if !text.is_empty() {
                    out.push(json!({"type": "text", "text": text}));
                }
            }
            "image_url" => {
                let url = part["image_url"]["url"].as_str().or(part["image_url"].as_str()).unwrap_or_default();
                out.push(image(i, url)?);
            }
            other => {
                return Err(bad(format!("messages[{i}]: content part `{other}` is not supported by Anthropic")));
            }
        }
    }
    Ok(out)
}

fn image(i: usize, url: &str) -> Result<Value, ApiError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',').ok_or_else(|| bad(format!("messages[{i}]: malformed data URL")))?;
        let media_type = meta
            .strip_suffix(";base64")
            .ok_or_else(|| bad(format!("messages[{i}]: image data URLs must be base64")))?;
        return Ok(json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err(bad(format!("messages[{i}]: image_url must be a data: or http(s) URL")))
}

fn tools(value: &Value) -> Result<Value, ApiError> {
    let list = value.as_array().ok_or_else(|| bad("`tools` must be a list"))?;
    let mut out = Vec::with_capacity(list.len());
    for t in list {
        if t["type"] != "function" {
            return Err(bad(format!("tool type {} is not supported by Anthropic", t["type"])));
        }
        let f = &t["function"];
        let mut tool = json!({
            "name": f["name"],
            "input_schema": if f["parameters"].is_object() { f["parameters"].clone() } else { json!({"type": "object", "properties": {}}) },
        });
        if let Some(d) = f["description"].as_str() {
            tool["description"] = json!(d);
        }
        out.push(tool);
    }
    Ok(Value::Array(out))
}

fn tool_choice(value: &Value) -> Result<Value, ApiError> {
    Ok(match value {
        Value::String(s) if s == "auto" => json!({"type": "auto"}),
        Value::String(s) if s == "none" => json!({"type": "none"}),
        Value::String(s) if s == "required" => json!({"type": "any"}),
        Value::Object(o) if o.get("type") == Some(&json!("function")) => {
            json!({"type": "tool", "name": value["function"]["name"]})
        }
        _ => return Err(bad(format!("tool_choice {value} is not supported"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(body: Value) -> Value {
        let (bytes, _) = translate(body.to_string().as_bytes(), "claude-x").unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn err(body: Value) -> String {
        translate(body.to_string().as_bytes(), "claude-x").unwrap_err().message
    }

    #[test]
    fn system_turns_tools_and_parameters() {
        let got = tr(json!({
            "model": "claude-sonnet-4",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
                {"role": "user", "content": "Weather in Paris and Tokyo?"},
                {"role": "user", "content": [{"type": "text", "text": "Celsius."},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/map.jpg"}}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Tokyo\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_2", "content": "22C"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": "required", "parallel_tool_calls": false,
            "max_completion_tokens": 300, "max_tokens": 5, "temperature": 0.5, "top_p": 0.9,
            "stop": "END", "user": "u-1", "stream": true, "seed": 3, "frequency_penalty": 0.1
        }));
        assert_eq!(
            got,
            json!({
                "model": "claude-x",
                "system": "Be brief.\n\nUse tools.",
                "messages": [
                    {"role": "user", "content": [
                        {"type": "text", "text": "Weather in Paris and Tokyo?"},
                        {"type": "text", "text": "Celsius."},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                        {"type": "image", "source": {"type": "url", "url": "https://example.com/map.jpg"}}]},
                    {"role": "assistant", "content": [
                        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Tokyo"}}]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                        {"type": "tool_result", "tool_use_id": "call_2", "content": "22C"}]}
                ],
                "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
                "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
                "max_tokens": 300, "temperature": 0.5, "top_p": 0.9,
                "stop_sequences": ["END"], "metadata": {"user_id": "u-1"}, "stream": true
            })
        );
    }

    #[test]
    fn defaults_and_tool_choice_forms() {
        let got = tr(json!({"messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b"]}));
        assert_eq!(got["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(got["stop_sequences"], json!(["a", "b"]));
        assert!(got.get("stream").is_none());
        let named = json!({"type": "function", "function": {"name": "f"}});
        assert_eq!(tool_choice(&named).unwrap(), json!({"type": "tool", "name": "f"}));
        assert_eq!(tool_choice(&json!("none")).unwrap(), json!({"type": "none"}));
        assert_eq!(tool_choice(&json!("auto")).unwrap(), json!({"type": "auto"}));
    }

    #[test]
    fn fields_that_would_change_meaning_are_refused() {
        let m = json!([{"role": "user", "content": "hi"}]);
        assert!(err(json!({"messages": m, "n": 2})).contains("`n` > 1"));
        assert!(err(json!({"messages": m, "logprobs": true})).contains("logprobs"));
        assert!(err(json!({"messages": m, "response_format": {"type": "json_schema"}})).contains("response_format"));
        assert!(
            err(json!({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]})).contains("input_audio")
        );
        assert!(err(json!({"messages": [{"role": "function", "content": "x"}]})).contains("role `function`"));
        assert!(err(json!({"messages": [{"role": "system", "content": "only"}]})).contains("messages is required"));
        let ok = json!({"messages": m, "n": 1, "logprobs": false, "response_format": {"type": "text"}});
        assert!(translate(ok.to_string().as_bytes(), "c").is_ok());
    }

    #[test]
    fn stream_options_are_remembered() {
        let body = json!({"messages": [{"role": "user", "content": "hi"}], "stream": true, "stream_options": {"include_usage": true}});
        let (_, asked) = translate(body.to_string().as_bytes(), "c").unwrap();
        assert!(asked.stream && asked.include_usage);
    }
}
