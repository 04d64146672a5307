//! Live config changes: watch the config's directory for events about the config and keys
//! files (so saves by rename, `sed -i` and Kubernetes ConfigMap symlink swaps are seen, and
//! other files there are not) and SIGHUP; debounce; wait until the files read the same twice
//! (never a half-written file); compile with the same compiler as `check`; keep the old plan
//! on errors or when the new one would serve nothing (diagnostics printed once per content);
//! otherwise reconcile (unchanged endpoints keep their connections and health, new ones are
//! probed first) and swap atomically.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
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

/// What started a reload: a file event (skipped when the files did not change) or SIGHUP
/// (always compiles).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    File,
    Signal,
}

/// A file must read the same twice this far apart before it is compiled: a file caught
/// while an editor or a script is still writing it is never applied.
const SETTLE: Duration = Duration::from_millis(200);
/// A file that keeps changing for longer is left alone until its next change.
const SETTLE_MAX: Duration = Duration::from_secs(5);

/// The config file and the keys file as read at one instant: a digest of their content,
/// size and modification time (`None` parts: unreadable).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Snapshot(u64);

pub struct Reloader {
    path: PathBuf,
    shared: Shared,
    boot: BootClock,
    checkers: Vec<JoinHandle<()>>,
    file: FilePlan,
    /// The files as last compiled (a file event that changes neither is not a reload).
    compiled: Option<Snapshot>,
    /// The files whose diagnostics were last printed: the same failing content is reported
    /// with one short line, not its whole diagnostic again.
    reported: Option<Snapshot>,
    /// The file watcher, when the files are watched (not with `--no-watch`).
    watch: Option<Watch>,
}

impl Reloader {
    /// `file_plan` is the plan as compiled from the file, before command-line overrides.
    pub fn new(path: &Path, shared: Shared, file: FilePlan, boot: BootClock, watch: Option<Watch>) -> Self {
        let live = shared.load_full();
        let checkers = health::spawn_all(&live, &boot);
        Self { path: path.to_owned(), shared, boot, checkers, file, compiled: None, reported: None, watch }
    }

    /// Where the keys file of the running config is.
    fn keys_path(&self) -> Option<PathBuf> {
        self.shared.load().plan.keys_file.as_ref().map(|f| crate::config::keys_path(&self.path, f))
    }

    /// Runs until the trigger channel closes.
    pub async fn run(mut self, mut triggers: mpsc::UnboundedReceiver<Trigger>) {
        while let Some(first) = triggers.recv().await {
            // Let a burst of events (editors write, rename, chmod…) settle into one reload.
            tokio::time::sleep(DEBOUNCE).await;
            let mut forced = first == Trigger::Signal;
            while let Ok(t) = triggers.try_recv() {
                forced |= t == Trigger::Signal;
            }
            let Some(snapshot) = self.settled().await else {
                warn!(
                    "config {} is still changing after {} s; it is compiled after its next change",
                    self.path.display(),
                    SETTLE_MAX.as_secs()
                );
                continue;
            };
            if !forced && self.compiled == Some(snapshot) {
                continue;
            }
            self.compiled = Some(snapshot);
            self.reload(snapshot).await;
        }
    }

    /// The files' state once two readings [`SETTLE`] apart agree; `None` if they keep
    /// changing for [`SETTLE_MAX`].
    async fn settled(&self) -> Option<Snapshot> {
        let deadline = Instant::now() + SETTLE_MAX;
        let mut last = self.snapshot();
        while Instant::now() < deadline {
            tokio::time::sleep(SETTLE).await;
            let now = self.snapshot();
            if now == last {
                return Some(now);
            }
            last = now;
        }
        None
    }

    fn snapshot(&self) -> Snapshot {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        let keys = self.keys_path();
        for path in std::iter::once(&self.path).chain(keys.as_ref()) {
            let meta = std::fs::metadata(path).ok();
            meta.as_ref().map(|m| (m.len(), m.modified().ok())).hash(&mut h);
            match std::fs::read(path) {
                Ok(bytes) => {
                    bytes.hash(&mut h);
                    crate::config::wipe(bytes);
                }
                Err(e) => e.kind().hash(&mut h),
            }
        }
        Snapshot(h.finish())
    }

    fn fail(&mut self, snapshot: Snapshot, problem: &str, details: &str) {
        metrics::get().reloads.with_label_values(&["failure"]).inc();
        if self.reported == Some(snapshot) || details.is_empty() {
            error!("config reload failed: {problem}; still serving the previous config");
        } else {
            error!("config reload failed: {problem}; still serving the previous config\n{details}");
        }
        self.reported = Some(snapshot);
    }

