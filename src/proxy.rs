//! The request pipeline: route table → auth → body → model/route → provider → endpoint →
//! upstream → response relayed as it arrives.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use llm_gateway_compiler::keywords::{Message, RequestView};
use llm_gateway_compiler::plan::ProviderKind;
use tracing::{info, warn};

use crate::access_log::AccessLog;
use crate::body::{Body, json, no_buffering};
use crate::error::ApiError;
use crate::pool::{EndpointTransport, Operation};
use crate::providers::anthropic;
use crate::queue::{self, Gate};
use crate::relay::Relay;
use crate::state::{Live, Shared};
use crate::{auth, models, request, route, trace};

pub async fn handle(req: Request<Incoming>, shared: Shared) -> Result<Response<Body>, Infallible> {
    let live = shared.load_full();
    let mut log = AccessLog::new(req.method(), req.uri().path());
    log.metrics = live.plan.metrics.enabled;
    let result = dispatch(req, &live, &mut log).await;
    Ok(match result {
        Ok(resp) => resp,
        Err(e) => {
            log.status = e.status.as_u16();
            if log.error.is_none() {
                log.error = Some(e.message.clone());
            }
            e.response()
        }
    })
}

async fn dispatch(req: Request<Incoming>, live: &Arc<Live>, log: &mut AccessLog) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let read = method == Method::GET || method == Method::HEAD;
    let op = match path.as_str() {
        "/health" if read => {
            log.status = 200;
            return Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"})));
        }
        "/v1/models" if read => {
            let key = auth::authenticate(&live.plan, req.headers())?;
            log.key = key.map(|k| k.name.clone());
            log.status = 200;
            return Ok(models::list(live, key));
        }
        "/metrics" if read && live.plan.metrics.enabled => {
            log.status = 200;
            let mut resp = Response::new(crate::body::full(crate::metrics::render()));
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
            return Ok(resp);
        }
        "/metrics" if live.plan.metrics.enabled => {
            return Err(ApiError::method_not_allowed(&method, &path, "GET, HEAD"));
        }
        "/health" | "/v1/models" => return Err(ApiError::method_not_allowed(&method, &path, "GET, HEAD")),
        "/v1/chat/completions" => Operation::Chat,
        "/v1/embeddings" => Operation::Embeddings,
        "/v1/completions" => Operation::Completions,
        _ => return Err(ApiError::not_found(&path)),
    };
    if method != Method::POST {
        return Err(ApiError::method_not_allowed(&method, &path, "POST"));
    }
    let key = auth::authenticate(&live.plan, req.headers())?;
    log.key = key.map(|k| k.name.clone());
    let (parts, body) = req.into_parts();
    let body = read_body(&parts.headers, body, live.plan.server.max_body_bytes).await?;
    let parsed = request::parse(&body)?;
    log.stream = parsed.is_stream();
    log.model_asked = parsed.model.clone();
    if op == Operation::Chat && !parsed.has_messages() {
        return Err(ApiError::bad_request("messages_required", "messages is required"));
    }
    let routing_started = std::time::Instant::now();
    let texts = std::sync::OnceLock::new();
    let view = || RequestView {
        messages: texts
            .get_or_init(|| trace::role_texts(&parsed))
            .iter()
            .map(|(role, text): &(String, String)| Message { role, text: text.as_str().into() })
            .collect(),
        max_tokens: parsed.probe.max_tokens,
        has_tools: parsed.has_tools(),
    };
    let target = route::resolve(&live.plan, &live.pools, parsed.model.as_deref(), &view).await?;
    if live.plan.routing.is_some() {
        // The anchor's decision line, so its log tooling keeps working.
        info!(
            "semantic routing: key='{}' method={} route='{}' model='{}' confidence={:.2} latency={}ms cascade=[{}]",
            log.key.as_deref().unwrap_or(""),
            target.method,
            target.route.as_deref().unwrap_or(""),
            target.model,
            target.confidence,
            routing_started.elapsed().as_millis(),
            target.cascade.join(",")
        );
    }
    log.model_sent = Some(target.model.clone());
    log.route = target.route.clone();
    log.provider = Some(target.provider.label());
    if log.metrics {
        log.metric_model = Some(live.model_label(&target.model));
        if live.plan.routing.is_some() {
            let route = target.route.as_deref().unwrap_or("");
            crate::metrics::get().routing_decisions.with_label_values(&[target.method, route]).inc();
        }
    }
    if let Some(k) = key {
        if !k.allows_model(&target.model) {
            return Err(ApiError::forbidden(
                "model_not_allowed",
                format!("model '{}' is not allowed for this API key", target.model),
            ));
        }
        if let Some(r) = target.route.as_deref().filter(|r| !k.allows_route(r)) {
            return Err(ApiError::forbidden(
                "route_not_allowed",
                format!("route '{r}' is not allowed for this API key"),
            ));
        }
    }
    let pool = live.pool(target.provider).ok_or_else(|| {
        ApiError::bad_request(
            "provider_not_configured",
            format!(
                "model '{}' is served by provider '{}', which is not configured",
                target.model,
                target.provider.config_name()
            ),
        )
    })?;
    let anthropic = target.provider == ProviderKind::Anthropic;
    if anthropic && op != Operation::Chat {
        return Err(ApiError::bad_request("unsupported_operation", format!("Anthropic does not serve {}", op.path())));
    }
    let credential = pool.credential.header().map_err(|why| ApiError::internal("provider_credentials_missing", why))?;
    if live.plan.tracing.enabled && op == Operation::Chat {
        trace::log_request(&parsed, &target.model, live.plan.tracing.max_content_length);
    }
    let stream = parsed.is_stream();
    let (upstream_body, asked) = if anthropic {
        let (bytes, asked) = anthropic::request::translate(&body, &target.model)?;
        (Bytes::from(bytes), Some(asked))
    } else if parsed.model.as_deref() == Some(target.model.as_str()) {
        (body.clone(), None)
    } else {
        (Bytes::from(request::with_model(&body, &parsed, &target.model)), None)
    };
    drop(parsed);

    let key_gate = key.and_then(|k| live.key_gates.get(&k.name).cloned());
    let queued = key_gate.is_some() || live.plan.server.max_concurrent.is_some();
    let job =
        Job { live: live.clone(), kind: target.provider, op, body: upstream_body, stream, asked, credential, key_gate };
    let mut resp = if stream && queued {
        queue::streaming(job, std::mem::replace(log, AccessLog::detached())).await?
    } else {
        attempt(&job, log, &mut |_| {}).await?
    };
    if let Some(route) = target.route.as_deref().and_then(|r| HeaderValue::from_str(r).ok()) {
        resp.headers_mut().insert("x-llm-gateway-route", route);
    }
    Ok(resp)
}

