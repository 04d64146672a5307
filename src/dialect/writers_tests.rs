//! The translators that write JSON by hand, fed bodies of every odd shape: each either refuses
//! one or writes JSON that parses, and none panics. Bodies are objects built from the members
//! the translators read (and values of every type under them), so that the odd shapes reach
//! deep into each reader rather than stopping at the top.

use proptest::prelude::*;
use serde_json::Value;

use super::messages::{client, upstream};
use super::responses::request as responses_request;
use super::responses::response::{self, Echo, from_chat as response_from_chat};

/// The members some translator reads.
const KEYS: &[&str] = &[
    "id",
    "model",
    "created",
    "choices",
    "message",
    "content",
    "refusal",
    "tool_calls",
    "function_call",
    "function",
    "name",
    "arguments",
    "finish_reason",
    "usage",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "prompt_tokens_details",
    "cached_tokens",
    "completion_tokens_details",
    "reasoning_tokens",
    "type",
    "text",
    "input",
    "stop_reason",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "messages",
    "role",
    "tools",
    "tool_choice",
    "tool_call_id",
    "image_url",
    "url",
    "stop",
    "max_tokens",
    "max_completion_tokens",
    "user",
    "parameters",
    "description",
    "stream",
    "stream_options",
    "include_usage",
    "n",
    "logprobs",
    "response_format",
    "temperature",
    "parallel_tool_calls",
    "instructions",
    "call_id",
    "output",
    "safety_identifier",
    "reasoning",
    "effort",
    "format",
    "schema",
    "strict",
    "detail",
    "max_output_tokens",
    "top_p",
    "store",
];

/// Strings the translators tell apart, and strings with escapes.
const STRINGS: &[&str] = &[
    "text",
    "tool_use",
    "function",
    "user",
    "assistant",
    "system",
    "developer",
    "tool",
    "auto",
    "none",
    "required",
    "stop",
    "length",
    "tool_calls",
    "content_filter",
    "end_turn",
    "max_tokens",
    "image_url",
    "input_text",
    "output_text",
    "input_image",
    "function_call",
    "function_call_output",
    "json_schema",
    "{}",
    "{\"a\":[1]}",
    " ",
    "data:image/png;base64,AA==",
    "https://example.com/a.png",
    "a\"b\\\n\t",
    "\u{e9}\u{1F600}",
    "",
];

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        proptest::sample::select(STRINGS).prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 96, 6, |inner| {
        prop_oneof![proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array), object(inner),]
    })
}

