//! What changed between two scans, host by host and port by port ([`diff`]), and between two
//! local inventories, listener by listener ([`diff_local`]).
//!
//! The comparison follows nmap's `ndiff`, so that users who gate on ndiff today get the same
//! answer: hosts are paired by address (then host name); a host's state, addresses and names
//! are compared; every port listed on either side is compared by state and by service (name,
//! product, version, extra info), and a port whose state is summarised on both sides
//! (`<extraports>`) is not a change; a change in the summaries is one.
//!
//! ```
//! use portolan_model::{Host, Port, PortState, Reason, ScanRun, Transport};
//! let mut a = ScanRun::new("nmap", "7.93", "", jiff::Timestamp::UNIX_EPOCH);
//! let mut h = Host::up("198.18.1.2".parse().unwrap(), Reason::UserSet);
//! h.ports.push(Port { number: 22, transport: Transport::Tcp, state: PortState::Closed, reason: Reason::ConnRefused, reason_ttl: 0, service: None });
//! a.hosts.push(h);
//! let mut b = a.clone();
//! b.hosts[0].ports[0].state = PortState::Open;
//! let d = portolan_diff::diff(&a, &b);
//! assert_eq!(d.cost, 1);
//! assert_eq!(d.hosts[0].ports[0].change, portolan_diff::Change::Opened);
//! ```

use std::net::IpAddr;

mod local;

pub use local::{InventoryRef, ListenerChange, ListenerDiff, LocalDiff, OwnerId, diff_local};

