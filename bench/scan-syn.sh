#!/usr/bin/env bash
# SYN-scan speed on the project's lab, in one run, with results checked:
#   a  all 65,535 TCP ports of one host against `nmap -sS -p- -T4` and `nmap -sS -p- --min-rate
#      50000` (identical states required), on four lab hosts: firewalled (198.18.6.2: 7 open,
#      17 dropped, the rest closed, the shape of the host the planners timed nmap on; the
#      issue's target is measured here), lab-h1 (198.18.1.2), closed (198.18.10.5, with the
#      kernel floor of bench/syn_floor.c, built with cc when there is one) and dropped
#      (198.18.4.2)
#   b  one port (80) across the routed /16 198.19.0.0/16 against masscan at the same rate
#   c  the same with 1 % of the scanner's packets dropped (lab.sh loss 1): Portolan must miss
#      no open port; masscan's misses are printed
# Traffic stays inside the lab's namespaces. Needs root. Prints ratios (higher = Portolan faster).
#   RUNS=3 RATE=100000 bash bench/scan-syn.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
command -v masscan >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q masscan >/dev/null
cargo build --release --locked -q -p portolan
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
case $TARGET_DIR in /*) ;; *) TARGET_DIR="$PWD/$TARGET_DIR" ;; esac
BIN="$TARGET_DIR/x86_64-unknown-linux-gnu/release/portolan"
# the kernel floor of case a (a C program: the least time the kernels need, no scanner logic)
FLOOR=""
if command -v cc >/dev/null; then
  FLOOR="$TARGET_DIR/syn_floor"
  cc -O2 -pthread -o "$FLOOR" bench/syn_floor.c
fi
export BIN FLOOR RUNS="${RUNS:-3}" RATE="${RATE:-100000}"
# the lab is single-instance: take turns with test runs (they take the same lock)
exec 9>"${TMPDIR:-/tmp}/portolan-lab.lock"
flock -w 1800 9 || { echo "the lab stayed busy for 30 minutes" >&2; exit 1; }
trap 'bash scripts/lab.sh down >/dev/null 2>&1 || true' EXIT
bash scripts/lab.sh up >/dev/null 9>&-
exec python3 bench/scan_syn.py
