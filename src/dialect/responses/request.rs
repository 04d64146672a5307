//! Responses request → Chat Completions request, read in one pass with the checking JSON
//! reader and written straight into the Chat body: no JSON tree is built, and what passes
//! unchanged (texts, tool schemas, sampling values, call ids, arguments) is copied as the client
//! wrote it.

use std::borrow::Cow;

use super::Arguments;
use super::response::{Echo, Repeated};
use crate::dialect::json::{self, Member, Reader, each, get, members, unescaped};
use crate::dialect::{dropped, json_str};
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

fn input_required(message: &str) -> ApiError {
    ApiError::bad_request("input_required", message)
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

/// The members of a Responses request, raw (`null` is absent), read in one pass; of a key
/// written twice the last counts, and nothing is judged until the whole body is read.
#[derive(Default)]
struct Request<'a> {
    /// What the Response repeats (some of it translated too).
    repeated: Repeated<'a>,
    input: Option<&'a str>,
    user: Option<&'a str>,
    safety_identifier: Option<&'a str>,
    text: Option<&'a str>,
    reasoning: Option<&'a str>,
    stream: Option<&'a str>,
    prompt: Option<&'a str>,
    store: Option<&'a str>,
    background: Option<&'a str>,
    previous_response_id: Option<&'a str>,
    conversation: Option<&'a str>,
    /// Top-level fields met that the translation drops.
    dropped: Dropped,
}

/// The top-level fields a request had that the translation drops, logged once it is
/// translated: a bit per [`IGNORED`] name, and whether there was any other.
#[derive(Default)]
struct Dropped {
    ignored: u16,
    unknown: bool,
}

const _: () = assert!(IGNORED.len() <= 16, "a bit per ignored field");

impl Dropped {
    fn note(&mut self, name: &[u8]) {
        match IGNORED.iter().position(|f| f.as_bytes() == name) {
            Some(i) => self.ignored |= 1 << i,
            None => {
                tracing::debug!(field = %String::from_utf8_lossy(name), "responses: unknown field dropped");
                self.unknown = true;
            }
        }
    }

    fn log(&self) {
        for (i, field) in IGNORED.iter().enumerate() {
            if self.ignored & (1 << i) != 0 {
                dropped(field, "no Chat Completions equivalent");
            }
        }
        if self.unknown {
            dropped("(unknown Responses fields)", "not part of the translation; see debug logs for names");
        }
    }
}

impl<'a> Request<'a> {
    fn read(body: &'a [u8]) -> Result<Self, ApiError> {
        let mut req = Request::default();
        let read = Reader::document(body, |r| {
            r.members(|key, r| {
                let key = json::key(key);
                let slot = match key.as_ref() {
                    b"model" => &mut req.repeated.model,
                    b"instructions" => &mut req.repeated.instructions,
                    b"max_output_tokens" => &mut req.repeated.max_output_tokens,
                    b"metadata" => &mut req.repeated.metadata,
                    b"parallel_tool_calls" => &mut req.repeated.parallel_tool_calls,
                    b"temperature" => &mut req.repeated.temperature,
                    b"tool_choice" => &mut req.repeated.tool_choice,
                    b"tools" => &mut req.repeated.tools,
                    b"top_p" => &mut req.repeated.top_p,
                    b"input" => &mut req.input,
                    b"user" => &mut req.user,
                    b"safety_identifier" => &mut req.safety_identifier,
                    b"text" => &mut req.text,
                    b"reasoning" => &mut req.reasoning,
                    b"stream" => &mut req.stream,
                    b"prompt" => &mut req.prompt,
                    b"store" => &mut req.store,
                    b"background" => &mut req.background,
                    b"previous_response_id" => &mut req.previous_response_id,
                    b"conversation" => &mut req.conversation,
                    other => {
                        if !r.null()? {
                            r.skip()?;
                            req.dropped.note(other);
                        }
                        return Ok(());
                    }
                };
                *slot = r.raw()?;
                Ok(())
            })
        });
        match read {
            Ok(()) => Ok(req),
            // JSON, but not an object: this translation's own refusal.
            Err(_) if Reader::document(body, Reader::skip).is_ok() => {
                Err(bad("the request body must be a JSON object"))
            }
            Err(_) => Err(crate::dialect::refused_body(body)),
        }
    }

