//! Anthropic Messages request → OpenAI Chat Completions request, read from the body's
//! borrowed fields and written straight into the new body (no JSON tree on either side): what
//! passes unchanged (strings, tool schemas, sampling values, ids) is copied as the client wrote it.
//!
//! Dropped (logged once): server tools, `thinking` and thinking blocks in history,
//! `cache_control`, and top-level fields Chat has no form for (`context_management`,
//! `container`, `mcp_servers`, `service_tier`, …). Approximated: text blocks are joined into
//! one string; a tool result's images move to the user message after the tool messages.
//! Refused (400): content Chat cannot carry (`document`, file-id images, unknown blocks).

use std::borrow::Cow;
use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use crate::dialect::borrowed::{Fields, Text, as_u64, compact, is_null, is_string, is_true, list, objects, text};
use crate::dialect::chat::ToolCall;
use crate::dialect::dropped;
use crate::error::ApiError;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("unsupported_for_chat", message)
}

/// Top-level Messages fields with no Chat form, named in the drop log. Others are logged under
/// one name: the set of logged names must not grow with what clients send.
const NO_CHAT_FORM: &[&str] = &["cache_control", "container", "context_management", "mcp_servers", "service_tier"];

/// Server tool families (their types carry a version date, `web_search_20250305`), named in
/// the drop log; other types are logged under one name.
const SERVER_TOOLS: &[&str] =
    &["bash", "code_execution", "computer", "memory", "text_editor", "tool_search_tool", "web_fetch", "web_search"];

/// Translates a Messages request body. `model` is the model to send; `openai` is true when the
/// upstream is OpenAI itself, which rejects fields local servers accept (`top_k`) and wants
/// `max_completion_tokens` instead of the deprecated `max_tokens`.
pub fn to_chat(body: &[u8], model: &str, openai: bool) -> Result<Vec<u8>, ApiError> {
    let req = Fields::of_body(body)?;
    let mut out = Out { model, ..Out::default() };
    let mut messages = Vec::new();
    let mut tools = None;
    let mut choice = None;
    let mut max_tokens = None;
    // In key order, as a JSON tree was read: the first bad field is the one reported.
    for (key, value) in &req.0 {
        // A null is an absent field (SDKs send them); `max_tokens` then stays missing.
        if is_null(value) {
            continue;
        }
        match key.as_ref() {
            "model" | "messages" => {}
            "system" => {
                let text = system(value)?;
                if !text.is_empty() {
                    messages.push(Message::System { content: text });
                }
            }
            "max_tokens" => max_tokens = as_u64(value),
            "stop_sequences" => match list(value) {
                Some(l) if !l.is_empty() => out.stop = Some(value),
                Some(_) => {}
                None => return Err(bad("`stop_sequences` must be a list of strings")),
            },
            "temperature" => out.temperature = Some(value),
            "top_p" => out.top_p = Some(value),
            "top_k" if openai => dropped("top_k", "OpenAI's Chat Completions has no top_k"),
            "top_k" => out.top_k = Some(value),
            "metadata" => out.user = Fields::of(value).and_then(|m| m.get("user_id")).filter(|u| is_string(u)),
            // The stream translator needs the usage chunk for `message_delta`.
            "stream" => out.stream = is_true(value),
            "tools" => tools = Some(self::tools(value)?),
            "tool_choice" => choice = Some(value),
            "thinking" => {
                dropped("thinking", "Chat Completions has no extended-thinking switch every upstream accepts")
            }
            other => match NO_CHAT_FORM.iter().find(|&&f| f == other) {
                Some(f) => dropped(f, "no Chat Completions equivalent"),
                None => {
                    tracing::debug!(field = other, "messages: unknown field dropped");
                    dropped("(unknown Messages fields)", "no Chat Completions equivalent; see debug logs for names");
                }
            },
        }
    }
    let list = req.get("messages").and_then(objects).filter(|m| !m.is_empty());
    let list = list.ok_or_else(|| {
        ApiError::bad_request("messages_required", "`messages` is required and must be a non-empty list")
    })?;
    for (i, m) in list.iter().enumerate() {
        message(i, m, &mut messages)?;
    }
    out.messages = messages;
    if out.stream {
        out.stream_options = Some(StreamOptions { include_usage: true });
    }
    let max_tokens = max_tokens.ok_or_else(|| {
        ApiError::bad_request("max_tokens_required", "`max_tokens` is required and must be a non-negative integer")
    })?;
    *(if openai { &mut out.max_completion_tokens } else { &mut out.max_tokens }) = Some(max_tokens);
    // Only with tools left: OpenAI rejects `tool_choice` and `parallel_tool_calls` without them,
    // and every tool may have been a server tool.
    if let Some(tools) = tools.filter(|t| !t.is_empty()) {
        if let Some(choice) = choice {
            let choice = Fields::of(choice).unwrap_or_default();
            out.tool_choice = tool_choice(&choice, &tools)?;
            if choice.get("disable_parallel_tool_use").is_some_and(is_true) {
                out.parallel_tool_calls = Some(false);
            }
        }
        out.tools = Some(tools);
    }
    Ok(crate::dialect::to_json(&out, body.len()).unwrap_or_default())
}

