"""End to end through the gateway to a real model: llama.cpp's server with SmolLM2-135M
(started by scripts/test.sh or the quickstart). The text is a tiny model's, so only the shape,
token counts and finish reasons are checked, never the content.

Usage: python e2e_local_model.py MODEL_SERVER_URL MODEL_ALIAS"""
import sys

from openai import OpenAI

from harness import Gateway, binary

CONFIG = """
providers:
  local:
    base_url: "{upstream}"
  anthropic:
    api_key: unused-by-llama-cpp
    base_url: "{upstream}"
routing:
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


def main():
    upstream, alias = sys.argv[1], sys.argv[2]
    gateway = Gateway(binary(), CONFIG.format(upstream=upstream, alias=alias))
    try:
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
    finally:
        gateway.stop()
    print(f"end to end through the gateway to {alias}: all checks passed")


if __name__ == "__main__":
    main()
