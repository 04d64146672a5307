//! Retries and fallbacks: the one place that decides whether a failed try is tried again
//! (`retry`), moved to the next model (`fallbacks`, any provider and dialect), or is the
//! answer. Only failures `retry.on` names qualify (never a 4xx other than 429), and only
//! before anything has reached the client: a try is judged on its status line, before its
//! body is relayed.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use llm_gateway_compiler::plan::{ProviderKind, RetryOn, RetryPlan};
use tracing::warn;

use super::{Answer, Failure, OnQueue, Outgoing, Policy, forward};
use crate::access_log::{AccessLog, Clean};
use crate::dialect::convert::Conversion;
use crate::error::ApiError;
use crate::providers::Operation;
use crate::state::Live;

/// One model to try: its upstream request and how its answer comes back to the client.
pub struct Candidate {
    pub model: String,
    pub kind: ProviderKind,
    pub op: Operation,
    pub body: Bytes,
    pub conversion: Box<Conversion>,
    /// How the client sent a request of the rest of the surface (sent on as it came).
    pub raw: Option<std::sync::Arc<crate::surface::Raw>>,
}

/// The client's headers a passthrough upstream receives (Anthropic's version and betas).
pub type ClientHeaders<'a> = Option<&'a HeaderMap>;

/// Tries `first`, then each of `fallbacks` that `prepare` can build, as `live.plan.retry`
/// says. Returns the last try's outcome with the candidate that produced it (its model
/// answered; its conversion reads the answer).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    live: &Live,
    first: Candidate,
    fallbacks: &[String],
    prepare: &(dyn Fn(&str) -> Result<Candidate, ApiError> + Sync),
    client_headers: ClientHeaders<'_>,
    policy: &Policy,
    log: &mut AccessLog,
    on_queue: &mut OnQueue<'_>,
) -> (Result<Answer, Failure>, Candidate) {
    let plan = &live.plan.retry;
    let mut candidate = first;
    let mut rest = fallbacks.iter();
    let mut attempt = 1;
    loop {
        // A provider with no healthy endpoint hands over to the next fallback at once, without
        // waiting for its endpoints to time out (with none left, it is tried anyway).
        let down = live.pool(candidate.kind).is_some_and(|p| !p.any_healthy());
        if down
            && plan.covers(RetryOn::NoHealthyEndpoint)
            && !rest.as_slice().is_empty()
            && let Some(next) = next_candidate(&mut rest, prepare)
        {
            let why = format!("no endpoint of provider '{}' is healthy", candidate.kind.config_name());
            fall_back(live, log, &candidate, &next, RetryOn::NoHealthyEndpoint, &why);
            candidate = next;
            attempt = 1;
            continue;
        }
        let Some(pool) = live.pool(candidate.kind) else {
            return (Err(ApiError::internal("no_provider", "provider vanished").into()), candidate);
        };
        let out = Outgoing {
            op: candidate.op,
            body: candidate.body.clone(),
            stream: candidate.conversion.stream,
            client_headers: client_headers.filter(|_| candidate.conversion.passthrough()),
            raw: candidate.raw.as_deref(),
        };
        let result = forward(pool, &out, policy, log, on_queue).await;
        let Some(cause) = cause_of(&result).filter(|c| plan.covers(*c)) else {
            return (result, candidate);
        };
        // A pool the failure left with no healthy endpoint is not retried when a fallback can
        // take over (the top of the loop hands over).
        let down = !pool.any_healthy() && plan.covers(RetryOn::NoHealthyEndpoint) && !rest.as_slice().is_empty();
        if attempt < plan.attempts && !down {
            let asked = match &result {
                Ok(answer) => retry_after(answer.response.headers()),
                Err(_) => None,
            };
            // An upstream asking for a longer pause than the cap is not retried: its fallback
            // (or its own answer) is better than a client left waiting.
            if let Some(wait) = wait_before(plan, attempt, asked) {
                crate::metrics::get()
                    .retries
                    .with_label_values(&[live.model_label(&candidate.model), cause.as_str()])
                    .inc();
                warn!(
                    "retry: model '{}' failed ({}); try {} of {} in {} ms",
                    Clean(&candidate.model),
                    cause.as_str(),
                    attempt + 1,
                    plan.attempts,
                    wait.as_millis()
                );
                drop(result);
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
        }
        let Some(next) = next_candidate(&mut rest, prepare) else {
            return (result, candidate);
        };
        fall_back(live, log, &candidate, &next, cause, &describe(&result));
        drop(result);
        candidate = next;
        attempt = 1;
    }
}

/// Records a move from `from` to `next`: a log line, the metric, and the request's log now
/// names the fallback.
fn fall_back(live: &Live, log: &mut AccessLog, from: &Candidate, next: &Candidate, cause: RetryOn, why: &str) {
    crate::metrics::get()
        .fallbacks
        .with_label_values(&[live.model_label(&from.model), live.model_label(&next.model), cause.as_str()])
        .inc();
    warn!(
        "fallback: model '{}' failed ({}): {}; trying '{}'",
        Clean(&from.model),
        cause.as_str(),
        Clean(why),
        Clean(&next.model)
    );
    log.set_model_sent(&next.model, live);
    log.provider = Some(next.kind.label());
    log.endpoint = None;
    log.error_type = None;
}

/// The next fallback that can be built (its provider serves the request); the others are
/// skipped with a warning.
fn next_candidate<'f>(
    rest: &mut impl Iterator<Item = &'f String>,
    prepare: &(dyn Fn(&str) -> Result<Candidate, ApiError> + Sync),
) -> Option<Candidate> {
    for model in rest {
        match prepare(model) {
            Ok(c) => return Some(c),
            Err(e) => warn!("fallback '{}' skipped: {}", Clean(model), Clean(&e.message)),
        }
    }
    None
}

