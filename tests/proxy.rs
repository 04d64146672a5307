//! The request path end to end: the real binary in front of a mock upstream that speaks
//! OpenAI's wire format (fixtures/upstream/openai).

mod common;

use std::time::Duration;

use common::{Gateway, Mock, fixture, post_json, send};

const CLIENT_KEY: &str = "sk-gw-client-0123456789abcdef";

fn config(mock: &Mock, extra: &str) -> String {
    format!("providers:\n  local:\n    api_key: sk-upstream-local\n    base_url: {url}/v1\n{extra}", url = mock.url())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_unknown_paths_and_methods() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, ""));
    let r = send("GET", &gw.url("/health"), &[], "").await;
    assert_eq!((r.status.as_u16(), r.json()), (200, serde_json::json!({"status": "ok"})));

    let r = send("POST", &gw.url("/health"), &[], "").await;
    assert_eq!(r.status.as_u16(), 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");

    let r = send("GET", &gw.url("/v1/chat/completions"), &[], "").await;
    assert_eq!((r.status.as_u16(), r.header("allow")), (405, Some("POST")));

    let r = send("GET", &gw.url("/v1/nope"), &[], "").await;
    assert_eq!(r.status.as_u16(), 404);
    assert_eq!(r.header("x-llm-gateway-error"), Some("gateway"));
    assert_eq!(r.json()["error"]["code"], "unknown_url");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_body_reaches_upstream_byte_identical_and_response_comes_back_unchanged() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, ""));
    let body = r#"{"model":"llama3","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":5,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}},"tools":[{"type":"function","function":{"name":"f","parameters":{},"strict":true}}],"logprobs":true,"stream_options":null,"keep_alive":"5m","x":1.50}"#;
    let r = send(
        "POST",
        &gw.url("/v1/chat/completions"),
        &[
            ("content-type", "application/json"),
            ("authorization", &format!("Bearer {CLIENT_KEY}")),
            ("accept-encoding", "gzip, br"),
        ],
        body,
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_eq!(r.body.as_ref(), fixture("openai/chat.json").as_slice(), "response passes through unchanged");
    assert_eq!(r.header("x-upstream-request-id"), Some("req_mock_123"), "the upstream's request id is kept, renamed");
    assert!(r.header("x-request-id").is_some_and(|id| id.len() == 32), "the gateway's own request id");

    let seen = mock.posts();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/chat/completions", "a base_url ending in /v1 is not doubled");
    assert_eq!(seen[0].body.as_ref(), body.as_bytes(), "every field arrives byte-identical");
    assert_eq!(seen[0].headers["authorization"], "Bearer sk-upstream-local");
    assert_eq!(
        seen[0].headers["accept-encoding"], "identity",
        "an answer the gateway can read, whatever the client takes"
    );
    let all: String = seen[0].headers.iter().map(|(k, v)| format!("{k}: {v:?}\n")).collect();
    assert!(!all.contains(CLIENT_KEY), "the client's key never goes upstream:\n{all}");
    assert!(gw.wait_for_log("prompt_tokens=19 completion_tokens=10"), "tokens in the access log:\n{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_and_missing_models_use_the_default_route_with_a_spliced_model() {
    let mock = Mock::start().await;
    let routing = "routing:\n  default_route: general\n  routes:\n    - name: fast\n      model: qwen\n    - name: general\n      model: llama3\n";
    let gw = Gateway::start(&config(&mock, routing));
    let url = gw.url("/v1/chat/completions");
    for (body, sent) in [
        (
            r#"{"model":"auto","messages":[{"role":"user","content":"hi"}],"seed":7}"#,
            r#"{"model":"llama3","messages":[{"role":"user","content":"hi"}],"seed":7}"#,
        ),
        (
            r#"{ "messages":[{"role":"user","content":"hi"}] }"#,
            r#"{"model":"llama3", "messages":[{"role":"user","content":"hi"}] }"#,
        ),
        (
            r#"{"messages":[{"role":"user","content":"hi"}],"model":"fast"}"#,
            r#"{"messages":[{"role":"user","content":"hi"}],"model":"qwen"}"#,
        ),
    ] {
        let r = post_json(&url, body).await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.text());
        let seen = mock.posts();
        assert_eq!(std::str::from_utf8(&seen.last().unwrap().body).unwrap(), sent);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_is_required_without_routing() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, ""));
    let r =
        post_json(&gw.url("/v1/chat/completions"), r#"{"model":"auto","messages":[{"role":"user","content":"x"}]}"#)
            .await;
    assert_eq!(r.status.as_u16(), 400);
    assert_eq!(r.json()["error"]["message"], "model is required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_pass_through_event_by_event() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, ""));
    let r = post_json(
        &gw.url("/v1/chat/completions"),
        r#"{"model":"llama3","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"weather?"}]}"#,
    )
    .await;
    assert_eq!(r.status.as_u16(), 200);
    assert!(r.header("content-type").unwrap().starts_with("text/event-stream"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(r.header("x-accel-buffering"), Some("no"));
    assert_eq!(r.body.as_ref(), fixture("openai/chat-stream.sse").as_slice());
    assert_eq!(mock.posts()[0].headers["accept"], "text/event-stream");
    assert!(gw.wait_for_log("prompt_tokens=71 completion_tokens=16"), "{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_events_arrive_as_they_are_produced() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, ""));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = http::Request::post(gw.url("/v1/chat/completions"))
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            br#"{"model":"slow-stream","stream":true,"messages":[{"role":"user","content":"x"}]}"#,
        )))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let mut body = resp.into_body();
    use http_body_util::BodyExt;
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(first.starts_with(b"data: {"), "{first:?}");
    // The mock spaces its six events 300 ms apart: a relay that buffered would deliver them
    // all at once, `[DONE]` included.
    let text = String::from_utf8_lossy(&first);
    assert!(!text.contains("[DONE]"), "the first frame waited for the whole stream: {text}");
    assert_eq!(text.matches("data: ").count(), 1, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_breaks_ends_with_an_error_event() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, ""));
    let r = post_json(
        &gw.url("/v1/chat/completions"),
        r#"{"model":"break","stream":true,"messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    assert_eq!(r.status.as_u16(), 200);
    let text = r.text();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.trim().is_empty()).collect();
    assert_eq!(events.len(), 3, "{text}");
    let last: serde_json::Value = serde_json::from_str(events[2].trim().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_unreachable");
    assert!(last["error"]["message"].as_str().unwrap().contains("broke off"));
    assert!(gw.wait_for_log("upstream response broke off"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_openai_shaped_and_say_where() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, "limits:\n  max_body_bytes: 1000\n"));
    let url = gw.url("/v1/chat/completions");
    let r = post_json(&url, "{\"model\": \"x\",\n \"messages\": [}").await;
    assert_eq!(r.status.as_u16(), 400);
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.starts_with("invalid JSON in request body") && message.contains("line 2"), "{message}");
    assert_eq!(r.header("x-llm-gateway-error"), Some("gateway"));

    let r = post_json(&url, r#"{"model":"llama3","messages":[]}"#).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["message"].as_str()), (400, Some("messages is required")));

    let big = format!(r#"{{"model":"llama3","messages":[{{"role":"user","content":"{}"}}]}}"#, "a".repeat(2000));
    let r = post_json(&url, &big).await;
    assert_eq!(r.status.as_u16(), 413);
    assert_eq!(r.json()["error"]["code"], "request_too_large");

    let r = post_json(&url, r#"{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}"#).await;
    assert_eq!(r.status.as_u16(), 400);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("provider 'open_ai', which is not configured"));
    assert!(mock.posts().is_empty(), "nothing reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_pass_through_with_status_and_body() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, ""));
    let r = post_json(
        &gw.url("/v1/chat/completions"),
        r#"{"model":"error-401","messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    assert_eq!(r.status.as_u16(), 401);
    assert_eq!(r.body.as_ref(), fixture("openai/error-401.json").as_slice());
    assert_eq!(r.header("x-llm-gateway-error"), None, "the upstream's own error, not the gateway's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_and_slow_upstreams_get_502_and_504() {
    let mock = Mock::start().await;
    // A port nothing listens on: bind one, then free it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let cfg = format!(
        "providers:\n  local:\n    base_url: {}\n  open_ai:\n    api_key: sk-x\n    base_url: http://{dead}\ntimeouts:\n  first_byte_seconds: 1\n",
        mock.url()
    );
    let gw = Gateway::start(&cfg);
    let url = gw.url("/v1/chat/completions");
    let r = post_json(&url, r#"{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}"#).await;
    assert_eq!(r.status.as_u16(), 502, "{}", r.text());
    assert_eq!(r.header("x-llm-gateway-error"), Some("upstream"));
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert_eq!(message, "could not connect to endpoint 'open_ai' of provider 'open_ai'");
    assert!(!message.contains("127.0.0.1"), "no internal addresses in client errors");

    let r = post_json(&url, r#"{"model":"slow","messages":[{"role":"user","content":"x"}]}"#).await;
    assert_eq!(r.status.as_u16(), 504);
    assert_eq!(r.json()["error"]["code"], "upstream_timeout");
    assert_eq!(r.header("x-llm-gateway-error"), Some("upstream"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unset_provider_key_fails_clearly_at_request_time() {
    let mock = Mock::start().await;
    let cfg = format!("providers:\n  open_ai:\n    api_key: ${{OPENAI_KEY_FOR_TEST}}\n    base_url: {}\n", mock.url());
    let gw = Gateway::start(&cfg);
    let r =
        post_json(&gw.url("/v1/chat/completions"), r#"{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}"#)
            .await;
    assert_eq!(r.status.as_u16(), 500);
    assert_eq!(
        r.json()["error"]["message"],
        "provider `open_ai` has no API key: environment variable `OPENAI_KEY_FOR_TEST` is not set"
    );
    assert!(mock.posts().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_and_completions_are_routed_by_model() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, ""));
    let r = post_json(&gw.url("/v1/embeddings"), r#"{"model":"nomic-embed-text","input":"hello"}"#).await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.body.as_ref(), fixture("openai/embeddings.json").as_slice());
    let r = post_json(&gw.url("/v1/completions"), r#"{"model":"llama3","prompt":"Say this is a test"}"#).await;
    assert_eq!(r.body.as_ref(), fixture("openai/completions.json").as_slice());
    let paths: Vec<String> = mock.posts().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/v1/embeddings", "/v1/completions"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_keys_guard_v1_but_not_health() {
    let mock = Mock::start().await;
    let keys = format!(
        "api_keys:\n  enabled: true\n  keys:\n    - name: alice\n      key: {CLIENT_KEY}\n      allowed_models: [\"llama*\", \"fast\"]\n    - name: bob\n      key: sk-gw-bob-0123456789abcdef\nrouting:\n  routes:\n    - name: fast\n      model: llama3\n    - name: smart\n      model: qwen\n"
    );
    let gw = Gateway::start(&config(&mock, &keys));
    let url = gw.url("/v1/chat/completions");
    let body = r#"{"model":"llama3","messages":[{"role":"user","content":"x"}]}"#;
    let ct = ("content-type", "application/json");

    let r = send("POST", &url, &[ct], body).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["code"].as_str()), (401, Some("missing_api_key")));
    let r = send("POST", &url, &[ct, ("authorization", "Bearer sk-gw-wrong")], body).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["message"].as_str()), (401, Some("invalid API key")));
    let r = send("POST", &url, &[ct, ("authorization", &format!("bearer {CLIENT_KEY}"))], body).await;
    assert_eq!(r.status.as_u16(), 200);
    let r = send("POST", &url, &[ct, ("x-api-key", CLIENT_KEY)], body).await;
    assert_eq!(r.status.as_u16(), 200);
    let r = send(
        "POST",
        &url,
        &[ct, ("x-api-key", CLIENT_KEY)],
        r#"{"model":"qwen2","messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    assert_eq!(r.status.as_u16(), 403);
    assert_eq!(r.json()["error"]["message"], "model 'qwen2' is not allowed for this API key");
    // A model of a provider that is not configured is still first a model the key may not use.
    let claude = r#"{"model":"claude-sonnet-4","messages":[{"role":"user","content":"x"}]}"#;
    let r = send("POST", &url, &[ct, ("x-api-key", CLIENT_KEY)], claude).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["code"].as_str()), (403, Some("model_not_allowed")));

    assert_eq!(send("GET", &gw.url("/health"), &[], "").await.status.as_u16(), 200);
    let r = send("GET", &gw.url("/v1/models"), &[("authorization", &format!("Bearer {CLIENT_KEY}"))], "").await;
    let ids: Vec<String> =
        r.json()["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(
        ids,
        ["fast", "auto"],
        "alice sees only the routes whose name and model her globs allow (`smart` is qwen; no upstream models match llama*)"
    );
    let r = send("GET", &gw.url("/v1/models"), &[("authorization", "Bearer sk-gw-bob-0123456789abcdef")], "").await;
    let ids: Vec<String> =
        r.json()["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["gpt-4o-mini", "text-embedding-3-small", "fast", "smart", "auto"]);
    assert!(!gw.logs().contains(CLIENT_KEY), "keys are never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_cleartext_is_served() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, ""));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let resp = client.get(gw.url("/health").parse().unwrap()).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_open_stream_finish_then_exits_zero() {
    let mock = Mock::start().await;
    let mut gw = Gateway::start(&config(&mock, ""));
    let url = gw.url("/v1/chat/completions");
    let pending = tokio::spawn(async move {
        post_json(&url, r#"{"model":"slow-stream","stream":true,"messages":[{"role":"user","content":"x"}]}"#).await
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while mock.posts().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gw.signal("TERM");
    let r = pending.await.unwrap();
    assert_eq!(r.body.as_ref(), common::chat_stream_without_usage().as_slice(), "the stream completed");
    let status = gw.process.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(gw.wait_for_log("received SIGTERM"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_serving_thread_lets_its_open_streams_finish() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config(&mock, "")).unwrap();
    // Three threads, three connections: one lands on each (round-robin).
    let mut gw = Gateway::start_at(dir, &path, &["--worker-threads", "3"]);
    let mut pending = Vec::new();
    for _ in 0..3 {
        let url = gw.url("/v1/chat/completions");
        pending.push(tokio::spawn(async move {
            post_json(&url, r#"{"model":"slow-stream","stream":true,"messages":[{"role":"user","content":"x"}]}"#).await
        }));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while mock.posts().len() < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gw.signal("TERM");
    for p in pending {
        let r = p.await.unwrap();
        assert_eq!(r.body.as_ref(), common::chat_stream_without_usage().as_slice(), "every stream completed");
    }
    assert_eq!(gw.process.child.wait().unwrap().code(), Some(0));
    assert!(gw.wait_for_log("all connections finished"), "{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heuristic_rules_pick_the_route_for_auto() {
    let mock = Mock::start().await;
    let routing = "routing:\n  default_route: general\n  heuristics:\n    enabled: true\n    rules:\n      - match: { keywords: [translate], exclude: [code block] }\n        route: fast\n      - match: { has_tools: true }\n        route: tools\n  routes:\n    - name: fast\n      model: qwen\n    - name: tools\n      model: hermes\n    - name: general\n      model: llama3\n";
    let gw = Gateway::start(&config(&mock, routing));
    let url = gw.url("/v1/chat/completions");
    let sent = |mock: &Mock| -> String {
        let body: serde_json::Value = serde_json::from_slice(&mock.posts().last().unwrap().body).unwrap();
        body["model"].as_str().unwrap().to_owned()
    };
    post_json(&url, r#"{"model":"auto","messages":[{"role":"user","content":"Please TRANSLATE this"}]}"#).await;
    assert_eq!(sent(&mock), "qwen");
    post_json(&url, r#"{"messages":[{"role":"user","content":"translate this code block"}]}"#).await;
    assert_eq!(sent(&mock), "llama3", "the exclusion vetoes the keyword");
    post_json(&url, r#"{"model":"auto","tools":[{"type":"function","function":{"name":"f"}}],"messages":[{"role":"user","content":"hi"}]}"#).await;
    assert_eq!(sent(&mock), "hermes");
    post_json(&url, r#"{"model":"mistral","messages":[{"role":"user","content":"translate"}]}"#).await;
    assert_eq!(sent(&mock), "mistral", "an explicit model is kept");
    assert!(gw.wait_for_log("semantic routing: key='' method=heuristic route='fast' model='qwen'"), "{}", gw.logs());
    assert!(gw.wait_for_log("cascade=[heuristic:no_match,default:general]"), "{}", gw.logs());
}
