//! OpenAI chat-completions request → Anthropic Messages API request, read in one pass with
//! the checking JSON reader and written straight into the new body: no JSON tree is built,
//! and what passes unchanged (texts, tool schemas, sampling values, ids) is copied as the
//! client wrote it.

use std::borrow::Cow;

use tracing::debug;

use crate::dialect::chat::{self, Call};
use crate::dialect::json::{self, Invalid, Reader, number, unescaped};
use crate::dialect::{json_str, push_u64};
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
    let req = Request::read(body)?;
    let asked = Asked { stream: req.stream == Some("true"), include_usage: req.include_usage == Some("true") };
    Ok((req.write(model, &asked, body.len())?, asked))
}

/// A Chat request body (the client's, or the hub form of another dialect's) as Anthropic's
/// body; `asked.stream` decides whether to stream.
pub fn from_chat(chat: &[u8], model: &str, asked: &Asked) -> Result<Vec<u8>, ApiError> {
    Request::read(chat)?.write(model, asked, chat.len())
}

/// The members of a Chat request the translation reads, raw, in one pass: of a key written
/// twice the last counts, as in a JSON tree (so nothing is judged until the whole body is
/// read). The messages and tools, most of a body, are read into their parts in that pass.
#[derive(Default)]
struct Request<'a> {
    /// `Err` when they are no list.
    messages: Option<Result<Vec<Message<'a>>, ()>>,
    tools: Option<Result<Vec<Tool<'a>>, ()>>,
    tool_choice: Option<&'a str>,
    max_tokens: Option<&'a str>,
    max_completion_tokens: Option<&'a str>,
    temperature: Option<&'a str>,
    top_p: Option<&'a str>,
    stop: Option<&'a str>,
    user: Option<&'a str>,
    n: Option<&'a str>,
    logprobs: Option<&'a str>,
    top_logprobs: Option<&'a str>,
    response_format: Option<&'a str>,
    /// `audio` and `modalities` that ask for audio.
    audio: [bool; 2],
    parallel_tool_calls: Option<&'a str>,
    stream: Option<&'a str>,
    /// `stream_options.include_usage`.
    include_usage: Option<&'a str>,
}

/// A message's members; what is no object has none (and so no role).
#[derive(Default)]
struct Message<'a> {
    role: Option<&'a str>,
    content: Option<&'a str>,
    tool_calls: Vec<Call<'a>>,
    tool_call_id: Option<&'a str>,
}

/// A tool's members; what is no object has none.
#[derive(Default)]
struct Tool<'a> {
    kind: Option<&'a str>,
    name: Option<&'a str>,
    description: Option<&'a str>,
    parameters: Option<&'a str>,
}

impl<'a> Request<'a> {
    fn read(body: &'a [u8]) -> Result<Self, ApiError> {
        let mut req = Request::default();
        Reader::document(body, |r| {
            r.members(|key, r| {
                match json::key(key).as_ref() {
                    b"messages" => req.messages = Some(list(r, Message::member, Message::known)?),
                    b"tools" => {
                        req.tools = match r.null()? {
                            true => None,
                            false => Some(list(r, Tool::member, Tool::function)?),
                        }
                    }
                    b"tool_choice" => req.tool_choice = r.raw()?,
                    b"max_tokens" => req.max_tokens = r.raw()?,
                    b"max_completion_tokens" => req.max_completion_tokens = r.raw()?,
                    b"temperature" => req.temperature = r.raw()?,
                    b"top_p" => req.top_p = r.raw()?,
                    b"stop" => req.stop = r.raw()?,
                    b"user" => req.user = r.raw()?,
                    b"n" => req.n = r.raw()?,
                    b"logprobs" => req.logprobs = r.raw()?,
                    b"top_logprobs" => req.top_logprobs = r.raw()?,
                    b"response_format" => req.response_format = r.raw()?,
                    b"audio" => req.audio[0] = r.value()?.contains("audio"),
                    b"modalities" => req.audio[1] = r.value()?.contains("audio"),
                    b"parallel_tool_calls" => req.parallel_tool_calls = r.raw()?,
                    b"stream" => req.stream = r.raw()?,
                    b"stream_options" => {
                        req.include_usage = None;
                        r.if_object(|key, r| match json::key(key).as_ref() {
                            b"include_usage" => r.raw().map(|v| req.include_usage = v),
                            _ => r.skip(),
                        })?
                    }
                    b"model" => r.skip()?,
                    other => {
                        debug!(field = %String::from_utf8_lossy(other), "dropped: no Anthropic equivalent");
                        r.skip()?
                    }
                }
                Ok(())
            })
        })
        .map_err(|_| crate::dialect::refused_body(body))?;
        Ok(req)
    }

