//! Fuzzing on stable Rust: proptest feeds `compile()` and `compile_keys_file()` arbitrary bytes,
//! YAML-shaped text from a small grammar (mappings, sequences, scalars, anchors, aliases, merge
//! keys, tags, the config's real key names, planted secrets), and mutations of every valid
//! fixture. Properties: nothing panics; a plan's `Debug` never shows a secret; rendered and
//! JSON diagnostics never show the value of a secret key.
//!
//! `FUZZ_CASES=N` sets the cases per target (default 4096: about 10 s for all of them here; an hour-long
//! run is `FUZZ_CASES=200000 cargo test -p llm-gateway-compiler --test fuzz -- --nocapture`).
//! Every file in `tests/corpus/` (inputs that once failed, or that reach rare paths) is
//! replayed on each run; add a shrunk failure there when you fix it.

use std::cell::Cell;
use std::collections::HashMap;
use std::fs;
use std::path::Path;

use llm_gateway_compiler::plan::{ApiKey, Plan, Transport};
use llm_gateway_compiler::{Diagnostics, compile, compile_keys_file, source_text};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

thread_local! {
    /// Inputs checked on this thread (each test runs on its own thread).
    static EXECUTIONS: Cell<u64> = const { Cell::new(0) };
}

/// Secrets the grammar plants as values of secret keys and URL passwords.
const SECRETS: [&str; 4] = ["sk-gw-FUZZ0123456789abcdef", "sk-live-FUZZ-provider", "FUZZzroktoken42", "FUZZhunter2pw"];

fn cases() -> u32 {
    std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(4096)
}

