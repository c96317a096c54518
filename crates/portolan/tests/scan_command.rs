//! `portolan scan` and `portolan check` on the project's lab (scripts/lab.sh): the same states
//! as `nmap -sT` in the same run, nmap-valid XML, no packet outside the declared targets, and
//! clear errors.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use portolan_model::{PortState, ScanRun};
use portolan_testkit::{Lab, TempDir, require_root, require_tool, run, stderr, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_portolan");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ready(test: &str) -> bool {
    require_root(test) && require_tool(test, "nmap") && require_tool(test, "ip") && require_tool(test, "nft")
}

/// Lab hosts, IPv4 and IPv6.
const HOSTS: [&str; 8] = [
    "198.18.1.2",
    "198.18.2.2",
    "198.18.3.2",
    "198.18.4.2",
    "2001:db8:1::2",
    "2001:db8:2::2",
    "2001:db8:3::2",
    "2001:db8:4::2",
];
/// Open, closed (RST by nft and by the stack), dropped and ICMP-prohibited ports of the lab.
const PORTS: &str = "20-26,80,111,135,139,443,445,2049,3306,3389,5900,8080,8443";

type States = BTreeMap<(IpAddr, u16), PortState>;

fn states(run: &ScanRun) -> States {
    let mut m = States::new();
    for h in &run.hosts {
        for p in &h.ports {
            m.insert((h.address, p.number), p.state);
        }
        // ports summarised in <extraports> carry their state too
        for x in &h.extra_ports {
            for r in &x.reasons {
                for part in r.ports.as_deref().unwrap_or("").split(',').filter(|s| !s.is_empty()) {
                    let (a, b) = part.split_once('-').unwrap_or((part, part));
                    for p in a.parse::<u16>().unwrap()..=b.parse::<u16>().unwrap() {
                        m.insert((h.address, p), x.state);
                    }
                }
            }
        }
    }
    m
}

fn xml_states(path: &Path) -> States {
    states(&portolan_import::read_file(path).unwrap())
}

fn validate(path: &Path) {
    let o = run(Command::new("xmllint")
        .arg("--noout")
        .arg("--dtdvalid")
        .arg("/usr/share/nmap/nmap.dtd")
        .arg(path));
    assert!(o.status.success(), "{} is not valid against nmap.dtd: {}", path.display(), stderr(&o));
}

/// Ground truth from scripts/lab.sh, per host number: open ports, then the firewall's closed,
/// dropped and prohibited ports (h4 drops everything but its open ports).
fn expected(host: &str, port: u16) -> PortState {
    let n = if host.contains(':') {
        host.split(':').nth(2).unwrap().parse::<u8>().unwrap()
    } else {
        host.split('.').nth(2).unwrap().parse().unwrap()
    };
    let open: &[u16] = match n {
        1 => &[22, 80, 443, 8080],
        2 => &[21, 22, 25, 3306],
        3 => &[80, 8443],
        _ => &[22, 80, 443],
    };
    if open.contains(&port) {
        return PortState::Open;
    }
    if n == 4 {
        return PortState::Filtered;
    }
    match port {
        135 | 139 | 445 | 5900 | 111 | 2049 => PortState::Filtered,
        _ => PortState::Closed,
    }
}

/// nmap and Portolan on the same targets and ports; nmap 7.93 scans one address family per
/// run (`-6`), so each family is its own pair of files.
fn scan_both(lab: &Lab, dir: &TempDir) -> Vec<(States, States, PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for (tag, hosts) in [("v4", &HOSTS[..4]), ("v6", &HOSTS[4..])] {
        let nmap_xml = dir.join(&format!("nmap-{tag}.xml"));
        let ours_xml = dir.join(&format!("portolan-{tag}.xml"));
        let mut nmap = lab.in_scanner("nmap");
        nmap.args(["-sT", "-Pn", "-n", "-T4", "-p", PORTS, "-oX"]).arg(&nmap_xml);
        if tag == "v6" {
            nmap.arg("-6");
        }
        let o = run(nmap.args(hosts));
        assert!(o.status.success(), "nmap: {}", stderr(&o));
        let o = run(lab
            .in_scanner(BIN)
            .args(["scan", "-sT", "-Pn", "-n", "-T4", "-p", PORTS, "-oX"])
            .arg(&ours_xml)
            .args(hosts));
        assert!(o.status.success(), "portolan: {}", stderr(&o));
        out.push((xml_states(&nmap_xml), xml_states(&ours_xml), nmap_xml, ours_xml));
    }
    out
}

