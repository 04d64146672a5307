//! A request on its way upstream once it is admitted ([`crate::admission`]): the [`Job`] takes
//! the key's and the gateway's slots, tries the target and its fallbacks ([`retry`]) and
//! answers in the client's dialect. The chat dialects and the rest of the surface share all of
//! it; they differ only in how a fallback's request is built ([`Rebuild`]).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response};
use http_body_util::BodyExt;
use llm_gateway_compiler::acl::KeyEntry;
use llm_gateway_compiler::plan::ProviderKind;

use crate::access_log::AccessLog;
use crate::body::Body;
use crate::dialect::convert::{Conversion, Ingress, Prepared, prepare};
use crate::error::ApiError;
use crate::providers::Operation;
use crate::request_id::{RequestId, Scoped};
use crate::route::Target;
use crate::state::Live;
use crate::upstream::retry::{self, Candidate};
use crate::upstream::{self, OnQueue, Policy, respond::respond};
use crate::{queue, request, surface};

/// Names the model that answered (a fallback's, when one took over).
pub const MODEL_HEADER: HeaderName = HeaderName::from_static("x-llm-gateway-model");

/// How to build the request for a fallback model from the client's body.
pub enum Rebuild {
    /// Through the dialect layer, in the fallback provider's dialect.
    Dialect(Ingress),
    /// The same bytes with the model replaced (the rest of the surface).
    Surface(Arc<surface::Raw>),
}

/// Everything needed to send a request upstream and answer it, owned so a queued stream can
/// finish it in its own task.
pub struct Job {
    live: Arc<Live>,
    rebuild: Rebuild,
    /// The client's body, to build a fallback's request.
    client_body: Bytes,
    pub first: Candidate,
    /// Models to try when the first fails (already filtered to what the key may use).
    fallbacks: Vec<String>,
    /// The client's Anthropic headers (a Messages client), passed on to a passthrough upstream.
    client_headers: Option<HeaderMap>,
    policy: Policy,
    /// The gateway's and the key's slots, taken once for all tries.
    gates: Vec<(Arc<queue::Gate>, &'static str)>,
    pub route: Option<String>,
}

impl Job {
    /// The job for `target`, whose first request is already built (`op`, `body`, `conversion`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        live: &Arc<Live>,
        key: Option<&KeyEntry>,
        target: Target,
        (op, body, conversion): (Operation, Bytes, Box<Conversion>),
        rebuild: Rebuild,
        client_body: Bytes,
        client_headers: Option<HeaderMap>,
    ) -> Box<Self> {
        // A request that names no model (an unknown path sent to `local`) has no fallbacks.
        let named = !target.model.is_empty();
        let fallbacks = live
            .plan
            .fallbacks_of(&target.model, target.route.as_deref())
            .into_iter()
            .filter(|_| named)
            .filter(|m| key.is_none_or(|k| k.allows_model(m)) && live.pool(ProviderKind::for_model(m)).is_some())
            .map(str::to_owned)
            .collect();
        let server = &live.plan.server;
        let policy = Policy {
            first_byte: server.first_byte_timeout,
            slots: server.max_concurrent_per_endpoint.map(|_| server.queue_timeout),
        };
        // The key's slot first: a key over its own limit waits without holding one of the
        // gateway's slots, which would hold every other key back.
        let mut gates = Vec::new();
        if let Some(gate) = key.and_then(|k| live.key_gates.get(k.subject())) {
            gates.push((gate.clone(), "key"));
        }
        if let Some(gate) = &live.gateway_gate {
            gates.push((gate.clone(), "gateway"));
        }
        let raw = match &rebuild {
            Rebuild::Surface(raw) => Some(raw.clone()),
            Rebuild::Dialect(_) => None,
        };
        let first = Candidate { model: target.model, kind: target.provider, op, body, conversion, raw };
        Box::new(Job {
            live: live.clone(),
            rebuild,
            client_body,
            first,
            fallbacks,
            client_headers,
            policy,
            gates,
            route: target.route,
        })
    }

    /// Whether the request may wait in a queue (a slot limit applies).
    pub fn queued(&self) -> bool {
        !self.gates.is_empty() || self.policy.slots.is_some()
    }
}

/// A fallback's request: the client's `body` for `model` on the provider its name selects.
fn fallback(live: &Live, rebuild: &Rebuild, body: &Bytes, stream: bool, model: &str) -> Result<Candidate, ApiError> {
    let kind = ProviderKind::for_model(model);
    crate::admission::pool_of(live, kind, model)?;
    let model = model.to_owned();
    match rebuild {
        Rebuild::Surface(raw) => {
            if kind == ProviderKind::Anthropic {
                return Err(ApiError::bad_request("unsupported_operation", "Anthropic does not serve this path"));
            }
            let body = raw.body_for(body, &model)?;
            let conversion = Box::new(Conversion::bytes(stream));
            Ok(Candidate { model, kind, op: Operation::Chat, body, conversion, raw: Some(raw.clone()) })
        }
        Rebuild::Dialect(ingress) => {
            let parsed = request::parse(body)?;
            match prepare(*ingress, body, &parsed, &model, kind)? {
                Prepared::Forward { op, body, conversion } => {
                    Ok(Candidate { model, kind, op, body, conversion, raw: None })
                }
                Prepared::Answer(_) => Err(ApiError::bad_request("unsupported_operation", "answered by an estimate")),
            }
        }
    }
}

/// Sends the job and answers in the client's dialect; whatever fails is recorded in `log`.
/// Runs with the request's id current (the caller's scope), and the response body is polled
/// with it current too, so errors written into a stream carry it.
pub async fn exchange(job: Box<Job>, log: AccessLog, on_queue: Box<OnQueue<'static>>, id: RequestId) -> Response<Body> {
    send_and_answer(job, log, on_queue).await.map(|body| Scoped::new(body, id).boxed())
}

async fn send_and_answer(job: Box<Job>, mut log: AccessLog, mut on_queue: Box<OnQueue<'static>>) -> Response<Body> {
    let Job { live, rebuild, client_body, first, fallbacks, client_headers, policy, gates, .. } = *job;
    let client = first.conversion.client;
    let gates: Vec<_> = gates.iter().map(|(gate, scope)| (gate, *scope)).collect();
    let permits = match upstream::admit_all(&gates, live.plan.server.queue_timeout, &mut *on_queue).await {
        Ok(p) => p,
        Err(e) => return log.failed(&e, client),
    };
    let stream = first.conversion.stream;
    let prepare = |model: &str| fallback(&live, &rebuild, &client_body, stream, model);
    let (result, mut answered) =
        retry::run(&live, first, &fallbacks, &prepare, client_headers.as_ref(), &policy, &mut log, &mut *on_queue)
            .await;
    let model = HeaderValue::from_maybe_shared(Bytes::from(std::mem::take(&mut answered.model))).ok();
    let mut resp = match result {
        Ok(mut answer) => {
            answer.permits.extend(permits);
            respond(answer, &answered.conversion, &live, log).await
        }
        Err(failure) => log.failed(&failure.error, client),
    };
    if let Some(model) = model.filter(|m| !m.is_empty()) {
        resp.headers_mut().insert(MODEL_HEADER, model);
    }
    resp
}
