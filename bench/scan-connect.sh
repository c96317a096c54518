#!/usr/bin/env bash
# Connect-scan speed on the project's lab, in one run, with identical results checked:
#   A  all 65,535 TCP ports of one host, a few open, the rest closed (198.18.10.5 on ptl-net)
#   B  all 65,535 TCP ports of one host, a few open, the rest dropped (198.18.4.2, ptl-h4)
#   C  a /24 of lab addresses x nmap's top 100 ports (198.18.10.0/24)
# against `nmap -sT -Pn -n -T4` and RustScan (cargo install rustscan --version 2.4.1, into a
# cache directory outside the repository; set RUSTSCAN=path to use another build).
# Traffic stays inside the lab's namespaces. Prints ratios (higher = Portolan faster).
#   RUNS=3 bash bench/scan-connect.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
cargo build --release --locked -q -p portolan
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
case $TARGET_DIR in /*) ;; *) TARGET_DIR="$PWD/$TARGET_DIR" ;; esac
BIN="$TARGET_DIR/x86_64-unknown-linux-gnu/release/portolan"
TOOLS="${HOME:-/root}/.cache/portolan-bench-tools"
RUSTSCAN="${RUSTSCAN:-$TOOLS/bin/rustscan}"
if [ ! -x "$RUSTSCAN" ]; then
  echo "building RustScan 2.4.1 for the comparison (once; a few minutes)..." >&2
  cargo install rustscan --version 2.4.1 --locked --root "$TOOLS" >/dev/null 2>&1 || RUSTSCAN=""
fi
export BIN RUSTSCAN RUNS="${RUNS:-3}"
# the lab is single-instance: take turns with test runs (they take the same lock)
exec 9>"${TMPDIR:-/tmp}/portolan-lab.lock"
flock -w 1800 9 || { echo "the lab stayed busy for 30 minutes" >&2; exit 1; }
trap 'bash scripts/lab.sh down >/dev/null 2>&1 || true' EXIT
bash scripts/lab.sh up >/dev/null 9>&-
exec python3 bench/scan_connect.py
