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
        let connect = plan.server.connect_timeout;
        let limits = &plan.server;
        let mut fresh = Vec::new();
        let pools = ProviderKind::ALL.map(|k| {
            let p = plan.provider(k)?;
            let (pool, new) = Pool::reconciled(p, connect, previous.and_then(|o| o.pool(k)));
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
        Ok((Self { plan: Arc::new(plan), pools, key_gates }, embedded))
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
            crate::providers::anthropic::MODELS.contains(&model)
                || self.pools.iter().flatten().any(|p| p.endpoints.iter().any(|e| e.reports(model)))
        };
        if routed || listed() { model.to_owned() } else { "other".to_owned() }
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