/// `system`: a string or text blocks, joined into one string.
fn system(value: &RawValue) -> Result<Text<'_>, ApiError> {
    if is_string(value) {
        return Ok(Text::Raw(value));
    }
    let blocks = objects(value).ok_or_else(|| bad("`system` must be a string or a list of text blocks"))?;
    let mut texts = Vec::with_capacity(blocks.len());
    for b in blocks {
        let kind = b.get("type");
        match (kind.and_then(text).as_deref(), b.get("text").and_then(text)) {
            (Some("text"), Some(t)) => texts.push(t),
            _ => {
                let kind = kind.map_or("null", RawValue::get);
                return Err(bad(format!("system: blocks must be text blocks, not {kind}")));
            }
        }
    }
    Ok(Text::joined(texts))
}

/// Appends the Chat messages for one Messages turn. A user turn's `tool_result` blocks become
/// `tool` messages placed first: Chat wants them right after the assistant message that made
/// the calls, before any other user content.
fn message<'a>(i: usize, m: &Fields<'a>, out: &mut Vec<Message<'a>>) -> Result<(), ApiError> {
    let role = m.get("role").and_then(text).unwrap_or_default();
    let assistant = match role.as_ref() {
        "user" => false,
        "assistant" => true,
        _ => return Err(bad(format!("messages[{i}]: role `{role}` is not supported (use user or assistant)"))),
    };
    let content = m.get("content").unwrap_or(RawValue::NULL);
    if is_string(content) {
        let content = Text::Raw(content);
        out.push(if assistant {
            Message::Assistant { content: Some(content), tool_calls: Vec::new() }
        } else {
            Message::User { content: UserContent::Text(content) }
        });
        return Ok(());
    }
    let blocks =
        objects(content).ok_or_else(|| bad(format!("messages[{i}]: content must be a string or a list of blocks")))?;
    let mut parts = Vec::new();
    let mut calls = Vec::new();
    for b in &blocks {
        let kind = b.get("type").and_then(text).unwrap_or_default();
        match (assistant, kind.as_ref()) {
            (_, "text") => parts.push(Part::Text { text: Text::of(b.get("text")) }),
            (false, "image") => parts.push(image(i, b)?),
            (false, "tool_result") => {
                let (content, images) = tool_result(i, b)?;
                out.push(Message::Tool { tool_call_id: b.get("tool_use_id"), content });
                parts.extend(images);
            }
            (true, "tool_use") => {
                // A missing input is an empty object, Anthropic's own default.
                let input = b.get("input").filter(|v| !is_null(v));
                let arguments = input.map_or(Cow::Borrowed("{}"), compact);
                calls.push(ToolCall::new(b.get("id"), b.get("name"), arguments));
            }
            (_, "thinking" | "redacted_thinking") => {
                dropped("thinking blocks", "reasoning from earlier turns has no Chat Completions form")
            }
            _ => {
                let kind = if kind.is_empty() { "(missing)" } else { &kind };
                let role = if assistant { "assistant" } else { "user" };
                return Err(bad(format!(
                    "messages[{i}]: content block type `{kind}` in a {role} message has no Chat Completions equivalent"
                )));
            }
        }
    }
    if assistant {
        // Only text parts in an assistant turn (anything else was refused above). One that only
        // held thinking stays, as empty text: dropping it would put two user messages in a row,
        // which some chat templates reject.
        let content = (!parts.is_empty() || calls.is_empty()).then(|| join_texts(parts));
        out.push(Message::Assistant { content, tool_calls: calls });
    } else if parts.iter().all(|p| matches!(p, Part::Text { .. })) {
        // Text only: one string, which every server accepts (not all take a list of parts).
        if !parts.is_empty() {
            out.push(Message::User { content: UserContent::Text(join_texts(parts)) });
        }
    } else {
        out.push(Message::User { content: UserContent::Parts(parts) });
    }
    Ok(())
}

