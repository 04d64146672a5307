//! The listeners: HTTP/1.1 keep-alive and h2c on a TCP port and/or a zrok share, TCP_NODELAY,
//! connection deadlines (`connection.rs`: silent and idle connections are closed), graceful
//! shutdown that stops accepting and gives in-flight requests (streams included) a drain
//! deadline.

use std::future::Future;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::connection::{Due, Limits, Registry, Tracked, Watch, Watched};
use crate::proxy;
use crate::state::Shared;

/// Where connections come from: a TCP listener, a zrok share's accepted streams, or both.
pub struct Listeners {
    pub tcp: Option<TcpListener>,
    pub zrok: Option<tokio::sync::mpsc::Receiver<std::os::unix::net::UnixStream>>,
}

/// Serves until `shutdown` resolves, then drains for at most `drain`. Returns true when
/// every connection finished within the deadline.
pub async fn serve(listeners: Listeners, shared: Shared, shutdown: impl Future<Output = ()>, drain: Duration) -> bool {
    let Listeners { tcp, mut zrok } = listeners;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Header and idle deadlines are the connection watch's: hyper's header timer also runs
    // while a keep-alive connection is idle, which would make the idle timeout meaningless.
    builder.http1().timer(TokioTimer::new()).header_read_timeout(None);
    builder.http2().timer(TokioTimer::new());
    // Every connection holds a receiver; `closed()` resolves when the last one ended.
    let (graceful, _) = watch::channel(false);
    let limit = shared.load().plan.server.max_connections.unwrap_or_else(default_max_connections);
    let registry = std::sync::Arc::new(Registry::new(limit));
    tokio::spawn(timer_heartbeat());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = async { match &tcp { Some(l) => l.accept().await, None => std::future::pending().await } } => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: back off instead of spinning.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                spawn_connection(&builder, &graceful, &registry, stream, &shared, peer.to_string());
            }
            Some(stream) = async { match zrok.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                let stream = match stream.set_nonblocking(true).and_then(|()| tokio::net::UnixStream::from_std(stream)) {
                    Ok(s) => s,
                    Err(e) => {
                        warn!(error = %e, "cannot use a zrok connection");
                        continue;
                    }
                };
                spawn_connection(&builder, &graceful, &registry, stream, &shared, "zrok".into());
            }
            () = &mut shutdown => break,
        }
    }
    drop(tcp);
    drop(zrok);
    info!("shutting down: no new connections; draining in-flight requests for up to {} s", drain.as_secs());
    let _ = graceful.send(true);
    match tokio::time::timeout(drain, graceful.closed()).await {
        Ok(()) => {
            info!("all connections finished");
            true
        }
        Err(_) => {
            warn!("drain deadline passed; closing remaining connections");
            false
        }
    }
}

fn spawn_connection<S>(
    builder: &auto::Builder<TokioExecutor>,
    graceful: &watch::Sender<bool>,
    registry: &Registry,
    stream: S,
    shared: &Shared,
    peer: String,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let server = &shared.load().plan.server;
    let limits = Limits { header: server.request_header_timeout, idle: server.idle_connection_timeout };
    let watch = Watch::new();
    registry.admit(&watch, limits);
    let io = TokioIo::new(Watched::new(stream, watch.clone()));
    let shared = shared.clone();
    let requests = watch.clone();
    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let busy = requests.begin(req.version());
        let answer = proxy::handle(req, shared.clone());
        async move { answer.await.map(|resp| resp.map(|body| Tracked::new(body, busy))) }
    });
    let conn = builder.serve_connection(io, service).into_owned();
    let mut shutdown = graceful.subscribe();
    tokio::spawn(async move {
        tokio::pin!(conn);
        let far = || tokio::time::Instant::now() + Duration::from_secs(86_400);
        let timer = tokio::time::sleep_until(far());
        tokio::pin!(timer);
        // Set once an idle connection's graceful shutdown started: it is dropped then.
        let mut closing: Option<tokio::time::Instant> = None;
        let mut draining = false;
        loop {
            let wake = watch.wake.notified();
            let deadline = match (closing, watch.due(limits)) {
                (Some(at), _) | (None, Due::Headers(at) | Due::Idle(at)) => at,
                // Busy: nothing due; keep a far timer rather than re-arming one per request.
                (None, Due::Busy) if timer.deadline() > tokio::time::Instant::now() + Duration::from_secs(3600) => {
                    timer.deadline()
                }
                (None, Due::Busy) => far(),
            };
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            tokio::select! {
                ended = conn.as_mut() => {
                    if let Err(e) = ended {
                        debug!(%peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                () = &mut timer => {
                    let now = tokio::time::Instant::now();
                    if closing.is_some_and(|at| at <= now) {
                        debug!(%peer, "idle connection did not close in time; dropped");
                        return;
                    }
                    match watch.due(limits) {
                        Due::Headers(at) if at <= now => {
                            debug!(%peer, "no request headers in time (timeouts.request_header_seconds); closed");
                            return;
                        }
                        Due::Idle(at) if at <= now && closing.is_none() => {
                            debug!(%peer, "idle (timeouts.idle_connection_seconds); closing");
                            conn.as_mut().graceful_shutdown();
                            closing = Some(now + limits.header);
                        }
                        _ => {}
                    }
                }
                () = wake => {
                    if watch.is_shed() && watch.due(limits) != Due::Busy {
                        debug!(%peer, "idle connection closed to make room (limits.max_connections)");
                        return;
                    }
                }
                changed = shutdown.changed(), if !draining => {
                    draining = true;
                    if changed.is_ok() {
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        }
    });
}

/// Half the file-descriptor limit: each proxied request may also hold an upstream connection.
fn default_max_connections() -> usize {
    let (soft, _) = rlimit::Resource::NOFILE.get().unwrap_or((1024, 1024));
    usize::try_from(soft / 2).unwrap_or(usize::MAX).clamp(64, 1 << 20)
}

/// Raises the soft file-descriptor limit to the hard one (often 1,024 by default, which a
/// few hundred idle sockets and their upstream connections would exhaust).
pub fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => debug!("file-descriptor limit: {n}"),
        Err(e) => warn!("cannot raise the file-descriptor limit: {e}"),
    }
}

/// Keeps a timer due within a second at all times. Every request arms timers (header read,
/// first byte) due much later; tokio wakes its driver with a syscall whenever a new timer is
/// due before the earliest pending one, which with no other timers is every request: a
/// write and an extra epoll_wait, about 10 % of a proxied request's CPU. One tick a second
/// costs almost nothing.
async fn timer_heartbeat() {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
    }
}
