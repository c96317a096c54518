//! Hostile servers on loopback cannot hurt `portolan identify`: each case bounds the time the
//! command takes, the bytes it reads (counted by the server) and its peak memory (getrusage of
//! the child), and checks that what it prints carries no raw escape bytes.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// A loopback server running `serve` on every connection until the test ends.
struct Server {
    port: u16,
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start(serve: fn(TcpStream, &AtomicU64, &AtomicBool)) -> Server {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, st2) = (Arc::clone(&sent), Arc::clone(&stop));
        l.set_nonblocking(true).unwrap();
        thread::spawn(move || {
            let t0 = Instant::now();
            // bounded: no server outlives a minute
            while !st2.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(60) {
                match l.accept() {
                    Ok((c, _)) => {
                        c.set_nonblocking(false).unwrap();
                        let (s3, st3) = (Arc::clone(&s2), Arc::clone(&st2));
                        thread::spawn(move || serve(c, &s3, &st3));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server { port, sent, stop }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Holds a connection open (reading and discarding) until the test ends or a minute passes.
fn hold(mut c: TcpStream, stop: &AtomicBool) {
    c.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 1024];
    while !stop.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(60) {
        match c.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// Runs `portolan identify` with a 3 s budget per port; returns stdout, wall time and peak RSS.
fn identify(port: u16, extra: &[&str]) -> (String, Duration, u64) {
    let t0 = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "maxrss_kb=%M", env!("CARGO_BIN_EXE_portolan"), "identify", "--version-timeout", "3s"])
        .arg(format!("127.0.0.1:{port}"))
        .args(extra)
        .output()
        .unwrap();
    let took = t0.elapsed();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "identify failed: {err}");
    let rss = err
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kb="))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("/usr/bin/time reports the peak RSS");
    let text = String::from_utf8(out.stdout).expect("identify prints valid UTF-8");
    (text, took, rss)
}

/// What every case must hold to.
fn bounded(case: &str, text: &str, took: Duration, rss_kb: u64) {
    assert!(took < Duration::from_secs(6), "{case}: took {took:?}");
    assert!(rss_kb < 96 * 1024, "{case}: peak RSS {rss_kb} KiB");
    assert!(
        !text.bytes().any(|b| b == 0x1b || b == 0x07 || b == 0x9b),
        "{case}: raw control bytes in {text:?}"
    );
    assert!(!text.contains('\u{202e}'), "{case}: bidi override in output");
}

fn need_time(test: &str) -> bool {
    portolan_testkit::require_tool(test, "/usr/bin/time")
}

#[test]
fn a_server_that_never_sends_is_left_in_time() {
    if !need_time("a_server_that_never_sends_is_left_in_time") {
        return;
    }
    let s = Server::start(|c, _, stop| hold(c, stop));
    let (text, took, rss) = identify(s.port, &[]);
    bounded("never sends", &text, took, rss);
    assert!(text.contains("silent"), "{text}");
}

#[test]
fn a_server_that_never_closes_is_identified_and_left() {
    if !need_time("a_server_that_never_closes_is_identified_and_left") {
        return;
    }
    let s = Server::start(|mut c, sent, stop| {
        let b = b"220 mail.example ESMTP Postfix (Debian/GNU)\r\n";
        let _ = c.write_all(b);
        sent.fetch_add(b.len() as u64, Ordering::Relaxed);
        hold(c, stop);
    });
    let (text, took, rss) = identify(s.port, &["--no-starttls"]);
    bounded("never closes", &text, took, rss);
    assert!(text.contains("smtp") && text.contains("Postfix smtpd"), "{text}");
}

#[test]
fn a_server_that_sends_gigabytes_is_read_only_so_far() {
    if !need_time("a_server_that_sends_gigabytes_is_read_only_so_far") {
        return;
    }
    let s = Server::start(|mut c, sent, _| {
        let chunk = vec![b'A'; 64 * 1024];
        // up to 4 GiB, until the client goes away
        for _ in 0..65_536 {
            match c.write(&chunk) {
                Ok(n) => {
                    sent.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(_) => return,
            }
        }
    });
    let (text, took, rss) = identify(s.port, &[]);
    bounded("gigabytes", &text, took, rss);
    // what the server got out is what the client read plus the kernel's buffers, far below 1 GiB
    let sent = s.sent.load(Ordering::Relaxed);
    assert!(sent < 256 * 1024 * 1024, "server sent {sent} bytes: the client kept reading");
}

#[test]
fn a_server_that_trickles_a_byte_a_second_is_bounded() {
    if !need_time("a_server_that_trickles_a_byte_a_second_is_bounded") {
        return;
    }
    let s = Server::start(|mut c, sent, stop| {
        let t0 = Instant::now();
        for b in b"SSH-2.0-OpenSSH_9.9 slowly\r\n".iter().cycle() {
            if stop.load(Ordering::Relaxed)
                || t0.elapsed() > Duration::from_secs(60)
                || c.write_all(&[*b]).is_err()
            {
                return;
            }
            sent.fetch_add(1, Ordering::Relaxed);
            thread::sleep(Duration::from_secs(1));
        }
    });
    let (text, took, rss) = identify(s.port, &[]);
    bounded("trickle", &text, took, rss);
    // every connection gets a byte a second; the client gives up on each within seconds
    assert!(s.sent.load(Ordering::Relaxed) < 64, "the client kept a trickle going");
}

#[test]
fn escape_sequences_and_invalid_utf8_never_reach_the_terminal() {
    if !need_time("escape_sequences_and_invalid_utf8_never_reach_the_terminal") {
        return;
    }
    let s = Server::start(|mut c, _, stop| {
        let evil: &[u8] =
            b"SSH-2.0-OpenSSH_9.2\x1b[2J\x1b]0;owned\x07 \xff\xfe\xc3\x28 \xe2\x80\xae\x9b31m Debian\r\n\x1b[31mred\r\n";
        let _ = c.write_all(evil);
        hold(c, stop);
    });
    for format in ["table", "json", "csv", "ndjson"] {
        let (text, took, rss) = identify(s.port, &["-o", format]);
        bounded(&format!("escapes ({format})"), &text, took, rss);
        assert!(text.contains("ssh"), "{format}: {text}");
    }
    // and an HTTP server with an evil title and server header
    let h = Server::start(|mut c, _, stop| {
        let mut buf = [0u8; 512];
        let _ = c.read(&mut buf);
        let _ = c.write_all(
            b"HTTP/1.1 200 OK\r\nServer: evil\x1b[5m/1.0\r\nLocation: \x1b]8;;http://x\x07\r\n\r\n<title>\x1b[2J\xe2\x80\xaeowned</title>",
        );
        hold(c, stop);
    });
    let (text, took, rss) = identify(h.port, &[]);
    bounded("http escapes", &text, took, rss);
    assert!(text.contains("http"), "{text}");
}

/// Reads a TLS ClientHello record, so the reply follows a real question.
fn read_client_hello(c: &mut TcpStream) {
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut head = [0u8; 5];
    if c.read_exact(&mut head).is_ok() {
        let len = usize::from(u16::from_be_bytes([head[3], head[4]]));
        let mut body = vec![0u8; len.min(1 << 16)];
        let _ = c.read_exact(&mut body);
    }
}

fn server_hello() -> Vec<u8> {
    // TLS 1.2 ServerHello: ECDHE-RSA-AES128-GCM-SHA256, no extensions
    let mut hs = vec![0x03, 0x03];
    hs.extend_from_slice(&[0x42; 32]);
    hs.extend_from_slice(&[0x00, 0xc0, 0x2f, 0x00]);
    let mut msg = vec![0x02, 0, 0, hs.len() as u8];
    msg.extend(hs);
    let mut rec = vec![0x16, 0x03, 0x03, 0, msg.len() as u8];
    rec.extend(msg);
    rec
}

#[test]
fn a_huge_certificate_chain_is_cut_short() {
    if !need_time("a_huge_certificate_chain_is_cut_short") {
        return;
    }
    let s = Server::start(|mut c, sent, _| {
        read_client_hello(&mut c);
        let _ = c.write_all(&server_hello());
        // a Certificate message that claims 16 MiB, then certificates without end
        let mut first = vec![0x16, 0x03, 0x03, 0x40, 0x00, 0x0b, 0xff, 0xff, 0xf0, 0xff, 0xff, 0xed];
        first.resize(5 + 0x4000, 0x30);
        if c.write_all(&first).is_err() {
            return;
        }
        let mut rec = vec![0x16, 0x03, 0x03, 0x40, 0x00];
        rec.resize(5 + 0x4000, 0x30);
        for _ in 0..65_536 {
            match c.write(&rec) {
                Ok(n) => {
                    sent.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(_) => return,
            }
        }
    });
    let (text, took, rss) = identify(s.port, &[]);
    bounded("huge chain", &text, took, rss);
    let sent = s.sent.load(Ordering::Relaxed);
    assert!(sent < 64 * 1024 * 1024, "server sent {sent} bytes of certificates");
}

#[test]
fn a_malformed_certificate_chain_is_refused_cleanly() {
    if !need_time("a_malformed_certificate_chain_is_refused_cleanly") {
        return;
    }
    let s = Server::start(|mut c, _, stop| {
        read_client_hello(&mut c);
        let _ = c.write_all(&server_hello());
        // one "certificate" of nested garbage DER with control bytes, then ServerHelloDone
        let mut cert = vec![0x30, 0x82, 0x01, 0x00, 0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x1b, b'['];
        cert.resize(256, 0x1b);
        let mut certs = vec![0, 1, 0];
        certs.extend_from_slice(&cert);
        let mut list = vec![0, 0x01, 0x03];
        list.extend(certs);
        let mut msg = vec![0x0b, 0, 0x01, 0x06];
        msg.extend(list);
        msg.extend_from_slice(&[0x0e, 0, 0, 0]);
        let mut rec = vec![0x16, 0x03, 0x03];
        rec.extend_from_slice(&(msg.len() as u16).to_be_bytes());
        rec.extend(msg);
        let _ = c.write_all(&rec);
        hold(c, stop);
    });
    let (text, took, rss) = identify(s.port, &["-o", "json"]);
    bounded("malformed chain", &text, took, rss);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(v[0]["tls"].is_null(), "a failed handshake reports no TLS session: {v}");
}

#[test]
fn bad_targets_and_bounds_are_refused_with_a_clear_error() {
    let bin = env!("CARGO_BIN_EXE_portolan");
    for (args, want) in [
        (vec!["identify", "198.18.210.2"], "expected HOST:PORT"),
        (vec!["identify", "198.18.210.2:70000"], "is not 0-65535"),
        (vec!["identify", "198.18.210.2:53/sctp"], "is not tcp or udp"),
        (vec!["identify", "--version-timeout", "soon", "198.18.210.2:22"], "--version-timeout"),
        (vec!["identify", "--version-intensity", "12", "198.18.210.2:22"], "12"),
        (vec!["scan", "-sV", "--version-intensity", "10", "198.18.210.2"], "10"),
    ] {
        let o = Command::new(bin).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// A TLS server (scripts/tlsd.py) presenting `cert`; stopped when dropped.
struct TlsServer {
    child: std::process::Child,
    port: u16,
}

impl TlsServer {
    fn start(cert: &std::path::Path, key: &std::path::Path) -> TlsServer {
        use std::io::BufRead;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/tlsd.py");
        let mut child = Command::new("python3")
            .args([script, "--timeout", "60", "--cert"])
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg("127.0.0.1:0")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().rsplit(':').next().and_then(|p| p.parse().ok());
        let Some(port) = port else {
            let _ = child.kill();
            panic!("tlsd did not start with {}: {line:?}", cert.display());
        };
        TlsServer { child, port }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The certificate `openssl` made, with `from` replaced by `to` (same length) in its DER.
fn patched(
    dir: &portolan_testkit::TempDir,
    der: &[u8],
    name: &str,
    from: &[u8],
    to: &[u8],
) -> std::path::PathBuf {
    assert_eq!(from.len(), to.len());
    let at = der
        .windows(from.len())
        .position(|w| w == from)
        .unwrap_or_else(|| panic!("{name}: {from:?} not in the certificate"));
    let mut d = der.to_vec();
    d[at..at + to.len()].copy_from_slice(to);
    let path = dir.join(&format!("{name}.der"));
    std::fs::write(&path, &d).unwrap();
    let pem = dir.join(&format!("{name}.pem"));
    let o = Command::new("openssl")
        .args(["x509", "-inform", "der", "-in"])
        .arg(&path)
        .arg("-out")
        .arg(&pem)
        .output()
        .unwrap();
    assert!(o.status.success(), "{name}: openssl x509: {}", String::from_utf8_lossy(&o.stderr));
    pem
}

/// One hostile certificate must not end an identification or a scan (a certificate time with
/// hour 25 once aborted the release build, leaving a truncated -oX file): each malformed
/// field is reported, `identify` exits 0, and `scan -sV` writes valid XML.
#[test]
fn hostile_certificates_do_not_end_a_scan() {
    let test = "hostile_certificates_do_not_end_a_scan";
    if !portolan_testkit::require_tool(test, "openssl") || !portolan_testkit::require_tool(test, "xmllint") {
        return;
    }
    let dir = portolan_testkit::TempDir::new("hostile-cert");
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let o = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "30",
        ])
        .args(["-subj", "/CN=hostile.example", "-addext", "subjectAltName=DNS:hostile.example"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(o.status.success(), "openssl req: {}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new("openssl").args(["x509", "-outform", "der", "-in"]).arg(&cert).output().unwrap();
    let der = o.stdout;
    // the notBefore UTCTime: tag 0x17, length 13, YYMMDDhhmmssZ
    let at = der.windows(2).position(|w| w == [0x17, 13]).unwrap() + 2;
    let time = der[at..at + 13].to_vec();
    let with = |i: usize, two: &[u8]| {
        let mut t = time.clone();
        t[i..i + 2].copy_from_slice(two);
        t
    };
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        ("hour 25", time.clone(), with(6, b"25")),
        ("month 13", time.clone(), with(2, b"13")),
        ("minute 61", time.clone(), with(8, b"61")),
        ("letters in a time", time.clone(), with(4, b"x1")),
        (
            "escape bytes in a name",
            b"CN=hostile.example"[3..].to_vec(),
            b"\x1b]0;pwned\x07\xe2\x80\xaexx".to_vec(),
        ),
    ];
    for (name, from, to) in cases {
        let pem = patched(&dir, &der, &name.replace(' ', "-"), &from, &to);
        let server = TlsServer::start(&pem, &key);
        let (text, took, rss) = identify(server.port, &["-o", "json"]);
        bounded(name, &text, took, rss);
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}: {text}"));
        let tls = &v[0]["tls"];
        assert!(tls.is_object(), "{name}: the handshake is reported: {text}");
        if name.contains("a name") {
            // the issuer's name comes first in the DER, so that is the one changed
            assert!(
                tls["certificate"]["issuer"].as_str().is_some_and(|s| s.contains("\\x1b]0;pwned")),
                "{name}: {text}"
            );
        } else {
            assert!(
                tls["certificate_error"].as_str().is_some_and(|e| e.starts_with("malformed certificate")),
                "{name}: {text}"
            );
        }
        let xml = dir.join("scan.xml");
        let out = Command::new(env!("CARGO_BIN_EXE_portolan"))
            .args(["scan", "-sT", "-sV", "-Pn", "-n", "--version-timeout", "3s", "-p"])
            .arg(server.port.to_string())
            .arg("-oX")
            .arg(&xml)
            .arg("127.0.0.1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: scan -sV: {}", String::from_utf8_lossy(&out.stderr));
        let lint = Command::new("xmllint").arg("--noout").arg(&xml).output().unwrap();
        assert!(
            lint.status.success(),
            "{name}: -oX is not well-formed: {}",
            String::from_utf8_lossy(&lint.stderr)
        );
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(table.contains("open") && !table.bytes().any(|b| b == 0x1b), "{name}: {table}");
    }
}

/// A server that completes the handshake and hangs up without a byte — with a FIN or with a
/// reset — is `tcpwrapped`, as nmap names it (a TCP wrapper, or a proxy refusing the client).
#[test]
fn a_server_that_hangs_up_at_once_is_tcpwrapped() {
    if !need_time("a_server_that_hangs_up_at_once_is_tcpwrapped") {
        return;
    }
    let fin = Server::start(|c, _, _| drop(c));
    let rst = Server::start(|c, _, _| {
        use std::os::fd::AsRawFd;
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        // SAFETY: a valid socket and a linger struct of the size given.
        unsafe {
            libc::setsockopt(
                c.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        drop(c);
    });
    for (case, s) in [("FIN", &fin), ("reset", &rst)] {
        let (text, took, rss) = identify(s.port, &["-o", "json"]);
        bounded(case, &text, took, rss);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v[0]["service"]["name"], "tcpwrapped", "{case}: {text}");
    }
}