fn object(inner: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> {
    proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..7)
        .prop_map(|members| Value::Object(members.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

/// An object with each of `members` (of its right shape, mostly) or without it, and maybe an
/// odd member besides.
fn obj(members: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let members: Vec<_> = members
        .into_iter()
        .map(|(key, shape)| proptest::option::weighted(0.85, odd(shape)).prop_map(move |v| v.map(|v| (key, v))))
        .collect();
    (members, proptest::option::weighted(0.2, (proptest::sample::select(KEYS), value())))
        .prop_map(|(members, extra)| {
            Value::Object(members.into_iter().flatten().chain(extra).map(|(k, v)| (k.to_owned(), v)).collect())
        })
        .boxed()
}

/// An object with each of `members`, each of its right shape.
fn exact(members: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let members: Vec<_> = members.into_iter().map(|(key, shape)| shape.prop_map(move |v| (key, v))).collect();
    members.prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())).boxed()
}

/// A list of one to three `element`s.
fn some(element: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    proptest::collection::vec(element, 1..4).prop_map(Value::Array).boxed()
}

/// `shape` mostly, sometimes any value.
fn odd(shape: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![6 => shape, 1 => value()].boxed()
}

fn list(element: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    proptest::collection::vec(odd(element), 0..4).prop_map(Value::Array).boxed()
}

fn string() -> BoxedStrategy<Value> {
    proptest::sample::select(STRINGS).prop_map(Value::from).boxed()
}

fn count() -> BoxedStrategy<Value> {
    prop_oneof![(0u64..1_000_000).prop_map(Value::from), Just(Value::from(1e300)), Just(Value::from(2.0))].boxed()
}

fn chat_usage() -> BoxedStrategy<Value> {
    obj(vec![
        ("prompt_tokens", count()),
        ("completion_tokens", count()),
        ("total_tokens", count()),
        ("prompt_tokens_details", obj(vec![("cached_tokens", count())])),
        ("completion_tokens_details", obj(vec![("reasoning_tokens", count())])),
    ])
}

fn call() -> BoxedStrategy<Value> {
    obj(vec![
        ("id", string()),
        ("type", string()),
        ("function", obj(vec![("name", string()), ("arguments", string())])),
    ])
}

fn parts() -> BoxedStrategy<Value> {
    list(obj(vec![("type", string()), ("text", string()), ("image_url", obj(vec![("url", string())]))]))
}

fn chat_completion() -> BoxedStrategy<Value> {
    let message = obj(vec![
        ("role", string()),
        ("content", prop_oneof![string(), parts()].boxed()),
        ("refusal", string()),
        ("tool_calls", list(call())),
        ("function_call", obj(vec![("name", string()), ("arguments", string())])),
    ]);
    obj(vec![
        ("id", string()),
        ("model", string()),
        ("created", count()),
        ("choices", list(obj(vec![("message", message), ("finish_reason", string())]))),
        ("usage", chat_usage()),
    ])
}

fn anthropic_message() -> BoxedStrategy<Value> {
    let block = obj(vec![
        ("type", string()),
        ("text", string()),
        ("id", string()),
        ("name", string()),
        ("input", obj(vec![("city", string())])),
    ]);
    let usage = obj(vec![("input_tokens", count()), ("output_tokens", count()), ("cache_read_input_tokens", count())]);
    obj(vec![
        ("id", string()),
        ("model", string()),
        ("content", list(block)),
        ("stop_reason", string()),
        ("usage", usage),
    ])
}

fn one_of(words: &'static [&'static str]) -> BoxedStrategy<Value> {
    proptest::sample::select(words).prop_map(Value::from).boxed()
}

/// A request most of whose members are of a shape the translation takes, so that it gets
/// past its checks and writes.
fn chat_request() -> BoxedStrategy<Value> {
    let part = obj(vec![
        ("type", one_of(&["text", "image_url"])),
        ("text", string()),
        (
            "image_url",
            prop_oneof![obj(vec![("url", one_of(&["data:image/png;base64,AA==", "https://x/a\"b"]))]), string()]
                .boxed(),
        ),
    ]);
    let message = exact(vec![
        ("role", one_of(&["user", "assistant", "system", "developer", "tool"])),
        ("content", prop_oneof![string(), list(part)].boxed()),
        (
            "tool_calls",
            list(obj(vec![
                ("id", string()),
                (
                    "function",
                    obj(vec![("name", string()), ("arguments", one_of(&["{\"a\":[1,\"\\u00e9\"]}", " ", "", "[1]"]))]),
                ),
            ])),
        ),
        ("tool_call_id", string()),
    ]);
    let tool = exact(vec![
        ("type", one_of(&["function"])),
        ("function", obj(vec![("name", string()), ("description", string()), ("parameters", obj(vec![]))])),
    ]);
    obj(vec![
        ("messages", some(message)),
        ("tools", some(tool)),
        (
            "tool_choice",
            prop_oneof![
                one_of(&["auto", "none", "required"]),
                obj(vec![("type", one_of(&["function"])), ("function", obj(vec![("name", string())]))])
            ]
            .boxed(),
        ),
        ("stop", prop_oneof![string(), list(string())].boxed()),
        ("max_tokens", count()),
        ("user", string()),
        ("stream", any::<bool>().prop_map(Value::from).boxed()),
        ("parallel_tool_calls", any::<bool>().prop_map(Value::from).boxed()),
    ])
}

