//! Live config changes: watch the config's directory (so saves by rename, `sed -i` and
//! Kubernetes ConfigMap symlink swaps are seen) and SIGHUP; debounce; compile with the same
//! compiler as `check`; keep the old plan on errors; otherwise reconcile (unchanged endpoints
//! keep their connections and health, new ones are probed first) and swap atomically.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use llm_gateway_compiler::Plan;
use llm_gateway_compiler::plan::{ListenAddr, ZrokShare};
use notify::Watcher;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::metrics;
use crate::pool::health::{self, BootClock};
use crate::state::{Live, Probe, Shared};

/// Bursts of file events within this window make one reload.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// What the running config file said, before command-line overrides: the settings only a
/// restart can change, and the content hash.
pub struct FilePlan {
    pub listen: ListenAddr,
    pub zrok: Option<ZrokShare>,
    pub hash: [u8; 32],
}

impl FilePlan {
    pub fn of(plan: &Plan) -> Self {
        Self { listen: plan.listen.clone(), zrok: plan.zrok_share.clone(), hash: plan.hash }
    }
}

pub struct Reloader {
    path: PathBuf,
    shared: Shared,
    boot: BootClock,
    checkers: Vec<JoinHandle<()>>,
    file: FilePlan,
}

impl Reloader {
    /// `file_plan` is the plan as compiled from the file, before command-line overrides.
    pub fn new(path: &Path, shared: Shared, file: FilePlan, boot: BootClock) -> Self {
        let live = shared.load_full();
        let checkers = health::spawn_all(&live, &boot);
        Self { path: path.to_owned(), shared, boot, checkers, file }
    }

    /// Runs until the trigger channel closes.
    pub async fn run(mut self, mut triggers: mpsc::UnboundedReceiver<()>) {
        while triggers.recv().await.is_some() {
            // Let a burst of events (editors write, rename, chmod…) settle into one reload.
            tokio::time::sleep(DEBOUNCE).await;
            while triggers.try_recv().is_ok() {}
            self.reload().await;
        }
    }

    async fn reload(&mut self) {
        let started = Instant::now();
        let name = self.path.display().to_string();
        let source = match std::fs::read_to_string(&self.path) {
            Ok(s) => s,
            Err(e) => {
                metrics::get().reloads.with_label_values(&["failure"]).inc();
                error!("config reload failed: cannot read {name}: {e}; still serving the previous config");
                return;
            }
        };
        // An editor that truncates before writing can be caught in between; an empty file
        // would be a valid config with no providers, so it is never applied.
        if source.trim().is_empty() {
            metrics::get().reloads.with_label_values(&["failure"]).inc();
            error!("config reload failed: config file is empty; still serving the previous config");
            return;
        }
        let loaded = crate::config::load(&self.path, &name, source);
        let problem = loaded
            .unreadable
            .clone()
            .or_else(|| loaded.plan.is_none().then(|| format!("{} error(s)", loaded.errors())));
        if let Some(problem) = problem {
            metrics::get().reloads.with_label_values(&["failure"]).inc();
            error!("config reload failed: {problem}; still serving the previous config\n{}", loaded.render());
            return;
        }
        let warnings = loaded.render();
        if !warnings.is_empty() {
            warn!("config {name} has warnings:\n{warnings}");
        }
        let Some(plan) = loaded.plan else { return };
        if plan.hash == self.file.hash {
            metrics::get().reloads.with_label_values(&["unchanged"]).inc();
            return;
        }
        let old = self.shared.load_full();
        let new_file = FilePlan::of(&plan);
        if new_file.listen != self.file.listen {
            warn!("`listen` changed to {}; it takes effect after a restart", new_file.listen);
        }
        if new_file.zrok != self.file.zrok {
            warn!("`zrok.share` changed; it takes effect after a restart");
        }
        let compile_ms = started.elapsed().as_millis();
        let changes = describe(&old.plan, &plan);
        // A zrok endpoint may be the first: zrok starts now, or the reload is refused.
        // (`zrok.share` itself only changes at a restart.)
        if (old.plan.zrok_share.is_some() || crate::state::reaches_through_zrok(&plan))
            && let Err(e) = crate::transport::zrok::start().await
        {
            metrics::get().reloads.with_label_values(&["failure"]).inc();
            error!("config reload failed: {e}; still serving the previous config");
            return;
        }
        // New endpoints get their first probe before any traffic can reach them.
        let (live, embedded) = match Live::build(plan, Some(&old), Probe::First).await {
            Ok(done) => done,
            Err(e) => {
                metrics::get().reloads.with_label_values(&["failure"]).inc();
                error!("config reload failed: {e}; still serving the previous config");
                return;
            }
        };
        let live = Arc::new(live);
        self.shared.store(live.clone());
        // Endpoints that left the plan leave the health gauge too.
        for pool in old.pools.iter().flatten() {
            for e in &pool.endpoints {
                let kept = live.pool(pool.kind).is_some_and(|p| p.endpoints.iter().any(|n| n.name == e.name));
                if !kept {
                    let _ = metrics::get().endpoint_healthy.remove_label_values(&[pool.kind.label(), &e.name]);
                }
            }
        }
        for c in self.checkers.drain(..) {
            c.abort();
        }
        self.checkers = health::spawn_all(&live, &self.boot);
        self.file = new_file;
        metrics::get().reloads.with_label_values(&["success"]).inc();
        metrics::get().config_loaded(&live.plan.hash_hex());
        let examples = match embedded {
            crate::embed::Embedded { fresh: 0, reused: 0 } => String::new(),
            e => format!(", {} example(s) embedded, {} reused", e.fresh, e.reused),
        };
        info!(
            "config reloaded: {changes} (compiled in {compile_ms} ms{examples}, sha256 {})",
            &live.plan.hash_hex()[..12]
        );
    }
}

