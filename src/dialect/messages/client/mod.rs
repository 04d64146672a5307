//! A Messages client (Claude Code, Anthropic SDKs) served by a Chat Completions upstream
//! (llama.cpp, vLLM, Ollama, OpenAI): the request goes Messages → Chat, the response (whole
//! or streamed) and errors come back Chat → Messages.

pub mod count;
pub mod request;
pub mod response;
pub mod stream;
