//! Anthropic SSE → OpenAI `chat.completion.chunk` SSE, incrementally: bytes in as they
//! arrive (split anywhere), chunks out, no whole-response buffering; an event larger than
//! `limits.max_event_bytes` ends the stream with an error chunk. The chunks go to a Chat
//! client as events, or straight to a translator from Chat ([`ChunkSink`]).

use std::borrow::Cow;

use super::request::Asked;
use super::response::{Usage, finish_reason};
use crate::dialect::chat::{self, CallDelta, Choice, Chunk, ChunkSink, Events};
use crate::dialect::json::{self, Invalid, unescaped};
use crate::dialect::sse;
use crate::dialect::{StreamTranslator, now};

pub struct ToChat<S = Events> {
    reader: sse::Reader,
    /// Where the chunks go.
    sink: S,
    /// The chunks' `id` and `model`, raw JSON strings from `message_start` (none yet: empty,
    /// written `""`).
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    /// The content blocks that are tool calls.
    tools: Vec<Tool>,
    input_usage: Usage,
    /// What the last `message_delta` that said so reported, or 0 once the message ended
    /// without (none yet: not counted).
    output_tokens: Option<u64>,
    /// The finish reason, a raw JSON string.
    finish: &'static str,
    done: bool,
    failure: Option<String>,
}

/// The members of an Anthropic stream event that matter, as the raw JSON of the event text
/// (strings still quoted and escaped, copied into the chunks as they are); `null` reads as
/// absent.
#[derive(Default)]
struct Event<'a> {
    /// The `type`, unquoted.
    kind: &'a [u8],
    index: u64,
    delta: Delta<'a>,
    content_block: Block<'a>,
    message: Option<Start<'a>>,
    /// Read where it is, as every usage.
    usage: Option<Usage>,
    error: Option<ErrorBody<'a>>,
}

#[derive(Default)]
struct Delta<'a> {
    kind: Option<&'a str>,
    text: Option<&'a str>,
    partial_json: Option<&'a str>,
    stop_reason: Option<&'a str>,
}

#[derive(Default)]
struct Block<'a> {
    kind: Option<&'a str>,
    id: Option<&'a str>,
    name: Option<&'a str>,
    text: Option<&'a str>,
}

#[derive(Default)]
struct Start<'a> {
    id: Option<&'a str>,
    model: Option<&'a str>,
    usage: Option<Usage>,
}

#[derive(Default)]
struct ErrorBody<'a> {
    kind: Option<&'a str>,
    message: Option<&'a str>,
}

impl<'a> Event<'a> {
    /// An event's data: a JSON object with a string `type`, or [`Invalid`]. Inlined: returned
    /// from a call, the event (200 bytes) is copied, eight times a stream.
    #[inline(always)]
    fn read(data: &'a [u8]) -> Result<Self, Invalid> {
        json::Reader::document(data, |r| {
            let mut ev = Event::default();
            let mut kind = None;
            r.members(|key, r| {
                match key {
                    b"type" => kind = r.raw()?,
                    b"index" => ev.index = r.u64()?.ok_or(Invalid)?,
                    b"delta" => r.object(|key, r| {
                        let d = &mut ev.delta;
                        match key {
                            b"type" => d.kind = r.raw()?,
                            b"text" => d.text = r.raw()?,
                            b"partial_json" => d.partial_json = r.raw()?,
                            b"stop_reason" => d.stop_reason = r.raw()?,
                            _ => r.skip()?,
                        }
                        Ok(())
                    })?,
                    b"content_block" => r.object(|key, r| {
                        let b = &mut ev.content_block;
                        match key {
                            b"type" => b.kind = r.raw()?,
                            b"id" => b.id = r.raw()?,
                            b"name" => b.name = r.raw()?,
                            b"text" => b.text = r.raw()?,
                            _ => r.skip()?,
                        }
                        Ok(())
                    })?,
                    b"message" => {
                        ev.message = r.optional(|m: &mut Start<'a>, key, r| {
                            match key {
                                b"id" => m.id = r.raw()?,
                                b"model" => m.model = r.raw()?,
                                b"usage" => m.usage = Usage::next(r)?,
                                _ => r.skip()?,
                            }
                            Ok(())
                        })?
                    }
                    b"usage" => ev.usage = Usage::next(r)?,
                    b"error" => {
                        ev.error = r.optional(|e: &mut ErrorBody<'a>, key, r| {
                            match key {
                                b"type" => e.kind = r.raw()?,
                                b"message" => e.message = r.raw()?,
                                _ => r.skip()?,
                            }
                            Ok(())
                        })?
                    }
                    _ => r.skip()?,
                }
                Ok(())
            })?;
            ev.kind = kind.and_then(json::contents).ok_or(Invalid)?.as_bytes();
            Ok(ev)
        })
    }
}

