//! What the server reads on every request: one `Live` snapshot (plan + upstream clients),
//! behind an `ArcSwap` so a reload can replace it without stopping traffic.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use http::HeaderValue;
use llm_gateway_compiler::Plan;
use llm_gateway_compiler::plan::{ApiKey, EndpointSpec, ProviderKind, ProviderPlan, Transport};

use crate::transport::http::{HttpClient, client};

pub type Shared = Arc<ArcSwap<Live>>;

pub struct Live {
    pub plan: Arc<Plan>,
    /// Indexed by [`ProviderKind::index`].
    pub pools: [Option<Pool>; 3],
}

impl Live {
    pub fn new(plan: Plan) -> Self {
        let connect = plan.server.connect_timeout;
        let pools = ProviderKind::ALL.map(|k| plan.provider(k).map(|p| Pool::new(p, connect)));
        Self { plan: Arc::new(plan), pools }
    }

    pub fn pool(&self, kind: ProviderKind) -> Option<&Pool> {
        self.pools[kind.index()].as_ref()
    }
}

/// A provider's endpoints. Selection is plain round-robin until weighted balancing and
/// health checks arrive.
pub struct Pool {
    pub kind: ProviderKind,
    pub credential: Credential,
    pub endpoints: Vec<Endpoint>,
    next: AtomicUsize,
}

/// What goes into the upstream's auth header.
#[derive(Clone)]
pub enum Credential {
    None,
    /// `Authorization: Bearer …`, ready to send (marked sensitive so it is never logged).
    Bearer(HeaderValue),
    /// The key names environment variables that were unset: requests fail with this message.
    Missing(String),
}

pub struct Endpoint {
    pub name: String,
    pub transport: EndpointTransport,
}

pub enum EndpointTransport {
    Http(Box<HttpTarget>),
    Zrok,
}

pub struct HttpTarget {
    /// Base URL without a trailing slash; paths such as `/v1/models` are appended.
    pub base: String,
    /// The URIs of the forwarded operations, built once (indexed by [`Operation`]).
    pub uris: [http::Uri; 3],
    pub client: HttpClient,
}

/// The OpenAI-compatible operations the gateway forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Chat,
    Embeddings,
    Completions,
}

impl Operation {
    pub const ALL: [Operation; 3] = [Operation::Chat, Operation::Embeddings, Operation::Completions];

    pub fn path(self) -> &'static str {
        match self {
            Operation::Chat => "/v1/chat/completions",
            Operation::Embeddings => "/v1/embeddings",
            Operation::Completions => "/v1/completions",
        }
    }
}

impl Pool {
    fn new(p: &ProviderPlan, connect: std::time::Duration) -> Self {
        let credential = match &p.api_key {
            ApiKey::None => Credential::None,
            ApiKey::Set(key) => match HeaderValue::from_str(&format!("Bearer {}", key.expose())) {
                Ok(mut v) => {
                    v.set_sensitive(true);
                    Credential::Bearer(v)
                }
                Err(_) => Credential::Missing(format!(
                    "the API key of provider `{}` contains characters not allowed in an HTTP header",
                    p.kind
                )),
            },
            ApiKey::Unset { vars } => Credential::Missing(format!(
                "provider `{}` has no API key: environment variable {} is not set",
                p.kind,
                vars.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", ")
            )),
        };
        let endpoints = p.endpoints.iter().map(|e| Endpoint::new(e, connect)).collect();
        Self { kind: p.kind, credential, endpoints, next: AtomicUsize::new(0) }
    }

    pub fn pick(&self) -> Option<&Endpoint> {
        if self.endpoints.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len();
        Some(&self.endpoints[i])
    }
}

impl Endpoint {
    fn new(spec: &EndpointSpec, connect: std::time::Duration) -> Self {
        let transport = match &spec.transport {
            Transport::Http { base_url } => {
                let base = base_url.as_str().trim_end_matches('/').to_owned();
                // A validated base URL plus a fixed path always parses; fall back to a
                // relative URI (which then fails per request) rather than panic.
                let uris = Operation::ALL.map(|op| format!("{base}{}", op.path()).parse().unwrap_or_default());
                EndpointTransport::Http(Box::new(HttpTarget { base, uris, client: client(connect) }))
            }
            Transport::Zrok { .. } => EndpointTransport::Zrok,
        };
        Self { name: spec.name.clone(), transport }
    }
}

/// True when the plan needs zrok, which this build cannot do yet.
pub fn uses_zrok(plan: &Plan) -> bool {
    plan.zrok_share.is_some()
        || plan
            .providers
            .iter()
            .flatten()
            .flat_map(|p| &p.endpoints)
            .any(|e| matches!(e.transport, Transport::Zrok { .. }))
}
