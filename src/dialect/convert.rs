//! One request's way between the client's dialect and the upstream's: the upstream body
//! (passed through with `model` spliced, or translated through the Chat hub) and how the
//! answer comes back (bytes, a stream translator, or a whole-body translation).

use bytes::Bytes;
use http::StatusCode;
use llm_gateway_compiler::plan::ProviderKind;
use serde_json::Value;

use super::chat::Completion;
use super::messages::{client as messages_client, upstream as anthropic};
use super::responses::{self, response::Echo};
use super::{Dialect, StreamTranslator};
use crate::error::ApiError;
use crate::providers::{Operation, adapter};
use crate::request::{self, Parsed};

/// What the client asked for, by path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    Chat,
    Embeddings,
    Completions,
    Messages,
    CountTokens,
    Responses,
}

impl Ingress {
    pub fn dialect(self) -> Dialect {
        match self {
            Ingress::Chat | Ingress::Embeddings | Ingress::Completions => Dialect::Chat,
            Ingress::Messages | Ingress::CountTokens => Dialect::Messages,
            Ingress::Responses => Dialect::Responses,
        }
    }

    /// The upstream operation when the upstream serves the client's dialect as is.
    fn operation(self) -> Operation {
        match self {
            Ingress::Chat => Operation::Chat,
            Ingress::Embeddings => Operation::Embeddings,
            Ingress::Completions => Operation::Completions,
            Ingress::Messages => Operation::Messages,
            Ingress::CountTokens => Operation::CountTokens,
            Ingress::Responses => Operation::Responses,
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Ingress::Chat => "/v1/chat/completions",
            Ingress::Embeddings => "/v1/embeddings",
            Ingress::Completions => "/v1/completions",
            Ingress::Messages => "/v1/messages",
            Ingress::CountTokens => "/v1/messages/count_tokens",
            Ingress::Responses => "/v1/responses",
        }
    }
}

/// How the answer goes back to the client.
pub struct Conversion {
    pub client: Dialect,
    /// The dialect the upstream answers in.
    pub upstream: Dialect,
    pub stream: bool,
    /// A Chat client asked for a usage chunk (`stream_options.include_usage`).
    include_usage: bool,
    /// The gateway asked a passthrough Chat stream for its usage chunk on the client's
    /// behalf: take it out of what the client receives.
    pub strip_usage: bool,
    /// The answer is one of the dialect's (a stream must end as its streams do); false for
    /// the rest of the surface, whose streams the gateway does not judge.
    pub dialect_answer: bool,
    /// What a Responses answer repeats from the request.
    echo: Option<Echo>,
}

/// The upstream request, or an answer the gateway gives itself.
pub enum Prepared {
    Forward {
        op: Operation,
        body: Bytes,
        conversion: Box<Conversion>,
    },
    /// `count_tokens` for an upstream without it: an estimate.
    Answer(Value),
}

fn invalid_json(e: serde_json::Error) -> ApiError {
    ApiError::bad_request("invalid_json", format!("invalid JSON in request body: {e}"))
}

