//! The rest of the OpenAI-compatible surface over real sockets: audio (multipart uploads and
//! binary answers), images, rerank, moderations and `/v1/models/{id}` reach an
//! OpenAI-compatible upstream as the client sent them — only the model replaced when a route
//! or fallback names another — with keys, ACLs and fallbacks as for chat; unknown `/v1/*`
//! paths are 404 unless `unknown_paths: forward`.

mod common;

use common::{Gateway, Mock, send};
use serde_json::{Value, json};

const KEY: &str = "sk-gw-surface-0123456789abcdef";
const NARROW: &str = "sk-gw-narrow-0123456789abcdef";

fn config(mock: &Mock, extra: &str) -> String {
    format!(
        "providers:\n  local:\n    base_url: {url}\n  anthropic:\n    api_key: sk-ant\n    base_url: {url}\nmetrics:\n  enabled: true\n\
         routing:\n  routes:\n    - {{name: stt, model: whisper-large-v3}}\n    - {{name: chat, model: llama3}}\n\
         fallbacks:\n  overloaded: [whisper-small]\n\
         api_keys:\n  enabled: true\n  keys:\n    - {{name: all, key: {KEY}}}\n    - {{name: narrow, key: {NARROW}, allowed_models: [llama3]}}\n{extra}",
        url = mock.url()
    )
}