/// The texts of Chat text parts, joined as separate paragraphs.
fn join_texts(parts: Vec<Part<'_>>) -> Text<'_> {
    let mut texts: Vec<Text> =
        parts.into_iter().filter_map(|p| if let Part::Text { text } = p { Some(text) } else { None }).collect();
    if texts.len() == 1 {
        return texts.pop().unwrap_or(Text::Owned(String::new()));
    }
    Text::joined(texts.iter().map(Text::unescaped).collect())
}

/// An `image` block → an `image_url` part (base64 sources as a data URL).
fn image<'a>(i: usize, b: &Fields<'a>) -> Result<Part<'a>, ApiError> {
    let source = b.get("source");
    let fields = source.and_then(Fields::of).unwrap_or_default();
    let url = match fields.get("type").and_then(text).as_deref() {
        Some("base64") => {
            let (Some(media), Some(data)) =
                (fields.get("media_type").and_then(text), fields.get("data").and_then(text))
            else {
                return Err(bad(format!("messages[{i}]: base64 image needs media_type and data")));
            };
            Url::Data { media, data }
        }
        Some("url") => match fields.get("url").filter(|u| is_string(u)) {
            Some(url) => Url::Raw(url),
            None => return Err(bad(format!("messages[{i}]: url image needs a url"))),
        },
        _ => {
            let kind = fields.get("type").map_or("null", RawValue::get);
            return Err(bad(format!("messages[{i}]: image source type {kind} is not supported")));
        }
    };
    Ok(Part::ImageUrl { image_url: ImageUrl { url } })
}

/// A `tool_result` → the `tool` message's text, and its images as parts for the user message
/// that follows (Chat tool messages carry text only; Claude Code's Read tool returns images).
fn tool_result<'a>(i: usize, b: &Fields<'a>) -> Result<(Text<'a>, Vec<Part<'a>>), ApiError> {
    let content = b.get("content").unwrap_or(RawValue::NULL);
    let error = b.get("is_error").is_some_and(is_true);
    // The usual result, one string, is copied as the client wrote it.
    if is_string(content) && !error {
        return Ok((Text::Raw(content), Vec::new()));
    }
    let mut texts = Vec::new();
    let mut images = Vec::new();
    if let Some(s) = text(content) {
        texts.push(s);
    } else if let Some(blocks) = objects(content) {
        for c in &blocks {
            match c.get("type").and_then(text).unwrap_or_default().as_ref() {
                "text" => texts.push(c.get("text").and_then(text).unwrap_or_default()),
                "image" => images.push(image(i, c)?),
                other => {
                    return Err(bad(format!(
                        "messages[{i}]: tool_result content block type `{other}` has no Chat Completions equivalent"
                    )));
                }
            }
        }
    } else if !is_null(content) {
        return Err(bad(format!("messages[{i}]: tool_result content must be a string or a list of blocks")));
    }
    let mut content = if error { "Error: ".to_owned() } else { String::new() };
    content.push_str(&texts.join("\n\n"));
    if !images.is_empty() {
        // Says where the tool's images went, so the model connects them to this call.
        content.push_str(if texts.is_empty() { "(image attached below)" } else { "\n\n(image attached below)" });
    }
    Ok((Text::Owned(content), images))
}

