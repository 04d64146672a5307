//! OpenAI chat completions ↔ Anthropic Messages API (`POST /v1/messages`, `x-api-key`,
//! `anthropic-version: 2023-06-01`).

pub mod request;
pub mod response;
pub mod stream;

pub const VERSION: &str = "2023-06-01";
