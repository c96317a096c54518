#!/usr/bin/env bash
# Portolan's network lab: network namespaces joined by veth, addresses only in 198.18.0.0/15
# and 2001:db8::/32. Bounded (listeners exit after LAB_TIMEOUT seconds), idempotent (`up`
# removes leftovers of a crashed run first), cleaned by `down` (processes by pid, then the
# namespaces).
#
#   lab.sh up            build it (needs root, ip, nft, tc, python3)
#   lab.sh down          remove it
#   lab.sh loss PCT      drop PCT % (e.g. 2, 0.5) of the packets the scanner sends; "off" stops it
#                        (nftables numgen random: this kernel has no sch_netem; where netem
#                        exists, `lab.sh netem SPEC` applies it to the scanner's links)
#   lab.sh netem SPEC    tc netem on the scanner's links ("delay 5ms loss 1%"), or "off"
#   lab.sh delay MS      every packet ptl-h6 sends waits MS ms (1-2000), a path with a round-trip
#                        time (scripts/nfq-delay.py on an iptables NFQUEUE, as this kernel has
#                        no sch_netem; the queue is bypassed while nothing reads it); "off"
#                        stops it
#   lab.sh icmp-ratelimit MS   the hosts' ICMP error rate limit per peer (Linux default 1000:
#                        a burst of 6, then one a second; 0 turns it off), IPv4 and IPv6
#   lab.sh status        print the layout
#
# Layout (the scanner is namespace ptl-scan; run tools there with `ip netns exec ptl-scan`):
#   ptl-h1  198.18.1.2  2001:db8:1::2  open 22,80,443,8080   closed (RST by nft) 23,3389
#           dropped 135,139,445,5900   ICMP admin-prohibited 111,2049 (TCP and UDP)
#           UDP: dnsmasq 53, chronyd 123, snmpd 161 (community public); dropped 137,138
#           everything else closed
#   ptl-h2  198.18.2.2  2001:db8:2::2  open 21,22,25,3306    same firewall as h1; UDP: snmpd 161
#   ptl-h3  198.18.3.2  2001:db8:3::2  open 80,8443          same firewall as h1
#   ptl-h4  198.18.4.2  2001:db8:4::2  open 22,80,443        every other TCP port dropped
#   ptl-h6  198.18.6.2  2001:db8:6::2  open 22,25,53,80,110,443,8080   17 TCP ports dropped
#           (135,137-139,445,1433,1434,1521,2375,3306,3389,5432,5900,6379,9200,11211,27017),
#           everything else closed: the shape of the host the planners timed nmap on
#           (research/peers.md section 8: 7 open, 17 filtered, the rest closed)
#   ptl-net 198.18.5.2  answers for all of 198.18.10.0/24 and 198.19.0.0/16 (local routes); open 80,443
#           198.18.11.0/24 is routed to it too, but nothing there answers (down hosts)
set -euo pipefail
# a caller may hold the lab's lock on fd 9 (bench/*.sh, scripts/compare-outputs.sh, a user's
# `exec 9>/tmp/portolan-lab.lock; flock 9`): the caller keeps it, but the daemons started here
# must not inherit it, or the lock outlives the caller and every test run waits on it
exec 9>&-

SCAN=ptl-scan
HOSTS=(ptl-h1 ptl-h2 ptl-h3 ptl-h4 ptl-h6 ptl-net)
RUN=/run/portolan-lab
LAB_TIMEOUT=${LAB_TIMEOUT:-3600}
HERE=$(cd "$(dirname "$0")" && pwd)

declare -A OPEN=([ptl-h1]=22,80,443,8080 [ptl-h2]=21,22,25,3306 [ptl-h3]=80,8443 [ptl-h4]=22,80,443
  [ptl-h6]=22,25,53,80,110,443,8080 [ptl-net]=80,443)
declare -A NUM=([ptl-h1]=1 [ptl-h2]=2 [ptl-h3]=3 [ptl-h4]=4 [ptl-net]=5 [ptl-h6]=6)

need() { command -v "$1" >/dev/null || { echo "lab.sh: $1 is missing (scripts/install-test-deps.sh installs it)" >&2; exit 1; }; }

