//! Route examples → unit vectors and centroids, computed once per compile, and the scoring
//! the request path runs against them. The vectors themselves come from an [`Embedder`]
//! the caller passes in, so this stays pure.

use crate::plan::{Comparison, RouteId, RoutingPlan};

/// Turns texts into vectors. Implemented by the runtime (in-process model, Ollama, OpenAI)
/// and by tests.
pub trait Embedder {
    /// The model's identity; vectors of different identities are never compared.
    fn model_id(&self) -> String;
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String>;
}

/// The examples of one route, each a unit vector, and their unit-length mean.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteVectors {
    pub route: RouteId,
    pub centroid: Vec<f32>,
    pub examples: Vec<Vec<f32>>,
}

/// Every route's vectors, made by one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Vectors {
    pub model: String,
    pub dims: usize,
    pub routes: Vec<RouteVectors>,
}

/// Embeds every route's examples (one batch per route, as the Go gateway does). Routes without
/// examples are left out: the embedding layer cannot pick them.
pub fn embed_routes(routing: &RoutingPlan, embedder: &dyn Embedder) -> Result<Vectors, String> {
    let model = embedder.model_id();
    let mut dims = 0;
    let mut routes = Vec::new();
    for (id, route) in routing.routes.iter().enumerate().filter(|(_, r)| !r.examples.is_empty()) {
        let fail = |why: String| format!("failed to embed exemplars for route '{}': {why}", route.name);
        let texts: Vec<&str> = route.examples.iter().map(String::as_str).collect();
        let mut examples = embedder.embed(&texts).map_err(fail)?;
        if examples.len() != texts.len() {
            return Err(fail(format!("{} vectors for {} examples", examples.len(), texts.len())));
        }
        for v in &mut examples {
            if dims == 0 {
                dims = v.len();
            }
            if v.len() != dims || dims == 0 {
                return Err(fail(format!("a vector of {} dimensions where {dims} were expected", v.len())));
            }
            if !normalize(v) {
                return Err(fail("the model returned a zero vector".into()));
            }
        }
        let mut centroid = vec![0.0; dims];
        for v in &examples {
            centroid.iter_mut().zip(v).for_each(|(c, x)| *c += x);
        }
        // Opposite examples can cancel out; such a route is then scored by its examples only.
        normalize(&mut centroid);
        routes.push(RouteVectors { route: id, centroid, examples });
    }
    Ok(Vectors { model, dims, routes })
}

impl Vectors {
    /// The best route for a unit-length query and its cosine similarity. Only a similarity
    /// above 0 wins; on a tie the earlier route does (the Go gateway's rules).
    pub fn best(&self, query: &[f32], comparison: Comparison) -> Option<(RouteId, f32)> {
        let mut best: Option<(RouteId, f32)> = None;
        for (route, score) in self.scores(query, comparison) {
            if score > best.map_or(0.0, |(_, s)| s) {
                best = Some((route, score));
            }
        }
        best
    }

    /// Every route's similarity to a unit-length query, in route order (none when the query
    /// has another number of dimensions).
    pub fn scores(&self, query: &[f32], comparison: Comparison) -> Vec<(RouteId, f32)> {
        if query.len() != self.dims {
            return Vec::new();
        }
        self.routes.iter().map(|r| (r.route, score(query, r, comparison))).collect()
    }
}

fn score(query: &[f32], r: &RouteVectors, comparison: Comparison) -> f32 {
    match comparison {
        Comparison::Centroid => dot(query, &r.centroid),
        Comparison::Max => r.examples.iter().map(|e| dot(query, e)).fold(f32::MIN, f32::max),
        Comparison::Average => r.examples.iter().map(|e| dot(query, e)).sum::<f32>() / r.examples.len() as f32,
    }
}

/// How well the examples tell their routes apart under one model and comparison: each
/// example scored against its own route without itself (leave-one-out, as an unseen prompt of
/// that route would be) and against every other route.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    pub routes: Vec<RouteCalibration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteCalibration {
    pub route: RouteId,
    pub examples: usize,
    /// Per example (a route with one example has none): its leave-one-out score against its
    /// own route, and the best other route with its score.
    pub scores: Vec<ExampleScore>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExampleScore {
    pub own: f32,
    pub nearest: Option<(RouteId, f32)>,
}

impl ExampleScore {
    /// Whether the cascade would have taken this example's own route (at threshold 0).
    pub fn hit(&self) -> bool {
        self.own > 0.0 && self.nearest.is_none_or(|(_, s)| self.own > s)
    }
}

