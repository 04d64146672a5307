//! Anthropic Messages request → OpenAI Chat Completions request, read in one pass with the
//! checking JSON reader and written straight into the new body (no JSON tree on either side):
//! what passes unchanged (strings, tool schemas, sampling values, ids) is copied as the client
//! wrote it.
//!
//! Dropped (logged once): server tools, `thinking` and thinking blocks in history,
//! `cache_control`, and top-level fields Chat has no form for (`context_management`,
//! `container`, `mcp_servers`, `service_tier`, …). Approximated: text blocks are joined into
//! one string; a tool result's images move to the user message after the tool messages.
//! Refused (400): content Chat cannot carry (`document`, file-id images, unknown blocks).

use std::borrow::Cow;

use crate::dialect::json::{self, Member, Reader, compact, each, get, members, number, unescaped};
use crate::dialect::{dropped, json_str};
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

/// The members of a Messages request, raw (`null` is absent: SDKs send them), read in one
/// pass; of a key written twice the last counts, and nothing is judged until the whole body
/// is read.
#[derive(Default)]
struct Request<'a> {
    system: Option<&'a str>,
    messages: Option<&'a str>,
    max_tokens: Option<&'a str>,
    stop_sequences: Option<&'a str>,
    temperature: Option<&'a str>,
    top_p: Option<&'a str>,
    top_k: Option<&'a str>,
    /// `metadata.user_id`.
    user: Option<&'a str>,
    stream: Option<&'a str>,
    tools: Option<&'a str>,
    tool_choice: Option<&'a str>,
}

impl<'a> Request<'a> {
    fn read(body: &'a [u8]) -> Result<Self, ApiError> {
        let mut req = Request::default();
        Reader::document(body, |r| {
            r.members(|key, r| {
                let key = json::key(key);
                let slot = match key.as_ref() {
                    b"system" => &mut req.system,
                    b"messages" => &mut req.messages,
                    b"max_tokens" => &mut req.max_tokens,
                    b"stop_sequences" => &mut req.stop_sequences,
                    b"temperature" => &mut req.temperature,
                    b"top_p" => &mut req.top_p,
                    b"top_k" => &mut req.top_k,
                    b"stream" => &mut req.stream,
                    b"tools" => &mut req.tools,
                    b"tool_choice" => &mut req.tool_choice,
                    b"metadata" => {
                        req.user = None;
                        return r.if_object(|key, r| match json::key(key).as_ref() {
                            b"user_id" => r.raw().map(|u| req.user = u),
                            _ => r.skip(),
                        });
                    }
                    b"model" => return r.skip(),
                    other => {
                        if !r.null()? {
                            r.skip()?;
                            dropped_field(other);
                        }
                        return Ok(());
                    }
                };
                *slot = r.raw()?;
                Ok(())
            })
        })
        .map_err(|_| crate::dialect::refused_body(body))?;
        Ok(req)
    }
}

/// Logs a top-level field Chat has no form for.
fn dropped_field(name: &[u8]) {
    let name = String::from_utf8_lossy(name);
    match (name.as_ref(), NO_CHAT_FORM.iter().find(|&&f| f == name)) {
        ("thinking", _) => {
            dropped("thinking", "Chat Completions has no extended-thinking switch every upstream accepts")
        }
        (_, Some(f)) => dropped(f, "no Chat Completions equivalent"),
        (other, None) => {
            tracing::debug!(field = other, "messages: unknown field dropped");
            dropped("(unknown Messages fields)", "no Chat Completions equivalent; see debug logs for names");
        }
    }
}

