//! Just enough of `multipart/form-data` (RFC 7578) to find one field: the `model` of an audio
//! transcription or an image edit, so the request can be routed and its model replaced while
//! every other byte (the file above all) passes through untouched. One forward scan, no copy.

use std::ops::Range;

/// The `boundary` parameter of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Option<&str> {
    let mut params = content_type.split(';');
    if !params.next()?.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params
        .find_map(|p| {
            let (key, value) = p.split_once('=')?;
            key.trim().eq_ignore_ascii_case("boundary").then(|| value.trim().trim_matches('"'))
        })
        // RFC 2046: 1 to 70 characters.
        .filter(|b| !b.is_empty() && b.len() <= 70)
}

/// A form field, by name.
#[derive(Debug, PartialEq, Eq)]
pub enum Field {
    Absent,
    /// Where its value sits in the body.
    One(Range<usize>),
    /// More than one part has the name: servers differ on which they take (Starlette the
    /// last, others the first), so the gateway takes none.
    Repeated,
}

/// The field `name` of a form with `boundary`. A form the scan cannot follow to its end (not
/// well formed) has no fields.
pub fn field(body: &[u8], boundary: &str, name: &str) -> Field {
    let between = format!("\r\n--{boundary}");
    // The first delimiter opens the body, or follows a preamble and its CRLF.
    let Some(mut at) = (if body.starts_with(&between.as_bytes()[2..]) {
        Some(between.len() - 2)
    } else {
        delimiter(body, 0, between.as_bytes()).map(|(_, after)| after)
    }) else {
        return Field::Absent;
    };
    let mut found = Field::Absent;
    loop {
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            return found;
        }
        let Some(headers_start) = line_end(rest).map(|n| at + n) else { return Field::Absent };
        let Some(headers_len) = memchr::memmem::find(&body[headers_start..], b"\r\n\r\n") else {
            return Field::Absent;
        };
        let headers = &body[headers_start..headers_start + headers_len];
        let content = headers_start + headers_len + 4;
        let Some((end, after)) = delimiter(body, content, between.as_bytes()) else { return Field::Absent };
        if names(headers) == Some(name.as_bytes()) {
            found = match found {
                Field::Absent => Field::One(content..end),
                _ => Field::Repeated,
            };
        }
        at = after;
    }
}

/// The next delimiter at or after `from`: where it starts (its CRLF) and where the text after
/// `--boundary` begins. Only `CRLF--boundary` followed by `--` or by optional padding and a
/// CRLF is one; the same bytes followed by anything else are content.
fn delimiter(body: &[u8], mut from: usize, between: &[u8]) -> Option<(usize, usize)> {
    loop {
        let start = from + memchr::memmem::find(&body[from..], between)?;
        let after = start + between.len();
        let rest = &body[after..];
        let padding = rest.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
        if rest.starts_with(b"--") || rest[padding..].starts_with(b"\r\n") {
            return Some((start, after));
        }
        from = start + 1;
    }
}

/// The length of the rest of the delimiter line (transport padding, then CRLF).
fn line_end(rest: &[u8]) -> Option<usize> {
    memchr::memmem::find(rest, b"\r\n").map(|i| i + 2)
}

/// The `name` parameter of a part's `Content-Disposition: form-data` header.
fn names(headers: &[u8]) -> Option<&[u8]> {
    headers.split(|&b| b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = memchr::memchr(b':', line)?;
        if !line[..colon].eq_ignore_ascii_case(b"content-disposition") {
            return None;
        }
        line[colon + 1..].split(|&b| b == b';').skip(1).find_map(|param| {
            let eq = memchr::memchr(b'=', param)?;
            let key = param[..eq].trim_ascii();
            let value = param[eq + 1..].trim_ascii();
            key.eq_ignore_ascii_case(b"name")
                .then(|| value.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(value))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A form as the OpenAI SDK (httpx) writes it: a file part with a filename, then fields.
    fn form() -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"model.wav\"\r\nContent-Type: audio/wav\r\n\r\n");
        body.extend_from_slice(b"RIFF\x00\x01name=\"model\"\r\n--b0undar\x00");
        body.extend_from_slice(b"\r\n--b0undary\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1");
        body.extend_from_slice(b"\r\n--b0undary\r\ncontent-disposition: form-data; name=language\r\n\r\nen");
        body.extend_from_slice(b"\r\n--b0undary--\r\n");
        body
    }

    #[test]
    fn finds_the_field_after_a_file_that_looks_like_one() {
        let body = form();
        let Field::One(span) = field(&body, "b0undary", "model") else { panic!() };
        assert_eq!(&body[span], b"whisper-1");
        let Field::One(span) = field(&body, "b0undary", "language") else { panic!() };
        assert_eq!(&body[span], b"en", "unquoted name, lowercase header");
        assert_eq!(field(&body, "b0undary", "prompt"), Field::Absent);
        assert_eq!(field(&body, "other", "model"), Field::Absent);
        assert_eq!(field(b"", "b0undary", "model"), Field::Absent);
    }

    #[test]
    fn a_repeated_field_and_a_delimiter_lookalike_in_a_file_are_not_taken() {
        let twice = b"--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ngpt-4o-transcribe\r\n--b--\r\n";
        assert_eq!(field(twice, "b", "model"), Field::Repeated);
        // `\r\n--bX` inside the file is content: the model field it seems to open is not one.
        let hidden = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nxx\r\n--bX\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nsneaky\r\n--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--b--\r\n";
        let Field::One(span) = field(hidden, "b", "model") else { panic!("{:?}", field(hidden, "b", "model")) };
        assert_eq!(&hidden[span], b"whisper-1");
        let preamble = b"ignored --b text\r\n--b\r\nContent-Disposition: form-data; name=model\r\n\r\nm\r\n--b--";
        assert!(matches!(field(preamble, "b", "model"), Field::One(_)));
    }

    #[test]
    fn every_cut_of_a_form_is_safe() {
        let body = form();
        // Until the form's end arrives, its model field cannot be known.
        let end = body.windows(9).position(|w| w == b"whisper-1").unwrap() + 9 + 2;
        for cut in 0..end {
            assert_eq!(field(&body[..cut], "b0undary", "model"), Field::Absent, "cut at {cut}");
        }
    }

    #[test]
    fn reads_the_boundary_from_the_content_type() {
        assert_eq!(boundary("multipart/form-data; boundary=abc"), Some("abc"));
        assert_eq!(boundary("Multipart/Form-Data;charset=utf-8; Boundary=\"a b\""), Some("a b"));
        assert_eq!(boundary("application/json"), None);
        assert_eq!(boundary("multipart/form-data"), None);
        assert_eq!(boundary(&format!("multipart/form-data; boundary={}", "x".repeat(71))), None);
    }
}
