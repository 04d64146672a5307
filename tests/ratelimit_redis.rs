//! Rate limits on a real `redis-server` (started per test on a free port): replicas share
//! windows, tokens settle, keys expire by themselves, and a Redis that is down or stalled
//! never holds a request (`on_backend_error` decides), and is used again once it is back.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis::RedisServer;
use http::{HeaderName, HeaderValue};
use llm_gateway::ratelimit::{Admission, Clock, Decision, Limiter};
use llm_gateway_compiler::Secret;
use llm_gateway_compiler::acl::KeyLimits;
use llm_gateway_compiler::plan::{OnBackendError, RateBackend, RateLimitPlan};

const TIMEOUT: Duration = Duration::from_millis(100);

fn plan(server: &RedisServer, on_backend_error: OnBackendError) -> RateLimitPlan {
    RateLimitPlan { backend: RateBackend::Redis(Secret::new(server.url())), on_backend_error, timeout: TIMEOUT }
}

fn limits(rpm: Option<u64>, tpm: Option<u64>, tokens_per_day: Option<u64>) -> KeyLimits {
    KeyLimits { rpm, tpm, tokens_per_day, max_concurrent: None }
}

/// The system time, frozen for the test: windows cannot roll over in its middle.
fn frozen_now() -> Clock {
    Clock::manual(Clock::system().now_ms())
}

fn allowed(d: Decision) -> Admission {
    match d {
        Decision::Allowed(a) => a,
        Decision::Limited(r) => panic!("refused by {} for {:?}", r.limit, r.retry_after),
        Decision::Unavailable(_) => panic!("unavailable"),
    }
}

fn header<'a>(headers: &'a [(HeaderName, HeaderValue)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.to_str().expect("ascii"))
}

fn backend_errors() -> u64 {
    llm_gateway::metrics::get().rate_limit_backend_errors.get()
}

async fn redis(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(server.url()).expect("valid url");
    client.get_multiplexed_async_connection().await.expect("connects")
}

async fn get(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> Option<i64> {
    redis::cmd("GET").arg(key).query_async(conn).await.expect("GET")
}

/// A window's key as the backend names it.
fn key(subject: &str, window: &str, now_ms: u64) -> String {
    let id = if window == "tpd" { now_ms / 86_400_000 } else { now_ms / 60_000 };
    format!("llm-gateway:rl:{subject}:{window}:{id}")
}

#[tokio::test]
async fn two_replicas_share_one_rpm_limit() {
    let Some(server) = RedisServer::start() else { return };
    let clock = frozen_now();
    let plan = plan(&server, OnBackendError::Deny);
    let (a, b) = (Limiter::with_clock(&plan, clock.clone()), Limiter::with_clock(&plan, clock.clone()));
    let k = limits(Some(5), None, None);
    for (i, replica) in [&a, &b, &a, &b, &a].into_iter().enumerate() {
        let admitted = allowed(replica.admit("team", &k, 10).await);
        let remaining = (4 - i).to_string();
        assert_eq!(header(&admitted.headers, "x-ratelimit-remaining-requests"), Some(remaining.as_str()));
        assert_eq!(header(&admitted.headers, "x-ratelimit-limit-requests"), Some("5"));
    }
    for replica in [&a, &b] {
        let Decision::Limited(r) = replica.admit("team", &k, 10).await else { panic!("the sixth request passed") };
        assert_eq!(r.limit, "rpm");
        let to_minute_end = 60 - clock.now_ms() % 60_000 / 1000;
        assert!(r.retry_after.as_secs() <= to_minute_end && r.retry_after >= Duration::from_secs(1));
        assert_eq!(header(&r.headers, "x-ratelimit-remaining-requests"), Some("0"));
    }
    let mut conn = redis(&server).await;
    assert_eq!(get(&mut conn, &key("team", "rpm", clock.now_ms())).await, Some(5), "refusals count nothing");
    allowed(a.admit("someone-else", &k, 10).await);
}

#[tokio::test]
async fn tokens_settle_in_the_windows_they_were_counted_in() {
    let Some(server) = RedisServer::start() else { return };
    let clock = frozen_now();
    let limiter = Limiter::with_clock(&plan(&server, OnBackendError::Deny), clock.clone());
    let k = limits(Some(100), Some(10_000), Some(1_000_000));
    let start = clock.now_ms();
    let (tpm, tpd) = (key("ann", "tpm", start), key("ann", "tpd", start));
    let mut conn = redis(&server).await;

    let admitted = allowed(limiter.admit("ann", &k, 400).await);
    assert_eq!(header(&admitted.headers, "x-ratelimit-remaining-tokens"), Some("9600"));
    assert_eq!(get(&mut conn, &tpm).await, Some(400));
    admitted.reservation.expect("token limits reserve").settle(1500);
    eventually(&mut conn, &tpm, 1500).await;
    eventually(&mut conn, &tpd, 1500).await;

    let down = allowed(limiter.admit("ann", &k, 1000).await).reservation.expect("reserved");
    // The clock moves to the next minute before the response ends: the correction still
    // goes to the minute the estimate was counted in.
    clock.advance(Duration::from_secs(60));
    allowed(limiter.admit("ann", &k, 7).await);
    down.settle(100);
    eventually(&mut conn, &tpm, 1600).await;
    eventually(&mut conn, &tpd, 1607).await;
    assert_eq!(get(&mut conn, &key("ann", "tpm", clock.now_ms())).await, Some(7), "the new minute is untouched");
    assert_eq!(get(&mut conn, &key("ann", "rpm", start)).await, Some(2), "requests are not settled");

    let kept = allowed(limiter.admit("ann", &k, 50).await).reservation.expect("reserved");
    drop(kept);
    assert_eq!(get(&mut conn, &tpd).await, Some(1657), "dropped without settling: the estimate stays");
}

/// Waits (bounded) for a spawned settle to land.
async fn eventually(conn: &mut redis::aio::MultiplexedConnection, key: &str, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = get(conn, key).await;
        if got == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "{key} is {got:?}, not {want}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn window_keys_expire_by_themselves() {
    let Some(server) = RedisServer::start() else { return };
    let clock = frozen_now();
    let limiter = Limiter::with_clock(&plan(&server, OnBackendError::Deny), clock.clone());
    allowed(limiter.admit("exp", &limits(Some(10), Some(1000), Some(5000)), 10).await);
    let mut conn = redis(&server).await;
    let now = clock.now_ms();
    for (window, length_ms) in [("rpm", 60_000), ("tpm", 60_000), ("tpd", 86_400_000)] {
        let pttl: i64 = redis::cmd("PTTL").arg(key("exp", window, now)).query_async(&mut conn).await.expect("PTTL");
        let until_end = length_ms - now % length_ms;
        assert!(pttl > 0, "{window}: PTTL {pttl} (-1: no expiry, -2: no key)");
        assert!(pttl as u64 <= until_end + 60_000, "{window}: PTTL {pttl} past the window's end + a minute");
    }
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut conn).await.expect("KEYS");
    assert_eq!(keys.len(), 3, "one key per window: {keys:?}");
}

