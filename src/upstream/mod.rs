//! The one way anything reaches an upstream: client traffic, the classifier, embeddings and
//! health probes all build their requests with [`request`], and everything but the probes
//! (which ask one endpoint each) goes through [`forward`] — the only code that orders a
//! pool's endpoints, takes queue slots, applies the first-byte timeout, fails over and
//! records the attempt in the request's log. What happens to the answer is the caller's:
//! [`respond`] for client traffic (relayed or translated), a collected body for the gateway's
//! own calls.

pub mod relay;
pub mod respond;
pub mod retry;
pub mod scan;
pub mod strip;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tracing::warn;

use llm_gateway_compiler::plan::RetryOn;

use crate::access_log::AccessLog;
use crate::error::ApiError;
use crate::pool::{EndpointTransport, Pool};
use crate::providers::{Credential, Operation, adapter};
use crate::queue::{self, Gate, Permit};

/// Told each new queue position while a request waits for a slot.
pub type OnQueue<'a> = dyn FnMut(usize) + Send + 'a;

/// One request to send to a pool.
pub struct Outgoing<'a> {
    pub op: Operation,
    pub body: Bytes,
    pub stream: bool,
    /// The client's headers, when the client speaks the upstream's dialect (version and beta
    /// headers pass through).
    pub client_headers: Option<&'a HeaderMap>,
    /// A request of the rest of the surface: sent with the client's method, path and content
    /// type instead of `op`'s.
    pub raw: Option<&'a crate::surface::Raw>,
}

/// How long to wait, and for which slots.
#[derive(Clone)]
pub struct Policy {
    /// For the upstream's response headers, per endpoint tried.
    pub first_byte: Duration,
    /// Endpoint slots (`limits.max_concurrent_per_endpoint`) and how long to queue for one;
    /// `None` for the gateway's own calls, which are not counted.
    pub slots: Option<Duration>,
}

/// A request [`forward`] could not get answered, and whether the failure is one that
/// `retry.on` may retry or fall back on (`None`: it never does, e.g. a full queue).
pub struct Failure {
    pub error: ApiError,
    pub cause: Option<RetryOn>,
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Self { error, cause: None }
    }
}

/// A response that has started, with the slots its body must hold until it is finished.
pub struct Answer {
    pub response: Response<Incoming>,
    pub permits: Vec<Permit>,
}

/// An upstream request to endpoint `index` of `pool`: method, URI, the endpoint's
/// [`Preset`] headers, the adapter's, the request's id.
pub fn request(
    pool: &Pool,
    index: usize,
    method: Method,
    uri: http::Uri,
    body: Bytes,
    stream: bool,
    client_headers: Option<&HeaderMap>,
) -> Result<Request<Full<Bytes>>, ApiError> {
    pool.credential.header().map_err(|why| ApiError::internal("provider_credentials_missing", why))?;
    let has_body = !body.is_empty();
    // Built in place rather than through `Request::builder`, which moves the whole request
    // through a `Result` at every step.
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    let headers = req.headers_mut();
    *headers = pool.presets[index].headers[usize::from(stream)].clone();
    if !has_body {
        headers.remove(header::CONTENT_TYPE);
    }
    adapter(pool.kind).headers(client_headers, headers);
    // The request's id, so the upstream's logs correlate with ours.
    if let Some(id) = crate::request_id::current() {
        headers.insert(crate::request_id::HEADER, id.header().clone());
    }
    Ok(req)
}

/// The headers every request to one endpoint carries, whatever it asks: built once per plan
/// (a pool's), since cloning them costs well under half of inserting them one by one, on
/// every request.
pub struct Preset {
    /// By whether the request streams (its `Accept`).
    headers: [HeaderMap; 2],
}

