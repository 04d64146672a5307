#!/usr/bin/env bash
# deploy/systemd/llm-gateway.service run by a real systemd: CI's PID 1 is not systemd, so
# systemd boots as PID 1 of a privileged podman container (Debian bookworm with systemd), and
# the install steps of docs/deployment.md run in it: the unit and /etc/llm-gateway/config.yaml
# as shipped (upstream pointed at a mock on the host), a key added with the documented
# systemd-run command, then start, a chat completion with the key, the key removed while
# running, `systemctl reload`, `systemctl stop`. Checks the service's uid is dynamic and
# unprivileged, NoNewPrivileges and the seccomp filter are in force.
# Usage: tests/deploy/systemd_service.sh BINARY
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/assets.sh
BIN="$(realpath "$1")"
ensure_deploy_tools

work="$(mktemp -d)"
name="llm-gateway-systemd-test-$$"
cleanup() {
    "${PODMAN[@]}" rm -f -t 2 "$name" >/dev/null 2>&1 || true
    [ -n "${MOCK_PID:-}" ] && kill "$MOCK_PID" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
. tests/deploy/podman.sh
ensure_base_image

IMAGE=localhost/llm-gateway-test/debian:bookworm-systemd
if ! "${PODMAN[@]}" image exists "$IMAGE"; then
    echo "==> making the systemd test image (systemd, dbus for systemd-run --wait, procps for /bin/kill, curl; from Debian)" >&2
    mkdir -p "$work/image"
    cat >"$work/image/Containerfile" <<EOF2
FROM $BASE
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    systemd systemd-sysv dbus procps curl >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/*
EOF2
    "${PODMAN[@]}" build -q "${ULIMITS[@]}" --network host -t "$IMAGE" "$work/image" >/dev/null 2>"$work/build.err" \
        || { cat "$work/build.err" >&2; exit 1; }
fi

start_mock
# Privileged: systemd sets up the unit's namespaces, seccomp filter and dynamic user itself.
"${PODMAN[@]}" run -d --name "$name" --privileged --systemd=always "${ULIMITS[@]}" \
    -v "$BIN:/usr/local/bin/llm-gateway:ro" "$IMAGE" /sbin/init >/dev/null 2>"$work/podman.err" \
    || { cat "$work/podman.err" >&2; exit 1; }
inside() { "${PODMAN[@]}" exec "$name" "$@"; }
state=""
for _ in $(seq 100); do
    state="$(inside systemctl is-system-running 2>/dev/null || true)"
    case "$state" in running|degraded) break ;; esac
    sleep 0.2
done
case "$state" in
    running|degraded) ;;
    *) echo "systemd in the container did not finish booting in 20 s (state: ${state:-none})" >&2; exit 1 ;;
esac
sed "s|http://127.0.0.1:8081|http://host.containers.internal:$MOCK_PORT|" deploy/systemd/etc-llm-gateway/config.yaml \
    >"$work/config.yaml"
grep -q "host.containers.internal:$MOCK_PORT" "$work/config.yaml"
"${PODMAN[@]}" cp deploy/systemd/llm-gateway.service "$name:/etc/systemd/system/llm-gateway.service"
inside install -d /etc/llm-gateway
"${PODMAN[@]}" cp "$work/config.yaml" "$name:/etc/llm-gateway/config.yaml"
inside chmod 0644 /etc/llm-gateway/config.yaml /etc/systemd/system/llm-gateway.service
inside systemctl daemon-reload

keys() { # the documented way to run `llm-gateway keys` as the service's dynamic user
    inside systemd-run --wait --collect --quiet -p DynamicUser=yes -p User=llm-gateway -p StateDirectory=llm-gateway \
        -p StandardOutput=file:/run/keys.out \
        /usr/local/bin/llm-gateway keys --file /var/lib/llm-gateway/keys.yaml "$@"
}
keys add alice --models '*'
key="$(inside head -n1 /run/keys.out)"
case "$key" in sk-gw-*) ;; *) echo "keys add printed '$key', not a key" >&2; exit 1 ;; esac

fail() { echo "systemd service test: $*" >&2; inside journalctl -u llm-gateway --no-pager -n 30 >&2 || true; exit 1; }
inside systemctl start llm-gateway
for _ in $(seq 100); do inside curl -fsS localhost:8080/ready >/dev/null 2>&1 && break; sleep 0.1; done
inside curl -fsS localhost:8080/health >/dev/null || fail "/health"
inside curl -fsS localhost:8080/ready >/dev/null || fail "/ready"
chat() { inside curl -s -o /dev/null -w '%{http_code}' localhost:8080/v1/chat/completions -H "authorization: Bearer $1" \
    -H 'content-type: application/json' -d '{"model":"mock-model","messages":[{"role":"user","content":"hi"}]}'; }
[ "$(chat "$key")" = 200 ] || fail "a chat completion with alice's key did not get 200"
[ "$(chat sk-not-a-key-123)" = 401 ] || fail "an unknown key did not get 401"

pid="$(inside systemctl show -p MainPID --value llm-gateway)"
status="$(inside cat "/proc/$pid/status")"
uid="$(echo "$status" | awk '/^Uid:/ {print $2}')"
[ "$uid" -ge 61184 ] && [ "$uid" -le 65519 ] || fail "uid $uid is not in systemd's dynamic range"
echo "$status" | grep -qE '^NoNewPrivs:\s+1$' || fail "NoNewPrivs is not set"
echo "$status" | grep -qE '^CapEff:\s+0+$' || fail "the service has capabilities"
echo "$status" | grep -qE '^Seccomp:\s+2$' || fail "no seccomp filter"

keys remove alice
for _ in $(seq 50); do [ "$(chat "$key")" = 401 ] && break; sleep 0.1; done
[ "$(chat "$key")" = 401 ] || fail "alice's key still works after keys remove"

inside systemctl reload llm-gateway || fail "systemctl reload"
[ "$(inside systemctl show -p MainPID --value llm-gateway)" = "$pid" ] || fail "reload restarted the process"
inside curl -fsS localhost:8080/health >/dev/null || fail "/health after reload"
inside systemctl stop llm-gateway
[ "$(inside systemctl show -p Result --value llm-gateway)" = success ] || fail "stop: the service did not exit cleanly"
echo "systemd service: started under systemd (uid $uid, no capabilities, seccomp), key added and removed live, reloaded, stopped cleanly"
