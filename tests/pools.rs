//! Endpoint pools over real sockets: health-checked start, passive failover, no retry of
//! HTTP errors, 503 when every endpoint is down, and the models union from the probes.

mod common;
#[path = "common/faulty.rs"]
mod faulty;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// A keep-alive upstream that closes a connection idle for `close_after` since it answered a
/// POST as the next request arrives, without answering it: a model server's own idle timeout
/// (llama.cpp's server and uvicorn close idle connections after 5 s) crossing a request sent on
/// that connection. (A connection that only answered the gateway's first health probe is
/// never closed, however slowly the test's first request comes.) Returns its URL and the
/// number of connections it accepted.
async fn closing_idle_upstream(close_after: std::time::Duration) -> (String, Arc<AtomicUsize>) {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut answered_post: Option<std::time::Instant> = None;
                // hyper sends the next request only once the last is answered, so each read
                // holds one request.
                while let Ok((method, _, _)) = faulty::read_request(&mut stream).await {
                    if answered_post.is_some_and(|at| at.elapsed() >= close_after) {
                        return;
                    }
                    let post = method == "POST";
                    let body: &[u8] = if !post {
                        br#"{"object":"list","data":[{"id":"llama3","object":"model"}]}"#
                    } else {
                        br#"{"id":"c","object":"chat.completion","created":1,"model":"llama3","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#
                    };
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    if stream.write_all(&[head.as_bytes(), body].concat()).await.is_err() {
                        return;
                    }
                    if post {
                        answered_post = Some(std::time::Instant::now());
                    }
                }
            });
        }
    });
    (url, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_connection_idle_past_upstream_idle_seconds_is_not_reused() {
    use http_body_util::BodyExt;
    // The upstream closes connections idle for 1.5 s as a request arrives. Kept 1 s, a
    // connection is dropped before that and the request after a 2 s pause goes on a new one;
    // kept 10 s, it is sent on the connection being closed and fails without an answer.
    for (keep, status, new_connections) in [(1, 200, 1), (10, 502, 0)] {
        let (url, accepted) = closing_idle_upstream(std::time::Duration::from_millis(1500)).await;
        let gw = Gateway::start(&format!(
            "providers:\n  local:\n    base_url: {url}\n    health_check:\n      interval_seconds: 3600\n\
             timeouts:\n  upstream_idle_seconds: {keep}\n"
        ));
        // One client connection, so both requests are served by the same thread (each thread
        // has its own upstream connections).
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<http_body_util::Full<bytes::Bytes>>();
        let post = || async {
            let req = http::Request::post(gw.url("/v1/chat/completions"))
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(bytes::Bytes::from_static(CHAT.as_bytes())))
                .unwrap();
            let resp = client.request(req).await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.into_body().collect().await.unwrap().to_bytes())
        };
        assert_eq!(post().await.0, 200, "{}", gw.logs());
        let before = accepted.load(Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
        let (got, body) = post().await;
        assert_eq!(got, status, "kept {keep} s: {}", String::from_utf8_lossy(&body));
        assert_eq!(accepted.load(Ordering::SeqCst) - before, new_connections, "kept {keep} s");
    }
}
