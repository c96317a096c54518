//! Portolan's security knowledge base: the services most often exposed, what they risk, how to
//! harden them and what to use instead — and the judgement that weighs a service's risk by how
//! widely it is reachable.
//!
//! The data lives in `data/kb/*.toml` (format: `docs/knowledge-base.md`). `build.rs` validates
//! it and compiles it into static tables, so a bad entry fails the build and a lookup costs
//! nothing at start-up.
//!
//! ```
//! use portolan_kb::{self as kb, Reach};
//! use portolan_model::{Severity, Transport};
//!
//! let telnet = kb::for_port(23, Transport::Tcp).next().unwrap();
//! assert_eq!(telnet.id, "telnet");
//! assert_eq!(telnet.risk(Reach::AllInterfaces), Severity::Critical);
//! assert_eq!(telnet.risk(Reach::Loopback), Severity::Info);
//! ```

pub mod lookup;
#[cfg(test)]
#[allow(dead_code, missing_docs)]
mod spec;

pub use lookup::{Lookup, PortName, RegistryRow, lookup, search};

use std::fmt;
use std::net::IpAddr;

use portolan_model::{BindScope, Finding, FindingTarget, Severity, Transport};
use serde::{Serialize, Serializer};

/// What kind of service an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[allow(missing_docs)]
pub enum Category {
    RemoteAccess,
    FileTransfer,
    Web,
    Mail,
    NameResolution,
    Directory,
    Authentication,
    Database,
    Cache,
    Messaging,
    Time,
    NetworkManagement,
    Monitoring,
    WindowsServices,
    FileSharing,
    ContainerOrchestration,
    Virtualization,
    Vpn,
    Voip,
    Printing,
    IndustrialControl,
    Routing,
    Proxy,
    Legacy,
    Discovery,
    Development,
    Storage,
}

/// Whether a service's traffic is encrypted by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TransportSecurity {
    /// Plain text on the wire.
    Cleartext,
    /// Encrypted by design.
    Encrypted,
    /// Encryption can be negotiated or configured (STARTTLS and the like).
    Optional,
}

/// Strength of the authentication a default deployment offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Authentication {
    /// None at all.
    None,
    /// Shared secrets, passwords in clear, community strings.
    Weak,
    /// Keys, certificates, Kerberos.
    Strong,
}

/// A port or range on one transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSpan {
    /// First port.
    pub lo: u16,
    /// Last port.
    pub hi: u16,
    /// Transport.
    pub transport: Transport,
}

impl PortSpan {
    /// Whether the span covers a port on a transport.
    pub fn covers(&self, port: u16, transport: Transport) -> bool {
        self.transport == transport && (self.lo..=self.hi).contains(&port)
    }
}

impl fmt::Display for PortSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}/{}", self.lo, self.transport)
        } else {
            write!(f, "{}-{}/{}", self.lo, self.hi, self.transport)
        }
    }
}

impl schemars::JsonSchema for PortSpan {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PortSpan".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A port or range on one transport: 22/tcp, 6000-6063/tcp"
        })
    }
}

impl Serialize for PortSpan {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One service in the knowledge base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Entry {
    /// Identifier (the IANA service name where one exists).
    pub id: &'static str,
    /// Human name.
    pub name: &'static str,
    /// Where it usually listens.
    pub ports: &'static [PortSpan],
    /// What kind of service it is.
    pub category: Category,
    /// Encryption by default.
    pub transport_security: TransportSecurity,
    /// Authentication by default.
    pub authentication: Authentication,
    /// Risk when reachable from the internet.
    pub internet_risk: Severity,
    /// Why.
    pub risk_reason: &'static str,
    /// Hardening steps.
    pub hardening: &'static [&'static str],
    /// The safer alternative.
    pub alternative: &'static str,
    /// MITRE ATT&CK technique IDs.
    pub attack: &'static [&'static str],
    /// NIST, CIS and CISA guidance.
    pub references: &'static [&'static str],
}

include!(concat!(env!("OUT_DIR"), "/kb_data.rs"));

/// How widely a listening service can be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Reach {
    /// Reachable from the internet (a public address, or shown so by a firewall analysis).
    Internet,
    /// Bound to every interface: reachable from wherever this host is reachable.
    AllInterfaces,
    /// Bound to one non-loopback address or device: reachable from that network.
    LocalNetwork,
    /// Bound to loopback: reachable only from this host.
    Loopback,
}

impl Reach {
    /// How far a listener bound with `scope` to `addr` reaches: a specific public address is
    /// the internet, another specific address or a device one network.
    pub fn of(scope: BindScope, addr: IpAddr) -> Reach {
        match scope {
            BindScope::Loopback => Reach::Loopback,
            BindScope::AllInterfaces => Reach::AllInterfaces,
            BindScope::Address if is_public(addr) => Reach::Internet,
            BindScope::Address | BindScope::Device => Reach::LocalNetwork,
        }
    }

