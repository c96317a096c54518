//! One vocabulary: every command names a port the same way (`portolan_registry::port_name`:
//! nmap's `nmap-services` name where nmap is installed and names the port, IANA's otherwise).
//! Two loopback listeners on 8000 (nmap `http-alt`, IANA `irdmi`) and 8086 (`d-s-n` in both)
//! are named by `scan`, `ls`, `check`, `identify` and `port` through the built binary.

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::process::Command;

use portolan_testkit::{run, stderr, stdout};

fn portolan(args: &[&str]) -> String {
    let o = run(Command::new(env!("CARGO_BIN_EXE_portolan")).args(args).env("NO_COLOR", "1"));
    assert!(o.status.success(), "portolan {args:?}: {}", stderr(&o));
    stdout(&o)
}

/// Whether nmap's services file is where `port_name` looks for it.
fn nmap_services_installed() -> bool {
    let mut paths: Vec<std::path::PathBuf> = std::env::var_os("NMAPDIR")
        .map(|d| std::path::PathBuf::from(d).join("nmap-services"))
        .into_iter()
        .collect();
    paths.extend(["/usr/share/nmap/nmap-services", "/usr/local/share/nmap/nmap-services"].map(Into::into));
    paths.iter().any(|p| p.is_file())
}

/// The words of the lines of `text` that mention `needle`.
fn words_of_lines_with(text: &str, needle: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.contains(needle))
        .flat_map(|l| l.split(|c: char| c.is_whitespace() || c == ',' || c == '(').map(str::to_string))
        .collect()
}

#[test]
fn every_command_names_a_port_the_same_way() {
    // a loopback address of its own, so the ports are free whatever else listens on 8000
    let addr = format!("127.{}.{}.{}", 60 + std::process::id() % 100, std::process::id() / 100 % 250, 7);
    let listeners: Vec<TcpListener> =
        [8000u16, 8086].iter().map(|p| TcpListener::bind(format!("{addr}:{p}")).unwrap()).collect();
    let (http_alt, other) =
        if nmap_services_installed() { ("http-alt", "irdmi") } else { ("irdmi", "http-alt") };
    let expected = [("8000", http_alt), ("8086", "d-s-n")];

    let scan = portolan(&["scan", "-sT", "-Pn", "-p", "8000,8086", &addr]);
    let ls = portolan(&["ls", "-t", "-l"]);
    let check = portolan(&["check", &format!("{addr}:8000"), &format!("{addr}:8086")]);
    let identify =
        portolan(&["identify", &format!("{addr}:8000"), &format!("{addr}:8086"), "--version-timeout", "1s"]);
    for (port, name) in expected {
        let port_answer = portolan(&["port", &format!("{port}/tcp")]);
        let outputs = [
            ("scan", words_of_lines_with(&scan, &format!("{port}/tcp"))),
            ("ls", words_of_lines_with(&ls, &format!("{addr}:{port}"))),
            ("check", words_of_lines_with(&check, &format!("{addr}:{port}"))),
            ("identify", words_of_lines_with(&identify, &format!("{addr}:{port}"))),
            ("port", words_of_lines_with(&port_answer, &format!("{port}/tcp"))),
        ];
        for (command, words) in outputs {
            assert!(words.iter().any(|w| w == name), "{command} does not name {port}/tcp {name}: {words:?}");
            if port == "8000" {
                assert!(!words.iter().any(|w| w == other), "{command} names {port}/tcp {other}: {words:?}");
            }
        }
    }
    // the JSON answers carry the same name
    let v: serde_json::Value = serde_json::from_str(&portolan(&["port", "8000/tcp", "-o", "json"])).unwrap();
    assert_eq!(v[0]["names"][0]["name"], http_alt, "{v}");
    let v: serde_json::Value =
        serde_json::from_str(&portolan(&["check", &format!("{addr}:8000"), "-o", "json"])).unwrap();
    assert_eq!(v[0]["service"], http_alt, "{v}");
    drop(listeners);
}
