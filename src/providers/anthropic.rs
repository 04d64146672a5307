//! Anthropic: the Messages API (`POST /v1/messages`, `POST /v1/messages/count_tokens`),
//! `x-api-key`, `anthropic-version`. Not probed (no model listing the Go gateway used); its
//! models are listed from a fixed list.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::{Adapter, Operation};
use crate::dialect::Dialect;
use crate::dialect::messages::VERSION;

pub struct Anthropic;

/// Header names made once, at compile time (a name made from a string is checked each time).
pub const API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");
const VERSION_HEADER: HeaderName = HeaderName::from_static("anthropic-version");
const BETA_HEADER: HeaderName = HeaderName::from_static("anthropic-beta");

pub static ANTHROPIC: Anthropic = Anthropic;

/// The Go gateway's static list: Anthropic has no OpenAI-style model listing.
pub const MODELS: [&str; 10] = [
    "claude-opus-4-6",
    "claude-sonnet-4-6",
    "claude-haiku-4-5-20251001",
    "claude-sonnet-4-5-20250929",
    "claude-opus-4-5-20251101",
    "claude-opus-4-1-20250805",
    "claude-sonnet-4-20250514",
    "claude-opus-4-20250514",
    "claude-3-7-sonnet-20250219",
    "claude-3-haiku-20240307",
];

impl Adapter for Anthropic {
    fn dialect(&self) -> Dialect {
        Dialect::Messages
    }

    fn path(&self, op: Operation) -> Option<&'static str> {
        match op {
            Operation::Messages => Some("/v1/messages"),
            Operation::CountTokens => Some("/v1/messages/count_tokens"),
            _ => None,
        }
    }

    fn auth_header(&self, key: &str) -> Result<(HeaderName, HeaderValue), http::header::InvalidHeaderValue> {
        Ok((API_KEY_HEADER, HeaderValue::from_str(key)?))
    }

    /// The client's `anthropic-version` and `anthropic-beta` when it speaks Messages (Claude
    /// Code asks for betas it relies on); else the version the translation is written for.
    fn headers(&self, client: Option<&HeaderMap>, out: &mut HeaderMap) {
        let version = client.and_then(|h| h.get(VERSION_HEADER)).cloned();
        out.insert(VERSION_HEADER, version.unwrap_or(HeaderValue::from_static(VERSION)));
        if let Some(beta) = client.and_then(|h| h.get(BETA_HEADER)) {
            out.insert(BETA_HEADER, beta.clone());
        }
    }

    fn static_models(&self) -> &'static [&'static str] {
        &MODELS
    }
}
