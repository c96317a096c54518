//! Alerts: a detection as JSON handed to a command's standard input (`--alert-exec`) or POSTed
//! to an HTTP endpoint (`--alert-url`), on a worker thread of its own so that a slow hook never
//! holds up detection. Each delivery is bounded in time; a queue that fills (a hook slower than
//! the detections) drops and counts.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long one delivery may take.
pub const DELIVERY: Duration = Duration::from_secs(10);

/// Where alerts go.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// Commands run with `sh -c`, the detection on standard input.
    pub exec: Vec<String>,
    /// `http://HOST:PORT/PATH` endpoints that get a POST of the detection.
    pub urls: Vec<String>,
}

/// Why a URL is not one alerts can be posted to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url:?} is not an http://HOST[:PORT]/PATH address (https is not supported; use a local relay)")]
pub struct BadUrl {
    /// The URL given.
    pub url: String,
}

/// A parsed `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    host: String,
    port: u16,
    path: String,
}

impl HttpUrl {
    /// Parses `http://HOST[:PORT][/PATH]` (HOST may be `[v6]`).
    pub fn parse(url: &str) -> Result<HttpUrl, BadUrl> {
        let bad = || BadUrl { url: url.to_string() };
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, p) = v6.split_once(']').ok_or_else(bad)?;
            (h, p.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad())?,
            None => 80,
        };
        if host.is_empty() || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad());
        }
        Ok(HttpUrl { host: host.to_string(), port, path: path.to_string() })
    }
}

/// Posts `body` as JSON; the HTTP status code.
pub fn post(url: &HttpUrl, body: &[u8], timeout: Duration) -> io::Result<u16> {
    let addr = (url.host.as_str(), url.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{} does not resolve", url.host)))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let host = if url.host.contains(':') { format!("[{}]", url.host) } else { url.host.clone() };
    write!(
        s,
        "POST {} HTTP/1.1\r\nHost: {host}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: portolan\r\n\r\n",
        url.path,
        url.port,
        body.len()
    )?;
    s.write_all(body)?;
    let mut head = [0u8; 64];
    let n = s.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "the answer is not HTTP"))
}

/// Runs `cmd` with `sh -c`, `body` on its standard input; killed after `timeout`.
pub fn exec(cmd: &str, body: &[u8], timeout: Duration) -> io::Result<std::process::ExitStatus> {
    let mut child =
        Command::new("sh").arg("-c").arg(cmd).stdin(Stdio::piped()).stdout(Stdio::null()).spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        // a hook that does not read its input gets EPIPE: not an error of ours
        let _ = stdin.write_all(body);
    }
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if t0.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("did not finish in {} s", timeout.as_secs()),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The alert worker: deliveries in order on a thread of its own.
pub struct Alerts {
    tx: Option<mpsc::SyncSender<Vec<u8>>>,
    worker: Option<std::thread::JoinHandle<()>>,
    /// Alerts dropped because the queue was full.
    pub dropped: u64,
}

impl Alerts {
    /// Starts the worker; `failed` hears each delivery that did not succeed.
    pub fn start(targets: Targets, failed: impl Fn(String) + Send + 'static) -> Result<Alerts, BadUrl> {
        let urls = targets
            .urls
            .iter()
            .map(|u| HttpUrl::parse(u).map(|p| (u.clone(), p)))
            .collect::<Result<Vec<_>, _>>()?;
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(1024);
        let worker = std::thread::spawn(move || {
            for body in rx {
                for cmd in &targets.exec {
                    match exec(cmd, &body, DELIVERY) {
                        Ok(s) if s.success() => {}
                        Ok(s) => failed(format!("alert command {cmd:?} exited with {s}")),
                        Err(e) => failed(format!("alert command {cmd:?}: {e}")),
                    }
                }
                for (text, url) in &urls {
                    match post(url, &body, DELIVERY) {
                        Ok(code) if (200..300).contains(&code) => {}
                        Ok(code) => failed(format!("alert to {text}: HTTP {code}")),
                        Err(e) => failed(format!("alert to {text}: {e}")),
                    }
                }
            }
        });
        Ok(Alerts { tx: Some(tx), worker: Some(worker), dropped: 0 })
    }

    /// Queues one alert (a detection's JSON).
    pub fn send(&mut self, body: Vec<u8>) {
        if let Some(tx) = &self.tx
            && tx.try_send(body).is_err()
        {
            self.dropped += 1;
        }
    }

    /// Delivers what is queued, then stops the worker.
    pub fn finish(mut self) -> u64 {
        self.tx = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = HttpUrl::parse("http://127.0.0.1:8080/hook").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("127.0.0.1", 8080, "/hook"));
        let v = HttpUrl::parse("http://[::1]/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((v.host.as_str(), v.port), ("::1", 80));
        for bad in ["https://x/", "http://", "http://h:notaport/", "ftp://x", "http://h/a b"] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
