//! A Chat Completions client served by Anthropic.

pub mod request;
pub mod response;
pub mod stream;
