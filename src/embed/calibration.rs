//! What the routes' embedded examples say about the semantic layer: thresholds derived for a
//! config that gives none, the warnings `check` prints (a threshold above nearly every
//! example's own score, confusable routes, routes with too few examples), and the per-route
//! table of `check --verbose` (and its JSON). All of it from
//! [`llm_gateway_compiler::centroids::calibrate`], leave-one-out over the examples.

use llm_gateway_compiler::centroids::{Calibration, calibrate};
use llm_gateway_compiler::plan::RoutingPlan;
use llm_gateway_compiler::{Diagnostic, Severity};
use serde_json::{Value, json};

/// Share of the examples that may fall below an explicit threshold before `check` warns.
/// (Routes are confusable when half or more of a route's examples sit nearer another route.)
const MOSTLY_BELOW: f64 = 0.9;
/// Fewer examples than this make a route's centroid a guess.
const FEW_EXAMPLES: usize = 3;

/// The calibration of an attached semantic layer.
pub fn of(routing: &RoutingPlan) -> Option<Calibration> {
    let (semantic, vectors) = super::vectors(routing)?;
    Some(calibrate(vectors, semantic.comparison))
}

/// Sets the thresholds the config leaves out from the examples ([`Calibration::suggested`]).
/// Returns them when it did.
pub fn derive(routing: &mut RoutingPlan) -> Option<(f64, f64)> {
    let calibration = of(routing)?;
    let semantic = routing.semantic.as_mut()?;
    if semantic.threshold_span.is_some() && semantic.ambiguous_span.is_some() {
        return None;
    }
    let (threshold, ambiguous) = calibration.suggested();
    if semantic.threshold_span.is_none() {
        semantic.threshold = threshold;
    }
    if semantic.ambiguous_span.is_none() {
        semantic.ambiguous_threshold = ambiguous.min(semantic.threshold);
    }
    Some((semantic.threshold, semantic.ambiguous_threshold))
}

/// What `check` warns about, from the routing's calibration ([`of`]).
pub fn warnings(routing: &RoutingPlan, calibration: &Calibration) -> Vec<Diagnostic> {
    let Some(semantic) = routing.semantic.as_ref() else { return Vec::new() };
    let name = |id: usize| routing.routes[id].name.as_str();
    let mut out = Vec::new();
    let warn = |path: String, span: std::ops::Range<usize>, message: String, help: String| Diagnostic {
        severity: Severity::Warning,
        path,
        span,
        message,
        help: Some(help),
    };
    if let Some(span) = &semantic.threshold_span {
        let below = calibration.below(semantic.threshold);
        if below >= MOSTLY_BELOW {
            let range = own_range(calibration).map_or(String::new(), |(lo, hi)| format!(" run {lo:.2}–{hi:.2};"));
            out.push(warn(
                "routing.semantic.threshold".into(),
                span.clone(),
                format!(
                    "threshold {} is above {} of the examples' scores against their own route: nearly every prompt will fall to the default route",
                    semantic.threshold,
                    if below >= 1.0 { "every one".to_owned() } else { format!("{:.0} %", below * 100.0) }
                ),
                format!(
                    "this model's scores for a prompt of a route (each example against the others){range} leave `threshold` and `ambiguous_threshold` out to derive them ({:.2} / {:.2} here), or lower them",
                    calibration.suggested().0,
                    calibration.suggested().1
                ),
            ));
        }
    }
    for r in &calibration.routes {
        let route = &routing.routes[r.route];
        let path = format!("routing.routes[{}]", r.route);
        if r.examples < FEW_EXAMPLES {
            out.push(warn(
                path.clone(),
                route.span.clone(),
                format!("route `{}` has {} example{}", route.name, r.examples, if r.examples == 1 { "" } else { "s" }),
                format!("{FEW_EXAMPLES} or more, in the words its users write, make its prompts recognisable"),
            ));
        }
        // Confusable when at least half its examples sit nearer another route (a few misses
        // are normal for a small model: see the table).
        let misses: Vec<_> = r.scores.iter().filter(|s| !s.hit()).collect();
        if 2 * misses.len() < r.scores.len() {
            continue;
        }
        if let Some(worst) =
            misses.iter().filter_map(|s| s.nearest.map(|n| (n, s.own))).max_by(|a, b| a.0.1.total_cmp(&b.0.1))
        {
            let ((other, theirs), own) = worst;
            out.push(warn(
                path,
                route.span.clone(),
                format!(
                    "{} of {} examples of route `{}` are closer to route `{}` (up to {theirs:.2} against {own:.2} for their own)",
                    misses.len(),
                    r.scores.len(),
                    route.name,
                    name(other)
                ),
                "the two routes are confusable: make their examples more distinct, or merge them".into(),
            ));
        }
    }
    out
}

fn own_range(c: &Calibration) -> Option<(f32, f32)> {
    let ranges = c.routes.iter().filter_map(|r| r.own_range());
    ranges.reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
}

/// The per-route table of `check --verbose`.
pub fn table(routing: &RoutingPlan, calibration: &Calibration) -> Option<String> {
    let semantic = routing.semantic.as_ref()?;
    let mut out = format!(
        "semantic routing: threshold {:.2}{}, ambiguous {:.2}{}; leave-one-out scores of the examples:\n",
        semantic.threshold,
        if semantic.threshold_span.is_none() { " (derived)" } else { "" },
        semantic.ambiguous_threshold,
        if semantic.ambiguous_span.is_none() { " (derived)" } else { "" },
    );
    out.push_str(&format!(
        "  {:<16} {:>8} {:>13} {:<24} {:>6}\n",
        "route", "examples", "own score", "nearest other route", "hits"
    ));
    for r in &calibration.routes {
        let own = r.own_range().map_or("-".to_owned(), |(lo, hi)| format!("{lo:.2}–{hi:.2}"));
        let nearest = r.nearest().map_or("-".to_owned(), |(id, s)| format!("{} {s:.2}", routing.routes[id].name));
        out.push_str(&format!(
            "  {:<16} {:>8} {:>13} {:<24} {:>6}\n",
            routing.routes[r.route].name,
            r.examples,
            own,
            nearest,
            format!("{}/{}", r.hits(), r.scores.len())
        ));
    }
    Some(out)
}

/// The same numbers for `check --format json`.
pub fn json(routing: &RoutingPlan, calibration: &Calibration) -> Option<Value> {
    let semantic = routing.semantic.as_ref()?;
    let routes: Vec<Value> = calibration
        .routes
        .iter()
        .map(|r| {
            let (lo, hi) = r.own_range().map_or((None, None), |(lo, hi)| (Some(lo), Some(hi)));
            json!({
                "route": routing.routes[r.route].name,
                "examples": r.examples,
                "own_min": lo,
                "own_max": hi,
                "nearest": r.nearest().map(|(id, s)| json!({"route": routing.routes[id].name, "score": s})),
                "hits": r.hits(),
                "scored": r.scores.len(),
            })
        })
        .collect();
    let (threshold, ambiguous) = calibration.suggested();
    Some(json!({
        "threshold": semantic.threshold,
        "ambiguous_threshold": semantic.ambiguous_threshold,
        "suggested": {"threshold": threshold, "ambiguous_threshold": ambiguous},
        "routes": routes,
    }))
}
