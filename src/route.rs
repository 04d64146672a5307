//! Which model and provider a request goes to: the Go gateway's prefix rules, route names, and
//! for `auto` / no model (or every request with `allow_explicit_model: false`) the cascade:
//! heuristic rules, embeddings, the classifier, then the default route.

use llm_gateway_compiler::acl::KeyEntry;
use llm_gateway_compiler::keywords::RequestView;
use llm_gateway_compiler::plan::{ProviderKind, RoutePlan, RoutingPlan};
use llm_gateway_compiler::{AUTO, Plan};
use tracing::warn;

use crate::embed::{self, Pools};
use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub model: String,
    pub route: Option<String>,
    pub provider: ProviderKind,
    /// How it was decided: `explicit`, `route` (the model named a route), `alias` (the model
    /// matched `routing.aliases`), `heuristic`, `semantic`, `classifier` or `default`.
    pub method: &'static str,
    /// The similarity or the classifier's confidence; 1 for rules and names, 0 for the default.
    pub confidence: f64,
    /// The cascade's trace, as the Go gateway logs it (`heuristic:no_match`, `semantic:fast:0.91`).
    pub cascade: Vec<String>,
}

/// The embedding layer reads only the last user message, cut to this many bytes.
const PROMPT_BYTES: usize = 2048;

/// Whether `key` may use `route`: its name is in the key's `allowed_routes` and its model in
/// `allowed_models` (no key: every route).
pub fn usable(key: Option<&KeyEntry>, route: &RoutePlan) -> bool {
    key.is_none_or(|k| k.allows_route(&route.name) && k.allows_model(&route.model))
}

/// `request` gives the cascade what it reads; it is only called when the cascade runs. The
/// cascade only chooses routes `key` may use ([`usable`]); a name the client asked for is
/// returned as asked (the caller refuses it if the key may not use it).
pub async fn resolve<'c>(
    plan: &Plan,
    pools: &Pools,
    asked: Option<&str>,
    request: &(dyn Fn() -> RequestView<'c> + Sync),
    key: Option<&KeyEntry>,
) -> Result<Target, ApiError> {
    let asked = asked.filter(|m| !m.is_empty() && *m != AUTO);
    let routing = plan.routing.as_ref();
    let route_named = |r: &RoutingPlan, name: &str| r.route(name).map(|route| to_target(&route.model, &route.name));
    // An alias is the operator's choice: it applies even where explicit models are refused.
    if let (Some(m), Some(r)) = (asked, routing)
        && let Some(alias) = r.alias(m)
    {
        return match alias {
            AUTO => Box::pin(cascade(r, pools, request, key)).await,
            name => Ok(Target { method: "alias", ..route_named(r, name).unwrap_or_else(|| explicit(name)) }),
        };
    }
    match (asked, routing) {
        (Some(m), Some(r)) if r.allow_explicit_model => Ok(route_named(r, m).unwrap_or_else(|| explicit(m))),
        (Some(m), None) => Ok(explicit(m)),
        // Boxed: the cascade's state (an embedding or a classifier call in flight) is
        // kilobytes, which every request's future would otherwise carry and copy.
        (_, Some(r)) => Box::pin(cascade(r, pools, request, key)).await,
        (None, None) => Err(model_required()),
    }
}

