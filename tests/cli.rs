//! The real binary's `check`, `genkey`, `schema` and `version`: exit codes and output.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_llm-gateway"));
    c.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/config").join(rel)
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn check_accepts_every_valid_fixture_at_once() {
    let dir = fixture("valid");
    let mut files: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path().display().to_string()).collect();
    files.sort();
    let mut cmd = bin();
    // Their embedders are Ollama servers that are not here; the builtin one is tested below.
    cmd.arg("check").arg("--no-embed").args(&files);
    // The seeds name these variables; the provider keys may stay unset (a warning only).
    cmd.env("ZROK_OLLAMA_TOKEN", "t1")
        .env("ZROK_VLLM_BACKUP_TOKEN", "t2")
        .env("GATEWAY_KEY_ALICE", "sk-gw-aaaaaaaaaaaaaaaaaaaaaaaa");
    let out = cmd.output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(text.matches(": ok (0 errors").count(), files.len(), "{text}");
}

/// Passes on where the builtin embedder's assets are.
#[cfg(feature = "builtin-embeddings")]
fn with_assets(mut c: Command) -> Command {
    for var in ["HOME", "XDG_CACHE_HOME", "LLM_GATEWAY_CACHE", "LLM_GATEWAY_EMBED_DIR", "ORT_DYLIB_PATH"] {
        if let Some(v) = std::env::var_os(var) {
            c.env(var, v);
        }
    }
    c
}

#[cfg(feature = "builtin-embeddings")]
#[test]
fn check_embeds_the_examples_with_the_builtin_model() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        "providers:\n  local: {}\nrouting:\n  semantic: {enabled: true}\n  routes:\n    - {name: a, model: m, examples: [hello there]}\n",
    )
    .unwrap();
    let out = with_assets(bin()).arg("check").arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));

    let out = bin().env("LLM_GATEWAY_EMBED_DIR", dir.path()).arg("check").arg(&config).output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(78), "{text}");
    assert!(text.contains("the builtin embedding model is not installed"), "{text}");
    assert!(text.contains("run ./scripts/setup-embeddings.sh"), "{text}");
    assert!(text.contains("c.yaml:4:"), "the error points at routing.semantic: {text}");

    let out =
        bin().env("LLM_GATEWAY_EMBED_DIR", dir.path()).args(["check", "--no-embed"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn check_rejects_an_invalid_file_with_line_and_column() {
    let path = fixture("invalid/unknown-provider-name.yaml");
    let out = run(&["check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78));
    let text = stdout(&out);
    assert!(text.contains("error: unknown key `openai`"), "{text}");
    assert!(text.contains("unknown-provider-name.yaml:4:3"), "{text}");
    assert!(text.contains("help: did you mean `open_ai`?"), "{text}");
    assert!(text.contains("FAILED (1 error, 0 warnings)"), "the misspelt provider, nothing else: {text}");
}

#[test]
fn check_json_is_machine_readable() {
    let bad = fixture("invalid/weight-zero.yaml");
    let good = fixture("valid/seed003-quick-start.yaml");
    let out = run(&["check", "--format", "json", good.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let files = v["files"].as_array().unwrap();
    assert_eq!(files[0]["ok"], true);
    assert_eq!(files[0]["warnings"], 2, "two unset provider keys");
    let d = &files[1]["diagnostics"][0];
    assert_eq!((d["line"].as_u64(), d["column"].as_u64()), (Some(8), Some(17)));
    assert_eq!(d["severity"], "error");
    assert_eq!(d["path"], "providers.local.endpoints[0].weight");
    assert_eq!(d["message"], "weight 0 is out of range");
}

#[test]
fn check_reads_stdin_and_denies_warnings_on_request() {
    let source = b"providers:\n  open_ai: {}\n";
    let check = |extra: &[&str]| {
        let mut child =
            bin().arg("check").args(extra).arg("-").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(source).unwrap();
        child.wait_with_output().unwrap()
    };
    let lenient = check(&[]);
    assert_eq!(lenient.status.code(), Some(0));
    assert!(stdout(&lenient).contains("<stdin>: ok (0 errors, 1 warning)"));
    let strict = check(&["--deny-warnings"]);
    assert_eq!(strict.status.code(), Some(78));
    assert!(stdout(&strict).contains("has no `api_key`"));
}

#[test]
fn check_exit_codes_for_missing_files_and_usage() {
    assert_eq!(run(&["check", "/nonexistent/config.yaml"]).status.code(), Some(66));
    assert_eq!(run(&["check", "--format", "xml", "x.yaml"]).status.code(), Some(2));
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn secrets_never_appear_in_check_output() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    let secret = "sk-gw-topsecret-0123456789abcdef";
    let yaml = format!(
        "api_keys:\n  enabled: true\n  keys:\n    - name: a\n      key: {secret}\n    - name: b\n      key: {secret}\n"
    );
    std::fs::write(&path, yaml).unwrap();
    let out = run(&["check", "--format", "json", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78));
    let text = stdout(&out);
    assert!(text.contains("same key value as api_keys.keys[0]"), "{text}");
    assert!(!text.contains("topsecret"), "{text}");
}

#[test]
fn genkey_prints_a_key_or_a_yaml_entry() {
    let out = run(&["genkey"]);
    assert_eq!(out.status.code(), Some(0));
    let key = stdout(&out);
    let key = key.trim();
    assert!(key.starts_with("sk-gw-") && key.len() == 70, "{key}");

    let out = run(&["genkey", "--name", "alice", "--models", "gpt-*,claude-*"]);
    let entry = stdout(&out);
    assert!(entry.starts_with("    - name: \"alice\"\n      key: \"sk-gw-"), "{entry}");
    assert!(entry.contains("allowed_models: [\"gpt-*\", \"claude-*\"]"), "{entry}");

    assert_eq!(run(&["genkey", "--name", "a", "--models", "gpt-["]).status.code(), Some(2));
}

#[test]
fn version_and_schema() {
    let v = stdout(&run(&["version"]));
    assert!(v.starts_with(&format!("llm-gateway {}", env!("CARGO_PKG_VERSION"))), "{v}");
    assert!(stdout(&run(&["--version"])).contains(env!("CARGO_PKG_VERSION")));
    let schema = stdout(&run(&["schema"]));
    let committed =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/config.schema.json")).unwrap();
    assert_eq!(schema, committed);
}

/// A file with a NUL byte or bytes that are not UTF-8 is refused with the place, not a
/// generic read error.
#[test]
fn check_refuses_binary_files_saying_where() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("nul.yaml", &b"providers:\n  local: {}\n\0\0junk"[..]),
        ("latin1.yaml", b"providers:\n  local: {}\n# caf\xe9\n"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = run(&["check", path.to_str().unwrap()]);
        let text = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
        assert_ne!(out.status.code(), Some(0), "{text}");
        assert!(text.contains(&format!("{name}:3:")), "points at line 3: {text}");
    }
}

#[test]
fn a_reader_that_goes_away_ends_a_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    // `llm-gateway schema | head -c0`, deterministically: the pipe's reading end is closed
    // before the command writes.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = bin().arg("schema").stdout(writer).stderr(Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(13), "ended by SIGPIPE, as Unix tools are: {:?}", out.status);
}
