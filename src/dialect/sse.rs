//! An incremental Server-Sent Events reader: bytes in as they arrive (split anywhere, CRLF or
//! LF), one callback per complete event with its `event:` name and joined `data:` lines. A
//! line or an event larger than the reader's limit (`limits.max_event_bytes`) stops it with
//! [`TooLarge`]: nothing it holds grows past that.
//!
//! [`Ending`] watches a stream that passes through untouched and tells, at its end, whether
//! it ended the way its dialect ends a whole answer.

use crate::dialect::Dialect;

/// The default bound on one line or event (`limits.max_event_bytes`' default).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 << 20;

/// A line or an event was larger than the reader's limit; the reader holds nothing more and
/// reads nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge(pub usize);

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the upstream sent an event larger than {} bytes (limits.max_event_bytes)", self.0)
    }
}

pub struct Reader {
    /// Bytes of an incomplete line.
    line: Vec<u8>,
    /// `data:` lines of the event being read, joined with `\n`.
    data: Vec<u8>,
    /// Whether the event being read had a `data:` line (an empty `data:` still counts).
    has_data: bool,
    /// The `event:` field of the event being read.
    name: Vec<u8>,
    /// The largest line or event (`data` joined) accepted.
    limit: usize,
    /// A limit was passed: everything after is ignored.
    over: bool,
}

impl Default for Reader {
    fn default() -> Self {
        Self::with_limit(DEFAULT_MAX_EVENT_BYTES)
    }
}

/// One complete event.
pub struct Event<'a> {
    /// The `event:` field, empty when absent.
    pub name: &'a [u8],
    pub data: &'a [u8],
}

