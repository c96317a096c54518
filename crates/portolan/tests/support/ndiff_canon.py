#!/usr/bin/env python3
"""Reduces a diff to a canonical JSON set of changes, so that `ndiff --xml` and
`portolan diff -o json` on the same two files can be compared:

    ndiff_canon.py ndiff FILE      # ndiff --xml output
    ndiff_canon.py portolan FILE   # portolan diff -o json output

hosts:      [address, state in A or null, state in B or null]  (presence or state changed)
ports:      [address, port/proto, state A, service A, state B, service B]
extraports: [address, [[state, count]...] in A, ... in B]       (hosts on both sides only)
A service is [name, product, version, extrainfo] or null.
"""

import json
import sys
import xml.etree.ElementTree as ET


def svc(port):
    if port is None:
        return None
    s = port.find("service")
    if s is None:
        return None
    return [s.get("name"), s.get("product"), s.get("version"), s.get("extrainfo")]


def state(port):
    if port is None:
        return None
    s = port.find("state")
    return None if s is None else s.get("state")


def addr(host):
    return sorted(a.get("addr") for a in host.iter("address") if a.get("addrtype") != "mac")[0]


def extraports(elem):
    return sorted([x.get("state"), int(x.get("count"))] for x in elem.findall("extraports"))


def from_ndiff(path):
    hosts, ports, extra = [], [], []
    root = ET.parse(path).getroot()
    for hd in root.iter("hostdiff"):
        paired = hd.find("host")
        if paired is None:
            ha = hd.find("a/host")
            hb = hd.find("b/host")
            for side, h in (("a", ha), ("b", hb)):
                if h is None:
                    continue
                st = h.find("status").get("state") if h.find("status") is not None else None
                a = addr(h)
                hosts.append([a, st, None] if side == "a" else [a, None, st])
                for p in h.findall("ports/port"):
                    spec = f"{p.get('portid')}/{p.get('protocol')}"
                    row = [state(p), svc(p), None, None] if side == "a" else [None, None, state(p), svc(p)]
                    ports.append([a, spec] + row)
            continue
        a = addr(paired)
        sa = paired.find("a/status")
        sb = paired.find("b/status")
        if sa is not None or sb is not None:
            hosts.append([a, sa.get("state") if sa is not None else None, sb.get("state") if sb is not None else None])
        pe = paired.find("ports")
        if pe is None:
            continue
        if pe.find("a") is not None or pe.find("b") is not None:
            xa = extraports(pe.find("a")) if pe.find("a") is not None else []
            xb = extraports(pe.find("b")) if pe.find("b") is not None else []
            extra.append([a, xa, xb])
        for pd in pe.findall("portdiff"):
            same = pd.find("port")
            if same is not None:
                # same state, different service: <port><state/><a><service/></a><b>...</b></port>
                spec = f"{same.get('portid')}/{same.get('protocol')}"
                ports.append([a, spec, state(same), svc(same.find("a")), state(same), svc(same.find("b"))])
                continue
            pa = pd.find("a/port")
            pb = pd.find("b/port")
            p = pa if pa is not None else pb
            if p is None:
                sys.exit("unexpected portdiff: " + ET.tostring(pd, encoding="unicode"))
            spec = f"{p.get('portid')}/{p.get('protocol')}"
            ports.append([a, spec, state(pa), svc(pa), state(pb), svc(pb)])
    return hosts, ports, extra


def from_portolan(path):
    hosts, ports, extra = [], [], []
    d = json.load(open(path))
    for h in d["hosts"]:
        a = h["address"]
        one_sided = h["state_a"] is None or h["state_b"] is None
        if h["state_a"] != h["state_b"]:
            hosts.append([a, h["state_a"], h["state_b"]])
        if h["extraports_changed"] and not one_sided:
            extra.append([a, sorted(h.get("extraports_a", [])), sorted(h.get("extraports_b", []))])
        for p in h.get("ports", []):
            spec = f"{p['port']}/{p['transport']}"

            def side(s):
                if s is None:
                    return None, None
                v = s.get("service")
                return s["state"], None if v is None else [v["name"], v.get("product"), v.get("version"), v.get("extra_info")]

            sa, va = side(p["a"])
            sb, vb = side(p["b"])
            ports.append([a, spec, sa, va, sb, vb])
    return hosts, ports, extra


def main():
    kind, path = sys.argv[1], sys.argv[2]
    hosts, ports, extra = (from_ndiff if kind == "ndiff" else from_portolan)(path)
    key = lambda r: json.dumps(r)
    print(json.dumps({"hosts": sorted(hosts, key=key), "ports": sorted(ports, key=key), "extraports": sorted(extra, key=key)}, indent=1))


if __name__ == "__main__":
    main()
