//! Claude models through the gateway: OpenAI requests translated to the Messages API and
//! answers translated back, against a mock that replays fixtures/upstream/anthropic.

mod common;

use common::{Gateway, Mock, post_json};
use serde_json::{Value, json};

fn config(mock: &Mock) -> String {
    format!("providers:\n  anthropic:\n    api_key: sk-ant-test-key\n    base_url: {}\n", mock.url())
}

fn events(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|e| e.trim().strip_prefix("data: "))
        .map(|d| if d == "[DONE]" { json!("[DONE]") } else { serde_json::from_str(d).unwrap() })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_request_becomes_a_messages_request() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock));
    let r = post_json(
        &gw.url("/v1/chat/completions"),
        r#"{"model":"claude-sonnet-4-20250514","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello"}],"max_completion_tokens":50,"seed":1}"#,
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello! How can I help you today?");
    assert_eq!(body["usage"]["total_tokens"], 23);

    let seen = &mock.posts()[0];
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.headers["x-api-key"], "sk-ant-test-key");
    assert_eq!(seen.headers["anthropic-version"], "2023-06-01");
    assert_eq!(seen.headers["accept-encoding"], "identity");
    assert!(seen.headers.get("authorization").is_none());
    let sent: Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(
        sent,
        json!({"model": "claude-sonnet-4-20250514", "system": "Be brief.", "max_tokens": 50,
               "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_come_back_as_openai_tool_calls() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock));
    let r = post_json(&gw.url("/v1/chat/completions"), r#"{"model":"claude-tools","messages":[{"role":"user","content":"Weather?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]}"#).await;
    let body = r.json();
    let calls = &body["choices"][0]["message"]["tool_calls"];
    assert_eq!(calls.as_array().unwrap().len(), 2);
    assert_eq!(calls[1]["function"]["arguments"], r#"{"city":"Tokyo","unit":"celsius"}"#);
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_translated_with_usage_when_asked() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock));
    let r = post_json(&gw.url("/v1/chat/completions"), r#"{"model":"claude-tools","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Weather?"}]}"#).await;
    assert_eq!(r.status.as_u16(), 200);
    assert!(r.header("content-type").unwrap().starts_with("text/event-stream"));
    let got = events(&r.text());
    assert_eq!(got.last().unwrap(), "[DONE]");
    let usage = &got[got.len() - 2]["usage"];
    assert_eq!((usage["prompt_tokens"].as_u64(), usage["completion_tokens"].as_u64()), (Some(472 + 64), Some(89)));
    let args: String = got
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["tool_calls"][0].as_object())
        .filter(|c| c["index"] == 1)
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, r#"{"city": "Tokyo"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_keep_their_status_and_become_openai_shaped() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock));
    let url = gw.url("/v1/chat/completions");
    let r = post_json(&url, r#"{"model":"claude-overloaded","messages":[{"role":"user","content":"x"}]}"#).await;
    assert_eq!(r.status.as_u16(), 503);
    assert_eq!(r.json()["error"]["message"], "Anthropic is overloaded: Overloaded");
    let r = post_json(&url, r#"{"model":"claude-rate-limited","messages":[{"role":"user","content":"x"}]}"#).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["type"].as_str()), (429, Some("rate_limit_error")));
    let r = post_json(&url, r#"{"model":"claude-x","n":3,"messages":[{"role":"user","content":"x"}]}"#).await;
    assert_eq!(r.status.as_u16(), 400);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("`n` > 1"));
    let r =
        post_json(&url, r#"{"model":"claude-error-stream","stream":true,"messages":[{"role":"user","content":"x"}]}"#)
            .await;
    let got = events(&r.text());
    assert_eq!(got.last().unwrap()["error"]["type"], "overloaded_error", "an upstream error event is never silent");
    // Nor is it a success in the log: the line carries the error, as a relayed stream's break does.
    assert!(gw.wait_for_log("error=Overloaded"), "{}", gw.logs());
    let logs = gw.logs();
    let line = logs.lines().find(|l| l.contains("model_asked=claude-error-stream")).unwrap_or_default();
    assert!(line.contains(" WARN ") && line.ends_with("error=Overloaded"), "{line}");
    let r = post_json(&gw.url("/v1/embeddings"), r#"{"model":"claude-x","input":"x"}"#).await;
    assert_eq!(r.status.as_u16(), 400);
}

/// A whole Anthropic answer that is not JSON, or breaks off, is a 502 for the client — and
/// the access log and metrics say 502 too (they used to record the upstream's 200).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_anthropic_body_is_a_502_in_the_log_and_metrics_too() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&format!("{}metrics:\n  enabled: true\n", config(&mock)));
    for model in ["claude-not-json", "claude-broken-body"] {
        let body = format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"Hi"}}]}}"#);
        let r = post_json(&gw.url("/v1/chat/completions"), &body).await;
        assert_eq!(r.status.as_u16(), 502, "{model}: {}", r.text());
        assert_eq!(r.json()["error"]["type"], "upstream_error");
        // Sent to the model it named: the line names it twice.
        assert!(gw.wait_for_log(&format!("model_asked={model} model_sent={model} ")), "{}", gw.logs());
    }
    let lines: Vec<String> =
        gw.logs().lines().filter(|l| l.contains("model_asked=claude-")).map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.iter().all(|l| l.contains("status=502")), "{lines:?}");
    let metrics = common::send("GET", &gw.url("/metrics"), &[], "").await.text();
    assert!(
        !metrics.lines().any(|l| l.starts_with("llm_gateway_requests_total") && l.contains("status=\"200\"")),
        "{metrics}"
    );
    assert!(
        metrics.lines().any(|l| l.starts_with("llm_gateway_requests_total") && l.contains("status=\"502\"")),
        "{metrics}"
    );
}

