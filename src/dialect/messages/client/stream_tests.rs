//! Tests of the stream translator (`stream.rs`).
use super::*;
use crate::dialect::testing::{self, assert_split_invariant, feed_split};
use serde_json::{Value, json};

fn fixture(name: &str) -> Vec<u8> {
    testing::fixture(&format!("dialects/messages/{name}"))
}

fn translate(input: &[u8], splits: &[usize]) -> String {
    feed_split(&mut FromChat::new(), input, splits)
}

/// `(event name, data)` pairs; checks each event's name matches its data's `type`.
fn events(text: &str) -> Vec<(String, Value)> {
    assert!(text.ends_with("\n\n"), "{text}");
    text.split_terminator("\n\n")
        .map(|e| {
            let (name, data) = e.split_once('\n').unwrap();
            let name = name.strip_prefix("event: ").unwrap().to_owned();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name.as_str());
            (name, data)
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|e| e.0.as_str()).collect()
}

#[test]
fn text_stream() {
    let got = events(&translate(&fixture("chat-text.sse"), &[]));
    assert_eq!(
        names(&got),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(
        got[0].1["message"],
        json!({"id": "msg_chatcmpl-Bx7text", "type": "message", "role": "assistant", "model": "gpt-4o-mini-2024-07-18",
               "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 0, "output_tokens": 0}})
    );
    assert_eq!(got[2].1["content_block"], json!({"type": "text", "text": ""}));
    let text: String = got[3..6].iter().map(|e| e.1["delta"]["text"].as_str().unwrap()).collect();
    assert_eq!(text, "Hello! \"Quoted\"\nHow can I help?");
    assert!(got[2..7].iter().all(|e| e.1["index"] == 0));
    assert_eq!(
        got[7].1,
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"input_tokens": 7, "output_tokens": 10, "cache_read_input_tokens": 12}})
    );
}

