//! The normalized rule model every parser produces: tables of chains of rules, each rule a
//! disjunction of [`Cube`]s (one conjunction of per-dimension sets) per address family, an
//! [`Action`], and the place in the file it came from.

use std::fmt;
use std::net::IpAddr;

use crate::error::{ErrorKind, ValueKind};
use crate::sets::IntervalSet;

/// IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// Whether IPv6.
    pub fn is_v6(self) -> bool {
        self == Family::V6
    }
    /// `ipv4` / `ipv6`.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
    /// Both, IPv4 first.
    pub const BOTH: [Family; 2] = [Family::V4, Family::V6];
}

/// The rule-set formats Portolan reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `iptables-save` / `ip6tables-save` text.
    Iptables,
    /// `nft -j list ruleset`.
    NftJson,
    /// `aws ec2 describe-security-groups` JSON.
    Aws,
}

impl Format {
    /// Name as `--format` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Iptables => "iptables",
            Format::NftJson => "nft",
            Format::Aws => "aws",
        }
    }
}

/// Where something is in a rule file: the shared model's source location (file, line,
/// column, and for JSON the path to the value).
pub use portolan_model::SourceLocation as Location;

/// One interface name pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IfacePattern {
    /// Exactly this name.
    Exact(String),
    /// Any name starting with this (`eth+` in iptables, `eth*` in nftables).
    Prefix(String),
}

impl IfacePattern {
    /// Whether a name matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            IfacePattern::Exact(n) => n == name,
            IfacePattern::Prefix(p) => name.starts_with(p.as_str()),
        }
    }
    /// Parses iptables' form (`eth+`) or nftables' (`eth*`).
    pub fn parse(s: &str) -> IfacePattern {
        match s.strip_suffix('+').or_else(|| s.strip_suffix('*')) {
            Some(p) => IfacePattern::Prefix(p.to_string()),
            None => IfacePattern::Exact(s.to_string()),
        }
    }
}

impl fmt::Display for IfacePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IfacePattern::Exact(n) => f.write_str(n),
            IfacePattern::Prefix(p) => write!(f, "{p}+"),
        }
    }
}

/// An interface condition: the name is (or with `negated`, is not) one of `any_of`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IfaceMatch {
    /// `!` / `!=`.
    pub negated: bool,
    /// Patterns.
    pub any_of: Vec<IfacePattern>,
}

impl IfaceMatch {
    /// Whether a name satisfies the condition.
    pub fn matches(&self, name: &str) -> bool {
        self.any_of.iter().any(|p| p.matches(name)) != self.negated
    }
}

/// One conjunction of conditions; `None` means any value. Ports double as ICMP
/// `type * 256 + code` for ICMP and ICMPv6 packets.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct Cube {
    /// IP protocol numbers.
    pub proto: Option<IntervalSet>,
    /// Destination ports (or ICMP type/code).
    pub dport: Option<IntervalSet>,
    /// Source ports.
    pub sport: Option<IntervalSet>,
    /// Source addresses.
    pub src: Option<IntervalSet>,
    /// Destination addresses.
    pub dst: Option<IntervalSet>,
    /// Input interface conditions (all must hold).
    pub iif: Vec<IfaceMatch>,
    /// Output interface conditions.
    pub oif: Vec<IfaceMatch>,
}

/// Intersects an optional constraint with another.
pub fn and_set(slot: &mut Option<IntervalSet>, s: IntervalSet) {
    *slot = Some(match slot.take() {
        Some(old) => old.intersect(&s),
        None => s,
    });
}

