//! Key management with instant effect: `llm-gateway keys` edits the keys file while the
//! gateway runs; the next request sees the change.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Gateway, Mock, send};

fn keys(file: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_llm-gateway"))
        .arg("keys")
        .arg("--file")
        .arg(file)
        .args(args)
        .output()
        .unwrap();
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), s(&out.stdout), s(&out.stderr))
}

/// Sends requests with `key` until the status is `want` (or the deadline passes).
async fn until_status(gw: &Gateway, key: &str, want: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    let auth = format!("Bearer {key}");
    while Instant::now() < deadline {
        let r = send(
            "POST",
            &gw.url("/v1/chat/completions"),
            &[("authorization", &auth)],
            r#"{"model":"llama3","messages":[{"role":"user","content":"x"}]}"#,
        )
        .await;
        if r.status.as_u16() == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_added_and_removed_with_the_cli_take_effect_at_once() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let keys_file = dir.path().join("keys.yaml");
    let (code, admin, _) = keys(&keys_file, &["add", "admin"]);
    assert_eq!(code, 0);
    let admin = admin.trim().to_owned();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "providers:\n  local:\n    base_url: {}\napi_keys:\n  enabled: true\n  keys_file: keys.yaml\n",
            mock.url()
        ),
    )
    .unwrap();
    let gw = Gateway::start_at(dir, &config, &[]);
    assert!(until_status(&gw, &admin, 200).await, "{}", gw.logs());

    let (code, alice, err) = keys(&keys_file, &["add", "alice", "--models", "llama*"]);
    assert_eq!(code, 0, "{err}");
    let alice = alice.trim().to_owned();
    assert!(alice.starts_with("sk-gw-") && alice.len() == 70);
    let stored = std::fs::read_to_string(&keys_file).unwrap();
    assert!(!stored.contains(&alice) && stored.contains("key_sha256"), "only the hash is stored:\n{stored}");
    assert!(until_status(&gw, &alice, 200).await, "{}", gw.logs());

    let (_, listed, _) = keys(&keys_file, &["list"]);
    assert!(listed.contains("alice\tsha256:") && listed.contains("models=llama*"), "{listed}");
    assert!(!listed.contains(&alice));

    let (code, _, _) = keys(&keys_file, &["remove", "alice"]);
    assert_eq!(code, 0);
    assert!(until_status(&gw, &alice, 401).await, "a removed key is refused");

    let (code, rotated, _) = keys(&keys_file, &["rotate", "admin"]);
    assert_eq!(code, 0);
    assert!(until_status(&gw, rotated.trim(), 200).await);
    assert!(until_status(&gw, &admin, 401).await, "the old value stops working");

    assert_eq!(keys(&keys_file, &["remove", "nobody"]).0, 2);
    assert_eq!(keys(&keys_file, &["add", "admin"]).0, 2, "names are unique");
}

#[test]
fn check_reports_keys_file_problems_with_their_own_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keys.yaml"), "keys:\n  - name: a\n    kye: sk-gw-x\n").unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "providers:\n  local: {}\napi_keys:\n  enabled: true\n  keys_file: keys.yaml\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_llm-gateway")).arg("check").arg(&config).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(78), "{text}");
    assert!(text.contains("keys.yaml:3:5"), "{text}");
    assert!(text.contains("did you mean `key`?"), "{text}");
}