/// Anthropic answering a streaming request whole (as a server that ignores `stream` would): a
/// Chat client gets the translated chunks, a Messages client (passed through) the message's
/// events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_answer_to_a_streaming_request_is_replayed_as_events() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock));
    let r = post_json(&gw.url("/v1/chat/completions"), r#"{"model":"claude-deaf","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Weather?"}]}"#).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert!(r.header("content-type").unwrap().starts_with("text/event-stream"));
    let got = events(&r.text());
    assert_eq!(got.last().unwrap(), "[DONE]");
    let calls = &got[0]["choices"][0]["delta"]["tool_calls"];
    assert_eq!((&calls[0]["index"], &calls[1]["index"]), (&json!(0), &json!(1)));
    assert_eq!(calls[1]["function"]["arguments"], r#"{"city":"Tokyo","unit":"celsius"}"#);
    assert_eq!(got[0]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(got[1]["usage"]["completion_tokens"], 97);
    // A Messages client's answer, passed through, is replayed as the message's events.
    let body =
        r#"{"model":"claude-deaf","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"Weather?"}]}"#;
    let r = post_json(&gw.url("/v1/messages"), body).await;
    assert!(r.header("content-type").unwrap().starts_with("text/event-stream"), "{}", r.text());
    let got: Vec<(String, Value)> = r
        .text()
        .split_terminator("\n\n")
        .map(|e| {
            let (name, data) = e.split_once('\n').unwrap();
            (
                name.strip_prefix("event: ").unwrap().to_owned(),
                serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
    let block = ["content_block_start", "content_block_delta", "content_block_stop"];
    assert_eq!(names, [&["message_start"][..], &block, &block, &block, &["message_delta", "message_stop"]].concat());
    let message: Value = serde_json::from_slice(&common::fixture("anthropic/message-tools.json")).unwrap();
    assert_eq!(got[0].1["message"]["id"], message["id"]);
    assert_eq!(
        got[5].1["delta"]["partial_json"].as_str().map(|t| serde_json::from_str::<Value>(t).unwrap()),
        Some(message["content"][1]["input"].clone())
    );
    assert_eq!(got[10].1["delta"]["stop_reason"], "tool_use");
}
