//! A fault-injecting upstream over raw TCP, so it can send anything: it reads each request
//! (method, path, JSON body), answers `GET /v1/models` normally (health probes pass), and
//! answers POSTs as a Chat Completions (`/v1/chat/completions`) or Anthropic Messages
//! (`/v1/messages`) upstream would — then breaks the answer as its [`Fault`] says. One
//! request per connection (`Connection: close`).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A whole, correct answer.
    None,
    /// Nothing listens on the address.
    Refused,
    /// Reads the request, then resets the connection (RST) without a byte.
    ResetBeforeHeaders,
    /// Sends the headers and half the body, then resets.
    ResetAfterHeaders,
    /// Reads the request and never answers.
    StallBeforeHeaders,
    /// Sends the headers and half the body, then nothing (the connection stays open).
    StallAfterHeaders,
    /// Answers with bytes that are not HTTP.
    Garbage,
    /// A whole answer with 150 extra header fields (more than hyper reads).
    TooManyHeaders,
    /// A body delimited by the connection's close (no length, not chunked), closed half-way.
    CloseDelimitedCut,
    /// `Content-Length` half the body's length, the whole body sent.
    ShortContentLength,
    /// `Content-Length` longer than the body sent, then closed.
    LongContentLength,
    /// A whole answer of about this many bytes of text.
    Huge(usize),
    /// An answer that never ends (events, or one JSON string, forever).
    Infinite,
    /// A whole answer whose text is one event (one SSE line) of this many bytes.
    BigLine(usize),
    /// An error status with the upstream dialect's error body.
    Status(u16),
    /// A whole stream declared by its `Content-Length`, its first event sent at once and the
    /// rest after a pause of two seconds.
    PausedFixedLength,
    /// 200 with a JSON document that is no answer (`{"object":"unknown"}`), streamed or not.
    NotAnAnswer,
    /// A whole, correct answer from an HTTP/1.0 server (Python's `http.server` by default):
    /// the body's length, or a stream that ends when the connection closes.
    Http10,
    /// A whole, correct answer, chunked (streamed or not), with a trailer field after its last
    /// chunk (legal HTTP/1.1, which hyper reads as a frame of its own).
    Trailers,
    /// 200 with two lengths, `Content-Length: 2` and chunked framing (which overrides it), around
    /// [`TWO_LENGTHS_BODY`]: JSON followed by the bytes of another response.
    TwoLengths,
}

/// What [`Fault::TwoLengths`] sends, whole.
pub const TWO_LENGTHS_BODY: &str = "{\"ok\":true}HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";

/// The upstream's dialect, from the request's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    Chat,
    Anthropic,
}

pub struct Faulty {
    pub addr: SocketAddr,
    /// POSTs received.
    pub posts: Arc<AtomicUsize>,
    /// Never-ending answers started, and those whose connection the gateway closed.
    pub infinite_started: Arc<AtomicUsize>,
    pub infinite_closed: Arc<AtomicUsize>,
}

/// Picks the fault for each request.
pub type Chooser = Arc<dyn Fn() -> Fault + Send + Sync>;

impl Faulty {
    /// Every request answered with `fault`.
    pub async fn start(fault: Fault) -> Faulty {
        Self::start_with(fault, Arc::new(move || fault)).await
    }

    /// Each request answered with the fault `choose` picks (the chaos soak's random faults);
    /// `listening` is `Fault::Refused` for an address where nothing listens.
    pub async fn start_with(listening: Fault, choose: Chooser) -> Faulty {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let posts = Arc::new(AtomicUsize::new(0));
        let infinite_started = Arc::new(AtomicUsize::new(0));
        let infinite_closed = Arc::new(AtomicUsize::new(0));
        let me = Faulty {
            addr,
            posts: posts.clone(),
            infinite_started: infinite_started.clone(),
            infinite_closed: infinite_closed.clone(),
        };
        if listening == Fault::Refused {
            drop(listener);
            return me;
        }
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let _ = stream.set_nodelay(true);
                let counters = (posts.clone(), infinite_started.clone(), infinite_closed.clone());
                let choose = choose.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, &*choose, counters).await;
                });
            }
        });
        me
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn posts(&self) -> usize {
        self.posts.load(Ordering::SeqCst)
    }
}