/// A raw JSON string's text, unescaped; empty for any other value.
fn plain(raw: Option<&str>) -> Cow<'_, str> {
    raw.and_then(unescaped).unwrap_or_default()
}

/// A tool-use block, by its Anthropic index, and the Chat tool call it became.
struct Tool {
    block: u64,
    call: usize,
    /// Some of its arguments went out.
    argued: bool,
}

impl ToChat {
    /// Chunks for a Chat client.
    pub fn new(asked: &Asked) -> Self {
        Self::to(asked, Events::default())
    }
}

impl<S: ChunkSink> ToChat<S> {
    /// Chunks for `sink`.
    pub fn to(asked: &Asked, sink: S) -> Self {
        Self {
            reader: sse::Reader::default(),
            sink,
            id: String::new(),
            model: String::new(),
            created: now(),
            include_usage: asked.include_usage,
            tools: Vec::new(),
            input_usage: Usage::default(),
            output_tokens: None,
            finish: finish_reason(""),
            done: false,
            failure: None,
        }
    }

    fn event(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        let Ok(ev) = Event::read(data) else {
            self.error_event("anthropic_bad_event", "Anthropic sent an event that is not valid", out);
            return;
        };
        match ev.kind {
            b"message_start" => {
                if let Some(m) = ev.message {
                    json::string_or_empty(m.id).clone_into(&mut self.id);
                    json::string_or_empty(m.model).clone_into(&mut self.model);
                    self.input_usage = m.usage.unwrap_or_default();
                }
                let role = Choice { role: Some(r#""assistant""#), content: Some(r#""""#), ..Choice::default() };
                self.chunk(Some(role), None, out);
            }
            b"content_block_start" => match ev.content_block.kind.and_then(json::contents) {
                Some("tool_use") => {
                    let b = ev.content_block;
                    let index = self.tools.len();
                    self.tools.push(Tool { block: ev.index, call: index, argued: false });
                    let call = CallDelta {
                        index: Some(index as u64),
                        id: Some(json::string_or_empty(b.id)),
                        name: Some(json::string_or_empty(b.name)),
                        arguments: Some(r#""""#),
                    };
                    self.chunk(Some(Choice { calls: vec![call], ..Choice::default() }), None, out);
                }
                Some("text") => self.text(json::string_or_empty(ev.content_block.text), out),
                _ => {}
            },
            b"content_block_delta" => match ev.delta.kind.and_then(json::contents) {
                Some("text_delta") => self.text(json::string_or_empty(ev.delta.text), out),
                Some("input_json_delta") => self.arguments(ev.index, json::string_or_empty(ev.delta.partial_json), out),
                _ => {}
            },
            b"content_block_stop" => self.end_tool(ev.index, out),
            b"message_delta" => {
                if let Some(stop) = ev.delta.stop_reason.and_then(unescaped) {
                    self.finish = finish_reason(&stop);
                }
                if let Some(n) = ev.usage.and_then(|u| u.output_tokens) {
                    self.output_tokens = Some(n);
                }
            }
            b"message_stop" => {
                // A block the upstream did not close.
                for i in 0..self.tools.len() {
                    self.end_tool(self.tools[i].block, out);
                }
                let finish = Some(self.finish);
                self.chunk(Some(Choice { finish_reason: finish, ..Choice::default() }), None, out);
                // Ended, the message is counted as its usage chunk says, reported or not.
                let output = *self.output_tokens.get_or_insert(0);
                if self.include_usage {
                    self.chunk(None, Some(self.input_usage.chat(output)), out);
                }
                self.sink.done(out);
                self.done = true;
            }
            b"error" => {
                let (kind, message) = match &ev.error {
                    Some(e) => (plain(e.kind), plain(e.message)),
                    None => (Cow::Borrowed("api_error"), Cow::Borrowed("Anthropic stream error")),
                };
                let kind = if kind.is_empty() { "api_error" } else { &kind };
                self.error_event(kind, &message, out);
            }
            _ => {}
        }
    }

    /// A piece (a raw JSON string) of the arguments of the tool call that tool-use block
    /// `block` became.
    fn arguments(&mut self, block: u64, partial: &str, out: &mut Vec<u8>) {
        let Some(tool) = self.tools.iter_mut().find(|t| t.block == block) else { return };
        if partial == r#""""# {
            return;
        }
        tool.argued = true;
        let call = CallDelta { index: Some(tool.call as u64), arguments: Some(partial), ..CallDelta::default() };
        self.chunk(Some(Choice { calls: vec![call], ..Choice::default() }), None, out);
    }

    /// The end of tool-use block `block`: `{}` when no argument went out. A tool called
    /// without arguments gets no `input_json_delta`, or an empty one, where its whole answer
    /// has `"input": {}`; a Chat client parses the arguments it put together, and `""` is
    /// no JSON.
    fn end_tool(&mut self, block: u64, out: &mut Vec<u8>) {
        if self.tools.iter().any(|t| t.block == block && !t.argued) {
            self.arguments(block, r#""{}""#, out);
        }
    }

    /// A piece of text, a raw JSON string.
    fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        if text != r#""""# {
            self.chunk(Some(Choice { content: Some(text), ..Choice::default() }), None, out);
        }
    }

    /// A chunk of `choice` (as choice 0) and `usage`.
    fn chunk(&mut self, choice: Option<Choice<'_>>, usage: Option<chat::Usage>, out: &mut Vec<u8>) {
        let chunk = Chunk {
            id: Some(self.id.as_str()).filter(|id| !id.is_empty()),
            model: Some(self.model.as_str()).filter(|model| !model.is_empty()),
            created: Some(self.created),
            choice,
            usage,
            error: None,
        };
        self.sink.chunk(&chunk, out);
    }

    fn error_event(&mut self, kind: &str, message: &str, out: &mut Vec<u8>) {
        let error = serde_json::json!({"message": message, "type": kind, "code": kind}).to_string();
        self.sink.chunk(&Chunk { error: Some(&error), ..Chunk::default() }, out);
        self.done = true;
        self.failure = Some(message.to_owned());
    }
}

impl<S: ChunkSink + Send + Sync> StreamTranslator for ToChat<S> {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let mut reader = std::mem::take(&mut self.reader);
        // `event:` names are redundant with the JSON `type`, which decides.
        let read = reader.feed(bytes, &mut |e| self.event(e.data, out));
        self.reader = reader;
        if let Err(e) = read
            && !self.done
        {
            self.error_event("anthropic_event_too_large", &e.to_string(), out);
        }
    }

