//! `GET /metrics` after scripted traffic: exact counter values, parsed with a Prometheus
//! text-format parser.

mod common;

use common::{Gateway, Mock, post_json, send};
use prometheus_parse::{Scrape, Value};

const ALICE: &str = "sk-gw-alice-0123456789abcdef";

fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found =
        scrape.samples.iter().find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)));
    match found.map(|s| &s.value) {
        Some(Value::Counter(v)) | Some(Value::Gauge(v)) | Some(Value::Untyped(v)) => *v,
        Some(Value::Histogram(buckets)) => buckets.last().map_or(0.0, |b| b.count),
        other => panic!("{name} {labels:?}: {other:?}"),
    }
}

async fn scrape(gw: &Gateway) -> Scrape {
    let r = send("GET", &gw.url("/metrics"), &[], "").await;
    assert_eq!(r.status.as_u16(), 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    Scrape::parse(r.text().lines().map(|l| Ok(l.to_owned()))).expect("valid Prometheus text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_after_scripted_traffic() {
    let mock = Mock::start().await;
    let cfg = format!(
        "providers:\n  local:\n    endpoints:\n      - name: gpu-a\n        base_url: {}\nmetrics:\n  enabled: true\napi_keys:\n  enabled: true\n  keys:\n    - name: alice\n      key: {ALICE}\nrouting:\n  routes:\n    - name: general\n      model: llama3\n",
        mock.url()
    );
    let gw = Gateway::start(&cfg);
    let url = gw.url("/v1/chat/completions");
    let auth = format!("Bearer {ALICE}");
    let chat = |body: &'static str| {
        let (url, auth) = (url.clone(), auth.clone());
        async move { send("POST", &url, &[("authorization", &auth)], body).await.status.as_u16() }
    };
    for _ in 0..3 {
        assert_eq!(chat(r#"{"model":"llama3","messages":[{"role":"user","content":"x"}]}"#).await, 200);
    }
    assert_eq!(chat(r#"{"model":"auto","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}"#).await, 200);
    assert_eq!(chat(r#"{"model":"error-401","messages":[{"role":"user","content":"x"}]}"#).await, 401);
    assert_eq!(post_json(&url, r#"{"model":"llama3","messages":[]}"#).await.status.as_u16(), 401, "no key");

    // The access log (and the metrics) are written when each response is done.
    assert!(gw.wait_for_log("status=401 stream=false"));
    let s = scrape(&gw).await;
    let local = [("provider", "local"), ("model", "llama3")];
    assert_eq!(
        value(&s, "llm_gateway_requests_total", &[local[0], local[1], ("streaming", "false"), ("status", "200")]),
        3.0
    );
    assert_eq!(
        value(&s, "llm_gateway_requests_total", &[local[0], local[1], ("streaming", "true"), ("status", "200")]),
        1.0
    );
    assert_eq!(
        value(&s, "llm_gateway_requests_total", &[local[0], ("model", "other"), ("status", "401")]),
        1.0,
        "an unknown model is labelled `other`"
    );
    assert_eq!(value(&s, "llm_gateway_requests_total", &[("provider", "-"), ("status", "401")]), 1.0);
    assert_eq!(
        value(&s, "llm_gateway_tokens_prompt_total", &[local[0], local[1], ("key", "alice")]),
        (3 * 19 + 71) as f64
    );
    assert_eq!(
        value(&s, "llm_gateway_tokens_completion_total", &[local[0], local[1], ("key", "alice")]),
        (3 * 10 + 16) as f64
    );
    assert_eq!(value(&s, "llm_gateway_request_duration_seconds", &local), 4.0);
    assert_eq!(value(&s, "llm_gateway_time_to_first_token_seconds", &local), 1.0);
    assert_eq!(value(&s, "llm_gateway_routing_decisions_total", &[("method", "default"), ("route", "general")]), 1.0);
    assert_eq!(value(&s, "llm_gateway_routing_decisions_total", &[("method", "explicit"), ("route", "")]), 4.0);
    assert_eq!(
        value(&s, "llm_gateway_provider_errors_total", &[("provider", "local"), ("error_type", "http_401")]),
        1.0
    );
    assert_eq!(value(&s, "llm_gateway_endpoint_healthy", &[("provider", "local"), ("endpoint", "gpu-a")]), 1.0);
    assert_eq!(value(&s, "llm_gateway_requests_inflight", &[]), 1.0, "the scrape itself");
    assert_eq!(value(&s, "llm_gateway_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    assert!(value(&s, "llm_gateway_config_last_reload_success_timestamp_seconds", &[]) > 1.7e9);
    let config = s.samples.iter().find(|x| x.metric == "llm_gateway_config_info").expect("config info");
    assert_eq!(config.labels.get("sha256").map(str::len), Some(12));

    // Probes and scrapes are logged, not counted as requests.
    for path in ["/health", "/ready", "/metrics"] {
        assert_eq!(send("GET", &gw.url(path), &[], "").await.status.as_u16(), 200);
    }
    assert!(gw.wait_for_log("/ready"));
    let s = scrape(&gw).await;
    let requests: f64 = s
        .samples
        .iter()
        .filter(|x| x.metric == "llm_gateway_requests_total")
        .map(|x| match x.value {
            Value::Counter(v) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(requests, 6.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_unless_enabled() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&format!("providers:\n  local:\n    base_url: {}\n", mock.url()));
    assert_eq!(send("GET", &gw.url("/metrics"), &[], "").await.status.as_u16(), 404);
}
