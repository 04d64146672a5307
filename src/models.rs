//! `GET /v1/models`: the union of what the configured providers serve (for OpenAI-compatible
//! pools, what their healthy endpoints reported to the last health probes: no fan-out per
//! request), the routes, and `auto`, filtered by what the caller's key may use.

use std::collections::HashSet;

use http::{Response, StatusCode};
use llm_gateway_compiler::AUTO;
use llm_gateway_compiler::acl::KeyEntry;
use llm_gateway_compiler::plan::ProviderKind;
use serde_json::{Value, json};

use crate::body::{Body, json};
use crate::state::Live;

pub fn list(live: &Live, key: Option<&KeyEntry>) -> Response<Body> {
    json(StatusCode::OK, &json!({"object": "list", "data": entries(live, key)}))
}

/// `GET /v1/models/{id}`: the entry the list has for `id`, or OpenAI's 404.
pub fn one(live: &Live, key: Option<&KeyEntry>, id: &str) -> Response<Body> {
    match entries(live, key).into_iter().find(|e| e["id"] == id) {
        Some(entry) => json(StatusCode::OK, &entry),
        None => json(
            StatusCode::NOT_FOUND,
            &json!({"error": {
                "message": format!("The model '{id}' does not exist or you do not have access to it."),
                "type": "invalid_request_error",
                "param": null,
                "code": "model_not_found",
            }}),
        ),
    }
}

fn entries(live: &Live, key: Option<&KeyEntry>) -> Vec<Value> {
    let mut entries: Vec<(String, &'static str)> = Vec::new();
    for kind in ProviderKind::ALL {
        let Some(pool) = live.pool(kind) else { continue };
        let fixed = crate::providers::adapter(kind).static_models();
        let models = if fixed.is_empty() { pool.models() } else { fixed.iter().map(|m| m.to_string()).collect() };
        entries.extend(
            models.into_iter().filter(|id| key.is_none_or(|k| k.allows_model(id))).map(|id| (id, kind.label())),
        );
    }
    if let Some(routing) = &live.plan.routing {
        // A route is listed when the key may use it (its name and its model); `auto` when the
        // cascade has a route it may choose for this key.
        let usable: Vec<_> = routing.routes.iter().filter(|r| crate::route::usable(key, r)).collect();
        for r in &usable {
            entries.push((r.name.clone(), "llm-gateway"));
        }
        if !usable.is_empty() || key.is_none() {
            entries.push((AUTO.to_owned(), "llm-gateway"));
        }
    }
    let mut seen = HashSet::new();
    entries
        .into_iter()
        .filter(|(id, _)| seen.insert(id.clone()))
        .map(|(id, owner)| json!({"id": id, "object": "model", "created": 0, "owned_by": owner}))
        .collect()
}
