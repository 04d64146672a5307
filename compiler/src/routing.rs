//! The `routing:` section → route table, heuristics, semantic and classifier settings, with
//! the cross-checks the Go gateway never made (unknown routes, threshold order, dead rules).

use std::collections::HashMap;
use std::time::Duration;

use crate::decode::{Cx, Spanned, suggest};
use crate::endpoints::{bounded, non_empty};
use crate::glob::Glob;
use crate::keywords::{Heuristics, RuleSpec};
use crate::plan::{
    CachePlan, ClassifierPlan, ClassifierProvider, Comparison, EmbedProvider, ProviderKind, ProviderPlan, RouteId,
    RoutePlan, RoutingPlan, SemanticPlan,
};
use crate::raw;

/// The model name clients send to ask for automatic routing.
pub const AUTO: &str = "auto";

pub fn compile(cx: &mut Cx, raw: &raw::Routing, providers: &[Option<ProviderPlan>; 3]) -> RoutingPlan {
    let (routes, by_name, origins) = routes(cx, raw, providers);
    let lookup = |cx: &mut Cx, path: &str, name: &Spanned<String>| resolve(cx, &routes, &by_name, path, name);

    let explicit_default = non_empty(&raw.default_route).and_then(|d| lookup(cx, "routing.default_route", d));
    let default_route = explicit_default.or(if routes.is_empty() { None } else { Some(0) });

    let enabled = |f: &Option<Spanned<bool>>| f.as_ref().is_some_and(|b| b.value);
    let mut rule_targets = Vec::new();
    let heuristics = raw.heuristics.as_ref().and_then(|h| {
        let specs = rules(cx, h, &lookup);
        rule_targets = specs.iter().map(|s| s.route).collect();
        if !enabled(&h.enabled) {
            rule_targets.clear();
            return None;
        }
        Heuristics::compile(&specs)
            .map_err(|e| {
                cx.at("routing.heuristics", |cx| cx.error(h.span.clone(), format!("cannot compile keywords: {e}")))
            })
            .ok()
    });

    let semantic = raw.semantic.as_ref().filter(|s| enabled(&s.enabled)).map(|s| semantic(cx, s, raw, providers));
    let classifier = raw.classifier.as_ref().filter(|c| enabled(&c.enabled)).map(|c| classifier(cx, c, raw, providers));
    if let Some(s) = &raw.semantic
        && !enabled(&s.enabled)
    {
        // Still check the numbers, so turning the layer on later cannot surprise.
        thresholds(cx, s);
    }

    // `id` numbers the compiled routes; `at` is where each came from in `routing.routes` (a
    // route with errors is left out, so the two differ after it).
    let written = raw.routes.as_ref().map(|l| l.value.as_slice()).unwrap_or_default();
    for (id, (route, &at)) in routes.iter().zip(&origins).enumerate() {
        let reachable = Some(id) == default_route
            || rule_targets.contains(&id)
            || classifier.is_some()
            || (semantic.is_some() && !route.examples.is_empty());
        if let (false, Some(w)) = (reachable, written.get(at)) {
            cx.at(&format!("routing.routes[{at}]"), |cx| {
                cx.warn(
                    w.span.clone(),
                    format!("nothing can route to `{}`", route.name),
                    Some("it is not the default, no enabled heuristic names it, and neither embeddings nor the classifier can pick it; clients can still ask for it by name".into()),
                )
            });
        }
    }

    RoutingPlan {
        allow_explicit_model: raw.allow_explicit_model.as_ref().is_none_or(|b| b.value),
        aliases: aliases(cx, raw),
        routes,
        by_name,
        default_route,
        heuristics,
        semantic,
        classifier,
    }
}

