//! Malformed and hostile nmap XML: a clear error with line and column, never a panic.

#![allow(clippy::unwrap_used, clippy::type_complexity)]

use std::path::Path;

use portolan_import::{Error, parse_bytes, parse_str};
use portolan_model::{PortState, Reason};

fn err(xml: &str) -> Error {
    parse_str(xml, Path::new("t.xml")).unwrap_err()
}

fn pos(e: &Error) -> (usize, usize) {
    match e {
        Error::Malformed { line, column, .. } | Error::Invalid { line, column, .. } => (*line, *column),
        other => panic!("no position in {other:?}"),
    }
}

const HEAD: &str =
    "<?xml version=\"1.0\"?>\n<nmaprun scanner=\"nmap\" start=\"1700000000\" version=\"7.93\">\n";

#[test]
fn a_good_document_round_trips_the_fields() {
    let xml = format!(
        "{HEAD}<scaninfo type=\"connect\" protocol=\"tcp\" numservices=\"3\" services=\"1-3\"/>\n<host starttime=\"1700000000\" endtime=\"1700000001\"><status state=\"up\" reason=\"conn-refused\" reason_ttl=\"0\"/>\n<address addr=\"2001:db8::1\" addrtype=\"ipv6\"/><hostnames><hostname name=\"lab &amp; co\" type=\"PTR\"/></hostnames>\n<ports><extraports state=\"closed\" count=\"2\"><extrareasons reason=\"conn-refused\" count=\"2\" proto=\"tcp\" ports=\"1-2\"/></extraports>\n<port protocol=\"tcp\" portid=\"3\"><state state=\"open|filtered\" reason=\"no-response\" reason_ttl=\"0\"/><service name=\"x\" product=\"a&lt;b\" method=\"probed\" conf=\"10\" tunnel=\"ssl\"><cpe>cpe:/a:x&#58;y</cpe></service></port></ports><times srtt=\"200\" rttvar=\"100\" to=\"100000\"/></host>\n<runstats><finished time=\"1700000002\" elapsed=\"2.00\" exit=\"success\"/><hosts up=\"1\" down=\"0\" total=\"1\"/></runstats></nmaprun>\n"
    );
    let run = parse_str(&xml, Path::new("t.xml")).unwrap();
    assert_eq!(run.scan_info.len(), 1);
    let h = &run.hosts[0];
    assert_eq!(h.address.to_string(), "2001:db8::1");
    assert_eq!(h.hostnames[0].name, "lab & co");
    assert_eq!(h.extra_ports[0].count, 2);
    let p = &h.ports[0];
    assert_eq!(p.state, PortState::OpenFiltered);
    assert_eq!(p.reason, Reason::NoResponse);
    let s = p.service.as_ref().unwrap();
    assert_eq!(s.product.as_deref(), Some("a<b"));
    assert_eq!(s.cpe, vec!["cpe:/a:x:y".to_string()]);
    assert_eq!(h.srtt_us, Some(200));
    assert_eq!(run.stats.hosts_up, 1);
    assert_eq!(run.stats.elapsed_secs, 2.0);
}

#[test]
fn truncated_file_names_the_open_element() {
    let e = err(&format!("{HEAD}<host><status state=\"up\" reason=\"x\" reason_ttl=\"0\"/>"));
    assert!(e.to_string().contains("t.xml:"), "{e}");
    assert!(e.to_string().contains("host"), "{e}");
}

#[test]
fn mismatched_tag_has_line_and_column() {
    let e = err(&format!("{HEAD}<host>\n  <ports></host>"));
    let (line, _) = pos(&e);
    assert_eq!(line, 4, "{e}");
    assert!(matches!(e, Error::Malformed { .. }));
}

#[test]
fn a_bad_port_is_invalid_with_position() {
    let e = err(&format!(
        "{HEAD}<host><address addr=\"127.0.0.1\"/><ports>\n<port protocol=\"tcp\" portid=\"70000\"><state state=\"open\" reason=\"x\" reason_ttl=\"0\"/></port></ports></host></nmaprun>"
    ));
    assert_eq!(pos(&e), (4, 1), "{e}");
    assert!(e.to_string().contains("portid"), "{e}");
    let e = err(&format!(
        "{HEAD}<host><address addr=\"127.0.0.1\"/><ports><port protocol=\"tcp\" portid=\"1\"><state state=\"opened\" reason=\"x\" reason_ttl=\"0\"/></port></ports></host></nmaprun>"
    ));
    assert!(e.to_string().contains("opened"), "{e}");
    let e = err(&format!("{HEAD}<host><address addr=\"999.1.1.1\"/></host></nmaprun>"));
    assert!(e.to_string().contains("999.1.1.1"), "{e}");
    let e =
        err(&format!("{HEAD}<host><status state=\"up\" reason=\"x\" reason_ttl=\"0\"/></host></nmaprun>"));
    assert!(e.to_string().contains("address"), "{e}");
}

#[test]
fn not_nmap_and_not_xml() {
    assert!(err("<html><body/></html>").to_string().contains("<html>"));
    assert!(err("").to_string().contains("no <nmaprun>"));
    assert!(matches!(err("just text, no markup <"), Error::Malformed { .. } | Error::Invalid { .. }));
    let e = parse_bytes(b"<nmaprun>\n<a>\xff\xfe</a></nmaprun>", Path::new("b.xml")).unwrap_err();
    assert!(e.to_string().contains("UTF-8") && e.to_string().contains("b.xml:2:"), "{e}");
}

