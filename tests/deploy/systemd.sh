#!/usr/bin/env bash
# deploy/systemd without running systemd (CI's PID 1 is not systemd): the unit passes
# `systemd-analyze verify` with no warning at all, its offline exposure score stays at or below
# 2.0 (systemd-analyze counts the threshold in tenths: 20), the example /etc/llm-gateway config passes `llm-gateway check`, and
# MemoryDenyWriteExecute holds with ONNX Runtime and libziti (tests/deploy/mdwe.py).
# Usage: tests/deploy/systemd.sh BINARY
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/assets.sh
BIN="$(realpath "$1")"
ensure_deploy_tools
ensure_embedding_model
ensure_libziti

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# verify needs ExecStart's binary to exist: the unit as shipped, pointed at the one under test.
sed "s|/usr/local/bin/llm-gateway|$BIN|" deploy/systemd/llm-gateway.service >"$work/llm-gateway.service"
grep -q "^ExecStart=$BIN run /etc/llm-gateway/config.yaml" "$work/llm-gateway.service"
# Unknown keys and bad values are only warnings (exit 0), so any output fails the test.
if ! out="$(systemd-analyze verify "$work/llm-gateway.service" 2>&1)" || [ -n "$out" ]; then
    echo "systemd-analyze verify:" >&2
    echo "$out" >&2
    exit 1
fi
systemd-analyze security --offline=true --threshold=20 --no-pager "$work/llm-gateway.service" >"$work/security.txt" \
    || { cat "$work/security.txt" >&2; echo "exposure above 2.0 (threshold 20 in tenths)" >&2; exit 1; }
echo "systemd unit: verify clean; $(grep -o 'Overall exposure level.*' "$work/security.txt")"
for want in DynamicUser=yes ProtectSystem=strict NoNewPrivileges=yes 'ExecReload=/bin/kill -HUP $MAINPID' \
    MemoryDenyWriteExecute=yes SystemCallFilter=@system-service; do
    grep -qxF "$want" deploy/systemd/llm-gateway.service || { echo "the unit lost $want" >&2; exit 1; }
done

echo 'keys: []' >"$work/keys.yaml"
chmod 600 "$work/keys.yaml"
sed "s|/var/lib/llm-gateway/keys.yaml|$work/keys.yaml|" deploy/systemd/etc-llm-gateway/config.yaml >"$work/config.yaml"
"$BIN" check "$work/config.yaml"

python3 tests/deploy/mdwe.py "$BIN" "$EMBED_DIR" "$ZITI_LIB"
