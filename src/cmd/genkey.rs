//! `llm-gateway genkey`: a fresh virtual key, optionally as a ready YAML entry.

use std::process::ExitCode;

use llm_gateway_compiler::acl::hash_hex;
use llm_gateway_compiler::glob::Glob;

use crate::cli::GenkeyArgs;
use crate::exit;

/// `sk-gw-` + 64 lowercase hex digits from 32 bytes of the OS random source (the Go gateway's format).
pub fn new_key() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("sk-gw-{hex}"))
}

pub fn run(args: GenkeyArgs) -> ExitCode {
    for pattern in args.models.iter().chain(&args.routes) {
        if let Err(e) = Glob::parse(pattern) {
            eprintln!("error: invalid glob `{pattern}`: {e}");
            return exit::code(exit::USAGE);
        }
    }
    let key = match new_key() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: the OS random source failed: {e}");
            return exit::code(1);
        }
    };
    match args.name {
        None => println!("{key}"),
        Some(name) if args.hash_only => {
            eprintln!("the key (shown once; the config keeps only its hash): {key}");
            let hash = hash_hex(&key);
            print!("{}", genkey_entry(&name, ("key_sha256", &hash), &args.models, &args.routes));
        }
        Some(name) => print!("{}", genkey_entry(&name, ("key", &key), &args.models, &args.routes)),
    }
    exit::code(exit::OK)
}

/// One key entry as YAML, its `- ` at column `indent`: each field with its value already YAML
/// text (from [`yaml_string`], [`yaml_list`] or a number). Shared with `llm-gateway keys`,
/// which writes keys files with more fields than `genkey` does.
pub(crate) fn yaml_entry(indent: usize, fields: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (i, (field, value)) in fields.iter().enumerate() {
        let lead = if i == 0 { format!("{}- ", " ".repeat(indent)) } else { " ".repeat(indent + 2) };
        out.push_str(&format!("{lead}{field}: {value}\n"));
    }
    out
}

/// `value` as a double-quoted YAML string that reads back as exactly `value`: JSON's escapes are
/// YAML's, and `${` is written `$${` because the compiler expands `${VAR}` in every string.
pub(crate) fn yaml_string(value: &str) -> String {
    quoted(&value.replace("${", "$${"))
}

/// `text` double-quoted as it is, `${VAR}` references included (for text read from a file).
pub(crate) fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

/// A flow list of YAML values: `["gpt-*", "claude-*"]`.
pub(crate) fn yaml_list<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    format!("[{}]", values.into_iter().collect::<Vec<_>>().join(", "))
}

/// The fields `genkey --name` prints, with plain values.
fn genkey_entry(name: &str, credential: (&str, &str), models: &[String], routes: &[String]) -> String {
    let strings = |v: &[String]| v.iter().map(|s| yaml_string(s)).collect::<Vec<_>>();
    let mut fields = vec![("name", yaml_string(name)), (credential.0, yaml_string(credential.1))];
    if !models.is_empty() {
        fields.push(("allowed_models", yaml_list(strings(models).iter().map(String::as_str))));
    }
    if !routes.is_empty() {
        fields.push(("allowed_routes", yaml_list(strings(routes).iter().map(String::as_str))));
    }
    yaml_entry(CONFIG_INDENT, &fields)
}

/// Under `api_keys.keys:` in a config.
const CONFIG_INDENT: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_go_gateway_format_and_differ() {
        let a = new_key().unwrap();
        let b = new_key().unwrap();
        assert_ne!(a, b);
        let hex = a.strip_prefix("sk-gw-").unwrap();
        assert_eq!(hex.len(), 64);
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }

    #[test]
    fn yaml_entry_compiles_as_a_key() {
        let entry =
            genkey_entry("ali\"ce", ("key", "sk-gw-0123456789abcdef"), &["gpt-*".into(), "claude-*".into()], &[]);
        let config = format!("api_keys:\n  enabled: true\n  keys:\n{entry}");
        let env = std::collections::HashMap::<String, String>::new();
        let compiled = llm_gateway_compiler::compile(&config, &env).unwrap();
        let keys = compiled.plan.keys.unwrap();
        let k = keys.lookup("sk-gw-0123456789abcdef").unwrap();
        assert_eq!(k.name, "ali\"ce");
        assert!(k.allows_model("gpt-4o") && !k.allows_model("llama3"));
    }

    #[test]
    fn hash_only_entries_hold_no_key() {
        let key = new_key().unwrap();
        let entry = genkey_entry("h", ("key_sha256", &hash_hex(&key)), &[], &[]);
        assert!(!entry.contains(&key) && entry.contains("key_sha256"));
        let config = format!("api_keys:\n  enabled: true\n  keys:\n{entry}");
        let env = std::collections::HashMap::<String, String>::new();
        let keys = llm_gateway_compiler::compile(&config, &env).unwrap().plan.keys.unwrap();
        assert_eq!(keys.lookup(&key).map(|k| k.name.as_str()), Some("h"));
    }

    #[test]
    fn yaml_strings_read_back_as_the_same_text() {
        let env: std::collections::HashMap<String, String> = [("B".to_owned(), "expanded".to_owned())].into();
        for value in ["a${B}c", "$${B}", "${", "plain", "tab\there", "quote\"back\\slash: #x", "ünï", "123", "true"] {
            let fields = [("name", yaml_string(value)), ("user", yaml_string(value))];
            let source = format!("keys:\n{}", yaml_entry(2, &fields));
            let file = llm_gateway_compiler::read_keys_file(&source, &env).unwrap();
            let entry = &file.keys.unwrap().value[0].value;
            assert_eq!(entry.name.as_ref().map(|n| n.value.as_str()), Some(value), "{source}");
            assert_eq!(entry.user.as_ref().map(|n| n.value.as_str()), Some(value), "{source}");
        }
    }
}
