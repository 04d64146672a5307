//! llm-gateway's config compiler: YAML text → an immutable, ready-to-execute [`Plan`], or
//! every problem in the file at once.
//!
//! Pure by design (no async runtime, no I/O besides what the caller passes in through
//! [`Env`]), so `llm-gateway check`, the server and its hot reload all share it and it can be
//! tested and benchmarked alone.

#![forbid(unsafe_code)]

pub mod acl;
pub mod centroids;
mod decode;
pub mod diag;
mod endpoints;
pub mod env;
pub mod glob;
pub mod keywords;
pub mod mask;
pub mod plan;
pub mod raw;
mod routing;
pub mod schema;
pub mod secret;
mod traffic;
mod yaml;

use sha2::{Digest, Sha256};

pub use crate::diag::{Diagnostic, Diagnostics, Severity};
pub use crate::endpoints::parse_listen;
pub use crate::env::{Env, ProcessEnv};
pub use crate::plan::Plan;
pub use crate::routing::AUTO;
pub use crate::secret::Secret;
pub use crate::yaml::{MAX_ALIAS_NODES, MAX_DEPTH, MAX_SOURCE_BYTES};

/// A successful compilation: the plan and any warnings.
#[derive(Debug)]
pub struct Compiled {
    pub plan: Plan,
    pub warnings: Diagnostics,
}

/// Compiles a config. Errors and warnings come back sorted by position; any error means no plan.
pub fn compile(source: &str, env: &dyn Env) -> Result<Compiled, Diagnostics> {
    let mut cx = decode::Cx::new(env);
    let (config, shape) = match yaml::parse(source) {
        Ok(mut node) => {
            let config = raw::decode(&node, &mut cx);
            let shape = match &node.kind {
                yaml::Kind::Map(entries) if entries.is_empty() => Shape::Empty(node.span.clone()),
                yaml::Kind::Map(_) => Shape::Config,
                _ => Shape::Broken,
            };
            node.wipe();
            (config, shape)
        }
        Err(errors) => {
            for e in errors {
                cx.error(e.span, e.message);
            }
            (raw::Config::default(), Shape::Broken)
        }
    };
    let plan = build(&mut cx, &config, source, shape);
    let mut diags = Diagnostics(cx.diags);
    diags.sort();
    if diags.has_errors() { Err(diags) } else { Ok(Compiled { plan, warnings: diags }) }
}

/// What the file turned out to be, for the "no provider" check.
enum Shape {
    /// A mapping of settings.
    Config,
    /// Nothing at all: empty, comments only, `null`, `---`, `{}`.
    Empty(std::ops::Range<usize>),
    /// Not a mapping, or not YAML: already reported, nothing more to say.
    Broken,
}

/// A config or keys file's bytes as text: UTF-8, no NUL byte, at most [`MAX_SOURCE_BYTES`].
/// A problem's span is valid in `String::from_utf8_lossy(bytes)`, which is what to render it
/// with. (A leading byte-order mark is kept here and skipped by [`compile`].)
pub fn source_text(bytes: &[u8]) -> Result<&str, Diagnostics> {
    let fail = |span: std::ops::Range<usize>, message: String, help: &str| {
        Err(Diagnostics(vec![Diagnostic {
            severity: Severity::Error,
            path: String::new(),
            span,
            message,
            help: Some(help.to_owned()),
        }]))
    };
    if bytes.len() > MAX_SOURCE_BYTES {
        let message =
            format!("the file is {} bytes; a config file may be at most {MAX_SOURCE_BYTES} bytes", bytes.len());
        return fail(0..0, message, "is this the right file?");
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let at = e.valid_up_to();
            let message = format!("the file is not UTF-8 text: byte 0x{:02x} cannot start a character", bytes[at]);
            return fail(at..at, message, "save the file as UTF-8");
        }
    };
    match memchr::memchr(0, bytes) {
        Some(at) => fail(
            at..at + 1,
            "the file contains a NUL byte: a config file is UTF-8 text".into(),
            "is this the right file?",
        ),
        None => Ok(text),
    }
}

/// Compiles a keys file (`keys:` entries, as `api_keys.keys`), checking route names against
/// the plan's routing. Warnings come back with the entries.
pub fn compile_keys_file(
    source: &str,
    env: &dyn Env,
    routing: Option<&plan::RoutingPlan>,
) -> Result<(Vec<(acl::KeyHash, acl::KeyEntry)>, Diagnostics), Diagnostics> {
    let mut cx = decode::Cx::new(env);
    let file = decode_keys(source, &mut cx);
    let list = file.keys.as_ref().map(|l| l.value.as_slice()).unwrap_or_default();
    let entries = acl::entries(&mut cx, "keys", list, routing);
    let mut diags = Diagnostics(cx.diags);
    diags.sort();
    if diags.has_errors() { Err(diags) } else { Ok((entries, diags)) }
}