impl Preset {
    pub fn new(credential: &Credential, transport: &EndpointTransport) -> Self {
        // Host set here from the endpoint's URL (as the client would), so hyper does not
        // format one for each request. Every request's URI is that URL and a path.
        let url = match transport {
            EndpointTransport::Http(target) => target.base.parse::<http::Uri>().ok(),
            EndpointTransport::Zrok => None,
        };
        let host = url.as_ref().and_then(http::Uri::authority).and_then(|a| HeaderValue::from_str(a.as_str()).ok());
        let headers = [false, true].map(|stream| {
            // An index with room for the adapter's headers and the request's id too: a clone
            // keeps the index's size, so adding them never rehashes (the list of entries, cloned
            // to its length, still grows once).
            let mut headers = HeaderMap::with_capacity(9);
            let agent = concat!("llm-gateway/", env!("CARGO_PKG_VERSION"));
            headers.insert(header::USER_AGENT, HeaderValue::from_static(agent));
            let accept = if stream { "text/event-stream" } else { "application/json" };
            headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
            // The gateway reads every answer (its usage, its end, a translation): without
            // this header an upstream may compress it (RFC 9110 lets it), and the bytes would
            // be unreadable.
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
            if let Some(host) = host.clone() {
                headers.insert(header::HOST, host);
            }
            // Taken out of a request without a body.
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            if let Ok(Some((name, value))) = credential.header() {
                headers.insert(name.clone(), value.clone());
            }
            headers
        });
        Self { headers }
    }
}

/// Takes a slot of each gate in order (the gateway's, the key's), waiting in their queues.
pub async fn admit_all(
    gates: &[(&Arc<Gate>, &str)],
    max_queue_wait: Duration,
    on_queue: &mut OnQueue<'_>,
) -> Result<Vec<Permit>, ApiError> {
    let mut permits = Vec::with_capacity(gates.len());
    for (gate, scope) in gates {
        permits.push(queue::admit(gate, scope, max_queue_wait, on_queue).await?);
    }
    Ok(permits)
}

/// Sends `out` to the pool: each endpoint in the pool's order (its slot first, when limited)
/// until one answers. A request moves on only while no response byte has arrived; once a
/// response (any status) has started, it is the answer (whether its status is worth a retry
/// or a fallback is [`retry`]'s call).
pub async fn forward(
    pool: &Pool,
    out: &Outgoing<'_>,
    policy: &Policy,
    log: &mut AccessLog,
    on_queue: &mut OnQueue<'_>,
) -> Result<Answer, Failure> {
    let mut permits = Vec::new();
    let mut last_failure = None;
    let mut cause = None;
    let mut tried = 0;
    for index in pool.attempt_order() {
        let endpoint = &pool.endpoints[index];
        let EndpointTransport::Http(target) = &endpoint.transport else {
            last_failure = Some(ApiError::not_implemented("zrok was not started in this process"));
            continue;
        };
        let uri = match out.raw {
            Some(raw) => format!("{}{}", target.base, raw.path_and_query).parse::<http::Uri>().ok(),
            None => target.uri(out.op).cloned(),
        };
        let Some(uri) = uri else {
            return Err(ApiError::bad_request(
                "unsupported_operation",
                format!("provider '{}' does not serve this operation", pool.kind.config_name()),
            )
            .into());
        };
        tried += 1;
        log.endpoint = Some(endpoint.name.clone());
        let slot = match policy.slots {
            Some(wait) => Some(queue::admit(&endpoint.gate, &endpoint.name, wait, on_queue).await?),
            None => None,
        };
        let method = out.raw.map_or(Method::POST, |r| r.method.clone());
        let mut req = request(pool, index, method, uri, out.body.clone(), out.stream, out.client_headers)?;
        if let Some(raw) = out.raw {
            let headers = req.headers_mut();
            for (name, value) in [(header::CONTENT_TYPE, &raw.content_type), (header::ACCEPT, &raw.accept)] {
                match value {
                    Some(v) => headers.insert(name, v.clone()),
                    None => headers.remove(name),
                };
            }
        }
        let started = tokio::time::Instant::now();
        let who = || format!("endpoint '{}' of provider '{}'", endpoint.name, pool.kind.config_name());
        let failure = match tokio::time::timeout_at(started + policy.first_byte, target.client().request(req)).await {
            // A dialect's answer is never a redirect: the base_url is not where the server is
            // (an `http://` URL a proxy sends on to `https://`), and the `Location` would show
            // the client an address it must not see, nor could use.
            Ok(Ok(response)) if out.raw.is_none() && response.status().is_redirection() => {
                ApiError::bad_answer(format!(
                    "{} answered with a redirect ({}): is its base_url where the server is?",
                    who(),
                    response.status().as_u16()
                ))
            }
            Ok(Ok(response)) => {
                log.ttfb_ms = Some(started.elapsed().as_millis());
                log.status = response.status().as_u16();
                if response.status().as_u16() >= 400 {
                    log.error_type = Some(format!("http_{}", response.status().as_u16()));
                }
                permits.extend(slot);
                return Ok(Answer { response, permits });
            }
            Err(_) => {
                cause = Some(RetryOn::Timeout);
                ApiError::gateway_timeout(format!(
                    "{} did not answer within {} s (timeouts.first_byte_seconds)",
                    who(),
                    policy.first_byte.as_secs()
                ))
            }
            Ok(Err(e)) => {
                cause = Some(RetryOn::Connect);
                warn!(endpoint = %endpoint.name, error = %crate::transport::http::describe(&e), "upstream request failed");
                if crate::transport::http::is_not_http(&e) {
                    ApiError::bad_answer(format!("{} sent an answer that could not be read as HTTP", who()))
                } else {
                    let what = if e.is_connect() { "could not connect to" } else { "failed before answering:" };
                    ApiError::bad_gateway(format!("{what} {}", who()))
                }
            }
        };
        pool.set_healthy(index, false);
        let kind = match failure.code {
            "upstream_timeout" => "timeout",
            "upstream_bad_response" => "bad_response",
            _ => "unreachable",
        };
        log.error_type = Some(kind.into());
        last_failure = Some(failure);
    }
    let failure = last_failure.unwrap_or_else(|| ApiError::internal("no_endpoints", "provider has no endpoints"));
    if tried <= 1 {
        return Err(Failure { error: failure, cause });
    }
    let error = ApiError::unavailable(format!(
        "every endpoint of provider '{}' failed ({tried} tried); last: {}",
        pool.kind.config_name(),
        failure.message
    ));
    Err(Failure { error, cause })
}

