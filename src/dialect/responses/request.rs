//! Responses request → Chat Completions request, read from the body's borrowed fields and
//! written straight into the Chat body: no JSON tree is built, and what passes unchanged
//! (texts, tool schemas, sampling values, call ids, arguments) is copied as the client wrote it.

use std::borrow::Cow;

use serde::Serialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use super::Arguments;
use super::response::Echo;
use crate::dialect::borrowed::{Fields, is_null, is_string, is_true, objects, text};
use crate::dialect::chat::ToolCall;
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

/// Translates a Responses request body into a Chat request body, and what the Response will
/// repeat from it; `model` is the model to send, `openai` whether the upstream is OpenAI itself
/// (which takes `max_completion_tokens` and `reasoning_effort`).
pub fn to_chat(body: &[u8], model: &str, openai: bool) -> Result<(Vec<u8>, Echo), ApiError> {
    let req = match Fields::of_body(body) {
        Ok(req) => req,
        // JSON, but not an object: this translation's own refusal.
        Err(_) if serde_json::from_slice::<IgnoredAny>(body).is_ok() => {
            return Err(bad("the request body must be a JSON object"));
        }
        Err(e) => return Err(e),
    };
    refuse_stateful(&req)?;
    let chat = write(&req, model, openai, body.len())?;
    Ok((chat, Echo::from_fields(&req)))
}

/// Refuses what only a stateful Responses server could do.
fn refuse_stateful(req: &Fields) -> Result<(), ApiError> {
    if req.present("previous_response_id").is_some() {
        return Err(stateless("`previous_response_id`"));
    }
    if req.present("conversation").is_some() {
        return Err(stateless("`conversation`"));
    }
    if req.get("store").is_some_and(is_true) {
        return Err(stateless("`store: true`"));
    }
    if req.get("background").is_some_and(is_true) {
        return Err(stateless("`background: true`"));
    }
    Ok(())
}

