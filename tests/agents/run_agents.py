"""Real agent clients through the gateway, offline: Claude Code (Anthropic Messages API) and
Codex CLI (OpenAI Responses API), each asked to "run the marker command" against
mock_upstream.py, an OpenAI-compatible upstream that answers with one shell tool call running
`echo MARKER-<random>` and, once the tool's output comes back, with "The command printed: …".

A client passes only when it really ran the tool (the mock received a `role: tool` message
holding the marker it handed out) and printed the final answer with that marker. On failure the
gateway's log, a summary of the mock's requests and the client's output are printed.

Usage: python3 run_agents.py [claude|codex ...]      (default: both)
  CLAUDE_BIN, CODEX_BIN   the clients (scripts/lib/assets.sh's ensure_agents sets them)
  LLM_GATEWAY_BIN         the gateway (default target/debug/llm-gateway)
  AGENT_TIMEOUT           seconds per client run (default 120)
  KEEP_AGENT_LOGS=1       keep the temp dir (mock log with whole bodies, homes) and print it

What the clients do (Claude Code 2.1.328, Codex CLI 0.169.0, both offline):
- Claude Code: `claude -p PROMPT --model M --allowedTools Bash` with ANTHROPIC_BASE_URL (no /v1)
  and ANTHROPIC_AUTH_TOKEN (sent as `authorization: Bearer`) sends `POST /v1/messages?beta=true`,
  `stream: true`, ~12 tools with JSON Schemas (`Bash` among them), `system` as blocks, `thinking`,
  `context_management`; it accepts an SSE stream message_start → content_block_start/delta/stop →
  message_delta → message_stop. With `--allowedTools Bash` it runs a returned `tool_use` for Bash
  without asking, sends the `tool_result` and prints the final text. A small/fast model (also a
  `claude-*` id) may be used for side requests.
- Codex: `codex exec --skip-git-repo-check --dangerously-bypass-approvals-and-sandbox PROMPT`
  reads $HOME/.codex/config.toml (a `model_providers` entry with `wire_api = "responses"`;
  "chat" is refused by this version) and sends `POST {base_url}/responses`, `stream: true`,
  `store: false` (the whole conversation again each turn as `input` items), function tools
  (`exec_command` with `{cmd}`, …) plus non-function tools (`namespace`, `web_search`). A turn
  ends only with `response.completed`; a stream without it is retried.
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "sdk"))
from harness import Gateway, binary  # noqa: E402

KEY = "sk-gw-agents-0123456789abcdef"
PROMPT = "run the marker command"
TIMEOUT = int(os.environ.get("AGENT_TIMEOUT", "120"))
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
    - name: agent
      key: {key}
"""
CODEX_CONFIG = """model = "gpt-5"
model_provider = "gw"

[model_providers.gw]
name = "gateway"
base_url = "{base_url}"
env_key = "GW_KEY"
wire_api = "responses"
request_max_retries = 1
stream_max_retries = 1
"""


class Mock:
    """mock_upstream.py in a subprocess; its JSON-lines request log."""

    def __init__(self, log: pathlib.Path):
        self.log = log
        self.proc = subprocess.Popen([sys.executable, str(HERE / "mock_upstream.py"), str(log)],
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        port = self.proc.stdout.readline().strip()
        if not port.isdigit():
            sys.exit(f"mock upstream did not start (printed {port!r})")
        self.url = f"http://127.0.0.1:{port}"

    def entries(self):
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def clean_env(home: pathlib.Path, **extra) -> dict:
    """The caller's environment without any client or provider settings, plus a fresh HOME."""
    drop = ("ANTHROPIC_", "CLAUDE", "OPENAI_", "CODEX_", "OTEL_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache"),
               NO_COLOR="1", **extra)
    return env


def run_claude(gateway, tmp: pathlib.Path):
    home = tmp / "claude-home"
    home.mkdir()
    env = clean_env(home, ANTHROPIC_BASE_URL=f"http://{gateway.addr}", ANTHROPIC_AUTH_TOKEN=KEY,
                    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_AUTOUPDATER="1",
                    DISABLE_TELEMETRY="1", DISABLE_ERROR_REPORTING="1")
    cmd = [os.environ.get("CLAUDE_BIN", "claude"), "-p", PROMPT, "--model", "claude-sonnet-4-5",
           "--allowedTools", "Bash"]
    return cmd, env


