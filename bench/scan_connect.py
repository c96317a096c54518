#!/usr/bin/env python3
"""Driver of bench/scan-connect.sh (the lab must be up): times each tool on each case, checks
that their results agree, prints ratios."""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

BIN = os.environ["BIN"]
RUSTSCAN = os.environ.get("RUSTSCAN") or None
RUNS = int(os.environ.get("RUNS", "3"))
NS = ["ip", "netns", "exec", "ptl-scan"]


def top100():
    out = subprocess.run([BIN, "port", "--top", "100", "-o", "json"], capture_output=True, text=True, check=True).stdout
    return ",".join(str(p["port"]) for p in json.loads(out)["ports"])


def timed(cmd, runs):
    times, out = [], ""
    for _ in range(runs):
        t = time.perf_counter()
        r = subprocess.run(NS + cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        if r.returncode != 0:
            sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr}")
        out = r.stdout
    return statistics.median(times), out


def open_from_xml(path):
    # nmap XML: (address, port) of open ports, read by Portolan's own importer
    r = subprocess.run([BIN, "import", path, "-o", "json"], capture_output=True, text=True, check=True)
    doc = json.loads(r.stdout)
    opened, states = set(), {}
    for h in doc["hosts"]:
        for p in h["ports"]:
            states[(h["address"], p["port"])] = p["state"]
            if p["state"] == "open":
                opened.add((h["address"], p["port"]))
        for x in h.get("extra_ports", []):
            states.setdefault(("summary", h["address"]), []).append((x["state"], x["count"]))
    return opened, states


def open_from_rustscan(text):
    found = set()
    for line in text.splitlines():
        m = re.match(r"^(\S+) -> \[(.*)\]$", line.strip())
        if m:
            for p in m.group(2).split(","):
                if p.strip():
                    found.add((m.group(1), int(p)))
    return found


def case(name, targets, ports, runs, rustscan_ports):
    d = tempfile.mkdtemp()
    px, nx = os.path.join(d, "p.xml"), os.path.join(d, "n.xml")
    tp, _ = timed([BIN, "scan", "-sT", "-Pn", "-n", "-T4", "-p", ports, "-oX", px] + targets, runs)
    tn, _ = timed(["nmap", "-sT", "-Pn", "-n", "-T4", "-p", ports, "-oX", nx] + targets, max(1, runs if name != "B" else 1))
    po, ps = open_from_xml(px)
    no, ns = open_from_xml(nx)
    assert po == no, f"{name}: open ports differ: portolan-only {po - no}, nmap-only {no - po}"
    rows = [("portolan scan -sT -T4", tp), ("nmap -sT -T4", tn)]
    if RUSTSCAN:
        addrs = ",".join(targets)
        cmd = [RUSTSCAN, "-a", addrs, "-g", "--ulimit", "20000", "-b", "4500", "-t", "1500"] + rustscan_ports
        tr, out = timed(cmd, runs)
        ro = open_from_rustscan(out)
        assert ro == po, f"{name}: RustScan open ports differ: {ro ^ po}"
        rows.append(("rustscan 2.4.1 -b 4500 -t 1500", tr))
    print(f"\n== {name}: {' '.join(targets)} ports {ports if len(ports) < 40 else ports[:37] + '...'}; {len(po)} open ports, identical results")
    for label, t in rows:
        print(f"  {label:34} {t:8.2f} s   {t / tp:6.2f}x portolan's time")
    return {label: t for label, t in rows}


def main():
    results = {}
    results["A"] = case("A", ["198.18.10.5"], "1-65535", RUNS, ["-r", "1-65535"])
    results["B"] = case("B", ["198.18.4.2"], "1-65535", max(1, RUNS // 2), ["-r", "1-65535"])
    t100 = top100()
    results["C"] = case("C", ["198.18.10.0/24"], t100, RUNS, ["-p", t100])
    a, b = results["A"], results["B"]
    print("\n== targets")
    print(f"  A closed: {a['nmap -sT -T4'] / a['portolan scan -sT -T4']:.2f}x faster than nmap -T4 (target >= 2x)")
    if "rustscan 2.4.1 -b 4500 -t 1500" in a:
        print(f"  A closed: {a['rustscan 2.4.1 -b 4500 -t 1500'] / a['portolan scan -sT -T4']:.2f}x faster than RustScan (target > 1x)")
    print(f"  B filtered: {b['nmap -sT -T4'] / b['portolan scan -sT -T4']:.2f}x nmap -T4's speed (target >= 1x)")


if __name__ == "__main__":
    main()