impl Cube {
    /// The conjunction of two cubes.
    pub fn and(&self, o: &Cube) -> Cube {
        let mut c = self.clone();
        for (slot, other) in [
            (&mut c.proto, &o.proto),
            (&mut c.dport, &o.dport),
            (&mut c.sport, &o.sport),
            (&mut c.src, &o.src),
            (&mut c.dst, &o.dst),
        ] {
            if let Some(s) = other {
                and_set(slot, s.clone());
            }
        }
        c.iif.extend(o.iif.iter().cloned());
        c.oif.extend(o.oif.iter().cloned());
        c
    }
    /// Whether some set is already empty (the cube matches nothing).
    pub fn is_void(&self) -> bool {
        [&self.proto, &self.dport, &self.sport, &self.src, &self.dst]
            .iter()
            .any(|s| s.as_ref().is_some_and(|s| s.is_empty()))
    }
    /// Whether a concrete packet matches.
    pub fn matches(&self, p: &Packet) -> bool {
        let has = |s: &Option<IntervalSet>, v: u128| s.as_ref().is_none_or(|s| s.contains(v));
        has(&self.proto, u128::from(p.proto))
            && has(&self.dport, u128::from(p.dport))
            && has(&self.sport, u128::from(p.sport))
            && has(&self.src, crate::sets::ip_to_u128(p.src))
            && has(&self.dst, crate::sets::ip_to_u128(p.dst))
            && self.iif.iter().all(|m| m.matches(p.iif.as_deref().unwrap_or("")))
            && self.oif.iter().all(|m| m.matches(p.oif.as_deref().unwrap_or("")))
    }
}

/// One packet, as a query names it (the first packet of a new connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number.
    pub proto: u8,
    /// Destination port (ICMP: type * 256 + code).
    pub dport: u16,
    /// Source port.
    pub sport: u16,
    /// Input interface (`None`: not one any rule names).
    pub iif: Option<String>,
    /// Output interface.
    pub oif: Option<String>,
}

/// What a rule does with the packets it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Let through (to the next base chain of the hook, if any).
    Accept,
    /// Discard silently.
    Drop,
    /// Discard with an ICMP error or a TCP reset.
    Reject,
    /// Back to the calling chain (in a base chain: the policy).
    Return,
    /// Into a user chain (index in the table), then back here.
    Jump(usize),
    /// Into a user chain, and from there back to this chain's caller.
    Goto(usize),
    /// Log, count, mark: the packet goes on to the next rule.
    Continue,
    /// Destination NAT.
    Dnat {
        /// New destination address (`None`: unchanged).
        to: Option<IpAddr>,
        /// New destination ports.
        ports: Option<(u16, u16)>,
    },
    /// Redirect to this machine (port `ports`).
    Redirect {
        /// New destination ports.
        ports: Option<(u16, u16)>,
    },
    /// Source NAT / masquerade: ends the nat chain, changes no filtering verdict.
    Snat,
    /// Hand to user space (NFQUEUE): analysed as accept (the queue may accept it).
    Queue,
}

impl Action {
    /// Short name.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Drop => "drop",
            Action::Reject => "reject",
            Action::Return => "return",
            Action::Jump(_) => "jump",
            Action::Goto(_) => "goto",
            Action::Continue => "continue",
            Action::Dnat { .. } => "dnat",
            Action::Redirect { .. } => "redirect",
            Action::Snat => "snat",
            Action::Queue => "queue",
        }
    }
}

/// A chain's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Accept.
    Accept,
    /// Drop.
    Drop,
}

/// Where a base chain is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hook {
    /// Before routing.
    Prerouting,
    /// To this machine.
    Input,
    /// Routed through.
    Forward,
    /// From this machine.
    Output,
    /// After routing.
    Postrouting,
}

impl Hook {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
        }
    }
}

/// What a base chain does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChainKind {
    /// Filters (iptables filter, mangle, raw, security; nftables `type filter`/`route`).
    Filter,
    /// Translates addresses (iptables nat; nftables `type nat`).
    Nat,
}

/// A rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Where it is.
    pub location: Location,
    /// The rule as written (iptables: the line; JSON: a short rendering).
    pub text: String,
    /// Its comment, if any (untrusted text).
    pub comment: Option<String>,
    /// What it matches in IPv4 (a disjunction; empty: nothing).
    pub v4: Vec<Cube>,
    /// What it matches in IPv6.
    pub v6: Vec<Cube>,
    /// What it does.
    pub action: Action,
    /// Conditions on state the analysis does not model (rate limits, recent lists, marks):
    /// see [`crate::analysis`] for how they are treated.
    pub stateful: Vec<String>,
    /// It matches only traffic outside the analysis' scope: packets of existing (or
    /// invalid) connections, broadcast or multicast.
    pub state_only: bool,
    /// Part of its condition is fixed by an assumption of the analysis (unicast traffic to a
    /// local address: `addrtype --dst-type LOCAL`, `pkttype unicast`); lint does not count
    /// it as deciding packets when it judges later rules shadowed.
    pub assumed: bool,
    /// nftables: the rule's handle (`nft -a`), which names it where a line number cannot
    /// (`nft -j` writes the whole rule set on one line).
    pub handle: Option<u64>,
}

