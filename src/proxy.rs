//! The request pipeline: route table → auth → body → model/route → ACL → the upstream body in
//! the provider's dialect → [`upstream::forward`] → the answer relayed or translated back.

use std::convert::Infallible;
use std::sync::Arc;

use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};

use hyper::body::Incoming;
use llm_gateway_compiler::acl::KeyEntry;
use llm_gateway_compiler::keywords::{Message, RequestView};
use llm_gateway_compiler::plan::{ProviderKind, UnknownPaths};
use tracing::info;

use crate::access_log::{AccessLog, Clean};
use crate::body::{Body, json};
use crate::dialect::Dialect;
use crate::dialect::convert::{Conversion, Ingress, Prepared, prepare};
use crate::error::ApiError;
use crate::job::{self, Job, Rebuild};
use crate::providers::Operation;
use crate::request_id::RequestId;
use crate::state::{Live, Shared};
use crate::{admission, auth, models, queue, request, request_body, request_id, route, surface, trace};

pub async fn handle(req: Request<Incoming>, shared: Shared) -> Result<Response<Body>, Infallible> {
    let id = request_id::from_headers(req.headers());
    // Boxed: hyper moves the future it is given into place for every request, and `answer`'s
    // state runs to kilobytes.
    let mut resp = request_id::scope(id.clone(), Box::pin(answer(req, shared, id.clone()))).await;
    // The upstream's own id (OpenAI's, say) stays readable under another name.
    if let Some(theirs) = resp.headers_mut().insert(request_id::HEADER, id.header().clone())
        && theirs != id.header()
    {
        resp.headers_mut().insert(UPSTREAM_REQUEST_ID, theirs);
    }
    Ok(resp)
}

/// The route that served the request.
const ROUTE_HEADER: HeaderName = HeaderName::from_static("x-llm-gateway-route");

/// Where the upstream's `x-request-id` goes when the gateway's replaces it.
pub const UPSTREAM_REQUEST_ID: HeaderName = HeaderName::from_static("x-upstream-request-id");

async fn answer(req: Request<Incoming>, shared: Shared, id: RequestId) -> Response<Body> {
    let live = shared.load_full();
    let mut log = AccessLog::new(req.method(), req.uri().path());
    log.request_id = Some(id.clone());
    log.metrics = live.plan.metrics.enabled;
    let dialect = dialect_of(req.uri().path());
    log.dialect = dialect.label();
    // The key's rate-limit headers, on every response of a limited key.
    let mut limit_headers = None;
    let mut resp = match dispatch(req, &live, &mut log, &mut limit_headers).await {
        Ok(Next::Answer(resp)) => {
            log.sent(&resp);
            resp
        }
        Ok(Next::Forward(job)) => {
            let route = job.route.clone();
            let mut resp = if job.first.conversion.stream && job.queued() {
                // A task of its own, which the request's id scope does not reach: it gets one.
                let scoped = id.clone();
                let run = move |on_queue| request_id::scope(scoped, job::exchange(job, log, on_queue, id));
                queue::streaming(dialect, run).await
            } else {
                job::exchange(job, log, Box::new(|_| {}), id).await
            };
            if let Some(route) = route.as_deref().and_then(|r| HeaderValue::from_str(r).ok()) {
                resp.headers_mut().insert(ROUTE_HEADER, route);
            }
            resp
        }
        Err(e) => {
            log.status = e.status.as_u16();
            if log.error.is_none() {
                log.error = Some(e.message.clone());
            }
            let resp = e.response_in(dialect);
            log.sent(&resp);
            resp
        }
    };
    if let Some(limit_headers) = limit_headers {
        // A limited key sees its own limits, not the upstream account's behind the gateway.
        let theirs: Vec<_> = resp
            .headers()
            .keys()
            .filter(|n| n.as_str().starts_with("x-ratelimit-") || n.as_str().starts_with("anthropic-ratelimit-"))
            .cloned()
            .collect();
        for name in theirs {
            resp.headers_mut().remove(name);
        }
        for (name, value) in limit_headers {
            resp.headers_mut().insert(name, value);
        }
    }
    resp
}

/// The dialect errors are answered in, by path (before anything else is known).
fn dialect_of(path: &str) -> Dialect {
    match path {
        "/v1/messages" | "/v1/messages/count_tokens" => Dialect::Messages,
        "/v1/responses" => Dialect::Responses,
        _ => Dialect::Chat,
    }
}

enum Next {
    /// Answered by the gateway itself.
    Answer(Response<Body>),
    Forward(Box<Job>),
}

