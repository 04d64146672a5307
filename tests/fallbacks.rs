//! Retries and fallbacks over real sockets: each trigger (429, 5xx, connect failure, first-byte
//! timeout, no healthy endpoint) moves a request to its fallback — across providers and
//! dialects — before anything reaches the client; other 4xx never do; retries honour
//! `retry-after-ms`; a key's ACL limits its fallbacks; the answering model is named in
//! `x-llm-gateway-model`, counted in `llm_gateway_fallbacks_total` and logged.

mod common;

use common::{Gateway, Mock, send};
use serde_json::{Value, json};

/// `local` and `anthropic` on the mock; `extra` appended (fallbacks, retry, timeouts…).
fn config(mock: &Mock, extra: &str) -> String {
    format!(
        "providers:\n  local:\n    base_url: {url}\n  anthropic:\n    api_key: sk-ant-upstream\n    base_url: {url}\n\
         metrics:\n  enabled: true\n{extra}",
        url = mock.url()
    )
}

async fn post(gw: &Gateway, path: &str, body: Value) -> common::Reply {
    send("POST", &gw.url(path), &[("content-type", "application/json")], body.to_string()).await
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hello"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_falls_back_across_providers_and_dialects_and_says_so() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, "fallbacks:\n  \"rate-*\": [claude-sonnet-4-5, llama3]\n"));
    let r = post(&gw, "/v1/chat/completions", chat("rate-limited")).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_eq!(r.header("x-llm-gateway-model"), Some("claude-sonnet-4-5"));
    let v = r.json();
    assert_eq!(v["object"], "chat.completion", "Anthropic's answer in the client's dialect: {v}");
    let paths: Vec<String> = mock.posts().iter().map(|s| s.path.clone()).collect();
    assert_eq!(paths, ["/v1/chat/completions", "/v1/messages"], "one try, then the fallback");
    let sent: Value = serde_json::from_slice(&mock.posts()[1].body).unwrap();
    assert_eq!(sent["model"], "claude-sonnet-4-5");
    assert_eq!(
        common::metric_sum(
            &gw,
            r#"llm_gateway_fallbacks_total{from="other",reason="rate_limited",to="claude-sonnet-4-5"}"#
        )
        .await,
        1.0
    );
    assert!(gw.wait_for_log("fallback: model 'rate-limited' failed (rate_limited)"), "{}", gw.logs());
    assert!(
        gw.wait_for_log("model_asked=rate-limited model_sent=claude-sonnet-4-5 "),
        "the access line names the model asked and the one that answered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_anthropic_falls_back_to_a_local_model_for_a_messages_client_streaming_too() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, "fallbacks:\n  \"claude-*\": [llama3]\n"));
    let body = json!({"model": "claude-overloaded", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]});
    let r = post(&gw, "/v1/messages", body.clone()).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_eq!(r.header("x-llm-gateway-model"), Some("llama3"));
    assert_eq!(r.json()["type"], "message", "the local answer translated to Messages");
    let mut streamed = body;
    streamed["stream"] = json!(true);
    let r = post(&gw, "/v1/messages", streamed).await;
    assert_eq!(r.status.as_u16(), 200);
    let text = r.text();
    assert!(text.contains("event: message_start") && text.contains("event: message_stop"), "{text}");
    assert_eq!(
        common::metric_sum(&gw, r#"llm_gateway_fallbacks_total{from="other",reason="server_error",to="llama3"}"#).await,
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responses_client_falls_back_from_a_5xx() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, "fallbacks:\n  overloaded: [claude-haiku-4-5]\n"));
    let r = post(&gw, "/v1/responses", json!({"model": "overloaded", "input": "Hi"})).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_eq!(r.header("x-llm-gateway-model"), Some("claude-haiku-4-5"));
    assert_eq!(r.json()["object"], "response");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures_and_timeouts_fall_back_and_other_4xx_never_do() {
    let mock = Mock::start().await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    // `local` is unreachable (a port nobody listens on); OpenAI-compatible models on the mock.
    let yaml = format!(
        "providers:\n  local:\n    base_url: http://{dead}\n    health_check: {{interval_seconds: 3600}}\n  open_ai:\n    api_key: sk-up\n    base_url: {url}\n  anthropic:\n    api_key: sk-ant\n    base_url: {url}\n\
         metrics:\n  enabled: true\ntimeouts:\n  first_byte_seconds: 1\nretry:\n  on: [connect, timeout, rate_limited, server_error]\n\
         fallbacks:\n  llama3: [claude-sonnet-4-5]\n  \"gpt-slow*\": [claude-sonnet-4-5]\n",
        url = mock.url()
    );
    let gw = Gateway::start(&yaml);
    let r = post(&gw, "/v1/chat/completions", chat("llama3")).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_eq!(r.header("x-llm-gateway-model"), Some("claude-sonnet-4-5"));
    assert!(gw.wait_for_log("fallback: model 'llama3' failed (connect)"), "{}", gw.logs());
    // The mock answers OpenAI models by name: `slow` takes 3 s, past the 1 s first-byte timeout.
    let r = post(&gw, "/v1/chat/completions", chat("gpt-slow")).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert!(gw.wait_for_log("fallback: model 'gpt-slow' failed (timeout)"), "{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_4xx_answers_never_fall_back() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, "fallbacks:\n  \"*\": [llama3]\n"));
    let r = post(&gw, "/v1/chat/completions", chat("error-401")).await;
    assert_eq!(r.status.as_u16(), 401, "a 401 is the client's answer, never a fallback");
    assert_eq!(r.header("x-llm-gateway-model"), Some("error-401"));
    assert_eq!(mock.posts().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_with_no_healthy_endpoint_goes_straight_to_the_fallback() {
    let mock = Mock::start().await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let yaml = format!(
        "providers:\n  local:\n    endpoints:\n      - {{name: gpu-1, base_url: \"http://{dead}\"}}\n    health_check: {{interval_seconds: 3600, timeout_seconds: 1}}\n\
         anthropic:\n    api_key: sk-ant\n    base_url: {url}\nmetrics:\n  enabled: true\nfallbacks:\n  \"*\": [claude-sonnet-4-5]\n",
        url = mock.url()
    )
    .replace("\nanthropic:", "\n  anthropic:");
    let gw = Gateway::start(&yaml);
    assert!(gw.wait_for_log("endpoint 'gpu-1' is now unhealthy"), "{}", gw.logs());
    let r = post(&gw, "/v1/chat/completions", chat("llama3")).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_eq!(r.header("x-llm-gateway-model"), Some("claude-sonnet-4-5"));
    assert!(gw.wait_for_log("failed (no_healthy_endpoint)"), "{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_honour_retry_after_ms_and_a_long_retry_after_moves_on_at_once() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(
        &mock,
        "retry:\n  attempts: 3\n  backoff_ms: 10\n  max_backoff_ms: 1000\nfallbacks:\n  rate-limited: [llama3]\n",
    ));
    let r = post(&gw, "/v1/chat/completions", chat("flaky")).await;
    assert_eq!(r.status.as_u16(), 200, "the second try answers: {}", r.text());
    assert_eq!(r.header("x-llm-gateway-model"), Some("flaky"));
    assert_eq!(mock.posts().len(), 2, "one retry");
    assert_eq!(common::metric_sum(&gw, r#"llm_gateway_retries_total{model="other",reason="server_error"}"#).await, 1.0);
    // `retry-after: 30` is over `max_backoff_ms`: no retry, the fallback at once.
    let started = std::time::Instant::now();
    let r = post(&gw, "/v1/chat/completions", chat("rate-limited")).await;
    assert_eq!(r.header("x-llm-gateway-model"), Some("llama3"));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(mock.posts().len(), 4, "the 429 once, then the fallback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_failure_is_the_answer_and_a_key_only_falls_back_to_models_it_may_use() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(
        &mock,
        "fallbacks:\n  rate-limited: [claude-sonnet-4-5, overloaded]\napi_keys:\n  enabled: true\n  keys:\n    - {name: narrow, key: sk-gw-narrow-0123456789abcdef, allowed_models: [\"rate-*\", overloaded]}\n",
    ));
    let r = send(
        "POST",
        &gw.url("/v1/chat/completions"),
        &[("authorization", "Bearer sk-gw-narrow-0123456789abcdef")],
        chat("rate-limited").to_string(),
    )
    .await;
    assert_eq!(r.status.as_u16(), 503, "the last fallback's own answer: {}", r.text());
    assert_eq!(r.header("x-llm-gateway-model"), Some("overloaded"));
    let models: Vec<Value> =
        mock.posts().iter().map(|s| serde_json::from_slice::<Value>(&s.body).unwrap()["model"].clone()).collect();
    assert_eq!(models, [json!("rate-limited"), json!("overloaded")], "claude is not allowed for this key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routes_fallbacks_come_first() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(
        &mock,
        "fallbacks:\n  \"*\": [claude-sonnet-4-5]\nrouting:\n  routes:\n    - {name: fast, model: overloaded, fallbacks: [llama3]}\n",
    ));
    let r = post(&gw, "/v1/chat/completions", chat("fast")).await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.header("x-llm-gateway-model"), Some("llama3"));
    assert_eq!(r.header("x-llm-gateway-route"), Some("fast"));
}

