//! The memory backend and the shared rules (windows, headers, refusals), on a hand-moved
//! clock. Redis is exercised against a real server in `tests/ratelimit_redis.rs`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use llm_gateway_compiler::acl::KeyLimits;
use llm_gateway_compiler::plan::{OnBackendError, RateBackend, RateLimitPlan};
use llm_gateway_compiler::secret::Secret;

use super::headers::go_duration;
use super::*;

/// 2026-01-01T00:00:00Z.
const NEW_YEAR_MS: u64 = 1_767_225_600_000;

fn plan() -> RateLimitPlan {
    RateLimitPlan {
        backend: RateBackend::Memory,
        on_backend_error: OnBackendError::Allow,
        timeout: Duration::from_millis(50),
    }
}

fn limiter(at_ms: u64) -> (Limiter, Clock) {
    let clock = Clock::manual(at_ms);
    (Limiter::with_clock(&plan(), clock.clone()), clock)
}

fn limits(rpm: Option<u64>, tpm: Option<u64>, tokens_per_day: Option<u64>) -> KeyLimits {
    KeyLimits { rpm, tpm, tokens_per_day, max_concurrent: None }
}

fn admit(l: &Limiter, subject: &str, limits: &KeyLimits, estimate: u64) -> Decision {
    l.admit(subject, limits, estimate).now_or_never().expect("the memory backend never waits")
}

fn allowed(d: Decision) -> Admission {
    match d {
        Decision::Allowed(a) => a,
        Decision::Limited(r) => panic!("refused by {} for {:?}", r.limit, r.retry_after),
        Decision::Unavailable(_) => panic!("unavailable"),
    }
}

fn refused(d: Decision) -> Refusal {
    match d {
        Decision::Limited(r) => r,
        Decision::Allowed(a) => panic!("allowed, headers {:?}", a.headers),
        Decision::Unavailable(_) => panic!("unavailable"),
    }
}

fn header<'a>(headers: &'a [(HeaderName, HeaderValue)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.to_str().expect("ascii"))
}

fn memory(l: &Limiter) -> &memory::Memory {
    match &l.backend {
        Backend::Memory(m) => m,
        _ => panic!("not the memory backend"),
    }
}

#[test]
fn rpm_admits_up_to_the_limit_then_refuses_until_the_minute_ends() {
    let (l, clock) = limiter(NEW_YEAR_MS + 15_500);
    let k = limits(Some(3), None, None);
    for remaining in ["2", "1", "0"] {
        let a = allowed(admit(&l, "alice", &k, 100));
        assert_eq!(header(&a.headers, "x-ratelimit-limit-requests"), Some("3"));
        assert_eq!(header(&a.headers, "x-ratelimit-remaining-requests"), Some(remaining));
        assert_eq!(header(&a.headers, "x-ratelimit-reset-requests"), Some("44.5s"));
        assert_eq!(header(&a.headers, "x-ratelimit-limit-tokens"), None, "no token limit, no token headers");
        assert!(a.reservation.is_none(), "no token limit: nothing to settle");
    }
    let r = refused(admit(&l, "alice", &k, 100));
    assert_eq!(r.limit, "rpm");
    assert_eq!(r.retry_after, Duration::from_secs(45), "44.5 s to the minute's end, rounded up");
    assert_eq!(header(&r.headers, "x-ratelimit-remaining-requests"), Some("0"));
    assert_eq!(Kind::Rpm.of(memory(&l), "alice"), 3, "a refused request counts nothing");

    clock.advance(Duration::from_millis(44_499));
    let r = refused(admit(&l, "alice", &k, 100));
    assert_eq!(r.retry_after, Duration::from_secs(1), "1 ms left still says at least a second");
    assert_eq!(header(&r.headers, "x-ratelimit-reset-requests"), Some("1ms"));
    clock.advance(Duration::from_millis(1));
    let a = allowed(admit(&l, "alice", &k, 100));
    assert_eq!(header(&a.headers, "x-ratelimit-remaining-requests"), Some("2"), "a new minute");
    assert_eq!(header(&a.headers, "x-ratelimit-reset-requests"), Some("1m0s"));
}

