//! A provider's endpoints: smooth weighted round-robin over the healthy ones, passive
//! failover order, health state, and the models each endpoint reported.

pub mod health;
pub mod swrr;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use llm_gateway_compiler::plan::{EndpointSpec, HealthCheck, ProviderKind, ProviderPlan, Transport};
use tracing::{info, warn};

use crate::providers::{Credential, Operation};
use crate::shard::PerShard;
use crate::transport::http::{Connecting, Dialer, HttpClient, client, client_with};
use crate::transport::zrok::access::Access;
use crate::upstream::Preset;

pub struct Pool {
    pub kind: ProviderKind,
    pub credential: Credential,
    /// Shared with the pools of later plans while an endpoint's identity stays the same, so
    /// a reload keeps its connections and health.
    pub endpoints: Vec<Arc<Endpoint>>,
    /// Each endpoint's headers, by endpoint index: this plan's (the credential may change
    /// across a reload that keeps the endpoint).
    pub presets: Vec<Preset>,
    /// Weights, by endpoint index (a reload may change them without replacing endpoints).
    weights: Vec<u32>,
    pub health_check: HealthCheck,
    /// One period of the smooth WRR sequence over the healthy endpoints.
    schedule: ArcSwap<Vec<u16>>,
    /// Where the next thread to use this pool starts in the schedule.
    starts: AtomicUsize,
}

thread_local! {
    /// Per-thread position in each pool's schedule, keyed by the pool's address. A shared
    /// atomic counter bounces its cache line between cores (about 130 ns a pick with two
    /// threads); per-thread cursors keep each thread's picks exactly smooth and the total
    /// proportional to the weights.
    static CURSORS: std::cell::RefCell<[(usize, usize); 8]> = const { std::cell::RefCell::new([(0, 0); 8]) };
}

/// The next position for pool `key` on this thread; a thread new to the pool starts where
/// `start` says, so threads do not all begin on the same endpoint.
fn advance(key: usize, start: impl FnOnce() -> usize) -> usize {
    CURSORS.with(|c| {
        let mut cursors = c.borrow_mut();
        if let Some(slot) = cursors.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = slot.1.wrapping_add(1);
            return slot.1;
        }
        // Evict the oldest slot (pools are few: three providers, plus the previous plan
        // for a moment after a reload).
        cursors.rotate_right(1);
        let first = start();
        cursors[0] = (key, first);
        first
    })
}

pub struct Endpoint {
    pub name: String,
    /// What makes two endpoints the same across reloads: name, transport and how it connects.
    identity: (String, Transport, Connecting),
    pub transport: EndpointTransport,
    healthy: AtomicBool,
    /// With `limits.max_concurrent_per_endpoint`: the endpoint's slots and queue (kept across reloads
    /// with the endpoint, so a reload does not reset who is waiting).
    pub gate: Arc<crate::queue::Gate>,
    /// Model ids from the last successful probe.
    models: ArcSwap<Vec<String>>,
}

pub enum EndpointTransport {
    Http(Box<HttpTarget>),
    /// Behind a zrok share, in a process where zrok was not started (`check`).
    Zrok,
}

pub struct HttpTarget {
    /// Base URL without a trailing slash; paths such as `/v1/models` are appended.
    pub base: String,
    /// The URIs of the operations the provider serves, built once (indexed by [`Operation`]).
    uris: [Option<http::Uri>; Operation::ALL.len()],
    clients: PerShard<HttpClient>,
}

impl HttpTarget {
    fn new(kind: ProviderKind, base: String, client: impl FnMut() -> HttpClient) -> Self {
        let adapter = crate::providers::adapter(kind);
        // A validated base URL plus a fixed path always parses; `None` otherwise (the
        // request then fails with a clear error rather than a panic).
        let uris = Operation::ALL.map(|op| adapter.path(op).and_then(|path| format!("{base}{path}").parse().ok()));
        Self { base, uris, clients: PerShard::new(client) }
    }

    /// The serving thread's client (its own connection pool).
    pub fn client(&self) -> &HttpClient {
        self.clients.get()
    }

    /// The URI of `op` on this endpoint, if the provider serves it.
    pub fn uri(&self, op: Operation) -> Option<&http::Uri> {
        self.uris[op as usize].as_ref()
    }
}

impl Pool {
    /// A pool with the default idle timeouts (tests and benches).
    pub fn new(p: &ProviderPlan, connect: std::time::Duration) -> Self {
        Self::reconciled(p, Connecting { timeout: connect, idle: None }, None).0
    }

