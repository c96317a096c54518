//! Source classes of the exposure table: the internet, private ranges, the special blocks and
//! the sources a user names.

use std::net::IpAddr;

use crate::dd::{Kind, Term};
use crate::model::*;
use crate::sets::{IntervalSet, addr_max, ip_to_u128, prefix};

use super::*;

/// Source classes of the exposure table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    /// Name (`internet`, `private`, or the CIDR the user named).
    pub name: String,
    /// IPv4 addresses.
    pub v4: IntervalSet,
    /// IPv6 addresses.
    pub v6: IntervalSet,
}

/// Destinations traffic from another machine can have: unicast, not loopback.
pub fn unicast(f: Family) -> IntervalSet {
    let max = addr_max(f.is_v6());
    let excluded: &[(&str, u8)] =
        if f.is_v6() { &[("ff00::", 8), ("::1", 128)] } else { &[("224.0.0.0", 3), ("127.0.0.0", 8)] };
    let mut s = IntervalSet::empty();
    for (a, l) in excluded {
        if let Ok(ip) = a.parse::<IpAddr>() {
            s = s.union(&prefix(ip, *l));
        }
    }
    s.complement(max)
}

/// IPv4 addresses that `portolan_kb::is_public` calls public.
pub fn public_v4() -> IntervalSet {
    let special = [
        ("0.0.0.0", 8),
        ("10.0.0.0", 8),
        ("100.64.0.0", 10),
        ("127.0.0.0", 8),
        ("169.254.0.0", 16),
        ("172.16.0.0", 12),
        ("192.0.2.0", 24),
        ("192.168.0.0", 16),
        ("198.18.0.0", 15),
        ("198.51.100.0", 24),
        ("203.0.113.0", 24),
        ("224.0.0.0", 3),
    ];
    let mut s = IntervalSet::empty();
    for (a, l) in special {
        if let Ok(ip) = a.parse::<IpAddr>() {
            s = s.union(&prefix(ip, l));
        }
    }
    s.complement(addr_max(false))
}

/// IPv6 addresses that `portolan_kb::is_public` calls public (global unicast but not
/// documentation).
pub fn public_v6() -> IntervalSet {
    let mut s = IntervalSet::empty();
    if let (Ok(g), Ok(doc)) = ("2000::".parse::<IpAddr>(), "2001:db8::".parse::<IpAddr>()) {
        s = prefix(g, 3).without(&prefix(doc, 32));
    }
    s
}

/// The standard classes: the internet (public addresses) and private ranges (RFC 1918,
/// unique local IPv6).
pub fn standard_classes() -> Vec<Class> {
    let mut pv4 = IntervalSet::empty();
    for (a, l) in [("10.0.0.0", 8), ("172.16.0.0", 12), ("192.168.0.0", 16)] {
        if let Ok(ip) = a.parse::<IpAddr>() {
            pv4 = pv4.union(&prefix(ip, l));
        }
    }
    let pv6 = "fc00::".parse::<IpAddr>().map(|ip| prefix(ip, 7)).unwrap_or_default();
    vec![
        Class { name: "internet".into(), v4: public_v4(), v6: public_v6() },
        Class { name: "private".into(), v4: pv4, v6: pv6 },
    ]
}

/// The addresses that are neither the internet nor private ranges, each in a class of its own:
/// shared address space (RFC 6598, carrier-grade NAT), documentation, benchmarking, link-local,
/// loopback, multicast, and the rest (reserved). With [`standard_classes`] they cover every
/// address exactly once, so no accepted source can fall between the columns of `fw show`.
pub fn special_classes() -> Vec<Class> {
    let set = |v: &[(&str, u8)]| {
        let mut s = IntervalSet::empty();
        for (a, l) in v {
            if let Ok(ip) = a.parse::<IpAddr>() {
                s = s.union(&prefix(ip, *l));
            }
        }
        s
    };
    let mut out = vec![
        Class { name: "shared".into(), v4: set(&[("100.64.0.0", 10)]), v6: IntervalSet::empty() },
        Class {
            name: "documentation".into(),
            v4: set(&[("192.0.2.0", 24), ("198.51.100.0", 24), ("203.0.113.0", 24)]),
            v6: set(&[("2001:db8::", 32)]),
        },
        Class { name: "benchmarking".into(), v4: set(&[("198.18.0.0", 15)]), v6: IntervalSet::empty() },
        Class { name: "link-local".into(), v4: set(&[("169.254.0.0", 16)]), v6: set(&[("fe80::", 10)]) },
        Class { name: "loopback".into(), v4: set(&[("127.0.0.0", 8)]), v6: set(&[("::1", 128)]) },
        Class { name: "multicast".into(), v4: set(&[("224.0.0.0", 4)]), v6: set(&[("ff00::", 8)]) },
    ];
    // the rest: 0.0.0.0/8, 240.0.0.0/4 and the IPv6 space outside every class above
    let mut v4 = IntervalSet::empty();
    let mut v6 = IntervalSet::empty();
    for c in standard_classes().iter().chain(out.iter()) {
        v4 = v4.union(&c.v4);
        v6 = v6.union(&c.v6);
    }
    out.push(Class {
        name: "reserved".into(),
        v4: v4.complement(addr_max(false)),
        v6: v6.complement(addr_max(true)),
    });
    out
}

