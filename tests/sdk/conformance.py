"""The official openai SDK through the gateway, against a mock upstream that speaks OpenAI's
wire format: models.list, chat, streaming with tool calls and usage, embeddings, legacy
completions, and the SDK's error classes for gateway- and upstream-made errors."""
import json

import openai
from openai import OpenAI

from harness import Gateway, MockUpstream, binary

KEY = "sk-gw-sdk-0123456789abcdef0123"
CONFIG = f"""
providers:
  local:
    base_url: "{{upstream}}"
  anthropic:
    api_key: sk-ant-conformance
    base_url: "{{upstream}}"
api_keys:
  enabled: true
  keys:
    - name: sdk
      key: {KEY}
      allowed_models: ["llama*", "gpt-*", "error-401", "nomic*", "claude-*", "whisper*"]
routing:
  default_route: general
  routes:
    - name: general
      model: llama3
    - name: whisper
      model: whisper-large-v3
"""

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
          "strict": True}}]


def main():
    upstream = MockUpstream()
    gateway = Gateway(binary(), CONFIG.replace("{upstream}", upstream.url))
    try:
        run(gateway, upstream)
    finally:
        gateway.stop()
        upstream.stop()
    print("openai SDK conformance: all checks passed")


def run(gateway, upstream):
    client = OpenAI(base_url=gateway.base_url, api_key=KEY, max_retries=0, timeout=30)

    ids = [m.id for m in client.models.list()]
    assert ids[-4:] == ["gpt-4o-mini", "general", "whisper", "auto"], ids
    assert "claude-sonnet-4-20250514" in ids, ids

    r = client.chat.completions.create(model="llama3", messages=[{"role": "user", "content": "Hello!"}],
                                       max_completion_tokens=16, seed=3)
    assert r.choices[0].message.content == "Hello! How can I assist you today?"
    assert r.usage.total_tokens == 29 and r.usage.completion_tokens_details.reasoning_tokens == 0
    path, body = upstream.bodies[-1]
    assert path == "/v1/chat/completions" and body["max_completion_tokens"] == 16 and body["seed"] == 3, body

    r = client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "Hi"}])
    assert upstream.bodies[-1][1]["model"] == "llama3"

    stream = client.chat.completions.create(
        model="llama3", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=TOOLS,
        tool_choice="auto", parallel_tool_calls=False, stream=True, stream_options={"include_usage": True})
    calls, finish, usage = {}, None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for tc in choice.delta.tool_calls or []:
                entry = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
                entry["id"] = tc.id or entry["id"]
                if tc.function and tc.function.name:
                    entry["name"] = tc.function.name
                entry["arguments"] += (tc.function.arguments or "") if tc.function else ""
    assert finish == "tool_calls", finish
    assert calls == {0: {"id": "call_DdmO9pD3xa9XTPNJ32zg2hcA", "name": "get_weather",
                         "arguments": '{"city":"Paris"}'}}, calls
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert usage.total_tokens == 87
    sent = upstream.bodies[-1][1]
    assert sent["tools"] == TOOLS and sent["parallel_tool_calls"] is False and sent["tool_choice"] == "auto"

    # A stream whose client did not ask for usage: the gateway asks, counts it, and the client
    # sees no usage chunk (the SDK would surface one as a chunk without choices).
    chunks = list(client.chat.completions.create(model="llama3", messages=[{"role": "user", "content": "Hi"}],
                                                 stream=True))
    assert all(c.usage is None and c.choices for c in chunks), chunks[-1]
    assert upstream.bodies[-1][1]["stream_options"] == {"include_usage": True}

    # The rest of the surface: a multipart upload routed by its form's model, and binary speech.
    t = client.audio.transcriptions.create(model="whisper", file=("hello.wav", b"RIFF\x00\x01fake wav", "audio/wav"))
    assert t.text == "Hello from the mock.", t
    path, body = upstream.bodies[-1]
    assert path == "/v1/audio/transcriptions" and b'name="model"\r\n\r\nwhisper-large-v3\r\n' in body, body
    assert b"RIFF\x00\x01fake wav" in body and "multipart/form-data; boundary=" in upstream.headers[-1]["content-type"]
    speech = client.audio.speech.create(model="llama-tts", voice="alloy", input="Hello")
    assert speech.content == b"ID3\x04\x00 mock speech"

    e = client.embeddings.create(model="nomic-embed-text", input="hello")
    assert len(e.data[0].embedding) == 3

    c = client.completions.create(model="llama3", prompt="Say this is a test", max_tokens=7)
    assert c.choices[0].text.endswith("This is indeed a test")

    anthropic(client, upstream)

    expect_error(lambda: OpenAI(base_url=gateway.base_url, api_key="sk-wrong", max_retries=0).models.list(),
                 openai.AuthenticationError, 401, "invalid API key")
    expect_error(lambda: client.chat.completions.create(model="qwen", messages=[{"role": "user", "content": "x"}]),
                 openai.PermissionDeniedError, 403, "model 'qwen' is not allowed for this API key")
    expect_error(lambda: client.chat.completions.create(model="llama3", messages=[]),
                 openai.BadRequestError, 400, "messages is required")
    expect_error(lambda: client.chat.completions.create(model="error-401", messages=[{"role": "user", "content": "x"}]),
                 openai.AuthenticationError, 401, "Incorrect API key provided")