    /// How far a port that answered a scan of `addr` reaches: loopback, the internet for a
    /// public address, else the scanned network.
    pub fn of_scanned(addr: IpAddr) -> Reach {
        let loopback = match addr {
            IpAddr::V4(a) => a.is_loopback(),
            IpAddr::V6(a) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        };
        if loopback {
            Reach::Loopback
        } else if is_public(addr) {
            Reach::Internet
        } else {
            Reach::LocalNetwork
        }
    }

    /// Words for people.
    pub fn describe(self) -> &'static str {
        match self {
            Reach::Internet => "reachable from the internet",
            Reach::AllInterfaces => "listening on all interfaces",
            Reach::LocalNetwork => "listening on one network",
            Reach::Loopback => "listening on loopback only",
        }
    }
}

impl Entry {
    /// The entry's risk weighted by reach: full on the internet or on all interfaces, one step
    /// lower on a single network, and only informational on loopback.
    pub fn risk(&self, reach: Reach) -> Severity {
        match reach {
            Reach::Internet | Reach::AllInterfaces => self.internet_risk,
            Reach::LocalNetwork => self.internet_risk.lower(),
            Reach::Loopback => Severity::Info,
        }
    }

    /// Whether the entry describes a port on a transport.
    pub fn covers(&self, port: u16, transport: Transport) -> bool {
        self.ports.iter().any(|s| s.covers(port, transport))
    }

    /// The finding for this service exposed at `reach` on `address:port/transport`.
    pub fn exposure_finding(
        &self,
        reach: Reach,
        address: Option<IpAddr>,
        port: u16,
        transport: Transport,
    ) -> Finding {
        let severity = self.risk(reach);
        let mut evidence = vec![format!("{} ({port}/{transport}) is {}", self.name, reach.describe())];
        evidence.push(format!(
            "risk when reachable from the internet: {}: {}",
            self.internet_risk, self.risk_reason
        ));
        if self.transport_security == TransportSecurity::Cleartext {
            evidence.push("traffic is cleartext by default".to_string());
        }
        let mut remediation = format!("Safer alternative: {}.", self.alternative.trim_end_matches('.'));
        for h in self.hardening.iter().take(2) {
            remediation.push(' ');
            remediation.push_str(h);
        }
        Finding {
            rule: "kb.exposed-service".to_string(),
            severity,
            title: format!("{} {} on {port}/{transport}", self.name, reach.describe()),
            target: Some(FindingTarget { address, port: Some(port), transport: Some(transport) }),
            evidence,
            remediation,
            references: self.references.iter().map(|s| s.to_string()).collect(),
            attack: self.attack.iter().map(|s| s.to_string()).collect(),
            location: None,
        }
    }
}

/// Every entry, sorted by id.
pub fn all() -> &'static [Entry] {
    ENTRIES
}

/// The entry with this id.
pub fn by_id(id: &str) -> Option<&'static Entry> {
    ENTRIES.binary_search_by(|e| e.id.cmp(id)).ok().map(|i| &ENTRIES[i])
}

/// One bit per (transport, port) that some entry covers, built on first use, so that the
/// common case (a port the knowledge base does not know) costs one bit test.
fn covered(port: u16, transport: Transport) -> bool {
    static BITS: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();
    let bits = BITS.get_or_init(|| {
        let mut b = vec![0u64; 4 * 65536 / 64];
        for e in ENTRIES {
            for s in e.ports {
                for p in s.lo..=s.hi {
                    let i = s.transport as usize * 65536 + p as usize;
                    b[i / 64] |= 1 << (i % 64);
                }
            }
        }
        b
    });
    let i = transport as usize * 65536 + port as usize;
    bits.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
}

/// Entries that describe a port on a transport (a port can have several, e.g. 9100).
pub fn for_port(port: u16, transport: Transport) -> impl Iterator<Item = &'static Entry> {
    let any = covered(port, transport);
    ENTRIES.iter().filter(move |e| any && e.covers(port, transport))
}

/// Entries for a service name: the entry with that id, else entries whose ports carry that
/// IANA service name.
pub fn for_service_name(name: &str) -> Vec<&'static Entry> {
    if let Some(e) = by_id(&name.to_ascii_lowercase()) {
        return vec![e];
    }
    let mut out: Vec<&'static Entry> = Vec::new();
    for reg in portolan_registry::by_name(name) {
        if let (Some((lo, _)), Some(t)) = (reg.ports(), reg.transport()) {
            for e in for_port(lo, t) {
                if !out.contains(&e) {
                    out.push(e);
                }
            }
        }
    }
    out
}

pub use portolan_model::addr::is_public;
