//! Masking secrets in the source text that diagnostics quote.
//!
//! A diagnostic shows the line it is about, and that line may hold a key (a too-short client
//! key, a typo next to `api_key:`, a URL with a password). Before anything is rendered, the
//! values of secret-named keys (`key`, `token`, `password`, `secret`, and names ending in
//! `_key`, `_token`, `_password`, `_secret`, such as `api_key` and `zrok_share_token`) and the
//! userinfo of URLs are replaced by `****`; spans are moved to match, so carets still point at
//! the same token. Masking is by syntax, so it also covers lines the decoder never understood.

use std::ops::Range;

/// What replaces a secret.
pub const MASK: &str = "****";

/// Source text with its secrets masked, and the way back from original offsets.
pub struct Masked {
    pub text: String,
    /// Replaced ranges of the original, in order, without overlaps.
    cuts: Vec<Range<usize>>,
    /// For each cut, the total change in length up to and including it.
    shift: Vec<isize>,
}

impl Masked {
    pub fn new(source: &str) -> Self {
        let mut cuts = secret_values(source);
        cuts.extend(url_userinfo(source, 0));
        cuts.sort_by_key(|r| (r.start, std::cmp::Reverse(r.end)));
        let mut kept: Vec<Range<usize>> = Vec::with_capacity(cuts.len());
        for c in cuts {
            match kept.last_mut() {
                Some(last) if c.start < last.end => last.end = last.end.max(c.end),
                _ => kept.push(c),
            }
        }
        let mut text = String::with_capacity(source.len());
        let mut shift = Vec::with_capacity(kept.len());
        let (mut from, mut total) = (0, 0isize);
        for c in &kept {
            text.push_str(&source[from..c.start]);
            text.push_str(MASK);
            from = c.end;
            total += MASK.len() as isize - c.len() as isize;
            shift.push(total);
        }
        text.push_str(&source[from..]);
        Self { text, cuts: kept, shift }
    }

    /// Where an original offset lands in the masked text (inside a cut: the mask's start, or
    /// its end for the end of a span).
    pub fn offset(&self, at: usize, is_end: bool) -> usize {
        let i = self.cuts.partition_point(|c| c.end <= at);
        let before = if i == 0 { 0 } else { self.shift[i - 1] };
        let moved = (at as isize + before).max(0) as usize;
        match self.cuts.get(i) {
            Some(c) if c.start < at => {
                let start = (c.start as isize + before).max(0) as usize;
                if is_end { start + MASK.len() } else { start }
            }
            _ => moved,
        }
    }

    pub fn span(&self, span: &Range<usize>) -> Range<usize> {
        let start = self.offset(span.start, false);
        start..self.offset(span.end, true).max(start)
    }
}

/// `text` with the userinfo of every URL masked (for messages that quote a URL).
pub fn mask_urls(text: &str) -> std::borrow::Cow<'_, str> {
    let cuts = url_userinfo(text, 0);
    if cuts.is_empty() {
        return text.into();
    }
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for c in cuts {
        out.push_str(&text[from..c.start]);
        out.push_str(MASK);
        from = c.end;
    }
    out.push_str(&text[from..]);
    out.into()
}

/// Whether a key's name says its value is a credential.
pub fn is_secret_key(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["key", "token", "password", "secret"].contains(&name.as_str())
        || ["_key", "_token", "_password", "_secret", "-key", "-token"].iter().any(|s| name.ends_with(s))
}

/// The `user:password` part of every `scheme://user:password@host` in `text`, offset by `base`.
fn url_userinfo(text: &str, base: usize) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = memchr::memmem::find(&bytes[from..], b"://") {
        let start = from + at + 3;
        let end = bytes[start..]
            .iter()
            // Only what surely ends it: a password typed with characters a URL may not hold
            // raw (`?`, `#`, `<`, a comma) is still a password, and masking a little more
            // than the userinfo of a URL that is no URL costs nothing.
            .position(|&b| matches!(b, b'/' | b'"' | b'\'') || b.is_ascii_whitespace())
            .map_or(bytes.len(), |n| start + n);
        if let Some(userinfo) = bytes[start..end].iter().rposition(|&b| b == b'@') {
            out.push(base + start..base + start + userinfo);
        }
        // Search on from just after `://`: the authority may end at the `/` of another URL
        // (`http://http://user:pw@host`).
        from = start;
    }
    out
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Where a value that follows a secret key goes on after its first line.
enum Open {
    /// Lines indented deeper than this column (a block scalar, a plain scalar's continuation,
    /// or a value that starts on the next line).
    Deeper(usize),
    /// Until this closing quote.
    Quote(u8),
}