    /// The pool for `p`, reusing every endpoint of `old` whose identity is unchanged.
    /// Returns the indices of the endpoints that are new (they need a first probe).
    pub fn reconciled(p: &ProviderPlan, connect: Connecting, old: Option<&Pool>) -> (Self, Vec<usize>) {
        let credential = Credential::of(p.kind, &p.api_key);
        let mut fresh = Vec::new();
        let endpoints: Vec<Arc<Endpoint>> = p
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let identity = (spec.name.clone(), spec.transport.clone(), connect);
                match old.and_then(|o| o.endpoints.iter().find(|e| e.identity == identity)) {
                    Some(kept) => kept.clone(),
                    None => {
                        fresh.push(i);
                        Arc::new(Endpoint::new(p.kind, spec, connect))
                    }
                }
            })
            .collect();
        let pool = Self {
            kind: p.kind,
            presets: endpoints.iter().map(|e| Preset::new(&credential, &e.transport)).collect(),
            credential,
            weights: p.endpoints.iter().map(|e| e.weight).collect(),
            endpoints,
            health_check: p.health_check,
            schedule: ArcSwap::from_pointee(Vec::new()),
            starts: AtomicUsize::new(0),
        };
        pool.reschedule();
        for e in &pool.endpoints {
            pool.publish_health(e);
        }
        (pool, fresh)
    }

    /// The endpoint the next request should try first, by smooth WRR over the healthy ones.
    /// Whether some endpoint passes its health checks (the schedule holds the healthy ones).
    pub fn any_healthy(&self) -> bool {
        !self.schedule.load().is_empty()
    }

    pub fn pick(&self) -> Option<usize> {
        let schedule = self.schedule.load();
        if schedule.is_empty() {
            return None;
        }
        let n = advance(self as *const Pool as usize, || self.starts.fetch_add(1, Ordering::Relaxed));
        Some(usize::from(schedule[n % schedule.len()]))
    }

    /// The order a request tries endpoints in, each at most once: the WRR pick, then the
    /// other healthy endpoints. When none is healthy, every endpoint, best effort (a probe
    /// may be stale and a single-endpoint provider has nothing else to offer).
    pub fn attempt_order(&self) -> impl Iterator<Item = usize> + '_ {
        let first = self.pick();
        let all_down = first.is_none();
        first.into_iter().chain(
            (0..self.endpoints.len())
                .filter(move |&i| all_down || (Some(i) != first && self.endpoints[i].is_healthy())),
        )
    }

    /// Records a health observation; logs and rebuilds the schedule on a transition.
    pub fn set_healthy(&self, index: usize, healthy: bool) {
        self.observe(index, healthy, None);
    }

    /// Records a failed health observation with its reason (logged on the transition).
    pub fn set_unhealthy_because(&self, index: usize, why: &str) {
        self.observe(index, false, Some(why));
    }

    fn observe(&self, index: usize, healthy: bool, why: Option<&str>) {
        let endpoint = &self.endpoints[index];
        if endpoint.healthy.swap(healthy, Ordering::AcqRel) != healthy {
            self.publish_health(endpoint);
            match (healthy, why) {
                (true, _) => info!(provider = self.kind.label(), "endpoint '{}' is now healthy", endpoint.name),
                (false, Some(why)) => {
                    warn!(provider = self.kind.label(), "endpoint '{}' is now unhealthy: {why}", endpoint.name)
                }
                (false, None) => warn!(provider = self.kind.label(), "endpoint '{}' is now unhealthy", endpoint.name),
            }
            self.reschedule();
        }
    }

    /// `llm_gateway_endpoint_healthy` for one endpoint.
    fn publish_health(&self, endpoint: &Endpoint) {
        crate::metrics::get()
            .endpoint_healthy
            .with_label_values(&[self.kind.label(), &endpoint.name])
            .set(i64::from(endpoint.is_healthy()));
    }

    fn reschedule(&self) {
        let healthy: Vec<(usize, u32)> = self
            .endpoints
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_healthy())
            .map(|(i, _)| (i, self.weights[i]))
            .collect();
        self.schedule.store(Arc::new(swrr::sequence(&healthy)));
    }

    /// The de-duplicated models of the healthy endpoints, from the last probes.
    pub fn models(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for e in self.endpoints.iter().filter(|e| e.is_healthy()) {
            for m in e.models.load().iter() {
                if !out.contains(m) {
                    out.push(m.clone());
                }
            }
        }
        out
    }

    /// Health of every endpoint, for logs and metrics.
    pub fn health(&self) -> Vec<(&str, bool)> {
        self.endpoints.iter().map(|e| (e.name.as_str(), e.is_healthy())).collect()
    }
}

