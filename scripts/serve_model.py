"""Serve a GGUF model with llama.cpp's own HTTP server (embedded by the xllamacpp wheel).

Usage: python serve_model.py MODEL.gguf PORT ALIAS

Binds 127.0.0.1:PORT, asks itself for one short completion so the model is warm, prints a
single `READY <url> model=<alias>` line, then serves until SIGINT or SIGTERM.
"""
import json
import signal
import sys
import threading
import urllib.request

import xllamacpp


def main() -> None:
    model, port, alias = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    params = xllamacpp.CommonParams()
    params.model.path = model
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.model_alias = {alias}
    params.n_ctx = 4096
    params.n_parallel = 4
    params.cpuparams.n_threads = 2
    params.cpuparams_batch.n_threads = 2
    server = xllamacpp.Server(params)

    body = {"model": alias, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        json.dumps(body).encode(),
        {"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=300) as reply:
        json.load(reply)
    print(f"READY {server.listening_address} model={alias}", flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


if __name__ == "__main__":
    main()
