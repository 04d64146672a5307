//! OpenAI and every OpenAI-compatible server (Ollama, vLLM, llama.cpp's server, SGLang):
//! Chat Completions, embeddings and legacy completions under `/v1`, `Authorization: Bearer`.
//! OpenAI itself also serves the Responses API; local servers are not assumed to.

use http::HeaderValue;

use super::{Adapter, Operation, Probe};
use crate::dialect::Dialect;

pub struct OpenAiCompatible {
    /// OpenAI itself: serves `POST /v1/responses` (local servers get it translated to Chat);
    /// a local server may be an Ollama with its own `POST /api/embed`.
    openai: bool,
}

pub static OPENAI: OpenAiCompatible = OpenAiCompatible { openai: true };
pub static LOCAL: OpenAiCompatible = OpenAiCompatible { openai: false };

/// `GET /v1/models`, falling back to Ollama's own `GET /api/tags`.
static PROBES: [Probe; 2] = [
    Probe { path: "/v1/models", list: "data", field: "id" },
    Probe { path: "/api/tags", list: "models", field: "name" },
];

impl Adapter for OpenAiCompatible {
    fn dialect(&self) -> Dialect {
        Dialect::Chat
    }

    fn serves(&self, dialect: Dialect) -> bool {
        dialect == Dialect::Chat || (self.openai && dialect == Dialect::Responses)
    }

    fn path(&self, op: Operation) -> Option<&'static str> {
        match op {
            Operation::Chat => Some("/v1/chat/completions"),
            Operation::Embeddings => Some("/v1/embeddings"),
            Operation::Completions => Some("/v1/completions"),
            Operation::Responses if self.openai => Some("/v1/responses"),
            Operation::OllamaEmbed if !self.openai => Some("/api/embed"),
            _ => None,
        }
    }

    fn auth_header(&self, key: &str) -> Result<(http::HeaderName, HeaderValue), http::header::InvalidHeaderValue> {
        Ok((http::header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {key}"))?))
    }

    fn probes(&self) -> &'static [Probe] {
        &PROBES
    }
}
