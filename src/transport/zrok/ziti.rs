//! The OpenZiti layer behind one trait: bind a service and receive its connections, or dial
//! one. Connections are Unix stream sockets either way (libziti bridges each Ziti connection
//! to one end of a socketpair). Calls block; callers run them on blocking threads.

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use tokio::sync::mpsc;

pub trait ZitiTransport: Send + Sync {
    /// Binds `service`; each accepted connection arrives on the channel, from a thread of
    /// its own that stops when the receiver is dropped and the next connection comes.
    fn bind(&self, service: &str) -> Result<mpsc::Receiver<UnixStream>, String>;
    fn dial(&self, service: &str) -> Result<UnixStream, String>;
}

/// Services as Unix sockets named `<dir>/<service>.sock`, for tests: one gateway binds a
/// share there and another dials it, with no OpenZiti network. Selected by
/// `LLM_GATEWAY_ZITI_FAKE_DIR`.
pub struct FakeZiti {
    pub dir: PathBuf,
}

impl FakeZiti {
    fn path(&self, service: &str) -> PathBuf {
        self.dir.join(format!("{service}.sock"))
    }
}

impl ZitiTransport for FakeZiti {
    fn bind(&self, service: &str) -> Result<mpsc::Receiver<UnixStream>, String> {
        let path = self.path(service);
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(|e| format!("cannot bind service: {e}"))?;
        Ok(accept_on_thread(move || listener.accept().map(|(s, _)| s).map_err(|e| e.to_string())))
    }

    fn dial(&self, service: &str) -> Result<UnixStream, String> {
        UnixStream::connect(self.path(service)).map_err(|e| format!("cannot dial the service: {e}"))
    }
}

/// Runs `accept` in a loop on a thread of its own, handing connections to the receiver.
pub fn accept_on_thread(
    mut accept: impl FnMut() -> Result<UnixStream, String> + Send + 'static,
) -> mpsc::Receiver<UnixStream> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::Builder::new()
        .name("zrok-accept".into())
        .spawn(move || {
            loop {
                match accept() {
                    Ok(stream) => {
                        if tx.blocking_send(stream).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!("zrok accept failed: {e}");
                        std::thread::sleep(std::time::Duration::from_millis(100));
                    }
                }
            }
        })
        .expect("a thread");
    rx
}
