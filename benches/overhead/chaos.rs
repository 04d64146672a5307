//! The chaos soak (`scripts/bench.sh chaos`): mixed dialects (half streaming) against an
//! upstream that answers with a random fault a third of the time, while the config is
//! rewritten (half the rewrites invalid, some written in place in two halves, some emptied)
//! and silent and slow clients hold connections. It passes when no request hangs, no answer
//! is silently truncated (every failure is an error status or an error event), the gateway
//! stays alive with bounded memory, and every valid rewrite is applied.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{connect, flag, peak_rss_kib, start_gateway};

#[path = "../../tests/common/faulty.rs"]
mod faulty;
use faulty::{Fault, Faulty};

/// A tiny xorshift: reproducible runs from `--seed`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The faults a third of the upstream's answers get (the fault-injection tests' upstream).
const FAULTS: [Fault; 9] = [
    Fault::ResetBeforeHeaders,
    Fault::ResetAfterHeaders,
    Fault::StallBeforeHeaders,
    Fault::StallAfterHeaders,
    Fault::Garbage,
    Fault::CloseDelimitedCut,
    Fault::ShortContentLength,
    Fault::Status(429),
    Fault::Status(500),
];

/// The upstream: Chat at `/v1/chat/completions`, Anthropic at `/v1/messages`, a random fault
/// for a third of the answers.
async fn faulty_upstream(seed: u64) -> SocketAddr {
    let rng = std::sync::Mutex::new(Rng(seed | 1));
    let choose = Arc::new(move || {
        let mut r = rng.lock().expect("rng");
        if r.below(3) == 0 { FAULTS[r.below(FAULTS.len() as u64) as usize] } else { Fault::None }
    });
    Faulty::start_with(Fault::None, choose).await.addr
}

/// One client request: dialect, path, body, whether it streams, and how a complete answer
/// ends.
struct Shape {
    path: &'static str,
    body: String,
    stream: bool,
    end: &'static [u8],
}