/// `routing.aliases`: each key a valid glob, each target non-empty. A target that is not a
/// route (nor `auto`) is a model name, sent to the provider its prefix selects.
fn aliases(cx: &mut Cx, raw: &raw::Routing) -> Vec<(Glob, String)> {
    let mut out: Vec<(Glob, String)> = Vec::new();
    let mut literals: HashMap<String, usize> = HashMap::new();
    let mut wildcards: Vec<usize> = Vec::new();
    for (pattern, target) in raw.aliases.as_ref().map(|a| a.value.0.as_slice()).unwrap_or_default() {
        let path = format!("routing.aliases.{}", pattern.value);
        let Some(glob) = cx.glob(&path, &pattern.value, pattern.span.clone()) else { continue };
        if target.value.trim().is_empty() {
            cx.at(&path, |cx| {
                cx.error_help(target.span.clone(), "an alias needs a target", "a route name, `auto`, or a model name")
            });
            continue;
        }
        // An earlier literal shadows only its own text; the wildcard globs are tried (the
        // first `LOOK` of them: a config with more is pathological and may miss a warning).
        const LOOK: usize = 1024;
        let earlier = literals
            .get(pattern.value.as_str())
            .copied()
            .into_iter()
            .chain(wildcards.iter().take(LOOK).copied().filter(|&i| out[i].0.matches(&pattern.value)))
            .min();
        if let Some(i) = earlier {
            let earlier = out[i].0.as_str().to_owned();
            cx.at(&path, |cx| {
                cx.warn(
                    pattern.span.clone(),
                    format!("alias `{}` is shadowed by the earlier `{earlier}`", pattern.value),
                    Some("the first matching alias wins: put the more specific glob first".into()),
                )
            });
        }
        if glob.is_literal() {
            literals.entry(pattern.value.clone()).or_insert(out.len());
        } else {
            wildcards.push(out.len());
        }
        out.push((glob, target.value.clone()));
    }
    out
}

/// Looks a route name up, reporting an unknown one with the closest known name.
fn resolve(
    cx: &mut Cx,
    routes: &[RoutePlan],
    by_name: &HashMap<String, RouteId>,
    path: &str,
    name: &Spanned<String>,
) -> Option<RouteId> {
    let found = by_name.get(&name.value).copied();
    if found.is_none() {
        let known = || routes.iter().map(|r| r.name.as_str());
        let help = match suggest(&name.value, known()) {
            Some(s) => format!("did you mean `{s}`?"),
            None if routes.is_empty() => "define it under `routing.routes`".to_owned(),
            None => format!("known routes: `{}`", known().collect::<Vec<_>>().join("`, `")),
        };
        cx.at(path, |cx| cx.error_help(name.span.clone(), format!("unknown route `{}`", name.value), help));
    }
    found
}

/// [`resolve`] bound to one route table.
type Lookup<'a> = dyn Fn(&mut Cx, &str, &Spanned<String>) -> Option<RouteId> + 'a;

fn routes(
    cx: &mut Cx,
    raw: &raw::Routing,
    providers: &[Option<ProviderPlan>; 3],
) -> (Vec<RoutePlan>, HashMap<String, RouteId>, Vec<usize>) {
    let mut out: Vec<RoutePlan> = Vec::new();
    let mut by_name = HashMap::new();
    let mut origins = Vec::new();
    let Some(list) = &raw.routes else {
        return (out, by_name, origins);
    };
    for (i, route) in list.value.iter().enumerate() {
        let path = format!("routing.routes[{i}]");
        let name = match non_empty(&route.name) {
            Some(n) if n.value == AUTO => {
                cx.at(&format!("{path}.name"), |cx| {
                    cx.error_help(
                        n.span.clone(),
                        "route name `auto` is reserved",
                        "`auto` asks the gateway to choose a route; pick another name",
                    )
                });
                continue;
            }
            Some(n) => n,
            None => {
                cx.at(&path, |cx| cx.error(route.span.clone(), "route has no `name`"));
                continue;
            }
        };
        if let Some(&first) = by_name.get(&name.value) {
            cx.at(&format!("{path}.name"), |cx| {
                cx.error(
                    name.span.clone(),
                    format!("duplicate route name `{}` (also routing.routes[{first}])", name.value),
                )
            });
            continue;
        }
        let model = match non_empty(&route.model) {
            Some(m) => {
                let kind = ProviderKind::for_model(&m.value);
                if providers[kind.index()].is_none() {
                    cx.at(&format!("{path}.model"), |cx| {
                        cx.warn(
                            m.span.clone(),
                            format!("model `{}` goes to provider `{kind}`, which is not configured", m.value),
                            Some(format!("add `providers.{kind}`, or pick a model another provider serves")),
                        )
                    });
                }
                m.value.clone()
            }
            None => {
                cx.at(&path, |cx| {
                    cx.error_help(
                        route.span.clone(),
                        format!("route `{}` has no `model`", name.value),
                        "add `model: <model id>`",
                    )
                });
                String::new()
            }
        };
        let examples: Vec<String> =
            route.examples.as_ref().map(|l| l.value.iter().map(|e| e.value.clone()).collect()).unwrap_or_default();
        by_name.insert(name.value.clone(), out.len());
        origins.push(i);
        let fallbacks = route
            .fallbacks
            .as_ref()
            .map(|l| crate::traffic::models(cx, &format!("{path}.fallbacks"), &l.value, providers))
            .unwrap_or_default();
        out.push(RoutePlan {
            name: name.value.clone(),
            model,
            description: route.description.as_ref().map(|d| d.value.clone()).unwrap_or_default(),
            examples,
            fallbacks,
            span: route.span.clone(),
        });
    }
    (out, by_name, origins)
}

