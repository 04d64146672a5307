//! The listeners: HTTP/1.1 keep-alive and h2c on a TCP port and/or a zrok share, TCP_NODELAY,
//! graceful shutdown that stops accepting and gives in-flight requests (streams included) a
//! drain deadline.

use std::future::Future;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tracing::{info, warn};

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
    builder.http1().timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(30));
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
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
                spawn_connection(&builder, &graceful, TokioIo::new(stream), &shared, peer.to_string());
            }
            Some(stream) = async { match zrok.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                let stream = match stream.set_nonblocking(true).and_then(|()| tokio::net::UnixStream::from_std(stream)) {
                    Ok(s) => s,
                    Err(e) => {
                        warn!(error = %e, "cannot use a zrok connection");
                        continue;
                    }
                };
                spawn_connection(&builder, &graceful, TokioIo::new(stream), &shared, "zrok".into());
            }
            () = &mut shutdown => break,
        }
    }
    drop(tcp);
    drop(zrok);
    info!("shutting down: no new connections; draining in-flight requests for up to {} s", drain.as_secs());
    match tokio::time::timeout(drain, graceful.shutdown()).await {
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

fn spawn_connection<I>(
    builder: &auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
    io: I,
    shared: &Shared,
    peer: String,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let shared = shared.clone();
    let service = service_fn(move |req| proxy::handle(req, shared.clone()));
    let conn = graceful.watch(builder.serve_connection(io, service).into_owned());
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    });
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
