//! Configs written by an attacker or a careless operator: each one compiled to a panic, an
//! abort, a config that configures nothing, a misleading message or a leaked secret, and now
//! gives one clear diagnostic at the right place (or a plan that does what its warning says).

use std::collections::HashMap;
use std::fmt::Write;

use llm_gateway_compiler::plan::{ProviderKind, Transport};
use llm_gateway_compiler::{
    Diagnostics, MAX_ALIAS_NODES, MAX_DEPTH, MAX_SOURCE_BYTES, Severity, compile, compile_keys_file, source_text,
};

fn env() -> HashMap<String, String> {
    HashMap::new()
}

fn errors(source: &str) -> Diagnostics {
    match compile(source, &env()) {
        Ok(c) => panic!("compiled, expected errors; warnings:\n{}", c.warnings.render("t.yaml", source)),
        Err(d) => d,
    }
}

fn messages(d: &Diagnostics) -> Vec<String> {
    d.0.iter().map(|d| d.message.clone()).collect()
}

/// The (line, column) of the first error whose message contains `part`.
fn error_at(d: &Diagnostics, source: &str, part: &str) -> (usize, usize) {
    let located = d.locate("t.yaml", source);
    let hit = located
        .iter()
        .find(|l| l.severity == Severity::Error && l.message.contains(part))
        .unwrap_or_else(|| panic!("no error containing `{part}`:\n{}", d.render("t.yaml", source)));
    (hit.line, hit.column)
}

// 1. A route the compiler leaves out (no name) shifted the route table against the written
//    list, and the reachability check indexed past its end: exit 101, a dead reload task.

#[test]
fn a_route_without_a_name_under_semantic_routing_is_an_error_not_a_panic() {
    let source = "providers:\n  local: {}\nrouting:\n  semantic: {enabled: true}\n  routes:\n    - {name: \"\", model: a, examples: [x]}\n    - {name: b, model: a, examples: [y]}\n";
    let d = errors(source);
    assert_eq!(error_at(&d, source, "route has no `name`"), (6, 8));
    let source = "providers:\n  local: {}\nrouting:\n  semantic: {enabled: true}\n  routes:\n    - {model: a, examples: [x]}\n    - {name: b}\n";
    let d = errors(source);
    assert!(messages(&d).iter().any(|m| m == "route `b` has no `model`"), "{:?}", messages(&d));
}

#[test]
fn reachability_warnings_name_the_route_they_point_at() {
    let source = "providers:\n  local: {}\nrouting:\n  default_route: c\n  routes:\n    - {name: \"\", model: a}\n    - {name: b, model: a}\n    - {name: c, model: a}\n";
    let d = errors(source);
    let unreachable: Vec<_> =
        d.locate("t.yaml", source).into_iter().filter(|l| l.message.starts_with("nothing can route")).collect();
    assert_eq!(unreachable.len(), 1, "{}", d.render("t.yaml", source));
    assert_eq!(unreachable[0].message, "nothing can route to `b`");
    assert_eq!((unreachable[0].path.as_ref(), unreachable[0].line), ("routing.routes[1]", 7));
}

// 2. Aliases were deep-copied without a bound: a few hundred bytes of "billion laughs"
//    aborted `check` and `run` on allocation.

fn laughs(levels: usize) -> String {
    let mut s = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..levels {
        let p = i - 1;
        writeln!(s, "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]").unwrap();
    }
    s
}

#[test]
fn an_alias_bomb_is_an_error_where_the_expansion_trips() {
    let source = laughs(9);
    let d = errors(&source);
    assert_eq!(d.errors(), 1, "{}", d.render("t.yaml", &source));
    let (line, _) = error_at(&d, &source, &format!("alias expansion exceeds {MAX_ALIAS_NODES} nodes"));
    assert_eq!(line, 6, "10^5 nodes per alias on line 6: the tenth pushes the total past the bound");
    // The same in a keys file.
    let keys = format!("keys: []\n{source}");
    let d = compile_keys_file(&keys, &env(), None).unwrap_err();
    assert!(messages(&d)[0].starts_with("alias expansion exceeds"), "{:?}", messages(&d));
}

#[test]
fn aliases_below_the_bound_still_work() {
    let source = "providers:\n  local: {}\nmodels: &m [\"llama*\", \"qwen*\"]\n";
    // `models` is not a config key, but the alias machinery runs before that is found out.
    assert!(messages(&errors(source)).iter().any(|m| m == "unknown key `models`"));
    let source = "providers:\n  local: &p {base_url: \"http://127.0.0.1:1\"}\n  open_ai: *p\n";
    let c = compile(source, &env()).unwrap();
    assert!(c.plan.provider(ProviderKind::OpenAi).is_some());
}