/// The upstream body for `model` on provider `kind`.
pub fn prepare(
    ingress: Ingress,
    body: &Bytes,
    parsed: &Parsed,
    model: &str,
    kind: ProviderKind,
) -> Result<Prepared, ApiError> {
    let client = ingress.dialect();
    let adapter = adapter(kind);
    let stream = parsed.is_stream();
    if adapter.serves(client) {
        // Streamed tokens are counted always: ask for the usage chunk the client did not.
        let chat = matches!(ingress, Ingress::Chat | Ingress::Completions);
        let strip_usage = stream && chat && parsed.usage_asked() == request::UsageAsked::No;
        let body = match (parsed.model.as_deref() == Some(model), strip_usage) {
            (true, false) => body.clone(),
            (same, _) => Bytes::from(request::rewrite(body, parsed, (!same).then_some(model), strip_usage)),
        };
        let conversion = Conversion {
            client,
            upstream: client,
            stream,
            // For a whole answer replayed as events.
            include_usage: chat && parsed.usage_asked() == request::UsageAsked::Yes,
            strip_usage,
            dialect_answer: true,
            echo: None,
        };
        return Ok(Prepared::Forward { op: ingress.operation(), body, conversion: Box::new(conversion) });
    }
    if matches!(ingress, Ingress::Embeddings | Ingress::Completions) {
        return Err(ApiError::bad_request(
            "unsupported_operation",
            format!("provider '{}' does not serve {}", kind.config_name(), ingress.path()),
        ));
    }
    let mut conversion = Conversion {
        client,
        upstream: adapter.dialect(),
        stream,
        include_usage: true,
        strip_usage: false,
        dialect_answer: true,
        echo: None,
    };
    let anthropic = |chat: &[u8], conversion: Conversion| {
        let asked = anthropic::request::Asked { stream, include_usage: conversion.include_usage };
        let body = anthropic::request::from_chat(chat, model, &asked)?;
        Ok(Prepared::Forward { op: Operation::Messages, body: Bytes::from(body), conversion: Box::new(conversion) })
    };
    if client == Dialect::Chat {
        // Only an Anthropic upstream does not serve a Chat client: its body is translated from
        // the client's bytes.
        conversion.include_usage = parsed.usage_asked() == request::UsageAsked::Yes;
        return anthropic(body, conversion);
    }
    let openai = kind == ProviderKind::OpenAi;
    let chat = match ingress {
        Ingress::CountTokens => {
            let req: Value = serde_json::from_slice(body).map_err(invalid_json)?;
            let tokens = messages_client::count::estimate(&req);
            return Ok(Prepared::Answer(serde_json::json!({ "input_tokens": tokens })));
        }
        Ingress::Responses => {
            let (chat, echo) = responses::request::to_chat(body, model, openai)?;
            conversion.echo = Some(echo);
            chat
        }
        _ => messages_client::request::to_chat(body, model, openai)?,
    };
    if conversion.upstream == Dialect::Messages {
        return anthropic(&chat, conversion);
    }
    Ok(Prepared::Forward { op: Operation::Chat, body: Bytes::from(chat), conversion: Box::new(conversion) })
}

impl Conversion {
    /// Bytes both ways, for the rest of the surface (an OpenAI client, an OpenAI-compatible
    /// upstream).
    pub fn bytes(stream: bool) -> Self {
        Self {
            client: Dialect::Chat,
            upstream: Dialect::Chat,
            stream,
            include_usage: false,
            strip_usage: false,
            dialect_answer: false,
            echo: None,
        }
    }

    pub fn passthrough(&self) -> bool {
        self.client == self.upstream
    }

    /// Whether a Chat client asked for a stream's usage chunk.
    pub fn usage_chunk(&self) -> bool {
        self.include_usage
    }

    /// The stream translator from the upstream's dialect to the client's, reading events of
    /// at most `max_event_bytes`.
    pub fn translator(&self, max_event_bytes: usize) -> Box<dyn StreamTranslator> {
        let mut t = self.translator_unbounded();
        t.limit_events(max_event_bytes);
        t
    }

    fn translator_unbounded(&self) -> Box<dyn StreamTranslator> {
        let asked = anthropic::request::Asked { stream: true, include_usage: self.include_usage };
        let echo = || self.echo.clone().unwrap_or_default();
        match (self.upstream, self.client) {
            (Dialect::Messages, Dialect::Responses) => {
                Box::new(anthropic::stream::ToChat::to(&asked, responses::stream::FromChat::new(echo())))
            }
            (Dialect::Messages, _) => Box::new(anthropic::stream::ToChat::new(&asked)),
            (_, Dialect::Messages) => Box::new(messages_client::stream::FromChat::new()),
            _ => Box::new(responses::stream::FromChat::new(echo())),
        }
    }

