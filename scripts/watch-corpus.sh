#!/usr/bin/env bash
# Builds the watch corpus with real tools in two network namespaces (addresses only in
# 198.18.40.0/24 and 198.18.41.0/26): a victim running sshd and a web server behind an
# nftables ruleset that logs every new inbound packet, and an attacker namespace from which
# nmap, masscan, sshpass+ssh and curl make known attacks and benign traffic, each from its own
# source address. Captured at once by tcpdump (pcap), the kernel log (the nftables `log` lines,
# from dmesg) and sshd's log.
#
#   watch-corpus.sh OUTDIR     build the corpus into OUTDIR (needs root, ip, nft, tcpdump,
#                              nmap, masscan, sshd, ssh, sshpass, curl, python3)
#   watch-corpus.sh down       remove leftovers of a crashed run
#
# OUTDIR gets: corpus.pcap, kern.log (dmesg raw: [seconds] since boot), kern-iso.log (dmesg
# --time-format iso), kern-syslog.log (the same lines as rsyslog writes them, for psad), auth.log (sshd's messages with the RFC 3164 envelope syslogd would add:
# sshd -e writes bare messages), truth.tsv (source, kind, scan type, tool: how each attack was
# made). Bounded: every process runs under `timeout`; the run takes about a minute and a half.
set -euo pipefail

VIC=ptw-vic
ATK=ptw-atk
RUN=/run/portolan-watch-corpus
HERE=$(cd "$(dirname "$0")" && pwd)
V=198.18.40.2

need() { command -v "$1" >/dev/null || { echo "watch-corpus.sh: $1 is missing (scripts/install-test-deps.sh installs it)" >&2; exit 1; }; }

