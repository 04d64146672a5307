//! Which model and provider a request goes to: the anchor's prefix rules, route names, and
//! for `auto` / no model (or every request with `allow_explicit_model: false`) the cascade:
//! heuristic rules, then the default route. (The embedding and classifier layers come with
//! semantic routing.)

use llm_gateway_compiler::keywords::RequestView;
use llm_gateway_compiler::plan::{ProviderKind, RoutingPlan};
use llm_gateway_compiler::{AUTO, Plan};

use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub model: String,
    pub route: Option<String>,
    pub provider: ProviderKind,
    /// How it was decided: `explicit`, `route` (the model named a route), `heuristic` or
    /// `default`.
    pub method: &'static str,
    /// The cascade's trace, as the anchor logs it (`heuristic:fast`, `default:general`).
    pub cascade: Vec<String>,
}

/// `request` gives the heuristics what they read; it is only called when the cascade runs
/// with heuristics enabled.
pub fn resolve<'c>(
    plan: &Plan,
    asked: Option<&str>,
    request: &dyn Fn() -> RequestView<'c>,
) -> Result<Target, ApiError> {
    let asked = asked.filter(|m| !m.is_empty() && *m != AUTO);
    let routing = plan.routing.as_ref();
    let route_named = |r: &RoutingPlan, name: &str| r.route(name).map(|route| to_target(&route.model, &route.name));
    match (asked, routing) {
        (Some(m), Some(r)) if r.allow_explicit_model => Ok(route_named(r, m).unwrap_or_else(|| explicit(m))),
        (Some(m), None) => Ok(explicit(m)),
        (_, Some(r)) => cascade(r, request),
        (None, None) => Err(model_required()),
    }
}

fn cascade<'c>(r: &RoutingPlan, request: &dyn Fn() -> RequestView<'c>) -> Result<Target, ApiError> {
    let mut trace = Vec::new();
    if let Some(h) = &r.heuristics {
        match h.decide(&request()) {
            Some(d) => {
                let route = &r.routes[d.route];
                trace.push(format!("heuristic:{}", route.name));
                return Ok(Target { method: "heuristic", cascade: trace, ..to_target(&route.model, &route.name) });
            }
            None => trace.push("heuristic:no_match".into()),
        }
    }
    let id = r.default_route.ok_or_else(model_required)?;
    let route = &r.routes[id];
    trace.push(format!("default:{}", route.name));
    Ok(Target { method: "default", cascade: trace, ..to_target(&route.model, &route.name) })
}

fn model_required() -> ApiError {
    ApiError::bad_request("model_required", "model is required")
}

fn explicit(model: &str) -> Target {
    Target {
        model: model.to_owned(),
        route: None,
        provider: ProviderKind::for_model(model),
        method: "explicit",
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

    fn plan(yaml: &str) -> Plan {
        llm_gateway_compiler::compile(yaml, &std::collections::HashMap::<String, String>::new()).unwrap().plan
    }

    #[test]
    fn prefix_routing_without_routes() {
        let p = plan("providers:\n  local: {}\n");
        assert_eq!(resolve(&p, Some("gpt-4o"), &none).unwrap().provider, ProviderKind::OpenAi);
        assert_eq!(resolve(&p, Some("llama3"), &none).unwrap().provider, ProviderKind::Local);
        assert_eq!(resolve(&p, Some("auto"), &none).unwrap_err().message, "model is required");
        assert_eq!(resolve(&p, None, &none).unwrap_err().message, "model is required");
    }

    #[test]
    fn routes_and_default() {
        let yaml = "providers:\n  local: {}\nrouting:\n  default_route: b\n  routes:\n    - {name: a, model: gpt-4o}\n    - {name: b, model: llama3}\n";
        let p = plan(yaml);
        let t = resolve(&p, None, &none).unwrap();
        assert_eq!((t.model.as_str(), t.route.as_deref()), ("llama3", Some("b")));
        let t = resolve(&p, Some("a"), &none).unwrap();
        assert_eq!((t.model.as_str(), t.provider), ("gpt-4o", ProviderKind::OpenAi));
        let t = resolve(&p, Some("qwen"), &none).unwrap();
        assert_eq!((t.model.as_str(), t.route), ("qwen", None));
        let strict = plan(&yaml.replace("routing:\n", "routing:\n  allow_explicit_model: false\n"));
        assert_eq!(resolve(&strict, Some("qwen"), &none).unwrap().model, "llama3");
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
        let t = resolve(&p, None, &asks("please translate this")).unwrap();
        assert_eq!(
            (t.model.as_str(), t.method, t.cascade.as_slice()),
            ("qwen", "heuristic", &["heuristic:a".to_owned()][..])
        );
        let t = resolve(&p, Some("auto"), &asks("hello")).unwrap();
        assert_eq!((t.model.as_str(), t.method), ("llama3", "default"));
        assert_eq!(t.cascade, ["heuristic:no_match", "default:b"]);
        let t = resolve(&p, Some("gpt-4o"), &asks("translate")).unwrap();
        assert_eq!(t.method, "explicit", "an explicit model skips the cascade");
    }
}
