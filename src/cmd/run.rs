//! `llm-gateway run`: compile the config, bind, serve until SIGINT/SIGTERM, drain, exit 0.

use std::process::ExitCode;
use std::sync::Arc;

use arc_swap::ArcSwap;
use llm_gateway_compiler::plan::{ShareMode, ZrokShare};
use llm_gateway_compiler::{Plan, parse_listen};
use tokio::net::TcpListener;
use tracing::{error, info, warn};

use crate::cli::RunArgs;
use crate::exit;
use crate::reload::{FilePlan, Reloader};
use crate::state::{Live, Probe, uses_zrok};

pub fn run(args: RunArgs) -> ExitCode {
    // One single-threaded runtime per serving thread (see `shard.rs`); set before anything
    // keeps per-thread state (the log's queues, upstream connection pools).
    let threads =
        args.worker_threads.map_or_else(|| std::thread::available_parallelism().map_or(1, usize::from), usize::from);
    crate::shard::set_count(threads);
    let _flush = crate::logging::init(args.log_format);
    let (name, source) = match super::read_config(&args.config) {
        Ok(read) => read,
        Err(e) => {
            error!("cannot read {}: {e}", args.config.display());
            return exit::code(exit::NO_INPUT);
        }
    };
    let mut loaded = crate::config::load(&args.config, &name, source);
    report(&loaded, args.log_format);
    // The text may hold plaintext keys; the plan holds them as secrets from here on.
    loaded.wipe_sources();
    if let Some(why) = &loaded.unreadable {
        error!("{why}; not starting");
        return exit::code(exit::NO_INPUT);
    }
    let Some(plan) = loaded.plan else {
        error!("the config has {} error(s); not starting", loaded.errors());
        return exit::code(exit::CONFIG);
    };
    info!("loaded config '{name}' (sha256 {})", &plan.hash_hex()[..12]);
    let mut plan = plan;
    let file_plan = FilePlan::of(&plan);
    if let Err(message) = apply_overrides(&mut plan, &args) {
        error!("{message}");
        return exit::code(exit::USAGE);
    }
    crate::server::raise_fd_limit();
    // This thread serves too: it is the first serving thread.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            return exit::code(1);
        }
    };
    let reload = (args.config != std::path::Path::new("-")).then(|| (args.config.clone(), file_plan, !args.no_watch));
    let code = runtime.block_on(serve(plan, reload, args.address.is_some()));
    // A blocking call stuck in libziti (a controller that never answers) must not keep the
    // process from exiting: dropping the runtime would wait for it forever.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

/// The config's diagnostics and exposure warnings: rendered like rustc on a text log; as log
/// events (one per file, the rendered text in a `diagnostics` field) on a JSON log, so every
/// line the process prints is JSON.
fn report(loaded: &crate::config::Loaded, format: crate::logging::LogFormat) {
    for r in &loaded.reports {
        let (errors, warnings) = (r.diags.errors(), r.diags.warnings());
        if errors + warnings == 0 {
            continue;
        }
        match format {
            // Through the log's queue, so it keeps its place among the other lines.
            crate::logging::LogFormat::Text => {
                crate::log_sink::push(crate::log_sink::Line::formatted(r.render().into_bytes()))
            }
            crate::logging::LogFormat::Json if errors > 0 => {
                error!(file = %r.name, diagnostics = %r.render(), "{}: {errors} error(s), {warnings} warning(s)", r.name)
            }
            crate::logging::LogFormat::Json => {
                warn!(file = %r.name, diagnostics = %r.render(), "{}: {warnings} warning(s)", r.name)
            }
        }
    }
    for w in &loaded.exposed {
        warn!("{w}");
    }
}

fn apply_overrides(plan: &mut Plan, args: &RunArgs) -> Result<(), String> {
    if let Some(addr) = &args.address {
        plan.listen = parse_listen(addr).map_err(|why| format!("invalid --address `{addr}`: {why}"))?;
        plan.listen_set = true;
    }
    let mode = match args.zrok_mode.as_deref() {
        None => None,
        Some("public") => Some(ShareMode::Public),
        Some("private") => Some(ShareMode::Private),
        Some(other) => return Err(format!("invalid --zrok-mode `{other}`: use `public` or `private`")),
    };
    if args.zrok && plan.zrok_share.is_none() {
        plan.zrok_share = Some(ZrokShare { mode: ShareMode::Private, token: None });
    }
    if let (Some(share), Some(mode)) = (plan.zrok_share.as_mut(), mode) {
        if share.token.is_some() && mode == ShareMode::Public {
            return Err(
                "--zrok-mode public cannot apply to the persistent share in `zrok.share.token` (always private)".into(),
            );
        }
        share.mode = mode;
    }
    Ok(())
}

