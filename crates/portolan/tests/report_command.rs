//! `portolan report` end to end: real data (an inventory, two saved scans of loopback servers,
//! one with -sV against a server whose banner is an HTML injection, a policy, a firewall rule
//! set and Zeek's own brute-force capture) made into a page, and the page opened in headless
//! Chromium, driven over the DevTools protocol (`scripts/browser-check.py`) in a network
//! namespace of its own: the page's sections and chart counts are read back from its DOM, and
//! the browser must report no network request, no console error and no CSP refusal.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use portolan_testkit::{TempDir, require_root, require_tool};

const HOSTILE: &str = r#"SSH-2.0-<script>alert(1)</script>"><img src=x onerror=alert(2)>"#;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs portolan with this store, bounded at 120 s: (exit code, stdout, stderr).
fn portolan(db: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    portolan_testkit::run_bounded(
        Command::new(env!("CARGO_BIN_EXE_portolan")).args(args).env("PORTOLAN_DB", db).env("NO_COLOR", "1"),
        Duration::from_secs(120),
    )
}

/// A loopback server that greets every connection with `banner`, for as long as the test runs.
fn server(banner: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let _ = c.set_read_timeout(Some(Duration::from_millis(500)));
            let _ = c.write_all(format!("{banner}\r\n").as_bytes());
            let mut buf = [0u8; 256];
            let _ = c.read(&mut buf);
        }
    });
    port
}

/// Opens `page` in Chromium, in a network namespace with only loopback: the JSON of
/// `browser-check.py`.
fn browser(page: &Path, eval: &str, shot: Option<&Path>) -> serde_json::Value {
    let script = repo().join("scripts/browser-check.py");
    let mut cmd = format!(
        "ip link set lo up && exec python3 {} file://{} --eval \"$EVAL\"",
        script.display(),
        page.canonicalize().unwrap().display()
    );
    if let Some(s) = shot {
        cmd.push_str(&format!(" --screenshot {}", s.display()));
    }
    let out = Command::new("timeout")
        .args(["90", "unshare", "-n", "sh", "-c", &cmd])
        .env("EVAL", eval)
        .output()
        .unwrap();
    assert!(out.status.success(), "browser-check failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// What the test reads back from the page, as one JSON string.
const READ_BACK: &str = r#"JSON.stringify({
  sections: Array.from(document.querySelectorAll('main > section')).map(s => s.id),
  charts: Object.fromEntries(Array.from(document.querySelectorAll('figure.chart')).map(f =>
    [f.id, {total: Number(f.dataset.total), bars: Number(f.dataset.bars),
            values: Object.fromEntries(Array.from(f.querySelectorAll('[data-label]')).map(g => [g.dataset.label, Number(g.dataset.value)])),
            classes: Object.fromEntries(Array.from(f.querySelectorAll('g.bar')).map(g => [g.dataset.label, g.querySelector('rect').getAttribute('class')]))}])),
  tiles: Object.fromEntries(Array.from(document.querySelectorAll('.tile')).map(t => [t.dataset.what, Number(t.dataset.count)])),
  tables: Object.fromEntries(Array.from(document.querySelectorAll('div.paged')).map(d =>
    [d.id, {rows: Number(d.dataset.rows), shown: d.querySelectorAll('tbody tr').length,
            controls: !d.querySelector('.controls').hidden}])),
  hostText: document.getElementById('host-table').textContent,
  images: document.querySelectorAll('img').length,
  scripts: document.querySelectorAll('script:not([type="application/json"])').length,
  fix: document.querySelectorAll('ol.fix li').length,
})"#;