fn env() -> HashMap<String, String> {
    [("SET", "value"), ("EMPTY", "")].into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

/// Values of secret keys written on one line (`key: v`, `api_key: "v"`, `- {token: v}`),
/// found independently of the masking code.
fn written_secrets(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in source.lines() {
        for name in ["key", "api_key", "token", "zrok_share_token"] {
            let needle = format!("{name}: ");
            let mut from = 0;
            while let Some(at) = line[from..].find(&needle) {
                let start = from + at;
                from = start + needle.len();
                // Only where a key can stand: first on the line, after `- `, `{` or `,`.
                let before = line[..start].trim_end().chars().last();
                let key_position = line[..start].ends_with([' ', '\t', '{']) || start == 0;
                if !key_position || before.is_some_and(|c| !"-{,?".contains(c)) {
                    continue;
                }
                let value: String = line[from..]
                    .trim_start_matches(['"', '\''])
                    .chars()
                    .take_while(|c| !matches!(c, '"' | '\'' | ',' | '}' | ' ' | '#'))
                    .collect();
                // A `${VAR}` reference names a variable; messages may name it too. A value
                // ending in `:` is a key a mutation wrote there (`api_key: api_key: x`), which
                // the plan's Debug shows as a field name. A value ending in `...` is the
                // placeholder the compiler's own help writes (`key: sk-gw-...`), not a secret;
                // nor is a mapping (`{ANTHROPIC_API_KEY}`, a reference that lost its `$`),
                // whose variable's name the help may write too.
                if value.len() >= 6
                    && !value.contains('$')
                    && !value.starts_with('{')
                    && !value.ends_with("...")
                    && !value.ends_with(':')
                    && source.matches(value.as_str()).count() == 1
                {
                    out.push(value);
                }
            }
        }
    }
    out
}

/// Whether `secret` occurs once, as the userinfo of a `scheme://user:secret@host` URL (a
/// mutation may have moved it anywhere else, where it is only text).
fn in_url_userinfo(source: &str, secret: &str) -> bool {
    let mut found = source.match_indices(secret);
    let (Some((at, _)), None) = (found.next(), found.next()) else {
        return false;
    };
    let line_start = source[..at].rfind('\n').map_or(0, |i| i + 1);
    let before = &source[line_start..at];
    let after = &source[at + secret.len()..];
    let authority = before.rfind("://").map(|i| &before[i + 3..]);
    authority.is_some_and(|a| !a.contains(|c: char| c.is_whitespace() || "/@\"'".contains(c))) && after.starts_with('@')
}

fn plan_secrets(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    for p in plan.providers.iter().flatten() {
        if let ApiKey::Set(s) = &p.api_key {
            out.push(s.expose().to_owned());
        }
        for e in &p.endpoints {
            if let Transport::Zrok { share_token, .. } = &e.transport {
                out.push(share_token.expose().to_owned());
            }
        }
    }
    if let Some(t) = plan.zrok_share.as_ref().and_then(|z| z.token.as_ref()) {
        out.push(t.expose().to_owned());
    }
    // Only values that look like keys: a mutated file may make a key of any text (`anthropic`)
    // that the plan also shows for another reason.
    out.retain(|s| s.len() >= 8 && (s.starts_with("sk-") || s.contains("FUZZ") || s.contains("token")));
    out
}

fn shown(d: &Diagnostics, source: &str) -> String {
    let json = serde_json::to_string(&d.locate("config.yaml", source)).unwrap_or_default();
    format!("{}\n{json}", d.render("config.yaml", source))
}

/// Runs both entry points on `source` and checks the properties.
fn check(source: &str) -> Result<(), TestCaseError> {
    EXECUTIONS.set(EXECUTIONS.get() + 1);
    let secrets = written_secrets(source);
    let planted: Vec<&str> = SECRETS.iter().copied().filter(|s| in_url_userinfo(source, s)).collect();
    // `text_of` makes a text from a source. A secret the text shows is a leak unless the text
    // made with that value replaced shows it too: then it is the compiler's own words that a
    // (mutated) value happens to match, such as the example in `add `name: gpu-box-1``.
    let leaked = |s: &str, text: &str, text_of: &dyn Fn(&str) -> Option<String>| {
        text.contains(s) && !text_of(&source.replace(s, &"Q".repeat(s.len()))).is_some_and(|t| t.contains(s))
    };
    let hidden = |what: &str, text_of: &dyn Fn(&str) -> Option<String>| -> Result<(), TestCaseError> {
        let Some(text) = text_of(source) else { return Ok(()) };
        for s in secrets.iter().map(String::as_str).chain(planted.iter().copied()) {
            prop_assert!(!leaked(s, &text, text_of), "{what} shows `{s}`:\n{text}\n--- source:\n{source}");
        }
        Ok(())
    };
    let routing = match compile(source, &env()) {
        Ok(c) => {
            hidden("warnings", &|src| compile(src, &env()).ok().map(|c| shown(&c.warnings, src)))?;
            let debug = format!("{:?}", c.plan);
            for s in plan_secrets(&c.plan) {
                prop_assert!(!debug.contains(&s), "the plan's Debug shows `{s}`");
            }
            // (Planted URL passwords are left out here: a mutation can make one part of a
            // model name, which the plan shows like any model name.)
            let debug_of = |src: &str| compile(src, &env()).ok().map(|c| format!("{:?}", c.plan));
            for s in &secrets {
                prop_assert!(!leaked(s, &debug, &debug_of), "the plan's Debug shows `{s}`");
            }
            c.plan.routing
        }
        Err(d) => {
            prop_assert!(d.has_errors());
            hidden("errors", &|src| compile(src, &env()).err().map(|d| shown(&d, src)))?;
            None
        }
    };
    let keys = |src: &str| compile_keys_file(src, &env(), routing.as_ref());
    hidden("keys-file warnings", &|src| keys(src).ok().map(|(_, w)| shown(&w, src)))?;
    hidden("key entries", &|src| keys(src).ok().map(|(entries, _)| format!("{entries:?}")))?;
    hidden("keys-file errors", &|src| keys(src).err().map(|d| shown(&d, src)))?;
    Ok(())
}

fn check_bytes(bytes: &[u8]) -> Result<(), TestCaseError> {
    match source_text(bytes) {
        Ok(text) => check(text),
        Err(d) => {
            let lossy = String::from_utf8_lossy(bytes);
            let _ = d.render("config.yaml", &lossy);
            check(&lossy)
        }
    }
}

fn run<T: std::fmt::Debug>(
    name: &str,
    strategy: impl Strategy<Value = T>,
    test: impl Fn(T) -> Result<(), TestCaseError>,
) {
    let config = Config { cases: cases(), failure_persistence: None, ..Config::default() };
    let before = EXECUTIONS.get();
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{name}: {e}");
    }
    eprintln!("{name}: {} executions", EXECUTIONS.get() - before);
}