#[test]
fn deep_nesting_is_an_error_in_flow_block_and_alias_form() {
    let flow = format!("providers: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let d = errors(&flow);
    assert_eq!(d.errors(), 1, "{:?}", messages(&d));
    let mut block = String::from("providers:\n");
    for depth in 1..=MAX_DEPTH + 10 {
        writeln!(block, "{}k{depth}:", " ".repeat(depth)).unwrap();
    }
    let d = errors(&block);
    assert_eq!(error_at(&d, &block, &format!("nesting deeper than {MAX_DEPTH} levels")).0, MAX_DEPTH + 1);
    // An anchor 100 deep, used 100 deep: each part is allowed, together they are not.
    let deep = |n: usize| format!("{}x{}", "[".repeat(n), "]".repeat(n));
    let aliased = format!("a: &d {}\nb: {}*d{}\n", deep(100), "[".repeat(100), "]".repeat(100));
    let d = errors(&aliased);
    assert_eq!(error_at(&d, &aliased, "nesting deeper than"), (2, 104));
}

#[test]
fn an_oversized_file_is_refused_before_it_is_parsed() {
    let source = format!("providers:\n  local: {{}}\n#{}\n", "x".repeat(MAX_SOURCE_BYTES));
    let d = errors(&source);
    assert_eq!(d.errors(), 1);
    assert!(messages(&d)[0].contains(&format!("may be at most {MAX_SOURCE_BYTES} bytes")), "{:?}", messages(&d));
    assert!(source_text(source.as_bytes()).is_err());
}

#[test]
fn a_mapping_with_many_keys_compiles_in_linear_time() {
    // Duplicate-key detection compared every pair: 200,000 keys took minutes.
    let mut source = String::from("providers:\n  local: {}\nrouting:\n  aliases:\n");
    for i in 0..200_000 {
        writeln!(source, "    m{i}: r").unwrap();
    }
    writeln!(source, "    m7: r").unwrap();
    let d = errors(&source);
    assert!(messages(&d).iter().any(|m| m == "duplicate key `m7` (first given on line 12)"));
}

// 3. A file that sets nothing compiled to a plan with no providers.

#[test]
fn a_config_that_configures_nothing_is_an_error() {
    for source in ["", "# only a comment\n", "null\n", "---\n", "{}\n", "~\n", "providers:\n", "providers: {}\n"] {
        let d = errors(source);
        assert_eq!(
            messages(&d),
            ["no provider is configured: add providers.local, providers.open_ai or providers.anthropic"],
            "{source:?}"
        );
    }
}

#[test]
fn a_provider_written_without_a_value_is_configured_with_its_defaults() {
    let c = compile("providers:\n  local:\n", &env()).unwrap();
    let local = c.plan.provider(ProviderKind::Local).expect("`local:` configures local");
    assert_eq!(local.endpoints[0].transport, Transport::Http { base_url: "http://localhost:11434".parse().unwrap() });
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let source = "providers:\n  open_ai:\n";
    let c = compile(source, &env()).unwrap();
    assert!(c.plan.provider(ProviderKind::OpenAi).is_some());
    let located = c.warnings.locate("t.yaml", source);
    assert_eq!(located.len(), 1);
    assert_eq!((located[0].line, located[0].column), (2, 3), "the warning points at `open_ai`");
    assert!(located[0].message.contains("has no `api_key`"));
}

#[test]
fn documented_partial_configs_still_compile_with_a_warning() {
    // The Go gateway's docs show sections alone; `fixtures/config/valid/seed003-tracing.yaml` is one.
    let c = compile("tracing:\n  enabled: true\n", &env()).unwrap();
    assert_eq!(c.warnings.0[0].message, "no providers are configured; every request will fail");
}

#[test]
fn a_syntax_error_is_the_only_diagnostic() {
    for source in ["a: [1\n", "providers:\n  local: {\n", "\"unterminated\n"] {
        let d = errors(source);
        assert_eq!(d.0.len(), 1, "{source:?}: {:?}", messages(&d));
        assert!(d.0[0].message.starts_with("YAML syntax error"), "{source:?}: {:?}", messages(&d));
    }
    let d = errors("just a string\n");
    assert_eq!(messages(&d), ["expected a mapping, found a scalar"]);
}

#[test]
fn nul_bytes_and_invalid_utf8_are_clear_errors() {
    for source in ["\0\0\0junk", "providers:\n  local: {}\n\0"] {
        let d = errors(source);
        assert_eq!(messages(&d), ["the file contains a NUL byte: a config file is UTF-8 text"], "{source:?}");
    }
    let bytes = b"providers:\n  local: {}\nx: \xff\xfe\n";
    let d = source_text(bytes).unwrap_err();
    let lossy = String::from_utf8_lossy(bytes);
    assert_eq!(error_at(&d, &lossy, "not UTF-8 text"), (3, 4));
    assert!(source_text(b"\0").is_err());
    assert_eq!(source_text(b"providers: {local: {}}\n").unwrap(), "providers: {local: {}}\n");
}

#[test]
fn a_second_document_is_an_error_at_its_start() {
    let source = "providers:\n  local: {}\n---\nlisten: \":1\"\n";
    assert_eq!(error_at(&errors(source), source, "holds one YAML document"), (3, 1));
}

// 4. A byte-order mark became part of the first key: "unknown key `providers` … did you mean
//    `providers`?".

#[test]
fn a_leading_byte_order_mark_is_skipped() {
    let c = compile("\u{feff}providers:\n  local: {}\n", &env()).unwrap();
    assert!(c.plan.provider(ProviderKind::Local).is_some());
    assert!(c.warnings.is_empty());
    let source = "\u{feff}providers:\n  locl: {}\n";
    let d = errors(source);
    assert_eq!(error_at(&d, source, "unknown key `locl`"), (2, 3));
    let keys = compile_keys_file("\u{feff}keys:\n  - {name: a, key: sk-gw-0123456789abcdef}\n", &env(), None).unwrap();
    assert_eq!(keys.0.len(), 1);
}

#[test]
fn positions_after_non_ascii_text_are_exact() {
    // The scanner counts characters; spans are bytes.
    let source = "# ünïcödé\nproviders:\n  local: {base_url: \"http://é.example\", wieght: 1}\n";
    assert_eq!(error_at(&errors(source), source, "unknown key `wieght`"), (3, 41));
    let source = "x: |\n  ééé\n  ü\nproviders: {lcal: {}}\n";
    assert_eq!(error_at(&errors(source), source, "unknown key `lcal`"), (4, 13));
}

// 5. Snippets in `check` and the reload logs printed keys and passwords.

fn rendered(source: &str) -> String {
    let d = match compile(source, &env()) {
        Ok(c) => c.warnings,
        Err(d) => d,
    };
    assert!(!d.is_empty(), "expected a diagnostic for {source:?}");
    let text = d.render("config.yaml", source);
    let json = serde_json::to_string(&d.locate("config.yaml", source)).unwrap();
    format!("{text}\n{json}")
}

#[test]
fn rendered_diagnostics_never_show_a_secret() {
    let cases: &[(&str, &[&str])] = &[
        // A duplicate key value: the error points at the second key.
        (
            "providers:\n  local: {}\napi_keys:\n  enabled: true\n  keys:\n    - name: a\n      key: sk-gw-duplicate-0123456789\n    - name: b\n      key: \"sk-gw-duplicate-0123456789\"\n",
            &["sk-gw-duplicate"],
        ),
        // A short key: the warning points at the key itself.
        (
            "providers:\n  local: {}\napi_keys:\n  enabled: true\n  keys:\n    - {name: a, key: sk-short}\n",
            &["sk-short"],
        ),
        // A typo on the line next to a key, and one on the same line in flow style.
        (
            "providers:\n  open_ai:\n    api_key: sk-live-abcdefghijklmnop\n    base_ulr: https://example.com\n",
            &["sk-live-abcdefghijklmnop"],
        ),
        ("providers:\n  open_ai: {api_key: 'sk-live-flowstyle-secret', base_ulr: x}\n", &["sk-live-flowstyle-secret"]),
        // Credentials in a URL: refused, and not shown in the snippet nor the message.
        ("providers:\n  local:\n    base_url: http://user:hunter2@gpu.local:8000\n", &["hunter2", "user:"]),
        ("providers:\n  local:\n    base_url: \"http://admin:s3cr3t@bad host/\"\n", &["s3cr3t", "admin"]),
        // zrok tokens.
        (
            "providers:\n  local: {}\nzrok:\n  share:\n    enabled: true\n    token: tok-persistent-123\n    mode: public\n",
            &["tok-persistent-123"],
        ),
        (
            "providers:\n  local:\n    zrok_share_token: zrok-tok-xyz\n    base_url: http://127.0.0.1:1\n    endpoints: []\n",
            &["zrok-tok-xyz"],
        ),
    ];
    for (source, secrets) in cases {
        let out = rendered(source);
        for secret in *secrets {
            assert!(!out.contains(secret), "`{secret}` shown:\n{out}");
        }
    }
}

#[test]
fn a_masked_snippet_still_points_at_the_right_token() {
    let source = "providers:\n  local: {}\napi_keys:\n  enabled: true\n  keys:\n    - {name: a, key: sk-short, allowed_modles: [x]}\n";
    let out = errors(source).render("config.yaml", source);
    assert!(out.contains("- {name: a, key: ****, allowed_modles: [x]}"), "{out}");
    let error = &out[out.find("error: unknown key").unwrap()..];
    let code_line = error.lines().find(|l| l.contains("allowed_modles: [x]")).unwrap();
    let caret_line = error.lines().skip_while(|l| !l.contains("allowed_modles: [x]")).nth(1).unwrap();
    let caret = caret_line.find('^').unwrap();
    assert_eq!(&code_line[caret..caret + 14], "allowed_modles", "{out}");
}

// 7. Semantic routing on `local` without `providers.local` warned that the default address
//    would be used, then every request failed with "provider 'local' is not configured".

#[test]
fn semantic_routing_on_local_without_providers_local_uses_the_default_it_announces() {
    let source = include_str!("../../fixtures/config/valid/seed003-semantic-routing.yaml");
    let c = compile(source, &env()).unwrap();
    let local = c.plan.provider(ProviderKind::Local).expect("the warning's promise is kept");
    assert_eq!(local.endpoints[0].transport, Transport::Http { base_url: "http://localhost:11434".parse().unwrap() });
    let warned: Vec<_> = c.warnings.0.iter().map(|d| (d.path.as_str(), d.message.as_str())).collect();
    assert!(warned.contains(&(
        "routing.semantic.provider",
        "provider `local` is not configured; `http://localhost:11434` (its default) will be used"
    )));
    assert!(!warned.iter().any(|(_, m)| m.contains("no providers are configured")), "{warned:?}");
    assert!(!warned.iter().any(|(_, m)| m.contains("goes to provider `local`")), "{warned:?}");
    let classifier_only = "routing:\n  classifier: {enabled: true, provider: local, model: llama3}\n  routes:\n    - {name: a, model: m, description: d}\n";
    let c = compile(classifier_only, &env()).unwrap();
    assert!(c.plan.provider(ProviderKind::Local).is_some());
    // Disabled layers need nothing.
    let off = "providers:\n  open_ai: {api_key: k}\nrouting:\n  semantic: {enabled: false, provider: local, model: e}\n  routes:\n    - {name: a, model: gpt-4o}\n";
    assert!(compile(off, &env()).unwrap().plan.provider(ProviderKind::Local).is_none());
}

// 6. Keyword compilation was quadratic. Tests never assert timings; this measures them:
//    `cargo test -p llm-gateway-compiler --test hostile -- --ignored --nocapture`.

fn keyword_config(rules: usize, per_rule: usize) -> String {
    let mut s = String::from("providers:\n  local: {}\nrouting:\n  heuristics:\n    enabled: true\n    rules:\n");
    for r in 0..rules {
        let words: Vec<String> = (0..per_rule).map(|w| format!("kw{r}x{w}")).collect();
        writeln!(s, "      - match: {{keywords: [{}]}}\n        route: a", words.join(", ")).unwrap();
    }
    s.push_str("  routes:\n    - {name: a, model: m}\n");
    s
}

#[test]
#[ignore = "measurement, not a test: prints compile times"]
fn keyword_compile_times() {
    for (rules, per_rule) in [(1, 100_000), (100_000, 1), (1_000, 100)] {
        let source = keyword_config(rules, per_rule);
        let start = std::time::Instant::now();
        let ok = compile(&source, &env()).is_ok();
        println!("{rules} rules x {per_rule} keywords: {:?} (compiled: {ok})", start.elapsed());
    }
}

#[test]
fn many_keywords_and_rules_compile_and_route() {
    use llm_gateway_compiler::keywords::{Message, RequestView};
    let c = compile(&keyword_config(20_000, 1), &env()).unwrap();
    let h = c.plan.routing.as_ref().unwrap().heuristics.as_ref().unwrap();
    let ask = |text: &str| {
        h.decide(&RequestView { messages: vec![Message { role: "user", text: text.into() }], ..Default::default() })
            .map(|d| d.rule)
    };
    assert_eq!(ask("say kw19999x0 please"), Some(19_999));
    assert_eq!(ask("kw1x0"), Some(1));
    assert_eq!(ask("kw1x00"), None);
}
