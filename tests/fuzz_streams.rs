//! Fuzzing on the stable toolchain (property-based, with proptest): every SSE reader and
//! stream translator, the chain of two, the usage tail scanner and the model splice, fed
//! generated and mutated inputs. Seeds are the recorded fixtures (`fixtures/upstream/`,
//! `fixtures/dialects/`); failures proptest finds are kept in `tests/fuzz/` and replayed first.
//!
//! CI runs a few hundred cases per target; for hours: `FUZZ_CASES=1000000 cargo test --release
//! --test fuzz_streams` (see the README's Fuzzing section).

use std::path::Path;

use llm_gateway::dialect::StreamTranslator;
use llm_gateway::dialect::messages::client::stream::FromChat as MessagesFromChat;
use llm_gateway::dialect::messages::upstream::request::Asked;
use llm_gateway::dialect::messages::upstream::stream::ToChat;
use llm_gateway::dialect::responses::response::Echo;
use llm_gateway::dialect::responses::stream::FromChat as ResponsesFromChat;
use llm_gateway::request;
use llm_gateway::usage::Tail;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn cases() -> u32 {
    std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300)
}

fn config(name: &'static str) -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(match name {
            "streams" => "tests/fuzz/streams.regressions",
            _ => "tests/fuzz/requests.regressions",
        }))),
        ..ProptestConfig::default()
    }
}

/// The recorded streams: the seeds every generated input starts from.
fn seeds() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut out = Vec::new();
    for dir in ["upstream/openai", "upstream/anthropic", "dialects/messages", "dialects/responses"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            if entry.path().extension().is_some_and(|e| e == "sse") {
                out.push(std::fs::read(entry.path()).unwrap());
            }
        }
    }
    out.sort();
    out
}

/// SSE-shaped text: events with `event:`/`data:` lines, comments, CRLF or LF, JSON-ish data
/// (fragments of real chunks with random values), `[DONE]`.
fn sse_like() -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        Just("null".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        "[a-z \\\\\"\u{e9}\u{1F600}]{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        Just("{}".to_owned()),
        Just("[]".to_owned()),
    ];
    let key = prop_oneof![
        Just("type"),
        Just("index"),
        Just("delta"),
        Just("content"),
        Just("text"),
        Just("partial_json"),
        Just("tool_calls"),
        Just("id"),
        Just("name"),
        Just("arguments"),
        Just("function"),
        Just("choices"),
        Just("finish_reason"),
        Just("usage"),
        Just("message"),
        Just("content_block"),
        Just("stop_reason"),
        Just("error"),
        Just("model"),
        Just("output_tokens"),
        Just("prompt_tokens"),
        Just("completion_tokens"),
    ];
    let kind = prop_oneof![
        Just("message_start"),
        Just("content_block_start"),
        Just("content_block_delta"),
        Just("content_block_stop"),
        Just("message_delta"),
        Just("message_stop"),
        Just("ping"),
        Just("error"),
        Just("text_delta"),
        Just("input_json_delta"),
        Just("tool_use"),
    ];
    let object = (prop::collection::vec((key, value), 0..6), kind).prop_map(|(fields, kind)| {
        let mut s = format!("{{\"type\":\"{kind}\"");
        for (k, v) in fields {
            s.push_str(&format!(",\"{k}\":{v}"));
        }
        s.push('}');
        s
    });
    let line = prop_oneof![
        4 => object.prop_map(|o| format!("data: {o}")),
        1 => Just("data: [DONE]".to_owned()),
        1 => kind_line(),
        1 => Just(": comment".to_owned()),
        1 => "[ -~]{0,20}",
    ];
    let event = (prop::collection::vec(line, 1..3), any::<bool>()).prop_map(|(lines, crlf)| {
        let nl = if crlf { "\r\n" } else { "\n" };
        let mut s = lines.join(nl);
        s.push_str(nl);
        s.push_str(nl);
        s
    });
    prop::collection::vec(event, 0..12).prop_map(|events| events.concat().into_bytes())
}

fn kind_line() -> impl Strategy<Value = String> {
    "[a-z_.]{1,24}".prop_map(|k| format!("event: {k}"))
}

