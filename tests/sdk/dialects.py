"""The gateway's client dialects through the official SDKs, against a mock OpenAI-compatible
upstream (what llama.cpp, vLLM and Ollama speak): the `anthropic` SDK on the Anthropic Messages
API (`/v1/messages`, `/v1/messages?beta=true`, `/v1/messages/count_tokens`) and the `openai`
SDK on the Responses API (`/v1/responses`), both translated to Chat Completions. Checks what
the SDKs parse and what the upstream received (the translated Chat requests).

The agent-shaped checks copy what the real clients send (Claude Code 2.1.x: `thinking`,
`cache_control` on system and tool_result blocks, `$schema` in tool schemas, `metadata`,
`context_management`, `anthropic-beta`, the `?beta=true` path; Codex CLI 0.169: `store: false`,
`reasoning`, `include: ["reasoning.encrypted_content"]`, non-function tools such as
`{"type": "web_search"}`, developer-role messages, the whole history resent as input items).

Usage: python dialects.py   (LLM_GATEWAY_BIN overrides the gateway binary)"""
import json
import re
import threading
import time
from http.server import ThreadingHTTPServer

import anthropic
import openai
from anthropic import Anthropic
from openai import OpenAI

from harness import Gateway, JsonHandler, binary

KEY = "sk-gw-dialects-0123456789abcdef"
CONFIG = """
providers:
  local:
    base_url: "{upstream}"
routing:
  aliases:
    "claude-*": mock-model
    "gpt-5*": mock-model
api_keys:
  enabled: true
  keys:
    - name: sdk
      key: {key}
"""
HELLO = "Hello from the mock upstream!"
PROMPT_TOKENS, COMPLETION_TOKENS = 11, 7
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


class ChatUpstream:
    """An OpenAI-compatible upstream with scripted answers; records every request body.

    model `broken-model`: a 500 in OpenAI's error format. Otherwise: after a `role: tool`
    message, text quoting the tool's output; with tools and no tool result yet, one call to
    the first tool with {"city": "Paris"}; else HELLO. Usage is always 11 + 7 tokens."""

    def __init__(self):
        self.bodies = []
        # Answers whole even when asked to stream, as servers that ignore `stream` do.
        self.deaf = False
        mock = self

        class Handler(JsonHandler):
            def do_GET(self):
                if self.path == "/v1/models":
                    return self.reply(200, {"object": "list", "data": [
                        {"id": "mock-model", "object": "model", "created": 1751900000, "owned_by": "mock"}]})
                self.reply(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                mock.bodies.append((self.path, body))
                if self.path != "/v1/chat/completions":
                    return self.reply(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
                if body.get("model") == "broken-model":
                    return self.reply(500, {"error": {"message": "The server had an error while processing your request.",
                                                      "type": "server_error", "param": None, "code": None}})
                answer = decide(body)
                if body.get("stream") and not mock.deaf:
                    return self.stream(body, answer)
                self.reply(200, completion(body, answer))

            def stream(self, body, answer):
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for c in chunks(body, answer) + ["[DONE]"]:
                    data = f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n".encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                    time.sleep(0.002)
                self.wfile.write(b"0\r\n\r\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def last(self):
        path, body = self.bodies[-1]
        assert path == "/v1/chat/completions", path
        return body

    def stop(self):
        self.server.shutdown()


def text_of(content):
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict))


def decide(body):
    """("text", str) or ("call", name, arguments)."""
    tool_results = [m for m in body.get("messages", []) if m.get("role") == "tool"]
    if tool_results:
        return ("text", f"The tool said: {text_of(tool_results[-1].get('content'))}")
    tools = [t["function"]["name"] for t in body.get("tools") or [] if t.get("type") == "function"]
    if tools and body.get("tool_choice") != "none":
        return ("call", tools[0], json.dumps({"city": "Paris"}))
    return ("text", HELLO)


USAGE = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
         "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
         "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
         "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0,
                                       "rejected_prediction_tokens": 0}}
CALL_ID = "call_mock0123456789abcdef"


