//! The client requests the overhead harness sends, shared with the translation benches so
//! both measure the same work.

/// The same conversation in Anthropic's format, for the direct and floor legs of the
/// translated-stream comparison.
pub const ANTHROPIC_REQUEST: &str = r#"{"model":"claude-sonnet-4-20250514","system":"You are a helpful assistant that answers briefly.","messages":[{"role":"user","content":[{"type":"text","text":"Give me three facts about the Rust programming language and its memory model, please."}]}],"max_tokens":64,"stream":true}"#;
/// The same conversation as a Responses request, for the Responses → Chat pair.
pub const RESPONSES_REQUEST: &str = r#"{"model":"llama3","instructions":"You are a helpful assistant that answers briefly.","input":"Give me three facts about the Rust programming language and its memory model, please.","max_output_tokens":64,"stream":true}"#;
/// A 368-byte chat request, as in the reference measurements.
pub const REQUEST: &str = r#"{"model":"llama3","messages":[{"role":"system","content":"You are a helpful assistant that answers briefly."},{"role":"user","content":"Give me three facts about the Rust programming language and its memory model, please."}],"max_tokens":64,"temperature":0.2,"top_p":0.9,"presence_penalty":0,"frequency_penalty":0,"user":"bench-user-0001","seed":12345,"n":1,"stream":false}"#;
