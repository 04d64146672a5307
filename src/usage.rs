//! Token counts read from a response without parsing it: the last bytes of every body are
//! kept, and at the end the last `"usage":{…}` object in them is read (OpenAI and
//! llama.cpp put usage at or near the end of a completion, and in the final chunk of a
//! stream that asked for it; Anthropic and the Responses API in the last event). Chat names
//! the counts `prompt_tokens` / `completion_tokens`, Messages and Responses `input_tokens` /
//! `output_tokens`.

use std::sync::LazyLock;

use memchr::memmem;

/// How much of a body's end is kept.
const TAIL: usize = 2048;

#[derive(Default)]
pub struct Tail {
    /// The body so far while it is one piece no longer than [`TAIL`] (a whole JSON answer
    /// usually is): held, not copied.
    only: Option<bytes::Bytes>,
    end: Vec<u8>,
    /// The first [`TAIL`] bytes too, when asked for: an Anthropic stream reports its input
    /// tokens in its first event and only the output tokens in its last.
    head: Option<Vec<u8>>,
}

impl Tail {
    /// A tail that also keeps the body's first bytes.
    pub fn with_head() -> Self {
        Self { only: None, end: Vec::new(), head: Some(Vec::new()) }
    }

    /// [`Tail::push`] for a piece the caller owns: the first piece of a body is held as is.
    pub fn push_bytes(&mut self, data: &bytes::Bytes) {
        if self.only.is_none() && self.end.is_empty() && self.head.is_none() && data.len() <= TAIL {
            self.only = Some(data.clone());
        } else {
            self.push(data);
        }
    }

    /// Keeps at least the last [`TAIL`] bytes; compacts only when twice that has piled up,
    /// so a stream of many small events costs one copy per byte, not one shift per event.
    pub fn push(&mut self, data: &[u8]) {
        if let Some(only) = self.only.take() {
            self.end.extend_from_slice(&only);
        }
        if let Some(head) = self.head.as_mut().filter(|h| h.len() < TAIL) {
            head.extend_from_slice(&data[..data.len().min(TAIL - head.len())]);
        }
        let data = &data[data.len().saturating_sub(TAIL)..];
        if self.end.len() + data.len() > 2 * TAIL {
            let keep = TAIL.saturating_sub(data.len());
            self.end.drain(..self.end.len() - keep);
        }
        self.end.extend_from_slice(data);
    }

    fn recent(&self) -> &[u8] {
        match &self.only {
            Some(only) => only,
            None => &self.end[self.end.len().saturating_sub(TAIL)..],
        }
    }

    /// `(prompt_tokens, completion_tokens)` of the last usage object, if any; its prompt
    /// count from the first usage object when the last has none (Anthropic's streams).
    pub fn tokens(&self) -> Option<(u64, u64)> {
        // The forward search's SIMD skip finds the last occurrence sooner than memchr's
        // reverse search, which reads a byte at a time.
        static FINDER: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(USAGE));
        let last = usage_at(self.recent(), FINDER.find_iter(self.recent()).last()?)?;
        let first = || {
            let head = self.head.as_deref()?;
            usage_at(head, FINDER.find(head)?)?.prompt()
        };
        Some((last.prompt().or_else(first)?, last.completion()?))
    }

    /// How long the upstream says it spent generating (llama.cpp's `timings.predicted_ms`).
    pub fn generation(&self) -> Option<std::time::Duration> {
        generation(self.recent())
    }
}

const USAGE: &[u8] = b"\"usage\":";

/// The usage object whose key starts at `at`: its top-level members, read in one pass
/// (nested token details and other values are skipped, nothing is built). `None` when it is
/// not an object or is cut off.
fn usage_at(text: &[u8], at: usize) -> Option<Counts> {
    let mut i = skip_ws(text, at + USAGE.len());
    if text.get(i) != Some(&b'{') {
        return None;
    }
    let mut counts = Counts::default();
    i += 1;
    loop {
        i = skip_ws(text, i);
        match text.get(i)? {
            b'}' => return Some(counts),
            b',' => {
                i += 1;
                continue;
            }
            b'"' => {}
            _ => return None,
        }
        let key_end = string_end(text, i)?;
        let key = &text[i + 1..key_end - 1];
        i = skip_ws(text, key_end);
        if text.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(text, i + 1);
        let end = value_end(text, i)?;
        if let Some(slot) = counts.slot(key) {
            // Anything but a whole number (null, a fraction, a string) counts as absent; `10.0`
            // is 10, as the translators read it.
            *slot = std::str::from_utf8(&text[i..end]).ok().and_then(crate::dialect::json::number);
        }
        i = end;
    }
}

fn skip_ws(text: &[u8], mut i: usize) -> usize {
    while text.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// The index after the string that opens at `start` (its `"`).
fn string_end(text: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        i += memchr::memchr2(b'"', b'\\', &text[i.min(text.len())..])?;
        if text[i] == b'"' {
            return Some(i + 1);
        }
        i += 2;
    }
}

