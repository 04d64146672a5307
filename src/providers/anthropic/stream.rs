//! Anthropic SSE → OpenAI `chat.completion.chunk` SSE, incrementally: bytes in as they
//! arrive (split anywhere), chunks out, no whole-response buffering, no line-length limit.

use std::fmt::Write as _;

use serde_json::Value;

use super::request::Asked;
use super::response::{finish_reason, now, usage};

pub struct StreamTranslator {
    /// Bytes of an incomplete line.
    line: Vec<u8>,
    /// `data:` lines of the event being read.
    data: String,
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    /// Content block index → tool-call index, for the blocks that are tool calls.
    tools: Vec<(u64, usize)>,
    input_usage: Value,
    output_tokens: u64,
    finish: &'static str,
    done: bool,
}

impl StreamTranslator {
    pub fn new(asked: &Asked) -> Self {
        Self {
            line: Vec::new(),
            data: String::new(),
            id: String::new(),
            model: String::new(),
            created: now(),
            include_usage: asked.include_usage,
            tools: Vec::new(),
            input_usage: Value::Null,
            output_tokens: 0,
            finish: "stop",
            done: false,
        }
    }

    /// Feeds upstream bytes; appends translated SSE bytes to `out`.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<u8>) {
        while let Some(nl) = memchr::memchr(b'\n', bytes) {
            let (head, rest) = bytes.split_at(nl);
            bytes = &rest[1..];
            if self.line.is_empty() {
                self.line_done(head, out);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(head);
                self.line_done(&line, out);
            }
        }
        self.line.extend_from_slice(bytes);
    }

    /// At upstream end of stream: a stream that stopped before `message_stop` ends with an
    /// error event instead of silently.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.done {
            self.error_event("anthropic_stream_incomplete", "Anthropic's stream ended before message_stop", out);
        }
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<u8>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if !self.data.is_empty() {
                let data = std::mem::take(&mut self.data);
                self.event(&data, out);
            }
            return;
        }
        if let Some(value) = line.strip_prefix(b"data:") {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            if !self.data.is_empty() {
                self.data.push('\n');
            }
            self.data.push_str(&String::from_utf8_lossy(value));
        }
        // `event:`, `id:`, `retry:` and comments: the JSON `type` decides.
    }

    fn event(&mut self, data: &str, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        let Ok(ev) = serde_json::from_str::<Value>(data) else {
            self.error_event("anthropic_bad_event", "Anthropic sent an event that is not JSON", out);
            return;
        };
        match ev["type"].as_str().unwrap_or_default() {
            "message_start" => {
                let m = &ev["message"];
                self.id = m["id"].as_str().unwrap_or_default().to_owned();
                self.model = m["model"].as_str().unwrap_or_default().to_owned();
                self.input_usage = m["usage"].clone();
                self.chunk(r#"{"role":"assistant","content":""}"#, None, out);
            }
            "content_block_start" => {
                let block = &ev["content_block"];
                match block["type"].as_str() {
                    Some("tool_use") => {
                        let index = self.tools.len();
                        self.tools.push((ev["index"].as_u64().unwrap_or(0), index));
                        let delta = format!(
                            r#"{{"tool_calls":[{{"index":{index},"id":{},"type":"function","function":{{"name":{},"arguments":""}}}}]}}"#,
                            block["id"], block["name"]
                        );
                        self.chunk(&delta, None, out);
                    }
                    Some("text") => self.text(block["text"].as_str().unwrap_or_default(), out),
                    _ => {}
                }
            }
            "content_block_delta" => {
                let delta = &ev["delta"];
                match delta["type"].as_str() {
                    Some("text_delta") => self.text(delta["text"].as_str().unwrap_or_default(), out),
                    Some("input_json_delta") => {
                        let partial = delta["partial_json"].as_str().unwrap_or_default();
                        let block = ev["index"].as_u64().unwrap_or(0);
                        if let (false, Some(&(_, index))) =
                            (partial.is_empty(), self.tools.iter().find(|t| t.0 == block))
                        {
                            let delta = format!(
                                r#"{{"tool_calls":[{{"index":{index},"function":{{"arguments":{}}}}}]}}"#,
                                Value::from(partial)
                            );
                            self.chunk(&delta, None, out);
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(stop) = ev["delta"]["stop_reason"].as_str() {
                    self.finish = finish_reason(stop);
                }
                if let Some(n) = ev["usage"]["output_tokens"].as_u64() {
                    self.output_tokens = n;
                }
            }
            "message_stop" => {
                self.chunk("{}", Some(self.finish), out);
                if self.include_usage {
                    let mut u = self.input_usage.clone();
                    u["output_tokens"] = self.output_tokens.into();
                    let line = self.envelope("[]", &format!(r#","usage":{}"#, usage(&u)));
                    out.extend_from_slice(line.as_bytes());
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
                self.done = true;
            }
            "error" => {
                let kind = ev["error"]["type"].as_str().unwrap_or("api_error").to_owned();
                let message = ev["error"]["message"].as_str().unwrap_or("Anthropic stream error").to_owned();
                self.error_event(&kind, &message, out);
            }
            _ => {}
        }
    }

    fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        if !text.is_empty() {
            self.chunk(&format!(r#"{{"content":{}}}"#, Value::from(text)), None, out);
        }
    }

    fn envelope(&self, choices: &str, extra: &str) -> String {
        let mut s = String::with_capacity(160 + choices.len());
        let _ = write!(
            s,
            r#"data: {{"id":{},"object":"chat.completion.chunk","created":{},"model":{},"choices":{choices}{extra}}}"#,
            Value::from(self.id.as_str()),
            self.created,
            Value::from(self.model.as_str())
        );
        s.push_str("\n\n");
        s
    }

    fn chunk(&self, delta: &str, finish: Option<&str>, out: &mut Vec<u8>) {
        let finish = finish.map_or("null".to_owned(), |f| format!("\"{f}\""));
        let choices = format!(r#"[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}]"#);
        out.extend_from_slice(self.envelope(&choices, "").as_bytes());
    }

    fn error_event(&mut self, kind: &str, message: &str, out: &mut Vec<u8>) {
        let err = serde_json::json!({"error": {"message": message, "type": kind, "code": kind}});
        out.extend_from_slice(format!("data: {err}\n\n").as_bytes());
        self.done = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/upstream/anthropic").join(name))
            .unwrap()
    }

    fn translate(input: &[u8], splits: &[usize], include_usage: bool) -> String {
        let mut t = StreamTranslator::new(&Asked { stream: true, include_usage });
        t.created = 1_700_000_000;
        let mut out = Vec::new();
        let mut last = 0;
        for &s in splits.iter().chain([input.len()].iter()) {
            t.feed(&input[last..s], &mut out);
            last = s;
        }
        t.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    fn events(text: &str) -> Vec<Value> {
        text.split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(|d| if d == "[DONE]" { Value::from("[DONE]") } else { serde_json::from_str(d).unwrap() })
            .collect()
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

    /// Any split of the byte stream gives the same output: every split point for pairs,
    /// and many random multi-way splits.
    #[test]
    fn output_does_not_depend_on_how_bytes_arrive() {
        for name in ["stream-text.sse", "stream-tools.sse", "stream-error.sse"] {
            let input = fixture(name);
            let whole = translate(&input, &[], true);
            for s in 0..=input.len() {
                assert_eq!(translate(&input, &[s], true), whole, "{name} split at {s}");
            }
            let mut seed = 0x2545f4914f6cdd1du64;
            for _ in 0..300 {
                let mut splits: Vec<usize> = (0..8)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        (seed % (input.len() as u64 + 1)) as usize
                    })
                    .collect();
                splits.sort_unstable();
                assert_eq!(translate(&input, &splits, true), whole, "{name} splits {splits:?}");
            }
        }
    }
}
