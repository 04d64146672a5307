//! Walks `fixtures/config/`: every valid config compiles; every invalid one fails with the
//! message and the line:col its header names.
//!
//! Headers: `# expect: <part of the message>`, `# at: <line>:<col>`, and optionally
//! `# env: NAME=value …` (the only variables the compilation sees).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use llm_gateway_compiler::{Severity, compile};

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/config").join(kind);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn header<'a>(source: &'a str, name: &str) -> Option<&'a str> {
    source.lines().take_while(|l| l.starts_with('#')).find_map(|l| l.strip_prefix(&format!("# {name}: ")))
}

fn env_of(source: &str) -> HashMap<String, String> {
    header(source, "env")
        .map(|vars| {
            vars.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_valid_fixture_compiles() {
    let files = fixtures("valid");
    assert!(files.len() >= 15, "expected the seed and reference examples");
    for path in files {
        let source = fs::read_to_string(&path).unwrap();
        if let Err(diags) = compile(&source, &env_of(&source)) {
            panic!("{} failed:\n{}", path.display(), diags.render(&path.display().to_string(), &source));
        }
    }
}

#[test]
fn every_invalid_fixture_fails_where_it_says() {
    let files = fixtures("invalid");
    assert!(files.len() >= 30, "at least 30 invalid cases, found {}", files.len());
    for path in files {
        let name = path.display().to_string();
        let source = fs::read_to_string(&path).unwrap();
        let expect = header(&source, "expect").unwrap_or_else(|| panic!("{name}: no `# expect:` line"));
        let at = header(&source, "at").unwrap_or_else(|| panic!("{name}: no `# at:` line"));
        let diags = match compile(&source, &env_of(&source)) {
            Ok(_) => panic!("{name}: compiled, expected `{expect}`"),
            Err(d) => d,
        };
        let located = diags.locate(&name, &source);
        let hit = located.iter().find(|d| d.severity == Severity::Error && d.message.contains(expect));
        let Some(hit) = hit else {
            panic!("{name}: no error containing `{expect}`:\n{}", diags.render(&name, &source));
        };
        assert_eq!(format!("{}:{}", hit.line, hit.column), at, "{name}: `{expect}` at the wrong place");
    }
}
