"""Shared by the observability tests: free ports, a controllable OpenAI-compatible mock
upstream, the gateway binary, a real Prometheus, and process clean-up by PID."""
import json
import math
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import ThreadingHTTPServer

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "sdk"))
from harness import JsonHandler  # noqa: E402  (stdlib only: any python3 runs it)
DEPLOY = ROOT / "deploy"
MODELS = ["gpt-ok", "gpt-slow", "gpt-err", "gpt-flaky", "gpt-hold", "llama-ok"]

_procs = []
_dirs = []


def tempdir(prefix):
    """A temporary directory, removed when the test passes and kept (with its logs) when it fails."""
    d = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    _dirs.append(d)
    return d


def cleanup():
    """Removes the test's temporary directories; called once everything passed."""
    stop_all()
    for d in _dirs:
        shutil.rmtree(d, ignore_errors=True)


def stop_all():
    """Ends every process this test started, newest first, by PID."""
    while _procs:
        p = _procs.pop()
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def spawn(args, **kw):
    p = subprocess.Popen(args, **kw)
    _procs.append(p)
    return p


def stop(p):
    if p.poll() is None:
        p.terminate()
        p.wait(10)
    if p in _procs:
        _procs.remove(p)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fail(msg):
    stop_all()
    kept = f" (logs kept in {', '.join(map(str, _dirs))})" if _dirs else ""
    sys.exit("FAIL: " + msg + kept)


def wait_for(what, check, timeout=30, every=0.25):
    """Polls `check` until it returns something truthy; fails the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def http(method, url, body=None, headers=None, timeout=60):
    """(status, headers, body bytes); HTTP errors are answers, not exceptions."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
    except (urllib.error.URLError, ConnectionError, socket.timeout) as e:
        return 0, {}, str(e).encode()


def chat(base, key, model, stream=False, timeout=60):
    return http("POST", f"{base}/v1/chat/completions",
                {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]},
                {"authorization": f"Bearer {key}"}, timeout)


