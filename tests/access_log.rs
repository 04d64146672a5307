//! The access log leaves the request's path: lines are written by a writer thread in batches.
//! Nothing may be lost at shutdown, torn, or allowed to stall traffic when stderr is blocked;
//! what cannot be written is dropped and counted.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use bytes::Bytes;
use common::Mock;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

const CHAT: &str = r#"{"model":"llama3","messages":[{"role":"user","content":"hi"}]}"#;

/// A gateway whose stderr the test reads only when it chooses to.
struct Held {
    child: Child,
    addr: SocketAddr,
    stderr: Option<BufReader<std::process::ChildStderr>>,
    _dir: tempfile::TempDir,
}

impl Drop for Held {
    /// A failed assertion must not leave the gateway running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Held {
    fn start(upstream: &str, args: &[&str]) -> Held {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, format!("providers:\n  local:\n    base_url: {upstream}\nmetrics:\n  enabled: true\n"))
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_llm-gateway"))
            .arg("run")
            .arg(&path)
            .args(["--address", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let addr = loop {
            line.clear();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "gateway exited before listening");
            if let Some(addr) = line.split("listening on ").nth(1) {
                break addr.split('"').next().unwrap().trim().parse().unwrap();
            }
        };
        Held { child, addr, stderr: Some(stderr), _dir: dir }
    }

    fn terminate(&self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
    }
}

