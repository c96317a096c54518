//! `portolan audit` and `portolan policy`, driving the built binary over real observations:
//! listeners the test opens in a network namespace of its own (so that nothing else on the
//! machine is judged), nmap's own XML of a scan in that namespace, and a scan of the project's
//! lab. Every finding type has a case that produces it and one that does not; malformed
//! policies fail with file:line:col and the field.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use portolan_testkit::{Lab, TempDir, require_root, require_tool, run, stderr, stdout};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_portolan");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Opens listeners (`ADDR:PORT:tcp|udp|http`) held by python3 processes.
const LISTEN_PY: &str = r#"
import socket, sys, time
ready = sys.argv[1]
socks = []
for spec in sys.argv[2:]:
    addr, port, proto = spec.rsplit(':', 2)
    fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM if proto == 'udp' else socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port)))
    if proto != 'udp':
        s.listen()
    socks.append(s)
open(ready, 'w').write('ok')
time.sleep(120)
"#;

/// Runs the bash `body` in a new network namespace (loopback only, up) where `listeners` are
/// open; `$BIN` is portolan and `$D` the test's directory. The listeners are killed on exit.
fn netns(dir: &TempDir, listeners: &[&str], http: Option<u16>, body: &str) -> Output {
    let script = format!(
        r#"set -u
ip link set lo up
python3 -c "$PY" "$D/ready" {listeners} &
L=$!
H=
{http}
trap 'kill $L $H 2>/dev/null || true' EXIT
for i in $(seq 100); do [ -e "$D/ready" ] && break; sleep 0.1; done
[ -e "$D/ready" ] || {{ echo "listeners did not start" >&2; exit 99; }}
rm -f "$D/ready"
{body}
"#,
        listeners = listeners.iter().map(|l| format!("'{l}'")).collect::<Vec<_>>().join(" "),
        http = http.map_or(String::new(), |p| format!(
            "python3 -m http.server --bind 127.0.0.1 {p} >/dev/null 2>&1 & H=$!\n\
             for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/{p}) 2>/dev/null && break; sleep 0.1; done"
        )),
    );
    run(Command::new("unshare")
        .args(["--net", "--", "bash", "-c", &script])
        .env("BIN", BIN)
        .env("D", dir.path())
        .env("PY", LISTEN_PY)
        .env("CI", "true")
        .env_remove("PORTOLAN_DB"))
}

fn write(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `(rule, port)` of each finding of a JSON report.
fn findings(report: &Value) -> Vec<(String, Option<u64>)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["rule"].as_str().unwrap().to_string(), f["target"]["port"].as_u64()))
        .collect()
}

fn parse(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(o), stderr(o)))
}

