//! The immutable plan the runtime executes: everything resolved, defaulted and indexed.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use url::Url;

use crate::acl::KeyTable;
use crate::keywords::Heuristics;
pub use crate::raw::{ClassifierProvider, Comparison, EmbedProvider, OnBackendError, RetryOn, ShareMode, UnknownPaths};
use crate::secret::Secret;

#[derive(Debug)]
pub struct Plan {
    /// SHA-256 of the source text; a reload with the same hash changes nothing.
    pub hash: [u8; 32],
    pub listen: ListenAddr,
    /// Whether the config says `listen` (a zrok-shared gateway opens a TCP port only then).
    pub listen_set: bool,
    /// Present when the gateway is served through a zrok share.
    pub zrok_share: Option<ZrokShare>,
    /// Indexed by [`ProviderKind::index`]; `None` when the provider is not configured.
    pub providers: [Option<ProviderPlan>; 3],
    pub metrics: MetricsPlan,
    pub tracing: TracingPlan,
    /// `None`: no authentication.
    pub keys: Option<KeyTable>,
    /// `api_keys.keys_file` as written (relative to the config file); its keys still have to
    /// be added to `keys` (the compiler does no I/O).
    pub keys_file: Option<String>,
    /// `None`: no `routing:` section.
    pub routing: Option<RoutingPlan>,
    pub server: ServerPlan,
    /// Top-level `fallbacks`, in file order: the first glob matching the model sent applies.
    pub fallbacks: Vec<(crate::glob::Glob, Vec<String>)>,
    pub retry: RetryPlan,
    pub rate_limits: RateLimitPlan,
    pub unknown_paths: UnknownPaths,
}

/// `retry`: how often one model is tried, how long between tries, and which failures retry
/// (and fall back).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPlan {
    /// Tries of one model, at least 1.
    pub attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub on: Vec<RetryOn>,
}

impl RetryPlan {
    pub fn covers(&self, failure: RetryOn) -> bool {
        self.on.contains(&failure)
    }
}

impl Default for RetryPlan {
    fn default() -> Self {
        Self {
            attempts: 1,
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
            on: RetryOn::ALL.iter().map(|(_, v)| *v).collect(),
        }
    }
}

/// `rate_limits`: where counters live and what a failing backend means.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitPlan {
    pub backend: RateBackend,
    pub on_backend_error: OnBackendError,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RateBackend {
    Memory,
    /// A `redis://` or `rediss://` URL (it may hold a password).
    Redis(Secret),
}

/// Timeouts and limits of the request path.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerPlan {
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub idle_stream_timeout: Duration,
    pub drain_timeout: Duration,
    /// From connecting (or the end of the previous request) to the request's headers.
    pub request_header_timeout: Duration,
    /// For a whole request body.
    pub request_body_timeout: Duration,
    /// An idle keep-alive connection is closed after this.
    pub idle_connection_timeout: Duration,
    /// An idle upstream connection is dropped after this; `None`: by the endpoint's scheme.
    pub upstream_idle_timeout: Option<Duration>,
    pub max_body_bytes: usize,
    /// Client connections open at once; `None`: half the file-descriptor limit.
    pub max_connections: Option<usize>,
    /// The largest upstream event (SSE event, or whole body to translate) the gateway reads.
    pub max_event_bytes: usize,
    /// For the whole gateway; `None`: unlimited.
    pub max_concurrent: Option<usize>,
    /// Per endpoint; `None`: unlimited.
    pub max_concurrent_per_endpoint: Option<usize>,
    /// Per virtual key; `None`: unlimited.
    pub max_concurrent_per_key: Option<usize>,
    pub max_queue: usize,
    pub queue_timeout: Duration,
}

impl Plan {
    pub fn provider(&self, kind: ProviderKind) -> Option<&ProviderPlan> {
        self.providers[kind.index()].as_ref()
    }

    /// The models to try after `model` (sent for `route`) fails: the route's fallbacks, then
    /// those of the first top-level glob that matches (a route's name standing for its model),
    /// each once and never `model` itself.
    pub fn fallbacks_of<'p>(&'p self, model: &str, route: Option<&str>) -> Vec<&'p str> {
        let route = route.and_then(|r| self.routing.as_ref()?.route(r)).map(|r| r.fallbacks.as_slice());
        let global = self.fallbacks.iter().find(|(glob, _)| glob.matches(model)).map(|(_, list)| list.as_slice());
        // A fallback may name a route: its model is tried.
        let routes = self.routing.as_ref();
        let resolve = |m: &'p String| routes.and_then(|r| r.route(m)).map_or(m.as_str(), |r| r.model.as_str());
        let mut out: Vec<&str> = Vec::new();
        for m in route.unwrap_or_default().iter().chain(global.unwrap_or_default()).map(resolve) {
            if m != model && !out.contains(&m) {
                out.push(m);
            }
        }
        out
    }

    pub fn hash_hex(&self) -> String {
        self.hash.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    OpenAi,
    Anthropic,
    Local,
}

impl EmbedProvider {
    /// The configured provider whose embeddings API it calls; `None` for the in-process model.
    pub fn provider(self) -> Option<ProviderKind> {
        match self {
            EmbedProvider::Builtin => None,
            EmbedProvider::Local => Some(ProviderKind::Local),
            EmbedProvider::Openai => Some(ProviderKind::OpenAi),
        }
    }
}

