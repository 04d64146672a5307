#!/usr/bin/env bash
# Builds deploy/container/Containerfile with podman and runs the result against a mock upstream:
# /health, /ready, one chat completion, the uid, the image size; then the `full` target (builtin
# embedder + libziti) with a semantic-routing config, which only starts if ONNX Runtime loads.
#
# No registry is reachable in CI, so the Containerfile's FROM images are stood in for
# (tests/deploy/podman.sh):
#   RUNTIME_IMAGE  a Debian bookworm minbase made with debootstrap (cached in $LLM_GATEWAY_CACHE)
#   BUILDER_IMAGE  that base plus the binary under test and a `cargo` that installs it
#   PYTHON_IMAGE   that base too: the assets stages find everything in the mounted cache
# Usage: tests/deploy/container.sh [BINARY]   (default: $LLM_GATEWAY_BIN, else target/release/llm-gateway)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/assets.sh

BIN="${1:-${LLM_GATEWAY_BIN:-target/release/llm-gateway}}"
[ -x "$BIN" ] || { echo "container test: no binary at $BIN" >&2; exit 1; }
cmp -s .containerignore .dockerignore || { echo ".containerignore and .dockerignore differ" >&2; exit 1; }
ensure_deploy_tools
ensure_embedding_model
ensure_libziti

