#!/usr/bin/env bash
# Benchmarks: criterion (config compile, heuristic decisions, key lookup) and the end-to-end
# overhead harness (direct vs a minimal hyper proxy vs llm-gateway as shipped, access log on:
# every dialect pair streamed and whole, interleaved, pinned to one CPU; then throughput on
# every CPU at concurrency 64; one table of gateway/floor ratios at the end).
#   scripts/bench.sh            both
#   scripts/bench.sh overhead   only the overhead harness (ROUNDS, REQUESTS to tune;
#                               ONLY=text keeps the pairs whose name has it, or `throughput`;
#                               GATEWAY_RUST_LOG=warn measures without the access log;
#                               DUMP=dir writes every request's latency there;
#                               WORK_NS=n puts the floor itself in the gateway's place, spending
#                               n ns of busy work a request: what that much work alone does to
#                               every ratio on this machine)
#   scripts/bench.sh instructions
#                               user-space instructions per request of the floor and the gateway
#                               (callgrind; valgrind installed if missing), every pair streamed
#                               and whole (REQUESTS, ONLY as above; KEEP=dir keeps the profiles):
#                               the measure this VM's noise does not move
#   scripts/bench.sh semantic   embedding decisions (alone, and at concurrency 1 and 32, on every
#                               CPU) and centroid compile
#   scripts/bench.sh soak       the reload soak: load for SECONDS (60) while the config is
#                               rewritten REWRITES (30) times; fails on any failed request
#   scripts/bench.sh chaos      the chaos soak: SECONDS_CHAOS (600) of mixed dialects against a
#                               faulty upstream, REWRITES (30) rewrites (half invalid), silent and
#                               slow clients; fails on a hung or silently truncated answer
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
cargo build --release --locked --quiet
# The gateway as shipped, copied aside: building the benches builds the package's binary again
# into the same path with the dev-dependencies' features unified in (tokio's `test-util`, which
# changes its clock and timer driver), and that binary is not the one users run.
gateway=target/release/llm-gateway-as-shipped
cp target/release/llm-gateway "$gateway"
if [ "$what" = all ] || [ "$what" = compile ]; then
    cargo bench --locked --bench compile
fi
if [ "$what" = all ] || [ "$what" = semantic ]; then
    ./scripts/setup-embeddings.sh >/dev/null
    cargo bench --locked --bench semantic
fi
if [ "$what" = all ] || [ "$what" = soak ]; then
    cargo bench --locked --bench overhead --no-run --quiet
    cargo bench --locked --bench overhead -- soak \
        --gateway "$gateway" --seconds "${SECONDS_SOAK:-60}" --rewrites "${REWRITES:-30}"
fi
if [ "$what" = chaos ]; then
    cargo bench --locked --bench overhead --no-run --quiet
    cargo bench --locked --bench overhead -- chaos \
        --gateway "$gateway" --seconds "${SECONDS_CHAOS:-600}" --rewrites "${REWRITES:-30}"
fi
if [ "$what" = instructions ]; then
    . scripts/lib/assets.sh
    ensure_debian_command valgrind valgrind
    cargo bench --locked --bench overhead --no-run --quiet
    cargo bench --locked --bench overhead -- instructions \
        --gateway "$gateway" --requests "${REQUESTS:-500}" --only "${ONLY:-}" \
        ${KEEP:+--keep "$KEEP"}
fi
if [ "$what" = all ] || [ "$what" = overhead ]; then
    cargo bench --locked --bench overhead --no-run --quiet
    taskset -c 0 cargo bench --locked --bench overhead -- \
        --gateway "$gateway" --rounds "${ROUNDS:-10}" --requests "${REQUESTS:-1000}" \
        --only "${ONLY:-}" ${DUMP:+--dump "$DUMP"} ${WORK_NS:+--work-ns "$WORK_NS"}
fi
