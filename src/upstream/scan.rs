//! Whether a relayed body that has ended is whole, when its length does not say so (an
//! upstream that ends its body by closing the connection, cut anywhere, looks like a clean end
//! to the HTTP layer). Event streams: [`crate::dialect::sse::Ending`]; JSON: [`JsonEnd`], a
//! depth and string scanner — no parse, no buffering, one pass eight bytes at a time.

use crate::dialect::Dialect;
use crate::dialect::sse::Ending;

/// What a body must look like at its end to be whole.
pub enum Check {
    /// An event stream in this dialect.
    Events(Dialect, Ending),
    /// A JSON document.
    Json(JsonEnd),
}

impl Check {
    pub fn feed(&mut self, bytes: &[u8]) {
        match self {
            Check::Events(_, e) => e.feed(bytes),
            Check::Json(j) => j.feed(bytes),
        }
    }

    pub fn complete(&self) -> bool {
        match self {
            Check::Events(dialect, e) => e.complete(*dialect),
            Check::Json(j) => j.complete(),
        }
    }
}

/// Tracks nesting depth and string state over a JSON text fed in pieces.
#[derive(Default)]
pub struct JsonEnd {
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// A value has begun (any non-whitespace byte).
    started: bool,
    /// The text is not JSON a scanner can judge (a stray closing bracket): trusted as is.
    confused: bool,
}

impl JsonEnd {
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.confused {
            return;
        }
        self.started = self.started || bytes.iter().any(|b| !b.is_ascii_whitespace());
        // Eight bytes at a time: the bytes that may change the state (quotes, backslashes,
        // brackets) are marked in one pass over the word and visited alone; the insides of
        // strings and numbers, most of an answer, are never looked at one by one.
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let w = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            // `[` and `]` are `{` and `}` but for the bit 0x20.
            let folded = w | (ONES * 0x20);
            let mut marks = byte_is(w, b'"') | byte_is(w, b'\\') | byte_is(folded, b'{') | byte_is(folded, b'}');
            if std::mem::take(&mut self.escaped) {
                marks &= !FIRST; // the byte right after a backslash
            }
            while marks != 0 {
                let i = marks.trailing_zeros() as usize / 8;
                marks &= marks - 1;
                match self.step(word[i]) {
                    Step::On => {}
                    Step::Escape if i < 7 => marks &= !(FIRST << (8 * (i + 1))),
                    Step::Escape => self.escaped = true,
                    Step::Confused => return,
                }
            }
        }
        for &b in words.remainder() {
            if std::mem::take(&mut self.escaped) {
                continue;
            }
            match self.step(b) {
                Step::On => {}
                Step::Escape => self.escaped = true,
                Step::Confused => return,
            }
        }
    }

    /// One byte's effect (any byte: a marked one may be none of those sought).
    fn step(&mut self, b: u8) -> Step {
        if self.in_string {
            match b {
                b'"' => self.in_string = false,
                b'\\' => return Step::Escape,
                _ => {}
            }
            return Step::On;
        }
        match b {
            b'"' => self.in_string = true,
            b'{' | b'[' => self.depth += 1,
            b'}' | b']' => match self.depth.checked_sub(1) {
                Some(d) => self.depth = d,
                None => {
                    self.confused = true;
                    return Step::Confused;
                }
            },
            _ => {}
        }
        Step::On
    }

    /// Whether the text ended with its top-level value whole. An empty body is not JSON that
    /// was cut, so it counts as whole (the client sees an empty body, not a truncated one).
    pub fn complete(&self) -> bool {
        self.confused || !self.started || (!self.in_string && self.depth == 0)
    }
}

enum Step {
    On,
    /// A backslash in a string: the next byte is skipped.
    Escape,
    /// A stray closing bracket.
    Confused,
}

/// `0x0101…01`: a byte repeated over a word.
const ONES: u64 = u64::MAX / 255;
/// The mark of a word's first byte.
const FIRST: u64 = 0x80;

/// Bit 7 set in each byte of `word` equal to `byte`, and perhaps in a byte right above one
/// (a borrow): a mark says "look at this byte", not what it is.
fn byte_is(word: u64, byte: u8) -> u64 {
    let x = word ^ (ONES * u64::from(byte));
    x.wrapping_sub(ONES) & !x & (ONES << 7)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(text: &[u8]) -> bool {
        let mut j = JsonEnd::default();
        j.feed(text);
        let one = j.complete();
        for s in 0..=text.len() {
            let mut k = JsonEnd::default();
            k.feed(&text[..s]);
            k.feed(&text[s..]);
            assert_eq!(k.complete(), one, "split at {s} of {}", String::from_utf8_lossy(text));
        }
        one
    }

    #[test]
    fn whole_documents_are_whole_and_every_cut_is_not() {
        let doc = br#"{"a":"x\"}]\\","b":[1,{"c":"{"}],"d":"\\\"" }"#;
        assert!(whole(doc));
        assert!(whole(b"  [1, 2]\n"));
        assert!(whole(b""), "an empty body was not cut");
        for cut in 1..doc.len() {
            assert!(!whole(&doc[..cut]), "cut at {cut}: {}", String::from_utf8_lossy(&doc[..cut]));
        }
    }

    /// The scanner's meaning, a byte at a time: (complete, depth, in a string) at the end.
    fn one_by_one(text: &[u8]) -> (bool, usize, bool) {
        let (mut depth, mut in_string, mut escaped, mut started) = (0usize, false, false, false);
        for &b in text {
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            started |= !b.is_ascii_whitespace();
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => match depth.checked_sub(1) {
                    Some(d) => depth = d,
                    None => return (true, 0, false),
                },
                _ => {}
            }
        }
        (!started || (!in_string && depth == 0), depth, in_string)
    }

    proptest::proptest! {
        /// Text of JSON's structural bytes and their neighbours in the byte table (a false mark
        /// lands on those), in pieces cut anywhere: eight bytes at a time reads as one at a time.
        #[test]
        fn words_read_as_bytes(
            text in proptest::collection::vec(proptest::prop_oneof![
                proptest::sample::select(b"\"\\{}[]#]|}\\\\ a\x01".to_vec()), proptest::num::u8::ANY], 0..300),
            cuts in proptest::collection::vec(0usize..300, 0..4),
        ) {
            let mut j = JsonEnd::default();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(text.len())).collect();
            cuts.sort_unstable();
            let mut from = 0;
            for cut in cuts.into_iter().chain([text.len()]) {
                j.feed(&text[from..cut]);
                from = cut;
            }
            let (complete, depth, in_string) = one_by_one(&text);
            proptest::prop_assert_eq!(j.complete(), complete);
            if !j.confused {
                proptest::prop_assert_eq!((j.depth, j.in_string), (depth, in_string));
            }
        }
    }
}