/// The gateway's own call (embeddings, classifier prompts): JSON in, the first answer's
/// status and whole body out, with the same failover as client traffic. Callers bound the
/// total time.
pub async fn call_json(pool: &Pool, op: Operation, body: Vec<u8>) -> Result<(StatusCode, Bytes), String> {
    let out = Outgoing { op, body: Bytes::from(body), stream: false, client_headers: None, raw: None };
    // The caller's own timeout bounds the whole call; this only stops one stuck endpoint
    // from holding the failover forever.
    let policy = Policy { first_byte: Duration::from_secs(300), slots: None };
    let mut log = AccessLog::detached();
    let answer = forward(pool, &out, &policy, &mut log, &mut |_| {}).await.map_err(|f| f.error.message)?;
    let status = answer.response.status();
    let endpoint = log.endpoint.take().unwrap_or_default();
    match answer.response.into_body().collect().await {
        Ok(body) => Ok((status, body.to_bytes())),
        Err(e) => Err(format!("endpoint '{endpoint}' broke off its answer: {e}")),
    }
}

/// `<what> <status>: <the answer's first 500 bytes>`, as the Go gateway words provider errors.
pub fn status_error(what: &str, status: StatusCode, answer: &[u8]) -> String {
    let text = String::from_utf8_lossy(&answer[..answer.len().min(500)]);
    format!("{what} {}: {text}", status.as_u16())
}

/// Removes hop-by-hop headers (and those `Connection` names) from a relayed response.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One look at the few names present instead of a lookup per hop-by-hop name: most answers
    // have none of them, a stream one (`Transfer-Encoding`).
    let mut present = [false; HOPS];
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present[i] = true;
        }
    }
    if present[0] {
        // `Connection`'s usual values, `keep-alive` and `close`, name no other header: nothing
        // is collected (or allocated) for them.
        let named: Vec<http::HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|token| !token.eq_ignore_ascii_case("keep-alive") && !token.eq_ignore_ascii_case("close"))
            .filter_map(|token| http::HeaderName::from_bytes(token.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (name, present) in HOP_BY_HOP.iter().zip(present) {
        if present {
            headers.remove(name);
        }
    }
}

const HOPS: usize = 7;

/// Typed names: removing by `&str` parses each name again on every response. `Connection`
/// first.
const HOP_BY_HOP: [http::HeaderName; HOPS] = [
    header::CONNECTION,
    http::HeaderName::from_static("keep-alive"),
    http::HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, X-Hop"),
            ("connection", "Close"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("x-hop", "1"),
            ("retry-after", "7"),
            ("x-request-id", "up-1"),
        ] {
            headers.append(http::HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        strip_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(http::HeaderName::as_str).collect();
        assert_eq!(left, ["retry-after", "x-request-id"]);
    }
}
