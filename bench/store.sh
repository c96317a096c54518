#!/usr/bin/env bash
# Snapshot store speed, in one run: saving a snapshot of 1,000,000 port observations, and
# diffing two such snapshots against nmap's ndiff on the equivalent nmap XML files.
#
#   bash bench/store.sh            # HOSTS=1000 PORTS=1000 RUNS=3 by default
#
# The files are synthetic nmap XML (bench/nmapxml.py: 1000 hosts x 1000 ports, every port
# listed, a 2% change between the two scans); no packet is sent. Targets (issue: Decide and
# remember): diff >= 20x faster than ndiff; save >= 500k observations/s. Also prints the
# PostgreSQL backend's figures on a throwaway local server (scripts/pg.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null && command -v ndiff >/dev/null || bash scripts/install-test-deps.sh
cargo build --release --locked -q -p portolan
bin="$(pwd)/${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/portolan"
[ -x "$bin" ] || bin="${CARGO_TARGET_DIR}/x86_64-unknown-linux-gnu/release/portolan"
hosts="${HOSTS:-1000}"
ports="${PORTS:-1000}"
runs="${RUNS:-3}"
out=$(mktemp -d)
# the server runs as the unprivileged postgres user: its directory cannot be inside mktemp's
# 0700 one
pgdir="${TMPDIR:-/tmp}/portolan-bench-pg"
trap 'bash scripts/pg.sh stop "$pgdir" >/dev/null 2>&1 || true; rm -rf "$out"' EXIT

python3 bench/nmapxml.py --hosts "$hosts" --ports "$ports" >"$out/a.xml"
python3 bench/nmapxml.py --hosts "$hosts" --ports "$ports" --variant 50 >"$out/b.xml"
obs=$((hosts * ports))
echo "files: $obs port observations each, $(du -m "$out/a.xml" | cut -f1) MB of nmap XML"

# save: the store's own time for one snapshot (PORTOLAN_TIMING), median of RUNS fresh databases
save_rate() { # DB-prefix
  local i t times=()
  for i in $(seq "$runs"); do
    t=$(PORTOLAN_TIMING=1 "$bin" import "$out/a.xml" --save --db "$1$i" -o json 2>&1 >/dev/null |
      sed -n 's/^timing: saved [0-9]* observations in \([0-9.]*\) ms/\1/p')
    times+=("$t")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p"
}
ms=$(save_rate "$out/save")
echo "save (SQLite):      $obs observations in $ms ms = $(python3 -c "print(f'{$obs/($ms/1e3):,.0f}')") observations/s (target >= 500,000)"

db="$out/diff.db"
"$bin" import "$out/a.xml" --save --db "$db" -o json >/dev/null 2>&1
"$bin" import "$out/b.xml" --save --db "$db" -o json >/dev/null 2>&1
# same answer first: portolan's text is ndiff's text
"$bin" diff 1 2 --db "$db" >"$out/p.txt" || true
ndiff "$out/a.xml" "$out/b.xml" >"$out/n.txt" || true
if cmp -s "$out/p.txt" "$out/n.txt"; then echo "portolan diff output == ndiff output ($(wc -l <"$out/n.txt") lines)"; else echo "OUTPUTS DIFFER"; fi

hyperfine -N --warmup 1 --runs "$runs" --export-json "$out/r.json" -i \
  -n "portolan diff (snapshots)" "$bin diff 1 2 --db $db" \
  -n "portolan diff (XML files)" "$bin diff $out/a.xml $out/b.xml" \
  -n "ndiff" "ndiff $out/a.xml $out/b.xml" >/dev/null

pg=""
if pgenv=$(bash scripts/pg.sh start "$pgdir") && eval "$pgenv" && [ -n "${PORTOLAN_TEST_POSTGRES:-}" ]; then
  url="${PORTOLAN_TEST_POSTGRES%/postgres}"
  for i in $(seq "$runs"); do psql -q "$PORTOLAN_TEST_POSTGRES" -c "CREATE DATABASE bench$i" >/dev/null; done
  pgms=$(save_rate "$url/bench")
  psql -q "$PORTOLAN_TEST_POSTGRES" -c "CREATE DATABASE benchdiff" >/dev/null
  "$bin" import "$out/a.xml" --save --db "$url/benchdiff" -o json >/dev/null 2>&1
  "$bin" import "$out/b.xml" --save --db "$url/benchdiff" -o json >/dev/null 2>&1
  hyperfine -N --warmup 1 --runs "$runs" --export-json "$out/pg.json" -i \
    -n "portolan diff (PostgreSQL)" "$bin diff 1 2 --db $url/benchdiff" >/dev/null
  pg="$pgms"
fi

python3 - "$out/r.json" "$obs" "$pg" "$out/pg.json" <<'PY'
import json, os, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
n = r["ndiff"]["median"]
for name in ("portolan diff (snapshots)", "portolan diff (XML files)"):
    m = r[name]["median"]
    print(f"{name:28} median {m:8.3f} s   ndiff {n:8.3f} s   ratio {n/m:6.1f}x faster")
ratio = n / r["portolan diff (snapshots)"]["median"]
print(f"diff of two snapshots vs ndiff: {ratio:.1f}x (target >= 20x): {'PASS' if ratio >= 20 else 'FAIL'}")
if sys.argv[3]:
    obs, ms = int(sys.argv[2]), float(sys.argv[3])
    print(f"save (PostgreSQL):  {obs} observations in {ms:.0f} ms = {obs/(ms/1e3):,.0f} observations/s")
    if os.path.exists(sys.argv[4]):
        p = json.load(open(sys.argv[4]))["results"][0]["median"]
        print(f"portolan diff (PostgreSQL)   median {p:8.3f} s   ratio {n/p:6.1f}x faster than ndiff")
PY
