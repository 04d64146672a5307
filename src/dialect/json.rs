//! A checking JSON reader over borrowed text: one pass, the members a caller wants as their raw
//! text, everything else checked and skipped, the reader allocating nothing. The probe and every
//! translation (requests, whole answers, streams) read with it; the free functions below read
//! and write the raw values it hands over (a string's text, a count, an object's members, a
//! list's elements). serde_json's derives spent about 18 instructions a byte on Chat chunks,
//! most of it setting up each short string and matching keys; this reader spends about 12.5,
//! most of it per token rather than per byte.
//!
//! It accepts the JSON texts serde_json accepts (RFC 8259), except three: the whole text must
//! be UTF-8 (serde_json lets other bytes pass inside a string it skips), nesting stops at 128
//! levels (serde_json skips deeper values), and a key is matched as written, so a key spelled
//! with escapes (`"\u0069d"`) is not the key it spells unless the caller asks [`key`] (what a
//! client sends is read so; an upstream's answer as written). Strings keep their escapes, lone
//! surrogates included; [`unescaped`] reads one.

use std::borrow::Cow;

/// The text is not JSON.
#[derive(Debug, PartialEq, Eq)]
pub struct Invalid;

type Read<T> = Result<T, Invalid>;

/// Deeper texts are refused rather than read with unbounded recursion (serde_json builds no
/// deeper value either, though it skips deeper ones).
const MAX_DEPTH: u32 = 128;

pub struct Reader<'a> {
    /// `source` as bytes.
    text: &'a [u8],
    source: &'a str,
    at: usize,
    depth: u32,
}

impl<'a> Reader<'a> {
    /// Reads `data` as one JSON value with `read`; only whitespace may follow it, and all of it
    /// must be UTF-8.
    pub fn document<T>(data: &'a [u8], read: impl FnOnce(&mut Self) -> Read<T>) -> Read<T> {
        Self::checked(std::str::from_utf8(data).map_err(|_| Invalid)?, read)
    }

    /// [`document`](Self::document) of text known to be UTF-8 (a raw value another reader
    /// returned, read again).
    pub fn checked<T>(source: &'a str, read: impl FnOnce(&mut Self) -> Read<T>) -> Read<T> {
        let mut reader = Reader { text: source.as_bytes(), source, at: 0, depth: 0 };
        let value = read(&mut reader)?;
        match reader.peek() {
            None => Ok(value),
            Some(_) => Err(Invalid),
        }
    }

