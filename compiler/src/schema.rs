//! The JSON Schema of the config file, generated from the raw types.

/// The schema as pretty JSON, with a trailing newline (the committed `schemas/config.schema.json`).
pub fn json() -> String {
    let mut schema = schemars::schema_for!(crate::raw::Config);
    schema.insert("$id".into(), "https://github.com/llm-gateway/llm-gateway/schemas/config.schema.json".into());
    let mut out = serde_json::to_string_pretty(&schema).unwrap_or_default();
    out.push('\n');
    out
}