    fn write(&self, model: &str, asked: &Asked, size: usize) -> Result<Vec<u8>, ApiError> {
        let whole = |raw: Option<&str>| raw.and_then(number);
        if whole(self.n).is_some_and(|n| n > 1) {
            return Err(bad("`n` > 1 is not supported by Anthropic: it returns one choice"));
        }
        if self.logprobs == Some("true") {
            return Err(bad("`logprobs` is not supported by Anthropic"));
        }
        if self.top_logprobs.is_some() {
            return Err(bad("`top_logprobs` is not supported by Anthropic"));
        }
        if self.response_format.is_some_and(|f| !format_is_text(f)) {
            return Err(bad(
                "`response_format` (JSON mode / structured output) is not supported by the Anthropic translation",
            ));
        }
        if self.audio.contains(&true) {
            return Err(bad("audio output is not supported by Anthropic"));
        }
        let stop = match self.stop {
            Some(one) if one.starts_with('"') => Some(Stop::One(one)),
            Some(list) if list.starts_with('[') => json::is_nonempty_list(list).then_some(Stop::List(list)),
            None => None,
            Some(_) => return Err(bad("`stop` must be a string or a list of strings")),
        };
        let tools = match &self.tools {
            Some(Ok(tools)) => Some(tools),
            Some(Err(())) => return Err(bad("`tools` must be a list")),
            None => None,
        };
        if let Some(tool) = tools.into_iter().flatten().find(|t| !t.function()) {
            // As the client wrote it, escapes and all (what is no string: its JSON).
            let kind = tool.kind.unwrap_or("null");
            return Err(bad(format!("tool type {kind} is not supported by Anthropic")));
        }
        let mut choice = self.tool_choice.map(tool_choice).transpose()?;
        if self.parallel_tool_calls == Some("false") && tools.is_some() {
            let choice = choice.get_or_insert(Choice { kind: "auto", name: None, disable_parallel_tool_use: false });
            choice.disable_parallel_tool_use = choice.kind != "none";
        }
        let messages = match &self.messages {
            Some(Ok(messages)) => &messages[..],
            Some(Err(())) => return Err(bad("`messages` must be an array")),
            None => &[],
        };
        let mut system: Vec<Cow<str>> = Vec::new();
        let mut turns: Vec<Turn> = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            message(i, m, &mut system, &mut turns)?;
        }
        if turns.is_empty() {
            return Err(ApiError::bad_request("messages_required", "messages is required (besides system messages)"));
        }

