#!/usr/bin/env python3
"""TLS server for tests: serves the given certificate (however malformed: OpenSSL loads a
certificate without checking its fields) on one loopback endpoint, until stopped or its time
runs out. After the handshake it sends an HTTP answer and closes.

    tlsd.py --timeout 30 --cert bad.pem --key key.pem 127.0.0.1:0

Port 0 picks a free port. Prints the bound endpoint on one line once listening. Only loopback
addresses are accepted.
"""

import argparse
import ipaddress
import socket
import ssl
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("endpoint", metavar="ADDR:PORT")
    a = ap.parse_args()
    addr, port = a.endpoint.rsplit(":", 1)
    addr = addr.strip("[]")
    if not ipaddress.ip_address(addr).is_loopback:
        sys.exit(f"tlsd: {addr} is not a loopback address")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port)))
    s.listen(64)
    s.settimeout(0.2)
    print(f"{addr}:{s.getsockname()[1]}", flush=True)
    end = time.monotonic() + a.timeout
    while time.monotonic() < end:
        try:
            conn, _ = s.accept()
        except OSError:
            continue
        conn.settimeout(2)
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                try:
                    tls.recv(4096)
                except OSError:
                    pass
                tls.sendall(b"HTTP/1.0 200 OK\r\nServer: tlsd\r\nContent-Length: 0\r\n\r\n")
        except (OSError, ssl.SSLError):
            conn.close()


if __name__ == "__main__":
    main()
