//! Tests of the stream translator (`stream.rs`).
use serde_json::json;

use super::*;
use crate::dialect::testing::{self, assert_split_invariant, feed_split};

fn fixture(name: &str) -> Vec<u8> {
    testing::fixture(&format!("dialects/responses/{name}"))
}

fn echo() -> Echo {
    Echo::of_json(&json!({"model": "asked", "input": "hi", "tools": [{"type": "web_search"}]}))
}

/// A translator whose made-up ids and clock are fixed: two runs over the same input agree
/// (a stream without `created` would otherwise take the second it was read in).
fn translator() -> FromChat {
    let mut t = FromChat::new(echo());
    t.base = "t".into();
    t.created_at = 1_750_000_000;
    t
}

fn translate(input: &[u8], splits: &[usize]) -> String {
    feed_split(&mut translator(), input, splits)
}

/// `(event name, data)` per event; checks the name matches `type` and the sequence
/// numbers count up from 0.
fn events(text: &str) -> Vec<(String, Value)> {
    assert!(text.ends_with("\n\n"), "{text}");
    let got: Vec<(String, Value)> = text
        .split_terminator("\n\n")
        .map(|e| {
            let (name, data) = e.split_once('\n').unwrap();
            let name = name.strip_prefix("event: ").unwrap().to_owned();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name.as_str());
            (name, data)
        })
        .collect();
    for (n, (_, data)) in got.iter().enumerate() {
        assert_eq!(data["sequence_number"], n as u64, "{data}");
    }
    got
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|e| e.0.as_str()).collect()
}

fn response(status: &str, output: Value, usage: Value) -> Value {
    json!({
        "id": "resp_t", "object": "response", "created_at": 1_750_000_000u64, "status": status,
        "error": null, "incomplete_details": null, "model": "qwen3-coder-30b", "output": output, "usage": usage,
        "instructions": null, "max_output_tokens": null, "metadata": {}, "parallel_tool_calls": true,
        "store": false, "temperature": null, "tool_choice": "auto", "tools": [{"type": "web_search"}], "top_p": null
    })
}

#[test]
fn text_stream() {
    let got = events(&translate(&fixture("chat-stream-text.sse"), &[]));
    let data: Vec<Value> = got.into_iter().map(|(_, d)| d).collect();
    let msg = |status: &str, content: Value| json!({"type": "message", "id": "msg_t_0", "status": status, "role": "assistant", "content": content});
    let part = |text: &str| json!({"type": "output_text", "text": text, "annotations": []});
    let text = "Hello! Café time?";
    let usage = json!({"input_tokens": 12, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 19});
    let head = |kind: &str, n: u64| json!({"type": kind, "sequence_number": n, "item_id": "msg_t_0", "output_index": 0, "content_index": 0});
    let with = |mut v: Value, extra: Value| {
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        v
    };
    let want = vec![
        json!({"type": "response.created", "sequence_number": 0, "response": response("in_progress", json!([]), Value::Null)}),
        json!({"type": "response.in_progress", "sequence_number": 1, "response": response("in_progress", json!([]), Value::Null)}),
        json!({"type": "response.output_item.added", "sequence_number": 2, "output_index": 0, "item": msg("in_progress", json!([]))}),
        with(head("response.content_part.added", 3), json!({"part": part("")})),
        with(head("response.output_text.delta", 4), json!({"delta": "Hello", "logprobs": []})),
        with(head("response.output_text.delta", 5), json!({"delta": "! Café time?", "logprobs": []})),
        with(head("response.output_text.done", 6), json!({"text": text, "logprobs": []})),
        with(head("response.content_part.done", 7), json!({"part": part(text)})),
        json!({"type": "response.output_item.done", "sequence_number": 8, "output_index": 0, "item": msg("completed", json!([part(text)]))}),
        json!({"type": "response.completed", "sequence_number": 9,
            "response": response("completed", json!([msg("completed", json!([part(text)]))]), usage)}),
    ];
    assert_eq!(data, want);
    let mut t = translator();
    t.feed(&fixture("chat-stream-text.sse"), &mut Vec::new());
    assert_eq!(t.tokens(), Some((12, 7)));
}

