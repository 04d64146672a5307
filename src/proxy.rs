//! The request pipeline: route table → auth → body → model/route → ACL → the upstream body in
//! the provider's dialect → [`upstream::forward`] → the answer relayed or translated back.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use llm_gateway_compiler::keywords::{Message, RequestView};
use llm_gateway_compiler::plan::ProviderKind;
use tracing::info;

use crate::access_log::{AccessLog, Clean};
use crate::body::{Body, json};
use crate::dialect::Dialect;
use crate::dialect::convert::{Ingress, Prepared, prepare};
use crate::error::ApiError;
use crate::request_id::{RequestId, Scoped};
use crate::state::{Live, Shared};
use crate::upstream::retry::{self, Candidate};
use crate::upstream::{self, OnQueue, Policy, respond::respond};
use crate::{auth, models, queue, ratelimit, request, request_body, request_id, route, trace};

pub async fn handle(req: Request<Incoming>, shared: Shared) -> Result<Response<Body>, Infallible> {
    let id = request_id::from_headers(req.headers());
    let mut resp = request_id::scope(id.clone(), answer(req, shared, id.clone())).await;
    // The upstream's own id (OpenAI's, say) stays readable under another name.
    if let Ok(ours) = HeaderValue::from_str(&id)
        && let Some(theirs) = resp.headers_mut().insert(request_id::HEADER, ours)
        && theirs.as_bytes() != id.as_bytes()
    {
        resp.headers_mut().insert(UPSTREAM_REQUEST_ID, theirs);
    }
    Ok(resp)
}

/// Where the upstream's `x-request-id` goes when the gateway's replaces it.
pub const UPSTREAM_REQUEST_ID: &str = "x-upstream-request-id";

