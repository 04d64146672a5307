//! Chat Completions SSE (`chat.completion.chunk`s, `[DONE]`) → Anthropic Messages SSE,
//! incrementally: bytes in as they arrive (split anywhere), events out as Anthropic sends them.
//!
//! Strings the events carry (text, argument fragments, ids, names) are copied as the raw JSON
//! the upstream sent, still escaped: no unescaping and re-escaping, and no allocation per chunk.

use std::io::Write as _;

use super::response::{stop_reason, write_usage};
use crate::dialect::chat::Usage;
use crate::dialect::chat::{CallDelta, Chunk};
use crate::dialect::json;
use crate::dialect::sse::{Event, Reader};
use crate::dialect::{StreamTranslator, event_head, json_str, push_u64};

pub struct FromChat {
    reader: Reader,
    state: State,
}

#[derive(Default)]
struct State {
    started: bool,
    /// `message_stop` or an error event was sent: nothing more.
    done: bool,
    /// The open content block.
    open: Open,
    /// Index of the next content block.
    next: u64,
    /// Chat tool-call indices that already had a block, to spot arguments for a block that
    /// was closed (Anthropic cannot reopen one).
    tools: Vec<u64>,
    /// Raw JSON of the message id (`"msg_…"`), for tool calls the upstream sent without an id.
    id: Vec<u8>,
    /// Raw JSON of the open tool call's id, as the upstream sent it (empty when it sent none).
    call_id: Vec<u8>,
    stop: Option<&'static str>,
    usage: Option<Usage>,
    /// The message of the error event that ended the stream.
    failure: Option<String>,
}

#[derive(Default, Clone, Copy, PartialEq)]
enum Open {
    #[default]
    None,
    Text,
    /// A tool call, by its Chat index.
    Tool(u64),
}

/// The raw JSON of a non-empty string, or `None` (absent, null, `""`, not a string).
fn nonempty_str(raw: Option<&str>) -> Option<&str> {
    raw.filter(|r| json::is_nonempty_string(r))
}

impl FromChat {
    pub fn new() -> Self {
        Self { reader: Reader::default(), state: State::default() }
    }
}

impl Default for FromChat {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamTranslator for FromChat {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let state = &mut self.state;
        if let Err(e) = self.reader.feed(bytes, &mut |e: Event<'_>| state.event(e.data, out)) {
            self.state.error("api_error", &e.to_string(), out);
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        // A finish_reason is the model's last word; only the usage chunk and `[DONE]` may be
        // missing (some servers end there).
        if self.state.stop.is_some() {
            self.state.end(out);
        } else {
            self.state.error("api_error", "the upstream stream ended before the response was complete", out);
        }
    }

    fn fail(&mut self, code: &str, message: &str, out: &mut Vec<u8>) {
        self.state.error(error_type(code), message, out);
    }

    fn tokens(&self) -> Option<(u64, u64)> {
        self.state.usage.map(|u| u.counts())
    }

    fn failure(&self) -> Option<&str> {
        self.state.failure.as_deref()
    }

    fn limit_events(&mut self, max_bytes: usize) {
        self.reader.set_limit(max_bytes);
    }
}

/// An error type for the client: an Anthropic one when the code already is, else `api_error`.
fn error_type(code: &str) -> &str {
    match code {
        "invalid_request_error"
        | "authentication_error"
        | "permission_error"
        | "not_found_error"
        | "request_too_large"
        | "rate_limit_error"
        | "api_error"
        | "overloaded_error" => code,
        _ => "api_error",
    }
}

impl State {
    fn event(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if data.trim_ascii() == b"[DONE]" {
            if self.started {
                self.end(out);
            } else {
                // Not one chunk: no answer, never a clean-looking empty one.
                self.error("api_error", "the upstream's stream ended without an answer", out);
            }
            return;
        }
        let Ok(chunk) = Chunk::read(data) else {
            self.error("api_error", "the upstream sent a stream chunk that is not valid", out);
            return;
        };
        if let Some(e) = chunk.error {
            self.upstream_error(e, out);
            return;
        }
        if !self.started {
            self.start(chunk.id, chunk.model, out);
        }
        if let Some(u) = chunk.usage {
            self.usage = Some(u);
        }
        let Some(choice) = chunk.choice else { return };
        if let Some(t) = nonempty_str(choice.content).or(nonempty_str(choice.refusal)) {
            self.text(t, out);
        }
        for call in &choice.calls {
            if !self.tool_call(call, out) {
                self.error("api_error", "the upstream sent tool calls the Messages stream cannot express", out);
                return;
            }
        }
        if let Some(f) = nonempty_str(choice.finish_reason) {
            self.stop = Some(stop_reason(f.trim_matches('"')));
        }
    }

