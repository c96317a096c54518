use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Error, ExtraPorts, Port, Reason};

/// One host and what was seen of its ports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Host {
    /// The address that was scanned or observed.
    pub address: IpAddr,
    /// MAC address, when it was learnt on the local segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The hardware vendor the MAC address's prefix names (nmap's `vendor`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_vendor: Option<String>,
    /// Names of the host: given by the user or found by reverse DNS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<Hostname>,
    /// Whether the host is up and why.
    pub status: HostStatus,
    /// Ports listed one by one, in ascending (transport, number) order.
    #[serde(default)]
    pub ports: Vec<Port>,
    /// Ports summarised by state (not listed in `ports`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_ports: Vec<ExtraPorts>,
    /// When work on this host began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub start_time: Option<Timestamp>,
    /// When work on this host ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub end_time: Option<Timestamp>,
    /// Smoothed round-trip time in microseconds, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srtt_us: Option<u64>,
}

impl Host {
    /// A host that is up for the given reason, with no ports yet.
    pub fn up(address: IpAddr, reason: Reason) -> Host {
        Host {
            address,
            mac: None,
            mac_vendor: None,
            hostnames: Vec::new(),
            status: HostStatus { state: HostState::Up, reason, reason_ttl: 0 },
            ports: Vec::new(),
            extra_ports: Vec::new(),
            start_time: None,
            end_time: None,
            srtt_us: None,
        }
    }

    /// Sorts ports by (transport, number), the order nmap prints them in.
    pub fn sort_ports(&mut self) {
        self.ports.sort_by_key(|p| (p.transport, p.number));
    }
}

/// A host name and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Hostname {
    /// The name.
    pub name: String,
    /// Where the name came from.
    pub kind: HostnameKind,
}

/// Where a host name came from (nmap's `user` / `PTR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HostnameKind {
    /// Given as a target by the user.
    User,
    /// Found by reverse DNS.
    Ptr,
}

/// Whether a host is up, and why that was decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HostStatus {
    /// The state.
    pub state: HostState,
    /// The evidence (`echo-reply`, `syn-ack`, `user-set`, ...).
    pub reason: Reason,
    /// TTL of the deciding packet; 0 when unknown.
    #[serde(default)]
    pub reason_ttl: u8,
}

/// nmap's host states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HostState {
    /// Answered discovery or a port probe.
    Up,
    /// Did not answer.
    Down,
    /// Not known.
    Unknown,
    /// Not scanned.
    Skipped,
}

impl HostState {
    /// nmap's name.
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Up => "up",
            HostState::Down => "down",
            HostState::Unknown => "unknown",
            HostState::Skipped => "skipped",
        }
    }
}

impl fmt::Display for HostState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HostState {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "up" => HostState::Up,
            "down" => HostState::Down,
            "unknown" => HostState::Unknown,
            "skipped" => HostState::Skipped,
            _ => {
                return Err(Error::UnknownValue {
                    what: "host state",
                    given: s.to_string(),
                    expected: "up, down, unknown, skipped",
                });
            }
        })
    }
}
