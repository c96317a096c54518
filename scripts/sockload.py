#!/usr/bin/env python3
"""Socket load generator for Portolan's tests and benchmarks. Loopback only.

Opens N listening TCP sockets, N UDP sockets (bound, unconnected) and M established loopback
TCP connections, spread over P child processes, plus (with --extras) a zoo of the cases a
socket inventory must get right. Writes a JSON ready file, then sleeps until SIGTERM/SIGINT.
Children die with the parent (PR_SET_PDEATHSIG); every socket is on 127.0.0.0/8 or ::1, except
the dual-stack and v6-only wildcard listeners of the zoo, which only listen.

    sockload.py --ready FILE [--tcp-listen N] [--udp N] [--conns M] [--procs P] [--extras]
                [--fds K]   # K extra /dev/null fds per child (the fd-heavy benchmark case)
                [--timeout S]  # exit by itself after S seconds (default 600): bounded

Ready file: {"parent": pid, "children": [pids], "expected": {...}, "extras": {name: {...}}}
"""

import argparse
import ctypes
import json
import os
import resource
import signal
import socket
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
PR_SET_NAME = 15
PR_SET_PDEATHSIG = 1
SO_BINDTODEVICE = 25


def set_name(name):
    libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()), 0, 0, 0)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def inode(sock):
    return os.fstat(sock.fileno()).st_ino


def port_iter(used):
    """Ports below the ephemeral range, skipping any in use on this machine."""
    p = 1024
    while p < 32768:
        if p not in used:
            yield p
        p += 1


def ports_in_use(names):
    used = set()
    for name in names:
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    used.add(int(line.split()[1].split(":")[1], 16))
        except OSError:
            pass
    return used


