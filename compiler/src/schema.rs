//! The JSON Schema of the config file, generated from the raw types.

/// The schema as pretty JSON, with a trailing newline (the committed `schemas/config.schema.json`).
pub fn json() -> String {
    let schema = schemars::schema_for!(crate::raw::Config);
    let mut out = serde_json::to_string_pretty(&schema).unwrap_or_default();
    out.push('\n');
    out
}