/// `requests` chat requests over `connections` keep-alive connections, all answered 200.
async fn load(addr: SocketAddr, connections: usize, requests: usize) {
    let mut tasks = Vec::new();
    for _ in 0..connections {
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
            tokio::spawn(conn);
            for _ in 0..requests / connections {
                sender.ready().await.unwrap();
                let req = Request::post("/v1/chat/completions")
                    .header("host", addr.to_string())
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from_static(CHAT.as_bytes())))
                    .unwrap();
                let resp = sender.send_request(req).await.unwrap();
                assert_eq!(resp.status(), 200);
                resp.into_body().collect().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn dropped(addr: SocketAddr) -> f64 {
    let text = common::send("GET", &format!("http://{addr}/metrics"), &[], "").await.text();
    let line = text.lines().find(|l| l.starts_with("llm_gateway_log_lines_dropped_total ")).expect("the counter");
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_queued_at_sigterm_are_written_and_none_is_torn() {
    let mock = Mock::start().await;
    let mut gw = Held::start(&mock.url(), &["--log-format", "json"]);
    let (tx, rx) = std::sync::mpsc::channel();
    // A collector reading stderr as it comes, as journald or a container runtime would.
    let stderr = gw.stderr.take().unwrap();
    let collector = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in stderr.lines() {
            lines.push(line.unwrap());
        }
        tx.send(lines).unwrap();
    });
    load(gw.addr, 4, 2_000).await;
    gw.terminate();
    let lines = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("the gateway exits");
    collector.join().unwrap();
    let mut requests = 0;
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("torn line {line:?}: {e}"));
        if value["message"] == "request" {
            assert_eq!((value["status"].as_u64(), value["path"].as_str()), (Some(200), Some("/v1/chat/completions")));
            assert!(value["duration_ms"].is_u64() && value["prompt_tokens"].is_u64(), "{line}");
            requests += 1;
        }
    }
    assert_eq!(requests, 2_000, "every request's line, the last ones written at exit");
    assert!(gw.child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_stderr_never_stalls_traffic_and_drops_are_counted() {
    let mock = Mock::start().await;
    // Nobody reads stderr: the pipe fills (1 MiB, about 4,000 lines), then the writer blocks on
    // it, holding the batch it took. One serving thread: one queue of 16,384 lines to overflow.
    let mut gw = Held::start(&mock.url(), &["--worker-threads", "1"]);
    let requests = 40_000;
    let started = std::time::Instant::now();
    load(gw.addr, 8, requests).await;
    let dropped_while_blocked = dropped(gw.addr).await;
    assert!(dropped_while_blocked > 0.0, "the queue is bounded: lines past it are dropped");
    eprintln!("{requests} requests in {:?} with stderr blocked", started.elapsed());
    // Reading again drains what was queued; then nothing more is dropped.
    let (tx, rx) = std::sync::mpsc::channel();
    let mut stderr = gw.stderr.take().unwrap();
    std::thread::spawn(move || {
        let mut rest = String::new();
        stderr.read_to_string(&mut rest).unwrap();
        tx.send(rest).unwrap();
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let dropped_at_end = dropped(gw.addr).await;
    gw.terminate();
    let rest = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("the gateway exits");
    let written = rest.lines().filter(|l| l.contains(" request request_id=")).count();
    assert!(rest.lines().all(|l| l.starts_with("20") || l.is_empty()), "whole lines only");
    // Every request's line was either written or counted as dropped (the two scrapes too).
    assert_eq!(written as f64 + dropped_at_end, (requests + 2) as f64);
    assert!(gw.child.wait().unwrap().success());
}

/// A log collector reading stderr through a pipe gets a batch in one `write`: the pipe is
/// grown from the kernel's 64 KiB to 1 MiB (the most an unprivileged process may ask for by
/// default), so a batch no longer makes writer and reader take turns on a CPU.
#[tokio::test]
async fn a_stderr_pipe_is_grown_to_hold_a_batch() {
    let mock = Mock::start().await;
    let gw = Held::start(&mock.url(), &[]);
    let max: usize = std::fs::read_to_string("/proc/sys/fs/pipe-max-size").unwrap().trim().parse().unwrap();
    let size = rustix::pipe::fcntl_getpipe_size(gw.stderr.as_ref().unwrap().get_ref()).unwrap();
    // The first line (`listening on`) was written by the writer thread, which grows the pipe
    // before its first write.
    assert_eq!(size, if max >= 1 << 20 { 1 << 20 } else { 64 << 10 });
}

/// Two serving threads each queue their own lines; the writer merges them by time, so the
/// lines come out in the order of their timestamps, not one thread's batch after the other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_of_different_serving_threads_are_written_in_time_order() {
    let mock = Mock::start().await;
    let mut gw = Held::start(&mock.url(), &["--log-format", "json", "--worker-threads", "2"]);
    let stderr = gw.stderr.take().unwrap();
    let collector = std::thread::spawn(move || stderr.lines().map(Result::unwrap).collect::<Vec<_>>());
    load(gw.addr, 8, 2_000).await;
    gw.terminate();
    let lines = collector.join().unwrap();
    let stamps: Vec<String> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "request")
        .map(|v| v["timestamp"].as_str().expect("a timestamp").to_owned())
        .collect();
    assert_eq!(stamps.len(), 2_000);
    let behind = stamps.windows(2).filter(|w| w[1] < w[0]).count();
    assert_eq!(behind, 0, "request lines written before an earlier one: {behind}");
}

/// `bytes` is what the client was sent: for an answer the gateway wrote itself (an error, a
/// translated answer) too, not the upstream's length or nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_are_what_the_client_received() {
    let mock = Mock::start().await;
    let mut gw = Held::start(&mock.url(), &["--log-format", "json"]);
    let stderr = gw.stderr.take().unwrap();
    let collector = std::thread::spawn(move || stderr.lines().map(Result::unwrap).collect::<Vec<_>>());
    let url = |path: &str| format!("http://{}{path}", gw.addr);
    let json = [("content-type", "application/json")];
    let refused = common::send("POST", &url("/v1/chat/completions"), &json, "{not json").await;
    let messages = r#"{"model":"llama3","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#;
    let translated = common::send("POST", &url("/v1/messages"), &json, messages).await;
    let relayed = common::send("POST", &url("/v1/chat/completions"), &json, CHAT).await;
    assert_eq!(
        (refused.status.as_u16(), translated.status.as_u16(), relayed.status.as_u16()),
        (400, 200, 200),
        "{}",
        translated.text()
    );
    gw.terminate();
    let lines = collector.join().unwrap();
    let logged: Vec<(String, u64, u64)> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "request")
        .map(|v| (v["path"].as_str().unwrap().to_owned(), v["status"].as_u64().unwrap(), v["bytes"].as_u64().unwrap()))
        .collect();
    let sent = |r: &common::Reply| r.body.len() as u64;
    assert!(logged.contains(&("/v1/chat/completions".into(), 400, sent(&refused))), "{logged:?}");
    assert!(logged.contains(&("/v1/messages".into(), 200, sent(&translated))), "{logged:?}");
    assert!(logged.contains(&("/v1/chat/completions".into(), 200, sent(&relayed))), "{logged:?}");
    assert!(sent(&refused) > 0 && sent(&translated) > 0);
}
