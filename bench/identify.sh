#!/usr/bin/env bash
# Version-detection speed on the identification lab (scripts/idlab.sh: real Debian daemons in
# the pid-lab namespace): `portolan scan -sV` against `nmap -sV` on the same TCP ports of the
# same hosts, SYN scan for both, in one run; then the same for the lab's UDP ports (-sU -sV).
# Prints each tool's wall time (median of RUNS, UDP_RUNS for UDP: nmap's UDP -sV takes
# minutes), how many ports each named by a probe, and the ratio. Traffic stays inside the
# lab's namespace.
#   RUNS=3 UDP_RUNS=1 bash bench/identify.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
cargo build --release --locked -q -p portolan
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$PWD/$TARGET_DIR" ;; esac
BIN="$TARGET_DIR/x86_64-unknown-linux-gnu/release/portolan"
RUNS="${RUNS:-3}"
UDP_RUNS="${UDP_RUNS:-1}"
export IDLAB_DIR="${IDLAB_DIR:-/tmp/pid-idlab-bench}"
# the lab is single-instance: take turns with test runs (they take the same lock)
exec 9>"${TMPDIR:-/tmp}/portolan-idlab.lock"
flock -w 1800 9 || { echo "the idlab lab stayed busy for 30 minutes" >&2; exit 1; }
trap 'bash scripts/idlab.sh down >/dev/null 2>&1 || true' EXIT
bash scripts/idlab.sh up 9>&-
M="$IDLAB_DIR/manifest.tsv"
OUT=$(mktemp -d)
trap 'bash scripts/idlab.sh down >/dev/null 2>&1 || true; rm -rf "$OUT"' EXIT

hosts_of() { awk -F'\t' -v t="$1" '$3==t{print $1}' "$M" | sort -u; }
ports_of() { awk -F'\t' -v h="$1" -v t="$2" '$1==h && $3==t{printf "%s%s", sep, $2; sep=","}' "$M"; }

# one run of a tool over every host (hosts in parallel, as one scan of both would) on one
# transport; prints seconds
run_tool() {
  local tool=$1 run=$2 proto=${3:-tcp} t0 t1 pids=() flag=-sS
  [ "$proto" = udp ] && flag=-sU
  t0=$(date +%s.%N)
  for h in $(hosts_of "$proto"); do
    local p
    p=$(ports_of "$h" "$proto")
    if [ "$tool" = nmap ]; then
      nmap -sV "$flag" -Pn -n -p "$p" "$h" -oX "$OUT/nmap-$proto-$run-$h.xml" >/dev/null 2>&1 &
    else
      "$BIN" -q scan -sV "$flag" -Pn -p "$p" "$h" -oX "$OUT/portolan-$proto-$run-$h.xml" >/dev/null 2>&1 &
    fi
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  t1=$(date +%s.%N)
  awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.3f\n", a - b }' 
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

named() { # ports with a probed service name in the XML files of one tool's first run
  cat "$OUT"/"$1"-"${2:-tcp}"-1-*.xml | grep -o '<service name="[^"]*"[^>]*method="probed"' | wc -l
}

nports=$(awk -F'\t' '$3=="tcp"' "$M" | wc -l)
echo "identification lab: $nports TCP ports on $(hosts_of tcp | wc -l) hosts, $RUNS run(s) each"
p_times=(); n_times=()
for i in $(seq 1 "$RUNS"); do
  p_times+=("$(run_tool portolan "$i")")
  n_times+=("$(run_tool nmap "$i")")
done
pm=$(printf '%s\n' "${p_times[@]}" | median)
nm=$(printf '%s\n' "${n_times[@]}" | median)
printf 'portolan scan -sV: %6.2f s  (%s ports named)\n' "$pm" "$(named portolan)"
printf 'nmap -sV:          %6.2f s  (%s ports named)\n' "$nm" "$(named nmap)"
awk -v p="$pm" -v n="$nm" 'BEGIN { printf "ratio portolan/nmap: %.3f (target <= 0.100); nmap/portolan: %.1fx\n", p / n, n / p }' 

# UDP: the same comparison on the lab's UDP ports
uports=$(awk -F'\t' '$3=="udp"' "$M" | wc -l)
echo "identification lab: $uports UDP ports on $(hosts_of udp | wc -l) host(s), $UDP_RUNS run(s) each"
p_times=(); n_times=()
for i in $(seq 1 "$UDP_RUNS"); do
  p_times+=("$(run_tool portolan "$i" udp)")
  n_times+=("$(run_tool nmap "$i" udp)")
done
pm=$(printf '%s\n' "${p_times[@]}" | median)
nm=$(printf '%s\n' "${n_times[@]}" | median)
printf 'portolan scan -sU -sV: %6.2f s  (%s of %s ports named by probe)\n' "$pm" "$(named portolan udp)" "$uports"
printf 'nmap -sU -sV:          %6.2f s  (%s of %s ports named by probe)\n' "$nm" "$(named nmap udp)" "$uports"
awk -v p="$pm" -v n="$nm" 'BEGIN { printf "UDP ratio portolan/nmap: %.3f; nmap/portolan: %.1fx\n", p / n, n / p }'
