//! `portolan scan -sU` and `-sn` on the project's lab, against `nmap -sU` and `nmap -sn` in
//! the same run and against the lab's own ground truth (scripts/lab.sh: real dnsmasq, chronyd
//! and snmpd, nftables drops and ICMP rejects).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use portolan_model::ScanRun;
use portolan_testkit::{Lab, TempDir, require_root, require_tool, run, stderr, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_portolan");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ready(test: &str) -> bool {
    require_root(test) && require_tool(test, "nmap") && require_tool(test, "nft")
}

/// UDP services (53 DNS, 123 NTP, 161 SNMP), dropped (137, 138), ICMP admin-prohibited (111,
/// 2049) and closed ports, several of them with protocol payloads.
const UDP_PORTS: &str = "7,9,53,67,69,111,123,137,138,161,500,1900,2049,5353";

/// What the lab is configured to be, port by port (scripts/lab.sh).
fn truth(host: &str, port: u16) -> &'static str {
    let n = if host.starts_with("198.18.") {
        host.split('.').nth(2).unwrap().parse::<u8>().unwrap()
    } else {
        host.split(':').nth(2).unwrap().parse::<u8>().unwrap()
    };
    let firewalled = matches!(n, 1..=3);
    match (n, port) {
        (1, 53 | 123 | 161) | (2, 161) => "open",
        (_, 137 | 138) if firewalled => "open|filtered",
        (_, 111 | 2049) if firewalled => "filtered",
        _ => "closed",
    }
}

type States = BTreeMap<(IpAddr, u16), String>;

fn states(r: &ScanRun) -> States {
    let mut m = States::new();
    for h in &r.hosts {
        for p in &h.ports {
            m.insert((h.address, p.number), p.state.as_str().to_string());
        }
        for x in &h.extra_ports {
            for r in &x.reasons {
                for (lo, hi) in portolan_model::port_ranges_parse(r.ports.as_deref().unwrap_or("")) {
                    for p in lo..=hi {
                        m.insert((h.address, p), x.state.as_str().to_string());
                    }
                }
            }
        }
    }
    m
}