def anthropic(client, upstream):
    """Claude through the gateway: text, streaming, and a two-tool-call round trip."""
    r = client.chat.completions.create(model="claude-sonnet-4-20250514",
                                       messages=[{"role": "user", "content": "Hello"}])
    assert r.choices[0].message.content == "Hello! How can I help you today?"
    assert r.usage.prompt_tokens == 12 and r.usage.completion_tokens == 11
    assert upstream.headers[-1]["x-api-key"] == "sk-ant-conformance"

    stream = client.chat.completions.create(model="claude-sonnet-4-20250514", stream=True,
                                            stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": "Hello"}])
    text, usage, finish = "", None, None
    for chunk in stream:
        usage = chunk.usage or usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert text == "Hello! How can I help?" and finish == "stop" and usage.completion_tokens == 9, (text, finish, usage)

    question = [{"role": "user", "content": "Weather in Paris and Tokyo?"}]
    r = client.chat.completions.create(model="claude-tools", messages=question, tools=TOOLS)
    calls = r.choices[0].message.tool_calls
    assert r.choices[0].finish_reason == "tool_calls"
    assert [c.function.name for c in calls] == ["get_weather", "get_weather"]
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}
    assert json.loads(calls[1].function.arguments) == {"city": "Tokyo", "unit": "celsius"}

    stream = client.chat.completions.create(model="claude-tools", messages=question, tools=TOOLS, stream=True)
    streamed = {}
    for chunk in stream:
        for c in chunk.choices:
            for tc in c.delta.tool_calls or []:
                entry = streamed.setdefault(tc.index, {"id": None, "arguments": ""})
                entry["id"] = tc.id or entry["id"]
                entry["arguments"] += tc.function.arguments or ""
    assert [json.loads(streamed[i]["arguments"]) for i in (0, 1)] == [{"city": "Paris"}, {"city": "Tokyo"}], streamed

    follow_up = question + [r.choices[0].message.model_dump(exclude_none=True)] + [
        {"role": "tool", "tool_call_id": c.id, "content": f"{20 + i} C"} for i, c in enumerate(calls)]
    client.chat.completions.create(model="claude-sonnet-4-20250514", messages=follow_up, tools=TOOLS)
    sent = upstream.bodies[-1][1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"], sent
    assert [b["type"] for b in sent[1]["content"]] == ["text", "tool_use", "tool_use"], sent[1]
    assert [b["tool_use_id"] for b in sent[2]["content"]] == [c.id for c in calls], sent[2]


def expect_error(call, cls, status, text):
    try:
        call()
    except cls as e:
        assert e.status_code == status, (e.status_code, status)
        assert text in e.message, e.message
        return
    raise AssertionError(f"expected {cls.__name__}")


if __name__ == "__main__":
    main()