/// Every trigger, in every client dialect: the answer comes from the fallback, in the
/// client's dialect, and the metric names the trigger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_trigger_falls_back_in_every_dialect() {
    let mock = Mock::start().await;
    // Passes its health probes, then drops every request's connection without an answer.
    let closing = Mock::start_with(common::Behaviour::Close).await;
    let yaml = format!(
        "providers:\n  local:\n    base_url: {url}\n  anthropic:\n    api_key: sk-ant\n    base_url: {url}\n  open_ai:\n    api_key: sk-x\n    base_url: {closing}\n    health_check: {{interval_seconds: 3600}}\n\
         metrics:\n  enabled: true\ntimeouts:\n  first_byte_seconds: 1\nfallbacks:\n  \"*\": [llama3]\n",
        url = mock.url(),
        closing = closing.url()
    );
    let gw = Gateway::start(&yaml);
    let triggers = [
        ("rate-limited", "rate_limited"),
        ("overloaded", "server_error"),
        ("claude-rate-limited", "rate_limited"),
        ("claude-overloaded", "server_error"),
        ("gpt-4o", "connect"),
        ("slow", "timeout"),
    ];
    let mut runs = Vec::new();
    for (model, _) in triggers {
        for (path, body) in [
            ("/v1/chat/completions", chat(model)),
            (
                "/v1/messages",
                json!({"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "Hi"}]}),
            ),
            ("/v1/responses", json!({"model": model, "input": "Hi"})),
        ] {
            let gw = &gw;
            runs.push(async move { (model, path, post(gw, path, body).await) });
        }
    }
    for (model, path, r) in futures_util::future::join_all(runs).await {
        assert_eq!(r.status.as_u16(), 200, "{model} on {path}: {}", r.text());
        assert_eq!(r.header("x-llm-gateway-model"), Some("llama3"), "{model} on {path}");
        let v = r.json();
        let shape = match path {
            "/v1/chat/completions" => v["object"] == "chat.completion",
            "/v1/messages" => v["type"] == "message",
            _ => v["object"] == "response",
        };
        assert!(shape, "{model} on {path}: {v}");
    }
    let text = send("GET", &gw.url("/metrics"), &[], "").await.text();
    for (_, reason) in triggers {
        assert!(
            text.lines()
                .any(|l| l.starts_with("llm_gateway_fallbacks_total{") && l.contains(&format!("reason=\"{reason}\""))),
            "{reason}: {text}"
        );
    }
}
