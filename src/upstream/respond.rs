//! The upstream's answer on its way to the client: relayed as bytes when both sides speak the
//! same dialect, translated as it streams, or read whole and translated. Whatever fails here
//! is answered in the client's dialect and recorded in the request's log before the log
//! moves into the response body (which writes it when the body is done).

use http::{Response, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::relay::Relay;
use super::{Answer, is_event_stream, strip_hop_by_hop};
use crate::access_log::AccessLog;
use crate::body::{Body, json, no_buffering};
use crate::dialect::convert::Conversion;
use crate::error::ApiError;
use crate::queue;
use crate::state::Live;

/// A translated answer read whole is at most this large (a chat completion is kilobytes;
/// this only stops a broken upstream from filling memory).
const MAX_WHOLE_BYTES: usize = 64 << 20;

pub async fn respond(answer: Answer, conversion: &Conversion, live: &Live, mut log: AccessLog) -> Response<Body> {
    let Answer { response, permits } = answer;
    let idle = live.plan.server.idle_stream_timeout;
    let status = response.status();
    let out = if conversion.passthrough() {
        relay(response, idle, conversion, log)
    } else if status.is_success() && conversion.stream && is_event_stream(response.headers()) {
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::CONTENT_LENGTH);
        no_buffering(&mut parts.headers);
        let body = Relay::new(body, idle, Some(conversion.client), log).translated(conversion.translator());
        Response::from_parts(parts, body.boxed())
    } else {
        match whole(response, conversion, idle, &mut log).await {
            Ok(resp) => resp,
            Err(e) => {
                log.status = e.status.as_u16();
                log.error = Some(e.message.clone());
                e.response_in(conversion.client)
            }
        }
    };
    queue::hold(out, permits)
}

/// Reads the whole answer (bounded in time and size) and translates it.
async fn whole(
    response: Response<Incoming>,
    conversion: &Conversion,
    idle: std::time::Duration,
    log: &mut AccessLog,
) -> Result<Response<Body>, ApiError> {
    let status = response.status();
    let limited = http_body_util::Limited::new(response.into_body(), MAX_WHOLE_BYTES);
    let bytes = match tokio::time::timeout(idle, limited.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return Err(ApiError::bad_gateway(format!("the upstream's answer is larger than {MAX_WHOLE_BYTES} bytes")));
        }
        _ => return Err(ApiError::bad_gateway("the upstream's answer broke off before it was complete")),
    };
    log.body_bytes = bytes.len() as u64;
    let (status, value) = conversion.whole(status, &bytes)?;
    log.status = status.as_u16();
    log.tokens = crate::usage::of(&value);
    Ok(json(status, &value))
}

/// Builds the client response around the upstream one: status and end-to-end headers kept.
fn relay(
    resp: Response<Incoming>,
    idle: std::time::Duration,
    conversion: &Conversion,
    log: AccessLog,
) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let sse = is_event_stream(&parts.headers);
    if sse {
        no_buffering(&mut parts.headers);
    }
    // A stream that breaks can only end with an error event when its length is open; a
    // fixed-length body that breaks is cut short, which the client sees from the length.
    let errors = (sse && !parts.headers.contains_key(header::CONTENT_LENGTH)).then_some(conversion.client);
    let body = Relay::new(body, idle, errors, log);
    Response::from_parts(parts, body.boxed())
}
