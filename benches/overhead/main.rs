//! End-to-end overhead of the gateway against a floor: the same fast mock upstream reached
//! directly, through a minimal hyper pass-through proxy (the floor), and through llm-gateway,
//! interleaved round by round in one run.
//!
//! Every dialect pair the gateway serves is measured streamed (time to first event) and whole;
//! direct and the floor send the upstream's own dialect, so they relay the bytes the gateway
//! translates. The gateway runs as shipped: default log level, access log on
//! (`GATEWAY_RUST_LOG` overrides). One table of gateway/floor ratios closes the run.
//!
//! Latency runs pin everything to one CPU with the gateway on one worker thread (on a 2-vCPU
//! VM, waking a process on the other CPU costs tens of microseconds and makes placement, not
//! the proxy, decide the result); the throughput run then uses every CPU, the gateway's
//! default runtime against a floor with as many threads.
//! The same binary plays four parts: `overhead mock`, `overhead floor <upstream> [--threads N]
//! [--work-ns N]`, `overhead load <addr>` and the driver (`--gateway PATH --rounds N --requests N
//! [--only TEXT] [--dump DIR] [--work-ns N]`); `overhead instructions` counts instructions per
//! request instead (see `instructions.rs`), `soak` and `chaos` are the soaks.
//!
//! `--work-ns N` calibrates the judge: the floor again, spending N ns of busy work on each
//! request (a loop of clock reads, no memory touched), takes the gateway's place. The ratios
//! it gets are what that much CPU alone costs on this machine, to set the gateway's against.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

mod chaos;
mod instructions;
#[path = "../common/requests.rs"]
mod requests;
use requests::{ANTHROPIC_REQUEST, REQUEST, RESPONSES_REQUEST};

const CHAT: &[u8] = include_bytes!("../../fixtures/upstream/openai/chat.json");
const SSE: &[u8] = include_bytes!("../../fixtures/upstream/openai/chat-stream.sse");
const ANTHROPIC: &[u8] = include_bytes!("../../fixtures/upstream/anthropic/message.json");
const ANTHROPIC_SSE: &[u8] = include_bytes!("../../fixtures/upstream/anthropic/stream-text.sse");
const RESPONSES: &[u8] = include_bytes!("../../fixtures/upstream/openai/responses.json");
const RESPONSES_SSE: &[u8] = include_bytes!("../../fixtures/upstream/openai/responses-stream.sse");
const CHAT_PATH: &str = "/v1/chat/completions";
const MESSAGES_PATH: &str = "/v1/messages";
const RESPONSES_PATH: &str = "/v1/responses";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mode = args.first().map(String::as_str);
    let threads: usize = flag(&args, "--threads", "1").parse().expect("threads");
    let rt = match (mode, threads) {
        (Some("floor"), n) if n > 1 => {
            tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build().expect("runtime")
        }
        (Some("load"), _) => tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime"),
        _ => tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"),
    };
    match mode {
        Some("mock") => rt.block_on(mock()),
        Some("floor") => rt.block_on(floor(
            args[1].parse().expect("upstream address"),
            Duration::from_nanos(flag(&args, "--work-ns", "0").parse().expect("work-ns")),
        )),
        Some("load") => rt.block_on(load(&args)),
        Some("soak") => rt.block_on(soak(&args)),
        Some("chaos") => rt.block_on(chaos::chaos(&args)),
        Some("instructions") => rt.block_on(instructions::instructions(&args)),
        _ => rt.block_on(drive(&args)),
    }
}

/// The gateway measured unless `--gateway` names another: the release build as shipped, which
/// `scripts/bench.sh` copies aside before building the benches (building them rebuilds
/// `target/release/llm-gateway` with the dev-dependencies' features, tokio's `test-util`
/// among them, which is not the binary users run).
const GATEWAY: &str = "target/release/llm-gateway-as-shipped";

/// The gateway binary to measure (`--gateway`, else [`GATEWAY`]), which must exist.
fn gateway_bin(args: &[String]) -> String {
    let bin = flag(args, "--gateway", GATEWAY);
    assert!(std::path::Path::new(&bin).is_file(), "{bin} not found: run scripts/bench.sh, or pass --gateway");
    bin
}

