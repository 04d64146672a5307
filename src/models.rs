//! `GET /v1/models`: the union of what the configured providers serve, the routes, and `auto`,
//! filtered by what the caller's key may use. Upstreams are asked concurrently, each with a
//! short deadline; one that fails is left out and logged.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use llm_gateway_compiler::AUTO;
use llm_gateway_compiler::acl::KeyEntry;
use llm_gateway_compiler::plan::ProviderKind;
use serde_json::{Value, json};
use tracing::warn;

use crate::body::{Body, json};
use crate::state::{Credential, EndpointTransport, Live, Pool};

const LIST_TIMEOUT: Duration = Duration::from_secs(5);

/// The anchor's static list: Anthropic has no OpenAI-style model listing.
const ANTHROPIC_MODELS: [&str; 10] = [
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

pub async fn list(live: &Live, key: Option<&KeyEntry>) -> Response<Body> {
    let mut entries: Vec<(String, &'static str)> = Vec::new();
    let fetches = ProviderKind::ALL.map(|kind| async move {
        match live.pool(kind) {
            None => Vec::new(),
            Some(_) if kind == ProviderKind::Anthropic => {
                ANTHROPIC_MODELS.iter().map(|m| (m.to_string(), "anthropic")).collect()
            }
            Some(pool) => upstream_models(pool).await,
        }
    });
    let [a, b, c] = fetches;
    let (a, b, c) = tokio::join!(a, b, c);
    for list in [a, b, c] {
        entries.extend(list.into_iter().filter(|(id, _)| key.is_none_or(|k| k.allows_model(id))));
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

/// Models of every endpoint of an OpenAI-compatible pool: `/v1/models`, or Ollama's `/api/tags`.
async fn upstream_models(pool: &Pool) -> Vec<(String, &'static str)> {
    let owner = pool.kind.label();
    let asks = pool.endpoints.iter().map(|e| async move {
        let EndpointTransport::Http(target) = &e.transport else {
            return Vec::new();
        };
        let (base, client) = (&target.base, &target.client);
        let get = |path: &str| {
            let mut req = Request::builder().method(Method::GET).uri(format!("{base}{path}"));
            if let Credential::Bearer(v) = &pool.credential {
                req = req.header(header::AUTHORIZATION, v.clone());
            }
            let req = req.body(Full::new(Bytes::new()));
            async move {
                let resp = tokio::time::timeout(LIST_TIMEOUT, client.request(req.ok()?)).await.ok()?.ok()?;
                if !resp.status().is_success() {
                    return None;
                }
                let body = tokio::time::timeout(LIST_TIMEOUT, resp.into_body().collect()).await.ok()?.ok()?;
                serde_json::from_slice::<Value>(&body.to_bytes()).ok()
            }
        };
        let ids = |v: &Value, list: &str, field: &str| -> Vec<String> {
            v.get(list)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|m| m.get(field)?.as_str().map(str::to_owned)).collect())
                .unwrap_or_default()
        };
        if let Some(v) = get("/v1/models").await {
            return ids(&v, "data", "id");
        }
        if let Some(v) = get("/api/tags").await {
            return ids(&v, "models", "name");
        }
        warn!(endpoint = %e.name, "could not list models");
        Vec::new()
    });
    let lists = futures_util::future::join_all(asks).await;
    lists.into_iter().flatten().map(|id| (id, owner)).collect()
}