    /// A stream that stopped before `message_stop` ends with an error event, not silently.
    fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.done {
            self.error_event("anthropic_stream_incomplete", "Anthropic's stream ended before message_stop", out);
        }
        self.sink.finish(out);
    }

    fn fail(&mut self, code: &str, message: &str, out: &mut Vec<u8>) {
        if !self.done {
            self.error_event(code, message, out);
        }
    }

    /// `(prompt, completion)` tokens, once the stream reported its output usage (0 included)
    /// or ended, whatever the sink.
    fn tokens(&self) -> Option<(u64, u64)> {
        self.output_tokens.map(|output| (self.input_usage.prompt(), output))
    }

    /// The sink's first: a failure here reaches it as an error chunk, message and all.
    fn failure(&self) -> Option<&str> {
        self.sink.failure().or(self.failure.as_deref())
    }

    fn limit_events(&mut self, max_bytes: usize) {
        self.reader.set_limit(max_bytes);
        self.sink.limit_events(max_bytes);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::dialect::testing::{self, assert_split_invariant, feed_split};

    fn fixture(name: &str) -> Vec<u8> {
        testing::fixture(&format!("upstream/anthropic/{name}"))
    }

    fn translate(input: &[u8], splits: &[usize], include_usage: bool) -> String {
        let mut t = ToChat::new(&Asked { stream: true, include_usage });
        t.created = 1_700_000_000;
        feed_split(&mut t, input, splits)
    }

    fn events(text: &str) -> Vec<Value> {
        text.split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(|d| if d == "[DONE]" { Value::from("[DONE]") } else { serde_json::from_str(d).unwrap() })
            .collect()
    }

    /// The bytes a Chat client gets, whole: OpenAI's members in OpenAI's order, one head per
    /// chunk, the usage chunk with no choice, `[DONE]`.
    #[test]
    fn text_stream_bytes() {
        let head = r#"data: {"id":"msg_01TextStream","object":"chat.completion.chunk","created":1700000000,"model":"claude-sonnet-4-20250514","choices":"#;
        let choice = |delta: &str, finish: &str| {
            format!(r#"{head}[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}]}}"#)
        };
        let want = [
            choice(r#"{"role":"assistant","content":""}"#, "null"),
            choice(r#"{"content":"Hello"}"#, "null"),
            choice(r#"{"content":"! How can I help?"}"#, "null"),
            choice("{}", r#""stop""#),
            format!(
                r#"{head}[],"usage":{{"prompt_tokens":25,"completion_tokens":9,"total_tokens":34,"prompt_tokens_details":{{"cached_tokens":0}}}}}}"#
            ),
            "data: [DONE]".to_owned(),
        ]
        .map(|event| event + "\n\n")
        .concat();
        assert_eq!(translate(&fixture("stream-text.sse"), &[], true), want);
        let tools = translate(&fixture("stream-tools.sse"), &[], false);
        for call in [
            r#""choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}]}"#,
            r#""choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": \"Pa"}}]},"logprobs":null,"finish_reason":null}]}"#,
        ] {
            assert!(tools.contains(call), "{call} not in {tools}");
        }
    }

    #[test]
    fn text_stream() {
        let got = events(&translate(&fixture("stream-text.sse"), &[], true));
        assert_eq!(got.len(), 6, "{got:#?}");
        assert_eq!(got[0]["choices"][0]["delta"], serde_json::json!({"role": "assistant", "content": ""}));
        assert_eq!(got[0]["id"], "msg_01TextStream");
        assert_eq!(got[0]["model"], "claude-sonnet-4-20250514");
        assert_eq!(got[0]["object"], "chat.completion.chunk");
        assert_eq!(got[1]["choices"][0]["delta"]["content"], "Hello");
        assert_eq!(got[2]["choices"][0]["delta"]["content"], "! How can I help?");
        assert_eq!(got[3]["choices"][0]["finish_reason"], "stop");
        assert_eq!(got[4]["choices"], serde_json::json!([]));
        assert_eq!(got[4]["usage"]["completion_tokens"], 9);
        assert_eq!(got[4]["usage"]["prompt_tokens"], 25);
        assert_eq!(got[5], "[DONE]");
    }

    /// Odd usage costs its counts, never the stream: a float count is a count, usage that is no
    /// object is none.
    #[test]
    fn odd_usage_is_read_count_by_count() {
        let text = String::from_utf8(fixture("stream-text.sse")).unwrap();
        let mut odd = text.clone();
        for (from, to) in [
            (r#""usage":{"input_tokens":25"#, r#""usage":"lots","x":{"input_tokens":25"#),
            (r#""usage":{"output_tokens":9}"#, r#""usage":{"output_tokens":9.0}"#),
        ] {
            assert_eq!(odd.matches(from).count(), 1, "the fixture has {from}");
            odd = odd.replace(from, to);
        }
        let got = events(&translate(odd.as_bytes(), &[], true));
        assert_eq!(got.len(), 6, "{got:#?}");
        assert_eq!((&got[4]["usage"]["prompt_tokens"], &got[4]["usage"]["completion_tokens"]), (&json!(0), &json!(9)));
    }

    /// The counts are the stream's own, whatever the sink: none until a `message_delta`
    /// reports the output or the message ends (a stream cut short before is charged by its
    /// events), then the prompt and that output, 0 included.
    #[test]
    fn tokens_once_the_output_is_reported() {
        let text = String::from_utf8(fixture("stream-text.sse")).unwrap();
        let zero = text.replace(r#""usage":{"output_tokens":9}"#, r#""usage":{"output_tokens":0}"#);
        assert_ne!(zero, text, "the fixture reports 9 output tokens");
        let delta = text.find(r#""type":"message_delta""#).unwrap();
        let (asked, echo) =
            (Asked { stream: true, include_usage: true }, crate::dialect::responses::response::Echo::default);
        for (input, want) in [(&text[..delta], None), (&text[..], Some((25, 9))), (&zero[..], Some((25, 0)))] {
            let mut chat = ToChat::new(&asked);
            let mut responses = ToChat::to(&asked, crate::dialect::responses::stream::FromChat::new(echo()));
            let mut out = Vec::new();
            chat.feed(input.as_bytes(), &mut out);
            responses.feed(input.as_bytes(), &mut out);
            assert_eq!((chat.tokens(), responses.tokens()), (want, want), "{input}");
        }
    }

    /// A tool called without arguments: Anthropic streams `"input": {}` and no argument piece,
    /// or an empty one; the Chat client puts together `{}`, as the whole answer's `"{}"`.
    #[test]
    fn a_tool_without_arguments_gets_an_empty_object() {
        let start = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_1","model":"claude","usage":{"input_tokens":5}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_time","input":{}}}

"#;
        let empty = r#"event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":""}}

"#;
        let stop = r#"event: content_block_stop
data: {"type":"content_block_stop","index":0}

"#;
        let end = r#"event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":3}}

event: message_stop
data: {"type":"message_stop"}

"#;
        for stream in [
            format!("{start}{empty}{stop}{end}"),
            format!("{start}{stop}{end}"),
            format!("{start}{end}"), // the block never closed
        ] {
            assert_split_invariant("no arguments", stream.as_bytes(), |input, splits| translate(input, splits, false));
            let got = events(&translate(stream.as_bytes(), &[], false));
            let args: String = got
                .iter()
                .filter_map(|e| e["choices"][0]["delta"].get("tool_calls"))
                .filter_map(|c| c[0]["function"]["arguments"].as_str())
                .collect();
            assert_eq!(args, "{}", "{stream}");
        }
    }

    #[test]
    fn two_tool_calls_keep_their_indices() {
        let got = events(&translate(&fixture("stream-tools.sse"), &[], false));
        let calls: Vec<&Value> = got.iter().filter_map(|e| e["choices"][0]["delta"].get("tool_calls")).collect();
        assert_eq!(calls[0][0]["index"], 0);
        assert_eq!(calls[0][0]["id"], "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
        assert_eq!(calls[0][0]["function"]["name"], "get_weather");
        let args = |i: u64| -> String {
            calls.iter().filter(|c| c[0]["index"] == i).filter_map(|c| c[0]["function"]["arguments"].as_str()).collect()
        };
        assert_eq!(args(0), r#"{"city": "Paris"}"#);
        assert_eq!(args(1), r#"{"city": "Tokyo"}"#);
        let finish: Vec<&Value> =
            got.iter().filter_map(|e| e["choices"][0].get("finish_reason")).filter(|f| !f.is_null()).collect();
        assert_eq!(finish, [&Value::from("tool_calls")]);
        assert!(got.iter().all(|e| e.get("usage").is_none()), "no usage chunk unless asked");
        assert_eq!(got.last().unwrap(), "[DONE]");
    }

    #[test]
    fn an_error_event_or_an_early_end_is_never_silent() {
        let got = events(&translate(&fixture("stream-error.sse"), &[], false));
        let last = got.last().unwrap();
        assert_eq!(last["error"]["type"], "overloaded_error");
        assert!(!got.contains(&Value::from("[DONE]")));
        let text = fixture("stream-text.sse");
        let cut = &text[..text.len() / 2];
        let got = events(&translate(cut, &[], false));
        assert_eq!(got.last().unwrap()["error"]["code"], "anthropic_stream_incomplete");
    }

    #[test]
    fn crlf_and_multiline_data() {
        let input = b"event: message_start\r\ndata: {\"type\":\"message_start\",\r\ndata: \"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{}}}\r\n\r\n";
        let got = events(&translate(input, &[], false));
        assert_eq!(got[0]["id"], "m");
    }

    /// Strings pass as Anthropic wrote them, escapes and all, and read back the same; an event
    /// without a string `type`, or with an index that is no whole number, is no event.
    #[test]
    fn escaped_strings_pass_and_odd_events_fail() {
        let input = concat!(
            "data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\\u00e9\",\"model\":\"c\\\"1\",\"usage\":null}}\n\n",
            "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"a\\n\\\"b\\\" \\ud83d\\ude00\"}}\n\n",
            "data: {\"type\":\"message_delta\",\"message\":null,\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n",
            "data: {\"type\":\"message_stop\"}\n\n",
        );
        let got = events(&translate(input.as_bytes(), &[], false));
        assert_eq!((&got[0]["id"], &got[0]["model"]), (&json!("mé"), &json!("c\"1")));
        assert_eq!(got[1]["choices"][0]["delta"]["content"], "a\n\"b\" 😀");
        assert_eq!(got.last().unwrap(), "[DONE]");
        for odd in [r#"{"index":0}"#, r#"{"type":1}"#, r#"{"type":"content_block_stop","index":null}"#, "[]"] {
            let got = events(&translate(format!("data: {odd}\n\n").as_bytes(), &[], false));
            assert_eq!(got.last().unwrap()["error"]["code"], "anthropic_bad_event", "{odd}");
        }
    }

    /// Any split of the byte stream gives the same output: every split point for pairs,
    /// and many random multi-way splits.
    #[test]
    fn output_does_not_depend_on_how_bytes_arrive() {
        for name in ["stream-text.sse", "stream-tools.sse", "stream-error.sse"] {
            assert_split_invariant(name, &fixture(name), |input, splits| translate(input, splits, true));
        }
    }
}
