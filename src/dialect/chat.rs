//! Chat Completions shapes that more than one translation writes or reads (Chat is the hub).

use std::borrow::Cow;

use super::json::{self, Invalid, Object, Reader};
use super::push_u64;

/// The members of a Chat stream chunk the translators read, as the raw JSON the upstream
/// wrote (strings still quoted and escaped) but `created` and `usage`, read as counts; `null`
/// reads as absent.
#[derive(Default)]
pub struct Chunk<'a> {
    pub id: Option<&'a str>,
    pub model: Option<&'a str>,
    /// A whole number, else absent: some servers write a float (`1744857525.25`) or a string.
    pub created: Option<u64>,
    /// Choice 0, wherever it is in the list: a translated request never asks for more (every
    /// element must still be a choice).
    pub choice: Option<Choice<'a>>,
    /// Read where it is ([`Usage::next`]).
    pub usage: Option<Usage>,
    pub error: Option<&'a str>,
}

/// A choice's delta and finish reason.
#[derive(Default)]
pub struct Choice<'a> {
    /// Written, never read: no translator needs it.
    pub role: Option<&'a str>,
    pub content: Option<&'a str>,
    pub refusal: Option<&'a str>,
    pub calls: Vec<CallDelta<'a>>,
    pub finish_reason: Option<&'a str>,
}

#[derive(Default)]
pub struct CallDelta<'a> {
    pub index: Option<u64>,
    pub id: Option<&'a str>,
    pub name: Option<&'a str>,
    /// A string, or the object some servers send instead.
    pub arguments: Option<&'a str>,
}

impl<'a> Chunk<'a> {
    /// A chunk's event data: a JSON object, or [`Invalid`], as are choices and calls that are no
    /// objects and indices that are no whole numbers.
    pub fn read(data: &'a [u8]) -> Result<Self, Invalid> {
        Reader::document(data, |r| {
            let mut chunk = Chunk::default();
            r.members(|key, r| {
                match key {
                    b"id" => chunk.id = r.raw()?,
                    b"model" => chunk.model = r.raw()?,
                    b"created" => chunk.created = r.value()?.parse().ok(),
                    b"choices" => r.array(|r| {
                        let (index, choice) = Choice::read(r)?;
                        if index == 0 && chunk.choice.is_none() {
                            chunk.choice = Some(choice);
                        }
                        Ok(())
                    })?,
                    b"usage" => chunk.usage = Usage::next(r)?,
                    b"error" => chunk.error = r.raw()?,
                    _ => r.skip()?,
                }
                Ok(())
            })?;
            Ok(chunk)
        })
    }

