#!/usr/bin/env bash
# Runs two builds of portolan on the same inputs and compares their outputs byte for byte: a
# refactor must not change what users read. Only times and durations are normalised.
#
#   scripts/compare-outputs.sh OLD_BIN NEW_BIN [OUT_DIR]
#
# Compared: fw show (-o json and the table), fw lint (-o json and sarif) and fw query over the
# whole firewall corpus; scan -oX/-oJ/-oN of the lab (-sT, -sS, -sU, fixed --seed); ls -o json
# on a fixed socket load in a namespace of its own; audit -o sarif; diff (text and json).
# Needs root for the lab and the namespace (traffic only inside the lab's namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$(realpath "$1")
NEW=$(realpath "$2")
OUT=${3:-$(mktemp -d)}
mkdir -p "$OUT/old" "$OUT/new"
CORPUS=crates/firewall/tests/corpus

# times and durations: the only fields that may differ between two runs
norm() {
  sed -E -e 's/(start|end|time|taken_at|startstr|timestr|elapsed|finished|"taken_at"|"started"|"ended"|"elapsed")[=:] ?"[^"]*"/\1="T"/g' \
    -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z?/T/g' \
    -e 's/(scanned in|Nmap done at|initiated|Portolan [0-9.]+ scan initiated) .*/\1 T/' \
    -e 's/[A-Z][a-z]{2} [A-Z][a-z]{2} +[0-9]+ [0-9:]+ [0-9]{4}/T/g' \
    -e 's/"(elapsed|duration_ms|seconds)": [0-9.]+/"\1": 0/g' \
    -e 's/elapsed="[0-9.]+"/elapsed="0"/g' \
    -e 's/srtt="[0-9]+" rttvar="[0-9]+" to="[0-9]+"/RTT/g' \
    -e 's/"(srtt_us|rttvar_us|timeout_us|elapsed_secs)": [0-9.]+/"\1": 0/g' \
    -e 's/\([0-9.]+s latency\)/(L latency)/' \
    -e "s#$OLD|$NEW#portolan#g"
}

each() { # name, then the command's arguments after the binary
  local name=$1
  shift
  for side in old new; do
    local bin=$OLD
    [ "$side" = new ] && bin=$NEW
    local rc=0
    "$bin" "$@" >"$OUT/$side/$name.raw" 2>"$OUT/$side/$name.err" || rc=$?
    norm <"$OUT/$side/$name.raw" >"$OUT/$side/$name"
    echo "exit $rc" >>"$OUT/$side/$name"
  done
}

for f in "$CORPUS"/*.rules "$CORPUS"/*.rules6 "$CORPUS"/*.nft.json "$CORPUS"/*.aws.json; do
  [ -e "$f" ] || continue
  b=$(basename "$f")
  each "fw-show-json-$b" fw show "$f" -o json
  each "fw-show-table-$b" fw show "$f" --color never
  each "fw-lint-json-$b" fw lint "$f" -o json --fail-on never
  each "fw-lint-sarif-$b" fw lint "$f" -o sarif --fail-on never
  each "fw-query-$b" fw query "$f" --src 203.0.113.9 --dst 198.18.0.1 -p tcp --dport 22 -o json
done

# a fixed socket load in a namespace of its own: the same listeners for both builds
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
  cat >"$OUT/ls.sh" <<'SH'
ip link set lo up
python3 - <<'PY' &
import socket, time
socks = []
for port in (22, 80, 443, 5432, 8080):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(); socks.append(s)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 5353)); socks.append(u)
time.sleep(30)
PY
sleep 1
"$1" ls -o json | sed -E 's/"taken_at": "[^"]*"/"taken_at": "T"/; s/"pid": [0-9]+/"pid": 0/g'
"$2" ls -o json | sed -E 's/"taken_at": "[^"]*"/"taken_at": "T"/; s/"pid": [0-9]+/"pid": 0/g' >&2
kill %1
SH
  unshare -n bash "$OUT/ls.sh" "$OLD" "$NEW" >"$OUT/old/ls-json" 2>"$OUT/new/ls-json"
fi

# the lab: scans with a fixed seed, then audit and diff of their XML
if [ "$(id -u)" = 0 ]; then
  exec 9>"${TMPDIR:-/tmp}/portolan-lab.lock"
  flock -w 1800 9
  trap 'bash scripts/lab.sh down >/dev/null 2>&1 || true' EXIT
  bash scripts/lab.sh up >/dev/null 9>&-
  for side in old new; do
    bin=$OLD
    [ "$side" = new ] && bin=$NEW
    # the same file names for both builds: they are in the XML's args
    d=$OUT/scan
    mkdir -p "$d"
    for t in sT sS; do
      ip netns exec ptl-scan "$bin" scan -$t --seed 7 -p 1-1024,3306,8080,8443 198.18.1.2 198.18.2.2 198.18.4.2 \
        -oX "$d/scan-$t.xml" -oJ "$d/scan-$t.json" -oN "$d/scan-$t.nmap" --quiet >/dev/null 2>&1 || true
    done
    ip netns exec ptl-scan "$bin" scan -sU --seed 7 -p 53,123,161,137 198.18.1.2 -oX "$d/scan-sU.xml" --quiet >/dev/null 2>&1 || true
    # hosts are written as they finish, in an order no seed fixes: the lines are compared
    # sorted, and the XML also by meaning (portolan diff exits 0 when nothing changed)
    for f in "$d"/scan-*; do
      cp "$f" "$OUT/$side/$(basename "$f").raw"
      norm <"$f" | LC_ALL=C sort >"$OUT/$side/$(basename "$f").sorted"
    done
  done
  "$OLD" policy init --xml "$OUT/old/scan-sT.xml.raw" >"$OUT/policy.toml" 2>/dev/null
  each audit-sarif audit --policy "$OUT/policy.toml" --xml "$OUT/old/scan-sS.xml.raw" -o sarif --fail-on never
  each audit-json audit --policy "$OUT/policy.toml" --xml "$OUT/old/scan-sS.xml.raw" -o json --fail-on never
  for t in sT sS sU; do
    rc=0
    "$NEW" diff "$OUT/old/scan-$t.xml.raw" "$OUT/new/scan-$t.xml.raw" >/dev/null 2>&1 || rc=$?
    echo "exit $rc" >"$OUT/new/meaning-$t.diff"
    echo "exit 0" >"$OUT/old/meaning-$t.diff"
  done
  each diff-text diff "$OUT/old/scan-sT.xml.raw" "$OUT/old/scan-sU.xml.raw"
  each diff-json diff "$OUT/old/scan-sT.xml.raw" "$OUT/old/scan-sU.xml.raw" -o json
fi

same=0
differ=0
for f in "$OUT"/old/*; do
  case $f in *.raw | *.err) continue ;; esac
  [ "$(basename "$f")" = "${f##*/}" ] || continue
  n=$(basename "$f")
  if cmp -s "$f" "$OUT/new/$n"; then
    same=$((same + 1))
  else
    differ=$((differ + 1))
    echo "DIFFERS: $n (diff $f $OUT/new/$n)"
  fi
done
echo "$same outputs identical, $differ differ ($OUT)"
[ "$differ" = 0 ]