/// A body as pieces: `head`, then `repeat` `times` times, then `tail` (so a huge body is
/// never held whole).
pub struct Body {
    pub head: Vec<u8>,
    pub repeat: Vec<u8>,
    pub times: usize,
    pub tail: Vec<u8>,
    pub content_type: &'static str,
}

impl Body {
    pub fn len(&self) -> usize {
        (self.head.len() + self.tail.len()).saturating_add(self.repeat.len().saturating_mul(self.times))
    }

    /// The pieces, in order.
    fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(&self.head[..])
            .chain(std::iter::repeat_n(&self.repeat[..], self.times))
            .chain(std::iter::once(&self.tail[..]))
    }
}

/// The text pieces an answer is made of: `n` bytes in pieces of at most `piece`.
fn text_piece(piece: usize) -> String {
    "lorem ipsum ".repeat(piece.div_ceil(12))[..piece].to_owned()
}

/// A whole answer in `upstream`'s dialect with `times` × `piece` bytes of text: one JSON
/// document, or an event stream with one content event per piece.
pub fn answer(upstream: Upstream, stream: bool, piece: usize, times: usize) -> Body {
    let text = text_piece(piece);
    match (upstream, stream) {
        (Upstream::Chat, false) => Body {
            head: br#"{"id":"chatcmpl-f","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":""#.to_vec(),
            repeat: text.into_bytes(),
            times,
            tail: br#""},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}"#.to_vec(),
            content_type: "application/json",
        },
        (Upstream::Chat, true) => {
            let chunk = |body: &str| format!("data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",{body}}}\n\n");
            Body {
                head: chunk(r#""choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]"#).into_bytes(),
                repeat: chunk(&format!(r#""choices":[{{"index":0,"delta":{{"content":"{text}"}},"finish_reason":null}}]"#)).into_bytes(),
                times,
                tail: (chunk(r#""choices":[{"index":0,"delta":{},"finish_reason":"stop"}]"#)
                    + &chunk(r#""choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}"#)
                    + "data: [DONE]\n\n")
                    .into_bytes(),
                content_type: "text/event-stream",
            }
        }
        (Upstream::Anthropic, false) => Body {
            head: br#"{"id":"msg_f","type":"message","role":"assistant","model":"claude-f","content":[{"type":"text","text":""#.to_vec(),
            repeat: text.into_bytes(),
            times,
            tail: br#""}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":5}}"#.to_vec(),
            content_type: "application/json",
        },
        (Upstream::Anthropic, true) => {
            let event = |name: &str, data: &str| format!("event: {name}\ndata: {data}\n\n");
            Body {
                head: (event("message_start", r#"{"type":"message_start","message":{"id":"msg_f","type":"message","role":"assistant","model":"claude-f","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}}}"#)
                    + &event("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#))
                    .into_bytes(),
                repeat: event("content_block_delta", &format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{text}"}}}}"#)).into_bytes(),
                times,
                tail: (event("content_block_stop", r#"{"type":"content_block_stop","index":0}"#)
                    + &event("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":5}}"#)
                    + &event("message_stop", r#"{"type":"message_stop"}"#))
                    .into_bytes(),
                content_type: "text/event-stream",
            }
        }
    }
}

/// The upstream dialect's error body for `status`.
fn error_body(upstream: Upstream, status: u16) -> Vec<u8> {
    match upstream {
        Upstream::Chat => {
            format!(r#"{{"error":{{"message":"upstream says {status}","type":"server_error","code":"e{status}"}}}}"#)
        }
        Upstream::Anthropic => {
            let kind = if status == 429 { "rate_limit_error" } else { "api_error" };
            format!(r#"{{"type":"error","error":{{"type":"{kind}","message":"upstream says {status}"}}}}"#)
        }
    }
    .into_bytes()
}

/// How a response's body is delimited.
#[derive(Clone, Copy)]
enum Framing {
    Length(usize),
    Chunked,
    /// Chunked, with a trailer section after the last chunk.
    ChunkedWithTrailer,
    Close,
}

fn head(status: u16, content_type: &str, framing: Framing) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let mut h = format!("HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\nconnection: close\r\n");
    if status == 429 {
        h.push_str("retry-after: 7\r\n");
    }
    match framing {
        Framing::Length(n) => h.push_str(&format!("content-length: {n}\r\n")),
        Framing::Chunked => h.push_str("transfer-encoding: chunked\r\n"),
        Framing::ChunkedWithTrailer => h.push_str("transfer-encoding: chunked\r\ntrailer: x-checksum\r\n"),
        Framing::Close => {}
    }
    h.push_str("\r\n");
    h.into_bytes()
}

/// Writes the first `limit` bytes of `body`, framed.
async fn write_body(stream: &mut TcpStream, body: &Body, framing: Framing, limit: usize) -> std::io::Result<()> {
    let mut left = limit;
    for piece in body.pieces() {
        if left == 0 {
            break;
        }
        let piece = &piece[..piece.len().min(left)];
        left -= piece.len();
        if piece.is_empty() {
            continue;
        }
        if let Framing::Chunked | Framing::ChunkedWithTrailer = framing {
            stream.write_all(format!("{:x}\r\n", piece.len()).as_bytes()).await?;
            stream.write_all(piece).await?;
            stream.write_all(b"\r\n").await?;
        } else {
            stream.write_all(piece).await?;
        }
    }
    match (framing, limit >= body.len()) {
        (Framing::Chunked, true) => stream.write_all(b"0\r\n\r\n").await?,
        (Framing::ChunkedWithTrailer, true) => stream.write_all(b"0\r\nx-checksum: 5d41402a\r\n\r\n").await?,
        _ => {}
    }
    stream.flush().await
}

/// Waits until the peer closes (or 30 s).
async fn until_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// Reads one request: method, path and body.
pub async fn read_request(stream: &mut TcpStream) -> std::io::Result<(String, String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut words = head.split_whitespace();
    let method = words.next().unwrap_or_default().to_owned();
    let path = words.next().unwrap_or_default().to_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok((method, path, body))
}

/// A whole answer: streams chunked, the rest with their length.
async fn whole(stream: &mut TcpStream, body: Body, streamed: bool) -> std::io::Result<()> {
    let framing = if streamed { Framing::Chunked } else { Framing::Length(body.len()) };
    stream.write_all(&head(200, body.content_type, framing)).await?;
    write_body(stream, &body, framing, usize::MAX).await
}

async fn serve(
    mut stream: TcpStream,
    choose: &(dyn Fn() -> Fault + Send + Sync),
    (posts, infinite_started, infinite_closed): (Arc<AtomicUsize>, Arc<AtomicUsize>, Arc<AtomicUsize>),
) -> std::io::Result<()> {
    let (method, path, body) = read_request(&mut stream).await?;
    if method == "GET" {
        let models = br#"{"object":"list","data":[{"id":"m","object":"model","created":1,"owned_by":"me"}]}"#;
        stream.write_all(&head(200, "application/json", Framing::Length(models.len()))).await?;
        stream.write_all(models).await?;
        return stream.flush().await;
    }
    posts.fetch_add(1, Ordering::SeqCst);
    let fault = choose();
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let streamed = request["stream"] == true;
    let upstream = if path.starts_with("/v1/messages") { Upstream::Anthropic } else { Upstream::Chat };
    let normal = answer(upstream, streamed, 12, 4);
    let framing = |b: &Body| if streamed { Framing::Chunked } else { Framing::Length(b.len()) };
    match fault {
        Fault::None | Fault::Refused => whole(&mut stream, normal, streamed).await,
        Fault::ResetBeforeHeaders => {
            stream.set_zero_linger()?;
            Ok(())
        }
        Fault::ResetAfterHeaders => {
            let framing = framing(&normal);
            stream.write_all(&head(200, normal.content_type, framing)).await?;
            write_body(&mut stream, &normal, framing, normal.len() / 2).await?;
            stream.set_zero_linger()?;
            Ok(())
        }
        Fault::StallBeforeHeaders => {
            until_closed(&mut stream).await;
            Ok(())
        }
        Fault::StallAfterHeaders => {
            let framing = framing(&normal);
            stream.write_all(&head(200, normal.content_type, framing)).await?;
            write_body(&mut stream, &normal, framing, normal.len() / 2).await?;
            until_closed(&mut stream).await;
            Ok(())
        }
        Fault::Garbage => {
            stream.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\x00\x01\x02 this is not HTTP\r\n\r\n").await?;
            stream.flush().await
        }
        Fault::TooManyHeaders => {
            let mut head = head(200, normal.content_type, Framing::Length(normal.len()));
            let fields: String = (0..150).map(|i| format!("x-extra-{i}: {i}\r\n")).collect();
            head.splice(head.len() - 2..head.len() - 2, fields.into_bytes());
            stream.write_all(&head).await?;
            write_body(&mut stream, &normal, Framing::Length(normal.len()), usize::MAX).await
        }
        Fault::CloseDelimitedCut => {
            stream.write_all(&head(200, normal.content_type, Framing::Close)).await?;
            write_body(&mut stream, &normal, Framing::Close, normal.len() / 2).await
        }
        Fault::ShortContentLength => {
            stream.write_all(&head(200, normal.content_type, Framing::Length(normal.len() / 2))).await?;
            write_body(&mut stream, &normal, Framing::Close, usize::MAX).await
        }
        Fault::LongContentLength => {
            stream.write_all(&head(200, normal.content_type, Framing::Length(normal.len() + 1000))).await?;
            write_body(&mut stream, &normal, Framing::Close, usize::MAX).await
        }
        Fault::Huge(bytes) => {
            let piece = 16 << 10;
            whole(&mut stream, answer(upstream, streamed, piece, bytes.div_ceil(piece)), streamed).await
        }
        Fault::BigLine(bytes) => whole(&mut stream, answer(upstream, streamed, bytes, 1), streamed).await,
        Fault::Infinite => {
            infinite_started.fetch_add(1, Ordering::SeqCst);
            let forever = answer(upstream, streamed, 16 << 10, usize::MAX);
            let framing = if streamed { Framing::Chunked } else { Framing::Close };
            let sent = async {
                stream.write_all(&head(200, forever.content_type, framing)).await?;
                write_body(&mut stream, &forever, framing, usize::MAX).await
            };
            // Ends only when a write fails: the gateway closed the connection.
            let result = tokio::time::timeout(Duration::from_secs(60), sent).await;
            if matches!(result, Ok(Err(_))) {
                infinite_closed.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        }
        Fault::PausedFixedLength => {
            let framing = Framing::Length(normal.len());
            stream.write_all(&head(200, normal.content_type, framing)).await?;
            stream.write_all(&normal.head).await?;
            stream.flush().await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let rest = Body { head: Vec::new(), ..normal };
            write_body(&mut stream, &rest, framing, usize::MAX).await
        }
        Fault::NotAnAnswer => {
            let body = br#"{"object":"unknown"}"#;
            stream.write_all(&head(200, "application/json", Framing::Length(body.len()))).await?;
            stream.write_all(body).await?;
            stream.flush().await
        }
        Fault::Http10 => {
            // HTTP/1.0 has no chunked encoding.
            let framing = if streamed { Framing::Close } else { Framing::Length(normal.len()) };
            let mut h = head(200, normal.content_type, framing);
            h[..8].copy_from_slice(b"HTTP/1.0");
            stream.write_all(&h).await?;
            write_body(&mut stream, &normal, framing, usize::MAX).await
        }
        Fault::TwoLengths => {
            let mut h = head(200, "application/json", Framing::Chunked);
            h.splice(h.len() - 2..h.len() - 2, *b"content-length: 2\r\n");
            stream.write_all(&h).await?;
            let body = Body {
                head: TWO_LENGTHS_BODY.as_bytes().to_vec(),
                repeat: Vec::new(),
                times: 0,
                tail: Vec::new(),
                content_type: "application/json",
            };
            write_body(&mut stream, &body, Framing::Chunked, usize::MAX).await
        }
        Fault::Trailers => {
            stream.write_all(&head(200, normal.content_type, Framing::ChunkedWithTrailer)).await?;
            write_body(&mut stream, &normal, Framing::ChunkedWithTrailer, usize::MAX).await
        }
        Fault::Status(status) => {
            let body = error_body(upstream, status);
            stream.write_all(&head(status, "application/json", Framing::Length(body.len()))).await?;
            stream.write_all(&body).await?;
            stream.flush().await
        }
    }
}
