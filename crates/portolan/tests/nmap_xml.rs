//! nmap XML written by Portolan validates against nmap's DTD, reads in ndiff and renders with
//! nmap's XSL; and real nmap output round-trips through `portolan import`.

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::process::Command;

use jiff::Timestamp;
use portolan_model::{
    Host, HostState, Hostname, HostnameKind, Port, PortState, Reason, RunExit, ScanInfo, ScanRun, ScanType,
    Service, ServiceMethod, Transport,
};
use portolan_output::scan::{ShowOptions, XmlSink, write_run};
use portolan_testkit::{TempDir, require_tool, run, stderr, stdout};

const DTD: &str = "/usr/share/nmap/nmap.dtd";

fn validate(path: &std::path::Path) {
    let o = run(Command::new("xmllint").arg("--noout").arg("--dtdvalid").arg(DTD).arg(path));
    assert!(o.status.success(), "{} is not valid against nmap.dtd:\n{}", path.display(), stderr(&o));
}

fn port(n: u16, t: Transport, state: PortState, reason: Reason, service: Option<Service>) -> Port {
    Port { number: n, transport: t, state, reason, reason_ttl: 0, service: service.map(std::sync::Arc::new) }
}

fn model() -> ScanRun {
    let start = Timestamp::from_second(1_790_000_000).unwrap();
    let mut run =
        ScanRun::new("portolan", "0.1.0", "portolan scan -sT --reason -p 1-100 <lab> \"quoted\" --x", start);
    run.scan_info.push(ScanInfo {
        scan_type: ScanType::Connect,
        transport: Transport::Tcp,
        num_services: 100,
        services: "1-100".into(),
    });
    let mut h = Host::up("127.0.0.1".parse().unwrap(), Reason::LocalhostResponse);
    h.hostnames.push(Hostname { name: "localhost".into(), kind: HostnameKind::Ptr });
    h.srtt_us = Some(150);
    for n in 1..=100u16 {
        let (state, reason) = match n {
            22 | 80 => (PortState::Open, Reason::SynAck),
            53 => (PortState::Filtered, Reason::NoResponse),
            _ => (PortState::Closed, Reason::ConnRefused),
        };
        let service = match n {
            22 => Some(Service {
                name: "ssh".into(),
                product: Some("Evil\u{1b}[31m <ssh> & \"co\"".into()),
                version: Some("9.2p1".into()),
                method: ServiceMethod::Probed,
                confidence: 10,
                cpe: vec!["cpe:/a:openbsd:openssh:9.2p1".into()],
                ..Service::default()
            }),
            n => portolan_registry::port_name(n, Transport::Tcp).map(Service::from_table),
        };
        h.ports.push(port(n, Transport::Tcp, state, reason, service));
    }
    let mut v6 = Host::up("::1".parse().unwrap(), Reason::LocalhostResponse);
    v6.ports.push(port(53, Transport::Udp, PortState::OpenFiltered, Reason::NoResponse, None));
    let mut down = Host::up("127.0.0.9".parse().unwrap(), Reason::NoResponseHost);
    down.status.state = HostState::Down;
    run.hosts = vec![h, v6, down];
    run.stats.hosts_up = 2;
    run.stats.hosts_down = 1;
    run.stats.hosts_total = 3;
    run.stats.finished = Some(Timestamp::from_second(1_790_000_003).unwrap());
    run.stats.elapsed_secs = 3.0;
    run.stats.exit = RunExit::Success;
    run
}

