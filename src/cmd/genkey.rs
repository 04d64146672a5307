//! `llm-gateway genkey`: a fresh virtual key, optionally as a ready YAML entry.

use std::process::ExitCode;

use llm_gateway_compiler::acl::hash_hex;
use llm_gateway_compiler::glob::Glob;

use crate::cli::GenkeyArgs;
use crate::exit;

/// `sk-gw-` + 64 lowercase hex digits from 32 bytes of the OS random source (the anchor's format).
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
            print!("{}", yaml_entry(CONFIG_INDENT, &name, ("key_sha256", &hash), &args.models, &args.routes));
        }
        Some(name) => print!("{}", yaml_entry(CONFIG_INDENT, &name, ("key", &key), &args.models, &args.routes)),
    }
    exit::code(exit::OK)
}

/// One key entry as YAML, its `- ` at column `indent`. `credential` is `("key", plaintext)`
/// or `("key_sha256", hex)`. Shared with `llm-gateway keys`, which writes keys files.
pub(crate) fn yaml_entry(
    indent: usize,
    name: &str,
    credential: (&str, &str),
    models: &[String],
    routes: &[String],
) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let list = |items: &[String]| items.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ");
    let (pad, field_pad) = (" ".repeat(indent), " ".repeat(indent + 2));
    let (field, value) = credential;
    let mut out = format!("{pad}- name: {}\n{field_pad}{field}: {}\n", quote(name), quote(value));
    if !models.is_empty() {
        out.push_str(&format!("{field_pad}allowed_models: [{}]\n", list(models)));
    }
    if !routes.is_empty() {
        out.push_str(&format!("{field_pad}allowed_routes: [{}]\n", list(routes)));
    }
    out
}

/// Under `api_keys.keys:` in a config.
const CONFIG_INDENT: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_anchor_format_and_differ() {
        let a = new_key().unwrap();
        let b = new_key().unwrap();
        assert_ne!(a, b);
        let hex = a.strip_prefix("sk-gw-").unwrap();
        assert_eq!(hex.len(), 64);
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }

    #[test]
    fn yaml_entry_compiles_as_a_key() {
        let entry = yaml_entry(
            CONFIG_INDENT,
            "ali\"ce",
            ("key", "sk-gw-0123456789abcdef"),
            &["gpt-*".into(), "claude-*".into()],
            &[],
        );
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
        let entry = yaml_entry(CONFIG_INDENT, "h", ("key_sha256", &hash_hex(&key)), &[], &[]);
        assert!(!entry.contains(&key) && entry.contains("key_sha256"));
        let config = format!("api_keys:\n  enabled: true\n  keys:\n{entry}");
        let env = std::collections::HashMap::<String, String>::new();
        let keys = llm_gateway_compiler::compile(&config, &env).unwrap().plan.keys.unwrap();
        assert_eq!(keys.lookup(&key).map(|k| k.name.as_str()), Some("h"));
    }
}
