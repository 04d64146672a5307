//! Serving the gateway through a zrok share: an ephemeral share created at startup (and
//! deleted at shutdown), or a persistent one named by `zrok.share.token` (bound, never
//! deleted). Accepted connections arrive as Unix streams.

use std::os::unix::net::UnixStream;
use std::sync::Arc;

use llm_gateway_compiler::plan::{ShareMode, ZrokShare};
use tokio::sync::mpsc::Receiver;
use tracing::{info, warn};

use super::Zrok;

pub struct Share {
    zrok: Arc<Zrok>,
    pub token: String,
    ephemeral: bool,
}

/// Creates (or finds) the share and binds it; a failed bind deletes an ephemeral share
/// before the error is returned.
pub async fn open(zrok: &Arc<Zrok>, plan: &ZrokShare) -> Result<(Share, Receiver<UnixStream>), String> {
    let (token, frontends, ephemeral) = match &plan.token {
        Some(token) => {
            let token = token.expose().to_owned();
            zrok.api.share_detail(&token).await?;
            (token, Vec::new(), false)
        }
        None => {
            let created = zrok.api.share(plan.mode == ShareMode::Public).await?;
            (created.token, created.frontends, true)
        }
    };
    let share = Share { zrok: zrok.clone(), token, ephemeral };
    let ziti = zrok.ziti.clone();
    let service = share.token.clone();
    let bound =
        tokio::task::spawn_blocking(move || ziti.bind(&service)).await.map_err(|e| e.to_string()).and_then(|r| r);
    match bound {
        Ok(connections) => {
            info!("serving via zrok share '{}'", share.token);
            for url in &frontends {
                info!("zrok frontend: {}", crate::transport::http::without_userinfo(url));
            }
            Ok((share, connections))
        }
        Err(e) => {
            share.close().await;
            Err(format!("cannot serve through zrok share '{}': {e}", share.token))
        }
    }
}

impl Share {
    /// Deletes an ephemeral share; a persistent one is left as it is.
    pub async fn close(&self) {
        if !self.ephemeral {
            return;
        }
        match self.zrok.api.unshare(&self.token).await {
            Ok(()) => info!("deleted zrok share '{}'", self.token),
            Err(e) => warn!("could not delete zrok share '{}': {e}", self.token),
        }
    }
}
