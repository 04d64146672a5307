//! llm-gateway: an OpenAI-compatible LLM gateway compiled from one YAML file.
// Only transport/zrok/libziti.rs (calls into libziti) and embed/builtin/weights.rs (the
// builtin model's weights mapped and handed to ONNX Runtime) may use unsafe, and say why each time.
#![deny(unsafe_code)]

pub mod access_log;
pub mod admission;
pub mod assets;
pub mod auth;
pub mod body;
pub mod classifier;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod connection;
pub mod dialect;
pub mod embed;
pub mod error;
pub mod exit;
pub mod job;
pub mod log_sink;
pub mod logging;
pub mod metrics;
pub mod models;
pub mod pool;
pub mod providers;
pub mod proxy;
pub mod queue;
pub mod ratelimit;
pub mod ready;
pub mod reload;
pub mod request;
pub mod request_body;
pub mod request_id;
pub mod route;
pub mod server;
pub mod shard;
pub mod state;
pub mod surface;
pub mod trace;
pub mod transport;
pub mod upstream;
pub mod usage;
