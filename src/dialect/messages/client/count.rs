//! `POST /v1/messages/count_tokens` for upstreams without a tokenizer API: an estimate, not a
//! count. Clients (Claude Code) use it to decide when to compact a conversation, for which
//! "about right, never zero" is what matters.

use serde_json::Value;

/// Bytes per token, the usual rule of thumb for English text and code with BPE tokenizers.
const BYTES_PER_TOKEN: u64 = 4;

/// Tokens an image costs, whatever its size: Anthropic's figure for a ~1.15 megapixel image,
/// the size it scales larger ones down to. Counting its base64 bytes would overestimate ~100×.
const IMAGE_TOKENS: u64 = 1600;

/// An estimate of a Messages request's input tokens: the bytes of all text in `system` and
/// `messages` plus the bytes of the `tools` JSON, divided by 4 and rounded up; a flat
/// [`IMAGE_TOKENS`] per image. At least 1.
pub fn estimate(req: &Value) -> u64 {
    let mut bytes = 0;
    let mut images = 0;
    text_bytes(&req["system"], &mut bytes, &mut images);
    text_bytes(&req["messages"], &mut bytes, &mut images);
    if !req["tools"].is_null() {
        let mut counter = Counter(0);
        let _ = serde_json::to_writer(&mut counter, &req["tools"]);
        bytes += counter.0;
    }
    (bytes.div_ceil(BYTES_PER_TOKEN) + images * IMAGE_TOKENS).max(1)
}

/// Adds the bytes of every string under `v` (tool inputs, tool results and role names
/// included: they are all tokens the model reads), counting images apart.
fn text_bytes(v: &Value, bytes: &mut u64, images: &mut u64) {
    match v {
        Value::String(s) => *bytes += s.len() as u64,
        Value::Array(list) => list.iter().for_each(|x| text_bytes(x, bytes, images)),
        Value::Object(obj) if obj.get("type").and_then(Value::as_str) == Some("image") => *images += 1,
        Value::Object(obj) => {
            for (key, x) in obj {
                // Cache hints and signatures are not model input.
                if key != "cache_control" && key != "signature" {
                    text_bytes(x, bytes, images);
                }
            }
        }
        _ => {}
    }
}

/// Counts the bytes written to it, so tools are measured without building their JSON string.
struct Counter(u64);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_text_tools_and_images() {
        assert_eq!(estimate(&json!({})), 1);
        let req = json!({"messages": [{"role": "user", "content": "12345678"}]});
        // "user" + "12345678": 12 bytes → 3 tokens.
        assert_eq!(estimate(&req), 3);
        let req = json!({
            "system": [{"type": "text", "text": "abc", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "hi"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAAAAAAAAAAAAAA"}}]}],
            "tools": [{"name": "f"}]
        });
        // system "text"+"abc" = 7, messages "user"+"text"+"hi" = 10, tools `[{"name":"f"}]` = 14.
        assert_eq!(estimate(&req), 31u64.div_ceil(4) + IMAGE_TOKENS);
    }

    #[test]
    fn a_realistic_request_is_in_the_right_range() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/dialects/messages/claude-code-request.json");
        let req: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let n = estimate(&req);
        assert!((2 * IMAGE_TOKENS + 200..2 * IMAGE_TOKENS + 800).contains(&n), "{n}");
    }
}
