//! Upstream adapters: what differs between the wire formats an upstream can serve. One file
//! per upstream dialect; everything else (ordering endpoints, queueing, timeouts, failover,
//! the log record) is in [`crate::upstream`] and the same for all of them. A new provider
//! dialect (say Gemini) is a new file here, a `ProviderKind` variant, and its arm in
//! [`adapter`], plus its translations in `crate::dialect`.

pub mod anthropic;
pub mod openai;

use http::{HeaderMap, HeaderValue};
use llm_gateway_compiler::plan::{ApiKey, ProviderKind};

use crate::dialect::Dialect;

/// What the gateway asks an upstream for. Each adapter maps the ones it serves to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Chat,
    Embeddings,
    Completions,
    Messages,
    CountTokens,
    Responses,
    /// Ollama's own embeddings API, for a local server without `/v1/embeddings`.
    OllamaEmbed,
}

impl Operation {
    pub const ALL: [Operation; 7] = [
        Operation::Chat,
        Operation::Embeddings,
        Operation::Completions,
        Operation::Messages,
        Operation::CountTokens,
        Operation::Responses,
        Operation::OllamaEmbed,
    ];
}

/// A provider's wire format as an upstream.
pub trait Adapter: Sync {
    /// The dialect its chat operation speaks (the hub, Chat, for OpenAI-compatible servers).
    fn dialect(&self) -> Dialect;
    /// Whether it serves `dialect` natively, so a client speaking it is passed through.
    fn serves(&self, dialect: Dialect) -> bool {
        dialect == self.dialect()
    }
    /// The path of `op`, or `None` when this upstream has no such operation.
    fn path(&self, op: Operation) -> Option<&'static str>;
    /// The auth header carrying the provider's key.
    fn auth_header(&self, key: &str) -> Result<(http::HeaderName, HeaderValue), http::header::InvalidHeaderValue>;
    /// Headers every request carries (e.g. `anthropic-version`), given the client's headers
    /// when the client speaks this upstream's dialect.
    fn headers(&self, _client: Option<&HeaderMap>, _out: &mut HeaderMap) {}
    /// The paths a health probe tries in order, each with the list and field that hold the
    /// model ids; empty when the upstream is not probed.
    fn probes(&self) -> &'static [Probe] {
        &[]
    }
    /// The model ids to list when the upstream is not probed.
    fn static_models(&self) -> &'static [&'static str] {
        &[]
    }
}

/// One health-probe request: `GET path`, model ids at `list[*].field` of the JSON answer.
pub struct Probe {
    pub path: &'static str,
    pub list: &'static str,
    pub field: &'static str,
}

pub fn adapter(kind: ProviderKind) -> &'static dyn Adapter {
    match kind {
        ProviderKind::OpenAi => &openai::OPENAI,
        ProviderKind::Local => &openai::LOCAL,
        ProviderKind::Anthropic => &anthropic::ANTHROPIC,
    }
}

/// What goes into the upstream's auth header.
#[derive(Clone)]
pub enum Credential {
    None,
    /// Ready to send (marked sensitive so it is never logged).
    Header(http::HeaderName, HeaderValue),
    /// The key is missing or unusable: requests fail with this message.
    Missing(String),
}

impl Credential {
    pub fn of(kind: ProviderKind, key: &ApiKey) -> Self {
        match key {
            ApiKey::None => Credential::None,
            ApiKey::Set(key) => match adapter(kind).auth_header(key.expose()) {
                Ok((name, mut value)) => {
                    value.set_sensitive(true);
                    Credential::Header(name, value)
                }
                Err(_) => Credential::Missing(format!(
                    "the API key of provider `{kind}` contains characters not allowed in an HTTP header"
                )),
            },
            ApiKey::Unset { vars } => Credential::Missing(format!(
                "provider `{kind}` has no API key: environment variable {} is not set",
                vars.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", ")
            )),
        }
    }

    /// The header to send, if any; `Err` with the reason when the key is missing.
    pub fn header(&self) -> Result<Option<(&http::HeaderName, &HeaderValue)>, &str> {
        match self {
            Credential::None => Ok(None),
            Credential::Header(name, value) => Ok(Some((name, value))),
            Credential::Missing(why) => Err(why),
        }
    }
}