fn flag(args: &[String], name: &str, default: &str) -> String {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_owned())
}

/// The fast upstream: a fixed JSON completion, or the whole SSE fixture at once — chunked,
/// as real model servers stream (no content-length).
async fn mock() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    println!("{}", listener.local_addr().expect("addr"));
    loop {
        let (stream, _) = listener.accept().await.expect("accept");
        stream.set_nodelay(true).ok();
        tokio::spawn(async move {
            let service = service_fn(|req: Request<Incoming>| async move {
                let (whole, sse) = match req.uri().path() {
                    "/v1/messages" => (ANTHROPIC, ANTHROPIC_SSE),
                    "/v1/responses" => (RESPONSES, RESPONSES_SSE),
                    _ => (CHAT, SSE),
                };
                let body = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                let resp = if memchr_contains(&body, b"\"stream\":true") {
                    let events =
                        futures_util::stream::once(
                            async move { Ok::<_, Infallible>(Frame::data(Bytes::from_static(sse))) },
                        );
                    Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(StreamBody::new(events).boxed())
                } else {
                    Response::builder()
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from_static(whole)).boxed())
                };
                Ok::<_, Infallible>(resp.expect("response"))
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn memchr_contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The floor: a minimal hyper 1 reverse proxy —
/// pooled hyper-util client, TCP_NODELAY both sides, bodies streamed frame by frame,
/// current-thread runtime. `work`: busy time spent on each request before it is forwarded
/// (`--work-ns`, the driver's calibration).
async fn floor(upstream: SocketAddr, work: Duration) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    println!("{}", listener.local_addr().expect("addr"));
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.set_nodelay(true);
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build::<_, Incoming>(http);
    loop {
        let (stream, _) = listener.accept().await.expect("accept");
        stream.set_nodelay(true).ok();
        let client = client.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let client = client.clone();
                async move {
                    if !work.is_zero() {
                        let until = Instant::now() + work;
                        while Instant::now() < until {
                            std::hint::spin_loop();
                        }
                    }
                    let (mut parts, body) = req.into_parts();
                    parts.uri = format!("http://{upstream}{}", parts.uri.path()).parse().expect("uri");
                    let resp = client.request(Request::from_parts(parts, body)).await.expect("upstream");
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

struct Proc {
    child: Child,
    addr: SocketAddr,
    /// The gateway's reload log lines (succeeded, failed).
    reloads: std::sync::Arc<std::sync::Mutex<(u64, u64)>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `program`, run under `wrapper` (a tool and its arguments, as `valgrind …`) if there is one.
fn command(wrapper: &[String], program: impl AsRef<std::ffi::OsStr>) -> Command {
    match wrapper.split_first() {
        Some((tool, args)) => {
            let mut command = Command::new(tool);
            command.args(args).arg(program);
            command
        }
        None => Command::new(program),
    }
}

fn spawn_self(wrapper: &[String], args: &[&str]) -> Proc {
    let exe = std::env::current_exe().expect("exe");
    let child = command(wrapper, exe).args(args).stdout(Stdio::piped()).spawn().expect("spawn");
    // Owned by a `Proc` at once, so a panic below still ends the process.
    let mut proc = Proc { addr: SocketAddr::from(([0, 0, 0, 0], 0)), child, reloads: Default::default() };
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(proc.child.stdout.as_mut().expect("stdout")), &mut line)
        .expect("read addr");
    proc.addr = line.trim().parse().expect("addr");
    proc
}

fn spawn_gateway(wrapper: &[String], bin: &str, upstream: SocketAddr, extra: &[&str]) -> Proc {
    let dir = std::env::temp_dir().join(format!("llm-gateway-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("config.yaml");
    let yaml = format!(
        "providers:\n  local:\n    base_url: http://{upstream}\n  anthropic:\n    api_key: sk-ant-bench\n    base_url: http://{upstream}\n  open_ai:\n    api_key: sk-bench\n    base_url: http://{upstream}\n"
    );
    std::fs::write(&config, yaml).expect("config");
    start_gateway(wrapper, bin, &config, extra)
}

/// The gateway as shipped: its default log level (access log on) unless `GATEWAY_RUST_LOG`
/// sets one (the lines saying where it listens and what reloads did are kept).
fn start_gateway(wrapper: &[String], bin: &str, config: &std::path::Path, extra: &[&str]) -> Proc {
    let mut command = command(wrapper, bin);
    command.args(["run", config.to_str().expect("path"), "--address", "127.0.0.1:0"]).args(extra);
    match std::env::var("GATEWAY_RUST_LOG") {
        Ok(level) => command.env("RUST_LOG", format!("{level},llm_gateway::cmd::run=info,llm_gateway::reload=info")),
        Err(_) => command.env_remove("RUST_LOG"),
    };
    let mut child = command.stderr(Stdio::piped()).spawn().expect("spawn gateway");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let reloads: std::sync::Arc<std::sync::Mutex<(u64, u64)>> = Default::default();
    let counts = reloads.clone();
    // Keep draining the log so the gateway never blocks on a full pipe. Read in large chunks and
    // searched without copying a line, as a log collector reads: this thread shares the
    // gateway's CPU, and reading line by line (a `String` per access line) put the collector's
    // cost on the gateway's latency tail.
    std::thread::spawn(move || {
        let listening = memchr::memmem::Finder::new("listening on ");
        let applied = memchr::memmem::Finder::new("config reloaded:");
        let failed = memchr::memmem::Finder::new("config reload failed");
        let mut stderr = stderr;
        let mut buf = vec![0u8; 1 << 20];
        let (mut filled, mut started) = (0, false);
        loop {
            match std::io::Read::read(&mut stderr, &mut buf[filled..]) {
                Ok(0) | Err(_) => return,
                Ok(n) => filled += n,
            }
            // Whole lines only: a partial one waits for its end (a line filling the buffer is
            // taken as it is).
            let whole = match memchr::memrchr(b'\n', &buf[..filled]) {
                Some(end) => end + 1,
                None if filled == buf.len() => filled,
                None => continue,
            };
            let lines = &buf[..whole];
            if !started && let Some(at) = listening.find(lines) {
                let rest = &lines[at + "listening on ".len()..];
                let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
                let _ = tx.send(String::from_utf8_lossy(&rest[..end]).trim().to_owned());
                started = true;
            }
            let (ok, bad) = (applied.find_iter(lines).count() as u64, failed.find_iter(lines).count() as u64);
            if ok + bad > 0 {
                let mut c = counts.lock().expect("lock");
                c.0 += ok;
                c.1 += bad;
            }
            buf.copy_within(whole..filled, 0);
            filled -= whole;
        }
    });
    let mut proc = Proc { addr: SocketAddr::from(([0, 0, 0, 0], 0)), child, reloads };
    proc.addr = rx.recv_timeout(Duration::from_secs(30)).expect("gateway did not start").parse().expect("addr");
    proc
}

fn pin_to(pid: u32, cpus: &str) {
    let _ = Command::new("taskset").args(["-a", "-pc", cpus, &pid.to_string()]).stdout(Stdio::null()).status();
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Sender {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).ok();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    sender
}

fn post(addr: SocketAddr, path: &str, body: &'static str) -> Request<Full<Bytes>> {
    Request::post(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("request")
}

/// One request; returns the time to the first body frame (streaming) or to the whole body.
async fn one(sender: &mut Sender, addr: SocketAddr, path: &str, body: &'static str, first_frame: bool) -> Duration {
    sender.ready().await.expect("ready");
    let req = post(addr, path, body);
    let started = Instant::now();
    let resp = sender.send_request(req).await.expect("send");
    assert!(resp.status().is_success(), "status {}", resp.status());
    let mut body = resp.into_body();
    let mut at = None;
    while let Some(frame) = body.frame().await {
        frame.expect("frame");
        at.get_or_insert_with(|| started.elapsed());
    }
    if first_frame { at.unwrap_or_else(|| started.elapsed()) } else { started.elapsed() }
}

/// CPU time of every thread of a process, from the scheduler's nanosecond counters.
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

#[derive(Default)]
struct Samples {
    latency: Vec<Duration>,
    cpu_ns: u64,
    requests: u64,
}

/// A pair's request streamed (`first`: its time to the first event is measured) or whole.
fn in_mode((path, body): (&'static str, &'static str), first: bool) -> (&'static str, &'static str) {
    (path, if first { body } else { leak(body.replace("\"stream\":true", "\"stream\":false")) })
}

fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

/// One dialect pair: what direct and the floor send (the upstream's own dialect, so they
/// relay the bytes the upstream sends) and what the gateway is sent (the client's dialect).
struct Pair {
    name: &'static str,
    native: (&'static str, &'static str),
    gateway: (&'static str, &'static str),
}

/// Every pair the gateway serves, streamed (time to first event) and whole.
fn pairs() -> Vec<Pair> {
    let chat = leak(REQUEST.replace("\"stream\":false", "\"stream\":true"));
    let model = |body: &str, from: &str, to: &str| leak(body.replace(from, to));
    let messages = (MESSAGES_PATH, ANTHROPIC_REQUEST);
    vec![
        Pair { name: "Chat -> local (passthrough)", native: (CHAT_PATH, chat), gateway: (CHAT_PATH, chat) },
        Pair {
            name: "Chat -> Anthropic",
            native: messages,
            gateway: (CHAT_PATH, model(chat, "\"llama3\"", "\"claude-sonnet-4-20250514\"")),
        },
        Pair { name: "Messages -> Anthropic (passthrough)", native: messages, gateway: messages },
        Pair {
            name: "Messages -> local",
            native: (CHAT_PATH, chat),
            gateway: (MESSAGES_PATH, model(ANTHROPIC_REQUEST, "claude-sonnet-4-20250514", "llama3")),
        },
        Pair {
            name: "Responses -> OpenAI (passthrough)",
            native: (RESPONSES_PATH, model(RESPONSES_REQUEST, "llama3", "gpt-4.1")),
            gateway: (RESPONSES_PATH, model(RESPONSES_REQUEST, "llama3", "gpt-4.1")),
        },
        Pair { name: "Responses -> local", native: (CHAT_PATH, chat), gateway: (RESPONSES_PATH, RESPONSES_REQUEST) },
        Pair {
            name: "Responses -> Anthropic (two hops)",
            native: messages,
            gateway: (RESPONSES_PATH, model(RESPONSES_REQUEST, "llama3", "claude-sonnet-4-20250514")),
        },
    ]
}

/// The gateway/floor ratios of one measurement: added p50, added p99, CPU per request.
type Ratios = [f64; 3];

async fn drive(args: &[String]) {
    let rounds: usize = flag(args, "--rounds", "10").parse().expect("rounds");
    let per_round: usize = flag(args, "--requests", "1000").parse().expect("requests");
    let only = flag(args, "--only", "");
    let dump = flag(args, "--dump", "");
    let work = work_ns(args);
    let mock = spawn_self(&[], &["mock"]);
    let floor = spawn_self(&[], &["floor", &mock.addr.to_string()]);
    let (name, gateway) = contender(args, work, mock.addr, &["--worker-threads", "1"], 1);
    for pid in [mock.child.id(), floor.child.id(), gateway.child.id(), std::process::id()] {
        pin_to(pid, "0");
    }
    let targets = [
        ("direct", mock.addr, None),
        ("floor", floor.addr, Some(floor.child.id())),
        (name, gateway.addr, Some(gateway.child.id())),
    ];
    match work {
        None => println!(
            "overhead harness: {rounds} rounds x {per_round} requests per target and mode, interleaved; all processes on CPU 0; gateway log: {}",
            std::env::var("GATEWAY_RUST_LOG").unwrap_or_else(|_| "as shipped (access log on)".into())
        ),
        Some(ns) => println!(
            "calibration: {rounds} rounds x {per_round} requests per target and mode, interleaved; all processes on CPU 0; the floor with {ns} ns of busy work a request in the gateway's place"
        ),
    }
    let mut summary: Vec<(&str, [Option<Ratios>; 2])> = Vec::new();
    for pair in pairs().into_iter().filter(|p| p.name.contains(&only)) {
        let mut row = [None, None];
        for (k, first) in [true, false].into_iter().enumerate() {
            let third = if work.is_none() { pair.gateway } else { pair.native };
            let requests = [in_mode(pair.native, first), in_mode(pair.native, first), in_mode(third, first)];
            let mut samples: Vec<Samples> = (0..3).map(|_| Samples::default()).collect();
            let mut senders = Vec::new();
            for (_, addr, _) in &targets {
                senders.push(connect(*addr).await);
            }
            for (i, (_, addr, _)) in targets.iter().enumerate() {
                for _ in 0..200 {
                    one(&mut senders[i], *addr, requests[i].0, requests[i].1, first).await;
                }
            }
            for round in 0..rounds {
                for k in 0..3 {
                    let i = (round + k) % 3;
                    let (_, addr, pid) = targets[i];
                    let before = pid.map(cpu_ns).unwrap_or(0);
                    for _ in 0..per_round {
                        let d = one(&mut senders[i], addr, requests[i].0, requests[i].1, first).await;
                        samples[i].latency.push(d);
                    }
                    samples[i].cpu_ns += pid.map(cpu_ns).unwrap_or(0) - before;
                    samples[i].requests += per_round as u64;
                }
            }
            let what = if first { "time to first event" } else { "whole response" };
            let mode = format!("{} ({what})", pair.name);
            if !dump.is_empty() {
                dump_latencies(&dump, &mode, &targets.map(|t| t.0), &samples);
            }
            row[k] = Some(report(&mode, &targets.map(|t| t.0), &mut samples, rounds));
        }
        summary.push((pair.name, row));
    }
    println!("\n{name}/floor ratios (goal: added p50 and p99 <= 1.3x, CPU/request <= 1.5x):");
    println!("  {:<38} {:>24}   {:>24}", "pair", "first event p50/p99/CPU", "whole p50/p99/CPU");
    for (name, row) in &summary {
        let cell = |r: &Option<Ratios>| r.map_or("-".into(), |r| format!("{:.2}x {:.2}x {:.2}x", r[0], r[1], r[2]));
        println!("  {name:<38} {:>24}   {:>24}", cell(&row[0]), cell(&row[1]));
    }
    println!(
        "\npeak RSS: floor {} KiB, {name} {} KiB",
        peak_rss_kib(floor.child.id()),
        peak_rss_kib(gateway.child.id())
    );
    drop((gateway, floor, mock));
    if only.is_empty() || only == "throughput" {
        multicore(args, work, 64, 10, Duration::from_millis(1500)).await;
    }
}

/// `--work-ns N`, checked here rather than by the floor it is handed to.
fn work_ns(args: &[String]) -> Option<u64> {
    let ns = flag(args, "--work-ns", "");
    (!ns.is_empty()).then(|| ns.parse().expect("--work-ns: a whole number of nanoseconds"))
}

/// What is set against the floor: the gateway (started with `gateway_args`), or with
/// `work` (`--work-ns`) the floor again (on `floor_threads` threads), spending that many ns
/// of busy time on each request — a calibration: what that much work, and nothing else,
/// does to each ratio on this machine.
fn contender(
    args: &[String],
    work: Option<u64>,
    upstream: SocketAddr,
    gateway_args: &[&str],
    floor_threads: usize,
) -> (&'static str, Proc) {
    match work {
        None => ("gateway", spawn_gateway(&[], &gateway_bin(args), upstream, gateway_args)),
        Some(ns) => {
            let (upstream, threads, ns) = (upstream.to_string(), floor_threads.to_string(), ns.to_string());
            ("floor+work", spawn_self(&[], &["floor", &upstream, "--threads", &threads, "--work-ns", &ns]))
        }
    }
}

/// `--dump DIR`: one mode's latencies, a file per target (µs, one a line, in the order they
/// were measured: `--requests` a round): the distribution behind a ratio. This VM's latencies
/// fall in two or more clusters a fixed step apart, in proportions that drift from round to
/// round, so a percentile can land in either; the low percentiles within the fast cluster say
/// what a request costs.
fn dump_latencies(dir: &str, mode: &str, names: &[&str; 3], samples: &[Samples]) {
    std::fs::create_dir_all(dir).expect("--dump");
    let stem: String = mode.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    for (name, s) in names.iter().zip(samples) {
        let text: String = s.latency.iter().map(|d| format!("{:.3}\n", d.as_secs_f64() * 1e6)).collect();
        std::fs::write(std::path::Path::new(dir).join(format!("{stem}-{name}.txt")), text).expect("--dump");
    }
}

fn report(mode: &str, names: &[&str; 3], samples: &mut [Samples], rounds: usize) -> Ratios {
    println!("\n{mode}:");
    // How far the floor's own tail moves from round to round (before the samples are sorted:
    // they are in round order): what this machine's noise alone does to a p99.
    let round_p99 = |s: &Samples, r: usize| {
        let per = s.latency.len() / rounds;
        let mut round = s.latency[r * per..(r + 1) * per].to_vec();
        round.sort();
        percentile(&round, 0.99)
    };
    let floor_tail: Vec<f64> = (0..rounds).map(|r| round_p99(&samples[1], r) - round_p99(&samples[0], r)).collect();
    println!(
        "  {:<10} {:>9} {:>9} {:>11} {:>11} {:>10}",
        "target", "p50 µs", "p99 µs", "added p50", "added p99", "CPU µs/req"
    );
    let mut stats = Vec::new();
    for s in samples.iter_mut() {
        s.latency.sort();
        stats.push((percentile(&s.latency, 0.5), percentile(&s.latency, 0.99)));
    }
    for (i, name) in names.iter().enumerate() {
        let (p50, p99) = stats[i];
        let cpu = if samples[i].cpu_ns > 0 {
            format!("{:.1}", samples[i].cpu_ns as f64 / samples[i].requests as f64 / 1e3)
        } else {
            "-".into()
        };
        println!("  {name:<10} {p50:>9.1} {p99:>9.1} {:>11.1} {:>11.1} {cpu:>10}", p50 - stats[0].0, p99 - stats[0].1);
    }
    let added = |i: usize, j: usize| {
        let a: f64 = if j == 0 { stats[i].0 - stats[0].0 } else { stats[i].1 - stats[0].1 };
        a
    };
    let cpu_per = |i: usize| samples[i].cpu_ns as f64 / samples[i].requests.max(1) as f64;
    let ratios = [added(2, 0) / added(1, 0), added(2, 1) / added(1, 1), cpu_per(2) / cpu_per(1)];
    println!(
        "  ratios {}/floor: added p50 {:.2}x, added p99 {:.2}x, CPU/request {:.2}x",
        names[2], ratios[0], ratios[1], ratios[2]
    );
    let (low, high) = range(&floor_tail);
    println!("  the floor's added p99 from round to round: {low:.1}-{high:.1} µs");
    ratios
}

/// Throughput on every core: the floor with as many worker threads as the gateway's default
/// runtime has (one per CPU), the gateway as shipped, each under `conns` keep-alive
/// connections from a separate load process; nothing pinned. Short rounds alternated many
/// times, each gateway round set against the floor round next to it: this machine's speed
/// drifts by a fifth within a minute, and a ratio of whole-run totals takes the drift in.
async fn multicore(args: &[String], work: Option<u64>, conns: usize, rounds: usize, span: Duration) {
    // Every CPU online, not the ones this (pinned) process may use.
    let all = std::fs::read_to_string("/sys/devices/system/cpu/online").expect("online CPUs").trim().to_owned();
    let cpus: usize = all
        .split(',')
        .map(|range| match range.split_once('-') {
            Some((a, b)) => b.parse::<usize>().expect("cpu") - a.parse::<usize>().expect("cpu") + 1,
            None => 1,
        })
        .sum();
    pin_to(std::process::id(), &all);
    let mock = spawn_self(&[], &["mock"]);
    let floor = spawn_self(&[], &["floor", &mock.addr.to_string(), "--threads", &cpus.to_string()]);
    // The gateway's default runtime: a serving thread per CPU.
    let (name, gateway) = contender(args, work, mock.addr, &[], cpus);
    for pid in [mock.child.id(), floor.child.id(), gateway.child.id()] {
        pin_to(pid, &all);
    }
    let targets = [&floor, &gateway];
    // Per target: requests a second, p99 (µs) and CPU per request (µs) of each round.
    let mut results: [Vec<[f64; 3]>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        for k in 0..2 {
            let i = (round + k) % 2;
            let target = targets[i];
            let before = cpu_ns(target.child.id());
            let out = Command::new(std::env::current_exe().expect("exe"))
                .args(["load", &target.addr.to_string(), "--connections", &conns.to_string()])
                .args(["--millis", &span.as_millis().to_string()])
                .output()
                .expect("load");
            let cpu = cpu_ns(target.child.id()) - before;
            let text = String::from_utf8_lossy(&out.stdout);
            let mut numbers = text.split_whitespace().map(|n| n.parse::<f64>().expect("load output"));
            let rps = numbers.next().expect("rps");
            let p99 = numbers.next().expect("p99");
            results[i].push([rps, p99, cpu as f64 / 1e3 / (rps * span.as_secs_f64()).max(1.0)]);
        }
    }
    println!(
        "\nthroughput on {cpus} CPUs, concurrency {conns}, non-streaming ({rounds} alternated rounds of {:.1} s each; floor with {cpus} worker threads, {}):",
        span.as_secs_f64(),
        if work.is_none() { "gateway as shipped" } else { "the floor with busy work in the gateway's place" }
    );
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for (name, rows) in ["floor", name].iter().zip(&results) {
        let column = |c: usize| rows.iter().map(|r| r[c]).collect::<Vec<_>>();
        let (rps, p99) = (column(0), column(1));
        let (low, high) = range(&rps);
        println!(
            "  {name:<10} {:>7.0} req/s ({low:.0}–{high:.0})   p99 {:.0} µs   CPU {:.1} µs/request (medians of the rounds)",
            median(rps),
            median(p99),
            median(column(2))
        );
    }
    let ratios: Vec<f64> = results[0].iter().zip(&results[1]).map(|(f, g)| g[0] / f[0]).collect();
    let (low, high) = range(&ratios);
    let cpu: Vec<f64> = results[0].iter().zip(&results[1]).map(|(f, g)| g[2] / f[2]).collect();
    println!(
        "  ratio {name}/floor, round by round: throughput {:.2}x ({low:.2}–{high:.2}), CPU/request {:.2}x",
        median(ratios),
        median(cpu)
    );
}

/// The smallest and the largest of `values`.
fn range(values: &[f64]) -> (f64, f64) {
    values.iter().fold((f64::MAX, f64::MIN), |(low, high), &v| (low.min(v), high.max(v)))
}

/// `overhead load ADDR --connections N --millis T`: non-streaming chat requests on N
/// keep-alive connections for T ms; prints requests per second and p99 latency (µs).
async fn load(args: &[String]) {
    let addr: SocketAddr = args[1].parse().expect("address");
    let conns: usize = flag(args, "--connections", "64").parse().expect("connections");
    let span = Duration::from_millis(flag(args, "--millis", "3000").parse().expect("millis"));
    let deadline = Instant::now() + span;
    let mut tasks = Vec::new();
    for _ in 0..conns {
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await;
            let mut latency = Vec::new();
            while Instant::now() < deadline {
                latency.push(one(&mut sender, addr, CHAT_PATH, REQUEST, false).await);
            }
            latency
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    all.sort();
    println!("{:.0} {:.1}", all.len() as f64 / span.as_secs_f64(), percentile(&all, 0.99));
}

/// The reload soak: load (streaming and not) for `--seconds` while the config is rewritten
/// `--rewrites` times — a third of them invalid, others adding and removing an endpoint.
/// Every request must succeed and every stream must end with `[DONE]`.
async fn soak(args: &[String]) {
    let gateway_bin = gateway_bin(args);
    let seconds: u64 = flag(args, "--seconds", "60").parse().expect("seconds");
    let rewrites: u64 = flag(args, "--rewrites", "30").parse().expect("rewrites");
    let conns: usize = flag(args, "--connections", "16").parse().expect("connections");
    let (m1, m2) = (spawn_self(&[], &["mock"]), spawn_self(&[], &["mock"]));
    let dir = std::env::temp_dir().join(format!("llm-gateway-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("config.yaml");
    let (a1, a2) = (m1.addr, m2.addr);
    let variant = move |i: u64| -> String {
        let one = format!("      - name: m1\n        base_url: http://{a1}\n        weight: {}\n", 1 + i % 3);
        let two = format!("      - name: m2\n        base_url: http://{a2}\n");
        match i % 3 {
            0 => "providers:\n  local:\n    endpoints: [\n".to_owned(), // invalid YAML
            1 => format!("providers:\n  local:\n    endpoints:\n{one}{two}"),
            _ => format!("providers:\n  local:\n    endpoints:\n{one}"),
        }
    };
    std::fs::write(&config, variant(1)).expect("config");
    let gateway = start_gateway(&[], &gateway_bin, &config, &[]);
    let addr = gateway.addr;
    let stream_body: &'static str = Box::leak(REQUEST.replace("\"stream\":false", "\"stream\":true").into_boxed_str());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let reload_times = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Duration>::new()));
    let writer = {
        let (config, reload_times) = (config.clone(), reload_times.clone());
        tokio::spawn(async move {
            let gap = Duration::from_secs(seconds) / (rewrites as u32 + 1);
            for i in 0..rewrites {
                tokio::time::sleep(gap).await;
                let tmp = config.with_extension("tmp");
                std::fs::write(&tmp, variant(i)).expect("write");
                std::fs::rename(&tmp, &config).expect("rename");
                reload_times.lock().expect("lock").push(started.elapsed());
            }
        })
    };
    let mut tasks = Vec::new();
    for c in 0..conns {
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await;
            let (mut ok, mut failed, mut truncated) = (0u64, 0u64, 0u64);
            let mut samples = Vec::new();
            let mut n = 0usize;
            while Instant::now() < deadline {
                n += 1;
                let stream = (n + c).is_multiple_of(2);
                let body = if stream { stream_body } else { REQUEST };
                if sender.ready().await.is_err() {
                    sender = connect(addr).await;
                }
                let req = post(addr, CHAT_PATH, body);
                let t = Instant::now();
                let at = t - started;
                match sender.send_request(req).await {
                    Ok(resp) if resp.status().is_success() => match resp.into_body().collect().await {
                        Ok(b) => {
                            let b = b.to_bytes();
                            if stream && !b.ends_with(b"data: [DONE]\n\n") {
                                truncated += 1;
                            } else {
                                ok += 1;
                            }
                            samples.push((at, t.elapsed()));
                        }
                        Err(_) => truncated += 1,
                    },
                    _ => failed += 1,
                }
            }
            (ok, failed, truncated, samples)
        }));
    }
    let (mut ok, mut failed, mut truncated, mut samples) = (0, 0, 0, Vec::new());
    for t in tasks {
        let (o, f, tr, s) = t.await.expect("task");
        ok += o;
        failed += f;
        truncated += tr;
        samples.extend(s);
    }
    writer.await.expect("writer");
    let reloads = reload_times.lock().expect("lock").clone();
    let near = |at: Duration| {
        reloads.iter().any(|r| at + Duration::from_millis(100) >= *r && at <= *r + Duration::from_millis(900))
    };
    let (mut during, mut quiet): (Vec<Duration>, Vec<Duration>) = (Vec::new(), Vec::new());
    for (at, d) in samples {
        if near(at) { during.push(d) } else { quiet.push(d) }
    }
    during.sort();
    quiet.sort();
    let total = ok + failed + truncated;
    println!(
        "soak: {seconds} s, {conns} connections (half the requests streaming), {rewrites} config rewrites (a third invalid, others adding/removing an endpoint)"
    );
    println!(
        "  requests {total} ({:.0} req/s): ok {ok}, failed {failed}, truncated streams {truncated}",
        total as f64 / seconds as f64
    );
    if !during.is_empty() && !quiet.is_empty() {
        println!(
            "  p99 latency: {:.0} µs within 1 s of a rewrite ({} requests), {:.0} µs otherwise ({} requests)",
            percentile(&during, 0.99),
            during.len(),
            percentile(&quiet, 0.99),
            quiet.len()
        );
    }
    let (applied, rejected) = *gateway.reloads.lock().expect("lock");
    println!("  gateway: {applied} reloads applied, {rejected} rejected (invalid); unchanged rewrites are no-ops");
    drop(gateway);
    if failed + truncated > 0 {
        std::process::exit(1);
    }
}