class Mock:
    """An OpenAI-compatible upstream whose faults the test switches on and off:
    `down` fails its health probe, `fail` makes gpt-err answer 500, `slow` delays gpt-slow's
    first streamed token by that many seconds, `hold` delays gpt-hold's answer. gpt-flaky
    always answers 500 (to exercise fallbacks)."""

    def __init__(self):
        self.down = False
        self.fail = False
        self.slow = 0.0
        self.hold = 0.0
        self.requests = 0
        mock = self

        class Handler(JsonHandler):
            def do_GET(self):
                if self.path == "/v1/models" and not mock.down:
                    return self.reply(200, {"object": "list", "data": [
                        {"id": m, "object": "model", "created": 0, "owned_by": "mock"} for m in MODELS]})
                self.reply(503, {"error": {"message": "down", "type": "server_error"}})

            def do_POST(self):
                request = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                mock.requests += 1
                model = request.get("model", "")
                if model == "gpt-flaky" or (model == "gpt-err" and mock.fail):
                    return self.reply(500, {"error": {"message": "mock failure", "type": "server_error"}})
                if model == "gpt-hold":
                    time.sleep(mock.hold)
                usage = {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}
                if not request.get("stream"):
                    return self.reply(200, {
                        "id": "c1", "object": "chat.completion", "created": 0, "model": model, "usage": usage,
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": "hello there"}}]})
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                if model == "gpt-slow":
                    time.sleep(mock.slow)
                events = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": w}}]}
                          for w in ("hello", " there")]
                events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                if (request.get("stream_options") or {}).get("include_usage"):
                    events.append({"choices": [], "usage": usage})
                for e in events:
                    e.update({"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": model})
                    chunk = f"data: {json.dumps(e)}\n\n".encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                done = b"data: [DONE]\n\n"
                self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # A client (the gateway) that hangs up mid-answer is part of some tests, not an error.
        self.server.handle_error = lambda *args: None
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"


def gateway_binary():
    if os.environ.get("LLM_GATEWAY_BIN"):
        return os.environ["LLM_GATEWAY_BIN"]
    for profile in ("debug", "release"):
        b = ROOT / "target" / profile / "llm-gateway"
        if b.exists():
            return str(b)
    fail("no gateway binary: build it, or set LLM_GATEWAY_BIN")


class Gateway:
    """`llm-gateway run CONFIG` on a free port; stderr kept for failure reports."""

    def __init__(self, config_path, env=None, port=None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(tempdir("llm-gateway-") / "gateway.log", "w")
        self.proc = spawn([gateway_binary(), "run", str(config_path), "--address", f"127.0.0.1:{self.port}"],
                          stdout=subprocess.DEVNULL, stderr=self.log, env={**os.environ, **(env or {})})
        wait_for(f"the gateway on {self.url} (log: {self.log.name})", self.up)

    def up(self):
        if self.proc.poll() is not None:
            fail("the gateway exited:\n" + self.tail())
        return http("GET", self.url + "/health", timeout=2)[0] == 200

    def tail(self, n=30):
        return "".join(pathlib.Path(self.log.name).read_text().splitlines(True)[-n:])

    def stop(self):
        stop(self.proc)


class Prometheus:
    """A real Prometheus on a free port with its own storage, scraping and evaluating every 1 s."""

    def __init__(self, targets, rules=None, shipped=None):
        """`shipped`: a shipped prometheus.yml to run instead of a generated one, with its
        intervals, targets and rule file rewritten for the test."""
        self.dir = str(tempdir("prometheus-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        rules_path = pathlib.Path(self.dir) / "alerts.yml"
        if rules:
            rules_path.write_text(rules)
        if shipped:
            text = re.sub(r"(?m)^(\s*(scrape|evaluation)_interval:\s*)\S+", r"\g<1>1s", shipped)
            text = re.sub(r"(?m)^(\s*- targets:\s*).*$", r"\g<1>" + json.dumps(targets), text)
            text = re.sub(r"(?m)^(\s*- )\S*alerts\.yml$", r"\g<1>" + str(rules_path), text)
        else:
            config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                      "scrape_configs": [{"job_name": "llm-gateway", "static_configs": [{"targets": targets}]}]}
            if rules:
                config["rule_files"] = [str(rules_path)]
            # JSON is YAML: no YAML library needed.
            text = json.dumps(config)
        (pathlib.Path(self.dir) / "prometheus.yml").write_text(text)
        self.log = open(pathlib.Path(self.dir) / "prometheus.log", "w")
        self.proc = spawn([shutil.which("prometheus") or fail("prometheus is not installed"),
                           f"--config.file={self.dir}/prometheus.yml", f"--storage.tsdb.path={self.dir}/data",
                           f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                          stdout=self.log, stderr=self.log)
        wait_for("Prometheus to be ready", lambda: http("GET", self.url + "/-/ready", timeout=2)[0] == 200)

    def query(self, expr):
        status, _, body = http("GET", self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        answer = json.loads(body or b"{}")
        if status != 200 or answer.get("status") != "success":
            fail(f"query {expr!r} failed: {status} {body[:500]!r}")
        return answer["data"]["result"]

    def values(self, expr):
        """The finite values of an instant query's answer."""
        out = []
        for r in self.query(expr):
            v = float(r["value"][1])
            if math.isfinite(v):
                out.append(v)
        return out

    def alerts(self, state="firing"):
        _, _, body = http("GET", self.url + "/api/v1/alerts")
        return [a for a in json.loads(body)["data"]["alerts"] if a["state"] == state]

    def close(self):
        stop(self.proc)
        self.log.close()


def short_for(rules_text, duration="2s"):
    """The shipped rules with every `for:` shortened, so a test sees a fault fire in seconds
    rather than minutes; expressions and their windows stay as shipped."""
    return re.sub(r"(?m)^(\s*for:\s*)\S+", r"\g<1>" + duration, rules_text)
