#!/usr/bin/env bash
# portolan ls against ss -tulpen, lsof and netstat, at ~100, 10k and 100k sockets and with 95k
# non-socket fds, in one hyperfine run per case. Loopback only; the load generator
# (scripts/sockload.py) is stopped by pid after each case. Prints ratios and peak RSS.
#   SIZES="100 10k 100k fd" RUNS=10 bash bench/listeners.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
cargo build --release --locked -q -p portolan
exec python3 bench/listeners.py "${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/portolan"
