#!/usr/bin/env bash
# watch throughput and memory, side by side with tcpdump:
#
#   1. a multi-million-packet capture made by masscan in two network namespaces
#      (198.18.44.0/24 and 198.18.45.0/28; tcpdump writes it): `portolan watch` against
#      `tcpdump -nn -r FILE >/dev/null` on the same file, packets/s and the ratio;
#   2. LOG lines: the watch corpus's kernel log (scripts/watch-corpus.sh), repeated to about a
#      million lines: lines/s;
#   3. a capture of 1,000,000 SYNs from distinct spoofed sources in 2001:db8::/32 (written to
#      a file by bench/spoofed_pcap.py; no packet is sent): peak memory and evictions.
#
#   bash bench/watch.sh           # RATE=100000 PORTS=1-65535 RUNS=3
#
# Targets (issue 20): >= 1,000,000 packets/s on one core and faster than tcpdump; >= 500,000
# LOG lines/s; >= 10x psad on the same LOG lines; < 256 MB for a million spoofed sources. Ratios, not absolute times: the machine
# is shared.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null && command -v masscan >/dev/null && command -v tcpdump >/dev/null ||
  bash scripts/install-test-deps.sh
[ "$(id -u)" -eq 0 ] || { echo "bench/watch.sh: needs root (namespaces, masscan)" >&2; exit 1; }
cargo build --release --locked -q -p portolan
bin="$(pwd)/${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/portolan"
[ -x "$bin" ] || bin="${CARGO_TARGET_DIR}/x86_64-unknown-linux-gnu/release/portolan"
rate="${RATE:-100000}"
ports="${PORTS:-1-65535}"
runs="${RUNS:-3}"
out=$(mktemp -d)
A=ptwb-a
V=ptwb-v
cleanup() {
  [ -n "${tdpid:-}" ] && kill "$tdpid" 2>/dev/null || true
  for ns in $A $V; do
    for p in $(ip netns pids $ns 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del $ns 2>/dev/null || true
  done
  rm -rf "$out"
}
trap cleanup EXIT
cleanup 2>/dev/null || true
out=$(mktemp -d)

# 1. the capture: masscan sweeps every port of 16 addresses the victim answers for
ip netns add $A
ip netns add $V
ip link add ptwb-a0 netns $A type veth peer name ptwb-v0 netns $V
ip -n $A addr add 198.18.44.1/24 dev ptwb-a0
ip -n $V addr add 198.18.44.2/24 dev ptwb-v0
for ns in $A $V; do ip -n $ns link set lo up; done
ip -n $A link set ptwb-a0 up
ip -n $V link set ptwb-v0 up
ip -n $V route add local 198.18.45.0/28 dev lo
ip -n $A route add 198.18.45.0/28 via 198.18.44.2
vmac=$(ip -n $V -o link show ptwb-v0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
ip netns exec $V timeout 300 tcpdump -nn -B 262144 -i ptwb-v0 -w "$out/big.pcap" 2>"$out/tcpdump.err" &
tdpid=$!
sleep 1
ip netns exec $A timeout 240 masscan 198.18.45.0/28 -p"$ports" --rate "$rate" --wait 2 \
  --adapter ptwb-a0 --adapter-ip 198.18.44.1 --router-mac "$vmac" >/dev/null 2>&1 || true
sleep 1
kill -INT $tdpid 2>/dev/null || true
wait $tdpid 2>/dev/null || true
tdpid=
packets=$(tcpdump -nn -r "$out/big.pcap" 2>/dev/null | wc -l)
echo "capture: $packets packets by masscan at --rate $rate ($(du -m "$out/big.pcap" | cut -f1) MB; $(grep dropped "$out/tcpdump.err" || true))"

hyperfine -N -w 1 -r "$runs" --export-json "$out/cap.json" \
  "$bin watch -o json --fail-on never $out/big.pcap" \
  "tcpdump -nn -r $out/big.pcap -w /dev/null" \
  "tcpdump -nn -r $out/big.pcap" >/dev/null 2>&1
python3 - "$out/cap.json" "$packets" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
n = int(sys.argv[2])
p, tw, tp = (x["median"] for x in r)
print(f"pcap: portolan {n / p / 1e6:.2f} M packets/s; tcpdump -r (printing) {n / tp / 1e6:.2f} M/s; "
      f"portolan is {tp / p:.1f}x tcpdump -nn -r >/dev/null, {tw / p:.1f}x tcpdump -r -w /dev/null")
EOF
/usr/bin/time -f "pcap: portolan peak RSS %M KB" "$bin" watch --fail-on never -o json "$out/big.pcap" >/dev/null

# 2. LOG lines: the corpus's kernel log, repeated
# the corpus's namespaces are shared with the test that makes it: take turns (its lock)
flock -w 600 "${TMPDIR:-/tmp}/portolan-watch-corpus.lock" bash scripts/watch-corpus.sh "$out/corpus" 2>/dev/null
n=$(wc -l <"$out/corpus/kern.log")
reps=$((1000000 / (n > 0 ? n : 1) + 1))
for _ in $(seq "$reps"); do cat "$out/corpus/kern.log"; done >"$out/kern-big.log"
lines=$(wc -l <"$out/kern-big.log")
hyperfine -N -w 1 -r "$runs" --export-json "$out/log.json" \
  "$bin watch -o json --fail-on never $out/kern-big.log" >/dev/null 2>&1
python3 - "$out/log.json" "$lines" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))["results"][0]["median"]
print(f"LOG lines: {int(sys.argv[2])} lines, portolan {int(sys.argv[2]) / t / 1e6:.2f} M lines/s")
EOF

# psad on the same LOG lines in syslog form (the corpus's kern-syslog.log, repeated ten times)
if command -v psad >/dev/null; then
  for _ in $(seq 10); do cat "$out/corpus/kern-syslog.log"; done >"$out/kern-syslog10.log"
  hyperfine -N -w 1 -r "$runs" --export-json "$out/psad.json" \
    "$bin watch -o json --fail-on never $out/kern-syslog10.log" \
    "psad -A -m $out/kern-syslog10.log" >/dev/null 2>&1
  python3 - "$out/psad.json" "$(wc -l <"$out/kern-syslog10.log")" <<'EOF2'
import json, sys
p, q = (x["median"] for x in json.load(open(sys.argv[1]))["results"])
print(f"psad: {int(sys.argv[2])} syslog LOG lines: portolan {p * 1e3:.0f} ms, psad -A {q * 1e3:.0f} ms: {q / p:.0f}x faster")
EOF2
fi

# 3. a million spoofed sources
python3 bench/spoofed_pcap.py 1000000 "$out/spoofed.pcap"
/usr/bin/time -f "spoofed: 1,000,000 sources, peak RSS %M KB" "$bin" watch --fail-on never -o json \
  "$out/spoofed.pcap" >"$out/spoofed.json"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print('spoofed: evicted sources', r['evicted_sources'], '; flows ended early', r['inputs'][0]['evicted_flows'])" "$out/spoofed.json"