    async fn reload(&mut self, snapshot: Snapshot) {
        let started = Instant::now();
        let name = self.path.display().to_string();
        let source = match crate::config::read_text(&self.path) {
            Ok(s) => s,
            Err(e) => return self.fail(snapshot, &format!("cannot read {name}: {e}"), ""),
        };
        // An editor that truncates before writing can be caught in between; an empty file
        // would be a valid config with no providers, so it is never applied.
        if source.trim().is_empty() {
            return self.fail(snapshot, "config file is empty", "");
        }
        let mut loaded = crate::config::load(&self.path, &name, source);
        let problem = loaded
            .unreadable
            .clone()
            .or_else(|| loaded.plan.is_none().then(|| format!("{} error(s)", loaded.errors())));
        let rendered = loaded.render();
        // The sources may hold plaintext keys: wiped as soon as they are rendered.
        loaded.wipe_sources();
        if let Some(problem) = problem {
            return self.fail(snapshot, &problem, &rendered);
        }
        let Some(plan) = loaded.plan else { return };
        // A config that serves nothing (comments only, `null`, `---`, a half-written file
        // that names no endpoint) would fail every request: never applied.
        if !serves_something(&plan) {
            return self.fail(snapshot, "the new config defines no provider endpoint and would serve nothing", "");
        }
        if self.reported != Some(snapshot) {
            if !rendered.is_empty() {
                warn!("config {name} has warnings:\n{rendered}");
            }
            crate::config::warn_if_exposed(&loaded.exposed);
        }
        self.reported = Some(snapshot);
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
        let keys = self.keys_path();
        if let Some(watch) = &mut self.watch
            && let Err(e) = watch.follow(keys.as_deref())
        {
            warn!("cannot watch the keys file for changes ({e}); SIGHUP still reloads it");
        }
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
        metrics::get().config_loaded(&live.plan);
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

/// Whether a plan has at least one endpoint to send requests to.
pub fn serves_something(plan: &Plan) -> bool {
    plan.providers.iter().flatten().any(|p| !p.endpoints.is_empty())
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
    let examples = |p: &Plan| -> Vec<Vec<String>> {
        p.routing.iter().flat_map(|r| r.routes.iter().map(|x| x.examples.clone())).collect()
    };
    if routes(old) != routes(new) {
        parts.push("routes changed".into());
    } else if examples(old) != examples(new) {
        parts.push("route examples changed".into());
    }
    if parts.is_empty() {
        parts.push("settings changed".into());
    }
    parts.join(", ")
}

/// Sends a trigger for every change to the config file or its keys file. Their directories
/// are watched (so saves by rename, `sed -i` and Kubernetes ConfigMap symlink swaps are
/// seen), but events about other files there (a log file beside the config) are ignored.
/// The keys file is the one the running config names: [`Watch::follow`] after each reload.
pub struct Watch {
    watcher: notify::RecommendedWatcher,
    config: PathBuf,
    /// The file names that concern the reloader, read by the watcher's thread.
    names: Arc<Mutex<Vec<OsString>>>,
    dirs: Vec<PathBuf>,
}

impl Watch {
    pub fn start(config: &Path, keys: Option<&Path>, tx: mpsc::UnboundedSender<Trigger>) -> notify::Result<Self> {
        let names = Arc::new(Mutex::new(Vec::new()));
        let seen = names.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(e) = event
                && !matches!(e.kind, notify::EventKind::Access(_))
                && e.paths.iter().any(|p| concerns(p, &seen.lock().unwrap_or_else(PoisonError::into_inner)))
            {
                let _ = tx.send(Trigger::File);
            }
        })?;
        let mut watch = Self { watcher, config: config.to_owned(), names, dirs: Vec::new() };
        watch.follow(keys)?;
        Ok(watch)
    }

    /// Watches `keys` from now on (a reload may add, move or drop the keys file). A directory
    /// stays watched once it was: events there about other names are ignored anyway.
    pub fn follow(&mut self, keys: Option<&Path>) -> notify::Result<()> {
        let files = || std::iter::once(self.config.as_path()).chain(keys);
        *self.names.lock().unwrap_or_else(PoisonError::into_inner) =
            files().filter_map(|p| p.file_name().map(ToOwned::to_owned)).collect();
        for dir in files().map(crate::config::dir_of).collect::<Vec<_>>() {
            if !self.dirs.contains(&dir) {
                self.watcher.watch(&dir, notify::RecursiveMode::NonRecursive)?;
                self.dirs.push(dir);
            }
        }
        Ok(())
    }
}

/// Whether an event about `path` may change one of the watched files (named `names`): the
/// file itself (written in place, or renamed over: the rename's target), or the `..data`
/// link and `..<timestamp>` folders Kubernetes swaps under a mounted ConfigMap.
fn concerns(path: &Path, names: &[OsString]) -> bool {
    let Some(name) = path.file_name() else { return true };
    names.iter().any(|n| n == name) || name.as_encoded_bytes().starts_with(b"..")
}

/// Sends a trigger on every SIGHUP.
pub fn on_sighup(tx: mpsc::UnboundedSender<Trigger>) {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(mut hup) => {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    info!("received SIGHUP: reloading the config");
                    if tx.send(Trigger::Signal).is_err() {
                        return;
                    }
                }
            });
        }
        Err(e) => warn!("cannot watch SIGHUP: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_config_and_keys_files_concern_the_reloader() {
        let names = vec!["config.yaml".into(), "keys.yaml".into()];
        for p in ["/etc/gw/config.yaml", "./keys.yaml", "/etc/gw/..data", "/etc/gw/..2025_01_01_00_00_00.1"] {
            assert!(concerns(Path::new(p), &names), "{p}");
        }
        for p in ["/etc/gw/gateway.log", "/etc/gw/config.yaml.swp", "/etc/gw/.config.yaml.tmp", "/etc/gw/4913"] {
            assert!(!concerns(Path::new(p), &names), "{p}");
        }
    }
}
