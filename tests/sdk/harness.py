"""Shared by the SDK tests: run the real gateway binary on 127.0.0.1:0 and a mock upstream
that serves the recorded OpenAI fixtures (the same ones the Rust tests use)."""
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "upstream" / "openai"
ANTHROPIC = ROOT / "fixtures" / "upstream" / "anthropic"


class JsonHandler(BaseHTTPRequestHandler):
    """The mock upstreams' base: HTTP/1.1 keep-alive, quiet, and a JSON reply helper."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Gateway:
    """`llm-gateway run` on a config written to a temp file; the address comes from its log."""

    def __init__(self, binary: str, config: str):
        self.dir = tempfile.TemporaryDirectory()
        path = pathlib.Path(self.dir.name) / "config.yaml"
        path.write_text(config)
        self.proc = subprocess.Popen(
            [binary, "run", str(path), "--address", "127.0.0.1:0"],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        )
        self.log = []
        ready = threading.Event()

        def pump():
            for line in self.proc.stderr:
                self.log.append(line)
                if "listening on " in line:
                    self.addr = line.split("listening on ", 1)[1].strip()
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(30):
            self.stop()
            sys.exit("gateway did not start:\n" + "".join(self.log))
        self.base_url = f"http://{self.addr}/v1"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self.dir.cleanup()


class MockUpstream:
    """OpenAI's wire format from fixtures; records every request body."""

    def __init__(self):
        self.bodies = []
        self.headers = []
        mock = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, content_type, body):
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/v1/models":
                    self.reply(200, "application/json", (FIXTURES / "models.json").read_bytes())
                else:
                    self.reply(404, "application/json", b'{"error":"not found"}')

            def stream(self, events):
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for event in events:
                    chunk = event.encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                    time.sleep(0.005)
                self.wfile.write(b"0\r\n\r\n")

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                mock.headers.append(dict(self.headers))
                if self.path.startswith("/v1/audio/"):
                    # The rest of the surface: the raw body (a multipart upload, or JSON).
                    mock.bodies.append((self.path, body))
                    if self.path == "/v1/audio/speech":
                        return self.reply(200, "audio/mpeg", b"ID3\x04\x00 mock speech")
                    return self.reply(200, "application/json", b'{"text": "Hello from the mock."}')
                mock.bodies.append((self.path, json.loads(body)))
                request = json.loads(body)
                if self.path == "/v1/messages":
                    tools = request["model"] == "claude-tools"
                    if request.get("stream"):
                        name = "stream-tools.sse" if tools else "stream-text.sse"
                        text = (ANTHROPIC / name).read_text()
                        return self.stream([e + "\n\n" for e in text.split("\n\n") if e.strip()])
                    name = "message-tools.json" if tools else "message.json"
                    return self.reply(200, "application/json", (ANTHROPIC / name).read_bytes())
                if self.path == "/v1/embeddings":
                    return self.reply(200, "application/json", (FIXTURES / "embeddings.json").read_bytes())
                if self.path == "/v1/completions":
                    return self.reply(200, "application/json", (FIXTURES / "completions.json").read_bytes())
                if request.get("model") == "error-401":
                    return self.reply(401, "application/json", (FIXTURES / "error-401.json").read_bytes())
                if not request.get("stream"):
                    return self.reply(200, "application/json", (FIXTURES / "chat.json").read_bytes())
                text = (FIXTURES / "chat-stream.sse").read_text()
                # The usage chunk only when asked for, as OpenAI does.
                usage = (request.get("stream_options") or {}).get("include_usage") is True
                self.stream([e + "\n\n" for e in text.split("\n\n") if e.strip() and (usage or '"choices":[]' not in e)])

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def stop(self):
        self.server.shutdown()


def binary() -> str:
    return os.environ.get("LLM_GATEWAY_BIN", str(ROOT / "target" / "debug" / "llm-gateway"))
