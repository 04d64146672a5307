//! Per-key rate limits and quotas: `rpm`, `tpm` and `tokens_per_day` on a key entry, counted
//! per subject (the key's `user`, else its name) in memory or in Redis (shared by replicas).
//!
//! Windows are fixed and aligned to the clock: a minute window runs from :00 to :59.999 of a
//! wall-clock minute, a day window is a UTC day. That is simpler than a sliding window, costs
//! one counter per window, and every replica (and Redis) agrees on which window a moment
//! belongs to without talking to each other (their clocks are assumed NTP-synced: a skew only
//! moves the boundary by that much). The price: a client may spend a whole limit at :59 and
//! again at :00.
//!
//! A request is checked against every limit its key has before anything is counted; over one,
//! nothing is counted and it gets a 429 until that window ends. Let through, it counts one
//! request and `estimate` tokens (its prompt) in each window, and the [`Reservation`] later
//! replaces the estimate with the real count. A token limit is exhausted once its window has
//! used as many tokens as the limit: the request that crosses it is still let through (its
//! size is not known in advance), the next one is not.

mod headers;
mod memory;
mod redis;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderName, HeaderValue};
use llm_gateway_compiler::acl::KeyLimits;
use llm_gateway_compiler::plan::{OnBackendError, RateBackend, RateLimitPlan};

/// The process's limiter: its backend and, for `memory`, the counters.
pub struct Limiter {
    plan: RateLimitPlan,
    backend: Backend,
    clock: Clock,
}

/// Shared between the limiters of successive configs whose backend is the same, so a reload
/// that only changes `on_backend_error` or `timeout_ms` keeps counters and connections.
#[derive(Clone)]
enum Backend {
    Memory(Arc<memory::Memory>),
    Redis(Arc<redis::Redis>),
    /// A backend URL the Redis client refuses: every check is a backend error (logged once
    /// when the limiter is built, then like any other backend error).
    Broken(Arc<str>),
}

/// A request let through: the headers to add to its response, and the tokens reserved for it.
#[derive(Default)]
pub struct Admission {
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub reservation: Option<Reservation>,
}

/// A request over a limit: answer 429 with these.
pub struct Refusal {
    /// `rpm`, `tpm` or `tokens_per_day`.
    pub limit: &'static str,
    /// Until the end of that limit's window, in whole seconds (at least 1), so a client that
    /// waits this long finds a fresh window.
    pub retry_after: Duration,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// The backend failed and `on_backend_error: deny`: answer 503.
pub struct Unavailable;

pub enum Decision {
    Allowed(Admission),
    Limited(Refusal),
    Unavailable(Unavailable),
}

/// Tokens reserved at admission (an estimate of the prompt); corrected to the real count
/// when the response is done. Dropped without [`Reservation::settle`], the estimate stays.
pub struct Reservation {
    estimate: u64,
    counted: Counted,
}

/// Where the estimate was counted: settling corrects those very windows, even when the clock
/// has moved on since (a late correction to a past window is harmless, one to the current
/// window would be wrong).
enum Counted {
    Memory(memory::Counted),
    Redis(redis::Counted),
}

impl Reservation {
    /// Records the request's real token count (prompt + completion) in place of the estimate.
    /// With Redis the correction is sent by a task on the current runtime (this runs in a
    /// `Drop`), bounded by `timeout_ms`; a failure counts as a backend error.
    pub fn settle(self, actual: u64) {
        if actual == self.estimate {
            return;
        }
        match self.counted {
            Counted::Memory(c) => c.settle(self.estimate, actual),
            Counted::Redis(c) => c.settle(self.estimate, actual),
        }
    }

    /// The tokens counted at admission.
    pub fn estimate(&self) -> u64 {
        self.estimate
    }
}

impl Limiter {
    /// The limiter for `plan`: `previous` itself when the plan is the same (counters kept
    /// across reloads), one sharing its backend (counters, connections) when only
    /// `on_backend_error` or `timeout_ms` changed, else a new one.
    pub fn reconciled(plan: &RateLimitPlan, previous: Option<&Arc<Limiter>>) -> Arc<Limiter> {
        match previous {
            Some(p) if p.plan == *plan => p.clone(),
            Some(p) if p.plan.backend == plan.backend => {
                Arc::new(Limiter { plan: plan.clone(), backend: p.backend.clone(), clock: p.clock.clone() })
            }
            _ => Arc::new(Limiter::with_clock(plan, Clock::system())),
        }
    }

    /// A new limiter reading the time from `clock` (tests and benches move it by hand).
    pub fn with_clock(plan: &RateLimitPlan, clock: Clock) -> Limiter {
        let backend = match &plan.backend {
            RateBackend::Memory => Backend::Memory(Arc::default()),
            RateBackend::Redis(url) => match redis::Redis::new(url.expose()) {
                Ok(r) => Backend::Redis(Arc::new(r)),
                Err(why) => {
                    tracing::error!(
                        "rate_limits.backend: {why}; every rate-limit check fails and `on_backend_error` applies"
                    );
                    Backend::Broken(why.into())
                }
            },
        };
        Limiter { plan: plan.clone(), backend, clock }
    }

