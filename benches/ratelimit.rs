//! The rate limiter on the request path, memory backend. Goal: < 2 µs per admit (one
//! subject, rpm + tpm, headers built, reservation settled). The Redis round trip is measured
//! by `redis_round_trip_p50_p99` in tests/ratelimit_redis.rs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use llm_gateway::ratelimit::{Decision, Limiter};
use llm_gateway_compiler::acl::KeyLimits;
use llm_gateway_compiler::plan::{OnBackendError, RateBackend, RateLimitPlan};

fn limiter() -> Arc<Limiter> {
    let plan = RateLimitPlan {
        backend: RateBackend::Memory,
        on_backend_error: OnBackendError::Allow,
        timeout: Duration::from_millis(50),
    };
    Limiter::reconciled(&plan, None)
}

/// Limits high enough that every request is let through (the path that does the most).
const LIMITS: KeyLimits =
    KeyLimits { rpm: Some(u64::MAX), tpm: Some(u64::MAX), tokens_per_day: None, max_concurrent: None };

/// One request's worth: admit, then settle as the response's end would.
fn request(l: &Limiter, subject: &str, limits: &KeyLimits) {
    match l.admit(subject, limits, 100).now_or_never() {
        Some(Decision::Allowed(a)) => {
            std::hint::black_box(&a.headers);
            if let Some(r) = a.reservation {
                r.settle(150);
            }
        }
        _ => panic!("the memory backend lets these through at once"),
    }
}

fn ratelimit(c: &mut Criterion) {
    let l = limiter();
    c.bench_function("ratelimit/memory_admit_rpm_tpm_one_thread", |b| b.iter(|| request(&l, "alice", &LIMITS)));
    let none = KeyLimits::default();
    c.bench_function("ratelimit/memory_admit_no_limits", |b| b.iter(|| request(&l, "alice", &none)));
    // The worst case for the per-subject lock: another thread admits the same subject.
    c.bench_function("ratelimit/memory_admit_rpm_tpm_same_subject_two_threads", |b| {
        b.iter_custom(|iters| {
            let stop = Arc::new(AtomicBool::new(false));
            let other = {
                let (l, stop) = (l.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        request(&l, "alice", &LIMITS);
                    }
                })
            };
            let started = Instant::now();
            for _ in 0..iters {
                request(&l, "alice", &LIMITS);
            }
            let took = started.elapsed();
            stop.store(true, Ordering::Relaxed);
            let _ = other.join();
            took
        })
    });
}

criterion_group!(benches, ratelimit);
criterion_main!(benches);