/// A recorded stream, mutated: cut, bytes flipped, a piece repeated.
fn mutated_seed() -> impl Strategy<Value = Vec<u8>> {
    let seeds = seeds();
    (0..seeds.len(), any::<u64>(), 0usize..4).prop_map(move |(i, noise, how)| {
        let mut s = seeds[i].clone();
        let at = (noise as usize) % (s.len() + 1);
        match how {
            0 => s.truncate(at),
            1 => {
                if let Some(b) = s.get_mut(at) {
                    *b ^= (noise >> 32) as u8 | 1;
                }
            }
            2 => {
                let piece = s[at..].iter().take(64).copied().collect::<Vec<_>>();
                s.splice(at..at, piece);
            }
            _ => {}
        }
        s
    })
}

fn input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => mutated_seed(),
        3 => sse_like(),
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

/// Every translator the gateway can put on a stream.
fn translators() -> Vec<(&'static str, Box<dyn StreamTranslator>)> {
    let asked = Asked { stream: true, include_usage: true };
    vec![
        ("anthropic→chat", Box::new(ToChat::new(&asked))),
        ("chat→messages", Box::new(MessagesFromChat::new())),
        ("chat→responses", Box::new(ResponsesFromChat::new(Echo::default()))),
        ("anthropic→chat→responses", Box::new(ToChat::to(&asked, ResponsesFromChat::new(Echo::default())))),
    ]
}

/// Anthropic → Chat → Responses the long way: the Chat chunks written as events, then read
/// back. What the two-hop translator, which hands the chunks over as they are, must match.
struct ByText {
    first: ToChat,
    second: ResponsesFromChat,
}

impl ByText {
    fn new() -> Self {
        ByText {
            first: ToChat::new(&Asked { stream: true, include_usage: true }),
            second: ResponsesFromChat::new(Echo::default()),
        }
    }

    fn run(&mut self, input: &[u8], splits: &[usize]) -> Vec<u8> {
        let chat = run(&mut self.first, input, splits);
        run(&mut self.second, &chat, &[])
    }
}

/// Feeds `input` cut at `splits`, then finishes.
fn run(t: &mut dyn StreamTranslator, input: &[u8], splits: &[usize]) -> Vec<u8> {
    let mut cuts: Vec<usize> = splits.iter().map(|s| s % (input.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut last = 0;
    for &c in cuts.iter().chain([input.len()].iter()) {
        t.feed(&input[last..c], &mut out);
        last = c;
    }
    t.finish(&mut out);
    out
}

/// What may differ between two runs of one translator: the clock and random ids.
fn normalized(out: &[u8]) -> String {
    let text = String::from_utf8_lossy(out);
    let mut s = String::with_capacity(text.len());
    let mut rest = text.as_ref();
    while let Some(i) = rest.find(|c: char| c.is_ascii_digit() || c == '_') {
        s.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_hexdigit() || c == '_')).unwrap_or(tail.len()).max(1);
        s.push('#');
        rest = &tail[end..];
    }
    s.push_str(rest);
    s
}