/// Translates a Messages request body. `model` is the model to send; `openai` is true when the
/// upstream is OpenAI itself, which rejects fields local servers accept (`top_k`) and wants
/// `max_completion_tokens` instead of the deprecated `max_tokens`.
pub fn to_chat(body: &[u8], model: &str, openai: bool) -> Result<Vec<u8>, ApiError> {
    let req = Request::read(body)?;
    // In the order the old reader (a tree's members sorted by key) met them: the first bad
    // field reported stays the one it reported.
    let tools = req.tools.map(tools).transpose()?;
    let mut messages = Vec::new();
    if let Some(text) = req.system.map(system).transpose()?.filter(|t| !t.is_empty()) {
        messages.push(Message::System(text));
    }
    let stop = match req.stop_sequences {
        Some(list) if list.starts_with('[') => json::is_nonempty_list(list).then_some(list),
        Some(_) => return Err(bad("`stop_sequences` must be a list of strings")),
        None => None,
    };
    let list = req.messages.filter(|m| json::is_nonempty_list(m));
    let list = list.ok_or_else(|| {
        ApiError::bad_request("messages_required", "`messages` is required and must be a non-empty list")
    })?;
    each(list, || Ok(()), |i, m| message(i, m, &mut messages))?;
    let max_tokens = req.max_tokens.and_then(number).ok_or_else(|| {
        ApiError::bad_request("max_tokens_required", "`max_tokens` is required and must be a non-negative integer")
    })?;
    // Only with tools left: OpenAI rejects `tool_choice` and `parallel_tool_calls` without them,
    // and every tool may have been a server tool.
    let tools = tools.filter(|t| !t.is_empty());
    let choice = match (&tools, req.tool_choice) {
        (Some(tools), Some(choice)) => Some(tool_choice(choice, tools)?),
        _ => None,
    };

    // The Chat request; field order is what OpenAI documents.
    let mut out = Vec::with_capacity(body.len() + 256);
    out.extend_from_slice(br#"{"model":"#);
    json_str(&mut out, model);
    out.extend_from_slice(br#","messages":"#);
    json::list(&mut out, &messages, |out, m| m.write(out));
    out.extend_from_slice(if openai { br#","max_completion_tokens":"# } else { br#","max_tokens":"# });
    crate::dialect::push_u64(&mut out, max_tokens);
    let top_k = match req.top_k {
        Some(_) if openai => {
            dropped("top_k", "OpenAI's Chat Completions has no top_k");
            None
        }
        top_k => top_k,
    };
    let user = req.user.filter(|u| u.starts_with('"'));
    for (name, value) in
        [("stop", stop), ("temperature", req.temperature), ("top_p", req.top_p), ("top_k", top_k), ("user", user)]
    {
        if let Some(value) = value {
            json::member(&mut out, name, value);
        }
    }
    // The stream translator needs the usage chunk for `message_delta`.
    if req.stream == Some("true") {
        out.extend_from_slice(br#","stream":true,"stream_options":{"include_usage":true}"#);
    }
    if let Some(tools) = &tools {
        out.extend_from_slice(br#","tools":"#);
        json::list(&mut out, tools, |out, tool| tool.write(out));
    }
    if let Some((choice, parallel)) = choice {
        if let Some(choice) = choice {
            out.extend_from_slice(br#","tool_choice":"#);
            choice.write(&mut out);
        }
        if !parallel {
            out.extend_from_slice(br#","parallel_tool_calls":false"#);
        }
    }
    out.push(b'}');
    Ok(out)
}

/// A string's escaped contents; `None` for any other value.
fn escaped(raw: Option<&str>) -> Option<&str> {
    raw.and_then(json::contents)
}

/// `system`: a string or text blocks, joined into one string (escaped).
fn system(value: &str) -> Result<Cow<'_, str>, ApiError> {
    if let Some(text) = json::contents(value) {
        return Ok(Cow::Borrowed(text));
    }
    let mut texts = Vec::new();
    let not_a_list = || Err(bad("`system` must be a string or a list of text blocks"));
    each(value, not_a_list, |_, b| {
        let b = members(b);
        let kind = get(&b, "type");
        match (kind.and_then(unescaped).as_deref(), escaped(get(&b, "text"))) {
            (Some("text"), Some(t)) => texts.push(t),
            _ => {
                let kind = kind.unwrap_or("null");
                return Err(bad(format!("system: blocks must be text blocks, not {kind}")));
            }
        }
        Ok(())
    })?;
    Ok(json::joined(&texts, json::PARAGRAPH))
}

enum Message<'a> {
    /// Escaped text.
    System(Cow<'a, str>),
    User(UserContent<'a>),
    Assistant {
        /// Escaped text; none (null) when the turn is only tool calls.
        content: Option<Cow<'a, str>>,
        tool_calls: Vec<Call<'a>>,
    },
    Tool {
        tool_call_id: Option<&'a str>,
        /// Escaped text.
        content: Cow<'a, str>,
    },
}

enum UserContent<'a> {
    /// Escaped text.
    Text(Cow<'a, str>),
    Parts(Vec<Part<'a>>),
}

enum Part<'a> {
    /// Escaped text.
    Text(&'a str),
    Image(Url<'a>),
}

/// An image's URL: the client's (a raw string), or a data URL made from a base64 source.
enum Url<'a> {
    Raw(&'a str),
    Data { media: &'a str, data: &'a str },
}

struct Call<'a> {
    id: Option<&'a str>,
    name: Option<&'a str>,
    /// The input as compact JSON text.
    arguments: Cow<'a, str>,
}

impl Message<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Message::System(content) => {
                out.extend_from_slice(br#"{"role":"system","content":"#);
                json::quote(out, content);
            }
            Message::User(UserContent::Text(content)) => {
                out.extend_from_slice(br#"{"role":"user","content":"#);
                json::quote(out, content);
            }
            Message::User(UserContent::Parts(parts)) => {
                out.extend_from_slice(br#"{"role":"user","content":"#);
                json::list(out, parts, |out, part| {
                    match part {
                        Part::Text(t) => {
                            out.extend_from_slice(br#"{"type":"text","text":"#);
                            json::quote(out, t);
                        }
                        Part::Image(url) => {
                            out.extend_from_slice(br#"{"type":"image_url","image_url":{"url":"#);
                            match url {
                                Url::Raw(raw) => out.extend_from_slice(raw.as_bytes()),
                                // Escaped contents both: the URL is their joined text.
                                Url::Data { media, data } => {
                                    out.extend_from_slice(b"\"data:");
                                    out.extend_from_slice(media.as_bytes());
                                    out.extend_from_slice(b";base64,");
                                    out.extend_from_slice(data.as_bytes());
                                    out.push(b'"');
                                }
                            }
                            out.push(b'}');
                        }
                    }
                    out.push(b'}');
                });
            }
            Message::Assistant { content, tool_calls } => {
                out.extend_from_slice(br#"{"role":"assistant","content":"#);
                match content {
                    Some(content) => json::quote(out, content),
                    None => out.extend_from_slice(b"null"),
                }
                if !tool_calls.is_empty() {
                    out.extend_from_slice(br#","tool_calls":"#);
                    json::list(out, tool_calls, |out, call| {
                        out.extend_from_slice(br#"{"id":"#);
                        out.extend_from_slice(call.id.unwrap_or("null").as_bytes());
                        out.extend_from_slice(br#","type":"function","function":{"name":"#);
                        out.extend_from_slice(call.name.unwrap_or("null").as_bytes());
                        out.extend_from_slice(br#","arguments":"#);
                        json_str(out, &call.arguments);
                        out.extend_from_slice(b"}}");
                    });
                }
            }
            Message::Tool { tool_call_id, content } => {
                out.extend_from_slice(br#"{"role":"tool","tool_call_id":"#);
                out.extend_from_slice(tool_call_id.unwrap_or("null").as_bytes());
                out.extend_from_slice(br#","content":"#);
                json::quote(out, content);
            }
        }
        out.push(b'}');
    }
}

/// Appends the Chat messages for one Messages turn (`value`, checked text). A user turn's
/// `tool_result` blocks become `tool` messages placed first: Chat wants them right after the
/// assistant message that made the calls, before any other user content.
fn message<'a>(i: usize, value: &'a str, out: &mut Vec<Message<'a>>) -> Result<(), ApiError> {
    // Anything but an object has no members, and so no role.
    let m = members(value);
    let role = get(&m, "role").and_then(unescaped).unwrap_or_default();
    let assistant = match role.as_ref() {
        "user" => false,
        "assistant" => true,
        _ => return Err(bad(format!("messages[{i}]: role `{role}` is not supported (use user or assistant)"))),
    };
    let content = get(&m, "content").unwrap_or("null");
    if let Some(text) = json::contents(content) {
        out.push(match assistant {
            true => Message::Assistant { content: Some(Cow::Borrowed(text)), tool_calls: Vec::new() },
            false => Message::User(UserContent::Text(Cow::Borrowed(text))),
        });
        return Ok(());
    }
    let mut parts = Vec::new();
    let mut calls = Vec::new();
    let not_a_list = || Err(bad(format!("messages[{i}]: content must be a string or a list of blocks")));
    each(content, not_a_list, |_, b| {
        let b = members(b);
        let kind = get(&b, "type").and_then(unescaped).unwrap_or_default();
        match (assistant, kind.as_ref()) {
            (_, "text") => parts.push(Part::Text(escaped(get(&b, "text")).unwrap_or_default())),
            (false, "image") => parts.push(image(i, get(&b, "source"))?),
            (false, "tool_result") => {
                let (content, images) = tool_result(i, &b)?;
                out.push(Message::Tool { tool_call_id: get(&b, "tool_use_id"), content });
                parts.extend(images);
            }
            (true, "tool_use") => {
                // A missing input is an empty object, Anthropic's own default.
                let arguments = get(&b, "input").map_or(Cow::Borrowed("{}"), compact);
                calls.push(Call { id: get(&b, "id"), name: get(&b, "name"), arguments });
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
        Ok(())
    })?;
    let texts = || parts.iter().filter_map(|p| if let Part::Text(t) = p { Some(*t) } else { None }).collect::<Vec<_>>();
    if assistant {
        // Only text parts in an assistant turn (anything else was refused above). One that only
        // held thinking stays, as empty text: dropping it would put two user messages in a row,
        // which some chat templates reject.
        let content = (!parts.is_empty() || calls.is_empty()).then(|| json::joined(&texts(), json::PARAGRAPH));
        out.push(Message::Assistant { content, tool_calls: calls });
    } else if parts.iter().all(|p| matches!(p, Part::Text(_))) {
        // Text only: one string, which every server accepts (not all take a list of parts).
        if !parts.is_empty() {
            out.push(Message::User(UserContent::Text(json::joined(&texts(), json::PARAGRAPH))));
        }
    } else {
        out.push(Message::User(UserContent::Parts(parts)));
    }
    Ok(())
}

/// An `image` block's `source` → an `image_url` part (base64 sources as a data URL).
fn image<'a>(i: usize, source: Option<&'a str>) -> Result<Part<'a>, ApiError> {
    let source = source.map(members).unwrap_or_default();
    let kind = get(&source, "type");
    let url = match kind.and_then(unescaped).as_deref() {
        Some("base64") => match (escaped(get(&source, "media_type")), escaped(get(&source, "data"))) {
            (Some(media), Some(data)) => Url::Data { media, data },
            _ => return Err(bad(format!("messages[{i}]: base64 image needs media_type and data"))),
        },
        Some("url") => match get(&source, "url").filter(|u| u.starts_with('"')) {
            Some(url) => Url::Raw(url),
            None => return Err(bad(format!("messages[{i}]: url image needs a url"))),
        },
        _ => {
            let kind = kind.unwrap_or("null");
            return Err(bad(format!("messages[{i}]: image source type {kind} is not supported")));
        }
    };
    Ok(Part::Image(url))
}

/// A `tool_result` → the `tool` message's text (escaped), and its images as parts for the user
/// message that follows (Chat tool messages carry text only; Claude Code's Read tool returns
/// images).
fn tool_result<'a>(i: usize, b: &[Member<'_, 'a>]) -> Result<(Cow<'a, str>, Vec<Part<'a>>), ApiError> {
    let content = get(b, "content");
    let error = get(b, "is_error") == Some("true");
    let mut texts = Vec::new();
    let mut images = Vec::new();
    match content {
        // The usual result, one string, is copied as the client wrote it.
        Some(text) if let Some(text) = json::contents(text) => {
            if !error {
                return Ok((Cow::Borrowed(text), Vec::new()));
            }
            texts.push(text);
        }
        Some(list) if list.starts_with('[') => {
            each(
                list,
                || Ok(()),
                |_, c| {
                    let c = members(c);
                    match get(&c, "type").and_then(unescaped).unwrap_or_default().as_ref() {
                        "text" => texts.push(escaped(get(&c, "text")).unwrap_or_default()),
                        "image" => images.push(image(i, get(&c, "source"))?),
                        other => {
                            return Err(bad(format!(
                                "messages[{i}]: tool_result content block type `{other}` has no Chat Completions equivalent"
                            )));
                        }
                    }
                    Ok(())
                },
            )?;
        }
        None => {}
        Some(_) => {
            return Err(bad(format!("messages[{i}]: tool_result content must be a string or a list of blocks")));
        }
    }
    let mut content = if error { "Error: ".to_owned() } else { String::new() };
    content.push_str(&json::joined(&texts, json::PARAGRAPH));
    if !images.is_empty() {
        // Says where the tool's images went, so the model connects them to this call.
        if !texts.is_empty() {
            content.push_str(json::PARAGRAPH);
        }
        content.push_str("(image attached below)");
    }
    Ok((Cow::Owned(content), images))
}

/// A custom tool as a Chat function tool.
struct Tool<'a> {
    /// A raw string.
    name: &'a str,
    description: Option<&'a str>,
    /// An object.
    schema: Option<&'a str>,
}

impl Tool<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(br#"{"type":"function","function":{"name":"#);
        out.extend_from_slice(self.name.as_bytes());
        if let Some(description) = self.description {
            json::member(out, "description", description);
        }
        out.extend_from_slice(br#","parameters":"#);
        write_schema(self.schema, out);
        out.extend_from_slice(b"}}");
    }
}

/// The tool's `input_schema` when it is an object, less a `$schema` draft marker (it constrains
/// nothing, and some servers' schema converters reject it); else an empty object schema.
fn write_schema(schema: Option<&str>, out: &mut Vec<u8>) {
    let Some(schema) = schema else {
        out.extend_from_slice(br#"{"type":"object","properties":{}}"#);
        return;
    };
    // Most schemas have no marker (nor escapes that could spell one) and are copied whole.
    if !schema.contains("\"$schema\"") && !schema.contains("\\u") {
        out.extend_from_slice(schema.as_bytes());
        return;
    }
    out.push(b'{');
    let mut first = true;
    let _ = Reader::checked(schema, |r| {
        r.members(|key, r| {
            let value = r.value()?;
            if json::key(key).as_ref() != b"$schema" {
                if !std::mem::take(&mut first) {
                    out.push(b',');
                }
                json::quote(out, std::str::from_utf8(key).unwrap_or_default());
                out.push(b':');
                out.extend_from_slice(value.as_bytes());
            }
            Ok(())
        })
    });
    out.push(b'}');
}

/// Custom tools → Chat function tools; server tools (a `type` other than `custom`) run on
/// Anthropic's side only, so they are dropped.
fn tools(value: &str) -> Result<Vec<Tool<'_>>, ApiError> {
    let mut out = Vec::new();
    each(
        value,
        || Err(bad("`tools` must be a list")),
        |i, t| {
            let t = members(t);
            // Only a type that names something else is a server tool (a tree read a type that is
            // not a string as no type).
            if let Some(kind) = get(&t, "type").and_then(unescaped).filter(|k| k != "custom") {
                server_tool(&kind);
                return Ok(());
            }
            let name = get(&t, "name").filter(|n| n.starts_with('"'));
            let name = name.ok_or_else(|| bad(format!("tools[{i}]: `name` is required")))?;
            let schema = get(&t, "input_schema").filter(|s| s.starts_with('{'));
            let description = get(&t, "description").filter(|d| d.starts_with('"'));
            out.push(Tool { name, description, schema });
            Ok(())
        },
    )?;
    Ok(out)
}

/// Logs a dropped server tool by its family.
fn server_tool(kind: &str) {
    match SERVER_TOOLS.iter().find(|&&f| kind.strip_prefix(f).is_some_and(|v| v.is_empty() || v.starts_with('_'))) {
        Some(f) => dropped(&format!("tool type {f}"), "a server tool only Anthropic can run"),
        None => dropped("(other tool types)", "not a custom tool: only Anthropic can run it"),
    }
}

/// Chat's `tool_choice`.
enum Choice<'a> {
    Mode(&'static str),
    /// A named function's name, raw (a tool's, as the client wrote it).
    Function(&'a str),
}

impl Choice<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Choice::Mode(mode) => json_str(out, mode),
            Choice::Function(name) => {
                out.extend_from_slice(br#"{"type":"function","function":{"name":"#);
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"}}");
            }
        }
    }
}

/// `tool_choice` (`None` when it leaves the upstream's default), and whether parallel tool
/// calls stay allowed. A named tool must be one of the tools sent (not a dropped server tool).
fn tool_choice<'a>(value: &str, tools: &[Tool<'a>]) -> Result<(Option<Choice<'a>>, bool), ApiError> {
    let choice = members(value);
    let parallel = get(&choice, "disable_parallel_tool_use") != Some("true");
    let choice = match get(&choice, "type").and_then(unescaped).as_deref() {
        Some("auto") => Choice::Mode("auto"),
        Some("any") => Choice::Mode("required"),
        Some("none") => Choice::Mode("none"),
        Some("tool") => {
            let name = get(&choice, "name").and_then(unescaped).unwrap_or_default();
            match tools.iter().find(|t| unescaped(t.name).as_deref() == Some(&name)) {
                Some(tool) => Choice::Function(tool.name),
                None => {
                    return Err(bad(format!("tool_choice names `{name}`, which is not a custom tool of this request")));
                }
            }
        }
        None => return Ok((None, parallel)),
        Some(other) => return Err(bad(format!("tool_choice type `{other}` is not supported"))),
    };
    Ok((Some(choice), parallel))
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

    /// Keys spelled with escapes are the keys they spell; a list is read up to the first element
    /// refused, which the refusal names; a tool result's images and texts keep their escapes.
    #[test]
    fn escaped_keys_and_the_first_refusal() {
        let body = br#"{"m\u0061x_tokens":3,"m\u0065ssages":[{"r\u006fle":"user","c\u006fntent":[
            {"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"a\"b"},
                {"type":"image","source":{"type":"base64","media_type":"image\/png","data":"A\/B"}}]}]}],
            "t\u006fols":[{"name":"f","input_schema":{"$schema":"x","a":1,"$s\u0063hema":"y","a\u0062":2}}]}"#;
        let got: Value = serde_json::from_slice(&super::to_chat(body, "m", false).unwrap()).unwrap();
        assert_eq!(got["max_tokens"], 3);
        assert_eq!(
            got["messages"],
            json!([
                {"role": "tool", "tool_call_id": "t", "content": "a\"b\n\n(image attached below)"},
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,A/B"}}]}
            ])
        );
        assert_eq!(got["tools"][0]["function"]["parameters"], json!({"a": 1, "ab": 2}));
        let list = |blocks: &str| {
            format!(
                r#"{{"max_tokens":1,"messages":[{{"role":"user","content":"x"}},{{"role":"user","content":[{blocks}]}}]}}"#
            )
        };
        let refused = super::to_chat(list(r#"{"type":"text","text":"a"},1,{"type":"bogus"}"#).as_bytes(), "m", false);
        assert!(refused.unwrap_err().message.contains("messages[1]: content block type `(missing)`"));
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
