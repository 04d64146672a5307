//! The Messages and Responses ingresses over real sockets, against the mock upstream that
//! replays the recorded OpenAI and Anthropic fixtures: passthrough to Anthropic, translation
//! to a Chat upstream and through two hops (Responses → Chat → Messages), errors in the
//! client's dialect, aliases, and the `dialect` label.

mod common;

use common::{Gateway, Mock, send};
use serde_json::{Value, json};

const KEY: &str = "sk-gw-dialects-test-0123456789";

fn config(mock: &Mock) -> String {
    format!(
        "providers:\n  local:\n    base_url: {url}\n  anthropic:\n    api_key: sk-ant-upstream\n    base_url: {url}\n\
         metrics:\n  enabled: true\nrouting:\n  aliases:\n    \"claude-*haiku*\": llama3\n    \"claude-*\": claude-sonnet-4-20250514\n\
         api_keys:\n  enabled: true\n  keys:\n    - name: agent\n      key: {KEY}\n",
        url = mock.url()
    )
}

async fn post(gw: &Gateway, path: &str, headers: &[(&str, &str)], body: Value) -> common::Reply {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    send("POST", &gw.url(path), &all, body.to_string()).await
}

/// `(event name, data)` of every SSE event.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or_default().to_owned();
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or("null");
            (name, serde_json::from_str(data).unwrap_or(Value::Null))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_to_anthropic_pass_through_with_the_model_spliced_and_betas_forwarded() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock));
    let body = json!({"model": "claude-sonnet-4-5-20250929", "max_tokens": 64, "messages": [{"role": "user", "content": "Hello"}], "thinking": {"type": "enabled", "budget_tokens": 1024}});
    let headers = [
        ("x-api-key", KEY),
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "interleaved-thinking-2025-05-14"),
    ];
    let r = post(&gw, "/v1/messages?beta=true", &headers, body.clone()).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_eq!(r.json()["type"], "message", "Anthropic's own answer, untouched");
    let seen = &mock.posts()[0];
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.headers["x-api-key"], "sk-ant-upstream", "the provider's key, not the client's");
    assert_eq!(seen.headers["anthropic-beta"], "interleaved-thinking-2025-05-14");
    let mut want = body;
    want["model"] = json!("claude-sonnet-4-20250514");
    assert_eq!(serde_json::from_slice::<Value>(&seen.body).unwrap(), want, "only the model changed");
    assert_eq!(
        String::from_utf8_lossy(&seen.body).replace("claude-sonnet-4-20250514", "claude-sonnet-4-5-20250929"),
        want.to_string().replace("claude-sonnet-4-20250514", "claude-sonnet-4-5-20250929"),
        "every other byte as sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_to_a_chat_upstream_streamed_and_whole() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock));
    let auth = [("authorization", &*format!("Bearer {KEY}"))];
    let body = json!({"model": "claude-3-5-haiku-latest", "max_tokens": 64, "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}], "messages": [{"role": "user", "content": "Weather?"}]});
    let r = post(&gw, "/v1/messages", &auth, body.clone()).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    let m = r.json();
    assert_eq!((m["type"].as_str(), m["role"].as_str()), (Some("message"), Some("assistant")));
    assert!(m["content"][0]["text"].as_str().is_some_and(|t| !t.is_empty()), "{m}");
    assert!(m["usage"]["output_tokens"].as_u64().is_some(), "{m}");
    let sent: Value = serde_json::from_slice(&mock.posts()[0].body).unwrap();
    assert_eq!(mock.posts()[0].path, "/v1/chat/completions");
    assert_eq!(sent["model"], "llama3", "the alias for haiku ids");
    assert_eq!(sent["messages"][0], json!({"role": "system", "content": "Be brief."}));

    let mut streamed = body;
    streamed["stream"] = json!(true);
    let r = post(&gw, "/v1/messages", &auth, streamed).await;
    assert_eq!(r.status.as_u16(), 200);
    assert!(r.header("content-type").unwrap().starts_with("text/event-stream"));
    let got = events(&r.text());
    let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"), "{names:?}");
    assert_eq!(names.last(), Some(&"message_stop"), "{names:?}");
    assert!(names.contains(&"content_block_delta") && names.contains(&"message_delta"), "{names:?}");
    for (name, data) in &got {
        assert_eq!(data["type"], name.as_str(), "each event names its type");
    }
    let sent: Value = serde_json::from_slice(&mock.posts()[1].body).unwrap();
    assert_eq!(sent["stream_options"], json!({"include_usage": true}), "asked for usage to report it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_to_anthropic_go_through_the_chat_hub_both_ways() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock));
    let auth = [("authorization", &*format!("Bearer {KEY}"))];
    let body =
        json!({"model": "claude-sonnet-4-20250514", "instructions": "Be brief.", "input": "Hello", "store": false});
    let r = post(&gw, "/v1/responses", &auth, body.clone()).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    let resp = r.json();
    assert_eq!((resp["object"].as_str(), resp["status"].as_str()), (Some("response"), Some("completed")));
    assert_eq!(resp["output"][0]["content"][0]["text"], "Hello! How can I help you today?");
    assert_eq!(resp["usage"]["output_tokens"], 11);
    let seen = &mock.posts()[0];
    assert_eq!(seen.path, "/v1/messages");
    let sent: Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(sent["system"], "Be brief.");

    let mut streamed = body;
    streamed["stream"] = json!(true);
    let r = post(&gw, "/v1/responses", &auth, streamed).await;
    let got = events(&r.text());
    let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names.first(), Some(&"response.created"), "{names:?}");
    assert_eq!(names.last(), Some(&"response.completed"), "{names:?}");
    let text: String =
        got.iter().filter(|e| e.0 == "response.output_text.delta").filter_map(|e| e.1["delta"].as_str()).collect();
    assert_eq!(text, "Hello! How can I help?", "the recorded stream's text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_come_back_in_the_clients_dialect() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock));
    let body = json!({"model": "llama3", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});
    let r = post(&gw, "/v1/messages", &[], body.clone()).await;
    assert_eq!(r.status.as_u16(), 401);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "authentication_error");

    let r = post(&gw, "/v1/messages", &[("x-api-key", KEY)], json!({"model": "llama3", "max_tokens": 8})).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["type"].as_str()), (400, Some("invalid_request_error")));

    let auth = [("x-api-key", KEY)];
    let r = post(
        &gw,
        "/v1/messages",
        &auth,
        json!({"model": "claude-x-overloaded", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "an alias to a model the mock serves: {}", r.text());

    let r =
        post(&gw, "/v1/responses", &auth, json!({"model": "llama3", "input": "hi", "previous_response_id": "resp_1"}))
            .await;
    assert_eq!(r.status.as_u16(), 400);
    assert_eq!(r.json()["error"]["code"], "stateless_gateway");
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("previous_response_id"));
    let r = post(&gw, "/v1/responses", &auth, json!({"model": "llama3"})).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["code"].as_str()), (400, Some("input_required")));
    assert_eq!(mock.posts().len(), 1, "refused requests never reach the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_tokens_is_estimated_without_anthropic_and_the_dialect_is_labelled() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock));
    let auth = [("x-api-key", KEY)];
    let body = json!({"model": "llama3", "messages": [{"role": "user", "content": "x".repeat(400)}]});
    let r = post(&gw, "/v1/messages/count_tokens", &auth, body).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    let n = r.json()["input_tokens"].as_u64().unwrap();
    assert!((100..=110).contains(&n), "about 400 bytes / 4: {n}");
    assert!(mock.posts().is_empty(), "answered by the gateway");

    post(&gw, "/v1/responses", &auth, json!({"model": "llama3", "input": "hi"})).await;
    assert!(gw.wait_for_log("dialect=responses"), "{}", gw.logs());
    let metrics = send("GET", &gw.url("/metrics"), &[], "").await.text();
    let labelled = |d: &str| {
        metrics.lines().any(|l| l.starts_with("llm_gateway_requests_total") && l.contains(&format!("dialect=\"{d}\"")))
    };
    assert!(labelled("messages") && labelled("responses"), "{metrics}");
}

