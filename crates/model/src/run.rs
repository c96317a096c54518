use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Error, Host, Transport};

/// One scan (or one imported scan file): what was asked and what was found.
///
/// This is the document `-oJ` / `-o json` writes for `scan` and `import`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScanRun {
    /// Format version of this document ([`crate::FORMAT_VERSION`]).
    pub format_version: u32,
    /// The program that produced the data (`portolan`, or `nmap` for an import).
    pub scanner: String,
    /// Its version.
    pub scanner_version: String,
    /// Command line, as given.
    #[serde(default)]
    pub args: String,
    /// When the scan started.
    #[schemars(with = "String")]
    pub start: Timestamp,
    /// What was scanned, per scan type and transport.
    #[serde(default)]
    pub scan_info: Vec<ScanInfo>,
    /// Hosts, in the order they finished.
    #[serde(default)]
    pub hosts: Vec<Host>,
    /// Totals, once the run is over.
    pub stats: RunStats,
}

/// One scan type over one transport, with the ports it covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ScanInfo {
    /// Scan type.
    pub scan_type: ScanType,
    /// Transport.
    pub transport: Transport,
    /// Number of ports.
    pub num_services: u32,
    /// The ports, in nmap's range syntax (`1-1024,8080`).
    pub services: String,
}

/// nmap's scan types (the subset Portolan reads and writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScanType {
    /// TCP connect().
    Connect,
    /// TCP SYN (half-open).
    Syn,
    /// TCP ACK.
    Ack,
    /// UDP.
    Udp,
    /// TCP FIN.
    Fin,
    /// TCP NULL.
    Null,
    /// TCP Xmas.
    Xmas,
    /// TCP window.
    Window,
    /// TCP Maimon.
    Maimon,
    /// SCTP INIT.
    Sctpinit,
    /// SCTP COOKIE-ECHO.
    Sctpcookieecho,
    /// IP protocol scan.
    Ipproto,
    /// FTP bounce.
    Bounce,
}

impl ScanType {
    /// nmap's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ScanType::Connect => "connect",
            ScanType::Syn => "syn",
            ScanType::Ack => "ack",
            ScanType::Udp => "udp",
            ScanType::Fin => "fin",
            ScanType::Null => "null",
            ScanType::Xmas => "xmas",
            ScanType::Window => "window",
            ScanType::Maimon => "maimon",
            ScanType::Sctpinit => "sctpinit",
            ScanType::Sctpcookieecho => "sctpcookieecho",
            ScanType::Ipproto => "ipproto",
            ScanType::Bounce => "bounce",
        }
    }
}

impl fmt::Display for ScanType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ScanType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "connect" => ScanType::Connect,
            "syn" => ScanType::Syn,
            "ack" => ScanType::Ack,
            "udp" => ScanType::Udp,
            "fin" => ScanType::Fin,
            "null" => ScanType::Null,
            "xmas" => ScanType::Xmas,
            "window" => ScanType::Window,
            "maimon" => ScanType::Maimon,
            "sctpinit" => ScanType::Sctpinit,
            "sctpcookieecho" => ScanType::Sctpcookieecho,
            "ipproto" => ScanType::Ipproto,
            "bounce" => ScanType::Bounce,
            _ => {
                return Err(Error::UnknownValue {
                    what: "scan type",
                    given: s.to_string(),
                    expected: "connect, syn, ack, udp, fin, null, xmas, window, maimon, sctpinit, sctpcookieecho, ipproto, bounce",
                });
            }
        })
    }
}

/// Totals of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunStats {
    /// When the run ended; absent while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub finished: Option<Timestamp>,
    /// Seconds from start to end.
    #[serde(default)]
    pub elapsed_secs: f64,
    /// Hosts up.
    pub hosts_up: u32,
    /// Hosts down.
    pub hosts_down: u32,
    /// Hosts in all.
    pub hosts_total: u32,
    /// How the run ended.
    pub exit: RunExit,
    /// Error message when `exit` is `error` or `interrupted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunExit {
    /// Ran to the end.
    Success,
    /// Stopped by an error.
    Error,
    /// Stopped by the user (Ctrl-C); the results are partial.
    Interrupted,
}

impl ScanRun {
    /// An empty run by `scanner` that started at `start`.
    pub fn new(scanner: &str, scanner_version: &str, args: &str, start: Timestamp) -> ScanRun {
        ScanRun {
            format_version: crate::FORMAT_VERSION,
            scanner: scanner.to_string(),
            scanner_version: scanner_version.to_string(),
            args: args.to_string(),
            start,
            scan_info: Vec::new(),
            hosts: Vec::new(),
            stats: RunStats {
                finished: None,
                elapsed_secs: 0.0,
                hosts_up: 0,
                hosts_down: 0,
                hosts_total: 0,
                exit: RunExit::Success,
                error_message: None,
            },
        }
    }
}
