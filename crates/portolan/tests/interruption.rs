//! Ctrl-C and SIGTERM in every phase of a scan — host discovery, the port scan, service
//! identification — end with valid nmap XML, a resume file and exit 130 (SIGINT) or 143
//! (SIGTERM); and a reader that closes the pipe early does not change a command's exit code.
//! Every scan here is of loopback, slowed by --max-rate or a silent server.

#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use portolan_testkit::{TempDir, require_tool, run, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_portolan");

fn valid_nmap_xml(xml: &Path) -> String {
    let v = run(Command::new("xmllint").args(["--noout", "--dtdvalid", "/usr/share/nmap/nmap.dtd"]).arg(xml));
    assert!(v.status.success(), "{}: {}", xml.display(), stderr(&v));
    std::fs::read_to_string(xml).unwrap()
}

/// Starts `portolan ARGS -oX xml --resume-file resume`, sends `signal` after `after`, and
/// returns its exit code, stderr and how long it took to stop.
fn interrupt(args: &[&str], dir: &TempDir, signal: &str, after: Duration) -> (Option<i32>, String, Duration) {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("-oX")
        .arg(dir.join("out.xml"))
        .arg("--resume-file")
        .arg(dir.join("resume.json"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    assert!(child.try_wait().unwrap().is_none(), "{args:?} ended before the signal");
    run(Command::new("kill").args([signal, &child.id().to_string()]));
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("{args:?}: still running 20 s after {signal}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (status.code(), err, t0.elapsed())
}

fn check_stopped(phase: &str, dir: &TempDir, got: (Option<i32>, String, Duration), code: i32) {
    let (status, err, took) = got;
    assert_eq!(status, Some(code), "{phase}: {err}");
    assert!(took < Duration::from_secs(5), "{phase}: took {took:?} to stop");
    assert!(err.contains("--resume"), "{phase}: {err}");
    let xml = valid_nmap_xml(&dir.join("out.xml"));
    assert!(xml.contains("interrupted"), "{phase}: {xml}");
    let resume: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("resume.json")).unwrap()).unwrap();
    assert!(resume["args"].is_array(), "{phase}: {resume}");
}

#[test]
fn sigint_during_host_discovery() {
    if !require_tool("sigint_during_host_discovery", "xmllint") {
        return;
    }
    let dir = TempDir::new("int-discovery");
    // 4,096 loopback addresses at 20 probes a second: minutes of discovery
    let got = interrupt(
        &["scan", "-sT", "-n", "-p", "9", "--max-rate", "20", "127.9.0.0/20"],
        &dir,
        "-INT",
        Duration::from_millis(1500),
    );
    check_stopped("discovery", &dir, got, 130);
}

#[test]
fn sigterm_during_the_port_scan() {
    if !require_tool("sigterm_during_the_port_scan", "xmllint") {
        return;
    }
    let dir = TempDir::new("term-ports");
    let got = interrupt(
        &["scan", "-sT", "-Pn", "-n", "-p", "1-5000", "--max-rate", "50", "127.0.0.1"],
        &dir,
        "-TERM",
        Duration::from_millis(1500),
    );
    check_stopped("port scan", &dir, got, 143);
}

/// A server that accepts and never speaks: identification waits out its whole budget.
fn silent_server() -> (u16, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    let h = std::thread::spawn(move || {
        let mut held = Vec::new();
        let t0 = Instant::now();
        // bounded: the server lives 40 s at most
        while t0.elapsed() < Duration::from_secs(40) {
            if let Ok((c, _)) = l.accept() {
                held.push(c);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    (port, h)
}

#[test]
fn sigint_and_sigterm_during_identification() {
    if !require_tool("sigint_and_sigterm_during_identification", "xmllint") {
        return;
    }
    let (port, _server) = silent_server();
    let port = port.to_string();
    for (signal, code) in [("-INT", 130), ("-TERM", 143)] {
        let dir = TempDir::new("int-identify");
        let args = ["scan", "-sT", "-sV", "-Pn", "-n", "--version-timeout", "30s", "-p", &port, "127.0.0.1"];
        let got = interrupt(&args, &dir, signal, Duration::from_millis(2000));
        check_stopped(&format!("identification ({signal})"), &dir, got, code);
        // the host's identification was cut short: it is reported, but not finished, so a
        // resumed run identifies it again
        let resume: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("resume.json")).unwrap()).unwrap();
        assert_eq!(resume["done"], serde_json::json!([]), "{resume}");
        let xml = std::fs::read_to_string(dir.join("out.xml")).unwrap();
        assert!(xml.contains(&format!("portid=\"{port}\"")), "{xml}");
    }
}

/// `portolan diff A B | head -c 1`: the reader goes away, the exit code still says "changes".
#[test]
fn a_closed_pipe_keeps_the_exit_code() {
    let dir = TempDir::new("pipe");
    let xml = |name: &str, state: &str| {
        let mut s = String::from(
            "<?xml version=\"1.0\"?>\n<nmaprun scanner=\"nmap\" args=\"nmap\" start=\"1700000000\" version=\"7.94\" xmloutputversion=\"1.05\">\n",
        );
        for h in 0..2000 {
            s.push_str(&format!(
                "<host><status state=\"up\" reason=\"syn-ack\"/><address addr=\"198.18.{}.{}\" addrtype=\"ipv4\"/><ports>",
                h / 250,
                h % 250 + 1
            ));
            for p in [22, 80, 443] {
                s.push_str(&format!(
                    "<port protocol=\"tcp\" portid=\"{p}\"><state state=\"{state}\" reason=\"syn-ack\"/></port>"
                ));
            }
            s.push_str("</ports></host>\n");
        }
        s.push_str("<runstats><finished time=\"1700000001\"/><hosts up=\"2000\" down=\"0\" total=\"2000\"/></runstats></nmaprun>\n");
        let p = dir.join(name);
        std::fs::write(&p, s).unwrap();
        p
    };
    let (a, b) = (xml("a.xml", "open"), xml("b.xml", "closed"));
    let script =
        format!("{BIN} diff {} {} | head -c 1 >/dev/null; echo ${{PIPESTATUS[0]}}", a.display(), b.display());
    let o = run(Command::new("bash").args(["-c", &script]));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "1",
        "diff with changes, pipe closed: {}",
        stderr(&o)
    );
    let script =
        format!("{BIN} diff {} {} | head -c 1 >/dev/null; echo ${{PIPESTATUS[0]}}", a.display(), a.display());
    let o = run(Command::new("bash").args(["-c", &script]));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "0", "{}", stderr(&o));
}
