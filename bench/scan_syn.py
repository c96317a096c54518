#!/usr/bin/env python3
"""Driver of bench/scan-syn.sh (the lab must be up): times Portolan's SYN scan against nmap
and masscan, checks that results agree, prints ratios."""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

BIN = os.environ["BIN"]
FLOOR = os.environ.get("FLOOR", "")
RUNS = int(os.environ.get("RUNS", "3"))
RATE = int(os.environ.get("RATE", "100000"))
NS = ["ip", "netns", "exec", "ptl-scan"]
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from scan_connect import timed as timed_out  # noqa: E402  (same timing: median of runs inside the scanner namespace)


def timed(cmd, runs):
    """Median seconds of `runs` runs of `cmd` in the scanner namespace."""
    return timed_out(cmd, runs)[0]


def states(path):
    r = subprocess.run([BIN, "import", path, "-o", "json"], capture_output=True, text=True, check=True)
    out = {}
    for h in json.loads(r.stdout)["hosts"]:
        for p in h["ports"]:
            out[(h["address"], p["port"])] = p["state"]
        for x in h.get("extra_ports", []):
            for reason in x.get("reasons", []):
                for part in (reason.get("ports") or "").split(","):
                    if part:
                        lo, _, hi = part.partition("-")
                        for n in range(int(lo), int(hi or lo) + 1):
                            out[(h["address"], n)] = x["state"]
    return out


def opened(path):
    return {k for k, v in states(path).items() if v == "open"}


# case a's hosts: (address, tag, what the host is). The first is the target host: the
# shape of the host the planners timed nmap on (../shared/research/peers.md section 8).
A_HOSTS = [
    ("198.18.6.2", "firewalled", "7 open, 17 dropped, the rest closed (the planners' measured host)"),
    ("198.18.1.2", "lab-h1", "4 open, 2 reset and 4 dropped by nftables, 2 ICMP-prohibited, the rest closed"),
    ("198.18.10.5", "closed", "every port closed"),
    ("198.18.4.2", "dropped", "3 open, every other port dropped"),
]


def alternating(cmds, runs):
    """Median seconds of each command over `runs` rounds in the scanner namespace; each round
    runs every command once, in turn, so that all of them see the same moments of a noisy
    machine. Also the per-round ratios of the second command's time to the first's."""
    times = [[] for _ in cmds]
    for _ in range(runs):
        for k, cmd in enumerate(cmds):
            t = time.perf_counter()
            r = subprocess.run(NS + cmd, capture_output=True, text=True)
            times[k].append(time.perf_counter() - t)
            if r.returncode != 0:
                sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr}")
    ratios = [b / a for a, b in zip(times[0], times[1])] if len(cmds) > 1 else []
    return [statistics.median(t) for t in times], ratios


def case_a(d):
    rows = []
    for host, what, shape in A_HOSTS:
        px, n1, n2 = (os.path.join(d, f"{x}-{what}.xml") for x in ("p", "n1", "n2"))
        ours = [BIN, "scan", "-sS", "-Pn", "-n", "-T4", "-p-", "-oX", px, host]
        nmap_t4 = ["nmap", "-sS", "-Pn", "-n", "-T4", "-p-", "-oX", n1, host]
        nmap_rate = ["nmap", "-sS", "-Pn", "-n", "-p-", "--min-rate", "50000", "-oX", n2, host]
        if what == "dropped":
            # nmap -T4 takes about 90 s on the dropped host: once is enough there
            tp = timed(ours, RUNS)
            t1, t2 = timed(nmap_t4, 1), timed(nmap_rate, 1)
            ratios = []
        else:
            (tp, t1, t2), ratios = alternating([ours, nmap_t4, nmap_rate], RUNS)
        sp, s1, s2 = states(px), states(n1), states(n2)
        assert sp == s1, f"a/{what}: states differ from nmap -T4: {len(set(sp.items()) ^ set(s1.items()))} differences"
        # nmap at --min-rate 50000 may lose answers; Portolan must not differ from -T4's truth
        miss2 = len({k for k, v in s1.items() if v == "open"} - {k for k, v in s2.items() if v == "open"})
        print(f"\n== a/{what}: {host} all 65,535 ports ({shape}); states identical to nmap -T4")
        print(f"  portolan scan -sS -T4               {tp:8.2f} s")
        spread = f" (runs in turn; per run {min(ratios):.2f}x-{max(ratios):.2f}x)" if ratios else ""
        print(f"  nmap -sS -T4                        {t1:8.2f} s   {t1 / tp:6.2f}x portolan's time{spread}")
        print(f"  nmap -sS --min-rate 50000           {t2:8.2f} s   {t2 / tp:6.2f}x portolan's time (open ports missed: {miss2})")
        floor = FLOOR and what == "closed"
        if floor:
            # the kernels' own cost of this case: bench/syn_floor.c sends the same 65,535 SYNs
            # from two threads and only counts the answers; no scanner can finish sooner here
            tf = timed([FLOOR, host, "2"], RUNS)
            print(f"  kernel floor (bench/syn_floor.c)    {tf:8.2f} s   {t1 / tf:6.2f}x nmap -T4 is the most any scanner can reach here")
        rows.append((what, t1 / tp, t2 / tp, (t1 / tf) if floor else None))
    return rows