fn write(req: &Fields, model: &str, openai: bool, size: usize) -> Result<Vec<u8>, ApiError> {
    let mut out = Chat { model, ..Chat::default() };
    let nonempty = |v: &&RawValue| is_string(v) && v.get() != r#""""#;
    if let Some(instructions) = req.get("instructions").filter(nonempty) {
        out.messages.push(Message::new("system", Content::Raw(instructions)));
    }
    let input = req.get("input");
    let items = input.and_then(objects).unwrap_or_default();
    if let Some(text) = input.filter(nonempty) {
        out.messages.push(Message::new("user", Content::Raw(text)));
    } else if items.is_empty() {
        return Err(ApiError::bad_request("input_required", "`input` is required: a string or a list of items"));
    }
    for (i, item) in items.iter().enumerate() {
        input_item(i, item, &mut out.messages)?;
    }
    if out.messages.iter().all(|m| m.role == "system") {
        return Err(ApiError::bad_request("input_required", "`input` has no message besides system ones"));
    }

    out.tools = tools(req.get("tools"))?;
    if !out.tools.is_empty() {
        out.tool_choice = req.present("tool_choice").map(tool_choice);
        out.parallel_tool_calls = req.get("parallel_tool_calls").filter(|p| matches!(p.get(), "true" | "false"));
    }
    // In key order (the members are sorted), as the drop log has always been written.
    for (key, value) in &req.0 {
        let value = *value;
        if is_null(value) {
            continue;
        }
        match key.as_ref() {
            "model" | "input" | "instructions" | "tools" | "tool_choice" | "parallel_tool_calls" => {}
            "store" | "previous_response_id" | "background" | "conversation" => {} // refused above when set
            "max_output_tokens" if openai => out.max_completion_tokens = Some(value),
            "max_output_tokens" => out.max_tokens = Some(value),
            "temperature" => out.temperature = Some(value),
            "top_p" => out.top_p = Some(value),
            "user" => out.user = Some(value),
            "safety_identifier" => {} // below: `user` wins
            "text" => out.response_format = text_format(value),
            "reasoning" => match Fields::of(value).and_then(|r| r.get("effort")).filter(|e| is_string(e)) {
                Some(effort) if openai => out.reasoning_effort = Some(effort),
                _ => dropped("reasoning", "the upstream is not OpenAI: no portable reasoning setting"),
            },
            "stream" => {
                if is_true(value) {
                    out.stream = true;
                    out.stream_options = Some(StreamOptions { include_usage: true });
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
    out.user = out.user.or_else(|| req.present("safety_identifier"));
    Ok(crate::dialect::to_json(&out, size).unwrap_or_default())
}

/// Appends one input item as Chat messages.
/// Anything but an object has no type nor role, as a JSON tree would read it.
fn input_item<'a>(i: usize, item: &Fields<'a>, messages: &mut Vec<Message<'a>>) -> Result<(), ApiError> {
    // Easy input messages (`{role, content}`) may leave out `type`.
    let kind = item.get("type").and_then(text);
    match kind.as_deref().unwrap_or("message") {
        "message" => {
            let role = match item.get("role").and_then(text).as_deref().unwrap_or_default() {
                "system" | "developer" => "system",
                "user" => "user",
                "assistant" => "assistant",
                other => return Err(bad(format!("input[{i}]: role `{other}` is not supported"))),
            };
            messages.push(Message::new(role, content(i, item.get("content"))?));
        }
        "function_call" | "custom_tool_call" => {
            // Custom tool calls carry `input` instead of `arguments`.
            let arguments = item.present("arguments").or_else(|| item.get("input"));
            let call =
                ToolCall::new(item.get("call_id"), item.get("name"), Arguments::of(arguments.map(RawValue::get)));
            // Calls right after an assistant turn belong to it: chat templates expect one
            // assistant message holding the text and all its parallel calls.
            match messages.last_mut() {
                Some(m) if m.role == "assistant" => m.tool_calls.push(call),
                _ => messages.push(Message { tool_calls: vec![call], ..Message::new("assistant", Content::Null) }),
            }
        }
        "function_call_output" | "custom_tool_call_output" => {
            let output = item.get("output");
            let content = if let Some(s) = output.filter(|o| is_string(o)) {
                Content::Raw(s)
            } else if let Some(parts) = output.and_then(objects) {
                text_parts(i, &parts)?
            } else {
                return Err(bad(format!("input[{i}]: `output` must be a string or a list of input_text parts")));
            };
            messages.push(Message { tool_call_id: Some(item.get("call_id")), ..Message::new("tool", content) });
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
fn content<'a>(i: usize, content: Option<&'a RawValue>) -> Result<Content<'a>, ApiError> {
    if let Some(s) = content.filter(|c| is_string(c)) {
        return Ok(Content::Raw(s));
    }
    let parts = content
        .and_then(objects)
        .ok_or_else(|| bad(format!("input[{i}]: `content` must be a string or a list of parts")))?;
    if parts.iter().all(|p| text_of(p).is_some()) {
        return text_parts(i, &parts);
    }
    let mut out = Vec::with_capacity(parts.len());
    for part in &parts {
        if let Some(text) = text_of(part) {
            out.push(Part::Text { text });
            continue;
        }
        let kind = part.get("type").and_then(text);
        let kind = kind.as_deref().unwrap_or_default();
        match (kind, part.get("image_url").filter(|u| is_string(u))) {
            ("input_image", Some(url)) => {
                let detail = part.get("detail").filter(|d| is_string(d));
                out.push(Part::ImageUrl { image_url: Image { url, detail } });
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
    Ok(Content::Parts(out))
}

/// The text of a text part (`input_text`, `output_text`, `refusal`): a JSON string.
fn text_of<'a>(part: &Fields<'a>) -> Option<&'a RawValue> {
    let key = match part.get("type").and_then(text).as_deref()? {
        "input_text" | "output_text" | "text" => "text",
        "refusal" => "refusal",
        _ => return None,
    };
    part.get(key).filter(|t| is_string(t))
}

/// Text parts joined with newlines (one part copied as written); any other part is refused.
fn text_parts<'a>(i: usize, parts: &[Fields<'a>]) -> Result<Content<'a>, ApiError> {
    let mut texts = Vec::with_capacity(parts.len());
    for part in parts {
        texts.push(text_of(part).ok_or_else(|| {
            let kind = part.get("type").and_then(text);
            bad(format!("input[{i}]: content part `{}` is not supported here (text only)", kind.unwrap_or_default()))
        })?);
    }
    if let [one] = texts[..] {
        return Ok(Content::Raw(one));
    }
    let mut joined = String::new();
    for (n, t) in texts.into_iter().enumerate() {
        if n > 0 {
            joined.push('\n');
        }
        joined.push_str(&text(t).unwrap_or_default());
    }
    Ok(Content::Text(Cow::Owned(joined)))
}

/// Function tools → Chat tools; other types (hosted, custom, namespaces) are dropped.
fn tools(value: Option<&RawValue>) -> Result<Vec<Tool<'_>>, ApiError> {
    let Some(value) = value.filter(|v| v.get() != "null") else { return Ok(Vec::new()) };
    let list = objects(value).ok_or_else(|| bad("`tools` must be a list"))?;
    let mut out = Vec::with_capacity(list.len());
    for t in &list {
        let kind = t.get("type").and_then(text);
        let kind = kind.as_deref().unwrap_or_default();
        if kind != "function" {
            let field = match TOOL_TYPES.iter().find(|&&k| k == kind) {
                Some(k) => format!("tools[type={k}]"),
                None => "tools[type=other]".to_owned(),
            };
            dropped(&field, "only function tools can be served by a Chat upstream");
            continue;
        }
        out.push(Tool {
            kind: "function",
            function: ToolFunction {
                name: t.present("name"),
                description: t.present("description"),
                parameters: t.present("parameters"),
                strict: t.present("strict"),
            },
        });
    }
    Ok(out)
}

fn tool_choice(value: &RawValue) -> ToolChoice<'_> {
    if text(value).is_some_and(|s| matches!(s.as_ref(), "auto" | "none" | "required")) {
        return ToolChoice::Raw(value);
    }
    if let Some(f) = Fields::of(value).filter(|f| f.get("type").and_then(text).as_deref() == Some("function")) {
        return ToolChoice::Function { kind: "function", function: Named { name: f.get("name") } };
    }
    dropped("tool_choice (non-function)", "only auto/none/required/function map to Chat; using auto");
    ToolChoice::Auto("auto")
}