down() {
  local f pid
  if [ -d "$RUN" ]; then
    # the kernel-log readers run outside the namespaces
    for f in "$RUN"/dmesg-*.pid; do
      [ -e "$f" ] || continue
      pid=$(cat "$f" 2>/dev/null || true)
      [ -n "$pid" ] && grep -qa dmesg "/proc/$pid/cmdline" 2>/dev/null && kill "$pid" 2>/dev/null || true
    done
    for f in "$RUN"/*.pid; do
      [ -e "$f" ] || continue
      pid=$(cat "$f" 2>/dev/null || true)
      # only a process still inside our namespaces (a stale pid may be someone else's now)
      if [ -n "$pid" ] && { ip netns pids "$VIC" 2>/dev/null; ip netns pids "$ATK" 2>/dev/null; } | grep -qx "$pid"; then
        kill "$pid" 2>/dev/null || true
      fi
    done
  fi
  for ns in "$VIC" "$ATK"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
  done
  sleep 0.3
  for ns in "$VIC" "$ATK"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  if [ -f "$RUN/nf_log_all_netns" ]; then
    cat "$RUN/nf_log_all_netns" > /proc/sys/net/netfilter/nf_log_all_netns 2>/dev/null || true
  fi
  rm -rf "$RUN"
}

if [ "${1:-}" = down ]; then down; exit 0; fi
OUT=${1:?usage: watch-corpus.sh OUTDIR | down}
for t in ip nft iptables dnsmasq chronyd tcpdump editcap nmap masscan ssh sshpass curl python3 dmesg timeout ssh-keygen; do need "$t"; done
[ -x /usr/sbin/sshd ] || { echo "watch-corpus.sh: /usr/sbin/sshd is missing (openssh-server)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "watch-corpus.sh: needs root (namespaces, raw sockets)" >&2; exit 1; }

down
trap down EXIT
mkdir -p "$RUN" "$OUT" /run/sshd
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/corpus.pcap "$OUT"/kern.log "$OUT"/kern-iso.log "$OUT"/auth.log "$OUT"/truth.tsv

# log lines from namespaces other than the first reach the kernel log only with this on
cat /proc/sys/net/netfilter/nf_log_all_netns > "$RUN/nf_log_all_netns"
echo 1 > /proc/sys/net/netfilter/nf_log_all_netns

ip netns add "$VIC"
ip netns add "$ATK"
ip link add ptw-v0 netns "$VIC" type veth peer name ptw-a0 netns "$ATK"
ip -n "$VIC" link set lo up
ip -n "$ATK" link set lo up
ip -n "$VIC" addr add "$V/24" dev ptw-v0
ip -n "$VIC" link set ptw-v0 up
ip -n "$ATK" link set ptw-a0 up
ip -n "$ATK" addr add 198.18.40.1/24 dev ptw-a0
for i in 3 4 5 6 7 8 9 10 11 12 13 14 20 30; do
  ip -n "$ATK" addr add "198.18.40.$i/24" dev ptw-a0
done
# the victim answers for a whole /26 (the sweep's targets)
ip -n "$VIC" route add local 198.18.41.0/26 dev lo
ip -n "$ATK" route add 198.18.41.0/26 via "$V"
ip netns exec "$VIC" sysctl -qw net.ipv4.icmp_ratelimit=0
VMAC=$(ip -n "$VIC" -o link show ptw-v0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')

# a unique prefix picks this run's lines out of the shared kernel log
TAG="PTW$$"
ip netns exec "$VIC" nft -f - <<EOF
table inet ptw {
  chain input {
    type filter hook input priority 0; policy accept;
    iif "lo" accept
    ct state established,related accept
    log prefix "$TAG " flags tcp sequence,options
    log group 7
    tcp dport { 22, 80 } accept
    udp dport { 53, 123 } accept
    meta l4proto tcp reject with tcp reset
    reject
  }
}
EOF

# iptables' LOG target beside nftables' log (iptables-nft; the kernel writes the same line
# format): the first SYN to 3389, with its own prefix, TCP options and sequence
IPT="PTI$$"
ip netns exec "$VIC" iptables -t raw -A PREROUTING -p tcp --dport 3389 --tcp-flags SYN,ACK,RST,FIN SYN \
  -j LOG --log-prefix "$IPT " --log-tcp-options --log-tcp-sequence

# sshd: password logins fail for everyone (root takes only the test key)
D="$RUN/ssh"
mkdir -p "$D"
ssh-keygen -q -t ed25519 -N '' -f "$D/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$D/client"
cat > "$D/sshd_config" <<EOF
Port 22
ListenAddress 0.0.0.0
HostKey $D/hostkey
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
AuthorizedKeysFile $D/client.pub
StrictModes no
MaxStartups 100
PidFile $D/sshd.pidfile
LogLevel INFO
EOF
# sshd -e writes its messages bare; syslogd would add the time, host and tag
ip netns exec "$VIC" timeout 600 /usr/sbin/sshd -D -e -f "$D/sshd_config" 2> >(
  python3 -u -c '
import sys, time
for line in sys.stdin:
    stamp = time.strftime("%b %e %H:%M:%S", time.localtime())
    sys.stdout.write(f"{stamp} victim sshd[{sys.argv[1]}]: {line}")
    sys.stdout.flush()
' "$$" > "$OUT/auth.log") &
echo $! > "$RUN/sshd.pid"
mkdir -p "$RUN/www" && echo "portolan watch corpus" > "$RUN/www/index.html"
ip netns exec "$VIC" timeout 600 python3 -m http.server 80 --bind 0.0.0.0 --directory "$RUN/www" >/dev/null 2>&1 &
echo $! > "$RUN/http.pid"
# DNS and NTP: what a resolver and a time server see from their clients every day
ip netns exec "$VIC" timeout 600 dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
  --port=53 --listen-address="$V" --bind-interfaces --address=/corpus.test/"$V" \
  --user=root --group=root --pid-file="$RUN/dnsmasq.pidfile" >/dev/null 2>&1 &
echo $! > "$RUN/dnsmasq.pid"
cat > "$RUN/chrony.conf" <<EOF
allow all
local stratum 10
cmdport 0
bindcmdaddress /
pidfile $RUN/chronyd.pidfile
user root
EOF
ip netns exec "$VIC" timeout 600 chronyd -d -x -f "$RUN/chrony.conf" >/dev/null 2>&1 &
echo $! > "$RUN/chronyd.pid"
# a large buffer: a scan's burst must not be dropped by the kernel before tcpdump reads it
ip netns exec "$VIC" timeout 600 tcpdump --immediate-mode -U -nn -B 131072 -i ptw-v0 -w "$OUT/corpus.pcap" \
  2> "$RUN/tcpdump.err" &
echo $! > "$RUN/tcpdump.pid"
# the same packets through NFLOG group 7, recorded by tcpdump as they reach the netlink group
ip netns exec "$VIC" timeout 600 tcpdump --immediate-mode -U -nn -B 131072 -i nflog:7 -w "$OUT/nflog.pcap" \
  2> "$RUN/tcpdump-nflog.err" &
echo $! > "$RUN/tcpdump-nflog.pid"
# the kernel log is read as it is written (the ring buffer is shared and small)
timeout 600 dmesg -w > "$RUN/kmsg-raw" 2>/dev/null &
echo $! > "$RUN/dmesg-raw.pid"
timeout 600 dmesg -w --time-format iso > "$RUN/kmsg-iso" 2>/dev/null &
echo $! > "$RUN/dmesg-iso.pid"
for _ in $(seq 1 50); do
  [ -s "$OUT/corpus.pcap" ] && ip netns exec "$VIC" bash -c 'exec 3<>/dev/tcp/127.0.0.1/22' 2>/dev/null \
    && [ -s "$OUT/nflog.pcap" ] && ip netns exec "$VIC" bash -c 'exec 3<>/dev/tcp/127.0.0.1/80' 2>/dev/null && break
  sleep 0.1
done
sleep 0.5

A() { ip netns exec "$ATK" timeout 120 "$@"; }
# connections from the kernel (connect scans, clients) take the source the route names
from() { ip -n "$ATK" route replace "$V/32" dev ptw-a0 src "$1"; ip -n "$ATK" route replace 198.18.41.0/26 via "$V" src "$1"; }
truth() { printf '%s\t%s\t%s\t%s\n' "$@" >> "$OUT/truth.tsv"; }
# at most 3,000 probes a second: the kernel's log ring is small, and its readers must keep up
# for the log files to hold every probe
NM=(nmap -n -Pn -T4 --max-retries 1 --max-rate 3000)

# benign first: a browser and an administrator
from 198.18.40.30
for _ in 1 2 3 4 5; do A curl -s -o /dev/null "http://$V/"; done
for _ in 1 2; do
  A ssh -i "$D/client" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes \
    "root@$V" true >/dev/null 2>&1 || true
done
# name lookups and time queries, answered
A python3 - "$V" <<'PY'
import socket, struct, sys, time
server = sys.argv[1]
for i in range(5):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    name = b"".join(bytes([len(p)]) + p for p in [f"host{i}".encode(), b"corpus", b"test"]) + b"\0"
    s.sendto(struct.pack(">HHHHHH", 0x1000 + i, 0x0100, 1, 0, 0, 0) + name + struct.pack(">HH", 1, 1), (server, 53))
    try:
        s.recv(512)
    except OSError:
        pass
    s.close()
for i in range(3):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(b"\x1b" + bytes(47), (server, 123))
    try:
        s.recv(512)
    except OSError:
        pass
    s.close()
    time.sleep(0.2)
PY

A "${NM[@]}" -sS -p1-1000 -S 198.18.40.1 -e ptw-a0 "$V" >/dev/null
truth 198.18.40.1 vertical_scan syn nmap
from 198.18.40.3
A "${NM[@]}" -sT -p1-200 "$V" >/dev/null
truth 198.18.40.3 vertical_scan connect unknown
A "${NM[@]}" -sF -p1-100 -S 198.18.40.4 -e ptw-a0 "$V" >/dev/null
truth 198.18.40.4 vertical_scan fin nmap
A "${NM[@]}" -sN -p1-100 -S 198.18.40.5 -e ptw-a0 "$V" >/dev/null
truth 198.18.40.5 vertical_scan null nmap
A "${NM[@]}" -sX -p1-100 -S 198.18.40.6 -e ptw-a0 "$V" >/dev/null
truth 198.18.40.6 vertical_scan xmas nmap
A "${NM[@]}" -sU -p1-40 -S 198.18.40.7 -e ptw-a0 "$V" >/dev/null
truth 198.18.40.7 vertical_scan udp unknown
A "${NM[@]}" -sS -p22,80,443,3389 -S 198.18.40.8 -e ptw-a0 198.18.41.0/26 >/dev/null
truth 198.18.40.8 horizontal_sweep syn nmap
A nmap -n -Pn -sS --max-retries 0 --scan-delay 1100ms -p20-36 -S 198.18.40.9 -e ptw-a0 "$V" >/dev/null
truth 198.18.40.9 slow_scan syn nmap
A masscan "$V" -p1-500 --rate 2000 --wait 1 --adapter ptw-a0 --adapter-ip 198.18.40.10 \
  --router-mac "$VMAC" >/dev/null 2>&1
truth 198.18.40.10 vertical_scan syn masscan
# four sources, ten ports each, one target: none is a scan alone
for i in 0 1 2 3; do
  lo=$((2000 + i * 10))
  A "${NM[@]}" -sS -p"$lo-$((lo + 9))" -S "198.18.40.$((11 + i))" -e ptw-a0 "$V" >/dev/null
done
truth 198.18.40.11,198.18.40.12,198.18.40.13,198.18.40.14 distributed_scan syn nmap
# password guessing with a real client against the real sshd
from 198.18.40.20
for i in $(seq 1 12); do
  A sshpass -p "guess$i" ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o PreferredAuthentications=password -o PubkeyAuthentication=no -o NumberOfPasswordPrompts=1 \
    "root@$V" true >/dev/null 2>&1 || true
done
truth 198.18.40.20 brute_force - unknown

sleep 1.5
for p in tcpdump tcpdump-nflog dmesg-raw dmesg-iso; do kill "$(cat "$RUN/$p.pid")" 2>/dev/null || true; done
sleep 0.5
grep -a "\] $TAG " "$RUN/kmsg-raw" > "$OUT/kern.log" || true
grep -a " $TAG " "$RUN/kmsg-iso" > "$OUT/kern-iso.log" || true
grep -a "\] $IPT " "$RUN/kmsg-raw" > "$OUT/kern-iptables.log" || true
# the same capture as pcapng, written by Wireshark's editcap (tcpdump writes pcap only)
editcap -F pcapng "$OUT/corpus.pcap" "$OUT/corpus.pcapng"
# the syslog form rsyslog's imklog writes (what psad reads): time, host, kernel tag
python3 - "$OUT/kern-iso.log" > "$OUT/kern-syslog.log" <<'PY'
import datetime, sys
for line in open(sys.argv[1], errors="replace"):
    stamp, msg = line.rstrip("\n").split(" ", 1)
    t = datetime.datetime.strptime(stamp.replace(",", ".")[:26], "%Y-%m-%dT%H:%M:%S.%f")
    print(f"{t.strftime('%b %e %H:%M:%S')} victim kernel: {msg}")
PY
cat "$RUN/tcpdump.err" >&2
echo "watch-corpus.sh: $(wc -l < "$OUT/kern.log") log lines, $(wc -l < "$OUT/auth.log") sshd lines, $(stat -c %s "$OUT/corpus.pcap") bytes of capture" >&2