def masscan_cmd(out):
    mac = subprocess.run(
        ["ip", "netns", "exec", "ptl-net", "cat", "/sys/class/net/eth0/address"], capture_output=True, text=True, check=True
    ).stdout.strip()
    # bounded: in the lab under loss masscan has been seen to run for minutes
    return ["timeout", "120", "masscan", "-p80", "198.19.0.0/16", "--rate", str(RATE), "--wait", "1", "--interface", "s-h5",
            "--router-mac", mac, "--adapter-ip", "198.18.5.1", "-oX", out]


def timed_masscan(d, tag):
    """masscan's median time over RUNS runs, the open addresses each finished run found, and
    how many runs the 120 s bound cut off (such a run counts as 120 s and leaves no result)."""
    times, found, cut = [], [], 0
    for k in range(RUNS):
        out = os.path.join(d, f"m-{tag}-{k}.xml")
        t = time.perf_counter()
        r = subprocess.run(NS + masscan_cmd(out), capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        if r.returncode == 124:
            cut += 1
            continue
        if r.returncode != 0:
            sys.exit(f"failed: masscan\n{r.stderr}")
        try:
            found.append(len(opened(out)) if os.path.exists(out) and os.path.getsize(out) > 0 else 0)
        except subprocess.CalledProcessError:
            found.append(0)
    return statistics.median(times), found, cut


def case_b(d, tag):
    px = os.path.join(d, f"p-{tag}.xml")
    tp = timed([BIN, "scan", "-sS", "-Pn", "-n", "-T4", "--max-rate", str(RATE), "-p", "80", "-oX", px, "198.19.0.0/16"], RUNS)
    tm, found, cut = timed_masscan(d, tag.split()[0])
    po = opened(px)
    total = 65536
    got = f"{min(found)}-{max(found)} in {len(found)} finished runs" if found else "nothing (no run finished)"
    print(f"\n== {tag}: port 80 across 198.19.0.0/16 (65,536 addresses, all open), --rate {RATE} for both")
    print(f"  portolan -sS --max-rate {RATE:<9}   {tp:8.2f} s   {total / tp:9.0f} addresses/s   open found {len(po)}")
    print(f"  masscan --rate {RATE} --wait 1     {tm:8.2f} s   {total / tm:9.0f} addresses/s   open found {got}   {tm / tp:5.2f}x portolan's time")
    if cut:
        print(f"  ({cut} of {RUNS} masscan runs did not end and were cut off at 120 s)")
    return tp, tm, len(po), (max(found) if found else 0)


def main():
    d = tempfile.mkdtemp()
    a = case_a(d)
    b = case_b(d, "b")
    subprocess.run(["bash", os.path.join(HERE, "..", "scripts", "lab.sh"), "loss", "1"], check=True, capture_output=True)
    try:
        c = case_b(d, "c (1 % loss)")
    finally:
        subprocess.run(["bash", os.path.join(HERE, "..", "scripts", "lab.sh"), "loss", "off"], capture_output=True)
    print("\n== targets")
    for k, (what, r1, r2, best) in enumerate(a):
        goal = "target >= 10x" if k == 0 else "for information"
        limit = f"; the kernel floor allows {best:.2f}x at most" if best else ""
        print(f"  a/{what}: {r1:.2f}x faster than nmap -sS -T4 ({goal}{limit}), {r2:.2f}x nmap --min-rate 50000")
    print(f"  b: {b[1] / b[0]:.2f}x masscan's wall time at equal rate (target >= 1x); open {b[2]} vs masscan at best {b[3]} of 65536")
    print(f"  c: under 1 % loss portolan found {c[2]} of 65536 (target: all), masscan at best {c[3]}")


if __name__ == "__main__":
    main()
