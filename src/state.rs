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
    /// Per virtual key, with `limits.max_concurrent_per_key`.
    pub key_gates: std::collections::HashMap<String, Arc<crate::queue::Gate>>,
}

/// Pools with endpoints that are new in this plan (their indices), to probe before use.
pub type Fresh = Vec<(Arc<Pool>, Vec<usize>)>;

impl Live {
    pub fn new(plan: Plan) -> Self {
        Self::reconciled(plan, None).0
    }

    /// The state for `plan`, keeping from `old` every endpoint whose identity is unchanged
    /// (its connections, health and models).
    pub fn reconciled(plan: Plan, old: Option<&Live>) -> (Self, Fresh) {
        let connect = plan.server.connect_timeout;
        let limits = &plan.server;
        let mut fresh = Vec::new();
        let pools = ProviderKind::ALL.map(|k| {
            let p = plan.provider(k)?;
            let (pool, new) = Pool::reconciled(p, connect, old.and_then(|o| o.pool(k)));
            if let Some(limit) = limits.max_concurrent {
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
        let key_gates = match (&plan.keys, plan.server.max_concurrent_per_key) {
            (Some(keys), Some(limit)) => {
                keys.names().map(|n| (n.to_owned(), crate::queue::Gate::new(limit, plan.server.max_queue))).collect()
            }
            _ => Default::default(),
        };
        (Self { plan: Arc::new(plan), pools, key_gates }, fresh)
    }

    /// Puts the routes' example vectors into the plan (before the state is shared).
    pub async fn embed(&mut self) -> Result<crate::embed::Embedded, String> {
        let plan = Arc::get_mut(&mut self.plan).ok_or("the plan is already shared")?;
        crate::embed::attach(plan.routing.as_mut(), &self.pools).await
    }

    pub fn pool(&self, kind: ProviderKind) -> Option<&Pool> {
        self.pools[kind.index()].as_deref()
    }

    /// The model as a metric label: itself when the plan knows it (a route's model, a model
    /// an endpoint reported, an Anthropic model), else `other` — clients cannot grow the
    /// label set.
    pub fn model_label(&self, model: &str) -> String {
        let routed = self.plan.routing.iter().flat_map(|r| &r.routes).any(|r| r.model == model);
        let listed = || {
            crate::models::ANTHROPIC_MODELS.contains(&model)
                || self.pools.iter().flatten().any(|p| p.endpoints.iter().any(|e| e.reports(model)))
        };
        if routed || listed() { model.to_owned() } else { "other".to_owned() }
    }
}

/// True when the plan serves through a zrok share or reaches an endpoint through one.
pub fn uses_zrok(plan: &Plan) -> bool {
    plan.zrok_share.is_some()
        || plan
            .providers
            .iter()
            .flatten()
            .flat_map(|p| &p.endpoints)
            .any(|e| matches!(e.transport, Transport::Zrok { .. }))
}