async fn answer(req: Request<Incoming>, shared: Shared, id: RequestId) -> Response<Body> {
    let live = shared.load_full();
    let mut log = AccessLog::new(req.method(), req.uri().path());
    log.request_id = Some(id.clone());
    log.metrics = live.plan.metrics.enabled;
    let dialect = dialect_of(req.uri().path());
    log.dialect = dialect.label();
    // The key's rate-limit headers, on every response of a limited key.
    let mut limit_headers = Vec::new();
    let mut resp = match dispatch(req, &live, &mut log, &mut limit_headers).await {
        Ok(Next::Answer(resp)) => resp,
        Ok(Next::Forward(job)) => {
            let route = job.route.clone();
            let mut resp = if job.first.conversion.stream && job.queued() {
                queue::streaming(dialect, move |on_queue| exchange(job, log, on_queue, id)).await
            } else {
                exchange(job, log, Box::new(|_| {}), id).await
            };
            if let Some(route) = route.as_deref().and_then(|r| HeaderValue::from_str(r).ok()) {
                resp.headers_mut().insert("x-llm-gateway-route", route);
            }
            resp
        }
        Err(e) => {
            log.status = e.status.as_u16();
            if log.error.is_none() {
                log.error = Some(e.message.clone());
            }
            e.response_in(dialect)
        }
    };
    for (name, value) in limit_headers {
        resp.headers_mut().insert(name, value);
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

/// Everything needed to send a request upstream and answer it, owned so a queued stream can
/// finish it in its own task.
struct Job {
    live: Arc<Live>,
    ingress: Ingress,
    /// The client's body, to build a fallback's request in its provider's dialect.
    client_body: Bytes,
    first: Candidate,
    /// Models to try when the first fails (already filtered to what the key may use).
    fallbacks: Vec<String>,
    /// The client's Anthropic headers (a Messages client), passed on to a passthrough upstream.
    client_headers: Option<HeaderMap>,
    policy: Policy,
    /// The gateway's and the key's slots, taken once for all tries.
    gates: Vec<(Arc<queue::Gate>, &'static str)>,
    route: Option<String>,
}

impl Job {
    /// Whether the request may wait in a queue (a slot limit applies).
    fn queued(&self) -> bool {
        !self.gates.is_empty() || self.policy.slots.is_some()
    }
}

/// Sends the job and answers in the client's dialect; whatever fails is recorded in `log`.
/// Runs with the request's id current (a queued stream runs it in a task of its own), and the
/// response body is polled with it current too, so errors written into a stream carry it.
async fn exchange(job: Box<Job>, log: AccessLog, on_queue: Box<OnQueue<'static>>, id: RequestId) -> Response<Body> {
    let resp = request_id::scope(id.clone(), exchange_in_scope(job, log, on_queue)).await;
    resp.map(|body| Scoped::new(body, id).boxed())
}

async fn exchange_in_scope(job: Box<Job>, mut log: AccessLog, mut on_queue: Box<OnQueue<'static>>) -> Response<Body> {
    let Job { live, ingress, client_body, first, fallbacks, client_headers, policy, gates, .. } = *job;
    let client = first.conversion.client;
    let wait = live.plan.server.queue_timeout;
    let gates: Vec<_> = gates.iter().map(|(gate, scope)| (gate, *scope)).collect();
    let permits = match upstream::admit_all(&gates, wait, &mut *on_queue).await {
        Ok(p) => p,
        Err(e) => {
            log.status = e.status.as_u16();
            log.error = Some(e.message.clone());
            return e.response_in(client);
        }
    };
    let prepare = |model: &str| fallback(&live, ingress, &client_body, model);
    let (result, answered) =
        retry::run(&live, first, &fallbacks, &prepare, client_headers.as_ref(), &policy, &mut log, &mut *on_queue)
            .await;
    let model = HeaderValue::from_str(&answered.model).ok();
    let mut resp = match result {
        Ok(mut answer) => {
            answer.permits.extend(permits);
            respond(answer, &answered.conversion, &live, log).await
        }
        Err(failure) => {
            let e = failure.error;
            log.status = e.status.as_u16();
            log.error = Some(e.message.clone());
            e.response_in(client)
        }
    };
    if let Some(model) = model {
        resp.headers_mut().insert(MODEL_HEADER, model);
    }
    resp
}

/// Names the model that answered (a fallback's, when one took over).
pub const MODEL_HEADER: &str = "x-llm-gateway-model";

/// A fallback's request: the client's body prepared for `model` on the provider its name
/// selects.
fn fallback(live: &Live, ingress: Ingress, body: &Bytes, model: &str) -> Result<Candidate, ApiError> {
    let kind = ProviderKind::for_model(model);
    let pool = live.pool(kind).ok_or_else(|| {
        ApiError::bad_request("provider_not_configured", format!("provider '{}' is not configured", kind.config_name()))
    })?;
    pool.credential.header().map_err(|why| ApiError::internal("provider_credentials_missing", why))?;
    let parsed = request::parse(body)?;
    match prepare(ingress, body, &parsed, model, kind)? {
        Prepared::Forward { op, body, conversion } => {
            Ok(Candidate { model: model.to_owned(), kind, op, body, conversion })
        }
        Prepared::Answer(_) => Err(ApiError::bad_request("unsupported_operation", "answered by an estimate")),
    }
}

async fn dispatch(
    req: Request<Incoming>,
    live: &Arc<Live>,
    log: &mut AccessLog,
    limit_headers: &mut Vec<(http::HeaderName, HeaderValue)>,
) -> Result<Next, ApiError> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let read = method == Method::GET || method == Method::HEAD;
    let ingress = match path.as_str() {
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
            log.key = key.map(|k| k.name.clone());
            log.user = key.and_then(|k| k.user.clone());
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
            return Err(ApiError::method_not_allowed(&method, &path, "GET, HEAD"));
        }
        "/health" | "/ready" | "/v1/models" => return Err(ApiError::method_not_allowed(&method, &path, "GET, HEAD")),
        "/v1/chat/completions" => Ingress::Chat,
        "/v1/embeddings" => Ingress::Embeddings,
        "/v1/completions" => Ingress::Completions,
        "/v1/messages" => Ingress::Messages,
        "/v1/messages/count_tokens" => Ingress::CountTokens,
        "/v1/responses" => Ingress::Responses,
        _ => return Err(ApiError::not_found(&path)),
    };
    if method != Method::POST {
        return Err(ApiError::method_not_allowed(&method, &path, "POST"));
    }
    let dialect = ingress.dialect();
    let key = auth::authenticate(&live.plan, req.headers())?;
    log.key = key.map(|k| k.name.clone());
    log.user = key.and_then(|k| k.user.clone());
    let (parts, body) = req.into_parts();
    let limits = request_body::Limits {
        max_bytes: live.plan.server.max_body_bytes,
        timeout: live.plan.server.request_body_timeout,
    };
    let body = request_body::read(&parts.headers, parts.version, body, limits).await?;
    let parsed = request::parse(&body)?;
    log.stream = parsed.is_stream();
    log.model_asked = parsed.model.clone();
    match ingress {
        Ingress::Chat | Ingress::Messages | Ingress::CountTokens if !parsed.has_messages() => {
            return Err(ApiError::bad_request("messages_required", "messages is required"));
        }
        Ingress::Responses if !parsed.has_input() => {
            return Err(ApiError::bad_request("input_required", "input is required"));
        }
        _ => {}
    }
    let routing_started = std::time::Instant::now();
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
        // The anchor's decision line, so its log tooling keeps working.
        info!(
            "semantic routing: key='{}' method={} route='{}' model='{}' confidence={:.2} latency={}ms cascade=[{}]",
            Clean(log.key.as_deref().unwrap_or("")),
            target.method,
            Clean(target.route.as_deref().unwrap_or("")),
            Clean(&target.model),
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
    pool.credential.header().map_err(|why| ApiError::internal("provider_credentials_missing", why))?;
    if live.plan.tracing.enabled && matches!(ingress, Ingress::Chat | Ingress::Messages | Ingress::Responses) {
        trace::log_request(&parsed, dialect, &target.model, live.plan.tracing.max_content_length);
    }
    if let Some(k) = key.filter(|k| k.limits.limits_rate()) {
        // The prompt's tokens, roughly (4 bytes each), until the answer says.
        let estimate = body.len() as u64 / 4;
        match live.limiter.admit(k.subject(), &k.limits, estimate).await {
            ratelimit::Decision::Allowed(admission) => {
                *limit_headers = admission.headers;
                log.reservation = admission.reservation;
            }
            ratelimit::Decision::Limited(refusal) => {
                *limit_headers = refusal.headers;
                if log.metrics {
                    crate::metrics::get().rate_limited.with_label_values(&[&k.name, refusal.limit]).inc();
                }
                return Err(ApiError::rate_limited(refusal.limit, refusal.retry_after));
            }
            ratelimit::Decision::Unavailable(_) => {
                return Err(ApiError::rate_limit_backend());
            }
        }
    }
    let (op, upstream_body, conversion) = match prepare(ingress, &body, &parsed, &target.model, target.provider)? {
        Prepared::Answer(value) => {
            log.status = 200;
            return Ok(Next::Answer(json(StatusCode::OK, &value)));
        }
        Prepared::Forward { op, body, conversion } => (op, body, conversion),
    };
    let fallbacks: Vec<String> = live
        .plan
        .fallbacks_of(&target.model, target.route.as_deref())
        .into_iter()
        .filter(|m| key.is_none_or(|k| k.allows_model(m)) && live.pool(ProviderKind::for_model(m)).is_some())
        .map(str::to_owned)
        .collect();
    drop(parsed);
    let client_headers = (dialect == Dialect::Messages).then(|| {
        parts
            .headers
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("anthropic-"))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect()
    });
    let server = &live.plan.server;
    let policy = Policy {
        first_byte: server.first_byte_timeout,
        slots: server.max_concurrent_per_endpoint.map(|_| server.queue_timeout),
    };
    let mut gates = Vec::new();
    if let Some(gate) = &live.gateway_gate {
        gates.push((gate.clone(), "gateway"));
    }
    if let Some(gate) = key.and_then(|k| live.key_gates.get(k.subject())) {
        gates.push((gate.clone(), "key"));
    }
    let first = Candidate { model: target.model, kind: target.provider, op, body: upstream_body, conversion };
    Ok(Next::Forward(Box::new(Job {
        live: live.clone(),
        ingress,
        client_body: body,
        first,
        fallbacks,
        client_headers,
        policy,
        gates,
        route: target.route,
    })))
}