    /// The end of the chunk's event, after `"choices":`: choice 0 as the only choice, the
    /// usage, and the blank line.
    fn write_tail(&self, out: &mut Vec<u8>) {
        out.push(b'[');
        if let Some(choice) = &self.choice {
            choice.write(out);
        }
        out.push(b']');
        if let Some(usage) = &self.usage {
            out.extend_from_slice(br#","usage":"#);
            usage.write(out);
        }
        out.extend_from_slice(b"}\n\n");
    }
}

/// Where a translator that makes Chat chunks sends them: into a Chat client's event stream
/// ([`Events`]), or straight into a translator that reads Chat chunks, which then needs
/// neither their text written nor read back (Anthropic → Chat → Responses: a sixth of that
/// stream's instructions went to writing and reading the chunks in between).
pub trait ChunkSink {
    fn chunk(&mut self, chunk: &Chunk<'_>, out: &mut Vec<u8>);
    /// `[DONE]`.
    fn done(&mut self, out: &mut Vec<u8>);
    /// The stream ended, with `[DONE]` or without (a translator behind has its end to write).
    fn finish(&mut self, _out: &mut Vec<u8>) {}
    /// A translator behind: its failure and its bound.
    fn failure(&self) -> Option<&str> {
        None
    }
    fn limit_events(&mut self, _max_bytes: usize) {}
}

/// A Chat client's event stream: each chunk as `data: {…}` (an error chunk is its error
/// alone), then `data: [DONE]`.
#[derive(Default)]
pub struct Events {
    /// `data: {"id":…,"object":"chat.completion.chunk","created":…,"model":…,"choices":` of
    /// the last chunk, written again while its `id`, `model` and `created` stay the same (they
    /// do from `message_start` on); where its id and model are in it.
    head: Vec<u8>,
    id: std::ops::Range<usize>,
    model: std::ops::Range<usize>,
    created: u64,
}

impl ChunkSink for Events {
    fn chunk(&mut self, chunk: &Chunk<'_>, out: &mut Vec<u8>) {
        if let Some(error) = chunk.error {
            out.extend_from_slice(br#"data: {"error":"#);
            out.extend_from_slice(error.as_bytes());
            out.extend_from_slice(b"}\n\n");
            return;
        }
        let (id, model) = (json::string_or_empty(chunk.id).as_bytes(), json::string_or_empty(chunk.model).as_bytes());
        let created = chunk.created.unwrap_or(0);
        let head = &mut self.head;
        if head.is_empty()
            || head[self.id.clone()] != *id
            || head[self.model.clone()] != *model
            || self.created != created
        {
            head.clear();
            // All of it at once: the fixed text and the number take about 100 bytes.
            head.reserve(128 + id.len() + model.len());
            head.extend_from_slice(br#"data: {"id":"#);
            self.id = head.len()..head.len() + id.len();
            head.extend_from_slice(id);
            head.extend_from_slice(br#","object":"chat.completion.chunk","created":"#);
            push_u64(head, created);
            head.extend_from_slice(br#","model":"#);
            self.model = head.len()..head.len() + model.len();
            head.extend_from_slice(model);
            head.extend_from_slice(br#","choices":"#);
            self.created = created;
        }
        out.extend_from_slice(head);
        chunk.write_tail(out);
    }

    fn done(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"data: [DONE]\n\n");
    }
}

impl<'a> Choice<'a> {
    /// A choice and its `index`.
    fn read(r: &mut Reader<'a>) -> Result<(u64, Self), Invalid> {
        let (mut index, mut choice) = (0, Choice::default());
        r.members(|key, r| {
            match key {
                b"index" => index = r.u64()?.ok_or(Invalid)?,
                b"delta" => r.object(|key, r| {
                    match key {
                        b"content" => choice.content = r.raw()?,
                        b"refusal" => choice.refusal = r.raw()?,
                        b"tool_calls" => r.array(|r| {
                            choice.calls.push(CallDelta::read(r)?);
                            Ok(())
                        })?,
                        _ => r.skip()?,
                    }
                    Ok(())
                })?,
                b"finish_reason" => choice.finish_reason = r.raw()?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok((index, choice))
    }

    /// `{"index":0,"delta":{…},"logprobs":null,"finish_reason":…}`.
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(br#"{"index":0,"delta":{"#);
        let mut object = Object::default();
        for (name, value) in [("role", self.role), ("content", self.content), ("refusal", self.refusal)] {
            if let Some(value) = value {
                object.member(out, name, value);
            }
        }
        if !self.calls.is_empty() {
            object.member(out, "tool_calls", "");
            json::list(out, &self.calls, |out, call| call.write(out));
        }
        out.extend_from_slice(br#"},"logprobs":null,"finish_reason":"#);
        out.extend_from_slice(self.finish_reason.unwrap_or("null").as_bytes());
        out.push(b'}');
    }
}

impl<'a> CallDelta<'a> {
    /// `{"index":…,"id":…,"type":"function","function":{"name":…,"arguments":…}}`, the
    /// members it has (`type` with the id that starts a call).
    fn write(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        let mut object = Object::default();
        if let Some(index) = self.index {
            object.member(out, "index", "");
            push_u64(out, index);
        }
        if let Some(id) = self.id {
            object.member(out, "id", id);
            object.member(out, "type", r#""function""#);
        }
        object.member(out, "function", "{");
        let mut function = Object::default();
        for (name, value) in [("name", self.name), ("arguments", self.arguments)] {
            if let Some(value) = value {
                function.member(out, name, value);
            }
        }
        out.extend_from_slice(b"}}");
    }

    /// The arguments as a raw JSON string: as sent, or the text of the object some servers
    /// send instead, whole, as a string.
    pub fn arguments_string(&self) -> Option<Cow<'a, str>> {
        match self.arguments? {
            object if object.starts_with('{') => serde_json::to_string(object).ok().map(Cow::Owned),
            string if string.starts_with('"') => Some(Cow::Borrowed(string)),
            _ => None,
        }
    }

    fn read(r: &mut Reader<'a>) -> Result<Self, Invalid> {
        let mut call = CallDelta::default();
        r.members(|key, r| {
            match key {
                b"index" => call.index = r.u64()?,
                b"id" => call.id = r.raw()?,
                b"function" => r.object(|key, r| {
                    match key {
                        b"name" => call.name = r.raw()?,
                        b"arguments" => call.arguments = r.raw()?,
                        _ => r.skip()?,
                    }
                    Ok(())
                })?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok(call)
    }
}

/// The members of a whole `chat.completion` the translators read, as the raw JSON the
/// upstream wrote (strings still quoted and escaped); `null` reads as absent, and of a key
/// written twice the last counts, as in a JSON tree.
#[derive(Default)]
pub struct Completion<'a> {
    pub id: Option<&'a str>,
    pub model: Option<&'a str>,
    /// A whole number (also written as a float), else absent.
    pub created: Option<u64>,
    /// The first choice: a translated request never asks for more.
    pub choice: Option<Answer<'a>>,
    pub usage: Option<Usage>,
}

/// A completion's first choice.
#[derive(Default)]
pub struct Answer<'a> {
    pub message: Option<Message<'a>>,
    pub finish_reason: Option<&'a str>,
}

#[derive(Default)]
pub struct Message<'a> {
    pub content: Content<'a>,
    pub refusal: Option<&'a str>,
    /// `tool_calls` when it is a list: an element that is no object is a call of nothing.
    pub tool_calls: Vec<Call<'a>>,
    /// The legacy `function_call` when it is an object (its `id` is always absent).
    pub function_call: Option<Call<'a>>,
}

/// A message's `content`.
#[derive(Default)]
pub enum Content<'a> {
    #[default]
    Absent,
    /// A string, raw.
    Text(&'a str),
    /// The escaped contents of each part's `text` that is a string (some servers answer
    /// with a list of text parts); joined, they are the escaped contents of the text joined.
    Parts(Vec<&'a str>),
    /// Any other value.
    Other,
}

/// A tool call: its id, and its function's name and arguments, raw.
#[derive(Default)]
pub struct Call<'a> {
    pub id: Option<&'a str>,
    pub name: Option<&'a str>,
    pub arguments: Option<&'a str>,
}

/// The message of a choice that has none (see [`Completion::answer`]).
static NO_MESSAGE: Message<'static> =
    Message { content: Content::Absent, refusal: None, tool_calls: Vec::new(), function_call: None };

impl<'a> Completion<'a> {
    /// The choice a translation answers with, and its message. A completion without a choice
    /// (and its message) is not an answer, and must not become an empty one; a choice without
    /// a message that says why (a filtered answer's `finish_reason: content_filter`) is an
    /// empty answer.
    pub fn answer(&self) -> Result<(&Answer<'a>, &Message<'a>), Invalid> {
        let choice = self.choice.as_ref().ok_or(Invalid)?;
        match &choice.message {
            Some(message) => Ok((choice, message)),
            None if choice.finish_reason.and_then(json::contents).is_some() => Ok((choice, &NO_MESSAGE)),
            None => Err(Invalid),
        }
    }

    /// A completion: a JSON object whose `choices`, when present, is a list whose first
    /// element is an object, whose `message`, when present, is an object; else [`Invalid`].
    /// Usage of any other shape is none, never a reason to refuse the answer.
    pub fn read(body: &'a [u8]) -> Result<Self, Invalid> {
        Reader::document(body, |r| {
            let mut chat = Completion::default();
            r.members(|key, r| {
                match key {
                    b"id" => chat.id = r.raw()?,
                    b"model" => chat.model = r.raw()?,
                    b"created" => chat.created = r.count()?,
                    b"choices" => {
                        chat.choice = None;
                        r.array(|r| match chat.choice {
                            Some(_) => r.skip(),
                            None => Answer::read(r).map(|a| chat.choice = Some(a)),
                        })?
                    }
                    b"usage" => chat.usage = Usage::next(r)?,
                    _ => r.skip()?,
                }
                Ok(())
            })?;
            Ok(chat)
        })
    }
}

impl<'a> Answer<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, Invalid> {
        let mut answer = Answer::default();
        r.members(|key, r| {
            match key {
                b"message" => answer.message = r.optional(Message::member)?,
                b"finish_reason" => answer.finish_reason = r.raw()?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok(answer)
    }
}

impl<'a> Message<'a> {
    fn member(&mut self, key: &'a [u8], r: &mut Reader<'a>) -> Result<(), Invalid> {
        match key {
            b"content" => self.content = Content::read(r)?,
            b"refusal" => self.refusal = r.raw()?,
            b"tool_calls" => self.tool_calls = calls(r)?,
            b"function_call" => self.function_call = Call::legacy(r)?,
            _ => r.skip()?,
        }
        Ok(())
    }
}

/// The `tool_calls` that are next when they are a list (an element that is no object is a
/// call of nothing); none for any other value.
pub fn calls<'a>(r: &mut Reader<'a>) -> Result<Vec<Call<'a>>, Invalid> {
    let mut calls = Vec::new();
    match r.peek() {
        Some(b'[') => r.array(|r| {
            calls.push(Call::read(r)?.unwrap_or_default());
            Ok(())
        })?,
        _ => r.skip()?,
    }
    Ok(calls)
}

impl<'a> Content<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, Invalid> {
        Ok(match r.peek() {
            Some(b'"') => Content::Text(r.value()?),
            Some(b'n') => {
                r.skip()?;
                Content::Absent
            }
            Some(b'[') => {
                let mut parts = Vec::new();
                r.array(|r| {
                    let mut text = None;
                    r.if_object(|key, r| {
                        match key {
                            b"text" => text = r.raw()?.and_then(json::contents),
                            _ => r.skip()?,
                        }
                        Ok(())
                    })?;
                    parts.extend(text);
                    Ok(())
                })?;
                Content::Parts(parts)
            }
            _ => {
                r.skip()?;
                Content::Other
            }
        })
    }
}

impl<'a> Call<'a> {
    /// A tool call (`id`, `function: {name, arguments}`) when the next value is an object;
    /// any other value is skipped.
    fn read(r: &mut Reader<'a>) -> Result<Option<Self>, Invalid> {
        r.object_or_none(|call: &mut Self, key, r| {
            // Keys as they spell: also read from a client's request.
            match json::key(key).as_ref() {
                b"id" => call.id = r.raw()?,
                // The last `function` counts, an object or not.
                b"function" => {
                    let function = r.object_or_none(Self::function)?.unwrap_or_default();
                    (call.name, call.arguments) = (function.name, function.arguments);
                }
                _ => r.skip()?,
            }
            Ok(())
        })
    }

    /// A legacy `function_call` (`{name, arguments}`) when the next value is an object.
    fn legacy(r: &mut Reader<'a>) -> Result<Option<Self>, Invalid> {
        r.object_or_none(Self::function)
    }

    fn function(&mut self, key: &'a [u8], r: &mut Reader<'a>) -> Result<(), Invalid> {
        match json::key(key).as_ref() {
            b"name" => self.name = r.raw()?,
            b"arguments" => self.arguments = r.raw()?,
            _ => r.skip()?,
        }
        Ok(())
    }
}

/// Chat usage, as a completion or a stream's last chunk reports it: each count a whole
/// number (also written as a float, `10.0`), else none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
    /// `prompt_tokens_details.cached_tokens`.
    pub cached_tokens: Option<u64>,
    /// `completion_tokens_details.reasoning_tokens`.
    pub reasoning_tokens: Option<u64>,
}

impl Usage {
    /// The counts of the usage that is next, read where it is; `None` for any value but an
    /// object. A count that is no whole number (negative, fractional, a string, a list, beyond
    /// `u64`) and details that are no object are none, the rest kept: a count is never worth
    /// losing the answer for. Of a key written twice the last counts, as the access log's
    /// token reader takes it.
    pub fn next(r: &mut Reader) -> Result<Option<Self>, Invalid> {
        r.object_or_none(|usage: &mut Usage, key, r| {
            match key {
                b"prompt_tokens" => usage.prompt_tokens = r.count()?,
                b"completion_tokens" => usage.completion_tokens = r.count()?,
                b"total_tokens" => usage.total_tokens = r.count()?,
                b"prompt_tokens_details" => usage.cached_tokens = detail(r, b"cached_tokens")?,
                b"completion_tokens_details" => usage.reasoning_tokens = detail(r, b"reasoning_tokens")?,
                _ => r.skip()?,
            }
            Ok(())
        })
    }

    /// `(prompt, completion)` tokens, as the access log counts them (a count that is none
    /// is 0).
    pub fn counts(&self) -> (u64, u64) {
        (self.prompt_tokens.unwrap_or(0), self.completion_tokens.unwrap_or(0))
    }

    /// Writes it as Chat's `usage` object: a count that is none as 0, reasoning tokens only
    /// when known.
    pub fn write(&self, out: &mut Vec<u8>) {
        let n = |count: Option<u64>| count.unwrap_or(0);
        out.extend_from_slice(br#"{"prompt_tokens":"#);
        push_u64(out, n(self.prompt_tokens));
        out.extend_from_slice(br#","completion_tokens":"#);
        push_u64(out, n(self.completion_tokens));
        out.extend_from_slice(br#","total_tokens":"#);
        push_u64(out, n(self.total_tokens));
        out.extend_from_slice(br#","prompt_tokens_details":{"cached_tokens":"#);
        push_u64(out, n(self.cached_tokens));
        out.push(b'}');
        if let Some(reasoning) = self.reasoning_tokens {
            out.extend_from_slice(br#","completion_tokens_details":{"reasoning_tokens":"#);
            push_u64(out, reasoning);
            out.push(b'}');
        }
        out.push(b'}');
    }
}

/// The count `name` inside the details object that is next; none when they are no object.
fn detail(r: &mut Reader, name: &[u8]) -> Result<Option<u64>, Invalid> {
    let mut n = None;
    r.if_object(|key, r| {
        match key == name {
            true => n = r.count()?,
            false => r.skip()?,
        }
        Ok(())
    })?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// A raw member as the value it holds (absent and `null` alike).
    fn value(raw: Option<&str>) -> Value {
        raw.map_or(Value::Null, |r| serde_json::from_str(r).unwrap())
    }

    #[test]
    fn reads_what_a_json_tree_holds() {
        let fixture = String::from_utf8(crate::dialect::testing::fixture("upstream/openai/chat-stream.sse")).unwrap();
        let mut chunks: Vec<Value> = fixture
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert_eq!(chunks.len(), 5);
        chunks.push(json!({
            "id": "x\u{e9}\"\n", "created": 0, "error": null, "extra": [{"deep": [true, -1.5e3, {}]}],
            "choices": [
                {"index": 1, "delta": {"content": "not choice 0"}},
                {"delta": {"content": "a\nb", "refusal": null, "tool_calls": [
                    {"index": 2, "id": "c", "function": {"name": "f", "arguments": {"a": [1]}}},
                    {"function": null},
                ]}, "finish_reason": "stop"},
                {"index": 0, "delta": {"content": "a later choice 0"}},
            ],
            "usage": {"prompt_tokens": 1},
        }));
        for c in chunks {
            for text in [c.to_string(), serde_json::to_string_pretty(&c).unwrap()] {
                let chunk = Chunk::read(text.as_bytes()).unwrap();
                assert_eq!(value(chunk.id), c["id"]);
                assert_eq!(value(chunk.model), c["model"]);
                assert_eq!(chunk.created, c["created"].as_u64());
                let u = &c["usage"];
                let counts = [
                    &u["prompt_tokens"],
                    &u["completion_tokens"],
                    &u["total_tokens"],
                    &u["prompt_tokens_details"]["cached_tokens"],
                    &u["completion_tokens_details"]["reasoning_tokens"],
                ]
                .map(Value::as_u64);
                assert_eq!(
                    chunk.usage.map(|u| [
                        u.prompt_tokens,
                        u.completion_tokens,
                        u.total_tokens,
                        u.cached_tokens,
                        u.reasoning_tokens
                    ]),
                    u.as_object().map(|_| counts)
                );
                assert_eq!(value(chunk.error), c["error"]);
                let first = c["choices"].as_array().unwrap().iter().find(|ch| ch["index"].as_u64().unwrap_or(0) == 0);
                assert_eq!(chunk.choice.is_some(), first.is_some(), "{text}");
                let (Some(choice), Some(first)) = (chunk.choice, first) else { continue };
                let delta = &first["delta"];
                assert_eq!(value(choice.content), delta["content"]);
                assert_eq!(value(choice.refusal), delta["refusal"]);
                assert_eq!(value(choice.finish_reason), first["finish_reason"]);
                let calls = delta["tool_calls"].as_array().cloned().unwrap_or_default();
                assert_eq!(choice.calls.len(), calls.len());
                for (call, c) in choice.calls.iter().zip(&calls) {
                    assert_eq!(call.index, c["index"].as_u64());
                    assert_eq!(value(call.id), c["id"]);
                    assert_eq!(value(call.name), c["function"]["name"]);
                    assert_eq!(value(call.arguments), c["function"]["arguments"]);
                }
            }
        }
    }

    /// No chunk: a chunk, a choice or a call that is no object, an index that is no whole
    /// number, text that is not UTF-8 JSON.
    #[test]
    fn refuses_what_is_no_chunk() {
        for text in [
            "null",
            "[]",
            r#""chunk""#,
            r#"{"choices":[7]}"#,
            r#"{"choices":[null]}"#,
            r#"{"choices":{}}"#,
            r#"{"choices":[{"index":1.5}]}"#,
            r#"{"choices":[{"index":-1}]}"#,
            r#"{"choices":[{"index":null}]}"#,
            r#"{"choices":[{"index":"0"}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[null]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":"1"}]}}]}"#,
            r#"{"choices":[{"delta":[]}]}"#,
            r#"{"model":"m"} {}"#,
            r#"{"model":"m""#,
        ] {
            assert!(Chunk::read(text.as_bytes()).is_err(), "{text}");
        }
        assert!(Chunk::read(b"{\"model\":\"\xff\"}").is_err());
        for odd in [r#"{"created":1744857525.25}"#, r#"{"created":"1744857525"}"#, r#"{"created":-1}"#] {
            assert_eq!(Chunk::read(odd.as_bytes()).unwrap().created, None, "{odd}");
        }
        // A usage that is no object is none, and the chunk stands.
        for odd in [r#"{"usage":"lots"}"#, r#"{"usage":[1]}"#, r#"{"usage":{"prompt_tokens":1},"usage":7}"#] {
            assert_eq!(Chunk::read(odd.as_bytes()).unwrap().usage, None, "{odd}");
        }
    }

    /// A raw string's contents unescaped (absent and `null` alike read as no string).
    fn text(raw: Option<&str>) -> Value {
        raw.map_or(Value::Null, |r| serde_json::from_str(r).unwrap())
    }

    /// The completions the translators were written against, and an odd one: every member
    /// read is what a JSON tree holds, compact or pretty.
    #[test]
    fn completions_read_what_a_json_tree_holds() {
        let mut completions: Vec<Value> = [
            "upstream/openai/chat.json",
            "dialects/responses/chat-completion-text.json",
            "dialects/responses/chat-completion-tools.json",
            "dialects/responses/chat-completion-length.json",
        ]
        .iter()
        .map(|f| serde_json::from_slice(&crate::dialect::testing::fixture(f)).unwrap())
        .collect();
        completions.push(json!({
            "id": "c\u{e9}\n", "model": null, "created": 1e3,
            "choices": [
                {"message": {"content": [{"text": "a\"b"}, {"text": 3}, "x", {"text": "\u{e9}\n"}],
                    "refusal": "no", "tool_calls": [
                        {"id": "c1", "function": {"name": "f", "arguments": {"a": [1]}}},
                        "call", {"function": "f"}, {"id": null, "function": {"arguments": "{}"}}],
                    "function_call": {"name": "legacy", "arguments": "{\"x\":1}"}},
                 "finish_reason": "tool_calls"},
                {"message": {"content": "the second choice"}},
            ],
        }));
        for c in completions {
            for body in [c.to_string(), serde_json::to_string_pretty(&c).unwrap()] {
                let chat = Completion::read(body.as_bytes()).unwrap();
                assert_eq!((value(chat.id), value(chat.model)), (c["id"].clone(), c["model"].clone()));
                assert_eq!(chat.created, c["created"].as_f64().map(|n| n as u64));
                let (choice, first) = (chat.choice.unwrap(), &c["choices"][0]);
                assert_eq!(value(choice.finish_reason), first["finish_reason"]);
                let (msg, m) = (choice.message.unwrap(), &first["message"]);
                match (&msg.content, &m["content"]) {
                    (Content::Text(raw), want) => assert_eq!(&text(Some(raw)), want),
                    (Content::Parts(parts), Value::Array(want)) => {
                        let want: String = want.iter().filter_map(|p| p["text"].as_str()).collect();
                        let got: String = parts
                            .iter()
                            .map(|p| text(Some(&format!("\"{p}\""))).as_str().unwrap().to_owned())
                            .collect();
                        assert_eq!(got, want);
                    }
                    (Content::Absent, Value::Null) => {}
                    _ => panic!("content of {body}"),
                }
                assert_eq!(value(msg.refusal), m["refusal"]);
                let calls = m["tool_calls"].as_array().cloned().unwrap_or_default();
                assert_eq!(msg.tool_calls.len(), calls.len());
                for (call, want) in msg.tool_calls.iter().zip(&calls) {
                    assert_eq!(value(call.id), want["id"]);
                    assert_eq!(value(call.name), want["function"]["name"]);
                    assert_eq!(value(call.arguments), want["function"]["arguments"]);
                }
                let legacy = msg.function_call.map(|f| (value(f.name), value(f.arguments)));
                let want = m["function_call"].as_object().map(|f| (f["name"].clone(), f["arguments"].clone()));
                assert_eq!(legacy, want);
                let want = &c["usage"];
                let usage = chat.usage;
                assert_eq!(usage.is_some(), want.is_object());
                let usage = usage.unwrap_or_default();
                assert_eq!(usage.prompt_tokens, want["prompt_tokens"].as_u64());
                assert_eq!(usage.completion_tokens, want["completion_tokens"].as_u64());
                assert_eq!(usage.total_tokens, want["total_tokens"].as_u64());
                assert_eq!(usage.cached_tokens, want["prompt_tokens_details"]["cached_tokens"].as_u64());
                assert_eq!(usage.reasoning_tokens, want["completion_tokens_details"]["reasoning_tokens"].as_u64());
            }
        }
    }

    /// No completion: not an object, not JSON, choices that are no list, a first choice or
    /// its message that is no object. An empty or absent list is a completion without a
    /// choice (the translators refuse it).
    #[test]
    fn refuses_what_is_no_completion() {
        for body in [
            "null",
            "[1]",
            r#""x""#,
            "",
            "{",
            "{} {}",
            "<html>",
            r#"{"choices":{}}"#,
            r#"{"choices":[5]}"#,
            r#"{"choices":[{"message":"x"}]}"#,
            r#"{"choices":[{"message":[]}]}"#,
        ] {
            assert!(Completion::read(body.as_bytes()).is_err(), "{body}");
        }
        assert!(Completion::read(b"{\"id\":\"\xff\"}").is_err(), "not UTF-8");
        for body in ["{}", r#"{"choices":[]}"#, r#"{"choices":null}"#, r#"{"choices":[{"message":{}}],"choices":[]}"#] {
            assert!(Completion::read(body.as_bytes()).unwrap().choice.is_none(), "{body}");
        }
    }

    /// Usage of any shape never fails the answer: what is no object is none; a count that is
    /// no whole number, or details that are no object, are none and the rest kept, JSON no
    /// number type holds (`1e400`, a lone surrogate) included; of a key written twice the last
    /// counts. A completion whose usage is odd is still read whole.
    #[test]
    fn usage_of_any_shape_is_read_count_by_count() {
        let read = |raw: &str| Reader::checked(raw, Usage::next).unwrap();
        for none in ["null", "1", "-1.5", "true", r#""{}""#, "[1,2]", "[]", "1e400", r#""\ud800""#] {
            assert_eq!(read(none), None, "{none}");
            let body = format!(r#"{{"usage":{none},"choices":[{{"message":{{"content":"hi"}}}}]}}"#);
            let chat = Completion::read(body.as_bytes()).unwrap();
            assert!(chat.usage.is_none() && chat.choice.is_some(), "{none}");
        }
        let usage = |raw: &str| read(raw).unwrap();
        assert_eq!(
            usage(r#"{"prompt_tokens":1e400,"completion_tokens":"\ud800","total_tokens":2.0,"\ud800":1,"x":[{}]}"#),
            Usage { total_tokens: Some(2), ..Usage::default() }
        );
        assert_eq!(
            usage(
                r#"{"prompt_tokens":-1,"completion_tokens":4,"prompt_tokens":5,"prompt_tokens_details":[2],
                "completion_tokens_details":{"reasoning_tokens":1,"reasoning_tokens":3,"x":{}}}"#
            ),
            Usage { prompt_tokens: Some(5), completion_tokens: Some(4), reasoning_tokens: Some(3), ..Usage::default() }
        );
        assert_eq!(usage(r#"{"prompt_tokens_details":{"cached_tokens":null}}"#), Usage::default());
    }
}
