//! `check` on a semantic config (the examples' calibration: warnings, `--verbose` table,
//! JSON) and `route` (one prompt explained; `--eval` on a labelled set, gating with
//! `--min-accuracy`), with the builtin embedder, as a user runs them.
#![cfg(feature = "builtin-embeddings")]

use std::process::{Command, Output};

fn gateway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_llm-gateway")).args(args).env("RUST_LOG", "warn").output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The Go gateway's routing example (openziti/llm-gateway README): five routes of two examples, and the thresholds it
/// set for nomic-embed-text.
fn seed(dir: &std::path::Path, thresholds: &str) -> String {
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/routing/config-seed.yaml")).unwrap();
    let source = source.replace("    threshold: 0.0\n    ambiguous_threshold: 0.0\n", thresholds);
    let path = dir.join("config.yaml");
    std::fs::write(&path, source).unwrap();
    path.display().to_string()
}

#[test]
fn check_warns_about_the_seeds_thresholds_with_the_builtin_model_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let config = seed(dir.path(), "    threshold: 0.82\n    ambiguous_threshold: 0.65\n");
    let out = gateway(&["check", &config]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "warnings only: {shown}");
    assert!(shown.contains("threshold 0.82 is above every one of the examples' scores against their own route: nearly every prompt will fall to the default route"), "{shown}");
    assert!(shown.contains("leave `threshold` and `ambiguous_threshold` out to derive them"), "{shown}");
    assert!(shown.contains("route `coding` has 2 examples"), "{shown}");
    assert!(shown.contains("are closer to route"), "confusable routes are named: {shown}");
    let verbose = text(&gateway(&["check", "--verbose", &config]));
    assert!(
        verbose.contains("leave-one-out scores of the examples") && verbose.contains("nearest other route"),
        "{verbose}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&gateway(&["check", "--format", "json", &config]).stdout).unwrap();
    let semantic = &json["files"][0]["semantic"];
    assert_eq!(semantic["threshold"], 0.82);
    assert_eq!(semantic["routes"].as_array().unwrap().len(), 5);
    assert!(
        semantic["routes"][0]["own_max"].is_number() && semantic["suggested"]["threshold"].is_number(),
        "{semantic}"
    );
    // Thresholds left out are derived, and nothing is said about them.
    let derived = seed(dir.path(), "");
    let shown = text(&gateway(&["check", "--verbose", &derived]));
    assert!(!shown.contains("nearly every prompt"), "{shown}");
    assert!(shown.contains("(derived)"), "{shown}");
}

#[test]
fn route_explains_one_prompt_and_evaluates_a_labelled_set() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/routing/config.yaml");
    let out = gateway(&["route", config, "my rust program panics with a borrow checker error, help me fix it"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("heuristics: no rule matches"), "{shown}");
    assert!(shown.contains("← at or above the threshold") && shown.contains("decision: route coding"), "{shown}");
    assert_eq!(
        shown.lines().filter(|l| l.starts_with("  ") && l.contains('.')).count(),
        5,
        "every route's score: {shown}"
    );

    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set.tsv");
    std::fs::write(
        &set,
        "# a tiny labelled set\ncoding\tfix this null pointer exception in my Java code\ncreative\twrite a haiku about the sea\n\
         tools\t[tools] what is the weather in Paris?\ngeneral\tzzzz qqqq\n",
    )
    .unwrap();
    let set = set.display().to_string();
    let out = gateway(&["route", config, "--eval", &set]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("accuracy: ") && shown.contains("confusion matrix") && shown.contains("precision"),
        "{shown}"
    );
    assert!(shown.contains("threshold: "), "the best threshold is reported: {shown}");
    let gated = gateway(&["route", config, "--eval", &set, "--min-accuracy", "1.01"]);
    assert_eq!(gated.status.code(), Some(2), "not a ratio: a usage error");
    std::fs::write(dir.path().join("bad.tsv"), "nosuchroute\thello\n").unwrap();
    let bad = gateway(&["route", config, "--eval", &dir.path().join("bad.tsv").display().to_string()]);
    assert_eq!(bad.status.code(), Some(65), "{}", text(&bad));
    assert!(text(&bad).contains("unknown route `nosuchroute`"));
    // The project's own labelled set, gated as a CI job would.
    let full = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/routing/prompts.txt");
    let out = gateway(&["route", config, "--eval", full, "--min-accuracy", "0.85"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = gateway(&["route", config, "--eval", full, "--min-accuracy", "0.99"]);
    assert_eq!(out.status.code(), Some(1), "below the bar: {}", text(&out));
}

#[test]
fn a_whole_request_body_is_routed_as_the_gateway_would() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/routing/config.yaml");
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body.json");
    std::fs::write(
        &body,
        r#"{"model":"auto","messages":[{"role":"user","content":"translate this to French: good morning"}]}"#,
    )
    .unwrap();
    let shown = text(&gateway(&["route", config, "--messages", &body.display().to_string()]));
    assert!(shown.contains("heuristics: rule") && shown.contains("decision: route fast"), "{shown}");
}
