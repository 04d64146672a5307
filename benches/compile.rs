//! Config compilation and heuristic routing decisions.
//! Goals (issue 3): a large config (500 routes, 5,000 keywords, 2,000 keys) compiles in < 50 ms;
//! a heuristic decision on a 2 KB prompt takes < 2 µs.

use std::collections::HashMap;
use std::fmt::Write;

use criterion::{Criterion, criterion_group, criterion_main};
use llm_gateway_compiler::compile;
use llm_gateway_compiler::keywords::{Message, RequestView};

const SEED: &str = include_str!("../fixtures/config/valid/go-gateway-reference-complete.yaml");

fn large_config() -> String {
    let mut s = String::from(
        "providers:\n  local:\n    base_url: http://127.0.0.1:11434\napi_keys:\n  enabled: true\n  keys:\n",
    );
    for k in 0..2000 {
        writeln!(s, "    - name: key{k}\n      key: sk-gw-{k:064x}\n      allowed_models: [\"llama*\", \"m{k}-*\"]\n      allowed_routes: [\"r{k}*\"]").unwrap();
    }
    s.push_str("routing:\n  default_route: r0\n  heuristics:\n    enabled: true\n    rules:\n");
    for r in 0..500 {
        let words: Vec<String> = (0..10).map(|w| format!("\"kw{r}x{w}\"")).collect();
        writeln!(
            s,
            "      - match: {{ keywords: [{}], exclude: [\"never{r}\"] }}\n        route: r{r}",
            words.join(", ")
        )
        .unwrap();
    }
    s.push_str("  routes:\n");
    for r in 0..500 {
        writeln!(s, "    - name: r{r}\n      model: llama-{r}\n      description: route {r}").unwrap();
    }
    s
}

/// A ~2 KB conversation: system prompt, two user turns, one assistant turn.
fn prompt(tail: &str) -> Vec<(&'static str, String)> {
    let filler = "Please consider the following paragraph about distributed systems and caching layers. ";
    vec![
        ("system", "You are a helpful assistant that answers precisely.".to_owned()),
        ("user", filler.repeat(13)),
        ("assistant", "Sure, go on.".to_owned()),
        ("user", format!("{} {tail}", filler.repeat(10))),
    ]
}

fn view<'a>(messages: &'a [(&'static str, String)]) -> RequestView<'a> {
    RequestView {
        messages: messages.iter().map(|(role, text)| Message { role, text: text.as_str().into() }).collect(),
        max_tokens: Some(500),
        has_tools: false,
    }
}

fn benches(c: &mut Criterion) {
    let env: HashMap<String, String> = HashMap::new();
    c.bench_function("compile/seed_full_example", |b| b.iter(|| compile(SEED, &env).unwrap()));
    let large = large_config();
    c.bench_function("compile/large_500_routes_5000_keywords_2000_keys", |b| b.iter(|| compile(&large, &env).unwrap()));

    let seed = compile(SEED, &env).unwrap().plan;
    let seed_h = seed.routing.as_ref().unwrap().heuristics.as_ref().unwrap();
    let big = compile(&large, &env).unwrap().plan;
    let big_h = big.routing.as_ref().unwrap().heuristics.as_ref().unwrap();
    let hit = prompt("Now translate it into French.");
    let miss = prompt("Now summarise it.");
    let unicode = prompt("Maintenant, traduisez-le en français, s'il vous plaît: «café».");
    assert!(hit.iter().map(|(_, t)| t.len()).sum::<usize>() > 2000);
    let cases = [
        ("seed_rules/hit", seed_h, &hit),
        ("seed_rules/miss", seed_h, &miss),
        ("seed_rules/non_ascii", seed_h, &unicode),
        ("large_rules/miss", big_h, &miss),
    ];
    for (name, h, msgs) in cases {
        c.bench_function(&format!("heuristics_2kb/{name}"), |b| {
            b.iter(|| {
                let v = view(msgs);
                h.decide(&v)
            })
        });
    }
    let k = big.keys.as_ref().unwrap();
    let presented = format!("sk-gw-{:064x}", 1999);
    c.bench_function("keys/lookup_and_model_check_2000_keys", |b| {
        b.iter(|| k.lookup(&presented).is_some_and(|e| e.allows_model("m1999-large")))
    });
}

criterion_group!(compile_benches, benches);
criterion_main!(compile_benches);