impl ClassifierProvider {
    /// The configured provider whose chat API answers the classifier's prompt.
    pub fn provider(self) -> ProviderKind {
        match self {
            ClassifierProvider::Local => ProviderKind::Local,
            ClassifierProvider::Openai => ProviderKind::OpenAi,
        }
    }
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 3] = [Self::OpenAi, Self::Anthropic, Self::Local];

    pub fn index(self) -> usize {
        self as usize
    }

    /// The config section name.
    pub fn config_name(self) -> &'static str {
        match self {
            Self::OpenAi => "open_ai",
            Self::Anthropic => "anthropic",
            Self::Local => "local",
        }
    }

    /// The `provider` label in logs and metrics (the Go gateway's values).
    pub fn label(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Local => "local",
        }
    }

    pub fn default_base_url(self) -> &'static str {
        match self {
            Self::OpenAi => "https://api.openai.com",
            Self::Anthropic => "https://api.anthropic.com",
            Self::Local => "http://localhost:11434",
        }
    }

    /// The Go gateway's prefix rule, case-insensitive: `gpt-`, `o1-`, `o3-` → OpenAI,
    /// `claude-` → Anthropic, everything else → local.
    pub fn for_model(model: &str) -> Self {
        let starts = |p: &str| model.get(..p.len()).is_some_and(|head| head.eq_ignore_ascii_case(p));
        if starts("gpt-") || starts("o1-") || starts("o3-") {
            Self::OpenAi
        } else if starts("claude-") {
            Self::Anthropic
        } else {
            Self::Local
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.config_name())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListenAddr {
    /// `None`: all interfaces (the `:8080` form).
    pub host: Option<String>,
    pub port: u16,
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            None => write!(f, ":{}", self.port),
            Some(h) if h.contains(':') => write!(f, "[{h}]:{}", self.port),
            Some(h) => write!(f, "{h}:{}", self.port),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ZrokShare {
    pub mode: ShareMode,
    /// A persistent share to bind; `None` creates an ephemeral share.
    pub token: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct ProviderPlan {
    pub kind: ProviderKind,
    pub api_key: ApiKey,
    pub endpoints: Vec<EndpointSpec>,
    pub health_check: HealthCheck,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ApiKey {
    /// No key configured: no auth header is sent.
    None,
    Set(Secret),
    /// The key references environment variables that were unset at compile time.
    Unset {
        vars: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct EndpointSpec {
    /// The provider's config name for a single-endpoint provider.
    pub name: String,
    pub weight: u32,
    pub transport: Transport,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    Http {
        base_url: Url,
    },
    /// Bytes travel through a zrok access; `base_url` (when given) supplies scheme, host and path.
    Zrok {
        share_token: Secret,
        base_url: Option<Url>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthCheck {
    pub interval: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricsPlan {
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TracingPlan {
    pub enabled: bool,
    pub max_content_length: usize,
}

pub type RouteId = usize;

#[derive(Debug)]
pub struct RoutingPlan {
    pub allow_explicit_model: bool,
    /// `routing.aliases`, in file order: a client model matching the glob is taken as the
    /// target (a route name, `auto`, or a model).
    pub aliases: Vec<(crate::glob::Glob, String)>,
    pub routes: Vec<RoutePlan>,
    pub by_name: HashMap<String, RouteId>,
    /// `default_route`, else the first route; `None` when there are no routes.
    pub default_route: Option<RouteId>,
    pub heuristics: Option<Heuristics>,
    pub semantic: Option<SemanticPlan>,
    pub classifier: Option<ClassifierPlan>,
}

impl RoutingPlan {
    pub fn route(&self, name: &str) -> Option<&RoutePlan> {
        self.by_name.get(name).map(|&id| &self.routes[id])
    }

    /// What `model` is an alias of, if any (the first glob that matches).
    pub fn alias(&self, model: &str) -> Option<&str> {
        self.aliases.iter().find(|(glob, _)| glob.matches(model)).map(|(_, target)| target.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RoutePlan {
    pub name: String,
    pub model: String,
    pub description: String,
    pub examples: Vec<String>,
    /// Models tried in order when this route's model fails (before the top-level fallbacks).
    pub fallbacks: Vec<String>,
    /// Where the route is written, for what is found about it after compiling.
    pub span: std::ops::Range<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CachePlan {
    pub ttl: Duration,
    pub size: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SemanticPlan {
    pub provider: EmbedProvider,
    pub model: Option<String>,
    pub threshold: f64,
    pub ambiguous_threshold: f64,
    /// Where `threshold` / `ambiguous_threshold` are written; `None`: omitted, so derived from
    /// the examples once they are embedded ([`crate::centroids::Calibration::suggested`]).
    pub threshold_span: Option<std::ops::Range<usize>>,
    pub ambiguous_span: Option<std::ops::Range<usize>>,
    pub comparison: Comparison,
    pub cache: Option<CachePlan>,
    /// Where `routing.semantic` is, for errors found when embedding the examples.
    pub span: std::ops::Range<usize>,
    /// The examples' vectors; `None` until [`crate::centroids::embed_routes`] has run.
    pub vectors: Option<crate::centroids::Vectors>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierPlan {
    pub provider: ClassifierProvider,
    pub model: String,
    pub timeout: Option<Duration>,
    pub confidence_threshold: f64,
    pub cache: Option<CachePlan>,
}

#[cfg(test)]
mod tests {
    use super::ProviderKind::{self, *};

    #[test]
    fn prefix_rules_match_the_go_gateway() {
        let cases = [
            ("gpt-4o", OpenAi),
            ("GPT-4o", OpenAi),
            ("o1-mini", OpenAi),
            ("o3-mini", OpenAi),
            ("claude-sonnet-4-20250514", Anthropic),
            ("Claude-3", Anthropic),
            ("o1", Local),
            ("o4-mini", Local),
            ("chatgpt-4o-latest", Local),
            ("text-embedding-3-small", Local),
            ("llama3", Local),
            ("", Local),
            ("é", Local),
        ];
        for (model, want) in cases {
            assert_eq!(ProviderKind::for_model(model), want, "{model}");
        }
    }
}
