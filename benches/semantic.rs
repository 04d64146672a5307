//! Semantic routing costs: a builtin-embedder decision on a short prompt (embed, normalise,
//! score five routes), the centroid compile for 5 routes × 5 examples (embedding included),
//! and the scoring alone. `scripts/bench.sh semantic` pins it to one CPU. Needs the assets
//! (`./scripts/setup-embeddings.sh`).

use criterion::{Criterion, criterion_group, criterion_main};
use llm_gateway::embed::builtin::{Model, asset_dir};
use llm_gateway_compiler::centroids::{Embedder, embed_routes, normalize};
use llm_gateway_compiler::plan::{Comparison, RoutePlan, RoutingPlan};

struct Builtin(Model);

impl Embedder for Builtin {
    fn model_id(&self) -> String {
        "builtin".into()
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        self.0.embed(texts)
    }
}

fn routing() -> RoutingPlan {
    let topics = ["python code", "a poem", "translate a word", "the weather API", "world history"];
    let routes = topics
        .iter()
        .enumerate()
        .map(|(i, topic)| RoutePlan {
            name: format!("r{i}"),
            model: "m".into(),
            description: String::new(),
            examples: (0..5).map(|j| format!("example {j} about {topic}")).collect(),
            fallbacks: Vec::new(),
            span: 0..0,
        })
        .collect();
    RoutingPlan {
        aliases: Vec::new(),
        allow_explicit_model: true,
        routes,
        by_name: Default::default(),
        default_route: None,
        heuristics: None,
        semantic: None,
        classifier: None,
    }
}

fn benches(c: &mut Criterion) {
    let model = Builtin(Model::load(&asset_dir()).expect("run ./scripts/setup-embeddings.sh first"));
    let routing = routing();
    let vectors = embed_routes(&routing, &model).unwrap();
    let prompt = "how do I reverse a linked list in python?";
    c.bench_function("semantic/builtin_decision_short_prompt", |b| {
        b.iter(|| {
            let mut v = model.0.embed(&[prompt]).unwrap().pop().unwrap();
            normalize(&mut v);
            vectors.best(&v, Comparison::Centroid).unwrap()
        })
    });
    c.bench_function("semantic/centroids_5_routes_x_5_examples", |b| {
        b.iter(|| embed_routes(&routing, &model).unwrap())
    });
    let mut query = model.0.embed(&[prompt]).unwrap().pop().unwrap();
    normalize(&mut query);
    for comparison in [Comparison::Centroid, Comparison::Max] {
        c.bench_function(&format!("semantic/score_5_routes_{}", comparison.as_str()), |b| {
            b.iter(|| vectors.best(&query, comparison))
        });
    }
}

criterion_group!(semantic_benches, benches);
criterion_main!(semantic_benches);