impl Rule {
    /// The cubes of a family.
    pub fn cubes(&self, f: Family) -> &[Cube] {
        match f {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }
}

/// A chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    /// Name.
    pub name: String,
    /// For a base chain: its hook.
    pub hook: Option<Hook>,
    /// Filter or NAT.
    pub kind: ChainKind,
    /// Order among base chains on the same hook (lower first).
    pub priority: i32,
    /// Default for packets no rule decides (base chains).
    pub policy: Option<Policy>,
    /// Rules, in order.
    pub rules: Vec<Rule>,
    /// Where it is declared.
    pub location: Location,
}

/// A table: chains that jump to each other.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Name (`filter`, `nat`, `inet firewalld`, `sg-0123 (web)`).
    pub name: String,
    /// The families it filters.
    pub families: Vec<Family>,
    /// Chains.
    pub chains: Vec<Chain>,
}

/// A parsed rule file.
#[derive(Debug, Clone, PartialEq)]
pub struct Ruleset {
    /// The file.
    pub file: String,
    /// Its format.
    pub format: Format,
    /// Tables.
    pub tables: Vec<Table>,
    /// Each table is a separate filter (AWS: one per security group) rather than all of them
    /// applying to one machine.
    pub separate_tables: bool,
    /// Things the parser skipped, for people (tables of families not analysed, ...).
    pub notes: Vec<String>,
}

impl Ruleset {
    /// Every rule with its table and chain indexes.
    pub fn rules(&self) -> impl Iterator<Item = (usize, usize, &Rule)> {
        self.tables.iter().enumerate().flat_map(|(ti, t)| {
            t.chains.iter().enumerate().flat_map(move |(ci, c)| c.rules.iter().map(move |r| (ti, ci, r)))
        })
    }
    /// Number of rules.
    pub fn rule_count(&self) -> usize {
        self.tables.iter().flat_map(|t| &t.chains).map(|c| c.rules.len()).sum()
    }
}

/// Protocol numbers the port dimension applies to.
pub const PORT_PROTOS: [u8; 5] = [6, 17, 33, 132, 136];

/// A protocol name or number.
pub fn proto_number(s: &str) -> Option<u8> {
    Some(match s.to_ascii_lowercase().as_str() {
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "icmpv6" | "ipv6-icmp" | "icmp6" => 58,
        "sctp" => 132,
        "udplite" => 136,
        "dccp" => 33,
        "esp" => 50,
        "ah" => 51,
        "gre" => 47,
        "igmp" => 2,
        "ipip" | "ipencap" => 4,
        "ospf" | "ospfigp" => 89,
        "vrrp" => 112,
        "pim" => 103,
        "ipv6" => 41,
        "l2tp" => 115,
        n => return n.parse().ok(),
    })
}

/// A protocol number's name.
pub fn proto_name(p: u8) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        1 => "icmp".into(),
        58 => "icmpv6".into(),
        132 => "sctp".into(),
        136 => "udplite".into(),
        33 => "dccp".into(),
        50 => "esp".into(),
        51 => "ah".into(),
        47 => "gre".into(),
        2 => "igmp".into(),
        n => format!("proto-{n}"),
    }
}