#[tokio::test]
async fn a_stopped_redis_never_holds_a_request_and_a_restarted_one_limits_again() {
    let Some(mut server) = RedisServer::start() else { return };
    let allow = Arc::new(Limiter::with_clock(&plan(&server, OnBackendError::Allow), frozen_now()));
    // Same backend, other policy: shares the connections (and the counters).
    let deny = Limiter::reconciled(&plan(&server, OnBackendError::Deny), Some(&allow));
    let k = limits(Some(3), None, None);
    allowed(allow.admit("zed", &k, 0).await);
    allowed(deny.admit("zed", &k, 0).await);

    server.stop();
    let before = backend_errors();
    for _ in 0..3 {
        let started = Instant::now();
        let admitted = allowed(allow.admit("zed", &k, 0).await);
        assert!(admitted.headers.is_empty(), "allowed without counting: no headers");
        assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
        let started = Instant::now();
        assert!(matches!(deny.admit("zed", &k, 0).await, Decision::Unavailable(_)));
        assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    }
    assert!(backend_errors() >= before + 6, "every failure is counted");

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut admitted = 0;
    loop {
        match allow.admit("zed", &k, 0).await {
            // Reconnected: the restarted (empty) Redis counts from zero.
            Decision::Allowed(a) if !a.headers.is_empty() => {
                admitted += 1;
                let remaining = (3 - admitted).to_string();
                assert_eq!(header(&a.headers, "x-ratelimit-remaining-requests"), Some(remaining.as_str()));
            }
            Decision::Allowed(_) => {
                assert!(Instant::now() < deadline, "no reconnection to the restarted Redis");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Decision::Limited(r) => {
                assert_eq!((r.limit, admitted), ("rpm", 3));
                break;
            }
            Decision::Unavailable(_) => panic!("allow mode answered unavailable"),
        }
    }
    assert!(matches!(deny.admit("zed", &k, 0).await, Decision::Limited(_)), "the deny replica works again too");
}

#[tokio::test]
async fn a_redis_slower_than_the_timeout_never_holds_a_request() {
    let Some(server) = RedisServer::start() else { return };
    let pid = server.pid().expect("running") as libc::pid_t;
    let limiter = Limiter::with_clock(&plan(&server, OnBackendError::Allow), frozen_now());
    let k = limits(Some(100), None, None);
    allowed(limiter.admit("slow", &k, 0).await);

    let before = backend_errors();
    // SAFETY: signals the redis-server this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let started = Instant::now();
    let admitted = allowed(limiter.admit("slow", &k, 0).await);
    let took = started.elapsed();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    assert!(admitted.headers.is_empty());
    assert!(took >= TIMEOUT && took < TIMEOUT + Duration::from_millis(500), "took {took:?}");
    assert!(backend_errors() > before);

    // The connection survives a slow answer.
    let a = allowed(limiter.admit("slow", &k, 0).await);
    assert_eq!(header(&a.headers, "x-ratelimit-limit-requests"), Some("100"));
}

/// What a Redis round trip adds to a request: admit() on rpm + tpm against a local Redis,
/// sequentially. `cargo test --release --test ratelimit_redis -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn redis_round_trip_p50_p99() {
    let Some(server) = RedisServer::start() else { return };
    let limiter = Limiter::reconciled(&plan(&server, OnBackendError::Deny), None);
    let k = limits(Some(1_000_000_000), Some(1_000_000_000_000), None);
    for _ in 0..1000 {
        allowed(limiter.admit("bench", &k, 100).await);
    }
    let mut took: Vec<Duration> = Vec::with_capacity(20_000);
    for _ in 0..20_000 {
        let started = Instant::now();
        let admitted = allowed(limiter.admit("bench", &k, 100).await);
        took.push(started.elapsed());
        drop(admitted);
    }
    took.sort();
    let at = |q: f64| took[((took.len() - 1) as f64 * q) as usize];
    println!(
        "redis admit (rpm+tpm), {} sequential: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        took.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
}