impl RouteCalibration {
    pub fn hits(&self) -> usize {
        self.scores.iter().filter(|s| s.hit()).count()
    }

    /// The lowest and highest leave-one-out own scores.
    pub fn own_range(&self) -> Option<(f32, f32)> {
        let own = self.scores.iter().map(|s| s.own);
        Some((own.clone().reduce(f32::min)?, own.reduce(f32::max)?))
    }

    /// The other route the examples come closest to, and the best such score.
    pub fn nearest(&self) -> Option<(RouteId, f32)> {
        self.scores.iter().filter_map(|s| s.nearest).max_by(|a, b| a.1.total_cmp(&b.1))
    }
}

pub fn calibrate(vectors: &Vectors, comparison: Comparison) -> Calibration {
    let routes = vectors
        .routes
        .iter()
        .map(|r| {
            let scores = (0..r.examples.len())
                .filter(|_| r.examples.len() > 1)
                .map(|i| {
                    let e = &r.examples[i];
                    let own = left_out(r, i, comparison);
                    let nearest = vectors
                        .routes
                        .iter()
                        .filter(|o| o.route != r.route)
                        .map(|o| (o.route, score(e, o, comparison)))
                        .max_by(|a, b| a.1.total_cmp(&b.1));
                    ExampleScore { own, nearest }
                })
                .collect();
            RouteCalibration { route: r.route, examples: r.examples.len(), scores }
        })
        .collect();
    Calibration { routes }
}

/// Example `i` of `r` scored against `r` without it.
fn left_out(r: &RouteVectors, i: usize, comparison: Comparison) -> f32 {
    let e = &r.examples[i];
    let others = r.examples.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, x)| x);
    match comparison {
        Comparison::Centroid => {
            let mut c = vec![0.0; e.len()];
            for x in others {
                c.iter_mut().zip(x).for_each(|(c, x)| *c += x);
            }
            if normalize(&mut c) { dot(e, &c) } else { 0.0 }
        }
        Comparison::Max => others.map(|x| dot(e, x)).fold(f32::MIN, f32::max),
        Comparison::Average => others.map(|x| dot(e, x)).sum::<f32>() / (r.examples.len() - 1) as f32,
    }
}

impl Calibration {
    /// Every example's leave-one-out own score, lowest first.
    fn own_scores(&self) -> Vec<f32> {
        let mut all: Vec<f32> = self.routes.iter().flat_map(|r| r.scores.iter().map(|s| s.own)).collect();
        all.sort_by(f32::total_cmp);
        all
    }

    /// The share of examples whose own score is below `threshold` (they would fall to the
    /// default route as prompts).
    pub fn below(&self, threshold: f64) -> f64 {
        let all = self.own_scores();
        if all.is_empty() {
            return 0.0;
        }
        all.iter().filter(|&&s| f64::from(s) < threshold).count() as f64 / all.len() as f64
    }

    /// Thresholds for a config that gives none: `threshold` is half the 10th percentile of
    /// the examples' leave-one-out own scores — a prompt well below what nine in ten examples
    /// score against their own route is taken as none of them — and `ambiguous_threshold`
    /// half of that. Both 0 when there is nothing to measure.
    pub fn suggested(&self) -> (f64, f64) {
        let all = self.own_scores();
        if all.is_empty() {
            return (0.0, 0.0);
        }
        let p10 = f64::from(all[(all.len() - 1) / 10]).max(0.0);
        let threshold = (p10 / 2.0 * 100.0).floor() / 100.0;
        (threshold, (threshold / 2.0 * 100.0).floor() / 100.0)
    }
}

