//! `ipset save` files: the members of the sets that `-m set --match-set` rules name.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::model::{Cube, Location, proto_number};
use crate::sets::{IntervalSet, ip_to_u128, prefix};

/// What one dimension of a set type holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    /// Addresses (ip or net).
    Addr,
    /// Ports (with a protocol).
    Port,
    /// Interface names.
    Iface,
}

/// One member: a value per dimension.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Addresses.
    Addr(IntervalSet, u8),
    /// Protocol and ports.
    Port(u8, IntervalSet),
    /// An interface name.
    Iface(String),
}

/// One set.
#[derive(Debug, Clone, PartialEq)]
pub struct IpSet {
    /// Name.
    pub name: String,
    /// Type (`hash:net`).
    pub kind: String,
    /// Dimensions.
    pub dims: Vec<Dim>,
    /// IPv6 (`family inet6`).
    pub v6: bool,
    /// Members, with `nomatch`.
    pub members: Vec<(Vec<Value>, bool)>,
    /// Members of a `list:set`.
    pub lists: Vec<String>,
    /// Where it is created.
    pub location: Location,
}

/// The sets of one `ipset save` file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IpSets {
    /// By name.
    pub sets: HashMap<String, IpSet>,
}

fn dims_of(kind: &str) -> Option<Vec<Dim>> {
    let (method, dims) = kind.split_once(':')?;
    if !matches!(method, "hash" | "bitmap" | "list") {
        return None;
    }
    dims.split(',')
        .map(|d| match d {
            "ip" | "net" => Some(Dim::Addr),
            "port" => Some(Dim::Port),
            "iface" => Some(Dim::Iface),
            "set" => Some(Dim::Addr),
            _ => None,
        })
        .collect()
}

fn parse_addr(s: &str, v6: bool) -> Option<(IntervalSet, u8)> {
    if let Some((a, b)) = s.split_once('-')
        && let (Ok(a), Ok(b)) = (a.parse::<IpAddr>(), b.parse::<IpAddr>())
    {
        return (a.is_ipv6() == v6 && b.is_ipv6() == v6)
            .then(|| (IntervalSet::range(ip_to_u128(a), ip_to_u128(b)), if v6 { 128 } else { 32 }));
    }
    let (ip, len) = match s.split_once('/') {
        Some((a, l)) => (a.parse::<IpAddr>().ok()?, l.parse::<u8>().ok()?),
        None => {
            let ip = s.parse::<IpAddr>().ok()?;
            (ip, if ip.is_ipv6() { 128 } else { 32 })
        }
    };
    if ip.is_ipv6() != v6 || len > if v6 { 128 } else { 32 } {
        return None;
    }
    Some((prefix(ip, len), len))
}

fn parse_port(s: &str) -> Option<(u8, IntervalSet)> {
    let (proto, ports) = match s.split_once(':') {
        Some((p, rest)) => (proto_number(p)?, rest),
        None => (6, s),
    };
    if proto == 1 || proto == 58 {
        // icmp:type/code
        let (t, c) = ports.split_once('/').unwrap_or((ports, ""));
        let t: u8 = t.parse().ok()?;
        let code = if c.is_empty() { None } else { Some(c.parse::<u8>().ok()?) };
        return Some((proto, crate::model::icmp_span(t, code)));
    }
    let (a, b) = ports.split_once('-').unwrap_or((ports, ports));
    let a: u16 = a.parse().ok()?;
    let b: u16 = b.parse().ok()?;
    (a <= b).then(|| (proto, IntervalSet::range(u128::from(a), u128::from(b))))
}

/// Parses an `ipset save` file.
pub fn parse(text: &str, file: &str) -> Result<IpSets> {
    let file: Arc<str> = Arc::from(file);
    let mut out = IpSets::default();
    for (n, raw) in text.lines().enumerate() {
        let line = n as u32 + 1;
        let loc = |col: usize| Location { file: file.clone(), line, column: col as u32 + 1, path: None };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let col0 = raw.len() - raw.trim_start().len();
        let words: Vec<&str> = trimmed.split_whitespace().collect();
        match words.first().copied() {
            Some("create") | Some("-N") | Some("-exist") if words.len() >= 3 => {
                let kind = words[2];
                let dims = dims_of(kind).ok_or_else(|| {
                    Error::syntax(loc(col0), ErrorKind::UnsupportedSetType { kind: kind.to_string() })
                })?;
                let v6 = words.windows(2).any(|w| w[0] == "family" && w[1] == "inet6");
                out.sets.insert(
                    words[1].to_string(),
                    IpSet {
                        name: words[1].to_string(),
                        kind: kind.to_string(),
                        dims,
                        v6,
                        members: Vec::new(),
                        lists: Vec::new(),
                        location: loc(col0),
                    },
                );
            }
            Some("add") | Some("-A") if words.len() >= 3 => {
                let set = out.sets.get_mut(words[1]).ok_or_else(|| {
                    Error::syntax(loc(col0), ErrorKind::UndeclaredSet { set: words[1].to_string() })
                })?;
                let entry = words[2];
                let col = raw.find(entry).unwrap_or(col0);
                let nomatch = words[3..].contains(&"nomatch");
                if set.kind == "list:set" {
                    set.lists.push(entry.to_string());
                    continue;
                }
                let parts: Vec<&str> = entry.split(',').collect();
                if parts.len() != set.dims.len() {
                    return Err(Error::syntax(
                        loc(col),
                        ErrorKind::MemberParts {
                            member: entry.to_string(),
                            kind: set.kind.clone(),
                            set: set.name.clone(),
                            parts: set.dims.len(),
                        },
                    ));
                }
                let mut vals = Vec::new();
                for (d, p) in set.dims.iter().zip(parts) {
                    let v = match d {
                        Dim::Addr => parse_addr(p, set.v6).map(|(s, l)| Value::Addr(s, l)),
                        Dim::Port => parse_port(p).map(|(pr, s)| Value::Port(pr, s)),
                        Dim::Iface => Some(Value::Iface(p.to_string())),
                    };
                    vals.push(v.ok_or_else(|| {
                        Error::syntax(
                            loc(col),
                            ErrorKind::BadMember {
                                part: p.to_string(),
                                set: set.name.clone(),
                                kind: set.kind.clone(),
                            },
                        )
                    })?);
                }
                set.members.push((vals, nomatch));
            }
            _ => {
                return Err(Error::syntax(
                    loc(col0),
                    ErrorKind::UnexpectedIpsetLine { word: words[0].to_string() },
                ));
            }
        }
    }
    Ok(out)
}