#[test]
fn tpm_counts_the_estimate_and_refuses_once_used_reaches_the_limit() {
    let (l, clock) = limiter(NEW_YEAR_MS);
    let k = limits(None, Some(1000), None);
    let a = allowed(admit(&l, "bob", &k, 600));
    assert_eq!(header(&a.headers, "x-ratelimit-limit-tokens"), Some("1000"));
    assert_eq!(header(&a.headers, "x-ratelimit-remaining-tokens"), Some("400"));
    assert_eq!(header(&a.headers, "x-ratelimit-reset-tokens"), Some("1m0s"));
    assert_eq!(header(&a.headers, "x-ratelimit-limit-requests"), None, "no rpm, no request headers");
    // 600 < 1000: let through although it overshoots; remaining never goes negative.
    let b = allowed(admit(&l, "bob", &k, 600));
    assert_eq!(header(&b.headers, "x-ratelimit-remaining-tokens"), Some("0"));
    assert_eq!(Kind::Tpm.of(memory(&l), "bob"), 1200);
    clock.advance(Duration::from_secs(20));
    let r = refused(admit(&l, "bob", &k, 1));
    assert_eq!((r.limit, r.retry_after), ("tpm", Duration::from_secs(40)));
    assert_eq!(header(&r.headers, "x-ratelimit-reset-tokens"), Some("40s"));
    assert_eq!(Kind::Tpm.of(memory(&l), "bob"), 1200, "a refused request counts nothing");
}

#[test]
fn tokens_per_day_spans_minutes_and_resets_at_utc_midnight() {
    let (l, clock) = limiter(NEW_YEAR_MS + 10 * 3_600_000);
    let k = limits(None, None, Some(500));
    let a = allowed(admit(&l, "carol", &k, 300));
    // Only tokens_per_day: the token headers report it.
    assert_eq!(header(&a.headers, "x-ratelimit-limit-tokens"), Some("500"));
    assert_eq!(header(&a.headers, "x-ratelimit-remaining-tokens"), Some("200"));
    assert_eq!(header(&a.headers, "x-ratelimit-reset-tokens"), Some("14h0m0s"));
    clock.advance(Duration::from_secs(3600));
    allowed(admit(&l, "carol", &k, 300));
    clock.advance(Duration::from_secs(60));
    let r = refused(admit(&l, "carol", &k, 1));
    assert_eq!(r.limit, "tokens_per_day");
    assert_eq!(r.retry_after, Duration::from_secs(13 * 3600 - 60));
    clock.set(NEW_YEAR_MS + 86_400_000);
    allowed(admit(&l, "carol", &k, 1));
}

#[test]
fn the_refusal_names_the_limit_whose_window_ends_last() {
    let (l, _) = limiter(NEW_YEAR_MS + 30_000);
    let k = limits(Some(1), Some(10), Some(10));
    let a = allowed(admit(&l, "dave", &k, 10));
    // tpm is reported over tokens_per_day.
    assert_eq!(header(&a.headers, "x-ratelimit-limit-tokens"), Some("10"));
    assert_eq!(header(&a.headers, "x-ratelimit-reset-tokens"), Some("30s"));
    let r = refused(admit(&l, "dave", &k, 1));
    assert_eq!(r.limit, "tokens_per_day", "rpm and tpm are exhausted too, but end sooner");
    assert_eq!(r.retry_after, Duration::from_secs(86_400 - 30));
}

#[test]
fn settle_corrects_the_estimate_up_and_down() {
    let (l, _) = limiter(NEW_YEAR_MS);
    let k = limits(None, Some(10_000), Some(100_000));
    let a = allowed(admit(&l, "erin", &k, 1000));
    let reservation = a.reservation.expect("a token limit reserves");
    assert_eq!(reservation.estimate(), 1000);
    reservation.settle(2500);
    assert_eq!((Kind::Tpm.of(memory(&l), "erin"), Kind::TokensPerDay.of(memory(&l), "erin")), (2500, 2500));
    let b = allowed(admit(&l, "erin", &k, 1000)).reservation.expect("reserved");
    b.settle(200);
    assert_eq!((Kind::Tpm.of(memory(&l), "erin"), Kind::TokensPerDay.of(memory(&l), "erin")), (2700, 2700));
    let c = allowed(admit(&l, "erin", &k, 300)).reservation.expect("reserved");
    drop(c);
    assert_eq!(Kind::Tpm.of(memory(&l), "erin"), 3000, "dropped without settling: the estimate stays");
    let d = allowed(admit(&l, "erin", &k, 300)).reservation.expect("reserved");
    d.settle(300);
    assert_eq!(Kind::Tpm.of(memory(&l), "erin"), 3300);
}

#[test]
fn settle_touches_only_the_windows_it_was_counted_in() {
    let (l, clock) = limiter(NEW_YEAR_MS + 59_000);
    let k = limits(None, Some(10_000), Some(100_000));
    let r = allowed(admit(&l, "frank", &k, 1000)).reservation.expect("reserved");
    clock.advance(Duration::from_secs(2));
    allowed(admit(&l, "frank", &k, 50));
    r.settle(4000);
    assert_eq!(Kind::Tpm.of(memory(&l), "frank"), 50, "the minute it was counted in is over");
    assert_eq!(Kind::TokensPerDay.of(memory(&l), "frank"), 4050, "the day is the same");
    // Down, below what the new minute holds: no underflow into the new window either.
    let r = allowed(admit(&l, "frank", &k, 5000)).reservation.expect("reserved");
    clock.advance(Duration::from_secs(60));
    allowed(admit(&l, "frank", &k, 10));
    r.settle(0);
    assert_eq!(Kind::Tpm.of(memory(&l), "frank"), 10);
    assert_eq!(Kind::TokensPerDay.of(memory(&l), "frank"), 4060);
}

