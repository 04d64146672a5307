//! Concurrency limits and the queue: streaming clients see their position count down,
//! a client that leaves frees its place, a full queue answers 429, a long wait 503.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Gateway, Mock, metric_sum, post_json, send};
use http_body_util::{BodyExt, Full};

fn config(mock: &Mock, limits: &str) -> String {
    format!("providers:\n  local:\n    base_url: {}\nmetrics:\n  enabled: true\nlimits:\n{limits}", mock.url())
}

const STREAM: &str = r#"{"model":"medium-stream","stream":true,"messages":[{"role":"user","content":"x"}]}"#;

/// Starts a 1.8 s stream and returns once it holds the slot (the upstream has it).
async fn hold_the_slot(
    mock: &Mock,
    url: &str,
    headers: &'static [(&'static str, &'static str)],
) -> tokio::task::JoinHandle<common::Reply> {
    let url = url.to_owned();
    let before = mock.posts().len();
    let task = tokio::spawn(async move {
        send(
            "POST",
            &url,
            headers,
            r#"{"model":"slow-stream","stream":true,"messages":[{"role":"user","content":"x"}]}"#,
        )
        .await
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while mock.posts().len() == before {
        assert!(std::time::Instant::now() < deadline, "the slot holder never reached the upstream");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    task
}

/// Opens a stream that has to queue and returns its body once its first position arrived.
async fn queued(url: &str) -> (hyper::body::Incoming, Bytes) {
    let client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = http::Request::post(url).body(Full::new(Bytes::from_static(STREAM.as_bytes()))).unwrap();
    let mut body = client.request(req).await.unwrap().into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    (body, first)
}

/// Queue positions announced at the start of a body, and the rest of it.
fn split(body: &str) -> (Vec<usize>, &str) {
    let mut positions = Vec::new();
    let mut rest = body;
    while let Some(after) = rest.strip_prefix(": queue position ") {
        let (n, tail) = after.split_once("\n\n").unwrap();
        positions.push(n.parse().unwrap());
        rest = tail;
    }
    (positions, rest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_streams_see_their_position_count_down_and_all_complete() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, "  max_concurrent: 1\n"));
    let url = gw.url("/v1/chat/completions");
    // One stream holds the slot for 1.8 s; four more arrive meanwhile, in any order.
    let holder = hold_the_slot(&mock, &url, &[]).await;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { post_json(&url, STREAM).await })
        })
        .collect();
    let mut firsts = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status.as_u16(), 200);
        let text = r.text();
        let (positions, rest) = split(&text);
        assert_eq!(
            rest.as_bytes(),
            common::chat_stream_without_usage().as_slice(),
            "the stream after the comments is intact"
        );
        if let Some(&first) = positions.first() {
            let expected: Vec<usize> = (1..=first).rev().collect();
            assert_eq!(positions, expected, "counts down one by one");
            firsts.push(first);
        }
    }
    firsts.sort();
    assert_eq!(firsts, [1, 2, 3, 4], "four streams waited, each told its place");
    let held = holder.await.unwrap();
    assert_eq!(split(&held.text()).0, Vec::<usize>::new(), "the first never waited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_after_a_wait_is_the_answers_own_in_the_clients_dialect() {
    let mock = Mock::start().await;
    // Anthropic served by the mock; OpenAI by nothing (a refused connection, after the wait).
    let providers = format!(
        "providers:\n  anthropic:\n    base_url: {}\n    api_key: sk-ant-queue\n  open_ai:\n    base_url: http://127.0.0.1:1\n    api_key: sk-queue\n",
        mock.url()
    );
    let gw = Gateway::start(&config(&mock, "  max_concurrent: 1\n").replacen("providers:\n", &providers, 1));
    let holder = hold_the_slot(&mock, &gw.url("/v1/chat/completions"), &[]).await;
    let chat =
        |model: &str| format!(r#"{{"model":"{model}","stream":true,"messages":[{{"role":"user","content":"x"}}]}}"#);
    let asks = [
        ("/v1/chat/completions", chat("rate-limited")),
        (
            "/v1/messages",
            r#"{"model":"rate-limited","stream":true,"max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#
                .into(),
        ),
        ("/v1/responses", r#"{"model":"rate-limited","stream":true,"input":"x"}"#.into()),
        ("/v1/chat/completions", chat("html-503")),
        ("/v1/messages", r#"{"model":"claude-rate-limited","stream":true,"max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#.into()),
        ("/v1/chat/completions", chat("gpt-4o")),
        ("/v1/chat/completions", chat("huge-error")),
    ];
    let tasks: Vec<_> = asks
        .into_iter()
        .map(|(path, body)| {
            let url = gw.url(path);
            tokio::spawn(async move { post_json(&url, &body).await })
        })
        .collect();
    let mut events = Vec::new();
    let mut ids = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        ids.push(r.header("x-request-id").unwrap_or_default().to_owned());
        assert_eq!(r.status.as_u16(), 200, "the status went out while it waited");
        let text = r.text();
        let (positions, rest) = split(&text);
        assert!(!positions.is_empty(), "it waited: {text}");
        let (head, data) = rest.split_once("data: ").unwrap_or_else(|| panic!("an error event: {rest:?}"));
        let data = data.strip_suffix("\n\n").unwrap_or_else(|| panic!("one whole event: {rest:?}"));
        events.push((head.to_owned(), serde_json::from_str::<serde_json::Value>(data).unwrap()));
    }
    let upstream: serde_json::Value = serde_json::from_slice(&common::fixture("openai/error-429.json")).unwrap();
    let message = &upstream["error"]["message"];
    // Chat: OpenAI's own error, as the client would have had it without the wait.
    assert_eq!(events[0], ("\n\n".into(), upstream.clone()));
    // Messages: translated, as the answer was.
    assert_eq!(events[1].0, "\n\nevent: error\n");
    assert_eq!(
        events[1].1,
        serde_json::json!({"type": "error", "error": {"type": "rate_limit_error", "message": message}})
    );
    // Responses: its `error` event, with the upstream's code, first in the stream.
    assert_eq!(events[2].0, "\n\nevent: error\n");
    let expected = serde_json::json!({"type": "error", "code": "rate_limit_exceeded", "message": message,
        "param": null, "sequence_number": 0, "error": upstream["error"]});
    assert_eq!(events[2].1, expected);
    // A body that is no error object: its text, and the status as the code.
    let html = "the upstream answered 503 Service Unavailable: <html><body>503 Service Unavailable</body></html>";
    assert_eq!(events[3].1["error"]["message"], html);
    assert_eq!(events[3].1["error"]["code"], "http_503");
    // Anthropic's own error, relayed to a Messages client: kept whole, its request id too.
    let anthropic: serde_json::Value =
        serde_json::from_slice(&common::fixture("anthropic/error-rate-limit.json")).unwrap();
    assert_eq!(events[4], ("\n\nevent: error\n".into(), anthropic));
    // The gateway's own error after the wait, with the request's id as every error has it.
    assert_eq!(events[5].1["error"]["code"], "upstream_unreachable");
    assert_eq!(events[5].1["error"]["request_id"], ids[5].as_str(), "{:?}", events[5]);
    // An error body past 64 KB: what was read of it, cut short, not the whole of it held.
    let cut = events[6].1["error"]["message"].as_str().unwrap();
    assert!(
        cut.starts_with(r#"the upstream answered 500 Internal Server Error: {"error":{"message":"xxx"#),
        "{cut:.100}"
    );
    assert!(cut.ends_with("x…") && cut.len() < 1000, "{cut:.100}");
    assert_eq!(holder.await.unwrap().status.as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_the_queue_frees_its_place() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, "  max_concurrent: 1\n"));
    let url = gw.url("/v1/chat/completions");
    let holder = hold_the_slot(&mock, &url, &[]).await;
    let (leaver, first) = queued(&url).await;
    assert_eq!(first.as_ref(), b": queue position 1\n\n");
    let (_stayer, first) = queued(&url).await;
    assert_eq!(first.as_ref(), b": queue position 2\n\n");
    drop(leaver);
    // The one behind moves up as soon as the gateway notices the client left.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (probe, first) = queued(&url).await;
        if first.as_ref() == b": queue position 2\n\n" {
            break;
        }
        assert_eq!(first.as_ref(), b": queue position 3\n\n");
        assert!(std::time::Instant::now() < deadline, "the place was never freed");
        drop(probe);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(holder.await.unwrap().status.as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_429_and_a_long_wait_503() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, "  max_concurrent: 1\n  max_queue: 1\n  queue_timeout_seconds: 1\n"));
    let url = gw.url("/v1/chat/completions");
    let holder = hold_the_slot(&mock, &url, &[]).await;
    let quick = r#"{"model":"llama3","messages":[{"role":"user","content":"x"}]}"#;
    let (waiter, first) = queued(&url).await;
    assert_eq!(first.as_ref(), b": queue position 1\n\n");
    let r = post_json(&url, quick).await;
    assert_eq!(r.status.as_u16(), 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.json()["error"]["code"], "queue_full");
    drop(waiter);
    // Once the waiter has left there is room again; this one waits out the timeout.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let r = loop {
        let r = post_json(&url, quick).await;
        if r.status.as_u16() != 429 || std::time::Instant::now() > deadline {
            break r;
        }
    };
    assert_eq!(r.status.as_u16(), 503, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "queue_timeout");
    assert_eq!(r.header("retry-after"), Some("1"));
    // Nobody waits any more: the one that left and the one that timed out are both gone
    // from the gauge (an alert on a queue that never empties reads it).
    assert_eq!(metric_sum(&gw, "llm_gateway_queue_depth{").await, 0.0);
    // Both refusals are counted, by reason.
    assert!(metric_sum(&gw, "llm_gateway_queue_rejected_total{reason=\"queue_full\"").await >= 1.0);
    assert_eq!(metric_sum(&gw, "llm_gateway_queue_rejected_total{reason=\"queue_timeout\"").await, 1.0);
    assert_eq!(holder.await.unwrap().status.as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_limits_hold_one_key_back_not_the_others() {
    let mock = Mock::start().await;
    let keys = "api_keys:\n  enabled: true\n  keys:\n    - name: alice\n      key: sk-gw-alice-0123456789abcdef\n    - name: bob\n      key: sk-gw-bob-0123456789abcdef\n";
    let gw = Gateway::start(&format!(
        "{}{keys}",
        config(&mock, "  max_concurrent_per_key: 1\n  queue_timeout_seconds: 1\n")
    ));
    let url = gw.url("/v1/chat/completions");
    const ALICE: &[(&str, &str)] = &[("authorization", "Bearer sk-gw-alice-0123456789abcdef")];
    let holder = hold_the_slot(&mock, &url, ALICE).await;
    let quick = r#"{"model":"llama3","messages":[{"role":"user","content":"x"}]}"#;
    let bob = send("POST", &url, &[("authorization", "Bearer sk-gw-bob-0123456789abcdef")], quick).await;
    assert_eq!(bob.status.as_u16(), 200, "bob is not behind alice");
    let second = send("POST", &url, ALICE, quick).await;
    assert_eq!(second.status.as_u16(), 503, "alice's second request waits for her first");
    assert_eq!(holder.await.unwrap().status.as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_wide_limit_holds_across_endpoints_and_the_per_endpoint_limit_does_not() {
    let one = Mock::start().await;
    let two = Mock::start().await;
    let pool = |limits: &str| {
        format!(
            "providers:\n  local:\n    endpoints:\n      - {{name: a, base_url: \"{}\"}}\n      - {{name: b, base_url: \"{}\"}}\nlimits:\n{limits}",
            one.url(),
            two.url()
        )
    };
    let quick = r#"{"model":"llama3","messages":[{"role":"user","content":"x"}]}"#;
    let slow_posts = || one.posts().len() + two.posts().len();
    for (limits, second) in [
        ("  max_concurrent: 1\n  queue_timeout_seconds: 1\n", 503),
        ("  max_concurrent_per_endpoint: 1\n  queue_timeout_seconds: 1\n", 200),
    ] {
        let gw = Gateway::start(&pool(limits));
        let url = gw.url("/v1/chat/completions");
        let before = slow_posts();
        let holder = {
            let url = url.clone();
            tokio::spawn(async move {
                post_json(&url, r#"{"model":"slow-stream","stream":true,"messages":[{"role":"user","content":"x"}]}"#)
                    .await
            })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while slow_posts() == before {
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let r = post_json(&url, quick).await;
        assert_eq!(r.status.as_u16(), second, "{limits}: {}", r.text());
        assert_eq!(holder.await.unwrap().status.as_u16(), 200);
    }
}
