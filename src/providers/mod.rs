//! Upstream API adapters. OpenAI-compatible upstreams need none (bodies pass through);
//! Anthropic's Messages API is translated both ways.

pub mod anthropic;
