#!/usr/bin/env bash
# deploy/compose.yaml brought up for real with podman-compose. The llama.cpp image cannot be
# pulled here, so an override file (the only change) swaps it for a local image serving
# tests/deploy/mock_upstream.py on the same port, and gives the gateway's build the local
# stand-ins for its FROM images (tests/deploy/podman.sh). The gateway service itself (build
# target, mounted config directory, environment, network name of the model server, published
# port) is as shipped: a chat completion through the published port must reach the "model".
# Usage: tests/deploy/compose_up.sh BINARY   (DEPLOY_PYTHON: a venv with podman-compose)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/assets.sh
BIN="$(realpath "$1")"
ensure_deploy_tools
ensure_deploy_python

work="$(mktemp -d)"
project="llm-gateway-compose-test-$$"
made_models=
compose() {
    "$(dirname "$DEPLOY_PYTHON")/podman-compose" --podman-args "${PODMAN[*]:1}" \
        --podman-build-args "${ULIMITS[*]}" --podman-run-args "${ULIMITS[*]}" \
        -p "$project" -f deploy/compose.yaml -f "$work/override.yaml" "$@"
}
cleanup() {
    compose down -t 2 >/dev/null 2>&1 || true
    [ -n "$made_models" ] && rmdir deploy/models 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
. tests/deploy/podman.sh
ensure_base_image
ensure_builder_image "$BIN"

MOCK_IMAGE=localhost/llm-gateway-test/mock-llama
if ! "${PODMAN[@]}" image exists "$MOCK_IMAGE"; then
    echo "==> making the stand-in llama.cpp image (python3 from Debian, tests/deploy/mock_upstream.py)" >&2
    mkdir -p "$work/mock"
    cat >"$work/mock/Containerfile" <<EOF2
FROM $BASE
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 >/dev/null \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
EOF2
    "${PODMAN[@]}" build -q "${ULIMITS[@]}" --network host -t "$MOCK_IMAGE" "$work/mock" >/dev/null 2>"$work/build.err" \
        || { cat "$work/build.err" >&2; exit 1; }
fi
cp tests/deploy/mock_upstream.py "$work/mock_upstream.py"
chmod a+r "$work/mock_upstream.py"
cat >"$work/override.yaml" <<EOF2
services:
  gateway:
    build:
      args:
        BUILDER_IMAGE: localhost/llm-gateway-test/builder
        RUNTIME_IMAGE: $BASE
    image: localhost/llm-gateway-test/compose-gateway
  llama-cpp:
    image: $MOCK_IMAGE
    command: ["python3", "/mock/mock_upstream.py", "/tmp/port", "local-model"]
    environment:
      MOCK_PORT: "8080"
    volumes:
      - $work:/mock:ro
EOF2
# The model directory the shipped file mounts (the docs have users create it).
[ -d deploy/models ] || { mkdir deploy/models; made_models=1; }

port="$(free_port)"
export LLM_GATEWAY_PORT="$port"
echo "==> podman-compose up (gateway built from the Containerfile, llama.cpp stood in for)"
compose up -d >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; exit 1; }
ready=
for _ in $(seq 150); do
    curl -fsS "127.0.0.1:$port/ready" >/dev/null 2>&1 && { ready=1; break; }
    sleep 0.2
done
if [ -z "$ready" ]; then
    echo "the compose gateway is not ready; logs:" >&2
    compose logs >&2 || true
    exit 1
fi
reply="$(curl -fsS "127.0.0.1:$port/v1/chat/completions" -H 'content-type: application/json' \
    -d '{"model":"local-model","messages":[{"role":"user","content":"hello from compose"}]}')"
echo "$reply" | grep -q 'mock reply to: hello from compose' || { echo "unexpected reply: $reply" >&2; exit 1; }
compose down -t 10 >"$work/down.log" 2>&1 || { cat "$work/down.log" >&2; exit 1; }
"${PODMAN[@]}" rmi -f localhost/llm-gateway-test/compose-gateway localhost/llm-gateway-test/builder >/dev/null 2>&1 || true
echo "compose: up, a chat completion through the gateway to the llama-cpp service, down"
