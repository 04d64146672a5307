"""An OpenAI-compatible upstream for the deployment tests: one model, canned chat replies.
Standalone (stdlib only, no imports from the other tests): it is also copied into a stand-in
llama.cpp image by compose_up.sh.

Usage: mock_upstream.py PORT_FILE [MODEL]. Binds 0.0.0.0 (containers reach it over podman's
network) on $MOCK_PORT, else a free port, and writes the port to PORT_FILE once it listens.
"""
import http.server
import json
import os
import sys
import time

MODEL = sys.argv[2] if len(sys.argv) > 2 else "mock-model"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path in ("/v1/models", "/models"):
            self.reply(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "mock"}]})
        elif self.path == "/health":
            self.reply(200, {"status": "ok"})
        else:
            self.reply(404, {"error": {"message": "not found"}})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"{}")
        if self.path != "/v1/chat/completions":
            self.reply(404, {"error": {"message": "not found"}})
            return
        # The reply names the model and the last message, so the caller can tell it came from here.
        text = "mock reply to: " + str(body.get("messages", [{}])[-1].get("content", ""))
        self.reply(200, {
            "id": "chatcmpl-mock", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", MODEL),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        })


server = http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("MOCK_PORT", "0"))), Handler)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
# Renamed into place, so the port file appears only when complete.
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
server.serve_forever()