    /// Refuses what only a stateful Responses server could do.
    fn refuse_stateful(&self) -> Result<(), ApiError> {
        if self.previous_response_id.is_some() {
            return Err(stateless("`previous_response_id`"));
        }
        if self.conversation.is_some() {
            return Err(stateless("`conversation`"));
        }
        if self.store == Some("true") {
            return Err(stateless("`store: true`"));
        }
        if self.background == Some("true") {
            return Err(stateless("`background: true`"));
        }
        Ok(())
    }
}

/// Translates a Responses request body into a Chat request body, and what the Response will
/// repeat from it; `model` is the model to send, `openai` whether the upstream is OpenAI itself
/// (which takes `max_completion_tokens` and `reasoning_effort`).
pub fn to_chat(body: &[u8], model: &str, openai: bool) -> Result<(Vec<u8>, Echo), ApiError> {
    let req = Request::read(body)?;
    req.refuse_stateful()?;
    let chat = translate(&req, openai)?.write(model, body.len());
    Ok((chat, Echo::new(&req.repeated)))
}

/// For tests: the echo of the request `body`.
#[cfg(test)]
pub(super) fn echo_of(body: &[u8]) -> Echo {
    Request::read(body).map(|req| Echo::new(&req.repeated)).unwrap_or_default()
}

fn is_string(raw: &str) -> bool {
    raw.starts_with('"')
}

/// The Chat request for `req`. Values the client wrote are copied as it wrote them.
fn translate<'a>(req: &Request<'a>, openai: bool) -> Result<Chat<'a>, ApiError> {
    let mut messages = Vec::new();
    if let Some(instructions) = req.repeated.instructions.filter(|i| json::is_nonempty_string(i)) {
        messages.push(Message::new("system", Content::Raw(instructions)));
    }
    match req.input {
        Some(text) if json::is_nonempty_string(text) => messages.push(Message::new("user", Content::Raw(text))),
        Some(items) if json::is_nonempty_list(items) => {
            each(items, || Ok(()), |i, item| input_item(i, item, &mut messages))?;
        }
        _ => return Err(input_required("`input` is required: a string or a list of items")),
    }
    if messages.iter().all(|m| m.role == "system") {
        return Err(input_required("`input` has no message besides system ones"));
    }
    let tools = tools(req.repeated.tools)?;
    // Only with tools left: OpenAI rejects them without, and every tool may have been hosted.
    let (tool_choice, parallel_tool_calls) = match tools.is_empty() {
        true => (None, None),
        false => (
            req.repeated.tool_choice.map(tool_choice),
            req.repeated.parallel_tool_calls.filter(|p| matches!(*p, "true" | "false")),
        ),
    };
    let response_format = req.text.and_then(text_format);
    if req.prompt.is_some() {
        return Err(bad("`prompt` (a stored prompt template) is not available: send the text in `input`"));
    }
    let reasoning_effort =
        req.reasoning.and_then(|reasoning| match get(&members(reasoning), "effort").filter(|e| is_string(e)) {
            Some(effort) if openai => Some(effort),
            _ => {
                dropped("reasoning", "the upstream is not OpenAI: no portable reasoning setting");
                None
            }
        });
    if req.repeated.metadata.is_some() {
        dropped("metadata", "no Chat Completions equivalent");
    }
    req.dropped.log();
    let max_output_tokens = req.repeated.max_output_tokens;
    Ok(Chat {
        messages,
        tools,
        tool_choice,
        parallel_tool_calls,
        max_tokens: max_output_tokens.filter(|_| !openai),
        max_completion_tokens: max_output_tokens.filter(|_| openai),
        temperature: req.repeated.temperature,
        top_p: req.repeated.top_p,
        user: req.user.or(req.safety_identifier),
        response_format,
        reasoning_effort,
        stream: req.stream == Some("true"),
    })
}

