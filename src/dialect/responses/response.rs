//! `chat.completion` → Response object; what a Response repeats from its request. The
//! completion is read with the checking JSON reader, the Response written straight into
//! bytes.

use std::borrow::Cow;

use super::Arguments;
use crate::dialect::chat::{Completion, Content, Usage};
use crate::dialect::json::{self, Invalid, unescaped};
use crate::dialect::push_u64;

/// What a Response object repeats from the request that asked for it, written once as JSON
/// members (the request's body is gone when the answer comes).
#[derive(Debug, Clone)]
pub struct Echo {
    /// `,"model":…,"instructions":…,…,"top_p":…`, the values as the client wrote them.
    members: Vec<u8>,
    /// Where the members after `model` start.
    model_end: usize,
}

/// The members of a request a Response repeats, raw as the client wrote them (`None`: absent or
/// null).
#[derive(Default)]
pub struct Repeated<'a> {
    pub model: Option<&'a str>,
    pub instructions: Option<&'a str>,
    pub max_output_tokens: Option<&'a str>,
    pub metadata: Option<&'a str>,
    pub parallel_tool_calls: Option<&'a str>,
    pub temperature: Option<&'a str>,
    pub tool_choice: Option<&'a str>,
    pub tools: Option<&'a str>,
    pub top_p: Option<&'a str>,
}

/// What a request that set none of the fields gets (`tools: []`, `tool_choice: "auto"`, …).
impl Default for Echo {
    fn default() -> Self {
        Echo::new(&Repeated::default())
    }
}