def completion(body, answer):
    if answer[0] == "call":
        message = {"role": "assistant", "content": None, "refusal": None, "annotations": [], "tool_calls": [
            {"id": CALL_ID, "type": "function", "function": {"name": answer[1], "arguments": answer[2]}}]}
    else:
        message = {"role": "assistant", "content": answer[1], "refusal": None, "annotations": []}
    return {"id": "chatcmpl-mock1", "object": "chat.completion", "created": 1751900000, "model": body["model"],
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if answer[0] == "call" else "stop"}],
            "usage": USAGE, "service_tier": "default", "system_fingerprint": "fp_mock"}


def chunks(body, answer):
    """Chat chunks exactly as OpenAI streams them (usage last, only when asked for)."""
    with_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(delta, finish=None):
        c = {"id": "chatcmpl-mock2", "object": "chat.completion.chunk", "created": 1751900000,
             "model": body["model"], "system_fingerprint": "fp_mock",
             "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        return {**c, "usage": None} if with_usage else c

    if answer[0] == "call":
        out = [chunk({"role": "assistant", "content": None, "refusal": None, "tool_calls": [
            {"index": 0, "id": CALL_ID, "type": "function", "function": {"name": answer[1], "arguments": ""}}]})]
        out += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": answer[2][i:i + 5]}}]})
                for i in range(0, len(answer[2]), 5)]
        out.append(chunk({}, "tool_calls"))
    else:
        out = [chunk({"role": "assistant", "content": "", "refusal": None})]
        out += [chunk({"content": piece}) for piece in re.findall(r"\S+\s*", answer[1])]
        out.append(chunk({}, "stop"))
    if with_usage:
        out.append({**chunk({}), "choices": [], "usage": USAGE})
    return out


def sent_max_tokens(body):
    return body.get("max_completion_tokens", body.get("max_tokens"))


def roles(body):
    return [m["role"] for m in body["messages"]]


def expect_error(call, cls, status):
    try:
        call()
    except cls as e:
        assert e.status_code == status, (e.status_code, status)
        return e
    raise AssertionError(f"expected {cls.__name__}")


# --- Anthropic Messages --------------------------------------------------------------------

