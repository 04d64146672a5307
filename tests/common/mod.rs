//! Test support: a mock OpenAI-compatible upstream that serves the recorded fixtures and
//! records what it received, the real gateway binary on port 0, and a small HTTP client.
#![allow(dead_code)]

pub mod redis;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

type MockBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

pub fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/upstream").join(rel)).unwrap()
}

/// The Chat stream fixture as a client that did not ask for `stream_options.include_usage`
/// receives it: without the usage chunk.
pub fn chat_stream_without_usage() -> Vec<u8> {
    let text = String::from_utf8(fixture("openai/chat-stream.sse")).unwrap();
    text.split_inclusive("\n\n").filter(|e| !e.contains("\"choices\":[]")).collect::<String>().into_bytes()
}

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A mock upstream on 127.0.0.1:0. Behaviour is chosen by the request's model:
/// `slow` answers after 3 s, `error-401` answers with OpenAI's 401, `break` streams two
/// events and then drops the connection, `slow-stream` spaces its events 300 ms apart,
/// `rate-limited` answers OpenAI's 429 (`retry-after: 30`), `overloaded` 503, `flaky` 503
/// (`retry-after-ms: 50`) to its first request and the fixture after.
pub struct Mock {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

/// How a mock answers POSTs (GET /v1/models always works, so health probes pass).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// The fixtures, by model (see [`Mock`]).
    Normal,
    /// Accepts the request, then drops the connection without a response.
    Close,
    /// Never answers (10 s).
    Stall,
    /// Answers 500.
    Fail,
    /// An Ollama: no /v1/models (404), models listed at /api/tags.
    Ollama,
}

impl Mock {
    pub async fn start() -> Mock {
        Self::start_with(Behaviour::Normal).await
    }

    pub async fn start_with(behaviour: Behaviour) -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let record = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let record = record.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| answer(req, record.clone(), behaviour));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Mock { addr, seen }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The forwarded requests, without the gateway's health probes.
    pub fn posts(&self) -> Vec<Seen> {
        self.requests().into_iter().filter(|r| r.method == "POST").collect()
    }
}

fn full(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<MockBody> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-request-id", "req_mock_123")
        // The upstream account's own limit, as OpenAI reports it on every answer.
        .header("x-ratelimit-limit-requests", "10000")
        .body(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed())
        .unwrap()
}

/// The SSE fixture as a stream of one frame per event, `gap` apart, optionally failing after
/// `fail_after` events; its usage chunk only when the request asked for it, as OpenAI does.
fn sse(gap: Duration, fail_after: Option<usize>, usage: bool) -> Response<MockBody> {
    let text = String::from_utf8(fixture("openai/chat-stream.sse")).unwrap();
    let events = text.split_inclusive("\n\n").filter(|e| usage || !e.contains("\"choices\":[]")).map(str::to_owned);
    sse_events(events.collect(), gap, fail_after)
}

fn sse_file(file: &str, gap: Duration, fail_after: Option<usize>) -> Response<MockBody> {
    let text = String::from_utf8(fixture(file)).unwrap();
    sse_events(text.split_inclusive("\n\n").map(str::to_owned).collect(), gap, fail_after)
}

