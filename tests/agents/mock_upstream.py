"""A scripted OpenAI-compatible upstream (llama.cpp / vLLM / Ollama stand-in) for driving real
agent clients (Claude Code, Codex CLI) through the gateway. Python stdlib only.

Usage: python mock_upstream.py LOG.jsonl
Binds 127.0.0.1:0, prints the port alone on the first line of stdout, serves until killed.

  GET  /v1/models             one model, `mock-model`
  POST /v1/chat/completions   streamed (SSE, as OpenAI sends it, with a final usage chunk when
                              `stream_options.include_usage`) or not, and:
    - no shell tool among the request's tools (a title or quota request): a short text answer;
    - a shell tool and no `role: tool` message yet: ONE call to that tool running
      `echo MARKER-<random>` (a fresh marker each time);
    - after a `role: tool` message: the final text `The command printed: <marker line>`, the
      marker line being the one in the last tool message that holds a marker.

The shell tools, as the agents send them (after the gateway translated their tools to Chat
`function` tools):
  - Claude Code 2.1.x: `Bash` with `{"command": "<string>", "timeout"?, "description"?, ...}`;
  - Codex CLI 0.169: `exec_command` with `{"cmd": "<string>", "workdir"?, ...}` (its output comes
    back as text starting "Chunk ID: … Process exited with code 0 … Output: …");
  - older Codex: `shell` with `{"command": ["bash", "-lc", "<string>"]}`, `shell_command` with
    `{"command": "<string>"}`.
The arguments are built from the tool's JSON Schema (`cmd` or `command`, string or array), so a
renamed field still gets a runnable call.

Every request is appended to LOG.jsonl as {"path", "body", "reply"} (reply: "tool_call" with
the tool and marker, "final" with the text, or "text"), for the runner's checks and debugging.
"""
import json
import re
import secrets
import sys
import threading
import time
import pathlib
from http.server import ThreadingHTTPServer

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "sdk"))
from harness import JsonHandler  # noqa: E402

MODEL = "mock-model"
SHELL_TOOLS = ["Bash", "exec_command", "shell_command", "shell", "local_shell"]
MARKER = re.compile(r"MARKER-[0-9a-f]{12}")


def tool_functions(body):
    """{name: parameters} of the request's function tools (Chat format; a bare name too)."""
    found = {}
    for tool in body.get("tools") or []:
        fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            found[fn["name"]] = fn.get("parameters") or {}
    return found


def shell_call(body, command):
    """(tool name, arguments) running `command` with the request's shell tool, or None."""
    tools = tool_functions(body)
    name = next((n for n in SHELL_TOOLS if n in tools), None)
    if name is None:
        return None
    props = tools[name].get("properties") or {}
    field = "cmd" if "cmd" in props else "command"
    kind = (props.get(field) or {}).get("type")
    if kind == "array" or (name == "shell" and kind is None):
        return name, {field: ["bash", "-lc", command]}
    return name, {field: command}


def text_of(content):
    """A Chat message's content as text (a string, or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else json.dumps(content)


def decide(body):
    """What to answer: ("tool_call", name, args, marker) | ("final", text) | ("text", text)."""
    tool_messages = [m for m in body.get("messages") or [] if m.get("role") == "tool"]
    if tool_messages:
        for m in reversed(tool_messages):
            for line in text_of(m.get("content")).splitlines():
                if MARKER.search(line):
                    return ("final", f"The command printed: {line.strip()}")
        return ("final", "The command printed no marker: " + text_of(tool_messages[-1].get("content"))[:200])
    marker = f"MARKER-{secrets.token_hex(6)}"
    call = shell_call(body, f"echo {marker}")
    if call is None:
        return ("text", "OK (mock upstream: no shell tool in this request)")
    return ("tool_call", call[0], call[1], marker)


def usage(body):
    prompt = max(1, len(json.dumps(body.get("messages") or [])) // 4)
    return {"prompt_tokens": prompt, "completion_tokens": 12, "total_tokens": prompt + 12,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}


def completion(body, answer, ident, created):
    """The non-streamed chat.completion object."""
    if answer[0] == "tool_call":
        message = {"role": "assistant", "content": None, "refusal": None, "annotations": [],
                   "tool_calls": [{"id": "call_" + ident[9:], "type": "function",
                                   "function": {"name": answer[1], "arguments": json.dumps(answer[2])}}]}
        finish = "tool_calls"
    else:
        message = {"role": "assistant", "content": answer[1], "refusal": None, "annotations": []}
        finish = "stop"
    return {"id": ident, "object": "chat.completion", "created": created, "model": body.get("model") or MODEL,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": usage(body), "service_tier": "default", "system_fingerprint": "fp_mock"}


def chunks(body, answer, ident, created):
    """The chat.completion.chunk objects of the same answer, split as OpenAI splits them."""
    with_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(delta, finish=None):
        c = {"id": ident, "object": "chat.completion.chunk", "created": created,
             "model": body.get("model") or MODEL, "service_tier": "default", "system_fingerprint": "fp_mock",
             "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if with_usage:
            c["usage"] = None
        return c

    out = []
    if answer[0] == "tool_call":
        args = json.dumps(answer[2])
        out.append(chunk({"role": "assistant", "content": None, "refusal": None, "tool_calls": [
            {"index": 0, "id": "call_" + ident[9:], "type": "function",
             "function": {"name": answer[1], "arguments": ""}}]}))
        for i in range(0, len(args), 8):
            out.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": args[i:i + 8]}}]}))
        out.append(chunk({}, "tool_calls"))
    else:
        out.append(chunk({"role": "assistant", "content": "", "refusal": None}))
        for piece in re.findall(r"\S+\s*|\s+", answer[1]):
            out.append(chunk({"content": piece}))
        out.append(chunk({}, "stop"))
    if with_usage:
        out.append({**chunk({}), "choices": [], "usage": usage(body)})
    return out


def main():
    log_path = sys.argv[1]
    lock = threading.Lock()

    def log(entry):
        with lock, open(log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")

    class Handler(JsonHandler):
        def do_GET(self):
            if self.path.split("?")[0] == "/v1/models":
                return self.reply(200, {"object": "list", "data": [
                    {"id": MODEL, "object": "model", "created": 1751900000, "owned_by": "mock"}]})
            self.reply(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("content-length", 0)))
            try:
                body = json.loads(raw)
            except ValueError:
                log({"path": self.path, "raw": raw.decode(errors="replace")})
                return self.reply(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
            if self.path.split("?")[0] != "/v1/chat/completions":
                log({"path": self.path, "body": body, "reply": "404"})
                return self.reply(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            answer = decide(body)
            entry = {"path": self.path, "body": body, "reply": answer[0]}
            if answer[0] == "tool_call":
                entry.update(tool=answer[1], arguments=answer[2], marker=answer[3])
            else:
                entry["text"] = answer[1]
            log(entry)
            ident, created = "chatcmpl-" + secrets.token_hex(12), int(time.time())
            if not body.get("stream"):
                return self.reply(200, completion(body, answer, ident, created))
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            events = [f"data: {json.dumps(c)}\n\n" for c in chunks(body, answer, ident, created)]
            for event in events + ["data: [DONE]\n\n"]:
                data = event.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                time.sleep(0.002)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that hung up: not news
                super().handle_error(request, client_address)

    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