/// The ranges of every value of a secret-named key.
fn secret_values(source: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut open: Option<Open> = None;
    let mut line_start = 0;
    for line in source.split_inclusive(['\n']) {
        let base = line_start;
        line_start += line.len();
        let content = line.trim_end_matches(['\n', '\r']);
        let bytes = content.as_bytes();
        let mut from = 0;
        match open.take() {
            Some(Open::Deeper(col)) => {
                let indent = bytes.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
                if indent == bytes.len() || indent > col {
                    if indent < bytes.len() {
                        out.push(base + indent..base + bytes.len());
                    }
                    open = Some(Open::Deeper(col));
                    continue;
                }
            }
            Some(Open::Quote(q)) => match closing_quote(bytes, 0, q) {
                Some(end) => {
                    // As on the first line: text after the closing quote means a broken line.
                    let rest = content[end + 1..].trim_start();
                    if !(rest.is_empty() || rest.starts_with(['#', ',', '}', ']'])) {
                        out.push(base..base + bytes.len());
                        continue;
                    }
                    if end > 0 {
                        out.push(base..base + end);
                    }
                    from = end + 1;
                }
                None => {
                    if !bytes.is_empty() {
                        out.push(base..base + bytes.len());
                    }
                    open = Some(Open::Quote(q));
                    continue;
                }
            },
            None => {}
        }
        let flow_before = |at: usize| bytes[..at].iter().any(|&b| b == b'{' || b == b'[');
        let mut i = from;
        let mut quoted_until = 0;
        let mut in_comment = false;
        while i < bytes.len() {
            if matches!(bytes[i], b'"' | b'\'') && i >= quoted_until && starts_scalar(bytes, i) {
                // Inside a quoted scalar a `#` is text. Names are still looked at: a line
                // broken by a stray quote must not hide the key after it.
                quoted_until = closing_quote(bytes, i + 1, bytes[i]).map_or(bytes.len(), |e| e + 1);
                i += 1;
                continue;
            }
            if bytes[i] == b'#' && i >= quoted_until && (i == 0 || bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') {
                // Comments are read too: a commented-out key is still a key.
                in_comment = true;
            }
            if !is_name_byte(bytes[i]) || (i > 0 && is_name_byte(bytes[i - 1])) {
                i += 1;
                continue;
            }
            let name_start = i;
            while i < bytes.len() && is_name_byte(bytes[i]) {
                i += 1;
            }
            let name = &content[name_start..i];
            let mut j = i;
            if name_start > 0
                && matches!(bytes[name_start - 1], b'"' | b'\'')
                && bytes.get(j) == Some(&bytes[name_start - 1])
            {
                j += 1;
            }
            while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
                j += 1;
            }
            if bytes.get(j) != Some(&b':') || !is_secret_key(name) {
                continue;
            }
            j += 1;
            if j < bytes.len() && !matches!(bytes[j], b' ' | b'\t') {
                continue;
            }
            while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
                j += 1;
            }
            let in_flow = in_comment || flow_before(name_start);
            let key_col = content[..name_start].chars().count();
            match bytes.get(j) {
                Some(b'|' | b'>') if !in_flow => {
                    // A block scalar's header holds indicators (`|-`, `>2+`) and maybe a
                    // comment; anything else after it is a broken value that may be the secret.
                    let header =
                        j + 1 + bytes[j + 1..].iter().take_while(|b| matches!(b, b'0'..=b'9' | b'+' | b'-')).count();
                    let rest = content[header..].trim_start();
                    let spaced = rest.len() < content.len() - header;
                    if !(rest.is_empty() || (spaced && rest.starts_with('#'))) {
                        out.push(base + j + 1..base + bytes.len());
                    }
                    open = Some(Open::Deeper(key_col));
                    i = bytes.len();
                }
                None | Some(b'#') => {
                    if !in_flow {
                        open = Some(Open::Deeper(key_col));
                    }
                    i = bytes.len();
                }
                Some(&q @ (b'"' | b'\'')) => match closing_quote(bytes, j + 1, q) {
                    Some(end) => {
                        // Anything but a comment or the next flow item after the closing quote
                        // means the line is broken (say, a quote deleted by mistake); what
                        // follows may be the secret, so the rest of the line goes.
                        let rest = content[end + 1..].trim_start();
                        let clean =
                            rest.is_empty() || rest.starts_with('#') || (in_flow && rest.starts_with([',', '}', ']']));
                        if !clean {
                            out.push(base + j + 1..base + bytes.len());
                            break;
                        }
                        if end > j + 1 {
                            out.push(base + j + 1..base + end);
                        }
                        i = end + 1;
                    }
                    None => {
                        out.push(base + j + 1..base + bytes.len().max(j + 1));
                        open = Some(Open::Quote(q));
                        i = bytes.len();
                    }
                },
                Some(_) => {
                    let stop = |b: u8| in_flow && matches!(b, b',' | b'}' | b']');
                    let mut end = j;
                    while end < bytes.len()
                        && !stop(bytes[end])
                        && !(bytes[end] == b'#' && matches!(bytes[end - 1], b' ' | b'\t'))
                    {
                        end += 1;
                    }
                    // A flow collection closed right there must be followed by more closers,
                    // the next item or a comment; anything else means a broken line, whose
                    // rest may be the secret (`{key: ]sk-…}`), so the rest of the line goes.
                    if end < bytes.len() && matches!(bytes[end], b'}' | b']') {
                        let after = content[end..].trim_start_matches(['}', ']', ' ', '\t']);
                        if !(after.is_empty() || after.starts_with([',', '#'])) {
                            out.push(base + j..base + bytes.len());
                            break;
                        }
                    }
                    let trimmed = j + content[j..end].trim_end().len();
                    if trimmed > j {
                        out.push(base + j..base + trimmed);
                    }
                    if !in_flow {
                        open = Some(Open::Deeper(key_col));
                    }
                    i = end;
                }
            }
        }
    }
    out
}

