//! zrok through the real binary, with a fake controller that enforces the REST contract
//! (X-TOKEN, the zrok media type, client versions, the environment's id, 404s) and records
//! every call, a fixture environment in a temporary home, and the fake Ziti layer (services
//! as Unix sockets): gateway A serves through a share, gateway B reaches A through an access.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::{Gateway, Mock, Process, post_json};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};

const TOKEN: &str = "test-account-token";
const ENV_ZID: &str = "envZ-test";
const PERSISTENT: &str = "persistent1";

#[derive(Default)]
struct State {
    calls: Vec<(String, String, Value)>,
    shares: Vec<String>,
    accesses: Vec<String>,
    next: usize,
}

struct Controller {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Controller {
    async fn start() -> Controller {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State { shares: vec![PERSISTENT.into()], ..Default::default() }));
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| answer(req, state.clone()));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Controller { addr, state }
    }

    /// `METHOD /path` of every authenticated call, in order.
    fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.iter().map(|(m, p, _)| format!("{m} {p}")).collect()
    }

    fn body_of(&self, call: &str) -> Value {
        let state = self.state.lock().unwrap();
        state.calls.iter().rev().find(|(m, p, _)| format!("{m} {p}") == call).unwrap().2.clone()
    }
}

fn reply(status: StatusCode, body: Option<Value>) -> Response<Full<Bytes>> {
    let bytes = body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default();
    Response::builder()
        .status(status)
        .header("content-type", "application/zrok.v1+json")
        .body(Full::new(Bytes::from(bytes)))
        .unwrap()
}

async fn answer(req: Request<Incoming>, state: Arc<Mutex<State>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let path = parts.uri.path().to_owned();
    let (rest, accepted) = match (path.strip_prefix("/api/v2"), path.strip_prefix("/api/v1")) {
        (Some(rest), _) => (rest, "v2.0"),
        (_, Some(rest)) => (rest, "v1.1"),
        _ => return Ok(reply(StatusCode::NOT_FOUND, None)),
    };
    if !body.is_empty() && parts.headers.get("content-type").is_none_or(|c| c != "application/zrok.v1+json") {
        return Ok(reply(StatusCode::UNSUPPORTED_MEDIA_TYPE, None));
    }
    let json: Value = serde_json::from_slice(&body).unwrap_or_default();
    if rest == "/clientVersionCheck" {
        let version = json["clientVersion"].as_str().unwrap_or_default();
        return Ok(match version.starts_with(accepted) {
            true => reply(StatusCode::OK, None),
            false => reply(StatusCode::BAD_REQUEST, Some(json!(format!("client version '{version}' does not match")))),
        });
    }
    if parts.headers.get("x-token").is_none_or(|t| t != TOKEN) {
        return Ok(reply(StatusCode::UNAUTHORIZED, None));
    }
    let mut s = state.lock().unwrap();
    s.calls.push((parts.method.to_string(), rest.to_owned(), json.clone()));
    let own_env = json["envZId"] == ENV_ZID;
    Ok(match (parts.method.as_str(), rest) {
        ("POST", "/share") if own_env => {
            s.next += 1;
            let token = format!("share{}", s.next);
            s.shares.push(token.clone());
            let frontends: Vec<String> =
                if json["shareMode"] == "public" { vec![format!("https://{token}.share.example")] } else { vec![] };
            reply(StatusCode::CREATED, Some(json!({"shareToken": token, "frontendProxyEndpoints": frontends})))
        }
        ("DELETE", "/unshare") if own_env => {
            let token = json["shareToken"].as_str().unwrap_or_default().to_owned();
            match s.shares.iter().position(|t| *t == token) {
                Some(i) => {
                    s.shares.remove(i);
                    reply(StatusCode::OK, None)
                }
                None => reply(StatusCode::NOT_FOUND, None),
            }
        }
        ("POST", "/access") if own_env && s.shares.iter().any(|t| json["shareToken"] == **t) => {
            s.next += 1;
            let frontend = format!("fe{}", s.next);
            s.accesses.push(frontend.clone());
            reply(StatusCode::CREATED, Some(json!({"frontendToken": frontend, "backendMode": "proxy"})))
        }
        ("DELETE", "/unaccess") if own_env => {
            let frontend = json["frontendToken"].as_str().unwrap_or_default().to_owned();
            match s.accesses.iter().position(|f| *f == frontend) {
                Some(i) => {
                    s.accesses.remove(i);
                    reply(StatusCode::OK, None)
                }
                None => reply(StatusCode::NOT_FOUND, None),
            }
        }
        ("GET", p) if p.starts_with("/detail/share/") => {
            let token = &p["/detail/share/".len()..];
            match s.shares.iter().any(|t| t == token) {
                true => {
                    reply(StatusCode::OK, Some(json!({"shareToken": token, "envZId": ENV_ZID, "shareMode": "private"})))
                }
                false => reply(StatusCode::NOT_FOUND, None),
            }
        }
        (_, "/share" | "/unshare" | "/access" | "/unaccess") => reply(StatusCode::UNAUTHORIZED, None),
        _ => reply(StatusCode::NOT_FOUND, None),
    })
}