#[test]
fn entities_are_never_expanded() {
    // the "billion laughs": an internal subset must not be expanded, and the reference fails
    let mut xml = String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE nmaprun [\n<!ENTITY lol \"lol\">\n");
    for i in 1..10 {
        xml.push_str(&format!("<!ENTITY lol{i} \"{}\">\n", format!("&lol{};", i - 1).repeat(10)));
    }
    xml.push_str("]>\n<nmaprun scanner=\"nmap\" args=\"&lol9;\"></nmaprun>");
    let e = err(&xml);
    assert!(e.to_string().contains("lol9"), "{e}");
    // external entities are not fetched either
    let e = err("<!DOCTYPE nmaprun [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><nmaprun args=\"&x;\"/>");
    assert!(e.to_string().contains('x'), "{e}");
}

#[test]
fn deep_nesting_is_refused() {
    let mut xml = String::from(HEAD);
    for _ in 0..200 {
        xml.push_str("<a>");
    }
    let e = err(&xml);
    assert!(e.to_string().contains("nest"), "{e}");
}

#[test]
fn oversized_files_are_refused_before_reading() {
    let dir = std::env::temp_dir().join(format!("portolan-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("big.xml");
    std::fs::write(&f, vec![b' '; 4096]).unwrap();
    let e = portolan_import::read_file_limited(&f, 1024).unwrap_err();
    assert!(matches!(e, Error::TooLarge { size: 4096, .. }), "{e}");
    let e = portolan_import::read_file(&dir.join("missing.xml")).unwrap_err();
    assert!(e.to_string().contains("missing.xml"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn masscan_style_documents_without_status_are_read() {
    let xml = "<?xml version=\"1.0\"?><nmaprun scanner=\"masscan\" start=\"1700000000\" version=\"1.0-BETA\" xmloutputversion=\"1.03\"><host endtime=\"1700000000\"><address addr=\"198.18.0.5\" addrtype=\"ipv4\"/><ports><port protocol=\"tcp\" portid=\"80\"><state state=\"open\" reason=\"syn-ack\" reason_ttl=\"64\"/></port></ports></host><runstats><finished time=\"1700000001\" timestr=\"x\" elapsed=\"1\"/><hosts up=\"1\" down=\"0\" total=\"1\"/></runstats></nmaprun>";
    let run = parse_str(xml, Path::new("m.xml")).unwrap();
    assert_eq!(run.scanner, "masscan");
    assert_eq!(run.hosts[0].ports[0].reason_ttl, 64);
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    const GOOD: &str = "<?xml version=\"1.0\"?>\n<nmaprun scanner=\"nmap\" start=\"1700000000\" version=\"7.93\">\n<host><status state=\"up\" reason=\"syn-ack\" reason_ttl=\"64\"/><address addr=\"198.18.0.1\" addrtype=\"ipv4\"/><address addr=\"02:00:00:00:00:01\" addrtype=\"mac\" vendor=\"X\"/>\n<hostnames><hostname name=\"a &amp; b\" type=\"user\"/></hostnames><ports><extraports state=\"closed\" count=\"2\"><extrareasons reason=\"reset\" count=\"2\"/></extraports>\n<port protocol=\"tcp\" portid=\"22\"><state state=\"open\" reason=\"syn-ack\" reason_ttl=\"64\"/><service name=\"ssh\" product=\"OpenSSH\" version=\"9.2\" method=\"probed\" conf=\"10\"><cpe>cpe:/a:openbsd:openssh:9.2</cpe></service></port>\n<port protocol=\"udp\" portid=\"53\"><state state=\"open|filtered\" reason=\"no-response\" reason_ttl=\"0\"/><service name=\"domain\" method=\"table\" conf=\"3\"/></port></ports><times srtt=\"100\" rttvar=\"50\" to=\"100000\"/></host>\n<runstats><finished time=\"1700000001\" elapsed=\"1.00\" exit=\"success\"/><hosts up=\"1\" down=\"0\" total=\"1\"/></runstats></nmaprun>\n";

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Arbitrary bytes are read or refused, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_bytes(&b, Path::new("t.xml"));
        }

        /// A real document with bytes changed, cut or repeated is read or refused with a
        /// position, never a panic.
        #[test]
        fn mutated_documents_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut b = GOOD.as_bytes().to_vec();
            for (at, byte) in &edits {
                let i = at.index(b.len());
                b[i] = *byte;
            }
            let _ = parse_bytes(&b, Path::new("t.xml"));
            let _ = parse_bytes(&b[..cut.index(b.len())], Path::new("t.xml"));
        }
    }

    #[test]
    fn the_seed_document_is_read() {
        let run = parse_str(GOOD, Path::new("t.xml")).unwrap();
        assert_eq!(run.hosts[0].ports.len(), 2);
        assert_eq!(run.hosts[0].mac_vendor.as_deref(), Some("X"));
        assert_eq!(run.hosts[0].ports[0].reason, Reason::SynAck);
        assert_eq!(run.hosts[0].ports[1].state, PortState::OpenFiltered);
    }
}
