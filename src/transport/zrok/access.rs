//! Reaching a backend through a private zrok access: one access per endpoint, created on
//! first use (`POST /access`), connections dialed through the Ziti layer on a blocking thread,
//! and released (`DELETE /unaccess`) when the endpoint leaves the config or at shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::OnceCell;
use tracing::{info, warn};

use super::Zrok;

/// How long a dial may take (the Go SDK's connect timeout).
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Access {
    zrok: Arc<Zrok>,
    share: String,
    frontend: OnceCell<String>,
    released: AtomicBool,
}

impl Access {
    pub fn new(zrok: Arc<Zrok>, share: String) -> Arc<Self> {
        let access =
            Arc::new(Self { zrok: zrok.clone(), share, frontend: OnceCell::new(), released: AtomicBool::new(false) });
        zrok.track(&access);
        access
    }

    /// A connection to the share; an error is a network error like a refused TCP connect.
    pub async fn dial(&self) -> std::io::Result<tokio::net::UnixStream> {
        let failed = |why: String| std::io::Error::new(std::io::ErrorKind::ConnectionRefused, why);
        self.frontend
            .get_or_try_init(|| async {
                let token = self.zrok.api.access(&self.share).await?;
                info!("created zrok access to a share (frontend {token})");
                Ok::<_, String>(token)
            })
            .await
            .map_err(failed)?;
        let ziti = self.zrok.ziti.clone();
        let share = self.share.clone();
        let dialing = tokio::task::spawn_blocking(move || ziti.dial(&share));
        let stream = tokio::time::timeout(DIAL_TIMEOUT, dialing)
            .await
            .map_err(|_| failed(format!("dialing the zrok share took over {} s", DIAL_TIMEOUT.as_secs())))?
            .map_err(|e| failed(e.to_string()))?
            .map_err(failed)?;
        stream.set_nonblocking(true)?;
        tokio::net::UnixStream::from_std(stream)
    }

    /// `DELETE /unaccess`, once; failures are logged, never fatal.
    pub async fn release(&self) {
        let Some(frontend) = self.frontend.get() else { return };
        if self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        unaccess(&self.zrok, frontend, &self.share).await;
    }
}

impl Drop for Access {
    /// An endpoint that left the config takes its access with it.
    fn drop(&mut self) {
        let (Some(frontend), Ok(handle)) = (self.frontend.get().cloned(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        if self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        let (zrok, share) = (self.zrok.clone(), self.share.clone());
        handle.spawn(async move { unaccess(&zrok, &frontend, &share).await });
    }
}

async fn unaccess(zrok: &Zrok, frontend: &str, share: &str) {
    match zrok.api.unaccess(frontend, share).await {
        Ok(()) => info!("released zrok access (frontend {frontend})"),
        Err(e) => warn!("could not release zrok access (frontend {frontend}): {e}"),
    }
}