/// Whether class `c` of the exposure has a source accepted by a rule that accepts nothing from
/// the internet (class 0) in that row.
fn telling(exps: &[Exposure], c: usize) -> bool {
    let accepting = |o: &Outcome| -> Vec<Term> {
        o.parts.iter().map(|(t, _)| *t).filter(|t| t.kind == Kind::Accept).collect()
    };
    exps.iter().any(|e| {
        e.rows.iter().any(|r| {
            let inet = accepting(&r.classes[0]);
            accepting(&r.classes[c]).iter().any(|t| !inet.contains(t))
        })
    })
}

/// Drops the candidate classes (`special`) that tell nothing the internet column does not: a
/// class stays when some row accepts some of its sources by a rule that accepts nothing from
/// the internet there. (An accept from 100.64.0.0/10 stays, in its own column; a rule open to
/// every source, or a blocklist in front of one, adds no column.)
pub fn keep_telling_classes(
    exps: &mut [Exposure],
    classes: Vec<Class>,
    special: std::ops::Range<usize>,
) -> Vec<Class> {
    let keep: Vec<bool> = (0..classes.len()).map(|c| !special.contains(&c) || telling(exps, c)).collect();
    fn kept<T>(v: &mut Vec<T>, keep: &[bool]) {
        let mut flags = keep.iter();
        v.retain(|_| flags.next().copied().unwrap_or(true));
    }
    for e in exps.iter_mut() {
        kept(&mut e.classes, &keep);
        kept(&mut e.everywhere, &keep);
        for r in &mut e.rows {
            kept(&mut r.classes, &keep);
        }
    }
    classes.into_iter().zip(keep).filter(|(_, k)| *k).map(|(c, _)| c).collect()
}

/// Whether some rule of `rs` names sources among the [`special_classes`] but none of the
/// internet: only then can a special class be accepted where the internet is not, so only
/// then is the exposure worth computing per special class. (A check of the rules, not of the
/// exposure: it may say yes where the exposure then shows nothing new.)
pub fn names_special_sources(rs: &Ruleset) -> bool {
    let special: Vec<Class> = special_classes();
    let (pub4, pub6) = (public_v4(), public_v6());
    rs.rules().any(|(_, _, r)| {
        [(Family::V4, &pub4), (Family::V6, &pub6)].into_iter().any(|(f, public)| {
            r.cubes(f).iter().any(|c| {
                c.src.as_ref().is_some_and(|src| {
                    !src.meets(public)
                        && special.iter().any(|k| src.meets(if f.is_v6() { &k.v6 } else { &k.v4 }))
                })
            })
        })
    })
}

/// Why a user-named source is not a set of addresses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceSpecError {
    /// An end of a range is not an address.
    #[error("bad address {addr:?} in {spec:?}")]
    Address {
        /// The word.
        addr: String,
        /// The whole source.
        spec: String,
    },
    /// A range from IPv4 to IPv6.
    #[error("range {0:?} mixes IPv4 and IPv6")]
    MixedRange(String),
    /// Neither an address nor a prefix.
    #[error("bad address {addr:?} in {spec:?} (ADDR, ADDR/LEN or A-B)")]
    Form {
        /// The word.
        addr: String,
        /// The whole source.
        spec: String,
    },
    /// A prefix length beyond the family's width.
    #[error("bad prefix length in {0:?}")]
    Prefix(String),
}

/// A class for a user-named source (`203.0.113.0/24`, an address, or `a-b`).
pub fn named_class(spec: &str) -> std::result::Result<Class, SourceSpecError> {
    let mut v4 = IntervalSet::empty();
    let mut v6 = IntervalSet::empty();
    for part in spec.split(',') {
        let s = if let Some((a, b)) = part.split_once('-') {
            let bad = |x: &str| SourceSpecError::Address { addr: x.to_string(), spec: spec.to_string() };
            let a: IpAddr = a.trim().parse().map_err(|_| bad(a))?;
            let b: IpAddr = b.trim().parse().map_err(|_| bad(b))?;
            if a.is_ipv6() != b.is_ipv6() {
                return Err(SourceSpecError::MixedRange(part.to_string()));
            }
            (a.is_ipv6(), IntervalSet::range(ip_to_u128(a), ip_to_u128(b)))
        } else {
            let (a, l) = part.split_once('/').map_or((part, None), |(a, l)| (a, Some(l)));
            let ip: IpAddr = a
                .trim()
                .parse()
                .map_err(|_| SourceSpecError::Form { addr: a.to_string(), spec: spec.to_string() })?;
            let bits = if ip.is_ipv6() { 128 } else { 32 };
            let len = match l {
                Some(l) => l
                    .parse::<u8>()
                    .ok()
                    .filter(|&n| n <= bits)
                    .ok_or_else(|| SourceSpecError::Prefix(part.to_string()))?,
                None => bits,
            };
            (ip.is_ipv6(), prefix(ip, len))
        };
        if s.0 { v6 = v6.union(&s.1) } else { v4 = v4.union(&s.1) }
    }
    Ok(Class { name: spec.to_string(), v4, v6 })
}