async fn dispatch(
    req: Request<Incoming>,
    live: &Arc<Live>,
    log: &mut AccessLog,
    limit_headers: &mut admission::LimitHeaders,
) -> Result<Next, ApiError> {
    // The URI's bytes are shared with the request's (a reference count, not a copy).
    let uri = req.uri().clone();
    let path = uri.path();
    let method = req.method().clone();
    let read = method == Method::GET || method == Method::HEAD;
    // Probes and scrapes are logged but not metered: a load balancer's checks would otherwise
    // swell the request rate and thin out every error ratio.
    if read && matches!(path, "/health" | "/ready" | "/metrics") {
        log.metrics = false;
    }
    let ingress = match path {
        "/health" if read => {
            log.status = 200;
            return Ok(Next::Answer(json(StatusCode::OK, &serde_json::json!({"status": "ok"}))));
        }
        "/ready" if read => {
            let (status, value) = crate::ready::response(live);
            log.status = status.as_u16();
            return Ok(Next::Answer(json(status, &value)));
        }
        "/v1/models" if read => {
            let key = auth::authenticate(&live.plan, req.headers())?;
            log.set_key(key);
            log.status = 200;
            return Ok(Next::Answer(models::list(live, key)));
        }
        "/metrics" if read && live.plan.metrics.enabled => {
            log.status = 200;
            let mut resp = Response::new(crate::body::full(crate::metrics::render()));
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
            return Ok(Next::Answer(resp));
        }
        "/metrics" if live.plan.metrics.enabled => {
            return Err(ApiError::method_not_allowed(&method, path, "GET, HEAD"));
        }
        "/health" | "/ready" | "/v1/models" => return Err(ApiError::method_not_allowed(&method, path, "GET, HEAD")),
        p if p.starts_with("/v1/models/") => {
            if !read {
                return Err(ApiError::method_not_allowed(&method, path, "GET, HEAD"));
            }
            let key = auth::authenticate(&live.plan, req.headers())?;
            log.set_key(key);
            let resp = models::one(live, key, &p["/v1/models/".len()..]);
            log.status = resp.status().as_u16();
            return Ok(Next::Answer(resp));
        }
        "/v1/chat/completions" => Ingress::Chat,
        "/v1/embeddings" => Ingress::Embeddings,
        "/v1/completions" => Ingress::Completions,
        "/v1/messages" => Ingress::Messages,
        "/v1/messages/count_tokens" => Ingress::CountTokens,
        "/v1/responses" => Ingress::Responses,
        p if surface::known(p) => return surface_request(req, live, log, limit_headers, true).await,
        p if p.starts_with("/v1/") && live.plan.unknown_paths == UnknownPaths::Forward => {
            return surface_request(req, live, log, limit_headers, false).await;
        }
        _ => return Err(ApiError::not_found(path)),
    };
    if method != Method::POST {
        return Err(ApiError::method_not_allowed(&method, path, "POST"));
    }
    let dialect = ingress.dialect();
    let (key, parts, body) = authenticated(req, live, log).await?;
    let parsed = request::parse(&body)?;
    log.stream = parsed.is_stream();
    log.model_asked = parsed.model.as_deref().map(str::to_owned);
    match ingress {
        Ingress::Chat | Ingress::Messages | Ingress::CountTokens if !parsed.has_messages() => {
            return Err(ApiError::bad_request("messages_required", "messages is required"));
        }
        Ingress::Responses if !parsed.has_input() => {
            return Err(ApiError::bad_request("input_required", "input is required"));
        }
        _ => {}
    }
    // Read only for a semantic decision's log line (a clock read costs tens of ns here).
    let routing_started = live.plan.routing.is_some().then(std::time::Instant::now);
    let texts = std::sync::OnceLock::new();
    let view = || RequestView {
        messages: texts
            .get_or_init(|| trace::role_texts(&parsed, dialect))
            .iter()
            .map(|(role, text): &(String, String)| Message { role, text: text.as_str().into() })
            .collect(),
        max_tokens: parsed.max_tokens(),
        has_tools: parsed.has_tools(),
    };
    let target = route::resolve(&live.plan, &live.pools, parsed.model.as_deref(), &view, key).await?;
    if live.plan.routing.is_some() {
        // The Go gateway's decision line, so its log tooling keeps working.
        info!(
            "semantic routing: key='{}' method={} route='{}' model='{}' confidence={:.2} latency={}ms cascade=[{}]",
            Clean(log.key.as_deref().unwrap_or("")),
            target.method,
            Clean(target.route.as_deref().unwrap_or("")),
            Clean(&target.model),
            target.confidence,
            routing_started.map_or(0, |t| t.elapsed().as_millis()),
            target.cascade.join(",")
        );
    }
    log.set_model_sent(&target.model, live);
    log.route = target.route.clone();
    log.provider = Some(target.provider.label());
    if log.metrics && live.plan.routing.is_some() {
        let route = target.route.as_deref().unwrap_or("");
        crate::metrics::get().routing_decisions.with_label_values(&[target.method, route]).inc();
    }
    admission::servable(live, key, &target)?;
    if live.plan.tracing.enabled && matches!(ingress, Ingress::Chat | Ingress::Messages | Ingress::Responses) {
        trace::log_request(&parsed, dialect, &target.model, live.plan.tracing.max_content_length);
    }
    // The prompt's tokens, roughly (4 bytes each), until the answer says. Counting a prompt's
    // tokens (which Claude Code asks for often) is not a request that counts.
    let estimate = (ingress != Ingress::CountTokens).then_some(body.len() as u64 / 4);
    admission::admit(live, key, estimate, log, limit_headers).await?;
    let first = match prepare(ingress, &body, &parsed, &target.model, target.provider)? {
        Prepared::Answer(value) => {
            log.status = 200;
            return Ok(Next::Answer(json(StatusCode::OK, &value)));
        }
        Prepared::Forward { op, body, conversion } => (op, body, conversion),
    };
    drop(parsed);
    let client_headers = (dialect == Dialect::Messages).then(|| {
        parts
            .headers
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("anthropic-"))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect()
    });
    Ok(Next::Forward(Job::new(live, key, target, first, Rebuild::Dialect(ingress), body, client_headers)))
}