/// Custom tools → Chat function tools; server tools (a `type` other than `custom`) run on
/// Anthropic's side only, so they are dropped.
fn tools(value: &RawValue) -> Result<Vec<Tool<'_>>, ApiError> {
    let list = objects(value).ok_or_else(|| bad("`tools` must be a list"))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        match t.get("type").filter(|k| !is_null(k)) {
            // Only a type that names something else is a server tool (a tree read a type that
            // is not a string as no type).
            Some(kind) if is_string(kind) && text(kind).as_deref() != Some("custom") => {
                server_tool(kind);
                continue;
            }
            _ => {}
        }
        let name = t.get("name").filter(|n| is_string(n));
        let name = name.ok_or_else(|| bad(format!("tools[{i}]: `name` is required")))?;
        let parameters = Schema(t.get("input_schema").filter(|s| s.get().starts_with('{')));
        let description = t.get("description").filter(|d| is_string(d));
        out.push(Tool { kind: "function", function: Declaration { name, description, parameters } });
    }
    Ok(out)
}

/// Logs a dropped server tool by its family.
fn server_tool(kind: &RawValue) {
    let kind = text(kind).unwrap_or_default();
    match SERVER_TOOLS.iter().find(|&&f| kind.strip_prefix(f).is_some_and(|v| v.is_empty() || v.starts_with('_'))) {
        Some(f) => dropped(&format!("tool type {f}"), "a server tool only Anthropic can run"),
        None => dropped("(other tool types)", "not a custom tool: only Anthropic can run it"),
    }
}

/// `tool_choice`; `None` when it leaves the upstream's default. A named tool must be one of
/// the tools sent (not a dropped server tool).
fn tool_choice<'a>(choice: &Fields<'a>, tools: &[Tool]) -> Result<Option<ChatChoice<'a>>, ApiError> {
    Ok(Some(match choice.get("type").and_then(text).as_deref() {
        Some("auto") => ChatChoice::Mode("auto"),
        Some("any") => ChatChoice::Mode("required"),
        Some("none") => ChatChoice::Mode("none"),
        Some("tool") => {
            let name = choice.get("name").and_then(text).unwrap_or_default();
            if !tools.iter().any(|t| text(t.function.name).as_deref() == Some(&name)) {
                return Err(bad(format!("tool_choice names `{name}`, which is not a custom tool of this request")));
            }
            ChatChoice::Function { kind: "function", function: Named { name } }
        }
        None => return Ok(None),
        Some(other) => return Err(bad(format!("tool_choice type `{other}` is not supported"))),
    }))
}

/// The Chat request; field order is what OpenAI documents.
#[derive(Default, Serialize)]
struct Out<'a> {
    model: &'a str,
    messages: Vec<Message<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<Tool<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ChatChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum Message<'a> {
    System {
        content: Text<'a>,
    },
    User {
        content: UserContent<'a>,
    },
    Assistant {
        /// Null when the turn is only tool calls.
        content: Option<Text<'a>>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall<'a, Cow<'a, str>>>,
    },
    Tool {
        tool_call_id: Option<&'a RawValue>,
        content: Text<'a>,
    },
}

#[derive(Serialize)]
#[serde(untagged)]
enum UserContent<'a> {
    Text(Text<'a>),
    Parts(Vec<Part<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Part<'a> {
    Text { text: Text<'a> },
    ImageUrl { image_url: ImageUrl<'a> },
}

#[derive(Serialize)]
struct ImageUrl<'a> {
    url: Url<'a>,
}

/// An image's URL: the client's, or a data URL made from a base64 source.
enum Url<'a> {
    Raw(&'a RawValue),
    Data { media: Cow<'a, str>, data: Cow<'a, str> },
}

impl Serialize for Url<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Url::Raw(raw) => raw.serialize(s),
            // Written as one escaped string without building it first (images run to megabytes).
            Url::Data { media, data } => s.collect_str(&DataUrl(media, data)),
        }
    }
}

struct DataUrl<'a>(&'a str, &'a str);

impl fmt::Display for DataUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "data:{};base64,{}", self.0, self.1)
    }
}

#[derive(Serialize)]
struct Tool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: Declaration<'a>,
}

#[derive(Serialize)]
struct Declaration<'a> {
    name: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a RawValue>,
    parameters: Schema<'a>,
}

/// The tool's `input_schema` when it is an object, less a `$schema` draft marker (it constrains
/// nothing, and some servers' schema converters reject it); else an empty object schema.
struct Schema<'a>(Option<&'a RawValue>);

