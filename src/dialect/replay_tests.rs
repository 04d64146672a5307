//! Tests of the replay (`replay.rs`): each dialect's events, put together again as its SDK
//! does, give back the whole answer they were made from.
use super::*;
use crate::dialect::testing::fixture;

/// `(event name, data)` pairs (the name empty for Chat's unnamed events).
fn parse(out: &[u8]) -> Vec<(String, Value)> {
    let text = std::str::from_utf8(out).unwrap();
    assert!(text.ends_with("\n\n"), "{text}");
    text.split_terminator("\n\n")
        .map(|e| match e.split_once('\n') {
            Some((name, data)) => {
                let name = name.strip_prefix("event: ").unwrap().to_owned();
                let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(data["type"], name.as_str(), "an event's data names it");
                (name, data)
            }
            None => {
                let data = e.strip_prefix("data: ").unwrap();
                (String::new(), serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.into())))
            }
        })
        .collect()
}

fn replayed(dialect: Dialect, answer: &Value, usage: bool) -> Vec<(String, Value)> {
    parse(&events(dialect, &serde_json::to_vec(answer).unwrap(), usage).unwrap())
}

#[test]
fn chat_is_one_chunk_then_usage_when_asked_then_done() {
    let whole: Value = serde_json::from_slice(&fixture("upstream/openai/chat.json")).unwrap();
    for usage in [false, true] {
        let got = replayed(Dialect::Chat, &whole, usage);
        assert_eq!(got.len(), if usage { 3 } else { 2 });
        let chunk = &got[0].1;
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], whole["id"]);
        assert_eq!(chunk["choices"][0]["delta"], whole["choices"][0]["message"]);
        assert_eq!(chunk["choices"][0]["finish_reason"], whole["choices"][0]["finish_reason"]);
        assert!(chunk.get("usage").is_none());
        if usage {
            assert_eq!((&got[1].1["usage"], &got[1].1["choices"]), (&whole["usage"], &json!([])));
        }
        assert_eq!(got.last().unwrap().1, "[DONE]");
    }
    // Tool calls are numbered, as a stream's deltas are.
    let calls = json!({"object": "chat.completion", "choices": [{"index": 0, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{\"x\":1}"}}]}}]});
    let got = replayed(Dialect::Chat, &calls, true);
    let deltas = &got[0].1["choices"][0]["delta"]["tool_calls"];
    assert_eq!((&deltas[0]["index"], &deltas[1]["index"]), (&json!(0), &json!(1)));
    assert_eq!(deltas[1]["function"]["arguments"], "{\"x\":1}");
    // A legacy text completion already has a chunk's shape.
    let text: Value = serde_json::from_slice(&fixture("upstream/openai/completions.json")).unwrap();
    let mut expected = text.clone();
    expected.as_object_mut().unwrap().remove("usage");
    assert_eq!(replayed(Dialect::Chat, &text, false)[0].1, expected);
}

#[test]
fn messages_events_rebuild_the_message() {
    let mut whole: Value = serde_json::from_slice(&fixture("upstream/anthropic/message-tools.json")).unwrap();
    // Thinking (with its signature) and a block the replay does not know, kept whole.
    let blocks = whole["content"].as_array_mut().unwrap();
    blocks.insert(0, json!({"type": "thinking", "thinking": "Two cities.", "signature": "c2ln"}));
    blocks.push(json!({"type": "redacted_thinking", "data": "abc"}));
    let got = replayed(Dialect::Messages, &whole, false);
    let mut message = got[0].1["message"].clone();
    assert_eq!(message["content"], json!([]));
    let mut blocks: Vec<Value> = Vec::new();
    let mut partial = String::new();
    for (name, data) in &got[1..] {
        match name.as_str() {
            "content_block_start" => {
                assert_eq!(data["index"], blocks.len());
                blocks.push(data["content_block"].clone());
            }
            "content_block_delta" => {
                let block = blocks.last_mut().unwrap();
                let delta = &data["delta"];
                match delta["type"].as_str().unwrap() {
                    "text_delta" => {
                        block["text"] =
                            format!("{}{}", block["text"].as_str().unwrap(), delta["text"].as_str().unwrap()).into()
                    }
                    "thinking_delta" => block["thinking"] = delta["thinking"].clone(),
                    "signature_delta" => block["signature"] = delta["signature"].clone(),
                    "input_json_delta" => partial.push_str(delta["partial_json"].as_str().unwrap()),
                    other => panic!("{other}"),
                }
            }
            "content_block_stop" => {
                if !partial.is_empty() {
                    blocks.last_mut().unwrap()["input"] = serde_json::from_str(&std::mem::take(&mut partial)).unwrap();
                }
            }
            "message_delta" => {
                message["stop_reason"] = data["delta"]["stop_reason"].clone();
                message["stop_sequence"] = data["delta"]["stop_sequence"].clone();
                message["usage"] = data["usage"].clone();
            }
            "message_stop" => {}
            other => panic!("{other}"),
        }
    }
    assert_eq!(got.last().unwrap().0, "message_stop");
    message["content"] = blocks.into();
    assert_eq!(message, whole);
}

