//! Zeek's own test traces (tests/zeek/, provenance in its README): the connections Portolan
//! reads from each capture agree with the conn.log Zeek wrote from it, on the set of
//! connections (5-tuple) and on which of them got past the handshake.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use portolan_model::traffic::Outcome;
use portolan_model::{Event, Proto};
use portolan_traffic::{Format, Options, Stats, read};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/zeek")
}

fn opts() -> Options {
    Options { format: None, max_flows: 1 << 16, year: 2026, tz: jiff::tz::TimeZone::UTC }
}

fn events(path: &Path) -> (Vec<Event>, Stats) {
    let mut v = Vec::new();
    let stats = read(path, 0, &opts(), &mut |e| v.push(e)).unwrap_or_else(|e| panic!("{e}"));
    (v, stats)
}

/// The baselines mask `ts` (README caveat 1); a copy with 0 in its place reads as a conn.log.
fn unmasked(name: &str) -> PathBuf {
    let text = std::fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let out = std::env::temp_dir().join(format!("portolan-zeek-{}-{name}", std::process::id()));
    std::fs::write(&out, text.replace("XXXXXXXXXX.XXXXXX", "0.000000")).unwrap_or_else(|e| panic!("{e}"));
    out
}

type Tuple = (IpAddr, u16, IpAddr, u16, Proto);

fn established(o: Outcome) -> bool {
    matches!(o, Outcome::Accepted | Outcome::Session)
}

fn by_tuple(v: &[Event]) -> BTreeMap<Tuple, Vec<bool>> {
    let mut m: BTreeMap<Tuple, Vec<bool>> = BTreeMap::new();
    for e in v {
        let Some(dst) = e.dst else { continue };
        m.entry((e.src, e.sport, dst, e.dport, e.proto)).or_default().push(established(e.outcome));
    }
    for v in m.values_mut() {
        v.sort();
    }
    m
}

fn compare(pcap: &str, log: &str) {
    let (cap, cs) = events(&dir().join(pcap));
    assert_eq!(cs.format, Some(Format::Capture));
    let path = unmasked(log);
    let (zk, zs) = events(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(zs.format, Some(Format::Zeek));
    assert_eq!(zs.skipped, 0, "{:?}", zs.first_skip);
    let (a, b) = (by_tuple(&cap), by_tuple(&zk));
    let only_cap: Vec<_> = a.iter().filter(|(k, _)| !b.contains_key(k)).collect();
    let only_zeek: Vec<_> = b.iter().filter(|(k, _)| !a.contains_key(k)).collect();
    let differ: Vec<_> = a.iter().filter(|(k, v)| b.get(*k).is_some_and(|w| w != *v)).collect();
    assert!(
        only_cap.is_empty() && only_zeek.is_empty() && differ.is_empty(),
        "{pcap}: only in the capture {only_cap:?}\nonly in Zeek's log {only_zeek:?}\nestablished differs {differ:?}"
    );
    assert_eq!(cap.len(), zk.len(), "{pcap}: connection count");
}

#[test]
fn wikipedia() {
    compare("wikipedia.pcap", "wikipedia.conn.log");
}

#[test]
fn ssh_sessions() {
    compare("ssh.pcap", "ssh.conn.log");
}

#[test]
fn ssh_half_duplex() {
    compare("ssh.client-side-half-duplex.pcap", "ssh.client-side-half-duplex.conn.log");
}

#[test]
fn pcapng_two_interfaces() {
    compare("pcapng-multi-interface.pcapng", "pcapng-multi-interface.conn.log");
}