impl Endpoint {
    fn new(kind: ProviderKind, spec: &EndpointSpec, connect: Connecting) -> Self {
        let transport = match &spec.transport {
            Transport::Http { base_url } => {
                let base = base_url.as_str().trim_end_matches('/').to_owned();
                EndpointTransport::Http(Box::new(HttpTarget::new(kind, base.clone(), || client(connect, &base))))
            }
            Transport::Zrok { share_token, base_url } => match crate::transport::zrok::get() {
                Some(zrok) => {
                    let access = Access::new(zrok, share_token.expose().to_owned());
                    // The URL's host is not used to route (the share is dialed); it only
                    // names the upstream in the Host header and picks http or https.
                    let base = match base_url {
                        Some(url) => url.as_str().trim_end_matches('/').to_owned(),
                        None => "http://zrok-share".to_owned(),
                    };
                    let idle = connect.idle_through_share();
                    EndpointTransport::Http(Box::new(HttpTarget::new(kind, base, || {
                        client_with(Dialer::Zrok(access.clone()), idle)
                    })))
                }
                None => EndpointTransport::Zrok,
            },
        };
        Self {
            name: spec.name.clone(),
            identity: (spec.name.clone(), spec.transport.clone(), connect),
            transport,
            // Healthy until the first probe (which runs before traffic is accepted) says otherwise.
            healthy: AtomicBool::new(true),
            gate: crate::queue::Gate::new(usize::MAX, usize::MAX),
            models: ArcSwap::from_pointee(Vec::new()),
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Applies the plan's concurrency limit to this endpoint's gate.
    pub fn limit(&self, max_concurrent: usize, max_queue: usize) {
        self.gate.set_limits(max_concurrent, max_queue);
    }

    /// Whether the last probe listed `model`.
    pub fn reports(&self, model: &str) -> bool {
        self.models.load().iter().any(|m| m == model)
    }

    pub fn set_models(&self, models: Vec<String>) {
        self.models.store(Arc::new(models));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(weights: &[u32]) -> Pool {
        let eps: String = weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                format!("      - name: e{i}\n        base_url: http://127.0.0.1:{}\n        weight: {w}\n", 1000 + i)
            })
            .collect();
        let yaml = format!("providers:\n  local:\n    endpoints:\n{eps}");
        let plan =
            llm_gateway_compiler::compile(&yaml, &std::collections::HashMap::<String, String>::new()).unwrap().plan;
        Pool::new(plan.provider(ProviderKind::Local).unwrap(), std::time::Duration::from_secs(1))
    }

    #[tokio::test]
    async fn weights_3_2_1_over_6000_picks() {
        let p = pool(&[3, 2, 1]);
        let picks: Vec<usize> = (0..6000).map(|_| p.pick().unwrap()).collect();
        let count = |e| picks.iter().filter(|&&x| x == e).count();
        assert_eq!((count(0), count(1), count(2)), (3000, 2000, 1000));
        assert_eq!(&picks[..6], &[0, 1, 0, 2, 1, 0], "smooth, not bursty");
    }

    #[tokio::test]
    async fn unhealthy_endpoints_are_skipped_without_skewing_the_rest() {
        let p = pool(&[1, 1, 2]);
        p.set_healthy(0, false);
        let picks: Vec<usize> = (0..300).map(|_| p.pick().unwrap()).collect();
        let count = |e| picks.iter().filter(|&&x| x == e).count();
        assert_eq!((count(0), count(1), count(2)), (0, 100, 200));
        let order: Vec<usize> = p.attempt_order().collect();
        assert_eq!(order.len(), 2);
        assert!(!order.contains(&0));
        p.set_healthy(1, false);
        p.set_healthy(2, false);
        assert_eq!(p.pick(), None);
        assert_eq!(p.attempt_order().collect::<Vec<_>>(), [0, 1, 2], "all down: every endpoint, best effort");
        p.set_healthy(0, true);
        assert_eq!(p.attempt_order().collect::<Vec<_>>(), [0]);
    }

    #[tokio::test]
    async fn models_union_of_healthy_endpoints() {
        let p = pool(&[1, 1, 1]);
        p.endpoints[0].set_models(vec!["a".into(), "b".into()]);
        p.endpoints[1].set_models(vec!["b".into(), "c".into()]);
        p.endpoints[2].set_models(vec!["d".into()]);
        p.set_healthy(2, false);
        assert_eq!(p.models(), ["a", "b", "c"]);
    }
}