/// A home with an enabled zrok v2 environment pointing at `controller`, and a fake Ziti
/// directory. Returns the environment variables a gateway needs.
struct Fixture {
    home: tempfile::TempDir,
    ziti: tempfile::TempDir,
}

impl Fixture {
    fn new(controller: &Controller) -> Fixture {
        Self::with_root(controller, ".zrok2")
    }

    /// `.zrok2` for zrok v2, `.zrok` for v1.
    fn with_root(controller: &Controller, dir: &str) -> Fixture {
        let home = tempfile::tempdir().unwrap();
        let root = home.path().join(dir);
        std::fs::create_dir_all(root.join("identities")).unwrap();
        std::fs::write(root.join("metadata.json"), r#"{"v":"v0.4"}"#).unwrap();
        let enabled = json!({"zrok_token": TOKEN, "ziti_identity": ENV_ZID, "api_endpoint": format!("http://{}", controller.addr)});
        std::fs::write(root.join("environment.json"), enabled.to_string()).unwrap();
        let identity = json!({"ztAPI": "https://127.0.0.1:1/edge/client/v1", "id": {"key": "pem:K", "cert": "pem:C", "ca": "pem:A"}});
        std::fs::write(root.join("identities/environment.json"), identity.to_string()).unwrap();
        Fixture { home, ziti: tempfile::tempdir().unwrap() }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("HOME", self.home.path().display().to_string()),
            ("LLM_GATEWAY_ZITI_FAKE_DIR", self.ziti.path().display().to_string()),
        ]
    }
}

fn served(mock: &Mock, zrok: &str) -> String {
    format!("providers:\n  local:\n    base_url: {}\nzrok:\n  share:\n    enabled: true\n{zrok}", mock.url())
}

