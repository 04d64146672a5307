//! What the compiled plan holds: defaults, normalised URLs, keys by hash, routing tables,
//! and the warnings for legal-but-suspicious configs.

use std::collections::HashMap;
use std::time::Duration;

use llm_gateway_compiler::keywords::{Message, RequestView};
use llm_gateway_compiler::plan::{ApiKey, ProviderKind, Transport};
use llm_gateway_compiler::{Compiled, compile};

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn ok(source: &str) -> Compiled {
    compile(source, &env(&[("OPENAI_API_KEY", "sk-live")])).unwrap_or_else(|d| panic!("{}", d.render("t", source)))
}

fn warnings(c: &Compiled) -> Vec<String> {
    c.warnings.0.iter().map(|d| d.message.clone()).collect()
}

#[test]
fn defaults_follow_the_go_gateway_docs() {
    let c = ok("providers:\n  local: {}\n");
    let p = &c.plan;
    assert_eq!(p.listen.to_string(), ":8080");
    assert!(p.keys.is_none() && p.routing.is_none() && p.zrok_share.is_none());
    assert!(!p.metrics.enabled && !p.tracing.enabled);
    assert_eq!(p.tracing.max_content_length, 200);
    let local = p.provider(ProviderKind::Local).unwrap();
    assert_eq!(local.health_check.interval, Duration::from_secs(30));
    assert_eq!(local.health_check.timeout, Duration::from_secs(5));
    assert_eq!(local.endpoints.len(), 1);
    assert_eq!(local.endpoints[0].name, "local");
    assert_eq!(local.endpoints[0].transport, Transport::Http { base_url: "http://localhost:11434".parse().unwrap() });
}

#[test]
fn base_urls_lose_trailing_slash_and_v1() {
    let c = ok("providers:\n  open_ai:\n    api_key: ${OPENAI_API_KEY}\n    base_url: https://example.com/api/v1/\n");
    let p = c.plan.provider(ProviderKind::OpenAi).unwrap();
    let Transport::Http { base_url } = &p.endpoints[0].transport else { panic!() };
    assert_eq!(base_url.as_str(), "https://example.com/api");
    assert_eq!(p.api_key, ApiKey::Set(llm_gateway_compiler::Secret::new("sk-live")));
}

#[test]
fn unset_provider_key_is_a_warning_and_recorded() {
    let c = ok("providers:\n  anthropic:\n    api_key: \"${ANTHROPIC_API_KEY}\"\n");
    assert_eq!(warnings(&c), ["environment variable `ANTHROPIC_API_KEY` is not set"]);
    let p = c.plan.provider(ProviderKind::Anthropic).unwrap();
    assert_eq!(p.api_key, ApiKey::Unset { vars: vec!["ANTHROPIC_API_KEY".into()] });
}

#[test]
fn every_string_is_expanded() {
    let e = env(&[("HOST", "10.1.2.3"), ("TOK", "shr-x"), ("ADDR", "127.0.0.1:9")]);
    let src = "listen: ${ADDR}\nproviders:\n  local:\n    endpoints:\n      - name: ${NAME:-gpu}\n        base_url: http://${HOST}:8000\n      - name: z\n        zrok_share_token: ${TOK}\n";
    let c = compile(src, &e).unwrap();
    assert_eq!(c.plan.listen.to_string(), "127.0.0.1:9");
    let eps = &c.plan.provider(ProviderKind::Local).unwrap().endpoints;
    assert_eq!(eps[0].name, "gpu");
    assert!(matches!(&eps[0].transport, Transport::Http { base_url } if base_url.as_str() == "http://10.1.2.3:8000/"));
    assert!(matches!(&eps[1].transport, Transport::Zrok { share_token, .. } if share_token.expose() == "shr-x"));
}

#[test]
fn keys_are_indexed_by_hash_with_globs() {
    let src = "providers:\n  local: {}\napi_keys:\n  enabled: true\n  keys:\n    - name: alice\n      key: sk-gw-alice-0123456789\n      allowed_models: [\"meta-llama/*\"]\n";
    let c = ok(src);
    let keys = c.plan.keys.as_ref().unwrap();
    let alice = keys.lookup("sk-gw-alice-0123456789").unwrap();
    assert!(alice.allows_model("meta-llama/Llama-3.1-8B-Instruct"));
    assert!(!alice.allows_model("gpt-4o"));
    assert!(keys.lookup("sk-gw-alice").is_none());
    assert!(!format!("{:?}", c.plan).contains("sk-gw-alice-0123456789"));
}

