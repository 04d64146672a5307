//! Endpoint selection on the hot path. Goal (issue 6): < 50 ns per pick with 16 endpoints
//! while another thread picks from the same pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use llm_gateway::pool::Pool;
use llm_gateway_compiler::plan::ProviderKind;

fn pool() -> Arc<Pool> {
    let eps: String = (0..16)
        .map(|i| {
            format!("      - name: e{i}\n        base_url: http://10.0.0.{i}:8000\n        weight: {}\n", 1 + i % 4)
        })
        .collect();
    let yaml = format!("providers:\n  local:\n    endpoints:\n{eps}");
    let plan = llm_gateway_compiler::compile(&yaml, &std::collections::HashMap::<String, String>::new()).unwrap().plan;
    Arc::new(Pool::new(plan.provider(ProviderKind::Local).unwrap(), Duration::from_secs(1)))
}

fn benches(c: &mut Criterion) {
    let p = pool();
    c.bench_function("pool/pick_16_endpoints_one_thread", |b| b.iter(|| p.pick()));
    c.bench_function("pool/pick_16_endpoints_two_threads", |b| {
        b.iter_custom(|iters| {
            let stop = Arc::new(AtomicBool::new(false));
            let other = {
                let (p, stop) = (p.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::black_box(p.pick());
                    }
                })
            };
            let started = Instant::now();
            for _ in 0..iters {
                std::hint::black_box(p.pick());
            }
            let elapsed = started.elapsed();
            stop.store(true, Ordering::Relaxed);
            let _ = other.join();
            elapsed
        })
    });
    c.bench_function("pool/first_attempt_16_endpoints", |b| b.iter(|| p.attempt_order().next()));
}

criterion_group!(pool_benches, benches);
criterion_main!(pool_benches);
