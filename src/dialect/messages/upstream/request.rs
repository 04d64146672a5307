//! OpenAI chat-completions request → Anthropic Messages API request, read from the body's
//! borrowed fields and written straight into the new body: no JSON tree is built, and what
//! passes unchanged (tool schemas, sampling values, ids) is copied as the client wrote it.

use std::borrow::Cow;

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use tracing::debug;

use crate::dialect::borrowed::{Fields, Input, as_u64, is_null, is_string, is_true, list, objects, text};
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
    let fields = Fields::of_body(body)?;
    let stream_options = fields.get("stream_options").and_then(Fields::of);
    let asked = Asked {
        stream: fields.get("stream").is_some_and(is_true),
        include_usage: stream_options.and_then(|o| o.get("include_usage")).is_some_and(is_true),
    };
    Ok((write(&fields, model, &asked, body.len())?, asked))
}

/// A Chat request body (the client's, or the hub form of another dialect's) as Anthropic's
/// body; `asked.stream` decides whether to stream.
pub fn from_chat(chat: &[u8], model: &str, asked: &Asked) -> Result<Vec<u8>, ApiError> {
    write(&Fields::of_body(chat)?, model, asked, chat.len())
}

fn write(req: &Fields, model: &str, asked: &Asked, size: usize) -> Result<Vec<u8>, ApiError> {
    let mut out = Out { model, stream: asked.stream, ..Out::default() };
    let mut system: Vec<Cow<str>> = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    let mut max_tokens = None;
    for (key, value) in &req.0 {
        let null = is_null(value);
        match key.as_ref() {
            "model" => {}
            "messages" => {
                let messages = objects(value).ok_or_else(|| bad("`messages` must be an array"))?;
                for (i, m) in messages.iter().enumerate() {
                    message(i, m, &mut system, &mut turns)?;
                }
            }
            "max_completion_tokens" => max_tokens = as_u64(value).or(max_tokens),
            "max_tokens" => max_tokens = max_tokens.or(as_u64(value)),
            "temperature" if !null => out.temperature = Some(*value),
            "top_p" if !null => out.top_p = Some(*value),
            "stop" => match value.get().as_bytes().first() {
                Some(b'"') => out.stop_sequences = Some(Stop::One(value)),
                Some(b'[') if list(value).is_some_and(|l| !l.is_empty()) => {
                    out.stop_sequences = Some(Stop::List(value))
                }
                Some(b'[') => {}
                _ if null => {}
                _ => return Err(bad("`stop` must be a string or a list of strings")),
            },
            "user" if is_string(value) => out.metadata = Some(Metadata { user_id: value }),
            "stream" | "stream_options" => {}
            "tools" if !null => out.tools = Some(tools(value)?),
            "tool_choice" if !null => out.tool_choice = Some(tool_choice(value)?),
            "parallel_tool_calls" => {}
            "n" if as_u64(value).is_some_and(|n| n > 1) => {
                return Err(bad("`n` > 1 is not supported by Anthropic: it returns one choice"));
            }
            "logprobs" if is_true(value) => return Err(bad("`logprobs` is not supported by Anthropic")),
            "top_logprobs" if !null => return Err(bad("`top_logprobs` is not supported by Anthropic")),
            "response_format"
                if !null && Fields::of(value).and_then(|f| f.get("type")).and_then(text).as_deref() != Some("text") =>
            {
                return Err(bad(
                    "`response_format` (JSON mode / structured output) is not supported by the Anthropic translation",
                ));
            }
            "audio" | "modalities" if value.get().contains("audio") => {
                return Err(bad("audio output is not supported by Anthropic"));
            }
            other => debug!(field = other, "dropped: no Anthropic equivalent"),
        }
    }
    if req.get("parallel_tool_calls").is_some_and(|v| v.get() == "false") && out.tools.is_some() {
        let choice = out.tool_choice.get_or_insert(Choice { kind: "auto", ..Choice::default() });
        if choice.kind != "none" {
            choice.disable_parallel_tool_use = Some(true);
        }
    }
    out.system = match system.len() {
        0 => None,
        1 => system.pop(),
        _ => Some(Cow::Owned(system.join("\n\n"))),
    };
    if turns.is_empty() {
        return Err(ApiError::bad_request("messages_required", "messages is required (besides system messages)"));
    }
    out.messages = turns;
    out.max_tokens = max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    Ok(crate::dialect::to_json(&out, size).unwrap_or_default())
}