#[test]
fn hashed_keys_need_no_plaintext() {
    let src = "providers:\n  local: {}\napi_keys:\n  enabled: true\n  keys:\n    - name: h\n      key_sha256: 5F1C7AE8E2F1C12C9D9B3E0E79B5F5B7F7E5F7C36C9A0E8D2A4C5D6E7F8091A2\n";
    let c = ok(src);
    let keys = c.plan.keys.unwrap();
    assert!(keys.lookup("anything").is_none());
    let hex = llm_gateway_compiler::acl::hash_hex("sk-gw-hashed-0123456789");
    let c = ok(&format!(
        "providers:\n  local: {{}}\napi_keys:\n  enabled: true\n  keys:\n    - name: h\n      key_sha256: {hex}\n"
    ));
    assert_eq!(c.plan.keys.unwrap().lookup("sk-gw-hashed-0123456789").map(|k| k.name.as_str()), Some("h"));
}

#[test]
fn disabled_keys_mean_no_auth() {
    let c = ok("providers:\n  local: {}\napi_keys:\n  enabled: false\n");
    assert!(c.plan.keys.is_none());
}

#[test]
fn routing_plan_resolves_default_and_heuristics() {
    let src = "providers:\n  local: {}\nrouting:\n  heuristics:\n    enabled: true\n    rules:\n      - match: { keywords: [translate] }\n        route: fast\n  routes:\n    - name: general\n      model: llama3\n    - name: fast\n      model: qwen\n";
    let c = ok(src);
    let r = c.plan.routing.as_ref().unwrap();
    assert!(r.allow_explicit_model);
    assert_eq!(r.default_route, Some(0), "the first route when default_route is absent");
    let req =
        RequestView { messages: vec![Message { role: "user", text: "Translate this".into() }], ..Default::default() };
    let d = r.heuristics.as_ref().unwrap().decide(&req).unwrap();
    assert_eq!(r.routes[d.route].model, "qwen");
}

#[test]
fn suspicious_configs_warn() {
    let src = "providers:\n  local: {}\nrouting:\n  default_route: a\n  heuristics:\n    enabled: true\n    rules:\n      - match: { keywords: [x, y] }\n        route: a\n      - match: { keywords: [X] }\n        route: a\n      - match: { exclude: [z] }\n        route: a\n  routes:\n    - name: a\n      model: llama3\n    - name: b\n      model: gpt-4o\n";
    let c = ok(src);
    assert_eq!(
        warnings(&c),
        [
            "rule can never match: rules[0] matches every request this one does",
            "`exclude` without `keywords` has no effect",
            "nothing can route to `b`",
            "model `gpt-4o` goes to provider `open_ai`, which is not configured",
        ]
    );
}

#[test]
fn all_errors_are_reported_in_one_pass() {
    let src = "listen: nope\nproviders:\n  local:\n    endpoints:\n      - name: a\n        weight: 0\n      - name: a\n        base_url: gopher://x\nrouting:\n  default_route: missing\n";
    let diags = compile(src, &env(&[])).unwrap_err();
    let messages: Vec<&str> = diags.0.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(diags.errors(), 6, "{messages:#?}");
}

#[test]
fn fallbacks_retry_and_rate_limits_compile_with_their_defaults() {
    let c = ok("providers:\n  local: {}\n");
    let p = &c.plan;
    assert!(p.fallbacks.is_empty());
    assert_eq!(p.retry.attempts, 1, "no retry unless asked");
    assert_eq!(p.retry.on.len(), 5, "every trigger");
    assert_eq!(p.rate_limits.backend, llm_gateway_compiler::plan::RateBackend::Memory);
    assert_eq!(p.rate_limits.timeout, Duration::from_millis(50));
    assert_eq!(p.unknown_paths, llm_gateway_compiler::plan::UnknownPaths::Reject);
    let src = "providers:\n  local: {}\n  anthropic:\n    api_key: sk-ant-x\n\
               fallbacks:\n  \"gpt-4o*\": [claude-sonnet-4-5, \"llama3.1:70b\"]\n  \"*\": [llama3]\n\
               retry: {attempts: 3, backoff_ms: 100, max_backoff_ms: 2000, on: [rate_limited, server_error]}\n\
               rate_limits: {backend: \"redis://127.0.0.1:6379/2\", on_backend_error: deny, timeout_ms: 20}\n\
               routing:\n  routes:\n    - {name: fast, model: qwen, fallbacks: [llama3, claude-haiku-4-5]}\n\
               api_keys:\n  enabled: true\n  keys:\n    - {name: a, key: sk-gw-aaaaaaaaaaaaaaaa, user: alice, rpm: 60, tpm: 10000, tokens_per_day: 1000000, max_concurrent: 2}\n";
    let c = ok(src);
    let p = &c.plan;
    assert_eq!(p.fallbacks_of("gpt-4o-mini", None), ["claude-sonnet-4-5", "llama3.1:70b"]);
    assert_eq!(p.fallbacks_of("qwen", Some("fast")), ["llama3", "claude-haiku-4-5"], "the route's first, no repeats");
    assert_eq!(p.fallbacks_of("llama3", None), Vec::<&str>::new(), "never the model itself");
    assert_eq!(p.retry.attempts, 3);
    assert_eq!(p.retry.backoff, Duration::from_millis(100));
    assert!(!p.retry.covers(llm_gateway_compiler::plan::RetryOn::Connect));
    assert!(matches!(&p.rate_limits.backend, llm_gateway_compiler::plan::RateBackend::Redis(_)));
    assert!(!format!("{:?}", p.rate_limits).contains("6379"), "the URL may hold a password: redacted");
    let key = p.keys.as_ref().unwrap().lookup("sk-gw-aaaaaaaaaaaaaaaa").unwrap();
    assert_eq!((key.user.as_deref(), key.subject()), (Some("alice"), "user:alice"));
    assert_eq!((key.limits.rpm, key.limits.tpm, key.limits.tokens_per_day), (Some(60), Some(10000), Some(1_000_000)));
    assert_eq!(key.limits.max_concurrent, Some(2));
}