def messages_api(gateway, upstream):
    base = f"http://{gateway.addr}"
    client = Anthropic(base_url=base, api_key=KEY, max_retries=0, timeout=30)  # x-api-key
    bearer = Anthropic(base_url=base, auth_token=KEY, max_retries=0, timeout=30)  # Authorization: Bearer

    r = client.messages.create(model="claude-sonnet-4-5", max_tokens=64, system="Be brief.",
                               messages=[{"role": "user", "content": "Hello"}])
    assert r.type == "message" and r.role == "assistant", r
    assert [b.type for b in r.content] == ["text"] and r.content[0].text == HELLO, r.content
    assert r.stop_reason == "end_turn", r.stop_reason
    assert r.usage.input_tokens == PROMPT_TOKENS and r.usage.output_tokens == COMPLETION_TOKENS, r.usage
    sent = upstream.last()
    assert sent["model"] == "mock-model", sent["model"]
    assert [(m["role"], text_of(m["content"])) for m in sent["messages"]] == [("system", "Be brief."), ("user", "Hello")], sent
    assert sent_max_tokens(sent) == 64 and not sent.get("stream"), sent

    # Streaming, with the Bearer header and the beta path Claude Code uses (/v1/messages?beta=true).
    with bearer.beta.messages.stream(model="claude-sonnet-4-5", max_tokens=64, betas=["interleaved-thinking-2025-05-14"],
                                     messages=[{"role": "user", "content": "Hello"}]) as stream:
        events = [e.type for e in stream]
        final = stream.get_final_message()
    deltas = events.count("content_block_delta")
    assert events[0] == "message_start" and events[-1] == "message_stop", events
    assert "content_block_start" in events and "content_block_stop" in events and "message_delta" in events, events
    assert deltas >= 2, f"the text was not streamed in pieces: {events}"
    assert [b.type for b in final.content] == ["text"] and final.content[0].text == HELLO, final.content
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == COMPLETION_TOKENS, final
    # The mock sends usage only when asked (`stream_options.include_usage`), as OpenAI does: the
    # final usage above proves the gateway asked for it.
    sent = upstream.last()
    assert sent["stream"] is True and sent["model"] == "mock-model", sent

    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=64,
                                messages=[{"role": "user", "content": "Hello"}]) as stream:
        assert "".join(stream.text_stream) == HELLO

    # A tool round trip: tool_use with parsed input, then a tool_result back.
    tools = [{"name": "get_weather", "description": "Weather of a city", "input_schema": WEATHER_SCHEMA}]
    question = [{"role": "user", "content": "Weather in Paris?"}]
    r = client.messages.create(model="claude-sonnet-4-5", max_tokens=64, tools=tools, messages=question)
    assert r.stop_reason == "tool_use", r
    uses = [b for b in r.content if b.type == "tool_use"]
    assert len(uses) == 1 and uses[0].name == "get_weather" and uses[0].input == {"city": "Paris"}, r.content
    assert uses[0].id, uses[0]
    sent = upstream.last()
    assert sent["tools"] == [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                                                "parameters": WEATHER_SCHEMA}}], sent["tools"]

    follow_up = question + [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in r.content]},
                            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id,
                                                          "content": "21 C and sunny"}]}]
    r = client.messages.create(model="claude-sonnet-4-5", max_tokens=64, tools=tools, messages=follow_up)
    assert r.stop_reason == "end_turn" and r.content[0].text == "The tool said: 21 C and sunny", r
    sent = upstream.last()
    assert roles(sent) == ["user", "assistant", "tool"], roles(sent)
    call = sent["messages"][1]["tool_calls"][0]
    assert call["id"] == uses[0].id and call["function"]["name"] == "get_weather", call
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}, call
    assert sent["messages"][2]["tool_call_id"] == uses[0].id, sent["messages"][2]
    assert text_of(sent["messages"][2]["content"]) == "21 C and sunny", sent["messages"][2]

    # The same tool call streamed (Claude Code always streams): input_json_delta pieces.
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=64, tools=tools, messages=question) as stream:
        kinds = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert kinds and set(kinds) == {"input_json_delta"}, kinds
    assert final.stop_reason == "tool_use", final
    uses = [b for b in final.content if b.type == "tool_use"]
    assert len(uses) == 1 and uses[0].name == "get_weather" and uses[0].input == {"city": "Paris"}, final.content

    # Shaped like Claude Code's second turn: system blocks with cache_control, thinking,
    # metadata, context_management, a `$schema` in the tool's schema, a tool_result string
    # with cache_control. cache_control has no Chat equivalent and must not reach the upstream.
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **WEATHER_SCHEMA, "additionalProperties": False}
    r = client.beta.messages.create(
        model="claude-sonnet-4-5-20250929", max_tokens=32000, betas=["claude-code-20250219", "context-management-2025-06-27"],
        system=[{"type": "text", "text": "You are an agent."},
                {"type": "text", "text": "Use tools.", "cache_control": {"type": "ephemeral"}}],
        thinking={"type": "enabled", "budget_tokens": 31999},
        metadata={"user_id": "agent-test"},
        extra_body={"context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}},
        tools=[{"name": "Bash", "description": "Run a command", "input_schema": schema}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "run it"}]},
                  {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01", "name": "Bash",
                                                     "input": {"command": "echo hi"}}]},
                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "hi\n",
                                                "is_error": False, "cache_control": {"type": "ephemeral"}}]}])
    assert r.stop_reason == "end_turn" and r.content[-1].text == "The tool said: hi\n", r
    sent = upstream.last()
    assert sent["model"] == "mock-model", sent["model"]
    assert "cache_control" not in json.dumps(sent), sent
    assert roles(sent)[0] == "system" and roles(sent)[-3:] == ["user", "assistant", "tool"], roles(sent)
    assert "You are an agent." in text_of(sent["messages"][0]["content"]), sent["messages"][0]

    n = client.messages.count_tokens(model="claude-sonnet-4-5", system="Be brief.",
                                     messages=[{"role": "user", "content": "How many tokens is this?"}])
    assert isinstance(n.input_tokens, int) and n.input_tokens > 0, n

    e = expect_error(lambda: Anthropic(base_url=base, api_key="sk-wrong", max_retries=0).messages.create(
        model="claude-sonnet-4-5", max_tokens=8, messages=[{"role": "user", "content": "x"}]),
        anthropic.AuthenticationError, 401)
    assert isinstance(e.body, dict) and e.body.get("type") == "error", e.body
    e = expect_error(lambda: client.messages.create(model="broken-model", max_tokens=8,
                                                    messages=[{"role": "user", "content": "x"}]),
                     anthropic.InternalServerError, 500)
    assert isinstance(e.body, dict) and e.body.get("type") == "error", e.body