#[test]
fn parallel_tool_calls_streamed_in_pieces() {
    let got = events(&translate(&fixture("chat-stream-tools.sse"), &[]));
    assert_eq!(
        names(&got),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let paris = json!({"type": "function_call", "id": "fc_t_1", "call_id": "call_p", "name": "get_weather",
        "arguments": "{\"city\": \"Paris\"}", "status": "completed"});
    let tokyo = json!({"type": "function_call", "id": "fc_t_2", "call_id": "call_t", "name": "get_weather",
        "arguments": "{\"city\": \"Tokyo\"}", "status": "completed"});
    assert_eq!(
        got[8].1["item"],
        json!({"type": "function_call", "id": "fc_t_1", "call_id": "call_p",
        "name": "get_weather", "arguments": "", "status": "in_progress"})
    );
    assert_eq!(got[9].1["item_id"], "fc_t_1");
    assert_eq!(got[9].1["delta"], "{\"city\"");
    assert_eq!(got[12].1["arguments"], "{\"city\": \"Paris\"}");
    assert_eq!(got[13].1["item"], paris);
    assert_eq!(got[15].1["output_index"], 2);
    assert_eq!(got[18].1["item"], tokyo);
    let resp = &got[19].1["response"];
    assert_eq!(resp["status"], "completed");
    assert_eq!(resp["output"].as_array().unwrap().len(), 3);
    assert_eq!(resp["output"][0]["content"][0]["text"], "Checking both.");
    assert_eq!((&resp["output"][1], &resp["output"][2]), (&paris, &tokyo));
    assert_eq!(resp["usage"]["total_tokens"], 130);
}

#[test]
fn a_stream_cut_midway_fails() {
    let text = fixture("chat-stream-text.sse");
    let cut = &text[..text.len() / 2];
    let got = events(&translate(cut, &[]));
    assert_eq!(
        names(&got),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.failed",
        ]
    );
    let resp = &got[5].1["response"];
    assert_eq!(resp["status"], "failed");
    assert_eq!(resp["error"]["code"], "upstream_stream_incomplete");
    assert_eq!(resp["output"][0]["status"], "incomplete");
    assert_eq!(resp["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(resp["usage"], Value::Null);
}

#[test]
fn an_upstream_error_chunk_fails_and_ends_the_stream() {
    let got = events(&translate(&fixture("chat-stream-error.sse"), &[]));
    assert_eq!(
        names(&got),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.failed",
        ]
    );
    let resp = &got[5].1["response"];
    assert_eq!(resp["status"], "failed");
    assert_eq!(
        resp["error"],
        json!({"code": "context_length_exceeded", "message": "the request exceeds the available context size"})
    );
}

#[test]
fn fail_finish_and_done_send_one_terminal_event() {
    // fail() before any chunk: created first (the SDK helper wants it), then failed.
    let mut t = translator();
    let mut out = Vec::new();
    t.fail("upstream_timeout", "the upstream went silent", &mut out);
    t.fail("again", "x", &mut out);
    t.finish(&mut out);
    t.feed(b"data: [DONE]\n\n", &mut out);
    let got = events(&String::from_utf8(out).unwrap());
    assert_eq!(names(&got), ["response.created", "response.in_progress", "response.failed"]);
    assert_eq!(got[2].1["response"]["error"]["message"], "the upstream went silent");
    assert_eq!(got[2].1["response"]["model"], "asked");

    // A finish_reason then the end without [DONE]: complete; `length` makes it incomplete.
    let input = b"data: {\"model\":\"m\",\"created\":1,\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ab\"},\"finish_reason\":\"length\"}]}\n\n";
    let got = events(&translate(input, &[]));
    let last = got.last().unwrap();
    assert_eq!(last.0, "response.incomplete");
    assert_eq!(last.1["response"]["status"], "incomplete");
    assert_eq!(last.1["response"]["incomplete_details"], json!({"reason": "max_output_tokens"}));
    assert_eq!(last.1["response"]["output"][0]["status"], "incomplete");
    assert_eq!(got[got.len() - 2].1["item"]["status"], "incomplete");

    // Not JSON.
    let got = events(&translate(b"data: {\"choices\":[\n\n", &[]));
    assert_eq!(got.last().unwrap().1["response"]["error"]["code"], "upstream_bad_chunk");
}

#[test]
fn calls_without_index_are_told_apart_by_id() {
    let input = concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"b\",\"function\":{\"name\":\"g\",\"arguments\":\"{\\\"x\\\":1}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
        "data: [DONE]\n\n"
    );
    let got = events(&translate(input.as_bytes(), &[]));
    let output = &got.last().unwrap().1["response"]["output"];
    assert_eq!(output[0]["call_id"], "a");
    assert_eq!(output[1]["call_id"], "b");
    assert_eq!(output[1]["name"], "g");
    assert_eq!(output[1]["arguments"], "{\"x\":1}");
}

