#!/usr/bin/env bash
# The routing evaluation: accuracy per layer and overall, and the confusion matrix, for
# fixtures/routing/config.yaml (or the config given as $1, e.g. fixtures/routing/config-seed.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-embeddings.sh >/dev/null
export ROUTING_EVAL_CONFIG="$(realpath "${1:-fixtures/routing/config.yaml}")"
cargo test --release --quiet --test routing_eval -- --nocapture
