//! Chat Completions shapes that more than one translation writes or reads (Chat is the hub).

use std::borrow::Cow;

use serde::Serialize;
use serde_json::value::RawValue;

use super::json::{Invalid, Reader};

/// One tool call of an assistant message (a request's history, or a completion's answer).
/// `arguments` is the call's JSON text as a string, in whatever form the translation has it.
#[derive(Serialize)]
pub struct ToolCall<'a, A> {
    id: Option<&'a RawValue>,
    #[serde(rename = "type")]
    kind: &'static str,
    function: Function<'a, A>,
}

#[derive(Serialize)]
struct Function<'a, A> {
    name: Option<&'a RawValue>,
    arguments: A,
}

impl<'a, A: Serialize> ToolCall<'a, A> {
    /// A function call; the id and name are copied as they were written.
    pub fn new(id: Option<&'a RawValue>, name: Option<&'a RawValue>, arguments: A) -> Self {
        Self { id, kind: "function", function: Function { name, arguments } }
    }
}

/// The members of a Chat stream chunk the translators read, as the raw JSON the upstream
/// wrote (strings still quoted and escaped); `null` reads as absent.
#[derive(Default)]
pub struct Chunk<'a> {
    pub id: Option<&'a str>,
    pub model: Option<&'a str>,
    /// A whole number, else absent: some servers write a float (`1744857525.25`) or a string.
    pub created: Option<u64>,
    /// Choice 0, wherever it is in the list: a translated request never asks for more (every
    /// element must still be a choice).
    pub choice: Option<Choice<'a>>,
    pub usage: Option<&'a str>,
    pub error: Option<&'a str>,
}

/// A choice's delta and finish reason.
#[derive(Default)]
pub struct Choice<'a> {
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
                    b"usage" => chunk.usage = r.raw()?,
                    b"error" => chunk.error = r.raw()?,
                    _ => r.skip()?,
                }
                Ok(())
            })?;
            Ok(chunk)
        })
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
}

impl<'a> CallDelta<'a> {
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
                assert_eq!(value(chunk.usage), c["usage"]);
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
    }
}
