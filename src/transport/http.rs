//! One pooled hyper client per endpoint: TCP_NODELAY, a connect timeout, rustls with the
//! webpki roots for https, HTTP/2 when the upstream offers it through ALPN. An endpoint
//! behind a zrok share gets the same client with a dialer that opens each connection
//! through its zrok access, so forwarding, health checks and failover treat both alike.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpStream, UnixStream};

use crate::transport::zrok::access::Access;

pub type HttpClient = Client<HttpsConnector<Dialer>, Full<Bytes>>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How a connection is opened: TCP, or through a zrok access.
#[derive(Clone)]
pub enum Dialer {
    Tcp(HttpConnector),
    Zrok(Arc<Access>),
}

pub enum Conn {
    Tcp(TokioIo<TcpStream>),
    Unix(TokioIo<UnixStream>),
}

/// How an endpoint's clients connect and keep connections (`timeouts.connect_seconds`,
/// `timeouts.upstream_idle_seconds`): part of its identity, so a reload that changes them
/// builds new clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connecting {
    pub timeout: Duration,
    /// `None`: [`PLAIN_IDLE`] or [`KEPT_IDLE`], by how the endpoint is reached.
    pub idle: Option<Duration>,
}

/// How long an idle plain-HTTP connection is kept for another request: under the 5 s after
/// which llama.cpp's server, uvicorn (vLLM, SGLang) and Node close an idle keep-alive
/// connection. A request sent on a connection as its server closes it fails without an
/// answer (the close and the request cross), and the endpoint is marked down; a new
/// connection costs a TCP handshake.
const PLAIN_IDLE: Duration = Duration::from_secs(4);

/// How long other idle connections are kept: over TLS (the cloud APIs keep connections for
/// minutes) a new one costs a TLS handshake, tens of milliseconds away, and through a zrok
/// share a Ziti dial.
const KEPT_IDLE: Duration = Duration::from_secs(90);

impl Connecting {
    /// The idle timeout for a TCP endpoint at `base` (its URL; the compiler lowercases the
    /// scheme).
    pub fn idle_for(&self, base: &str) -> Duration {
        self.idle.unwrap_or(if base.starts_with("https:") { KEPT_IDLE } else { PLAIN_IDLE })
    }

    /// The idle timeout for an endpoint reached through a zrok share.
    pub fn idle_through_share(&self) -> Duration {
        self.idle.unwrap_or(KEPT_IDLE)
    }
}

/// A TCP client for the endpoint at `base`.
pub fn client(connecting: Connecting, base: &str) -> HttpClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connecting.timeout));
    http.enforce_http(false);
    http.set_keepalive(Some(Duration::from_secs(60)));
    client_with(Dialer::Tcp(http), connecting.idle_for(base))
}

/// A client that dials with `dialer`, dropping connections idle for `idle`.
pub fn client_with(dialer: Dialer, idle: Duration) -> HttpClient {
    let https = HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(dialer);
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(idle)
        .build(https)
}

impl tower_service::Service<Uri> for Dialer {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Dialer::Tcp(http) => http.poll_ready(cx).map_err(Into::into),
            Dialer::Zrok(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        match self {
            Dialer::Tcp(http) => {
                let connecting = http.call(uri);
                Box::pin(async move { Ok(Conn::Tcp(connecting.await?)) })
            }
            Dialer::Zrok(access) => {
                let access = access.clone();
                Box::pin(async move { Ok(Conn::Unix(TokioIo::new(access.dial().await?))) })
            }
        }
    }
}

impl Connection for Conn {
    /// Nothing extra: a TCP stream's own `connected` attaches its addresses, which the client
    /// then copies into every response's extensions (three allocations a request) and nothing
    /// here reads.
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_flush(cx),
            Conn::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Tcp(s) => s.is_write_vectored(),
            Conn::Unix(s) => s.is_write_vectored(),
        }
    }
}

/// A URL fit for a log: any `user:password@` before the host replaced by `***@`.
pub fn without_userinfo(url: &str) -> String {
    let rest_at = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[rest_at..].find(['/', '?', '#']).map_or(url.len(), |i| rest_at + i);
    match url[rest_at..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..rest_at], &url[rest_at + at..]),
        None => url.to_owned(),
    }
}

/// A transport error as a person reads it: what went wrong (connection refused, reset,
/// timed out, name resolution, TLS…) from the error's `source()` chain, instead of the
/// client's `Debug` text. Never contains a URL (so no userinfo).
pub fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let cause = cause(e);
    match (e.is_connect(), cause) {
        (true, Some(cause)) => format!("could not connect: {cause}"),
        (true, None) => "could not connect".to_owned(),
        (false, Some(cause)) => cause,
        (false, None) => "the connection failed before a response".to_owned(),
    }
}