#[test]
fn xml_from_a_model_is_valid_and_readable_by_nmap_tools() {
    let test = "xml_from_a_model_is_valid_and_readable_by_nmap_tools";
    if !require_tool(test, "xmllint") || !require_tool(test, "ndiff") || !require_tool(test, "xsltproc") {
        return;
    }
    let dir = TempDir::new("xml-model");
    let path = dir.join("model.xml");
    let mut sink = XmlSink::new(std::fs::File::create(&path).unwrap(), ShowOptions::default());
    write_run(&mut sink, &model()).unwrap();
    drop(sink);
    validate(&path);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains('\u{1b}'), "raw escape byte in XML");
    assert!(text.contains("<extraports state=\"closed\" count=\"97\">"), "{text}");
    // ndiff reads it: a file compared with itself has no differences
    let o = run(Command::new("ndiff").arg(&path).arg(&path));
    assert_eq!(o.status.code(), Some(0), "ndiff: {}{}", stdout(&o), stderr(&o));
    // and against a changed copy it reports the change
    let mut changed = model();
    changed.hosts[0].ports[21].state = PortState::Closed; // 22/tcp
    changed.hosts[0].ports[21].reason = Reason::ConnRefused;
    let path2 = dir.join("changed.xml");
    let mut sink = XmlSink::new(std::fs::File::create(&path2).unwrap(), ShowOptions::default());
    write_run(&mut sink, &changed).unwrap();
    drop(sink);
    validate(&path2);
    let o = run(Command::new("ndiff").arg(&path).arg(&path2));
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("22/tcp"), "{}", stdout(&o));
    // nmap's stylesheet renders it
    let html = dir.join("report.html");
    let o = run(Command::new("xsltproc").arg("-o").arg(&html).arg("/usr/share/nmap/nmap.xsl").arg(&path));
    assert!(o.status.success(), "{}", stderr(&o));
    let html = std::fs::read_to_string(html).unwrap();
    assert!(html.contains("127.0.0.1") && html.contains("ssh"), "rendered report lacks the host");
}

#[test]
fn real_nmap_output_round_trips_through_import() {
    let test = "real_nmap_output_round_trips_through_import";
    if !require_tool(test, "nmap") || !require_tool(test, "xmllint") || !require_tool(test, "ndiff") {
        return;
    }
    let dir = TempDir::new("xml-roundtrip");
    // a listener of our own on loopback, and ports around it that are closed
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = l.local_addr().unwrap().port();
    let ports = format!("{open},{}-{}", open.saturating_sub(40).max(1), open.saturating_sub(1).max(1));
    let nmap_xml = dir.join("nmap.xml");
    for verbose in ["-v0", "-v"] {
        let o = run(Command::new("nmap")
            .args(["-sT", "-Pn", "-n", verbose, "--reason", "-p", &ports, "-oX"])
            .arg(&nmap_xml)
            .arg("127.0.0.1"));
        assert!(o.status.success(), "nmap: {}", stderr(&o));
        validate(&nmap_xml);
        let ours = dir.join("portolan.xml");
        let o = run(Command::new(env!("CARGO_BIN_EXE_portolan"))
            .arg("import")
            .arg(&nmap_xml)
            .arg("-oX")
            .arg(&ours));
        assert!(o.status.success(), "import: {}", stderr(&o));
        validate(&ours);
        let o = run(Command::new("ndiff").arg(&nmap_xml).arg(&ours));
        assert_eq!(o.status.code(), Some(0), "ndiff found differences ({verbose}):\n{}", stdout(&o));
        // JSON of the import keeps the open port
        let o = run(Command::new(env!("CARGO_BIN_EXE_portolan"))
            .arg("import")
            .arg(&nmap_xml)
            .args(["-o", "json"]));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let found = v["hosts"][0]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["port"] == open && p["state"] == "open");
        assert!(found, "{v}");
        // -o normal of nmap's run speaks of nmap throughout: header, host reports, footer
        let o = run(Command::new(env!("CARGO_BIN_EXE_portolan"))
            .arg("import")
            .arg(&nmap_xml)
            .args(["-o", "normal"]));
        let text = stdout(&o);
        assert!(text.starts_with("# Nmap ") && text.contains("Nmap scan report for 127.0.0.1"), "{text}");
        assert!(!text.contains("Portolan"), "{text}");
    }
    drop(l);
}

#[test]
fn import_errors_name_the_file_and_position() {
    let dir = TempDir::new("xml-bad");
    let bad = dir.join("bad.xml");
    std::fs::write(
        &bad,
        "<?xml version=\"1.0\"?>\n<nmaprun>\n<host><address addr=\"1.2.3\"/></host></nmaprun>",
    )
    .unwrap();
    let o = run(Command::new(env!("CARGO_BIN_EXE_portolan")).arg("import").arg(&bad));
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("bad.xml:3:"), "{err}");
    let o = run(Command::new(env!("CARGO_BIN_EXE_portolan")).arg("import").arg(dir.join("missing.xml")));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing.xml"));
}
