//! A whole answer replayed as the events of a stream, for an upstream that answered a streaming
//! request with JSON (some servers ignore `stream`): a client that asked for events gets them,
//! in its dialect, with everything the answer held. Rare, so it works on a JSON tree.

use serde_json::{Value, json};

use super::{Dialect, event_head};

/// The largest answer replayed: a JSON tree and its events take many times the answer's size,
/// so a larger one goes to the client as the JSON it is.
pub const MAX_BYTES: usize = 1 << 20;

/// The most objects an answer replayed may hold. Bytes alone do not bound the tree: each
/// object with a member takes a map node of about 600 bytes, so a 1 MiB list of small objects
/// took 200 MB, and its events 100 MB more. Real answers hold tens; one with log probabilities
/// six a token (five alternatives): 14,700 in 1 MiB of them.
const MAX_OBJECTS: usize = 20_000;

/// The most values an answer replayed may hold, counted as its objects and arrays and its
/// commas (each begins another value): 32 bytes each in the tree, and each list item brings
/// events of its own. 1 MiB of log probabilities holds 132,000.
const MAX_VALUES: usize = 200_000;

/// The most bytes of events a replay writes. Each list item brings events that repeat it (the
/// Responses events carry a text five times over), so a 1 MiB answer of many small items made
/// 100 MB; one long text, the largest a real answer makes, makes 5 MiB.
const MAX_EVENTS_BYTES: usize = 6 << 20;

/// The events of `answer`, a whole answer in `dialect` (`usage`: a Chat client asked for the
/// usage chunk). `None` when it is larger than [`MAX_BYTES`], [`MAX_OBJECTS`] or
/// [`MAX_VALUES`], when its events would be larger than [`MAX_EVENTS_BYTES`], or when it is no
/// answer: not a JSON object with the list an answer holds (`choices`, `content`, `output`).
pub fn events(dialect: Dialect, answer: &[u8], usage: bool) -> Option<Vec<u8>> {
    if answer.len() > MAX_BYTES || !few_values(answer) {
        return None;
    }
    let list = match dialect {
        Dialect::Chat => "choices",
        Dialect::Messages => "content",
        Dialect::Responses => "output",
    };
    let parsed = serde_json::from_slice::<Value>(answer).ok().filter(|a| a[list].is_array())?;
    let mut out = Vec::with_capacity(answer.len() * 2 + 512);
    match dialect {
        Dialect::Chat => chat(parsed, usage, &mut out),
        Dialect::Messages => messages(parsed, &mut out),
        Dialect::Responses => responses(parsed, &mut out),
    }
    (out.len() <= MAX_EVENTS_BYTES).then_some(out)
}

/// At most [`MAX_OBJECTS`] objects and [`MAX_VALUES`] values, counted outside strings before
/// a tree is built (the same string scan as [`crate::upstream::scan::JsonEnd`]'s, which
/// watches a body go by instead). Text that is not JSON is counted as it comes; the parse
/// rejects it after.
fn few_values(text: &[u8]) -> bool {
    let (mut objects, mut arrays, mut commas) = (0, 0, 0);
    let (mut in_string, mut escaped) = (false, false);
    for &b in text {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' => objects += 1,
            b'[' => arrays += 1,
            b',' => commas += 1,
            _ => {}
        }
    }
    objects <= MAX_OBJECTS && objects + arrays + commas <= MAX_VALUES
}

/// Events stop being written once past [`MAX_EVENTS_BYTES`] (the replay is then dropped).
fn full(out: &[u8]) -> bool {
    out.len() > MAX_EVENTS_BYTES
}

fn data(out: &mut Vec<u8>, value: &Value) {
    if full(out) {
        return;
    }
    out.extend_from_slice(b"data: ");
    let _ = serde_json::to_writer(&mut *out, value);
    out.extend_from_slice(b"\n\n");
}

/// `event: <kind>` with data `{"type":"<kind>", …fields}`.
fn event(out: &mut Vec<u8>, kind: &str, fields: Value) {
    if full(out) {
        return;
    }
    event_head(out, kind);
    if let Value::Object(fields) = fields
        && !fields.is_empty()
    {
        let text = serde_json::to_vec(&fields).unwrap_or_default();
        out.push(b',');
        out.extend_from_slice(&text[1..]);
    } else {
        out.push(b'}');
    }
    out.extend_from_slice(b"\n\n");
}