/// A keys file as written, for tools that edit it.
pub fn read_keys_file(source: &str, env: &dyn Env) -> Result<raw::KeysFile, Diagnostics> {
    let mut cx = decode::Cx::new(env);
    let file = decode_keys(source, &mut cx);
    if cx.diags.iter().any(|d| d.severity == Severity::Error) { Err(Diagnostics(cx.diags)) } else { Ok(file) }
}

fn decode_keys(source: &str, cx: &mut decode::Cx) -> raw::KeysFile {
    use decode::FromNode;
    match yaml::parse(source) {
        Ok(mut node) => {
            let file = raw::KeysFile::from_node(&node, cx).unwrap_or_default();
            node.wipe();
            file
        }
        Err(errors) => {
            for e in errors {
                cx.error(e.span, e.message);
            }
            raw::KeysFile::default()
        }
    }
}

fn build(cx: &mut decode::Cx, config: &raw::Config, source: &str, shape: Shape) -> Plan {
    let mut providers = endpoints::providers(cx, config.providers.as_deref());
    implicit_local(cx, config.routing.as_deref(), &mut providers);
    if providers.iter().all(Option::is_none) {
        no_provider(cx, config, shape);
    }
    let routing = config.routing.as_ref().map(|r| routing::compile(cx, r, &providers));
    let keys = config.api_keys.as_ref().and_then(|k| acl::compile(cx, k, routing.as_ref()));
    let fallbacks = traffic::fallbacks(cx, config.fallbacks.as_ref(), &providers);
    traffic::gateway_wide_concurrency(cx, config.limits.as_deref(), &providers);
    let tracing = config.tracing.as_deref();
    let max_content_length = tracing.and_then(|t| t.max_content_length.as_ref());
    Plan {
        hash: Sha256::digest(source.as_bytes()).into(),
        listen: endpoints::listen(cx, &config.listen),
        listen_set: endpoints::non_empty(&config.listen).is_some(),
        zrok_share: endpoints::zrok_share(cx, config.zrok.as_deref()),
        providers,
        metrics: plan::MetricsPlan {
            enabled: config.metrics.as_ref().and_then(|m| m.enabled.as_ref()).is_some_and(|e| e.value),
        },
        tracing: plan::TracingPlan {
            enabled: tracing.and_then(|t| t.enabled.as_ref()).is_some_and(|e| e.value),
            max_content_length: endpoints::bounded(
                cx,
                "tracing.max_content_length",
                &max_content_length.cloned(),
                200,
                1 << 20,
            ) as usize,
        },
        keys,
        keys_file: config
            .api_keys
            .as_ref()
            .filter(|k| k.enabled.as_ref().is_some_and(|e| e.value))
            .and_then(|k| endpoints::non_empty(&k.keys_file))
            .map(|f| f.value.clone()),
        routing,
        server: server(cx, config.timeouts.as_deref(), config.limits.as_deref()),
        fallbacks,
        retry: traffic::retry(cx, config.retry.as_deref()),
        rate_limits: traffic::rate_limits(cx, config.rate_limits.as_deref()),
        unknown_paths: config.unknown_paths.as_ref().map_or(plan::UnknownPaths::Reject, |u| u.value),
    }
}

/// The embedder or classifier on `local` without a `providers.local`: as in the Go gateway, the
/// local provider is used at its default address, so the plan configures it (chat requests
/// for local models go there too) and a warning says so.
fn implicit_local(
    cx: &mut decode::Cx,
    routing: Option<&raw::Routing>,
    providers: &mut [Option<plan::ProviderPlan>; 3],
) {
    let local = plan::ProviderKind::Local;
    if providers[local.index()].is_some() {
        return;
    }
    let on = |e: &Option<decode::Spanned<bool>>| e.as_ref().is_some_and(|e| e.value);
    let semantic = routing
        .and_then(|r| r.semantic.as_ref())
        .filter(|s| on(&s.enabled))
        .and_then(|s| s.provider.as_ref())
        .filter(|p| p.value.provider() == Some(local))
        .map(|p| ("routing.semantic.provider", p.span.clone()));
    let classifier = routing
        .and_then(|r| r.classifier.as_ref())
        .filter(|c| on(&c.enabled))
        .and_then(|c| c.provider.as_ref())
        .filter(|p| p.value.provider() == local)
        .map(|p| ("routing.classifier.provider", p.span.clone()));
    let Some((path, span)) = semantic.or(classifier) else {
        return;
    };
    let message =
        format!("provider `local` is not configured; `{}` (its default) will be used", local.default_base_url());
    let help = "add a `providers.local` section to choose the server (it also serves chat for local models)";
    cx.at(path, |cx| cx.warn(span.clone(), message, Some(help.into())));
    providers[local.index()] = Some(endpoints::default_provider(cx, local, span));
}

