//! Key management with instant effect: `llm-gateway keys` edits the keys file while the
//! gateway runs; the next request sees the change.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Gateway, Mock, send};

fn keys(file: &Path, args: &[&str]) -> (i32, String, String) {
    keys_with(file, args, &[], None)
}

/// `keys` with environment variables and, if given, `stdin` piped in.
fn keys_with(file: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_llm-gateway"))
        .arg("keys")
        .arg("--file")
        .arg(file)
        .args(args)
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        // The child may refuse before reading everything; a broken pipe is then expected.
        let _ = child.stdin.take().unwrap().write_all(input);
    }
    let out = child.wait_with_output().unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_file_that_a_reload_adds_is_watched_from_then_on() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let admin = "sk-gw-admin-0123456789abcdef";
    let base = format!(
        "providers:\n  local:\n    base_url: {}\napi_keys:\n  enabled: true\n  keys:\n    - name: admin\n      key: {admin}\n",
        mock.url()
    );
    std::fs::write(&config, &base).unwrap();
    let gw = Gateway::start_at(dir, &config, &[]);
    assert!(until_status(&gw, admin, 200).await, "{}", gw.logs());

    // A keys file in a directory of its own, named only by an edit of the running config.
    let keys_file = config.parent().unwrap().join("secrets/keys.yaml");
    std::fs::create_dir(keys_file.parent().unwrap()).unwrap();
    let (code, alice, err) = keys(&keys_file, &["add", "alice"]);
    assert_eq!(code, 0, "{err}");
    let alice = alice.trim().to_owned();
    std::fs::write(&config, format!("{base}  keys_file: secrets/keys.yaml\n")).unwrap();
    assert!(until_status(&gw, &alice, 200).await, "{}", gw.logs());
    assert_eq!(keys(&keys_file, &["remove", "alice"]).0, 0);
    assert!(until_status(&gw, &alice, 401).await, "the keys file's change was not seen: {}", gw.logs());
}

