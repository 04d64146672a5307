//! OpenAI's Responses API (`POST /v1/responses`) as a client dialect served by a Chat
//! Completions upstream, statelessly: the client resends the whole conversation in `input`
//! (Codex does, with `store: false`); anything that needs server-side state is refused.
//!
//! - `request`: Responses request → Chat request.
//! - `response`: `chat.completion` → Response object, and what a Response repeats from the
//!   request (`Echo`).
//! - `stream`: Chat SSE → Responses SSE events.
//!
//! Chat errors are already shaped `{"error":{…}}`, as Responses errors are: they pass as is.
//!
//! The request and the whole answer (`dialect::chat::Completion`) are read with the checking
//! JSON reader and written straight into the other dialect's bytes: no JSON tree is built,
//! and what passes unchanged is copied as the other side wrote it.

use crate::dialect::json_str;

pub mod request;
pub mod response;
pub mod stream;

/// A tool call's arguments, a JSON text in a string in both dialects.
enum Arguments<'a> {
    /// A string, copied as written (checked JSON).
    Raw(&'a str),
    Text(String),
}

impl<'a> Arguments<'a> {
    /// A string is copied; null or absent is the empty string; any other JSON becomes its
    /// compact text as a JSON tree prints it (keys sorted), as the translation always wrote
    /// it. That last case is rare (both sides send strings), so it may build a tree.
    fn of(value: Option<&'a str>) -> Self {
        match value {
            Some(s) if s.starts_with('"') => Arguments::Raw(s),
            None | Some("null") => Arguments::Text(String::new()),
            Some(v) => Arguments::Text(
                serde_json::from_str::<serde_json::Value>(v).map_or_else(|_| v.to_owned(), |t| t.to_string()),
            ),
        }
    }

    /// Appends them as a JSON string.
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Arguments::Raw(raw) => out.extend_from_slice(raw.as_bytes()),
            Arguments::Text(text) => json_str(out, text),
        }
    }
}
