//! `portolan port` end to end: the built binary, its answers, its errors and exit codes.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use portolan_testkit::{run, stderr, stdout};
use serde_json::Value;

fn portolan(args: &[&str]) -> std::process::Output {
    run(Command::new(env!("CARGO_BIN_EXE_portolan")).args(args).env("NO_COLOR", "1"))
}

fn json(args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    let o = portolan(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn rdp_by_number() {
    let v = json(&["port", "3389"]);
    let a = &v[0];
    assert_eq!(a["range_class"], "registered");
    let rows = a["registry"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["name"] == "ms-wbt-server" && r["port"] == 3389));
    let transports: Vec<&str> = rows.iter().map(|r| r["transport"].as_str().unwrap()).collect();
    assert_eq!(transports, ["tcp", "udp"]);
    assert_eq!(a["knowledge"][0]["id"], "ms-wbt-server");
    assert_eq!(a["knowledge"][0]["internet_risk"], "critical");
    assert!(a["knowledge"][0]["alternative"].as_str().unwrap().contains("VPN"));
    // the table names the same things for people
    let o = portolan(&["port", "3389"]);
    let text = stdout(&o);
    assert!(text.contains("ms-wbt-server") && text.contains("registered (1024-49151)"), "{text}");
    assert!(text.contains("CRITICAL"), "{text}");
}

#[test]
fn ssh_by_name_lists_every_transport() {
    let v = json(&["port", "ssh"]);
    let rows = v[0]["registry"].as_array().unwrap();
    let mut t: Vec<&str> = rows.iter().filter_map(|r| r["transport"].as_str()).collect();
    t.sort();
    t.dedup();
    assert_eq!(t, ["sctp", "tcp", "udp"]);
    assert!(rows.iter().any(|r| r["port"] == 22));
    assert_eq!(v[0]["knowledge"][0]["id"], "ssh");
}

#[test]
fn dns_on_udp_only() {
    let v = json(&["port", "53/udp"]);
    let rows = v[0]["registry"].as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["transport"] == "udp"));
    assert_eq!(rows[0]["name"], "domain");
    assert_eq!(v[0]["range_class"], "well-known");
}

#[test]
fn a_range_includes_range_rows() {
    let v = json(&["port", "6000-6010"]);
    let rows = v[0]["registry"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["name"] == "x11" && r["port"] == 6000 && r["port_end"] == 6063));
    assert!(v[0]["knowledge"].as_array().unwrap().iter().any(|k| k["id"] == "x11"));
}

#[test]
fn search_finds_remote_desktop() {
    let v = json(&["port", "--search", "remote desktop"]);
    let rows = v[0]["registry"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["name"] == "rdp"));
    assert!(v[0]["knowledge"].as_array().unwrap().iter().any(|k| k["id"] == "ms-wbt-server"));
    let none = portolan(&["port", "--search", "qqqzzz nothing"]);
    assert_eq!(none.status.code(), Some(1));
}

#[test]
fn dynamic_port_has_a_class_and_no_rows() {
    let v = json(&["port", "60000"]);
    assert_eq!(v[0]["range_class"], "dynamic");
    assert_eq!(v[0]["registry"].as_array().unwrap().len(), 0);
}

#[test]
fn csv_and_ndjson_are_well_formed() {
    let o = portolan(&["port", "22", "443", "-o", "ndjson"]);
    let lines: Vec<Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    let o = portolan(&["port", "22", "-o", "csv"]);
    let text = stdout(&o);
    assert!(text.starts_with("query,port,port_end,transport,service"), "{text}");
    assert!(text.contains("22,22,,tcp,ssh,"), "{text}");
}

#[test]
fn bad_input_is_one_clear_line_and_exit_2() {
    for (args, needle) in [
        (vec!["port", "70000"], "out of range"),
        (vec!["port", "22/xyz"], "xyz"),
        (vec!["port", "nosuchservice"], "nosuchservice"),
        (vec!["port", "shh"], "did you mean ssh"),
        (vec!["port", "10-5"], "empty"),
        (vec!["port", "-o", "yaml", "22"], "yaml"),
    ] {
        let o = portolan(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = stderr(&o);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        if args[1] != "-o" {
            assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        }
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn help_lists_only_working_commands() {
    let o = portolan(&["--help"]);
    let text = stdout(&o);
    for cmd in ["port", "import"] {
        assert!(text.contains(cmd), "{text}");
    }
}

#[test]
fn top_ports_match_nmaps_own_selection() {
    let test = "top_ports_match_nmaps_own_selection";
    if !portolan_testkit::require_tool(test, "nmap") {
        return;
    }
    for (t, flag) in [("tcp", "-sT"), ("udp", "-sU")] {
        if t == "udp" && !portolan_testkit::require_root(test) {
            continue;
        }
        let v = json(&["port", "--top", "100", "--transport", t]);
        assert!(v["source"].as_str().unwrap().starts_with("nmap:"), "{v}");
        let mut ours: Vec<u64> =
            v["ports"].as_array().unwrap().iter().map(|p| p["port"].as_u64().unwrap()).collect();
        ours.sort_unstable();
        // nmap names its selection in <scaninfo services=...> (a quick scan of loopback)
        let o = run(Command::new("nmap").args([
            flag,
            "--top-ports",
            "100",
            "-Pn",
            "-n",
            "-T5",
            "--max-retries",
            "0",
            "-oX",
            "-",
            "127.0.0.1",
        ]));
        let xml = stdout(&o);
        let services = xml.split(" services=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or("");
        let mut theirs = Vec::new();
        for part in services.split(',').filter(|s| !s.is_empty()) {
            match part.split_once('-') {
                Some((a, b)) => theirs.extend(a.parse::<u64>().unwrap()..=b.parse::<u64>().unwrap()),
                None => theirs.push(part.parse::<u64>().unwrap()),
            }
        }
        if theirs.is_empty() {
            panic!("nmap printed no scaninfo: {xml}");
        }
        assert_eq!(ours, theirs, "{t}");
    }
    // the built-in ranking is Portolan's own
    let v = json(&["port", "--top", "3", "--builtin-ranking"]);
    assert_eq!(v["source"], "portolan");
    let ports: Vec<u64> =
        v["ports"].as_array().unwrap().iter().map(|p| p["port"].as_u64().unwrap()).collect();
    assert_eq!(ports, [80, 443, 22]);
}
