//! The knowledge base: schema validation of the source files, coverage of the ports the
//! product promises, and the judgement.

#![allow(clippy::unwrap_used, clippy::type_complexity)]

use portolan_kb::{self as kb, Reach, TransportSecurity};
use portolan_model::{Severity, Transport};
use portolan_registry::Ranking;

#[allow(dead_code, missing_docs)]
#[path = "../src/spec.rs"]
mod spec;

fn source_entries() -> Vec<(String, spec::RawEntry)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/kb");
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|d| d.unwrap().path()).collect();
    files.sort();
    for f in files.into_iter().filter(|p| p.extension().is_some_and(|x| x == "toml")) {
        let parsed: spec::File = toml::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        out.extend(parsed.service.into_iter().map(|e| (f.display().to_string(), e)));
    }
    out
}

#[test]
fn every_entry_passes_schema_validation() {
    let entries = source_entries();
    let problems = spec::validate(&entries);
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(entries.len(), kb::all().len(), "every source entry is embedded");
    assert!(kb::all().len() >= 100, "at least 100 services, have {}", kb::all().len());
}

#[test]
fn the_validator_rejects_what_it_should() {
    let good = source_entries()[0].1.clone();
    let mut problems = Vec::new();
    spec::validate_entry(&good, &mut problems);
    assert!(problems.is_empty());
    let cases: Vec<(&str, Box<dyn Fn(&mut spec::RawEntry)>)> = vec![
        ("ports", Box::new(|e| e.ports = vec!["70000/tcp".into()])),
        ("ports", Box::new(|e| e.ports = vec!["22/xyz".into()])),
        ("category", Box::new(|e| e.category = "toaster".into())),
        ("internet_risk", Box::new(|e| e.internet_risk = "severe".into())),
        ("attack", Box::new(|e| e.attack = vec!["T12".into()])),
        ("attack", Box::new(|e| e.attack = vec!["T0883".into()])),
        ("hardening", Box::new(|e| e.hardening = vec!["one".into()])),
        ("references", Box::new(|e| e.references = vec!["Wikipedia".into(), "a blog".into()])),
        ("id", Box::new(|e| e.id = "Bad Id".into())),
        ("text", Box::new(|e| e.name = "caf\u{e9}".into())),
    ];
    for (field, mutate) in cases {
        let mut e = good.clone();
        mutate(&mut e);
        let mut problems = Vec::new();
        spec::validate_entry(&e, &mut problems);
        assert!(problems.iter().any(|p| p.contains(&format!("`{field}`"))), "{field}: {problems:?}");
    }
    // unknown fields are rejected by the format itself
    let bad = "[[service]]\nid = \"x\"\ncolour = \"red\"\n";
    assert!(toml::from_str::<spec::File>(bad).is_err());
}

fn covered(port: u16, t: Transport) -> bool {
    kb::for_port(port, t).next().is_some()
}

#[test]
fn seed_ports_and_usual_suspects_are_covered() {
    let tcp_or_udp = |p: u16| covered(p, Transport::Tcp) || covered(p, Transport::Udp);
    let seed =
        [20, 21, 22, 23, 25, 53, 69, 80, 123, 161, 162, 389, 443, 445, 587, 636, 993, 995, 1433, 3306, 3389];
    let suspects = [
        111, 135, 137, 138, 139, 2049, 2375, 2376, 5432, 5900, 5985, 5986, 6379, 6443, 9200, 10250, 11211,
        27017, 1883, 502,
    ];
    for p in seed.iter().chain(suspects.iter()) {
        assert!(tcp_or_udp(*p), "port {p} has no knowledge-base entry");
    }
}

#[test]
fn safer_alternatives_named_by_the_product_are_there() {
    let alt = |id: &str| kb::by_id(id).unwrap().alternative.to_ascii_lowercase();
    assert!(alt("telnet").contains("ssh"));
    assert!(alt("ftp").contains("sftp"));
    assert!(alt("http").contains("https"));
    assert!(alt("ldap").contains("ldaps") || alt("ldap").contains("starttls"));
    assert!(alt("snmp").contains("v3"));
    assert!(alt("ms-wbt-server").contains("vpn") || alt("ms-wbt-server").contains("gateway"));
}

#[test]
fn risk_is_weighted_by_reach() {
    let telnet = kb::by_id("telnet").unwrap();
    assert_eq!(telnet.transport_security, TransportSecurity::Cleartext);
    assert_eq!(telnet.risk(Reach::Internet), Severity::Critical);
    assert_eq!(telnet.risk(Reach::AllInterfaces), Severity::Critical);
    assert_eq!(telnet.risk(Reach::LocalNetwork), Severity::High);
    assert_eq!(telnet.risk(Reach::Loopback), Severity::Info);
    let f = telnet.exposure_finding(Reach::AllInterfaces, None, 23, Transport::Tcp);
    assert_eq!(f.severity, Severity::Critical);
    assert!(f.remediation.to_lowercase().contains("ssh"));
    assert!(!f.attack.is_empty() && !f.references.is_empty());
}

#[test]
fn lookups_by_name_and_port() {
    assert_eq!(kb::for_service_name("ssh")[0].id, "ssh");
    // a registry name that is not an id finds the entry through its port
    assert!(kb::for_service_name("www").iter().any(|e| e.id == "http"));
    assert!(kb::for_port(6010, Transport::Tcp).any(|e| e.id == "x11"));
    assert!(kb::by_id("no-such-thing").is_none());
}

#[test]
fn every_kb_port_ranks_high_in_the_builtin_ranking() {
    let r = Ranking::builtin();
    for e in kb::all() {
        for s in e.ports {
            let (t, n) = match s.transport {
                Transport::Udp => (Transport::Udp, 200),
                _ => (Transport::Tcp, 1000),
            };
            assert!(r.top(t, n).contains(&s.lo), "{} {s} is not in the builtin top {n}", e.id);
        }
    }
}