#[test]
fn bad_traffic_settings_are_errors_and_doubtful_ones_warnings() {
    let errors = |src: &str| -> Vec<String> {
        let diags = compile(src, &env(&[])).err().map(|d| d.0).unwrap_or_default();
        diags
            .iter()
            .filter(|d| d.severity == llm_gateway_compiler::Severity::Error)
            .map(|d| d.message.clone())
            .collect()
    };
    let base = "providers:\n  local: {}\n";
    assert_eq!(errors(&format!("{base}fallbacks:\n  \"[\": [x]\n")), ["invalid glob `[`: `[` without a closing `]`"]);
    assert_eq!(errors(&format!("{base}fallbacks:\n  x: [\"\"]\n")), ["a fallback needs a model name"]);
    assert_eq!(errors(&format!("{base}retry: {{attempts: 0}}\n")), ["0 is out of range"]);
    assert_eq!(errors(&format!("{base}retry: {{on: [conect]}}\n")), ["unknown value `conect`"]);
    assert_eq!(
        errors(&format!("{base}retry: {{backoff_ms: 500, max_backoff_ms: 100}}\n")),
        ["`max_backoff_ms` is below `backoff_ms`"]
    );
    assert_eq!(
        errors(&format!("{base}rate_limits: {{backend: \"http://x\"}}\n")),
        ["`backend` must be `memory` or a Redis URL"]
    );
    assert_eq!(errors(&format!("{base}unknown_paths: allow\n")), ["unknown value `allow`"]);
    let keys = "api_keys:\n  enabled: true\n  keys:\n    - {name: a, key: sk-gw-aaaaaaaaaaaaaaaa, ";
    assert_eq!(errors(&format!("{base}{keys}rpm: 0}}\n")), ["0 is out of range"]);
    assert_eq!(errors(&format!("{base}{keys}user: \" \"}}\n")), ["`user` is empty"]);
    let c = ok(&format!("{base}fallbacks:\n  x: [gpt-4o, gpt-4o]\n  y: []\n"));
    assert_eq!(
        warnings(&c),
        [
            "fallback `gpt-4o` goes to provider `open_ai`, which is not configured",
            "fallback `gpt-4o` goes to provider `open_ai`, which is not configured",
            "fallback `gpt-4o` is listed twice",
            "no fallback models listed: this entry does nothing",
        ]
    );
}

#[test]
fn keys_of_one_user_with_different_limits_and_a_pooled_max_concurrent_are_warned_about() {
    let c = ok(
        "providers:\n  local:\n    endpoints:\n      - {name: a, base_url: \"http://a\"}\n      - {name: b, base_url: \"http://b\"}\n\
                limits:\n  max_concurrent: 2\n\
                api_keys:\n  enabled: true\n  keys:\n    - {name: a, key: sk-gw-aaaaaaaaaaaaaaaa, user: al, rpm: 5}\n    - {name: b, key: sk-gw-bbbbbbbbbbbbbbbb, user: al, rpm: 6}\n    - {name: c, key: sk-gw-cccccccccccccccc, user: al, rpm: 5}\n",
    );
    assert_eq!(
        warnings(&c),
        [
            "`limits.max_concurrent` is for the whole gateway, not per endpoint",
            "keys of user `al` have different limits (see api_keys.keys[0])",
        ]
    );
    let routes = ok(
        "providers:\n  local: {}\nfallbacks:\n  \"*\": [fast, llama3]\nrouting:\n  routes:\n    - {name: fast, model: qwen}\n",
    );
    assert_eq!(routes.plan.fallbacks_of("mistral", None), ["qwen", "llama3"], "a route name stands for its model");
}
