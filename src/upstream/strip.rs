//! The usage chunk the gateway asked for on a client's behalf, taken out of a Chat event
//! stream: a streaming client that did not ask for `stream_options.include_usage` still has
//! its tokens counted (the gateway asks the upstream for them), and receives exactly the
//! events it would have without the gateway's question — the `"choices":[]` chunk that
//! carries the usage is read and removed.
//!
//! The chunk's counts are read from the access log's tail when the response is done.
//!
//! Complete events pass on as they came (the same bytes, no copy, unless a piece holds the
//! usage chunk: the one whose `"choices":[]` and `"usage":{` keys mark it — unescaped quotes
//! cannot occur inside a JSON string, so the patterns only match the chunk's own keys); the
//! start of an event still arriving waits for its end, so a usage chunk split across reads is
//! still recognised.

use std::sync::LazyLock;

use bytes::{Bytes, BytesMut};
use memchr::memmem::{Finder, FinderRev};

// The searchers, built once: building one costs about as much as searching an event.
static NO_CHOICES: LazyLock<Finder> = LazyLock::new(|| Finder::new(b"\"choices\":[]"));
static USAGE: LazyLock<Finder> = LazyLock::new(|| Finder::new(b"\"usage\":{"));
static LF: LazyLock<Finder> = LazyLock::new(|| Finder::new(b"\n\n"));
static CRLF: LazyLock<Finder> = LazyLock::new(|| Finder::new(b"\r\n\r\n"));
static CRLF_REV: LazyLock<FinderRev> = LazyLock::new(|| FinderRev::new(b"\r\n\r\n"));

#[derive(Default)]
pub struct UsageStrip {
    /// The start of an event whose end has not arrived.
    partial: BytesMut,
    /// The usage chunk taken out, read for its counts once the response is done (off the
    /// path of the bytes to the client).
    usage: Vec<u8>,
    /// Past this many bytes without an event's end, the stream is passed on untouched.
    limit: usize,
    gave_up: bool,
}

impl UsageStrip {
    pub fn new(max_event_bytes: usize) -> Self {
        Self { limit: max_event_bytes, ..Self::default() }
    }

    /// The bytes to pass on for `data`.
    pub fn feed(&mut self, data: Bytes) -> Bytes {
        if self.gave_up {
            return data;
        }
        let data = if self.partial.is_empty() {
            data
        } else {
            // Only the new bytes (and the three before them, where a terminator may have
            // begun) can end the event: an event trickled in small pieces costs linear time.
            let from = self.partial.len().saturating_sub(3);
            self.partial.extend_from_slice(&data);
            if last_boundary(&self.partial[from..]) == 0 {
                if self.partial.len() > self.limit {
                    self.gave_up = true;
                    return std::mem::take(&mut self.partial).freeze();
                }
                return Bytes::new();
            }
            std::mem::take(&mut self.partial).freeze()
        };
        let end = last_boundary(&data);
        if data.len() - end > self.limit {
            // No event is this large: not an event stream the gateway can read; leave it be.
            self.gave_up = true;
            return data;
        }
        self.partial.extend_from_slice(&data[end..]);
        let complete = data.slice(..end);
        // Only a chunk without choices can be the one: look at those events alone.
        let mut out = BytesMut::new();
        let (mut copied, mut from) = (0, 0);
        while let Some(i) = NO_CHOICES.find(&complete[from..]) {
            let at = from + i;
            let start = last_boundary(&complete[copied..at]) + copied;
            let stop = at + first_boundary(&complete[at..]).unwrap_or(complete.len() - at);
            let event = &complete[start..stop];
            if USAGE.find(event).is_some() {
                out.extend_from_slice(&complete[copied..start]);
                self.usage.clear();
                self.usage.extend_from_slice(event);
                copied = stop;
            }
            from = stop;
        }
        if copied == 0 {
            return complete;
        }
        out.extend_from_slice(&complete[copied..]);
        out.freeze()
    }

    /// What is left at the end of the stream (an event that never ended passes on as it is).
    pub fn finish(&mut self) -> Bytes {
        std::mem::take(&mut self.partial).freeze()
    }

    /// The usage chunk taken out since the last call, once: the relay hands it to the access
    /// log's tail at once, so a client that leaves before the stream's end is still counted.
    pub fn take_usage(&mut self) -> Option<Vec<u8>> {
        (!self.usage.is_empty()).then(|| std::mem::take(&mut self.usage))
    }
}

/// The index just past the last event terminator (`\n\n` or `\r\n\r\n`) in `data`; 0 if none.
fn last_boundary(data: &[u8]) -> usize {
    // From the last LF back, a SIMD search for one byte: an event usually ends where the
    // chunk does, and memmem's reverse search took some 700 instructions a call to find it.
    let mut lf = 0;
    let mut before = data.len();
    while let Some(i) = memchr::memrchr(b'\n', &data[..before]) {
        if i > 0 && data[i - 1] == b'\n' {
            lf = i + 1;
            break;
        }
        before = i;
    }
    // A later `\r\n\r\n` lies wholly after that `\n\n` (the two cannot overlap). Most
    // streams have no CR at all, and memchr's reverse search for an absent needle reads a
    // byte at a time (0.4 µs for 2 KB); the SIMD scan for a CR is 15 ns.
    let after = &data[lf..];
    if memchr::memrchr(b'\r', after).is_none() {
        return lf;
    }
    CRLF_REV.rfind(after).map_or(lf, |i| lf + i + 4)
}

