#!/usr/bin/env bash
# Fleet scans on a real one-node Slurm cluster (scripts/slurm.sh) into a throwaway PostgreSQL
# (scripts/pg.sh), reached by its Unix socket from the lab's scanner namespace:
#
#   1. 198.19.0.0/20 x the top 100 ports on the namespace lab (ptl-net answers for it), connect
#      scan, as 1, 2 and 4 Slurm tasks (submitted, then squeue until it is gone): wall time per N, and the time to read
#      and merge the run;
#   2. 4 shards of about a million observations each (127.0.0.1-64 x every port, loopback):
#      the time to read the 4 shards from PostgreSQL and merge them (target: under 5 s).
#
#   bash bench/fleet.sh
#
# This machine has 2 cores: more tasks than cores only shows the overhead of sharding. Ratios,
# not absolute times: the machine is shared.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v sbatch >/dev/null && command -v munged >/dev/null || bash scripts/install-test-deps.sh
[ "$(id -u)" -eq 0 ] || { echo "bench/fleet.sh: needs root (Slurm daemons, namespaces)" >&2; exit 1; }
cargo build --release --locked -q -p portolan
bin="$(pwd)/${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/portolan"
[ -x "$bin" ] || bin="${CARGO_TARGET_DIR}/x86_64-unknown-linux-gnu/release/portolan"
work=$(mktemp -d)
chmod 755 "$work"   # the PostgreSQL server runs as its own user
cleanup() {
  bash scripts/slurm.sh stop "$work/slurm" || true
  bash scripts/pg.sh stop "$work/pg" >/dev/null 2>&1 || true
  bash scripts/lab.sh down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
eval "$(bash scripts/pg.sh start "$work/pg")"
eval "$(bash scripts/slurm.sh start "$work/slurm")"
bash scripts/lab.sh up >/dev/null
export PORTOLAN_DB="$PORTOLAN_TEST_POSTGRES_SOCKET"

run() { # NAME SHARDS LAUNCHER -- SCAN-ARGS: prints the wall seconds of the array
  local name=$1 n=$2 launcher=$3
  shift 4
  "$bin" fleet slurm --shards "$n" --run "$name" --seed 1 --bin "$bin" ${launcher:+--launcher "$launcher"} \
    --log "$work/$name-%a.out" -- "$@" > "$work/$name.sbatch"
  local t0 t1
  t0=$(date +%s.%N)
  local job
  job=$(sbatch --parsable --chdir="$work" "$work/$name.sbatch")
  # sbatch --wait polls every few seconds; squeue every 0.1 s
  while [ -n "$(squeue -h -j "${job%%;*}" -o %i 2>/dev/null)" ]; do sleep 0.1; done
  t1=$(date +%s.%N)
  python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$t1"
}
merge_ms() { # NAME: the read and the merge, from the store's own timing
  PORTOLAN_TIMING=1 "$bin" snapshots --show "run:$1" 2>&1 >/dev/null | sed -n 's/.*read in \([0-9.]*\) ms, merged (\([0-9]*\) observations) in \([0-9.]*\) ms/\1 \2 \3/p'
}

echo "1. 198.19.0.0/20 x top 100 ports, connect scan, from the lab's scanner namespace"
printf '%-7s %10s %12s %14s %10s\n' TASKS WALL_S READ_MS OBSERVATIONS MERGE_MS
base=""
for n in 1 2 4; do
  wall=$(run "lab$n" "$n" "ip netns exec ptl-scan" -- 198.19.0.0/20 --top-ports 100 -sT)
  read -r rd obs mg <<<"$(merge_ms "lab$n")"
  printf '%-7s %10s %12s %14s %10s\n' "$n" "$wall" "$rd" "$obs" "$mg"
  [ -z "$base" ] && base=$wall
done

echo "2. 4 shards of about 1,000,000 observations each (127.0.0.1-64, every port, loopback)"
wall=$(run big 4 "" -- 127.0.0.1-64 -p 1-65535 -sT --min-rate 200000)
read -r rd obs mg <<<"$(merge_ms big)"
python3 -c "import sys; r, o, m = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]); print(f'scan {sys.argv[4]} s; read 4 shards {r/1e3:.2f} s + merge {m/1e3:.2f} s = {(r+m)/1e3:.2f} s for {o:,} observations (target < 5 s)')" "$rd" "$obs" "$mg" "$wall"
