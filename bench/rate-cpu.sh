#!/usr/bin/env bash
# CPU time of a rate-capped scan, Portolan against nmap in the same run, on the project's lab:
# `-p 1-5000 --max-rate 1000` of ptl-h1 (198.18.1.2), SYN (-sS) and connect (-sT). A capped scan
# is mostly waiting for the next token: its CPU time should follow the packet rate, not the
# wall clock. Prints user+system CPU seconds of each and the ratio (Portolan / nmap; the target
# is at most 2). Traffic stays inside the lab's namespaces.
#   RUNS=3 bash bench/rate-cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
cargo build --release --locked -q -p portolan
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
case $TARGET_DIR in /*) ;; *) TARGET_DIR="$PWD/$TARGET_DIR" ;; esac
BIN="$TARGET_DIR/x86_64-unknown-linux-gnu/release/portolan"
RUNS="${RUNS:-3}"
exec 9>"${TMPDIR:-/tmp}/portolan-lab.lock"
flock -w 1800 9 || { echo "the lab stayed busy for 30 minutes" >&2; exit 1; }
trap 'bash scripts/lab.sh down >/dev/null 2>&1 || true' EXIT
bash scripts/lab.sh up >/dev/null 9>&-

# CPU seconds (user + system) of one command run in the scanner namespace
tmp=$(mktemp)
trap 'rm -f "$tmp"; bash scripts/lab.sh down >/dev/null 2>&1 || true' EXIT
cpu() {
  /usr/bin/time -o "$tmp" -f "%U %S" ip netns exec ptl-scan "$@" >/dev/null 2>&1 || true
  awk 'NF == 2 { printf "%.3f", $1 + $2 }' "$tmp"
}

printf '%-6s %-4s %10s %10s %7s\n' scan run portolan nmap ratio
for type in -sS -sT; do
  for run in $(seq "$RUNS"); do
    args=("$type" -Pn -n -p 1-5000 --max-rate 1000 198.18.1.2)
    ours=$(cpu "$BIN" scan "${args[@]}")
    theirs=$(cpu nmap "${args[@]}")
    ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    printf '%-6s %-4s %10s %10s %7s\n' "$type" "$run" "$ours" "$theirs" "$ratio"
  done
done
