//! Semantic routing costs: a builtin-embedder decision on a short prompt (embed, normalise,
//! score five routes), the centroid compile for 5 routes × 5 examples (embedding included),
//! the scoring alone, and decisions under load: the labelled prompts
//! (`fixtures/routing/prompts.txt`) at concurrency 1 and 32 through the async path the gateway
//! takes, as criterion benchmarks (32 decisions an iteration) and as a summary printed first
//! (decisions/s, their ratio, latency percentiles). Needs the assets
//! (`./scripts/setup-embeddings.sh`); `scripts/bench.sh semantic` runs it on every CPU.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use llm_gateway::embed::builtin::{Model, asset_dir};
use llm_gateway_compiler::centroids::{Embedder, Vectors, embed_routes, normalize};
use llm_gateway_compiler::plan::{Comparison, RoutePlan, RoutingPlan};

struct Builtin(Arc<Model>);

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

fn prompts() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/routing/prompts.txt");
    let text = std::fs::read_to_string(path).expect("the labelled prompts");
    text.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split_once('\t')).map(|(_, p)| p.to_owned()).collect()
}

/// One decision as the gateway makes it for an uncached prompt.
async fn decide(model: &Model, vectors: &Vectors, prompt: &str) {
    let mut v = model.embed_async(vec![prompt.to_owned()]).await.unwrap().remove(0);
    normalize(&mut v);
    std::hint::black_box(vectors.best(&v, Comparison::Centroid));
}

/// `rounds` × `concurrency` decisions, `concurrency` at a time; the latency of each.
async fn run(
    model: &Arc<Model>,
    vectors: &Arc<Vectors>,
    prompts: &Arc<Vec<String>>,
    concurrency: usize,
    rounds: usize,
) -> Vec<Duration> {
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let (model, vectors, prompts) = (model.clone(), vectors.clone(), prompts.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(rounds);
                for round in 0..rounds {
                    let prompt = &prompts[(round * concurrency + task) % prompts.len()];
                    let start = Instant::now();
                    decide(&model, &vectors, prompt).await;
                    latencies.push(start.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

fn summary(rt: &tokio::runtime::Runtime, model: &Arc<Model>, vectors: &Arc<Vectors>, prompts: &Arc<Vec<String>>) {
    rt.block_on(run(model, vectors, prompts, 32, 8));
    let mut rates = Vec::new();
    for concurrency in [1, 32] {
        let rounds = 1600 / concurrency;
        let start = Instant::now();
        let mut latencies = rt.block_on(run(model, vectors, prompts, concurrency, rounds));
        let rate = latencies.len() as f64 / start.elapsed().as_secs_f64();
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
        println!(
            "semantic/builtin_decisions concurrency {concurrency:>2}: {rate:7.0} decisions/s, latency p50 {:.2} ms, p99 {:.2} ms ({} decisions)",
            at(0.5),
            at(0.99),
            latencies.len()
        );
        rates.push(rate);
    }
    println!("semantic/builtin_decisions concurrency 32 / 1: {:.2}x", rates[1] / rates[0]);
}

fn benches(c: &mut Criterion) {
    let model = Arc::new(Model::load(&asset_dir()).expect("run ./scripts/setup-embeddings.sh first"));
    let model = Builtin(model);
    let routing = routing();
    let vectors = Arc::new(embed_routes(&routing, &model).unwrap());
    let prompts = Arc::new(prompts());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    summary(&rt, &model.0, &vectors, &prompts);

    let prompt = "how do I reverse a linked list in python?";
    c.bench_function("semantic/builtin_decision_short_prompt", |b| {
        b.iter(|| {
            let mut v = model.0.embed(&[prompt]).unwrap().pop().unwrap();
            normalize(&mut v);
            vectors.best(&v, Comparison::Centroid).unwrap()
        })
    });
    for concurrency in [1, 32] {
        c.bench_function(&format!("semantic/builtin_32_decisions_concurrency_{concurrency}"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    rt.block_on(run(&model.0, &vectors, &prompts, concurrency, 32 / concurrency));
                }
                start.elapsed()
            })
        });
    }
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