fn shape(rng: &mut Rng) -> Shape {
    let stream = rng.below(2) == 0;
    let (claude, local) = ("claude-sonnet-4-20250514", "llama3");
    let model = if rng.below(2) == 0 { claude } else { local };
    let hello = "Give me three facts about Rust, please.";
    match rng.below(3) {
        0 => Shape {
            path: "/v1/chat/completions",
            body: format!(
                r#"{{"model":"{model}","messages":[{{"role":"user","content":"{hello}"}}],"stream":{stream}}}"#
            ),
            stream,
            end: if stream { b"data: [DONE]" } else { b"}" },
        },
        1 => Shape {
            path: "/v1/messages",
            body: format!(
                r#"{{"model":"{model}","max_tokens":64,"messages":[{{"role":"user","content":"{hello}"}}],"stream":{stream}}}"#
            ),
            stream,
            end: if stream { b"message_stop" } else { b"}" },
        },
        _ => Shape {
            path: "/v1/responses",
            body: format!(r#"{{"model":"{local}","input":"{hello}","stream":{stream}}}"#),
            stream,
            end: if stream { b"response.completed" } else { b"}" },
        },
    }
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    explicit_errors: AtomicU64,
    truncated: AtomicU64,
    hung: AtomicU64,
    /// The first few truncated answers, to show what went wrong.
    examples: std::sync::Mutex<Vec<String>>,
}

/// The last event of an event stream (without its blank line).
fn last_event(body: &[u8]) -> &[u8] {
    let mut end = body.len();
    while end > 0 && matches!(body[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    let start = body[..end].windows(2).rposition(|w| w == b"\n\n").map_or(0, |i| i + 2);
    &body[start..end]
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Classifies one answer: complete, an explicit error, or silently truncated.
fn judge(shape: &Shape, status: http::StatusCode, body: &[u8], tally: &Tally) {
    let counter = if !status.is_success() {
        // An error status must carry an error body (JSON with an `error`).
        if serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v.get("error").is_some()) {
            &tally.explicit_errors
        } else {
            &tally.truncated
        }
    } else if shape.stream {
        let last = last_event(body);
        if contains(last, b"\"error\"") || contains(last, b"response.failed") {
            &tally.explicit_errors
        } else if contains(last, shape.end) {
            &tally.ok
        } else {
            &tally.truncated
        }
    } else if serde_json::from_slice::<serde_json::Value>(body).is_ok() {
        &tally.ok
    } else {
        &tally.truncated
    };
    counter.fetch_add(1, Ordering::Relaxed);
    if std::ptr::eq(counter, &tally.truncated) {
        let mut examples = tally.examples.lock().expect("lock");
        if examples.len() < 5 {
            let tail = &body[body.len().saturating_sub(300)..];
            examples.push(format!(
                "{} stream={} {status}: …{}",
                shape.path,
                shape.stream,
                String::from_utf8_lossy(tail)
            ));
        }
    }
}

fn config(upstream: SocketAddr, variant: u64) -> String {
    format!(
        "providers:\n  local:\n    endpoints:\n      - name: a\n        base_url: http://{upstream}\n        weight: {w}\n      - name: b\n        base_url: http://{upstream}\n  anthropic:\n    api_key: sk-ant-chaos\n    base_url: http://{upstream}\n\
         timeouts:\n  first_byte_seconds: 2\n  idle_stream_seconds: 2\n  request_header_seconds: 2\n  request_body_seconds: 3\n\
         limits:\n  max_body_bytes: {body}\n",
        w = 1 + variant % 5,
        body = 1_000_000 + variant,
    )
}

/// Rewrite `i`: `Some(text)` valid, `None` when it writes something invalid (which must be
/// refused). Half are invalid: broken YAML, emptied, `null`, a half-written file.
async fn rewrite(path: &std::path::Path, upstream: SocketAddr, i: u64) -> bool {
    let tmp = path.with_extension("tmp");
    let atomic = |text: String| {
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, path).expect("rename");
    };
    match i % 6 {
        0 => atomic(config(upstream, i)),
        1 => atomic("providers:\n  local:\n    endpoints: [\n".into()),
        2 => {
            // In place, in two halves with a pause: the half-written file must not be applied.
            let text = config(upstream, i);
            let (a, b) = text.split_at(text.len() / 2);
            std::fs::write(path, a).expect("write");
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut f = std::fs::OpenOptions::new().append(true).open(path).expect("open");
            std::io::Write::write_all(&mut f, b.as_bytes()).expect("append");
        }
        3 => std::fs::write(path, "").expect("empty"),
        4 => atomic(config(upstream, i)),
        _ => atomic("null\n".into()),
    }
    matches!(i % 6, 0 | 2 | 4)
}

pub async fn chaos(args: &[String]) {
    let gateway_bin = super::gateway_bin(args);
    let seconds: u64 = flag(args, "--seconds", "600").parse().expect("seconds");
    let rewrites: u64 = flag(args, "--rewrites", "30").parse().expect("rewrites");
    let clients: usize = flag(args, "--clients", "12").parse().expect("clients");
    let seed: u64 = flag(args, "--seed", "20261202").parse().expect("seed");
    let upstream = faulty_upstream(seed).await;
    let dir = std::env::temp_dir().join(format!("llm-gateway-chaos-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("config.yaml");
    std::fs::write(&path, config(upstream, 0)).expect("config");
    let gateway = start_gateway(&[], &gateway_bin, &path, &[]);
    let (addr, pid) = (gateway.addr, gateway.child.id());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tally = Arc::new(Tally::default());

    let writer = tokio::spawn(async move {
        let gap = Duration::from_secs(seconds) / (rewrites as u32 + 1);
        let mut valid = 0;
        for i in 0..rewrites {
            tokio::time::sleep(gap).await;
            if rewrite(&path, upstream, i + 1).await {
                valid += 1;
            }
        }
        valid
    });
    let mut tasks = Vec::new();
    for c in 0..clients {
        let tally = tally.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng((seed ^ ((c as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))) | 1);
            while Instant::now() < deadline {
                let shape = shape(&mut rng);
                let mut sender = connect(addr).await;
                let req = Request::post(shape.path)
                    .header("host", addr.to_string())
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(shape.body.clone())))
                    .expect("request");
                // Longer than any gateway timeout: a request still running then is hung.
                let answer = tokio::time::timeout(Duration::from_secs(30), async {
                    let resp = sender.send_request(req).await?;
                    let status = resp.status();
                    let body = resp.into_body().collect().await?.to_bytes();
                    Ok::<_, hyper::Error>((status, body))
                })
                .await;
                match answer {
                    Err(_) => {
                        tally.hung.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(_)) => {
                        // The connection broke: explicit for a client (never a clean end).
                        tally.explicit_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Ok((status, body))) => judge(&shape, status, &body, &tally),
                }
            }
        }));
    }
    // Silent clients (connect, say nothing) and slow ones (a body a byte per 200 ms).
    let pests = tokio::spawn(async move {
        let mut held = Vec::new();
        while Instant::now() < deadline {
            for _ in 0..20 {
                if let Ok(s) = TcpStream::connect(addr).await {
                    held.push(s);
                }
            }
            if let Ok(mut s) = TcpStream::connect(addr).await {
                tokio::spawn(async move {
                    let head = "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n";
                    if s.write_all(head.as_bytes()).await.is_ok() {
                        for _ in 0..100 {
                            if s.write_all(b" ").await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                });
            }
            // Our side keeps at most 400 (the gateway closes its side at the header deadline).
            let excess = held.len().saturating_sub(400);
            held.drain(..excess);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        held.len()
    });
    for t in tasks {
        t.await.expect("client");
    }
    let valid = writer.await.expect("writer");
    let _ = pests.await;
    let alive = connect(addr).await.send_request(
        Request::get("/health").header("host", addr.to_string()).body(Full::new(Bytes::new())).expect("request"),
    );
    let alive =
        tokio::time::timeout(Duration::from_secs(5), alive).await.is_ok_and(|r| r.is_ok_and(|r| r.status() == 200));
    let (applied, rejected) = *gateway.reloads.lock().expect("lock");
    let t = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let total = t(&tally.ok) + t(&tally.explicit_errors) + t(&tally.truncated) + t(&tally.hung);
    println!(
        "chaos: {seconds} s, {clients} clients (Chat, Messages, Responses; half streaming; Anthropic and local upstreams), a third of upstream answers faulty, {rewrites} rewrites"
    );
    println!(
        "  requests {total}: complete {}, explicit errors {}, silently truncated {}, hung {}",
        t(&tally.ok),
        t(&tally.explicit_errors),
        t(&tally.truncated),
        t(&tally.hung)
    );
    for e in tally.examples.lock().expect("lock").iter() {
        println!("  truncated: {e}");
    }
    println!(
        "  reloads: {applied} applied ({valid} valid rewrites), {rejected} refused; gateway alive: {alive}; peak RSS {} KiB",
        peak_rss_kib(pid)
    );
    drop(gateway);
    if t(&tally.truncated) + t(&tally.hung) > 0 || !alive || applied < valid {
        std::process::exit(1);
    }
}