fn socket_exists(dir: &Path, token: &str) -> bool {
    dir.join(format!("{token}.sock")).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_reaches_another_through_a_zrok_share() {
    let controller = Controller::start().await;
    let fixture = Fixture::new(&controller);
    let mock = Mock::start().await;

    let a = Process::run(&served(&mock, ""), &fixture.env(), &[]);
    assert!(a.wait_for_log("serving via zrok share 'share1'"), "{}", a.logs());
    assert!(!a.logs().contains("listening on"), "no TCP port in zrok mode without `listen`");
    assert!(socket_exists(fixture.ziti.path(), "share1"));
    assert_eq!(controller.body_of("POST /share")["shareMode"], "private");

    let owned = fixture.env();
    let env: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let b = Gateway::start_with_env("providers:\n  local:\n    zrok_share_token: share1\n", &env);
    let r =
        post_json(&b.url("/v1/chat/completions"), r#"{"model":"llama3","messages":[{"role":"user","content":"hi"}]}"#)
            .await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), b.logs());
    assert_eq!(r.json()["choices"][0]["message"]["content"], "Hello! How can I assist you today?");
    let r = post_json(
        &b.url("/v1/chat/completions"),
        r#"{"model":"llama3","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.text().trim_end().ends_with("data: [DONE]"), "{}", r.text());
    let models = common::send("GET", &b.url("/v1/models"), &[], "").await;
    assert!(models.text().contains("gpt-4o"), "the health probe went through the share too: {}", models.text());
    assert!(mock.posts().len() >= 2, "both requests reached A's upstream");
    assert_eq!(controller.body_of("POST /access"), json!({"envZId": ENV_ZID, "shareToken": "share1"}));

    // A reload that drops the endpoint releases its access.
    std::fs::write(b.config_path(), format!("providers:\n  local:\n    base_url: {}\n", mock.url())).unwrap();
    assert!(b.wait_for_log("released zrok access (frontend fe2)"), "{}", b.logs());
    b.signal("TERM");
    let (code, logs) = a.stop();
    assert_eq!(code, Some(0), "{logs}");
    assert!(logs.contains("deleted zrok share 'share1'"), "{logs}");
    assert_eq!(controller.calls(), ["POST /share", "POST /access", "DELETE /unaccess", "DELETE /unshare"]);
    assert!(!logs.contains(TOKEN), "the account token is never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_and_public_shares() {
    let controller = Controller::start().await;
    let fixture = Fixture::new(&controller);
    let mock = Mock::start().await;

    let a = Process::run(&served(&mock, &format!("    token: {PERSISTENT}\n")), &fixture.env(), &[]);
    assert!(a.wait_for_log(&format!("serving via zrok share '{PERSISTENT}'")), "{}", a.logs());
    let (code, logs) = a.stop();
    assert_eq!(code, Some(0), "{logs}");
    assert_eq!(controller.calls(), [format!("GET /detail/share/{PERSISTENT}")], "a persistent share is never deleted");

    let a = Process::run(&served(&mock, "    token: nosuchshare\n"), &fixture.env(), &[]);
    let (code, logs) = a.wait();
    assert_ne!(code, Some(0));
    assert!(logs.contains("the zrok share in `zrok.share.token` does not exist"), "{logs}");

    let a = Process::run(&served(&mock, "    mode: public\n"), &fixture.env(), &[]);
    assert!(a.wait_for_log("serving via zrok share 'share1'"), "{}", a.logs());
    assert!(a.wait_for_log("zrok frontend: https://share1.share.example"), "{}", a.logs());
    assert_eq!(controller.body_of("POST /share")["nameSelections"], json!([{"namespaceToken": "public"}]));
    a.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_have_exact_messages() {
    let controller = Controller::start().await;
    let fixture = Fixture::new(&controller);
    let mock = Mock::start().await;

    let empty = tempfile::tempdir().unwrap();
    let not_enabled = [("HOME", empty.path().display().to_string())];
    let (code, logs) = Process::run(&served(&mock, ""), &not_enabled, &[]).wait();
    assert_eq!(code, Some(78), "{logs}");
    assert!(logs.contains("zrok environment is not enabled; run 'zrok enable' first"), "{logs}");

    // The Ziti layer cannot bind: the ephemeral share is deleted before the gateway exits.
    let mut env = fixture.env();
    env[1].1 = fixture.ziti.path().join("missing").display().to_string();
    let (code, logs) = Process::run(&served(&mock, ""), &env, &[]).wait();
    assert_eq!(code, Some(1), "{logs}");
    assert!(logs.contains("cannot serve through zrok share 'share1': cannot bind service"), "{logs}");
    assert!(logs.contains("deleted zrok share 'share1'"), "{logs}");
    assert_eq!(controller.calls(), ["POST /share", "DELETE /unshare"]);

    // Without the fake and without libziti, zrok fails clearly; nothing else is needed.
    let env =
        [("HOME", fixture.home.path().display().to_string()), ("ZITI_LIB_PATH", "/nonexistent/libziti.so".into())];
    let (code, logs) = Process::run(&served(&mock, ""), &env, &[]).wait();
    assert_eq!(code, Some(78), "{logs}");
    assert!(logs.contains("libziti not available: set ZITI_LIB_PATH"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_share_fails_over_like_a_dead_host() {
    let controller = Controller::start().await;
    let fixture = Fixture::new(&controller);
    let mock = Mock::start().await;
    let owned = fixture.env();
    let env: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let config = format!(
        "providers:\n  local:\n    endpoints:\n      - name: behind-zrok\n        zrok_share_token: nosuchshare\n      - name: direct\n        base_url: {}\n",
        mock.url()
    );
    let b = Gateway::start_with_env(&config, &env);
    for _ in 0..4 {
        let r = post_json(
            &b.url("/v1/chat/completions"),
            r#"{"model":"llama3","messages":[{"role":"user","content":"hi"}]}"#,
        )
        .await;
        assert_eq!(r.status, 200, "{}\n{}", r.text(), b.logs());
    }
    assert!(b.wait_for_log("endpoint 'behind-zrok' is now unhealthy"), "{}", b.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_line_flags_share_and_listen_serves_both() {
    let controller = Controller::start().await;
    let fixture = Fixture::new(&controller);
    let mock = Mock::start().await;
    let config = format!("listen: 127.0.0.1:0\nproviders:\n  local:\n    base_url: {}\n", mock.url());
    let a = Process::run(&config, &fixture.env(), &["--zrok", "--zrok-mode", "public", "--address", "127.0.0.1:0"]);
    assert!(a.wait_for_log("serving via zrok share 'share1'"), "{}", a.logs());
    assert!(a.wait_for_log("listening on 127.0.0.1:"), "`--address` given: TCP too");
    assert_eq!(controller.body_of("POST /share")["shareMode"], "public");
    let (code, logs) = a.stop();
    assert_eq!(code, Some(0), "{logs}");
    assert!(logs.contains("deleted zrok share 'share1'"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_environment_speaks_the_v1_api() {
    let controller = Controller::start().await;
    let fixture = Fixture::with_root(&controller, ".zrok");
    let mock = Mock::start().await;
    let a = Process::run(&served(&mock, "    mode: public\n"), &fixture.env(), &[]);
    assert!(a.wait_for_log("serving via zrok share 'share1'"), "{}", a.logs());
    let share = controller.body_of("POST /share");
    assert_eq!((&share["frontendSelection"], &share["reserved"]), (&json!(["public"]), &json!(false)), "{share}");
    assert!(share.get("nameSelections").is_none(), "{share}");
    let (code, logs) = a.stop();
    assert_eq!(code, Some(0), "{logs}");
    assert_eq!(
        controller.body_of("DELETE /unshare"),
        json!({"envZId": ENV_ZID, "shareToken": "share1", "reserved": false})
    );
}
