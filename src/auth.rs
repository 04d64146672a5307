//! Virtual API keys on `/v1/*`: `Authorization: Bearer <key>` (scheme case-insensitive) or
//! `x-api-key: <key>`; looked up by hash; never logged.

use http::HeaderMap;
use llm_gateway_compiler::Plan;
use llm_gateway_compiler::acl::KeyEntry;

use crate::error::ApiError;

/// The key the client presented, if any.
pub fn presented(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, rest) = v.trim().split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim()).filter(|k| !k.is_empty());
    }
    headers
        .get(crate::providers::anthropic::API_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// `Ok(None)` when the gateway has no keys configured.
pub fn authenticate<'p>(plan: &'p Plan, headers: &HeaderMap) -> Result<Option<&'p KeyEntry>, ApiError> {
    let Some(table) = &plan.keys else {
        return Ok(None);
    };
    let key = presented(headers).ok_or_else(|| {
        ApiError::unauthorized("missing_api_key", "API key required: send `Authorization: Bearer <key>`")
    })?;
    table.lookup(key).map(Some).ok_or_else(|| ApiError::unauthorized("invalid_api_key", "invalid API key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap())).collect()
    }

    #[test]
    fn bearer_any_case_or_x_api_key() {
        assert_eq!(presented(&headers(&[("authorization", "Bearer sk-1")])), Some("sk-1"));
        assert_eq!(presented(&headers(&[("authorization", "bearer  sk-1 ")])), Some("sk-1"));
        assert_eq!(presented(&headers(&[("x-api-key", "sk-2")])), Some("sk-2"));
        assert_eq!(presented(&headers(&[("authorization", "Basic abc")])), None);
        assert_eq!(presented(&headers(&[("authorization", "Bearer ")])), None);
        assert_eq!(presented(&headers(&[])), None);
    }
}
