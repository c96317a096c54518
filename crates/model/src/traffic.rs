//! Traffic: what packet captures, flow records and logs say happened on the wire, and what the
//! detectors conclude from it.
//!
//! Every traffic source (a pcap, Zeek's conn.log, a firewall's LOG lines, sshd's log) becomes a
//! stream of [`Event`]s: one per connection attempt, connection, logged packet or login
//! failure, with where it was read. Detectors turn events into [`Detection`]s.

use std::fmt;
use std::net::IpAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Severity;

/// TCP flag bits, as in the TCP header.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
}

/// The IP protocol of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
    /// ICMP (IPv4).
    Icmp,
    /// ICMPv6.
    Icmpv6,
    /// Anything else.
    Other,
}

impl Proto {
    /// From the IP header's protocol number.
    pub fn from_number(n: u8) -> Proto {
        match n {
            6 => Proto::Tcp,
            17 => Proto::Udp,
            132 => Proto::Sctp,
            1 => Proto::Icmp,
            58 => Proto::Icmpv6,
            _ => Proto::Other,
        }
    }

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
            Proto::Icmp => "icmp",
            Proto::Icmpv6 => "icmpv6",
            Proto::Other => "other",
        }
    }

    /// Whether the protocol has ports.
    pub fn has_ports(self) -> bool {
        matches!(self, Proto::Tcp | Proto::Udp | Proto::Sctp)
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a connection attempt ended, as far as the source can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Nobody answered (a SYN with no reply; a UDP datagram with no reply; Zeek's `S0`).
    Attempt,
    /// Refused: a reset or an ICMP unreachable came back (Zeek's `REJ`).
    Rejected,
    /// The port answered (SYN-ACK) but the client reset before completing the handshake: a
    /// half-open probe, as a SYN scan makes.
    HalfOpen,
    /// The handshake completed and the connection closed with no payload either way (a connect
    /// scan of an open port).
    Accepted,
    /// A connection that carried data.
    Session,
    /// A packet a firewall rule logged; the log does not say what followed.
    Logged,
    /// A failed login in an authentication log.
    AuthFailure,
}

impl Outcome {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Attempt => "attempt",
            Outcome::Rejected => "rejected",
            Outcome::HalfOpen => "half_open",
            Outcome::Accepted => "accepted",
            Outcome::Session => "session",
            Outcome::Logged => "logged",
            Outcome::AuthFailure => "auth_failure",
        }
    }

    /// Whether the event is a probe that found out something without using a service: an
    /// unanswered or refused attempt, a half-open probe, a handshake with no payload, or a
    /// packet the firewall logged.
    pub fn is_probe(self) -> bool {
        matches!(
            self,
            Outcome::Attempt | Outcome::Rejected | Outcome::HalfOpen | Outcome::Accepted | Outcome::Logged
        )
    }
}

/// The header fields of the first packet of an event, which tell scanners apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Shape {
    /// TCP flags of the first packet (see [`tcp_flags`]); 0 for other protocols.
    pub flags: u8,
    /// IP time to live (hop limit) as received.
    pub ttl: u8,
    /// IPv4 identification (absent for IPv6).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_id: Option<u16>,
    /// TCP window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<u16>,
    /// TCP sequence number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u32>,
    /// Length of the TCP options in bytes (absent when the source does not show them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options_len: Option<u8>,
    /// The MSS option's value, if the options hold one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mss: Option<u16>,
}

/// Where an event was read: a file (by index into the run's sources) and a line or packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Evidence {
    /// Index of the source in the run's list of inputs.
    pub source: u32,
    /// Line (from 1) in a log, or packet (from 1) in a capture.
    pub at: u64,
}

/// One thing a traffic source saw: a connection attempt, a connection, a logged packet or a
/// failed login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    /// When it started, in microseconds: since the Unix epoch, or since boot for kernel logs
    /// that carry no wall time (`clock` says which).
    pub ts_us: i64,
    /// How long it lasted, in microseconds (0 for single packets and log lines).
    pub duration_us: i64,
    /// Which clock `ts_us` is on.
    pub clock: Clock,
    /// Who started it.
    pub src: IpAddr,
    /// Whom it was for (absent when a log names only the source, as sshd's does).
    pub dst: Option<IpAddr>,
    /// IP protocol.
    pub proto: Proto,
    /// Source port (0 where the protocol has none).
    pub sport: u16,
    /// Destination port (for ICMP, the type).
    pub dport: u16,
    /// How it ended.
    pub outcome: Outcome,
    /// Bytes of payload, both directions.
    pub bytes: u64,
    /// The first packet's header fields, where the source shows them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shape: Option<Shape>,
    /// Where it was read.
    pub evidence: Evidence,
}

/// The clock of an event's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Clock {
    /// Wall time (Unix epoch).
    Wall,
    /// Time since the logging machine booted (`dmesg` lines).
    Boot,
}

