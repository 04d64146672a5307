//! Semantic routing through the real binary: the builtin embedder end to end, reloads that
//! re-embed only what changed, a provider's embeddings (OpenAI-style and Ollama's own API),
//! the classifier for ambiguous prompts, and a failing classifier falling through.

mod common;

use common::{Behaviour, Gateway, Mock, post_json};

/// Three routes with examples; `general` is the default.
fn routes() -> &'static str {
    "  routes:
    - name: coding
      model: code-model
      examples: [\"write python code that sorts a list\", \"fix this compile error in my rust code\"]
    - name: creative
      model: poem-model
      examples: [\"write a poem about the sea\", \"tell me a story about a dragon\"]
    - name: general
      model: general-model
      examples: [\"what is the capital of France\", \"explain how vaccines work\"]
"
}

fn config(mock: &Mock, semantic: &str) -> String {
    format!(
        "providers:\n  local:\n    base_url: {}\nrouting:\n  default_route: general\n  semantic:\n{semantic}{}",
        mock.url(),
        routes()
    )
}

/// Sends one chat request (`model` as given, or none) and returns the model the upstream
/// saw and the route header.
async fn ask(gw: &Gateway, mock: &Mock, model: Option<&str>, prompt: &str) -> (String, String) {
    let model = model.map(|m| format!(r#""model":"{m}","#)).unwrap_or_default();
    let body = format!(r#"{{{model}"messages":[{{"role":"user","content":"{prompt}"}}]}}"#);
    let r = post_json(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(r.status.as_u16(), 200, "{}\n{}", r.text(), gw.logs());
    let sent: serde_json::Value = serde_json::from_slice(&mock.posts().last().unwrap().body).unwrap();
    (sent["model"].as_str().unwrap().to_owned(), r.header("x-llm-gateway-route").unwrap_or_default().to_owned())
}

#[cfg(feature = "builtin-embeddings")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_embeddings_route_auto_and_model_less_requests() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, "    enabled: true\n    threshold: 0.3\n"));
    assert!(gw.wait_for_log("semantic routing: embedded 6 route example(s)"), "{}", gw.logs());

    let (model, route) =
        ask(&gw, &mock, Some("auto"), "my javascript function throws a TypeError, help me debug it").await;
    assert_eq!((model.as_str(), route.as_str()), ("code-model", "coding"));
    let (model, route) = ask(&gw, &mock, None, "compose a short poem about autumn rain").await;
    assert_eq!((model.as_str(), route.as_str()), ("poem-model", "creative"));
    let (model, route) = ask(&gw, &mock, None, "zzzz qqqq").await;
    assert_eq!((model.as_str(), route.as_str()), ("general-model", "general"), "below the threshold: default");
    assert!(gw.wait_for_log("method=semantic route='coding' model='code-model' confidence=0."), "{}", gw.logs());
    assert!(gw.wait_for_log("cascade=[semantic:creative:0."), "{}", gw.logs());
    assert!(gw.wait_for_log("cascade=[semantic:no_match(best="), "a miss names the nearest route: {}", gw.logs());

    // A reload that keeps the examples embeds nothing; a new example is the only one embedded.
    let path = gw.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("general-model", "other-model")).unwrap();
    assert!(gw.wait_for_log("0 example(s) embedded, 6 reused"), "{}", gw.logs());
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("\"explain how vaccines work\"", "\"explain how vaccines work\", \"why is the sky blue\""),
    )
    .unwrap();
    assert!(gw.wait_for_log("1 example(s) embedded, 6 reused"), "{}", gw.logs());
    assert!(gw.wait_for_log("config reloaded: route examples changed"), "{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_providers_embeddings_and_the_classifier() {
    let mock = Mock::start().await;
    let semantic = "    enabled: true\n    provider: local\n    model: topic-embed\n    threshold: 0.95\n    ambiguous_threshold: 0.5\n  classifier:\n    enabled: true\n    provider: local\n    model: classifier\n    confidence_threshold: 0.7\n";
    let gw = Gateway::start(&config(&mock, semantic));
    // A prompt on the coding examples' topic only: confident.
    let (model, route) = ask(&gw, &mock, None, "some code please").await;
    assert_eq!((model.as_str(), route.as_str()), ("code-model", "coding"));
    let embeds: Vec<_> = mock.posts().into_iter().filter(|p| p.path == "/v1/embeddings").collect();
    let sent: serde_json::Value = serde_json::from_slice(&embeds.last().unwrap().body).unwrap();
    assert_eq!(sent, serde_json::json!({"model": "topic-embed", "input": ["some code please"]}));
    // Two topics: ambiguous, so the classifier (whose fixture answers `creative`) decides.
    let (model, route) = ask(&gw, &mock, None, "code and weather").await;
    assert_eq!((model.as_str(), route.as_str()), ("poem-model", "creative"));
    assert!(gw.wait_for_log("method=classifier route='creative' model='poem-model' confidence=0.90"), "{}", gw.logs());
    assert!(gw.wait_for_log(":ambiguous,classifier:creative:0.90]"), "{}", gw.logs());
    let asked: serde_json::Value = serde_json::from_slice(
        &mock.posts().iter().rev().find(|p| p.body.windows(10).any(|w| w == b"classifier")).unwrap().body,
    )
    .unwrap();
    let prompt = asked["messages"][0]["content"].as_str().unwrap();
    assert!(prompt.contains("- creative: \n") && prompt.contains("User request:\ncode and weather"), "{prompt}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_without_v1_embeddings_is_asked_on_api_embed() {
    let mock = Mock::start_with(Behaviour::Ollama).await;
    let gw = Gateway::start(&config(&mock, "    enabled: true\n    provider: local\n    model: nomic-embed-text\n"));
    let (model, _) = ask(&gw, &mock, None, "a poem on the weather").await;
    assert_eq!(model, "poem-model");
    assert!(mock.posts().iter().any(|p| p.path == "/api/embed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_classifier_falls_through_to_the_default() {
    let mock = Mock::start().await;
    let semantic = "    enabled: false\n  classifier:\n    enabled: true\n    provider: local\n    model: error-401\n";
    let gw = Gateway::start(&config(&mock, semantic));
    let (model, route) = ask(&gw, &mock, None, "write me a sonnet").await;
    assert_eq!((model.as_str(), route.as_str()), ("general-model", "general"));
    assert!(gw.wait_for_log("classifier error: classifier error 401"), "{}", gw.logs());
    assert!(gw.wait_for_log("cascade=[classifier:no_match,default:general]"), "{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_classifier_times_out_into_the_default() {
    let mock = Mock::start().await;
    let semantic = "    enabled: false\n  classifier:\n    enabled: true\n    provider: local\n    model: slow\n    timeout_ms: 200\n";
    let gw = Gateway::start(&config(&mock, semantic));
    let started = std::time::Instant::now();
    let (model, _) = ask(&gw, &mock, None, "write me a sonnet").await;
    assert_eq!(model, "general-model");
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "the mock answers `slow` after 3 s");
    assert!(gw.wait_for_log("classifier error: no answer within 200 ms"), "{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_embeddings_carry_the_providers_key() {
    let mock = Mock::start().await;
    let config = config(&mock, "    enabled: true\n    provider: openai\n    model: text-embedding-3-small\n").replace(
        "providers:\n",
        &format!("providers:\n  open_ai:\n    base_url: {}\n    api_key: sk-test-key\n", mock.url()),
    );
    let gw = Gateway::start(&config);
    let (model, _) = ask(&gw, &mock, None, "a poem about the weather").await;
    assert_eq!(model, "poem-model");
    let embed = mock.posts().into_iter().find(|p| p.path == "/v1/embeddings").unwrap();
    assert_eq!(embed.headers["authorization"], "Bearer sk-test-key");
}

#[cfg(feature = "builtin-embeddings")]
#[test]
fn run_without_the_builtin_model_names_the_setup_command() {
    let empty = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, "providers:\n  local: {}\nrouting:\n  semantic: {enabled: true}\n  routes:\n    - {name: a, model: m, examples: [hi]}\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_llm-gateway"))
        .args(["run", "--address", "127.0.0.1:0"])
        .arg(&path)
        .env("LLM_GATEWAY_EMBED_DIR", empty.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("failed to initialize semantic router: the builtin embedding model is not installed"),
        "{err}"
    );
    assert!(err.contains("run ./scripts/setup-embeddings.sh"), "{err}");
}

/// The builtin model missing when a reload first asks for it: the reload is refused, and once
/// the model is installed the next reload loads it (a failed load is not remembered).
#[cfg(feature = "builtin-embeddings")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_after_the_model_is_installed_loads_it() {
    let mock = Mock::start().await;
    let assets = tempfile::tempdir().unwrap();
    let dir = assets.path().to_str().unwrap().to_owned();
    let plain = format!("providers:\n  local:\n    base_url: {}\n", mock.url());
    let gw = Gateway::start_with_env(&plain, &[("LLM_GATEWAY_EMBED_DIR", dir.as_str())]);
    let write = |text: &str| {
        let tmp = gw.config_path().with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, gw.config_path()).unwrap();
    };
    write(&config(&mock, "    enabled: true\n    threshold: 0.3\n"));
    assert!(gw.wait_for_log("the builtin embedding model is not installed"), "{}", gw.logs());
    assert!(gw.wait_for_log("still serving the previous config"), "{}", gw.logs());

    let installed = llm_gateway::embed::builtin::asset_dir();
    for name in ["libonnxruntime.so", llm_gateway::embed::builtin::MODEL] {
        std::os::unix::fs::symlink(installed.join(name), assets.path().join(name)).unwrap();
    }
    write(&format!("{}# installed now\n", config(&mock, "    enabled: true\n    threshold: 0.3\n")));
    assert!(gw.wait_for_log("config reloaded"), "{}", gw.logs());
    let (model, route) = ask(&gw, &mock, Some("auto"), "compose a short poem about autumn rain").await;
    assert_eq!((model.as_str(), route.as_str()), ("poem-model", "creative"));
}