/// A transcription upload as the OpenAI SDK writes it: the file part first, then the fields.
fn upload(model: &str) -> (String, Vec<u8>) {
    let boundary = "d6f4b2c1a0e9f8d7";
    let mut body = Vec::new();
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"hello.wav\"\r\nContent-Type: audio/wav\r\n\r\n").as_bytes());
    body.extend_from_slice(
        b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x80\x3e\x00\x00\xff\xfe\x00\x01",
    );
    body.extend_from_slice(
        format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n{model}").as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\nen\r\n--{boundary}--\r\n"
        )
        .as_bytes(),
    );
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_upload_is_routed_by_its_model_field_and_sent_byte_for_byte() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, ""));
    let (content_type, body) = upload("stt");
    let auth = format!("Bearer {KEY}");
    let r = send(
        "POST",
        &gw.url("/v1/audio/transcriptions?timestamp_granularities=word"),
        &[("authorization", &auth), ("content-type", &content_type)],
        body.clone(),
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_eq!(r.header("x-llm-gateway-model"), Some("whisper-large-v3"));
    assert_eq!(r.header("x-llm-gateway-route"), Some("stt"));
    let seen = &mock.posts()[0];
    assert_eq!(seen.path, "/v1/audio/transcriptions");
    assert_eq!(seen.headers["content-type"], content_type.as_str(), "the boundary is the client's");
    assert!(!seen.headers.contains_key("authorization"), "never the client's key");
    let (_, want) = upload("whisper-large-v3");
    assert_eq!(seen.body.as_ref(), want.as_slice(), "only the model field changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_images_rerank_and_moderations_pass_through_with_binary_answers() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, ""));
    let auth = format!("Bearer {KEY}");
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let speech = json!({"model": "kokoro", "input": "Hello", "voice": "af_heart"});
    let r = send("POST", &gw.url("/v1/audio/speech"), &headers, speech.to_string()).await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.header("content-type"), Some("audio/mpeg"));
    assert_eq!(r.body.as_ref(), b"ID3\x04\x00fake mp3 \xff\xfb", "binary bytes untouched");
    assert_eq!(mock.posts()[0].body.as_ref(), speech.to_string().as_bytes(), "the body as sent");
    for (path, body) in [
        ("/v1/images/generations", json!({"model": "sdxl", "prompt": "a cat"})),
        ("/v1/rerank", json!({"model": "bge-reranker", "query": "q", "documents": ["a", "b"]})),
        ("/v1/moderations", json!({"model": "omni-moderation-latest", "input": "hi"})),
    ] {
        let r = send("POST", &gw.url(path), &headers, body.to_string()).await;
        assert_eq!(r.status.as_u16(), 200, "{path}: {}", r.text());
        assert_eq!(r.json()["path"], path);
    }
    let r = send("GET", &gw.url("/v1/audio/speech"), &headers, "").await;
    assert_eq!(r.status.as_u16(), 405);
    let before = mock.requests().len();
    for climbing in ["/v1/audio/../../slots/0?action=save", "/v1/images/%2e%2e/%2e%2e/admin"] {
        let r = send("POST", &gw.url(climbing), &headers, speech.to_string()).await;
        assert_eq!(r.status.as_u16(), 404, "{climbing}");
    }
    assert_eq!(mock.requests().len(), before, "nothing left the gateway");
    let r = send("POST", &gw.url("/v1/rerank"), &headers, json!({"query": "q"}).to_string()).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["code"].clone()), (400, json!("model_required")));
    let r =
        send("POST", &gw.url("/v1/images/generations"), &headers, json!({"model": "claude-sonnet-4-5"}).to_string())
            .await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["code"].clone()), (400, json!("unsupported_operation")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_acls_and_fallbacks_apply_as_for_chat() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, ""));
    let (content_type, body) = upload("whisper-large-v3");
    let narrow = format!("Bearer {NARROW}");
    let r = send(
        "POST",
        &gw.url("/v1/audio/transcriptions"),
        &[("authorization", &narrow), ("content-type", &content_type)],
        body.clone(),
    )
    .await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.text());
    let r = send("POST", &gw.url("/v1/audio/transcriptions"), &[("content-type", &content_type)], body).await;
    assert_eq!(r.status.as_u16(), 401);
    assert!(mock.posts().is_empty());
    let (content_type, mut body) = upload("whisper-large-v3");
    let twice = "\r\n--d6f4b2c1a0e9f8d7\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ngpt-4o-transcribe";
    let at = body.windows(11).position(|w| w == b"\r\n--d6f4b2c").unwrap();
    body.splice(at..at, twice.bytes());
    let r = send(
        "POST",
        &gw.url("/v1/audio/transcriptions"),
        &[("authorization", &format!("Bearer {KEY}")), ("content-type", &content_type)],
        body,
    )
    .await;
    assert_eq!(r.status.as_u16(), 400, "two model fields: servers differ on which they take");
    let (content_type, body) = upload("overloaded");
    let auth = format!("Bearer {KEY}");
    let r = send(
        "POST",
        &gw.url("/v1/audio/transcriptions"),
        &[("authorization", &auth), ("content-type", &content_type)],
        body,
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_eq!(r.header("x-llm-gateway-model"), Some("whisper-small"));
    let (_, want) = upload("whisper-small");
    assert_eq!(mock.posts()[1].body.as_ref(), want.as_slice(), "the fallback's form names the fallback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_by_id_and_unknown_paths() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, ""));
    let auth = format!("Bearer {KEY}");
    // What the local endpoint's probe listed (the mock's fixture).
    let r = send("GET", &gw.url("/v1/models/gpt-4o-mini"), &[("authorization", &auth)], "").await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_eq!(r.json(), json!({"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "local"}));
    let r = send("GET", &gw.url("/v1/models/chat"), &[("authorization", &auth)], "").await;
    assert_eq!(r.json()["owned_by"], "llm-gateway", "a route");
    let r = send("GET", &gw.url("/v1/models/nope"), &[("authorization", &auth)], "").await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["code"].clone()), (404, json!("model_not_found")));
    let narrow = format!("Bearer {NARROW}");
    let r = send("GET", &gw.url("/v1/models/stt"), &[("authorization", &narrow)], "").await;
    assert_eq!(r.status.as_u16(), 404, "a model the key may not use is not listed");
    let r = send("GET", &gw.url("/v1/files"), &[("authorization", &auth)], "").await;
    assert_eq!(r.status.as_u16(), 404, "unknown paths are refused by default");
    drop(gw);
    let gw = Gateway::start(&config(&mock, "unknown_paths: forward\n"));
    let r = send("GET", &gw.url("/v1/files?purpose=batch"), &[("authorization", &auth)], "").await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    let seen = mock.requests().into_iter().find(|s| s.path == "/v1/files").expect("forwarded to local");
    assert_eq!(seen.method, "GET");
    let r = send("GET", &gw.url("/v1/files"), &[], "").await;
    assert_eq!(r.status.as_u16(), 401, "keys still apply");
    let value: Value = r.json();
    assert_eq!(value["error"]["code"], "missing_api_key");
}