use portolan_model::{Host, HostState, Port, PortState, ScanRun, Service, Transport};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The differences between two scans (`portolan diff A B -o json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunDiff {
    /// Format version ([`portolan_model::FORMAT_VERSION`]).
    pub format_version: u32,
    /// The earlier scan.
    pub a: RunRef,
    /// The later scan.
    pub b: RunRef,
    /// Hosts with at least one difference.
    pub hosts: Vec<HostDiff>,
    /// Number of differences (ndiff's "cost"); 0 means the scans agree.
    pub cost: usize,
}

/// Which scan a side is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunRef {
    /// Scanner.
    pub scanner: String,
    /// Its version.
    pub version: String,
    /// Command line.
    pub args: String,
    /// Start, in seconds since the epoch.
    pub start: i64,
}

/// One host's differences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HostDiff {
    /// Address (from whichever side has the host).
    pub address: IpAddr,
    /// MAC address on the earlier side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_a: Option<String>,
    /// MAC address on the later side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_b: Option<String>,
    /// Host names on the earlier side.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names_a: Vec<String>,
    /// Host names on the later side.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names_b: Vec<String>,
    /// State on the earlier side (`None`: not in that scan).
    pub state_a: Option<HostState>,
    /// State on the later side.
    pub state_b: Option<HostState>,
    /// Ports that differ.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortDiff>,
    /// Summarised ports on the earlier side: (state, count).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extraports_a: Vec<(PortState, u32)>,
    /// Summarised ports on the later side.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extraports_b: Vec<(PortState, u32)>,
    /// Whether the summaries differ.
    pub extraports_changed: bool,
}

impl HostDiff {
    /// Whether the earlier side summarises (or does not list) ports in this state.
    pub fn summarised_a(&self, side: Option<&PortSide>) -> bool {
        summarised(&self.extraports_a, side)
    }

    /// Whether the later side summarises (or does not list) ports in this state.
    pub fn summarised_b(&self, side: Option<&PortSide>) -> bool {
        summarised(&self.extraports_b, side)
    }
}

fn summarised(extra: &[(PortState, u32)], side: Option<&PortSide>) -> bool {
    side.is_none_or(|s| extra.iter().any(|(st, _)| *st == s.state))
}

/// One port's difference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PortDiff {
    /// Port number.
    pub port: u16,
    /// Transport.
    pub transport: Transport,
    /// The earlier side (`None`: not listed, i.e. unknown or summarised).
    pub a: Option<PortSide>,
    /// The later side.
    pub b: Option<PortSide>,
    /// What kind of change it is.
    pub change: Change,
}

/// A port as one side saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PortSide {
    /// State.
    pub state: PortState,
    /// Service, when named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
}

/// The kind of a port change, for people and for alerting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// Now open, was not.
    Opened,
    /// Was open, is not.
    NoLongerOpen,
    /// Another state change.
    StateChanged,
    /// Same state, different service, product or version.
    ServiceChanged,
}

fn service_key(s: Option<&Service>) -> (Option<&str>, Option<&str>, Option<&str>, Option<&str>) {
    match s {
        Some(s) => {
            (Some(s.name.as_str()), s.product.as_deref(), s.version.as_deref(), s.extra_info.as_deref())
        }
        None => (None, None, None, None),
    }
}

fn is_extraports(h: Option<&Host>, state: Option<PortState>) -> bool {
    match state {
        None => true,
        Some(s) => h.is_some_and(|h| h.extra_ports.iter().any(|x| x.state == s)),
    }
}

fn extraports(h: Option<&Host>) -> Vec<(PortState, u32)> {
    let mut v: Vec<(PortState, u32)> =
        h.map(|h| h.extra_ports.iter().map(|x| (x.state, x.count)).collect()).unwrap_or_default();
    v.sort();
    v
}

/// ndiff's host identity, which is also its order: the address as text padded to 40
/// characters, then the first host name in sorted order (so 198.18.0.10 sorts before
/// 198.18.0.2, as in ndiff's output).
fn host_id(h: &Host) -> String {
    let first = h.hostnames.iter().map(|n| n.name.as_str()).min().unwrap_or("");
    format!("{:<40}{first}", h.address)
}

fn run_ref(r: &ScanRun) -> RunRef {
    RunRef {
        scanner: r.scanner.clone(),
        version: r.scanner_version.clone(),
        args: r.args.clone(),
        start: r.start.as_second(),
    }
}

/// ndiff's port order: number, then the transport's name.
fn port_key(p: &Port) -> (u16, &'static str) {
    (p.number, p.transport.as_str())
}

/// Every port listed on either side, paired by (number, transport), in ndiff's order. A port
/// listed twice on one side counts once, as the last listing (as in ndiff).
fn pair_ports<'a>(a: Option<&'a Host>, b: Option<&'a Host>) -> Vec<(Option<&'a Port>, Option<&'a Port>)> {
    let sorted = |h: Option<&'a Host>| {
        let mut v: Vec<&Port> = h.map(|h| h.ports.iter().collect()).unwrap_or_default();
        v.reverse();
        v.sort_by_key(|p| port_key(p)); // stable: the last listing comes first
        v.dedup_by_key(|p| port_key(p));
        v
    };
    let (va, vb) = (sorted(a), sorted(b));
    let mut out = Vec::with_capacity(va.len().max(vb.len()));
    let (mut i, mut j) = (0, 0);
    while i < va.len() || j < vb.len() {
        let order = match (va.get(i), vb.get(j)) {
            (Some(x), Some(y)) => port_key(x).cmp(&port_key(y)),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                out.push((Some(va[i]), None));
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push((None, Some(vb[j])));
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push((Some(va[i]), Some(vb[j])));
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn diff_host(a: Option<&Host>, b: Option<&Host>) -> (HostDiff, usize) {
    let mut cost = 0;
    let state_a = a.map(|h| h.status.state);
    let state_b = b.map(|h| h.status.state);
    if state_a != state_b {
        cost += 1;
    }
    let names = |h: Option<&Host>| -> Vec<String> {
        let mut v: Vec<String> =
            h.map(|h| h.hostnames.iter().map(|n| n.name.clone()).collect()).unwrap_or_default();
        v.sort();
        v.dedup();
        v
    };
    let (names_a, names_b) = (names(a), names(b));
    let addr_a = a.map(|h| (h.address, h.mac.as_deref().map(str::to_ascii_uppercase)));
    let addr_b = b.map(|h| (h.address, h.mac.as_deref().map(str::to_ascii_uppercase)));
    if addr_a != addr_b || names_a != names_b {
        cost += 1;
    }
    let mut ports = Vec::new();
    for (pa, pb) in pair_ports(a, b) {
        let (number, transport) = pa.or(pb).map_or((0, Transport::Tcp), |p| (p.number, p.transport));
        let (sa, sb) = (pa.map(|p| p.state), pb.map(|p| p.state));
        let mut c = 0;
        if sa != sb {
            c += 1;
        }
        let service_changed = service_key(pa.and_then(|p| p.service.as_deref()))
            != service_key(pb.and_then(|p| p.service.as_deref()));
        if service_changed {
            c += 1;
        }
        // ndiff leaves out ports whose states are summarised (or unknown) on both sides
        if c == 0 || (is_extraports(a, sa) && is_extraports(b, sb)) {
            continue;
        }
        cost += c;
        let change = if sb == Some(PortState::Open) && sa != Some(PortState::Open) {
            Change::Opened
        } else if sa == Some(PortState::Open) && sb != Some(PortState::Open) {
            Change::NoLongerOpen
        } else if sa != sb {
            Change::StateChanged
        } else {
            Change::ServiceChanged
        };
        let side =
            |p: Option<&Port>| p.map(|p| PortSide { state: p.state, service: p.service.as_deref().cloned() });
        ports.push(PortDiff { port: number, transport, a: side(pa), b: side(pb), change });
    }
    let (xa, xb) = (extraports(a), extraports(b));
    let extraports_changed = xa != xb;
    if extraports_changed {
        cost += 1;
    }
    let address = a.or(b).map_or(IpAddr::from([0, 0, 0, 0]), |h| h.address);
    let (mac_a, mac_b) = (a.and_then(|h| h.mac.clone()), b.and_then(|h| h.mac.clone()));
    (
        HostDiff {
            address,
            mac_a,
            mac_b,
            names_a,
            names_b,
            state_a,
            state_b,
            ports,
            extraports_a: xa,
            extraports_b: xb,
            extraports_changed,
        },
        cost,
    )
}

fn keyed(r: &ScanRun) -> Vec<(String, &Host)> {
    let mut v: Vec<(String, &Host)> = r.hosts.iter().map(|h| (host_id(h), h)).collect();
    v.sort_by(|x, y| x.0.cmp(&y.0));
    v
}

/// Compares two scans as ndiff does.
pub fn diff(a: &ScanRun, b: &ScanRun) -> RunDiff {
    let (ka, kb) = (keyed(a), keyed(b));
    let ha: Vec<&Host> = ka.iter().map(|x| x.1).collect();
    let hb: Vec<&Host> = kb.iter().map(|x| x.1).collect();
    let (mut i, mut j) = (0, 0);
    let mut hosts = Vec::new();
    let mut cost = 0;
    let mut push = |pa: Option<&Host>, pb: Option<&Host>| {
        let (d, c) = diff_host(pa, pb);
        if c > 0 {
            hosts.push(d);
            cost += c;
        }
    };
    while i < ha.len() && j < hb.len() {
        match ka[i].0.cmp(&kb[j].0) {
            std::cmp::Ordering::Less => {
                push(Some(ha[i]), None);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                push(None, Some(hb[j]));
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                push(Some(ha[i]), Some(hb[j]));
                i += 1;
                j += 1;
            }
        }
    }
    for h in &ha[i..] {
        push(Some(h), None);
    }
    for h in &hb[j..] {
        push(None, Some(h));
    }
    RunDiff { format_version: portolan_model::FORMAT_VERSION, a: run_ref(a), b: run_ref(b), hosts, cost }
}
