#!/usr/bin/env python3
"""Convert IANA's service-names-port-numbers.xml into IANA's CSV layout.

Portolan embeds the registry from the CSV this script writes (crates/registry/build.rs).
The XML is the vendored source of truth; the CSV is derived from it so that the build
needs no XML parser and so that the row count can be checked against a plain file.

Usage:
    xml2csv.py                 # rewrite service-names-port-numbers.csv beside this script
    xml2csv.py --check         # exit 1 if the committed CSV differs from a fresh conversion
    xml2csv.py --compare OLD   # report rows of OLD (an IANA CSV) missing from the conversion

Only the standard library is used.
"""

import csv
import io
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

NS = "{http://www.iana.org/assignments}"
HERE = Path(__file__).resolve().parent
XML = HERE / "service-names-port-numbers.xml"
CSV = HERE / "service-names-port-numbers.csv"
HEADER = [
    "Service Name", "Port Number", "Transport Protocol", "Description", "Assignee",
    "Contact", "Registration Date", "Modification Date", "Reference", "Service Code",
    "Unauthorized Use Reported", "Assignment Notes",
]


def xref_text(x):
    """Render one <xref> the way IANA's CSV does: [RFC1234], [Person_Id], [label]."""
    kind = x.get("type")
    data = x.get("data") or ""
    text = (x.text or "").strip()
    if kind == "rfc":
        return "[" + (text or data.upper()) + "]"
    if kind == "draft":
        return "[" + (text or data) + "]"
    if kind == "person":
        return "[" + data + "]"
    if kind == "uri":
        return "[" + (text or data) + "]"
    if kind == "text":
        return "[" + text + "]"
    if kind == "note":
        return "[" + data + "]"
    return "[" + (text or data) + "]"


def mixed_text(el):
    """Text of an element with inline <xref/> and <br/> children."""
    if el is None:
        return ""
    out = [el.text or ""]
    for child in el:
        tag = child.tag.replace(NS, "")
        if tag == "xref":
            out.append(xref_text(child))
        elif tag == "br":
            out.append("\n")
        out.append(child.tail or "")
    text = "".join(out)
    # IANA's CSV drops a blank line made of two <br/> in a row.
    text = re.sub(r"\n\n+", "\n", text)
    return text.strip()


def convert():
    root = ET.parse(XML).getroot()
    rows = []
    for rec in root.iter(NS + "record"):
        def field(tag):
            el = rec.find(NS + tag)
            return mixed_text(el)

        assignee_el = rec.find(NS + "assignee")
        direct_people = [xref_text(x) for x in rec.findall(NS + "xref") if x.get("type") == "person"]
        refs = [xref_text(x) for x in rec.findall(NS + "xref") if x.get("type") != "person"]
        if assignee_el is not None:
            assignee = "".join(xref_text(x) for x in assignee_el.findall(NS + "xref"))
            contact = "".join(direct_people)
        else:
            assignee = "".join(direct_people)
            contact = assignee
        notes = [mixed_text(n) for n in rec.findall(NS + "note")]
        rows.append([
            field("name"),
            field("number"),
            field("protocol"),
            field("description"),
            assignee,
            contact,
            rec.get("date", ""),
            rec.get("updated", ""),
            "".join(refs),
            field("sc"),
            field("unauthorized"),
            "\n".join(notes),
        ])
    return rows


def render(rows):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    w.writerows(rows)
    return buf.getvalue()


def main(argv):
    rows = convert()
    text = render(rows)
    if len(argv) > 1 and argv[1] == "--check":
        if CSV.read_text(encoding="utf-8") != text:
            print(f"{CSV} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        print(f"{CSV.name}: {len(rows)} rows, matches {XML.name}")
        return 0
    if len(argv) > 2 and argv[1] == "--compare":
        norm = lambda r: tuple(" ".join(c.split()) for c in r)
        old = [norm(r) for r in list(csv.reader(open(argv[2], encoding="utf-8")))[1:]]
        new = set(norm(r) for r in rows)
        missing = [r for r in old if r not in new]
        print(f"old rows: {len(old)}, converted rows: {len(rows)}, old rows not reproduced: {len(missing)}")
        for r in missing[:40]:
            print("  ", r)
        return 0
    CSV.write_text(text, encoding="utf-8")
    print(f"wrote {CSV.name}: {len(rows)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
