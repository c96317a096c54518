//! `portolan scan -sS` on the project's lab: the same states and reasons as `nmap -sS` in the
//! same run (IPv4 and IPv6), the rate cap measured on the wire, and the privilege rules (an
//! explicit -sS without raw sockets is a clear error; no scan type picks what works and says
//! so).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use portolan_model::ScanRun;
use portolan_testkit::{Lab, TempDir, require_root, require_tool, run, stderr, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_portolan");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ready(test: &str) -> bool {
    require_root(test)
        && require_tool(test, "nmap")
        && require_tool(test, "nft")
        && require_tool(test, "tcpdump")
}

const V4: [&str; 4] = ["198.18.1.2", "198.18.2.2", "198.18.3.2", "198.18.4.2"];
const V6: [&str; 4] = ["2001:db8:1::2", "2001:db8:2::2", "2001:db8:3::2", "2001:db8:4::2"];
/// Open, closed (RST by nft and by the stack), dropped and ICMP-prohibited ports of the lab.
const PORTS: &str = "20-26,80,111,135,139,443,445,2049,3306,3389,5900,8080,8443";

/// (address, port) → (state, reason), extraports included.
type Seen = BTreeMap<(IpAddr, u16), (String, String)>;

fn seen(run: &ScanRun) -> Seen {
    let mut m = Seen::new();
    for h in &run.hosts {
        for p in &h.ports {
            m.insert((h.address, p.number), (p.state.as_str().to_string(), p.reason.as_str().to_string()));
        }
        for x in &h.extra_ports {
            for r in &x.reasons {
                for (lo, hi) in portolan_model::port_ranges_parse(r.ports.as_deref().unwrap_or("")) {
                    for p in lo..=hi {
                        m.insert(
                            (h.address, p),
                            (x.state.as_str().to_string(), r.reason.as_str().to_string()),
                        );
                    }
                }
            }
        }
    }
    m
}