#[test]
fn an_edit_keeps_the_files_owner_and_mode_and_hashes_alone_raise_no_warning() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let keys_file = dir.path().join("keys.yaml");
    assert_eq!(keys(&keys_file, &["add", "admin"]).0, 0);
    assert_eq!(std::fs::metadata(&keys_file).unwrap().mode() & 0o777, 0o600, "a new file is private");
    // As a service would have it: readable by its group (a Kubernetes Secret with fsGroup, a
    // systemd unit's group), owned by another user when we can arrange it (as root, as on CI).
    std::fs::set_permissions(&keys_file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let root = std::fs::metadata(dir.path()).unwrap().uid() == 0;
    let owner = (65532, 65532);
    if root {
        std::os::unix::fs::chown(&keys_file, Some(owner.0), Some(owner.1)).unwrap();
    }
    let (code, _, err) = keys(&keys_file, &["add", "bob"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning"), "hashes only: nothing to warn about: {err}");
    let meta = std::fs::metadata(&keys_file).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o640);
    if root {
        assert_eq!((meta.uid(), meta.gid()), owner);
    }
    assert!(std::fs::read_to_string(&keys_file).unwrap().contains("name: \"bob\""));
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

/// Each entry of a keys file as the gateway reads it (variables expanded), one line each.
fn meaning(source: &str, env: &[(&str, &str)]) -> Vec<String> {
    let env: std::collections::HashMap<String, String> =
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let file = llm_gateway_compiler::read_keys_file(source, &env).unwrap();
    let entries = file.keys.map(|l| l.value).unwrap_or_default();
    entries
        .iter()
        .map(|k| {
            let list = |l: &Option<llm_gateway_compiler::raw::ApiKeyList>| -> Vec<String> {
                l.as_ref().map(|l| l.value.iter().map(|v| v.value.clone()).collect()).unwrap_or_default()
            };
            format!(
                "{:?}",
                (
                    k.name.as_ref().map(|v| v.value.clone()),
                    k.key.as_ref().map(|v| v.value.0.expose().to_owned()),
                    k.key_sha256.as_ref().map(|v| v.value.clone()),
                    k.user.as_ref().map(|v| v.value.clone()),
                    list(&k.allowed_models),
                    list(&k.allowed_routes),
                    [&k.rpm, &k.tpm, &k.tokens_per_day, &k.max_concurrent].map(|n| n.as_ref().map(|n| n.value)),
                )
            )
        })
        .collect()
}

const ALL_FIELDS: &str = r#"# written by hand
keys:
  - name: admin
    key: ${KEYS_TEST_ADMIN_KEY}
    user: ops team
    allowed_models: [gpt-*, "${KEYS_TEST_MODEL:-llama*}"]
    allowed_routes:
      - coding
    rpm: 60
    tpm: ${KEYS_TEST_TPM:-1000}
    tokens_per_day: 100000
    max_concurrent: 2
  - name: "ci $${not a variable}"
    key_sha256: ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789
    user: ops team
    rpm: 5
  - name: other
    key: sk-other-plain-key-1
"#;

#[test]
fn every_field_survives_an_edit_of_another_entry() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.yaml");
    std::fs::write(&file, ALL_FIELDS).unwrap();
    let secret = "sk-admin-from-the-environment-1";
    let env = [("KEYS_TEST_ADMIN_KEY", secret)];
    let before = meaning(ALL_FIELDS, &env);

    let (code, rotated, err) = keys_with(&file, &["rotate", "other"], &env, None);
    assert_eq!(code, 0, "{err}");
    let after_text = std::fs::read_to_string(&file).unwrap();
    let after = meaning(&after_text, &env);
    assert_eq!(before[..2], after[..2], "the other entries mean the same:\n{after_text}");
    let hash = llm_gateway_compiler::acl::hash_hex(rotated.trim());
    assert!(after[2].contains(&hash) && !after_text.contains("sk-other-plain-key-1"), "{after_text}");
    // A variable stays a variable: its value, a key, never lands in the file.
    assert!(after_text.contains("${KEYS_TEST_ADMIN_KEY}") && !after_text.contains(secret), "{after_text}");
    assert!(after_text.contains("${KEYS_TEST_TPM:-1000}") && after_text.contains("$${not a variable}"));

    let (code, listed, err) = keys_with(&file, &["list"], &env, None);
    assert_eq!(code, 0, "{err}");
    let admin = listed.lines().next().unwrap();
    assert!(admin.starts_with("admin\tsha256:") && admin.contains("(plaintext in the file)"), "{listed}");
    assert!(admin.contains("\tuser=ops team\tmodels=gpt-*,llama*\troutes=coding\t"), "{listed}");
    assert!(admin.ends_with("limits=rpm:60,tpm:1000,tokens_per_day:100000,max_concurrent:2"), "{listed}");
    assert!(listed.contains("ci ${not a variable}\tsha256:abcdef012345…\tuser=ops team"), "{listed}");
    assert!(!listed.contains(secret) && !err.contains(secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_json_imports_like_the_seed_and_only_once() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.yaml");
    assert_eq!(keys(&file, &["add", "admin"]).0, 0);
    // A key that is already in the file, under a name an imported user will want.
    assert_eq!(keys(&file, &["add", "alice", "--key", "sk-already-here-1"]).0, 0);
    let users = dir.path().join("users.json");
    std::fs::write(
        &users,
        r#"{"sk-abc123": "alice", "sk-xyz789": "bob", "sk-alice-laptop": "alice", "sk-already-here-1": "carol"}"#,
    )
    .unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "providers:\n  local:\n    base_url: {}\napi_keys:\n  enabled: true\n  keys_file: keys.yaml\n",
            mock.url()
        ),
    )
    .unwrap();
    let users_arg = users.to_str().unwrap().to_owned();
    let gw = Gateway::start_at(dir, &config, &[]);

    let (code, out, err) = keys(&file, &["import", &users_arg]);
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty(), "no key is printed: {out}");
    assert!(err.contains("imported 3 keys for 2 users; skipped 1 already present"), "{err}");
    assert!(err.contains("already in the file as `alice`"), "{err}");
    let stored = std::fs::read_to_string(&file).unwrap();
    for key in ["sk-abc123", "sk-xyz789", "sk-alice-laptop", "sk-already-here-1"] {
        assert!(!stored.contains(key) && !err.contains(key), "{key} is stored and shown only hashed");
    }
    let (_, listed, _) = keys(&file, &["list"]);
    for line in ["alice-2\tsha256:", "bob\tsha256:", "alice-3\tsha256:"] {
        assert!(listed.contains(line), "{listed}");
    }
    assert!(listed.contains("\tuser=alice\t") && listed.contains("\tuser=bob\t"), "{listed}");
    for key in ["sk-abc123", "sk-xyz789", "sk-alice-laptop"] {
        assert!(until_status(&gw, key, 200).await, "{key}: {}", gw.logs());
    }

    let (code, _, err) = keys(&file, &["import", &users_arg]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("imported 0 keys for 0 users; skipped 4 already present"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), stored, "a second import changes nothing");

    // Like `users.sh remove alice`: every key of the user.
    let (code, _, err) = keys(&file, &["remove", "--user", "alice"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("removed 2 keys of user `alice`: alice-2, alice-3"), "{err}");
    assert!(until_status(&gw, "sk-abc123", 401).await);
    assert!(until_status(&gw, "sk-alice-laptop", 401).await);
    assert!(until_status(&gw, "sk-already-here-1", 200).await, "`alice` has no user: kept");
    assert_eq!(keys(&file, &["remove", "--user", "alice"]).0, 2, "no key has that user any more");
}

#[test]
fn import_refuses_anything_but_a_users_json_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.yaml");
    assert_eq!(keys(&file, &["add", "admin"]).0, 0);
    let stored = std::fs::read(&file).unwrap();
    let deep = format!("{{\"sk-secret-deep\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let huge = format!("{{\"sk-secret-huge\": \"{}\"}}", "u".repeat(2 << 20));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("an array", b"[\"sk-secret-in-array\"]".to_vec()),
        ("a string", b"\"sk-secret-string-1\"".to_vec()),
        ("a number user", br#"{"sk-secret-1": 5}"#.to_vec()),
        ("an object user", br#"{"sk-secret-1": {"name": "alice"}}"#.to_vec()),
        ("an empty key", br#"{"": "alice"}"#.to_vec()),
        ("an empty user", br#"{"sk-secret-1": " "}"#.to_vec()),
        ("a control character in a user", br#"{"sk-secret-1": "a\nb"}"#.to_vec()),
        ("a short key", br#"{"sk-secr": "alice", "sk-secret-2": "bob"}"#.to_vec()),
        ("a key with a space", br#"{"sk-secret 1": "alice"}"#.to_vec()),
        ("a repeated key", br#"{"sk-secret-1": "alice", "sk-secret-1": "bob"}"#.to_vec()),
        ("a bad entry after good ones", br#"{"sk-secret-1": "alice", "sk-secret-2": null}"#.to_vec()),
        ("invalid JSON", br#"{"sk-secret-1": "alice""#.to_vec()),
        ("trailing text", br#"{"sk-secret-1": "alice"} sk-secret-2"#.to_vec()),
        ("an empty file", Vec::new()),
        ("not UTF-8", b"{\"sk-secret-\xff\xfe\": \"alice\"}".to_vec()),
        ("deep nesting", deep.into_bytes()),
        ("over the size bound", huge.into_bytes()),
    ];
    for (what, bytes) in cases {
        let users = dir.path().join("users.json");
        std::fs::write(&users, &bytes).unwrap();
        let (code, out, err) = keys(&file, &["import", users.to_str().unwrap()]);
        assert_eq!(code, 65, "{what}: {err}");
        assert!(err.starts_with("error: ") && err.contains("nothing imported"), "{what}: {err}");
        assert!(!err.contains("secret") && out.is_empty(), "{what}: no key is shown: {err}");
        assert_eq!(std::fs::read(&file).unwrap(), stored, "{what}: nothing written");
    }
    assert_eq!(keys(&file, &["import", "/nonexistent/users.json"]).0, 66);
}

#[test]
fn add_registers_an_existing_key_with_user_and_limits_and_never_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.yaml");
    let limits = ["--rpm", "60", "--tpm", "1000", "--tokens-per-day", "100000", "--max-concurrent", "2"];
    let args: Vec<&str> = ["add", "bob", "--key", "sk-xyz789", "--user", "bob"].into_iter().chain(limits).collect();
    let (code, out, err) = keys(&file, &args);
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty() && !err.contains("sk-xyz789"), "a given key is not printed: {out}{err}");
    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(stored.contains(&llm_gateway_compiler::acl::hash_hex("sk-xyz789")) && !stored.contains("sk-xyz789"));
    let (_, listed, _) = keys(&file, &["list"]);
    assert!(
        listed.starts_with("bob\tsha256:")
            && listed.contains(
                "\tuser=bob\tmodels=*\troutes=*\tlimits=rpm:60,tpm:1000,tokens_per_day:100000,max_concurrent:2"
            ),
        "{listed}"
    );

    let refused: [&[&str]; 9] = [
        &["add", "b2", "--key", "sk-shor"],
        &["add", "b2", "--key", "sk-with space"],
        &["add", "b2", "--key", "sk-with\ttab"],
        &["add", "b2", "--key", "sk-ключ-1234"],
        &["add", "b2", "--key", "sk-xyz789"],
        &["add", "b2", "--user", " "],
        &["add", "b2", "--rpm", "0"],
        &["add", "b2", "--max-concurrent", "0"],
        &["add", "b2", "--tokens-per-day", "-1"],
    ];
    for args in refused {
        let (code, out, err) = keys(&file, args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty() && !err.contains("sk-"), "{args:?}: {err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), stored, "{args:?}");
    }
    let (_, _, err) = keys(&file, &["add", "b2", "--key", "sk-xyz789"]);
    assert!(err.contains("already in the file, as `bob`"), "{err}");
}

#[test]
fn interactive_add_reads_the_answers_from_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.yaml");
    // An empty key answer generates one, printed once.
    let (code, out, err) = keys_with(&file, &["add"], &[], Some(b"alice\n\n"));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("User name: ") && err.contains("Key (empty: generate one): "), "{err}");
    let generated = out.trim();
    assert!(generated.starts_with("sk-gw-") && generated.len() == 70, "{out}");
    // The user's name again: the key's name is made unique. CRLF answers work too.
    let (code, out, err) = keys_with(&file, &["add", "--rpm", "5"], &[], Some(b" alice \r\nsk-interactive-1\r\n"));
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty() && !err.contains("sk-interactive-1"), "{out}{err}");
    let (_, listed, _) = keys(&file, &["list"]);
    assert!(listed.contains("alice\tsha256:") && listed.contains("\tuser=alice\t"), "{listed}");
    assert!(listed.contains("alice-2\tsha256:") && listed.contains("limits=rpm:5"), "{listed}");
    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(stored.contains(&llm_gateway_compiler::acl::hash_hex("sk-interactive-1")));

    let refused: [(&[u8], &str); 6] = [
        (b"", "no answer for the user name"),
        (b"dave\n", "no answer for the key"),
        (b"\n\n", "the user name is empty"),
        (b"   \nsk-interactive-2\n", "the user name is empty"),
        (b"eve\nshort\n", "shorter than 8"),
        (b"\xff\xfe\n\n", "not UTF-8"),
    ];
    for (input, why) in refused {
        let (code, out, err) = keys_with(&file, &["add"], &[], Some(input));
        assert_eq!(code, 2, "{input:?}: {err}");
        assert!(err.contains(why) && out.is_empty(), "{input:?}: {err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), stored, "{input:?}: nothing written");
    }
}
