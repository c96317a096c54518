#!/usr/bin/env python3
"""Holds every packet of a netfilter queue for a fixed delay, then lets it go: a path with a
round-trip time for the lab, on a kernel without sch_netem. `lab.sh delay MS` starts it inside
a lab namespace, with an iptables NFQUEUE rule (--queue-bypass: while nothing reads the queue,
packets pass undelayed) on that namespace's output.

    nfq-delay.py QUEUE MS [SECONDS]

It speaks the nfnetlink_queue protocol on a netlink socket (no library needed), asks for the
packets' metadata only, and gives each packet its verdict (accept) MS milliseconds after it
was queued. It stops after SECONDS (default 600) or on SIGTERM/SIGINT, accepting what it
holds. Handles a few thousand packets a second: meant for tests of timing, not for floods.
"""
import heapq
import os
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN = 1, 2, 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NF_ACCEPT = 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2


def attr(kind, payload):
    a = struct.pack("=HH", 4 + len(payload), kind) + payload
    return a + b"\0" * (-len(a) % 4)


def message(kind, flags, queue, attrs, seq=0):
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, flags, seq, 0) + body


def messages(data):
    """(type, payload after the netlink header) of each netlink message in a datagram."""
    off = 0
    while off + 16 <= len(data):
        length, kind, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, off)
        if length < 16:
            return
        yield kind, data[off + 16 : off + length]
        off += (length + 3) & ~3


def packet_id(payload):
    off = 4  # nfgenmsg
    while off + 4 <= len(payload):
        length, kind = struct.unpack_from("=HH", payload, off)
        if length < 4:
            return None
        if kind & 0x7FFF == NFQA_PACKET_HDR:
            return struct.unpack_from(">I", payload, off + 4)[0]
        off += (length + 3) & ~3
    return None


def configure(sock, queue, seq, attrs):
    sock.send(message(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, queue, attrs, seq))
    deadline = time.monotonic() + 2
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            break
        for kind, payload in messages(sock.recv(65536)):
            if kind == NLMSG_ERROR:
                err = struct.unpack_from("=i", payload, 0)[0]
                if err != 0:
                    raise SystemExit(f"nfq-delay: configuring queue {queue}: {os.strerror(-err)}")
                return
    raise SystemExit("nfq-delay: the kernel did not answer the queue configuration")


def main():
    if len(sys.argv) not in (3, 4):
        raise SystemExit("usage: nfq-delay.py QUEUE MS [SECONDS]")
    try:
        queue, delay = int(sys.argv[1]), float(sys.argv[2]) / 1000.0
        limit = float(sys.argv[3]) if len(sys.argv) == 4 else 600.0
    except ValueError:
        raise SystemExit("nfq-delay: QUEUE, MS and SECONDS are numbers") from None
    if not (0 <= queue <= 65535 and 0 <= delay <= 10 and 0 < limit <= 3600):
        raise SystemExit("nfq-delay: QUEUE 0-65535, MS 0-10000, SECONDS 1-3600")
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.bind((0, 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    configure(sock, queue, 1, [attr(NFQA_CFG_CMD, struct.pack("=BBH", NFQNL_CFG_CMD_BIND, 0, 0))])
    configure(sock, queue, 2, [attr(NFQA_CFG_PARAMS, struct.pack(">IB", 0, NFQNL_COPY_META) + b"\0" * 3),
                               attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack(">I", 65536))])
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    held = []  # (release time, packet id)
    end = time.monotonic() + limit

    def release(upto):
        while held and held[0][0] <= upto:
            _, pid = heapq.heappop(held)
            verdict = attr(NFQA_VERDICT_HDR, struct.pack(">II", NF_ACCEPT, pid))
            sock.send(message(NFQNL_MSG_VERDICT, NLM_F_REQUEST, queue, [verdict]))

    print("ready", flush=True)
    while not stop and time.monotonic() < end:
        now = time.monotonic()
        wait = max(0.0, min(held[0][0] - now if held else 0.5, 0.5))
        try:
            readable, _, _ = select.select([sock], [], [], wait)
        except InterruptedError:
            continue
        if readable:
            arrived = time.monotonic()
            while True:
                try:
                    data = sock.recv(65536, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    break
                for kind, payload in messages(data):
                    if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                        pid = packet_id(payload)
                        if pid is not None:
                            heapq.heappush(held, (arrived + delay, pid))
        release(time.monotonic())
    release(float("inf"))


if __name__ == "__main__":
    main()
