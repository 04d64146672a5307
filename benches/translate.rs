//! Stream translators, per event: Anthropic SSE → Chat SSE (goal ≤ 1 µs per event), and Chat
//! SSE → Anthropic Messages SSE and → Responses SSE (the new client dialects); the requests
//! translated for Anthropic, and the Responses dialect's request and whole answer.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use llm_gateway::dialect::StreamTranslator;
use llm_gateway::dialect::messages::client::stream::FromChat as MessagesFromChat;
use llm_gateway::dialect::messages::upstream::request::Asked;
use llm_gateway::dialect::messages::upstream::stream::ToChat;
use llm_gateway::dialect::responses::response::Echo;
use llm_gateway::dialect::responses::stream::FromChat as ResponsesFromChat;

#[path = "common/requests.rs"]
mod requests;
use requests::{ANTHROPIC_REQUEST, REQUEST, RESPONSES_REQUEST};

/// A 200-event stream: start, a text block of 195 deltas, its stop, message delta and stop.
fn stream() -> Vec<u8> {
    let mut s = String::new();
    s.push_str("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_bench\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-20250514\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n");
    s.push_str("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
    for i in 0..195 {
        s.push_str(&format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"token {i} \"}}}}\n\n"));
    }
    s.push_str("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n");
    s.push_str("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":195}}\n\n");
    s.push_str("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    s.into_bytes()
}

/// A 200-event Chat stream: a role chunk, 197 content deltas, the finish chunk and usage.
fn chat_stream() -> Vec<u8> {
    let head = r#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"llama3","choices":[{"index":0,"delta":"#;
    let mut s = format!("{head}{{\"role\":\"assistant\",\"content\":\"\"}},\"finish_reason\":null}}]}}\n\n");
    for i in 0..197 {
        s.push_str(&format!("{head}{{\"content\":\"token {i} \"}},\"finish_reason\":null}}]}}\n\n"));
    }
    s.push_str(&format!("{head}{{}},\"finish_reason\":\"stop\"}}]}}\n\n"));
    s.push_str(r#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"llama3","choices":[],"usage":{"prompt_tokens":25,"completion_tokens":197,"total_tokens":222}}"#);
    s.push_str("\n\ndata: [DONE]\n\n");
    s.into_bytes()
}

/// Feeds the whole stream at once, as a burst arrives.
fn run(t: &mut dyn StreamTranslator, input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() * 2);
    t.feed(input, &mut out);
    t.finish(&mut out);
    out
}