impl Echo {
    /// From the request's members: each as the client wrote it, or its default when absent.
    pub fn new(req: &Repeated) -> Echo {
        // In key order, after `model`; with `store: false`: nothing is stored.
        let rest = [
            ("instructions", req.instructions.unwrap_or("null")),
            ("max_output_tokens", req.max_output_tokens.unwrap_or("null")),
            ("metadata", req.metadata.unwrap_or("{}")),
            ("parallel_tool_calls", req.parallel_tool_calls.unwrap_or("true")),
            ("store", "false"),
            ("temperature", req.temperature.unwrap_or("null")),
            ("tool_choice", req.tool_choice.unwrap_or(r#""auto""#)),
            ("tools", req.tools.unwrap_or("[]")),
            ("top_p", req.top_p.unwrap_or("null")),
        ];
        let model = req.model.unwrap_or("null");
        let size = rest.iter().map(|(name, value)| name.len() + value.len() + 4).sum::<usize>();
        let mut members = Vec::with_capacity(model.len() + 10 + size);
        for (name, value) in std::iter::once(("model", model)).chain(rest) {
            json::member(&mut members, name, value);
        }
        Echo { members, model_end: model.len() + br#","model":"#.len() }
    }

    /// The model the client asked for ("" when it named none): the Response's `model` until
    /// the upstream names one.
    pub(super) fn model(&self) -> String {
        let raw = &self.members[br#","model":"#.len()..self.model_end];
        serde_json::from_slice(raw).unwrap_or_default()
    }

    /// For tests: the echo of the request `req`.
    #[cfg(test)]
    pub(crate) fn of_json(req: &serde_json::Value) -> Echo {
        super::request::echo_of(&serde_json::to_vec(req).unwrap())
    }

    /// The members after `model`: `,"instructions":…` (with `store: false`: nothing is stored).
    pub(super) fn into_members(mut self) -> Vec<u8> {
        self.members.drain(..self.model_end);
        self.members
    }
}

/// Appends Chat `usage` as the Responses usage object.
pub(super) fn write_usage(usage: &Usage, out: &mut Vec<u8>) {
    let (input, output) = (usage.prompt_tokens.unwrap_or(0), usage.completion_tokens.unwrap_or(0));
    let counts = [
        (&br#"{"input_tokens":"#[..], input),
        (br#","input_tokens_details":{"cached_tokens":"#, usage.cached_tokens.unwrap_or(0)),
        (br#"},"output_tokens":"#, output),
        (br#","output_tokens_details":{"reasoning_tokens":"#, usage.reasoning_tokens.unwrap_or(0)),
        (br#"},"total_tokens":"#, usage.total_tokens.unwrap_or(input.saturating_add(output))),
    ];
    for (name, n) in counts {
        out.extend_from_slice(name);
        push_u64(out, n);
    }
    out.push(b'}');
}

/// Why a response stopped short, from a Chat `finish_reason`: the Responses
/// `incomplete_details.reason`, or None when it completed.
pub(super) fn incomplete_reason(finish_reason: &str) -> Option<&'static str> {
    match finish_reason {
        "length" => Some("max_output_tokens"),
        "content_filter" => Some("content_filter"),
        _ => None,
    }
}

/// A random id suffix (hex): Response and item ids must not repeat across responses, and Chat
/// ids cannot be trusted for that (Ollama's are `chatcmpl-` and three digits).
pub(super) fn new_id_base() -> String {
    let mut hex = crate::request_id::unique_hex();
    hex.truncate(24);
    hex
}

/// A `chat.completion` → a Response object. `Err` when the body is not a completion.
pub fn from_chat(chat: &[u8], echo: &Echo) -> Result<Vec<u8>, Invalid> {
    build(chat, echo, &new_id_base())
}

/// A completion another translation made (Anthropic → Chat) → a Response object, of about
/// `size` bytes. `Err` when it has no answer.
pub fn from_completion(chat: &Completion, echo: &Echo, size: usize) -> Result<Vec<u8>, Invalid> {
    write(chat, echo, &new_id_base(), size)
}

fn build(body: &[u8], echo: &Echo, base: &str) -> Result<Vec<u8>, Invalid> {
    write(&Completion::read(body)?, echo, base, body.len())
}

fn write(chat: &Completion, echo: &Echo, base: &str, size: usize) -> Result<Vec<u8>, Invalid> {
    let (choice, message) = chat.answer()?;
    let reason = incomplete_reason(choice.finish_reason.and_then(unescaped).as_deref().unwrap_or_default());
    // The text's escaped contents; some servers answer with a list of text parts.
    let text = match &message.content {
        Content::Text(raw) => json::contents(raw).map(Cow::Borrowed),
        Content::Parts(parts) => Some(json::joined(parts, "")),
        Content::Absent | Content::Other => None,
    }
    .filter(|text| !text.is_empty());
    let items = usize::from(text.is_some()) + message.tool_calls.len();
    // Only the last item was cut short.
    let status = |index: usize| match reason {
        Some(_) if index + 1 == items => "incomplete",
        _ => "completed",
    };
    // The upstream's model when it names one, else the one asked for (in the echo).
    let model = chat.model.filter(|m| json::is_nonempty_string(m));
    let mut out = Vec::with_capacity(size + echo.members.len() + 512);
    out.extend_from_slice(br#"{"id":"#);
    write_id(&mut out, "resp", base, None);
    out.extend_from_slice(br#","object":"response","created_at":"#);
    push_u64(&mut out, chat.created.unwrap_or_else(crate::dialect::now));
    out.extend_from_slice(br#","status":""#);
    out.extend_from_slice(if reason.is_some() { b"incomplete" } else { b"completed" });
    out.extend_from_slice(br#"","error":null,"incomplete_details":"#);
    match reason {
        Some(reason) => {
            out.extend_from_slice(br#"{"reason":""#);
            out.extend_from_slice(reason.as_bytes());
            out.extend_from_slice(br#""}"#);
        }
        None => out.extend_from_slice(b"null"),
    }
    if let Some(model) = model {
        out.extend_from_slice(br#","model":"#);
        out.extend_from_slice(model.as_bytes());
    }
    out.extend_from_slice(br#","output":["#);
    if let Some(text) = &text {
        out.extend_from_slice(br#"{"type":"message","id":"#);
        write_id(&mut out, "msg", base, Some(0));
        out.extend_from_slice(br#","status":""#);
        out.extend_from_slice(status(0).as_bytes());
        out.extend_from_slice(br#"","role":"assistant","content":[{"type":"output_text","text":"#);
        json::quote(&mut out, text);
        out.extend_from_slice(br#","annotations":[]}]}"#);
    }
    for (i, call) in message.tool_calls.iter().enumerate() {
        let index = i + usize::from(text.is_some());
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"type":"function_call","id":"#);
        write_id(&mut out, "fc", base, Some(index));
        out.extend_from_slice(br#","call_id":"#);
        out.extend_from_slice(call.id.unwrap_or("null").as_bytes());
        out.extend_from_slice(br#","name":"#);
        out.extend_from_slice(call.name.unwrap_or("null").as_bytes());
        out.extend_from_slice(br#","arguments":"#);
        Arguments::of(call.arguments).write(&mut out);
        out.extend_from_slice(br#","status":""#);
        out.extend_from_slice(status(index).as_bytes());
        out.extend_from_slice(br#""}"#);
    }
    out.extend_from_slice(br#"],"usage":"#);
    match &chat.usage {
        Some(usage) => write_usage(usage, &mut out),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(if model.is_some() { &echo.members[echo.model_end..] } else { &echo.members });
    out.push(b'}');
    Ok(out)
}

/// Appends the JSON string `{prefix}_{base}`, or `{prefix}_{base}_{index}`.
fn write_id(out: &mut Vec<u8>, prefix: &str, base: &str, index: Option<usize>) {
    out.push(b'"');
    out.extend_from_slice(prefix.as_bytes());
    out.push(b'_');
    out.extend_from_slice(base.as_bytes());
    if let Some(index) = index {
        out.push(b'_');
        push_u64(out, index as u64);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// The least completion that answers: what the echo tests translate.
    const ANSWER: &[u8] = br#"{"choices":[{"message":{"content":"x"}}]}"#;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dialects/responses").join(name);
        std::fs::read(path).unwrap()
    }

    /// The Response for the completion `chat`, parsed back.
    fn built(chat: &[u8], echo: &Echo, base: &str) -> Value {
        serde_json::from_slice(&build(chat, echo, base).unwrap()).unwrap()
    }

    fn echo() -> Echo {
        Echo::of_json(&json!({
            "model": "qwen3", "instructions": "Be brief.", "input": "hi",
            "tools": [{"type": "function", "name": "get_weather"}, {"type": "web_search"}],
            "temperature": 0.2, "metadata": {"k": "v"}
        }))
    }

    #[test]
    fn text_response() {
        let got = built(&fixture("chat-completion-text.json"), &echo(), "t");
        assert_eq!(
            got,
            json!({
                "id": "resp_t", "object": "response", "created_at": 1_750_000_000u64, "status": "completed",
                "error": null, "incomplete_details": null, "model": "qwen3-coder-30b",
                "output": [{"type": "message", "id": "msg_t_0", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": "Hello! How can I help?", "annotations": []}]}],
                "usage": {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 7,
                    "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 19},
                "instructions": "Be brief.", "max_output_tokens": null, "metadata": {"k": "v"},
                "parallel_tool_calls": true, "store": false, "temperature": 0.2, "tool_choice": "auto",
                "tools": [{"type": "function", "name": "get_weather"}, {"type": "web_search"}], "top_p": null
            })
        );
    }

    #[test]
    fn tool_calls_follow_the_text() {
        let got = built(&fixture("chat-completion-tools.json"), &echo(), "t");
        assert_eq!(got["status"], "completed");
        assert_eq!(
            got["output"],
            json!([
                {"type": "message", "id": "msg_t_0", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": "Checking both.", "annotations": []}]},
                {"type": "function_call", "id": "fc_t_1", "call_id": "call_1", "name": "get_weather",
                    "arguments": "{\"city\":\"Paris\"}", "status": "completed"},
                {"type": "function_call", "id": "fc_t_2", "call_id": "call_2", "name": "get_weather",
                    "arguments": "{\"city\":\"Tokyo\"}", "status": "completed"}
            ])
        );
        assert_eq!(got["usage"]["output_tokens_details"]["reasoning_tokens"], 5);
    }

    #[test]
    fn length_is_incomplete() {
        let got = built(&fixture("chat-completion-length.json"), &Echo::of_json(&json!({"model": "asked"})), "t");
        assert_eq!(got["status"], "incomplete");
        assert_eq!(got["incomplete_details"], json!({"reason": "max_output_tokens"}));
        assert_eq!(got["output"][0]["status"], "incomplete");
        assert_eq!(got["output"][0]["content"][0]["text"], "The answer is long and");
        assert_eq!(got["model"], "asked", "the upstream named no model");
        assert_eq!(got["usage"], Value::Null);
    }

    #[test]
    fn ids_are_random_per_response() {
        let chat = fixture("chat-completion-text.json");
        let parse = |bytes: Vec<u8>| serde_json::from_slice::<Value>(&bytes).unwrap();
        let (a, b) = (parse(from_chat(&chat, &echo()).unwrap()), parse(from_chat(&chat, &echo()).unwrap()));
        assert_ne!(a["id"], b["id"]);
        assert!(a["id"].as_str().unwrap().starts_with("resp_"));
    }

    /// The completion is read as the upstream wrote it: escaped strings, repeated keys (the
    /// last counts), members of the wrong type, and the odd shapes a JSON tree tolerated.
    #[test]
    fn escapes_repeated_keys_and_odd_shapes() {
        let chat = br#"{"model":"first","created":1.5,"model":"",
            "choices":[{"message":{"content":[{"text":"a\"b"},{"text":3},"x",{"text":"\u00e9\/"}],
                "tool_calls":[{"id":"c\u0031","function":{"name":"f","arguments":"{\"a\":\"\\u00e9\"}"}},
                    {"id":null,"function":{"arguments":{"b":1,"a":null}}},{"function":"f"},"call",
                    {"id":"c4","function":{"name":"g","arguments":"{}"},"id":"c5"}]},
                "finish_reason":"content_filter"},{"message":{"content":"second choice"}}],
            "usage":{"prompt_tokens":5,"prompt_tokens":6,"completion_tokens":null,"prompt_tokens_details":null}}"#;
        let got = built(chat, &echo(), "t");
        assert_eq!(got["model"], "qwen3", "the last `model` is empty: the one asked for");
        assert!(got["created_at"].as_u64().unwrap() > 1_700_000_000, "not an integer: now");
        assert_eq!(got["status"], "incomplete");
        assert_eq!(got["incomplete_details"], json!({"reason": "content_filter"}));
        assert_eq!(got["output"][0]["content"][0]["text"], "a\"b\u{e9}/");
        let call = |id: &str, name: Value, arguments: &str, status: &str| json!({"type": "function_call", "id": id, "call_id": null, "name": name, "arguments": arguments, "status": status});
        let mut first = call("fc_t_1", json!("f"), r#"{"a":"\u00e9"}"#, "completed");
        first["call_id"] = json!("c1");
        let mut last = call("fc_t_5", json!("g"), "{}", "incomplete");
        last["call_id"] = json!("c5");
        assert_eq!(
            got["output"].as_array().unwrap()[1..],
            [
                first,
                call("fc_t_2", Value::Null, r#"{"a":null,"b":1}"#, "completed"),
                call("fc_t_3", Value::Null, "", "completed"),
                call("fc_t_4", Value::Null, "", "completed"),
                last
            ]
        );
        // Usage is read as every dialect reads it: of a repeated count the last counts, and a
        // count that is null is none.
        assert_eq!((&got["usage"]["input_tokens"], &got["usage"]["output_tokens"]), (&json!(6), &json!(0)));

        // Usage that is no object is none; a count that is no whole number is left out, and the
        // others kept; counts written as floats are counts. Other JSON (no choice to answer with)
        // and not JSON are refused, never an empty answer.
        let with_usage = |usage: &str| format!(r#"{{"choices":[{{"message":{{"content":"hi"}}}}],"usage":{usage}}}"#);
        assert_eq!(built(with_usage(r#""5""#).as_bytes(), &echo(), "t")["usage"], Value::Null);
        let odd = r#"{"prompt_tokens":-1,"completion_tokens":4,"total_tokens":2.5,"prompt_tokens_details":5,
            "completion_tokens_details":{"reasoning_tokens":"2"}}"#;
        assert_eq!(
            built(with_usage(odd).as_bytes(), &echo(), "t")["usage"],
            json!({"input_tokens": 0, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 4,
                "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 4})
        );
        let floats = built(with_usage(r#"{"prompt_tokens":10.0,"completion_tokens":3}"#).as_bytes(), &echo(), "t");
        assert_eq!((&floats["usage"]["input_tokens"], &floats["usage"]["output_tokens"]), (&json!(10), &json!(3)));
        // Details in a list are none, as a usage in a list is (and as the gateway's own token
        // reader takes one), not read member by position.
        let body = with_usage(r#"{"prompt_tokens":1,"completion_tokens_details":[7],"prompt_tokens_details":[]}"#);
        let got = built(body.as_bytes(), &echo(), "t");
        assert_eq!(
            (&got["usage"]["input_tokens"], &got["usage"]["output_tokens_details"]["reasoning_tokens"]),
            (&json!(1), &json!(0))
        );
        assert_eq!(built(with_usage("[1,2,3]").as_bytes(), &echo(), "t")["usage"], Value::Null);
        for body in [
            &b"[1]"[..],
            b"null",
            b"\"x\"",
            b"{}",
            b"{\"foo\":1}",
            b"{\"choices\":{}}",
            b"{\"choices\":[]}",
            b"{\"choices\":[5]}",
            b"{\"choices\":[{}]}",
            b"{\"choices\":[{\"message\":null}]}",
            b"{\"choices\":[{\"message\":\"x\",\"finish_reason\":\"stop\"}]}",
        ] {
            assert!(build(body, &Echo::default(), "t").is_err(), "{}", String::from_utf8_lossy(body));
        }
        // A filtered answer may come without its message: an empty, incomplete answer.
        let filtered = built(br#"{"choices":[{"index":0,"finish_reason":"content_filter"}]}"#, &echo(), "t");
        assert_eq!((&filtered["status"], &filtered["output"]), (&json!("incomplete"), &json!([])));
        for body in [&b""[..], b"{", b"{} {}", b"<html>"] {
            assert!(from_chat(body, &echo()).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn echo_repeats_the_request_as_written() {
        let body = br#"{"model":"m\u0031","tools":[{"type":"function","name":"f","parameters":{"b":1, "a":2}}],
            "tool_choice":null,"parallel_tool_calls":false,"metadata":{"k":"\/"},"max_output_tokens":100,
            "temperature":1e0,"instructions":null,"top_p":1}"#;
        let echo = super::super::request::echo_of(body);
        assert_eq!(echo.model(), "m1");
        let got = built(ANSWER, &echo, "t");
        assert_eq!(got["model"], "m1");
        assert_eq!(got["tools"], json!([{"type": "function", "name": "f", "parameters": {"a": 2, "b": 1}}]));
        assert_eq!((&got["tool_choice"], &got["parallel_tool_calls"]), (&json!("auto"), &json!(false)));
        assert_eq!((&got["metadata"], &got["max_output_tokens"]), (&json!({"k": "/"}), &json!(100)));
        assert_eq!((&got["temperature"], &got["top_p"], &got["instructions"]), (&json!(1.0), &json!(1), &Value::Null));
        let members = echo.clone().into_members();
        assert!(members.starts_with(br#","instructions":"#) && !members.ends_with(b"}"));
        assert_eq!(Echo::default().model(), "");
    }

    /// A completion of 200,000 members (distinct, or one key repeated) is read in O(n log n).
    #[test]
    fn many_members_and_repeated_keys_stay_cheap() {
        let mut body = String::from(r#"{"choices":[{"message":{"content":"hi"}}]"#);
        for i in 0..200_000 {
            body.push_str(&format!(",\"k{i}\":{i},\"created\":{i}"));
        }
        body.push('}');
        assert_eq!(built(body.as_bytes(), &echo(), "t")["created_at"], 199_999, "the last of a repeated key");
    }
}