fn rules(cx: &mut Cx, raw: &raw::Heuristics, lookup: &Lookup) -> Vec<RuleSpec> {
    let mut specs: Vec<RuleSpec> = Vec::new();
    let mut shadows = Shadows::default();
    let Some(list) = &raw.rules else {
        return Vec::new();
    };
    for (i, rule) in list.value.iter().enumerate() {
        let path = format!("routing.heuristics.rules[{i}]");
        let route = match non_empty(&rule.route) {
            Some(r) => lookup(cx, &format!("{path}.route"), r),
            None => {
                cx.at(&path, |cx| cx.error_help(rule.span.clone(), "rule has no `route`", "add `route: <route name>`"));
                None
            }
        };
        let m = rule.matches.as_ref().map(|m| &m.value);
        let words = |cx: &mut Cx, name: &str, field: Option<&Spanned<Vec<Spanned<String>>>>| -> Vec<String> {
            let mut out = Vec::new();
            for (j, w) in field.map(|f| f.value.as_slice()).unwrap_or_default().iter().enumerate() {
                if w.value.trim().is_empty() {
                    cx.at(&format!("{path}.match.{name}[{j}]"), |cx| {
                        cx.error(w.span.clone(), "empty keyword would match everything")
                    });
                } else {
                    out.push(w.value.clone());
                }
            }
            out
        };
        let keywords = words(cx, "keywords", m.and_then(|m| m.keywords.as_ref()));
        let exclude = words(cx, "exclude", m.and_then(|m| m.exclude.as_ref()));
        if keywords.is_empty()
            && !exclude.is_empty()
            && let Some(e) = m.and_then(|m| m.exclude.as_ref())
        {
            cx.at(&format!("{path}.match.exclude"), |cx| {
                cx.warn(
                    e.span.clone(),
                    "`exclude` without `keywords` has no effect",
                    Some("exclusions only veto keyword matches; add `keywords`".into()),
                )
            });
        }
        let limit = |cx: &mut Cx, name: &str, field: Option<&Spanned<i64>>| -> Option<u64> {
            let f = field?;
            if f.value < 1 {
                cx.at(&format!("{path}.match.{name}"), |cx| {
                    cx.error_help(
                        f.span.clone(),
                        format!("`{name}: {}` can never match", f.value),
                        "use a whole number from 1 up",
                    )
                });
            }
            Some(f.value.max(0) as u64)
        };
        let spec = RuleSpec {
            keywords,
            exclude,
            has_tools: m.and_then(|m| m.has_tools.as_ref()).map(|b| b.value),
            system_prompt_contains: m.and_then(|m| non_empty(&m.system_prompt_contains)).map(|s| s.value.clone()),
            max_tokens_lt: limit(cx, "max_tokens_lt", m.and_then(|m| m.max_tokens_lt.as_ref())),
            message_length_lt: limit(cx, "message_length_lt", m.and_then(|m| m.message_length_lt.as_ref())),
            route: route.unwrap_or(usize::MAX),
        }
        .normalized();
        if let Some(j) = shadows.first(&specs, &spec) {
            cx.at(&path, |cx| {
                cx.warn(
                    rule.span.clone(),
                    format!("rule can never match: rules[{j}] matches every request this one does"),
                    Some(format!("move it above rules[{j}] or narrow the earlier rule")),
                )
            });
        }
        shadows.add(specs.len(), &spec);
        specs.push(spec);
    }
    specs
}