/// Scales `v` to unit length; false (and `v` unchanged) for a zero or non-finite vector.
pub fn normalize(v: &mut [f32]) -> bool {
    let norm = dot(v, v).sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return false;
    }
    v.iter_mut().for_each(|x| *x /= norm);
    true
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::RoutePlan;

    /// Each text's vector is given by its first word: `x`, `y`, `xy`, `zero`.
    struct Axes;

    impl Embedder for Axes {
        fn model_id(&self) -> String {
            "axes".into()
        }

        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
            texts
                .iter()
                .map(|t| match t.split(' ').next() {
                    Some("x") => Ok(vec![2.0, 0.0]),
                    Some("y") => Ok(vec![0.0, 3.0]),
                    Some("xy") => Ok(vec![1.0, 1.0]),
                    Some("zero") => Ok(vec![0.0, 0.0]),
                    _ => Err(format!("cannot embed '{t}'")),
                })
                .collect()
        }
    }

    fn routing(routes: &[(&str, &[&str])]) -> RoutingPlan {
        RoutingPlan {
            aliases: Vec::new(),
            allow_explicit_model: true,
            routes: routes
                .iter()
                .map(|(name, examples)| RoutePlan {
                    name: (*name).into(),
                    model: "m".into(),
                    description: String::new(),
                    examples: examples.iter().map(|e| (*e).into()).collect(),
                    fallbacks: Vec::new(),
                    span: 0..0,
                })
                .collect(),
            by_name: Default::default(),
            default_route: None,
            heuristics: None,
            semantic: None,
            classifier: None,
        }
    }

    #[test]
    fn centroids_are_unit_means_of_unit_examples() {
        let v = embed_routes(&routing(&[("a", &["x", "y"]), ("none", &[]), ("b", &["y"])]), &Axes).unwrap();
        assert_eq!((v.model.as_str(), v.dims), ("axes", 2));
        assert_eq!(
            v.routes.iter().map(|r| r.route).collect::<Vec<_>>(),
            [0, 2],
            "routes without examples are left out"
        );
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!((v.routes[0].centroid[0] - h).abs() < 1e-6 && (v.routes[0].centroid[1] - h).abs() < 1e-6);
        assert_eq!(v.routes[0].examples, [vec![1.0, 0.0], vec![0.0, 1.0]]);
    }

    #[test]
    fn comparisons_score_as_the_go_gateway_does() {
        let v = embed_routes(&routing(&[("a", &["x", "y"]), ("b", &["xy"])]), &Axes).unwrap();
        let q = [1.0, 0.0];
        let (route, score) = v.best(&q, Comparison::Max).unwrap();
        assert_eq!(route, 0);
        assert!((score - 1.0).abs() < 1e-6);
        let (route, score) = v.best(&q, Comparison::Average).unwrap();
        assert_eq!(route, 1, "a averages 0.5, b scores 0.71");
        assert!((score - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        let tie = embed_routes(&routing(&[("a", &["xy"]), ("b", &["xy two"])]), &Axes).unwrap();
        assert_eq!(tie.best(&q, Comparison::Centroid).unwrap().0, 0, "a tie goes to the earlier route");
        assert_eq!(v.best(&[-1.0, 0.0], Comparison::Centroid), None, "negative similarities never win");
        assert_eq!(v.best(&[1.0, 0.0, 0.0], Comparison::Centroid), None, "a query of another model's size");
    }

    #[test]
    fn embedder_failures_name_the_route() {
        let err = embed_routes(&routing(&[("a", &["x"]), ("b", &["what"])]), &Axes).unwrap_err();
        assert_eq!(err, "failed to embed exemplars for route 'b': cannot embed 'what'");
        let err = embed_routes(&routing(&[("z", &["zero"])]), &Axes).unwrap_err();
        assert_eq!(err, "failed to embed exemplars for route 'z': the model returned a zero vector");
    }

    #[test]
    fn leave_one_out_scores_each_example_against_its_route_without_it() {
        let v =
            embed_routes(&routing(&[("a", &["x 1", "x 2", "xy"]), ("b", &["y 1", "y 2"]), ("c", &["x only"])]), &Axes)
                .unwrap();
        let c = calibrate(&v, Comparison::Centroid);
        let a = &c.routes[0];
        assert_eq!((a.examples, a.scores.len()), (3, 3));
        // `x` against the mean of `x` and `xy`: cos 22.5° ≈ 0.92; `xy` against two `x`: 0.71.
        assert!((a.scores[0].own - 0.924).abs() < 0.01, "{:?}", a.scores[0]);
        assert!((a.scores[2].own - 0.707).abs() < 0.01, "{:?}", a.scores[2]);
        assert_eq!(a.scores[0].nearest.map(|(r, _)| r), Some(2), "`c` is all `x`");
        assert!(!a.scores[0].hit(), "an `x` example is nearer `c` (1.0) than its own route");
        assert_eq!(c.routes[1].hits(), 2, "`b`'s examples have only themselves");
        assert!(c.routes[2].scores.is_empty(), "one example: nothing to leave out");
        let (threshold, ambiguous) = c.suggested();
        assert!(threshold > 0.0 && ambiguous <= threshold && threshold <= 0.5, "{threshold} {ambiguous}");
        assert_eq!(c.below(0.0), 0.0);
        assert_eq!(c.below(2.0), 1.0);
        let max = calibrate(&v, Comparison::Max);
        assert!((max.routes[0].scores[2].own - 0.707).abs() < 0.01, "the best other example");
    }
}
