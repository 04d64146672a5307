//! Which model and provider a request goes to: the anchor's prefix rules, route names, and
//! `auto` / no model → the default route. (The heuristic, embedding and classifier layers of
//! the cascade arrive with semantic routing.)

use llm_gateway_compiler::plan::{ProviderKind, RoutingPlan};
use llm_gateway_compiler::{AUTO, Plan};

use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub model: String,
    pub route: Option<String>,
    pub provider: ProviderKind,
    /// How it was decided: `explicit`, `route` (the model named a route) or `default`.
    pub method: &'static str,
}

pub fn resolve(plan: &Plan, asked: Option<&str>) -> Result<Target, ApiError> {
    let asked = asked.filter(|m| !m.is_empty() && *m != AUTO);
    let routing = plan.routing.as_ref();
    let route_named = |r: &RoutingPlan, name: &str| r.route(name).map(|route| to_target(&route.model, &route.name));
    match (asked, routing) {
        (Some(m), Some(r)) if r.allow_explicit_model => Ok(route_named(r, m).unwrap_or_else(|| explicit(m))),
        (Some(m), None) => Ok(explicit(m)),
        (_, Some(r)) => match r.default_route {
            Some(id) => Ok(Target { method: "default", ..to_target(&r.routes[id].model, &r.routes[id].name) }),
            None => Err(model_required()),
        },
        (None, None) => Err(model_required()),
    }
}

fn model_required() -> ApiError {
    ApiError::bad_request("model_required", "model is required")
}

fn explicit(model: &str) -> Target {
    Target { model: model.to_owned(), route: None, provider: ProviderKind::for_model(model), method: "explicit" }
}

fn to_target(model: &str, route: &str) -> Target {
    Target { route: Some(route.to_owned()), method: "route", ..explicit(model) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(yaml: &str) -> Plan {
        llm_gateway_compiler::compile(yaml, &std::collections::HashMap::<String, String>::new()).unwrap().plan
    }

    #[test]
    fn prefix_routing_without_routes() {
        let p = plan("providers:\n  local: {}\n");
        assert_eq!(resolve(&p, Some("gpt-4o")).unwrap().provider, ProviderKind::OpenAi);
        assert_eq!(resolve(&p, Some("llama3")).unwrap().provider, ProviderKind::Local);
        assert_eq!(resolve(&p, Some("auto")).unwrap_err().message, "model is required");
        assert_eq!(resolve(&p, None).unwrap_err().message, "model is required");
    }

    #[test]
    fn routes_and_default() {
        let yaml = "providers:\n  local: {}\nrouting:\n  default_route: b\n  routes:\n    - {name: a, model: gpt-4o}\n    - {name: b, model: llama3}\n";
        let p = plan(yaml);
        let t = resolve(&p, None).unwrap();
        assert_eq!((t.model.as_str(), t.route.as_deref()), ("llama3", Some("b")));
        let t = resolve(&p, Some("a")).unwrap();
        assert_eq!((t.model.as_str(), t.provider), ("gpt-4o", ProviderKind::OpenAi));
        let t = resolve(&p, Some("qwen")).unwrap();
        assert_eq!((t.model.as_str(), t.route), ("qwen", None));
        let strict = plan(&yaml.replace("routing:\n", "routing:\n  allow_explicit_model: false\n"));
        assert_eq!(resolve(&strict, Some("qwen")).unwrap().model, "llama3");
    }
}
