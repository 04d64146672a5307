//! The `x-ratelimit-*` response headers, as OpenAI names and formats them, so clients that
//! already read OpenAI's (SDK retry logic, dashboards) read ours.

use http::{HeaderName, HeaderValue};
use llm_gateway_compiler::acl::KeyLimits;

use super::{Kind, Used};

const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
const REMAINING_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
const RESET_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
const REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
const RESET_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");

/// The headers for a response given what the subject has used (this request included when
/// it was let through): requests when `rpm` is set; tokens for `tpm`, else `tokens_per_day`
/// (OpenAI has one set of token headers: the shorter window is the one a client paces by).
pub(super) fn for_response(limits: &KeyLimits, used: &Used, now_ms: u64) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::with_capacity(6);
    if let Some(limit) = limits.rpm {
        push(&mut out, [LIMIT_REQUESTS, REMAINING_REQUESTS, RESET_REQUESTS], Kind::Rpm, limit, used, now_ms);
    }
    let tokens = match (limits.tpm, limits.tokens_per_day) {
        (Some(limit), _) => Some((Kind::Tpm, limit)),
        (None, Some(limit)) => Some((Kind::TokensPerDay, limit)),
        (None, None) => None,
    };
    if let Some((kind, limit)) = tokens {
        push(&mut out, [LIMIT_TOKENS, REMAINING_TOKENS, RESET_TOKENS], kind, limit, used, now_ms);
    }
    out
}

fn push(
    out: &mut Vec<(HeaderName, HeaderValue)>,
    [limit_name, remaining_name, reset_name]: [HeaderName; 3],
    kind: Kind,
    limit: u64,
    used: &Used,
    now_ms: u64,
) {
    out.push((limit_name, HeaderValue::from(limit)));
    out.push((remaining_name, HeaderValue::from(limit.saturating_sub(kind.used(used)))));
    // Digits and unit letters only: always a valid header value.
    if let Ok(reset) = HeaderValue::try_from(go_duration(kind.until_reset_ms(now_ms))) {
        out.push((reset_name, reset));
    }
}

/// A duration as OpenAI writes `x-ratelimit-reset-*`, which is Go's `time.Duration` format
/// (clients parse it with Go's `time.ParseDuration` or an equivalent): `120ms`, `1s`,
/// `59.5s`, `6m0s`, `1h0m0s`, `23h59m59.999s`; here at millisecond precision.
pub(super) fn go_duration(ms: u64) -> String {
    use std::fmt::Write;
    if ms < 1000 {
        return if ms == 0 { "0s".to_owned() } else { format!("{ms}ms") };
    }
    let (h, m, s, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let mut out = String::with_capacity(16);
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(out, "{m}m");
    }
    let _ = write!(out, "{s}");
    if frac > 0 {
        // Go trims trailing zeros of the fraction: 1.5s, 1.05s, 1.005s.
        let digits = format!("{frac:03}");
        let _ = write!(out, ".{}", digits.trim_end_matches('0'));
    }
    out.push('s');
    out
}