# --- OpenAI Responses ----------------------------------------------------------------------

def responses_api(gateway, upstream):
    client = OpenAI(base_url=gateway.base_url, api_key=KEY, max_retries=0, timeout=30)

    r = client.responses.create(model="gpt-5", instructions="Be brief.", input="Hello", max_output_tokens=64)
    assert r.object == "response" and r.status == "completed", r
    assert r.output_text == HELLO, r.output
    assert r.usage.input_tokens == PROMPT_TOKENS and r.usage.output_tokens == COMPLETION_TOKENS, r.usage
    sent = upstream.last()
    assert sent["model"] == "mock-model" and sent_max_tokens(sent) == 64 and not sent.get("stream"), sent
    assert [(m["role"], text_of(m["content"])) for m in sent["messages"]] == [("system", "Be brief."), ("user", "Hello")], sent

    with client.responses.stream(model="gpt-5", input="Hello") as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed", types
    for t in ("response.output_item.added", "response.output_text.delta", "response.output_item.done"):
        assert t in types, types
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == HELLO and types.count("response.output_text.delta") >= 2, (text, types)
    assert final.output_text == HELLO and final.status == "completed", final
    assert events[-1].response.usage.output_tokens == COMPLETION_TOKENS, events[-1]
    assert upstream.last()["stream"] is True

    events = list(client.responses.create(model="gpt-5", input="Hello", stream=True))
    assert events[-1].type == "response.completed" and events[-1].response.output_text == HELLO, events[-1]

    # A function-tool round trip, the history resent in full as Codex does (store: false).
    tools = [{"type": "function", "name": "get_weather", "description": "Weather of a city",
              "parameters": WEATHER_SCHEMA, "strict": False}]
    question = [{"role": "user", "content": "Weather in Paris?"}]
    r = client.responses.create(model="gpt-5", input=question, tools=tools, store=False)
    calls = [o for o in r.output if o.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather", r.output
    assert json.loads(calls[0].arguments) == {"city": "Paris"} and calls[0].call_id, calls[0]
    sent = upstream.last()
    assert sent["tools"][0]["type"] == "function" and sent["tools"][0]["function"]["name"] == "get_weather", sent["tools"]
    assert sent["tools"][0]["function"]["parameters"] == WEATHER_SCHEMA, sent["tools"]

    history = question + [calls[0].model_dump(exclude_none=True),
                          {"type": "function_call_output", "call_id": calls[0].call_id, "output": "21 C and sunny"}]
    r = client.responses.create(model="gpt-5", input=history, tools=tools, store=False)
    assert r.output_text == "The tool said: 21 C and sunny", r.output
    sent = upstream.last()
    assert roles(sent) == ["user", "assistant", "tool"], roles(sent)
    call = sent["messages"][1]["tool_calls"][0]
    assert call["id"] == calls[0].call_id and json.loads(call["function"]["arguments"]) == {"city": "Paris"}, call
    assert sent["messages"][2]["tool_call_id"] == calls[0].call_id, sent["messages"][2]

    # The function call streamed: argument deltas, the item done, response.completed.
    with client.responses.stream(model="gpt-5", input=question, tools=tools) as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    assert "response.function_call_arguments.delta" in types and types[-1] == "response.completed", types
    calls = [o for o in final.output if o.type == "function_call"]
    assert len(calls) == 1 and json.loads(calls[0].arguments) == {"city": "Paris"}, final.output

    # Shaped like Codex CLI's request: developer messages, input_text parts, non-function tools,
    # reasoning and include (a Chat upstream has no reasoning to give: ignored, not an error).
    r = client.responses.create(
        model="gpt-5", store=False, parallel_tool_calls=True, tool_choice="auto", reasoning={"summary": "auto"},
        include=["reasoning.encrypted_content"], prompt_cache_key="session-1",
        tools=[{"type": "function", "name": "exec_command", "description": "Run a command", "strict": False,
                "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}},
               {"type": "web_search"}],
        input=[{"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are Codex."}]},
               {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "run it"}]},
               {"type": "function_call", "call_id": "call_x1", "name": "exec_command", "arguments": '{"cmd":"echo hi"}'},
               {"type": "function_call_output", "call_id": "call_x1", "output": "Process exited with code 0\nOutput:\nhi\n"}])
    assert r.output_text.startswith("The tool said: Process exited with code 0"), r.output
    sent = upstream.last()
    assert [t["function"]["name"] for t in sent["tools"]] == ["exec_command"], sent["tools"]
    assert roles(sent)[-3:] == ["user", "assistant", "tool"], roles(sent)
    # `developer` becomes `system`: the chat templates of llama.cpp / vLLM / Ollama models know no developer role.
    assert roles(sent)[0] == "system" and "You are Codex." in text_of(sent["messages"][0]["content"]), sent

    expect_error(lambda: OpenAI(base_url=gateway.base_url, api_key="sk-wrong", max_retries=0).responses.create(
        model="gpt-5", input="x"), openai.AuthenticationError, 401)
    expect_error(lambda: client.responses.create(model="broken-model", input="x"), openai.InternalServerError, 500)
    before = len(upstream.bodies)
    e = expect_error(lambda: client.responses.create(model="gpt-5", input="x", previous_response_id="resp_123"),
                     openai.BadRequestError, 400)
    assert "previous_response_id" in e.message, e.message
    assert len(upstream.bodies) == before, "a previous_response_id request reached the upstream"


