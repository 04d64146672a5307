//! The upstream's answer on its way to the client: relayed as bytes when both sides speak the
//! same dialect, translated as it streams, or read whole and translated. Whatever fails here
//! is answered in the client's dialect and recorded in the request's log before the log
//! moves into the response body (which writes it when the body is done).

use bytes::Bytes;
use http::{Response, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::relay::{HoldLast, Relay};
use super::scan::{Check, JsonEnd};
use super::strip::UsageStrip;
use super::{Answer, strip_hop_by_hop};
use crate::access_log::AccessLog;
use crate::body::{Body, event_bytes, json_bytes, no_buffering};
use crate::dialect::convert::{Conversion, Whole};
use crate::dialect::replay;
use crate::dialect::sse::Ending;
use crate::error::ApiError;
use crate::queue;
use crate::state::Live;

pub async fn respond(answer: Answer, conversion: &Conversion, live: &Live, mut log: AccessLog) -> Response<Body> {
    let Answer { response, permits } = answer;
    let idle = live.plan.server.idle_stream_timeout;
    let max_event = live.plan.server.max_event_bytes;
    let status = response.status();
    let mut out = if let Some(coding) = encoded(response.headers()) {
        // Asked for none (`Accept-Encoding: identity`): bytes the gateway cannot read (usage,
        // end, translation), nor end with an error event the client could read.
        log.error_type = Some("bad_response".into());
        let e = ApiError::bad_answer(format!("the upstream sent a `{coding}`-encoded answer, though asked for none"));
        log.failed(&e, conversion.client)
    } else if conversion.passthrough() {
        relay(response, idle, max_event, conversion, log).await
    } else if status.is_success() && conversion.stream && is_event_stream(response.headers()) {
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::CONTENT_LENGTH);
        no_buffering(&mut parts.headers);
        let body = Relay::new(body, idle, Some(conversion.client), log).translated(conversion.translator(max_event));
        Response::from_parts(parts, body.boxed())
    } else {
        match whole(response, conversion, idle, max_event, &mut log).await {
            Ok(resp) => resp,
            Err(e) => log.failed(&e, conversion.client),
        }
    };
    // The answer goes out on the client's connection, in its HTTP version (hyper answers an
    // HTTP/1.0 client in HTTP/1.0 itself): an upstream that answers in HTTP/1.0, as Python's
    // `http.server` does, must not make it `HTTP/1.0` and close a keep-alive connection.
    *out.version_mut() = http::Version::HTTP_11;
    queue::hold(out, permits)
}

/// Reads the whole answer (bounded in time and size) and translates it.
async fn whole(
    response: Response<Incoming>,
    conversion: &Conversion,
    idle: std::time::Duration,
    max_bytes: usize,
    log: &mut AccessLog,
) -> Result<Response<Body>, ApiError> {
    let (mut head, mut body) = response.into_parts();
    strip_hop_by_hop(&mut head.headers);
    let status = head.status;
    let bytes = read(&mut body, idle, max_bytes).await?;
    // Only the metrics use it (tokens per second).
    if log.metrics {
        log.generation = crate::usage::generation(&bytes[bytes.len().saturating_sub(4096)..]);
    }
    let Whole { status, body: out, tokens } = conversion.whole(status, &bytes)?;
    log.status = status.as_u16();
    log.tokens = tokens;
    // An upstream that ignored `stream`: its (translated, so valid) answer is replayed as the
    // events the client asked for, unless it is too large to replay at a bounded cost.
    let events = (conversion.stream && status.is_success())
        .then(|| replay::events(conversion.client, &out, conversion.usage_chunk()))
        .flatten();
    let resp = match events {
        Some(events) => event_bytes(head, status, events),
        None => json_bytes(head, status, out),
    };
    log.sent(&resp);
    Ok(resp)
}