/// Adds one OpenAI message: system text, or content blocks appended to the turn of its
/// role (consecutive same-role messages merge into one turn, as Anthropic requires).
fn message<'a>(
    i: usize,
    m: &Fields<'a>,
    system: &mut Vec<Cow<'a, str>>,
    turns: &mut Vec<Turn<'a>>,
) -> Result<(), ApiError> {
    // Anything but an object has no role, as a JSON tree would read it.
    let role = m.get("role").and_then(text);
    let content = m.get("content");
    let (turn_role, blocks) = match role.as_deref().unwrap_or_default() {
        "system" | "developer" => {
            let text = content
                .map_or(Some(Cow::Borrowed("")), text_of)
                .ok_or_else(|| bad(format!("messages[{i}]: system content must be text")))?;
            system.push(text);
            return Ok(());
        }
        "user" => ("user", content_blocks(i, content)?),
        "assistant" => {
            let mut blocks = content_blocks(i, content)?;
            for call in m.get("tool_calls").and_then(objects).unwrap_or_default() {
                let function = call.get("function").and_then(Fields::of).unwrap_or_default();
                let args = function.get("arguments").and_then(text);
                let args = args.as_deref().unwrap_or("{}");
                let input = if args.trim().is_empty() {
                    Input::Empty
                } else {
                    Input::Raw(
                        serde_json::from_str(args)
                            .map_err(|_| bad(format!("messages[{i}]: tool call arguments are not JSON")))?,
                    )
                };
                blocks.push(Block::ToolUse { id: call.get("id"), name: function.get("name"), input });
            }
            ("assistant", blocks)
        }
        "tool" => {
            let content = match content.and_then(text) {
                Some(s) => ResultContent::Text(s),
                None => ResultContent::Blocks(content_blocks(i, content)?),
            };
            ("user", vec![Block::ToolResult { tool_use_id: m.get("tool_call_id"), content }])
        }
        other => return Err(bad(format!("messages[{i}]: role `{other}` is not supported by Anthropic"))),
    };
    if blocks.is_empty() {
        return Ok(());
    }
    match turns.last_mut() {
        Some(last) if last.role == turn_role => last.content.extend(blocks),
        _ => turns.push(Turn { role: turn_role, content: blocks }),
    }
    Ok(())
}

/// String content or text parts joined with newlines; `None` when it is neither (or null:
/// empty).
fn text_of(content: &RawValue) -> Option<Cow<'_, str>> {
    if is_null(content) {
        return Some(Cow::Borrowed(""));
    }
    if let Some(s) = text(content) {
        return Some(s);
    }
    let parts = objects(content)?;
    let texts: Vec<Cow<str>> = parts.iter().filter_map(|p| p.get("text").and_then(text)).collect();
    Some(Cow::Owned(texts.join("\n")))
}

/// OpenAI content → Anthropic blocks: text, and images (data URLs as base64, http(s) as url).
/// Empty text is left out (Anthropic rejects empty text blocks).
fn content_blocks<'a>(i: usize, content: Option<&'a RawValue>) -> Result<Vec<Block<'a>>, ApiError> {
    let Some(content) = content.filter(|c| !is_null(c)) else { return Ok(Vec::new()) };
    if let Some(s) = text(content) {
        return Ok(if s.is_empty() { Vec::new() } else { vec![Block::Text { text: s }] });
    }
    let parts =
        objects(content).ok_or_else(|| bad(format!("messages[{i}]: content must be a string or a list of parts")))?;
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        match part.get("type").and_then(text).as_deref().unwrap_or_default() {
            "text" => {
                let text = part.get("text").and_then(text).unwrap_or_default();
                if !text.is_empty() {
                    out.push(Block::Text { text });
                }
            }
            "image_url" => {
                let image = part.get("image_url");
                let url = image.and_then(Fields::of).and_then(|f| f.get("url")).and_then(text);
                let url = url.or_else(|| image.and_then(text)).unwrap_or_default();
                out.push(self::image(i, url)?);
            }
            other => {
                return Err(bad(format!("messages[{i}]: content part `{other}` is not supported by Anthropic")));
            }
        }
    }
    Ok(out)
}