/// A Chat request; raw values as the client wrote them.
struct Chat<'a> {
    messages: Vec<Message<'a>>,
    /// Function tools: their [`FUNCTION`] members.
    tools: Vec<[Option<&'a str>; 4]>,
    tool_choice: Option<Choice<'a>>,
    parallel_tool_calls: Option<&'a str>,
    max_tokens: Option<&'a str>,
    max_completion_tokens: Option<&'a str>,
    temperature: Option<&'a str>,
    top_p: Option<&'a str>,
    user: Option<&'a str>,
    response_format: Option<Format<'a>>,
    reasoning_effort: Option<&'a str>,
    stream: bool,
}

impl Chat<'_> {
    /// The body for `model`, about `size` bytes.
    fn write(&self, model: &str, size: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(size + 256);
        out.extend_from_slice(br#"{"model":"#);
        json_str(&mut out, model);
        out.extend_from_slice(br#","messages":"#);
        json::list(&mut out, &self.messages, |out, m| m.write(out));
        if !self.tools.is_empty() {
            out.extend_from_slice(br#","tools":"#);
            json::list(&mut out, &self.tools, |out, function| {
                out.extend_from_slice(br#"{"type":"function","function":"#);
                object(out, &FUNCTION, function);
                out.push(b'}');
            });
        }
        if let Some(choice) = &self.tool_choice {
            out.extend_from_slice(br#","tool_choice":"#);
            match choice {
                Choice::Raw(raw) => out.extend_from_slice(raw.as_bytes()),
                Choice::Function(name) => {
                    out.extend_from_slice(br#"{"type":"function","function":{"name":"#);
                    out.extend_from_slice(name.unwrap_or("null").as_bytes());
                    out.extend_from_slice(b"}}");
                }
                Choice::Auto => out.extend_from_slice(br#""auto""#),
            }
        }
        let copied = [
            ("parallel_tool_calls", self.parallel_tool_calls),
            ("max_tokens", self.max_tokens),
            ("max_completion_tokens", self.max_completion_tokens),
            ("temperature", self.temperature),
            ("top_p", self.top_p),
            ("user", self.user),
        ];
        for (name, value) in copied {
            if let Some(value) = value {
                json::member(&mut out, name, value);
            }
        }
        match &self.response_format {
            Some(Format::JsonSchema(schema)) => {
                out.extend_from_slice(br#","response_format":{"type":"json_schema","json_schema":"#);
                object(&mut out, &SCHEMA, schema);
                out.push(b'}');
            }
            Some(Format::JsonObject) => out.extend_from_slice(br#","response_format":{"type":"json_object"}"#),
            None => {}
        }
        if let Some(effort) = self.reasoning_effort {
            json::member(&mut out, "reasoning_effort", effort);
        }
        if self.stream {
            out.extend_from_slice(br#","stream":true,"stream_options":{"include_usage":true}"#);
        }
        out.push(b'}');
        out
    }
}

/// The members of a Chat function, of a JSON schema format and of an image URL, in the order
/// they are written.
const FUNCTION: [&str; 4] = ["name", "description", "parameters", "strict"];
const SCHEMA: [&str; 4] = ["name", "description", "schema", "strict"];
const IMAGE: [&str; 2] = ["url", "detail"];

/// Writes an object of the members `names` that have `values` (raw).
fn object(out: &mut Vec<u8>, names: &[&str], values: &[Option<&str>]) {
    out.push(b'{');
    for (n, (name, value)) in names.iter().zip(values).filter_map(|(name, value)| Some((name, (*value)?))).enumerate() {
        if n > 0 {
            out.push(b',');
        }
        json::quote(out, name);
        out.push(b':');
        out.extend_from_slice(value.as_bytes());
    }
    out.push(b'}');
}

/// Appends one input item (raw) as Chat messages. Anything but an object has no type nor
/// role.
fn input_item<'a>(i: usize, item: &'a str, messages: &mut Vec<Message<'a>>) -> Result<(), ApiError> {
    let item = members(item);
    // Easy input messages (`{role, content}`) may leave out `type`.
    let kind = get(&item, "type").and_then(unescaped);
    match kind.as_deref().unwrap_or("message") {
        "message" => {
            let role = get(&item, "role").and_then(unescaped);
            let role = match role.as_deref().unwrap_or_default() {
                "system" | "developer" => "system",
                "user" => "user",
                "assistant" => "assistant",
                other => return Err(bad(format!("input[{i}]: role `{other}` is not supported"))),
            };
            messages.push(Message::new(role, content(i, get(&item, "content"))?));
        }
        "function_call" | "custom_tool_call" => {
            // Custom tool calls carry `input` instead of `arguments`.
            let arguments = get(&item, "arguments").or_else(|| get(&item, "input"));
            let call =
                Call { id: get(&item, "call_id"), name: get(&item, "name"), arguments: Arguments::of(arguments) };
            // Calls right after an assistant turn belong to it: chat templates expect one
            // assistant message holding the text and all its parallel calls.
            match messages.last_mut() {
                Some(m) if m.role == "assistant" => m.tool_calls.push(call),
                _ => messages.push(Message { tool_calls: vec![call], ..Message::new("assistant", Content::Null) }),
            }
        }
        "function_call_output" | "custom_tool_call_output" => {
            let content = match get(&item, "output") {
                Some(text) if is_string(text) => Content::Raw(text),
                Some(parts) if parts.starts_with('[') => text_parts(i, parts)?,
                _ => return Err(bad(format!("input[{i}]: `output` must be a string or a list of input_text parts"))),
            };
            messages.push(Message { tool_call_id: Some(get(&item, "call_id")), ..Message::new("tool", content) });
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
fn content<'a>(i: usize, content: Option<&'a str>) -> Result<Content<'a>, ApiError> {
    let list = match content {
        Some(text) if is_string(text) => return Ok(Content::Raw(text)),
        Some(list) if list.starts_with('[') => list,
        _ => return Err(bad(format!("input[{i}]: `content` must be a string or a list of parts"))),
    };
    let mut parts = Vec::new();
    each(
        list,
        || Ok(()),
        |_, part| {
            let part = members(part);
            if let Some(text) = text_of(&part) {
                parts.push(Part::Text(text));
                return Ok(());
            }
            let kind = get(&part, "type").and_then(unescaped);
            let kind = kind.as_deref().unwrap_or_default();
            match (kind, get(&part, "image_url").filter(|u| is_string(u))) {
                ("input_image", Some(url)) => {
                    parts.push(Part::Image([Some(url), get(&part, "detail").filter(|d| is_string(d))]));
                    Ok(())
                }
                ("input_image", None) => Err(bad(format!(
                    "input[{i}]: input_image by `file_id` is not supported: the upstream has no Files API; send `image_url`"
                ))),
                _ => Err(bad(format!("input[{i}]: content part `{kind}` is not supported by the Chat translation"))),
            }
        },
    )?;
    if !parts.iter().all(|p| matches!(p, Part::Text(_))) {
        return Ok(Content::Parts(parts));
    }
    let texts: Vec<&str> = parts.iter().filter_map(|p| if let Part::Text(t) = p { Some(*t) } else { None }).collect();
    Ok(Content::Joined(json::joined(&texts, NEWLINE)))
}

/// The text of a text part (`input_text`, `output_text`, `refusal`): a string's escaped
/// contents.
fn text_of<'a>(part: &[Member<'_, 'a>]) -> Option<&'a str> {
    let key = match get(part, "type").and_then(unescaped).as_deref()? {
        "input_text" | "output_text" | "text" => "text",
        "refusal" => "refusal",
        _ => return None,
    };
    get(part, key).and_then(json::contents)
}

/// A tool output's text parts (a list, raw) joined with newlines; any other part is refused.
fn text_parts(i: usize, list: &str) -> Result<Content<'_>, ApiError> {
    let mut texts = Vec::new();
    each(
        list,
        || Ok(()),
        |_, part| {
            let part = members(part);
            let text = text_of(&part).ok_or_else(|| {
                let kind = get(&part, "type").and_then(unescaped);
                bad(format!(
                    "input[{i}]: content part `{}` is not supported here (text only)",
                    kind.unwrap_or_default()
                ))
            })?;
            texts.push(text);
            Ok(())
        },
    )?;
    Ok(Content::Joined(json::joined(&texts, NEWLINE)))
}

/// What joins texts into one, escaped.
const NEWLINE: &str = r"\n";

/// Function tools → the members of Chat's `function`; other types (hosted, custom,
/// namespaces) are dropped.
fn tools(value: Option<&str>) -> Result<Vec<[Option<&str>; 4]>, ApiError> {
    let mut out = Vec::new();
    let Some(value) = value else { return Ok(out) };
    each(
        value,
        || Err(bad("`tools` must be a list")),
        |_, tool| {
            let tool = members(tool);
            let kind = get(&tool, "type").and_then(unescaped);
            let kind = kind.as_deref().unwrap_or_default();
            if kind != "function" {
                let field = match TOOL_TYPES.iter().find(|&&k| k == kind) {
                    Some(k) => format!("tools[type={k}]"),
                    None => "tools[type=other]".to_owned(),
                };
                dropped(&field, "only function tools can be served by a Chat upstream");
                return Ok(());
            }
            out.push(FUNCTION.map(|name| get(&tool, name)));
            Ok(())
        },
    )?;
    Ok(out)
}

/// A Chat `tool_choice`.
enum Choice<'a> {
    /// `auto`, `none` or `required`, copied.
    Raw(&'a str),
    /// A named function (its name raw).
    Function(Option<&'a str>),
    /// What a choice Chat cannot express becomes.
    Auto,
}

fn tool_choice(value: &str) -> Choice<'_> {
    if unescaped(value).is_some_and(|s| matches!(s.as_ref(), "auto" | "none" | "required")) {
        return Choice::Raw(value);
    }
    let choice = members(value);
    if get(&choice, "type").and_then(unescaped).as_deref() == Some("function") {
        return Choice::Function(get(&choice, "name"));
    }
    dropped("tool_choice (non-function)", "only auto/none/required/function map to Chat; using auto");
    Choice::Auto
}

enum Format<'a> {
    /// The [`SCHEMA`] members of `json_schema`.
    JsonSchema([Option<&'a str>; 4]),
    JsonObject,
}

/// `text.format` → `response_format`; `text.verbosity` is dropped.
fn text_format(value: &str) -> Option<Format<'_>> {
    let options = members(value);
    let format = get(&options, "format").map(members).unwrap_or_default();
    let out = match get(&format, "type").and_then(unescaped).as_deref() {
        Some("json_schema") => Some(Format::JsonSchema(SCHEMA.map(|name| get(&format, name)))),
        Some("json_object") => Some(Format::JsonObject),
        _ => None,
    };
    if get(&options, "verbosity").is_some() {
        dropped("text.verbosity", "no Chat Completions equivalent");
    }
    out
}

/// A Chat message.
struct Message<'a> {
    role: &'static str,
    content: Content<'a>,
    tool_calls: Vec<Call<'a>>,
    /// A tool result's call id (raw; null when the client gave none).
    tool_call_id: Option<Option<&'a str>>,
}

impl<'a> Message<'a> {
    fn new(role: &'static str, content: Content<'a>) -> Self {
        Message { role, content, tool_calls: Vec::new(), tool_call_id: None }
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(br#"{"role":"#);
        json::quote(out, self.role);
        out.extend_from_slice(br#","content":"#);
        match &self.content {
            Content::Null => out.extend_from_slice(b"null"),
            Content::Raw(raw) => out.extend_from_slice(raw.as_bytes()),
            Content::Joined(contents) => json::quote(out, contents),
            Content::Parts(parts) => json::list(out, parts, |out, part| match part {
                Part::Text(text) => {
                    out.extend_from_slice(br#"{"type":"text","text":"#);
                    json::quote(out, text);
                    out.push(b'}');
                }
                Part::Image(image) => {
                    out.extend_from_slice(br#"{"type":"image_url","image_url":"#);
                    object(out, &IMAGE, image);
                    out.push(b'}');
                }
            }),
        }
        if !self.tool_calls.is_empty() {
            out.extend_from_slice(br#","tool_calls":"#);
            json::list(out, &self.tool_calls, |out, call| {
                out.extend_from_slice(br#"{"id":"#);
                out.extend_from_slice(call.id.unwrap_or("null").as_bytes());
                out.extend_from_slice(br#","type":"function","function":{"name":"#);
                out.extend_from_slice(call.name.unwrap_or("null").as_bytes());
                out.extend_from_slice(br#","arguments":"#);
                call.arguments.write(out);
                out.extend_from_slice(b"}}");
            });
        }
        if let Some(id) = self.tool_call_id {
            out.extend_from_slice(br#","tool_call_id":"#);
            out.extend_from_slice(id.unwrap_or("null").as_bytes());
        }
        out.push(b'}');
    }
}

enum Content<'a> {
    /// An assistant turn that is only tool calls.
    Null,
    /// A string, copied as written.
    Raw(&'a str),
    /// Texts joined: escaped contents, without quotes.
    Joined(Cow<'a, str>),
    Parts(Vec<Part<'a>>),
}

enum Part<'a> {
    /// Escaped contents.
    Text(&'a str),
    /// The [`IMAGE`] members of `image_url`.
    Image([Option<&'a str>; 2]),
}

/// A tool call of an assistant turn (id and name raw).
struct Call<'a> {
    id: Option<&'a str>,
    name: Option<&'a str>,
    arguments: Arguments<'a>,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn raw(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dialects/responses").join(name);
        std::fs::read(path).unwrap()
    }

    fn fixture(name: &str) -> Value {
        serde_json::from_slice(&raw(name)).unwrap()
    }

    /// The Chat body for `body`, parsed back.
    fn tr(body: &Value, model: &str, openai: bool) -> Result<Value, ApiError> {
        let (chat, _) = to_chat(&serde_json::to_vec(body).unwrap(), model, openai)?;
        Ok(serde_json::from_slice(&chat).unwrap())
    }

    fn err(body: Value) -> ApiError {
        tr(&body, "m", false).unwrap_err()
    }

    /// The Chat `tool_choice` for a Responses one.
    fn choice(value: Value) -> Value {
        let req = json!({"input": "x", "tools": [{"type": "function", "name": "f"}], "tool_choice": value});
        tr(&req, "m", false).unwrap()["tool_choice"].clone()
    }

    #[test]
    fn codex_turn() {
        let got = tr(&fixture("codex-request.json"), "qwen3-coder", false).unwrap();
        assert_eq!(got, fixture("codex-request.chat.json"));
    }

    #[test]
    fn codex_turn_for_openai() {
        let got = tr(&fixture("codex-request.json"), "gpt-5", true).unwrap();
        assert_eq!(got["reasoning_effort"], "medium");
        assert_eq!(got["max_completion_tokens"], 8000);
        assert!(got.get("max_tokens").is_none());
    }

    #[test]
    fn string_input_and_options() {
        let got = tr(
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
        let got = tr(&json!({"input": "x", "text": {"format": {"type": "json_object"}}}), "m", false).unwrap();
        assert_eq!(got["response_format"], json!({"type": "json_object"}));
    }

    #[test]
    fn images_tool_choice_and_outputs_as_parts() {
        let got = tr(
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
        assert_eq!(choice(allowed), json!("auto"));
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

    /// The body is read as the client wrote it: escaped strings, repeated keys (the last
    /// counts), nulls (absent), members of the wrong type, and the odd shapes a JSON tree
    /// tolerated.
    #[test]
    fn escapes_repeated_keys_and_odd_shapes() {
        let body = br#"{"input":"first","model":"x","temperature":0.1,
            "input":[{"role":"user","content":"see \"this\" \u00e9"},
                {"type":"message","role":"user","content":[{"type":"input_text","text":"a\/b"},
                    {"type":"input_image","image_url":"https:\/\/example.com\/a.png","detail":5}]},
                {"type":"message","role":"assistant","content":[{"type":"output_text","text":"x"},{"type":"refusal","refusal":"no"}]},
                {"type":"function_call","call_id":"c\u0031","name":"f","arguments":"{\"a\":\"\u00e9\"}"},
                {"type":"function_call","call_id":"c2","name":"g","arguments":null,"input":{"b": 1, "a": [2.50]}},
                {"type":"custom_tool_call","call_id":"c3"},
                {"type":"function_call_output","call_id":"c1","output":[]},
                {"type":"function_call_output","output":[{"type":"input_text","text":"x"}]},
                {"type":7,"role":"developer","content":[]}],
            "temperature":0.7,"instructions":"","max_output_tokens":null,"user":null,"safety_identifier":"s\u0031",
            "tools":[{"type":"function","name":"f","parameters":{"type":"object"},"description":null},{"type":5},"x",[]],
            "tool_choice":{"type":"function"},"parallel_tool_calls":"yes","stream":"true","text":"plain",
            "reasoning":[1],"metadata":null,"store":null,"previous_response_id":null,"top_p":null}"#;
        let (chat, echo) = to_chat(body, "m", true).unwrap();
        let got: Value = serde_json::from_slice(&chat).unwrap();
        assert_eq!(
            got,
            json!({
                "model": "m",
                "messages": [
                    {"role": "user", "content": "see \"this\" \u{e9}"},
                    {"role": "user", "content": [{"type": "text", "text": "a/b"},
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
                    {"role": "assistant", "content": "x\nno", "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":\"\u{e9}\"}"}},
                        {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{\"a\":[2.5],\"b\":1}"}},
                        {"id": "c3", "type": "function", "function": {"name": null, "arguments": ""}}]},
                    {"role": "tool", "tool_call_id": "c1", "content": ""},
                    {"role": "tool", "tool_call_id": null, "content": "x"},
                    {"role": "system", "content": ""}
                ],
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
                "tool_choice": {"type": "function", "function": {"name": null}},
                "temperature": 0.7, "user": "s1"
            })
        );
        let response = serde_json::from_slice::<Value>(
            &super::super::response::from_chat(br#"{"choices":[{"message":{}}]}"#, &echo).unwrap(),
        );
        let response = response.unwrap();
        assert_eq!(response["model"], "x", "the last `model`, and the echo of a Response");
        assert_eq!(response["temperature"], 0.7);
        assert_eq!((&response["metadata"], &response["top_p"]), (&json!({}), &Value::Null));

        // The wrong types, each refused as a JSON tree's reading refused it.
        let bad_shapes = [
            (json!({"input": {"role": "user"}}), "input_required"),
            (json!({"input": 5}), "input_required"),
            (json!({"input": null}), "input_required"),
            (json!({"input": ["not an object"]}), "role ``"),
            (json!({"input": [{"role": "user", "content": 3}]}), "`content` must be"),
            (json!({"input": [{"role": "user", "content": null}]}), "`content` must be"),
            (json!({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": 3}]}]}), "file_id"),
            (json!({"input": [{"role": "user", "content": ["x"]}]}), "content part ``"),
            (json!({"input": [{"type": "function_call_output", "output": {"a": 1}}]}), "`output` must be"),
            (json!({"input": [{"type": "function_call_output", "output": [{"type": "input_image"}]}]}), "(text only)"),
            (json!({"input": [{"type": "function_call_output", "output": null}]}), "`output` must be"),
            (json!({"input": "x", "tools": "f"}), "must be a list"),
            (json!({"input": "x", "store": true, "previous_response_id": "r"}), "`previous_response_id`"),
        ];
        for (body, expected) in bad_shapes {
            let e = err(body.clone());
            assert!(e.message.contains(expected) || e.code == expected, "{body}: {}", e.message);
        }
        // A null `tools` is none; a `tool_choice` or `parallel_tool_calls` without tools is not sent.
        let got = tr(
            &json!({"input": "x", "tools": null, "tool_choice": "required", "parallel_tool_calls": true}),
            "m",
            false,
        );
        assert_eq!(got.unwrap(), json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}));
        let got = tr(&json!({"input": "x", "tools": [{"type": "web_search"}], "tool_choice": "none"}), "m", false);
        assert!(got.unwrap().get("tool_choice").is_none(), "only hosted tools: no tools");
        // `user` wins over `safety_identifier`; `reasoning` has no effort for a non-OpenAI upstream.
        let got = tr(
            &json!({"input": "x", "safety_identifier": "s", "user": "u", "reasoning": {"effort": "low"}}),
            "m",
            false,
        );
        assert_eq!(got.unwrap(), json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "user": "u"}));
        let got = tr(&json!({"input": "x", "reasoning": {"effort": 3}, "stream": true}), "m", true).unwrap();
        assert!(got.get("reasoning_effort").is_none());
        assert_eq!(got["stream_options"], json!({"include_usage": true}));
    }

    #[test]
    fn non_object_and_broken_bodies() {
        for body in [&b"[1]"[..], b" \"x\"", b"null", b"3"] {
            let e = to_chat(body, "m", false).unwrap_err();
            assert_eq!(e.code, "unsupported_for_chat_upstream", "{}", String::from_utf8_lossy(body));
            assert!(e.message.contains("must be a JSON object"));
        }
        for body in [&b"{\"input\": ["[..], b"", b"[1", b"{\"input\":\"x\"} {}"] {
            assert_eq!(
                to_chat(body, "m", false).unwrap_err().code,
                "invalid_json",
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    /// A body of 200,000 members (distinct, or one key repeated) is read in one pass: a
    /// quadratic read would take minutes here.
    #[test]
    fn many_members_and_repeated_keys_stay_cheap() {
        let mut body = String::from(r#"{"input":[{"role":"user","content":"hi"}]"#);
        for i in 0..200_000 {
            body.push_str(&format!(",\"k{i}\":{i},\"temperature\":{i}"));
        }
        body.push('}');
        let started = std::time::Instant::now();
        let (chat, echo) = to_chat(body.as_bytes(), "m", false).unwrap();
        let got: Value = serde_json::from_slice(&chat).unwrap();
        assert_eq!(got["temperature"], 199_999, "the last of a repeated key");
        let response: Value = serde_json::from_slice(
            &super::super::response::from_chat(br#"{"choices":[{"message":{}}]}"#, &echo).unwrap(),
        )
        .unwrap();
        assert_eq!(response["temperature"], 199_999);
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        // As many input items: each is read once.
        let items = vec![json!({"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}); 200_000];
        let got = tr(&json!({"input": items, "model": "x"}), "m", false).unwrap();
        assert_eq!(got["messages"][0]["tool_calls"].as_array().map(Vec::len), Some(200_000));
    }
}