/// Whether the upstream answered with bytes that cannot be read as an HTTP response (none at
/// all, or one past hyper's limits: over 100 header fields, a head over its buffer), rather than
/// failing to answer.
pub fn is_not_http(e: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(e), |err| err.source())
        .any(|err| err.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_parse))
}

/// The most telling description in an error's `source()` chain.
pub fn cause(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut found: Option<String> = None;
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            let what = match io.kind() {
                ConnectionRefused => "connection refused".to_owned(),
                ConnectionReset => "connection reset by the peer".to_owned(),
                ConnectionAborted => "connection aborted".to_owned(),
                TimedOut => "timed out".to_owned(),
                BrokenPipe => "connection closed while sending (broken pipe)".to_owned(),
                UnexpectedEof => "connection closed before a complete response".to_owned(),
                NotFound => "not found".to_owned(),
                PermissionDenied => "permission denied".to_owned(),
                HostUnreachable | NetworkUnreachable => "host or network unreachable".to_owned(),
                AddrNotAvailable => "address not available".to_owned(),
                _ => match io.get_ref() {
                    // A wrapped error (rustls puts its own inside an io::Error): keep walking.
                    Some(inner) => {
                        next = Some(inner);
                        continue;
                    }
                    None => io.to_string(),
                },
            };
            return Some(what);
        }
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(format!("TLS: {tls}"));
        }
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            let what = if h.is_incomplete_message() {
                Some("connection closed before a complete response")
            } else if h.is_timeout() {
                Some("timed out")
            } else if h.is_closed() || h.is_canceled() {
                Some("connection closed")
            } else if h.is_parse() {
                Some("the upstream's response is not valid HTTP")
            } else {
                None
            };
            if let Some(what) = what {
                found.get_or_insert_with(|| what.to_owned());
            }
        } else {
            let text = err.to_string();
            if text.starts_with("dns error") {
                found = Some("name resolution failed (DNS)".to_owned());
            } else if text.contains("timed out") || text.contains("timeout") {
                found.get_or_insert_with(|| "timed out".to_owned());
            }
        }
        next = err.source();
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_masked() {
        assert_eq!(without_userinfo("https://bob:hunter2@api.example:8443/v1"), "https://***@api.example:8443/v1");
        assert_eq!(without_userinfo("http://127.0.0.1:8080/x@y"), "http://127.0.0.1:8080/x@y");
        assert_eq!(without_userinfo("https://api.zrok.io"), "https://api.zrok.io");
    }

    #[test]
    fn idle_connections_are_kept_by_scheme_unless_configured() {
        let default = Connecting { timeout: Duration::from_secs(2), idle: None };
        assert_eq!(default.idle_for("http://127.0.0.1:8080"), PLAIN_IDLE);
        assert_eq!(default.idle_for("https://api.openai.com/v1"), KEPT_IDLE);
        let set = Connecting { idle: Some(Duration::from_secs(1)), ..default };
        for base in ["http://127.0.0.1:8080", "https://api.openai.com/v1"] {
            assert_eq!(set.idle_for(base), Duration::from_secs(1));
        }
        assert_eq!(default.idle_through_share(), KEPT_IDLE);
        assert_eq!(set.idle_through_share(), Duration::from_secs(1));
    }

    async fn fail(url: &str) -> String {
        let client = client(Connecting { timeout: Duration::from_secs(2), idle: None }, url);
        let req = http::Request::get(url).body(Full::new(Bytes::new())).unwrap();
        describe(&client.request(req).await.unwrap_err())
    }

    #[tokio::test]
    async fn transport_errors_read_as_plain_words() {
        // A port nothing listens on: bind one, note it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let refused = fail(&format!("http://user:secret@127.0.0.1:{port}/v1/models")).await;
        assert_eq!(refused, "could not connect: connection refused");
        // A server that accepts and hangs up at once.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                drop(s);
            }
        });
        let closed = fail(&format!("http://{addr}/")).await;
        assert!(closed.starts_with("connection closed"), "{closed}");
        // TLS to a plain-HTTP server.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
            }
        });
        let tls = fail(&format!("https://{addr}/")).await;
        assert!(tls.contains("TLS"), "{tls}");
        for text in [&refused, &closed, &tls] {
            assert!(!text.contains("Error(") && !text.contains("secret") && !text.contains("127.0.0.1"), "{text}");
        }
    }
}