impl Reader {
    pub fn with_limit(limit: usize) -> Self {
        Self { line: Vec::new(), data: Vec::new(), has_data: false, name: Vec::new(), limit, over: false }
    }

    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Feeds bytes; calls `on_event` for every event they complete. `Err` once a line or an
    /// event is larger than the limit (then and for every later call; the events before it
    /// were delivered).
    pub fn feed(&mut self, mut bytes: &[u8], on_event: &mut dyn FnMut(Event<'_>)) -> Result<(), TooLarge> {
        if self.over {
            return Err(TooLarge(self.limit));
        }
        while let Some(nl) = memchr::memchr(b'\n', bytes) {
            let (head, rest) = bytes.split_at(nl);
            bytes = &rest[1..];
            let done = if self.line.is_empty() {
                // The usual event — a lone `data:` line and the blank line after it, both in
                // these bytes — is handed out where it lies, not copied.
                if let (false, Some(data), Some(after)) = (self.has_data, data_value(head), blank_line(bytes))
                    && data.len() < self.limit
                {
                    on_event(Event { name: &self.name, data });
                    self.name.clear();
                    bytes = after;
                    continue;
                }
                self.line_done(head, on_event)
            } else if self.line.len() + head.len() > self.limit {
                Err(TooLarge(self.limit))
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(head);
                let done = self.line_done(&line, on_event);
                line.clear();
                self.line = line;
                done
            };
            if let Err(e) = done {
                return Err(self.overflow(e));
            }
        }
        if self.line.len() + bytes.len() > self.limit {
            return Err(self.overflow(TooLarge(self.limit)));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    /// Drops what was held, for good.
    fn overflow(&mut self, e: TooLarge) -> TooLarge {
        self.over = true;
        self.line = Vec::new();
        self.data = Vec::new();
        self.name = Vec::new();
        self.has_data = false;
        e
    }

    /// True when no partial line or event is pending (the stream ended on an event boundary).
    pub fn is_idle(&self) -> bool {
        self.line.is_empty() && !self.has_data
    }

    fn line_done(&mut self, line: &[u8], on_event: &mut dyn FnMut(Event<'_>)) -> Result<(), TooLarge> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if self.has_data {
                on_event(Event { name: &self.name, data: &self.data });
            }
            self.data.clear();
            self.name.clear();
            self.has_data = false;
            return Ok(());
        }
        let Some((field, value)) = field(line) else { return Ok(()) }; // a comment
        match field {
            b"data" => {
                if self.data.len() + value.len() + 1 > self.limit {
                    return Err(TooLarge(self.limit));
                }
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => {
                self.name.clear();
                self.name.extend_from_slice(value.get(..256).unwrap_or(value));
            }
            _ => {} // `id:`, `retry:`: nothing a translator needs
        }
        Ok(())
    }
}

/// A line's field name and value (one space after the colon dropped); `None` for a comment.
fn field(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let (field, value) = match memchr::memchr(b':', line) {
        Some(0) => return None,
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &b""[..]),
    };
    Some((field, value.strip_prefix(b" ").unwrap_or(value)))
}

/// The value of a `data:` line (its `\n` already off).
fn data_value(line: &[u8]) -> Option<&[u8]> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    field(line).filter(|(name, _)| *name == b"data").map(|(_, value)| value)
}

/// What follows a blank line at the start of `bytes`.
fn blank_line(bytes: &[u8]) -> Option<&[u8]> {
    bytes.strip_prefix(b"\n").or_else(|| bytes.strip_prefix(b"\r\n"))
}

/// How much of an event's start [`Ending`] keeps: enough for its `event:` line and the start
/// of its `data:` (where every dialect names the event's type).
const HEAD: usize = 256;

/// Watches an event stream that passes through as bytes, keeping only the first [`HEAD`]
/// bytes of the current and the last event, and tells at the end whether the stream ended
/// as a whole answer in its dialect does — or with the upstream's own error event, which is
/// explicit too.
#[derive(Default)]
pub struct Ending {
    /// The start of the event being read (its non-blank lines, each ending in `\n`).
    head: Vec<u8>,
    /// The start of the last complete event that was not only comments.
    last: Vec<u8>,
    /// Length of the current line so far (a `\r` included).
    line: usize,
    /// The current line's first byte, to tell comments.
    line_first: Option<u8>,
    /// The event being read has a non-comment line.
    pending: bool,
    /// Where the current line starts in `head`, and whether the event being read has a
    /// `data` line: one without (only `id:`, `retry:` or `event:` lines) is no event to a
    /// client's parser, so it is not the stream's last word either.
    line_at: usize,
    has_data: bool,
    /// At least the last [`HEAD`] × 4 bytes of the stream (a Chat stream's finish chunk).
    tail: Vec<u8>,
}

impl Ending {
    pub fn feed(&mut self, mut bytes: &[u8]) {
        let keep = 4 * HEAD;
        let recent = &bytes[bytes.len().saturating_sub(keep)..];
        if self.tail.len() + recent.len() > 2 * keep {
            self.tail.drain(..self.tail.len().saturating_sub(keep - recent.len()));
        }
        self.tail.extend_from_slice(recent);
        while !bytes.is_empty() {
            let (part, newline) = match memchr::memchr(b'\n', bytes) {
                Some(i) => (&bytes[..i], true),
                None => (bytes, false),
            };
            bytes = &bytes[part.len() + usize::from(newline)..];
            if self.line == 0 {
                self.line_first = part.first().copied();
                self.line_at = self.head.len();
            }
            let comment = self.line_first == Some(b':');
            if !comment && !part.is_empty() {
                let room = HEAD.saturating_sub(self.head.len());
                self.head.extend_from_slice(&part[..part.len().min(room)]);
            }
            self.line += part.len();
            if !newline {
                break;
            }
            let blank = self.line == 0 || (self.line == 1 && self.line_first == Some(b'\r'));
            if blank {
                // A ping is never a dialect's last event, whenever it comes (Anthropic's may).
                if self.pending && self.has_data && !is_ping(&self.head) {
                    std::mem::swap(&mut self.head, &mut self.last);
                }
                self.head.clear();
                self.pending = false;
                self.has_data = false;
            } else if !comment {
                self.pending = true;
                // A line past what is kept of the event may be its data: counted as such.
                self.has_data |= self.line_at >= HEAD || self.head.get(self.line_at..).is_some_and(is_data_line);
                if self.head.len() < HEAD {
                    self.head.push(b'\n');
                }
            }
            self.line = 0;
            self.line_first = None;
        }
    }

