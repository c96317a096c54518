//! Zeek's test traces: brute force where Zeek found it, nothing on ordinary traffic, and the
//! same detections from a capture as from Zeek's conn.log of it.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use portolan_detect::{Config, Detector, SourceName};
use portolan_model::Detection;
use portolan_model::traffic::{DetectionKind, Tool};
use portolan_traffic::{Options, read};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../traffic/tests/zeek")
}

fn detect(path: &Path) -> Vec<Detection> {
    let opts = Options { format: None, max_flows: 1 << 16, year: 2026, tz: jiff::tz::TimeZone::UTC };
    let name = path.display().to_string();
    let mut d = Detector::new(
        Config::default(),
        vec![SourceName { name, capture: path.extension().is_some_and(|x| x != "log") }],
    );
    read(path, 0, &opts, &mut |e| d.event(&e)).unwrap_or_else(|e| panic!("{e}"));
    d.finish().0
}

/// The baselines mask `ts` (the README's caveat 1). Zeek's `ts` is the connection's first
/// packet, so each row gets it back from the capture: rows and connections matched by
/// 5-tuple and order, as the README says to.
fn unmasked(name: &str, pcap: &Path) -> PathBuf {
    let opts = Options { format: None, max_flows: 1 << 16, year: 2026, tz: jiff::tz::TimeZone::UTC };
    let mut starts: HashMap<String, VecDeque<i64>> = HashMap::new();
    let mut events = Vec::new();
    read(pcap, 0, &opts, &mut |e| events.push(e)).unwrap_or_else(|e| panic!("{e}"));
    events.sort_by_key(|e| e.ts_us);
    for e in events {
        let Some(dst) = e.dst else { continue };
        let key = format!("{}\t{}\t{}\t{}", e.src, e.sport, dst, e.dport);
        starts.entry(key).or_default().push_back(e.ts_us);
    }
    let text = std::fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut out_text = String::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        if line.starts_with("XXXXXXXXXX") && cols.len() > 6 {
            let key = cols[2..6].join("\t");
            let ts = starts
                .get_mut(&key)
                .and_then(VecDeque::pop_front)
                .unwrap_or_else(|| panic!("{key} not in the capture"));
            out_text.push_str(&format!("{}.{:06}", ts / 1_000_000, ts % 1_000_000));
            out_text.push_str(&line["XXXXXXXXXX.XXXXXX".len()..]);
        } else {
            out_text.push_str(line);
        }
        out_text.push('\n');
    }
    let out = std::env::temp_dir().join(format!("portolan-detect-{}-{name}", std::process::id()));
    std::fs::write(&out, out_text).unwrap_or_else(|e| panic!("{e}"));
    out
}

#[test]
fn ordinary_traffic_gives_nothing() {
    for f in
        ["wikipedia.pcap", "ssh.pcap", "ssh.client-side-half-duplex.pcap", "pcapng-multi-interface.pcapng"]
    {
        let d = detect(&dir().join(f));
        assert!(d.is_empty(), "{f}: {d:#?}");
    }
}

#[test]
fn ssh_password_guessing_is_brute_force() {
    let d = detect(&dir().join("sshguess.pcap"));
    assert_eq!(d.len(), 1, "{d:#?}");
    let b = &d[0];
    assert_eq!(b.kind, DetectionKind::BruteForce);
    assert_eq!(b.src.map(|s| s.to_string()).as_deref(), Some("192.168.56.1"));
    assert_eq!(b.targets.iter().map(|t| t.to_string()).collect::<Vec<_>>(), ["192.168.56.103"]);
    assert_eq!(b.ports, "22");
    assert_eq!(b.tool, Tool::Unknown);
    assert_eq!(b.attack, ["T1110", "T1110.001"]);
    assert!(b.evidence[0].contains("sshguess.pcap#"), "{:?}", b.evidence);
}

#[test]
fn a_conn_log_gives_what_its_capture_gives() {
    for (pcap, log) in [
        ("wikipedia.pcap", "wikipedia.conn.log"),
        ("ssh.pcap", "ssh.conn.log"),
        ("ssh.client-side-half-duplex.pcap", "ssh.client-side-half-duplex.conn.log"),
    ] {
        let p = unmasked(log, &dir().join(pcap));
        let from_log = detect(&p);
        let _ = std::fs::remove_file(&p);
        let from_cap = detect(&dir().join(pcap));
        let brief = |d: &[Detection]| d.iter().map(|x| (x.kind, x.src, x.ports.clone())).collect::<Vec<_>>();
        assert_eq!(brief(&from_log), brief(&from_cap), "{pcap}");
    }
}
