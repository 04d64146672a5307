//! Anthropic Messages API response → OpenAI chat completion; Anthropic errors → OpenAI errors.

use http::StatusCode;
use serde_json::{Value, json};

use crate::dialect::chat::{self, Answer, Call, Completion, Content};
use crate::dialect::json::{self, Invalid, unescaped};
use crate::dialect::{now, push_u64};

/// `stop_reason` → `finish_reason`, a raw JSON string.
pub fn finish_reason(stop: &str) -> &'static str {
    match stop {
        "max_tokens" | "model_context_window_exceeded" => r#""length""#,
        "tool_use" => r#""tool_calls""#,
        "refusal" => r#""content_filter""#,
        _ => r#""stop""#,
    }
}

/// A complete message as the `chat.completion` it translates to, handed to `then`. Its
/// strings are the message's raw members as Anthropic escaped them, so a translation on to
/// another dialect (Responses) reads no Chat text in between. `Err` when the body is not a
/// message.
pub fn read<'a, R>(body: &'a [u8], then: impl FnOnce(&Completion) -> R) -> Result<R, Invalid> {
    let msg = Message::read(body)?;
    // The tool's input as Anthropic wrote it is the call's arguments text.
    let arguments: Vec<String> = msg
        .blocks
        .iter()
        .filter_map(|b| match b {
            Block::Tool { input, .. } => Some(serde_json::to_string(input.unwrap_or("null")).unwrap_or_default()),
            Block::Text(_) => None,
        })
        .collect();
    // One text block (the most common answer) is its string as written; more are their
    // escaped contents, which joined are the escaped contents of their text joined.
    let mut content = Content::Absent;
    let mut tool_calls = Vec::with_capacity(arguments.len());
    let mut next_arguments = arguments.iter();
    let contents = |raw: &'a str| json::contents(raw).unwrap_or_default();
    for block in &msg.blocks {
        match *block {
            Block::Text(text) => {
                content = match content {
                    Content::Text(first) => Content::Parts(vec![contents(first), contents(text)]),
                    Content::Parts(mut texts) => {
                        texts.push(contents(text));
                        Content::Parts(texts)
                    }
                    _ => Content::Text(text),
                }
            }
            Block::Tool { id, name, .. } => {
                tool_calls.push(Call { id, name, arguments: next_arguments.next().map(String::as_str) })
            }
        }
    }
    // A message of tool calls alone has no content; one of nothing has an empty one.
    if matches!(content, Content::Absent) && tool_calls.is_empty() {
        content = Content::Text(r#""""#);
    }
    let stop = msg.stop_reason.and_then(unescaped);
    let usage = msg.usage.unwrap_or_default();
    let completion = Completion {
        id: msg.id,
        model: msg.model,
        created: Some(now()),
        choice: Some(Answer {
            message: Some(chat::Message { content, tool_calls, ..chat::Message::default() }),
            finish_reason: Some(finish_reason(stop.as_deref().unwrap_or_default())),
        }),
        usage: Some(usage.chat(usage.output_tokens.unwrap_or(0))),
    };
    Ok(then(&completion))
}

/// A complete message → a `chat.completion`'s bytes, written straight from the message's raw
/// members: no JSON tree is built on either side, and text, ids and the model are copied as
/// Anthropic escaped them. `Err` when the body is not a message.
pub fn completion(body: &[u8]) -> Result<Vec<u8>, Invalid> {
    read(body, |chat| write(chat, body.len()))
}

/// A raw member, `null` when absent.
fn raw(raw: Option<&str>) -> &[u8] {
    raw.unwrap_or("null").as_bytes()
}

/// A completion [`read`] made as the bytes of a `chat.completion` of about `size` bytes (a
/// member that is absent written `null`).
pub fn write(chat: &Completion, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 256);
    out.extend_from_slice(br#"{"id":"#);
    out.extend_from_slice(raw(chat.id));
    out.extend_from_slice(br#","object":"chat.completion","created":"#);
    push_u64(&mut out, chat.created.unwrap_or_default());
    out.extend_from_slice(br#","model":"#);
    out.extend_from_slice(raw(chat.model));
    out.extend_from_slice(br#","choices":[{"index":0,"message":{"role":"assistant","content":"#);
    let choice = chat.choice.as_ref();
    let message = choice.and_then(|c| c.message.as_ref());
    match message.map(|m| &m.content) {
        Some(Content::Parts(texts)) => {
            out.push(b'"');
            texts.iter().for_each(|text| out.extend_from_slice(text.as_bytes()));
            out.push(b'"');
        }
        Some(Content::Text(text)) => out.extend_from_slice(text.as_bytes()),
        _ => out.extend_from_slice(b"null"),
    }
    let calls = message.map_or(&[][..], |m| &m.tool_calls);
    if !calls.is_empty() {
        out.extend_from_slice(br#","tool_calls":"#);
        json::list(&mut out, calls, |out, call| {
            out.extend_from_slice(br#"{"id":"#);
            out.extend_from_slice(raw(call.id));
            out.extend_from_slice(br#","type":"function","function":{"name":"#);
            out.extend_from_slice(raw(call.name));
            out.extend_from_slice(br#","arguments":"#);
            out.extend_from_slice(raw(call.arguments));
            out.extend_from_slice(b"}}");
        });
    }
    out.extend_from_slice(br#"},"logprobs":null,"finish_reason":"#);
    out.extend_from_slice(raw(choice.and_then(|c| c.finish_reason)));
    out.extend_from_slice(br#"}],"usage":"#);
    chat.usage.unwrap_or_default().write(&mut out);
    out.push(b'}');
    out
}

/// The members of a message the translation reads, as raw JSON (`null` reads as absent); the
/// rest is checked and skipped.
#[derive(Default)]
struct Message<'a> {
    id: Option<&'a str>,
    model: Option<&'a str>,
    /// The text and tool-use blocks, in order.
    blocks: Vec<Block<'a>>,
    /// A raw string.
    stop_reason: Option<&'a str>,
    usage: Option<Usage>,
}

enum Block<'a> {
    /// A text block's string, raw.
    Text(&'a str),
    Tool {
        id: Option<&'a str>,
        name: Option<&'a str>,
        input: Option<&'a str>,
    },
}

impl<'a> Message<'a> {
    /// A message: an object with a content list (empty when the model said nothing) of
    /// objects. A body without one is not an answer, and must not become a clean-looking
    /// empty one; nor is one whose block types, texts or stop reason are other than strings.
    fn read(body: &'a [u8]) -> Result<Self, Invalid> {
        json::Reader::document(body, |r| {
            let mut msg = Message::default();
            let mut content = false;
            r.members(|key, r| {
                match key {
                    b"id" => msg.id = r.raw()?,
                    b"model" => msg.model = r.raw()?,
                    b"content" if r.null()? => content = false,
                    b"content" => {
                        content = true;
                        msg.blocks.clear();
                        r.array(|r| {
                            let (mut kind, mut text, mut id, mut name, mut input) = (None, None, None, None, None);
                            r.members(|key, r| {
                                match key {
                                    b"type" => kind = string(r)?,
                                    b"text" => text = string(r)?,
                                    b"id" => id = r.raw()?,
                                    b"name" => name = r.raw()?,
                                    b"input" => input = r.raw()?,
                                    _ => r.skip()?,
                                }
                                Ok(())
                            })?;
                            match kind.and_then(unescaped).as_deref() {
                                Some("text") => msg.blocks.push(Block::Text(text.unwrap_or(r#""""#))),
                                Some("tool_use") => msg.blocks.push(Block::Tool { id, name, input }),
                                _ => {}
                            }
                            Ok(())
                        })?
                    }
                    b"stop_reason" => msg.stop_reason = string(r)?,
                    b"usage" => msg.usage = Usage::next(r)?,
                    _ => r.skip()?,
                }
                Ok(())
            })?;
            if !content {
                return Err(Invalid);
            }
            Ok(msg)
        })
    }
}

/// The next value when it is a string (raw), `None` for `null`; any other value is
/// [`Invalid`].
fn string<'a>(r: &mut json::Reader<'a>) -> Result<Option<&'a str>, Invalid> {
    match r.raw()? {
        Some(raw) if !raw.starts_with('"') => Err(Invalid),
        raw => Ok(raw),
    }
}

/// Anthropic's token counts.
#[derive(Default)]
pub(super) struct Usage {
    input_tokens: Option<u64>,
    pub(super) output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
}

impl Usage {
    /// The usage that is next, read where it is; `None` when it is no object. A count that is
    /// no whole number (negative, fractional, a string, a list) is none, rather than failing
    /// the answer it came in: a count is never worth losing the answer for.
    pub(super) fn next(r: &mut json::Reader) -> Result<Option<Self>, Invalid> {
        r.object_or_none(|usage: &mut Usage, key, r| {
            let slot = match key {
                b"input_tokens" => &mut usage.input_tokens,
                b"output_tokens" => &mut usage.output_tokens,
                b"cache_read_input_tokens" => &mut usage.cache_read_input_tokens,
                b"cache_creation_input_tokens" => &mut usage.cache_creation_input_tokens,
                _ => return r.skip(),
            };
            *slot = r.count()?;
            Ok(())
        })
    }

    /// Chat's usage for these counts, with `output` completion tokens. Prompt tokens include
    /// cache reads and writes (they are input the model read); cached reads are also reported
    /// as `cached_tokens`.
    pub(super) fn chat(&self, output: u64) -> chat::Usage {
        let prompt = self.prompt();
        chat::Usage {
            prompt_tokens: Some(prompt),
            completion_tokens: Some(output),
            total_tokens: Some(prompt.saturating_add(output)),
            cached_tokens: Some(self.cache_read_input_tokens.unwrap_or(0)),
            reasoning_tokens: None,
        }
    }

    pub(super) fn prompt(&self) -> u64 {
        let n = |count: Option<u64>| count.unwrap_or(0);
        // Counts are the upstream's word: a huge one must not overflow.
        n(self.input_tokens)
            .saturating_add(n(self.cache_read_input_tokens))
            .saturating_add(n(self.cache_creation_input_tokens))
    }
}

/// An Anthropic error body (`{"type":"error","error":{"type","message"}}`) → the status to
/// answer with and an OpenAI-shaped error. The upstream status is kept, except 529
/// (overloaded), which becomes 503 with the reason.
pub fn error(status: StatusCode, body: &[u8]) -> (StatusCode, Value) {
    let parsed: Value = serde_json::from_slice(body).unwrap_or_default();
    let kind = parsed["error"]["type"].as_str().unwrap_or("api_error").to_owned();
    let message = parsed["error"]["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("Anthropic answered {status} with no error message"));
    let (status, message) = if status.as_u16() == 529 {
        (StatusCode::SERVICE_UNAVAILABLE, format!("Anthropic is overloaded: {message}"))
    } else {
        (status, message)
    };
    (status, json!({"error": {"message": message, "type": kind, "code": kind}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        serde_json::from_slice(&raw(name)).unwrap()
    }

    fn raw(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/upstream/anthropic").join(name);
        std::fs::read(path).unwrap()
    }

    fn chat(name: &str) -> Value {
        serde_json::from_slice(&completion(&raw(name)).unwrap()).unwrap()
    }

    #[test]
    fn text_message() {
        let got = chat("message.json");
        assert_eq!(got["id"], "msg_01XFDUDYJgAACzvnptvVoYEL");
        assert_eq!(got["model"], "claude-sonnet-4-20250514");
        assert_eq!(
            got["choices"][0]["message"],
            json!({"role": "assistant", "content": "Hello! How can I help you today?"})
        );
        assert_eq!(got["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            got["usage"],
            json!({"prompt_tokens": 12, "completion_tokens": 11, "total_tokens": 23, "prompt_tokens_details": {"cached_tokens": 0}})
        );
    }

    #[test]
    fn two_tool_calls_and_cache_tokens() {
        let got = chat("message-tools.json");
        let m = &got["choices"][0]["message"];
        assert_eq!(m["content"], "I will check both cities.");
        assert_eq!(m["tool_calls"][0]["id"], "toolu_01A09q90qw90lq917835lq9");
        assert_eq!(m["tool_calls"][0]["function"]["arguments"], r#"{"city":"Paris"}"#);
        assert_eq!(m["tool_calls"][1]["function"]["arguments"], r#"{"city":"Tokyo","unit":"celsius"}"#);
        assert_eq!(got["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(got["usage"]["prompt_tokens"], 389 + 128);
        assert_eq!(got["usage"]["prompt_tokens_details"]["cached_tokens"], 128);
    }

    /// A body without the message's content is no answer; odd counts are none, not a lost
    /// answer, and counts written as floats are counts.
    #[test]
    fn odd_bodies_and_counts() {
        for body in [&b"{}"[..], br#"{"foo": 1}"#, br#"{"content": null}"#, b"null", b"[1]"] {
            assert!(completion(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
        let body = br#"{"content": [{"type": "text", "text": "hi"}], "usage": {"input_tokens": 10.0, "output_tokens": -5, "cache_read_input_tokens": "2"}}"#;
        let got: Value = serde_json::from_slice(&completion(body).unwrap()).unwrap();
        assert_eq!(got["choices"][0]["message"]["content"], "hi");
        assert_eq!((&got["usage"]["prompt_tokens"], &got["usage"]["completion_tokens"]), (&json!(10), &json!(0)));
        // Counts that would overflow when added are the largest count.
        let body = br#"{"content": [], "usage": {"input_tokens": 18446744073709551615, "cache_read_input_tokens": 5, "output_tokens": 1}}"#;
        let got: Value = serde_json::from_slice(&completion(body).unwrap()).unwrap();
        assert_eq!(
            (&got["usage"]["prompt_tokens"], &got["usage"]["total_tokens"]),
            (&json!(u64::MAX), &json!(u64::MAX))
        );
        // Usage that is no object is no usage, and the answer stands.
        let body = br#"{"content": [{"type": "text", "text": "hi"}], "usage": "lots"}"#;
        let got: Value = serde_json::from_slice(&completion(body).unwrap()).unwrap();
        assert_eq!(
            (&got["choices"][0]["message"]["content"], &got["usage"]["prompt_tokens"]),
            (&json!("hi"), &json!(0))
        );
    }

    /// Block types and the stop reason are read as they spell, escapes and all.
    #[test]
    fn escaped_types_and_stop_reason() {
        let body = br#"{"content":[{"type":"t\u0065xt","text":"a\"b"},{"type":"tool_\u0075se","id":"t","name":"f","input":{}}],
            "stop_reason":"max\u005ftokens"}"#;
        let got: Value = serde_json::from_slice(&completion(body).unwrap()).unwrap();
        let choice = &got["choices"][0];
        assert_eq!((&choice["message"]["content"], &choice["finish_reason"]), (&json!("a\"b"), &json!("length")));
        assert_eq!(choice["message"]["tool_calls"][0]["function"], json!({"name": "f", "arguments": "{}"}));
        for refused in [
            &br#"{"content":[{"type":5}]}"#[..],
            br#"{"content":[{"type":"text","text":[]}]}"#,
            br#"{"content":[],"stop_reason":1}"#,
        ] {
            assert!(completion(refused).is_err(), "{}", String::from_utf8_lossy(refused));
        }
    }

    #[test]
    fn stop_reasons() {
        assert_eq!(finish_reason("end_turn"), r#""stop""#);
        assert_eq!(finish_reason("stop_sequence"), r#""stop""#);
        assert_eq!(finish_reason("max_tokens"), r#""length""#);
        assert_eq!(finish_reason("tool_use"), r#""tool_calls""#);
        assert_eq!(finish_reason("refusal"), r#""content_filter""#);
    }

    #[test]
    fn errors_keep_status_and_overloaded_becomes_503() {
        let body = serde_json::to_vec(&fixture("error-overloaded.json")).unwrap();
        let (status, e) = error(StatusCode::from_u16(529).unwrap(), &body);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e["error"]["message"], "Anthropic is overloaded: Overloaded");
        let body = serde_json::to_vec(&fixture("error-rate-limit.json")).unwrap();
        let (status, e) = error(StatusCode::TOO_MANY_REQUESTS, &body);
        assert_eq!((status.as_u16(), e["error"]["type"].as_str()), (429, Some("rate_limit_error")));
        let (status, e) = error(StatusCode::BAD_GATEWAY, b"<html>");
        assert_eq!(status.as_u16(), 502);
        assert!(e["error"]["message"].as_str().unwrap().contains("no error message"));
    }
}