// ---- the grammar -------------------------------------------------------------------------

/// A YAML-shaped document.
#[derive(Debug, Clone)]
enum Y {
    Scalar(String),
    Alias(u8),
    Map { entries: Vec<(String, Y)>, anchor: Option<u8>, flow: bool },
    Seq { items: Vec<Y>, anchor: Option<u8>, flow: bool },
}

const KEYS: &[&str] = &[
    "listen",
    "zrok",
    "share",
    "enabled",
    "mode",
    "token",
    "providers",
    "open_ai",
    "anthropic",
    "local",
    "api_key",
    "base_url",
    "zrok_share_token",
    "endpoints",
    "name",
    "weight",
    "health_check",
    "interval_seconds",
    "timeout_seconds",
    "metrics",
    "tracing",
    "max_content_length",
    "api_keys",
    "keys",
    "key",
    "key_sha256",
    "allowed_models",
    "allowed_routes",
    "keys_file",
    "routing",
    "allow_explicit_model",
    "default_route",
    "aliases",
    "fallbacks",
    "retry",
    "attempts",
    "backoff_ms",
    "max_backoff_ms",
    "on",
    "rate_limits",
    "backend",
    "on_backend_error",
    "timeout_ms",
    "unknown_paths",
    "user",
    "rpm",
    "tpm",
    "tokens_per_day",
    "max_concurrent",
    "max_concurrent_per_endpoint",
    "heuristics",
    "rules",
    "match",
    "keywords",
    "exclude",
    "has_tools",
    "system_prompt_contains",
    "max_tokens_lt",
    "message_length_lt",
    "route",
    "semantic",
    "provider",
    "model",
    "threshold",
    "ambiguous_threshold",
    "comparison",
    "cache_embeddings",
    "cache_ttl",
    "cache_size",
    "classifier",
    "confidence_threshold",
    "cache_results",
    "timeout_ms",
    "routes",
    "description",
    "examples",
    "timeouts",
    "connect_seconds",
    "first_byte_seconds",
    "limits",
    "max_body_bytes",
    "max_queue",
    "<<",
    "",
    "provders",
    "Key",
    "\"key\"",
    "é",
];

const SECRET_KEYS: &[&str] = &["key", "api_key", "token", "zrok_share_token"];

const VALUES: &[&str] = &[
    "true",
    "false",
    "\"true\"",
    "0",
    "-1",
    "1",
    "30",
    "2.5",
    "1e400",
    "null",
    "~",
    "\"\"",
    "''",
    "auto",
    "local",
    "openai",
    "builtin",
    "centroid",
    "max",
    "public",
    "private",
    "gpt-4o",
    "claude-3",
    "llama3",
    "\":8080\"",
    "127.0.0.1:0",
    "\"[::1]:9\"",
    "http://127.0.0.1:1",
    "https://api.example.com/v1/",
    "ftp://x",
    "http://",
    "\"${SET}\"",
    "${UNSET}",
    "${EMPTY:-d}",
    "${1BAD}",
    "${OPEN",
    "$${SET}",
    "\"*\"",
    "\"[a-\"",
    "gpt-*",
    "!!str 5",
    "!custom x",
    "é",
    "\"\\u00e9\"",
    "|\n  block",
    ">-\n  folded",
    "'it''s'",
    "\"a\\\"b\"",
    "0x10",
    "9223372036854775808",
    "-0",
    ".inf",
    ".nan",
];

fn secret_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(SECRETS[0].to_owned()),
        Just(format!("\"{}\"", SECRETS[1])),
        Just(format!("'{}'", SECRETS[2])),
        Just("sk-short".to_owned()),
        Just("\"${SET}\"".to_owned()),
    ]
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(VALUES).prop_map(str::to_owned),
        1 => Just(format!("http://user:{}@gpu.local:8000", SECRETS[3])),
        1 => "[a-z0-9 _.*-]{0,12}".prop_map(|s| s),
        1 => any::<String>().prop_map(|s| format!("{s:?}")),
    ]
}