/// The config path, what it said, and whether to watch it.
type ReloadSetup = Option<(std::path::PathBuf, FilePlan, bool)>;

/// `address_flag`: `--address` was given (it opens a TCP port even when served through zrok).
async fn serve(plan: Plan, reload: ReloadSetup, address_flag: bool) -> ExitCode {
    let zrok = match uses_zrok(&plan) {
        true => match crate::transport::zrok::start().await {
            Ok(z) => Some(z),
            Err(e) => {
                error!("{e}");
                return exit::code(exit::CONFIG);
            }
        },
        false => None,
    };
    // Served through zrok, the gateway opens no TCP port (the Go gateway's promise: the config's
    // `listen`, `:8080` in its sample, is ignored) unless `--address` asks for one as well.
    if plan.zrok_share.is_some() && !address_flag && plan.listen_set {
        warn!(
            "served through zrok: `listen: {}` in the config opens no TCP port; pass --address to serve on TCP as well",
            plan.listen
        );
    }
    let tcp = match plan.zrok_share.is_none() || address_flag {
        true => {
            let host = plan.listen.host.clone().unwrap_or_else(|| "0.0.0.0".to_owned());
            match TcpListener::bind((host.as_str(), plan.listen.port)).await {
                Ok(l) => Some(l),
                Err(e) => {
                    error!("cannot listen on {}: {e}", plan.listen);
                    return exit::code(1);
                }
            }
        }
        false => None,
    };
    let local = tcp.as_ref().map(|l| l.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| plan.listen.to_string()));
    let share_plan = plan.zrok_share.clone();
    let drain = plan.server.drain_timeout;
    crate::metrics::get().config_loaded(&plan);
    let live = match Live::build(plan, None, Probe::First).await {
        Err(e) => {
            error!("failed to initialize semantic router: {e}");
            return exit::code(exit::CONFIG);
        }
        Ok((live, done)) => {
            if done.fresh > 0 {
                info!("semantic routing: embedded {} route example(s)", done.fresh);
            }
            live
        }
    };
    let shared = Arc::new(ArcSwap::from_pointee(live));
    let boot = crate::pool::health::boot_clock();
    let mut _checkers = Vec::new();
    match reload {
        Some((path, file_plan, watch)) => {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let mut watcher = None;
            if watch {
                let keys = shared.load().plan.keys_file.as_ref().map(|f| crate::config::keys_path(&path, f));
                match crate::reload::Watch::start(&path, keys.as_deref(), tx.clone()) {
                    Ok(w) => watcher = Some(w),
                    Err(e) => warn!("cannot watch {} for changes ({e}); SIGHUP still reloads it", path.display()),
                }
            }
            crate::reload::on_sighup(tx);
            let reloader = Reloader::new(&path, shared.clone(), file_plan, boot, watcher);
            tokio::spawn(reloader.run(rx));
        }
        None => _checkers = crate::pool::health::spawn_all(&shared.load(), &boot),
    }
    let share = match (&zrok, &share_plan) {
        (Some(z), Some(p)) => match crate::transport::zrok::share::open(z, p).await {
            Ok(opened) => Some(opened),
            Err(e) => {
                error!("{e}");
                z.release_accesses().await;
                return exit::code(1);
            }
        },
        _ => None,
    };
    if let Some(local) = &local {
        info!("listening on {local}");
    }
    let (share, connections) = share.unzip();
    let listeners = crate::server::Listeners { tcp, zrok: connections };
    let finished = crate::server::serve(listeners, shared, shutdown_signal(), drain).await;
    if !finished {
        warn!("exiting with requests still in flight");
    }
    // After the drain: the share goes first (nobody can reach us any more), then accesses.
    if let Some(share) = share {
        share.close().await;
    }
    if let Some(z) = zrok {
        z.release_accesses().await;
    }
    exit::code(exit::OK)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            warn!("cannot watch SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("received SIGINT"),
        _ = term.recv() => info!("received SIGTERM"),
    }
}