/// ICMP (`v6 == false`) or ICMPv6 type names, with a code when the name implies one.
pub fn icmp_type(name: &str, v6: bool) -> Option<(u8, Option<u8>)> {
    let n = name.to_ascii_lowercase();
    if !v6 {
        return Some(match n.as_str() {
            "echo-reply" | "pong" => (0, None),
            "destination-unreachable" => (3, None),
            "network-unreachable" | "net-unreachable" => (3, Some(0)),
            "host-unreachable" => (3, Some(1)),
            "protocol-unreachable" | "prot-unreachable" => (3, Some(2)),
            "port-unreachable" => (3, Some(3)),
            "fragmentation-needed" | "frag-needed" => (3, Some(4)),
            "communication-prohibited" | "admin-prohibited" => (3, Some(13)),
            "source-quench" => (4, None),
            "redirect" => (5, None),
            "echo-request" | "ping" => (8, None),
            "router-advertisement" => (9, None),
            "router-solicitation" => (10, None),
            "time-exceeded" | "ttl-exceeded" => (11, None),
            "ttl-zero-during-transit" => (11, Some(0)),
            "parameter-problem" => (12, None),
            "timestamp-request" => (13, None),
            "timestamp-reply" => (14, None),
            "info-request" => (15, None),
            "info-reply" => (16, None),
            "address-mask-request" => (17, None),
            "address-mask-reply" => (18, None),
            _ => return None,
        });
    }
    Some(match n.as_str() {
        "destination-unreachable" => (1, None),
        "packet-too-big" => (2, None),
        "time-exceeded" | "ttl-exceeded" => (3, None),
        "parameter-problem" => (4, None),
        "echo-request" | "ping" => (128, None),
        "echo-reply" | "pong" => (129, None),
        "mld-listener-query" => (130, None),
        "mld-listener-report" => (131, None),
        "mld-listener-done" | "mld-listener-reduction" => (132, None),
        "nd-router-solicit" | "router-solicitation" => (133, None),
        "nd-router-advert" | "router-advertisement" => (134, None),
        "nd-neighbor-solicit" | "neighbour-solicitation" | "neighbor-solicitation" => (135, None),
        "nd-neighbor-advert" | "neighbour-advertisement" | "neighbor-advertisement" => (136, None),
        "nd-redirect" | "redirect" => (137, None),
        "mld2-listener-report" => (143, None),
        _ => return None,
    })
}

/// The port-dimension values of an ICMP type (and code).
pub fn icmp_span(t: u8, code: Option<u8>) -> IntervalSet {
    let base = u128::from(t) * 256;
    match code {
        Some(c) => IntervalSet::single(base + u128::from(c)),
        None => IntervalSet::range(base, base + 255),
    }
}

/// Reads a batch of packets for `fw query --batch`: one per line, `SRC DST PROTO DPORT [IIF]`
/// (blank lines and `#` comments skipped; source port 40000). A bad line is an error at it.
pub fn read_batch(text: &str, file: &str) -> crate::Result<Vec<Packet>> {
    let mut packets = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.is_empty() || w[0].starts_with('#') {
            continue;
        }
        let at = |kind: ErrorKind| {
            crate::Error::syntax(
                Location { file: file.into(), line: n as u32 + 1, column: 1, path: None },
                kind,
            )
        };
        let bad = |what: ValueKind, text: &str| at(ErrorKind::BadValue { what, text: text.to_string() });
        if w.len() < 4 {
            return Err(at(ErrorKind::ShortBatchLine));
        }
        let src: IpAddr = w[0].parse().map_err(|_| bad(ValueKind::Source, w[0]))?;
        let dst: IpAddr = w[1].parse().map_err(|_| bad(ValueKind::Destination, w[1]))?;
        let proto = proto_number(w[2]).ok_or_else(|| bad(ValueKind::Protocol, w[2]))?;
        let dport: u16 = w[3].parse().map_err(|_| bad(ValueKind::Port, w[3]))?;
        packets.push(Packet {
            src,
            dst,
            proto,
            dport,
            sport: 40000,
            iif: w.get(4).map(|s| s.to_string()),
            oif: None,
        });
    }
    Ok(packets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_errors_are_named_kinds_worded_as_before() {
        let e = read_batch("# packets\n\n10.0.0.1 10.0.0.2 tcp\n", "b").unwrap_err();
        assert!(matches!(e.kind(), Some(ErrorKind::ShortBatchLine)), "{e:?}");
        assert_eq!(e.to_string(), "b:3:1: expected `SRC DST PROTO DPORT [IIF]`");
        let e = read_batch("10.0.0.1 10.0.0.2 tcp 70000\n", "b").unwrap_err();
        assert!(
            matches!(e.kind(), Some(ErrorKind::BadValue { what: ValueKind::Port, text }) if text == "70000"),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "b:1:1: bad port \"70000\"");
        let e = read_batch("x 10.0.0.2 tcp 22\n", "b").unwrap_err();
        assert_eq!(e.to_string(), "b:1:1: bad source \"x\"");
    }
}
