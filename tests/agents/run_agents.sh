#!/usr/bin/env bash
# Installs Claude Code and Codex CLI into the asset cache (instant when already there) and runs
# run_agents.py against target/debug/llm-gateway (or $LLM_GATEWAY_BIN).
# Usage: tests/agents/run_agents.sh [claude|codex ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/assets.sh
ensure_agents
CLAUDE_BIN="$CLAUDE_BIN" CODEX_BIN="$CODEX_BIN" exec python3 tests/agents/run_agents.py "$@"