/// Audits `listeners` in a namespace of their own against `policy`: the exit code and report.
fn audit_local(test: &str, listeners: &[&str], policy: &str, extra: &str) -> (i32, Value) {
    let dir = TempDir::new(test);
    write(&dir, "p.toml", policy);
    let o = netns(&dir, listeners, None, &format!(r#""$BIN" audit --policy "$D/p.toml" -o json {extra}"#));
    let code = o.status.code().unwrap_or(-1);
    assert!(code == 0 || code == 1, "exit {code}: {}", stderr(&o));
    (code, parse(&o))
}

fn today() -> jiff::civil::Date {
    jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::system()).date()
}

fn days(n: i64) -> String {
    today().checked_add(jiff::Span::new().days(n)).unwrap().to_string()
}

fn rule(r: &str, port: u64) -> (String, Option<u64>) {
    (r.to_string(), Some(port))
}

const APPROVE_8081: &str = r#"
[[allow]]
hosts = ["localhost"]
ports = 8081
owner = "platform"
purpose = "test service"
scope = "loopback"
process = "python3"
"#;

#[test]
fn unapproved_listener_fails_the_audit_and_an_approved_one_does_not() {
    if !require_root("unapproved_listener") {
        return;
    }
    let (code, r) = audit_local("aud-unapproved", &["127.0.0.1:8081:tcp"], "version = 1\n", "");
    // reported, but only low (loopback only): below the default --fail-on medium
    assert_eq!(code, 0, "a loopback-only listener is below the default threshold");
    assert_eq!(findings(&r), vec![rule("policy.unapproved", 8081)]);
    assert_eq!(r["findings"][0]["severity"], "low", "loopback only");
    assert_eq!(r["summary"]["low"], 1);

    let (code, r) = audit_local("aud-unapproved", &["127.0.0.1:8081:tcp"], APPROVE_8081, "");
    assert_eq!(code, 0, "{r}");
    assert_eq!(findings(&r), vec![]);
    assert_eq!(r["observed"].as_array().unwrap().len(), 1);

    // the threshold: a low finding passes --fail-on medium and never fails with never
    let (code, _) = audit_local("aud-unapproved", &["127.0.0.1:8081:tcp"], "", "--fail-on medium");
    assert_eq!(code, 0);
    let (code, _) = audit_local("aud-unapproved", &["127.0.0.1:8081:tcp"], "", "--fail-on any");
    assert_eq!(code, 1);
    let (code, _) = audit_local("aud-unapproved", &["127.0.0.1:8081:tcp"], "", "--fail-on never");
    assert_eq!(code, 0);
    let (code, _) = audit_local("aud-unapproved", &["127.0.0.1:8081:tcp"], "", "--fail-on low");
    assert_eq!(code, 1);
    // defaults.unlisted = "allow" judges only what is listed
    let (code, r) =
        audit_local("aud-unapproved", &["127.0.0.1:8081:tcp"], "[defaults]\nunlisted = \"allow\"\n", "");
    assert_eq!((code, findings(&r)), (0, vec![]));
}

#[test]
fn a_required_port_that_is_not_open_is_missing() {
    if !require_root("missing") {
        return;
    }
    let policy = "[[allow]]\nports = 8082\nrequired = true\nowner = \"db\"\npurpose = \"replica\"\n";
    let (code, r) = audit_local("aud-missing", &[], policy, "");
    assert_eq!(code, 1);
    assert_eq!(findings(&r), vec![rule("policy.missing", 8082)]);
    assert_eq!(r["findings"][0]["location"]["line"], 1, "{r}");
    let (code, r) = audit_local("aud-missing", &["127.0.0.1:8082:tcp"], policy, "");
    assert_eq!((code, findings(&r)), (0, vec![]));
    // UDP is its own transport: a UDP socket does not satisfy a TCP requirement
    let (_, r) = audit_local("aud-missing", &["127.0.0.1:8082:udp"], policy, "");
    assert!(findings(&r).contains(&rule("policy.missing", 8082)), "{r}");
}

#[test]
fn a_different_process_on_an_approved_local_port_is_the_wrong_service() {
    if !require_root("wrong_process") {
        return;
    }
    let policy = |process: &str| {
        format!("[[allow]]\nports = 8083\nprocess = \"{process}\"\nowner = \"o\"\npurpose = \"p\"\n")
    };
    let (code, r) = audit_local("aud-wrongproc", &["127.0.0.1:8083:tcp"], &policy("sshd"), "");
    assert_eq!(code, 1);
    assert_eq!(findings(&r), vec![rule("policy.wrong-service", 8083)]);
    assert!(r["findings"][0]["title"].as_str().unwrap().contains("held by python3"), "{r}");
    let (code, r) = audit_local("aud-wrongproc", &["127.0.0.1:8083:tcp"], &policy("python3"), "");
    assert_eq!((code, findings(&r)), (0, vec![]));
}

#[test]
fn nmap_version_detection_feeds_the_wrong_service_verdict() {
    if !require_root("wrong_service") || !require_tool("wrong_service", "nmap") {
        return;
    }
    let dir = TempDir::new("aud-wrongsvc");
    // a real HTTP server, identified by nmap -sV, where the policy approved ssh
    let o = netns(&dir, &[], Some(8085), r#"nmap -sV -Pn -n -p 8085 127.0.0.1 -oX "$D/scan.xml" >/dev/null"#);
    assert!(o.status.success(), "{}", stderr(&o));
    let xml = dir.join("scan.xml");
    let audit = |service: &str| {
        let p = write(
            &dir,
            "p.toml",
            &format!(
                "[[allow]]\nhosts = [\"127.0.0.1\"]\nports = 8085\nservice = \"{service}\"\nowner = \"o\"\npurpose = \"p\"\n"
            ),
        );
        run(Command::new(BIN).args(["audit", "--policy"]).arg(&p).arg("--xml").arg(&xml).args(["-o", "json"]))
    };
    let o = audit("ssh");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = parse(&o);
    assert_eq!(findings(&r), vec![rule("policy.wrong-service", 8085)], "{r}");
    assert!(r["findings"][0]["evidence"].to_string().contains("identified as http"), "{r}");
    assert_eq!(r["findings"][0]["severity"], "high");
    let o = audit("http");
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(findings(&parse(&o)), vec![]);
}

#[test]
fn a_listener_bound_wider_than_allowed_is_reported() {
    if !require_root("scope") {
        return;
    }
    let policy = "[[allow]]\nports = 8084\nscope = \"loopback\"\nowner = \"o\"\npurpose = \"p\"\n";
    let (code, r) = audit_local("aud-scope", &["0.0.0.0:8084:tcp"], policy, "");
    assert_eq!(code, 1);
    assert_eq!(findings(&r), vec![rule("policy.scope", 8084)]);
    assert_eq!(r["findings"][0]["severity"], "medium");
    let (code, r) = audit_local("aud-scope", &["127.0.0.1:8084:tcp", "::1:8084:tcp"], policy, "");
    assert_eq!((code, findings(&r)), (0, vec![]));
    // address scope: one address is fine, every interface is not
    let policy = policy.replace("loopback", "address");
    let (_, r) = audit_local("aud-scope", &["127.0.0.1:8084:tcp"], &policy, "");
    assert_eq!(findings(&r), vec![]);
    let (_, r) = audit_local("aud-scope", &["::0:8084:tcp"], &policy, "");
    assert_eq!(findings(&r), vec![rule("policy.scope", 8084)]);
}

#[test]
fn expired_exceptions_and_overdue_reviews() {
    if !require_root("dates") {
        return;
    }
    let entry = |field: &str, days_from_now: i64| {
        format!(
            "[[allow]]\nports = 8086\nowner = \"o\"\npurpose = \"p\"\nticket = \"CHG-1\"\n{field} = {}\n",
            days(days_from_now)
        )
    };
    let (code, r) = audit_local("aud-dates", &["127.0.0.1:8086:tcp"], &entry("expires", -1), "");
    assert_eq!(code, 1);
    assert_eq!(findings(&r), vec![rule("policy.expired", 8086)]);
    assert!(r["findings"][0]["evidence"].to_string().contains("CHG-1"), "{r}");
    let (code, r) = audit_local("aud-dates", &["127.0.0.1:8086:tcp"], &entry("expires", 1), "");
    assert_eq!((code, findings(&r)), (0, vec![]));
    // an overdue review is low: reported, below the default threshold (medium)
    let (code, r) = audit_local("aud-dates", &["127.0.0.1:8086:tcp"], &entry("review_by", -1), "");
    assert_eq!(code, 0);
    assert_eq!(findings(&r), vec![rule("policy.review-overdue", 8086)]);
    assert_eq!(r["findings"][0]["severity"], "low");
    let (code, _) =
        audit_local("aud-dates", &["127.0.0.1:8086:tcp"], &entry("review_by", -1), "--fail-on low");
    assert_eq!(code, 1);
    let (code, r) = audit_local("aud-dates", &["127.0.0.1:8086:tcp"], &entry("review_by", 0), "");
    assert_eq!((code, findings(&r)), (0, vec![]), "due today is not overdue");
}

#[test]
fn a_risky_cleartext_service_exposed_is_reported_even_when_approved() {
    if !require_root("cleartext") {
        return;
    }
    let policy = "[[allow]]\nports = 23\nowner = \"legacy\"\npurpose = \"old switch console\"\n";
    let (code, r) = audit_local("aud-clear", &["0.0.0.0:23:tcp"], policy, "");
    assert_eq!(code, 1);
    assert_eq!(findings(&r), vec![rule("kb.cleartext", 23)]);
    assert_eq!(r["findings"][0]["severity"], "critical");
    assert!(!r["findings"][0]["remediation"].as_str().unwrap().is_empty());
    // on loopback it is not exposed
    let (code, r) = audit_local("aud-clear", &["127.0.0.1:23:tcp"], policy, "");
    assert_eq!((code, findings(&r)), (0, vec![]));
    // and the check can be turned off
    let off = format!("[defaults]\ncleartext = false\n{policy}");
    let (code, r) = audit_local("aud-clear", &["0.0.0.0:23:tcp"], &off, "");
    assert_eq!((code, findings(&r)), (0, vec![]));
}

#[test]
fn every_output_format() {
    if !require_root("formats") || !require_tool("formats", "xmllint") {
        return;
    }
    let dir = TempDir::new("aud-formats");
    write(
        &dir,
        "p.toml",
        "[[allow]]\nports = 8088\nrequired = true\nowner = \"o <&> \\u001b[31m\"\npurpose = \"p\"\n",
    );
    let o = netns(
        &dir,
        &["127.0.0.1:8087:tcp"],
        None,
        r#"for f in table json ndjson csv sarif junit; do "$BIN" audit --policy "$D/p.toml" -o $f > "$D/out.$f"; echo "$f $?"; done"#,
    );
    assert_eq!(stdout(&o), "table 1\njson 1\nndjson 1\ncsv 1\nsarif 1\njunit 1\n", "{}", stderr(&o));
    let read = |f: &str| std::fs::read_to_string(dir.join(&format!("out.{f}"))).unwrap();
    let table = read("table");
    assert!(table.contains("policy.unapproved") && table.contains("policy.missing"), "{table}");
    assert!(table.contains("2 findings: 1 medium, 1 low"), "{table}");
    assert!(!table.contains('\x1b'), "no colour when not a terminal");
    assert_eq!(read("ndjson").lines().count(), 2);
    let csv = read("csv");
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.starts_with("severity,rule,address,port,transport,"), "{csv}");

    let sarif: Value = serde_json::from_str(&read("sarif")).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let run0 = &sarif["runs"][0];
    assert_eq!(run0["tool"]["driver"]["name"], "portolan");
    let rules: Vec<&str> = run0["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let results = run0["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for r in results {
        let idx = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[idx], r["ruleId"].as_str().unwrap());
        assert!(["error", "warning", "note"].contains(&r["level"].as_str().unwrap()));
        assert!(!r["message"]["text"].as_str().unwrap().is_empty());
        let loc = &r["locations"][0]["physicalLocation"];
        assert!(loc["artifactLocation"]["uri"].as_str().unwrap().ends_with("p.toml"));
        assert!(loc["region"]["startLine"].as_u64().unwrap() >= 1);
    }

    let junit = dir.join("out.junit");
    let o = run(Command::new("xmllint").arg("--noout").arg(&junit));
    assert!(o.status.success(), "JUnit is not well-formed XML: {}", stderr(&o));
    let j = read("junit");
    assert!(j.contains(r#"<testsuites name="portolan audit" tests="2" failures="2""#), "{j}");
    assert!(j.contains(r#"type="policy.unapproved""#) && j.contains(r#"type="policy.missing""#), "{j}");
    assert!(!j.contains('\x1b'), "the escape byte of the owner's purpose never reaches the XML");
}

#[test]
fn audit_of_a_lab_scan_and_of_its_snapshot() {
    if !require_root("lab_scan") || !require_tool("lab_scan", "nft") {
        return;
    }
    let lab = Lab::up(&repo());
    let dir = TempDir::new("aud-lab");
    let policy = write(
        &dir,
        "lab.toml",
        r#"
version = 1
[groups.web]
hosts = ["198.18.1.2"]
[groups.db]
hosts = ["198.18.2.0/24"]

[[allow]]
hosts = ["web"]
ports = "22,80,443"
required = true
owner = "web"
purpose = "site"

[[allow]]
hosts = ["web"]
ports = 3389
required = true
owner = "desktop"
purpose = "remote desktop"

[[allow]]
hosts = ["db"]
ports = 3306
scope = "loopback"
owner = "dba"
purpose = "database"

[[allow]]
hosts = ["db"]
ports = "21,22,25"
owner = "ops"
purpose = "transfers"
"#,
    );
    let db = dir.join("p.db");
    let o = run(lab
        .in_scanner(BIN)
        .args(["audit", "--policy"])
        .arg(&policy)
        .args([
            "198.18.1.2",
            "198.18.2.2",
            "-p",
            "21-25,80,443,3306,3389,8080",
            "-o",
            "json",
            "--save",
            "--db",
        ])
        .arg(&db)
        .env("CI", "true"));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = parse(&o);
    let got: Vec<(String, String, u64)> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["target"]["address"].as_str().unwrap_or("").to_string(),
                f["target"]["port"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let has = |rule: &str, addr: &str, port: u64| got.contains(&(rule.to_string(), addr.to_string(), port));
    // lab ground truth: h1 open 22,80,443,8080 (23 and 3389 reset); h2 open 21,22,25,3306
    assert!(has("policy.unapproved", "198.18.1.2", 8080), "{got:?}");
    assert!(has("policy.missing", "198.18.1.2", 3389), "{got:?}");
    assert!(has("policy.scope", "198.18.2.2", 3306), "{got:?}");
    assert!(has("kb.cleartext", "198.18.2.2", 21), "{got:?}");
    assert!(has("kb.cleartext", "198.18.1.2", 80), "{got:?}");
    for (a, p) in
        [("198.18.1.2", 22), ("198.18.1.2", 80), ("198.18.1.2", 443), ("198.18.2.2", 22), ("198.18.2.2", 25)]
    {
        assert!(
            !got.iter().any(|(rule, addr, port)| rule.starts_with("policy.") && addr == a && *port == p),
            "approved {a}:{p} has a policy finding: {got:?}"
        );
    }
    assert_eq!(got.iter().filter(|f| f.0.starts_with("policy.")).count(), 3, "{got:?}");
    assert_eq!(r["hosts"], 2);

    // the snapshot it saved judges the same
    let o = run(Command::new(BIN)
        .args(["audit", "--policy"])
        .arg(&policy)
        .args(["--snapshot", "last", "-o", "json", "--db"])
        .arg(&db));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(parse(&o)["findings"], r["findings"]);
    let o = run(Command::new(BIN).args(["snapshots", "-o", "json", "--db"]).arg(&db));
    let list = parse(&o);
    assert_eq!(list[0]["source"], "audit", "{list}");
    assert_eq!(list[0]["findings"].as_u64(), Some(got.len() as u64));
    // --fail-on critical: nothing that bad here (ftp is high, mysql medium)
    let o = run(Command::new(BIN)
        .args(["audit", "--policy"])
        .arg(&policy)
        .args(["--snapshot", "last", "--fail-on", "critical", "--db"])
        .arg(&db));
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

fn check(dir: &TempDir, text: &str, extra: &[&str]) -> Output {
    let p = write(dir, "p.toml", text);
    run(Command::new(BIN).args(["policy", "check"]).arg(&p).args(extra))
}

#[test]
fn malformed_policies_name_file_line_column_and_field() {
    let dir = TempDir::new("aud-malformed");
    let file = dir.join("p.toml").display().to_string();
    let cases: [(&str, &str); 6] = [
        ("[[allow]\nports = 22\n", ":1:"),
        (
            "[[allow]]\nports = 22\nowners = \"ops\"\n",
            ":3:1: allow[1].owners: unknown field; expected one of: id, hosts",
        ),
        (
            "[[allow]]\nports = 22\nhosts = [\"198.18.0.0/40\"]\n",
            ":3:10: allow[1].hosts[1]: \"198.18.0.0/40\" is not a valid CIDR",
        ),
        ("[[allow]]\nports = 70000\n", ":2:9: allow[1].ports: port 70000 is out of range; expected 0-65535"),
        (
            "[groups.web]\nhosts = [\"198.18.1.300\"]\n",
            ":2:10: groups.web.hosts[1]: \"198.18.1.300\" is not a valid IP address",
        ),
        (
            "version = 1\n[[allow]]\nport = 22\ntransport = \"icmp\"\n",
            ":4:13: allow[1].transport: \"icmp\" is not a transport",
        ),
    ];
    for (text, want) in cases {
        let o = check(&dir, text, &[]);
        assert_eq!(o.status.code(), Some(2), "{text}: {}", stdout(&o));
        let err = stderr(&o);
        assert!(err.contains(&format!("{file}{want}")), "{text}\nwant {file}{want}\ngot {err}");
        if want == ":1:" {
            assert!(err.contains("invalid TOML"), "{err}");
        }
        // audit refuses the same policy the same way, before observing anything
        let o = run(Command::new(BIN)
            .args(["audit", "--policy"])
            .arg(dir.join("p.toml"))
            .args(["--xml", "/nonexistent"]));
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains(&format!("{file}{want}")), "{}", stderr(&o));
    }
    // several problems: all of them, in order
    let o = check(&dir, "[[allow]]\nports = 70000\n\n[[allow]]\nports = 22\nscope = \"everywhere\"\n", &[]);
    let err = stderr(&o);
    assert_eq!(err.lines().filter(|l| l.starts_with("portolan: error:")).count(), 2, "{err}");
    assert!(err.contains(":6:9: allow[2].scope:"), "{err}");
    // a missing policy
    let o = run(Command::new(BIN).args(["policy", "check", "/nonexistent/policy.toml"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot read /nonexistent/policy.toml"), "{}", stderr(&o));
}

#[test]
fn a_new_entry_dated_in_the_past_is_an_error_an_old_one_is_not() {
    let dir = TempDir::new("aud-pastdate");
    let old = format!("[[allow]]\nports = 22\nowner = \"o\"\npurpose = \"p\"\nreview_by = {}\n", days(-10));
    let base = write(&dir, "base.toml", &old);
    let new =
        format!("{old}\n[[allow]]\nports = 23\nowner = \"o\"\npurpose = \"p\"\nexpires = {}\n", days(-1));
    let o = check(&dir, &new, &["--base", base.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let err = stderr(&o);
    let file = dir.join("p.toml").display().to_string();
    assert!(err.contains(&format!("{file}:11:11: allow[2].expires: {} is in the past", days(-1))), "{err}");
    assert!(!err.contains("allow[1]"), "the old entry's date is audit's business: {err}");
    // the old entry alone passes against its base; without a base every entry is new
    let o = check(&dir, &old, &["--base", base.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = check(&dir, &old, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("allow[1].review_by"), "{}", stderr(&o));
    // a future date is fine
    let o = check(
        &dir,
        &format!("[[allow]]\nports = 22\nowner = \"o\"\npurpose = \"p\"\nexpires = {}\n", days(30)),
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("valid: 1 entry"), "{}", stdout(&o));
}

#[test]
fn includes_and_groups_across_files() {
    let dir = TempDir::new("aud-include");
    std::fs::create_dir_all(dir.join("teams")).unwrap();
    write(
        &dir,
        "teams/web.toml",
        "[groups.web]\nhosts = [\"198.18.1.0/24\"]\n[[allow]]\nhosts = [\"db\"]\nports = 5432\nowner = \"o\"\npurpose = \"p\"\n",
    );
    write(
        &dir,
        "teams/db.toml",
        "[groups.db]\nhosts = [\"198.18.2.0/24\"]\n[[allow]]\nhosts = [\"web\"]\nports = 443\nowner = \"TODO\"\npurpose = \"p\"\n",
    );
    let o = check(&dir, "include = [\"teams/*.toml\"]\n", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("valid: 2 entries, 2 groups, 3 files"), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("teams/db.toml:6:9: allow[1].owner: owner is not filled in yet"),
        "{}",
        stderr(&o)
    );
    // a problem in an included file names that file
    write(&dir, "teams/bad.toml", "[[allow]]\nports = \"1-99999\"\n");
    let o = check(&dir, "include = [\"teams/*.toml\"]\n", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("teams/bad.toml:2:9: allow[1].ports: port 99999 is out of range"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_file(dir.join("teams/bad.toml")).unwrap();
    // the same group twice, and an include of a missing file
    write(&dir, "teams/dup.toml", "[groups.web]\nhosts = [\"198.18.9.0/24\"]\n");
    let o = check(&dir, "include = [\"teams/*.toml\", \"nothere.toml\"]\n", &[]);
    let err = stderr(&o);
    assert!(err.contains("group web is already defined at"), "{err}");
    assert!(err.contains("nothere.toml matches no file"), "{err}");
}

#[test]
fn policy_init_approves_what_is_there_so_the_first_audit_is_clean() {
    if !require_root("init") || !require_tool("init", "nmap") {
        return;
    }
    let dir = TempDir::new("aud-init");
    let o = netns(
        &dir,
        &["127.0.0.1:8091:tcp", "0.0.0.0:8092:tcp", "127.0.0.1:8093:udp"],
        None,
        r#"set -e
"$BIN" policy init -w "$D/local.toml" 2>/dev/null
"$BIN" audit --policy "$D/local.toml" -o json > "$D/local.json"
nmap -sT -Pn -n -p 8091,8092 127.0.0.1 -oX "$D/scan.xml" >/dev/null
"$BIN" policy init --xml "$D/scan.xml" > "$D/scan.toml"
"$BIN" audit --policy "$D/scan.toml" --xml "$D/scan.xml" -o json > "$D/scan.json"
"$BIN" policy init -w "$D/local.toml" 2> "$D/refused" || echo "refused $?""#,
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o).trim(), "refused 2", "init never overwrites without --force");
    let local = std::fs::read_to_string(dir.join("local.toml")).unwrap();
    assert!(
        local.contains("ports = 8091") && local.contains("ports = 8092") && local.contains("ports = 8093"),
        "{local}"
    );
    assert!(local.contains("transport = \"udp\"") && local.contains("process = \"python3\""), "{local}");
    assert!(local.contains("owner = \"TODO\""), "{local}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("local.json")).unwrap()).unwrap();
    assert_eq!(findings(&r), vec![], "{r}");
    assert_eq!(r["observed"].as_array().unwrap().len(), 3);
    let scan = std::fs::read_to_string(dir.join("scan.toml")).unwrap();
    assert!(scan.contains("hosts = [\"127.0.0.1\"]"), "{scan}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("scan.json")).unwrap()).unwrap();
    assert_eq!(findings(&r), vec![], "{r}");
    assert!(std::fs::read_to_string(dir.join("refused")).unwrap().contains("exists; pass --force"));
}
