//! The embedded registry against the vendored files it was built from.

#![allow(clippy::unwrap_used, clippy::type_complexity)]

use portolan_model::{RangeClass, Transport};
use portolan_registry::{self as reg, Entry};

const CSV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/iana/service-names-port-numbers.csv");
const XML: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/iana/service-names-port-numbers.xml");

fn csv_rows() -> Vec<csv::StringRecord> {
    csv::Reader::from_path(CSV).unwrap().records().map(|r| r.unwrap()).collect()
}

fn fields(e: &Entry) -> [String; 12] {
    [
        e.name().to_string(),
        e.port_text(),
        e.transport().map(|t| t.to_string()).unwrap_or_default(),
        e.description().to_string(),
        e.assignee().to_string(),
        e.contact().to_string(),
        e.registration_date().to_string(),
        e.modification_date().to_string(),
        e.reference().to_string(),
        e.service_code().to_string(),
        e.unauthorized_use().to_string(),
        e.notes().to_string(),
    ]
}

#[test]
fn row_count_equals_the_csv_and_the_xml() {
    let rows = csv_rows();
    assert_eq!(reg::RECORD_COUNT, rows.len());
    assert_eq!(reg::records().count(), rows.len());
    // independent count of <record> elements in IANA's XML
    let mut reader = quick_xml::Reader::from_file(XML).unwrap();
    let mut buf = Vec::new();
    let mut records = 0;
    loop {
        match reader.read_event_into(&mut buf).unwrap() {
            quick_xml::events::Event::Start(e) if e.name().as_ref() == "record" => records += 1,
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    assert_eq!(records, rows.len());
    assert!(rows.len() > 14_000, "the full registry has more than 14,000 rows");
}

#[test]
fn sampled_rows_match_field_by_field() {
    let rows = csv_rows();
    let embedded: Vec<Entry> = reg::records().collect();
    let mut checked = 0;
    for (i, row) in rows.iter().enumerate() {
        if i % 53 != 0 && i + 1 != rows.len() {
            continue;
        }
        let want: Vec<&str> = row.iter().collect();
        let got = fields(&embedded[i]);
        assert_eq!(got.iter().map(String::as_str).collect::<Vec<_>>(), want, "row {}", i + 2);
        assert_eq!(embedded[i].csv_line() as usize, i + 2);
        checked += 1;
    }
    assert!(checked > 250);
}

#[test]
fn every_range_row_matches_and_is_found_from_each_end() {
    let rows = csv_rows();
    let embedded: Vec<Entry> = reg::records().collect();
    let mut ranges = 0;
    for (i, row) in rows.iter().enumerate() {
        let Some((lo, hi)) = row[1].split_once('-') else { continue };
        let (lo, hi): (u16, u16) = (lo.parse().unwrap(), hi.parse().unwrap());
        ranges += 1;
        let e = embedded[i];
        assert_eq!(fields(&e).iter().map(String::as_str).collect::<Vec<_>>(), row.iter().collect::<Vec<_>>());
        assert_eq!(e.ports(), Some((lo, hi)));
        for p in [lo, hi, lo + (hi - lo) / 2] {
            assert!(reg::by_port(p, None).any(|x| x == e), "row {} not found from port {p}", i + 2);
        }
    }
    assert!(ranges > 700, "IANA has over 700 range rows, saw {ranges}");
}

#[test]
fn known_rows_hand_checked() {
    let ssh: Vec<Entry> = reg::by_port(22, Some(Transport::Tcp)).collect();
    assert_eq!(ssh[0].name(), "ssh");
    assert_eq!(ssh[0].description(), "The Secure Shell (SSH) Protocol");
    assert_eq!(ssh[0].reference(), "[RFC4251]");
    assert_eq!(ssh[0].range_class(), Some(RangeClass::WellKnown));

    assert_eq!(reg::iana_name(3389, Transport::Tcp), Some("ms-wbt-server"));
    assert_eq!(reg::iana_name(53, Transport::Udp), Some("domain"));
    assert_eq!(reg::iana_name(443, Transport::Tcp), Some("https"));

    let x11: Vec<Entry> = reg::by_name("X11").filter(|e| e.ports().is_some()).collect();
    assert_eq!(x11.len(), 2, "x11 on tcp and udp");
    assert!(x11.iter().all(|e| e.ports() == Some((6000, 6063))));
    assert_eq!(reg::iana_name(6010, Transport::Tcp), Some("x11"));

    // all four transports exist
    for t in Transport::ALL {
        assert!(reg::records().any(|e| e.transport() == Some(t)), "{t}");
    }
    // discard has rows on every transport
    let discard: Vec<_> = reg::by_port(9, None).filter(|e| e.name() == "discard").collect();
    assert_eq!(discard.len(), 4);
    // unassigned and reserved rows are kept
    assert!(reg::by_port(0, Some(Transport::Tcp)).any(|e| e.description() == "Reserved"));
    assert!(reg::by_port(275, None).any(|e| e.description() == "Unassigned" && e.is_unassigned()));
    // IANA lists nothing in the dynamic range
    assert_eq!(reg::by_port(60000, None).count(), 0);
    // names without a port
    assert!(reg::by_name("arp").any(|e| e.ports().is_none()));
}

#[test]
fn search_and_suggestions() {
    let rdp = reg::search("remote desktop");
    assert!(!rdp.is_empty());
    assert!(rdp.iter().all(|e| {
        let t = format!("{} {} {}", e.name(), e.description(), e.notes()).to_lowercase();
        t.contains("remote") && t.contains("desktop")
    }));
    assert!(reg::search("").is_empty());
    assert!(reg::suggest("shh").contains(&"ssh"));
    assert!(reg::suggest("postgres").contains(&"postgresql"));
    assert!(reg::suggest("zzzzzzzzzzzz").is_empty());
}

#[test]
fn the_compact_name_table_agrees_with_the_rows() {
    // service_name for tcp/udp comes from a compact table; it must equal the first named row
    for t in [Transport::Tcp, Transport::Udp] {
        for port in 0..=65535u16 {
            let from_rows = reg::by_port(port, Some(t))
                .find(|e| e.transport() == Some(t) && !e.name().is_empty())
                .map(|e| e.name());
            assert_eq!(reg::iana_name(port, t), from_rows, "{port}/{t}");
        }
    }
}
