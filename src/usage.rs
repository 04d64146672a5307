//! Token counts read from a response without parsing it: the last bytes of every body are
//! kept, and at the end the last `"usage":{…}` object in them is read (OpenAI and
//! llama.cpp put usage at or near the end of a completion, and in the final chunk of a
//! stream that asked for it; Anthropic and the Responses API in the last event). Chat names
//! the counts `prompt_tokens` / `completion_tokens`, Messages and Responses `input_tokens` /
//! `output_tokens`.

use serde::Deserialize;

/// How much of a body's end is kept.
const TAIL: usize = 2048;

#[derive(Default)]
pub struct Tail(Vec<u8>);

impl Tail {
    /// Keeps at least the last [`TAIL`] bytes; compacts only when twice that has piled up,
    /// so a stream of many small events costs one copy per byte, not one shift per event.
    pub fn push(&mut self, data: &[u8]) {
        let data = &data[data.len().saturating_sub(TAIL)..];
        if self.0.len() + data.len() > 2 * TAIL {
            let keep = TAIL.saturating_sub(data.len());
            self.0.drain(..self.0.len() - keep);
        }
        self.0.extend_from_slice(data);
    }

    /// `(prompt_tokens, completion_tokens)` of the last usage object, if any.
    pub fn tokens(&self) -> Option<(u64, u64)> {
        let tail = &self.0[self.0.len().saturating_sub(TAIL)..];
        let at = memchr::memmem::rfind(tail, b"\"usage\":")?;
        let rest = &tail[at + 8..];
        let start = rest.iter().position(|b| !b.is_ascii_whitespace())?;
        let rest = &rest[start..];
        if rest.first() != Some(&b'{') {
            return None;
        }
        let mut depth = 0usize;
        let end = rest.iter().position(|&b| {
            match b {
                b'{' => depth += 1,
                b'}' => depth -= 1,
                _ => {}
            }
            depth == 0
        })?;
        // Typed, so the other fields (token details and the like) are skipped, not built.
        serde_json::from_slice::<Counts>(&rest[..=end]).ok()?.pair()
    }
}

/// A usage object of any dialect: Chat names the counts `prompt_tokens` /
/// `completion_tokens`, Messages and Responses `input_tokens` / `output_tokens`.
#[derive(serde::Deserialize)]
struct Counts {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

impl Counts {
    fn pair(&self) -> Option<(u64, u64)> {
        Some((self.prompt_tokens.or(self.input_tokens)?, self.completion_tokens.or(self.output_tokens)?))
    }
}

/// `(prompt, completion)` from a whole response of any dialect.
pub fn of(response: &serde_json::Value) -> Option<(u64, u64)> {
    Counts::deserialize(&response["usage"]).ok()?.pair()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(rel: &str) -> Vec<u8> {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/upstream").join(rel)).unwrap()
    }

    #[test]
    fn reads_usage_from_completions_and_streams() {
        let mut t = Tail::default();
        t.push(&fixture("openai/chat.json"));
        assert_eq!(t.tokens(), Some((19, 10)));
        let mut s = Tail::default();
        for piece in fixture("openai/chat-stream.sse").chunks(7) {
            s.push(piece);
        }
        assert_eq!(s.tokens(), Some((71, 16)));
    }

    #[test]
    fn no_usage_or_null_usage_is_none() {
        let mut t = Tail::default();
        t.push(br#"data: {"choices":[],"usage":null}"#);
        assert_eq!(t.tokens(), None);
        t.push(&vec![b'x'; 5000]);
        assert_eq!(t.tokens(), None, "the usage object scrolled out of the tail");
        for _ in 0..1000 {
            t.push(b"0123456789");
        }
        assert!(t.0.len() <= 2 * TAIL);
    }
}