fn sse_events(events: Vec<String>, gap: Duration, fail_after: Option<usize>) -> Response<MockBody> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(16);
    tokio::spawn(async move {
        for (i, e) in events.into_iter().enumerate() {
            if fail_after == Some(i) {
                let _ = tx.send(Err(std::io::Error::other("upstream crashed"))).await;
                return;
            }
            if tx.send(Ok(Frame::data(Bytes::from(e)))).await.is_err() {
                return;
            }
            tokio::time::sleep(gap).await;
        }
    });
    let stream = tokio_stream_from(rx);
    Response::builder()
        .header("content-type", "text/event-stream; charset=utf-8")
        .header("x-request-id", "req_mock_sse")
        .body(StreamBody::new(stream).boxed())
        .unwrap()
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn answer(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
    behaviour: Behaviour,
) -> Result<Response<MockBody>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let model = json["model"].as_str().unwrap_or_default().to_owned();
    let stream = json["stream"] == true;
    let usage = json["stream_options"]["include_usage"] == true;
    let ok = |file: &str| full(StatusCode::OK, "application/json", fixture(file));
    if parts.method == "POST" {
        match behaviour {
            Behaviour::Close => return Err(std::io::Error::other("closing without a response")),
            Behaviour::Stall => tokio::time::sleep(Duration::from_secs(10)).await,
            Behaviour::Fail => {
                return Ok(full(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "application/json",
                    br#"{"error":{"message":"boom","type":"server_error"}}"#.to_vec(),
                ));
            }
            Behaviour::Normal | Behaviour::Ollama => {}
        }
    }
    Ok(match (parts.method.as_str(), parts.uri.path()) {
        ("GET", "/v1/models") if behaviour == Behaviour::Ollama => {
            full(StatusCode::NOT_FOUND, "text/plain", b"404 page not found".to_vec())
        }
        ("GET", "/api/tags") if behaviour == Behaviour::Ollama => ok("ollama/tags.json"),
        ("GET", "/v1/models") => ok("openai/models.json"),
        ("POST", "/v1/messages/count_tokens") => {
            full(StatusCode::OK, "application/json", br#"{"input_tokens":10}"#.to_vec())
        }
        ("POST", "/v1/messages") => {
            let anthropic_error = |status: u16, file: &str| {
                full(StatusCode::from_u16(status).unwrap(), "application/json", fixture(file))
            };
            match (model.as_str(), stream) {
                ("claude-overloaded", _) => anthropic_error(529, "anthropic/error-overloaded.json"),
                ("claude-rate-limited", _) => anthropic_error(429, "anthropic/error-rate-limit.json"),
                ("claude-tools", true) => sse_file("anthropic/stream-tools.sse", Duration::from_millis(2), None),
                ("claude-tools", false) => ok("anthropic/message-tools.json"),
                ("claude-error-stream", _) => sse_file("anthropic/stream-error.sse", Duration::from_millis(2), None),
                // A server that ignores `stream` and answers whole.
                ("claude-deaf", _) => ok("anthropic/message-tools.json"),
                ("claude-not-json", _) => full(StatusCode::OK, "application/json", b"<html>oops</html>".to_vec()),
                ("claude-broken-body", false) => sse_file("anthropic/message.json", Duration::ZERO, Some(0)),
                (_, true) => sse_file("anthropic/stream-text.sse", Duration::from_millis(2), None),
                (_, false) => ok("anthropic/message.json"),
            }
        }
        ("POST", "/v1/embeddings") if behaviour == Behaviour::Ollama => {
            full(StatusCode::NOT_FOUND, "text/plain", b"404 page not found".to_vec())
        }
        ("POST", "/api/embed") if behaviour == Behaviour::Ollama => {
            let vectors: Vec<_> = inputs(&json).iter().map(|t| topic_vector(t)).collect();
            full(
                StatusCode::OK,
                "application/json",
                serde_json::to_vec(&serde_json::json!({"model": model, "embeddings": vectors})).unwrap(),
            )
        }
        ("POST", "/v1/embeddings") if json["input"].is_array() => {
            // The fixture's shape, one entry per input, listed in reverse to check that the
            // gateway places vectors by `index`.
            let mut answer: serde_json::Value = serde_json::from_slice(&fixture("openai/embeddings.json")).unwrap();
            let data: Vec<_> = inputs(&json)
                .iter()
                .enumerate()
                .rev()
                .map(|(i, t)| serde_json::json!({"object": "embedding", "index": i, "embedding": topic_vector(t)}))
                .collect();
            answer["data"] = data.into();
            full(StatusCode::OK, "application/json", serde_json::to_vec(&answer).unwrap())
        }
        ("POST", "/v1/embeddings") => ok("openai/embeddings.json"),
        ("POST", "/v1/completions") => ok("openai/completions.json"),
        ("POST", "/v1/chat/completions") => match model.as_str() {
            "error-401" => full(StatusCode::UNAUTHORIZED, "application/json", fixture("openai/error-401.json")),
            // OpenAI's 429, asking for a pause longer than any retry cap.
            "rate-limited" => {
                let mut r = full(StatusCode::TOO_MANY_REQUESTS, "application/json", fixture("openai/error-429.json"));
                r.headers_mut().insert("retry-after", http::HeaderValue::from_static("30"));
                r
            }
            "overloaded" => full(
                StatusCode::SERVICE_UNAVAILABLE,
                "application/json",
                br#"{"error":{"message":"The server is overloaded","type":"server_error"}}"#.to_vec(),
            ),
            // An error body far larger than any real one.
            "huge-error" => full(
                StatusCode::INTERNAL_SERVER_ERROR,
                "application/json",
                format!(r#"{{"error":{{"message":"{}","type":"server_error"}}}}"#, "x".repeat(200_000)).into_bytes(),
            ),
            // A proxy's error page in front of the server.
            "html-503" => full(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/html",
                b"<html><body>503 Service Unavailable</body></html>".to_vec(),
            ),
            // 503 with a short `retry-after-ms` on its first request, then the fixture.
            "flaky"
                if seen.lock().unwrap().iter().filter(|s| s.body.windows(7).any(|w| w == b"\"flaky\"")).count()
                    == 1 =>
            {
                let mut r = full(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "application/json",
                    br#"{"error":{"message":"warming up","type":"server_error"}}"#.to_vec(),
                );
                r.headers_mut().insert("retry-after-ms", http::HeaderValue::from_static("50"));
                r
            }
            // A proxy in front of the server sending it elsewhere.
            "redirected" => {
                let mut r = full(StatusCode::TEMPORARY_REDIRECT, "text/plain", Vec::new());
                let to = http::HeaderValue::from_static("https://10.9.8.7:8443/v1/chat/completions");
                r.headers_mut().insert("location", to);
                r
            }
            // Compressed though the gateway asked for none (the bytes are gzip's header).
            "gzipped" => {
                let kind = if stream { "text/event-stream" } else { "application/json" };
                let mut r = full(StatusCode::OK, kind, b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03".to_vec());
                r.headers_mut().insert("content-encoding", http::HeaderValue::from_static("gzip"));
                r
            }
            // A server that ignores `stream` and answers whole.
            "deaf" => ok("openai/chat.json"),
            // The same with an answer too large to replay as events.
            "deaf-huge" => {
                let mut answer: serde_json::Value = serde_json::from_slice(&fixture("openai/chat.json")).unwrap();
                answer["choices"][0]["message"]["content"] = "x".repeat(1_100_000).into();
                full(StatusCode::OK, "application/json", serde_json::to_vec(&answer).unwrap())
            }
            // Whole JSON that is no completion, to a streaming request.
            "deaf-other" => full(StatusCode::OK, "application/json", br#"{"ok":true}"#.to_vec()),
            // The answer whole, in two pieces with no length declared.
            "deaf-chunked" | "deaf-cut" => {
                let text = String::from_utf8(fixture("openai/chat.json")).unwrap();
                let (a, b) = text.split_at(text.len() / 2);
                let cut = model == "deaf-cut";
                let mut r = sse_events(vec![a.to_owned(), b.to_owned()], Duration::from_millis(5), cut.then_some(1));
                r.headers_mut().insert("content-type", http::HeaderValue::from_static("application/json"));
                if cut {
                    // Half its declared length, then the connection breaks.
                    r.headers_mut().insert("content-length", text.len().into());
                }
                r
            }
            "classifier" => ok("openai/chat-classifier.json"),
            "llamacpp" => ok("llamacpp/chat.json"),
            "slow" | "gpt-slow" => {
                tokio::time::sleep(Duration::from_secs(3)).await;
                ok("openai/chat.json")
            }
            "break" => sse(Duration::from_millis(10), Some(2), usage),
            "slow-stream" => sse(Duration::from_millis(300), None, usage),
            "medium-stream" => sse(Duration::from_millis(60), None, usage),
            _ if stream => sse(Duration::from_millis(5), None, usage),
            _ => ok("openai/chat.json"),
        },
        // The rest of the surface: 503 when the body names `overloaded`, audio for speech,
        // else a small JSON answer (the tests read what the mock saw).
        (_, p)
            if p.starts_with("/v1/audio/")
                || p.starts_with("/v1/images/")
                || p.starts_with("/v1/files")
                || p == "/v1/rerank"
                || p == "/v1/moderations" =>
        {
            if body.windows(10).any(|w| w == b"overloaded") {
                full(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "application/json",
                    br#"{"error":{"message":"busy","type":"server_error"}}"#.to_vec(),
                )
            } else if p == "/v1/audio/speech" {
                full(StatusCode::OK, "audio/mpeg", b"ID3\x04\x00fake mp3 \xff\xfb".to_vec())
            } else {
                full(StatusCode::OK, "application/json", format!(r#"{{"object":"ok","path":"{p}"}}"#).into_bytes())
            }
        }
        _ => full(StatusCode::NOT_FOUND, "application/json", br#"{"error":"not found"}"#.to_vec()),
    })
}

fn inputs(json: &serde_json::Value) -> Vec<String> {
    json["input"].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(str::to_owned)).collect()
}

/// A stand-in embedding model: one dimension per topic word found in the text (code, poem,
/// weather), so tests can tell which route a prompt is near.
pub fn topic_vector(text: &str) -> Vec<f32> {
    ["code", "poem", "weather"].iter().map(|w| if text.contains(w) { 1.0 } else { 0.05 }).collect()
}

/// A gateway process (`llm-gateway run`) whose log (stderr) is collected as it runs.
pub struct Process {
    pub child: Child,
    log: Arc<Mutex<String>>,
    /// Addresses from `listening on …` lines, as they appear.
    listening: std::sync::mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Process {
    /// Runs the gateway on `config` (written to a temporary directory) with `args`.
    pub fn run<K: AsRef<std::ffi::OsStr>, V: AsRef<std::ffi::OsStr>>(
        config: &str,
        env: &[(K, V)],
        args: &[&str],
    ) -> Process {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, config).unwrap();
        Self::spawn(dir, &path, env, args)
    }

    fn spawn<K: AsRef<std::ffi::OsStr>, V: AsRef<std::ffi::OsStr>>(
        dir: tempfile::TempDir,
        path: &Path,
        env: &[(K, V)],
        args: &[&str],
    ) -> Process {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_llm-gateway"));
        cmd.arg("run").arg(path).args(args);
        cmd.env("RUST_LOG", "info").env_remove("LLM_GATEWAY_CONFIG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log: Arc<Mutex<String>> = Arc::default();
        let (tx, listening) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Stored first: a test told the address may read the log at once.
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
                if let Some(addr) = line.split("listening on ").nth(1) {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        Process { child, log, listening, _dir: dir }
    }

    pub fn config_path(&self) -> std::path::PathBuf {
        self._dir.path().join("config.yaml")
    }

    pub fn logs(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (up to a deadline) until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str) -> bool {
        self.wait_for_logged(needle, 1)
    }

    /// Waits (up to a deadline) until the log contains `needle` at least `times` times. Lines
    /// reach stderr up to the log writer's flush interval after what they report, so a check
    /// of the log after some other sign (a metric, an answer) must wait for it.
    pub fn wait_for_logged(&self, needle: &str, times: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.logs().matches(needle).count() >= times {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status();
    }

    /// SIGTERM, then the exit status and the whole log.
    pub fn stop(self) -> (Option<i32>, String) {
        self.signal("TERM");
        self.wait()
    }

    /// Waits for the process to exit by itself: its status and the whole log.
    pub fn wait(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().unwrap();
        // The reader thread may still be appending the last lines.
        std::thread::sleep(Duration::from_millis(100));
        (status.code(), self.logs())
    }
}

impl Drop for Process {
    /// A failed assertion must not leave the gateway running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real binary serving `config` on 127.0.0.1:0.
pub struct Gateway {
    pub process: Process,
    pub addr: SocketAddr,
}

impl Gateway {
    pub fn start(config: &str) -> Gateway {
        Self::start_with_env(config, &[])
    }

    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Gateway {
        Self::listening(Process::run(config, env, &["--address", "127.0.0.1:0"]))
    }

    /// Runs on a config file the caller prepared inside `dir` (kept alive with the gateway).
    pub fn start_at(dir: tempfile::TempDir, path: &Path, args: &[&str]) -> Gateway {
        let args: Vec<&str> = ["--address", "127.0.0.1:0"].iter().chain(args).copied().collect();
        Self::listening(Process::spawn(dir, path, &[] as &[(&str, &str)], &args))
    }

    fn listening(process: Process) -> Gateway {
        let addr = process
            .listening
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("gateway did not start:\n{}", process.logs()));
        Gateway { addr: addr.parse().unwrap(), process }
    }

    pub fn config_path(&self) -> std::path::PathBuf {
        self.process.config_path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn logs(&self) -> String {
        self.process.logs()
    }

    pub fn wait_for_log(&self, needle: &str) -> bool {
        self.process.wait_for_log(needle)
    }

    pub fn wait_for_logged(&self, needle: &str, times: usize) -> bool {
        self.process.wait_for_logged(needle, times)
    }

    pub fn signal(&self, sig: &str) {
        self.process.signal(sig)
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Reply {
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client.request(req.body(Full::new(body.into())).unwrap()).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    Reply { status, headers, body }
}

pub async fn post_json(url: &str, body: &str) -> Reply {
    send("POST", url, &[("content-type", "application/json")], body.to_owned()).await
}

/// The sum of every sample on the gateway's `/metrics` whose line starts with `prefix`
/// (a metric name with the opening of its labels, e.g. `llm_gateway_requests_total{`).
pub async fn metric_sum(gw: &Gateway, prefix: &str) -> f64 {
    let text = send("GET", &gw.url("/metrics"), &[], "").await.text();
    text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}
