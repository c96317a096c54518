use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Error, Reason, Service};

/// A transport protocol that carries port numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Transmission Control Protocol.
    Tcp,
    /// User Datagram Protocol.
    Udp,
    /// Stream Control Transmission Protocol.
    Sctp,
    /// Datagram Congestion Control Protocol.
    Dccp,
}

impl Transport {
    /// All transports, in IANA's order.
    pub const ALL: [Transport; 4] = [Transport::Tcp, Transport::Udp, Transport::Sctp, Transport::Dccp];

    /// The lowercase name (`tcp`, `udp`, `sctp`, `dccp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
            Transport::Sctp => "sctp",
            Transport::Dccp => "dccp",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Transport {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Transport::Tcp),
            "udp" => Ok(Transport::Udp),
            "sctp" => Ok(Transport::Sctp),
            "dccp" => Ok(Transport::Dccp),
            _ => Err(Error::UnknownTransport { given: s.to_string() }),
        }
    }
}

/// A port state, exactly as nmap defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PortState {
    /// An application accepts connections or datagrams on the port.
    #[serde(rename = "open")]
    Open,
    /// The port is reachable but no application listens (e.g. a TCP reset came back).
    #[serde(rename = "closed")]
    Closed,
    /// Something (usually a firewall) prevents telling whether the port is open.
    #[serde(rename = "filtered")]
    Filtered,
    /// Reachable, but open or closed cannot be told (ACK scan).
    #[serde(rename = "unfiltered")]
    Unfiltered,
    /// Open or filtered: no answer where an open port may give none (UDP).
    #[serde(rename = "open|filtered")]
    OpenFiltered,
    /// Closed or filtered (IP ID idle scan).
    #[serde(rename = "closed|filtered")]
    ClosedFiltered,
}

impl PortState {
    /// The name nmap prints.
    pub fn as_str(self) -> &'static str {
        match self {
            PortState::Open => "open",
            PortState::Closed => "closed",
            PortState::Filtered => "filtered",
            PortState::Unfiltered => "unfiltered",
            PortState::OpenFiltered => "open|filtered",
            PortState::ClosedFiltered => "closed|filtered",
        }
    }

    /// True for `open` and `open|filtered`: states in which a service may answer.
    pub fn maybe_open(self) -> bool {
        matches!(self, PortState::Open | PortState::OpenFiltered)
    }
}

impl fmt::Display for PortState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PortState {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "open" => PortState::Open,
            "closed" => PortState::Closed,
            "filtered" => PortState::Filtered,
            "unfiltered" => PortState::Unfiltered,
            "open|filtered" => PortState::OpenFiltered,
            "closed|filtered" => PortState::ClosedFiltered,
            _ => return Err(Error::UnknownPortState { given: s.to_string() }),
        })
    }
}

/// IANA's three port ranges (RFC 6335, section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RangeClass {
    /// System ports, 0-1023.
    WellKnown,
    /// User ports, 1024-49151.
    Registered,
    /// Dynamic and/or private ports, 49152-65535.
    Dynamic,
}

impl RangeClass {
    /// The class of a port number.
    pub fn of(port: u16) -> RangeClass {
        match port {
            0..=1023 => RangeClass::WellKnown,
            1024..=49151 => RangeClass::Registered,
            _ => RangeClass::Dynamic,
        }
    }

    /// The class's name with its bounds, for people.
    pub fn describe(self) -> &'static str {
        match self {
            RangeClass::WellKnown => "well-known (0-1023)",
            RangeClass::Registered => "registered (1024-49151)",
            RangeClass::Dynamic => "dynamic/private (49152-65535)",
        }
    }

    /// The short name used in JSON (`well-known`, `registered`, `dynamic`).
    pub fn as_str(self) -> &'static str {
        match self {
            RangeClass::WellKnown => "well-known",
            RangeClass::Registered => "registered",
            RangeClass::Dynamic => "dynamic",
        }
    }
}

