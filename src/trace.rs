//! The Go gateway's `tracing:` section: log each chat request's messages, truncated.
//! Truncation counts characters (never splits one); control characters are escaped.

use serde::Deserialize;
use serde_json::Value;
use tracing::info;

use crate::dialect::Dialect;
use crate::request::Parsed;

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    role: String,
    #[serde(default)]
    content: Value,
}

/// The text of a message: string content, or its text parts joined with newlines.
pub fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n")
        }
        _ => String::new(),
    }
}

/// Every message's role and text, for the heuristics and the embedding layer, in whichever
/// dialect: Chat's `messages`; Messages' `system` then `messages`; Responses' `instructions`
/// then `input` (a string is one user message; items without a role, such as function
/// calls, carry no prompt text).
pub fn role_texts(parsed: &Parsed, dialect: Dialect) -> Vec<(String, String)> {
    let parse = |raw: Option<&str>| raw.and_then(|r| serde_json::from_str::<Value>(r).ok());
    let (system, conversation) = match dialect {
        Dialect::Chat => (None, parse(parsed.probe.messages)),
        Dialect::Messages => (parse(parsed.probe.system), parse(parsed.probe.messages)),
        Dialect::Responses => (parse(parsed.probe.instructions), parse(parsed.probe.input)),
    };
    let mut out: Vec<(String, String)> = system.map(|s| ("system".to_owned(), text_of(&s))).into_iter().collect();
    match conversation {
        Some(Value::String(s)) => out.push(("user".to_owned(), s)),
        Some(Value::Array(items)) => {
            for item in items {
                if let Ok(m) = serde_json::from_value::<Message>(item)
                    && !m.role.is_empty()
                {
                    out.push((m.role, text_of(&m.content)));
                }
            }
        }
        _ => {}
    }
    out
}

/// `text` cut to `max_chars` characters (never splitting one), then made safe for a log
/// line: see [`escape`].
pub fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}...", escape(&text[..cut])),
        None => escape(text),
    }
}

/// Client text made safe for one log line: `\n`, `\r`, `\t` and `\\` escaped as in Rust
/// source, every other control character (C0, DEL, C1, and the Unicode line and paragraph
/// separators) as `\u{..}`, so traced content can never start a line of its own or drive a
/// terminal.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{{{:x}}}", u32::from(c)))
            }
            c => out.push(c),
        }
    }
    out
}

pub fn log_request(parsed: &Parsed, dialect: Dialect, model: &str, max_chars: usize) {
    let messages = role_texts(parsed, dialect);
    let tools = parsed.probe.tools.and_then(|t| serde_json::from_str::<Vec<Value>>(t).ok()).map_or(0, |t| t.len());
    let model = escape(model);
    info!("trace: model='{model}' messages={} stream={} tools={tools}", messages.len(), parsed.is_stream());
    for (i, (role, text)) in messages.iter().enumerate() {
        info!("trace:   [{i}] role='{}' content='{}'", truncate(role, 32), truncate(text, max_chars));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_by_characters_and_escapes_newlines() {
        // Cut first (characters of the text as sent, as the Go gateway cuts before escaping).
        assert_eq!(truncate("héllo\nworld", 7), "héllo\\nw...");
        assert_eq!(truncate("short", 10), "short");
    }

    #[test]
    fn control_characters_cannot_start_a_log_line() {
        let forged = "hi\r\n2025-01-01T00:00:00Z  INFO forged\u{1b}[2J\u{85}\u{2028}end\\n";
        let out = truncate(forged, 1000);
        assert!(!out.chars().any(|c| c.is_control() || c == '\u{2028}'), "{out:?}");
        assert_eq!(out, "hi\\r\\n2025-01-01T00:00:00Z  INFO forged\\u{1b}[2J\\u{85}\\u{2028}end\\\\n");
        assert_eq!(truncate("a\rb", 2), "a\\r...", "cut by characters of the original");
    }

    #[test]
    fn text_parts_are_joined() {
        let v: Value =
            serde_json::json!([{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}]);
        assert_eq!(text_of(&v), "a\nb");
    }
}
