//! What the server reads on every request: one `Live` snapshot (plan + upstream clients),
//! behind an `ArcSwap` so a reload can replace it without stopping traffic.

use std::sync::Arc;

use arc_swap::ArcSwap;
use llm_gateway_compiler::Plan;
use llm_gateway_compiler::plan::{ProviderKind, Transport};

use crate::pool::Pool;

pub type Shared = Arc<ArcSwap<Live>>;

pub struct Live {
    pub plan: Arc<Plan>,
    /// Indexed by [`ProviderKind::index`].
    pub pools: [Option<Arc<Pool>>; 3],
    /// Per key subject (its `user`, else its name), with `limits.max_concurrent_per_key` or
    /// the key's own `max_concurrent`; kept across reloads so slots in use stay counted.
    pub key_gates: std::collections::HashMap<String, Arc<crate::queue::Gate>>,
    /// `limits.max_concurrent` for the whole gateway; kept across reloads.
    pub gateway_gate: Option<Arc<crate::queue::Gate>>,
    /// Per-key `rpm`, `tpm` and `tokens_per_day`; counters kept across reloads.
    pub limiter: Arc<crate::ratelimit::Limiter>,
}

/// How [`Live::build`] treats endpoints that are new in the plan.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Probe them before the state serves traffic (`run` and reloads).
    First,
    /// Leave them unprobed (`check`, tools).
    Never,
}

impl Live {
    /// The state that executes `plan`, finished here and nowhere else: endpoints whose
    /// identity is unchanged are kept from `previous` (their connections, health and models),
    /// new ones are probed (with [`Probe::First`]), and the routes' examples are embedded
    /// (reusing vectors already computed for the same texts). Settings that cannot change
    /// while serving (`listen`, `zrok.share`) keep what `previous` runs with. The plan is
    /// immutable after.
    pub async fn build(
        mut plan: Plan,
        previous: Option<&Live>,
        probe: Probe,
    ) -> Result<(Live, crate::embed::Embedded), String> {
        if let Some(old) = previous {
            plan.listen = old.plan.listen.clone();
            plan.zrok_share = old.plan.zrok_share.clone();
        }
        let connect = crate::transport::http::Connecting {
            timeout: plan.server.connect_timeout,
            idle: plan.server.upstream_idle_timeout,
        };
        let limits = &plan.server;
        let mut fresh = Vec::new();
        let pools = ProviderKind::ALL.map(|k| {
            let p = plan.provider(k)?;
            let (pool, new) = Pool::reconciled(p, connect, previous.and_then(|o| o.pool(k)));
            if let Some(limit) = limits.max_concurrent_per_endpoint {
                for e in &pool.endpoints {
                    e.limit(limit, limits.max_queue);
                }
            }
            let pool = Arc::new(pool);
            if !new.is_empty() {
                fresh.push((pool.clone(), new));
            }
            Some(pool)
        });
        let max_queue = plan.server.max_queue;
        let gate = |old: Option<&Arc<crate::queue::Gate>>, limit: usize| match old {
            Some(g) => {
                g.set_limits(limit, max_queue);
                g.clone()
            }
            None => crate::queue::Gate::new(limit, max_queue),
        };
        let mut key_gates = std::collections::HashMap::new();
        for k in plan.keys.iter().flat_map(|t| t.entries()) {
            if let Some(limit) = k.limits.max_concurrent.or(plan.server.max_concurrent_per_key) {
                let old = previous.and_then(|p| p.key_gates.get(k.subject()));
                key_gates.entry(k.subject().to_owned()).or_insert_with(|| gate(old, limit));
            }
        }
        let gateway_gate =
            plan.server.max_concurrent.map(|limit| gate(previous.and_then(|p| p.gateway_gate.as_ref()), limit));
        let limiter = crate::ratelimit::Limiter::reconciled(&plan.rate_limits, previous.map(|p| &p.limiter));
        if probe == Probe::First {
            let round = fresh.iter().map(|(pool, indices)| async move {
                match previous {
                    None => crate::pool::health::first_round(pool).await,
                    Some(_) => crate::pool::health::probe_some(pool, indices).await,
                }
            });
            futures_util::future::join_all(round).await;
        }
        let embedded = crate::embed::attach(plan.routing.as_mut(), &pools).await?;
        Ok((Self { plan: Arc::new(plan), pools, key_gates, gateway_gate, limiter }, embedded))
    }

    pub fn pool(&self, kind: ProviderKind) -> Option<&Pool> {
        self.pools[kind.index()].as_deref()
    }

    /// The model as a metric label: itself when the plan knows it, else `other`.
    pub fn model_label<'m>(&self, model: &'m str) -> &'m str {
        if self.is_label(model) { model } else { "other" }
    }

    /// Whether the plan knows the model (a route's model or fallback, a model an endpoint
    /// reported, an Anthropic model): only those are metric labels, so clients cannot grow the
    /// label set.
    pub fn is_label(&self, model: &str) -> bool {
        let routed = self
            .plan
            .routing
            .iter()
            .flat_map(|r| &r.routes)
            .any(|r| r.model == model || r.fallbacks.iter().any(|f| f == model));
        let fallback = || self.plan.fallbacks.iter().any(|(_, list)| list.iter().any(|f| f == model));
        let listed = || {
            crate::providers::anthropic::MODELS.contains(&model)
                || self.pools.iter().flatten().any(|p| p.endpoints.iter().any(|e| e.reports(model)))
        };
        routed || fallback() || listed()
    }
}

/// True when the plan serves through a zrok share or reaches an endpoint through one.
pub fn uses_zrok(plan: &Plan) -> bool {
    plan.zrok_share.is_some() || reaches_through_zrok(plan)
}

/// True when some endpoint is reached through a zrok share.
pub fn reaches_through_zrok(plan: &Plan) -> bool {
    plan.providers.iter().flatten().flat_map(|p| &p.endpoints).any(|e| matches!(e.transport, Transport::Zrok { .. }))
}