    /// The next byte that is not whitespace, not taken: what the next value is (`{`, `[`, `"`,
    /// `n`…).
    pub fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.text.get(self.at) {
            if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(b);
            }
            self.at += 1;
        }
        None
    }

    fn expect(&mut self, b: u8) -> Read<()> {
        match self.peek() == Some(b) {
            true => {
                self.at += 1;
                Ok(())
            }
            false => Err(Invalid),
        }
    }

    /// Takes a `null` if one is next.
    pub fn null(&mut self) -> Read<bool> {
        if self.peek() != Some(b'n') {
            return Ok(false);
        }
        self.literal(b"null")?;
        Ok(true)
    }

    /// The members of the object that is next (`member` reads or skips each value), or
    /// nothing for `null`. Anything else is [`Invalid`].
    pub fn object(&mut self, member: impl FnMut(&'a [u8], &mut Self) -> Read<()>) -> Read<()> {
        match self.null()? {
            true => Ok(()),
            false => self.members(member),
        }
    }

    /// [`object`](Self::object) where an object is due: `null` is [`Invalid`] too.
    pub fn members(&mut self, mut member: impl FnMut(&'a [u8], &mut Self) -> Read<()>) -> Read<()> {
        self.list(b'{', b'}', |r| {
            if r.peek() != Some(b'"') {
                return Err(Invalid);
            }
            let key = r.string()?;
            r.expect(b':')?;
            member(key, r)
        })
    }

    /// The members of the object that is next (`member` reads or skips each value); any other
    /// value is checked and skipped, where the other readers would refuse it.
    pub fn if_object(&mut self, member: impl FnMut(&'a [u8], &mut Self) -> Read<()>) -> Read<()> {
        match self.peek() {
            Some(b'{') => self.members(member),
            _ => self.skip(),
        }
    }

    /// The object that is next read into a `T` member by member, or `None` for `null`.
    pub fn optional<T: Default>(
        &mut self,
        mut member: impl FnMut(&mut T, &'a [u8], &mut Self) -> Read<()>,
    ) -> Read<Option<T>> {
        if self.null()? {
            return Ok(None);
        }
        let mut value = T::default();
        self.members(|key, r| member(&mut value, key, r))?;
        Ok(Some(value))
    }

    /// The object that is next read into a `T` member by member; any other value is checked,
    /// skipped and `None` (where [`optional`](Self::optional) refuses all but `null`): for what
    /// an upstream may leave out or write oddly, such as its token counts.
    pub fn object_or_none<T: Default>(
        &mut self,
        member: impl FnMut(&mut T, &'a [u8], &mut Self) -> Read<()>,
    ) -> Read<Option<T>> {
        match self.peek() {
            Some(b'{') => self.optional(member),
            _ => self.skip().map(|_| None),
        }
    }

    /// The elements of the array that is next (`element` reads or skips each), or nothing for
    /// `null`. Anything else is [`Invalid`].
    pub fn array(&mut self, element: impl FnMut(&mut Self) -> Read<()>) -> Read<()> {
        match self.null()? {
            true => Ok(()),
            false => self.list(b'[', b']', element),
        }
    }

    /// An object or an array: `open`, then items `item` reads, separated by commas, then
    /// `close`.
    fn list(&mut self, open: u8, close: u8, mut item: impl FnMut(&mut Self) -> Read<()>) -> Read<()> {
        self.expect(open)?;
        self.enter()?;
        if self.peek() == Some(close) {
            self.at += 1;
        } else {
            loop {
                item(self)?;
                match self.peek() {
                    Some(b',') => self.at += 1,
                    Some(b) if b == close => {
                        self.at += 1;
                        break;
                    }
                    _ => return Err(Invalid),
                }
            }
        }
        self.depth -= 1;
        Ok(())
    }

    fn enter(&mut self) -> Read<()> {
        self.depth += 1;
        match self.depth > MAX_DEPTH {
            true => Err(Invalid),
            false => Ok(()),
        }
    }

    /// The next value's text, checked; `None` for `null`.
    pub fn raw(&mut self) -> Read<Option<&'a str>> {
        match self.null()? {
            true => Ok(None),
            false => self.value().map(Some),
        }
    }

    /// The next value's text, checked, `null` included.
    pub fn value(&mut self) -> Read<&'a str> {
        let start = match self.peek() {
            Some(_) => self.at,
            None => return Err(Invalid),
        };
        self.skip()?;
        self.source.get(start..self.at).ok_or(Invalid)
    }

    /// A whole number a `u64` holds; `None` for `null`. Any other value is [`Invalid`], as it
    /// is to serde's `Option<u64>`.
    pub fn u64(&mut self) -> Read<Option<u64>> {
        if self.null()? {
            return Ok(None);
        }
        let (text, start) = (self.text, self.at);
        let mut n: u64 = 0;
        let mut at = start;
        while let Some(d) = text.get(at).filter(|d| d.is_ascii_digit()) {
            n = n.checked_mul(10).and_then(|n| n.checked_add(u64::from(d - b'0'))).ok_or(Invalid)?;
            at += 1;
        }
        // Digits with no leading zero, and no fraction or exponent after them.
        let leading_zero = text.get(start) == Some(&b'0') && at > start + 1;
        if at == start || leading_zero || matches!(text.get(at), Some(b'.' | b'e' | b'E')) {
            return Err(Invalid);
        }
        self.at = at;
        Ok(Some(n))
    }

    /// The next value as a token count, which upstreams write in odd ways: a whole number,
    /// also written as a float (`10.0`); anything else (negative, fractional, beyond `u64`, a
    /// string, `null`, a list) is `None` rather than [`Invalid`], a count never being worth
    /// the answer it came in.
    pub fn count(&mut self) -> Read<Option<u64>> {
        self.value().map(number)
    }

    /// Checks the next value and steps over it.
    pub fn skip(&mut self) -> Read<()> {
        match self.peek().ok_or(Invalid)? {
            b'"' => self.string().map(|_| ()),
            b'{' => self.members(|_, r| r.skip()),
            b'[' => self.array(Self::skip),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number(),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Read<()> {
        match self.text[self.at..].starts_with(word) {
            true => {
                self.at += word.len();
                Ok(())
            }
            false => Err(Invalid),
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Read<()> {
        if self.text.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        match self.text.get(self.at) {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(Invalid),
        }
        if self.text.get(self.at) == Some(&b'.') {
            self.at += 1;
            self.one_or_more_digits()?;
        }
        if matches!(self.text.get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.text.get(self.at), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.one_or_more_digits()?;
        }
        Ok(())
    }

    fn one_or_more_digits(&mut self) -> Read<()> {
        let start = self.at;
        self.digits();
        match self.at > start {
            true => Ok(()),
            false => Err(Invalid),
        }
    }

    fn digits(&mut self) {
        while self.text.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
    }

    /// The string that is next (at its opening quote), without its quotes, escapes kept.
    /// Inlined: most strings are short keys, and a call's setup cost more than their scan
    /// (2,500 instructions per Responses stream).
    #[inline(always)]
    fn string(&mut self) -> Read<&'a [u8]> {
        let text = self.text;
        let start = self.at + 1;
        let mut at = start;
        loop {
            // Eight bytes at a time while eight remain: most strings have no byte to look at.
            while at + 8 <= text.len() {
                let marks = notable(u64::from_le_bytes(text[at..at + 8].try_into().expect("8 bytes")));
                if marks != 0 {
                    at += marks.trailing_zeros() as usize / 8;
                    break;
                }
                at += 8;
            }
            match text.get(at) {
                Some(b'"') => {
                    self.at = at + 1;
                    return Ok(&text[start..at]);
                }
                Some(b'\\') => at = escape(text, at)?,
                Some(0..0x20) | None => return Err(Invalid),
                Some(_) => at += 1,
            }
        }
    }
}

/// At a backslash in `text`: where the valid escape there ends.
fn escape(text: &[u8], at: usize) -> Read<usize> {
    match text.get(at + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(at + 2),
        Some(b'u') => match text.get(at + 2..at + 6) {
            Some(hex) if hex.iter().all(u8::is_ascii_hexdigit) => Ok(at + 6),
            _ => Err(Invalid),
        },
        _ => Err(Invalid),
    }
}

/// A member's key (as a reader hands it over, escapes kept) as it spells: unescaped when it has
/// escapes, so that `"\u006dodel"` is `model` (a key spelled so cannot slip past a reader
/// that matches keys as written; escapes that are not UTF-8 spell nothing).
#[inline]
pub fn key(raw: &[u8]) -> Cow<'_, [u8]> {
    match raw.contains(&b'\\') {
        false => Cow::Borrowed(raw),
        true => spelled(raw),
    }
}

#[cold]
fn spelled(raw: &[u8]) -> Cow<'_, [u8]> {
    let text = std::str::from_utf8(raw).ok().map(|k| format!("\"{k}\""));
    Cow::Owned(text.and_then(|t| serde_json::from_str::<String>(&t).ok()).unwrap_or_default().into_bytes())
}

/// A string value's text (checked JSON), borrowed unless it has escapes; `None` when the value
/// is not a string.
pub fn unescaped(raw: &str) -> Option<Cow<'_, str>> {
    let inner = contents(raw)?;
    match inner.contains('\\') {
        false => Some(Cow::Borrowed(inner)),
        true => serde_json::from_str(raw).ok().map(Cow::Owned),
    }
}

/// A JSON value's text as a whole number, also when written as a float (`10.0`, `1e3`): some
/// servers and clients do.
pub fn number(text: &str) -> Option<u64> {
    text.parse().ok().or_else(|| whole(text.parse().ok()?))
}

/// `n` when it is a whole number a `u64` holds (`as` would saturate).
fn whole(n: f64) -> Option<u64> {
    (n >= 0.0 && n.fract() == 0.0 && n < u64::MAX as f64).then_some(n as u64)
}

/// `value` as compact JSON text (what `Value::to_string` writes, members in the client's
/// order), borrowed when the client already wrote it without whitespace between tokens.
pub fn compact(raw: &str) -> Cow<'_, str> {
    let (mut in_string, mut escaped) = (false, false);
    let mut out = String::new();
    // Start of the text not yet copied to `out`; whitespace is ASCII, so every cut is on a
    // character boundary.
    let mut kept = 0;
    for (i, b) in raw.bytes().enumerate() {
        if in_string {
            (in_string, escaped) = (escaped || b != b'"', !escaped && b == b'\\');
        } else if b == b'"' {
            in_string = true;
        } else if b.is_ascii_whitespace() {
            out.push_str(&raw[kept..i]);
            kept = i + 1;
        }
    }
    if kept == 0 {
        return Cow::Borrowed(raw);
    }
    out.push_str(&raw[kept..]);
    Cow::Owned(out)
}

/// A raw JSON string's contents between its quotes, escapes kept; `None` for any other value.
pub fn contents(raw: &str) -> Option<&str> {
    raw.strip_prefix('"')?.strip_suffix('"')
}

/// Whether a raw value (checked text) is a list with an element.
pub fn is_nonempty_list(raw: &str) -> bool {
    raw.strip_prefix('[').is_some_and(|rest| !rest.trim_start().starts_with(']'))
}

/// An object's member as [`members`] hands it over: its key as it spells, its value raw.
pub type Member<'k, 'a> = (Cow<'k, [u8]>, &'a str);

/// The raw members of the object that is `value` (checked text), in order, their keys as they
/// spell; none when it is no object.
pub fn members(value: &str) -> Vec<Member<'_, '_>> {
    let mut members = Vec::new();
    let _ = Reader::checked(value, |r| r.if_object(|name, r| r.value().map(|v| members.push((key(name), v)))));
    members
}

/// The member `name` of an object's `members`, raw (the last of a repeated key; `null` is none).
pub fn get<'a>(members: &[Member<'_, 'a>], name: &str) -> Option<&'a str> {
    members.iter().rev().find(|(k, _)| k.as_ref() == name.as_bytes()).map(|(_, v)| *v).filter(|v| *v != "null")
}

/// Calls `f` on each element (raw) of the list that is `value` (checked text), with its index,
/// until one fails; `not_a_list` when it is no list. Elements are handed over as they are read,
/// not gathered first: a list of tiny elements must not take many times its size in memory.
pub fn each<'a, E>(
    value: &'a str,
    not_a_list: impl FnOnce() -> Result<(), E>,
    mut f: impl FnMut(usize, &'a str) -> Result<(), E>,
) -> Result<(), E> {
    if !value.starts_with('[') {
        return not_a_list();
    }
    let (mut result, mut i) = (Ok(()), 0);
    let _ = Reader::checked(value, |r| {
        r.array(|r| {
            let element = r.value()?;
            if result.is_ok() {
                result = f(i, element);
            }
            i += 1;
            Ok(())
        })
    });
    result
}

/// Whether a raw value (checked text) is a string with something in it.
pub fn is_nonempty_string(raw: &str) -> bool {
    raw.len() > 2 && raw.starts_with('"')
}

/// A blank line between paragraphs, as string contents (escaped).
pub const PARAGRAPH: &str = r"\n\n";

/// Strings' escaped contents joined by `separator` (escaped too); the only one borrowed.
pub fn joined<'a>(contents: &[&'a str], separator: &str) -> Cow<'a, str> {
    match contents {
        [one] => Cow::Borrowed(one),
        _ => Cow::Owned(contents.join(separator)),
    }
}

