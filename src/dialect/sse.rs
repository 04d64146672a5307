//! An incremental Server-Sent Events reader: bytes in as they arrive (split anywhere, CRLF or
//! LF), one callback per complete event with its `event:` name and joined `data:` lines. No
//! line-length limit of its own: callers bound what they accept.

#[derive(Default)]
pub struct Reader {
    /// Bytes of an incomplete line.
    line: Vec<u8>,
    /// `data:` lines of the event being read, joined with `\n`.
    data: Vec<u8>,
    /// Whether the event being read had a `data:` line (an empty `data:` still counts).
    has_data: bool,
    /// The `event:` field of the event being read.
    name: Vec<u8>,
}

/// One complete event.
pub struct Event<'a> {
    /// The `event:` field, empty when absent.
    pub name: &'a [u8],
    pub data: &'a [u8],
}

impl Reader {
    /// Feeds bytes; calls `on_event` for every event they complete.
    pub fn feed(&mut self, mut bytes: &[u8], on_event: &mut dyn FnMut(Event<'_>)) {
        while let Some(nl) = memchr::memchr(b'\n', bytes) {
            let (head, rest) = bytes.split_at(nl);
            bytes = &rest[1..];
            if self.line.is_empty() {
                self.line_done(head, on_event);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(head);
                self.line_done(&line, on_event);
                line.clear();
                self.line = line;
            }
        }
        self.line.extend_from_slice(bytes);
    }

    /// True when no partial line or event is pending (the stream ended on an event boundary).
    pub fn is_idle(&self) -> bool {
        self.line.is_empty() && !self.has_data
    }

    fn line_done(&mut self, line: &[u8], on_event: &mut dyn FnMut(Event<'_>)) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if self.has_data {
                on_event(Event { name: &self.name, data: &self.data });
            }
            self.data.clear();
            self.name.clear();
            self.has_data = false;
            return;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(0) => return, // a comment
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &b""[..]),
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => {
                self.name.clear();
                self.name.extend_from_slice(value);
            }
            _ => {} // `id:`, `retry:`: nothing a translator needs
        }
    }
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
            });
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
        r.feed(b"data: x\n", &mut |_| {});
        assert!(!r.is_idle());
        r.feed(b"\n", &mut |_| {});
        assert!(r.is_idle());
        r.feed(b"data", &mut |_| {});
        assert!(!r.is_idle());
    }
}