work="$(mktemp -d)"
containers=()
cleanup() {
    for c in "${containers[@]}"; do "${PODMAN[@]}" rm -f -t 2 "$c" >/dev/null 2>&1 || true; done
    [ -n "${MOCK_PID:-}" ] && kill "$MOCK_PID" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

. tests/deploy/podman.sh
# Podman without systemd logs an error for each healthcheck timer it cannot add or remove;
# such stderr is shown only when the command fails.
ensure_base_image

ensure_builder_image "$BIN"

build() { # TARGET TAG
    # --format docker keeps HEALTHCHECK (the OCI format has no such field).
    "${PODMAN[@]}" build -q --format docker "${ULIMITS[@]}" -f deploy/container/Containerfile --target "$1" \
        --build-arg BUILDER_IMAGE=localhost/llm-gateway-test/builder \
        --build-arg RUNTIME_IMAGE="$BASE" --build-arg PYTHON_IMAGE="$BASE" \
        --build-arg ASSET_CACHE=/cache -v "$CACHE:/cache:ro" -t "$2" . >/dev/null
}
echo "==> podman build --target runtime"
build runtime localhost/llm-gateway-test/gateway:runtime
echo "==> podman build --target full (builtin embedder + libziti)"
build full localhost/llm-gateway-test/gateway:full

start_mock

# The container is on podman's bridge network, so the mock (listening on every interface) is
# host.containers.internal; the config is mounted read-only where the image's CMD reads it.
start() { # IMAGE CONFIG_DIR -> sets GW_URL, appends to containers
    local port name
    port="$(free_port)"
    name="llm-gateway-test-$$-${#containers[@]}"
    "${PODMAN[@]}" run -d --name "$name" "${ULIMITS[@]}" --read-only -p "127.0.0.1:$port:8080" \
        -v "$2:/etc/llm-gateway:ro" "$1" >/dev/null 2>"$work/podman.err" || { cat "$work/podman.err" >&2; return 1; }
    containers+=("$name")
    GW_URL="http://127.0.0.1:$port"
    for _ in $(seq 150); do
        curl -fsS "$GW_URL/ready" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "gateway container not ready; its log:" >&2
    "${PODMAN[@]}" logs "$name" >&2
    return 1
}

mkdir -p "$work/conf"
cat >"$work/conf/config.yaml" <<EOF2
metrics:
  enabled: true
providers:
  local:
    base_url: http://host.containers.internal:$MOCK_PORT
EOF2
chmod -R a+rX "$work"
echo "==> run the runtime image"
start localhost/llm-gateway-test/gateway:runtime "$work/conf"
c="${containers[-1]}"
curl -fsS "$GW_URL/health" | grep -q '"ok"'
curl -fsS "$GW_URL/ready" | grep -q '"ready"'
reply="$(curl -fsS "$GW_URL/v1/chat/completions" -H 'content-type: application/json' \
    -d '{"model":"mock-model","messages":[{"role":"user","content":"ping from the container test"}]}')"
echo "$reply" | grep -q 'mock reply to: ping from the container test' || { echo "unexpected reply: $reply" >&2; exit 1; }
curl -fsS "$GW_URL/metrics" | grep -q '^llm_gateway_requests_total' || { echo "no request metrics" >&2; exit 1; }
uid="$("${PODMAN[@]}" exec "$c" id -u)"
[ "$uid" = 65532 ] || { echo "the gateway runs as uid $uid, not 65532" >&2; exit 1; }
# The exit status is the verdict (what podman prints around it varies by version).
"${PODMAN[@]}" healthcheck run "$c" >"$work/health.out" 2>&1 || { echo "HEALTHCHECK failed:" >&2; cat "$work/health.out" >&2; exit 1; }
"${PODMAN[@]}" stop -t 10 "$c" >/dev/null 2>"$work/podman.err" || { cat "$work/podman.err" >&2; exit 1; }
code="$("${PODMAN[@]}" inspect -f '{{.State.ExitCode}}' "$c")"
[ "$code" = 0 ] || { echo "SIGTERM: exit code $code (want 0: drained and stopped)" >&2; "${PODMAN[@]}" logs "$c" >&2; exit 1; }

echo "==> run the full image with semantic routing (loads ONNX Runtime and the model)"
mkdir -p "$work/conf-full"
cat >"$work/conf-full/config.yaml" <<EOF2
providers:
  local:
    base_url: http://host.containers.internal:$MOCK_PORT
routing:
  default_route: chat
  semantic:
    enabled: true
    threshold: 0.2
  routes:
    - name: chat
      model: mock-model
      examples: ["say hello in French", "how are you today?", "tell me a fun fact"]
    - name: code
      model: mock-model
      examples: ["write a python function that sorts a list", "fix this bug in my code", "why does my program crash?"]
EOF2
chmod -R a+rX "$work"
start localhost/llm-gateway-test/gateway:full "$work/conf-full"
c="${containers[-1]}"
route="$(curl -fsS -o /dev/null -D - "$GW_URL/v1/chat/completions" -H 'content-type: application/json' \
    -d '{"model":"auto","messages":[{"role":"user","content":"please write a python function that reverses a list"}]}' \
    | tr -d '\r' | sed -n 's/^x-llm-gateway-route: //Ip')"
[ "$route" = code ] || { echo "semantic routing in the full image chose '$route', want 'code'" >&2; "${PODMAN[@]}" logs "$c" >&2; exit 1; }
"${PODMAN[@]}" exec "$c" sh -c 'test -s "$ZITI_LIB_PATH" && test -s "$LLM_GATEWAY_EMBED_DIR/libonnxruntime.so"'

size() { "${PODMAN[@]}" image inspect -f '{{.Size}}' "$1"; }
mb() { echo "$(( $1 / 1000000 )) MB"; }
base_size="$(size "$BASE")"
echo "image sizes: base (debootstrap minbase) $(mb "$base_size"); runtime +$(mb $(( $(size localhost/llm-gateway-test/gateway:runtime) - base_size ))); full +$(mb $(( $(size localhost/llm-gateway-test/gateway:full) - base_size )))"
for c in "${containers[@]}"; do "${PODMAN[@]}" rm -f -t 2 "$c" >/dev/null 2>&1; done
containers=()
"${PODMAN[@]}" rmi -f localhost/llm-gateway-test/gateway:runtime localhost/llm-gateway-test/gateway:full \
    localhost/llm-gateway-test/builder >/dev/null
"${PODMAN[@]}" image prune -f >/dev/null
echo "container test passed"
