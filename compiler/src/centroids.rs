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

/// Embeds every route's examples (one batch per route, as the anchor does). Routes without
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
    /// above 0 wins; on a tie the earlier route does (the anchor's rules).
    pub fn best(&self, query: &[f32], comparison: Comparison) -> Option<(RouteId, f32)> {
        if query.len() != self.dims {
            return None;
        }
        let mut best: Option<(RouteId, f32)> = None;
        for r in &self.routes {
            let score = match comparison {
                Comparison::Centroid => dot(query, &r.centroid),
                Comparison::Max => r.examples.iter().map(|e| dot(query, e)).fold(f32::MIN, f32::max),
                Comparison::Average => r.examples.iter().map(|e| dot(query, e)).sum::<f32>() / r.examples.len() as f32,
            };
            if score > best.map_or(0.0, |(_, s)| s) {
                best = Some((r.route, score));
            }
        }
        best
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
    fn comparisons_score_as_the_anchor_does() {
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
}