#[test]
fn keys_of_one_subject_share_counters_and_subjects_do_not() {
    let (l, _) = limiter(NEW_YEAR_MS);
    let strict = limits(Some(2), None, None);
    let loose = limits(Some(100), None, None);
    allowed(admit(&l, "team", &loose, 0));
    allowed(admit(&l, "team", &loose, 0));
    let r = refused(admit(&l, "team", &strict, 0));
    assert_eq!(r.limit, "rpm", "the user's second key sees the first key's requests");
    allowed(admit(&l, "other", &strict, 0));
}

#[test]
fn a_key_without_rate_limits_gets_no_headers_and_counts_nothing() {
    let (l, _) = limiter(NEW_YEAR_MS);
    let none = limits(None, None, None);
    let a = allowed(admit(&l, "gina", &none, 100));
    assert!(a.headers.is_empty() && a.reservation.is_none());
    assert_eq!(memory(&l).subjects(), 0, "not even a subject entry");
}

#[test]
fn reconciled_keeps_counters_unless_the_backend_changes() {
    let clock = Clock::manual(NEW_YEAR_MS);
    let first = Arc::new(Limiter::with_clock(&plan(), clock));
    let k = limits(Some(1), None, None);
    allowed(admit(&first, "hal", &k, 0));
    let same = Limiter::reconciled(&plan(), Some(&first));
    assert!(Arc::ptr_eq(&same, &first), "an equal plan keeps the limiter itself");
    let deny = RateLimitPlan { on_backend_error: OnBackendError::Deny, timeout: Duration::from_millis(80), ..plan() };
    let tuned = Limiter::reconciled(&deny, Some(&first));
    assert!(!Arc::ptr_eq(&tuned, &first));
    assert_eq!(refused(admit(&tuned, "hal", &k, 0)).limit, "rpm", "counters kept across the reload");
    let redis = RateLimitPlan { backend: RateBackend::Redis(Secret::new("redis://127.0.0.1:1/0")), ..plan() };
    let moved = Limiter::reconciled(&redis, Some(&tuned));
    let back = Limiter::reconciled(&plan(), Some(&moved));
    let fresh = back.admit("hal", &k, 0).now_or_never().expect("memory never waits");
    allowed(fresh);
}

#[test]
fn subjects_idle_since_before_today_are_dropped() {
    let (l, clock) = limiter(NEW_YEAR_MS);
    let k = limits(Some(10), None, None);
    for s in ["a", "b", "c"] {
        allowed(admit(&l, s, &k, 0));
    }
    assert_eq!(memory(&l).subjects(), 3);
    clock.advance(Duration::from_secs(86_400));
    allowed(admit(&l, "b", &k, 0));
    allowed(admit(&l, "d", &k, 0));
    assert_eq!(memory(&l).subjects(), 2, "a and c were idle all of yesterday");
}

#[tokio::test]
async fn a_broken_backend_applies_on_backend_error() {
    let errors = || crate::metrics::get().rate_limit_backend_errors.get();
    let k = limits(Some(10), None, None);
    // A URL the compiler accepts but the Redis client refuses (the database is not a number).
    let url = Secret::new("redis://127.0.0.1:1/x");
    let allow = RateLimitPlan { backend: RateBackend::Redis(url.clone()), ..plan() };
    let before = errors();
    let a = allowed(Limiter::reconciled(&allow, None).admit("ida", &k, 0).await);
    assert!(a.headers.is_empty() && a.reservation.is_none(), "allowed blind: no headers");
    let deny = RateLimitPlan { on_backend_error: OnBackendError::Deny, ..allow };
    let d = Limiter::reconciled(&deny, None).admit("ida", &k, 0).await;
    assert!(matches!(d, Decision::Unavailable(_)));
    assert!(errors() >= before + 2);
}

#[test]
fn durations_are_written_like_openai_and_go() {
    for (ms, text) in [
        (0, "0s"),
        (1, "1ms"),
        (120, "120ms"),
        (1000, "1s"),
        (1500, "1.5s"),
        (1050, "1.05s"),
        (1005, "1.005s"),
        (59_500, "59.5s"),
        (60_000, "1m0s"),
        (90_000, "1m30s"),
        (360_000, "6m0s"),
        (3_600_000, "1h0m0s"),
        (86_399_999, "23h59m59.999s"),
    ] {
        assert_eq!(go_duration(ms), text, "{ms} ms");
    }
}