#[test]
fn states_match_nmap_and_the_lab_with_and_without_loss() {
    let t = "states_match_nmap_and_the_lab_with_and_without_loss";
    if !ready(t) || !require_tool(t, "xmllint") || !require_tool(t, "ndiff") {
        return;
    }
    let lab = Lab::up(&repo());
    let dir = TempDir::new("scan-vs-nmap");
    let n_ports: usize = PORTS
        .split(',')
        .map(|p| {
            p.split_once('-')
                .map_or(1, |(a, b)| b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1)
        })
        .sum();
    let mut ours = States::new();
    for (theirs, mine, nmap_xml, ours_xml) in scan_both(&lab, &dir) {
        assert_eq!(mine.len(), 4 * n_ports, "every port of every host has a state");
        assert_eq!(mine, theirs, "states differ from nmap -sT");
        validate(&ours_xml);
        let o = run(Command::new("ndiff").arg(&nmap_xml).arg(&ours_xml));
        assert_eq!(o.status.code(), Some(0), "ndiff reports differences:\n{}", stdout(&o));
        // admin-prohibited is told apart from host-unreachable (IPv4 and IPv6)
        let parsed = portolan_import::read_file(&ours_xml).unwrap();
        for h in &parsed.hosts {
            let a = h.address.to_string();
            if a.ends_with(".4.2") || a.ends_with(":4::2") {
                continue;
            }
            let p = h.ports.iter().find(|p| p.number == 111).unwrap();
            assert_eq!(p.reason.as_str(), "admin-prohibited", "{a}");
        }
        ours.extend(mine);
    }
    assert_eq!(ours.len(), HOSTS.len() * n_ports);
    for ((addr, port), state) in &ours {
        assert_eq!(*state, expected(&addr.to_string(), *port), "{addr}:{port}");
    }

    // 2 % loss on the scanner's links: no open port may be missed
    lab.loss(Some(2.0));
    let o = run(lab
        .in_scanner(BIN)
        .args(["scan", "-sT", "-Pn", "-n", "-T4", "-p", PORTS, "-o", "json"])
        .args(HOSTS));
    lab.loss(None);
    assert!(o.status.success(), "{}", stderr(&o));
    let lossy: ScanRun = serde_json::from_slice(&o.stdout).unwrap();
    let lossy = states(&lossy);
    for ((addr, port), state) in &ours {
        if *state == PortState::Open {
            assert_eq!(lossy.get(&(*addr, *port)), Some(&PortState::Open), "{addr}:{port} missed under loss");
        }
    }
    // and nothing is open that was not
    let open =
        |m: &States| m.iter().filter(|(_, s)| **s == PortState::Open).map(|(k, _)| *k).collect::<Vec<_>>();
    assert_eq!(open(&lossy), open(&ours));
    assert_eq!(lossy.len(), ours.len(), "every port has a state under loss");
}

/// (sender, destination) of every IP packet of a capture; for ARP requests and IPv6 neighbour
/// solicitations, (sender, the address asked for).
fn pcap_senders_and_destinations(pcap: &Path) -> Vec<(String, String)> {
    let o = run(Command::new("tcpdump").args(["-nn", "-r"]).arg(pcap));
    let mut out = Vec::new();
    // "198.18.1.1.40000" and "2001:db8::1.443" carry a port; "198.18.1.1" and "2001:db8::1"
    // (ICMP) do not
    let strip = |s: &str| {
        let s = s.trim_end_matches(':').trim_end_matches(',');
        let has_port = if s.contains(':') { s.contains('.') } else { s.matches('.').count() == 4 };
        if has_port {
            s.rsplit_once('.').map(|(a, _)| a.to_string()).unwrap_or_default()
        } else {
            s.to_string()
        }
    };
    for line in stdout(&o).lines() {
        // "12:00:00.000000 ARP, Request who-has 198.18.1.3 tell 198.18.1.1, length 28"
        if let Some(rest) = line.split("Request who-has ").nth(1) {
            let mut it = rest.split_whitespace();
            if let (Some(asked), Some("tell"), Some(from)) = (it.next(), it.next(), it.next()) {
                out.push((strip(from), strip(asked)));
            }
            continue;
        }
        // "12:00:00.000000 IP 198.18.1.1.40000 > 198.18.1.2.22: Flags [S], ..."
        let Some(rest) = line.split(" IP ").nth(1).or_else(|| line.split(" IP6 ").nth(1)) else { continue };
        let mut it = rest.split_whitespace();
        let (Some(src), Some(">"), Some(dst)) = (it.next(), it.next(), it.next()) else { continue };
        // "... > ff02::1:ff00:2: ICMP6, neighbor solicitation, who has 2001:db8:2::2, length 32"
        if let Some(asked) = rest.split("neighbor solicitation, who has ").nth(1) {
            let asked = asked.split(',').next().unwrap_or_default();
            out.push((strip(src), asked.to_string()));
            continue;
        }
        out.push((strip(src), strip(dst)));
    }
    out
}

