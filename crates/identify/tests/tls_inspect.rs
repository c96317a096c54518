//! TLS inspection against a real TLS server (`openssl s_server` on loopback): the session's
//! facts, the certificate's fields, the service inside the tunnel, and the certificate
//! findings judged at chosen times.

#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use portolan_identify::{Options, Status, Target, identify};
use portolan_model::{Transport, Tunnel};
use portolan_testkit::{TempDir, require_tool};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A self-signed certificate valid for `days`, served by `openssl s_server -www`.
fn serve(dir: &TempDir, days: u32) -> (Server, SocketAddr) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let o = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-days", &days.to_string(), "-subj", "/CN=inspect.example/O=Portolan test"])
        .args(["-addext", "subjectAltName=DNS:inspect.example,DNS:www.inspect.example,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // a free port can be taken by another test between our look and s_server's bind: then
    // s_server exits, and a connect may even reach the other test's listener. Ready means
    // connectable with s_server still running; otherwise another port.
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("openssl")
            .args(["s_server", "-www", "-quiet", "-accept", &format!("127.0.0.1:{port}")])
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = Server(child);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let t0 = Instant::now();
        loop {
            if server.0.try_wait().unwrap().is_some() {
                break;
            }
            if TcpStream::connect(addr).is_ok() {
                std::thread::sleep(Duration::from_millis(100));
                if server.0.try_wait().unwrap().is_none() {
                    return (server, addr);
                }
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "s_server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("s_server could not listen on a free port in 5 tries");
}

fn rules(r: &portolan_identify::Identified) -> Vec<&str> {
    r.findings.iter().map(|f| f.rule.as_str()).collect()
}

#[test]
fn inspects_the_session_and_the_certificate_and_names_what_is_inside() {
    if !require_tool("inspects_the_session_and_the_certificate_and_names_what_is_inside", "openssl") {
        return;
    }
    let dir = TempDir::new("tls-inspect");
    let (_server, addr) = serve(&dir, 20);
    // a random port promises nothing: TLS is found in the fallback
    let t = vec![Target::new(addr, Transport::Tcp)];
    let now = Timestamp::now();
    let r = &identify(&t, &Options { now: Some(now), ..Options::default() }).unwrap()[0];
    assert_eq!(r.status, Status::Identified, "{r:?}");
    let s = r.service.as_ref().unwrap();
    assert_eq!((s.name.as_str(), s.tunnel), ("http", Some(Tunnel::Ssl)), "{r:?}");
    let tls = r.tls.as_ref().unwrap();
    assert!(tls.version.starts_with("TLSv1."), "{tls:?}");
    assert!(!tls.cipher.is_empty());
    let c = tls.certificate.as_ref().unwrap();
    assert_eq!(c.common_name.as_deref(), Some("inspect.example"));
    assert!(c.subject.contains("O=Portolan test"), "{}", c.subject);
    assert_eq!(c.sans, ["DNS:inspect.example", "DNS:www.inspect.example", "IP:127.0.0.1"]);
    assert!(c.self_signed);
    assert_eq!(c.key_type, "ec");
    assert!(matches!(tls.expires_in_days, Some(19 | 20)), "{tls:?}");
    let got = rules(r);
    assert!(got.contains(&"identify.cert-expiring"), "{got:?}");
    assert!(got.contains(&"identify.cert-self-signed"), "{got:?}");
    assert!(!got.contains(&"identify.cert-expired"), "{got:?}");

    // the same certificate judged 40 days later has expired
    let later = now.checked_add(SignedDuration::from_hours(40 * 24)).unwrap();
    let r = &identify(&t, &Options { now: Some(later), ..Options::default() }).unwrap()[0];
    let got = rules(r);
    assert!(got.contains(&"identify.cert-expired"), "{got:?}");
    assert!(r.tls.as_ref().unwrap().expired);
    let f = r.findings.iter().find(|f| f.rule == "identify.cert-expired").unwrap();
    assert_eq!(f.severity, portolan_model::Severity::Medium);
    assert!(f.evidence.iter().any(|e| e.contains("CN=inspect.example")), "{:?}", f.evidence);
}

/// A minimal SMTP server that offers STARTTLS and switches to TLS (Python's ssl module).
const SMTP_STARTTLS: &str = r#"
import socket, ssl, sys
cert, key, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(8)
srv.settimeout(30)
for _ in range(8):
    try:
        c, _ = srv.accept()
    except socket.timeout:
        break
    c.settimeout(5)
    try:
        c.sendall(b"220 mx.inspect.example ESMTP Postfix (Debian/GNU)\r\n")
        f = c.makefile("rb")
        while True:
            line = f.readline()
            if not line or line.upper().startswith(b"QUIT"):
                break
            if line.upper().startswith(b"EHLO"):
                c.sendall(b"250-mx.inspect.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
            elif line.upper().startswith(b"STARTTLS"):
                c.sendall(b"220 2.0.0 Ready to start TLS\r\n")
                t = ctx.wrap_socket(c, server_side=True)
                t.recv(1)
                break
            else:
                c.sendall(b"502 5.5.2 Error\r\n")
    except Exception:
        pass
    finally:
        c.close()
"#;

#[test]
fn smtp_starttls_is_upgraded_to_read_the_certificate() {
    if !require_tool("smtp_starttls_is_upgraded_to_read_the_certificate", "openssl")
        || !require_tool("smtp_starttls_is_upgraded_to_read_the_certificate", "python3")
    {
        return;
    }
    let dir = TempDir::new("tls-starttls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let o = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "90",
        ])
        .args(["-subj", "/CN=mx.inspect.example"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(o.status.success());
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("python3")
        .args(["-c", SMTP_STARTTLS])
        .arg(&cert)
        .arg(&key)
        .arg(port.to_string())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Server(child);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let t0 = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "the SMTP server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = &identify(&[Target::new(addr, Transport::Tcp)], &Options::default()).unwrap()[0];
    let s = r.service.as_ref().unwrap();
    assert_eq!((s.name.as_str(), s.product.as_deref()), ("smtp", Some("Postfix smtpd")), "{r:?}");
    assert_eq!(s.tunnel, None, "STARTTLS is not a tunnel");
    let tls = r.tls.as_ref().expect("the STARTTLS upgrade shows the certificate");
    assert_eq!(tls.starttls.as_deref(), Some("STARTTLS"));
    assert_eq!(tls.certificate.as_ref().unwrap().common_name.as_deref(), Some("mx.inspect.example"));
    // upgraded: no cleartext finding, but the self-signed certificate is one
    let rules = rules(r);
    assert!(!rules.contains(&"identify.cleartext"), "{rules:?}");
    assert!(rules.contains(&"identify.cert-self-signed"), "{rules:?}");
}