/// The client's key (checked), its request's head and its whole body (bounded in size and time).
async fn authenticated<'l>(
    req: Request<Incoming>,
    live: &'l Live,
    log: &mut AccessLog,
) -> Result<(Option<&'l KeyEntry>, http::request::Parts, bytes::Bytes), ApiError> {
    let key = auth::authenticate(&live.plan, req.headers())?;
    log.set_key(key);
    let (parts, body) = req.into_parts();
    let limits = request_body::Limits {
        max_bytes: live.plan.server.max_body_bytes,
        timeout: live.plan.server.request_body_timeout,
    };
    let body = request_body::read(&parts.headers, parts.version, body, limits).await?;
    Ok((key, parts, body))
}

/// A request of the rest of the surface (`known`), or any other `/v1/*` path when
/// `unknown_paths: forward` (sent to `local` when its body names no model).
async fn surface_request(
    req: Request<Incoming>,
    live: &Arc<Live>,
    log: &mut AccessLog,
    limit_headers: &mut admission::LimitHeaders,
    known: bool,
) -> Result<Next, ApiError> {
    if !surface::safe_path(req.uri().path()) {
        return Err(ApiError::not_found(req.uri().path()));
    }
    if known && req.method() != Method::POST {
        return Err(ApiError::method_not_allowed(req.method(), req.uri().path(), "POST"));
    }
    let (key, parts, body) = authenticated(req, live, log).await?;
    let raw = Arc::new(surface::Raw::new(&parts));
    let (asked, stream) = raw.read(&body)?;
    log.stream = stream;
    log.model_asked = asked.clone();
    let target = match (asked.as_deref(), known) {
        (Some(m), _) => route::resolve(&live.plan, &live.pools, Some(m), &RequestView::default, key).await?,
        (None, true) => return Err(ApiError::bad_request("model_required", "model is required")),
        (None, false) => route::Target::unnamed(ProviderKind::Local),
    };
    if target.provider == ProviderKind::Anthropic {
        return Err(ApiError::bad_request(
            "unsupported_operation",
            format!("model '{}' is served by Anthropic, which does not serve {}", target.model, parts.uri.path()),
        ));
    }
    log.set_model_sent(&target.model, live);
    log.route = target.route.clone();
    log.provider = Some(target.provider.label());
    admission::servable(live, key, &target)?;
    let estimate = Some(if raw.is_json() { body.len() as u64 / 4 } else { 0 });
    admission::admit(live, key, estimate, log, limit_headers).await?;
    let upstream_body = match target.model.is_empty() {
        true => body.clone(),
        false => raw.body_for(&body, &target.model)?,
    };
    let first = (Operation::Chat, upstream_body, Box::new(Conversion::bytes(stream)));
    Ok(Next::Forward(Job::new(live, key, target, first, Rebuild::Surface(raw), body, None)))
}
