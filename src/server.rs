//! The listeners: HTTP/1.1 keep-alive and h2c on a TCP port and/or a zrok share, TCP_NODELAY,
//! connection deadlines (`connection.rs`: silent and idle connections are closed), the
//! serving threads connections are handed to (`shard.rs`), graceful shutdown that stops
//! accepting and gives in-flight requests (streams included) on every thread a drain deadline.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
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
/// every connection finished within the deadline. Connections are spread round-robin over
/// this thread and [`crate::shard::count`]` - 1` more, each with its own runtime.
pub async fn serve(listeners: Listeners, shared: Shared, shutdown: impl Future<Output = ()>, drain: Duration) -> bool {
    let Listeners { tcp, mut zrok } = listeners;
    let builder = connection_builder();
    // Every connection holds a receiver; `closed()` resolves when the last one ended.
    let (graceful, _) = watch::channel(false);
    let limit = shared.load().plan.server.max_connections.unwrap_or_else(default_max_connections);
    let registry = Arc::new(Registry::new(limit));
    tokio::spawn(timer_heartbeat());
    let mut shards = Vec::new();
    for i in 1..crate::shard::count() {
        match Shard::start(i, &shared, &registry) {
            Ok(shard) => shards.push(shard),
            Err(e) => warn!("cannot start serving thread {i}: {e}; serving on fewer threads"),
        }
    }
    let mut next = 0usize;
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
                next = (next + 1) % (shards.len() + 1);
                let stream = match next.checked_sub(1).map(|i| &shards[i]) {
                    // Served here after all if that thread is gone.
                    Some(shard) => match shard.hand(stream, peer.to_string()) {
                        None => continue,
                        Some(stream) => stream,
                    },
                    None => stream,
                };
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
    registry.drain();
    let deadline = tokio::time::Instant::now() + drain;
    let others: Vec<_> = shards.into_iter().map(|s| s.finish(deadline)).collect();
    let mut finished = tokio::time::timeout_at(deadline, graceful.closed()).await.is_ok();
    for other in others {
        // Bounded even if that thread is stuck: the process must exit.
        let report = tokio::time::timeout_at(deadline + Duration::from_secs(1), other).await;
        finished &= matches!(report, Ok(Ok(true)));
    }
    if finished {
        info!("all connections finished");
    } else {
        warn!("drain deadline passed; closing remaining connections");
    }
    finished
}

fn connection_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Header and idle deadlines are the connection watch's: hyper's header timer also runs
    // while a keep-alive connection is idle, which would make the idle timeout meaningless.
    builder.http1().timer(TokioTimer::new()).header_read_timeout(None);
    builder.http2().timer(TokioTimer::new());
    builder
}

enum ToShard {
    Connection(std::net::TcpStream, String),
    /// Stop: drain this thread's connections until the deadline.
    Drain(tokio::time::Instant),
}

/// A serving thread other than the main one: it takes the connections handed to it.
struct Shard {
    inbox: tokio::sync::mpsc::UnboundedSender<ToShard>,
    /// Whether its connections all finished within the drain deadline.
    done: tokio::sync::oneshot::Receiver<bool>,
}

impl Shard {
    fn start(i: usize, shared: &Shared, registry: &Arc<Registry>) -> std::io::Result<Shard> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (inbox, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (report, done) = tokio::sync::oneshot::channel();
        let (shared, registry) = (shared.clone(), registry.clone());
        std::thread::Builder::new().name(format!("serve-{i}")).spawn(move || {
            crate::shard::enter(i);
            let finished = runtime.block_on(async move {
                tokio::spawn(timer_heartbeat());
                let builder = connection_builder();
                let (graceful, _) = watch::channel(false);
                while let Some(message) = rx.recv().await {
                    match message {
                        ToShard::Connection(stream, peer) => match TcpStream::from_std(stream) {
                            Ok(stream) => spawn_connection(&builder, &graceful, &registry, stream, &shared, peer),
                            Err(e) => warn!(error = %e, "cannot serve a connection on thread {i}"),
                        },
                        ToShard::Drain(deadline) => {
                            return tokio::time::timeout_at(deadline, graceful.closed()).await.is_ok();
                        }
                    }
                }
                true
            });
            // Whatever is left past the deadline is dropped with the runtime — before the
            // report, so their access records are queued before the log closes.
            runtime.shutdown_background();
            let _ = report.send(finished);
        })?;
        Ok(Shard { inbox, done })
    }

    /// Hands a connection over; gives it back if the thread is gone (a stream that cannot
    /// even leave this thread's reactor is dropped: it is broken).
    fn hand(&self, stream: TcpStream, peer: String) -> Option<TcpStream> {
        let std = stream.into_std().ok()?;
        let ToShard::Connection(std, _) = self.inbox.send(ToShard::Connection(std, peer)).err()?.0 else { return None };
        TcpStream::from_std(std).ok()
    }

    fn finish(self, deadline: tokio::time::Instant) -> tokio::sync::oneshot::Receiver<bool> {
        let _ = self.inbox.send(ToShard::Drain(deadline));
        self.done
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
    // Held, never polled: the server's `closed()` waits for the last one to go.
    let alive = graceful.subscribe();
    tokio::spawn(async move {
        let _alive = alive;
        tokio::pin!(conn);
        // Requests move the deadlines without waking this task (that would cost a wake-up and
        // a timer reset per request): it looks again at least every `step`. Every deadline a
        // request can set is an event after the last look plus a limit no shorter than `step`,
        // so none is missed.
        let step = limits.header.min(limits.idle);
        let timer = tokio::time::sleep(step);
        tokio::pin!(timer);
        // Set once an idle connection's graceful shutdown started: it is dropped then.
        let mut closing: Option<tokio::time::Instant> = None;
        let mut draining = false;
        loop {
            let next = tokio::time::Instant::now() + step;
            let deadline = match (closing, watch.due(limits)) {
                (Some(at), _) => at,
                (None, Due::Headers(at) | Due::Idle(at)) => at.min(next),
                (None, Due::Busy) => next,
            };
            timer.as_mut().reset(deadline);
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
                () = std::future::poll_fn(|cx| watch.poll_woken(cx)) => {
                    if watch.is_draining() && !draining {
                        draining = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    if watch.is_shed() && watch.due(limits) != Due::Busy {
                        debug!(%peer, "idle connection closed to make room (limits.max_connections)");
                        return;
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