/// A short human summary of what a reload changes: `+1 endpoint, -1 key, routes changed`.
fn describe(old: &Plan, new: &Plan) -> String {
    let endpoints = |p: &Plan| -> Vec<(String, String)> {
        p.providers
            .iter()
            .flatten()
            .flat_map(|pp| pp.endpoints.iter().map(move |e| (pp.kind.config_name().to_owned(), e.name.clone())))
            .collect()
    };
    let (before, after) = (endpoints(old), endpoints(new));
    let mut parts = Vec::new();
    let added = after.iter().filter(|e| !before.contains(e)).count();
    let removed = before.iter().filter(|e| !after.contains(e)).count();
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    if added > 0 {
        parts.push(format!("+{}", plural(added, "endpoint")));
    }
    if removed > 0 {
        parts.push(format!("-{}", plural(removed, "endpoint")));
    }
    let key_hashes = |p: &Plan| p.keys.as_ref().map(|k| k.hashes()).unwrap_or_default();
    let (kb, ka) = (key_hashes(old), key_hashes(new));
    let keys_added = ka.iter().filter(|h| !kb.contains(h)).count();
    let keys_removed = kb.iter().filter(|h| !ka.contains(h)).count();
    if keys_added > 0 {
        parts.push(format!("+{}", plural(keys_added, "key")));
    }
    if keys_removed > 0 {
        parts.push(format!("-{}", plural(keys_removed, "key")));
    }
    let weights = |p: &Plan| -> Vec<(String, u32)> {
        p.providers.iter().flatten().flat_map(|pp| pp.endpoints.iter().map(|e| (e.name.clone(), e.weight))).collect()
    };
    if added == 0 && removed == 0 && weights(old) != weights(new) {
        parts.push("weights changed".into());
    }
    let routes = |p: &Plan| -> Vec<(String, String)> {
        p.routing.iter().flat_map(|r| r.routes.iter().map(|x| (x.name.clone(), x.model.clone()))).collect()
    };
    if routes(old) != routes(new) {
        parts.push("routes changed".into());
    }
    if parts.is_empty() {
        parts.push("settings changed".into());
    }
    parts.join(", ")
}

/// Sends a trigger for every change in the directory of the config file (and of its keys
/// file). The returned watcher must be kept alive.
pub fn watch(
    path: &Path,
    keys: Option<&Path>,
    tx: mpsc::UnboundedSender<()>,
) -> notify::Result<notify::RecommendedWatcher> {
    let dir = crate::config::dir_of(path);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !matches!(e.kind, notify::EventKind::Access(_))) {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&dir, notify::RecursiveMode::NonRecursive)?;
    if let Some(keys_dir) = keys.map(crate::config::dir_of).filter(|d| *d != dir) {
        watcher.watch(&keys_dir, notify::RecursiveMode::NonRecursive)?;
    }
    Ok(watcher)
}

/// Sends a trigger on every SIGHUP.
pub fn on_sighup(tx: mpsc::UnboundedSender<()>) {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(mut hup) => {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    info!("received SIGHUP: reloading the config");
                    if tx.send(()).is_err() {
                        return;
                    }
                }
            });
        }
        Err(e) => warn!("cannot watch SIGHUP: {e}"),
    }
}