/// Why a `--match-set` condition matches nothing this analysis can describe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// The set is not in the `ipset save` input.
    #[error("ipset {0:?} is not defined: give the `ipset save` output that defines it")]
    Undefined(String),
    /// `list:set` members nest more than eight levels.
    #[error("list:set {0:?} nests too deeply")]
    TooDeep(String),
    /// The rule names fewer directions than the set has dimensions.
    #[error("set {name:?} ({kind}) has {dims} dimensions but the rule names {dirs} directions")]
    Directions {
        /// The set.
        name: String,
        /// Its type (`hash:ip,port`).
        kind: String,
        /// Its dimensions.
        dims: usize,
        /// The directions the rule names.
        dirs: usize,
    },
    /// `nomatch` in a set of more than one dimension.
    #[error("`nomatch` members in multi-dimension set {0:?} are not supported")]
    NomatchMultiDimension(String),
}

/// Which packet field each set dimension is compared with (`src,dst`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Source.
    Src,
    /// Destination.
    Dst,
}

impl IpSets {
    /// The cubes a `--match-set NAME dirs` condition matches.
    pub fn cubes(&self, name: &str, dirs: &[Dir], depth: usize) -> std::result::Result<Vec<Cube>, SetError> {
        let set = self.sets.get(name).ok_or_else(|| SetError::Undefined(name.to_string()))?;
        if depth > 8 {
            return Err(SetError::TooDeep(name.to_string()));
        }
        if set.kind == "list:set" {
            let mut out = Vec::new();
            for l in &set.lists {
                out.extend(self.cubes(l, dirs, depth + 1)?);
            }
            return Ok(out);
        }
        if dirs.len() < set.dims.len() {
            return Err(SetError::Directions {
                name: name.to_string(),
                kind: set.kind.clone(),
                dims: set.dims.len(),
                dirs: dirs.len(),
            });
        }
        // a one-dimension address set: exact hash:net semantics (the most specific member decides)
        if set.dims == [Dim::Addr] {
            let mut ms: Vec<(u8, &IntervalSet, bool)> = set
                .members
                .iter()
                .filter_map(|(v, nomatch)| match &v[0] {
                    Value::Addr(s, l) => Some((*l, s, *nomatch)),
                    _ => None,
                })
                .collect();
            ms.sort_by_key(|m| m.0);
            let mut s = IntervalSet::empty();
            for (_, e, nomatch) in ms {
                s = if nomatch { s.without(e) } else { s.union(e) };
            }
            let mut c = Cube::default();
            match dirs[0] {
                Dir::Src => c.src = Some(s),
                Dir::Dst => c.dst = Some(s),
            }
            return Ok(vec![c]);
        }
        if set.members.iter().any(|m| m.1) {
            return Err(SetError::NomatchMultiDimension(name.to_string()));
        }
        let mut out = Vec::new();
        for (vals, _) in &set.members {
            let mut c = Cube::default();
            for (v, d) in vals.iter().zip(dirs) {
                match (v, d) {
                    (Value::Addr(s, _), Dir::Src) => crate::model::and_set(&mut c.src, s.clone()),
                    (Value::Addr(s, _), Dir::Dst) => crate::model::and_set(&mut c.dst, s.clone()),
                    (Value::Port(p, s), dir) => {
                        crate::model::and_set(&mut c.proto, IntervalSet::single(u128::from(*p)));
                        match dir {
                            Dir::Src => crate::model::and_set(&mut c.sport, s.clone()),
                            Dir::Dst => crate::model::and_set(&mut c.dport, s.clone()),
                        }
                    }
                    (Value::Iface(n), Dir::Src) => c.iif.push(crate::model::IfaceMatch {
                        negated: false,
                        any_of: vec![crate::model::IfacePattern::Exact(n.clone())],
                    }),
                    (Value::Iface(n), Dir::Dst) => c.oif.push(crate::model::IfaceMatch {
                        negated: false,
                        any_of: vec![crate::model::IfacePattern::Exact(n.clone())],
                    }),
                }
            }
            out.push(c);
        }
        Ok(out)
    }
    /// Whether the set holds IPv6 members.
    pub fn is_v6(&self, name: &str) -> Option<bool> {
        self.sets.get(name).map(|s| s.v6)
    }
}