/// An upstream that compresses its answer though asked for none (`Accept-Encoding: identity`)
/// sent bytes the gateway can neither read nor end with an error event the client could read:
/// a 502 in the client's dialect, streamed or not, relayed or translated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_answer_is_a_bad_response_in_the_clients_dialect() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock));
    let auth = [("x-api-key", KEY)];
    for stream in [false, true] {
        let chat = json!({"model": "gzipped", "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
        let r = post(&gw, "/v1/chat/completions", &[("authorization", &format!("Bearer {KEY}"))], chat).await;
        assert_eq!(r.status.as_u16(), 502, "{}", r.text());
        assert_eq!(r.json()["error"]["code"], "upstream_bad_response");
        assert!(r.header("content-encoding").is_none());
        let messages = json!({"model": "gzipped", "stream": stream, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});
        let r = post(&gw, "/v1/messages", &auth, messages).await;
        assert_eq!(r.status.as_u16(), 502, "{}", r.text());
        assert_eq!((r.json()["type"].as_str(), r.json()["error"]["type"].as_str()), (Some("error"), Some("api_error")));
        let message = r.json()["error"]["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains("`gzip`-encoded"), "{message}");
    }
    assert!(gw.wait_for_log("error=the upstream sent a `gzip`-encoded answer"), "{}", gw.logs());
}

/// An upstream that answers with a redirect has a base_url that is not where the server is:
/// a 502 naming the endpoint, never the redirect itself (its `Location` is an address the
/// client must not see).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_a_bad_response_that_shows_no_address() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock));
    let auth = [("x-api-key", KEY)];
    let chat = json!({"model": "redirected", "messages": [{"role": "user", "content": "hi"}]});
    let r = post(&gw, "/v1/chat/completions", &[("authorization", &format!("Bearer {KEY}"))], chat).await;
    assert_eq!(
        (r.status.as_u16(), r.json()["error"]["code"].as_str()),
        (502, Some("upstream_bad_response")),
        "{}",
        r.text()
    );
    assert!(r.json()["error"]["message"].as_str().unwrap_or_default().contains("a redirect (307)"), "{}", r.text());
    let messages = json!({"model": "redirected", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});
    let r = post(&gw, "/v1/messages", &auth, messages).await;
    assert_eq!((r.status.as_u16(), r.json()["type"].as_str()), (502, Some("error")), "{}", r.text());
    for text in [r.text(), gw.logs()] {
        assert!(!text.contains("10.9.8.7"), "{text}");
    }
    assert!(r.header("location").is_none());
}

/// A server that ignores `stream` and answers a streaming request whole: a client whose answer
/// is translated still gets the events it asked for, in its dialect, holding the whole answer,
/// and the tokens are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_answer_to_a_streaming_request_is_replayed_as_events() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock));
    let hello = "Hello! How can I assist you today?";
    let bearer = format!("Bearer {KEY}");
    let is_stream = |r: &common::Reply| {
        assert_eq!(r.status.as_u16(), 200, "{}", r.text());
        assert!(r.header("content-type").unwrap().starts_with("text/event-stream"), "{:?}", r.header("content-type"));
        events(&r.text())
    };
    // Chat, passed through: the completion as one chunk, the usage chunk when asked, `[DONE]`.
    let chat = |model: &str, usage: bool| {
        let mut chat = json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
        if usage {
            chat["stream_options"] = json!({"include_usage": true});
        }
        chat
    };
    let auth = [("authorization", bearer.as_str())];
    for usage in [false, true] {
        let r = post(&gw, "/v1/chat/completions", &auth, chat("deaf", usage)).await;
        let got = is_stream(&r);
        assert!(r.text().ends_with("data: [DONE]\n\n"), "{}", r.text());
        assert_eq!(got.len(), if usage { 3 } else { 2 }, "{}", r.text());
        let chunk = &got[0].1;
        assert_eq!(
            (chunk["object"].as_str(), chunk["choices"][0]["delta"]["content"].as_str()),
            (Some("chat.completion.chunk"), Some(hello))
        );
        assert_eq!(chunk["choices"][0]["finish_reason"], "stop");
        assert_eq!((usage, got[1].1["usage"]["completion_tokens"].as_u64()), (usage, usage.then_some(10)));
    }
    // What is not a completion, or has no declared length, or is too large to replay, goes as
    // it came (the gateway never holds a passed-through body of unknown size).
    let r = post(&gw, "/v1/chat/completions", &auth, chat("deaf-other", false)).await;
    assert_eq!(
        (r.status.as_u16(), r.header("content-type"), r.text()),
        (200, Some("application/json"), r#"{"ok":true}"#.into())
    );
    let r = post(&gw, "/v1/chat/completions", &auth, chat("deaf-chunked", false)).await;
    assert_eq!(
        (r.header("content-type"), &r.body[..]),
        (Some("application/json"), &common::fixture("openai/chat.json")[..])
    );
    let r = post(&gw, "/v1/chat/completions", &auth, chat("deaf-huge", false)).await;
    assert_eq!((r.status.as_u16(), r.header("content-type")), (200, Some("application/json")));
    assert_eq!(
        serde_json::from_slice::<Value>(&r.body).unwrap()["choices"][0]["message"]["content"].as_str().map(str::len),
        Some(1_100_000)
    );
    // An answer that breaks off before its declared length is an error, never a short body.
    let r = post(&gw, "/v1/chat/completions", &auth, chat("deaf-cut", false)).await;
    assert_eq!(r.status.as_u16(), 502, "{}", r.text());
    assert!(r.json()["error"]["message"].as_str().unwrap_or_default().contains("broke off"), "{}", r.text());
    // Messages, translated from Chat.
    let messages =
        json!({"model": "deaf", "stream": true, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});
    let got = is_stream(&post(&gw, "/v1/messages", &[("x-api-key", KEY)], messages).await);
    let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(got[2].1["delta"]["text"], hello);
    assert_eq!(got[4].1["delta"]["stop_reason"], "end_turn");
    // Responses, translated from Chat.
    let responses = json!({"model": "deaf", "stream": true, "input": "hi"});
    let got = is_stream(&post(&gw, "/v1/responses", &[("authorization", &bearer)], responses).await);
    let done = &got.last().unwrap().1;
    assert_eq!(
        (got.last().unwrap().0.as_str(), done["response"]["status"].as_str()),
        ("response.completed", Some("completed"))
    );
    assert_eq!(done["response"]["output"][0]["content"][0]["text"], hello);
    let streamed: String =
        got.iter().filter(|e| e.0 == "response.output_text.delta").filter_map(|e| e.1["delta"].as_str()).collect();
    assert_eq!(streamed, hello);
    assert!(gw.wait_for_logged("prompt_tokens=19 completion_tokens=10", 3), "{}", gw.logs());
    // An answer too large to replay at a bounded cost goes as the (translated) JSON it is.
    let huge =
        json!({"model": "deaf-huge", "stream": true, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});
    let r = post(&gw, "/v1/messages", &[("x-api-key", KEY)], huge).await;
    assert_eq!((r.status.as_u16(), r.header("content-type")), (200, Some("application/json")));
    let message: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(message["content"][0]["text"].as_str().map(str::len), Some(1_100_000));
}