/// Any split of the byte stream gives the same output: every split point for pairs, and
/// many random multi-way splits.
#[test]
fn output_does_not_depend_on_how_bytes_arrive() {
    for name in ["chat-stream-text.sse", "chat-stream-tools.sse", "chat-stream-error.sse"] {
        assert_split_invariant(name, &fixture(name), translate);
    }
}

/// Odd usage costs the count it is in, never the stream: the same reading as a whole answer's.
#[test]
fn odd_usage_is_read_count_by_count() {
    let stream = |usage: &str| {
        format!(
            "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"hi\"}},\"finish_reason\":\"stop\"}}]}}\n\n\
             data: {{\"choices\":[],\"usage\":{usage}}}\n\ndata: [DONE]\n\n"
        )
    };
    let last = |usage: &str| events(&translate(stream(usage).as_bytes(), &[])).pop().unwrap();
    let odd = r#"{"prompt_tokens":"5","completion_tokens":3.0,"total_tokens":-1,"prompt_tokens_details":5,"completion_tokens_details":[2]}"#;
    let (name, data) = last(odd);
    assert_eq!(name, "response.completed", "{data}");
    assert_eq!(
        data["response"]["usage"],
        json!({"input_tokens": 0, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 3,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 3})
    );
    // Of a count written twice the last counts, as in a whole answer and the access log.
    let (name, data) = last(r#"{"prompt_tokens":5,"completion_tokens":3,"prompt_tokens":6}"#);
    assert_eq!((name.as_str(), &data["response"]["usage"]["input_tokens"]), ("response.completed", &json!(6)));
    let (name, data) = last(r#"{"prompt_tokens_details":{"cached_tokens":1,"cached_tokens":2},"prompt_tokens":5}"#);
    let usage = &data["response"]["usage"];
    assert_eq!(
        (name.as_str(), &usage["input_tokens"], &usage["input_tokens_details"]["cached_tokens"]),
        ("response.completed", &json!(5), &json!(2))
    );
    for none in [r#""5""#, "7", "null", "[5,3]"] {
        let (name, data) = last(none);
        assert_eq!((name.as_str(), &data["response"]["usage"]), ("response.completed", &Value::Null), "{none}");
    }
}

/// A stream of nothing but `[DONE]` held no answer: `response.failed`, never a clean empty
/// Response.
#[test]
fn a_stream_without_a_chunk_fails() {
    let mut t = translator();
    let mut out = Vec::new();
    t.feed(b"data: [DONE]\n\n", &mut out);
    t.finish(&mut out);
    let got = events(&String::from_utf8(out).unwrap());
    assert_eq!(names(&got), ["response.created", "response.in_progress", "response.failed"]);
    assert_eq!(got[2].1["response"]["error"]["code"], "upstream_stream_incomplete");
    assert_eq!(t.failure(), Some("the upstream's stream ended without an answer"));
}

/// Output past the bound ends the stream at the chunk that crossed it, even when the rest of
/// the answer and `[DONE]` came in the same read: no Response repeats more than the bound.
#[test]
fn output_past_the_bound_fails_at_the_chunk_that_crossed_it() {
    let mut t = translator();
    // The kept output's bound alone (`limit_events` also bounds each event's size).
    t.limit = 64;
    let chunk =
        |text: &str| format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}}}}]}}\n\n");
    let stream = [chunk("short"), chunk(&"x".repeat(60)), chunk("more"), "data: [DONE]\n\n".to_owned()].concat();
    let mut out = Vec::new();
    t.feed(stream.as_bytes(), &mut out);
    t.finish(&mut out);
    let got = events(&String::from_utf8(out).unwrap());
    let deltas: Vec<&Value> =
        got.iter().filter(|e| e.0 == "response.output_text.delta").map(|e| &e.1["delta"]).collect();
    assert_eq!(deltas, [&json!("short"), &json!("x".repeat(60))]);
    assert_eq!(got.last().unwrap().0, "response.failed");
    assert_eq!(got.last().unwrap().1["response"]["error"]["code"], "upstream_output_too_large");
    assert!(got.iter().all(|e| e.0 != "response.completed"));
}

