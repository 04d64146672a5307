//! zrok (OpenZiti): serve the gateway through a share with no listening port, and reach
//! backends through private accesses. `env` finds the zrok environment, `api` talks to the
//! controller, `ziti` is the OpenZiti layer (libziti from PyPI, or a fake for tests),
//! `share` and `access` are the two directions.

pub mod access;
pub mod api;
pub mod env;
pub mod libziti;
pub mod probe;
pub mod share;
pub mod ziti;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tracing::info;

use self::access::Access;
use self::api::{Api, Controller};
use self::env::Environment;
use self::ziti::{FakeZiti, ZitiTransport};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    V1,
    V2,
}

/// Loading the identity's context may hang on a controller that accepts and never speaks;
/// past this the gateway gives up (the stuck thread cannot be cancelled; startup fails).
const CONTEXT_DEADLINE: Duration = Duration::from_secs(30);

pub struct Zrok {
    pub api: Box<dyn Controller>,
    pub ziti: Arc<dyn ZitiTransport>,
    accesses: Mutex<Vec<Weak<Access>>>,
}

static RUNTIME: OnceLock<Arc<Zrok>> = OnceLock::new();

/// The process's zrok state, once [`start`] succeeded.
pub fn get() -> Option<Arc<Zrok>> {
    RUNTIME.get().cloned()
}

/// Where libziti is: `ZITI_LIB_PATH`, else where `scripts/setup-zrok.sh` puts it.
pub fn lib_path() -> PathBuf {
    match std::env::var_os("ZITI_LIB_PATH").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => crate::assets::cache_dir().join("ziti").join("libziti.so"),
    }
}

/// Finds the environment, checks the controller accepts us, loads the Ziti context (once per
/// process). Every failure is a message for the operator; nothing secret is in it.
pub async fn start() -> Result<Arc<Zrok>, String> {
    if let Some(z) = get() {
        return Ok(z);
    }
    let env = env::load(&|k| std::env::var(k).ok())?;
    info!(
        "zrok environment {} ({:?}), controller API {}, identity {}",
        env.root.display(),
        env.flavour,
        crate::transport::http::without_userinfo(&env.api_endpoint),
        env.ziti_identity
    );
    let api = Api::new(&env)?;
    api.version_check().await?;
    let ziti: Arc<dyn ZitiTransport> = match std::env::var_os("LLM_GATEWAY_ZITI_FAKE_DIR") {
        Some(dir) => {
            info!("zrok: using the fake Ziti layer in {} (tests only)", PathBuf::from(&dir).display());
            Arc::new(FakeZiti { dir: dir.into() })
        }
        None => Arc::new(load_libziti(&env).await?),
    };
    let zrok = Arc::new(Zrok { api: Box::new(api), ziti, accesses: Mutex::new(Vec::new()) });
    Ok(RUNTIME.get_or_init(|| zrok).clone())
}

async fn load_libziti(env: &Environment) -> Result<libziti::LibZiti, String> {
    let lib = libziti::Loaded::open(&lib_path())?;
    info!("libziti {} loaded", lib.version());
    probe::controller(&env.controller, &env.ca_pem).await?;
    let identity = env.identity_file.clone();
    let loading = tokio::task::spawn_blocking(move || lib.load_context(&identity));
    match tokio::time::timeout(CONTEXT_DEADLINE, loading).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(format!("loading the zrok identity failed: {e}")),
        Err(_) => Err(format!("the OpenZiti controller did not answer within {} s", CONTEXT_DEADLINE.as_secs())),
    }
}

impl Zrok {
    fn track(&self, access: &Arc<Access>) {
        let mut accesses = self.accesses.lock().unwrap_or_else(|p| p.into_inner());
        accesses.retain(|a| a.strong_count() > 0);
        accesses.push(Arc::downgrade(access));
    }

    /// Releases every access still held (at shutdown).
    pub async fn release_accesses(&self) {
        let live: Vec<Arc<Access>> = {
            let accesses = self.accesses.lock().unwrap_or_else(|p| p.into_inner());
            accesses.iter().filter_map(Weak::upgrade).collect()
        };
        futures_util::future::join_all(live.iter().map(|a| a.release())).await;
    }
}