/// Whether a quote at `at` opens a quoted scalar: it starts the line's content or follows an
/// indicator (`:`, `-`, `?`, `[`, `{`, `,`).
fn starts_scalar(bytes: &[u8], at: usize) -> bool {
    bytes[..at]
        .iter()
        .rev()
        .find(|&&b| b != b' ' && b != b'\t')
        .is_none_or(|b| matches!(b, b':' | b'-' | b'?' | b'[' | b'{' | b','))
}

/// The index of the quote that closes a scalar opened before `from` (`\"` escapes in double
/// quotes, `''` in single quotes).
fn closing_quote(bytes: &[u8], from: usize, q: u8) -> Option<usize> {
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if q == b'"' => i += 2,
            b if b == q && q == b'\'' && bytes.get(i + 1) == Some(&b'\'') => i += 2,
            b if b == q => return Some(i),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(source: &str) -> String {
        Masked::new(source).text
    }

    #[test]
    fn values_of_secret_keys_are_masked_in_every_style() {
        let cases = [
            ("key: sk-gw-plain # note\n", "key: **** # note\n"),
            (
                "# old: {key: sk-commented-out}\n  #   token: \"tok-commented\"\n  deeper: x\n",
                "# old: {key: ****}\n  #   token: \"****\"\n  deeper: x\n",
            ),
            ("  api_key: \"sk-live-quoted\"\n", "  api_key: \"****\"\n"),
            ("- {name: a, key: 'sk-flow', allowed_models: [x]}\n", "- {name: a, key: '****', allowed_models: [x]}\n"),
            ("- {name: a, key: sk-flow2}\n", "- {name: a, key: ****}\n"),
            ("- {name: a, key: ]sk-broken}\n", "- {name: a, key: ****\n"),
            ("[{key: sk-a}, {key: sk-b}] # c\n", "[{key: ****}, {key: ****}] # c\n"),
            ("token: abc\nzrok_share_token: zzz\n", "token: ****\nzrok_share_token: ****\n"),
            ("\"key\": sk-quoted-key\n", "\"key\": ****\n"),
            ("key: |\n  sk-block\n  more\nname: x\n", "key: |\n  ****\n  ****\nname: x\n"),
            ("key: >-2 # c\n  sk-folded\nname: x\n", "key: >-2 # c\n  ****\nname: x\n"),
            ("  token: >sk-after-the-indicator\"\n", "  token: >****\n"),
            ("token: |+#sk-no-comment\n", "token: |****\n"),
            ("key:\n  sk-next-line\nname: x\n", "key:\n  ****\nname: x\n"),
            ("key: \"sk-multi\n  line\" # c\n", "key: \"****\n****\" # c\n"),
            (
                "keys_file: k.yaml\nkey_sha256: abc\nmonkey: banana\n",
                "keys_file: k.yaml\nkey_sha256: abc\nmonkey: banana\n",
            ),
        ];
        for (source, want) in cases {
            assert_eq!(masked(source), want, "{source:?}");
        }
    }

    #[test]
    fn url_userinfo_is_masked() {
        assert_eq!(masked("base_url: http://user:pw@host:1/v1\n"), "base_url: http://****@host:1/v1\n");
        assert_eq!(masked("u: [\"https://a@b\", http://c]\n"), "u: [\"https://****@b\", http://c]\n");
        assert_eq!(mask_urls("invalid URL `http://u:p@h:x`"), "invalid URL `http://****@h:x`");
        assert_eq!(mask_urls("no url here"), "no url here");
        assert_eq!(mask_urls("http://<u:p?w#d@h: 1"), "http://****@h: 1", "characters a URL may not hold raw");
        assert_eq!(mask_urls("<http://u:pw@h>, `x`"), "<http://****@h>, `x`");
        assert_eq!(mask_urls("http://localhost:http://u:pw@h:1"), "http://localhost:http://****@h:1");
        assert_eq!(mask_urls("http://http://u:pw@h"), "http://http://****@h");
    }

    #[test]
    fn spans_follow_the_mask() {
        let src = "key: sk-gw-0123456789abcdef # c\nname: x\n";
        let m = Masked::new(src);
        let value = 5..src.find(" #").unwrap();
        assert_eq!(&m.text[m.span(&value)], MASK);
        let name = src.find("name").unwrap();
        assert_eq!(&m.text[m.span(&(name..name + 4))], "name");
        assert_eq!(m.span(&(7..9)), 5..9, "a span inside a secret covers the mask");
    }
}
