//! Endpoint pools over real sockets: health-checked start, passive failover, no retry of
//! HTTP errors, 503 when every endpoint is down, and the models union from the probes.

mod common;

use common::{Behaviour, Gateway, Mock, post_json, send};

const CHAT: &str = r#"{"model":"llama3","messages":[{"role":"user","content":"x"}]}"#;

fn pool(endpoints: &[(&str, String)], extra: &str) -> String {
    let eps: String =
        endpoints.iter().map(|(name, url)| format!("      - name: {name}\n        base_url: {url}\n")).collect();
    format!("providers:\n  local:\n    endpoints:\n{eps}{extra}")
}

fn dead_url() -> String {
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_endpoint_is_found_before_traffic_and_skipped() {
    let good = Mock::start().await;
    let gw = Gateway::start(&pool(&[("dead", dead_url()), ("good", good.url())], ""));
    assert!(gw.wait_for_log("endpoint 'dead' is now unhealthy"), "{}", gw.logs());
    for _ in 0..4 {
        assert_eq!(post_json(&gw.url("/v1/chat/completions"), CHAT).await.status.as_u16(), 200);
    }
    let posts = good.posts().len();
    assert_eq!(posts, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_before_any_byte_fails_over_and_marks_the_endpoint() {
    let closer = Mock::start_with(Behaviour::Close).await;
    let good = Mock::start().await;
    let gw = Gateway::start(&pool(&[("closer", closer.url()), ("good", good.url())], ""));
    for _ in 0..4 {
        let r = post_json(&gw.url("/v1/chat/completions"), CHAT).await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    }
    assert!(gw.wait_for_log("endpoint 'closer' is now unhealthy"));
    let posts = |m: &Mock| m.posts().len();
    assert_eq!((posts(&closer), posts(&good)), (1, 4), "tried once, then skipped: {}", gw.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_endpoint_fails_over_after_the_first_byte_timeout() {
    let staller = Mock::start_with(Behaviour::Stall).await;
    let good = Mock::start().await;
    let gw = Gateway::start(&pool(
        &[("staller", staller.url()), ("good", good.url())],
        "timeouts:\n  first_byte_seconds: 1\n",
    ));
    let started = std::time::Instant::now();
    let r = post_json(&gw.url("/v1/chat/completions"), CHAT).await;
    assert_eq!(r.status.as_u16(), 200);
    assert!(started.elapsed() >= std::time::Duration::from_secs(1), "waited for the timeout first");
    assert!(gw.wait_for_log("endpoint 'staller' is now unhealthy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_errors_are_answers_not_failures() {
    let failing = Mock::start_with(Behaviour::Fail).await;
    let good = Mock::start().await;
    let gw = Gateway::start(&pool(&[("failing", failing.url()), ("good", good.url())], ""));
    // Equal weights: the first request goes to the first endpoint.
    let r = post_json(&gw.url("/v1/chat/completions"), CHAT).await;
    assert_eq!(r.status.as_u16(), 500);
    assert_eq!(r.json()["error"]["message"], "boom");
    assert!(good.posts().is_empty(), "a 500 is not retried elsewhere");
    assert!(!gw.logs().contains("is now unhealthy"));
    assert_eq!(post_json(&gw.url("/v1/chat/completions"), CHAT).await.status.as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_down_is_a_503_naming_the_provider() {
    let gw = Gateway::start(&pool(&[("a", dead_url()), ("b", dead_url())], ""));
    let r = post_json(&gw.url("/v1/chat/completions"), CHAT).await;
    assert_eq!(r.status.as_u16(), 503, "{}", r.text());
    assert_eq!(r.header("x-llm-gateway-error"), Some("upstream"));
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.starts_with("every endpoint of provider 'local' failed (2 tried)"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_are_the_union_of_healthy_endpoints_from_the_probes() {
    let openai_style = Mock::start().await;
    let ollama = Mock::start_with(Behaviour::Ollama).await;
    let gw = Gateway::start(&pool(&[("a", openai_style.url()), ("b", ollama.url()), ("c", dead_url())], ""));
    let before = openai_style.requests().len();
    let r = send("GET", &gw.url("/v1/models"), &[], "").await;
    let json = r.json();
    let ids: Vec<&str> = json["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["gpt-4o-mini", "text-embedding-3-small", "llama3:latest"]);
    assert_eq!(openai_style.requests().len(), before, "answered from the probe cache, no fan-out");
}
