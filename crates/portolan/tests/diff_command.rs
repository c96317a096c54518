//! `portolan diff` on real nmap XML: the same changes as nmap's `ndiff` on the same files
//! (compared as sets through tests/support/ndiff_canon.py, and as text), the same exit codes,
//! and clear errors for bad input.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use portolan_testkit::{TempDir, require_tool, run, stderr, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_portolan");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A banner server on loopback (scripts/bannerd.py), killed on drop.
struct Banners {
    child: Child,
    ports: Vec<u16>,
}

impl Banners {
    fn start(specs: &[&str]) -> Banners {
        let mut child = Command::new("python3")
            .arg(repo().join("scripts/bannerd.py"))
            .args(["--timeout", "120"])
            .args(specs)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let ports = line.trim().split(',').map(|e| e.rsplit(':').next().unwrap().parse().unwrap()).collect();
        Banners { child, ports }
    }
}

impl Drop for Banners {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn nmap(ports: &str, targets: &[&str], out: &Path) {
    let o = run(Command::new("nmap")
        .args(["-sT", "-sV", "-Pn", "-n", "--max-retries", "2", "-p", ports])
        .args(targets)
        .arg("-oX")
        .arg(out));
    assert!(o.status.success(), "nmap: {}", stderr(&o));
}

fn canon(kind: &str, file: &Path) -> String {
    let o = run(Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/ndiff_canon.py"))
        .arg(kind)
        .arg(file));
    assert!(o.status.success(), "ndiff_canon {kind}: {}", stderr(&o));
    stdout(&o)
}

/// Compares portolan diff and ndiff on (a, b): exit code, change set and text.
fn compare(dir: &TempDir, a: &Path, b: &Path) -> serde_json::Value {
    let nd_xml = run(Command::new("ndiff").arg("--xml").arg(a).arg(b));
    let nd_text = run(Command::new("ndiff").arg(a).arg(b));
    let pd_json = run(Command::new(BIN).args(["diff", "-o", "json"]).arg(a).arg(b));
    let pd_text = run(Command::new(BIN).arg("diff").arg(a).arg(b));
    assert_eq!(nd_xml.status.code(), pd_json.status.code(), "exit codes differ; {}", stderr(&pd_json));
    assert_eq!(nd_text.status.code(), pd_text.status.code());
    let (nf, pf) = (dir.join("ndiff.xml"), dir.join("portolan.json"));
    std::fs::write(&nf, &nd_xml.stdout).unwrap();
    std::fs::write(&pf, &pd_json.stdout).unwrap();
    assert_eq!(canon("ndiff", &nf), canon("portolan", &pf), "change sets differ for {a:?} → {b:?}");
    assert_eq!(stdout(&nd_text), stdout(&pd_text), "text differs for {a:?} → {b:?}");
    serde_json::from_slice(&pd_json.stdout).unwrap()
}

#[test]
fn diff_reports_the_changes_ndiff_reports() {
    const T: &str = "diff_reports_the_changes_ndiff_reports";
    if !require_tool(T, "nmap") || !require_tool(T, "ndiff") || !require_tool(T, "python3") {
        return;
    }
    let dir = TempDir::new("diff");
    let (a, b) = (dir.join("a.xml"), dir.join("b.xml"));
    // a closed run of ports, so that both scans summarise them in <extraports>
    let closed = "49990-50020";

    // scan A: ssh 9.2 and ftp on 127.0.0.1, ssh on 127.0.0.3; p3 closed
    let p3 = free_port();
    let (p1, p2, p5) = {
        let s = Banners::start(&[
            "127.0.0.1:0=SSH-2.0-OpenSSH_9.2p1 Debian-2\\r\\n",
            "127.0.0.1:0=220 (vsFTPd 3.0.3)\\r\\n",
            "127.0.0.3:0=SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\\r\\n",
        ]);
        let (p1, p2, p5) = (s.ports[0], s.ports[1], s.ports[2]);
        nmap(&format!("{p1},{p2},{p3},{p5},{closed}"), &["127.0.0.1", "127.0.0.3"], &a);
        (p1, p2, p5)
    };
    // scan B: ssh upgraded on p1, ftp gone, smtp opened on p3, a new host 127.0.0.2, 127.0.0.3 gone
    let p4 = free_port();
    {
        let _s = Banners::start(&[
            &format!("127.0.0.1:{p1}=SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\\r\\n"),
            &format!("127.0.0.1:{p3}=220 mail.test ESMTP Postfix\\r\\n"),
            &format!("127.0.0.2:{p4}=220 mail.test ESMTP Postfix\\r\\n"),
        ]);
        nmap(&format!("{p1},{p2},{p3},{p4},{p5},{closed}"), &["127.0.0.1", "127.0.0.2"], &b);
    }

    let d = compare(&dir, &a, &b);
    // and what the changes are, so that a shared blind spot cannot pass
    let changes: Vec<(String, u64, String)> = d["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|h| {
            h["ports"].as_array().cloned().unwrap_or_default().into_iter().map(move |p| {
                (
                    h["address"].as_str().unwrap().to_string(),
                    p["port"].as_u64().unwrap(),
                    p["change"].as_str().unwrap().to_string(),
                )
            })
        })
        .collect();
    let has = |addr: &str, port: u16, change: &str| {
        changes.iter().any(|(a, p, c)| a == addr && *p == u64::from(port) && c == change)
    };
    assert!(has("127.0.0.1", p1, "service-changed"), "{changes:?}");
    assert!(has("127.0.0.1", p2, "no-longer-open"), "{changes:?}");
    assert!(has("127.0.0.1", p3, "opened"), "{changes:?}");
    assert!(has("127.0.0.2", p4, "opened"), "{changes:?}");
    assert!(has("127.0.0.3", p5, "no-longer-open"), "{changes:?}");
    let states: Vec<(String, serde_json::Value, serde_json::Value)> = d["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["address"].as_str().unwrap().to_string(), h["state_a"].clone(), h["state_b"].clone()))
        .collect();
    assert!(states.contains(&("127.0.0.2".into(), serde_json::Value::Null, "up".into())), "{states:?}");
    assert!(states.contains(&("127.0.0.3".into(), "up".into(), serde_json::Value::Null)), "{states:?}");

    compare(&dir, &b, &a);
    let same = compare(&dir, &a, &a);
    assert_eq!(same["cost"], 0);

    // Portolan's own JSON scan document diffs the same as the XML it came from
    let aj = dir.join("a.json");
    let o = run(Command::new(BIN).arg("import").arg(&a).arg("-oJ").arg(&aj).args(["-o", "json"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let from_json = run(Command::new(BIN).args(["diff", "-o", "json"]).arg(&aj).arg(&b));
    let mut x: serde_json::Value = serde_json::from_slice(&from_json.stdout).unwrap();
    x["a"] = d["a"].clone();
    assert_eq!(x, d);
}

#[test]
fn diff_rejects_bad_input_clearly() {
    let dir = TempDir::new("diff-bad");
    let good = dir.join("good.xml");
    std::fs::write(
        &good,
        r#"<?xml version="1.0"?><nmaprun scanner="nmap" args="nmap" start="1" version="7.93"><runstats><finished time="2"/><hosts up="0" down="0" total="0"/></runstats></nmaprun>"#,
    )
    .unwrap();
    let bad = dir.join("bad.xml");
    std::fs::write(&bad, "<?xml version=\"1.0\"?>\n<nmaprun scanner=\"nmap\">\n<host><address addr=\"x\"\n")
        .unwrap();

    let o = run(Command::new(BIN).arg("diff").arg(&good).arg(dir.join("missing.xml")));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing.xml: no such file"), "{}", stderr(&o));

    let o = run(Command::new(BIN).arg("diff").arg(&good).arg(&bad));
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("bad.xml") && e.contains(":3:"), "{e}");
    assert!(!e.contains("panicked"), "{e}");

    let o = run(Command::new(BIN).arg("diff").arg(&good).arg(&good));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
}