proptest! {
    #![proptest_config(config("streams"))]

    /// No input panics a translator; every event out is well-formed; the output does not
    /// depend on how the bytes arrived; it is bounded by the input; it always ends with the
    /// dialect's terminal event or an error event (never a clean-looking cut), and reports a
    /// failure exactly when it ends with an error event.
    #[test]
    fn translators_survive_any_stream(input in input(), splits in prop::collection::vec(any::<usize>(), 0..6)) {
        for ((name, mut whole), (_, mut split)) in translators().into_iter().zip(translators()) {
            let a = run(whole.as_mut(), &input, &[]);
            let b = run(split.as_mut(), &input, &splits);
            prop_assert_eq!(normalized(&a), normalized(&b), "{} depends on the splits", name);
            prop_assert!(a.len() <= 64 * input.len() + 16_384, "{} output {} for input {}", name, a.len(), input.len());
            let text = String::from_utf8(a).map_err(|e| TestCaseError::fail(format!("{name}: not UTF-8: {e}")))?;
            let events: Vec<&str> = text.split("\n\n").filter(|e| !e.trim().is_empty()).collect();
            for e in &events {
                for line in e.lines().filter(|l| l.starts_with("data: ")) {
                    let data = &line[6..];
                    prop_assert!(data == "[DONE]" || serde_json::from_str::<serde_json::Value>(data).is_ok(), "{}: bad data {}", name, data);
                }
            }
            let last = events.last().copied().unwrap_or_default();
            let terminal = ["[DONE]", "message_stop", "response.completed", "response.incomplete", "response.failed", "\"error\""];
            prop_assert!(terminal.iter().any(|t| last.contains(t)), "{}: ends with {:?}", name, last);
            // A stream that ended in an error event says so (its log line carries the error), and
            // only such a stream does.
            let failed = last.starts_with("event: error") || last.starts_with("event: response.failed") || last.starts_with("data: {\"error\"");
            prop_assert_eq!(whole.failure().is_some(), failed, "{}: failure {:?}, ends with {:?}", name, whole.failure(), last);
        }
    }

    /// The two-hop translator says what its two hops say with the Chat chunks written out and
    /// read back, and reports the same failure and tokens.
    #[test]
    fn two_hops_match_the_chunks_written_and_read(input in input(), splits in prop::collection::vec(any::<usize>(), 0..6)) {
        let mut direct = ToChat::to(&Asked { stream: true, include_usage: true }, ResponsesFromChat::new(Echo::default()));
        let mut by_text = ByText::new();
        let a = run(&mut direct, &input, &splits);
        let b = by_text.run(&input, &splits);
        prop_assert_eq!(normalized(&a), normalized(&b));
        prop_assert_eq!(direct.failure(), by_text.second.failure().or(by_text.first.failure()));
        prop_assert_eq!(direct.tokens(), by_text.first.tokens().or(by_text.second.tokens()));
    }

    /// The usage tail scanner reads any bytes pushed in any pieces without panicking.
    #[test]
    fn usage_tail_survives_any_bytes(pieces in prop::collection::vec(prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        "[{}\" :,0-9a-z_]{0,80}".prop_map(String::into_bytes),
        Just(br#""usage":{"prompt_tokens":3,"completion_tokens":"#.to_vec()),
    ], 0..20)) {
        let mut t = Tail::default();
        for p in &pieces {
            t.push(p);
        }
        let _ = t.tokens();
    }
}

proptest! {
    #![proptest_config(config("requests"))]

    /// Any body: parse never panics. A JSON object: the spliced body is JSON with the new
    /// model and every other member unchanged.
    #[test]
    fn model_splice_keeps_everything_else(
        members in prop::collection::vec(("[a-z_]{1,8}", prop_oneof![
            Just(serde_json::json!(null)), any::<i64>().prop_map(serde_json::Value::from),
            "[ -~\u{e9}]{0,10}".prop_map(serde_json::Value::from),
            Just(serde_json::json!([{"role": "user", "content": "hi"}])),
        ]), 0..6),
        model in prop::option::of("[ -~\u{e9}\u{1F600}]{0,12}"),
        new in "[ -~\u{e9}\u{1F600}]{0,12}",
        spaces in "[ \t\n]{0,3}",
    ) {
        let mut obj = serde_json::Map::new();
        for (k, v) in members {
            if k != "model" && k != "stream" && k != "max_tokens" && k != "max_output_tokens" {
                obj.insert(k, v);
            }
        }
        if let Some(m) = &model {
            obj.insert("model".into(), m.clone().into());
        }
        let body = format!("{spaces}{}", serde_json::Value::Object(obj.clone()));
        let parsed = request::parse(body.as_bytes());
        let Ok(parsed) = parsed else { return Ok(()) }; // e.g. a non-array `tools`: refused, not a panic
        let out = request::with_model(body.as_bytes(), &parsed, &new);
        let got: serde_json::Value = serde_json::from_slice(&out).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        let mut want = obj;
        want.insert("model".into(), new.into());
        prop_assert_eq!(got, serde_json::Value::Object(want));
    }

    #[test]
    fn parse_survives_any_bytes(body in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = request::parse(&body);
    }
}
