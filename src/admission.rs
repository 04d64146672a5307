//! The checks a request passes once its target is known, before anything is sent upstream:
//! the provider is usable, the key may use the model and route, and the key's rate limits let
//! it through (the limiter's headers then go on whatever response it gets).

use http::{HeaderName, HeaderValue};
use llm_gateway_compiler::acl::KeyEntry;
use llm_gateway_compiler::plan::ProviderKind;

use crate::access_log::AccessLog;
use crate::error::ApiError;
use crate::pool::Pool;
use crate::ratelimit;
use crate::route::Target;
use crate::state::Live;

/// The rate-limit headers of a key with limits (`Some`, even empty when its backend could not
/// say), for every response to it; `None` for a key without.
pub type LimitHeaders = Option<Vec<(HeaderName, HeaderValue)>>;

/// The pool of provider `kind` that serves `model`, usable (configured, with its credentials).
pub fn pool_of<'l>(live: &'l Live, kind: ProviderKind, model: &str) -> Result<&'l Pool, ApiError> {
    let pool = live.pool(kind).ok_or_else(|| {
        ApiError::bad_request(
            "provider_not_configured",
            format!("model '{model}' is served by provider '{}', which is not configured", kind.config_name()),
        )
    })?;
    pool.credential.header().map_err(|why| ApiError::internal("provider_credentials_missing", why))?;
    Ok(pool)
}

/// Whether `target` can be served to `key`: the key's ACL first, so a key learns nothing about
/// a model it may not use (not even that its provider is not configured), then the provider.
pub fn servable(live: &Live, key: Option<&KeyEntry>, target: &Target) -> Result<(), ApiError> {
    authorize(key, target)?;
    pool_of(live, target.provider, &target.model).map(drop)
}

fn authorize(key: Option<&KeyEntry>, target: &Target) -> Result<(), ApiError> {
    let Some(k) = key else { return Ok(()) };
    if !k.allows_model(&target.model) {
        return Err(ApiError::forbidden(
            "model_not_allowed",
            format!("model '{}' is not allowed for this API key", target.model),
        ));
    }
    if let Some(r) = target.route.as_deref().filter(|r| !k.allows_route(r)) {
        return Err(ApiError::forbidden("route_not_allowed", format!("route '{r}' is not allowed for this API key")));
    }
    Ok(())
}

/// The key's rate limits (`estimate`: the prompt's tokens, until the answer says; `None`: a
/// request that does not count, such as `count_tokens`), once the target is authorized and
/// servable. The limit headers go on the response whatever happens next.
pub async fn admit(
    live: &Live,
    key: Option<&KeyEntry>,
    estimate: Option<u64>,
    log: &mut AccessLog,
    limit_headers: &mut LimitHeaders,
) -> Result<(), ApiError> {
    let Some(k) = key else { return Ok(()) };
    let Some(estimate) = estimate.filter(|_| k.limits.limits_rate()) else {
        return Ok(());
    };
    match live.limiter.admit(k.subject(), &k.limits, estimate).await {
        ratelimit::Decision::Allowed(admission) => {
            *limit_headers = Some(admission.headers);
            log.reservation = admission.reservation;
            Ok(())
        }
        ratelimit::Decision::Limited(refusal) => {
            *limit_headers = Some(refusal.headers);
            if log.metrics {
                crate::metrics::get().rate_limited.with_label_values(&[&k.name, refusal.limit]).inc();
            }
            Err(ApiError::rate_limited(refusal.limit, refusal.retry_after))
        }
        ratelimit::Decision::Unavailable(_) => {
            *limit_headers = Some(Vec::new());
            Err(ApiError::rate_limit_backend())
        }
    }
}
