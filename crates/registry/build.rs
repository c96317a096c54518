//! Turns the vendored IANA CSV and Portolan's ranking files into binary tables that the
//! crate includes with `include_bytes!`, so that a lookup at run time parses nothing.
//!
//! Layout (all integers little-endian u32 unless said otherwise):
//! - `strings.txt`: every distinct string of the registry, concatenated.
//! - `records.bin`: 14 u32 per CSV row, see `FIELDS` below.
//! - `port_index.bin`: 65,537 offsets then the list of record numbers covering each port
//!   (range rows are listed under every port they cover), CSR style.
//! - `name_index.bin`: record numbers of named rows, sorted by lowercase name, then row.
//! - `rank_tcp.bin` / `rank_udp.bin`: all 65,536 ports as u16 in ranking order.

use std::collections::HashMap;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};

/// Per record: 12 string fields as (offset, length) would be 24 u32; strings are interned, so
/// each field is one u32 string id into `string_table.bin` (offset, length pairs).
const FIELDS: usize = 14;

struct Interner {
    text: String,
    ids: HashMap<String, u32>,
    spans: Vec<(u32, u32)>,
}

impl Interner {
    fn new() -> Self {
        let mut i = Interner { text: String::new(), ids: HashMap::new(), spans: Vec::new() };
        i.intern(""); // id 0 is the empty string
        i
    }
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.spans.len() as u32;
        let off = self.text.len() as u32;
        self.text.push_str(s);
        self.spans.push((off, s.len() as u32));
        self.ids.insert(s.to_string(), id);
        id
    }
}

fn transport_code(s: &str, row: usize) -> u32 {
    match s {
        "" => 0,
        "tcp" => 1,
        "udp" => 2,
        "sctp" => 3,
        "dccp" => 4,
        other => panic!("registry CSV row {row}: unknown transport {other:?}"),
    }
}

fn parse_ports(s: &str, row: usize) -> Option<(u16, u16)> {
    if s.is_empty() {
        return None;
    }
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (a, b),
        None => (s, s),
    };
    let lo: u16 = lo.trim().parse().unwrap_or_else(|e| panic!("registry CSV row {row}: port {s:?}: {e}"));
    let hi: u16 = hi.trim().parse().unwrap_or_else(|e| panic!("registry CSV row {row}: port {s:?}: {e}"));
    assert!(lo <= hi, "registry CSV row {row}: empty port range {s:?}");
    Some((lo, hi))
}