fn image(i: usize, url: Cow<'_, str>) -> Result<Block<'_>, ApiError> {
    // Slices of the URL, borrowed from the body when the URL was (no escapes in it).
    let part = |range: std::ops::Range<usize>| match &url {
        Cow::Borrowed(u) => Cow::Borrowed(&u[range]),
        Cow::Owned(u) => Cow::Owned(u[range].to_owned()),
    };
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, _) = rest.split_once(',').ok_or_else(|| bad(format!("messages[{i}]: malformed data URL")))?;
        let media_type = meta
            .strip_suffix(";base64")
            .ok_or_else(|| bad(format!("messages[{i}]: image data URLs must be base64")))?;
        let (media_at, data_at) = (5, 5 + meta.len() + 1);
        let source =
            Source::Base64 { media_type: part(media_at..media_at + media_type.len()), data: part(data_at..url.len()) };
        return Ok(Block::Image { source });
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(Block::Image { source: Source::Url { url: part(0..url.len()) } });
    }
    Err(bad(format!("messages[{i}]: image_url must be a data: or http(s) URL")))
}

fn tools(value: &RawValue) -> Result<Vec<Tool<'_>>, ApiError> {
    let list = objects(value).ok_or_else(|| bad("`tools` must be a list"))?;
    let mut out = Vec::with_capacity(list.len());
    for t in list {
        if t.get("type").and_then(text).as_deref() != Some("function") {
            let kind = t.get("type").map_or("null", RawValue::get);
            return Err(bad(format!("tool type {kind} is not supported by Anthropic")));
        }
        let f = t.get("function").and_then(Fields::of).unwrap_or_default();
        let schema = f.get("parameters").filter(|p| p.get().starts_with('{'));
        out.push(Tool {
            name: f.get("name"),
            description: f.get("description").filter(|d| is_string(d)),
            input_schema: Schema(schema),
        });
    }
    Ok(out)
}

fn tool_choice(value: &RawValue) -> Result<Choice<'_>, ApiError> {
    let choice = |kind| Ok(Choice { kind, ..Choice::default() });
    match text(value).as_deref() {
        Some("auto") => return choice("auto"),
        Some("none") => return choice("none"),
        Some("required") => return choice("any"),
        _ => {}
    }
    if let Some(f) = Fields::of(value).filter(|f| f.get("type").and_then(text).as_deref() == Some("function")) {
        let name = f.get("function").and_then(Fields::of).and_then(|f| f.get("name"));
        return Ok(Choice { kind: "tool", name: Some(name), ..Choice::default() });
    }
    Err(bad(format!("tool_choice {} is not supported", value.get())))
}

/// The Anthropic request, in the order Anthropic documents its fields.
#[derive(Default, Serialize)]
struct Out<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<Cow<'a, str>>,
    messages: Vec<Turn<'a>>,
    max_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<Stop<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<Tool<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Choice<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

#[derive(Serialize)]
struct Turn<'a> {
    role: &'static str,
    content: Vec<Block<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text { text: Cow<'a, str> },
    Image { source: Source<'a> },
    ToolUse { id: Option<&'a RawValue>, name: Option<&'a RawValue>, input: Input },
    ToolResult { tool_use_id: Option<&'a RawValue>, content: ResultContent<'a> },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Source<'a> {
    Base64 { media_type: Cow<'a, str>, data: Cow<'a, str> },
    Url { url: Cow<'a, str> },
}

#[derive(Serialize)]
#[serde(untagged)]
enum ResultContent<'a> {
    Text(Cow<'a, str>),
    Blocks(Vec<Block<'a>>),
}

/// `stop`: one string becomes a list of it; a list is copied.
enum Stop<'a> {
    One(&'a RawValue),
    List(&'a RawValue),
}

impl Serialize for Stop<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Stop::One(one) => [one].serialize(s),
            Stop::List(list) => list.serialize(s),
        }
    }
}

#[derive(Serialize)]
struct Metadata<'a> {
    user_id: &'a RawValue,
}

#[derive(Serialize)]
struct Tool<'a> {
    name: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a RawValue>,
    input_schema: Schema<'a>,
}

/// The function's `parameters` when they are an object, else an empty object schema.
struct Schema<'a>(Option<&'a RawValue>);

impl Serialize for Schema<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(schema) => schema.serialize(s),
            None => {
                use serde::ser::SerializeMap;
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("type", "object")?;
                m.serialize_entry("properties", &serde_json::Map::new())?;
                m.end()
            }
        }
    }
}