/// A Messages request most of whose members are of a shape the translation takes.
fn messages_request() -> BoxedStrategy<Value> {
    let text = || exact(vec![("type", one_of(&["text"])), ("text", string())]);
    let source = || {
        obj(vec![
            ("type", one_of(&["base64", "url"])),
            ("media_type", one_of(&["image/png", "image/\"x"])),
            ("data", string()),
            ("url", string()),
        ])
    };
    let image = exact(vec![("type", one_of(&["image"])), ("source", source())]);
    let block = obj(vec![
        ("type", one_of(&["text", "image", "tool_result", "tool_use", "thinking"])),
        ("text", string()),
        ("source", source()),
        ("tool_use_id", string()),
        ("content", prop_oneof![string(), list(prop_oneof![text(), image].boxed())].boxed()),
        ("is_error", any::<bool>().prop_map(Value::from).boxed()),
        ("id", string()),
        ("name", string()),
        ("input", obj(vec![("path", string()), ("n", count())])),
    ]);
    let message =
        exact(vec![("role", one_of(&["user", "assistant"])), ("content", prop_oneof![string(), list(block)].boxed())]);
    let schema = obj(vec![("$schema", string()), ("type", one_of(&["object"])), ("properties", obj(vec![]))]);
    let tool = exact(vec![
        ("type", one_of(&["custom", "web_search_20250305"])),
        ("name", string()),
        ("description", string()),
        ("input_schema", schema),
    ]);
    let choice = obj(vec![
        ("type", one_of(&["auto", "any", "none", "tool"])),
        ("name", string()),
        ("disable_parallel_tool_use", any::<bool>().prop_map(Value::from).boxed()),
    ]);
    let rest = obj(vec![
        ("system", prop_oneof![string(), some(text())].boxed()),
        ("stop_sequences", list(string())),
        ("tools", some(tool)),
        ("tool_choice", choice),
        ("metadata", obj(vec![("user_id", string())])),
        ("stream", any::<bool>().prop_map(Value::from).boxed()),
    ]);
    (exact(vec![("messages", some(message)), ("max_tokens", count())]), rest)
        .prop_map(|(mut request, rest)| {
            if let (Value::Object(request), Value::Object(rest)) = (&mut request, rest) {
                request.extend(rest);
            }
            request
        })
        .boxed()
}

/// A Responses request most of whose members are of a shape the translation takes.
fn responses_request() -> BoxedStrategy<Value> {
    let flag = || any::<bool>().prop_map(Value::from).boxed();
    let text = || {
        exact(vec![
            ("type", one_of(&["input_text", "output_text", "text", "refusal"])),
            ("text", string()),
            ("refusal", string()),
        ])
    };
    let part = obj(vec![
        ("type", one_of(&["input_text", "output_text", "refusal", "input_image", "input_file"])),
        ("text", string()),
        ("refusal", string()),
        ("image_url", string()),
        ("detail", string()),
    ]);
    let item = obj(vec![
        (
            "type",
            one_of(&[
                "message",
                "function_call",
                "custom_tool_call",
                "function_call_output",
                "custom_tool_call_output",
                "reasoning",
                "item_reference",
                "computer_call",
            ]),
        ),
        ("role", one_of(&["user", "assistant", "system", "developer", "tool"])),
        ("content", prop_oneof![string(), list(part)].boxed()),
        ("call_id", string()),
        ("name", string()),
        ("arguments", prop_oneof![one_of(&["{\"a\":[1,\"\\u00e9\"]}", "", " "]), obj(vec![("a", count())])].boxed()),
        ("input", obj(vec![("b", string())])),
        ("output", prop_oneof![string(), list(text())].boxed()),
    ]);
    let tool = obj(vec![
        ("type", one_of(&["function", "web_search", "custom", "x"])),
        ("name", string()),
        ("description", string()),
        ("parameters", obj(vec![("type", one_of(&["object"]))])),
        ("strict", flag()),
    ]);
    let choice = prop_oneof![
        one_of(&["auto", "none", "required", "other"]),
        obj(vec![("type", one_of(&["function", "allowed_tools"])), ("name", string())])
    ];
    let format = obj(vec![
        ("type", one_of(&["json_schema", "json_object", "text"])),
        ("name", string()),
        ("description", string()),
        ("schema", obj(vec![])),
        ("strict", flag()),
    ]);
    obj(vec![
        ("model", string()),
        ("input", prop_oneof![string(), some(item)].boxed()),
        ("instructions", string()),
        ("tools", some(tool)),
        ("tool_choice", choice.boxed()),
        ("parallel_tool_calls", flag()),
        ("max_output_tokens", count()),
        ("temperature", count()),
        ("top_p", count()),
        ("user", string()),
        ("safety_identifier", string()),
        ("text", obj(vec![("format", format), ("verbosity", string())])),
        ("reasoning", obj(vec![("effort", string())])),
        ("stream", flag()),
        ("store", Just(Value::Bool(false)).boxed()),
    ])
}

