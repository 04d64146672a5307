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

/// Where the value of the field `name` sits in `body`; `None` when the form has no such field
/// (or is not a well-formed form).
pub fn field(body: &[u8], boundary: &str, name: &str) -> Option<Range<usize>> {
    let open = format!("--{boundary}");
    let between = format!("\r\n--{boundary}");
    let mut at = memchr::memmem::find(body, open.as_bytes())? + open.len();
    loop {
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            return None;
        }
        let headers_start = at + line_end(rest)?;
        let headers_len = memchr::memmem::find(&body[headers_start..], b"\r\n\r\n")?;
        let headers = &body[headers_start..headers_start + headers_len];
        let content = headers_start + headers_len + 4;
        let end = content + memchr::memmem::find(&body[content..], between.as_bytes())?;
        if names(headers) == Some(name.as_bytes()) {
            return Some(content..end);
        }
        at = end + between.len();
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
        let span = field(&body, "b0undary", "model").unwrap();
        assert_eq!(&body[span], b"whisper-1");
        let span = field(&body, "b0undary", "language").unwrap();
        assert_eq!(&body[span], b"en", "unquoted name, lowercase header");
        assert_eq!(field(&body, "b0undary", "prompt"), None);
        assert_eq!(field(&body, "other", "model"), None);
        assert_eq!(field(b"", "b0undary", "model"), None);
    }

    #[test]
    fn every_cut_of_a_form_is_safe() {
        let body = form();
        for cut in 0..body.len() {
            let _ = field(&body[..cut], "b0undary", "model");
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
