//! Live config changes against the real binary: every way a file can be replaced, SIGHUP,
//! invalid edits, key removal, weight changes, and streams that outlive a reload.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Gateway, Mock, post_json, send};

fn routed(mock: &Mock, model: &str) -> String {
    format!(
        "providers:\n  local:\n    base_url: {}\nrouting:\n  routes:\n    - name: general\n      model: {model}\n",
        mock.url()
    )
}

/// Sends `auto` requests until the upstream sees `model` (or the deadline passes).
async fn until_model(gw: &Gateway, mock: &Mock, model: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let r = post_json(
            &gw.url("/v1/chat/completions"),
            r#"{"model":"auto","messages":[{"role":"user","content":"x"}]}"#,
        )
        .await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.text());
        let sent: serde_json::Value = serde_json::from_slice(&mock.posts().last().unwrap().body).unwrap();
        if sent["model"] == model {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn replace_by_rename(path: &Path, content: &str) {
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_in_place_and_by_rename_take_effect() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&routed(&mock, "llama3"));
    assert!(until_model(&gw, &mock, "llama3").await);
    std::fs::write(gw.config_path(), routed(&mock, "qwen")).unwrap();
    assert!(until_model(&gw, &mock, "qwen").await, "{}", gw.logs());
    assert!(gw.wait_for_log("config reloaded: routes changed"));
    replace_by_rename(&gw.config_path(), &routed(&mock, "mistral"));
    assert!(until_model(&gw, &mock, "mistral").await, "{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_style_symlink_swap_is_seen() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    for (sub, model) in [("v1", "llama3"), ("v2", "qwen")] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        std::fs::write(dir.path().join(sub).join("config.yaml"), routed(&mock, model)).unwrap();
    }
    std::os::unix::fs::symlink("v1", dir.path().join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/config.yaml", dir.path().join("config.yaml")).unwrap();
    let path = dir.path().join("config.yaml");
    let root = dir.path().to_owned();
    let gw = Gateway::start_at(dir, &path, &[]);
    assert!(until_model(&gw, &mock, "llama3").await);
    // Kubernetes swaps the `..data` link atomically: a new link renamed over the old one.
    std::os::unix::fs::symlink("v2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    assert!(until_model(&gw, &mock, "qwen").await, "{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_when_watching_is_off() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, routed(&mock, "llama3")).unwrap();
    let gw = Gateway::start_at(dir, &path, &["--no-watch"]);
    assert!(until_model(&gw, &mock, "llama3").await);
    std::fs::write(&path, routed(&mock, "qwen")).unwrap();
    gw.signal("HUP");
    assert!(until_model(&gw, &mock, "qwen").await, "{}", gw.logs());
    assert!(gw.wait_for_log("received SIGHUP"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_edit_keeps_the_old_config_and_says_where() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&routed(&mock, "llama3"));
    let broken = routed(&mock, "qwen").replace("  routes:", "  routez:");
    std::fs::write(gw.config_path(), broken).unwrap();
    // The diagnostics are one multi-line log event; its help line comes last.
    assert!(gw.wait_for_log("did you mean `routes`?"), "{}", gw.logs());
    assert!(gw.logs().contains("config reload failed"));
    assert!(gw.logs().contains("config.yaml:5:3"), "line:col of the bad key:\n{}", gw.logs());
    assert!(until_model(&gw, &mock, "llama3").await, "still the old routes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_file_is_not_applied() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&routed(&mock, "llama3"));
    std::fs::write(gw.config_path(), "").unwrap();
    assert!(gw.wait_for_log("config file is empty"), "{}", gw.logs());
    assert!(until_model(&gw, &mock, "llama3").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_key_is_refused_on_its_next_request() {
    let mock = Mock::start().await;
    let keys = |both: bool| {
        let bob = if both { "    - name: bob\n      key: sk-gw-bob-0123456789abcdef\n" } else { "" };
        format!(
            "providers:\n  local:\n    base_url: {}\napi_keys:\n  enabled: true\n  keys:\n    - name: alice\n      key: sk-gw-alice-0123456789abcdef\n{bob}",
            mock.url()
        )
    };
    let gw = Gateway::start(&keys(true));
    let chat = |key: &'static str| {
        let url = gw.url("/v1/chat/completions");
        async move {
            let auth = format!("Bearer {key}");
            send(
                "POST",
                &url,
                &[("authorization", &auth)],
                r#"{"model":"llama3","messages":[{"role":"user","content":"x"}]}"#,
            )
            .await
            .status
            .as_u16()
        }
    };
    assert_eq!(chat("sk-gw-bob-0123456789abcdef").await, 200);
    replace_by_rename(&gw.config_path(), &keys(false));
    assert!(gw.wait_for_log("config reloaded: -1 key"), "{}", gw.logs());
    assert_eq!(chat("sk-gw-bob-0123456789abcdef").await, 401);
    assert_eq!(chat("sk-gw-alice-0123456789abcdef").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_weights_shift_traffic_and_keep_endpoints() {
    let (a, b) = (Mock::start().await, Mock::start().await);
    let pool = |wa: u32, wb: u32| {
        format!(
            "providers:\n  local:\n    endpoints:\n      - name: a\n        base_url: {}\n        weight: {wa}\n      - name: b\n        base_url: {}\n        weight: {wb}\n",
            a.url(),
            b.url()
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, pool(1, 1)).unwrap();
    let gw = Gateway::start_at(dir, &path, &["--worker-threads", "1"]);
    let probes_before = a.requests().len() - a.posts().len();
    replace_by_rename(&path, &pool(1, 3));
    assert!(gw.wait_for_log("config reloaded: weights changed"), "{}", gw.logs());
    let (a0, b0) = (a.posts().len(), b.posts().len());
    for _ in 0..40 {
        let r = post_json(
            &gw.url("/v1/chat/completions"),
            r#"{"model":"llama3","messages":[{"role":"user","content":"x"}]}"#,
        )
        .await;
        assert_eq!(r.status.as_u16(), 200);
    }
    assert_eq!((a.posts().len() - a0, b.posts().len() - b0), (10, 30));
    let probes_after = a.requests().len() - a.posts().len();
    assert_eq!(probes_before, probes_after, "an unchanged endpoint is not re-probed by a reload");
}

/// A reload that changes only a provider's key keeps its endpoint (connections, health) and
/// sends the new key from its next request on: the headers a request carries are the plan's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_api_key_is_sent_by_the_kept_endpoint() {
    let mock = Mock::start().await;
    let keyed = |key: &str| format!("providers:\n  open_ai:\n    api_key: {key}\n    base_url: {}\n", mock.url());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, keyed("sk-first-0123456789")).unwrap();
    let gw = Gateway::start_at(dir, &path, &["--worker-threads", "1"]);
    let sent_key = || async {
        let r = post_json(
            &gw.url("/v1/chat/completions"),
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}"#,
        )
        .await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.text());
        let seen = mock.posts().last().unwrap().headers.clone();
        seen.get("authorization").map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(sent_key().await.as_deref(), Some("Bearer sk-first-0123456789"));
    let probes_before = mock.requests().len() - mock.posts().len();
    replace_by_rename(&path, &keyed("sk-second-0123456789"));
    assert!(gw.wait_for_log("config reloaded"), "{}", gw.logs());
    assert_eq!(sent_key().await.as_deref(), Some("Bearer sk-second-0123456789"));
    assert!(!gw.logs().contains("sk-second-0123456789"), "the key is never printed");
    let probes_after = mock.requests().len() - mock.posts().len();
    assert_eq!(probes_before, probes_after, "the endpoint is kept, not probed afresh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_started_before_a_reload_finishes_intact() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&routed(&mock, "llama3"));
    let url = gw.url("/v1/chat/completions");
    let stream = tokio::spawn(async move {
        post_json(&url, r#"{"model":"slow-stream","stream":true,"messages":[{"role":"user","content":"x"}]}"#).await
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while mock.posts().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    replace_by_rename(&gw.config_path(), &routed(&mock, "qwen").replace(&mock.url(), "http://127.0.0.1:9"));
    assert!(gw.wait_for_log("config reloaded"), "{}", gw.logs());
    let r = stream.await.unwrap();
    assert_eq!(r.body.as_ref(), common::chat_stream_without_usage().as_slice());
}