/// Everything needed to send a request upstream, owned so a queued stream can finish it in
/// its own task.
pub(crate) struct Job {
    pub live: Arc<Live>,
    pub kind: ProviderKind,
    pub op: Operation,
    pub body: Bytes,
    pub stream: bool,
    pub asked: Option<anthropic::request::Asked>,
    pub credential: Option<(http::HeaderName, HeaderValue)>,
    pub key_gate: Option<Arc<Gate>>,
}

/// Waits for the key's and each endpoint's concurrency slots (reporting queue positions to
/// `on_queue`), then tries the endpoints in order; the slots are held until the response
/// body is finished.
pub(crate) async fn attempt(
    job: &Job,
    log: &mut AccessLog,
    on_queue: &mut (dyn FnMut(usize) + Send),
) -> Result<Response<Body>, ApiError> {
    let live = &job.live;
    let pool = live.pool(job.kind).ok_or_else(|| ApiError::internal("no_provider", "provider vanished"))?;
    let (op, stream, anthropic) = (job.op, job.stream, job.kind == ProviderKind::Anthropic);
    let limits = &live.plan.server;
    let mut permits = Vec::new();
    if let Some(gate) = &job.key_gate {
        permits.push(queue::admit(gate, "key", limits.queue_timeout, on_queue).await?);
    }
    let timeout = limits.first_byte_timeout;
    let mut last_failure = None;
    let mut tried = 0;
    for index in pool.attempt_order() {
        let endpoint = &pool.endpoints[index];
        let EndpointTransport::Http(target) = &endpoint.transport else {
            last_failure = Some(ApiError::not_implemented("zrok was not started in this process"));
            continue;
        };
        tried += 1;
        log.endpoint = Some(endpoint.name.clone());
        let slot = match limits.max_concurrent {
            Some(_) => Some(queue::admit(&endpoint.gate, &endpoint.name, limits.queue_timeout, on_queue).await?),
            None => None,
        };
        let mut up = Request::builder()
            .method(Method::POST)
            .uri(target.uris[op as usize].clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, if stream { "text/event-stream" } else { "application/json" })
            .header(header::USER_AGENT, concat!("llm-gateway/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(job.body.clone()))
            .map_err(|e| {
                ApiError::internal("bad_upstream_request", format!("cannot build the upstream request: {e}"))
            })?;
        if let Some((name, value)) = &job.credential {
            up.headers_mut().insert(name.clone(), value.clone());
        }
        if anthropic {
            up.headers_mut().insert("anthropic-version", HeaderValue::from_static(anthropic::VERSION));
        }
        let started = tokio::time::Instant::now();
        let who = format!("endpoint '{}' of provider '{}'", endpoint.name, pool.kind.config_name());
        // No response byte yet: the request can safely move to the next endpoint. Once a
        // response (any status) has started, it is the answer.
        let failure = match tokio::time::timeout(timeout, target.client.request(up)).await {
            Ok(Ok(resp)) => {
                log.ttfb_ms = Some(started.elapsed().as_millis());
                log.status = resp.status().as_u16();
                if resp.status().as_u16() >= 400 {
                    log.error_type = Some(format!("http_{}", resp.status().as_u16()));
                }
                let log = std::mem::replace(log, AccessLog::detached());
                permits.extend(slot);
                let resp = match &job.asked {
                    Some(asked) => from_anthropic(resp, asked, live, log).await?,
                    None => relay(resp, live, log),
                };
                return Ok(queue::hold(resp, permits));
            }
            Err(_) => ApiError::gateway_timeout(format!(
                "{who} did not answer within {} s (timeouts.first_byte_seconds)",
                timeout.as_secs()
            )),
            Ok(Err(e)) => {
                warn!(endpoint = %endpoint.name, error = ?e, "upstream request failed");
                let what = if e.is_connect() { "could not connect to" } else { "failed before answering:" };
                ApiError::bad_gateway(format!("{what} {who}"))
            }
        };
        pool.set_healthy(index, false);
        log.error_type =
            Some(if failure.status == http::StatusCode::GATEWAY_TIMEOUT { "timeout" } else { "unreachable" }.into());
        last_failure = Some(failure);
    }
    let failure = last_failure.unwrap_or_else(|| ApiError::internal("no_endpoints", "provider has no endpoints"));
    if tried <= 1 {
        return Err(failure);
    }
    Err(ApiError::unavailable(format!(
        "every endpoint of provider '{}' failed ({tried} tried); last: {}",
        pool.kind.config_name(),
        failure.message
    )))
}

/// Anthropic's answer in OpenAI's format: a stream translated as it arrives, or the whole
/// message (or error) read and translated.
async fn from_anthropic(
    resp: Response<Incoming>,
    asked: &anthropic::request::Asked,
    live: &Live,
    mut log: AccessLog,
) -> Result<Response<Body>, ApiError> {
    let status = resp.status();
    let sse = is_event_stream(resp.headers());
    if status.is_success() && asked.stream && sse {
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::CONTENT_LENGTH);
        no_buffering(&mut parts.headers);
        let translator = anthropic::stream::StreamTranslator::new(asked);
        let body = Relay::new(body, live.plan.server.idle_stream_timeout, true, log).translated(translator);
        return Ok(Response::from_parts(parts, body.boxed()));
    }
    let read = tokio::time::timeout(live.plan.server.idle_stream_timeout, resp.into_body().collect()).await;
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        _ => return Err(ApiError::bad_gateway("Anthropic's response broke off before it was complete")),
    };
    log.body_bytes = bytes.len() as u64;
    let (status, value) = if status.is_success() {
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(msg) => (status, anthropic::response::completion(&msg)),
            Err(_) => return Err(ApiError::bad_gateway("Anthropic answered with a body that is not JSON")),
        }
    } else {
        anthropic::response::error(status, &bytes)
    };
    log.status = status.as_u16();
    log.tokens = value["usage"]["prompt_tokens"].as_u64().zip(value["usage"]["completion_tokens"].as_u64());
    Ok(json(status, &value))
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/event-stream"))
}

/// Builds the client response around the upstream one: status and end-to-end headers kept.
fn relay(resp: Response<Incoming>, live: &Live, log: AccessLog) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let sse = is_event_stream(&parts.headers);
    if sse {
        no_buffering(&mut parts.headers);
    }
    // A stream that breaks can only end with an error event when its length is open; a
    // fixed-length body that breaks is cut short, which the client sees from the length.
    let error_event = sse && !parts.headers.contains_key(header::CONTENT_LENGTH);
    let body = Relay::new(body, live.plan.server.idle_stream_timeout, error_event, log);
    Response::from_parts(parts, body.boxed())
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    for name in named {
        headers.remove(name.as_str());
    }
    for h in ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"] {
        headers.remove(h);
    }
}

async fn read_body(headers: &HeaderMap, body: Incoming, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(ApiError::too_large(limit)),
        Err(e) => Err(ApiError::bad_request("body_read_error", format!("could not read the request body: {e}"))),
    }
}