/// A config that configures no provider: an error when the file sets nothing at all or its
/// `providers` section names none; a warning when it has other settings but no `providers`
/// (the Go gateway's documentation shows such partial configs, and they must keep compiling).
fn no_provider(cx: &mut decode::Cx, config: &raw::Config, shape: Shape) {
    let message = "no provider is configured: add providers.local, providers.open_ai or providers.anthropic";
    let help = "the smallest config that serves requests is `providers:` with `local: {}` under it (Ollama at http://localhost:11434)";
    match (shape, &config.providers) {
        (Shape::Broken, _) => {}
        (Shape::Empty(span), _) => cx.at("providers", |cx| cx.error_help(span, message, help)),
        // A `providers` section already in error (a misspelt provider) says what is wrong.
        (Shape::Config, Some(_))
            if cx.diags.iter().any(|d| d.severity == Severity::Error && d.path.starts_with("providers")) => {}
        (Shape::Config, Some(p)) => cx.at("providers", |cx| cx.error_help(p.span.clone(), message, help)),
        (Shape::Config, None) => cx.at("providers", |cx| {
            cx.warn(
                0..0,
                "no providers are configured; every request will fail",
                Some("add `providers.local`, `providers.open_ai` or `providers.anthropic`".into()),
            )
        }),
    }
}

fn server(cx: &mut decode::Cx, timeouts: Option<&raw::Timeouts>, limits: Option<&raw::Limits>) -> plan::ServerPlan {
    let day = 86_400;
    let t = timeouts.cloned().unwrap_or_default();
    let secs = |cx: &mut decode::Cx, name: &str, field: &Option<decode::Spanned<i64>>, default: u64| {
        std::time::Duration::from_secs(endpoints::bounded(cx, &format!("timeouts.{name}"), field, default, day))
    };
    let l = limits.cloned().unwrap_or_default();
    let max_body = l.max_body_bytes.clone();
    let optional = |cx: &mut decode::Cx, name: &str, field: &Option<decode::Spanned<i64>>| {
        field.as_ref().map(|_| endpoints::bounded(cx, &format!("limits.{name}"), field, 1, 1_000_000) as usize)
    };
    plan::ServerPlan {
        connect_timeout: secs(cx, "connect_seconds", &t.connect_seconds, 10),
        first_byte_timeout: secs(cx, "first_byte_seconds", &t.first_byte_seconds, 600),
        idle_stream_timeout: secs(cx, "idle_stream_seconds", &t.idle_stream_seconds, 300),
        drain_timeout: secs(cx, "drain_seconds", &t.drain_seconds, 30),
        request_header_timeout: secs(cx, "request_header_seconds", &t.request_header_seconds, 30),
        request_body_timeout: secs(cx, "request_body_seconds", &t.request_body_seconds, 60),
        idle_connection_timeout: secs(cx, "idle_connection_seconds", &t.idle_connection_seconds, 120),
        // Unset, the default depends on each endpoint's scheme (the runtime's `Connecting`); the
        // 4 only stands in for a value out of range, which fails the config.
        upstream_idle_timeout: t
            .upstream_idle_seconds
            .as_ref()
            .map(|_| secs(cx, "upstream_idle_seconds", &t.upstream_idle_seconds, 4)),
        max_body_bytes: endpoints::bounded(cx, "limits.max_body_bytes", &max_body, 32 << 20, 1 << 32) as usize,
        max_connections: optional(cx, "max_connections", &l.max_connections),
        max_event_bytes: endpoints::bounded(cx, "limits.max_event_bytes", &l.max_event_bytes, 16 << 20, 1 << 32)
            as usize,
        max_concurrent: optional(cx, "max_concurrent", &l.max_concurrent),
        max_concurrent_per_endpoint: optional(cx, "max_concurrent_per_endpoint", &l.max_concurrent_per_endpoint),
        max_concurrent_per_key: optional(cx, "max_concurrent_per_key", &l.max_concurrent_per_key),
        max_queue: endpoints::bounded(cx, "limits.max_queue", &l.max_queue, 100, 1_000_000) as usize,
        queue_timeout: std::time::Duration::from_secs(endpoints::bounded(
            cx,
            "limits.queue_timeout_seconds",
            &l.queue_timeout_seconds,
            60,
            day,
        )),
    }
}