def run_codex(gateway, tmp: pathlib.Path):
    home = tmp / "codex-home"
    (home / ".codex").mkdir(parents=True)
    (home / ".codex" / "config.toml").write_text(CODEX_CONFIG.format(base_url=gateway.base_url))
    env = clean_env(home, GW_KEY=KEY, CODEX_HOME=str(home / ".codex"))
    cmd = [os.environ.get("CODEX_BIN", "codex"), "exec", "--skip-git-repo-check",
           "--dangerously-bypass-approvals-and-sandbox", PROMPT]
    return cmd, env


CLIENTS = {"claude": run_claude, "codex": run_codex}


def check(name, entries, output):
    """None if the client ran the tool and printed the marker; else what went wrong."""
    calls = [e for e in entries if e.get("reply") == "tool_call"]
    if not entries:
        return "the upstream received no request"
    if not calls:
        return "the upstream never saw a shell tool in a request, so it made no tool call"
    markers = {e["marker"] for e in calls}
    seen = {m for e in entries for msg in (e.get("body") or {}).get("messages") or []
            if msg.get("role") == "tool" for m in markers if m in json.dumps(msg.get("content"))}
    if not seen:
        return f"no tool result with the marker ({', '.join(sorted(markers))}) reached the upstream: the tool did not run"
    printed = [m for m in seen if m in output]
    if not printed:
        return f"the tool ran ({', '.join(sorted(seen))}) but the client did not print the final answer"
    return None


def summary(entries):
    """One line per request: path, model, tool names, message roles, what the mock answered."""
    lines = []
    for i, e in enumerate(entries):
        body = e.get("body") or {}
        tools = [(t.get("function") or t).get("name") for t in body.get("tools") or []]
        msgs = body.get("messages") or []
        roles = [m.get("role") for m in msgs]
        lines.append(f"  #{i} {e.get('path')} model={body.get('model')} stream={body.get('stream')} "
                     f"tools={tools} roles={roles} -> {e.get('reply')} {e.get('tool', '')}"
                     f"{json.dumps(e.get('arguments')) if 'arguments' in e else ''}{e.get('text', '')}")
        tail = [m for m in msgs if m.get("role") in ("tool", "assistant")]
        for m in tail:
            lines.append(f"      {m.get('role')}: {json.dumps({k: v for k, v in m.items() if k != 'role'})[:600]}")
    return "\n".join(lines)


def main():
    names = sys.argv[1:] or list(CLIENTS)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="llm-gateway-agents-"))
    mock = Mock(tmp / "mock-requests.jsonl")
    gateway = Gateway(binary(), CONFIG.format(upstream=mock.url, key=KEY))
    failed = []
    try:
        for name in names:
            work = tmp / f"{name}-work"
            work.mkdir()
            cmd, env = CLIENTS[name](gateway, tmp)
            before, log_before = len(mock.entries()), len(gateway.log)
            print(f"--> {name}: {' '.join(cmd[:1] + [repr(a) if ' ' in a else a for a in cmd[1:]])}", flush=True)
            try:
                done = subprocess.run(cmd, env=env, cwd=work, stdin=subprocess.DEVNULL, capture_output=True,
                                      text=True, timeout=TIMEOUT)
                output, status = done.stdout + done.stderr, f"exit {done.returncode}"
                stdout = done.stdout
            except subprocess.TimeoutExpired as e:
                text = lambda b: b.decode(errors="replace") if isinstance(b, bytes) else (b or "")
                output, status, stdout = text(e.stdout) + text(e.stderr), f"timed out after {TIMEOUT} s", text(e.stdout)
            entries = mock.entries()[before:]
            problem = check(name, entries, stdout)
            if problem is None and "exit 0" != status:
                problem = f"the client ended with {status}"
            if problem is None:
                print(f"    ok: {name} ran the tool through the gateway ({len(entries)} upstream requests, {status})")
                continue
            failed.append(name)
            print(f"FAILED: {name}: {problem} ({status})")
            print(f"---- {name}'s output ----\n{output.strip()[-8000:]}")
            print(f"---- the mock upstream's requests during {name} ({len(entries)}) ----\n{summary(entries)}")
            print(f"---- the gateway's log during {name} ----\n{''.join(gateway.log[log_before:])[-8000:]}", flush=True)
    finally:
        gateway.stop()
        mock.stop()
        if os.environ.get("KEEP_AGENT_LOGS") or failed:
            print(f"(temp dir kept: {tmp}; whole request bodies in {mock.log})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    passed = len(names) - len(failed)
    print(f"agents: {passed} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
