//! Per-key rate limits and quotas: `rpm`, `tpm` and `tokens_per_day` on a key entry, counted
//! per subject (the key's `user`, else its name) in memory or in Redis (shared by replicas).
//!
//! SKELETON: the API the request path uses; the implementation is being written.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use llm_gateway_compiler::acl::KeyLimits;
use llm_gateway_compiler::plan::RateLimitPlan;

/// The process's limiter: its backend and, for `memory`, the counters.
pub struct Limiter {
    plan: RateLimitPlan,
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
/// when the response is done.
pub struct Reservation {
    _reserved: u64,
}

impl Reservation {
    /// Records the request's real token count (prompt + completion) in place of the estimate.
    pub fn settle(self, _actual: u64) {}
}

impl Limiter {
    /// The limiter for `plan`: `previous` itself when its backend is the same (counters kept
    /// across reloads), else a new one.
    pub fn reconciled(plan: &RateLimitPlan, previous: Option<&Arc<Limiter>>) -> Arc<Limiter> {
        match previous {
            Some(p) if p.plan == *plan => p.clone(),
            _ => Arc::new(Limiter { plan: plan.clone() }),
        }
    }

    /// Counts a request of `subject` with `limits`, reserving `estimate` tokens.
    pub async fn admit(&self, _subject: &str, _limits: &KeyLimits, _estimate: u64) -> Decision {
        Decision::Allowed(Admission::default())
    }
}