    /// Counts a request of `subject` with `limits`, reserving `estimate` tokens. Free (no
    /// headers, nothing counted) for a key without rate limits. Never waits longer than the
    /// backend's `timeout_ms`.
    pub async fn admit(&self, subject: &str, limits: &KeyLimits, estimate: u64) -> Decision {
        if !limits.limits_rate() {
            return Decision::Allowed(Admission::default());
        }
        let now = self.clock.now_ms();
        let failure = match &self.backend {
            Backend::Memory(m) => return m.admit(subject, limits, estimate, now),
            Backend::Redis(r) => {
                let timeout = self.plan.timeout;
                match tokio::time::timeout(timeout, r.admit(subject, limits, estimate, now, timeout)).await {
                    Ok(Ok(decision)) => return decision,
                    Ok(Err(why)) => why,
                    Err(_) => format!("Redis did not answer within {} ms", timeout.as_millis()),
                }
            }
            Backend::Broken(why) => why.to_string(),
        };
        backend_error(&failure);
        match self.plan.on_backend_error {
            OnBackendError::Allow => Decision::Allowed(Admission::default()),
            OnBackendError::Deny => Decision::Unavailable(Unavailable),
        }
    }
}

/// Wall-clock time in milliseconds since the Unix epoch: the system's, or one set by hand.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<AtomicU64>>);

impl Clock {
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock that stands still at `unix_ms` until moved.
    pub fn manual(unix_ms: u64) -> Clock {
        Clock(Some(Arc::new(AtomicU64::new(unix_ms))))
    }

    pub fn set(&self, unix_ms: u64) {
        if let Some(t) = &self.0 {
            t.store(unix_ms, Ordering::Relaxed);
        }
    }

    pub fn advance(&self, by: Duration) {
        if let Some(t) = &self.0 {
            t.fetch_add(by.as_millis() as u64, Ordering::Relaxed);
        }
    }

    pub fn now_ms(&self) -> u64 {
        match &self.0 {
            Some(t) => t.load(Ordering::Relaxed),
            None => SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
        }
    }
}

const MINUTE_MS: u64 = 60_000;
const DAY_MS: u64 = 86_400_000;

/// One of a key's limits, with its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rpm,
    Tpm,
    TokensPerDay,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Rpm => "rpm",
            Kind::Tpm => "tpm",
            Kind::TokensPerDay => "tokens_per_day",
        }
    }

    fn window_ms(self) -> u64 {
        match self {
            Kind::Rpm | Kind::Tpm => MINUTE_MS,
            Kind::TokensPerDay => DAY_MS,
        }
    }

    /// The window `now` falls in: minutes (or days) since the Unix epoch.
    fn window(self, now_ms: u64) -> u64 {
        now_ms / self.window_ms()
    }

    /// Milliseconds from `now` to the end of its window (at least 1).
    fn until_reset_ms(self, now_ms: u64) -> u64 {
        self.window_ms() - now_ms % self.window_ms()
    }

    fn used(self, used: &Used) -> u64 {
        match self {
            Kind::Rpm => used.requests,
            Kind::Tpm => used.minute_tokens,
            Kind::TokensPerDay => used.day_tokens,
        }
    }

    /// What one request adds to this window at admission.
    fn increment(self, estimate: u64) -> u64 {
        match self {
            Kind::Rpm => 1,
            Kind::Tpm | Kind::TokensPerDay => estimate,
        }
    }
}

/// The key's configured limits, in a fixed order (the Redis script's keys follow it).
fn configured(limits: &KeyLimits) -> impl Iterator<Item = (Kind, u64)> {
    [(Kind::Rpm, limits.rpm), (Kind::Tpm, limits.tpm), (Kind::TokensPerDay, limits.tokens_per_day)]
        .into_iter()
        .filter_map(|(kind, limit)| Some((kind, limit?)))
}

/// The names (`rpm`, `tpm`, `tokens_per_day`) of the key's configured limits, as refusals and
/// metrics name them.
pub fn limit_names(limits: &KeyLimits) -> impl Iterator<Item = &'static str> {
    configured(limits).map(|(kind, _)| kind.name())
}

/// What a subject has used in the current windows (only the configured ones are meaningful).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Used {
    requests: u64,
    minute_tokens: u64,
    day_tokens: u64,
}

impl Used {
    fn set(&mut self, kind: Kind, value: u64) {
        match kind {
            Kind::Rpm => self.requests = value,
            Kind::Tpm => self.minute_tokens = value,
            Kind::TokensPerDay => self.day_tokens = value,
        }
    }
}

/// The limit that refuses a request given what was used, if any: of several exhausted ones,
/// the one whose window ends last (the client has to wait for that one anyway).
fn exhausted(limits: &KeyLimits, used: &Used, now_ms: u64) -> Option<(Kind, u64)> {
    configured(limits)
        .filter(|&(kind, limit)| kind.used(used) >= limit)
        .map(|(kind, _)| (kind, kind.until_reset_ms(now_ms)))
        .max_by_key(|&(_, reset)| reset)
}

fn refusal(limits: &KeyLimits, kind: Kind, reset_ms: u64, used: &Used, now_ms: u64) -> Refusal {
    Refusal {
        limit: kind.name(),
        retry_after: Duration::from_secs(reset_ms.div_ceil(1000).max(1)),
        headers: headers::for_response(limits, used, now_ms),
    }
}

/// Rate-limit backend failures: always counted, logged at most once per 10 s (with how many
/// were not logged) so a Redis outage does not flood the log at request rate.
fn backend_error(why: &str) {
    static LAST_LOGGED_MS: AtomicU64 = AtomicU64::new(0);
    static NOT_LOGGED: AtomicU64 = AtomicU64::new(0);
    crate::metrics::get().rate_limit_backend_errors.inc();
    let now = Clock::system().now_ms();
    let last = LAST_LOGGED_MS.load(Ordering::Relaxed);
    let due = last == 0 || now.saturating_sub(last) >= 10_000;
    if due && LAST_LOGGED_MS.compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed).is_ok() {
        let since = NOT_LOGGED.swap(0, Ordering::Relaxed);
        tracing::warn!(
            not_logged_since = since,
            "rate limits: the backend failed ({why}); `on_backend_error` applies (failures are counted in \
             llm_gateway_rate_limit_backend_errors_total, logged at most every 10 s)"
        );
    } else {
        NOT_LOGGED.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