def bind_listen(family, addr, port, backlog=16, reuseport=False):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind((addr, port))
    s.listen(backlog)
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ready", required=True)
    ap.add_argument("--tcp-listen", type=int, default=0)
    ap.add_argument("--udp", type=int, default=0)
    ap.add_argument("--conns", type=int, default=0)
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--fds", type=int, default=0)
    ap.add_argument("--extras", action="store_true")
    ap.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args()
    if a.procs < 1:
        sys.exit("--procs must be at least 1")
    raise_nofile()
    # TCP and UDP have separate port spaces: 30,000 listeners and 20,000 UDP sockets both fit
    ports = port_iter(ports_in_use(("/proc/net/tcp", "/proc/net/tcp6")))
    uports = port_iter(ports_in_use(("/proc/net/udp", "/proc/net/udp6")))
    extras = {}
    keep = []  # sockets the parent keeps

    # Connection listeners: one per child, created before forking so every child can connect.
    conn_per_child = a.conns // a.procs
    conn_listeners = []
    if conn_per_child:
        for i in range(a.procs):
            conn_listeners.append(bind_listen(socket.AF_INET, f"127.3.{i // 250}.{i % 250 + 1}", next(ports), backlog=max(16, conn_per_child + 8)))

    # The zoo (parent-owned unless said otherwise).
    shared = None
    if a.extras:
        shared = bind_listen(socket.AF_INET, "127.4.0.1", next(ports))
        extras["shared"] = {"transport": "tcp", "address": "127.4.0.1", "port": shared.getsockname()[1], "inode": inode(shared)}
        p = next(ports)
        group = [bind_listen(socket.AF_INET, "127.4.0.2", p, reuseport=True) for _ in range(3)]
        keep += group
        extras["reuseport"] = {"transport": "tcp", "address": "127.4.0.2", "port": p, "inodes": [inode(s) for s in group]}
        dev = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        dev.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, b"lo")
        dev.bind(("127.4.0.3", next(ports)))
        dev.listen(4)
        keep.append(dev)
        extras["device"] = {"transport": "tcp", "address": "127.4.0.3", "port": dev.getsockname()[1], "inode": inode(dev), "device": "lo"}
        udev = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udev.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, b"lo")
        udev.bind(("127.4.0.3", next(uports)))
        keep.append(udev)
        extras["device_udp"] = {"transport": "udp", "address": "127.4.0.3", "port": udev.getsockname()[1], "inode": inode(udev), "device": "lo"}
        mapped = bind_listen(socket.AF_INET6, "::ffff:127.4.0.4", next(ports))
        keep.append(mapped)
        extras["mapped"] = {"transport": "tcp", "address": "::ffff:127.4.0.4", "port": mapped.getsockname()[1], "inode": inode(mapped)}
        dual = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        dual.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        dual.bind(("::", next(ports)))
        dual.listen(4)
        keep.append(dual)
        extras["dual_stack"] = {"transport": "tcp", "address": "::", "port": dual.getsockname()[1], "inode": inode(dual)}
        v6only = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        v6only.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        v6only.bind(("::", next(ports)))
        v6only.listen(4)
        keep.append(v6only)
        extras["v6only"] = {"transport": "tcp", "address": "::", "port": v6only.getsockname()[1], "inode": inode(v6only)}
        cu = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        cu.bind(("127.4.0.5", next(uports)))
        cu.connect(("127.4.0.6", next(uports)))
        keep.append(cu)
        extras["connected_udp"] = {"transport": "udp", "address": "127.4.0.5", "port": cu.getsockname()[1], "inode": inode(cu)}
        bound = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        bound.bind(("127.4.0.7", next(ports)))
        keep.append(bound)
        extras["bound_only"] = {"transport": "tcp", "address": "127.4.0.7", "port": bound.getsockname()[1], "inode": inode(bound)}

    # Per-child port blocks, decided before forking so children do not collide.
    per_tcp = [a.tcp_listen // a.procs + (1 if i < a.tcp_listen % a.procs else 0) for i in range(a.procs)]
    per_udp = [a.udp // a.procs + (1 if i < a.udp % a.procs else 0) for i in range(a.procs)]
    plan = []
    for i in range(a.procs):
        plan.append(([next(ports) for _ in range(per_tcp[i])], [next(uports) for _ in range(per_udp[i])]))

    conn_addrs = [l.getsockname() for l in conn_listeners]
    r, w = os.pipe()
    children = []
    for i in range(a.procs):
        pid = os.fork()
        if pid == 0:
            os.close(r)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
            set_name(f"sockload-{i:02d}")
            signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
            for s in keep:
                s.close()
            mine = []
            for j, l in enumerate(conn_listeners):
                if j != i:
                    l.close()
            tcp_ports, udp_ports = plan[i]
            for k, p in enumerate(tcp_ports):
                if k % 2:
                    mine.append(bind_listen(socket.AF_INET6, "::1", p))
                else:
                    mine.append(bind_listen(socket.AF_INET, f"127.1.{i // 250}.{i % 250 + 1}", p))
            for k, p in enumerate(udp_ports):
                s = socket.socket(socket.AF_INET6 if k % 2 else socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("::1" if k % 2 else f"127.2.{i // 250}.{i % 250 + 1}", p))
                mine.append(s)
            if conn_per_child:
                target = conn_addrs[(i + 1) % a.procs]
                for _ in range(conn_per_child):
                    c = socket.create_connection(target)
                    mine.append(c)
                own = conn_listeners[i]
                for _ in range(conn_per_child):
                    conn, _ = own.accept()
                    mine.append(conn)
            for _ in range(a.fds):
                mine.append(open("/dev/null", "rb"))
            os.write(w, b"x")
            while True:
                signal.pause()
        children.append(pid)
    os.close(w)
    for l in conn_listeners:
        l.close()
    if shared is not None:
        shared.close()  # only the children hold it now
    got = 0
    deadline = time.time() + 120
    while got < a.procs and time.time() < deadline:
        got += len(os.read(r, a.procs))
    if got < a.procs:
        for c in children:
            os.kill(c, signal.SIGTERM)
        sys.exit("children did not start in time")

    expected = {
        "tcp_listen": a.tcp_listen + (a.procs if conn_per_child else 0),
        "udp_unconn": a.udp,
        "established": 2 * conn_per_child * a.procs,
    }
    tmp = a.ready + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"parent": os.getpid(), "children": children, "expected": expected, "extras": extras}, f)
    os.rename(tmp, a.ready)

    def stop(*_):
        for c in children:
            try:
                os.kill(c, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for c in children:
            try:
                os.waitpid(c, 0)
            except ChildProcessError:
                pass
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGALRM, stop)
    signal.alarm(int(a.timeout))
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