#[test]
fn states_and_reasons_match_nmap_syn_scan_v4_and_v6() {
    let t = "syn_states_match_nmap";
    if !ready(t) || !require_tool(t, "xmllint") {
        return;
    }
    let lab = Lab::up(&repo());
    let dir = TempDir::new("syn-vs-nmap");
    for (tag, hosts) in [("v4", &V4), ("v6", &V6)] {
        let nmap_xml = dir.join(&format!("nmap-{tag}.xml"));
        let ours_xml = dir.join(&format!("ours-{tag}.xml"));
        let mut nmap = lab.in_scanner("nmap");
        nmap.args(["-sS", "-Pn", "-n", "-T4", "--reason", "-p", PORTS, "-oX"]).arg(&nmap_xml);
        if tag == "v6" {
            nmap.arg("-6");
        }
        let o = run(nmap.args(hosts));
        assert!(o.status.success(), "nmap: {}", stderr(&o));
        let o = run(lab
            .in_scanner(BIN)
            .args(["scan", "-sS", "-Pn", "-n", "-T4", "-p", PORTS, "-oX"])
            .arg(&ours_xml)
            .args(hosts));
        assert!(o.status.success(), "portolan: {}", stderr(&o));
        let (theirs_run, ours_run) =
            (portolan_import::read_file(&nmap_xml).unwrap(), portolan_import::read_file(&ours_xml).unwrap());
        // the hosts' hardware addresses as nmap reports them (from the local link), so that
        // ndiff of the two reports sees the same hosts
        let macs = |r: &ScanRun| -> Vec<(String, Option<String>)> {
            let mut v: Vec<_> = r.hosts.iter().map(|h| (h.address.to_string(), h.mac.clone())).collect();
            v.sort();
            v
        };
        assert_eq!(macs(&ours_run), macs(&theirs_run), "{tag}: MAC addresses");
        assert!(macs(&ours_run).iter().all(|(_, m)| m.is_some()), "{tag}: the lab hosts are on-link");
        let theirs = seen(&theirs_run);
        let ours = seen(&ours_run);
        assert_eq!(ours.len(), 4 * 19, "every port of every host has a state");
        let differ: Vec<_> = ours.iter().filter(|(k, v)| theirs.get(*k) != Some(*v)).collect();
        assert!(
            differ.is_empty(),
            "{tag}: states or reasons differ from nmap -sS: {differ:?}\nnmap: {theirs:?}"
        );
        let o = run(Command::new("xmllint")
            .args(["--noout", "--dtdvalid", "/usr/share/nmap/nmap.dtd"])
            .arg(&ours_xml));
        assert!(o.status.success(), "{}", stderr(&o));
        let text = std::fs::read_to_string(&ours_xml).unwrap();
        assert!(text.contains(r#"<scaninfo type="syn""#), "{text}");
        // 2 % of the scanner's packets dropped: the same open ports, nothing missed
        lab.loss(Some(2.0));
        let o = run(lab
            .in_scanner(BIN)
            .args(["scan", "-sS", "-Pn", "-n", "-T4", "-p", PORTS, "-o", "json"])
            .args(hosts));
        lab.loss(None);
        assert!(o.status.success(), "{}", stderr(&o));
        let lossy = seen(&serde_json::from_slice(&o.stdout).unwrap());
        let open = |m: &Seen| m.iter().filter(|(_, v)| v.0 == "open").map(|(k, _)| *k).collect::<Vec<_>>();
        assert_eq!(open(&lossy), open(&ours), "{tag}: open ports under 2 % loss");
        assert_eq!(lossy.len(), ours.len());
    }
}

/// Every TCP port of the lab host shaped like a firewalled server (ptl-h6: 7 open, 17 dropped,
/// the rest closed): the same states and reasons as nmap -sS -p-, IPv4 and IPv6, and the same
/// states again with 1 % of the scanner's packets dropped. Here the scan's waits come from the
/// host's own answer times (well under nmap's 100 ms floor), with retransmission rounds under
/// loss. (A wait far too short does not break this on the lab: late answers still count and
/// earn another round, so it costs packets; `timing.rs` tests how the wait is chosen.)
#[test]
fn every_port_of_a_firewalled_host_matches_nmap_with_and_without_loss() {
    let t = "syn_full_range_matches_nmap";
    if !ready(t) {
        return;
    }
    let lab = Lab::up(&repo());
    let dir = TempDir::new("syn-full-range");
    for (tag, host) in [("v4", "198.18.6.2"), ("v6", "2001:db8:6::2")] {
        let nmap_xml = dir.join(&format!("nmap-{tag}.xml"));
        let mut nmap = lab.in_scanner("nmap");
        nmap.args(["-sS", "-Pn", "-n", "-T4", "-p-", "-oX"]).arg(&nmap_xml);
        if tag == "v6" {
            nmap.arg("-6");
        }
        let o = run(nmap.arg(host));
        assert!(o.status.success(), "nmap: {}", stderr(&o));
        let theirs = seen(&portolan_import::read_file(&nmap_xml).unwrap());
        let ours = |what: &str| {
            let o = run(lab
                .in_scanner(BIN)
                .args(["scan", "-sS", "-Pn", "-n", "-T4", "-p-", "-v", "-o", "json", host]));
            assert!(o.status.success(), "portolan ({what}): {}", stderr(&o));
            (seen(&serde_json::from_slice(&o.stdout).unwrap()), stderr(&o))
        };
        let (clean, log) = ours("no loss");
        // IPv4: a sweep this large reads its answers from a receive ring (made while the first
        // ones come to the raw socket, left before the retransmission rounds); so this test
        // checks the ring loses and confuses nothing
        let from_ring = log
            .lines()
            .find_map(|l| l.strip_prefix("portolan: ")?.strip_suffix(" answers read from a receive ring"))
            .map_or(0, |n| n.parse::<usize>().unwrap_or(0));
        if tag == "v4" {
            assert!(from_ring > 30_000, "v4: most answers come from the ring, not {from_ring}:\n{log}");
        } else {
            assert_eq!(from_ring, 0, "v6 has no ring:\n{log}");
        }
        assert_eq!(clean.len(), 65_535, "{tag}: every port has a state");
        let count = |m: &Seen, state: &str| m.values().filter(|v| v.0 == state).count();
        assert_eq!(
            (count(&clean, "open"), count(&clean, "filtered")),
            (7, 17),
            "{tag}: the lab's open and dropped ports"
        );
        let differ: Vec<_> = clean.iter().filter(|(k, v)| theirs.get(*k) != Some(*v)).take(20).collect();
        assert!(differ.is_empty(), "{tag}: states or reasons differ from nmap -sS -p-: {differ:?}");
        lab.loss(Some(1.0));
        let (lossy, _) = ours("1 % loss");
        lab.loss(None);
        let differ: Vec<_> = lossy.iter().filter(|(k, v)| clean.get(*k) != Some(*v)).take(20).collect();
        assert!(
            differ.is_empty(),
            "{tag}: under 1 % loss states differ from the run without loss: {differ:?}"
        );
    }
}

/// How many probes a port gets, read on the wire: one for a port that answers, three for a
/// dropped one (the first, then a round of two, as the host answered no retransmission). The
/// third goes out with the second rather than a round later, so the host ends after two
/// waits, not three.
#[test]
fn a_dropped_port_gets_three_probes_in_two_rounds() {
    let t = "syn_probe_rounds";
    if !ready(t) {
        return;
    }
    let lab = Lab::up(&repo());
    let (dropped, syns) = h6_probe_times(&lab, None);
    for port in (20..=30).chain(130..=140) {
        let times = syns.get(&port).cloned().unwrap_or_default();
        if dropped.contains(&port) {
            assert_eq!(times.len(), 3, "port {port}: SYNs at {times:?}");
            // a round apart they would be at least the shortest wait (10 ms at -T4; with this
            // few answers nmap's 100 ms floor holds); one round's two passes go out together
            let (wait, pair) = (times[1] - times[0], times[2] - times[1]);
            assert!(wait >= 0.01, "port {port}: a wait before the first retransmission ({times:?})");
            assert!(pair < 0.005, "port {port}: the second and third probe are one round ({times:?})");
        } else {
            assert_eq!(times.len(), 1, "port {port} answered its first probe: SYNs at {times:?}");
        }
    }
}

/// On a path with a round-trip time (every answer of ptl-h6 held 60 ms), the wait before a
/// dropped port goes again follows the host's answers: they come after the whole first round
/// is out, and shorten the timeout from -T4's initial 500 ms to about 100 ms; the
/// host's waiting entry must move up with it (it once stayed at 500 ms).
#[test]
fn answers_that_come_after_the_first_round_shorten_its_wait() {
    let t = "syn_wait_follows_late_answers";
    if !ready(t) || !require_tool(t, "iptables") || !require_tool(t, "python3") {
        return;
    }
    let lab = Lab::up(&repo());
    let (dropped, syns) = h6_probe_times(&lab, Some(60));
    for port in dropped {
        let times = syns.get(&port).cloned().unwrap_or_default();
        assert!(times.len() >= 2, "port {port}: SYNs at {times:?}");
        let wait = times[1] - times[0];
        // not before an answer could come back, and well before the initial 500 ms
        assert!(wait >= 0.06, "port {port}: sent again before a round trip ({times:?})");
        assert!(wait < 0.35, "port {port}: waited {wait:.3} s after the answers came ({times:?})");
    }
}

#[test]
fn discovery_with_syn_probes_finds_the_live_hosts() {
    let t = "syn_discovery";
    if !ready(t) {
        return;
    }
    let lab = Lab::up(&repo());
    // 198.18.1.0/29: only .2 answers (and the scanner's own .1); the routed /24 answers everywhere
    let o = run(lab.in_scanner(BIN).args([
        "scan",
        "-sS",
        "-T4",
        "-p",
        "22,80",
        "-o",
        "json",
        "198.18.1.2-7",
        "198.18.10.1-3",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let r: ScanRun = serde_json::from_slice(&o.stdout).unwrap();
    let mut up: Vec<String> = r.hosts.iter().map(|h| h.address.to_string()).collect();
    // hosts are reported as they finish: the routed ones may come first
    up.sort();
    assert_eq!(up, ["198.18.1.2", "198.18.10.1", "198.18.10.2", "198.18.10.3"], "{}", stdout(&o));
    for h in &r.hosts {
        let want: &[&str] = if h.address.to_string().starts_with("198.18.1.") {
            &["arp-response"]
        } else {
            &["echo-reply", "syn-ack", "reset", "timestamp-reply"]
        };
        assert!(want.contains(&h.status.reason.as_str()), "{:?}", h.status);
    }
}

/// Scans ports 20-30 and 130-140 of ptl-h6 (its answers held `delay` ms, if given) with a
/// capture of the SYNs: its dropped ports (checked: 135, 137-139) and each port's SYN times.
fn h6_probe_times(lab: &Lab, delay: Option<u32>) -> (Vec<u16>, BTreeMap<u16, Vec<f64>>) {
    let dir = TempDir::new("syn-times");
    let pcap = dir.join("syns.pcap");
    if delay.is_some() {
        lab.delay(delay);
    }
    let dump = lab.capture(&pcap, "tcp and dst host 198.18.6.2");
    let o = run(lab.in_scanner(BIN).args([
        "scan",
        "-sS",
        "-Pn",
        "-n",
        "-T4",
        "-p",
        "20-30,130-140",
        "-o",
        "json",
        "198.18.6.2",
    ]));
    dump.stop();
    if delay.is_some() {
        lab.delay(None);
    }
    assert!(o.status.success(), "{}", stderr(&o));
    let states = seen(&serde_json::from_slice(&o.stdout).unwrap());
    let dropped: Vec<u16> = states.iter().filter(|(_, v)| v.0 == "filtered").map(|(k, _)| k.1).collect();
    assert_eq!(dropped, [135, 137, 138, 139], "the lab's dropped ports in the range (delay {delay:?})");
    let mut syns: BTreeMap<u16, Vec<f64>> = BTreeMap::new();
    for (time, port) in syns_in(&pcap) {
        syns.entry(port).or_default().push(time);
    }
    (dropped, syns)
}

/// The SYNs a capture holds: (time in seconds, destination port), in capture order.
fn syns_in(pcap: &Path) -> Vec<(f64, u16)> {
    let o = run(Command::new("tcpdump").args(["-tt", "-nn", "-r"]).arg(pcap));
    stdout(&o)
        .lines()
        .filter(|l| l.contains("Flags [S]"))
        .filter_map(|l| {
            // `TIME [IFACE DIRECTION] IP SRC > DST: Flags [S], ...`
            let w: Vec<&str> = l.split_whitespace().collect();
            let time = w.first()?.parse::<f64>().ok()?;
            let dst = w.get(w.iter().position(|x| *x == ">")? + 1)?;
            Some((time, dst.trim_end_matches(':').rsplit('.').next()?.parse::<u16>().ok()?))
        })
        .collect()
}

#[test]
fn the_max_rate_is_never_exceeded_on_the_wire() {
    let t = "syn_max_rate";
    if !ready(t) {
        return;
    }
    let lab = Lab::up(&repo());
    let dir = TempDir::new("syn-rate");
    let pcap = dir.join("rate.pcap");
    let dump = lab.capture(&pcap, "tcp and dst host 198.18.4.2");
    // h4 drops all but three ports: every other port is retransmitted, so the scan lasts
    let o = run(lab.in_scanner(BIN).args([
        "scan",
        "-sS",
        "-Pn",
        "-n",
        "--max-rate",
        "10000",
        "-p",
        "1-25000",
        "-o",
        "json",
        "198.18.4.2",
    ]));
    dump.stop();
    assert!(o.status.success(), "{}", stderr(&o));
    let r: ScanRun = serde_json::from_slice(&o.stdout).unwrap();
    let open: Vec<u16> = r.hosts[0]
        .ports
        .iter()
        .filter(|p| p.state == portolan_model::PortState::Open)
        .map(|p| p.number)
        .collect();
    assert_eq!(open, [22, 80, 443]);
    let times: Vec<f64> = syns_in(&pcap).into_iter().map(|(t, _)| t).collect();
    assert!(times.len() >= 25_000, "the capture saw the scan ({} SYNs)", times.len());
    // every one-second window, starting at every packet
    let mut worst = 0usize;
    let mut j = 0usize;
    for i in 0..times.len() {
        while j < times.len() && times[j] < times[i] + 1.0 {
            j += 1;
        }
        worst = worst.max(j - i);
    }
    eprintln!("busiest one-second window: {worst} SYNs (cap 10000)");
    assert!(worst <= 10_500, "{worst} SYNs in one second: more than 5 % over --max-rate 10000");
    assert!(worst >= 8_000, "only {worst} SYNs in the busiest second: the cap is not being used");
}

#[test]
fn privilege_rules() {
    let t = "syn_privilege";
    if !require_root(t) || !require_tool(t, "setpriv") {
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let as_nobody = |args: &[&str]| {
        run(Command::new("setpriv")
            .args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--",
            ])
            .arg(BIN)
            .args(args)
            .env("CI", "true"))
    };
    let o = as_nobody(&["scan", "-sS", "-Pn", "127.0.0.1", "-p", &port]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(err.contains("needs root or CAP_NET_RAW") && err.contains("-sT"), "{err}");
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
    assert!(!err.contains("panicked"));
    // and writes no report file
    let xml = std::env::temp_dir().join(format!("portolan-nopriv-{}.xml", std::process::id()));
    let _ = std::fs::remove_file(&xml);
    let o = as_nobody(&["scan", "-sS", "-Pn", "127.0.0.1", "-p", &port, "-oX", xml.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!xml.exists(), "-sS without the privilege left {}", xml.display());
    // no scan type: the connect scan, said so
    let o = as_nobody(&["scan", "-Pn", "127.0.0.1", "-p", &port, "-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("connect scan (-sT)"), "{}", stderr(&o));
    let r: ScanRun = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r.hosts[0].ports[0].reason.as_str(), "syn-ack");
    // as root: the SYN scan, said so
    let o = run(Command::new(BIN).args(["scan", "-Pn", "127.0.0.1", "-p", &port, "-o", "xml"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("SYN scan (-sS)"), "{}", stderr(&o));
    assert!(stdout(&o).contains(r#"<scaninfo type="syn""#), "{}", stdout(&o));
    drop(listener);
    // -sU needs no privilege: an answering and a closed loopback UDP port, as nobody
    let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let open = server.local_addr().unwrap().port();
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let echo = std::thread::spawn(move || {
        server.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 512];
        if let Ok((_, from)) = server.recv_from(&mut buf) {
            server.send_to(b"hello", from).unwrap();
        }
    });
    let ports = format!("{open},{closed}");
    let o = as_nobody(&["scan", "-sU", "-Pn", "127.0.0.1", "-p", &ports, "-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r: ScanRun = serde_json::from_slice(&o.stdout).unwrap();
    let got: Vec<(u16, &str)> = r.hosts[0].ports.iter().map(|p| (p.number, p.state.as_str())).collect();
    let mut want = vec![(open, "open"), (closed, "closed")];
    want.sort();
    assert_eq!(got, want);
    echo.join().unwrap();
}

#[test]
fn shards_cover_the_space_exactly_once() {
    let t = "syn_shards";
    if !ready(t) {
        return;
    }
    let lab = Lab::up(&repo());
    let scan = |extra: &[&str]| {
        let o = run(lab
            .in_scanner(BIN)
            .args([
                "scan",
                "-sS",
                "-Pn",
                "-n",
                "-T4",
                "--seed",
                "7",
                "-p",
                "1-100",
                "-o",
                "json",
                "198.18.10.0/28",
            ])
            .args(extra));
        assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
        seen(&serde_json::from_slice(&o.stdout).unwrap())
    };
    let whole = scan(&[]);
    assert_eq!(whole.len(), 16 * 100);
    let mut union = Seen::new();
    let mut sizes = Vec::new();
    for i in 1..=3 {
        let part = scan(&["--shard", &format!("{i}/3")]);
        sizes.push(part.len());
        for (k, v) in part {
            assert!(union.insert(k, v).is_none(), "{k:?} scanned by two shards");
        }
    }
    assert_eq!(union, whole, "the shards' union is the unsharded scan");
    let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
    assert!(hi - lo <= 1, "shards are balanced: {sizes:?}");
    // a shard without a seed is refused
    let o =
        run(lab.in_scanner(BIN).args(["scan", "-sS", "-Pn", "--shard", "1/2", "-p", "80", "198.18.10.1"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--seed"), "{}", stderr(&o));
}

#[test]
fn an_interrupted_scan_resumes_to_the_uninterrupted_result() {
    let t = "scan_resume";
    if !ready(t) || !require_tool(t, "xmllint") {
        return;
    }
    let lab = Lab::up(&repo());
    let dir = TempDir::new("resume");
    // 256 hosts x 20 ports at 2,000 probes a second: about 2.6 s, interrupted after 1.2 s
    // (a connect scan finishes hosts in groups, so some are done by then)
    let args = ["scan", "-sT", "-Pn", "-n", "-p", "1-20", "--max-rate", "2000", "198.18.10.0/24"];
    let full = run(lab.in_scanner(BIN).args(args).args(["-o", "json"]));
    assert!(full.status.success(), "{}", stderr(&full));
    let full: ScanRun = serde_json::from_slice(&full.stdout).unwrap();
    let xml = dir.join("part.xml");
    let resume = dir.join("scan.resume.json");
    let child = lab
        .in_scanner(BIN)
        .args(args)
        .arg("-oX")
        .arg(&xml)
        .arg("--resume-file")
        .arg(&resume)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    run(Command::new("kill").args(["-INT", &child.id().to_string()]));
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(stderr(&o).contains("--resume"), "{}", stderr(&o));
    // the partial output is valid nmap XML that says it was interrupted
    let v =
        run(Command::new("xmllint").args(["--noout", "--dtdvalid", "/usr/share/nmap/nmap.dtd"]).arg(&xml));
    assert!(v.status.success(), "{}", stderr(&v));
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&resume).unwrap()).unwrap();
    let done: Vec<String> =
        saved["done"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    assert!(!done.is_empty() && done.len() < 256, "interrupted mid-way: {} hosts finished", done.len());
    // resume, watching the wire: no probe to a host that was finished
    let pcap = dir.join("resume.pcap");
    let dump = lab.capture(&pcap, "tcp[tcpflags] & tcp-syn != 0 and tcp[tcpflags] & tcp-ack == 0");
    let o = run(lab.in_scanner(BIN).args(["scan", "--resume"]).arg(&resume));
    dump.stop();
    assert!(o.status.success(), "{}", stderr(&o));
    let cap = run(Command::new("tcpdump").args(["-nn", "-r"]).arg(&pcap));
    for line in stdout(&cap).lines() {
        for d in &done {
            assert!(!line.contains(&format!("> {d}.")), "a finished host was probed again: {line}");
        }
    }
    assert!(stdout(&cap).lines().count() > 100, "the rest was scanned");
    // the resumed run rewrote the original -oX file with every host: the full result
    let resumed = portolan_import::read_file(&xml).unwrap();
    let s = seen(&resumed);
    assert_eq!(s.len(), 256 * 20, "every port of every host");
    let f = seen(&full);
    // the same state for every port as the uninterrupted run
    assert_eq!(
        s.iter().map(|(k, v)| (*k, v.0.clone())).collect::<Vec<_>>(),
        f.iter().map(|(k, v)| (*k, v.0.clone())).collect::<Vec<_>>()
    );
    assert_eq!(resumed.stats.hosts_total, 256);
}
