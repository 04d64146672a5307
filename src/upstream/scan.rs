//! Whether a relayed body that has ended is whole, when its length does not say so (an
//! upstream that ends its body by closing the connection, cut anywhere, looks like a clean end
//! to the HTTP layer). Event streams: [`crate::dialect::sse::Ending`]; JSON: [`JsonEnd`], a
//! depth and string scanner — no parse, no buffering, one pass over each byte.

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
        let mut i = 0;
        while i < bytes.len() {
            if self.in_string {
                if self.escaped {
                    // The byte right after a backslash.
                    self.escaped = false;
                    i += 1;
                    continue;
                }
                // Skip to the next quote or backslash.
                let Some(at) = memchr::memchr2(b'"', b'\\', &bytes[i..]) else { return };
                let at = i + at;
                if bytes[at] == b'\\' {
                    self.escaped = true;
                    i = at + 1;
                    continue;
                }
                self.in_string = false;
                i = at + 1;
                continue;
            }
            match bytes[i] {
                b'"' => {
                    self.started = true;
                    self.in_string = true;
                }
                b'{' | b'[' => {
                    self.started = true;
                    self.depth += 1;
                }
                b'}' | b']' => match self.depth.checked_sub(1) {
                    Some(d) => self.depth = d,
                    None => {
                        self.confused = true;
                        return;
                    }
                },
                b if b.is_ascii_whitespace() => {}
                _ => self.started = true,
            }
            i += 1;
        }
    }

    /// Whether the text ended with its top-level value whole. An empty body is not JSON that
    /// was cut, so it counts as whole (the client sees an empty body, not a truncated one).
    pub fn complete(&self) -> bool {
        self.confused || !self.started || (!self.in_string && self.depth == 0)
    }
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
}