    /// Whether the stream, ended here, ended whole (or with the upstream's error event) in
    /// `dialect`: never in the middle of a line, and its last event the dialect's last.
    pub fn complete(&self, dialect: Dialect) -> bool {
        if self.line != 0 {
            return false;
        }
        // An event whose lines all arrived but not the blank line after it counts: a client
        // parser at the end of the stream has it whole.
        let last = if self.pending && self.has_data { &self.head } else { &self.last };
        let mut name: &[u8] = b"";
        let mut data: Option<&[u8]> = None;
        for line in last.split(|&b| b == b'\n') {
            match field(line.strip_suffix(b"\r").unwrap_or(line)) {
                Some((b"event", value)) => name = value,
                Some((b"data", value)) if data.is_none() => data = Some(value),
                _ => {}
            }
        }
        let Some(data) = data else { return false };
        let data = data.trim_ascii();
        let kind = if name.is_empty() { json_type(data) } else { name };
        match dialect {
            // A finish reason is the model's last word: some servers end there, without the
            // usage chunk or `[DONE]` (as the translators accept).
            Dialect::Chat => data == b"[DONE]" || is_error_object(data) || self.finished(),
            Dialect::Messages => matches!(kind, b"message_stop" | b"error"),
            Dialect::Responses => {
                matches!(kind, b"response.completed" | b"response.incomplete" | b"response.failed" | b"error")
            }
        }
    }
}

impl Ending {
    /// A Chat chunk with a finish reason is among the last bytes.
    fn finished(&self) -> bool {
        let at = memchr::memmem::rfind(&self.tail, b"\"finish_reason\"");
        at.is_some_and(|at| {
            let rest = self.tail[at + 15..].trim_ascii_start();
            rest.strip_prefix(b":").is_some_and(|v| v.trim_ascii_start().starts_with(b"\""))
        })
    }
}

/// The `"type"` of a JSON object from its first bytes (where every dialect puts it), or empty.
fn json_type(data: &[u8]) -> &[u8] {
    let Some(at) = memchr::memmem::find(data, b"\"type\"") else { return b"" };
    let rest = data[at + 6..].trim_ascii_start();
    let Some(rest) = rest.strip_prefix(b":") else { return b"" };
    let Some(rest) = rest.trim_ascii_start().strip_prefix(b"\"") else { return b"" };
    memchr::memchr(b'"', rest).map_or(b"", |end| &rest[..end])
}

/// A line (as kept, cut to what fitted) of the field `data`: `data`, `data:…`.
fn is_data_line(line: &[u8]) -> bool {
    line.strip_prefix(b"data").is_some_and(|rest| matches!(rest.first(), None | Some(b':' | b'\r')))
}

/// An event (as kept) named `ping`.
fn is_ping(head: &[u8]) -> bool {
    head.strip_prefix(b"event: ping").is_some_and(|rest| matches!(rest.first(), Some(b'\n' | b'\r')))
}

/// `{"error": …`: an OpenAI-style error chunk.
fn is_error_object(data: &[u8]) -> bool {
    data.strip_prefix(b"{").map(|rest| rest.trim_ascii_start()).is_some_and(|rest| rest.starts_with(b"\"error\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(input: &[u8], splits: &[usize]) -> Vec<(String, String)> {
        let mut r = Reader::default();
        let mut out = Vec::new();
        let mut last = 0;
        for &s in splits.iter().chain([input.len()].iter()) {
            r.feed(&input[last..s], &mut |e| {
                out.push((String::from_utf8_lossy(e.name).into_owned(), String::from_utf8_lossy(e.data).into_owned()))
            })
            .unwrap();
            last = s;
        }
        out
    }

    #[test]
    fn names_multiline_data_comments_and_crlf() {
        let input = b": hello\r\nevent: a\r\ndata: {\"x\":\r\ndata: 1}\r\n\r\ndata:[DONE]\n\nevent: lonely\n\n";
        let want = vec![("a".to_owned(), "{\"x\":\n1}".to_owned()), (String::new(), "[DONE]".to_owned())];
        assert_eq!(events(input, &[]), want);
        for s in 0..=input.len() {
            assert_eq!(events(input, &[s]), want, "split at {s}");
        }
    }

    #[test]
    fn idle_only_between_events() {
        let mut r = Reader::default();
        r.feed(b"data: x\n", &mut |_| {}).unwrap();
        assert!(!r.is_idle());
        r.feed(b"\n", &mut |_| {}).unwrap();
        assert!(r.is_idle());
        r.feed(b"data", &mut |_| {}).unwrap();
        assert!(!r.is_idle());
    }

    #[test]
    fn a_ten_megabyte_line_is_read_under_the_limit_and_refused_over_it() {
        let big = vec![b'x'; 10 << 20];
        let mut input = b"event: big\ndata: ".to_vec();
        input.extend_from_slice(&big);
        input.extend_from_slice(b"\n\ndata: after\n\n");
        let mut r = Reader::default();
        let mut seen = Vec::new();
        for piece in input.chunks(64 << 10) {
            r.feed(piece, &mut |e| seen.push(e.data.len())).unwrap();
        }
        assert_eq!(seen, [10 << 20, 5], "the 10 MB event whole, then the next one");

        let mut r = Reader::with_limit(1 << 20);
        let mut seen = 0;
        let mut result = Ok(());
        for piece in input.chunks(64 << 10) {
            result = result.and(r.feed(piece, &mut |_| seen += 1));
        }
        assert_eq!(result, Err(TooLarge(1 << 20)));
        assert_eq!(seen, 0, "nothing after the oversized event is read");
        assert!(r.line.capacity() + r.data.capacity() <= 2 << 20, "the reader let go of what it held");
    }

    #[test]
    fn an_event_of_many_lines_is_bounded_as_a_whole() {
        let mut r = Reader::with_limit(1000);
        let line = format!("data: {}\n", "y".repeat(100));
        let mut result = Ok(());
        for _ in 0..20 {
            result = result.and(r.feed(line.as_bytes(), &mut |_| {}));
        }
        assert_eq!(result, Err(TooLarge(1000)));
    }

    fn ended(input: &[u8], dialect: Dialect) -> bool {
        let whole = {
            let mut e = Ending::default();
            e.feed(input);
            e.complete(dialect)
        };
        for s in 0..=input.len() {
            let mut e = Ending::default();
            e.feed(&input[..s]);
            e.feed(&input[s..]);
            assert_eq!(e.complete(dialect), whole, "split at {s}");
        }
        whole
    }

    #[test]
    fn a_stream_ended_whole_is_told_from_one_cut_short() {
        let chat = b"data: {\"choices\":[]}\n\n: ping\n\ndata: [DONE]\n\n";
        assert!(ended(chat, Dialect::Chat));
        assert!(ended(b"data: {\"x\":1}\r\n\r\ndata: [DONE]\r\n\r\n", Dialect::Chat), "CRLF");
        assert!(ended(b"data: [DONE]\n", Dialect::Chat), "the blank line after the last event may be missing");
        let finished = b"data: {\"choices\":[{\"delta\":{},\"finish_reason\": \"stop\"}]}\n\n";
        assert!(ended(finished, Dialect::Chat), "a finish reason without [DONE]");
        assert!(!ended(b"data: {\"choices\":[{\"delta\":{},\"finish_reason\":null}]}\n\n", Dialect::Chat));
        assert!(ended(b"data: {\"error\":{\"message\":\"boom\"}}\n\n", Dialect::Chat), "the upstream's error");
        for cut in [0, 10, 22, chat.len() - 3, chat.len() - 9] {
            assert!(!ended(&chat[..cut], Dialect::Chat), "cut at {cut}");
        }
        let messages = b"event: message_delta\ndata: {\"type\":\"message_delta\"}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        assert!(ended(messages, Dialect::Messages));
        assert!(!ended(&messages[..messages.len() - 10], Dialect::Messages));
        assert!(!ended(&messages[..50], Dialect::Messages));
        assert!(ended(b"data: {\"type\": \"message_stop\"}\n\n", Dialect::Messages), "no event: line");
        assert!(ended(b"event: error\ndata: {\"type\":\"error\"}\n\n", Dialect::Messages));
        let big = format!(
            "event: response.completed\ndata: {{\"type\":\"response.completed\",\"response\":{{\"x\":\"{}\"}}}}\n\n",
            "z".repeat(5000)
        );
        assert!(ended(big.as_bytes(), Dialect::Responses), "a final event larger than what is kept of it");
        assert!(!ended(&big.as_bytes()[..big.len() - 2000], Dialect::Responses));
        assert!(!ended(b"event: response.output_text.delta\ndata: {}\n\n", Dialect::Responses));
        assert!(!ended(b"", Dialect::Chat), "an empty stream is no answer");
    }

    #[test]
    fn what_no_client_takes_for_an_event_does_not_end_a_stream() {
        // Blocks without data are not dispatched to a client (the SSE rules), and a ping is
        // never a dialect's last word: after the last event, neither makes a stream short.
        for after in ["retry: 3000\n\n", "id: 42\n\n", "event: ping\n\n", ": still here\n\n", "\n\n"] {
            let chat = format!("data: {{\"x\":1}}\n\ndata: [DONE]\n\n{after}");
            assert!(ended(chat.as_bytes(), Dialect::Chat), "{after:?} after [DONE]");
            let done = format!("event: response.completed\ndata: {{\"type\":\"response.completed\"}}\n\n{after}");
            assert!(ended(done.as_bytes(), Dialect::Responses), "{after:?} after response.completed");
        }
        let stop = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let ping = "event: ping\ndata: {\"type\": \"ping\"}\n\n";
        assert!(ended(format!("{stop}{ping}{ping}").as_bytes(), Dialect::Messages), "pings after message_stop");
        assert!(ended(format!("{stop}id: 7\r\n\r\n").as_bytes(), Dialect::Messages));
        assert!(ended(format!("{stop}{}", ping.replace('\n', "\r\n")).as_bytes(), Dialect::Messages), "CRLF");
        let long = format!("{stop}event: {}\ndata: {{}}\n\n", "x".repeat(300));
        assert!(!ended(long.as_bytes(), Dialect::Messages), "data past what is kept still counts");
        assert!(ended(b"data:[DONE]\n\n", Dialect::Chat), "`data:` without a space");
        // What a client does take for an event still ends it, and a stream without its last
        // event is still short, pings or not.
        let delta = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n";
        assert!(!ended(format!("{stop}{delta}").as_bytes(), Dialect::Messages));
        assert!(!ended(format!("{delta}{ping}").as_bytes(), Dialect::Messages));
        assert!(!ended(b"data: {\"choices\":[]}\n\nretry: 10\n\n", Dialect::Chat));
        assert!(!ended(b"data: [DONE]\n\ndata: {\"x\":1}\n\n", Dialect::Chat), "data after [DONE]");
    }
}