#[test]
fn responses_events_rebuild_the_response() {
    let text: Value = serde_json::from_slice(&fixture("upstream/openai/responses.json")).unwrap();
    let calls = crate::dialect::responses::response::from_chat(
        &fixture("dialects/responses/chat-completion-tools.json"),
        &Default::default(),
    )
    .unwrap();
    let calls: Value = serde_json::from_slice(&calls).unwrap();
    assert!(calls["output"].as_array().unwrap().iter().any(|item| item["type"] == "function_call"));
    let mut incomplete = text.clone();
    incomplete["status"] = "incomplete".into();
    for (whole, last) in
        [(&text, "response.completed"), (&calls, "response.completed"), (&incomplete, "response.incomplete")]
    {
        let got = replayed(Dialect::Responses, whole, false);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!((names[0], names[1], *names.last().unwrap()), ("response.created", "response.in_progress", last));
        let numbers: Vec<u64> = got.iter().map(|e| e.1["sequence_number"].as_u64().unwrap()).collect();
        assert_eq!(numbers, (0..got.len() as u64).collect::<Vec<_>>());
        assert_eq!(got[0].1["response"]["status"], "in_progress");
        // It starts with nothing out and nothing counted.
        assert_eq!((&got[0].1["response"]["output"], &got[0].1["response"]["usage"]), (&json!([]), &Value::Null));
        assert_eq!(&got.last().unwrap().1["response"], whole);
        // What a client that reads only the deltas and the items sees.
        let mut items = Vec::new();
        let mut streamed = String::new();
        for (name, data) in &got {
            match name.as_str() {
                "response.output_item.added" => {
                    assert_eq!(data["output_index"], items.len());
                    assert_eq!(data["item"]["status"], "in_progress");
                }
                "response.output_text.delta" | "response.function_call_arguments.delta" => {
                    streamed.push_str(data["delta"].as_str().unwrap());
                }
                "response.output_item.done" => items.push(data["item"].clone()),
                _ => {}
            }
        }
        assert_eq!(Value::from(items.clone()), whole["output"]);
        let written: String = items
            .iter()
            .map(|i| match i["type"].as_str() {
                Some("message") => i["content"][0]["text"].as_str().unwrap().to_owned(),
                _ => i["arguments"].as_str().unwrap().to_owned(),
            })
            .collect();
        assert_eq!(streamed, written);
    }
}

#[test]
fn what_an_answer_leaves_out_is_replayed_as_empty() {
    // A tool call without input takes none: `{}`, never `null`.
    let call = json!({"content": [{"type": "tool_use", "id": "toolu_1", "name": "f"}], "stop_reason": "tool_use"});
    let got = replayed(Dialect::Messages, &call, false);
    let delta = got.iter().find(|(name, _)| name == "content_block_delta").unwrap();
    assert_eq!(delta.1["delta"]["partial_json"], "{}");
    // No counts, no usage chunk, though asked for.
    let text =
        json!({"object": "chat.completion", "choices": [{"index": 0, "message": {"content": "hi"}}], "usage": null});
    assert_eq!(replayed(Dialect::Chat, &text, true).len(), 2);
}