/// The length of the first event in `data`, terminator included. (A CRLF terminator is
/// looked for only before the first LF one, so each byte is scanned a bounded number of times.)
fn first_boundary(data: &[u8]) -> Option<usize> {
    let lf = LF.find(data).map(|i| i + 2);
    let before = lf.map_or(data.len(), |end| end.min(data.len()));
    let crlf = CRLF.find(&data[..before]).map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Vec<u8> {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/upstream/openai/chat-stream.sse"))
            .unwrap()
    }

    /// The fixture without its usage chunk, as a client that did not ask sees it.
    fn without_usage(text: &[u8]) -> Vec<u8> {
        let text = String::from_utf8(text.to_vec()).unwrap();
        text.split_inclusive("\n\n").filter(|e| !e.contains("\"choices\":[]")).collect::<String>().into_bytes()
    }

    fn run(pieces: &[&[u8]]) -> (Vec<u8>, Option<(u64, u64)>) {
        let mut s = UsageStrip::new(1 << 20);
        let mut out = Vec::new();
        for p in pieces {
            out.extend_from_slice(&s.feed(Bytes::copy_from_slice(p)));
        }
        out.extend_from_slice(&s.finish());
        let mut tail = crate::usage::Tail::default();
        tail.push(&s.take_usage().unwrap_or_default());
        (out, tail.tokens())
    }

    #[test]
    fn removes_the_usage_chunk_at_every_split_point_and_keeps_every_other_byte() {
        let text = fixture();
        let want = without_usage(&text);
        assert!(want.len() < text.len(), "the fixture has a usage chunk");
        for at in 0..=text.len() {
            let (out, tokens) = run(&[&text[..at], &text[at..]]);
            assert_eq!(out, want, "split at {at}");
            assert_eq!(tokens, Some((71, 16)), "split at {at}");
        }
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(run(&bytes).0, want, "one byte at a time");
    }

    #[test]
    fn a_chunk_with_choices_and_crlf_events_and_a_stream_without_usage_pass_unchanged() {
        let with_choices = b"data: {\"choices\":[{\"delta\":{}}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n";
        assert_eq!(run(&[with_choices]).0, with_choices.to_vec());
        let crlf = b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\r\n\r\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\r\n\r\ndata: [DONE]\r\n\r\n";
        let (out, tokens) = run(&[crlf]);
        assert_eq!(out, b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\r\n\r\ndata: [DONE]\r\n\r\n".to_vec());
        assert_eq!(tokens, Some((3, 4)));
        let cut = b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3";
        assert_eq!(run(&[cut]).0, cut.to_vec(), "an event that never ends passes on as it is");
    }

    proptest::proptest! {
        /// The last terminator of either kind, as a plain search from the end finds it.
        #[test]
        fn the_last_boundary_is_the_last_terminator(
            data in proptest::collection::vec(proptest::sample::select(b"\r\n\na".to_vec()), 0..64),
        ) {
            let ends = |t: &[u8]| (0..=data.len()).rev().find(|&e| e >= t.len() && data[e - t.len()..e] == *t);
            let want = ends(b"\n\n").unwrap_or(0).max(ends(b"\r\n\r\n").unwrap_or(0));
            proptest::prop_assert_eq!(last_boundary(&data), want);
        }

        /// Any bytes, cut anywhere: no panic, and a stream without a usage chunk passes
        /// unchanged.
        #[test]
        fn any_bytes_pass_unchanged_unless_they_hold_the_usage_chunk(
            data in proptest::collection::vec(proptest::prop_oneof![
                proptest::strategy::Just(b'\n'), proptest::strategy::Just(b'\r'), proptest::strategy::Just(b'{'),
                proptest::num::u8::ANY], 0..400),
            cut in 0usize..400,
        ) {
            let cut = cut.min(data.len());
            let (out, _) = run(&[&data[..cut], &data[cut..]]);
            if memchr::memmem::find(&data, b"\"choices\":[]").is_none() {
                proptest::prop_assert_eq!(out, data);
            }
        }
    }

    #[test]
    fn an_event_past_the_limit_is_passed_on_untouched() {
        let mut s = UsageStrip::new(8);
        let big = Bytes::from_static(b"data: {\"choices\":[],\"usage\":{}} no end in sight");
        assert_eq!(s.feed(big.clone()), big);
        assert_eq!(s.feed(Bytes::from_static(b"\n\n")), Bytes::from_static(b"\n\n"));
    }
}