impl fmt::Display for RangeClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Sorted port numbers in nmap's range syntax: `1-21,23,25-79` (as in `<scaninfo services>`
/// and `<extrareasons ports>`).
pub fn port_ranges(sorted: &[u16]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end.wrapping_add(1) && sorted[i + 1] > end {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}-{end}"));
        }
        i += 1;
    }
    out
}

/// The ranges of a [`port_ranges`] string (`1-21,23` → `[(1, 21), (23, 23)]`); parts that are
/// not ports or ranges are skipped.
pub fn port_ranges_parse(text: &str) -> Vec<(u16, u16)> {
    text.split(',')
        .filter_map(|part| {
            let part = part.trim();
            match part.split_once('-') {
                Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
                None => part.parse().ok().map(|n| (n, n)),
            }
        })
        .filter(|(lo, hi)| lo <= hi)
        .collect()
}

/// What was seen of one port of one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Port {
    /// Port number: `port` in JSON, as in every other output (`number` is still read, from
    /// documents written before).
    #[serde(rename = "port", alias = "number")]
    pub number: u16,
    /// Transport.
    pub transport: Transport,
    /// nmap port state.
    pub state: PortState,
    /// Why the state was decided (`syn-ack`, `conn-refused`, `no-response`, ...).
    pub reason: Reason,
    /// TTL of the packet that decided, 0 when unknown (connect scans).
    #[serde(default)]
    pub reason_ttl: u8,
    /// Service on the port: from the registry (`method: table`) or identified (`probed`).
    // shared: a scan of every port gives most of them the one `unknown` table entry
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Arc<Service>>,
}

/// Ports of one state that were summarised rather than listed (nmap's `<extraports>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExtraPorts {
    /// The state they share.
    pub state: PortState,
    /// How many ports.
    pub count: u32,
    /// Breakdown by reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<ExtraReason>,
}

/// One reason within [`ExtraPorts`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExtraReason {
    /// The reason.
    pub reason: Reason,
    /// How many ports had it.
    pub count: u32,
    /// Transport of those ports, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
    /// The ports, in nmap's range syntax (`1-21,23-79`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_class_bounds() {
        assert_eq!(RangeClass::of(0), RangeClass::WellKnown);
        assert_eq!(RangeClass::of(1023), RangeClass::WellKnown);
        assert_eq!(RangeClass::of(1024), RangeClass::Registered);
        assert_eq!(RangeClass::of(49151), RangeClass::Registered);
        assert_eq!(RangeClass::of(49152), RangeClass::Dynamic);
        assert_eq!(RangeClass::of(65535), RangeClass::Dynamic);
    }

    #[test]
    fn states_round_trip_through_text_and_json() {
        for s in [
            PortState::Open,
            PortState::Closed,
            PortState::Filtered,
            PortState::Unfiltered,
            PortState::OpenFiltered,
            PortState::ClosedFiltered,
        ] {
            assert_eq!(s.as_str().parse::<PortState>().unwrap(), s);
            let j = serde_json::to_string(&s).unwrap();
            assert_eq!(j, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<PortState>(&j).unwrap(), s);
        }
        assert!("opened".parse::<PortState>().is_err());
    }

    #[test]
    fn ranges_compress_runs() {
        assert_eq!(port_ranges(&[1, 2, 3, 5, 7, 8, 65535]), "1-3,5,7-8,65535");
        assert_eq!(port_ranges(&[]), "");
        assert_eq!(port_ranges(&[0]), "0");
    }

    #[test]
    fn transports_parse_case_insensitively() {
        assert_eq!("TCP".parse::<Transport>().unwrap(), Transport::Tcp);
        assert_eq!("dccp".parse::<Transport>().unwrap(), Transport::Dccp);
        let e = "xyz".parse::<Transport>().unwrap_err();
        assert!(e.to_string().contains("xyz"));
    }
}
