#!/usr/bin/env bash
# Installs libziti (for zrok) from PyPI into ${LLM_GATEWAY_CACHE:-~/.cache/llm-gateway}/ziti,
# where the gateway looks when ZITI_LIB_PATH is unset.
set -euo pipefail
source "$(dirname "$0")/lib/assets.sh"
ensure_libziti
echo "libziti ready: $ZITI_LIB"
