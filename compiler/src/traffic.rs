//! Production-traffic settings: `fallbacks` (top level and per route), `retry`,
//! `rate_limits`, and the per-key limits (`rpm`, `tpm`, `tokens_per_day`, `max_concurrent`).

use std::time::Duration;

use crate::decode::{Cx, Spanned};
use crate::endpoints::{bounded, non_empty};
use crate::glob::Glob;
use crate::plan::{OnBackendError, ProviderKind, ProviderPlan, RateBackend, RateLimitPlan, RetryPlan};
use crate::raw;

/// Counts a key may be given: at most a trillion (a day of tokens at any real rate fits).
const MAX_COUNT: u64 = 1_000_000_000_000;

/// A list of fallback models: each non-empty, and a warning when its provider is not
/// configured (it would only ever fail).
pub(crate) fn models(
    cx: &mut Cx,
    path: &str,
    list: &[Spanned<String>],
    providers: &[Option<ProviderPlan>; 3],
) -> Vec<String> {
    let mut out = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let item = format!("{path}[{i}]");
        let model = m.value.trim();
        if model.is_empty() {
            cx.at(&item, |cx| cx.error_help(m.span.clone(), "a fallback needs a model name", "name a model"));
            continue;
        }
        let kind = ProviderKind::for_model(model);
        if providers[kind.index()].is_none() {
            cx.at(&item, |cx| {
                cx.warn(
                    m.span.clone(),
                    format!("fallback `{model}` goes to provider `{kind}`, which is not configured"),
                    Some(format!("add `providers.{kind}`, or pick a model another provider serves")),
                )
            });
        }
        if out.iter().any(|o| o == model) {
            cx.at(&item, |cx| cx.warn(m.span.clone(), format!("fallback `{model}` is listed twice"), None));
            continue;
        }
        out.push(model.to_owned());
    }
    out
}

/// Top-level `fallbacks`: model globs to lists of models, in file order.
pub(crate) fn fallbacks(
    cx: &mut Cx,
    raw: Option<&Spanned<crate::decode::OrderedMap<Vec<Spanned<String>>>>>,
    providers: &[Option<ProviderPlan>; 3],
) -> Vec<(Glob, Vec<String>)> {
    let mut out = Vec::new();
    for (pattern, list) in raw.map(|m| m.value.0.as_slice()).unwrap_or_default() {
        let path = format!("fallbacks.{}", pattern.value);
        let Some(glob) = cx.glob(&path, &pattern.value, pattern.span.clone()) else { continue };
        let models = models(cx, &path, &list.value, providers);
        if list.value.is_empty() {
            cx.at(&path, |cx| cx.warn(list.span.clone(), "no fallback models listed: this entry does nothing", None));
        }
        out.push((glob, models));
    }
    out
}

pub(crate) fn retry(cx: &mut Cx, raw: Option<&raw::Retry>) -> RetryPlan {
    let default = RetryPlan::default();
    let Some(r) = raw else {
        return default;
    };
    let ms = |cx: &mut Cx, name: &str, field: &Option<Spanned<i64>>, default: Duration| {
        Duration::from_millis(bounded(cx, &format!("retry.{name}"), field, default.as_millis() as u64, 600_000))
    };
    let backoff = ms(cx, "backoff_ms", &r.backoff_ms, default.backoff);
    let max_backoff = ms(cx, "max_backoff_ms", &r.max_backoff_ms, default.max_backoff);
    if let Some(m) = &r.max_backoff_ms
        && max_backoff < backoff
    {
        cx.at("retry.max_backoff_ms", |cx| {
            cx.error_help(m.span.clone(), "`max_backoff_ms` is below `backoff_ms`", "raise it, or lower `backoff_ms`")
        });
    }
    let on = match &r.on {
        None => default.on,
        Some(list) => {
            if list.value.is_empty() {
                cx.at("retry.on", |cx| {
                    cx.warn(list.span.clone(), "`on` is empty: nothing retries or falls back", None)
                });
            }
            list.value.iter().map(|s| s.value).collect()
        }
    };
    RetryPlan { attempts: bounded(cx, "retry.attempts", &r.attempts, 1, 10) as u32, backoff, max_backoff, on }
}

