#!/usr/bin/env python3
"""Writes a synthetic but well-formed nmap XML scan (valid against nmap.dtd) for benchmarks and
store tests: HOSTS hosts in 198.18.0.0/15 × PORTS ports each, every port listed (as
`nmap -p- -v --reason` lists them), with a mix of open (with services), closed and filtered
states. `--variant N` makes a later scan of the same network: a deterministic 1-in-N of the
ports change state or service version. Closed and filtered ports carry the registry's service
name as nmap writes it (from nmap-services, else this machine's services database).

    nmapxml.py --hosts 1000 --ports 1000 [--variant 50] [--seed 1] > scan.xml

No packet is sent: this only writes a file.
"""

import argparse
import random
import socket
import sys


def table_names():
    """Port → the name nmap writes with method="table": nmap-services when installed, else this
    machine's services database."""
    names = {}
    for path in ("/usr/share/nmap/nmap-services", "/usr/local/share/nmap/nmap-services"):
        try:
            with open(path) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 2 and not line.startswith("#") and parts[1].endswith("/tcp"):
                        names.setdefault(int(parts[1].split("/")[0]), parts[0])
            return names
        except OSError:
            continue
    return names


def table_name(names, port):
    if port in names:
        return names[port]
    try:
        return socket.getservbyport(port, "tcp")
    except OSError:
        return None

SERVICES = [("ssh", "OpenSSH", "9.2p1"), ("http", "nginx", "1.24.0"), ("https", "nginx", "1.24.0"),
            ("smtp", "Postfix smtpd", None), ("mysql", "MySQL", "8.0.36"), ("redis", "Redis key-value store", "7.0.15"),
            ("ftp", "vsftpd", "3.0.3"), ("postgresql", "PostgreSQL DB", "15.6")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--ports", type=int, default=1000)
    ap.add_argument("--variant", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    chg = random.Random(a.seed * 7919 + a.variant)
    known = table_names()
    names = {p: table_name(known, p) for p in range(1, a.ports + 1)}
    out = sys.stdout
    w = out.write
    start = 1_790_000_000 + a.variant * 86400
    w('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE nmaprun>\n')
    w(f'<nmaprun scanner="nmap" args="nmap -sS -sV -p 1-{a.ports} 198.18.0.0/16" start="{start}" '
      f'startstr="x" version="7.93" xmloutputversion="1.05">\n')
    w(f'<scaninfo type="syn" protocol="tcp" numservices="{a.ports}" services="1-{a.ports}"/>\n')
    w('<verbose level="1"/>\n<debugging level="0"/>\n')
    for h in range(a.hosts):
        addr = f"198.18.{h // 250}.{h % 250 + 1}"
        w(f'<host starttime="{start}" endtime="{start + 5}"><status state="up" reason="echo-reply" reason_ttl="64"/>\n')
        w(f'<address addr="{addr}" addrtype="ipv4"/>\n<hostnames>\n</hostnames>\n<ports>')
        buf = []
        for p in range(1, a.ports + 1):
            r = rnd.random()
            changed = a.variant and chg.randrange(a.variant) == 0
            if r < 0.05:
                name, product, version = SERVICES[rnd.randrange(len(SERVICES))]
                if changed:
                    version = (version or "1") + ".1"
                attrs = f' product="{product}"' + (f' version="{version}"' if version else "")
                buf.append(f'<port protocol="tcp" portid="{p}"><state state="open" reason="syn-ack" reason_ttl="64"/>'
                           f'<service name="{name}"{attrs} method="probed" conf="10"/></port>\n')
            else:
                state, reason = ("closed", "reset") if r < 0.7 else ("filtered", "no-response")
                if changed:
                    state, reason = ("filtered", "no-response") if state == "closed" else ("closed", "reset")
                svc = f'<service name="{names[p]}" method="table" conf="3"/>' if names[p] else ""
                buf.append(f'<port protocol="tcp" portid="{p}"><state state="{state}" reason="{reason}" reason_ttl="64"/>'
                           f'{svc}</port>\n')
        w("".join(buf))
        w('</ports>\n<times srtt="500" rttvar="100" to="100000"/>\n</host>\n')
    w(f'<runstats><finished time="{start + 600}" timestr="x" summary="x" elapsed="600" exit="success"/>'
      f'<hosts up="{a.hosts}" down="0" total="{a.hosts}"/>\n</runstats>\n</nmaprun>\n')


if __name__ == "__main__":
    main()