/// Whether a passed-through answer is one to replay: a successful JSON answer to a streaming
/// request (from a server that ignores `stream`) whose length is within what a replay may cost
/// and within `max_bytes`. An answer without a length, or a larger one, is relayed as it comes:
/// the gateway never holds a passed-through body of unknown size. The length is the one the
/// body is read by, not the `Content-Length` header (which a chunked body overrides).
fn replayable(head: &http::response::Parts, body: &Incoming, conversion: &Conversion, max_bytes: usize) -> bool {
    use hyper::body::Body as _;
    conversion.stream
        && conversion.dialect_answer
        && head.status.is_success()
        && media_type(&head.headers).is_some_and(json_type)
        && body.size_hint().exact().is_some_and(|n| n <= replay::MAX_BYTES.min(max_bytes) as u64)
}

/// A passed-through answer to a streaming request, read whole ([`replayable`]): replayed as
/// the events the client asked for when it is an answer in its dialect, else sent as it came.
/// Read whole, one that breaks off is a clear error rather than a short body.
async fn replayed(
    mut head: http::response::Parts,
    mut body: Incoming,
    conversion: &Conversion,
    idle: std::time::Duration,
    max_bytes: usize,
    log: &mut AccessLog,
) -> Result<Response<Body>, ApiError> {
    let bytes = read(&mut body, idle, max_bytes).await?;
    // The bytes read set the length the client is told, whatever the upstream's header said.
    head.headers.remove(header::CONTENT_LENGTH);
    log.tail.push(&bytes);
    let resp = match replay::events(conversion.client, &bytes, conversion.usage_chunk()) {
        Some(events) => {
            let status = head.status;
            event_bytes(head, status, events)
        }
        None => Response::from_parts(head, crate::body::full(bytes)),
    };
    log.sent(&resp);
    Ok(resp)
}

/// A body read to its end, bounded in size and in silence.
async fn read(body: &mut Incoming, idle: std::time::Duration, max_bytes: usize) -> Result<Bytes, ApiError> {
    // The first piece is kept as it is (most answers arrive in one), later ones are copied.
    let mut first: Option<Bytes> = None;
    let mut bytes = Vec::new();
    loop {
        // Silence, not the whole read, is bounded by the idle timeout: a large answer may
        // take longer than that to arrive. What has arrived is taken without arming a timer.
        let frame = match futures_util::FutureExt::now_or_never(body.frame()) {
            Some(frame) => Ok(frame),
            None => tokio::time::timeout(idle, body.frame()).await,
        };
        match frame {
            Ok(None) => break,
            Ok(Some(Ok(frame))) => {
                let Ok(data) = frame.into_data() else { continue };
                let held = first.as_ref().map_or(0, Bytes::len);
                if held + bytes.len() + data.len() > max_bytes {
                    return Err(ApiError::bad_answer(format!(
                        "the upstream's answer is larger than {max_bytes} bytes (limits.max_event_bytes)"
                    )));
                }
                match first.take() {
                    None if bytes.is_empty() => first = Some(data),
                    held => {
                        bytes.extend_from_slice(held.as_deref().unwrap_or_default());
                        bytes.extend_from_slice(&data);
                    }
                }
            }
            Ok(Some(Err(_))) => {
                return Err(ApiError::bad_gateway("the upstream's answer broke off before it was complete"));
            }
            Err(_) => {
                return Err(ApiError::gateway_timeout(format!(
                    "the upstream sent nothing for {} s before its answer was complete (timeouts.idle_stream_seconds)",
                    idle.as_secs()
                )));
            }
        }
    }
    Ok(first.unwrap_or_else(|| bytes.into()))
}