/// Servers that number every tool call 0: a delta with an id of its own and a name is another
/// call, not more of the first one's arguments; a repeated id is the same call.
#[test]
fn a_new_id_on_the_same_index_is_another_call() {
    let input = testing::calls_on_one_index();
    assert_split_invariant("same index", input.as_bytes(), translate);
    let got = events(&translate(input.as_bytes(), &[]));
    let output = &got.last().unwrap().1["response"]["output"];
    assert_eq!(output.as_array().map(Vec::len), Some(2), "{output}");
    assert_eq!(
        (&output[0]["call_id"], &output[0]["name"], &output[0]["arguments"]),
        (&json!("call_A"), &json!("fa"), &json!("{\"a\":1}"))
    );
    assert_eq!(
        (&output[1]["call_id"], &output[1]["name"], &output[1]["arguments"]),
        (&json!("call_B"), &json!("fb"), &json!("{\"b\":2}"))
    );
}

/// A call sent whole with its arguments as an object (as some servers do): the arguments are
/// the object's JSON text, never a stream chunk that is not valid.
#[test]
fn arguments_sent_as_an_object_are_its_text() {
    let input = concat!(
        r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","#,
        r#""function":{"name":"f","arguments":{"a":"\u00e9","b":[1]}}}]},"finish_reason":"tool_calls"}]}"#,
        "\n\ndata: [DONE]\n\n"
    );
    let got = events(&translate(input.as_bytes(), &[]));
    let output = &got.last().unwrap().1["response"]["output"];
    let args: Value = serde_json::from_str(output[0]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"a": "é", "b": [1]}), "{got:#?}");
    assert_eq!(got.last().unwrap().0, "response.completed");
}

/// Only choice 0 is the answer, wherever it is in the list (n > 1 is never asked for); a list
/// with an element that is no choice is no chunk.
#[test]
fn only_choice_zero_counts() {
    let stream = |choices: &str| {
        let text = format!(
            "data: {{\"choices\":{choices}}}\n\ndata: {{\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\ndata: [DONE]\n\n"
        );
        events(&translate(text.as_bytes(), &[])).pop().unwrap()
    };
    let (name, data) = stream(
        r#"[{"index":1,"delta":{"content":"other"}},{"index":0,"delta":{"content":"hi"}},{"index":0,"delta":{"content":"again"}}]"#,
    );
    assert_eq!(name, "response.completed");
    assert_eq!(data["response"]["output"][0]["content"][0]["text"], "hi");
    let (name, data) = stream(r#"[{"index":0,"delta":{"content":"hi"}},7]"#);
    assert_eq!((name.as_str(), &data["response"]["error"]["code"]), ("response.failed", &json!("upstream_bad_chunk")));
}

/// Text and arguments with escapes (kept escaped as the upstream wrote them, never unescaped
/// and escaped again) read back as the same strings in every event that repeats them.
#[test]
fn escaped_text_and_arguments_read_back_whole() {
    let chunk = |delta: &str| format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{delta}}}]}}\n\n");
    let input = [
        chunk(r#"{"content":"line\n\"q\" \u00e9"}"#),
        chunk(r#"{"content":" \ud83d\ude00\\"}"#),
        chunk(r#"{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":"{\"a\":\"\\n\"}"}}]}"#),
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n".into(),
    ]
    .concat();
    let got = events(&translate(input.as_bytes(), &[]));
    let text = "line\n\"q\" é 😀\\";
    let deltas: String =
        got.iter().filter(|e| e.0 == "response.output_text.delta").map(|e| e.1["delta"].as_str().unwrap()).collect();
    assert_eq!(deltas, text);
    let done = got.iter().find(|e| e.0 == "response.output_text.done").unwrap();
    assert_eq!(done.1["text"], text);
    let (name, last) = got.last().unwrap();
    assert_eq!(name, "response.completed");
    assert_eq!(last["response"]["output"][0]["content"][0]["text"], text);
    assert_eq!(last["response"]["output"][1]["arguments"], "{\"a\":\"\\n\"}");
}
