//! What an operator meets running the real binary: a backend that starts after the gateway,
//! zrok with the sample config's `listen`, JSON logs from the first line, the keys command on
//! a missing or readable file, what a restricted key sees and gets from `auto`, and traced
//! prompts that try to forge log lines.

mod common;

use std::convert::Infallible;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Gateway, Mock, Process, fixture, post_json, send};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_llm-gateway"));
    cmd.env_remove("LLM_GATEWAY_CONFIG").env("RUST_LOG", "info");
    cmd
}

/// Serves `GET /v1/models` (the fixture) on `addr`.
async fn serve_models(listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { return };
        tokio::spawn(async move {
            let service = service_fn(|_req: Request<Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(fixture("openai/models.json")))))
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_starts_a_second_after_the_gateway_is_listed_within_seconds() {
    // A port nobody listens on yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = format!("providers:\n  local:\n    base_url: http://127.0.0.1:{port}\n");
    let gw = Gateway::start(&config);
    // The first probe failed, in plain words (no client `Debug` text).
    assert!(gw.wait_for_log("is now unhealthy: could not connect: connection refused"), "{}", gw.logs());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let backend = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let started = Instant::now();
    tokio::spawn(serve_models(backend));
    // Warm-up re-probes come 1, 3 and 7 s after the first probe (the interval is 30 s): the
    // second is about 2 s after the backend started, and 8 s leave room for the third on a busy
    // machine (a full test run on two CPUs once made the second miss, and 4 s failed).
    let mut listed = false;
    while started.elapsed() < Duration::from_secs(8) && !listed {
        listed = send("GET", &gw.url("/v1/models"), &[], "").await.text().contains("gpt-4o");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(listed, "not listed {:?} after the backend started:\n{}", started.elapsed(), gw.logs());
    assert!(!gw.logs().contains("hyper_util::"), "{}", gw.logs());
}

/// A minimal zrok v2 controller (version check, share, unshare) and an enabled environment
/// in a temporary home, with the fake Ziti layer (services as Unix sockets).
struct Zrok {
    home: tempfile::TempDir,
    ziti: tempfile::TempDir,
}

impl Zrok {
    async fn start() -> Zrok {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                tokio::spawn(async move {
                    let service = service_fn(|req: Request<Incoming>| async move {
                        let path = req.uri().path().to_owned();
                        let _ = req.into_body().collect().await;
                        let (status, body) = match path.as_str() {
                            "/api/v2/share" => (
                                StatusCode::CREATED,
                                json!({"shareToken": "share1", "frontendProxyEndpoints": []}).to_string(),
                            ),
                            _ => (StatusCode::OK, String::new()),
                        };
                        let resp = Response::builder()
                            .status(status)
                            .header("content-type", "application/zrok.v1+json")
                            .body(Full::new(Bytes::from(body)))
                            .unwrap();
                        Ok::<_, Infallible>(resp)
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let home = tempfile::tempdir().unwrap();
        let root = home.path().join(".zrok2");
        std::fs::create_dir_all(root.join("identities")).unwrap();
        std::fs::write(root.join("metadata.json"), r#"{"v":"v0.4"}"#).unwrap();
        let enabled = json!({"zrok_token": "t", "ziti_identity": "envZ", "api_endpoint": format!("http://{addr}")});
        std::fs::write(root.join("environment.json"), enabled.to_string()).unwrap();
        let identity = json!({"ztAPI": "https://127.0.0.1:1/edge/client/v1", "id": {"key": "pem:K", "cert": "pem:C", "ca": "pem:A"}});
        std::fs::write(root.join("identities/environment.json"), identity.to_string()).unwrap();
        Zrok { home, ziti: tempfile::tempdir().unwrap() }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("HOME", self.home.path().display().to_string()),
            ("LLM_GATEWAY_ZITI_FAKE_DIR", self.ziti.path().display().to_string()),
        ]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zrok_with_the_configs_listen_opens_no_port_unless_address_asks() {
    let zrok = Zrok::start().await;
    let mock = Mock::start().await;
    // The Go gateway's config says `listen: ":8080"`; a free port stands in for it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = format!("listen: \"127.0.0.1:{port}\"\nproviders:\n  local:\n    base_url: {}\n", mock.url());
    let a = Process::run(&config, &zrok.env(), &["--zrok"]);
    assert!(a.wait_for_log("serving via zrok share 'share1'"), "{}", a.logs());
    assert!(a.wait_for_log("opens no TCP port; pass --address to serve on TCP as well"), "{}", a.logs());
    assert!(!a.logs().contains("listening on"), "{}", a.logs());
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err(), "nothing listens on `listen`");
    let (code, _) = a.stop();
    assert_eq!(code, Some(0));

    // `--address` is the explicit opt-in: both.
    let b = Process::run(&config, &zrok.env(), &["--zrok", "--address", "127.0.0.1:0"]);
    assert!(b.wait_for_log("serving via zrok share"), "{}", b.logs());
    assert!(b.wait_for_log("listening on 127.0.0.1:"), "{}", b.logs());
    assert!(!b.logs().contains("opens no TCP port"), "{}", b.logs());
}

/// Every stderr line parses as a JSON object.
fn all_json(logs: &str) {
    assert!(!logs.trim().is_empty());
    for line in logs.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n---\n{logs}"));
        assert!(v.is_object() && v["level"].is_string(), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_json_logs_every_line_is_json_from_the_first() {
    let mock = Mock::start().await;
    // Errors: the diagnostics are one event with the rendered text as a field.
    let broken = format!("providers:\n  local:\n    base_url: {}\n    wieght: 2\n", mock.url());
    let (code, logs) = Process::run(&broken, &[] as &[(&str, &str)], &["--log-format", "json"]).wait();
    assert_eq!(code, Some(78), "{logs}");
    all_json(&logs);
    assert!(logs.contains("wieght"), "the diagnostic is there: {logs}");

    // Warnings, then serving, then a clean stop.
    let warned = format!(
        "providers:\n  local:\n    base_url: {}\nrouting:\n  routes:\n    - {{name: a, model: llama3}}\n    - {{name: b, model: qwen}}\n",
        mock.url()
    );
    let p = Process::run(&warned, &[] as &[(&str, &str)], &["--log-format", "json", "--address", "127.0.0.1:0"]);
    assert!(p.wait_for_log("listening on"), "{}", p.logs());
    let (code, logs) = p.stop();
    assert_eq!(code, Some(0));
    all_json(&logs);
    assert!(logs.contains("\"diagnostics\""), "warnings are an event too: {logs}");

    // A file that cannot be read, and a command line that does not parse.
    let out = bin().args(["run", "/nonexistent/config.yaml", "--log-format", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(66));
    all_json(&String::from_utf8_lossy(&out.stderr));
    let out = bin().args(["run", "--log-format", "json", "--no-such-flag"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    all_json(&String::from_utf8_lossy(&out.stderr));
}

#[test]
fn keys_on_a_missing_file_fail_and_readable_secret_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("keys.yaml");
    let out = bin().args(["keys", "--file"]).arg(&missing).arg("list").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(66), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(!missing.exists());

    // Plaintext keys readable by everyone: `keys`, `check` and `run` say so.
    let keys = "keys:\n  - name: alice\n    key: sk-gw-alice-0123456789abcdef\n";
    std::fs::write(&missing, keys).unwrap();
    std::fs::set_permissions(&missing, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = bin().args(["keys", "--file"]).arg(&missing).arg("list").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr.contains(&format!("chmod 600 {}", missing.display())), "{stderr}");
    assert!(stderr.contains("mode 0644"), "{stderr}");

    let config = dir.path().join("config.yaml");
    let text =
        "providers:\n  open_ai:\n    api_key: sk-proj-plaintext\napi_keys:\n  enabled: true\n  keys_file: keys.yaml\n";
    std::fs::write(&config, text).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = bin().args(["check", "--no-embed"]).arg(&config).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&format!("chmod 600 {}", config.display())), "{stderr}");
    assert!(stderr.contains(&format!("chmod 600 {}", missing.display())), "{stderr}");

    // At 0600 nothing is said.
    for f in [&config, &missing] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let out = bin().args(["check", "--no-embed"]).arg(&config).output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("chmod"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_warns_about_a_readable_config_with_keys_and_never_logs_them() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let config = format!(
        "providers:\n  local:\n    base_url: {}\napi_keys:\n  enabled: true\n  keys:\n    - name: alice\n      key: sk-gw-alice-secret-0123456789\n",
        mock.url()
    );
    std::fs::write(&path, &config).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let gw = Gateway::start_at(dir, &path, &[]);
    assert!(gw.wait_for_log("chmod 600"), "{}", gw.logs());
    // A reload with a new key value.
    std::fs::write(&path, config.replace("alice-secret", "alice-rotated")).unwrap();
    assert!(gw.wait_for_log("config reloaded"), "{}", gw.logs());
    let logs = gw.logs();
    assert!(!logs.contains("alice-secret") && !logs.contains("alice-rotated"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restricted_key_sees_and_gets_only_its_routes() {
    let mock = Mock::start().await;
    let config = format!(
        "providers:\n  local:\n    base_url: {}\napi_keys:\n  enabled: true\n  keys:\n    - {{name: cheap, key: sk-gw-cheap-0123456789abcdef, allowed_routes: [small]}}\n    - {{name: gpt, key: sk-gw-gpt-0123456789abcdef, allowed_models: [\"gpt-*\"]}}\nrouting:\n  default_route: big\n  routes:\n    - {{name: big, model: qwen}}\n    - {{name: small, model: llama3}}\n",
        mock.url()
    );
    let gw = Gateway::start(&config);
    let ids = |key: &'static str| {
        let url = gw.url("/v1/models");
        async move {
            let auth = format!("Bearer {key}");
            let r = send("GET", &url, &[("authorization", auth.as_str())], "").await;
            let v = r.json();
            v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
        }
    };
    let cheap = ids("sk-gw-cheap-0123456789abcdef").await;
    assert!(cheap.contains(&"small".into()) && cheap.contains(&"auto".into()), "{cheap:?}");
    assert!(!cheap.contains(&"big".into()), "{cheap:?}");
    let gpt = ids("sk-gw-gpt-0123456789abcdef").await;
    assert!(!gpt.iter().any(|m| m == "auto" || m == "big" || m == "small"), "no usable route, no auto: {gpt:?}");

    // `auto` for the restricted key: the cascade's default (`big`) is not its to use, so the
    // route it may use is chosen instead of a 403.
    let chat = |key: &'static str| {
        let url = gw.url("/v1/chat/completions");
        async move {
            let auth = format!("Bearer {key}");
            let body = r#"{"model":"auto","messages":[{"role":"user","content":"hi"}]}"#;
            send("POST", &url, &[("authorization", auth.as_str()), ("content-type", "application/json")], body).await
        }
    };
    let r = chat("sk-gw-cheap-0123456789abcdef").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent: Value = serde_json::from_slice(&mock.posts().last().unwrap().body).unwrap();
    assert_eq!(sent["model"], "llama3");
    let r = chat("sk-gw-gpt-0123456789abcdef").await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "route_not_allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traced_content_cannot_forge_log_lines() {
    let mock = Mock::start().await;
    let config = format!("providers:\n  local:\n    base_url: {}\ntracing:\n  enabled: true\n", mock.url());
    let gw = Gateway::start(&config);
    let forged = "hi\r\n2030-01-01T00:00:00.000000Z  INFO llm_gateway: FORGED admin login\u{2028}x";
    let body = json!({"model": "llama3\nFORGED-MODEL", "messages": [{"role": "user\rFORGED-ROLE", "content": forged}]});
    let r = post_json(&gw.url("/v1/chat/completions"), &body.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(gw.wait_for_log("trace:   [0]"), "{}", gw.logs());
    let logs = gw.logs();
    // Every line is one the gateway wrote: its own timestamp and target; the forged ones
    // stay inside the trace lines, escaped.
    for line in logs.lines() {
        assert!(line.contains(" llm_gateway::") && !line.starts_with("2030-"), "a forged line: {line:?}\n{logs}");
    }
    assert!(logs.contains(r"content='hi\r\n2030-01-01"), "{logs}");
}