#[derive(Default, Serialize)]
struct Choice<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    /// A named tool's name (null when the client gave none).
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<Option<&'a RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disable_parallel_tool_use: Option<bool>,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn choice(v: Value) -> Value {
        let raw = serde_json::value::to_raw_value(&v).unwrap();
        serde_json::to_value(tool_choice(&raw).unwrap()).unwrap()
    }

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
        // A whole number written as a float is that number; a fraction is none (the default).
        let limit = |n: Value| {
            tr(json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": n}))["max_tokens"].clone()
        };
        assert_eq!((limit(json!(256.0)), limit(json!(2.5))), (json!(256), json!(DEFAULT_MAX_TOKENS)));
        assert!(got.get("stream").is_none());
        let named = json!({"type": "function", "function": {"name": "f"}});
        assert_eq!(choice(named), json!({"type": "tool", "name": "f"}));
        assert_eq!(choice(json!("none")), json!({"type": "none"}));
        assert_eq!(choice(json!("auto")), json!({"type": "auto"}));
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

    /// The body is read as the client wrote it: escaped strings, repeated keys (the last
    /// counts), members that are not objects, and the odd shapes a JSON tree tolerated.
    #[test]
    fn escapes_repeated_keys_and_odd_shapes() {
        let body = br#"{"messages":[{"role":"user","content":"first"}],"model":"x",
            "messages":[{"role":"system","content":"line\nnext \u00e9"},
                {"role":"user","content":[{"type":"text","text":"see \"this\""},
                    {"type":"image_url","image_url":{"url":"https:\/\/example.com\/a.png"}},
                    {"type":"image_url","image_url":"data:image\/png;base64,AAA="}]},
                {"role":"assistant","content":"","tool_calls":[{"id":"c1","function":{"name":"f","arguments":" "}},
                    {"id":"c2","function":{"name":"g","arguments":"{\"b\": 1, \"a\": [2]}"}}]},
                {"role":"tool","tool_call_id":"c1","content":[{"type":"text","text":"done"}]}],
            "stop":[],"tools":[{"type":"function","function":{"name":"f","parameters":"not an object"}}],
            "tool_choice":{"type":"function","function":{}}}"#;
        let (bytes, asked) = translate(body, "m").unwrap();
        assert!(!asked.stream && !asked.include_usage);
        let got: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(got["system"], "line\nnext \u{e9}");
        assert_eq!(got["messages"][0]["content"][0], json!({"type": "text", "text": "see \"this\""}));
        assert_eq!(
            got["messages"][0]["content"][1]["source"],
            json!({"type": "url", "url": "https://example.com/a.png"})
        );
        assert_eq!(
            got["messages"][0]["content"][2]["source"],
            json!({"type": "base64", "media_type": "image/png", "data": "AAA="})
        );
        let calls = &got["messages"][1]["content"];
        assert_eq!(calls[0], json!({"type": "tool_use", "id": "c1", "name": "f", "input": {}}));
        assert_eq!(calls[1]["input"], json!({"b": 1, "a": [2]}));
        assert_eq!(
            got["messages"][2]["content"][0],
            json!({"type": "tool_result", "tool_use_id": "c1", "content": [{"type": "text", "text": "done"}]})
        );
        assert!(got.get("stop_sequences").is_none(), "an empty list is no stop sequences");
        assert_eq!(got["tools"][0]["input_schema"], json!({"type": "object", "properties": {}}));
        assert_eq!(got["tool_choice"], json!({"type": "tool", "name": null}));

        assert!(err(json!({"messages": ["not an object"]})).contains("role ``"));
        assert!(err(json!({"messages": [{"role": "user", "content": 3}]})).contains("content must be a string"));
        assert!(err(json!({"messages": {"role": "user"}})).contains("must be an array"));
        assert!(err(json!({"messages": [{"role": "user", "content": "x"}], "stop": 5})).contains("`stop`"));
        assert!(
            err(json!({"messages": [{"role": "user", "content": "x"}], "response_format": "json"}))
                .contains("response_format")
        );
        assert!(
            err(json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": "sometimes"}))
                .contains("\"sometimes\"")
        );
        let bad_args = json!({"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}]});
        assert!(err(bad_args).contains("not JSON"));
        assert!(translate(b"[1]", "m").unwrap_err().message.contains("JSON object"));
        assert!(translate(b"{\"messages\": [", "m").unwrap_err().message.contains("invalid JSON"));
    }

    /// A body of 200,000 members (distinct, or one key repeated) is read in O(n log n): a
    /// quadratic read would take minutes here.
    #[test]
    fn many_members_and_repeated_keys_stay_cheap() {
        let mut body = String::from(r#"{"messages":[{"role":"user","content":"hi"}]"#);
        for i in 0..200_000 {
            body.push_str(&format!(",\"k{i}\":{i},\"max_tokens\":{i}"));
        }
        body.push('}');
        let got: Value = serde_json::from_slice(&translate(body.as_bytes(), "m").unwrap().0).unwrap();
        assert_eq!(got["max_tokens"], 199_999, "the last of a repeated key");
    }
}