    /// `message_start` and `ping`, at the first chunk.
    fn start(&mut self, id: Option<&str>, model: Option<&str>, out: &mut Vec<u8>) {
        self.started = true;
        self.id.clear();
        match nonempty_str(id) {
            Some(raw) if raw.starts_with("\"msg_") => self.id.extend_from_slice(raw.as_bytes()),
            Some(raw) => {
                self.id.extend_from_slice(b"\"msg_");
                self.id.extend_from_slice(&raw.as_bytes()[1..]);
            }
            None => json_str(&mut self.id, &format!("msg_{}", crate::dialect::now())),
        }
        out.extend_from_slice(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":");
        out.extend_from_slice(&self.id);
        out.extend_from_slice(br#","type":"message","role":"assistant","model":"#);
        out.extend_from_slice(nonempty_str(model).unwrap_or("\"\"").as_bytes());
        out.extend_from_slice(
            br#","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}}"#,
        );
        out.extend_from_slice(b"\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\n");
    }

    /// A text fragment (raw JSON string) into the open text block, opening one if needed.
    fn text(&mut self, raw: &str, out: &mut Vec<u8>) {
        if self.open != Open::Text {
            self.close(out);
            self.open = Open::Text;
            self.block_event(out, "content_block_start");
            out.extend_from_slice(br#","content_block":{"type":"text","text":""}}"#);
            out.extend_from_slice(b"\n\n");
        }
        self.delta(r#"text_delta","text":"#, raw, out);
    }

    /// One tool-call delta. False when it continues a call whose block was already closed.
    fn tool_call(&mut self, c: &CallDelta, out: &mut Vec<u8>) -> bool {
        // Servers that omit `index` send a call's id only in its first delta.
        let index = match (c.index, self.open) {
            (Some(i), _) => i,
            (None, Open::Tool(i)) if c.id.is_none() => i,
            (None, _) => self.tools.len() as u64,
        };
        let name = c.name;
        let id = nonempty_str(c.id);
        // Another call on the open call's index: some servers number every call 0. Its first
        // delta has an id of its own and a name (a repeated id is the same call).
        let another = self.open == Open::Tool(index)
            && nonempty_str(name).is_some()
            && id.is_some_and(|id| !self.call_id.is_empty() && id.as_bytes() != self.call_id);
        if self.open != Open::Tool(index) || another {
            if self.tools.contains(&index) && !another {
                return false;
            }
            self.close(out);
            self.tools.push(index);
            self.open = Open::Tool(index);
            self.call_id.clear();
            self.call_id.extend_from_slice(id.unwrap_or_default().as_bytes());
            self.block_event(out, "content_block_start");
            out.extend_from_slice(br#","content_block":{"type":"tool_use","id":"#);
            match id {
                Some(id) => out.extend_from_slice(id.as_bytes()),
                // The client answers with this id in `tool_result`, so one is made up.
                None => {
                    out.extend_from_slice(b"\"toolu_");
                    out.extend_from_slice(self.id.get(1..self.id.len().saturating_sub(1)).unwrap_or_default());
                    let _ = write!(out, "_{index}\"");
                }
            }
            out.extend_from_slice(b",\"name\":");
            out.extend_from_slice(nonempty_str(name).unwrap_or("\"\"").as_bytes());
            out.extend_from_slice(b",\"input\":{}}}\n\n");
        }
        if let Some(args) = c.arguments_string().filter(|a| a.len() > 2) {
            self.delta(r#"input_json_delta","partial_json":"#, &args, out);
        }
        true
    }

    /// A `content_block_delta` of the open block; `kind` is the delta type and its field name.
    fn delta(&self, kind: &str, raw: &str, out: &mut Vec<u8>) {
        self.block_event(out, "content_block_delta");
        out.extend_from_slice(br#","delta":{"type":""#);
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(raw.as_bytes());
        out.extend_from_slice(b"}}\n\n");
    }

    /// `event: <kind>` and its data up to the open block's index: `{"type":"<kind>","index":N`.
    fn block_event(&self, out: &mut Vec<u8>, kind: &str) {
        event_head(out, kind);
        out.extend_from_slice(b",\"index\":");
        push_u64(out, self.next);
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if self.open != Open::None {
            self.block_event(out, "content_block_stop");
            out.extend_from_slice(b"}\n\n");
            self.open = Open::None;
            self.next += 1;
        }
    }

    /// The closing events: the open block's stop, `message_delta` with the stop reason and
    /// usage, `message_stop`.
    fn end(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if !self.started {
            self.start(None, None, out);
        }
        self.close(out);
        let _ = write!(
            out,
            concat!(
                "event: message_delta\ndata: ",
                r#"{{"type":"message_delta","delta":{{"stop_reason":"{}","stop_sequence":null}},"usage":"#
            ),
            self.stop_reason(),
        );
        write_usage(&self.usage.unwrap_or_default(), out);
        out.extend_from_slice(b"}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        self.done = true;
    }

    /// The finish reason's, except that an answer with tool calls that ends without one, or
    /// with `stop` (as some servers do), stops for `tool_use`: the client runs the tools.
    fn stop_reason(&self) -> &'static str {
        match self.stop {
            Some("end_turn") | None if !self.tools.is_empty() => "tool_use",
            stop => stop.unwrap_or("end_turn"),
        }
    }

    /// An upstream `{"error": …}` chunk: OpenAI's object or Ollama's plain string.
    fn upstream_error(&mut self, raw: &str, out: &mut Vec<u8>) {
        let e: serde_json::Value = serde_json::from_str(raw).unwrap_or_default();
        let message = e["message"].as_str().or(e.as_str()).unwrap_or("the upstream stream failed");
        self.error(error_type(e["type"].as_str().unwrap_or_default()), message, out);
    }

    fn error(&mut self, kind: &str, message: &str, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        out.extend_from_slice(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":");
        json_str(out, kind);
        out.extend_from_slice(b",\"message\":");
        json_str(out, message);
        out.extend_from_slice(b"}}\n\n");
        self.done = true;
        self.failure = Some(message.to_owned());
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