/// Finds the first earlier rule that shadows a rule without comparing every pair: a rule with
/// keywords can only be shadowed by a rule without keywords or by one that has its first
/// keyword. Each list is looked at up to [`Shadows::LOOK`] entries, so a pathological config
/// (100,000 rules sharing a keyword) stays linear and at worst misses a warning.
#[derive(Default)]
struct Shadows {
    without_keywords: Vec<usize>,
    by_keyword: HashMap<String, Vec<usize>>,
}

impl Shadows {
    const LOOK: usize = 256;

    fn add(&mut self, id: usize, spec: &RuleSpec) {
        if spec.keywords.is_empty() {
            self.without_keywords.push(id);
        }
        for k in &spec.keywords {
            self.by_keyword.entry(k.clone()).or_default().push(id);
        }
    }

    fn first(&self, specs: &[RuleSpec], spec: &RuleSpec) -> Option<usize> {
        let find = |ids: &[usize]| ids.iter().take(Self::LOOK).copied().find(|&j| spec.shadowed_by(&specs[j]));
        let keyworded = spec.keywords.first().and_then(|k| self.by_keyword.get(k)).and_then(|ids| find(ids));
        match (find(&self.without_keywords), keyworded) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

fn unit(cx: &mut Cx, path: &str, field: &Option<Spanned<f64>>) -> f64 {
    match field {
        None => 0.0,
        Some(f) if (0.0..=1.0).contains(&f.value) => f.value,
        Some(f) => {
            cx.at(path, |cx| {
                cx.error_help(
                    f.span.clone(),
                    format!("{} is outside 0..=1", f.value),
                    "similarities and confidences are between 0 and 1",
                )
            });
            0.0
        }
    }
}

fn thresholds(cx: &mut Cx, raw: &raw::Semantic) -> (f64, f64) {
    let threshold = unit(cx, "routing.semantic.threshold", &raw.threshold);
    let ambiguous = unit(cx, "routing.semantic.ambiguous_threshold", &raw.ambiguous_threshold);
    if let (Some(a), true) = (&raw.ambiguous_threshold, ambiguous > threshold) {
        cx.at("routing.semantic.ambiguous_threshold", |cx| {
            cx.error_help(
                a.span.clone(),
                format!("ambiguous_threshold ({ambiguous}) is above threshold ({threshold})"),
                "the ambiguous band lies below the confident threshold",
            )
        });
    }
    (threshold, ambiguous)
}

fn cache(
    cx: &mut Cx,
    prefix: &str,
    on: &Option<Spanned<bool>>,
    ttl: &Option<Spanned<i64>>,
    size: &Option<Spanned<i64>>,
    (default_on, default_size): (bool, u64),
) -> Option<CachePlan> {
    let ttl = bounded(cx, &format!("{prefix}.cache_ttl"), ttl, 3600, 30 * 86_400);
    let size = bounded(cx, &format!("{prefix}.cache_size"), size, default_size, 10_000_000);
    on.as_ref()
        .map_or(default_on, |b| b.value)
        .then(|| CachePlan { ttl: Duration::from_secs(ttl), size: size as usize })
}

/// An embedding or classifier provider must name a configured provider. (`local` always is by
/// now: the compiler adds it with its defaults when these layers need it, as the Go gateway does.)
fn needs_provider(
    cx: &mut Cx,
    path: &str,
    span: std::ops::Range<usize>,
    kind: ProviderKind,
    providers: &[Option<ProviderPlan>; 3],
) {
    if providers[kind.index()].is_none() {
        let help = format!("add a `providers.{kind}` section");
        cx.at(path, |cx| cx.error_help(span, format!("provider `{kind}` is not configured"), help));
    }
}

/// The names the builtin embedder's one model goes by.
const BUILTIN_MODELS: [&str; 2] = ["all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2"];

fn semantic(
    cx: &mut Cx,
    raw: &Spanned<raw::Semantic>,
    routing: &raw::Routing,
    providers: &[Option<ProviderPlan>; 3],
) -> SemanticPlan {
    let (threshold, ambiguous_threshold) = thresholds(cx, raw);
    let provider = raw.provider.as_ref().map(|p| p.value).unwrap_or(EmbedProvider::Builtin);
    let model = non_empty(&raw.model).map(|m| m.value.clone());
    if let Some(p) = &raw.provider
        && let Some(kind) = p.value.provider()
    {
        needs_provider(cx, "routing.semantic.provider", p.span.clone(), kind, providers);
        if model.is_none() {
            cx.at("routing.semantic", |cx| {
                cx.error_help(
                    p.span.clone(),
                    format!("`provider: {}` needs a `model`", p.value.as_str()),
                    "name the embedding model, e.g. `model: nomic-embed-text`",
                )
            });
        }
    }
    if let (EmbedProvider::Builtin, Some(m)) = (provider, non_empty(&raw.model))
        && !BUILTIN_MODELS.iter().any(|b| b.eq_ignore_ascii_case(&m.value))
    {
        cx.at("routing.semantic.model", |cx| {
            cx.error_help(
                m.span.clone(),
                format!("the builtin embedder has no model `{}`", m.value),
                "it runs all-minilm-l6-v2; leave `model` out, or pick `provider: local` or `openai` for other models",
            )
        });
    }
    for (i, route) in routing.routes.iter().flat_map(|l| l.value.iter()).enumerate() {
        if route.examples.as_ref().is_none_or(|e| e.value.is_empty()) {
            cx.at(&format!("routing.routes[{i}]"), |cx| {
                cx.error_help(
                    route.span.clone(),
                    "semantic routing is enabled but this route has no `examples`",
                    "add a few example prompts, or disable `routing.semantic`",
                )
            });
        }
    }
    SemanticPlan {
        provider,
        model,
        threshold,
        ambiguous_threshold,
        threshold_span: raw.threshold.as_ref().map(|t| t.span.clone()),
        ambiguous_span: raw.ambiguous_threshold.as_ref().map(|t| t.span.clone()),
        comparison: raw.comparison.as_ref().map(|c| c.value).unwrap_or(Comparison::Centroid),
        cache: cache(cx, "routing.semantic", &raw.cache_embeddings, &raw.cache_ttl, &raw.cache_size, (true, 1000)),
        span: raw.span.clone(),
        vectors: None,
    }
}

fn classifier(
    cx: &mut Cx,
    raw: &Spanned<raw::Classifier>,
    routing: &raw::Routing,
    providers: &[Option<ProviderPlan>; 3],
) -> ClassifierPlan {
    let provider = match &raw.provider {
        Some(p) => {
            needs_provider(cx, "routing.classifier.provider", p.span.clone(), p.value.provider(), providers);
            p.value
        }
        None => {
            cx.at("routing.classifier", |cx| {
                cx.error_help(
                    raw.span.clone(),
                    "the classifier needs a `provider`",
                    "add `provider: local` or `provider: openai`",
                )
            });
            ClassifierProvider::Local
        }
    };
    let model = match non_empty(&raw.model) {
        Some(m) => m.value.clone(),
        None => {
            cx.at("routing.classifier", |cx| {
                cx.error_help(
                    raw.span.clone(),
                    "the classifier needs a `model`",
                    "name a chat model, e.g. `model: llama3`",
                )
            });
            String::new()
        }
    };
    let timeout = match &raw.timeout_ms {
        Some(t) if t.value < 0 => {
            cx.at("routing.classifier.timeout_ms", |cx| cx.error(t.span.clone(), "timeout_ms cannot be negative"));
            None
        }
        Some(t) if t.value > 0 => Some(Duration::from_millis(t.value as u64)),
        _ => None,
    };
    for (i, route) in routing.routes.iter().flat_map(|l| l.value.iter()).enumerate() {
        if non_empty(&route.description).is_none() {
            cx.at(&format!("routing.routes[{i}]"), |cx| {
                cx.warn(
                    route.span.clone(),
                    "the classifier is enabled but this route has no `description`",
                    Some("the classifier chooses routes by their descriptions".into()),
                )
            });
        }
    }
    ClassifierPlan {
        provider,
        model,
        timeout,
        confidence_threshold: unit(cx, "routing.classifier.confidence_threshold", &raw.confidence_threshold),
        cache: cache(cx, "routing.classifier", &raw.cache_results, &raw.cache_ttl, &raw.cache_size, (false, 500)),
    }
}
