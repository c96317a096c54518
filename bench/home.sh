#!/usr/bin/env bash
# `portolan` with no arguments (this machine in one screen) on a machine with 10,000 sockets
# (scripts/sockload.py: 3,000 TCP listeners, 2,000 UDP sockets and 2,500 loopback connections,
# both ends, over 20 processes), side by side with `ss -tulpen`, which lists the listeners
# alone. Loopback only; the load is stopped by pid afterwards. No policy, an empty store.
#
#   bash bench/home.sh            # RUNS=20
#
# Target (issue 21): under 200 ms. Ratios, not absolute times: the machine is shared.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null && command -v ss >/dev/null || bash scripts/install-test-deps.sh
cargo build --release --locked -q -p portolan
bin="$(pwd)/${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/portolan"
[ -x "$bin" ] || bin="${CARGO_TARGET_DIR}/x86_64-unknown-linux-gnu/release/portolan"
runs="${RUNS:-20}"
out=$(mktemp -d)
load=""
cleanup() {
  [ -n "$load" ] && kill "$load" 2>/dev/null && wait "$load" 2>/dev/null || true
  rm -rf "$out"
}
trap cleanup EXIT
python3 scripts/sockload.py --ready "$out/ready.json" --timeout 600 \
  --tcp-listen 3000 --udp 2000 --conns 2500 --procs 20 &
load=$!
for _ in $(seq 1 600); do [ -s "$out/ready.json" ] && break; sleep 0.2; done
[ -s "$out/ready.json" ] || { echo "bench/home.sh: the socket load did not start" >&2; exit 1; }
echo "sockets: $(ss -tuan | tail -n +2 | wc -l)"
export PORTOLAN_DB="$out/none.db" PORTOLAN_POLICY="$out/none.toml" CI=true
hyperfine -N --warmup 2 --runs "$runs" --export-json "$out/h.json" \
  -n portolan "$bin" -n "ss -tulpen" "ss -tulpen" >/dev/null
python3 - "$out/h.json" <<'EOF'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
p, s = r["portolan"]["median"] * 1e3, r["ss -tulpen"]["median"] * 1e3
print(f"portolan (the whole screen) {p:.0f} ms (target < 200 ms); ss -tulpen (listeners only) {s:.0f} ms: "
      f"portolan takes {p / s:.2f}x ss's time")
EOF
