//! Chat Completions shapes that more than one translation writes (Chat is the hub).

use serde::Serialize;
use serde_json::value::RawValue;

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
