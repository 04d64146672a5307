"""End to end through the gateway to a real model: llama.cpp's server with SmolLM2-135M
(started by scripts/test.sh or the quickstart), through the openai SDK's Chat Completions and
the gateway's two client dialects: the anthropic SDK on /v1/messages and the openai SDK on
/v1/responses, both translated to Chat Completions for llama.cpp. The text is a tiny model's, so
only the shape, token counts and finish reasons are checked, never the content.

Usage: python e2e_local_model.py MODEL_SERVER_URL MODEL_ALIAS"""
import sys
import time
import urllib.request

from anthropic import Anthropic
from openai import OpenAI

from harness import Gateway, binary

CONFIG = """
metrics:
  enabled: true
providers:
  local:
    base_url: "{upstream}"
  anthropic:
    api_key: unused-by-llama-cpp
    base_url: "{upstream}"
routing:
  aliases:
    "claude-sonnet-*": {alias}
    "gpt-5*": chat
  default_route: chat
  semantic:
    enabled: true
    threshold: 0.2
  routes:
    - name: chat
      model: {alias}
      examples: ["say hello to me", "how are you today?", "tell me something nice"]
    - name: claude
      model: claude-{alias}
      examples: ["write a python function", "fix the bug in this code", "why does my program crash?"]
"""


def check_stream(client, model):
    """A short stream with usage: some text, a finish reason, a token count within the limit."""
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Count to three."}],
                                            max_tokens=12, stream=True, stream_options={"include_usage": True})
    pieces, finish, usage = [], None, None
    for chunk in stream:
        usage = chunk.usage or usage
        for c in chunk.choices:
            pieces.append(c.delta.content or "")
            finish = c.finish_reason or finish
    assert "".join(pieces), f"{model}: streamed no text"
    assert finish in ("stop", "length"), finish
    assert usage and 0 < usage.completion_tokens <= 12, usage


def metric(gateway, name, model):
    """The sum of `name`'s samples for `model` in the gateway's /metrics."""
    text = urllib.request.urlopen(f"http://{gateway.addr}/metrics", timeout=30).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") and f'model="{model}"' in line)


def check_usage(client, gateway, model):
    """A stream whose client did not ask for usage: the real server is asked for it (and
    accepts `stream_options`), the client sees no usage chunk, and its tokens are counted;
    tokens per second come from the server's own timings, not from a near-zero duration."""
    # A request is metered just after its last byte reaches the client: the one before this may
    # not be yet. Its tokens must not count as this stream's, so the baseline is read settled.
    before = metric(gateway, "llm_gateway_tokens_completion_total", model)
    for _ in range(100):
        time.sleep(0.05)
        now = metric(gateway, "llm_gateway_tokens_completion_total", model)
        if now == before:
            break
        before = now
    chunks = list(client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Count to three."}],
                                                 max_tokens=12, stream=True))
    assert chunks and all(c.usage is None and c.choices for c in chunks), chunks[-1]
    for _ in range(100):
        counted = metric(gateway, "llm_gateway_tokens_completion_total", model) - before
        if counted:
            break
        time.sleep(0.05)
    assert 0 < counted <= 12, counted
    rate = metric(gateway, "llm_gateway_tokens_per_second_sum", model)
    requests = metric(gateway, "llm_gateway_tokens_per_second_count", model)
    assert requests and 0 < rate / requests < 20000, (rate, requests)


def check_dialects(gateway):
    """Agents' dialects to the real model: `claude-sonnet-*` is aliased to the model's name,
    `gpt-5*` to the `chat` route."""
    a = Anthropic(base_url=f"http://{gateway.addr}", api_key="unused", max_retries=0, timeout=300)
    r = a.messages.create(model="claude-sonnet-4-5", max_tokens=8, system="Be brief.",
                          messages=[{"role": "user", "content": "Say hello."}])
    assert r.type == "message" and r.role == "assistant", r
    assert [b.type for b in r.content] == ["text"] and r.content[0].text, r.content
    assert r.stop_reason in ("end_turn", "max_tokens"), r.stop_reason
    assert r.usage.input_tokens > 0 and 0 < r.usage.output_tokens <= 8, r.usage

    with a.messages.stream(model="claude-sonnet-4-5", max_tokens=12,
                           messages=[{"role": "user", "content": "Count to three."}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content and final.content[0].text == text, (text, final.content)
    assert final.stop_reason in ("end_turn", "max_tokens"), final.stop_reason
    assert 0 < final.usage.output_tokens <= 12, final.usage

    # The Responses API ends a turn cut by max_output_tokens as `incomplete`, else `completed`.
    o = OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0, timeout=300)
    r = o.responses.create(model="gpt-5", instructions="Be brief.", input="Say hello.", max_output_tokens=8)
    assert r.object == "response" and r.status in ("completed", "incomplete"), r
    assert r.output_text, r.output
    assert r.usage.input_tokens > 0 and 0 < r.usage.output_tokens <= 8, r.usage

    events = list(o.responses.create(model="gpt-5", input="Count to three.", max_output_tokens=12, stream=True))
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] in ("response.completed", "response.incomplete"), types
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text and events[-1].response.output_text == text, (text, events[-1])
    assert 0 < events[-1].response.usage.output_tokens <= 12, events[-1].response.usage


def main():
    upstream, alias = sys.argv[1], sys.argv[2]
    gateway = Gateway(binary(), CONFIG.format(upstream=upstream, alias=alias))
    try:
        # The model list is what the endpoint's health probe found: wait until it has answered
        # (a server busy at the first probe is probed again within seconds).
        for _ in range(600):
            try:
                if urllib.request.urlopen(f"http://{gateway.addr}/ready", timeout=5).status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        client = OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0, timeout=300)
        ids = [m.id for m in client.models.list()]
        assert alias in ids and "auto" in ids and "chat" in ids, ids

        r = client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "Say hello."}],
                                           max_completion_tokens=8, temperature=0)
        choice = r.choices[0]
        assert choice.finish_reason in ("stop", "length"), choice.finish_reason
        assert isinstance(choice.message.content, str) and choice.message.content
        assert 0 < r.usage.completion_tokens <= 8, r.usage

        check_stream(client, alias)
        check_usage(client, gateway, alias)

        # `auto` through the builtin embedder: a coding prompt goes to the `claude` route.
        for prompt, route in [("Write a Python function that adds two numbers.", "claude"), ("Hello there!", "chat")]:
            raw = client.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": prompt}], max_tokens=8)
            assert raw.headers["x-llm-gateway-route"] == route, (prompt, raw.headers)
            assert raw.parse().choices[0].message.content

        # The same model through the Anthropic translation: llama.cpp's server also speaks
        # the Messages API, so this exercises both directions against a real server.
        r = client.chat.completions.create(model="claude", messages=[{"role": "system", "content": "Be brief."},
                                                                     {"role": "user", "content": "Say hello."}],
                                           max_tokens=8)
        assert r.choices[0].finish_reason in ("stop", "length"), r
        assert r.choices[0].message.content and 0 < r.usage.completion_tokens <= 8, r
        check_stream(client, "claude")

        check_dialects(gateway)
    finally:
        gateway.stop()
    print(f"end to end through the gateway to {alias}: all checks passed")


if __name__ == "__main__":
    main()