#[test]
fn text_then_two_parallel_tool_calls() {
    let got = events(&translate(&fixture("chat-tools.sse"), &[]));
    assert_eq!(
        names(&got),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(got[3].1["delta"], json!({"type": "text_delta", "text": "Checking both."}));
    assert_eq!(
        got[5].1,
        json!({"type": "content_block_start", "index": 1,
               "content_block": {"type": "tool_use", "id": "call_paris", "name": "get_weather", "input": {}}})
    );
    assert_eq!(got[9].1["content_block"]["id"], "call_tokyo");
    assert_eq!(got[9].1["index"], 2);
    let args = |index: u64| -> String {
        got.iter()
            .filter(|e| e.1["index"] == index && e.1["delta"]["type"] == "input_json_delta")
            .map(|e| e.1["delta"]["partial_json"].as_str().unwrap())
            .collect()
    };
    assert_eq!(args(1), r#"{"city":"Paris"}"#);
    assert_eq!(args(2), r#"{"city":"Tokyo","unit":"c"}"#);
    assert_eq!(got[13].1, json!({"type": "content_block_stop", "index": 2}));
    assert_eq!(got[14].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(got[14].1["usage"], json!({"input_tokens": 80, "output_tokens": 31}));
}

#[test]
fn a_cut_stream_ends_with_an_error() {
    let mut t = FromChat::new();
    let mut out = Vec::new();
    t.feed(&fixture("chat-cut.sse"), &mut out);
    t.finish(&mut out);
    let got = events(std::str::from_utf8(&out).unwrap());
    assert_eq!(
        names(&got),
        ["message_start", "ping", "content_block_start", "content_block_delta", "content_block_delta", "error"]
    );
    assert_eq!(got[5].1["error"]["type"], "api_error");
    assert_eq!(t.tokens(), None);
    // Nothing after the error, not even from fail().
    let n = out.len();
    t.fail("upstream_timeout", "late", &mut out);
    t.feed(b"data: [DONE]\n\n", &mut out);
    assert_eq!(out.len(), n);
}

#[test]
fn upstream_error_chunk_and_fail() {
    let input = b"data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"error\":{\"message\":\"CUDA out of memory\",\"type\":\"server_error\"}}\n\ndata: [DONE]\n\n";
    let got = events(&translate(input, &[]));
    assert_eq!(got.last().unwrap().1["error"], json!({"type": "api_error", "message": "CUDA out of memory"}));
    assert_eq!(got.iter().filter(|e| e.0 == "message_stop").count(), 0);
    let got = events(&translate(b"data: {\"error\":\"model not found\"}\n\n", &[]));
    assert_eq!(names(&got), ["error"]);
    assert_eq!(got[0].1["error"]["message"], "model not found");
    let mut t = FromChat::new();
    let mut out = Vec::new();
    t.fail("overloaded_error", "queue full", &mut out);
    t.fail("other", "twice", &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"queue full\"}}\n\n"
    );
}

#[test]
fn finish_reason_without_done_usage_in_finish_chunk_and_no_tool_ids() {
    // llama.cpp-style: usage in the finish chunk; a server that omits index and id.
    let input = concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"reasoning_content\":\"hmm\"}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n",
    );
    let mut t = FromChat::new();
    let mut out = Vec::new();
    t.feed(input.as_bytes(), &mut out);
    t.finish(&mut out);
    let got = events(std::str::from_utf8(&out).unwrap());
    assert_eq!(
        names(&got),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let id = got[0].1["message"]["id"].as_str().unwrap();
    assert!(id.starts_with("msg_"));
    assert_eq!(got[2].1["content_block"]["id"], format!("toolu_{id}_0"));
    assert_eq!(got[5].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(t.tokens(), Some((5, 2)));
}

#[test]
fn interleaved_tool_arguments_are_an_error_not_a_corruption() {
    let call = |i: u64, id: &str, args: &str| {
        format!(
            "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"tool_calls\":[{{\"index\":{i},{id}\"function\":{{\"arguments\":\"{args}\"}}}}]}}}}]}}\n\n"
        )
    };
    let input = [call(0, "\"id\":\"a\",", "{"), call(1, "\"id\":\"b\",", "{}"), call(0, "", "}")].concat();
    let got = events(&translate(input.as_bytes(), &[]));
    assert_eq!(got.last().unwrap().0, "error");
}

/// Any split of the byte stream gives the same output: every split point, and many
/// random multi-way splits.
#[test]
fn output_does_not_depend_on_how_bytes_arrive() {
    for name in ["chat-text.sse", "chat-tools.sse", "chat-cut.sse"] {
        assert_split_invariant(name, &fixture(name), translate);
    }
}

/// A stream of nothing but `[DONE]` held no answer: an error, never a clean empty message.
#[test]
fn a_stream_without_a_chunk_is_an_error() {
    let mut t = FromChat::new();
    let mut out = Vec::new();
    t.feed(b": keep-alive\n\ndata: [DONE]\n\n", &mut out);
    t.finish(&mut out);
    let got = events(&String::from_utf8(out).unwrap());
    assert_eq!(names(&got), ["error"]);
    assert_eq!(got[0].1["error"]["message"], "the upstream's stream ended without an answer");
    assert_eq!(t.failure(), Some("the upstream's stream ended without an answer"));
}

/// Servers that number every tool call 0: a delta with an id of its own and a name is another
/// call, not more of the first one's arguments; a repeated id is the same call.
#[test]
fn a_new_id_on_the_same_index_is_another_call() {
    let input = testing::calls_on_one_index();
    let got = events(&translate(input.as_bytes(), &[]));
    let starts: Vec<&Value> =
        got.iter().filter(|e| e.0 == "content_block_start").map(|e| &e.1["content_block"]).collect();
    assert_eq!(starts.len(), 2, "{got:#?}");
    assert_eq!((&starts[0]["id"], &starts[0]["name"]), (&json!("call_A"), &json!("fa")));
    assert_eq!((&starts[1]["id"], &starts[1]["name"]), (&json!("call_B"), &json!("fb")));
    let args = |block: u64| -> String {
        got.iter()
            .filter(|e| e.0 == "content_block_delta" && e.1["index"] == block)
            .filter_map(|e| e.1["delta"]["partial_json"].as_str())
            .collect()
    };
    assert_eq!((args(0), args(1)), ("{\"a\":1}".to_owned(), "{\"b\":2}".to_owned()));
    assert_eq!(got.last().unwrap().0, "message_stop");
}

/// A call sent whole with its arguments as an object (as some servers do), and a stream that
/// ends at `[DONE]` with no finish reason or with `stop`: the input is the object's text, and
/// the message stops for `tool_use`, so that the client runs the tool.
#[test]
fn a_call_with_object_arguments_and_no_tool_reason_stops_for_tool_use() {
    for finish in ["", r#","finish_reason":"stop""#] {
        let input = format!(
            concat!(
                r#"data: {{"id":"c","choices":[{{"index":0,"delta":{{"tool_calls":[{{"index":0,"id":"call_1","#,
                r#""function":{{"name":"f","arguments":{{"a":"\u00e9","b":[1]}}}}}}]}}{}}}]}}"#,
                "\n\ndata: [DONE]\n\n"
            ),
            finish
        );
        let got = events(&translate(input.as_bytes(), &[]));
        let args: String = got.iter().filter_map(|e| e.1["delta"]["partial_json"].as_str()).collect();
        let args: Value = serde_json::from_str(&args).unwrap();
        assert_eq!(args, json!({"a": "é", "b": [1]}), "{got:#?}");
        let delta = got.iter().find(|e| e.0 == "message_delta").unwrap();
        assert_eq!(delta.1["delta"]["stop_reason"], "tool_use", "{finish}");
    }
    // Text alone keeps `end_turn`.
    let got = events(&translate(b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n", &[]));
    assert_eq!(got.iter().find(|e| e.0 == "message_delta").unwrap().1["delta"]["stop_reason"], "end_turn");
}
