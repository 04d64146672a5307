//! Anthropic's Messages API (`POST /v1/messages`, `x-api-key`, `anthropic-version`).
//!
//! - `upstream/`: a Chat client served by Anthropic (Chat request → Messages; Messages
//!   response, whole or streamed → Chat).
//! - `client/`: a Messages client served by a Chat upstream (Messages request → Chat; Chat
//!   response, whole or streamed → Messages).

pub mod client;
pub mod upstream;

pub const VERSION: &str = "2023-06-01";