#[test]
fn an_answer_over_the_bound_is_not_replayed_and_one_at_it_is() {
    for (size, replays) in [(MAX_BYTES, true), (MAX_BYTES + 1, false)] {
        let pad = size - br#"{"choices":[],"x":""}"#.len();
        let answer = format!(r#"{{"choices":[],"x":"{}"}}"#, "a".repeat(pad));
        assert_eq!(events(Dialect::Chat, answer.as_bytes(), false).is_some(), replays, "{size}");
    }
}

/// A list of `n` items, as JSON text, in an answer of `dialect`.
fn list_of(dialect: Dialect, n: usize, item: &str) -> String {
    let items = vec![item; n].join(",");
    match dialect {
        Dialect::Chat => format!(r#"{{"choices":[{{"message":{{"tool_calls":[{items}]}}}}]}}"#),
        Dialect::Messages => format!(r#"{{"content":[{items}]}}"#),
        Dialect::Responses => format!(r#"{{"output":[{items}]}}"#),
    }
}

#[test]
fn an_answer_of_more_objects_or_values_than_the_bounds_is_not_replayed() {
    // Small objects are what a tree takes the most memory for: a 1 MiB list of them took
    // 200 MB, its events 100 MB more. The answer's own objects are three (Chat's choice and
    // message around its calls) or one.
    for dialect in [Dialect::Chat, Dialect::Messages, Dialect::Responses] {
        let outer = if dialect == Dialect::Chat { 3 } else { 1 };
        let at = list_of(dialect, MAX_OBJECTS - outer, "{}");
        assert!(events(dialect, at.as_bytes(), false).is_some(), "{dialect:?} at the bound");
        let over = list_of(dialect, MAX_OBJECTS - outer + 1, "{}");
        assert!(events(dialect, over.as_bytes(), false).is_none(), "{dialect:?} over the bound");
    }
    // Values of any kind are bounded too: here an object, two arrays and a comma before each
    // zero and the list, counted past a string of escapes.
    let zeros = |n: usize| format!(r#"{{"s":"\"\\","choices":[],"x":[{}]}}"#, vec!["0"; n].join(","));
    assert!(events(Dialect::Chat, zeros(MAX_VALUES - 4).as_bytes(), false).is_some());
    assert!(events(Dialect::Chat, zeros(MAX_VALUES - 3).as_bytes(), false).is_none());
    // What is inside strings is text, not values: a text of braces, commas, escaped quotes and
    // escaped backslashes (one right before the closing quote) is replayed.
    let text = format!(r#"{{"choices":[{{"message":{{"content":"{}"}}}}]}}"#, "{[,\\\"\\\\".repeat(120_000));
    assert!(text.len() <= MAX_BYTES && text.ends_with(r#"\\"}}]}"#));
    assert!(events(Dialect::Chat, text.as_bytes(), false).is_some());
}

#[test]
fn a_megabyte_of_log_probabilities_is_replayed() {
    // The largest real answer of many small objects: 2,450 tokens with five alternatives each
    // (14,700 objects, 132,000 values in 1 MiB), within the bounds.
    let token = |t: &str| json!({"token": t, "logprob": -0.1234567, "bytes": t.as_bytes()});
    let entry = {
        let mut e = token(" word");
        e["top_logprobs"] = json!([token(" word"), token(" other"), token(" thing"), token(" more"), token(" x")]);
        e
    };
    let answer = json!({"object": "chat.completion", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop",
        "logprobs": {"content": vec![entry; 2_450], "refusal": null}}]});
    let text = serde_json::to_vec(&answer).unwrap();
    assert!(text.len() > 1_000_000 && text.len() <= MAX_BYTES, "{}", text.len());
    let got = replayed(Dialect::Chat, &answer, false);
    assert_eq!(got[0].1["choices"][0]["logprobs"]["content"].as_array().unwrap().len(), 2_450);
}

#[test]
fn a_replay_whose_events_grow_past_the_bound_is_dropped() {
    // Few enough items, each repeated in four events (a call of 175 bytes makes 1.2 KB of
    // them): 5,500 calls, under 1 MiB, would make 6.8 MB.
    let call =
        format!(r#"{{"type":"function_call","id":"fc","call_id":"c","name":"f","arguments":"{}"}}"#, "x".repeat(100));
    let answer = |n| list_of(Dialect::Responses, n, &call);
    let out = events(Dialect::Responses, answer(1_000).as_bytes(), false).expect("replayed");
    assert!(out.len() * 11 / 2 > MAX_EVENTS_BYTES, "{}", out.len());
    assert!(answer(5_500).len() <= MAX_BYTES);
    assert!(events(Dialect::Responses, answer(5_500).as_bytes(), false).is_none());
    // One long text, the most a real answer repeats, stays under the bound.
    let text = format!(
        r#"{{"type":"message","id":"m","content":[{{"type":"output_text","text":"{}"}}]}}"#,
        "x".repeat(MAX_BYTES - 200)
    );
    let out = events(Dialect::Responses, list_of(Dialect::Responses, 1, &text).as_bytes(), false).expect("replayed");
    assert!(out.len() > 5 * (MAX_BYTES - 200), "{}", out.len());
}

#[test]
fn what_is_no_answer_is_none() {
    let dialects = [Dialect::Chat, Dialect::Messages, Dialect::Responses];
    for body in [&b""[..], b"[]", b"\"x\"", b"{", b"<html>", b"{}", br#"{"choices": 5, "content": "x", "output": {}}"#]
    {
        for dialect in dialects {
            assert!(events(dialect, body, true).is_none());
        }
    }
    // Odd members of an answer never panic.
    let odd = [
        &br#"{"choices": [1, {"message": 2}, {"message": {"tool_calls": [1, {"x": 1}]}}], "usage": 3}"#[..],
        br#"{"content": [1, "x", {"type": 5}, {"type": "text", "text": 7}, {"type": "tool_use"}], "usage": []}"#,
        br#"{"output": [1, {"type": "message", "content": 7}, {"type": "message", "content": [1, {"type": "output_text"}]}]}"#,
        br#"{"output": [{"type": "function_call", "arguments": {"a": 1}}], "status": 5}"#,
    ];
    for (body, dialect) in
        odd.into_iter().zip([Dialect::Chat, Dialect::Messages, Dialect::Responses, Dialect::Responses])
    {
        assert!(events(dialect, body, true).is_some(), "{}", String::from_utf8_lossy(body));
    }
}