fn put(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn read_ranking(path: &Path) -> Vec<u16> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut seen = vec![false; 65536];
    let mut order = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let first = line.split_whitespace().next().unwrap_or("");
        let port: u16 =
            first.parse().unwrap_or_else(|e| panic!("{}:{}: port {first:?}: {e}", path.display(), n + 1));
        assert!(!seen[port as usize], "{}:{}: port {port} listed twice", path.display(), n + 1);
        seen[port as usize] = true;
        order.push(port);
    }
    order
}

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let data = manifest.join("../../data");
    let csv_path = data.join("iana/service-names-port-numbers.csv");
    let xml_path = data.join("iana/service-names-port-numbers.xml");
    let tcp_rank = data.join("ranking/tcp.txt");
    let udp_rank = data.join("ranking/udp.txt");
    for p in [&csv_path, &xml_path, &tcp_rank, &udp_rank] {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));

    // The registry's own date, from the XML header (the CSV has none).
    let xml_head: String = fs::read_to_string(&xml_path)
        .unwrap_or_else(|e| panic!("{}: {e}", xml_path.display()))
        .chars()
        .take(4096)
        .collect();
    let updated = xml_head
        .split("<updated>")
        .nth(1)
        .and_then(|s| s.split("</updated>").next())
        .unwrap_or_else(|| panic!("{}: no <updated> in the header", xml_path.display()))
        .to_string();

    let mut rdr = csv::Reader::from_path(&csv_path).unwrap_or_else(|e| panic!("{}: {e}", csv_path.display()));
    let mut strings = Interner::new();
    let mut records = Vec::new();
    // (record number, lo, hi, transport) of rows that carry a port
    let mut ported: Vec<(u32, u16, u16, u32)> = Vec::new();
    let mut names: Vec<(String, u32)> = Vec::new();
    // ports that IANA assigns to a named service, per transport (for the ranking's tail)
    let mut assigned = [vec![false; 65536], vec![false; 65536]];
    for (i, row) in rdr.records().enumerate() {
        let row = row.unwrap_or_else(|e| panic!("{}: row {}: {e}", csv_path.display(), i + 2));
        assert_eq!(row.len(), 12, "{}: row {} has {} fields", csv_path.display(), i + 2, row.len());
        let rowno = i + 2;
        let n = i as u32;
        let ports = parse_ports(&row[1], rowno);
        let t = transport_code(&row[2], rowno);
        let (lo, hi) = ports.unwrap_or((0, 0));
        put(&mut records, strings.intern(&row[0]));
        put(&mut records, (u32::from(hi) << 16) | u32::from(lo));
        let written_as_range = u32::from(row[1].contains('-')) << 1;
        put(&mut records, u32::from(ports.is_some()) | written_as_range | (t << 8));
        for f in 3..12 {
            put(&mut records, strings.intern(&row[f]));
        }
        put(&mut records, rowno as u32);
        put(&mut records, 0);
        if let Some((lo, hi)) = ports {
            ported.push((n, lo, hi, t));
            if !row[0].is_empty() && (t == 1 || t == 2) {
                for p in lo..=hi {
                    assigned[(t - 1) as usize][p as usize] = true;
                }
            }
        }
        if !row[0].is_empty() {
            names.push((row[0].to_ascii_lowercase(), n));
        }
    }
    assert_eq!(records.len() % (FIELDS * 4), 0);
    let count = records.len() / (FIELDS * 4);

    // Port index, CSR.
    let mut per_port: Vec<Vec<u32>> = vec![Vec::new(); 65536];
    for &(n, lo, hi, _) in &ported {
        for p in lo..=hi {
            per_port[p as usize].push(n);
        }
    }
    let mut port_index = Vec::new();
    let mut offset = 0u32;
    for list in &per_port {
        put(&mut port_index, offset);
        offset += list.len() as u32;
    }
    put(&mut port_index, offset);
    for list in &per_port {
        for &n in list {
            put(&mut port_index, n);
        }
    }

    names.sort();
    let mut name_index = Vec::new();
    for (_, n) in &names {
        put(&mut name_index, *n);
    }

    let mut string_table = Vec::new();
    for &(off, len) in &strings.spans {
        put(&mut string_table, off);
        put(&mut string_table, len);
    }

    // Rankings: the curated head, then IANA-assigned well-known ports, then assigned
    // registered ports, then every other port, each group ascending.
    for (file, head, assigned) in [
        ("rank_tcp.bin", read_ranking(&tcp_rank), &assigned[0]),
        ("rank_udp.bin", read_ranking(&udp_rank), &assigned[1]),
    ] {
        let mut seen = vec![false; 65536];
        let mut order: Vec<u16> = Vec::with_capacity(65536);
        let mut push = |p: u16, order: &mut Vec<u16>| {
            if !seen[p as usize] {
                seen[p as usize] = true;
                order.push(p);
            }
        };
        for p in head {
            push(p, &mut order);
        }
        for p in 1..=1023u16 {
            if assigned[p as usize] {
                push(p, &mut order);
            }
        }
        for p in 1024..=49151u16 {
            if assigned[p as usize] {
                push(p, &mut order);
            }
        }
        for p in 1..=65535u16 {
            push(p, &mut order);
        }
        push(0, &mut order);
        assert_eq!(order.len(), 65536);
        let bytes: Vec<u8> = order.iter().flat_map(|p| p.to_le_bytes()).collect();
        fs::write(out.join(file), bytes).expect("write ranking");
    }

    // The service name of each (port, tcp|udp): the first named row for exactly that port and
    // transport, as `service_name` answers. A small contiguous table, so that naming the ports
    // of 50,000 sockets touches a few pages instead of the whole registry.
    for (file, t) in [("primary_tcp.bin", 1u32), ("primary_udp.bin", 2u32)] {
        let mut best: Vec<Option<(u32, String)>> = vec![None; 65536];
        for &(n, lo, hi, tr) in &ported {
            if tr != t {
                continue;
            }
            let rec = n as usize * FIELDS * 4;
            let name_id =
                u32::from_le_bytes([records[rec], records[rec + 1], records[rec + 2], records[rec + 3]]);
            let (off, len) = strings.spans[name_id as usize];
            if len == 0 {
                continue;
            }
            let name = strings.text[off as usize..(off + len) as usize].to_string();
            for p in lo..=hi {
                let slot = &mut best[p as usize];
                // rows come in IANA's order: the first exact-port row wins over a range row
                let exact = lo == hi;
                match slot {
                    None => *slot = Some((u32::from(exact), name.clone())),
                    Some((0, _)) if exact => *slot = Some((1, name.clone())),
                    _ => {}
                }
            }
        }
        let mut blob = Vec::new();
        let mut names = String::new();
        for (p, b) in best.iter().enumerate() {
            if let Some((_, name)) = b {
                blob.extend_from_slice(&(p as u16).to_le_bytes());
                blob.extend_from_slice(&(name.len() as u16).to_le_bytes());
                blob.extend_from_slice(&(names.len() as u32).to_le_bytes());
                names.push_str(name);
            }
        }
        fs::write(out.join(file), blob).expect("write primary names");
        fs::write(out.join(file.replace(".bin", ".txt")), names).expect("write primary names");
    }
    fs::write(out.join("strings.txt"), &strings.text).expect("write strings");
    fs::write(out.join("string_table.bin"), string_table).expect("write string table");
    fs::write(out.join("records.bin"), records).expect("write records");
    fs::write(out.join("port_index.bin"), port_index).expect("write port index");
    fs::write(out.join("name_index.bin"), name_index).expect("write name index");
    fs::write(
        out.join("meta.rs"),
        format!("/// Records in the embedded registry.\npub const RECORD_COUNT: usize = {count};\n/// The registry's `<updated>` date.\npub const UPDATED: &str = {updated:?};\n"),
    )
    .expect("write meta");
}