/// The index after the value that starts at `start`.
fn value_end(text: &[u8], start: usize) -> Option<usize> {
    match text.get(start)? {
        b'"' => string_end(text, start),
        b'{' | b'[' => {
            let (mut depth, mut i) = (0usize, start);
            loop {
                match text.get(i)? {
                    b'"' => {
                        i = string_end(text, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let len = text[start..].iter().position(|b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace());
            Some(start + len?)
        }
    }
}

/// The generation time a llama.cpp server reports (`"predicted_ms": 1234.5`) near the end
/// of `text`, if any.
pub fn generation(text: &[u8]) -> Option<std::time::Duration> {
    const KEY: &[u8] = b"\"predicted_ms\":";
    // Every other server's answers lack the key, and memchr's reverse search, which has no
    // SIMD skip, then reads the whole text a byte at a time (0.3 µs for 2 KB); the forward
    // search skips ahead and costs a sixth of that, found or not.
    static FINDER: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(KEY));
    let at = FINDER.find_iter(text).last()? + KEY.len();
    let rest = &text[at..];
    let start = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    let len = rest[start..].iter().position(|b| !matches!(b, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))?;
    let ms: f64 = std::str::from_utf8(&rest[start..start + len]).ok()?.parse().ok()?;
    (ms.is_finite() && ms > 0.0 && ms < 1e10).then(|| std::time::Duration::from_secs_f64(ms / 1000.0))
}

/// A usage object of any dialect: Chat names the counts `prompt_tokens` /
/// `completion_tokens`, Messages and Responses `input_tokens` / `output_tokens`.
#[derive(Default)]
struct Counts {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    /// Anthropic counts cached prompt tokens apart from `input_tokens`.
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    /// Embeddings report `prompt_tokens` and `total_tokens` only: no completion.
    total_tokens: Option<u64>,
}

impl Counts {
    fn slot(&mut self, key: &[u8]) -> Option<&mut Option<u64>> {
        Some(match key {
            b"prompt_tokens" => &mut self.prompt_tokens,
            b"completion_tokens" => &mut self.completion_tokens,
            b"input_tokens" => &mut self.input_tokens,
            b"output_tokens" => &mut self.output_tokens,
            b"cache_read_input_tokens" => &mut self.cache_read_input_tokens,
            b"cache_creation_input_tokens" => &mut self.cache_creation_input_tokens,
            b"total_tokens" => &mut self.total_tokens,
            _ => return None,
        })
    }

    fn prompt(&self) -> Option<u64> {
        let cached =
            self.cache_read_input_tokens.unwrap_or(0).saturating_add(self.cache_creation_input_tokens.unwrap_or(0));
        self.prompt_tokens.or(self.input_tokens.map(|n| n.saturating_add(cached)))
    }

    fn completion(&self) -> Option<u64> {
        self.completion_tokens.or(self.output_tokens).or(self.total_tokens.map(|_| 0))
    }
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
    fn a_held_first_piece_counts_like_a_copied_one() {
        let whole = bytes::Bytes::from(fixture("openai/chat.json"));
        let mut held = Tail::default();
        held.push_bytes(&whole);
        assert!(held.only.is_some() && held.end.is_empty(), "one piece is held, not copied");
        assert_eq!(held.tokens(), Some((19, 10)));
        // A stream: the first piece is held, the next ones copy it in front of themselves.
        let stream = fixture("openai/chat-stream.sse");
        let mut s = Tail::default();
        for piece in stream.chunks(300) {
            s.push_bytes(&bytes::Bytes::copy_from_slice(piece));
        }
        assert_eq!(s.tokens(), Some((71, 16)));
        assert!(s.only.is_none());
        // A piece longer than the tail is copied from the start.
        let mut long = Tail::default();
        long.push_bytes(&bytes::Bytes::from(vec![b'x'; TAIL + 1]));
        assert!(long.only.is_none() && long.end.len() == TAIL);
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
        assert!(t.end.len() <= 2 * TAIL);
    }

    #[test]
    fn an_anthropic_stream_counts_input_from_its_first_event_and_cache_too() {
        let mut plain = Tail::default();
        let mut headed = Tail::with_head();
        let stream = fixture("anthropic/stream-text.sse");
        for piece in stream.chunks(5) {
            plain.push(piece);
            headed.push(piece);
        }
        assert_eq!(plain.tokens(), None, "the last event has output tokens only");
        let (prompt, completion) = headed.tokens().expect("input tokens from message_start");
        assert!(prompt > 0 && completion > 0);
        let mut cached = Tail::default();
        cached.push(br#"{"usage":{"input_tokens":5,"cache_read_input_tokens":100,"cache_creation_input_tokens":7,"output_tokens":3}}"#);
        assert_eq!(cached.tokens(), Some((112, 3)));
    }

    /// The usage object is read by its top-level members only, whatever is nested, spaced,
    /// null or cut off.
    #[test]
    fn usage_objects_of_every_shape() {
        let tokens = |text: &[u8]| {
            let mut t = Tail::default();
            t.push(text);
            t.tokens()
        };
        let spaced = br#"{"usage": {
            "prompt_tokens_details" : {"prompt_tokens": 99, "cached_tokens": 3},
            "note": "a } and a \" and {", "list": [1, {"completion_tokens": 98}],
            "prompt_tokens" : 12 , "completion_tokens":7 }}"#;
        assert_eq!(tokens(spaced), Some((12, 7)));
        assert_eq!(tokens(br#"{"usage":{"prompt_tokens":null,"completion_tokens":1}}"#), None);
        assert_eq!(tokens(br#"{"usage":{"prompt_tokens":2.5,"completion_tokens":1}}"#), None);
        assert_eq!(tokens(br#"{"usage":{"prompt_tokens":"2","completion_tokens":1}}"#), None);
        assert_eq!(
            tokens(br#"{"usage":{"prompt_tokens":2.0,"completion_tokens":1e1}}"#),
            Some((2, 10)),
            "as translated"
        );
        let huge = br#"{"usage":{"input_tokens":18446744073709551615,"cache_read_input_tokens":9,"output_tokens":1}}"#;
        assert_eq!(tokens(huge), Some((u64::MAX, 1)), "no overflow");
        assert_eq!(tokens(br#"{"usage":{"prompt_tokens":2,"total_tokens":2}}"#), Some((2, 0)), "embeddings");
        assert_eq!(tokens(br#"{"usage":{"prompt_tokens":2,"completion_tokens":1"#), None, "cut off");
        assert_eq!(tokens(br#"{"usage":{"prompt_tokens":2,"completion_tokens":1,"x":"\"#), None);
        assert_eq!(tokens(br#"{"usage":{"prompt_tokens":2,"completion_tokens":12"#), None);
        assert_eq!(tokens(br#"{"usage":{"prompt_tokens" 2}}"#), None);
        assert_eq!(tokens(br#"{"usage":[1]}"#), None);
        assert_eq!(tokens(br#""usage":"#), None);
        let two = br#"{"usage":{"prompt_tokens":1,"completion_tokens":1}} {"usage":{"prompt_tokens":5,"completion_tokens":6}}"#;
        assert_eq!(tokens(two), Some((5, 6)), "the last usage object counts");
    }

    #[test]
    fn reads_llama_cpp_generation_time() {
        let body = br#"{"usage":{"prompt_tokens":3,"completion_tokens":40},"timings":{"prompt_ms":12.5,"predicted_n":40,"predicted_ms":800.0,"predicted_per_second":50.0}}"#;
        assert_eq!(generation(body), Some(std::time::Duration::from_millis(800)));
        assert_eq!(generation(br#"{"predicted_ms":-1}"#), None);
        assert_eq!(generation(br#"{"predicted_ms":"x"}"#), None);
        assert_eq!(generation(b"no timings"), None);
    }

    /// JSON values whose text has every byte the scanner stops at (quotes and backslashes in
    /// strings and keys, brackets inside strings, control bytes escaped), none with a key
    /// `usage` of its own.
    fn nested() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        use serde_json::Value;
        let text = "[a-tv-z \"\\\\{}\\[\\]:,\n\u{e9}]{0,20}";
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            text.prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 5, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::btree_map(text, inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Whatever else a usage object holds, its counts are read, and a body cut before the
        /// object closes says none.
        #[test]
        fn reads_the_counts_whatever_surrounds_them(
            others in proptest::collection::btree_map("[a-tv-z_\"\\\\]{0,12}", nested(), 0..6),
            prompt in 0..u64::MAX,
            completion in 0..u64::MAX,
            after in nested(),
            cut in 0..1usize << 16,
        ) {
            let mut usage: serde_json::Map<_, _> = others.into_iter().collect();
            usage.insert("prompt_tokens".into(), prompt.into());
            usage.insert("completion_tokens".into(), completion.into());
            let usage = serde_json::to_vec(&usage).unwrap();
            let mut body = br#"{"id":"x","usage":"#.to_vec();
            body.extend_from_slice(&usage);
            let closed = body.len();
            body.extend_from_slice(b",\"after\":");
            body.extend_from_slice(&serde_json::to_vec(&after).unwrap());
            body.push(b'}');
            let tokens = |text: &[u8]| {
                let mut t = Tail::default();
                t.push(text);
                t.tokens()
            };
            proptest::prop_assume!(body.len() <= TAIL);
            proptest::prop_assert_eq!(tokens(&body), Some((prompt, completion)));
            proptest::prop_assert_eq!(tokens(&body[..cut % closed]), None);
        }
    }
}
