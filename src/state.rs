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
}

impl Live {
    pub fn new(plan: Plan) -> Self {
        let connect = plan.server.connect_timeout;
        let pools = ProviderKind::ALL.map(|k| plan.provider(k).map(|p| Arc::new(Pool::new(p, connect))));
        Self { plan: Arc::new(plan), pools }
    }

    pub fn pool(&self, kind: ProviderKind) -> Option<&Pool> {
        self.pools[kind.index()].as_deref()
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
