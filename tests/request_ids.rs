//! What identifies and records a request: its id (the client's when usable, else a new one)
//! on every response, in every error the gateway makes and in its one access log line; that
//! line cannot be split by what a client sends; and `/ready`, which says whether the providers
//! the plan routes to can be reached.

mod common;

use common::{Gateway, Mock, send};

fn config(mock: &Mock) -> String {
    format!("providers:\n  local:\n    base_url: {url}/v1\n", url = mock.url())
}

const JSON: (&str, &str) = ("content-type", "application/json");

fn is_generated(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_id_is_kept_or_replaced_and_always_returned() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock));
    let chat = r#"{"model":"llama3","messages":[{"role":"user","content":"hi"}]}"#;
    let url = gw.url("/v1/chat/completions");

    let r = send("POST", &url, &[JSON, ("x-request-id", "client-req-42")], chat).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-request-id"), Some("client-req-42"), "the client's id comes back");
    assert_eq!(r.header("x-upstream-request-id"), Some("req_mock_123"), "the upstream's id stays readable");
    assert!(gw.wait_for_log("request_id=client-req-42"), "the id is in the access log:\n{}", gw.logs());

    let long = "a".repeat(129);
    for unusable in ["has space", long.as_str()] {
        let r = send("POST", &url, &[JSON, ("x-request-id", unusable)], chat).await;
        let id = r.header("x-request-id").unwrap();
        assert!(is_generated(id), "{unusable:?} is replaced, got {id:?}");
    }
    let a = send("GET", &gw.url("/health"), &[], "").await;
    let b = send("GET", &gw.url("/health"), &[], "").await;
    let (a, b) = (a.header("x-request-id").unwrap(), b.header("x-request-id").unwrap());
    assert!(is_generated(a) && is_generated(b) && a != b, "{a} {b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_the_gateway_makes_carry_the_id_in_each_dialect() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock));
    // OpenAI's shape: inside `error` (what the SDKs expose as the exception's body).
    let r = send("GET", &gw.url("/v1/nope"), &[("x-request-id", "rid-404")], "").await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["request_id"].as_str()), (404, Some("rid-404")));
    assert_eq!(r.header("x-request-id"), Some("rid-404"));
    // Anthropic's: at the top level, as Anthropic's API does.
    let r = send("POST", &gw.url("/v1/messages"), &[JSON, ("x-request-id", "rid-400")], r#"{"model":"m"}"#).await;
    let body = r.json();
    assert_eq!((r.status.as_u16(), body["type"].as_str()), (400, Some("error")), "{body}");
    assert_eq!(body["request_id"], "rid-400", "{body}");
    // An error event written into a stream when the upstream breaks.
    let r = send(
        "POST",
        &gw.url("/v1/chat/completions"),
        &[JSON, ("x-request-id", "rid-stream")],
        r#"{"model":"break","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert!(r.text().contains(r#""request_id":"rid-stream""#), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_from_the_client_cannot_forge_log_lines() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock));
    let forged = r#"{"model":"llama3\n2026-01-01T00:00:00.000000Z  INFO llm_gateway::access_log: request FORGED status=200\r\u001b[1A","messages":[{"role":"user","content":"hi"}]}"#;
    let r = send("POST", &gw.url("/v1/chat/completions"), &[JSON, ("x-request-id", "rid-forge")], forged).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(gw.wait_for_log("rid-forge"), "{}", gw.logs());
    let logs = gw.logs();
    let lines: Vec<&str> = logs.lines().filter(|l| l.contains("FORGED")).collect();
    assert_eq!(lines.len(), 1, "one line for the request:\n{logs}");
    assert!(lines[0].contains("request_id=rid-forge") && lines[0].contains(r"llama3\n2026"), "{}", lines[0]);
    assert!(!lines[0].contains('\r') && !lines[0].contains('\u{1b}'), "{:?}", lines[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_when_every_routed_provider_has_a_healthy_endpoint() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock));
    let r = send("GET", &gw.url("/ready"), &[], "").await;
    assert_eq!((r.status.as_u16(), r.json()), (200, serde_json::json!({"status": "ready"})));
    let r = send("POST", &gw.url("/ready"), &[], "").await;
    assert_eq!((r.status.as_u16(), r.header("allow")), (405, Some("GET, HEAD")));

    // A pool whose only endpoint is down: not ready, and why; `/health` still says alive.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let gw = Gateway::start(&format!("providers:\n  local:\n    base_url: http://{dead}/v1\n"));
    let r = send("GET", &gw.url("/ready"), &[], "").await;
    let body = r.json();
    assert_eq!((r.status.as_u16(), body["status"].as_str()), (503, Some("not_ready")), "{body}");
    assert!(body["reasons"][0].as_str().unwrap().contains("provider 'local' has no healthy endpoint"), "{body}");
    assert_eq!(send("GET", &gw.url("/health"), &[], "").await.status, 200);
}
