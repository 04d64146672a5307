//! Per-key rate limits and quotas over real sockets: `rpm`, `tpm` and `tokens_per_day`
//! answered with 429 in the client's dialect, `Retry-After` and OpenAI's `x-ratelimit-*`
//! headers on every response of a limited key; token limits counting the real usage of each
//! answer; keys of one user sharing its counters.

mod common;

use std::time::{Duration, Instant};

use common::{Gateway, Mock, send};
use serde_json::{Value, json};

const ALICE: &str = "sk-gw-alice-0123456789abcdef";
const ALICE_CI: &str = "sk-gw-alice-ci-0123456789abcdef";
const BOB: &str = "sk-gw-bob-0123456789abcdef";
const FREE: &str = "sk-gw-free-0123456789abcdef";

fn config(mock: &Mock, alice: &str) -> String {
    format!(
        "providers:\n  local:\n    base_url: {url}\n  anthropic:\n    api_key: sk-ant\n    base_url: {url}\nmetrics:\n  enabled: true\n\
         api_keys:\n  enabled: true\n  keys:\n\
         \x20   - {{name: alice, key: {ALICE}, user: alice, {alice}}}\n\
         \x20   - {{name: alice-ci, key: {ALICE_CI}, user: alice, {alice}}}\n\
         \x20   - {{name: bob, key: {BOB}, rpm: 100}}\n\
         \x20   - {{name: free, key: {FREE}}}\n",
        url = mock.url()
    )
}

async fn chat(gw: &Gateway, key: &str) -> common::Reply {
    let body = json!({"model": "llama3", "messages": [{"role": "user", "content": "hi"}]});
    send("POST", &gw.url("/v1/chat/completions"), &[("authorization", &format!("Bearer {key}"))], body.to_string())
        .await
}