fn ours(lab: &Lab, args: &[&str], hosts: &[&str]) -> ScanRun {
    let o = run(lab.in_scanner(BIN).args(["scan", "-n", "-o", "json"]).args(args).args(hosts));
    assert!(o.status.success(), "portolan {args:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn nmap(lab: &Lab, dir: &TempDir, tag: &str, args: &[&str], hosts: &[&str]) -> ScanRun {
    let xml = dir.join(&format!("nmap-{tag}.xml"));
    let mut c = lab.in_scanner("nmap");
    c.args(["-n"]).args(args).arg("-oX").arg(&xml);
    if hosts.iter().any(|h| h.contains(':')) {
        c.arg("-6");
    }
    let o = run(c.args(hosts));
    assert!(o.status.success(), "nmap {args:?}: {}", stderr(&o));
    portolan_import::read_file(&xml).unwrap()
}

fn check_truth(tag: &str, got: &States, hosts: &[&str]) {
    let ports: Vec<u16> = UDP_PORTS.split(',').map(|p| p.parse().unwrap()).collect();
    assert_eq!(got.len(), hosts.len() * ports.len(), "{tag}: every port has a state: {got:?}");
    for h in hosts {
        for &p in &ports {
            let addr: IpAddr = h.parse().unwrap();
            assert_eq!(
                got.get(&(addr, p)).map(String::as_str),
                Some(truth(h, p)),
                "{tag}: {h} {p}/udp against the lab's configuration"
            );
        }
    }
}

#[test]
fn udp_states_equal_nmap_and_the_lab_v4_and_v6() {
    let t = "udp_states_equal_nmap";
    if !ready(t) {
        return;
    }
    let lab = Lab::up(&repo());
    let dir = TempDir::new("udp-vs-nmap");
    // Without the hosts' ICMP rate limit nmap reads every closed port right, so the two can be
    // compared port by port (with Linux's limit nmap misreads some: the next test).
    lab.icmp_ratelimit(0);
    for hosts in [&["198.18.1.2", "198.18.2.2", "198.18.4.2"][..], &["2001:db8:1::2", "2001:db8:2::2"][..]] {
        let tag = if hosts[0].contains(':') { "v6" } else { "v4" };
        let theirs = states(&nmap(&lab, &dir, tag, &["-sU", "-Pn", "-T4", "-p", UDP_PORTS], hosts));
        let mine = states(&ours(&lab, &["-sU", "-Pn", "-T4", "-p", UDP_PORTS], hosts));
        let differ: Vec<_> = mine.iter().filter(|(k, v)| theirs.get(*k) != Some(*v)).collect();
        assert!(differ.is_empty(), "{tag}: states differ from nmap -sU: {differ:?}\nnmap: {theirs:?}");
        check_truth(tag, &mine, hosts);
    }
    // -sS -sU together: both transports in one run, two scaninfo elements
    let both = ours(&lab, &["-sS", "-sU", "-Pn", "-T4", "-p", "T:22,23,U:53,67"], &["198.18.1.2"]);
    let ports: Vec<String> =
        both.hosts[0].ports.iter().map(|p| format!("{}/{} {}", p.number, p.transport, p.state)).collect();
    assert_eq!(ports, ["22/tcp open", "23/tcp closed", "53/udp open", "67/udp closed"]);
    assert_eq!(both.scan_info.len(), 2);
}

#[test]
fn closed_udp_ports_survive_the_linux_icmp_rate_limit() {
    let t = "udp_icmp_rate_limit";
    if !ready(t) {
        return;
    }
    let lab = Lab::up(&repo());
    // Linux's default: after a burst of six, one ICMP error a second to each peer. Portolan
    // notices (a retransmission answered by port-unreachable), spaces its probes and keeps
    // going until a round at one probe a second finds nothing more: no closed port is left
    // as open|filtered.
    lab.icmp_ratelimit(1000);
    let hosts = ["198.18.1.2", "198.18.2.2", "198.18.4.2", "2001:db8:1::2"];
    let mine = states(&ours(&lab, &["-sU", "-Pn", "-T4", "-p", UDP_PORTS], &hosts));
    check_truth("rate-limited", &mine, &hosts);
    // for the record: what nmap -T4 makes of the same (not asserted; it varies run to run)
    let dir = TempDir::new("udp-ratelimit");
    let theirs = states(&nmap(&lab, &dir, "rl", &["-sU", "-Pn", "-T4", "-p", UDP_PORTS], &hosts[..3]));
    let wrong = theirs.iter().filter(|((a, p), s)| truth(&a.to_string(), *p) != s.as_str()).count();
    eprintln!("nmap -sU -T4 under the ICMP rate limit: {wrong} of {} ports misread", theirs.len());
}

#[test]
fn ping_only_finds_the_hosts_nmap_finds() {
    let t = "ping_only_matches_nmap";
    if !ready(t) {
        return;
    }
    let lab = Lab::up(&repo());
    let dir = TempDir::new("ping-only");
    // on-link hosts (ARP), absent on-link addresses, a routed /28 that answers everywhere and
    // a routed range where nothing answers
    let v4 = ["198.18.1.2-5", "198.18.4.2", "198.18.10.0/28", "198.18.11.1-6"];
    let v6 = ["2001:db8:1::2", "2001:db8:1::3", "2001:db8:4::2", "2001:db8:4::9"];
    for (tag, hosts) in [("v4", &v4[..]), ("v6", &v6[..])] {
        let up = |r: &ScanRun| -> Vec<(IpAddr, String)> {
            let mut v: Vec<(IpAddr, String)> = r
                .hosts
                .iter()
                .filter(|h| h.status.state == portolan_model::HostState::Up)
                .map(|h| (h.address, h.status.reason.as_str().to_string()))
                .collect();
            v.sort();
            v
        };
        let theirs = up(&nmap(&lab, &dir, tag, &["-sn", "-T4"], hosts));
        let o = run(lab.in_scanner(BIN).args(["scan", "-sn", "-n", "-T4", "-o", "json"]).args(hosts));
        assert!(o.status.success(), "{}", stderr(&o));
        let mine = up(&serde_json::from_slice(&o.stdout).unwrap());
        let addrs = |v: &[(IpAddr, String)]| v.iter().map(|(a, _)| *a).collect::<Vec<_>>();
        assert_eq!(addrs(&mine), addrs(&theirs), "{tag}: live hosts differ from nmap -sn");
        let expected = if tag == "v4" { 2 + 16 } else { 2 };
        assert_eq!(mine.len(), expected, "{tag}: {mine:?}");
        // on the link, the link answers: ARP and neighbour discovery, as nmap reports
        for (a, reason) in &mine {
            let on_link = a.to_string().starts_with("198.18.1.")
                || a.to_string().starts_with("198.18.4.")
                || a.is_ipv6();
            if on_link {
                let want = if a.is_ipv6() { "nd-response" } else { "arp-response" };
                assert_eq!(reason, want, "{a}");
                assert!(theirs.contains(&(*a, reason.clone())), "{a}: nmap says {theirs:?}");
            } else {
                assert!(
                    matches!(reason.as_str(), "echo-reply" | "syn-ack" | "reset" | "timestamp-reply"),
                    "{a}: {reason}"
                );
            }
        }
        // --reason in the human output says why each host is up
        let o = run(lab.in_scanner(BIN).args(["scan", "-sn", "-n", "-T4", "--reason"]).args(hosts));
        assert!(stdout(&o).contains("Host is up, received "), "{}", stdout(&o));
    }
}
