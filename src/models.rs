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

/// The anchor's static list: Anthropic has no OpenAI-style model listing.
pub const ANTHROPIC_MODELS: [&str; 10] = [
    "claude-opus-4-6",
    "claude-sonnet-4-6",
    "claude-haiku-4-5-20251001",
    "claude-sonnet-4-5-20250929",
    "claude-opus-4-5-20251101",
    "claude-opus-4-1-20250805",
    "claude-sonnet-4-20250514",
    "claude-opus-4-20250514",
    "claude-3-7-sonnet-20250219",
    "claude-3-haiku-20240307",
];

pub fn list(live: &Live, key: Option<&KeyEntry>) -> Response<Body> {
    let mut entries: Vec<(String, &'static str)> = Vec::new();
    for kind in ProviderKind::ALL {
        let Some(pool) = live.pool(kind) else { continue };
        let models = match kind {
            ProviderKind::Anthropic => ANTHROPIC_MODELS.iter().map(|m| m.to_string()).collect(),
            _ => pool.models(),
        };
        entries.extend(
            models.into_iter().filter(|id| key.is_none_or(|k| k.allows_model(id))).map(|id| (id, kind.label())),
        );
    }
    if let Some(routing) = &live.plan.routing {
        for r in &routing.routes {
            if key.is_none_or(|k| k.allows_route(&r.name)) {
                entries.push((r.name.clone(), "llm-gateway"));
            }
        }
        entries.push((AUTO.to_owned(), "llm-gateway"));
    }
    let mut seen = HashSet::new();
    let data: Vec<Value> = entries
        .into_iter()
        .filter(|(id, _)| seen.insert(id.clone()))
        .map(|(id, owner)| json!({"id": id, "object": "model", "created": 0, "owned_by": owner}))
        .collect();
    json(StatusCode::OK, &json!({"object": "list", "data": data}))
}