#[test]
fn no_packet_leaves_for_an_address_outside_the_targets() {
    let t = "no_packet_leaves_for_an_address_outside_the_targets";
    if !ready(t) || !require_tool(t, "tcpdump") {
        return;
    }
    let lab = Lab::up(&repo());
    let dir = TempDir::new("scope");
    let pcap = dir.join("scan.pcap");
    let dump = lab.capture(&pcap, "ip or ip6 or arp");
    // closed UDP ports answer at once (the ICMP rate limit is not what this test is about)
    lab.icmp_ratelimit(0);
    // every probe kind, with its host discovery: connect, raw SYN, UDP, discovery only (raw
    // discovery: ARP and neighbour discovery on the links, ICMP, SYN, ACK beyond)
    for (kind, ports) in
        [("-sT", "22,80,443,8080"), ("-sS", "22,80,443,8080"), ("-sU", "53,161,40000"), ("-sn", "")]
    {
        let mut cmd = lab.in_scanner(BIN);
        cmd.args(["scan", kind, "-T4"]);
        if !ports.is_empty() {
            cmd.args(["-p", ports]);
        }
        let o = run(cmd.args([
            "--exclude",
            "198.18.1.2,198.18.10.5",
            "198.18.1.0/29",
            "198.18.10.0/28",
            "2001:db8:2::2",
        ]));
        assert!(o.status.success(), "{kind}: {}", stderr(&o));
    }
    lab.icmp_ratelimit(1000);
    dump.stop();
    // the scanner's addresses, its link-local ones (neighbour discovery) among them
    let o = run(Command::new("ip").args(["-n", "ptl-scan", "-6", "-o", "addr", "show", "scope", "link"]));
    let link_local: Vec<String> = stdout(&o)
        .split_whitespace()
        .filter(|w| w.starts_with("fe80:"))
        .map(|w| w.split('/').next().unwrap_or_default().to_string())
        .collect();
    assert!(!link_local.is_empty(), "the scanner's link-local addresses");
    let ours = |s: &str| {
        ["198.18.1.1", "198.18.2.1", "198.18.3.1", "198.18.4.1", "198.18.5.1", "2001:db8:2::1"].contains(&s)
            || link_local.iter().any(|l| l == s)
    };
    let allowed = |d: &str| -> bool {
        // the kernel resolves the router towards the routed targets (the one address asked
        // for that is not a target) and keeps its link-local neighbours fresh (IPv6 neighbour
        // unreachability detection, and MLD reports to link-scope groups, which stay on the link)
        if d == "198.18.5.2" || d.starts_with("fe80:") || d.starts_with("ff02:") {
            return true;
        }
        let Ok(ip) = d.parse::<IpAddr>() else { return false };
        match ip {
            IpAddr::V4(a) => {
                let o = a.octets();
                let in_a = o[0] == 198 && o[1] == 18 && o[2] == 1 && o[3] < 8 && o[3] != 2;
                let in_b = o[0] == 198 && o[1] == 18 && o[2] == 10 && o[3] < 16 && o[3] != 5;
                in_a || in_b
            }
            IpAddr::V6(_) => d == "2001:db8:2::2",
        }
    };
    let packets = pcap_senders_and_destinations(&pcap);
    let sent: Vec<&(String, String)> = packets.iter().filter(|(s, _)| ours(s)).collect();
    assert!(sent.len() > 20, "the capture saw the scan ({} packets)", sent.len());
    for (src, dst) in &sent {
        assert!(allowed(dst), "packet from {src} to {dst}, outside the declared targets");
    }
    assert!(sent.iter().any(|(_, d)| d == "198.18.10.9"), "targets were scanned");
    // raw discovery asked the link for the on-link targets (ARP), and UDP probes went out
    let arp = run(Command::new("tcpdump").args(["-nn", "-r"]).arg(&pcap).arg("arp"));
    assert!(stdout(&arp).contains("who-has 198.18.1.3"), "no ARP discovery in the capture");
    let udp = run(Command::new("tcpdump").args(["-nn", "-r"]).arg(&pcap).arg("udp dst port 40000"));
    assert!(stdout(&udp).lines().count() >= 3, "no UDP probes in the capture");
    // the SYN scan's raw probes were in the capture too (a connect probe's SYN carries
    // options a raw probe does not: window 1024 is the raw one's)
    let o = run(Command::new("tcpdump")
        .args(["-nn", "-r"])
        .arg(&pcap)
        .arg("tcp[tcpflags] == tcp-syn and tcp[14:2] == 1024"));
    assert!(stdout(&o).lines().count() > 10, "no raw SYN probes in the capture");
}