/// Why a try failed, when it is a failure retries and fallbacks are for.
fn cause_of(result: &Result<Answer, Failure>) -> Option<RetryOn> {
    match result {
        Ok(answer) => match answer.response.status().as_u16() {
            429 => Some(RetryOn::RateLimited),
            500..=599 => Some(RetryOn::ServerError),
            _ => None,
        },
        Err(f) => f.cause,
    }
}

fn describe(result: &Result<Answer, Failure>) -> String {
    match result {
        Ok(answer) => format!("the upstream answered {}", answer.response.status()),
        Err(f) => f.error.message.clone(),
    }
}

/// The upstream's own pause: OpenAI's `retry-after-ms`, else `Retry-After` in seconds (the
/// HTTP-date form is not used by LLM APIs and is ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        let v = headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok()?;
        // A day at most: any longer is "not now" all the same, and a huge value must not
        // overflow a `Duration`.
        (v.is_finite() && v >= 0.0).then_some(v)
    };
    let seconds = number("retry-after-ms").map(|ms| ms / 1000.0).or_else(|| number("retry-after"))?;
    Some(Duration::from_secs_f64(seconds.min(86_400.0)))
}

/// How long to wait before try `attempt + 1`: the upstream's `Retry-After` when it gave one
/// (`None` when that is over the cap), else exponential backoff with jitter.
fn wait_before(plan: &RetryPlan, attempt: u32, asked: Option<Duration>) -> Option<Duration> {
    if let Some(asked) = asked {
        return (asked <= plan.max_backoff).then_some(asked);
    }
    let exp = plan.backoff.saturating_mul(1 << (attempt - 1).min(16)).min(plan.max_backoff);
    // "Equal jitter": half fixed, half random, so replicas that failed together spread out.
    let half = exp / 2;
    let random = getrandom::u64().unwrap_or(0) % (half.as_millis() as u64 + 1);
    Some(half + Duration::from_millis(random))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap())).collect()
    }

    #[test]
    fn retry_after_reads_milliseconds_first_then_seconds() {
        assert_eq!(retry_after(&headers(&[("retry-after", "2")])), Some(Duration::from_secs(2)));
        assert_eq!(
            retry_after(&headers(&[("retry-after", "2"), ("retry-after-ms", "150")])),
            Some(Duration::from_millis(150))
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")])), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-3")])), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "NaN")])), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "1e300")])), Some(Duration::from_secs(86_400)));
        assert_eq!(retry_after(&headers(&[("retry-after-ms", "1e25")])), Some(Duration::from_secs(86_400)));
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap_and_long_retry_after_is_refused() {
        let plan = RetryPlan {
            attempts: 5,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            on: vec![],
        };
        for _ in 0..100 {
            let first = wait_before(&plan, 1, None).unwrap();
            assert!((Duration::from_millis(50)..=Duration::from_millis(100)).contains(&first), "{first:?}");
            let second = wait_before(&plan, 2, None).unwrap();
            assert!((Duration::from_millis(100)..=Duration::from_millis(200)).contains(&second), "{second:?}");
            let capped = wait_before(&plan, 30, None).unwrap();
            assert!((Duration::from_millis(150)..=Duration::from_millis(300)).contains(&capped), "{capped:?}");
        }
        assert_eq!(wait_before(&plan, 1, Some(Duration::from_millis(250))), Some(Duration::from_millis(250)));
        assert_eq!(wait_before(&plan, 1, Some(Duration::from_secs(1))), None);
    }
}
