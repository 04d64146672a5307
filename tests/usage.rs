//! Usage you can bill on, over real sockets: streamed tokens are counted even when the client
//! did not ask for a usage chunk (the gateway asks, and takes the chunk out again so the
//! client's bytes are unchanged); tokens per second use the upstream's generation time, else
//! the whole duration of a non-streaming answer; Anthropic passthrough streams count their
//! input tokens; a translated whole answer counts what its translation wrote (a Response's
//! usage is followed by what it repeats from the request); tokens are counted per key and
//! per user.

mod common;

use common::{Gateway, Mock, send};
use serde_json::{Value, json};

fn config(mock: &Mock) -> String {
    format!(
        "providers:\n  local:\n    base_url: {url}\n  anthropic:\n    api_key: sk-ant\n    base_url: {url}\nmetrics:\n  enabled: true\n\
         api_keys:\n  enabled: true\n  keys:\n    - {{name: alice-laptop, key: sk-gw-alice-laptop-0123456789, user: alice}}\n\
         \x20   - {{name: alice-ci, key: sk-gw-alice-ci-0123456789abc, user: alice}}\n",
        url = mock.url()
    )
}

async fn post(gw: &Gateway, key: &str, path: &str, body: Value) -> common::Reply {
    send("POST", &gw.url(path), &[("authorization", &format!("Bearer {key}"))], body.to_string()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_client_did_not_ask_for_usage_is_counted_and_reaches_it_unchanged() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock));
    let body = json!({"model": "llama3", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let r = post(&gw, "sk-gw-alice-laptop-0123456789", "/v1/chat/completions", body).await;
    assert_eq!(r.status.as_u16(), 200);
    let fixture = String::from_utf8(common::fixture("openai/chat-stream.sse")).unwrap();
    let without_usage = String::from_utf8(common::chat_stream_without_usage()).unwrap();
    assert_eq!(r.text(), without_usage, "exactly the events OpenAI sends a client that did not ask");
    let sent: Value = serde_json::from_slice(&mock.posts()[0].body).unwrap();
    assert_eq!(sent["stream_options"], json!({"include_usage": true}), "the gateway asked for the chunk");
    assert_eq!(common::metric_sum(&gw, "llm_gateway_tokens_completion_total{").await, 16.0);
    assert_eq!(common::metric_sum(&gw, r#"llm_gateway_user_tokens_total{kind="prompt",user="alice"}"#).await, 71.0);
    // A client that asks gets the chunk and its body goes upstream byte for byte.
    let asked = r#"{"model":"llama3","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
    let r = send(
        "POST",
        &gw.url("/v1/chat/completions"),
        &[("authorization", "Bearer sk-gw-alice-ci-0123456789abc")],
        asked,
    )
    .await;
    assert_eq!(r.text(), fixture);
    assert_eq!(mock.posts()[1].body, asked.as_bytes());
    assert_eq!(
        common::metric_sum(&gw, r#"llm_gateway_user_tokens_total{kind="completion",user="alice"}"#).await,
        32.0,
        "two keys, one user"
    );
    assert_eq!(
        common::metric_sum(&gw, r#"llm_gateway_tokens_completion_total{key="alice-ci""#).await,
        16.0,
        "and per key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_per_second_use_the_upstreams_generation_time_else_the_whole_duration() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock));
    let key = "sk-gw-alice-laptop-0123456789";
    let chat = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    let r = post(&gw, key, "/v1/chat/completions", chat("llamacpp")).await;
    assert_eq!(r.status.as_u16(), 200);
    // llama.cpp reports 10 tokens in 500 ms of generation.
    assert_eq!(common::metric_sum(&gw, r#"llm_gateway_tokens_per_second_sum{key="alice-laptop""#).await, 20.0);
    // The mock's `slow` answer takes 3 s for 10 tokens and says nothing of its timing: about
    // 3.3 tokens/s (it read about 2,000,000 when the time to the first byte was subtracted).
    let r = post(&gw, "sk-gw-alice-ci-0123456789abc", "/v1/chat/completions", chat("slow")).await;
    assert_eq!(r.status.as_u16(), 200);
    let tps = common::metric_sum(&gw, r#"llm_gateway_tokens_per_second_sum{key="alice-ci""#).await;
    assert!((2.5..3.5).contains(&tps), "{tps}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anthropic_passthrough_stream_counts_its_input_tokens() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock));
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let r = post(&gw, "sk-gw-alice-laptop-0123456789", "/v1/messages", body).await;
    assert_eq!(r.status.as_u16(), 200);
    assert!(r.text().contains("message_stop"));
    // message_start says 25 input tokens, the last message_delta 9 output tokens.
    assert_eq!(common::metric_sum(&gw, "llm_gateway_tokens_prompt_total{").await, 25.0);
    assert_eq!(common::metric_sum(&gw, "llm_gateway_tokens_completion_total{").await, 9.0);
}

/// A Response repeats the request's tools after its usage: neither a tool with a `usage`
/// parameter nor tools longer than the end of a body the log keeps may cost the answer its
/// counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_translated_response_is_counted_whatever_it_repeats_after_its_usage() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock));
    let tool = |description: String| {
        json!({"type": "function", "name": "lookup", "description": description,
            "parameters": {"type": "object", "properties": {"usage": {"type": "string"}}}})
    };
    for description in ["short".to_owned(), "x".repeat(4000)] {
        let body = json!({"model": "llama3", "input": "hi", "tools": [tool(description)]});
        let r = post(&gw, "sk-gw-alice-laptop-0123456789", "/v1/responses", body).await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.text());
        let answer: Value = serde_json::from_str(&r.text()).unwrap();
        assert_eq!((&answer["usage"]["input_tokens"], &answer["usage"]["output_tokens"]), (&json!(19), &json!(10)));
    }
    assert_eq!(common::metric_sum(&gw, "llm_gateway_tokens_prompt_total{").await, 38.0);
    assert_eq!(common::metric_sum(&gw, "llm_gateway_tokens_completion_total{").await, 20.0);
}
