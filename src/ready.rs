//! `/ready`: whether the gateway can serve what its plan routes. `/health` stays liveness
//! (the process answers); `/ready` is for load balancers and orchestrators that should send
//! traffic elsewhere while a provider the plan depends on has no healthy endpoint.
//!
//! A plan is always loaded while the server runs (it starts after the first `Live::build`,
//! which probes every endpoint once). The providers checked are those a request can reach:
//! with explicit models allowed (no `routing:`, or `allow_explicit_model: true`) the prefix
//! rules can send to every configured provider; otherwise the routes' providers and those of
//! the aliases that name a model rather than a route.

use llm_gateway_compiler::AUTO;
use llm_gateway_compiler::plan::ProviderKind;
use serde_json::json;

use crate::state::Live;

/// `Ok(())` when ready, else the reasons it is not.
pub fn check(live: &Live) -> Result<(), Vec<String>> {
    let reasons: Vec<String> = reachable(live)
        .into_iter()
        .filter_map(|kind| match live.pool(kind) {
            None => Some(format!("provider '{}' is routed to but not configured", kind.config_name())),
            Some(pool) if pool.endpoints.iter().any(|e| e.is_healthy()) => None,
            Some(pool) => Some(format!(
                "provider '{}' has no healthy endpoint ({})",
                kind.config_name(),
                pool.endpoints.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(", ")
            )),
        })
        .collect();
    if reasons.is_empty() { Ok(()) } else { Err(reasons) }
}

/// The providers a request can be sent to under `live`'s plan.
fn reachable(live: &Live) -> Vec<ProviderKind> {
    let plan = &live.plan;
    let configured = ProviderKind::ALL.into_iter().filter(|k| plan.provider(*k).is_some());
    let Some(routing) = plan.routing.as_ref().filter(|r| !r.allow_explicit_model) else {
        return configured.collect();
    };
    let mut kinds: Vec<ProviderKind> = Vec::new();
    let routes = routing.routes.iter().map(|r| ProviderKind::for_model(&r.model));
    let aliased = routing
        .aliases
        .iter()
        .map(|(_, target)| target.as_str())
        .filter(|t| *t != AUTO && routing.route(t).is_none())
        .map(ProviderKind::for_model);
    for kind in routes.chain(aliased) {
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    kinds
}

/// The `/ready` answer: 200 `{"status":"ready"}` or 503 `{"status":"not_ready","reasons":[…]}`.
pub fn response(live: &Live) -> (http::StatusCode, serde_json::Value) {
    match check(live) {
        Ok(()) => (http::StatusCode::OK, json!({"status": "ready"})),
        Err(reasons) => (http::StatusCode::SERVICE_UNAVAILABLE, json!({"status": "not_ready", "reasons": reasons})),
    }
}