/// `text.format` → `response_format`; `text.verbosity` is dropped.
fn text_format(value: &RawValue) -> Option<Format<'_>> {
    let text_options = Fields::of(value).unwrap_or_default();
    let format = text_options.get("format").and_then(Fields::of).unwrap_or_default();
    let out = match format.get("type").and_then(text).as_deref() {
        Some("json_schema") => Some(Format::JsonSchema {
            json_schema: Schema {
                name: format.present("name"),
                description: format.present("description"),
                schema: format.present("schema"),
                strict: format.present("strict"),
            },
        }),
        Some("json_object") => Some(Format::JsonObject),
        _ => None,
    };
    if text_options.present("verbosity").is_some() {
        dropped("text.verbosity", "no Chat Completions equivalent");
    }
    out
}

/// The Chat request. Values the client wrote are copied as it wrote them.
#[derive(Default, Serialize)]
struct Chat<'a> {
    model: &'a str,
    messages: Vec<Message<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<Format<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Content<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCall<'a, Arguments<'a>>>,
    /// A tool result's call id (null when the client gave none).
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<Option<&'a RawValue>>,
}

impl<'a> Message<'a> {
    fn new(role: &'static str, content: Content<'a>) -> Self {
        Message { role, content, tool_calls: Vec::new(), tool_call_id: None }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum Content<'a> {
    /// An assistant turn that is only tool calls.
    Null,
    /// A string, copied as written.
    Raw(&'a RawValue),
    Text(Cow<'a, str>),
    Parts(Vec<Part<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Part<'a> {
    Text { text: &'a RawValue },
    ImageUrl { image_url: Image<'a> },
}

#[derive(Serialize)]
struct Image<'a> {
    url: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct Tool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: ToolFunction<'a>,
}

#[derive(Serialize)]
struct ToolFunction<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<&'a RawValue>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ToolChoice<'a> {
    /// `auto`, `none` or `required`, copied.
    Raw(&'a RawValue),
    Function {
        #[serde(rename = "type")]
        kind: &'static str,
        function: Named<'a>,
    },
    /// What a choice Chat cannot express becomes.
    Auto(&'static str),
}

#[derive(Serialize)]
struct Named<'a> {
    name: Option<&'a RawValue>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Format<'a> {
    JsonSchema { json_schema: Schema<'a> },
    JsonObject,
}

#[derive(Serialize)]
struct Schema<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
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

    fn choice(value: Value) -> Value {
        let raw = serde_json::value::to_raw_value(&value).unwrap();
        serde_json::to_value(tool_choice(&raw)).unwrap()
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

    /// A body of 200,000 members (distinct, or one key repeated) is read in O(n log n): a
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