/// Waits until `n` requests are finished and recorded (their token counts settled).
async fn settled(gw: &Gateway, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let done = common::metric_sum(gw, "llm_gateway_requests_total{").await;
        if done >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{done} of {n} requests recorded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpm_refuses_in_each_dialect_with_retry_after_and_openais_headers() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, "rpm: 2"));
    // Every limit's refusal series is there from the start, at zero: Prometheus sees the first
    // refusals as an increase.
    let metrics = send("GET", &gw.url("/metrics"), &[], "").await.text();
    for series in [r#"{key="alice",limit="rpm"} 0"#, r#"{key="bob",limit="rpm"} 0"#] {
        assert!(metrics.contains(&format!("llm_gateway_rate_limited_total{series}")), "{metrics}");
    }
    assert!(!metrics.contains(r#"llm_gateway_rate_limited_total{key="free""#), "a key without limits has none");
    // Counting a prompt's tokens is not a request that counts.
    let count = json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..3 {
        let r = send("POST", &gw.url("/v1/messages/count_tokens"), &[("x-api-key", ALICE)], count.to_string()).await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    }
    let first = chat(&gw, ALICE).await;
    assert_eq!(first.status.as_u16(), 200);
    assert_eq!(first.header("x-ratelimit-limit-requests"), Some("2"));
    assert_eq!(first.header("x-ratelimit-remaining-requests"), Some("1"));
    assert!(first.header("x-ratelimit-reset-requests").is_some_and(|r| r.ends_with('s')));
    assert_eq!(first.header("x-ratelimit-limit-tokens"), None, "no token limit on this key");
    // The second key of the same user shares the count.
    assert_eq!(chat(&gw, ALICE_CI).await.header("x-ratelimit-remaining-requests"), Some("0"));
    let refused = chat(&gw, ALICE).await;
    assert_eq!(refused.status.as_u16(), 429);
    let v = refused.json();
    assert_eq!(
        (v["error"]["type"].clone(), v["error"]["code"].clone()),
        (json!("rate_limit_error"), json!("rate_limit_exceeded"))
    );
    assert!(v["error"]["message"].as_str().unwrap().contains("`rpm`"), "{v}");
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(refused.header("x-ratelimit-remaining-requests"), Some("0"));
    let auth = format!("Bearer {ALICE}");
    let messages =
        json!({"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});
    let r = send("POST", &gw.url("/v1/messages"), &[("authorization", &auth)], messages.to_string()).await;
    assert_eq!(r.status.as_u16(), 429);
    assert_eq!(r.json()["error"]["type"], "rate_limit_error", "Anthropic's shape");
    assert_eq!(r.json()["type"], "error");
    let r = send(
        "POST",
        &gw.url("/v1/responses"),
        &[("authorization", &auth)],
        json!({"model": "llama3", "input": "hi"}).to_string(),
    )
    .await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["code"].clone()), (429, json!("rate_limit_exceeded")));
    // Others are not held back; a key without limits gets no headers.
    assert_eq!(chat(&gw, BOB).await.header("x-ratelimit-remaining-requests"), Some("99"));
    let free = chat(&gw, FREE).await;
    assert_eq!(
        (free.status.as_u16(), free.header("x-ratelimit-limit-requests")),
        (200, Some("10000")),
        "a key without limits sees the upstream's own headers; a limited key sees only its own"
    );
    assert_eq!(mock.posts().len(), 4 + 3, "refused requests never reach the upstream (three count_tokens did)");
    let metrics = send("GET", &gw.url("/metrics"), &[], "").await.text();
    assert!(metrics.contains(r#"llm_gateway_rate_limited_total{key="alice",limit="rpm"} 3"#), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_limits_count_the_real_usage_of_each_answer() {
    let mock = Mock::start().await;
    // Each answer reports 19 prompt + 10 completion tokens (the fixture).
    let gw = Gateway::start(&config(&mock, "tpm: 50"));
    let first = chat(&gw, ALICE).await;
    assert_eq!(first.status.as_u16(), 200);
    assert_eq!(first.header("x-ratelimit-limit-tokens"), Some("50"));
    settled(&gw, 1.0).await;
    let second = chat(&gw, ALICE).await;
    assert_eq!(second.status.as_u16(), 200, "29 tokens used so far");
    let remaining: u64 = second.header("x-ratelimit-remaining-tokens").unwrap().parse().unwrap();
    assert!(remaining < 21, "the first answer's 29 real tokens were counted, then this one's estimate: {remaining}");
    settled(&gw, 2.0).await;
    let third = chat(&gw, ALICE_CI).await;
    assert_eq!(third.status.as_u16(), 429, "58 of 50 tokens used by the user");
    assert!(third.json()["error"]["message"].as_str().unwrap().contains("`tpm`"));
    assert_eq!(third.header("x-ratelimit-remaining-tokens"), Some("0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_quota_is_reported_in_the_token_headers_and_holds_until_midnight_utc() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, "tokens_per_day: 30"));
    let first = chat(&gw, ALICE).await;
    assert_eq!(first.header("x-ratelimit-limit-tokens"), Some("30"));
    settled(&gw, 1.0).await;
    let second = chat(&gw, ALICE).await;
    assert_eq!(second.status.as_u16(), 200, "29 of 30 used");
    settled(&gw, 2.0).await;
    let third = chat(&gw, ALICE).await;
    assert_eq!(third.status.as_u16(), 429);
    let retry: u64 = third.header("retry-after").unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let to_midnight = 86_400 - now % 86_400;
    assert!(retry.abs_diff(to_midnight) <= 2, "retry in {retry} s, midnight UTC in {to_midnight} s");
    let v: Value = third.json();
    assert!(v["error"]["message"].as_str().unwrap().contains("`tokens_per_day`"), "{v}");
}

/// Two gateway processes with one Redis: one key's `rpm` holds across both; Redis stopped
/// mid-test never holds a request (`allow` serves, `deny` answers 503), and each failure is
/// counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_rpm_limit_through_redis_and_survive_its_outage() {
    let Some(mut redis) = common::redis::RedisServer::start() else { return };
    let mock = Mock::start().await;
    let shared = |on_error: &str| {
        format!(
            "{}rate_limits:\n  backend: \"{}\"\n  on_backend_error: {on_error}\n  timeout_ms: 200\n",
            config(&mock, "rpm: 3"),
            redis.url()
        )
    };
    let a = Gateway::start(&shared("allow"));
    let b = Gateway::start(&shared("deny"));
    let mut statuses = Vec::new();
    for gw in [&a, &b, &a, &b] {
        let r = chat(gw, ALICE).await;
        statuses.push(r.status.as_u16());
        if r.status.as_u16() == 429 {
            assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("0"));
            assert_eq!(r.header("x-ratelimit-limit-requests"), Some("3"));
            assert!(r.header("retry-after").is_some());
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429], "three requests a minute for alice, whichever replica serves");
    let remaining = chat(&a, ALICE_CI).await;
    assert_eq!(remaining.status.as_u16(), 429, "the user's other key counts against the same limit");
    redis.stop();
    let started = Instant::now();
    let served = chat(&a, FREE).await;
    assert_eq!(served.status.as_u16(), 200, "a key without limits never asks Redis");
    let allowed = chat(&a, BOB).await;
    assert_eq!(allowed.status.as_u16(), 200, "`allow`: served without Redis");
    assert_eq!(allowed.header("x-ratelimit-limit-requests"), None, "nothing to report");
    let denied = chat(&b, BOB).await;
    assert_eq!(denied.status.as_u16(), 503, "`deny`: refused");
    assert_eq!(denied.json()["error"]["code"], "rate_limit_backend_unavailable");
    assert!(started.elapsed() < Duration::from_secs(5), "never held: {:?}", started.elapsed());
    for gw in [&a, &b] {
        let metrics = send("GET", &gw.url("/metrics"), &[], "").await.text();
        let errors = metrics.lines().find(|l| l.starts_with("llm_gateway_rate_limit_backend_errors_total ")).unwrap();
        assert_ne!(errors, "llm_gateway_rate_limit_backend_errors_total 0", "{errors}");
    }
    assert!(a.wait_for_log("rate limits: the backend failed"), "{}", a.logs());
}

/// A stream the client leaves is charged its prompt's estimate and a token per event relayed,
/// translated or not: not the zeros a translated stream's first event reports (a Messages
/// stream's `message_start`), nor nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_the_client_leaves_is_charged_its_estimate_and_events_in_every_dialect() {
    use http_body_util::BodyExt;
    let mock = Mock::start().await;
    // What a whole chat request leaves of 1,000 tokens once admitted: its own estimate taken.
    let fresh = Gateway::start(&config(&mock, "tpm: 1000"));
    let alone: u64 = chat(&fresh, ALICE).await.header("x-ratelimit-remaining-tokens").unwrap().parse().unwrap();
    let streams = [
        (
            "/v1/chat/completions",
            json!({"model": "slow-stream", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        ),
        (
            "/v1/messages",
            json!({"model": "slow-stream", "max_tokens": 64, "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        ),
        ("/v1/responses", json!({"model": "slow-stream", "stream": true, "input": "x"})),
    ];
    for (path, body) in streams {
        let gw = Gateway::start(&config(&mock, "tpm: 1000"));
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<http_body_util::Full<bytes::Bytes>>();
        let req = http::Request::post(gw.url(path))
            .header("authorization", format!("Bearer {ALICE}"))
            .body(http_body_util::Full::new(bytes::Bytes::from(body.to_string())))
            .unwrap();
        let mut stream = client.request(req).await.unwrap().into_body();
        // The mock spaces its events 300 ms apart: the client leaves after the first.
        let first = stream.frame().await.unwrap().unwrap().into_data().unwrap();
        assert!(!first.is_empty(), "{path}");
        drop((stream, client));
        settled(&gw, 1.0).await;
        let after: u64 = chat(&gw, ALICE).await.header("x-ratelimit-remaining-tokens").unwrap().parse().unwrap();
        assert!(after < alone, "{path}: the stream left was charged nothing ({after} of {alone} left)");
    }
}
