# Sourced by the container tests: podman set up for this kind of machine, the local base image
# that stands in for registry images, a free port, the mock upstream. Needs $CACHE (assets.sh)
# and $work (a temporary directory the caller removes).

# The sandbox this was written in allowed containers only with these: crun refuses cgroup v1/v2
# hybrid hosts (runc does not), and without CAP_SYS_RESOURCE the default RLIMIT_NPROC (above
# the host's hard limit) cannot be set. A storage root in the cache keeps the base images
# between runs and everything else out of /var/lib/containers; its runroot must not change
# between runs (podman's database records it) and is one per storage root.
PODMAN=(podman --root "$CACHE/podman/storage"
    --runroot "${TMPDIR:-/tmp}/llm-gateway-podman-run-$(id -u)-$(printf %s "$CACHE" | sha256sum | cut -c1-12)"
    --runtime runc --cgroup-manager cgroupfs --events-backend file)
[ -n "${LLM_GATEWAY_PODMAN_STORAGE_DRIVER:-}" ] && PODMAN+=(--storage-driver "$LLM_GATEWAY_PODMAN_STORAGE_DRIVER")
nofile="$(ulimit -Hn)"
[ "$nofile" = unlimited ] && nofile=1048576
ULIMITS=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=4096:4096")
BASE=localhost/llm-gateway-test/debian:bookworm-minbase

# Debian bookworm (minbase) from the Debian mirror, imported once.
ensure_base_image() {
    "${PODMAN[@]}" image exists "$BASE" && return 0
    echo "==> making the local base image (debootstrap --variant=minbase bookworm)" >&2
    debootstrap --variant=minbase bookworm "$work/rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
        || { tail -20 "$work/debootstrap.log" >&2; return 1; }
    tar -C "$work/rootfs" -c . | "${PODMAN[@]}" import -q - "$BASE" >/dev/null
    rm -rf "$work/rootfs"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# tests/deploy/mock_upstream.py on every interface (containers reach it as
# host.containers.internal). Sets MOCK_PID and MOCK_PORT; the caller kills MOCK_PID.
start_mock() {
    python3 tests/deploy/mock_upstream.py "$work/mock.port" &
    MOCK_PID=$!
    for _ in $(seq 100); do [ -s "$work/mock.port" ] && break; sleep 0.1; done
    MOCK_PORT="$(cat "$work/mock.port")"
}

# localhost/llm-gateway-test/builder: the base image plus BINARY and a `cargo` that installs it
# where `cargo build --profile dist` would, to stand in for the Containerfile's BUILDER_IMAGE:
# every stage and line of the Containerfile then runs as shipped except the compile itself.
ensure_builder_image() {
    mkdir -p "$work/builder"
    cp "$1" "$work/builder/llm-gateway"
    cat >"$work/builder/cargo" <<'SH'
#!/bin/sh
# Stands in for cargo: the binary under test is the build's output.
[ "$*" = "build --profile dist --locked" ] || { echo "fake cargo: unexpected arguments: $*" >&2; exit 1; }
[ -f Cargo.lock ] && [ -d src ] || { echo "fake cargo: the source is not in $(pwd)" >&2; exit 1; }
install -D -m 0755 /prebuilt/llm-gateway target/dist/llm-gateway
SH
    cat >"$work/builder/Containerfile" <<EOF2
FROM $BASE
COPY llm-gateway /prebuilt/llm-gateway
COPY cargo /usr/local/bin/cargo
EOF2
    chmod +x "$work/builder/cargo"
    "${PODMAN[@]}" build -q "${ULIMITS[@]}" -t localhost/llm-gateway-test/builder "$work/builder" >/dev/null
}