fn doc() -> impl Strategy<Value = Y> {
    let leaf = prop_oneof![8 => scalar().prop_map(Y::Scalar), 1 => (0u8..4).prop_map(Y::Alias)];
    leaf.prop_recursive(6, 96, 6, |inner| {
        let entry = prop_oneof![
            4 => (proptest::sample::select(KEYS), inner.clone()).prop_map(|(k, v)| (k.to_owned(), v)),
            1 => (proptest::sample::select(SECRET_KEYS), secret_value()).prop_map(|(k, v)| (k.to_owned(), Y::Scalar(v))),
        ];
        let anchor = proptest::option::weighted(0.2, 0u8..4);
        prop_oneof![
            (proptest::collection::vec(entry, 0..6), anchor.clone(), proptest::bool::weighted(0.3))
                .prop_map(|(entries, anchor, flow)| Y::Map { entries, anchor, flow }),
            (proptest::collection::vec(inner, 0..5), anchor, proptest::bool::weighted(0.3))
                .prop_map(|(items, anchor, flow)| Y::Seq { items, anchor, flow }),
        ]
    })
}

fn anchor_text(anchor: &Option<u8>) -> String {
    anchor.map(|a| format!("&a{a} ")).unwrap_or_default()
}

fn flow(y: &Y, out: &mut String) {
    match y {
        Y::Scalar(s) if s.contains('\n') => out.push('x'),
        Y::Scalar(s) => out.push_str(s),
        Y::Alias(a) => out.push_str(&format!("*a{a}")),
        Y::Map { entries, anchor, .. } => {
            out.push_str(&anchor_text(anchor));
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push_str(": ");
                flow(v, out);
            }
            out.push('}');
        }
        Y::Seq { items, anchor, .. } => {
            out.push_str(&anchor_text(anchor));
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                flow(v, out);
            }
            out.push(']');
        }
    }
}

/// Writes `y` as the value after `key:` or `-` (the line so far is in `out`).
fn block_value(y: &Y, indent: usize, out: &mut String) {
    match y {
        Y::Map { entries, anchor, flow: false } if !entries.is_empty() => {
            out.push_str(&format!(" {}\n", anchor_text(anchor).trim_end()));
            block(y, indent, out);
        }
        Y::Seq { items, anchor, flow: false } if !items.is_empty() => {
            out.push_str(&format!(" {}\n", anchor_text(anchor).trim_end()));
            block(y, indent, out);
        }
        Y::Scalar(s) if s.contains('\n') => {
            out.push(' ');
            out.push_str(&s.replace('\n', &format!("\n{}", " ".repeat(indent))));
            out.push('\n');
        }
        _ => {
            out.push(' ');
            flow(y, out);
            out.push('\n');
        }
    }
}

fn block(y: &Y, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match y {
        Y::Map { entries, flow: false, .. } if !entries.is_empty() => {
            for (k, v) in entries {
                out.push_str(&format!("{pad}{k}:"));
                block_value(v, indent + 2, out);
            }
        }
        Y::Seq { items, flow: false, .. } if !items.is_empty() => {
            for v in items {
                out.push_str(&format!("{pad}-"));
                block_value(v, indent + 2, out);
            }
        }
        other => {
            out.push_str(&pad);
            flow(other, out);
            out.push('\n');
        }
    }
}

fn render(y: &Y, bom: bool, comment: bool) -> String {
    let mut out = String::new();
    if bom {
        out.push('\u{feff}');
    }
    if comment {
        out.push_str("# generated\n");
    }
    block(y, 0, &mut out);
    out
}

// ---- mutations of the valid fixtures -------------------------------------------------------