        // The Anthropic request, in the order Anthropic documents its fields.
        let mut out = Vec::with_capacity(size + 256);
        out.extend_from_slice(br#"{"model":"#);
        json_str(&mut out, model);
        if !system.is_empty() {
            out.extend_from_slice(br#","system":""#);
            // Escaped text joined with an escaped blank line.
            out.extend_from_slice(system.join(r"\n\n").as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(br#","messages":"#);
        json::list(&mut out, &turns, |out, turn| {
            out.extend_from_slice(br#"{"role":""#);
            out.extend_from_slice(turn.role.as_bytes());
            out.extend_from_slice(br#"","content":"#);
            write_blocks(&turn.content, out);
            out.push(b'}');
        });
        out.extend_from_slice(br#","max_tokens":"#);
        // `max_completion_tokens` replaced `max_tokens`: it wins when both are numbers.
        let max_tokens = whole(self.max_completion_tokens).or(whole(self.max_tokens));
        push_u64(&mut out, max_tokens.unwrap_or(DEFAULT_MAX_TOKENS));
        for (name, value) in [("temperature", self.temperature), ("top_p", self.top_p)] {
            if let Some(value) = value {
                json::member(&mut out, name, value);
            }
        }
        match stop {
            Some(Stop::One(one)) => {
                out.extend_from_slice(br#","stop_sequences":["#);
                out.extend_from_slice(one.as_bytes());
                out.push(b']');
            }
            Some(Stop::List(list)) => {
                out.extend_from_slice(br#","stop_sequences":"#);
                out.extend_from_slice(list.as_bytes());
            }
            None => {}
        }
        if let Some(user) = self.user.filter(|u| u.starts_with('"')) {
            out.extend_from_slice(br#","metadata":{"user_id":"#);
            out.extend_from_slice(user.as_bytes());
            out.push(b'}');
        }
        if let Some(tools) = tools {
            out.extend_from_slice(br#","tools":"#);
            json::list(&mut out, tools, |out, tool| tool.write(out));
        }
        if let Some(choice) = choice {
            out.extend_from_slice(br#","tool_choice":"#);
            choice.write(&mut out);
        }
        if asked.stream {
            out.extend_from_slice(br#","stream":true"#);
        }
        out.push(b'}');
        Ok(out)
    }
}

/// The list that is next, each element that is an object read by `member` into a `T` (what is
/// no object is a `T` of no members); `Err(())` when it is no list. Elements after the first
/// that `kept` refuses (which the translation refuses) are checked but not kept: a list of
/// tiny elements must not take many times its size in memory.
fn list<'a, T: Default>(
    r: &mut Reader<'a>,
    mut member: impl FnMut(&mut T, &'a [u8], &mut Reader<'a>) -> Result<(), Invalid>,
    kept: impl Fn(&T) -> bool,
) -> Result<Result<Vec<T>, ()>, Invalid> {
    if r.peek() != Some(b'[') {
        return r.skip().map(|_| Err(()));
    }
    let (mut items, mut refused) = (Vec::new(), false);
    r.array(|r| {
        if refused {
            return r.skip();
        }
        let item = r.object_or_none(&mut member)?.unwrap_or_default();
        refused = !kept(&item);
        items.push(item);
        Ok(())
    })?;
    Ok(Ok(items))
}

impl<'a> Message<'a> {
    /// Whether its role is one the translation takes (any other is refused).
    fn known(&self) -> bool {
        let role = self.role.and_then(unescaped);
        matches!(role.as_deref(), Some("system" | "developer" | "user" | "assistant" | "tool"))
    }

    fn member(&mut self, key: &'a [u8], r: &mut Reader<'a>) -> Result<(), Invalid> {
        match json::key(key).as_ref() {
            b"role" => self.role = r.raw()?,
            b"content" => self.content = r.raw()?,
            b"tool_calls" => self.tool_calls = chat::calls(r)?,
            b"tool_call_id" => self.tool_call_id = r.raw()?,
            _ => r.skip()?,
        }
        Ok(())
    }
}

impl<'a> Tool<'a> {
    /// Whether it is a function tool (any other is refused).
    fn function(&self) -> bool {
        self.kind.and_then(unescaped).as_deref() == Some("function")
    }

    fn member(&mut self, key: &'a [u8], r: &mut Reader<'a>) -> Result<(), Invalid> {
        match json::key(key).as_ref() {
            b"type" => self.kind = r.raw()?,
            b"function" => {
                (self.name, self.description, self.parameters) = (None, None, None);
                r.if_object(|key, r| {
                    match json::key(key).as_ref() {
                        b"name" => self.name = r.raw()?,
                        b"description" => self.description = r.raw()?,
                        b"parameters" => self.parameters = r.raw()?,
                        _ => r.skip()?,
                    }
                    Ok(())
                })?
            }
            _ => r.skip()?,
        }
        Ok(())
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(br#"{"name":"#);
        out.extend_from_slice(self.name.unwrap_or("null").as_bytes());
        if let Some(description) = self.description.filter(|d| d.starts_with('"')) {
            out.extend_from_slice(br#","description":"#);
            out.extend_from_slice(description.as_bytes());
        }
        out.extend_from_slice(br#","input_schema":"#);
        // The function's `parameters` when they are an object, else an empty object schema.
        let schema = self.parameters.filter(|p| p.starts_with('{'));
        out.extend_from_slice(schema.unwrap_or(r#"{"type":"object","properties":{}}"#).as_bytes());
        out.push(b'}');
    }
}

/// Whether a `response_format` asks for plain text (`{"type": "text"}`).
fn format_is_text(format: &str) -> bool {
    let mut kind = None;
    let read = Reader::checked(format, |r| {
        r.members(|key, r| match json::key(key).as_ref() {
            b"type" => r.raw().map(|t| kind = t),
            _ => r.skip(),
        })
    });
    read.is_ok() && kind.and_then(unescaped).as_deref() == Some("text")
}

/// `stop`: one string becomes a list of it; a list is copied.
enum Stop<'a> {
    One(&'a str),
    List(&'a str),
}

struct Turn<'a> {
    role: &'static str,
    content: Vec<Block<'a>>,
}

enum Block<'a> {
    /// Escaped text.
    Text(&'a str),
    Image(Source<'a>),
    ToolUse {
        id: Option<&'a str>,
        name: Option<&'a str>,
        input: Cow<'a, str>,
    },
    ToolResult {
        tool_use_id: Option<&'a str>,
        content: ResultContent<'a>,
    },
}

enum Source<'a> {
    Base64 { media_type: Cow<'a, str>, data: Cow<'a, str> },
    Url(Cow<'a, str>),
}

enum ResultContent<'a> {
    /// A string, raw.
    Text(&'a str),
    Blocks(Vec<Block<'a>>),
}

fn write_blocks(blocks: &[Block], out: &mut Vec<u8>) {
    json::list(out, blocks, |out, block| {
        match block {
            Block::Text(text) => {
                out.extend_from_slice(br#"{"type":"text","text":"#);
                json::quote(out, text);
            }
            Block::Image(Source::Base64 { media_type, data }) => {
                out.extend_from_slice(br#"{"type":"image","source":{"type":"base64","media_type":"#);
                json_str(out, media_type);
                out.extend_from_slice(br#","data":"#);
                json_str(out, data);
                out.push(b'}');
            }
            Block::Image(Source::Url(url)) => {
                out.extend_from_slice(br#"{"type":"image","source":{"type":"url","url":"#);
                json_str(out, url);
                out.push(b'}');
            }
            Block::ToolUse { id, name, input } => {
                out.extend_from_slice(br#"{"type":"tool_use","id":"#);
                out.extend_from_slice(id.unwrap_or("null").as_bytes());
                out.extend_from_slice(br#","name":"#);
                out.extend_from_slice(name.unwrap_or("null").as_bytes());
                out.extend_from_slice(br#","input":"#);
                out.extend_from_slice(input.as_bytes());
            }
            Block::ToolResult { tool_use_id, content } => {
                out.extend_from_slice(br#"{"type":"tool_result","tool_use_id":"#);
                out.extend_from_slice(tool_use_id.unwrap_or("null").as_bytes());
                out.extend_from_slice(br#","content":"#);
                match content {
                    ResultContent::Text(raw) => out.extend_from_slice(raw.as_bytes()),
                    ResultContent::Blocks(blocks) => write_blocks(blocks, out),
                }
            }
        }
        out.push(b'}');
    });
}

/// Adds one OpenAI message: system text, or content blocks appended to the turn of its
/// role (consecutive same-role messages merge into one turn, as Anthropic requires).
fn message<'a>(
    i: usize,
    m: &Message<'a>,
    system: &mut Vec<Cow<'a, str>>,
    turns: &mut Vec<Turn<'a>>,
) -> Result<(), ApiError> {
    // Anything but an object has no role, as a JSON tree would read it.
    let role = m.role.and_then(unescaped);
    let (turn_role, blocks) = match role.as_deref().unwrap_or_default() {
        "system" | "developer" => {
            let text = m
                .content
                .map_or(Some(Cow::Borrowed("")), text_of)
                .ok_or_else(|| bad(format!("messages[{i}]: system content must be text")))?;
            system.push(text);
            return Ok(());
        }
        "user" => ("user", content_blocks(i, m.content)?),
        "assistant" => {
            let mut blocks = content_blocks(i, m.content)?;
            for call in &m.tool_calls {
                let input = input(call.arguments)
                    .ok_or_else(|| bad(format!("messages[{i}]: tool call arguments are not JSON")))?;
                blocks.push(Block::ToolUse { id: call.id, name: call.name, input });
            }
            ("assistant", blocks)
        }
        "tool" => {
            let content = match m.content.filter(|c| c.starts_with('"')) {
                Some(text) => ResultContent::Text(text),
                None => ResultContent::Blocks(content_blocks(i, m.content)?),
            };
            ("user", vec![Block::ToolResult { tool_use_id: m.tool_call_id, content }])
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

/// A tool call's `arguments` (a string of JSON text) as Anthropic's `input`: the JSON value,
/// `{}` when there is none; `None` when the text is not JSON.
fn input(arguments: Option<&str>) -> Option<Cow<'_, str>> {
    let text = arguments.and_then(unescaped).filter(|t| !t.trim().is_empty());
    let Some(text) = text else { return Some(Cow::Borrowed("{}")) };
    json::Reader::document(text.as_bytes(), |r| r.skip()).ok()?;
    // The value, without the whitespace around it (JSON's, which a value neither starts nor
    // ends with).
    Some(match text {
        Cow::Borrowed(text) => Cow::Borrowed(text.trim()),
        Cow::Owned(text) => Cow::Owned(text.trim().to_owned()),
    })
}

/// String content or text parts joined with newlines, escaped; `None` when it is neither.
fn text_of(content: &str) -> Option<Cow<'_, str>> {
    match content.as_bytes().first() {
        Some(b'"') => json::contents(content).map(Cow::Borrowed),
        Some(b'[') => {
            let texts: Vec<&str> = parts(content).iter().filter_map(|p| p.text.and_then(json::contents)).collect();
            Some(Cow::Owned(texts.join(r"\n")))
        }
        _ => None,
    }
}

/// A content part's members, raw; what is no object has none.
#[derive(Default)]
struct Part<'a> {
    kind: Option<&'a str>,
    text: Option<&'a str>,
    /// `image_url.url`, or `image_url` itself when it is a string.
    url: Option<&'a str>,
}

/// The parts of a content list (checked text).
fn parts(list: &str) -> Vec<Part<'_>> {
    let mut parts = Vec::new();
    let _ = Reader::checked(list, |r| {
        r.array(|r| {
            let mut part = Part::default();
            r.if_object(|key, r| {
                match json::key(key).as_ref() {
                    b"type" => part.kind = r.raw()?,
                    b"text" => part.text = r.raw()?,
                    b"image_url" => {
                        part.url = None;
                        match r.peek() {
                            Some(b'{') => r.members(|key, r| match json::key(key).as_ref() {
                                b"url" => r.raw().map(|u| part.url = u),
                                _ => r.skip(),
                            })?,
                            _ => part.url = r.raw()?,
                        }
                    }
                    _ => r.skip()?,
                }
                Ok(())
            })?;
            parts.push(part);
            Ok(())
        })
    });
    parts
}

/// OpenAI content → Anthropic blocks: text, and images (data URLs as base64, http(s) as url).
/// Empty text is left out (Anthropic rejects empty text blocks).
fn content_blocks(i: usize, content: Option<&str>) -> Result<Vec<Block<'_>>, ApiError> {
    let Some(content) = content else { return Ok(Vec::new()) };
    if let Some(text) = json::contents(content) {
        return Ok(if text.is_empty() { Vec::new() } else { vec![Block::Text(text)] });
    }
    if !content.starts_with('[') {
        return Err(bad(format!("messages[{i}]: content must be a string or a list of parts")));
    }
    let parts = parts(content);
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        match part.kind.and_then(unescaped).as_deref().unwrap_or_default() {
            "text" => {
                if let Some(text) = part.text.and_then(json::contents).filter(|t| !t.is_empty()) {
                    out.push(Block::Text(text));
                }
            }
            "image_url" => out.push(image(i, part.url.and_then(unescaped).unwrap_or_default())?),
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
        return Ok(Block::Image(source));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(Block::Image(Source::Url(part(0..url.len()))));
    }
    Err(bad(format!("messages[{i}]: image_url must be a data: or http(s) URL")))
}

/// `tool_choice` in Anthropic's form.
struct Choice<'a> {
    kind: &'static str,
    /// A named tool's name (`Some(None)`: null, the client gave none).
    name: Option<Option<&'a str>>,
    disable_parallel_tool_use: bool,
}

impl Choice<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(br#"{"type":""#);
        out.extend_from_slice(self.kind.as_bytes());
        out.push(b'"');
        if let Some(name) = self.name {
            out.extend_from_slice(br#","name":"#);
            out.extend_from_slice(name.unwrap_or("null").as_bytes());
        }
        if self.disable_parallel_tool_use {
            out.extend_from_slice(br#","disable_parallel_tool_use":true"#);
        }
        out.push(b'}');
    }
}

fn tool_choice(value: &str) -> Result<Choice<'_>, ApiError> {
    let choice = |kind| Ok(Choice { kind, name: None, disable_parallel_tool_use: false });
    match unescaped(value).as_deref() {
        Some("auto") => return choice("auto"),
        Some("none") => return choice("none"),
        Some("required") => return choice("any"),
        _ => {}
    }
    let (mut kind, mut name) = (None, None);
    let read = Reader::checked(value, |r| {
        r.members(|key, r| {
            match json::key(key).as_ref() {
                b"type" => kind = r.raw()?,
                b"function" => {
                    name = None;
                    r.if_object(|key, r| match json::key(key).as_ref() {
                        b"name" => r.raw().map(|n| name = n),
                        _ => r.skip(),
                    })?
                }
                _ => r.skip()?,
            }
            Ok(())
        })
    });
    if read.is_ok() && kind.and_then(unescaped).as_deref() == Some("function") {
        return Ok(Choice { kind: "tool", name: Some(name), disable_parallel_tool_use: false });
    }
    Err(bad(format!("tool_choice {value} is not supported")))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn choice(v: Value) -> Value {
        let mut out = Vec::new();
        tool_choice(&v.to_string()).unwrap().write(&mut out);
        serde_json::from_slice(&out).unwrap()
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
        // Keys spelled with escapes are the keys they spell; a repeated one, the last.
        let body = br#"{"m\u0065ssages":[{"r\u006fle":"user","content":"hi"}],"max_t\u006fkens":7,
            "tools":[{"type":"functi\u006fn","function":{"name":"f"}}],"audio":{"voice":"audio"},"audio":null}"#;
        let got: Value = serde_json::from_slice(&translate(body, "m").unwrap().0).unwrap();
        assert_eq!(
            (&got["messages"][0]["role"], &got["max_tokens"], &got["tools"][0]["name"]),
            (&json!("user"), &json!(7), &json!("f"))
        );
        let body = br#"{"messages":[{"role":"user","content":"q"},{"role":"assistant","tool_calls":[{"id":"c1",
            "function":{"n\u0061me":"f","\u0061rguments":"{\"x\":1}"}}]}]}"#;
        let got: Value = serde_json::from_slice(&translate(body, "m").unwrap().0).unwrap();
        assert_eq!(
            got["messages"][1]["content"][0],
            json!({"type": "tool_use", "id": "c1", "name": "f", "input": {"x": 1}})
        );
        // After the first message or tool the translation refuses, the rest is checked, not kept,
        // and the refusal names that one.
        let after = json!({"messages": [{"role": "user", "content": "x"}, 1, {"role": "bogus"}, 2]});
        assert!(err(after).contains("messages[1]: role ``"));
        let m = json!([{"role": "user", "content": "x"}]);
        assert!(
            err(json!({"messages": m, "tools": [{"type": "function"}, "x", {"type": "web"}]}))
                .contains("tool type null")
        );
        assert!(
            err(json!({"messages": m, "audio": {"format": "wav"}, "modalities": ["text", "audio"]})).contains("audio")
        );
        assert!(err(json!({"messages": m, "tools": [{"type": "web_search"}]})).contains(r#"tool type "web_search""#));
        assert!(err(json!({"messages": m, "tools": {}})).contains("`tools` must be a list"));
        assert!(tr(json!({"messages": m, "tools": null, "tool_choice": null})).get("tools").is_none());
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