async fn cascade<'c>(
    r: &RoutingPlan,
    pools: &Pools,
    request: &(dyn Fn() -> RequestView<'c> + Sync),
    key: Option<&KeyEntry>,
) -> Result<Target, ApiError> {
    let allowed = |id: usize| usable(key, &r.routes[id]);
    if key.is_some() && !r.routes.is_empty() && !r.routes.iter().any(|route| usable(key, route)) {
        return Err(ApiError::forbidden(
            "route_not_allowed",
            "this API key may use none of the routes `auto` chooses from",
        ));
    }
    let mut trace = Vec::new();
    let decided = |id: usize, method: &'static str, confidence: f64, trace: Vec<String>| {
        let route = &r.routes[id];
        Ok(Target { method, confidence, cascade: trace, ..to_target(&route.model, &route.name) })
    };
    let needs_text = r.semantic.is_some() || r.classifier.is_some();
    let view = (r.heuristics.is_some() || needs_text).then(request);
    if let (Some(h), Some(view)) = (&r.heuristics, &view) {
        match h.decide(view) {
            Some(d) if allowed(d.route) => {
                trace.push(format!("heuristic:{}", r.routes[d.route].name));
                return decided(d.route, "heuristic", 1.0, trace);
            }
            Some(d) => trace.push(format!("heuristic:{}:not_allowed", r.routes[d.route].name)),
            None => trace.push("heuristic:no_match".into()),
        }
    }
    let text = view.as_ref().filter(|_| needs_text).and_then(last_user_text);
    let mut ask_classifier = r.classifier.is_some() && r.semantic.is_none();
    if let (Some((semantic, vectors)), Some(text)) = (embed::vectors(r), text) {
        let prompt = &text[..floor_char_boundary(text, PROMPT_BYTES)];
        match embed::prompt(semantic, pools, prompt).await {
            Err(e) => warn!("embedding match error: {e}"),
            Ok(query) => match vectors.best(&query, semantic.comparison) {
                Some((id, score)) if !allowed(id) => {
                    trace.push(format!("semantic:{}:{score:.2}:not_allowed", r.routes[id].name));
                    ask_classifier = r.classifier.is_some();
                }
                Some((id, score)) if f64::from(score) >= semantic.threshold => {
                    trace.push(format!("semantic:{}:{score:.2}", r.routes[id].name));
                    return decided(id, "semantic", score.into(), trace);
                }
                Some((id, score)) if f64::from(score) >= semantic.ambiguous_threshold && r.classifier.is_some() => {
                    trace.push(format!("semantic:{}:{score:.2}:ambiguous", r.routes[id].name));
                    ask_classifier = true;
                }
                // The nearest route and its score, so a miss says how near it came.
                Some((id, score)) => trace.push(format!("semantic:no_match(best={}:{score:.2})", r.routes[id].name)),
                None => trace.push("semantic:no_match".into()),
            },
        }
    } else if r.semantic.is_some() {
        trace.push("semantic:no_match".into());
    }
    if let (true, Some(classifier), Some(text)) = (ask_classifier, &r.classifier, text) {
        match crate::classifier::classify(classifier, r, pools, text).await {
            Ok((id, confidence)) if !allowed(id) => {
                trace.push(format!("classifier:{}:{confidence:.2}:not_allowed", r.routes[id].name));
            }
            Ok((id, confidence)) if confidence >= classifier.confidence_threshold => {
                trace.push(format!("classifier:{}:{confidence:.2}", r.routes[id].name));
                return decided(id, "classifier", confidence, trace);
            }
            Ok(_) => trace.push("classifier:no_match".into()),
            Err(e) => {
                warn!("classifier error: {e}");
                trace.push("classifier:no_match".into());
            }
        }
    }
    let id = r.default_route.ok_or_else(model_required)?;
    // The default route, or when the key may not use it, the first route it may use.
    let id = match allowed(id) {
        true => id,
        false => (0..r.routes.len()).find(|&i| allowed(i)).unwrap_or(id),
    };
    trace.push(format!("default:{}", r.routes[id].name));
    decided(id, "default", 0.0, trace)
}

fn last_user_text<'v>(view: &'v RequestView) -> Option<&'v str> {
    view.messages.iter().rev().find(|m| m.role.eq_ignore_ascii_case("user")).map(|m| m.text.as_ref())
}

/// The largest index ≤ `max` on a character boundary (the Go gateway cuts bytes and can split a
/// character).
fn floor_char_boundary(text: &str, max: usize) -> usize {
    (0..=max.min(text.len())).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0)
}

fn model_required() -> ApiError {
    ApiError::bad_request("model_required", "model is required")
}

impl Target {
    /// A request that names no model, sent to `provider` as it is (an unknown `/v1/*` path).
    pub fn unnamed(provider: ProviderKind) -> Self {
        Target { provider, method: "default", ..explicit("") }
    }
}

fn explicit(model: &str) -> Target {
    Target {
        model: model.to_owned(),
        route: None,
        provider: ProviderKind::for_model(model),
        method: "explicit",
        confidence: 1.0,
        cascade: Vec::new(),
    }
}

