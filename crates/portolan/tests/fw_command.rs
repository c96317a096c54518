//! `portolan fw`, driving the built binary: exposure, queries, diffs, lint (with real
//! listeners in a namespace of the test's own and with a scan file), located errors for
//! malformed rule files, and `fw verify` on every kernel rule set of the corpus.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use portolan_testkit::{TempDir, require_root, require_tool, run, stderr, stdout};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_portolan");

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../firewall/tests/corpus").join(name)
}

fn fw(args: &[&str]) -> Output {
    run(Command::new(BIN).arg("fw").args(args).env("CI", "true"))
}

fn json(o: &Output) -> Value {
    serde_json::from_str(&stdout(o))
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", stdout(o), stderr(o)))
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

#[test]
fn show_prints_the_exposure_with_services_and_deciding_rules() {
    let f = corpus("01-default-deny-server.rules");
    let o = fw(&["show", f.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("ipv4 to this machine"), "{text}");
    let ssh =
        text.lines().find(|l| l.contains(" 22 ") && l.contains("ssh")).unwrap_or_else(|| panic!("{text}"));
    assert!(ssh.contains("partial") && ssh.contains("line 9"), "{ssh}");
    let o = fw(&["show", f.to_str().unwrap(), "-o", "json", "--from", "81.2.69.0/24", "--open"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    let rows = v["exposure"][0]["rows"].as_array().unwrap();
    let row22 = rows.iter().find(|r| r["protocol"] == "tcp" && r["ports"] == "22").unwrap();
    assert_eq!(row22["classes"]["internet"]["verdict"], "partial");
    assert_eq!(row22["classes"]["81.2.69.0/24"]["verdict"], "accept");
    assert_eq!(row22["service"], "ssh");
    // --open drops the rows nothing is accepted on
    assert!(rows.iter().all(|r| r["ports"] != "0-21"), "{rows:?}");
}

/// A blocklist in front of the port rules: its verdicts are listed once, and a row's
/// accepted sources read as the internet with the blocked addresses as exceptions.
#[test]
fn show_lists_a_blocklist_once_and_the_rest_of_the_internet_with_exceptions() {
    let dir = TempDir::new("fw-blocklist");
    let f = dir.join("rules.v4");
    let mut text = String::from("*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    for i in 1..=6 {
        text.push_str(&format!("-A INPUT -s 81.2.69.{i}/32 -j DROP\n"));
    }
    text.push_str(
        "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n-A INPUT -p udp -m udp --dport 53 -j ACCEPT\nCOMMIT\n",
    );
    std::fs::write(&f, text).unwrap();
    let o = fw(&["show", f.to_str().unwrap(), "-o", "json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    let e = &v["exposure"][0];
    let every = e["everywhere"]["internet"].as_array().unwrap();
    assert_eq!(every.len(), 6, "{every:?}");
    assert!(every.iter().all(|p| p["verdict"] == "drop"), "{every:?}");
    assert_eq!(every[0]["sources"], serde_json::json!(["81.2.69.1/32"]));
    let ssh = e["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["protocol"] == "tcp" && r["ports"] == "22")
        .unwrap_or_else(|| panic!("{e}"));
    let internet = &ssh["classes"]["internet"];
    assert_eq!(internet["verdict"], "partial", "{internet}");
    let parts = internet["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert_eq!(parts[0]["verdict"], "accept");
    assert_eq!(
        parts[0]["sources"],
        serde_json::json!([
            "internet",
            "except 81.2.69.1/32",
            "except 81.2.69.2/31",
            "except 81.2.69.4/31",
            "except 81.2.69.6/32"
        ])
    );
    // the table says where the blocklist decides, once
    let o = fw(&["show", f.to_str().unwrap()]);
    let t = stdout(&o);
    assert!(t.contains("decided by source alone"), "{t}");
}

#[test]
fn a_large_rule_set_shows_every_port_in_order_with_its_rule() {
    // thousands of rows: the parser, the classes and the table cells work on two threads
    let dir = TempDir::new("fw-large");
    let f = dir.join("rules.v4");
    let mut text = String::from("*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    for i in 0..100 {
        text.push_str(&format!("-A INPUT -s 81.2.{}.{}/32 -j DROP\n", 60 + i / 50, i % 50));
    }
    for port in 1..=5000u32 {
        let src = if port % 2 == 0 { "-s 10.0.0.0/8 " } else { "" };
        let verdict = if port % 3 == 0 { "REJECT" } else { "ACCEPT" };
        text.push_str(&format!("-A INPUT {src}-p tcp -m tcp --dport {port} -j {verdict}\n"));
    }
    text.push_str("COMMIT\n");
    std::fs::write(&f, text).unwrap();
    let o = fw(&["show", f.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| {
            w.first() == Some(&"tcp")
                && w.get(1).and_then(|p| p.parse::<u32>().ok()).is_some_and(|p| p > 0 && p <= 5000)
        })
        .collect();
    let ports: Vec<u32> = rows.iter().map(|w| w[1].parse().unwrap()).collect();
    assert_eq!(ports.len(), 5000, "single-port rows");
    assert!(ports.windows(2).all(|w| w[0] < w[1]), "rows out of order");
    // each port is decided by its own rule: port p is on line 104 + p
    for w in &rows {
        let port: u32 = w[1].parse().unwrap();
        let line = format!("{}", 104 + port);
        assert_eq!(w.last().copied(), Some(line.as_str()), "{w:?}");
    }
}

#[test]
fn query_answers_one_packet_with_the_rule_and_the_path() {
    let f = corpus("06-fail2ban.rules");
    let f = f.to_str().unwrap();
    let o = fw(&[
        "query",
        f,
        "--src",
        "61.177.172.13",
        "--dst",
        "192.0.2.1",
        "-p",
        "tcp",
        "--dport",
        "22",
        "-o",
        "json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v[0]["verdict"], "reject");
    assert!(v[0]["location"].as_str().unwrap().ends_with("06-fail2ban.rules:18:1"), "{v}");
    let path: Vec<&str> =
        v[0]["path"].as_array().unwrap().iter().map(|s| s["what"].as_str().unwrap()).collect();
    assert_eq!(path, ["jump f2b-sshd", "reject"]);
    let o = fw(&["query", f, "--src", "8.8.4.4", "--dst", "192.0.2.1", "-p", "tcp", "--dport", "22"]);
    let text = stdout(&o);
    assert!(text.contains(": accept") && text.contains("06-fail2ban.rules:12:1"), "{text}");
    assert!(text.contains("jump f2b-sshd") && text.contains("-> return"), "{text}");
    let o = fw(&[
        "query",
        f,
        "--src",
        "8.8.4.4",
        "--dst",
        "192.0.2.1",
        "-p",
        "udp",
        "--dport",
        "53",
        "-o",
        "json",
    ]);
    assert_eq!(json(&o)[0]["verdict"], "drop");
    assert_eq!(
        json(&o)[0]["rule"].as_str().unwrap().split(' ').take(3).collect::<Vec<_>>(),
        ["filter", "INPUT", "policy"]
    );
}

#[test]
fn diff_lists_the_packet_classes_that_changed() {
    let dir = TempDir::new("fw-diff");
    let old = corpus("01-default-deny-server.rules");
    let text = std::fs::read_to_string(&old).unwrap().replace("--dports 80,443", "--dports 443").replace(
        "-A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 22 -j ACCEPT",
        "-A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 22 -j ACCEPT\n-A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 5432 -j ACCEPT",
    );
    let new = dir.join("new.rules");
    std::fs::write(&new, text).unwrap();
    let o = fw(&["diff", old.to_str().unwrap(), new.to_str().unwrap(), "-o", "json"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let v = json(&o);
    let changes = v.as_array().unwrap();
    let http = changes.iter().find(|c| c["ports"] == "80").unwrap_or_else(|| panic!("{v}"));
    assert_eq!(http["old"]["verdict"], "accept");
    assert_eq!(http["new"]["verdict"], "drop");
    let pg = changes.iter().find(|c| c["ports"] == "5432").unwrap_or_else(|| panic!("{v}"));
    assert_eq!(pg["sources"], serde_json::json!(["10.0.0.0/8"]));
    assert_eq!(pg["new"]["verdict"], "accept");
    assert_eq!(changes.len(), 2, "{v}");
    // JSON holds data: every source a CIDR, never a summary such as "+4 more"
    for c in changes {
        for s in c["sources"].as_array().unwrap() {
            let s = s.as_str().unwrap();
            assert!(s.contains('/') && !s.contains("more") && !s.contains(' '), "{s}: {v}");
        }
    }
    // a change on the loopback interface says so (it is not a change from the internet)
    let base = dir.join("base.rules");
    std::fs::write(&base, std::fs::read_to_string(&old).unwrap().replace("-A INPUT -i lo -j ACCEPT\n", ""))
        .unwrap();
    let o = fw(&["diff", base.to_str().unwrap(), old.to_str().unwrap()]);
    let text = stdout(&o);
    let mut lines = text.lines();
    assert!(lines.next().is_some_and(|h| h.contains(" IIF ")), "{text}");
    let rows: Vec<&str> = lines.filter(|l| l.starts_with("ipv4")).collect();
    assert!(!rows.is_empty() && rows.iter().all(|l| l.split_whitespace().nth(1) == Some("lo")), "{text}");
    let o = fw(&["diff", old.to_str().unwrap(), old.to_str().unwrap()]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("No packet changes verdict"));
}

#[test]
fn lint_reports_findings_in_the_audit_formats_with_audit_exit_codes() {
    let f02 = corpus("02-permissive-server.rules");
    let o = fw(&["lint", f02.to_str().unwrap(), "-o", "json"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let v = json(&o);
    let f = v["findings"].as_array().unwrap();
    let any = f.iter().find(|x| x["rule"] == "fw.any-to-any").unwrap();
    assert_eq!(any["severity"], "high");
    assert_eq!(any["location"]["line"], 8);
    // SARIF and exit 0 below the threshold
    let f01 = corpus("01-default-deny-server.rules");
    let o = fw(&["lint", f01.to_str().unwrap(), "-o", "sarif", "--fail-on", "high"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    assert!(!v["runs"][0]["results"].as_array().unwrap().is_empty());
    // the shared default (medium): a correct web server's rule set (SSH, HTTP, HTTPS, default
    // deny) does not fail CI; --fail-on low does, on HTTP's cleartext exposure
    let o = fw(&["lint", f01.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(stdout(&o).starts_with("Lint of firewall rule set"), "{}", stdout(&o));
    assert!(!stdout(&o).contains("hosts") && !stdout(&o).contains("judged"), "{}", stdout(&o));
    let o = fw(&["lint", f01.to_str().unwrap(), "--fail-on", "low"]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("fw.exposed-service"));
    // everything accepted: one finding per transport, not one per risky service
    let o = fw(&["lint", f02.to_str().unwrap(), "-o", "json"]);
    let v = json(&o);
    let rules: Vec<&str> =
        v["findings"].as_array().unwrap().iter().map(|f| f["rule"].as_str().unwrap()).collect();
    assert_eq!(rules.iter().filter(|r| **r == "fw.all-ports-open").count(), 2, "{rules:?}");
    assert!(!rules.contains(&"fw.exposed-service"), "{rules:?}");
}

#[test]
fn lint_joins_with_the_open_ports_of_a_scan() {
    let dir = TempDir::new("fw-lint-xml");
    let xml = dir.join("scan.xml");
    std::fs::write(
        &xml,
        r#"<?xml version="1.0"?><nmaprun scanner="nmap" args="nmap -p 22,443,8080 192.0.2.1" start="1" version="7.93">
<scaninfo type="connect" protocol="tcp" numservices="3" services="22,443,8080"/>
<host><status state="up" reason="syn-ack"/><address addr="192.0.2.1" addrtype="ipv4"/><ports>
<port protocol="tcp" portid="22"><state state="open" reason="syn-ack"/></port>
<port protocol="tcp" portid="443"><state state="open" reason="syn-ack"/></port>
<port protocol="tcp" portid="8080"><state state="open" reason="syn-ack"/></port>
</ports></host><runstats><finished time="2"/><hosts up="1" down="0" total="1"/></runstats></nmaprun>"#,
    )
    .unwrap();
    // 01: 80 and 443 are allowed by one rule; 443 has a listener, so no finding
    let o = fw(&[
        "lint",
        corpus("01-default-deny-server.rules").to_str().unwrap(),
        "--xml",
        xml.to_str().unwrap(),
        "-o",
        "json",
    ]);
    let v = json(&o);
    let rules: Vec<(String, u64)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["rule"].as_str().unwrap().to_string(), f["location"]["line"].as_u64().unwrap_or(0)))
        .collect();
    assert!(!rules.iter().any(|r| r.0 == "fw.no-listener"), "{rules:?}");
    // 02 (everything open): 8080 is exposed by `-A INPUT -j ACCEPT`, which names no port
    let o = fw(&[
        "lint",
        corpus("02-permissive-server.rules").to_str().unwrap(),
        "--xml",
        xml.to_str().unwrap(),
        "-o",
        "json",
    ]);
    let v = json(&o);
    let unintended: Vec<u64> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "fw.unintended-exposure")
        .map(|f| f["target"]["port"].as_u64().unwrap())
        .collect();
    let mut sorted = unintended.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [22, 443, 8080], "{v}");
}

/// Listeners held by a python3 process in a fresh network namespace, and `portolan fw lint
/// --listeners` run inside it: the machine's own sockets (as `ls` sees them) joined with the
/// rule set.
#[test]
fn lint_joins_with_this_machines_listeners() {
    if !require_root("lint_joins_with_this_machines_listeners")
        || !require_tool("lint_joins_with_this_machines_listeners", "python3")
    {
        return;
    }
    let dir = TempDir::new("fw-lint-ls");
    let script = r#"set -u
ip link set lo up
python3 -c '
import socket, sys, time
socks = []
for port in (22, 8080):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(); socks.append(s)
open(sys.argv[1], "w").write("ok")
time.sleep(60)
' "$D/ready" &
L=$!
trap 'kill $L 2>/dev/null || true' EXIT
for i in $(seq 100); do [ -e "$D/ready" ] && break; sleep 0.1; done
"$BIN" fw lint "$F1" --listeners -o json > "$D/one.json"
"$BIN" fw lint "$F2" --listeners -o json > "$D/two.json"
"#;
    let o = run(Command::new("unshare")
        .args(["--net", "--", "bash", "-c", script])
        .env("BIN", BIN)
        .env("D", dir.path())
        .env("F1", corpus("01-default-deny-server.rules"))
        .env("F2", corpus("02-permissive-server.rules"))
        .env("CI", "true"));
    assert!(o.status.success() || code(&o) == 1, "{}", stderr(&o));
    let one: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("one.json")).unwrap()).unwrap();
    let f: Vec<(String, u64)> = one["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["rule"].as_str().unwrap().to_string(), f["location"]["line"].as_u64().unwrap_or(0)))
        .collect();
    // nothing listens on 80 or 443: the web rule (line 11) has no listener behind it
    assert!(f.contains(&("fw.no-listener".to_string(), 11)), "{f:?}");
    assert_eq!(one["observed"].as_array().unwrap().len(), 2, "{one}");
    let two: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("two.json")).unwrap()).unwrap();
    let ports: Vec<u64> = two["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "fw.unintended-exposure")
        .map(|f| f["target"]["port"].as_u64().unwrap())
        .collect();
    assert!(ports.contains(&8080) && ports.contains(&22), "{ports:?}");
}

#[test]
fn malformed_rule_files_are_located_errors_with_exit_2() {
    let dir = TempDir::new("fw-bad");
    let cases: &[(&str, &str, &str)] = &[
        (
            "truncated.rules",
            "*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\n",
            "truncated.rules:3:1: table *filter (started at line 1) has no COMMIT",
        ),
        (
            "cut.rules",
            "*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp -m tcp --dport\nCOMMIT\n",
            "cut.rules:3:24: --dport needs a value",
        ),
        (
            "module.rules",
            "*filter\n:INPUT DROP [0:0]\n-A INPUT -m geoip --src-cc CN -j DROP\nCOMMIT\n",
            "module.rules:3:13: unknown match module \"geoip\"",
        ),
        (
            "addr.rules",
            "*filter\n:INPUT DROP [0:0]\n-A INPUT -s 10.0.0.300/8 -j ACCEPT\nCOMMIT\n",
            "addr.rules:3:13: bad address \"10.0.0.300/8\"",
        ),
        (
            "shape.json",
            "{\"nftables\": {\"table\": 1}}",
            "shape.json:1:1 ($): expected an object with an \"nftables\" array",
        ),
        (
            "trunc.json",
            "{\"nftables\": [{\"table\": {\"family\": \"inet\", \"name\": \"f\"}}, {\"chain\": {\"fam",
            "trunc.json:1:74: JSON syntax: unterminated string (found the end of the file: is it truncated?)",
        ),
        (
            "badrule.json",
            "{\"nftables\": [{\"table\": {\"family\": \"inet\", \"name\": \"f\", \"handle\": 1}},\n{\"chain\": {\"family\": \"inet\", \"table\": \"f\", \"name\": \"in\", \"hook\": \"input\", \"prio\": 0, \"policy\": \"drop\", \"type\": \"filter\"}},\n{\"rule\": {\"family\": \"inet\", \"table\": \"f\", \"chain\": \"in\", \"expr\": [{\"match\": {\"op\": \"==\", \"left\": {\"payload\": {\"protocol\": \"ip\", \"field\": \"saddr\"}}, \"right\": \"10.1.2\"}}, {\"accept\": null}]}}]}\n",
            "badrule.json:3:158 ($.nftables[2].rule.expr[0].match.right): bad address \"10.1.2\"",
        ),
        (
            "sg.json",
            "{\"SecurityGroups\": [{\"GroupId\": \"sg-1\", \"IpPermissions\": [{\"IpProtocol\": \"tcp\", \"FromPort\": 22}]}]}",
            "sg.json:1:59 ($.SecurityGroups[0].IpPermissions[0]): tcp/udp permission needs FromPort and ToPort",
        ),
        ("what.txt", "hello\n", "what.txt: not an iptables-save file"),
    ];
    for (name, text, want) in cases {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        for cmd in ["show", "lint"] {
            let o = fw(&[cmd, p.to_str().unwrap()]);
            assert_eq!(code(&o), 2, "{name}: {}", stderr(&o));
            let err = stderr(&o);
            let at = err.find(want).unwrap_or_else(|| panic!("{name}: expected {want:?} in\n{err}"));
            assert!(err[..at].ends_with(&format!("{}/", dir.path().display())) || at > 0, "{err}");
            assert_eq!(err.lines().count(), 1, "one line: {err}");
        }
    }
    // a format named that does not fit
    let o = fw(&["show", corpus("01-default-deny-server.rules").to_str().unwrap(), "--format", "nft"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("JSON syntax"), "{}", stderr(&o));
}

/// Every iptables and nftables rule set of the corpus, loaded into a kernel firewall in
/// namespaces and scanned: the kernel agrees with the analysis on every port asked.
#[test]
fn verify_agrees_with_the_kernel_on_every_rule_set_of_the_corpus() {
    let name = "verify_agrees_with_the_kernel_on_every_rule_set_of_the_corpus";
    if !require_root(name) {
        return;
    }
    for tool in ["ip", "iptables-restore", "ip6tables-restore", "nft", "ipset"] {
        if !require_tool(name, tool) {
            return;
        }
    }
    let dir = corpus("");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.ends_with(".rules") || n.ends_with(".rules6") || n.ends_with(".nft.json")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 15, "{files:?}");
    let results: Vec<(PathBuf, Output)> = std::thread::scope(|s| {
        let hs: Vec<_> = files
            .chunks(files.len().div_ceil(3))
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|f| {
                            let mut args = vec![
                                "verify".to_string(),
                                f.display().to_string(),
                                "-o".into(),
                                "json".into(),
                            ];
                            let ipset = f.with_extension("ipset");
                            if ipset.exists() {
                                args.push("--ipset".into());
                                args.push(ipset.display().to_string());
                            }
                            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                            (f.clone(), fw(&refs))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let mut total = 0;
    for (f, o) in &results {
        assert_eq!(code(o), 0, "{}: {}\n{}", f.display(), stderr(o), stdout(o));
        let v = json(o);
        assert_eq!(v["disagreements"], 0, "{}: {v}", f.display());
        let n = v["checks"].as_array().unwrap().len();
        assert!(n >= 50, "{}: only {n} checks", f.display());
        total += n;
    }
    // nothing left behind
    let left = run(Command::new("ip").args(["netns", "list"]));
    let me = format!("pfw-v{}-", std::process::id());
    assert!(!stdout(&left).contains(&me), "{}", stdout(&left));
    eprintln!("fw verify: {} rule sets, {total} ports agree with the kernel", results.len());
}

/// A source that is neither internet nor private (carrier-grade NAT space, documentation
/// addresses) is shown in a class of its own where a rule accepts it: never as "drop", never
/// left out by --open. A rule set without such rules keeps its columns.
#[test]
fn sources_outside_internet_and_private_show_in_their_own_class() {
    let dir = TempDir::new("fw-special");
    let f = dir.join("cgnat.rules");
    std::fs::write(
        &f,
        "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -i lo -j ACCEPT\n-A INPUT -s 100.64.0.0/10 -p tcp -m tcp --dport 22 -j ACCEPT\n-A INPUT -s 192.0.2.0/24 -p tcp -m tcp --dport 8080 -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 443 -j ACCEPT\nCOMMIT\n",
    )
    .unwrap();
    let f = f.to_str().unwrap();
    let o = fw(&["show", f]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    let header = text.lines().find(|l| l.starts_with("PROTO")).unwrap();
    assert!(header.contains("SHARED") && header.contains("DOCUMENTATION"), "{text}");
    assert!(!header.contains("MULTICAST"), "classes with nothing of their own stay out: {text}");
    let ssh = text.lines().find(|l| l.contains(" 22 ")).unwrap();
    assert!(ssh.contains("accept"), "{text}");
    let o = fw(&["show", f, "--open"]);
    let open = stdout(&o);
    assert!(open.lines().any(|l| l.contains(" 22 ")) && open.lines().any(|l| l.contains(" 8080 ")), "{open}");
    let v = json(&fw(&["show", f, "-o", "json"]));
    let rows = v["exposure"][0]["rows"].as_array().unwrap();
    let row22 = rows.iter().find(|r| r["ports"] == "22").unwrap();
    assert_eq!(row22["classes"]["shared"]["verdict"], "accept", "{row22}");
    assert_eq!(row22["classes"]["internet"]["verdict"], "drop", "{row22}");
    // the corpus's default-deny server names no such source: internet and private only
    let o = fw(&["show", corpus("01-default-deny-server.rules").to_str().unwrap()]);
    let header = stdout(&o).lines().find(|l| l.starts_with("PROTO")).unwrap().to_string();
    assert!(header.contains("INTERNET  PRIVATE  DECIDED BY"), "{header}");
}

/// `nft -j` writes the whole rule set on one line: rules are named by chain and handle, not
/// by a "line 1" that every rule shares.
#[test]
fn nftables_rules_are_named_by_chain_and_handle() {
    let o = fw(&["show", corpus("05-firewalld.nft.json").to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("filter_INPUT handle 107"), "{text}");
    assert!(!text.contains("line 1"), "{text}");
}

/// One rule for chains that loop or nest too deep: show, lint and query (which walks the
/// chains without diagrams) refuse the rule set with the same located error.
#[test]
fn chain_loops_are_one_error_for_show_lint_and_query() {
    let dir = TempDir::new("fw-loop");
    let f = dir.join("loop.rules");
    std::fs::write(
        &f,
        "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n-A INPUT -j A\n-A A -p tcp -j B\n-A B -p tcp --dport 22 -j A\nCOMMIT\n",
    )
    .unwrap();
    let f = f.to_str().unwrap();
    let mut errors = Vec::new();
    for args in [
        vec!["show", f],
        vec!["lint", f],
        vec!["query", f, "--src", "198.51.100.1", "--dst", "192.0.2.1", "--dport", "22"],
    ] {
        let o = fw(&args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stdout(&o));
        let err = stderr(&o);
        assert!(err.contains("jumps back into itself"), "{args:?}: {err}");
        errors.push(err);
    }
    assert!(errors.iter().all(|e| e == &errors[0]), "{errors:?}");
}

/// One stray byte that is not UTF-8 (in a comment) is reported at its own line and column.
#[test]
fn a_bad_byte_is_reported_at_its_line() {
    let dir = TempDir::new("fw-utf8");
    let f = dir.join("bad.rules");
    std::fs::write(&f, b"*filter\n:INPUT DROP [0:0]\n# a comment with a stray \xff byte\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n")
        .unwrap();
    let o = fw(&["show", f.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("bad.rules:3:26: not UTF-8"), "{}", stderr(&o));
}

/// `fw query --batch`: one verdict line per packet; a bad line is an error at its line.
#[test]
fn batch_queries_answer_each_line_and_locate_bad_ones() {
    let dir = TempDir::new("fw-batch");
    let f = corpus("01-default-deny-server.rules");
    let b = dir.join("q.txt");
    std::fs::write(
        &b,
        "# src dst proto dport\n81.2.69.5 192.0.2.1 tcp 22 eth0\n203.0.113.9 192.0.2.1 tcp 23\n",
    )
    .unwrap();
    let o = fw(&["query", f.to_str().unwrap(), "--batch", b.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("81.2.69.5 192.0.2.1 tcp 22 accept "), "{lines:?}");
    assert!(lines[1].starts_with("203.0.113.9 192.0.2.1 tcp 23 drop "), "{lines:?}");
    std::fs::write(&b, "81.2.69.5 192.0.2.1 tcp 22\nnot-an-address 192.0.2.1 tcp 22\n").unwrap();
    let o = fw(&["query", f.to_str().unwrap(), "--batch", b.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("q.txt:2:1: bad source"), "{}", stderr(&o));
}
