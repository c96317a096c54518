#!/usr/bin/env python3
"""Banner server for tests: listens on the given loopback endpoints, sends each connection its
banner and closes it, until stopped or its time runs out.

    bannerd.py --timeout 60 127.0.0.1:0='SSH-2.0-OpenSSH_9.2p1 Debian-2\\r\\n' 127.0.0.2:4242='220 ready\\r\\n'

Port 0 picks a free port. Prints the bound endpoints, comma separated, on one line once all are
listening. Banners take Python escapes (\\r, \\n, \\x1b). Only loopback addresses are accepted.
"""

import argparse
import errno
import ipaddress
import selectors
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("specs", nargs="+", metavar="ADDR:PORT=BANNER")
    a = ap.parse_args()
    sel = selectors.DefaultSelector()
    bound = []
    for spec in a.specs:
        endpoint, banner = spec.split("=", 1)
        addr, port = endpoint.rsplit(":", 1)
        addr = addr.strip("[]")
        if not ipaddress.ip_address(addr).is_loopback:
            sys.exit(f"bannerd: {addr} is not a loopback address")
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # a fixed port a test took before may be held for a moment by another test's outgoing
        # connection (both come from the ephemeral range): wait for it, at most 10 s
        deadline = time.monotonic() + 10
        while True:
            try:
                s.bind((addr, int(port)))
                break
            except OSError as e:
                if e.errno != errno.EADDRINUSE or int(port) == 0 or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        s.listen(64)
        s.setblocking(False)
        payload = banner.encode("latin-1").decode("unicode_escape").encode("latin-1")
        sel.register(s, selectors.EVENT_READ, payload)
        bound.append(f"{addr}:{s.getsockname()[1]}")
    print(",".join(bound), flush=True)
    end = time.monotonic() + a.timeout
    while time.monotonic() < end:
        for key, _ in sel.select(0.2):
            try:
                conn, _ = key.fileobj.accept()
            except OSError:
                continue
            try:
                conn.settimeout(1)
                conn.sendall(key.data)
            except OSError:
                pass
            conn.close()


if __name__ == "__main__":
    main()