impl Serialize for Schema<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Some(schema) = self.0 else {
            let mut m = s.serialize_map(Some(2))?;
            m.serialize_entry("type", "object")?;
            m.serialize_entry("properties", &serde_json::Map::new())?;
            return m.end();
        };
        // Most schemas have no marker (nor escapes that could spell one) and are copied whole.
        if !schema.get().contains("\"$schema\"") && !schema.get().contains("\\u") {
            return schema.serialize(s);
        }
        let fields = Fields::of(schema).unwrap_or_default();
        let mut m = s.serialize_map(None)?;
        for (key, value) in fields.0.iter().filter(|(k, _)| k != "$schema") {
            m.serialize_entry(key, value)?;
        }
        m.end()
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum ChatChoice<'a> {
    Mode(&'static str),
    Function {
        #[serde(rename = "type")]
        kind: &'static str,
        function: Named<'a>,
    },
}

#[derive(Serialize)]
struct Named<'a> {
    name: Cow<'a, str>,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// The translation of a body written from `req`, read back as a tree.
    fn to_chat(req: &Value, model: &str, openai: bool) -> Result<Value, ApiError> {
        let body = serde_json::to_vec(req).unwrap();
        super::to_chat(&body, model, openai).map(|out| serde_json::from_slice(&out).unwrap())
    }

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
        assert!(err(json!({"messages": m, "max_tokens": 10.5})).contains("`max_tokens`"));
        // A whole number written as a float is that number (some clients write them so).
        assert_eq!(to_chat(&json!({"messages": m, "max_tokens": 1024.0}), "m", false).unwrap()["max_tokens"], 1024);
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

    /// The body is read as the client wrote it: escapes, repeated keys (the last counts), tool
    /// inputs with whitespace, schemas with a draft marker, and members of the wrong type.
    #[test]
    fn escapes_repeated_keys_and_odd_shapes() {
        let body = r#"{"max_tokens": 5, "messages": [{"role": "user", "content": "first"}],
            "system": [{"type": "text", "text": "a \"quoted\"\nline"}, {"type": "text", "text": "caf\u00e9"}],
            "messages": [
                {"role": "user", "content": "see \"this\" \/ \u00e9"},
                {"role": "assistant", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two \u00e9"},
                    {"type": "tool_use", "id": "t1", "name": "Edit", "input": { "path" : "a b.rs", "new": "x\t{ y }",
                        "n": [1, 2 ], "u": "\u00e9 é" }}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "line\n\"ok\"", "is_error": false},
                    {"type": "tool_result", "tool_use_id": "t2", "is_error": true, "content": [{"type": "text", "text": "boom"}]},
                    {"type": "tool_result", "tool_use_id": "t3"},
                    {"type": "text", "text": 5},
                    {"type": "image", "source": {"type": "base64", "media_type": "image\/png", "data": "AA\/B"}}]}],
            "max_tokens": 7,
            "tools": [{"name": "Edit", "input_schema": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}},
                      {"name": "Raw", "description": 3, "input_schema": "no"}],
            "metadata": {"user_id": 5}, "stop_sequences": [], "stream": false}"#;
        let got: Value = serde_json::from_slice(&super::to_chat(body.as_bytes(), "m", false).unwrap()).unwrap();
        assert_eq!(got["max_tokens"], 7);
        assert!(got.get("user").is_none() && got.get("stop").is_none() && got.get("stream").is_none());
        let m = &got["messages"];
        assert_eq!(m[0], json!({"role": "system", "content": "a \"quoted\"\nline\n\ncafé"}));
        assert_eq!(m[1], json!({"role": "user", "content": "see \"this\" / é"}));
        assert_eq!(m[2]["content"], "one\n\ntwo é");
        let arguments = m[2]["tool_calls"][0]["function"]["arguments"].as_str().unwrap();
        assert_eq!(arguments, r#"{"path":"a b.rs","new":"x\t{ y }","n":[1,2],"u":"\u00e9 é"}"#);
        assert_eq!(m[3], json!({"role": "tool", "tool_call_id": "t1", "content": "line\n\"ok\""}));
        assert_eq!(m[4], json!({"role": "tool", "tool_call_id": "t2", "content": "Error: boom"}));
        assert_eq!(m[5], json!({"role": "tool", "tool_call_id": "t3", "content": ""}));
        assert_eq!(
            m[6]["content"],
            json!([{"type": "text", "text": ""}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA/B"}}])
        );
        assert_eq!(got["tools"][0]["function"]["parameters"], json!({"type": "object"}));
        assert_eq!(
            got["tools"][1]["function"],
            json!({"name": "Raw", "parameters": {"type": "object", "properties": {}}})
        );

        let err = |body: &[u8]| super::to_chat(body, "m", false).unwrap_err().message;
        assert!(
            err(br#"{"max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "system": 3}"#)
                .contains("`system`")
        );
        assert!(
            err(br#"{"max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "system": [{"type": "image"}]}"#)
                .contains("not \"image\"")
        );
        assert!(
            err(br#"{"max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "tools": {}}"#).contains("list")
        );
        assert!(
            err(br#"{"max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "tools": [{"name": 3}]}"#)
                .contains("`name` is required")
        );
        assert!(err(br#"{"max_tokens": 1, "messages": ["x"]}"#).contains("role ``"));
        assert!(err(br#"{"max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "url"}}]}]}"#).contains("needs a url"));
        assert!(err(br#"{"max_tokens": 1, "messages": [{"role": "user"}]}"#).contains("content must be"));
        assert!(err(br#"{"max_tokens": 1, "messages": "#).contains("invalid JSON"));
        assert!(err(b"  ").contains("JSON object"));
    }

    /// What a differential run against the JSON-tree reader found: a tool `type` that is not a
    /// string is no type (a custom tool), and a draft marker is found however it is escaped.
    #[test]
    fn odd_tool_types_and_escaped_schema_markers() {
        let body = br#"{"max_tokens":5,"messages":[{"role":"user","content":"x"}],
            "tools":[{"type":1,"name":"f","input_schema":{"$s\u0063hema":"x","type":"object"}},{"type":{}}],
            "tool_choice":{"type":"tool","name":"f"}}"#;
        let err = super::to_chat(body, "m", false).unwrap_err().message;
        assert!(err.contains("tools[1]: `name` is required"), "{err}");
        let body = br#"{"max_tokens":5,"messages":[{"role":"user","content":"x"}],
            "tools":[{"type":1,"name":"f","input_schema":{"$s\u0063hema":"x","type":"object"}}],
            "tool_choice":{"type":"tool","name":"f"}}"#;
        let got: Value = serde_json::from_slice(&super::to_chat(body, "m", false).unwrap()).unwrap();
        assert_eq!(got["tools"][0]["function"]["parameters"], json!({"type": "object"}));
        assert_eq!(got["tool_choice"], json!({"type": "function", "function": {"name": "f"}}));
    }

    /// Field names and tool types a client makes up are not remembered one by one: the set of
    /// logged names would otherwise grow with every request.
    #[test]
    fn made_up_names_are_not_remembered() {
        let mut req = json!({"max_tokens": 1, "messages": [{"role": "user", "content": "x"}]});
        let tools: Vec<Value> = (0..50).map(|i| json!({"type": format!("made_up_tool_{i}"), "name": "n"})).collect();
        for i in 0..50 {
            req[format!("made_up_field_{i}")] = json!(1);
        }
        req["tools"] = json!(tools);
        to_chat(&req, "m", false).unwrap();
        let seen = crate::dialect::DROPPED_SEEN.lock().unwrap();
        let names = seen.as_ref().unwrap();
        assert!(!names.iter().any(|n| n.contains("made_up")), "{names:?}");
        assert!(names.contains("(unknown Messages fields)") && names.contains("(other tool types)"));
    }

    /// A body of 200,000 members (distinct, or one key repeated) reads in O(n log n).
    #[test]
    fn many_members_stay_cheap() {
        let mut body = String::from(r#"{"messages":[{"role":"user","content":"hi"}]"#);
        for i in 0..200_000 {
            body.push_str(&format!(",\"k{i}\":{i},\"max_tokens\":{i}"));
        }
        body.push('}');
        let got: Value = serde_json::from_slice(&super::to_chat(body.as_bytes(), "m", false).unwrap()).unwrap();
        assert_eq!(got["max_tokens"], 199_999, "the last of a repeated key");
    }
}