/// The six kinds of detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DetectionKind {
    /// Many ports of one host.
    VerticalScan,
    /// Few ports across many hosts.
    HorizontalSweep,
    /// A scan whose probes are spread out in time (on average a second or more apart).
    SlowScan,
    /// Many sources, one pattern of targets.
    DistributedScan,
    /// Many failed logins, or many short sessions, to an authentication service.
    BruteForce,
    /// A host answers on a port the baseline does not know.
    NewService,
}

impl DetectionKind {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DetectionKind::VerticalScan => "vertical_scan",
            DetectionKind::HorizontalSweep => "horizontal_sweep",
            DetectionKind::SlowScan => "slow_scan",
            DetectionKind::DistributedScan => "distributed_scan",
            DetectionKind::BruteForce => "brute_force",
            DetectionKind::NewService => "new_service",
        }
    }
}

impl fmt::Display for DetectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scan technique the packets show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScanTechnique {
    /// Half-open SYN probes.
    Syn,
    /// Full TCP handshakes.
    Connect,
    /// FIN only.
    Fin,
    /// No flags.
    Null,
    /// FIN, PSH and URG.
    Xmas,
    /// ACK only.
    Ack,
    /// UDP datagrams.
    Udp,
}

impl ScanTechnique {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ScanTechnique::Syn => "syn",
            ScanTechnique::Connect => "connect",
            ScanTechnique::Fin => "fin",
            ScanTechnique::Null => "null",
            ScanTechnique::Xmas => "xmas",
            ScanTechnique::Ack => "ack",
            ScanTechnique::Udp => "udp",
        }
    }
}

/// The scanner that made the packets, from their fingerprints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tool {
    /// nmap's raw SYN probes (window 1024 with a lone MSS option).
    Nmap,
    /// masscan (IP ID from destination, port and sequence; TTL 255).
    Masscan,
    /// ZMap (IP ID 54321).
    Zmap,
    /// No fingerprint matched, or the source does not show packet headers.
    Unknown,
}

impl Tool {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tool::Nmap => "nmap",
            Tool::Masscan => "masscan",
            Tool::Zmap => "zmap",
            Tool::Unknown => "unknown",
        }
    }
}

/// What a detector concluded: an attack (or a known scanner of one's own) with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Detection {
    /// Which detector.
    pub kind: DetectionKind,
    /// The source (absent for a distributed scan).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src: Option<IpAddr>,
    /// The sources of a distributed scan (a sample, at most 32).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub srcs: Vec<IpAddr>,
    /// Targets reached (a sample, at most 32, lowest first).
    pub targets: Vec<IpAddr>,
    /// How many distinct targets in all.
    pub target_count: u64,
    /// Ports touched, as ranges (`22,80,443`, `1-1024`).
    pub ports: String,
    /// How many distinct ports in all.
    pub port_count: u64,
    /// Transport.
    pub transport: Proto,
    /// The scan technique, where the packets show it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan_type: Option<ScanTechnique>,
    /// The tool, from the packets' fingerprints.
    pub tool: Tool,
    /// First event, RFC 3339 (or `boot+SECONDS` for kernel logs without wall time).
    pub first_seen: String,
    /// Last event, same form.
    pub last_seen: String,
    /// Events that make up the detection.
    pub events: u64,
    /// How bad: grows with the reach of the targets and the risk of the ports touched.
    pub severity: Severity,
    /// MITRE ATT&CK techniques.
    pub attack: Vec<String>,
    /// Where the evidence is: `file:line` or `file#packet`, a sample of at most 8.
    pub evidence: Vec<String>,
    /// The source is one the user listed as a known scanner of their own.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub allowed: bool,
    /// Still going (`watch --follow` reports a detection when it starts, with `open: true`,
    /// and again, complete, when its source has been quiet for a window).
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub open: bool,
    /// One sentence for people.
    pub summary: String,
}

/// One input of a `watch` run and what reading it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InputSummary {
    /// The path as given (`-` for standard input).
    pub path: String,
    /// The format read: `pcap` (pcap or pcapng), `zeek` (conn.log) or `log` (kernel LOG lines
    /// and sshd).
    pub format: String,
    /// Lines or packets read.
    pub records: u64,
    /// Events produced (connections, logged packets, failed logins).
    pub events: u64,
    /// Records skipped as damaged or too long.
    pub skipped: u64,
    /// The first skipped record's place and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_skip: Option<String>,
    /// Packets that are not IP or whose headers are cut off.
    pub undecoded: u64,
    /// Connections ended early because the flow table was full.
    pub evicted_flows: u64,
    /// Why reading stopped early (a damaged or truncated file), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `portolan watch -o json`: what was read and what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WatchReport {
    /// Version of this document's format.
    pub format_version: u32,
    /// The inputs, in the order given.
    pub inputs: Vec<InputSummary>,
    /// Sources no longer tracked because the cap was reached (counted, never silent).
    pub evicted_sources: u64,
    /// The detections, in order of first event.
    pub detections: Vec<Detection>,
}