pub(crate) fn rate_limits(cx: &mut Cx, raw: Option<&raw::RateLimits>) -> RateLimitPlan {
    let r = raw.cloned().unwrap_or_default();
    let backend = match r.backend.as_ref().filter(|b| !b.value.0.is_empty()) {
        None => RateBackend::Memory,
        Some(b) if b.value.0.expose() == "memory" => RateBackend::Memory,
        Some(b) => {
            let text = b.value.0.expose();
            let scheme_ok = ["redis://", "rediss://"].iter().any(|s| text.starts_with(s));
            match url::Url::parse(text) {
                Ok(u) if scheme_ok && u.host_str().is_some_and(|h| !h.is_empty()) => {
                    RateBackend::Redis(b.value.0.clone())
                }
                _ => {
                    cx.at("rate_limits.backend", |cx| {
                        cx.error_help(
                            b.span.clone(),
                            "`backend` must be `memory` or a Redis URL",
                            "write `redis://host:6379/0` (or `rediss://` for TLS)",
                        )
                    });
                    RateBackend::Memory
                }
            }
        }
    };
    RateLimitPlan {
        backend,
        on_backend_error: r.on_backend_error.map_or(OnBackendError::Allow, |o| o.value),
        timeout: Duration::from_millis(bounded(cx, "rate_limits.timeout_ms", &r.timeout_ms, 50, 60_000)),
    }
}

/// A key's own limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyLimits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub tokens_per_day: Option<u64>,
    /// Requests served at once (overrides `limits.max_concurrent_per_key`).
    pub max_concurrent: Option<usize>,
}

impl KeyLimits {
    /// Whether a request or token limit applies (concurrency is a queue, not a rate).
    pub fn limits_rate(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some() || self.tokens_per_day.is_some()
    }
}

pub(crate) fn key_limits(cx: &mut Cx, path: &str, k: &raw::ApiKey) -> KeyLimits {
    let count = |cx: &mut Cx, name: &str, field: &Option<Spanned<i64>>| {
        field.as_ref().map(|_| bounded(cx, &format!("{path}.{name}"), field, 1, MAX_COUNT))
    };
    KeyLimits {
        rpm: count(cx, "rpm", &k.rpm),
        tpm: count(cx, "tpm", &k.tpm),
        tokens_per_day: count(cx, "tokens_per_day", &k.tokens_per_day),
        max_concurrent: k
            .max_concurrent
            .as_ref()
            .map(|_| bounded(cx, &format!("{path}.max_concurrent"), &k.max_concurrent, 1, 1_000_000) as usize),
    }
}

/// A key's `user`, trimmed; empty is an error (it would silently merge unrelated keys).
pub(crate) fn user(cx: &mut Cx, path: &str, k: &raw::ApiKey) -> Option<String> {
    let u = k.user.as_ref()?;
    if u.value.trim().is_empty() {
        cx.at(&format!("{path}.user"), |cx| {
            cx.error_help(u.span.clone(), "`user` is empty", "name the user, or remove the field")
        });
        return None;
    }
    non_empty(&k.user).map(|u| u.value.trim().to_owned())
}

/// `limits.max_concurrent` counted per endpoint in earlier versions; a config written then,
/// with a pool of several endpoints, now allows fewer requests at once than it did: say so.
pub(crate) fn gateway_wide_concurrency(
    cx: &mut Cx,
    limits: Option<&raw::Limits>,
    providers: &[Option<ProviderPlan>; 3],
) {
    let Some(l) = limits else { return };
    let pooled = providers.iter().flatten().any(|p| p.endpoints.len() > 1);
    if let (Some(m), None, true) = (&l.max_concurrent, &l.max_concurrent_per_endpoint, pooled) {
        cx.at("limits.max_concurrent", |cx| {
            cx.warn(
                m.span.clone(),
                "`limits.max_concurrent` is for the whole gateway, not per endpoint",
                Some("it was per endpoint in earlier versions; for that, write `max_concurrent_per_endpoint`".into()),
            )
        });
    }
}