/// A raw value when it is a string, as written; `""` for any other value or none (where the
/// other dialect always has a string).
pub fn string_or_empty(raw: Option<&str>) -> &str {
    raw.filter(|r| r.starts_with('"')).unwrap_or(r#""""#)
}

/// Writes `,"name":value`, the value raw JSON.
pub fn member(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    out.extend_from_slice(value.as_bytes());
}

/// Writes an object's members one at a time, a comma before each but the first.
#[derive(Default)]
pub struct Object {
    started: bool,
}

impl Object {
    /// `"name":value`, the value raw JSON (or its start, the caller writing the rest).
    pub fn member(&mut self, out: &mut Vec<u8>, name: &str, value: &str) {
        if std::mem::replace(&mut self.started, true) {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        out.extend_from_slice(value.as_bytes());
    }
}

/// Writes `items` as a JSON list, each by `write`.
pub fn list<T>(out: &mut Vec<u8>, items: impl IntoIterator<Item = T>, mut write: impl FnMut(&mut Vec<u8>, T)) {
    out.push(b'[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, item);
    }
    out.push(b']');
}

/// Writes a string's `contents` (escaped, as [`contents`] gives them) as a JSON string.
pub fn quote(out: &mut Vec<u8>, contents: &str) {
    out.push(b'"');
    out.extend_from_slice(contents.as_bytes());
    out.push(b'"');
}

/// `0x0101…01`: a byte repeated over a word.
const ONES: u64 = u64::MAX / 255;

/// Bit 7 set in the first byte of `word` (little-endian) that ends or interrupts a string — a
/// quote, a backslash, a control byte — and perhaps in later bytes (a borrow can mark a
/// byte above a marked one, so only the lowest mark is exact).
fn notable(word: u64) -> u64 {
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let control = word.wrapping_sub(ONES * 0x20);
    (quote.wrapping_sub(ONES) & !quote | backslash.wrapping_sub(ONES) & !backslash | control & !word) & (ONES << 7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn checks(text: &str) -> bool {
        Reader::document(text.as_bytes(), Reader::skip).is_ok()
    }

    #[test]
    fn accepts_what_serde_json_accepts_and_refuses_the_rest() {
        for text in [
            r#"{"a":[1,-0.5e+3,true,false,null,"x\"\\\/\b\f\n\r\t\u00e9y"],"b":{}}"#,
            " [ ] ",
            "0",
            r#""Ünïcødé and 🎉, more than eight bytes""#,
        ] {
            assert!(checks(text), "{text}");
        }
        for text in [
            "",
            "{",
            r#"{"a":1,}"#,
            "[1,]",
            r#"{"a" 1}"#,
            "01",
            "1.",
            "1e",
            "-",
            "+1",
            "nul",
            "tru",
            r#""\x""#,
            r#""\u12g4""#,
            "\"tab\there\"",
            r#""unterminated"#,
            "1 2",
            "{}}",
            r#"{1:2}"#,
        ] {
            assert!(!checks(text), "{text}");
            assert!(serde_json::from_str::<serde::de::IgnoredAny>(text).is_err(), "{text}");
        }
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(checks(&deep(128)));
        assert!(!checks(&deep(129)));
        assert!(!checks(&deep(100_000)), "refused without exhausting the stack");
    }

    #[test]
    fn reads_members_raw_and_whole_numbers() {
        let text = r#" {"n": 18446744073709551615, "s":"a\"b", "o":{"k":[1]}, "z":null, "f":1.5} "#;
        let (mut n, mut s, mut o, mut z) = (None, None, None, Some("unread"));
        Reader::document(text.as_bytes(), |r| {
            r.object(|key, r| {
                match key {
                    b"n" => n = r.u64()?,
                    b"s" => s = r.raw()?,
                    b"o" => o = r.raw()?,
                    b"z" => z = r.raw()?,
                    _ => r.skip()?,
                }
                Ok(())
            })
        })
        .unwrap();
        assert_eq!((n, s, o, z), (Some(u64::MAX), Some(r#""a\"b""#), Some(r#"{"k":[1]}"#), None));
        for refused in ["18446744073709551616", "1.0", "-1", "1e2", "01", "\"1\"", "{}", ""] {
            assert_eq!(Reader::document(refused.as_bytes(), Reader::u64), Err(Invalid), "{refused}");
        }
    }

    /// A JSON-ish text: pieces of valid JSON and of everything that breaks it.
    fn jsonish() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just("[".to_owned()),
            Just("]".to_owned()),
            Just(",".to_owned()),
            Just(":".to_owned()),
            Just(" ".to_owned()),
            Just("\"k\"".to_owned()),
            Just("\"".to_owned()),
            Just("\\".to_owned()),
            Just("\\u00e9".to_owned()),
            Just("null".to_owned()),
            Just("true".to_owned()),
            "-?[0-9]{0,3}(\\.[0-9]{0,2})?([eE][+-]?[0-9]{0,2})?",
            "[a-z\u{e9}\u{1F600}\t\n]{0,12}",
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|p| p.concat())
    }

    proptest! {
        /// Same verdict as serde_json on any text, valid or not, and a value's raw text is
        /// exactly its serde_json raw text.
        #[test]
        fn agrees_with_serde_json(text in jsonish()) {
            let serde = serde_json::from_str::<&serde_json::value::RawValue>(&text).map(|r| r.get().to_owned());
            let ours = Reader::document(text.as_bytes(), Reader::raw);
            match (serde, ours) {
                (Ok(s), Ok(o)) => prop_assert_eq!(Some(s.as_str()).filter(|s| *s != "null"), o),
                (Err(_), Err(_)) => {}
                (s, o) => prop_assert!(false, "serde {:?}, ours {:?}", s, o),
            }
        }

        /// Valid JSON of every shape is read whole.
        #[test]
        fn reads_every_valid_document(value in any_json()) {
            let text = value.to_string();
            prop_assert!(checks(&text), "{}", text);
            let pretty = serde_json::to_string_pretty(&value).unwrap();
            prop_assert!(checks(&pretty), "{}", pretty);
        }
    }

    fn any_json() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(any::<String>(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
