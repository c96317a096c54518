#!/usr/bin/env python3
"""Lab listener: serves TCP ports inside a lab namespace (dual-stack [::]) until it is stopped
or its time runs out. Each port answers like a small real service so that `check` and, later,
identification have something to read:

  22    SSH banner            25   SMTP greeting       21  FTP greeting
  80, 8080, 8443 and others   HTTP/1.0 200 with a Server header, after the request line

    lablisten.py --tcp 22,80,443 [--timeout SECONDS] [--pidfile FILE]
"""

import argparse
import os
import selectors
import signal
import socket
import sys
import time

BANNERS = {
    21: b"220 lab FTP ready\r\n",
    22: b"SSH-2.0-OpenSSH_9.2p1 PortolanLab\r\n",
    25: b"220 lab.test ESMTP ready\r\n",
}
HTTP = b"HTTP/1.0 200 OK\r\nServer: PortolanLab/1.0\r\nContent-Type: text/html\r\n\r\n<title>lab</title>\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tcp", default="")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--pidfile")
    a = ap.parse_args()
    sel = selectors.DefaultSelector()
    for p in filter(None, a.tcp.split(",")):
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", int(p)))
        s.listen(512)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, ("listen", int(p)))
    if a.pidfile:
        with open(a.pidfile, "w") as f:
            f.write(str(os.getpid()))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    deadline = time.time() + a.timeout
    while time.time() < deadline:
        for key, _ in sel.select(timeout=1.0):
            kind, port = key.data
            if kind == "listen":
                try:
                    c, _ = key.fileobj.accept()
                except OSError:
                    continue
                c.setblocking(False)
                if port in BANNERS:
                    try:
                        c.send(BANNERS[port])
                    except OSError:
                        pass
                sel.register(c, selectors.EVENT_READ, ("conn", port))
            else:
                c = key.fileobj
                try:
                    data = c.recv(4096)
                except OSError:
                    data = b""
                if data and port not in BANNERS:
                    try:
                        c.send(HTTP)
                    except OSError:
                        pass
                sel.unregister(c)
                c.close()


if __name__ == "__main__":
    main()
