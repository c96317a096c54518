#!/usr/bin/env python3
"""Driver of bench/listeners.sh: starts the load, runs hyperfine, prints ratios and peak RSS."""

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time

BIN = sys.argv[1]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOCKLOAD = os.path.join(ROOT, "scripts", "sockload.py")
RUNS = os.environ.get("RUNS", "10")
CASES = {
    "100": ["--tcp-listen", "25", "--udp", "15", "--conns", "20", "--procs", "20"],
    "10k": ["--tcp-listen", "3000", "--udp", "2000", "--conns", "2490", "--procs", "20"],
    "100k": ["--tcp-listen", "30000", "--udp", "20000", "--conns", "24990", "--procs", "20"],
    "fd": ["--tcp-listen", "19", "--procs", "5", "--fds", "19000"],
}
SIZES = os.environ.get("SIZES", "100 10k 100k fd").split()

COMMANDS = [
    ("portolan ls", f"{BIN} ls"),
    ("ss -tulpen", "ss -tulpen"),
    ("lsof -nP -iTCP -sTCP:LISTEN", "lsof -nP -iTCP -sTCP:LISTEN"),
    ("netstat -tulpen", "netstat -tulpen"),
]
ALL_STATES = [("portolan ls -a", f"{BIN} ls -a"), ("ss -tuapen", "ss -tuapen")]


def peak_rss_kib(cmd):
    """Median of 5 runs of GNU time's %M (peak RSS of the command itself, KiB). A Python
    fork+exec would report the interpreter's pages, so the small `time` binary does it."""
    vals = []
    for _ in range(5):
        r = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd.split(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        vals.append(int(r.stderr.strip().splitlines()[-1]))
    vals.sort()
    return vals[2]


def hyperfine(cmds, runs):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        args = ["hyperfine", "-N", "--warmup", "1", "--runs", str(runs), "--export-json", f.name]
        for name, cmd in cmds:
            args += ["-n", name, cmd]
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return {r["command"]: r for r in json.load(open(f.name))["results"]}


def start_load(args):
    d = tempfile.mkdtemp()
    ready = os.path.join(d, "ready.json")
    p = subprocess.Popen([sys.executable, SOCKLOAD, "--ready", ready, "--timeout", "900"] + args)
    deadline = time.time() + 180
    while not os.path.exists(ready):
        if p.poll() is not None or time.time() > deadline:
            p.kill()
            sys.exit(f"sockload failed to start for {args}")
        time.sleep(0.1)
    return p, json.load(open(ready))


def stop_load(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def main():
    targets = {"100": 1.0, "10k": 3.0, "100k": 6.0, "fd": 1.5}
    summary = []
    for size in SIZES:
        p, info = start_load(CASES[size])
        try:
            runs = RUNS if size != "100k" else os.environ.get("RUNS_100K", "5")
            lsof_runs = "5" if size in ("100", "10k", "fd") else "3"
            res = hyperfine(COMMANDS[:2], runs)
            res.update(hyperfine(COMMANDS[2:], lsof_runs))
            if size != "fd":
                res.update(hyperfine(ALL_STATES, runs))
            rss = {name: peak_rss_kib(cmd) for name, cmd in COMMANDS + (ALL_STATES if size != "fd" else [])}
        finally:
            stop_load(p)
        base = res["portolan ls"]["median"]
        print(f"\n== {size}: sockload {' '.join(CASES[size])} (expected {info['expected']})")
        print(f"{'command':32} {'median ms':>10} {'x vs portolan':>14} {'peak RSS MiB':>13}")
        for name, _ in COMMANDS + (ALL_STATES if size != "fd" else []):
            r = res[name]
            ref = res["portolan ls -a"]["median"] if name.endswith("-a") or name == "ss -tuapen" else base
            print(f"{name:32} {r['median']*1e3:10.1f} {r['median']/ref:13.2f}x {rss[name]/1024:13.1f}")
        ratio = res["ss -tulpen"]["median"] / base
        rss_ok = rss["portolan ls"] <= rss["ss -tulpen"]
        ok = ratio >= targets[size] and rss_ok
        summary.append((size, ratio, targets[size], rss["portolan ls"] / 1024, rss["ss -tulpen"] / 1024, ok))
    print("\n== summary: portolan ls against ss -tulpen (higher is better)")
    for size, ratio, target, r1, r2, ok in summary:
        print(f"{size:5} {ratio:6.2f}x faster (target >= {target}x); peak RSS {r1*1024:.0f} KiB vs ss {r2*1024:.0f} KiB: {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