#[test]
fn report_of_real_data_opens_offline_in_chromium() {
    const T: &str = "report_of_real_data_opens_offline_in_chromium";
    if !require_tool(T, "chromium") || !require_tool(T, "unshare") || !require_root(T) {
        return;
    }
    let dir = TempDir::new("report-e2e");
    let db = dir.join("p.db");
    let hostile = server(HOSTILE);
    // the second server comes up between the two scans: the changes and the drift show it
    let later = TcpListener::bind("127.0.0.1:0").unwrap();
    let later_port = later.local_addr().unwrap().port();
    drop(later);
    let ports = format!("{hostile},{later_port}");

    let (code, _, err) = portolan(&db, &["ls", "--save", "-q"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = portolan(&db, &["scan", "127.0.0.1", "-p", &ports, "--save", "-q"]);
    assert_eq!(code, Some(0), "{err}");
    let l = TcpListener::bind(("127.0.0.1", later_port)).unwrap();
    std::thread::spawn(move || for _c in l.incoming() {});
    let (code, _, err) = portolan(&db, &["scan", "127.0.0.1", "-p", &ports, "-sV", "--save", "-q"]);
    assert_eq!(code, Some(0), "{err}");

    // the policy approves the hostile server's port only
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, format!("[[allow]]\nports = {hostile}\nowner = \"o\"\npurpose = \"p\"\n"))
        .unwrap();
    // the firewall lets the first port in from anywhere, drops the rest
    let rules = dir.join("rules.v4");
    std::fs::write(
        &rules,
        format!(
            "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport {hostile} -j ACCEPT\n-A INPUT -p tcp --dport 23 -j ACCEPT\nCOMMIT\n"
        ),
    )
    .unwrap();
    let trace = repo().join("crates/traffic/tests/zeek/sshguess.pcap");
    let page = dir.join("report.html");
    let (code, _, err) = portolan(
        &db,
        &[
            "report",
            "-o",
            page.to_str().unwrap(),
            "--since",
            "1d",
            "--policy",
            policy.to_str().unwrap(),
            "--rules",
            rules.to_str().unwrap(),
            "--watch",
            trace.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("wrote"), "{err}");

    // without scripts: the rows are in the page itself, the banner only as text
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("Content-Security-Policy"));
    assert!(html.contains("default-src 'none'"));
    assert!(!html.contains("<img"), "an injected element reached the page");
    assert!(!html.contains("<script>alert"), "an injected script reached the page");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "the banner is not shown as text");
    let host_table = &html[html.find(r#"id="host-table""#).unwrap()..];
    assert!(host_table[..host_table.find("</tbody>").unwrap()].matches("<tr>").count() >= 3);

    let shot = std::env::var_os("PORTOLAN_REPORT_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-e2e.png"));
    let got = browser(&page, READ_BACK, Some(&shot));
    println!("screenshot of the report: {}", shot.display());
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000, "no screenshot");
    assert_eq!(got["requests"], serde_json::json!([]), "the page made network requests: {got}");
    assert_eq!(got["console"], serde_json::json!([]), "console errors: {got}");
    assert_eq!(got["log"], serde_json::json!([]), "browser errors: {got}");
    let v: serde_json::Value = serde_json::from_str(got["value"].as_str().unwrap()).unwrap();

    let sections: Vec<&str> = v["sections"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(
        sections,
        ["summary", "charts", "hosts", "listeners", "findings", "firewall", "changes", "watch", "metadata"]
    );
    // the numbers: one host, two open ports, one opened since the first scan
    assert_eq!(v["tiles"]["hosts"], 1, "{v}");
    assert_eq!(v["tiles"]["open-ports"], 2, "{v}");
    assert!(v["tiles"]["listeners"].as_u64().unwrap() >= 1, "{v}");
    let open_chart = &v["charts"]["chart-ranges"];
    assert_eq!(open_chart["total"], 2, "{v}");
    assert_eq!(v["charts"]["chart-services"]["total"], 2, "{v}");
    let drift = &v["charts"]["chart-drift"];
    assert_eq!(drift["bars"], 2, "two scans on the drift chart: {v}");
    assert_eq!(drift["total"], 1, "one port opened between them: {v}");
    // the firewall: the hostile server's port accepted from the internet, the other closed
    let exposure = &v["charts"]["chart-exposure"]["values"];
    assert_eq!(exposure[format!("{hostile}/tcp")], 1, "{v}");
    assert_eq!(exposure[format!("{later_port}/tcp")], 1, "{v}");
    let classes = &v["charts"]["chart-exposure"]["classes"];
    assert_eq!(classes[format!("{hostile}/tcp")], "exp-internet", "{v}");
    assert_eq!(classes[format!("{later_port}/tcp")], "exp-closed", "{v}");
    // the policy: the second port is not approved; the severity chart counts every finding
    let total_findings: u64 = ["critical", "high", "medium", "low", "info"]
        .iter()
        .map(|s| v["tiles"][format!("findings-{s}")].as_u64().unwrap())
        .sum();
    assert!(total_findings >= 1, "{v}");
    assert_eq!(v["charts"]["chart-severity"]["total"], total_findings, "{v}");
    assert_eq!(v["tables"]["finding-table"]["rows"], total_findings, "{v}");
    assert!(v["fix"].as_u64().unwrap() >= 1, "{v}");
    // Zeek's sshguess trace: one brute force, from one source
    assert_eq!(v["tiles"]["detections"], 1, "{v}");
    assert_eq!(v["charts"]["chart-detections"]["total"], 1, "{v}");
    assert_eq!(v["charts"]["chart-sources"]["total"], 1, "{v}");
    assert_eq!(v["tables"]["detection-table"]["rows"], 1, "{v}");
    // the tables: the script took over (controls shown), rows as in the data
    assert_eq!(v["tables"]["host-table"]["rows"], 2, "{v}");
    assert_eq!(v["tables"]["host-table"]["shown"], 2, "{v}");
    assert_eq!(v["tables"]["host-table"]["controls"], true, "{v}");
    assert!(v["tables"]["change-table"]["rows"].as_u64().unwrap() >= 1, "{v}");
    // the hostile banner: text in the table, no element made of it
    assert!(v["hostText"].as_str().unwrap().contains("<script>alert(1)</script>"), "{v}");
    assert_eq!(v["images"], 0, "{v}");
    assert_eq!(v["scripts"], 1, "only the page's own script: {v}");
}

/// The check above can fail: a page that fetches from loopback and logs an error is caught.
#[test]
fn the_browser_check_sees_requests_and_console_errors() {
    const T: &str = "the_browser_check_sees_requests_and_console_errors";
    if !require_tool(T, "chromium") || !require_tool(T, "unshare") || !require_root(T) {
        return;
    }
    let dir = TempDir::new("report-control");
    let page = dir.join("control.html");
    std::fs::write(
        &page,
        r#"<!doctype html><p>x</p><img src="http://127.0.0.1:9/pixel.png"><script>console.error("boom")</script>"#,
    )
    .unwrap();
    let got = browser(&page, "document.querySelectorAll('p').length", None);
    assert_eq!(got["requests"], serde_json::json!(["http://127.0.0.1:9/pixel.png"]), "{got}");
    assert_eq!(got["console"], serde_json::json!(["error: boom"]), "{got}");
    assert_eq!(got["value"], 1);
}

#[test]
fn report_refuses_an_empty_store_and_bad_input_without_touching_the_output() {
    let dir = TempDir::new("report-errors");
    let db = dir.join("empty.db");
    let page = dir.join("report.html");
    let (code, _, err) = portolan(&db, &["report", "-o", page.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("holds no snapshots") && err.contains("--save"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!page.exists());

    // an earlier report survives a failed one, and no temporary file is left
    std::fs::write(&page, "earlier").unwrap();
    let bad = dir.join("broken.xml");
    std::fs::write(&bad, "<?xml version=\"1.0\"?>\n<nmaprun><host><address addr=").unwrap();
    for args in [
        vec!["report", bad.to_str().unwrap(), "-o", page.to_str().unwrap()],
        vec!["report", "/nonexistent/scan.xml", "-o", page.to_str().unwrap()],
        vec!["report", "last~7", "-o", page.to_str().unwrap()],
    ] {
        let (code, _, err) = portolan(&db, &args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert_eq!(std::fs::read_to_string(&page).unwrap(), "earlier");
    }
    // a directory that cannot be written: named, nothing left behind
    let (code, scan, err) = portolan(&db, &["scan", "127.0.0.1", "-p", "1", "-o", "json", "-q"]);
    assert_eq!(code, Some(0), "{err}");
    let good = dir.join("scan.json");
    std::fs::write(&good, scan).unwrap();
    let (code, _, err) = portolan(&db, &["report", good.to_str().unwrap(), "-o", page.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(std::fs::read_to_string(&page).unwrap().starts_with("<!DOCTYPE html>"));
    let (code, _, err) = portolan(&db, &["report", good.to_str().unwrap(), "-o", "/nonexistent-dir/r.html"]);
    assert_eq!(code, Some(2), "{err}");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