fn fixtures() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/config/valid");
    let mut files: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| fs::read_to_string(p).unwrap())
        .collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the byte at (position modulo length) by a byte.
    Set(usize, u8),
    Delete(usize, usize),
    Insert(usize, String),
    /// Duplicate the line at (position modulo lines).
    DuplicateLine(usize),
    /// Swap two lines.
    SwapLines(usize, usize),
    /// Change a line's indentation.
    Indent(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let snippet = prop_oneof![
        proptest::sample::select(KEYS).prop_map(|k| format!("{k}: ")),
        scalar(),
        Just("&a ".to_owned()),
        Just("*a".to_owned()),
        Just("<<: *a\n".to_owned()),
        Just("\n- ".to_owned()),
        Just("{".to_owned()),
        Just("\"".to_owned()),
        Just("\t".to_owned()),
        Just("\u{feff}".to_owned()),
    ];
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Set(p, b)),
        (any::<usize>(), 1usize..16).prop_map(|(p, n)| Mutation::Delete(p, n)),
        (any::<usize>(), snippet).prop_map(|(p, s)| Mutation::Insert(p, s)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), 0usize..12).prop_map(|(l, n)| Mutation::Indent(l, n)),
    ]
}

fn mutate(source: &str, mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = source.as_bytes().to_vec();
    for m in mutations {
        let at = |p: usize, len: usize| if len == 0 { 0 } else { p % (len + 1) };
        match m {
            Mutation::Set(p, b) if !bytes.is_empty() => {
                let i = p % bytes.len();
                bytes[i] = *b;
            }
            Mutation::Set(..) => {}
            Mutation::Delete(p, n) => {
                let i = at(*p, bytes.len());
                let end = (i + n).min(bytes.len());
                bytes.drain(i..end);
            }
            Mutation::Insert(p, s) => {
                let i = at(*p, bytes.len());
                bytes.splice(i..i, s.bytes());
            }
            Mutation::DuplicateLine(_) | Mutation::SwapLines(..) | Mutation::Indent(..) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
                if lines.is_empty() {
                    continue;
                }
                let n = lines.len();
                match m {
                    Mutation::DuplicateLine(l) => {
                        let line = lines[l % n].clone();
                        lines.insert(l % n, line);
                    }
                    Mutation::SwapLines(a, b) => lines.swap(a % n, b % n),
                    Mutation::Indent(l, k) => {
                        let line = lines[l % n].trim_start().to_owned();
                        lines[l % n] = format!("{}{line}", " ".repeat(*k));
                    }
                    _ => {}
                }
                bytes = (lines.join("\n") + "\n").into_bytes();
            }
        }
    }
    bytes
}

// ---- the targets ---------------------------------------------------------------------------

#[test]
fn corpus_replays_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 10, "the corpus is in {}", dir.display());
    for path in files {
        let bytes = fs::read(&path).unwrap();
        if let Err(e) = check_bytes(&bytes) {
            panic!("{}: {e}", path.display());
        }
    }
}

#[test]
fn arbitrary_bytes() {
    run("arbitrary bytes", proptest::collection::vec(any::<u8>(), 0..512), |b| check_bytes(&b));
    run("arbitrary text", any::<String>(), |s| check(&s));
}

#[test]
fn yaml_shaped_text() {
    run("yaml-shaped", (doc(), any::<bool>(), any::<bool>()), |(y, bom, comment)| check(&render(&y, bom, comment)));
}

#[test]
fn yaml_shaped_config_sections() {
    // The same grammar under the real top-level keys, so decoding goes deep.
    let top = proptest::collection::vec((proptest::sample::select(&KEYS[..40]), doc()), 1..5).prop_map(|entries| {
        Y::Map { entries: entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(), anchor: None, flow: false }
    });
    run("config-shaped", top, |y| check(&render(&y, false, false)));
}

#[test]
fn mutated_valid_fixtures() {
    let sources = fixtures();
    assert!(sources.len() >= 15);
    for s in &sources {
        check(s).unwrap_or_else(|e| panic!("unmutated fixture: {e}"));
    }
    let strategy = (0..sources.len(), proptest::collection::vec(mutation(), 1..6));
    run("mutated fixtures", strategy, |(i, ms)| check_bytes(&mutate(&sources[i], &ms)));
}
