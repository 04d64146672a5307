#!/usr/bin/env bash
# The routing evaluation: accuracy per layer and per route, the confusion matrix and the
# misrouted prompts on the labelled set (fixtures/routing/prompts.txt), for
# fixtures/routing/config.yaml or the config given as $1 (e.g. fixtures/routing/config-seed.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-embeddings.sh >/dev/null
cargo run --release --locked --quiet -- route "${1:-fixtures/routing/config.yaml}" --eval fixtures/routing/prompts.txt
