//! Client connections and request bodies under attack: silent sockets, half request lines,
//! idle HTTP/1.1 and h2c connections, stalled bodies and oversized uploads. Each is closed or
//! answered within its configured deadline (`timeouts.*`, set to a second or two here), and a
//! well-behaved keep-alive client is not disturbed.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Gateway, Mock};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for something that should happen within a 1–2 s deadline.
const PATIENCE: Duration = Duration::from_secs(8);

fn config(mock: &Mock, extra: &str) -> String {
    format!(
        "providers:\n  local:\n    base_url: {url}/v1\ntimeouts:\n  request_header_seconds: 1\n  request_body_seconds: 1\n  idle_connection_seconds: 2\n{extra}",
        url = mock.url()
    )
}

/// Reads until the gateway closes the connection: what it sent, and when it closed.
async fn until_closed(stream: &mut TcpStream) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
            Err(_) => panic!(
                "the connection was still open after {PATIENCE:?}; received so far: {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(Ok(0) | Err(_)) => return (got, started.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_half_sent_connections_are_closed_at_the_header_deadline() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, ""));
    // Nothing at all: hyper-util's protocol detection alone would wait forever.
    let mut silent = TcpStream::connect(gw.addr).await.unwrap();
    // Half a request line, half an HTTP/2 preface.
    let mut half_line = TcpStream::connect(gw.addr).await.unwrap();
    half_line.write_all(b"GET /health HT").await.unwrap();
    let mut half_preface = TcpStream::connect(gw.addr).await.unwrap();
    half_preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    for (what, stream) in
        [("silent", &mut silent), ("half a line", &mut half_line), ("half a preface", &mut half_preface)]
    {
        let (got, after) = until_closed(stream).await;
        assert!(got.is_empty(), "{what}: nothing to answer, got {:?}", String::from_utf8_lossy(&got));
        assert!(after < Duration::from_secs(4), "{what}: closed after {after:?}");
    }
    // The gateway still serves.
    let r = common::send("GET", &gw.url("/health"), &[], "").await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_clients_get_the_idle_timeout_between_requests_then_are_closed() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, ""));
    let io = TokioIo::new(TcpStream::connect(gw.addr).await.unwrap());
    let (mut send, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(io).await.unwrap();
    let conn = tokio::spawn(conn);
    let get = || http::Request::get("/health").header("host", "gw").body(Empty::new()).unwrap();
    assert_eq!(send.send_request(get()).await.unwrap().status(), 200);
    // Longer than the header timeout (1 s), shorter than the idle timeout (2 s): the
    // connection waits for the next request.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let resp = send.send_request(get()).await.expect("the keep-alive connection is still open");
    assert_eq!(resp.status(), 200);
    let _ = resp.into_body().collect().await;
    let idle = Instant::now();
    tokio::time::timeout(PATIENCE, conn).await.expect("an idle connection is closed").unwrap().unwrap();
    let after = idle.elapsed();
    assert!(after >= Duration::from_millis(1500) && after < Duration::from_secs(5), "closed after {after:?} idle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_h2c_connections_are_closed() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, ""));
    let h2 = |addr| async move {
        let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
        hyper::client::conn::http2::handshake::<_, _, Empty<Bytes>>(TokioExecutor::new(), io).await.unwrap()
    };
    // One that asks nothing (the preface and settings only): the header deadline.
    let (_quiet, conn) = h2(gw.addr).await;
    let started = Instant::now();
    // Dropped, not shut down: nothing to say to a client that asked nothing in time.
    let _ = tokio::time::timeout(PATIENCE, conn).await.expect("a silent h2c connection is closed");
    assert!(started.elapsed() < Duration::from_secs(4), "closed after {:?}", started.elapsed());
    // One that asked once and then holds the connection: the idle deadline (GOAWAY).
    let (mut send, conn) = h2(gw.addr).await;
    let conn = tokio::spawn(conn);
    let resp = send.send_request(http::Request::get(gw.url("/health")).body(Empty::new()).unwrap()).await.unwrap();
    assert_eq!((resp.status().as_u16(), resp.version()), (200, http::Version::HTTP_2));
    let idle = Instant::now();
    tokio::time::timeout(PATIENCE, conn).await.expect("an idle h2c connection is closed").unwrap().unwrap();
    assert!(idle.elapsed() >= Duration::from_millis(1500), "closed after {:?}", idle.elapsed());
}

const CHAT: &str = r#"{"model":"llama3","messages":[{"role":"user","content":"hi"}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_get_408_in_the_clients_dialect() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, ""));
    let half = &CHAT.as_bytes()[..CHAT.len() / 2];
    for (path, framing) in
        [("/v1/chat/completions", "length"), ("/v1/messages", "length"), ("/v1/chat/completions", "chunked")]
    {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        let head = match framing {
            "length" => format!("POST {path} HTTP/1.1\r\nhost: gw\r\ncontent-length: {}\r\n\r\n", CHAT.len()),
            _ => format!("POST {path} HTTP/1.1\r\nhost: gw\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n", half.len()),
        };
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(half).await.unwrap();
        let (got, after) = until_closed(&mut s).await;
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 408"), "{path} ({framing}): {text}");
        let body: serde_json::Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap_or_default()).unwrap();
        match path {
            "/v1/messages" => assert_eq!(body["type"], "error", "{body}"),
            _ => assert_eq!(body["error"]["code"], "request_timeout", "{body}"),
        }
        assert!(after < Duration::from_secs(4), "answered after {after:?}");
    }
    assert!(mock.posts().is_empty(), "nothing half-read goes upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_h2_bodies_get_408() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, ""));
    let io = TokioIo::new(TcpStream::connect(gw.addr).await.unwrap());
    // A body that sends half and then nothing (the sender is kept alive below).
    let (half_tx, half_rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::convert::Infallible>>(1);
    let stalled = StreamBody::new(tokio_stream(half_rx));
    half_tx.send(Ok(Frame::data(Bytes::from_static(&CHAT.as_bytes()[..20])))).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::post(gw.url("/v1/chat/completions"))
        .header("content-length", CHAT.len().to_string())
        .body(stalled)
        .unwrap();
    let started = Instant::now();
    let resp = tokio::time::timeout(PATIENCE, send.send_request(req)).await.expect("answered").unwrap();
    assert_eq!(resp.status(), 408);
    assert!(started.elapsed() < Duration::from_secs(4));
    drop(half_tx);
}

fn tokio_stream<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// The gateway's resident memory, in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_uploads_are_released_so_memory_does_not_grow_wave_after_wave() {
    let mock = Mock::start().await;
    let gw = Gateway::start(
        &config(&mock, "limits:\n  max_body_bytes: 33554432\n")
            .replace("request_body_seconds: 1", "request_body_seconds: 2"),
    );
    let pid = gw.process.child.id();
    let base = rss_mib(pid);
    let chunk = vec![b' '; 1 << 20];
    let mut peaks = Vec::new();
    for wave in 0..3 {
        // 10 uploads declare 30 MiB, send 10 MiB, and stall.
        let mut streams = Vec::new();
        for _ in 0..10 {
            let mut s = TcpStream::connect(gw.addr).await.unwrap();
            let head =
                format!("POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-length: {}\r\n\r\n", 30 << 20);
            s.write_all(head.as_bytes()).await.unwrap();
            for _ in 0..10 {
                s.write_all(&chunk).await.unwrap();
            }
            streams.push(s);
        }
        let mut during = 0;
        for s in &mut streams {
            during = during.max(rss_mib(pid));
            let (got, _) = until_closed(s).await;
            assert!(got.starts_with(b"HTTP/1.1 408"), "wave {wave}: {:?}", String::from_utf8_lossy(&got));
        }
        peaks.push(during);
    }
    let after = rss_mib(pid);
    eprintln!("gateway RSS: {base} MiB at start, peaks {peaks:?} MiB during the waves, {after} MiB after");
    // Without the body deadline every wave adds its 100 MiB (and keeps it).
    assert!(*peaks.last().unwrap() < peaks[0] + 60, "memory grows wave after wave: {peaks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_upload_written_whole_before_reading_gets_a_readable_413() {
    let mock = Mock::start().await;
    let gw = Gateway::start(
        &config(&mock, "limits:\n  max_body_bytes: 1048576\n")
            .replace("request_body_seconds: 1", "request_body_seconds: 10"),
    );
    // Like Python's http.client or httpx: the whole body goes out, then the answer is read.
    let body = vec![b'x'; 40 << 20];
    for framing in ["length", "chunked"] {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        let head = match framing {
            "length" => {
                format!("POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-length: {}\r\n\r\n", body.len())
            }
            _ => "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ntransfer-encoding: chunked\r\n\r\n".to_owned(),
        };
        s.write_all(head.as_bytes()).await.unwrap();
        if framing == "length" {
            s.write_all(&body).await.expect("the whole body is accepted");
        } else {
            for part in body.chunks(1 << 20) {
                s.write_all(format!("{:x}\r\n", part.len()).as_bytes()).await.expect("the whole body is accepted");
                s.write_all(part).await.unwrap();
                s.write_all(b"\r\n").await.unwrap();
            }
            s.write_all(b"0\r\n\r\n").await.unwrap();
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains("}\n") {
            let n = tokio::time::timeout(PATIENCE, s.read(&mut buf)).await.expect("an answer").expect("no reset");
            assert!(n > 0, "{framing}: closed after {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 413"), "{framing}: {text}");
        assert!(text.contains(r#""code":"request_too_large""#), "{framing}: {text}");
    }
}

/// A flood of silent sockets past `limits.max_connections` costs the flooder its oldest
/// sockets, not other clients their access: a request sent after the flood is answered at
/// once, long before the header deadline would have freed anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_silent_sockets_cannot_lock_clients_out() {
    let mock = Mock::start().await;
    let config = format!(
        "providers:\n  local:\n    base_url: {}/v1\ntimeouts:\n  request_header_seconds: 60\nlimits:\n  max_connections: 20\n",
        mock.url()
    );
    let gw = Gateway::start(&config);
    let mut flood = Vec::new();
    for _ in 0..60 {
        flood.push(TcpStream::connect(gw.addr).await.unwrap());
    }
    let started = Instant::now();
    let r = tokio::time::timeout(PATIENCE, common::send("GET", &gw.url("/health"), &[], "")).await.expect("answered");
    assert_eq!(r.status.as_u16(), 200);
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    // The oldest silent sockets were closed to make room.
    let (got, _) = until_closed(&mut flood[0]).await;
    assert!(got.is_empty());
}

/// Requests hyper cannot parse (a garbage request line, headers over its limit, a control
/// byte in the target) are answered with a JSON error body, not a bare status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_a_json_error_body() {
    let mock = Mock::start().await;
    let gw = Gateway::start(&config(&mock, ""));
    let huge = format!("GET /health HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n", "a".repeat(1 << 20));
    for (what, payload, status) in [
        ("garbage", b"GARBAGE LINE\r\n\r\n".to_vec(), "400"),
        ("huge headers", huge.into_bytes(), "431"),
        ("a control byte", b"GET /\x01 HTTP/1.1\r\n\r\n".to_vec(), "400"),
    ] {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        let _ = s.write_all(&payload).await;
        let (got, _) = until_closed(&mut s).await;
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{what}: {text}");
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: {e}: {text}"));
        assert_eq!(v["error"]["type"], "invalid_request_error", "{what}");
    }
}
