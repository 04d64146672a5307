//! Chat SSE (`data: {chunk}` … `data: [DONE]`) → Responses SSE events, incrementally: bytes
//! in as they arrive (split anywhere), events out. Kept: the output items' text and arguments,
//! which the `done` events and the final Response repeat; nothing else grows.
//!
//! Failures (an upstream error chunk, a stream cut before `finish_reason`, `fail()`) end the
//! stream with `response.failed` (status `failed`, `response.error` {code, message}), not the
//! `error` event: Codex ignores `error` events and turns `response.failed` into the turn's
//! error (its `error.code` `context_length_exceeded` into "context window exceeded"), and
//! openai-python yields it as `ResponseFailedEvent`, which the Agents SDK and the
//! `responses.stream()` helper report. `response.created` always comes first, since the SDK
//! helper refuses events before it.

use std::borrow::Cow;

use serde_json::Value;

use super::response::{Echo, incomplete_reason, new_id_base, write_usage};
use crate::dialect::chat::Usage;
use crate::dialect::chat::{CallDelta, Chunk};
use crate::dialect::json::{self, unescaped};
use crate::dialect::sse::Reader;
use crate::dialect::{StreamTranslator, event_head, json_str, now, push_u64};

/// One output item, as much of it as has arrived. Text and arguments are kept as JSON string
/// contents, escaped as the upstream wrote them: they are only ever written out again.
enum Item {
    Message { text: String },
    Call { call_id: String, name: String, arguments: String },
}

/// The key of a call whose Chat index another call took: no later delta reaches it.
const RETIRED: u64 = u64::MAX / 2;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing sent yet.
    Fresh,
    /// `response.created` sent.
    Started,
    /// The terminal event sent: nothing more.
    Done,
}

pub struct FromChat {
    reader: Reader,
    /// Random hex shared by the response and item ids (`resp_{base}`, `msg_{base}_{index}`).
    base: String,
    created_at: u64,
    model: String,
    /// `,"instructions":…,"tools":…` — the echoed Response fields, serialized once.
    echo: Vec<u8>,
    seq: u64,
    items: Vec<Item>,
    /// Whether the last item is still streaming (its `done` events not sent).
    open: bool,
    /// Chat tool-call index → position in `items`.
    calls: Vec<(u64, usize)>,
    /// A `finish_reason` arrived: the output is whole even if `[DONE]` does not follow.
    finished: bool,
    /// `incomplete_details.reason` when the finish reason was `length` or `content_filter`.
    incomplete: Option<&'static str>,
    usage: Option<Usage>,
    state: State,
    /// Bytes of text and arguments kept in `items`, and their bound (`limits.max_event_bytes`:
    /// the final `response.completed` event repeats them all).
    kept: usize,
    limit: usize,
    /// The message of the `response.failed` that ended the stream.
    failure: Option<String>,
}

impl FromChat {
    pub fn new(echo: Echo) -> Self {
        let model = echo.model();
        Self {
            reader: Reader::default(),
            base: new_id_base(),
            created_at: now(),
            model,
            echo: echo.into_members(),
            seq: 0,
            items: Vec::new(),
            open: false,
            calls: Vec::new(),
            finished: false,
            incomplete: None,
            usage: None,
            state: State::Fresh,
            kept: 0,
            limit: crate::dialect::sse::DEFAULT_MAX_EVENT_BYTES,
            failure: None,
        }
    }

    fn data(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let data = data.trim_ascii();
        if self.state == State::Done || data.is_empty() {
            return;
        }
        if data == b"[DONE]" {
            return self.done(out);
        }
        match Chunk::read(data) {
            Ok(chunk) => self.chunk(&chunk, out),
            Err(_) => self.failed("upstream_bad_chunk", "the upstream sent a stream chunk that is not valid", out),
        }
    }

    /// `[DONE]`.
    fn done(&mut self, out: &mut Vec<u8>) {
        if self.state == State::Fresh {
            // Not one chunk: no answer, never a clean-looking empty one.
            return self.failed("upstream_stream_incomplete", "the upstream's stream ended without an answer", out);
        }
        self.complete(out);
    }