#[test]
fn check_answers_like_nc_with_reason_service_and_banner() {
    let t = "check_answers_like_nc_with_reason_service_and_banner";
    if !ready(t) {
        return;
    }
    let lab = Lab::up(&repo());
    let o = run(lab.in_scanner(BIN).args(["check", "198.18.1.2:22", "[2001:db8:1::2]:80", "-o", "json"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["state"], "open");
    assert_eq!(v[0]["reason"], "syn-ack");
    assert_eq!(v[0]["service"], "ssh");
    assert!(v[0]["banner"].as_str().unwrap().starts_with("SSH-2.0-OpenSSH_9.2p1 PortolanLab"), "{v}");
    assert!(v[0]["banner"].as_str().unwrap().ends_with("\\r\\n"), "control bytes are escaped: {v}");
    assert!(v[0]["latency_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(v[1]["state"], "open");
    let o = run(lab.in_scanner(BIN).args([
        "check",
        "198.18.1.2:23",
        "198.18.1.2:111",
        "198.18.1.2:135",
        "--timeout",
        "300ms",
    ]));
    assert_eq!(o.status.code(), Some(1), "not all open: exit 1");
    let text = stdout(&o);
    assert!(text.contains("closed") && text.contains("conn-refused"), "{text}");
    assert!(text.contains("admin-prohibited"), "{text}");
    assert!(text.contains("filtered") && text.contains("no-response"), "{text}");
}

#[test]
fn an_interrupted_scan_still_writes_valid_xml() {
    let t = "an_interrupted_scan_still_writes_valid_xml";
    if !ready(t) || !require_tool(t, "xmllint") {
        return;
    }
    let lab = Lab::up(&repo());
    let dir = TempDir::new("interrupt");
    let xml = dir.join("partial.xml");
    // every port of h4 but three is dropped: a long scan at -T2
    let mut child = lab
        .in_scanner(BIN)
        .args(["scan", "-sT", "-Pn", "-T3", "--max-parallelism", "8", "-p", "1-2000", "-oX"])
        .arg(&xml)
        .arg("--resume-file")
        .arg(dir.join("partial.resume.json"))
        .args(["198.18.4.2", "198.18.1.2"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // ip netns exec runs the binary as a child: signal the whole process group
    let _ = Command::new("pkill").args(["-INT", "-f", "partial.xml"]).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the scan did not stop after Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130), "interrupted scans exit 130");
    validate(&xml);
    let text = std::fs::read_to_string(&xml).unwrap();
    assert!(text.contains("exit=\"error\"") && text.contains("interrupted"), "{text}");
    assert!(text.contains("</nmaprun>"));
}

#[test]
fn bad_input_is_a_clear_error_with_exit_2() {
    let t = "bad_input_is_a_clear_error_with_exit_2";
    if !require_root(t) || !require_tool(t, "ip") {
        return;
    }
    let lab = Lab::up(&repo());
    let dir = TempDir::new("scan-bad");
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "# nothing here\n").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["-p".into(), "70000".into(), "198.18.1.2".into()], "out of range"),
        (vec!["-p".into(), "22-x".into(), "198.18.1.2".into()], "22-x"),
        (vec!["no-such-host.invalid".into()], "unknown host name"),
        (vec!["-iL".into(), empty.display().to_string()], "no targets"),
        (vec!["-iL".into(), dir.join("missing").display().to_string()], "missing"),
        (vec!["-Pn".into(), "-p".into(), "22".into(), "198.18.99.1".into()], "no route to 198.18.99.1"),
        (vec!["198.18.0.0/8".into()], "--yes"),
        (vec!["198.18.1.2".into(), "--exclude".into(), "198.18.1.2".into()], "excluded"),
        (vec!["-sA".into(), "198.18.1.2".into()], "not available in this version; use -sS (SYN) or -sT"),
        (vec!["--resume".into(), dir.join("missing.resume").display().to_string()], "cannot read"),
        (vec!["--resume".into(), empty.display().to_string()], "not a Portolan resume file"),
        (vec!["-p".into(), "U:53".into(), "198.18.1.2".into()], "add -sU"),
        (vec!["-T9".into(), "198.18.1.2".into()], "9"),
        (vec!["--host-timeout".into(), "soon".into(), "198.18.1.2".into()], "--host-timeout"),
        (vec![], "no targets"),
    ];
    for (args, needle) in cases {
        // inside the scanner namespace: a resolver query cannot leave the machine
        let o = run(lab.in_scanner(BIN).arg("scan").args(&args));
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let o = run(lab.in_scanner(BIN).args(["check", "198.18.1.2"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("HOST:PORT"));
}

#[test]
fn a_routed_slash_24_answers_on_every_address() {
    let t = "a_routed_slash_24_answers_on_every_address";
    if !ready(t) {
        return;
    }
    let lab = Lab::up(&repo());
    let o = run(lab.in_scanner(BIN).args([
        "scan",
        "-sT",
        "-T4",
        "--top-ports",
        "100",
        "--open",
        "-o",
        "json",
        "198.18.10.0/24",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let r: ScanRun = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r.hosts.len(), 256, "every address of the /24 is up");
    for h in &r.hosts {
        let open: Vec<u16> =
            h.ports.iter().filter(|p| p.state == PortState::Open).map(|p| p.number).collect();
        assert_eq!(open, vec![80, 443], "{}", h.address);
    }
}

/// A range holding addresses no probe can reach from the scanner (its /24's broadcast
/// address, a network it has no route to) is scanned all the same, as nmap does: those
/// addresses are reported down with the reason, the others are scanned, for every scan type.
#[test]
fn unprobeable_addresses_are_reported_and_the_scan_goes_on() {
    let t = "unprobeable_addresses_are_reported_and_the_scan_goes_on";
    if !ready(t) || !require_tool(t, "xmllint") {
        return;
    }
    let lab = Lab::up(&repo());
    let dir = TempDir::new("unprobeable");
    let xml = dir.join("out.xml");
    // 198.18.1.252/30 ends in the broadcast address of the scanner's 198.18.1.0/24; nothing
    // routes to 198.18.99.0/24
    let targets = ["198.18.1.2", "198.18.1.252/30", "198.18.99.1"];
    for flags in [&["-sT", "-p", "22"][..], &["-sS", "-p", "22"], &["-sU", "-p", "53"], &["-sn"]] {
        let o = run(lab
            .in_scanner(BIN)
            .arg("scan")
            .args(flags)
            .args(["-n", "-v", "-oX"])
            .arg(&xml)
            .args(targets));
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(0), "{flags:?}: {err}");
        assert!(
            err.contains("2 addresses cannot be probed")
                && err.contains("198.18.1.255 (broadcast)")
                && err.contains("198.18.99.1 (no-route)"),
            "{flags:?}: {err}"
        );
        validate(&xml);
        let run = portolan_import::read_file(&xml).unwrap();
        let host = |a: &str| {
            run.hosts
                .iter()
                .find(|h| h.address.to_string() == a)
                .unwrap_or_else(|| panic!("{flags:?}: {a} missing"))
        };
        assert_eq!(host("198.18.1.255").status.reason.as_str(), "broadcast", "{flags:?}");
        assert_eq!(host("198.18.99.1").status.reason.as_str(), "no-route", "{flags:?}");
        let h2 = host("198.18.1.2");
        assert_eq!(h2.status.state, portolan_model::HostState::Up, "{flags:?}");
        if flags[0] != "-sn" {
            assert_eq!(
                h2.ports.iter().filter(|p| p.state == PortState::Open).count(),
                1,
                "{flags:?}: {h2:?}"
            );
        }
    }
}