/// `Ok` output must be JSON.
fn json<E>(what: &str, body: &[u8], out: Result<Vec<u8>, E>) -> Result<(), TestCaseError> {
    if let Ok(out) = out {
        let parsed = serde_json::from_slice::<Value>(&out);
        prop_assert!(
            parsed.is_ok(),
            "{what} wrote no JSON for {}:\n{}",
            String::from_utf8_lossy(body),
            String::from_utf8_lossy(&out)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn hand_written_json_is_json(
        chat in chat_completion(), anthropic in anthropic_message(), request in chat_request(),
        messages in messages_request(), responses in responses_request(), any in object(value()),
    ) {
        for body in [chat, anthropic, request, messages, responses, any] {
            let body = body.to_string();
            let body = body.as_bytes();
            json("Anthropic → Chat answer", body, upstream::response::completion(body))?;
            json("Chat → Messages answer", body, client::response::from_chat(body))?;
            json("Chat → Responses answer", body, response_from_chat(body, &Echo::default()))?;
            json("Chat → Anthropic request", body, upstream::request::translate(body, "m\"1").map(|(out, _)| out))?;
            json("Messages → Chat request", body, client::request::to_chat(body, "m\"1", false))?;
            json("Messages → OpenAI request", body, client::request::to_chat(body, "m", true))?;
            for openai in [false, true] {
                let translated = responses_request::to_chat(body, "m\"1", openai);
                // What the Response repeats from the request is written from its members too.
                let answer = translated.as_ref().map_err(|_| ()).and_then(|(_, echo)| {
                    response_from_chat(br#"{"choices":[{"message":{"content":"hi"}}]}"#, echo).map_err(|_| ())
                });
                json("Responses → Chat request", body, translated.map(|(out, _)| out))?;
                json("Chat → Responses answer (its echo)", body, answer)?;
            }
        }
    }
}

/// A Response's text with its random id base and its clock time left out.
fn settled(answer: Vec<u8>) -> String {
    let text = String::from_utf8(answer).unwrap();
    let base = &text[r#"{"id":"resp_"#.len()..text.find(r#"","object""#).unwrap()];
    let (time, status) = (text.find(r#""created_at":"#).unwrap(), text.find(r#","status":"#).unwrap());
    format!("{}{}", &text[..time], &text[status..]).replace(base, "B")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Anthropic → Responses hands the completion it reads over without its text: the Response
    /// must be the one the Chat completion written and read back makes.
    #[test]
    fn anthropic_to_responses_says_what_the_chat_completion_says(
        anthropic in anthropic_message(), any in object(value()), request in responses_request(),
    ) {
        let request = request.to_string();
        let echo = responses_request::to_chat(request.as_bytes(), "m", false).map_or_else(|_| Echo::default(), |(_, e)| e);
        for body in [anthropic, any] {
            let body = body.to_string();
            let body = body.as_bytes();
            let direct = upstream::response::read(body, |chat| response::from_completion(chat, &echo, 0));
            let direct = direct.ok().map(|answer| answer.map(settled).ok());
            let written = upstream::response::completion(body).ok();
            let read_back = written.map(|chat| response_from_chat(&chat, &echo).map(settled).ok());
            prop_assert_eq!(direct, read_back, "{}", String::from_utf8_lossy(body));
        }
    }
}
