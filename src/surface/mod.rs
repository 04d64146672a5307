//! The rest of the OpenAI-compatible surface: `/v1/audio/*`, `/v1/images/*`, `/v1/rerank`,
//! `/v1/moderations` (and, with `unknown_paths: forward`, any other `/v1/*` path) reach an
//! OpenAI-compatible upstream as the client sent them — method, path, query, content type and
//! body bytes — routed by the body's `model` (a JSON field, or a `multipart/form-data` field
//! for uploads), with the same keys, ACLs, pools, failover, fallbacks, limits and metrics as
//! chat. Only the `model` value is replaced when a route, alias or fallback names another.

pub mod multipart;

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderValue, Method, header};
use multipart::Field;

use crate::error::ApiError;
use crate::request;

/// Whether `path` is one of the surface endpoints the gateway serves without configuration.
pub fn known(path: &str) -> bool {
    path.starts_with("/v1/audio/")
        || path.starts_with("/v1/images/")
        || matches!(path, "/v1/rerank" | "/v1/moderations")
}

/// Whether `path` stays where it says when an upstream (or a proxy in front of it) resolves
/// it: no `.` or `..` segment, also percent-encoded, and no encoded `/` or `\\` that could
/// make one. The client's path is appended to the endpoint's base URL as it is.
pub fn safe_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || path.contains('\\') {
        return false;
    }
    let decoded = lower.replace("%2e", ".");
    !decoded.split('/').any(|segment| segment == "." || segment == "..")
}

/// How the client sent its request, to send it on the same way.
pub struct Raw {
    pub method: Method,
    /// The client's path and query, appended to the endpoint's base URL.
    pub path_and_query: String,
    pub content_type: Option<HeaderValue>,
    pub accept: Option<HeaderValue>,
    form: Form,
}

enum Form {
    Json,
    /// `multipart/form-data` with this boundary.
    Multipart(String),
    /// Anything else (no body, or a body the gateway does not read).
    Opaque,
}

impl Raw {
    pub fn new(parts: &http::request::Parts) -> Self {
        let content_type = parts.headers.get(header::CONTENT_TYPE).cloned();
        let text = content_type.as_ref().and_then(|v| v.to_str().ok()).unwrap_or_default();
        let form = match multipart::boundary(text) {
            Some(b) => Form::Multipart(b.to_owned()),
            None if text.split(';').next().is_some_and(|t| t.trim().to_ascii_lowercase().ends_with("json")) => {
                Form::Json
            }
            None => Form::Opaque,
        };
        Self {
            method: parts.method.clone(),
            path_and_query: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned()),
            content_type,
            accept: parts.headers.get(header::ACCEPT).cloned(),
            form,
        }
    }

    pub fn is_json(&self) -> bool {
        matches!(self.form, Form::Json)
    }

    /// The model the body names, if any, and whether the client asked for an event stream
    /// (`stream: true`, as a JSON field or a form field).
    pub fn read(&self, body: &[u8]) -> Result<(Option<String>, bool), ApiError> {
        match &self.form {
            Form::Json if body.iter().all(u8::is_ascii_whitespace) => Ok((None, false)),
            Form::Json => {
                let parsed = request::parse(body)?;
                let stream = parsed.is_stream();
                Ok((parsed.model.map(Cow::into_owned), stream))
            }
            Form::Multipart(boundary) => {
                let stream = matches!(multipart::field(body, boundary, "stream"), Field::One(span) if body[span.clone()].trim_ascii() == b"true");
                let model = match multipart::field(body, boundary, "model") {
                    Field::Absent => None,
                    Field::Repeated => {
                        return Err(ApiError::bad_request("invalid_model", "the form has more than one `model` field"));
                    }
                    Field::One(span) => match std::str::from_utf8(&body[span]) {
                        Ok(m) => Some(m.trim().to_owned()).filter(|m| !m.is_empty()),
                        Err(_) => {
                            return Err(ApiError::bad_request(
                                "invalid_model",
                                "the form's `model` field is not UTF-8 text",
                            ));
                        }
                    },
                };
                Ok((model, stream))
            }
            Form::Opaque => Ok((None, false)),
        }
    }

    /// The body with its model set to `model` (unchanged when it already is, or names none).
    pub fn body_for(&self, body: &Bytes, model: &str) -> Result<Bytes, ApiError> {
        Ok(match &self.form {
            Form::Json if body.iter().all(u8::is_ascii_whitespace) => body.clone(),
            Form::Json => {
                let parsed = request::parse(body)?;
                match parsed.model.as_deref() == Some(model) {
                    true => body.clone(),
                    false => Bytes::from(request::with_model(body, &parsed, model)),
                }
            }
            Form::Multipart(boundary) => match multipart::field(body, boundary, "model") {
                Field::One(span) if &body[span.clone()] != model.as_bytes() => {
                    let mut out = Vec::with_capacity(body.len() + model.len());
                    out.extend_from_slice(&body[..span.start]);
                    out.extend_from_slice(model.as_bytes());
                    out.extend_from_slice(&body[span.end..]);
                    Bytes::from(out)
                }
                _ => body.clone(),
            },
            Form::Opaque => body.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(content_type: &str) -> Raw {
        let req =
            http::Request::post("/v1/audio/transcriptions?x=1").header("content-type", content_type).body(()).unwrap();
        Raw::new(&req.into_parts().0)
    }

    #[test]
    fn a_forms_model_is_read_and_replaced_and_the_file_kept() {
        let r = raw("multipart/form-data; boundary=xyz");
        assert_eq!(r.path_and_query, "/v1/audio/transcriptions?x=1");
        let body = Bytes::from_static(b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\nRIFF\xff\r\n--xyz\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nstt\r\n--xyz\r\nContent-Disposition: form-data; name=\"stream\"\r\n\r\ntrue\r\n--xyz--\r\n");
        assert_eq!(r.read(&body).unwrap(), (Some("stt".to_owned()), true));
        let out = r.body_for(&body, "whisper-large-v3").unwrap();
        assert_eq!(r.read(&out).unwrap().0.as_deref(), Some("whisper-large-v3"));
        assert_eq!(out.len(), body.len() + "whisper-large-v3".len() - 3);
        assert!(out.starts_with(&body[..60]), "the file part is untouched");
    }

    #[test]
    fn paths_that_climb_out_are_refused() {
        assert!(safe_path("/v1/audio/speech"));
        assert!(safe_path("/v1/files/file-abc.jsonl"));
        for bad in
            ["/v1/audio/../../slots/0", "/v1/./x", "/v1/%2e%2E/admin", "/v1/a%2Fb", "/v1/a%5cb", "/v1/a\\..", "/v1/.."]
        {
            assert!(!safe_path(bad), "{bad}");
        }
    }

    #[test]
    fn json_and_opaque_bodies() {
        let r = raw("application/json");
        let body = Bytes::from_static(br#"{"model":"tts-1","input":"hi","voice":"alloy"}"#);
        assert_eq!(r.read(&body).unwrap(), (Some("tts-1".to_owned()), false));
        assert_eq!(
            r.body_for(&body, "kokoro").unwrap(),
            Bytes::from_static(br#"{"model":"kokoro","input":"hi","voice":"alloy"}"#)
        );
        assert!(r.read(b"[1]").is_err(), "a JSON body must be an object");
        assert_eq!(r.read(b"").unwrap(), (None, false));
        let o = raw("application/octet-stream");
        assert_eq!(o.read(b"{\"model\":\"x\"}").unwrap(), (None, false));
    }
}
