//! llm-gateway: an OpenAI-compatible LLM gateway compiled from one YAML file.
#![forbid(unsafe_code)]

pub mod cli;
pub mod cmd;
pub mod exit;