fn chat_out(c: &mut Criterion) {
    let input = chat_stream();
    assert_eq!(input.windows(2).filter(|w| w == b"\n\n").count(), 201);
    let mut group = c.benchmark_group("chat_stream_to_client");
    group.throughput(Throughput::Elements(200));
    group.bench_function("messages_200_events", |b| b.iter(|| run(&mut MessagesFromChat::new(), &input)));
    group.bench_function("responses_200_events", |b| {
        b.iter(|| run(&mut ResponsesFromChat::new(Echo::default()), &input))
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let input = stream();
    assert_eq!(input.windows(2).filter(|w| w == b"\n\n").count(), 200);
    let asked = Asked { stream: true, include_usage: true };
    let mut group = c.benchmark_group("anthropic_stream");
    group.throughput(Throughput::Elements(200));
    group.bench_function("translate_200_events_at_once", |b| {
        b.iter(|| {
            let mut t = ToChat::new(&asked);
            let mut out = Vec::with_capacity(input.len() * 2);
            t.feed(&input, &mut out);
            t.finish(&mut out);
            out
        })
    });
    let events: Vec<&[u8]> = input.split_inclusive(|&b| b == b'\n').collect();
    group.bench_function("translate_200_events_line_by_line", |b| {
        b.iter(|| {
            let mut t = ToChat::new(&asked);
            let mut out = Vec::with_capacity(input.len() * 2);
            for line in &events {
                t.feed(line, &mut out);
            }
            t.finish(&mut out);
            out
        })
    });
    group.finish();
    // The request side, on the overhead harness's streamed chat request.
    let body = br#"{"model":"claude-sonnet-4-20250514","messages":[{"role":"system","content":"You are a helpful assistant that answers briefly."},{"role":"user","content":"Give me three facts about the Rust programming language and its memory model, please."}],"max_tokens":64,"stream":true}"#;
    c.bench_function("anthropic_request/translate_streamed_chat", |b| {
        b.iter(|| {
            llm_gateway::dialect::messages::upstream::request::translate(body, "claude-sonnet-4-20250514").unwrap()
        })
    });
    // An agent's request: 20 tools with JSON-schema parameters and an 18-message history (25 KB).
    let big = agent_request();
    c.bench_function("anthropic_request/translate_agent_20_tools", |b| {
        b.iter(|| {
            llm_gateway::dialect::messages::upstream::request::translate(&big, "claude-sonnet-4-20250514").unwrap()
        })
    });
}

fn agent_request() -> Vec<u8> {
    let tool = |i: usize| {
        serde_json::json!({"type": "function", "function": {"name": format!("tool_{i}"),
            "description": "Reads a file from the workspace and returns its contents with line numbers. ".repeat(3),
            "parameters": {"type": "object", "required": ["path"], "properties": {
                "path": {"type": "string", "description": "The absolute path of the file to read."},
                "offset": {"type": "integer", "description": "The line to start reading from.", "minimum": 0},
                "limit": {"type": "integer", "description": "How many lines to read.", "minimum": 1},
                "mode": {"type": "string", "enum": ["text", "binary", "auto"]}}}}})
    };
    let mut messages = vec![serde_json::json!({"role": "system", "content": "You are a coding agent. ".repeat(40)})];
    for turn in 0..6 {
        messages.push(serde_json::json!({"role": "user", "content": format!("Step {turn}: {}", "please look at the code and fix the failing test. ".repeat(12))}));
        messages.push(serde_json::json!({"role": "assistant", "content": "Reading the file.", "tool_calls": [
            {"id": format!("call_{turn}"), "type": "function", "function": {"name": "tool_1", "arguments": "{\"path\":\"/src/main.rs\",\"limit\":200}"}}]}));
        messages.push(serde_json::json!({"role": "tool", "tool_call_id": format!("call_{turn}"), "content": "fn main() {\n    println!(\"hello\");\n}\n".repeat(20)}));
    }
    serde_json::to_vec(&serde_json::json!({"model": "gpt-4o", "messages": messages, "tools": (0..20).map(tool).collect::<Vec<_>>(), "stream": true})).unwrap()
}

/// A Messages client (Claude Code) on a Chat upstream: its request, and the whole answer.
fn messages_client(c: &mut Criterion) {
    let request = claude_agent_request();
    c.bench_function("messages_request/to_chat_agent_20_tools", |b| b.iter(|| messages_to_chat(&request)));
    let small = br#"{"model":"claude-sonnet-4-20250514","max_tokens":64,"system":"You are a helpful assistant that answers briefly.","messages":[{"role":"user","content":"Give me three facts about the Rust programming language and its memory model, please."}]}"#;
    c.bench_function("messages_request/to_chat_small", |b| b.iter(|| messages_to_chat(small)));
    let answer =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/dialects/responses/chat-completion-tools.json"))
            .unwrap();
    c.bench_function("messages_answer/from_chat_tools", |b| b.iter(|| messages_from_chat(&answer)));
}

fn messages_to_chat(body: &[u8]) -> Vec<u8> {
    llm_gateway::dialect::messages::client::request::to_chat(body, "qwen3-coder", false).unwrap()
}

fn messages_from_chat(body: &[u8]) -> Vec<u8> {
    llm_gateway::dialect::messages::client::response::from_chat(body).unwrap()
}

/// The Messages form of [`agent_request`]: 20 tools, a system prompt, six turns of a tool call
/// and its result (25 KB).
fn claude_agent_request() -> Vec<u8> {
    let tool = |i: usize| {
        serde_json::json!({"name": format!("tool_{i}"),
            "description": "Reads a file from the workspace and returns its contents with line numbers. ".repeat(3),
            "input_schema": {"type": "object", "required": ["path"], "properties": {
                "path": {"type": "string", "description": "The absolute path of the file to read."},
                "offset": {"type": "integer", "description": "The line to start reading from.", "minimum": 0},
                "limit": {"type": "integer", "description": "How many lines to read.", "minimum": 1},
                "mode": {"type": "string", "enum": ["text", "binary", "auto"]}}}})
    };
    let mut messages = Vec::new();
    for turn in 0..6 {
        let text = format!("Step {turn}: {}", "please look at the code and fix the failing test. ".repeat(12));
        let mut user = vec![serde_json::json!({"type": "text", "text": text})];
        if turn > 0 {
            let result = "fn main() {\n    println!(\"hello\");\n}\n".repeat(20);
            user.insert(0, serde_json::json!({"type": "tool_result", "tool_use_id": format!("toolu_{}", turn - 1), "content": result}));
        }
        messages.push(serde_json::json!({"role": "user", "content": user}));
        messages.push(serde_json::json!({"role": "assistant", "content": [
            {"type": "text", "text": "Reading the file."},
            {"type": "tool_use", "id": format!("toolu_{turn}"), "name": "tool_1", "input": {"path": "/src/main.rs", "limit": 200}}]}));
    }
    messages.push(serde_json::json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_5", "content": "done"}]}));
    let system = [serde_json::json!({"type": "text", "text": "You are a coding agent. ".repeat(40)})];
    let tools: Vec<_> = (0..20).map(tool).collect();
    serde_json::to_vec(&serde_json::json!({"model": "claude-sonnet-4-5", "max_tokens": 32000, "system": system,
        "messages": messages, "tools": tools, "stream": true}))
    .unwrap()
}

/// A Codex turn as Codex sends it (the fixture's shape): long instructions, 10 tools (8
/// function tools with schemas, a namespace, a hosted and a custom tool), and a history of 81
/// items (messages, reasoning, parallel calls and their outputs): about 60 KB.
fn codex_request() -> Vec<u8> {
    use serde_json::json;
    let tool = |i: usize| {
        json!({"type": "function", "name": format!("tool_{i}"), "strict": false,
            "description": "Runs a shell command in the workspace and returns its output. ".repeat(4),
            "parameters": {"type": "object", "required": ["command"], "additionalProperties": false, "properties": {
                "command": {"type": "array", "items": {"type": "string"}, "description": "The command and its arguments."},
                "workdir": {"type": "string", "description": "The working directory."},
                "timeout_ms": {"type": "integer", "description": "How long to wait.", "minimum": 0},
                "with_escalated_permissions": {"type": "boolean"}}}})
    };
    let mut tools: Vec<_> = (0..8).map(tool).collect();
    tools.push(json!({"type": "namespace", "name": "mcp__docs", "tools": []}));
    tools.push(json!({"type": "web_search"}));
    tools.push(json!({"type": "custom", "name": "apply_patch", "description": "Patches files.",
        "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch hunk+ end_patch"}}));
    let mut input = vec![
        json!({"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "<permissions instructions>sandbox: workspace-write</permissions instructions>"}]}),
        json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "<environment_context>\n  <cwd>/home/dev/app</cwd>\n</environment_context>"}]}),
    ];
    for turn in 0..8 {
        input.push(json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": format!("Step {turn}: {}", "please look at the code and fix the failing test. ".repeat(6))}]}));
        input.push(json!({"type": "reasoning", "id": format!("rs_{turn}"), "summary": [], "content": null, "encrypted_content": "gAAAAB".repeat(60)}));
        input.push(json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Looking at the files."}]}));
        for call in 0..3 {
            let id = format!("call_{turn}_{call}");
            input.push(json!({"type": "function_call", "id": format!("fc_{turn}_{call}"), "call_id": id, "name": "tool_0",
                "arguments": "{\"command\":[\"rg\",\"-n\",\"fn main\"],\"workdir\":\"/home/dev/app\"}", "status": "completed"}));
        }
        for call in 0..3 {
            let id = format!("call_{turn}_{call}");
            input.push(json!({"type": "function_call_output", "call_id": id, "output": "src/main.rs:1:fn main() {\n    println!(\"hello\");\n}\n".repeat(8)}));
        }
        input.push(json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Fixed: the test passes now."}]}));
    }
    serde_json::to_vec(
        &json!({"model": "gpt-5-codex", "instructions": "You are Codex, a coding agent based on GPT-5. ".repeat(250),
        "input": input, "tools": tools, "tool_choice": "auto", "parallel_tool_calls": true,
        "reasoning": {"effort": "medium", "summary": "auto"}, "store": false, "stream": true,
        "include": ["reasoning.encrypted_content"], "prompt_cache_key": "0199a3f2-8c1e-7d40-b2a5-5d1c2e3f4a5b",
        "text": {"verbosity": "low"}, "max_output_tokens": 8000}),
    )
    .unwrap()
}

/// A whole Chat answer to a Codex turn: 1.5 KB of text and three parallel tool calls.
fn chat_completion() -> Vec<u8> {
    let calls: Vec<_> = (0..3)
        .map(|i| serde_json::json!({"id": format!("call_{i}"), "type": "function", "function": {"name": "shell",
            "arguments": "{\"command\":[\"cargo\",\"test\",\"--lib\"],\"workdir\":\"/home/dev/app\",\"timeout_ms\":120000}"}}))
        .collect();
    serde_json::to_vec(&serde_json::json!({"id": "chatcmpl-bench", "object": "chat.completion", "created": 1_750_000_000u64,
        "model": "qwen3-coder-30b", "choices": [{"index": 0, "message": {"role": "assistant",
            "content": "I looked at the failing test and the code it covers; here is what I will run next. ".repeat(18),
            "tool_calls": calls}, "logprobs": null, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 15000, "completion_tokens": 420, "total_tokens": 15420,
            "prompt_tokens_details": {"cached_tokens": 12000}, "completion_tokens_details": {"reasoning_tokens": 128}}}))
    .unwrap()
}

/// The Responses client dialect on a Chat upstream: the request and the whole answer.
fn responses(c: &mut Criterion) {
    let body = codex_request();
    let chat = chat_completion();
    let echo = responses_echo(&body);
    let mut group = c.benchmark_group("responses");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("request_codex_turn", |b| b.iter(|| responses_request(&body)));
    group.throughput(Throughput::Bytes(chat.len() as u64));
    group.bench_function("whole_answer", |b| b.iter(|| responses_answer(&chat, &echo)));
    group.finish();
}

fn responses_echo(body: &[u8]) -> Echo {
    responses_request(body).1
}

/// Body bytes in, Chat bytes out, as `convert::prepare` does it.
fn responses_request(body: &[u8]) -> (Vec<u8>, Echo) {
    llm_gateway::dialect::responses::request::to_chat(body, "qwen3-coder", false).unwrap()
}

/// Chat bytes in, Response bytes out, as `Conversion::whole` does it.
fn responses_answer(chat: &[u8], echo: &Echo) -> Vec<u8> {
    llm_gateway::dialect::responses::response::from_chat(chat, echo).unwrap()
}

/// One request's translation work in each translated pair of the overhead harness: its request
/// translated, then the recorded upstream stream (or whole answer) its mock sends, translated.
/// What a pair costs beyond the passthrough path, without sockets.
fn harness_pairs(c: &mut Criterion) {
    const CHAT_SSE: &[u8] = include_bytes!("../fixtures/upstream/openai/chat-stream.sse");
    const CHAT: &[u8] = include_bytes!("../fixtures/upstream/openai/chat.json");
    const ANTHROPIC_SSE: &[u8] = include_bytes!("../fixtures/upstream/anthropic/stream-text.sse");
    const ANTHROPIC: &[u8] = include_bytes!("../fixtures/upstream/anthropic/message.json");
    use llm_gateway::dialect::messages::{client, upstream};
    use llm_gateway::dialect::responses;
    let whole = |streamed: &str| streamed.replace("\"stream\":true", "\"stream\":false");
    let claude = "claude-sonnet-4-20250514";
    let chat = REQUEST.replace("\"stream\":false", "\"stream\":true").replace("\"llama3\"", &format!("\"{claude}\""));
    let messages = ANTHROPIC_REQUEST.replace(claude, "llama3");
    let mut group = c.benchmark_group("harness_pairs");
    group.bench_function("chat_to_anthropic_streamed", |b| {
        b.iter(|| {
            let (body, asked) = upstream::request::translate(chat.as_bytes(), claude).unwrap();
            (body, run(&mut ToChat::new(&asked), ANTHROPIC_SSE))
        })
    });
    let chat_whole = whole(&chat);
    group.bench_function("chat_to_anthropic_whole", |b| {
        b.iter(|| {
            let (body, _) = upstream::request::translate(chat_whole.as_bytes(), claude).unwrap();
            (body, upstream::response::completion(ANTHROPIC).unwrap())
        })
    });
    group.bench_function("messages_to_local_streamed", |b| {
        b.iter(|| {
            let body = client::request::to_chat(messages.as_bytes(), "llama3", false).unwrap();
            (body, run(&mut MessagesFromChat::new(), CHAT_SSE))
        })
    });
    let messages_whole = whole(&messages);
    group.bench_function("messages_to_local_whole", |b| {
        b.iter(|| {
            let body = client::request::to_chat(messages_whole.as_bytes(), "llama3", false).unwrap();
            (body, client::response::from_chat(CHAT).unwrap())
        })
    });
    group.bench_function("responses_to_local_streamed", |b| {
        b.iter(|| {
            let (body, echo) = responses::request::to_chat(RESPONSES_REQUEST.as_bytes(), "llama3", false).unwrap();
            (body, run(&mut ResponsesFromChat::new(echo), CHAT_SSE))
        })
    });
    let responses_whole = whole(RESPONSES_REQUEST);
    group.bench_function("responses_to_local_whole", |b| {
        b.iter(|| {
            let (body, echo) = responses::request::to_chat(responses_whole.as_bytes(), "llama3", false).unwrap();
            (body, responses::response::from_chat(CHAT, &echo).unwrap())
        })
    });
    group.finish();
}

criterion_group!(translate_benches, benches, chat_out, messages_client, responses, harness_pairs);
criterion_main!(translate_benches);