/// One chunk with each choice's message as its delta (tool calls numbered), the usage chunk,
/// `[DONE]`. A legacy text completion is its own chunk.
fn chat(mut answer: Value, usage: bool, out: &mut Vec<u8>) {
    let counts = answer.as_object_mut().and_then(|a| a.remove("usage"));
    if answer["object"] == "chat.completion" {
        answer["object"] = "chat.completion.chunk".into();
    }
    // Members are reached with `get_mut`: indexing would add missing ones, and panics on
    // what is not an object.
    for choice in answer.get_mut("choices").and_then(Value::as_array_mut).into_iter().flatten() {
        let Some(choice) = choice.as_object_mut() else { continue };
        let Some(mut delta) = choice.remove("message") else { continue };
        let calls = delta.get_mut("tool_calls").and_then(Value::as_array_mut);
        for (i, call) in calls.into_iter().flatten().enumerate() {
            if call.is_object() {
                call["index"] = i.into();
            }
        }
        choice.insert("delta".into(), delta);
    }
    data(out, &answer);
    if let Some(counts) = counts.filter(|c| usage && !c.is_null()) {
        let mut last = json!({"choices": [], "usage": counts});
        for key in ["id", "object", "created", "model"] {
            last[key] = answer[key].clone();
        }
        data(out, &last);
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
}

/// Anthropic's events: `message_start`, each block started, its content as one delta, and
/// stopped, `message_delta` (stop reason, usage), `message_stop`.
fn messages(mut message: Value, out: &mut Vec<u8>) {
    let blocks = std::mem::replace(&mut message["content"], json!([]));
    let stop = json!({"stop_reason": message["stop_reason"].take(), "stop_sequence": message["stop_sequence"].take()});
    let usage = message["usage"].clone();
    event(out, "message_start", json!({ "message": message }));
    let blocks = blocks.as_array().into_iter().flatten().filter(|b| b.is_object()).cloned();
    for (index, mut block) in blocks.enumerate() {
        if full(out) {
            return;
        }
        // The block as it starts (its content empty), and its content as a delta.
        let delta = match block["type"].as_str() {
            Some("text") => Some(json!({"type": "text_delta", "text": block["text"].take()})),
            Some("thinking") => Some(json!({"type": "thinking_delta", "thinking": block["thinking"].take()})),
            Some("tool_use" | "server_tool_use") => {
                let input = match std::mem::replace(&mut block["input"], json!({})) {
                    Value::Null => "{}".to_owned(),
                    input => input.to_string(),
                };
                Some(json!({"type": "input_json_delta", "partial_json": input}))
            }
            _ => None,
        };
        let signature = (block["type"] == "thinking").then(|| block["signature"].take()).filter(Value::is_string);
        match block["type"].as_str() {
            Some("text") => block["text"] = "".into(),
            Some("thinking") => block["thinking"] = "".into(),
            _ => {}
        }
        event(out, "content_block_start", json!({"index": index, "content_block": block}));
        if let Some(delta) = delta {
            event(out, "content_block_delta", json!({"index": index, "delta": delta}));
        }
        if let Some(signature) = signature {
            let delta = json!({"type": "signature_delta", "signature": signature});
            event(out, "content_block_delta", json!({"index": index, "delta": delta}));
        }
        event(out, "content_block_stop", json!({ "index": index }));
    }
    event(out, "message_delta", json!({"delta": stop, "usage": usage}));
    event(out, "message_stop", json!({}));
}

/// The Responses events: created and in progress, each output item added, its content or
/// arguments as one delta, and done, then completed (or incomplete, or failed, as the
/// response's status says).
fn responses(mut response: Value, out: &mut Vec<u8>) {
    let mut sequence = 0u64;
    let mut emit = |out: &mut Vec<u8>, kind: &str, mut fields: Value| {
        fields["sequence_number"] = sequence.into();
        sequence += 1;
        event(out, kind, fields);
    };
    // The response as it starts: nothing out yet, nothing counted (its output is set aside
    // rather than copied).
    let output = response["output"].take();
    let mut started = response.clone();
    response["output"] = output;
    started["status"] = "in_progress".into();
    started["output"] = json!([]);
    started["usage"] = Value::Null;
    emit(out, "response.created", json!({ "response": started }));
    emit(out, "response.in_progress", json!({ "response": started }));
    let items = response["output"].as_array().into_iter().flatten().filter(|item| item.is_object());
    for (i, item) in items.enumerate() {
        if full(out) {
            return;
        }
        let id = item["id"].clone();
        let mut added = item.clone();
        added["status"] = "in_progress".into();
        match item["type"].as_str() {
            Some("message") => added["content"] = json!([]),
            Some("function_call") => added["arguments"] = "".into(),
            _ => {}
        }
        emit(out, "response.output_item.added", json!({"output_index": i, "item": added}));
        if item["type"] == "message" {
            for (j, part) in item["content"].as_array().into_iter().flatten().enumerate() {
                let at = json!({"item_id": id, "output_index": i, "content_index": j});
                let mut empty = part.clone();
                if part["type"] == "output_text" {
                    empty["text"] = "".into();
                }
                emit(out, "response.content_part.added", with(at.clone(), json!({ "part": empty })));
                if part["type"] == "output_text" {
                    let text = &part["text"];
                    emit(out, "response.output_text.delta", with(at.clone(), json!({"delta": text, "logprobs": []})));
                    emit(out, "response.output_text.done", with(at.clone(), json!({"text": text, "logprobs": []})));
                }
                emit(out, "response.content_part.done", with(at, json!({ "part": part })));
            }
        }
        if item["type"] == "function_call" {
            let arguments = &item["arguments"];
            let at = json!({"item_id": id, "output_index": i});
            emit(out, "response.function_call_arguments.delta", with(at.clone(), json!({ "delta": arguments })));
            emit(out, "response.function_call_arguments.done", with(at, json!({ "arguments": arguments })));
        }
        emit(out, "response.output_item.done", json!({"output_index": i, "item": item}));
    }
    let last = match response["status"].as_str() {
        Some("incomplete") => "response.incomplete",
        Some("failed") => "response.failed",
        _ => "response.completed",
    };
    emit(out, last, json!({ "response": response }));
}

/// `fields` with `extra`'s members added.
fn with(mut fields: Value, extra: Value) -> Value {
    if let (Some(f), Value::Object(extra)) = (fields.as_object_mut(), extra) {
        f.extend(extra);
    }
    fields
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;
