//! Portolan's identification judge: which application really answers on a port.
//!
//! For each target (address, port, transport) the [`engine`] waits for a banner, then sends
//! probes chosen by likelihood for the port — the probes whose data names the port first, then
//! those for the service the registry and the knowledge base expect there, then the rest up to
//! `--version-intensity` — and matches every answer against the matchers of
//! `data/probes.toml` (our own data, format in docs/identify.md) and the built-in codecs of
//! [`proto`]. TLS is inspected with rustls accepting any certificate ([`tls`]), and the
//! service inside the tunnel is identified in turn. Time and bytes are bounded per port, and
//! every string taken from a server is cleaned of control characters ([`clean`]).
//!
//! The [`verdict`] then weighs what answered against what the port promises: "wrong
//! application on port", "cleartext service", and certificate findings.
//!
//! ```no_run
//! use std::time::Duration;
//! use portolan_identify::{Options, Target, identify};
//! use portolan_model::Transport;
//!
//! let targets = vec![Target::new("127.0.0.1:22".parse().unwrap(), Transport::Tcp)];
//! let results = identify(&targets, &Options { timeout: Duration::from_secs(3), ..Options::default() }).unwrap();
//! if let Some(s) = &results[0].service {
//!     println!("{} {:?} {:?}", s.name, s.product, s.version);
//! }
//! ```

pub mod ber;
pub mod data;
pub mod engine;
mod error;
mod http;
pub mod proto;
pub mod tls;
pub mod verdict;
pub mod x509;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use jiff::Timestamp;
use portolan_model::{Finding, Service, Transport};
use serde::Serialize;

pub use error::{Error, Result};
pub use http::HttpInfo;
pub use tls::TlsInfo;
pub use verdict::Expected;

/// One port to identify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Address and port.
    pub addr: SocketAddr,
    /// Transport (TCP or UDP).
    pub transport: Transport,
    /// The host name the user gave, for TLS SNI and the HTTP Host header.
    pub name: Option<String>,
}

impl Target {
    /// A target without a host name.
    pub fn new(addr: SocketAddr, transport: Transport) -> Target {
        Target { addr, transport, name: None }
    }
}

/// Bounds and choices of one identification run.
#[derive(Debug, Clone)]
pub struct Options {
    /// 0 (only the likeliest probes) to 9 (every probe); nmap's `--version-intensity`.
    pub intensity: u8,
    /// Time budget of one port, all probes included (`--version-timeout`).
    pub timeout: Duration,
    /// Connect timeout of one connection.
    pub connect_timeout: Duration,
    /// How long to wait for a service to speak first where the port does not say.
    pub banner_wait: Duration,
    /// After data arrives, how long a pause ends an answer.
    pub idle: Duration,
    /// Bytes read from one answer at most (the rest is never read).
    pub max_bytes: usize,
    /// Ports identified at once.
    pub parallelism: usize,
    /// Upgrade STARTTLS-capable sessions (SMTP, IMAP, POP3, FTP) to inspect their certificate.
    pub starttls: bool,
    /// The time certificates are judged at (tests); `None`: now.
    pub now: Option<Timestamp>,
    /// Set when the run must stop (Ctrl-C): ports not yet identified end as
    /// [`Status::Interrupted`].
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            intensity: 7,
            timeout: Duration::from_secs(6),
            connect_timeout: Duration::from_secs(2),
            banner_wait: Duration::from_millis(1500),
            idle: Duration::from_millis(300),
            max_bytes: 16 * 1024,
            parallelism: 256,
            starttls: true,
            now: None,
            stop: None,
        }
    }
}

/// How far identification got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// A matcher named the service.
    Identified,
    /// The service answered, but nothing matched.
    Unrecognized,
    /// Connected, but the service never answered.
    Silent,
    /// The connection was refused (TCP) or a port unreachable came back (UDP).
    Closed,
    /// No connection could be made in time, or no UDP answer came.
    NoResponse,
    /// The run was stopped (Ctrl-C) before this port was identified.
    Interrupted,
}

impl Status {
    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Identified => "identified",
            Status::Unrecognized => "unrecognized",
            Status::Silent => "silent",
            Status::Closed => "closed",
            Status::NoResponse => "no-response",
            Status::Interrupted => "interrupted",
        }
    }
}

/// One element of `portolan identify -o json`: the target as the user wrote it, and what was
/// found there.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Row {
    /// `HOST:PORT` as given.
    pub target: String,
    /// What identification found.
    #[serde(flatten)]
    pub result: Identified,
}

/// What identification found on one port.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Identified {
    /// Address.
    pub address: IpAddr,
    /// Port.
    pub port: u16,
    /// Transport.
    pub transport: Transport,
    /// How far it got.
    pub status: Status,
    /// The service (method `probed`, or `table` when silence is all there was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
    /// What the port promises (registry and knowledge base).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<Expected>,
    /// The TLS session, implicit or by STARTTLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsInfo>,
    /// HTTP status, server, title and redirect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpInfo>,
    /// The first bytes the service sent, escaped (control bytes as `\xNN`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub banner: Option<String>,
    /// Probes sent, in order.
    pub probes: Vec<String>,
    /// The verdict's findings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// The service answered a question that needs authentication where authentication is
    /// enabled (Redis INFO, an MQTT `$SYS` subscription, memcached, VNC security type None,
    /// SNMP community `public`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unauthenticated: bool,
    /// Time spent on the port.
    pub elapsed_ms: u64,
    /// Why identification stopped short, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Identifies every target (blocking: runs its own runtime).
pub fn identify(targets: &[Target], opts: &Options) -> Result<Vec<Identified>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(e.to_string()))?;
    rt.block_on(engine::run(targets, opts))
}

/// Untrusted text made terminal-safe by the model's one rule ([`portolan_model::text`]), at
/// most 512 characters.
pub fn clean(s: &str) -> String {
    portolan_model::text::terminal_bounded(s, 512)
}

/// Raw bytes as escaped text (valid UTF-8 kept, everything else `\xNN`), at most `max` bytes.
pub fn escape_bytes(b: &[u8], max: usize) -> String {
    portolan_model::text::bytes(b, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_removes_every_control() {
        assert_eq!(clean("a\x1b[2Jb\u{202e}c\x7f"), "a\\x1b[2Jb\\u{202e}c\\x7f");
        assert_eq!(escape_bytes(b"ok\xff\x00\r\n", 64), "ok\\xff\\x00\\r\\n");
        assert_eq!(clean(&"x".repeat(600)).chars().count(), 513);
    }
}
