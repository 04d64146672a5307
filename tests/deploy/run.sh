#!/usr/bin/env bash
# Every deployment test (deploy/, docs/deployment.md): the container image built and run with
# podman, the systemd unit, the Kubernetes manifests and their live reload, the compose file.
# Usage: tests/deploy/run.sh [BINARY]   (default: $LLM_GATEWAY_BIN, else target/release/llm-gateway)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/assets.sh
BIN="$(realpath "${1:-${LLM_GATEWAY_BIN:-target/release/llm-gateway}}")"
[ -x "$BIN" ] || { echo "deploy tests: no binary at $BIN" >&2; exit 1; }
# Every step below needs some of these, `podman-compose config` included (it runs
# `podman version` first), so they are installed before the first one.
ensure_deploy_tools
ensure_deploy_python
ensure_compose_schema

echo "==> deploy: Kubernetes manifests (kubernetes-validate, references, llm-gateway check)"
"$DEPLOY_PYTHON" tests/deploy/kubernetes.py "$BIN"
echo "==> deploy: ConfigMap and Secret updates the kubelet's way -> live reload"
python3 tests/deploy/kubelet_reload.py "$BIN"
echo "==> deploy: compose.yaml (podman-compose config, Compose spec schema, references)"
"$DEPLOY_PYTHON" tests/deploy/compose.py "$BIN" "$COMPOSE_SCHEMA"
echo "==> deploy: compose.yaml up with podman-compose (llama.cpp stood in for by a mock)"
tests/deploy/compose_up.sh "$BIN"
echo "==> deploy: systemd unit (systemd-analyze verify and security, MemoryDenyWriteExecute)"
tests/deploy/systemd.sh "$BIN"
echo "==> deploy: systemd unit started by systemd (PID 1 of a privileged container)"
tests/deploy/systemd_service.sh "$BIN"
echo "==> deploy: container image (podman build, run, smoke test)"
tests/deploy/container.sh "$BIN"