# Stops the lab's processes: TERM to every pid given, then up to 2 s for them to exit, then
# KILL, but only to processes inside a lab namespace (a pid file left by a crashed run may name
# a pid that now belongs to something else). A daemon that is stopping may still write its
# state (snmpd does, under $RUN), so $RUN goes only after. $1: the pids inside lab namespaces,
# space-separated; the rest of the arguments: pids from the pid files.
stop_pids() {
  local inside=$1 pid _ alive
  shift
  for pid in $inside "$@"; do kill "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 40); do
    alive=0
    for pid in $inside "$@"; do
      # a zombie has exited (its reaper may be slow)
      [ -e "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && alive=1
    done
    [ "$alive" = 0 ] && return 0
    sleep 0.05
  done
  for pid in $inside; do kill -9 "$pid" 2>/dev/null || true; done
}

down() {
  local files=() inside="" ns f pid
  if [ -d "$RUN" ]; then
    for f in "$RUN"/*.pid; do
      [ -e "$f" ] || continue
      pid=$(cat "$f" 2>/dev/null || true)
      [ -n "$pid" ] && files+=("$pid")
    done
  fi
  for ns in "$SCAN" "${HOSTS[@]}"; do
    if ip netns list 2>/dev/null | grep -qw "^$ns"; then
      # any process left inside (a crashed run) goes with its namespace
      inside="$inside $(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')"
    fi
  done
  stop_pids "$inside" "${files[@]}"
  rm -rf "$RUN"
  for ns in "$SCAN" "${HOSTS[@]}"; do
    if ip netns list 2>/dev/null | grep -qw "^$ns"; then
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
}

firewall() {
  local ns=$1
  if [ "$ns" = ptl-h4 ]; then
    ip netns exec "$ns" nft -f - <<EOF
table inet lab {
  chain input {
    type filter hook input priority 0; policy accept;
    tcp dport != { ${OPEN[$ns]} } drop
  }
}
EOF
  elif [ "$ns" = ptl-h6 ]; then
    ip netns exec "$ns" nft -f - <<'EOF'
table inet lab {
  chain input {
    type filter hook input priority 0; policy accept;
    tcp dport { 135, 137-139, 445, 1433, 1434, 1521, 2375, 3306, 3389, 5432, 5900, 6379, 9200, 11211, 27017 } drop
  }
}
EOF
  elif [ "$ns" != ptl-net ]; then
    ip netns exec "$ns" nft -f - <<'EOF'
table inet lab {
  chain input {
    type filter hook input priority 0; policy accept;
    tcp dport { 23, 3389 } reject with tcp reset
    tcp dport { 135, 139, 445, 5900 } drop
    meta l4proto { tcp, udp } th dport { 111, 2049 } reject with icmpx type admin-prohibited
    udp dport { 137, 138 } drop
  }
}
EOF
  fi
}

up() {
  for t in ip nft tc python3; do need "$t"; done
  down
  mkdir -p "$RUN"
  ip netns add "$SCAN"
  ip -n "$SCAN" link set lo up
  ip netns exec "$SCAN" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
  for ns in "${HOSTS[@]}"; do
    n=${NUM[$ns]}
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    ip link add "s-h$n" netns "$SCAN" type veth peer name eth0 netns "$ns"
    ip -n "$SCAN" addr add "198.18.$n.1/24" dev "s-h$n"
    ip -n "$SCAN" addr add "2001:db8:$n::1/64" dev "s-h$n" nodad
    ip -n "$SCAN" link set "s-h$n" up
    ip -n "$ns" addr add "198.18.$n.2/24" dev eth0
    ip -n "$ns" addr add "2001:db8:$n::2/64" dev eth0 nodad
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "198.18.$n.1"
    ip -n "$ns" -6 route add default via "2001:db8:$n::1"
    firewall "$ns"
    ip netns exec "$ns" python3 "$HERE/lablisten.py" --tcp "${OPEN[$ns]}" --timeout "$LAB_TIMEOUT" \
      --pidfile "$RUN/$ns.pid" >/dev/null 2>&1 &
  done
  # real UDP services (scripts/install-test-deps.sh installs them)
  udp_services ptl-h1 dnsmasq chronyd snmpd
  udp_services ptl-h2 snmpd
  # ptl-net answers for a whole /24, and for the /16 198.19.0.0/16 (sweeps of one port)
  ip -n ptl-net route add local 198.18.10.0/24 dev lo
  ip -n "$SCAN" route add 198.18.10.0/24 via 198.18.5.2
  ip -n ptl-net route add local 198.19.0.0/16 dev lo
  ip -n "$SCAN" route add 198.19.0.0/16 via 198.18.5.2
  # a routed /24 where nothing answers (ptl-net does not forward): hosts that are down
  ip -n "$SCAN" route add 198.18.11.0/24 via 198.18.5.2
  # wait until every listener is ready (bounded)
  for ns in "${HOSTS[@]}"; do
    for _ in $(seq 1 100); do
      [ -s "$RUN/$ns.pid" ] && break
      sleep 0.05
    done
    [ -s "$RUN/$ns.pid" ] || { echo "lab.sh: listener in $ns did not start" >&2; down; exit 1; }
  done
  wait_udp ptl-h1 53
  wait_udp ptl-h1 123
  wait_udp ptl-h1 161
  wait_udp ptl-h2 161
  echo "lab up"
}

# Starts real UDP daemons in namespace $1 (each in the foreground, pid recorded for `down`,
# configuration under $RUN): dnsmasq (DNS 53), chronyd (NTP 123), snmpd (SNMP 161).
udp_services() {
  local ns=$1 n=${NUM[$1]} d="$RUN/$1" svc
  shift
  mkdir -p "$d"
  for svc in "$@"; do
    need "$svc"
    case $svc in
      dnsmasq)
        ip netns exec "$ns" dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
          --port=53 --listen-address="198.18.$n.2" --listen-address="2001:db8:$n::2" --bind-interfaces \
          --user=root --group=root --pid-file="$d/dnsmasq.pidfile" >/dev/null 2>&1 &
        ;;
      chronyd)
        cat >"$d/chrony.conf" <<EOF
allow all
local stratum 10
cmdport 0
bindcmdaddress /
pidfile $d/chronyd.pidfile
user root
EOF
        ip netns exec "$ns" chronyd -d -x -f "$d/chrony.conf" >/dev/null 2>&1 &
        ;;
      snmpd)
        cat >"$d/snmpd.conf" <<EOF
agentaddress udp:161,udp6:161
rocommunity public default
rocommunity6 public default
sysDescr Portolan lab $ns
EOF
        mkdir -p "$d/snmp"
        SNMP_PERSISTENT_DIR="$d/snmp" MIBS="" ip netns exec "$ns" snmpd -f -Lo -C -c "$d/snmpd.conf" \
          -p "$d/snmpd.pidfile" >/dev/null 2>&1 &
        ;;
    esac
    echo $! >"$RUN/$ns-$svc.pid"
  done
}

# Waits (bounded) until UDP port $2 is bound in namespace $1.
wait_udp() {
  local ns=$1 port=$2
  for _ in $(seq 1 100); do
    ip netns exec "$ns" ss -Hlun "sport = :$port" | grep -q . && return 0
    sleep 0.05
  done
  echo "lab.sh: UDP port $port in $ns did not open" >&2
  down
  exit 1
}

netem() {
  for ns in "${HOSTS[@]}"; do
    dev="s-h${NUM[$ns]}"
    if [ "$*" = off ]; then
      ip netns exec "$SCAN" tc qdisc del dev "$dev" root 2>/dev/null || true
    else
      # shellcheck disable=SC2068
      ip netns exec "$SCAN" tc qdisc replace dev "$dev" root netem $@
    fi
  done
}

loss() {
  ip netns exec "$SCAN" nft delete table inet labloss 2>/dev/null || true
  [ "${1:-off}" = off ] && return 0
  local per_mille
  per_mille=$(python3 -c "import sys; v=float(sys.argv[1]); assert 0<=v<=100; print(int(round(v*10)))" "$1") \
    || { echo "lab.sh: loss takes a percentage (0-100) or off" >&2; exit 2; }
  ip netns exec "$SCAN" nft -f - <<NFT
table inet labloss {
  chain out {
    type filter hook output priority 0; policy accept;
    numgen random mod 1000 < $per_mille drop
  }
}
NFT
}

delay() {
  local ns=ptl-h6 queue=7 pid
  if [ -f "$RUN/delay.pid" ]; then
    pid=$(cat "$RUN/delay.pid" 2>/dev/null || true)
    # only a process that is still the lab's delayer (a crashed run's pid may be reused)
    if [ -n "$pid" ] && [ "$(ip netns identify "$pid" 2>/dev/null)" = "$ns" ]; then
      stop_pids "$pid"
    fi
    rm -f "$RUN/delay.pid"
  fi
  ip netns exec "$ns" iptables -w -F OUTPUT 2>/dev/null || true
  ip netns exec "$ns" ip6tables -w -F OUTPUT 2>/dev/null || true
  [ "${1:-off}" = off ] && return 0
  [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 2000 ] \
    || { echo "lab.sh: delay takes milliseconds (1-2000) or off" >&2; exit 2; }
  need iptables
  mkdir -p "$RUN"
  ip netns exec "$ns" python3 "$HERE/nfq-delay.py" "$queue" "$1" "$LAB_TIMEOUT" >"$RUN/delay.log" 2>&1 &
  echo $! >"$RUN/delay.pid"
  for _ in $(seq 60); do
    grep -q '^ready' "$RUN/delay.log" 2>/dev/null && break
    sleep 0.05
  done
  grep -q '^ready' "$RUN/delay.log" || { echo "lab.sh: the delayer did not start: $(cat "$RUN/delay.log")" >&2; delay off; exit 1; }
  ip netns exec "$ns" iptables -w -A OUTPUT -j NFQUEUE --queue-num "$queue" --queue-bypass
  ip netns exec "$ns" ip6tables -w -A OUTPUT -j NFQUEUE --queue-num "$queue" --queue-bypass
}

icmp_ratelimit() {
  local ms=${1:-}
  [[ "$ms" =~ ^[0-9]+$ ]] || { echo "lab.sh: icmp-ratelimit takes milliseconds (0 = off)" >&2; exit 2; }
  for ns in "${HOSTS[@]}"; do
    ip netns exec "$ns" sysctl -qw "net.ipv4.icmp_ratelimit=$ms" "net.ipv6.icmp.ratelimit=$ms"
  done
}

case "${1:-}" in
  up) up ;;
  icmp-ratelimit) shift; icmp_ratelimit "$@" ;;
  loss) shift; loss "$@" ;;
  delay) shift; delay "$@" ;;
  down) down ;;
  netem) shift; netem "$@" ;;
  status) ip netns list | grep -E '^ptl-(scan|h[0-9]|net)\b' || echo "lab down" ;;
  *) echo "usage: lab.sh up|down|loss PCT|delay MS|netem SPEC|icmp-ratelimit MS|status" >&2; exit 2 ;;
esac