fn to_target(model: &str, route: &str) -> Target {
    Target { route: Some(route.to_owned()), method: "route", ..explicit(model) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> RequestView<'static> {
        RequestView::default()
    }

    fn decide<'c>(
        plan: &Plan,
        asked: Option<&str>,
        request: &(dyn Fn() -> RequestView<'c> + Sync),
    ) -> Result<Target, ApiError> {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(resolve(plan, &Default::default(), asked, request, None))
    }

    fn plan(yaml: &str) -> Plan {
        llm_gateway_compiler::compile(yaml, &std::collections::HashMap::<String, String>::new()).unwrap().plan
    }

    #[test]
    fn prefix_routing_without_routes() {
        let p = plan("providers:\n  local: {}\n");
        assert_eq!(decide(&p, Some("gpt-4o"), &none).unwrap().provider, ProviderKind::OpenAi);
        assert_eq!(decide(&p, Some("llama3"), &none).unwrap().provider, ProviderKind::Local);
        assert_eq!(decide(&p, Some("auto"), &none).unwrap_err().message, "model is required");
        assert_eq!(decide(&p, None, &none).unwrap_err().message, "model is required");
    }

    #[test]
    fn routes_and_default() {
        let yaml = "providers:\n  local: {}\nrouting:\n  default_route: b\n  routes:\n    - {name: a, model: gpt-4o}\n    - {name: b, model: llama3}\n";
        let p = plan(yaml);
        let t = decide(&p, None, &none).unwrap();
        assert_eq!((t.model.as_str(), t.route.as_deref()), ("llama3", Some("b")));
        let t = decide(&p, Some("a"), &none).unwrap();
        assert_eq!((t.model.as_str(), t.provider), ("gpt-4o", ProviderKind::OpenAi));
        let t = decide(&p, Some("qwen"), &none).unwrap();
        assert_eq!((t.model.as_str(), t.route), ("qwen", None));
        let strict = plan(&yaml.replace("routing:\n", "routing:\n  allow_explicit_model: false\n"));
        assert_eq!(decide(&strict, Some("qwen"), &none).unwrap().model, "llama3");
    }

    #[test]
    fn aliases_map_agent_model_ids_first_match_wins() {
        let yaml = "providers:\n  local: {}\nrouting:\n  allow_explicit_model: false\n  aliases:\n    \"claude-*haiku*\": fast\n    \"claude-*\": qwen2.5-coder\n    \"gpt-5*\": auto\n  routes:\n    - {name: fast, model: llama3}\n    - {name: big, model: qwen}\n";
        let p = plan(yaml);
        let t = decide(&p, Some("claude-haiku-4-5-20251001"), &none).unwrap();
        assert_eq!((t.model.as_str(), t.route.as_deref(), t.method), ("llama3", Some("fast"), "alias"));
        let t = decide(&p, Some("claude-sonnet-4-5-20250929"), &none).unwrap();
        assert_eq!((t.model.as_str(), t.route, t.provider), ("qwen2.5-coder", None, ProviderKind::Local));
        let t = decide(&p, Some("gpt-5-codex"), &none).unwrap();
        assert_eq!((t.model.as_str(), t.method), ("llama3", "default"), "`auto` runs the cascade");
        assert_eq!(decide(&p, Some("mistral"), &none).unwrap().method, "default", "no alias: as before");
    }

    #[test]
    fn heuristics_run_before_the_default() {
        let yaml = "providers:\n  local: {}\nrouting:\n  default_route: b\n  heuristics:\n    enabled: true\n    rules:\n      - match: { keywords: [translate] }\n        route: a\n  routes:\n    - {name: a, model: qwen}\n    - {name: b, model: llama3}\n";
        let p = plan(yaml);
        let asks = |text: &'static str| {
            move || RequestView {
                messages: vec![llm_gateway_compiler::keywords::Message { role: "user", text: text.into() }],
                ..Default::default()
            }
        };
        let t = decide(&p, None, &asks("please translate this")).unwrap();
        assert_eq!(
            (t.model.as_str(), t.method, t.cascade.as_slice()),
            ("qwen", "heuristic", &["heuristic:a".to_owned()][..])
        );
        let t = decide(&p, Some("auto"), &asks("hello")).unwrap();
        assert_eq!((t.model.as_str(), t.method), ("llama3", "default"));
        assert_eq!(t.cascade, ["heuristic:no_match", "default:b"]);
        let t = decide(&p, Some("gpt-4o"), &asks("translate")).unwrap();
        assert_eq!(t.method, "explicit", "an explicit model skips the cascade");
    }

    #[test]
    fn the_cascade_chooses_only_among_the_routes_the_key_may_use() {
        let yaml = "providers:\n  local: {}\napi_keys:\n  enabled: true\n  keys:\n    - {name: small, key: sk-gw-small-0123456789abcdef, allowed_routes: [cheap]}\n    - {name: none, key: sk-gw-none-0123456789abcdef, allowed_models: [\"gpt-*\"]}\n    - {name: models, key: sk-gw-models-0123456789abcdef, allowed_models: [llama3]}\nrouting:\n  default_route: big\n  heuristics:\n    enabled: true\n    rules:\n      - match: { keywords: [hard] }\n        route: big\n  routes:\n    - {name: big, model: qwen}\n    - {name: cheap, model: llama3}\n";
        let p = plan(yaml);
        let keys = p.keys.as_ref().unwrap();
        let small = keys.lookup("sk-gw-small-0123456789abcdef");
        let hard = || RequestView {
            messages: vec![llm_gateway_compiler::keywords::Message { role: "user", text: "a hard one".into() }],
            ..Default::default()
        };
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let run = |key, asked| rt.block_on(resolve(&p, &Default::default(), asked, &hard, key));
        let t = run(None, Some("auto")).unwrap();
        assert_eq!((t.route.as_deref(), t.method), (Some("big"), "heuristic"), "no key: every route");
        let t = run(small, Some("auto")).unwrap();
        assert_eq!((t.route.as_deref(), t.method), (Some("cheap"), "default"), "{:?}", t.cascade);
        assert_eq!(t.cascade, ["heuristic:big:not_allowed", "default:cheap"]);
        let t = run(keys.lookup("sk-gw-models-0123456789abcdef"), None).unwrap();
        assert_eq!(t.route.as_deref(), Some("cheap"), "a route whose model the key may not use is skipped");
        let e = run(keys.lookup("sk-gw-none-0123456789abcdef"), Some("auto")).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (403, "route_not_allowed"), "{}", e.message);
        assert_eq!(run(small, Some("big")).unwrap().route.as_deref(), Some("big"), "asked by name: the caller checks");
    }
}