    fn chunk(&mut self, chunk: &Chunk<'_>, out: &mut Vec<u8>) {
        if self.state == State::Done {
            return;
        }
        if let Some(e) = chunk.error {
            let e: Value = serde_json::from_str(e).unwrap_or_default();
            let (code, message) = upstream_error(&e);
            return self.failed(code, message, out);
        }
        if self.state == State::Fresh {
            if let Some(m) = chunk.model.and_then(unescaped).filter(|m| !m.is_empty()) {
                self.model = m.into_owned();
            }
            self.created_at = chunk.created.unwrap_or(self.created_at);
            self.start(out);
        }
        if let Some(choice) = &chunk.choice {
            if let Some(text) = choice.content.and_then(json::contents).filter(|t| !t.is_empty()) {
                self.text(text, out);
            }
            for (j, call) in choice.calls.iter().enumerate() {
                self.call(j, call, out);
            }
            if let Some(reason) = choice.finish_reason.and_then(unescaped) {
                self.finished = true;
                self.incomplete = incomplete_reason(&reason);
            }
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage);
        }
        if self.kept > self.limit {
            let message = format!("the response's output is larger than {} bytes (limits.max_event_bytes)", self.limit);
            self.failed("upstream_output_too_large", &message, out);
        }
    }

    fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        let continuing = self.open && matches!(self.items.last(), Some(Item::Message { .. }));
        let pos = if continuing {
            self.items.len() - 1
        } else {
            self.close("completed", out);
            let pos = self.items.len();
            self.items.push(Item::Message { text: String::new() });
            self.open = true;
            self.event(out, "response.output_item.added");
            output_index(out, pos);
            out.extend_from_slice(br#","item":"#);
            self.write_item(out, pos, "in_progress", false);
            Self::end(out);
            self.event(out, "response.content_part.added");
            self.write_part_head(out, pos);
            out.extend_from_slice(br#","part":{"type":"output_text","text":"","annotations":[]}"#);
            Self::end(out);
            pos
        };
        if let Some(Item::Message { text: t }) = self.items.get_mut(pos) {
            t.push_str(text);
            self.kept += text.len();
        }
        self.event(out, "response.output_text.delta");
        self.write_part_head(out, pos);
        out.extend_from_slice(br#","delta":"#);
        json::quote(out, text);
        out.extend_from_slice(br#","logprobs":[]"#);
        Self::end(out);
    }

    fn call(&mut self, j: usize, delta: &CallDelta<'_>, out: &mut Vec<u8>) {
        let id = delta.id.and_then(unescaped);
        let name = delta.name.and_then(unescaped);
        let key = match delta.index {
            Some(i) => i,
            // No index (some servers send each call whole, in its own chunk): a new id starts a
            // new call; none continues the last one.
            None => match self.calls.last() {
                Some(&(k, pos)) if id.as_deref().is_none_or(|id| self.call_id(pos) == Some(id)) => k,
                _ => u64::MAX - j as u64 - self.calls.len() as u64,
            },
        };
        // Another call on a call's index: some servers number every call 0. Its first delta has
        // an id of its own and a name (a repeated id is the same call). The earlier call keeps
        // its place, out of reach of later deltas.
        if let Some(found) = self.calls.iter().position(|c| c.0 == key)
            && name.as_deref().is_some_and(|n| !n.is_empty())
            && id
                .as_deref()
                .is_some_and(|id| !id.is_empty() && self.upstream_id(self.calls[found].1).is_some_and(|old| old != id))
        {
            self.calls[found].0 = RETIRED;
        }
        let pos = match self.calls.iter().find(|c| c.0 == key) {
            Some(&(_, pos)) => {
                if let (Some(Item::Call { name: n, .. }), Some(name)) = (self.items.get_mut(pos), &name)
                    && n.is_empty()
                {
                    n.push_str(name);
                }
                pos
            }
            None => {
                self.close("completed", out);
                let pos = self.items.len();
                let call_id = match id.filter(|id| !id.is_empty()) {
                    Some(id) => id.into_owned(),
                    None => self.made_up_id(pos),
                };
                let name = name.map(Cow::into_owned).unwrap_or_default();
                self.items.push(Item::Call { call_id, name, arguments: String::new() });
                self.calls.push((key, pos));
                self.open = true;
                self.event(out, "response.output_item.added");
                output_index(out, pos);
                out.extend_from_slice(br#","item":"#);
                self.write_item(out, pos, "in_progress", false);
                Self::end(out);
                pos
            }
        };
        let arguments = delta.arguments_string();
        let Some(arguments) = arguments.as_deref().and_then(json::contents).filter(|a| !a.is_empty()) else { return };
        if let Some(Item::Call { arguments: a, .. }) = self.items.get_mut(pos) {
            a.push_str(arguments);
            self.kept += arguments.len();
        }
        // A delta for a call whose `done` was sent (calls interleaved) cannot be streamed any
        // more: it only reaches the final Response.
        if self.open && pos + 1 == self.items.len() {
            self.event(out, "response.function_call_arguments.delta");
            out.extend_from_slice(br#","item_id":"#);
            self.write_id(out, pos);
            output_index(out, pos);
            out.extend_from_slice(br#","delta":"#);
            json::quote(out, arguments);
            Self::end(out);
        }
    }

    /// The id of the call at `pos` when the upstream sent it (not made up).
    fn upstream_id(&self, pos: usize) -> Option<&str> {
        self.call_id(pos).filter(|id| *id != self.made_up_id(pos))
    }

    /// The id of a call at `pos` the upstream sent without one: the client answers with it.
    fn made_up_id(&self, pos: usize) -> String {
        format!("call_{}_{pos}", self.base)
    }

    fn call_id(&self, pos: usize) -> Option<&str> {
        match self.items.get(pos) {
            Some(Item::Call { call_id, .. }) => Some(call_id),
            _ => None,
        }
    }

    /// The `done` events of the item still streaming, if any.
    fn close(&mut self, status: &str, out: &mut Vec<u8>) {
        if !self.open {
            return;
        }
        self.open = false;
        let Some(pos) = self.items.len().checked_sub(1) else { return };
        if matches!(self.items[pos], Item::Message { .. }) {
            self.event(out, "response.output_text.done");
            self.write_part_head(out, pos);
            out.extend_from_slice(br#","text":"#);
            self.write_text(out, pos);
            out.extend_from_slice(br#","logprobs":[]"#);
            Self::end(out);
            self.event(out, "response.content_part.done");
            self.write_part_head(out, pos);
            out.extend_from_slice(br#","part":{"type":"output_text","text":"#);
            self.write_text(out, pos);
            out.extend_from_slice(br#","annotations":[]}"#);
            Self::end(out);
        } else {
            self.event(out, "response.function_call_arguments.done");
            out.extend_from_slice(br#","item_id":"#);
            self.write_id(out, pos);
            output_index(out, pos);
            if let Item::Call { name, arguments, .. } = &self.items[pos] {
                out.extend_from_slice(br#","name":"#);
                json_str(out, name);
                out.extend_from_slice(br#","arguments":"#);
                json::quote(out, arguments);
            }
            Self::end(out);
        }
        self.event(out, "response.output_item.done");
        output_index(out, pos);
        out.extend_from_slice(br#","item":"#);
        self.write_item(out, pos, status, true);
        Self::end(out);
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.state != State::Fresh {
            return;
        }
        self.state = State::Started;
        for kind in ["response.created", "response.in_progress"] {
            self.event(out, kind);
            out.extend_from_slice(br#","response":"#);
            self.write_response(out, "in_progress", None, None);
            Self::end(out);
        }
    }

    /// The upstream's output is whole: close the last item, send the final Response.
    fn complete(&mut self, out: &mut Vec<u8>) {
        if self.state == State::Done {
            return;
        }
        self.start(out);
        let (kind, status) = match self.incomplete {
            Some(_) => ("response.incomplete", "incomplete"),
            None => ("response.completed", "completed"),
        };
        self.close(status, out);
        self.event(out, kind);
        out.extend_from_slice(br#","response":"#);
        self.write_response(out, status, None, Some(status));
        Self::end(out);
        self.state = State::Done;
    }

    fn failed(&mut self, code: &str, message: &str, out: &mut Vec<u8>) {
        if self.state == State::Done {
            return;
        }
        self.start(out);
        // A partial item gets no `done` event (Codex would run a half-streamed call); the
        // failed Response lists it as incomplete.
        let last = if self.open { "incomplete" } else { "completed" };
        self.event(out, "response.failed");
        out.extend_from_slice(br#","response":"#);
        self.write_response(out, "failed", Some((code, message)), Some(last));
        Self::end(out);
        self.state = State::Done;
        self.failure = Some(message.to_owned());
    }

    /// `event: <kind>` and the start of its data object, up to the sequence number.
    fn event(&mut self, out: &mut Vec<u8>, kind: &str) {
        event_head(out, kind);
        out.extend_from_slice(b",\"sequence_number\":");
        push_u64(out, self.seq);
        self.seq += 1;
    }

    fn end(out: &mut Vec<u8>) {
        out.extend_from_slice(b"}\n\n");
    }

    /// A Response object. `output`: None for the empty list of the opening events, else the
    /// status of the last item (the others are complete).
    fn write_response(&self, out: &mut Vec<u8>, status: &str, error: Option<(&str, &str)>, output: Option<&str>) {
        out.extend_from_slice(br#"{"id":"resp_"#);
        out.extend_from_slice(self.base.as_bytes());
        out.extend_from_slice(br#"","object":"response","created_at":"#);
        push_u64(out, self.created_at);
        out.extend_from_slice(br#","status":""#);
        out.extend_from_slice(status.as_bytes());
        out.extend_from_slice(br#"","error":"#);
        match error {
            Some((code, message)) => {
                out.extend_from_slice(br#"{"code":"#);
                json_str(out, code);
                out.extend_from_slice(br#","message":"#);
                json_str(out, message);
                out.push(b'}');
            }
            None => out.extend_from_slice(b"null"),
        }
        match self.incomplete.filter(|_| status == "incomplete") {
            Some(reason) => {
                out.extend_from_slice(br#","incomplete_details":{"reason":""#);
                out.extend_from_slice(reason.as_bytes());
                out.extend_from_slice(br#""}"#);
            }
            None => out.extend_from_slice(br#","incomplete_details":null"#),
        }
        out.extend_from_slice(br#","model":"#);
        json_str(out, &self.model);
        out.extend_from_slice(br#","output":["#);
        if let Some(last) = output {
            for pos in 0..self.items.len() {
                if pos > 0 {
                    out.push(b',');
                }
                let status = if pos + 1 == self.items.len() { last } else { "completed" };
                self.write_item(out, pos, status, true);
            }
        }
        out.extend_from_slice(br#"],"usage":"#);
        match (&self.usage, output) {
            (Some(u), Some(_)) => write_usage(u, out),
            _ => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(&self.echo);
        out.push(b'}');
    }

    /// An output item; `full`: with its content or arguments (else as first announced).
    fn write_item(&self, out: &mut Vec<u8>, pos: usize, status: &str, full: bool) {
        match &self.items[pos] {
            Item::Message { text } => {
                out.extend_from_slice(br#"{"type":"message","id":"#);
                self.write_id(out, pos);
                out.extend_from_slice(br#","status":""#);
                out.extend_from_slice(status.as_bytes());
                out.extend_from_slice(br#"","role":"assistant","content":["#);
                if full {
                    out.extend_from_slice(br#"{"type":"output_text","text":"#);
                    json::quote(out, text);
                    out.extend_from_slice(br#","annotations":[]}"#);
                }
                out.extend_from_slice(b"]}");
            }
            Item::Call { call_id, name, arguments } => {
                out.extend_from_slice(br#"{"type":"function_call","id":"#);
                self.write_id(out, pos);
                out.extend_from_slice(br#","call_id":"#);
                json_str(out, call_id);
                out.extend_from_slice(br#","name":"#);
                json_str(out, name);
                out.extend_from_slice(br#","arguments":"#);
                json::quote(out, if full { arguments } else { "" });
                out.extend_from_slice(br#","status":""#);
                out.extend_from_slice(status.as_bytes());
                out.extend_from_slice(br#""}"#);
            }
        }
    }

    fn write_id(&self, out: &mut Vec<u8>, pos: usize) {
        let prefix = match self.items.get(pos) {
            Some(Item::Call { .. }) => "fc",
            _ => "msg",
        };
        out.push(b'"');
        out.extend_from_slice(prefix.as_bytes());
        out.push(b'_');
        out.extend_from_slice(self.base.as_bytes());
        out.push(b'_');
        push_u64(out, pos as u64);
        out.push(b'"');
    }

    /// `,"item_id":…,"output_index":…,"content_index":0` of a text event.
    fn write_part_head(&self, out: &mut Vec<u8>, pos: usize) {
        out.extend_from_slice(br#","item_id":"#);
        self.write_id(out, pos);
        output_index(out, pos);
        out.extend_from_slice(br#","content_index":0"#);
    }

    fn write_text(&self, out: &mut Vec<u8>, pos: usize) {
        if let Some(Item::Message { text }) = self.items.get(pos) {
            json::quote(out, text);
        }
    }
}

/// `,"output_index":{pos}`.
fn output_index(out: &mut Vec<u8>, pos: usize) {
    out.extend_from_slice(br#","output_index":"#);
    push_u64(out, pos as u64);
}

/// An upstream error chunk (`{"error":{"message","type","code"}}`, or a bare string) → the
/// code and message of `response.error`. Context overflows get OpenAI's code, which Codex acts
/// on (it stops retrying and reports the full context window).
fn upstream_error(e: &Value) -> (&str, &str) {
    let text = |k: &str| e[k].as_str().filter(|s| !s.is_empty());
    let code = text("code").or(text("type")).unwrap_or("upstream_error");
    let code = match code {
        "exceed_context_size_error" | "context_length_exceeded" => "context_length_exceeded",
        other => other,
    };
    let message = text("message").or(e.as_str()).unwrap_or("the upstream reported an error");
    (code, message)
}

impl StreamTranslator for FromChat {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if self.state == State::Done {
            return;
        }
        let mut reader = std::mem::take(&mut self.reader);
        let read = reader.feed(bytes, &mut |e| self.data(e.data, out));
        self.reader = reader;
        if let Err(e) = read {
            self.failed("upstream_event_too_large", &e.to_string(), out);
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.finished {
            // The output is whole; only `[DONE]` (and maybe the usage chunk) went missing.
            self.complete(out);
        } else {
            self.failed(
                "upstream_stream_incomplete",
                "the upstream's stream ended before the response was complete",
                out,
            );
        }
    }

    fn fail(&mut self, code: &str, message: &str, out: &mut Vec<u8>) {
        self.failed(code, message, out);
    }

    fn tokens(&self) -> Option<(u64, u64)> {
        self.usage.map(|u| u.counts())
    }

    fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// The event bound is the reader's (chunks handed over as a sink are never text here) and
    /// the bound on the output kept for the final Response.
    fn limit_events(&mut self, max_bytes: usize) {
        self.reader.set_limit(max_bytes);
        self.limit = max_bytes;
    }
}

/// The second hop of Anthropic → Chat → Responses: the chunks as they are made. (Not imported:
/// its methods share names with the translator's.)
impl crate::dialect::chat::ChunkSink for FromChat {
    fn chunk(&mut self, chunk: &Chunk<'_>, out: &mut Vec<u8>) {
        FromChat::chunk(self, chunk, out);
    }

    fn done(&mut self, out: &mut Vec<u8>) {
        FromChat::done(self, out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        StreamTranslator::finish(self, out);
    }

    fn failure(&self) -> Option<&str> {
        StreamTranslator::failure(self)
    }

    fn limit_events(&mut self, max_bytes: usize) {
        StreamTranslator::limit_events(self, max_bytes);
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
