//! The committed JSON Schema must be what the raw types generate.

#[test]
fn committed_schema_matches_the_raw_types() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/config.schema.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = llm_gateway_compiler::schema::json();
    assert!(
        committed == generated,
        "schemas/config.schema.json is stale; regenerate it with `cargo run -- schema > schemas/config.schema.json`"
    );
}

#[test]
fn schema_closes_every_section() {
    let schema: serde_json::Value = serde_json::from_str(&llm_gateway_compiler::schema::json()).unwrap();
    let defs = schema["$defs"].as_object().unwrap();
    for (name, def) in defs {
        if def.get("properties").is_some() {
            assert_eq!(def["additionalProperties"], false, "{name} accepts unknown keys");
        }
    }
    assert_eq!(schema["additionalProperties"], false);
    assert!(defs["Rule"]["properties"].get("match").is_some(), "`match` keeps its YAML name");
}
