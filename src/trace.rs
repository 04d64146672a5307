//! The anchor's `tracing:` section: log each chat request's messages, truncated.
//! Truncation counts characters (never splits one) and newlines are escaped.

use serde::Deserialize;
use serde_json::Value;
use tracing::info;

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

/// Every message's role and text, for the heuristics.
pub fn role_texts(parsed: &Parsed) -> Vec<(String, String)> {
    let messages: Vec<Message> =
        parsed.probe.messages.and_then(|m| serde_json::from_str(m.get()).ok()).unwrap_or_default();
    messages.into_iter().map(|m| (m.role, text_of(&m.content))).collect()
}

pub fn truncate(text: &str, max_chars: usize) -> String {
    let escaped = text.replace('\n', "\\n");
    match escaped.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}...", &escaped[..cut]),
        None => escaped,
    }
}

pub fn log_request(parsed: &Parsed, model: &str, max_chars: usize) {
    let messages: Vec<Message> =
        parsed.probe.messages.and_then(|m| serde_json::from_str(m.get()).ok()).unwrap_or_default();
    let tools =
        parsed.probe.tools.and_then(|t| serde_json::from_str::<Vec<Value>>(t.get()).ok()).map_or(0, |t| t.len());
    info!("trace: model='{model}' messages={} stream={} tools={tools}", messages.len(), parsed.is_stream());
    for (i, m) in messages.iter().enumerate() {
        info!("trace:   [{i}] role='{}' content='{}'", m.role, truncate(&text_of(&m.content), max_chars));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_by_characters_and_escapes_newlines() {
        assert_eq!(truncate("héllo\nworld", 7), "héllo\\n...");
        assert_eq!(truncate("short", 10), "short");
    }

    #[test]
    fn text_parts_are_joined() {
        let v: Value =
            serde_json::json!([{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}]);
        assert_eq!(text_of(&v), "a\nb");
    }
}