    /// A whole upstream answer in the client's dialect: the status to send, the body's JSON,
    /// and the token counts it reports. `Err` when a successful answer is not the JSON it
    /// should be.
    pub fn whole(&self, status: StatusCode, body: &[u8]) -> Result<Whole, ApiError> {
        let from_anthropic = self.upstream == Dialect::Messages;
        if !status.is_success() {
            let (status, error) = match (from_anthropic, self.client) {
                (true, _) => anthropic::response::error(status, body),
                (false, Dialect::Messages) => (status, messages_client::response::error(status, body)),
                (false, _) => (status, openai_error(status, body)),
            };
            return Ok(Whole { status, body: serde_json::to_vec(&error).unwrap_or_default(), tokens: None });
        }
        // The upstream's answer read as a Chat completion (Anthropic's message is made one
        // without being written as one), and written in the client's dialect.
        let write = |chat: &Completion| {
            let answer = match self.client {
                // Only from Anthropic: a Chat upstream's answer to a Chat client is relayed.
                Dialect::Chat => Ok(anthropic::response::write(chat, body.len())),
                Dialect::Messages => messages_client::response::from_completion(chat, body.len()),
                Dialect::Responses => {
                    responses::response::from_completion(chat, self.echo.as_ref().unwrap_or(&NO_ECHO), body.len())
                }
            };
            // What the answer's usage says, known here: the access log need not look for it
            // (a Response's is followed by what it repeats from the request).
            answer.map(|body| Whole { status, body, tokens: chat.usage.map(|u| u.counts()) })
        };
        let whole = match from_anthropic {
            true => anthropic::response::read(body, write).and_then(|whole| whole),
            false => Completion::read(body).and_then(|chat| write(&chat)),
        };
        whole.map_err(|_| {
            let (upstream, what) =
                if from_anthropic { ("Anthropic", "a message") } else { ("the upstream", "a chat completion") };
            ApiError::bad_answer(format!("{upstream} answered with a body that is not {what}"))
        })
    }
}

/// A whole answer for the client.
pub struct Whole {
    pub status: StatusCode,
    pub body: Vec<u8>,
    /// `(prompt, completion)` tokens, when the answer reports them.
    pub tokens: Option<(u64, u64)>,
}

/// What a Response repeats when the request gave nothing to repeat.
static NO_ECHO: std::sync::LazyLock<Echo> = std::sync::LazyLock::new(Echo::default);

/// Longest upstream body kept as a message when it is not JSON (an HTML error page, say).
const MAX_RAW_MESSAGE: usize = 500;

/// The message of an upstream's error body, whatever its shape: OpenAI `{"error":{"message"}}`,
/// Ollama `{"error":"…"}`, vLLM `{"message"}`, FastAPI `{"detail"}`, or plain text (trimmed and
/// cut to [`MAX_RAW_MESSAGE`] characters).
pub(crate) fn error_message(status: StatusCode, parsed: &Value, body: &[u8]) -> String {
    let found = [&parsed["error"]["message"], &parsed["error"], &parsed["message"], &parsed["detail"]]
        .into_iter()
        .find_map(|v| v.as_str().filter(|s| !s.is_empty()));
    match found {
        Some(m) => m.to_owned(),
        None if parsed.is_null() => {
            let raw = String::from_utf8_lossy(body);
            let raw = raw.trim();
            match raw.char_indices().nth(MAX_RAW_MESSAGE) {
                _ if raw.is_empty() => format!("the upstream answered {status} with no error message"),
                Some((end, _)) => format!("the upstream answered {status}: {}…", &raw[..end]),
                None => format!("the upstream answered {status}: {raw}"),
            }
        }
        None => format!("the upstream answered {status} with no error message"),
    }
}

/// An OpenAI-compatible upstream's error for a Chat or Responses client (the same error
/// shape): kept when it is one, else made one, with `http_<status>` as its code.
pub(crate) fn openai_error(status: StatusCode, body: &[u8]) -> Value {
    let parsed: Value = serde_json::from_slice(body).unwrap_or_default();
    if parsed["error"].is_object() {
        return parsed;
    }
    let message = error_message(status, &parsed, body);
    serde_json::json!({"error": {"message": message, "type": "upstream_error", "code": format!("http_{}", status.as_u16())}})
}
