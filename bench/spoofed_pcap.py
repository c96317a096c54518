#!/usr/bin/env python3
"""Writes a pcap of N TCP SYNs to 2001:db8:ffff::2 port 80, each from a distinct source in
2001:db8::/32 (a SYN flood of spoofed sources), one microsecond apart. Only a file is written;
no packet is sent.

    spoofed_pcap.py N OUT.pcap
"""

import struct
import sys


def main():
    n = int(sys.argv[1])
    out = open(sys.argv[2], "wb")
    # pcap header: little-endian, microseconds, Ethernet
    out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    eth = bytes.fromhex("020000000002" "020000000001" "86dd")
    dst = bytes.fromhex("20010db8ffff00000000000000000002")
    base = 1_700_000_000 * 1_000_000
    chunk = []
    for i in range(n):
        src = bytes.fromhex("20010db8") + (i + 1).to_bytes(12, "big")
        tcp = struct.pack("!HHIIBBHHH", 40000 + (i % 20000), 80, i, 0, 5 << 4, 0x02, 1024, 0, 0)
        ip6 = struct.pack("!IHBB", 6 << 28, len(tcp), 6, 64) + src + dst
        frame = eth + ip6 + tcp
        t = base + i
        chunk.append(struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(frame), len(frame)) + frame)
        if len(chunk) == 10000:
            out.write(b"".join(chunk))
            chunk = []
    out.write(b"".join(chunk))
    out.close()


if __name__ == "__main__":
    main()