/// Builds the client response around the upstream one: status and end-to-end headers kept
/// (a whole answer to a streaming request may be replayed as events: [`replayable`]).
async fn relay(
    resp: Response<Incoming>,
    idle: std::time::Duration,
    max_event: usize,
    conversion: &Conversion,
    mut log: AccessLog,
) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    // A `Content-Length` the body is not read by (one sent with `Transfer-Encoding`, which
    // overrides it) would frame the client's copy wrongly: the length hyper reads by is the one
    // passed on, or none.
    if hyper::body::Body::size_hint(&body).exact().is_none() {
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    let sse = is_event_stream(&parts.headers);
    if !sse && replayable(&parts, &body, conversion, max_event) {
        return match replayed(parts, body, conversion, idle, max_event, &mut log).await {
            Ok(resp) => resp,
            Err(e) => log.failed(&e, conversion.client),
        };
    }
    if sse {
        no_buffering(&mut parts.headers);
        if conversion.client == crate::dialect::Dialect::Messages {
            log.tail = crate::usage::Tail::with_head();
        }
        // An event stream goes out with its length open, whatever the upstream declared: each
        // event is sent as it comes (a fixed length would make the gateway hold the last piece
        // back, so a stream that breaks falls short of it), a stream that breaks ends with an
        // error event, and one whose usage chunk is taken out is shorter than the upstream's.
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    // An event stream (its length open, above) that breaks ends with an error event in the
    // client's dialect. Any other body that ends without a whole answer (the HTTP layer cannot
    // tell when the upstream ends it by closing, or declares too short a length) fails, its
    // last piece held back so that the client sees it fall short.
    let mut body = Relay::new(body, idle, sse.then_some(conversion.client), log);
    if sse {
        if conversion.strip_usage {
            body = body.stripped(UsageStrip::new(max_event));
        }
        if conversion.dialect_answer {
            body = body.checked(Check::Events(conversion.client, Ending::default()));
        }
        return Response::from_parts(parts, body.boxed());
    }
    if is_json(&parts.headers) {
        return Response::from_parts(parts, HoldLast::new(body.checked(Check::Json(JsonEnd::default()))).boxed());
    }
    Response::from_parts(parts, body.boxed())
}

/// The content coding of an answer, unless it is none (`identity`).
fn encoded(headers: &http::HeaderMap) -> Option<String> {
    let coding = headers.get(header::CONTENT_ENCODING)?;
    let text = String::from_utf8_lossy(coding.as_bytes()).trim().to_owned();
    (!text.is_empty() && !text.eq_ignore_ascii_case("identity")).then(|| text.chars().take(40).collect())
}

/// A response's media type, without its parameters (compared in any case: media types are
/// case-insensitive).
fn media_type(headers: &http::HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::CONTENT_TYPE)?;
    Some(value.as_bytes().split(|&b| b == b';').next().unwrap_or_default().trim_ascii())
}

/// Whether a response is an event stream.
fn is_event_stream(headers: &http::HeaderMap) -> bool {
    media_type(headers).is_some_and(|media_type| media_type.eq_ignore_ascii_case(b"text/event-stream"))
}

/// Whether a response says its body is JSON (`application/json`, `…+json`), or says nothing.
fn is_json(headers: &http::HeaderMap) -> bool {
    media_type(headers).is_none_or(json_type)
}

/// `application/json`, `…+json`.
fn json_type(media_type: &[u8]) -> bool {
    media_type.len() >= 4 && media_type[media_type.len() - 4..].eq_ignore_ascii_case(b"json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_told_by_the_media_type_in_any_case() {
        let with = |value: Option<&'static str>| {
            let mut headers = http::HeaderMap::new();
            if let Some(v) = value {
                headers.insert(header::CONTENT_TYPE, http::HeaderValue::from_static(v));
            }
            is_json(&headers)
        };
        for yes in
            [None, Some("application/json"), Some("Application/JSON; charset=utf-8"), Some("application/problem+json")]
        {
            assert!(with(yes), "{yes:?}");
        }
        for no in [Some("text/plain"), Some("text/event-stream"), Some("text/plain; note=json"), Some("son")] {
            assert!(!with(no), "{no:?}");
        }
    }

    #[test]
    fn an_event_stream_is_told_by_the_media_type_in_any_case() {
        let with = |value: &'static str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, http::HeaderValue::from_static(value));
            is_event_stream(&headers)
        };
        for yes in ["text/event-stream", "Text/Event-Stream; charset=utf-8", " text/event-stream ;x=y"] {
            assert!(with(yes), "{yes:?}");
        }
        for no in ["text/event-streams", "application/json", "text/plain; note=text/event-stream", ""] {
            assert!(!with(no), "{no:?}");
        }
        assert!(!is_event_stream(&http::HeaderMap::new()));
    }
}