def deaf_upstream(gateway, upstream):
    """An upstream that answers streaming requests whole: each SDK's stream still gives the
    whole answer (text, tool calls, usage), translated or passed through."""
    upstream.deaf = True
    tools = [{"name": "get_weather", "description": "Weather of a city", "input_schema": WEATHER_SCHEMA}]
    question = [{"role": "user", "content": "Weather in Paris?"}]
    claude = Anthropic(base_url=f"http://{gateway.addr}", api_key=KEY, max_retries=0, timeout=30)
    with claude.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=question) as stream:
        assert "".join(stream.text_stream) == HELLO
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == COMPLETION_TOKENS, final
    with claude.messages.stream(model="claude-sonnet-4-5", max_tokens=64, tools=tools, messages=question) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use" and final.content[0].input == {"city": "Paris"}, final
    assert upstream.last()["stream"] is True

    client = OpenAI(base_url=gateway.base_url, api_key=KEY, max_retries=0, timeout=30)
    with client.responses.stream(model="gpt-5", input="Hello") as stream:
        final = stream.get_final_response()
    assert final.output_text == HELLO and final.usage.output_tokens == COMPLETION_TOKENS, final
    function = [{"type": "function", "name": "get_weather", "parameters": WEATHER_SCHEMA}]
    with client.responses.stream(model="gpt-5", input="Weather in Paris?", tools=function) as stream:
        final = stream.get_final_response()
    call = final.output[0]
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Paris"}, final.output

    # A Chat client, passed through: the stream holds the answer (the SDK reads no JSON body as
    # a stream: without the replay it would iterate over nothing).
    chunks = list(client.chat.completions.create(
        model="gpt-5", messages=question, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == HELLO, chunks
    assert chunks[0].choices[0].finish_reason == "stop" and chunks[-1].usage.completion_tokens == COMPLETION_TOKENS, chunks
    chunks = list(client.chat.completions.create(model="gpt-5", messages=question, tools=[
        {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}], stream=True))
    call = chunks[0].choices[0].delta.tool_calls[0]
    assert call.index == 0 and json.loads(call.function.arguments) == {"city": "Paris"}, chunks
    assert all(c.usage is None for c in chunks), chunks

    upstream.deaf = False


def main():
    upstream = ChatUpstream()
    gateway = Gateway(binary(), CONFIG.format(upstream=upstream.url, key=KEY))
    try:
        messages_api(gateway, upstream)
        responses_api(gateway, upstream)
        deaf_upstream(gateway, upstream)
    except BaseException:
        print("---- the gateway's log ----\n" + "".join(gateway.log[-60:]))
        raise
    finally:
        gateway.stop()
        upstream.stop()
    print("client dialects (anthropic SDK on /v1/messages, openai SDK on /v1/responses): all checks passed")


if __name__ == "__main__":
    main()
