//! nftables JSON (`nft -j list ruleset`): tables, base chains with hooks, priorities and
//! policies, rules with payload/meta/ct matches, anonymous and named sets (prefixes,
//! ranges, intervals, concatenations), verdict maps, jumps and gotos, NAT statements.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Expected, Missing, Result, Unsupported, ValueKind};
use crate::json::{self, Json, Value};
use crate::model::*;
use crate::sets::{IntervalSet, addr_max, ip_to_u128, prefix};

/// A packet field a match compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Src(Family),
    Dst(Family),
    /// IP protocol (ip protocol / ip6 nexthdr / meta l4proto).
    Proto(Option<Family>),
    /// tcp/udp/... dport: implies the protocol (`None`: th, any port protocol).
    Dport(Option<u8>),
    Sport(Option<u8>),
    IcmpType(Family),
    IcmpCode(Family),
    Iif,
    Oif,
    Nfproto,
    CtState,
    CtDirection,
    /// `ct status` (dnat, snat, ...): only translated flows carry dnat/snat.
    CtStatus,
    TcpFlags,
    /// Something the analysis does not see (marks, fib, sockets, ...).
    Opaque,
}

/// The table a rule is in: its file, its sets and maps, its family and name.
struct TableScope<'a> {
    file: Arc<str>,
    sets: &'a HashMap<(String, String, String), &'a Json<'a>>,
    table: (&'a str, &'a str),
}

/// Where a value is in the document, as a location or an error names it
/// (`$.nftables[4].rule.expr[2]`): the steps to it, written out only when a location or an
/// error is made (writing it for every expression was a sixth of reading a large file).
#[derive(Debug, Clone, Copy)]
enum Path<'p> {
    /// Written as it is (`$`, `$.nftables`).
    Text(&'p str),
    /// `$.nftables[I]`.
    Item(usize),
    /// `set NAME elem[I]`: an element of a named set.
    SetElem(&'p str, usize),
    /// `PARENT.KEY`.
    Key(&'p Path<'p>, &'p str),
    /// `PARENT[I]`.
    Index(&'p Path<'p>, usize),
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Text(t) => f.write_str(t),
            Path::Item(i) => write!(f, "$.nftables[{i}]"),
            Path::SetElem(name, i) => write!(f, "set {name} elem[{i}]"),
            Path::Key(p, k) => write!(f, "{p}.{k}"),
            Path::Index(p, i) => write!(f, "{p}[{i}]"),
        }
    }
}

fn loc(file: &Arc<str>, j: &Json, path: &Path) -> Location {
    j.pos.in_file(file, Some(path.to_string()))
}

fn err(scope: &TableScope, j: &Json, path: &Path, kind: impl Into<ErrorKind>) -> Error {
    Error::syntax(loc(&scope.file, j, path), kind.into())
}

impl TableScope<'_> {
    /// The table as messages name it: `FAMILY NAME`.
    fn table_name(&self) -> String {
        format!("{} {}", self.table.0, self.table.1)
    }
}

/// The value's text for messages (short).
fn show(j: &Json) -> String {
    let s = match &j.v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        Value::Object(m) => {
            format!("{{{}}}", m.iter().map(|(k, _)| format!("{k:?}")).collect::<Vec<_>>().join(","))
        }
        Value::Array(a) => format!("[{} elements]", a.len()),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
    };
    s.chars().take(60).collect()
}

fn field_of(scope: &TableScope, j: &Json, path: &Path) -> Result<Field> {
    let one = j.as_object().filter(|m| m.len() == 1).map(|m| (&m[0].0, &m[0].1));
    let Some((k, v)) = one else {
        return Err(err(
            scope,
            j,
            path,
            ErrorKind::Expected { expected: Expected::MatchExpression, found: show(j) },
        ));
    };
    match *k {
        "payload" => {
            let proto = v.get("protocol").and_then(Json::as_str);
            let fieldn = v.get("field").and_then(Json::as_str);
            let (Some(p), Some(f)) = (proto, fieldn) else {
                return Err(err(scope, v, &Path::Key(path, "payload"), Unsupported::RawPayload));
            };
            Ok(match (p, f) {
                ("ip", "saddr") => Field::Src(Family::V4),
                ("ip", "daddr") => Field::Dst(Family::V4),
                ("ip6", "saddr") => Field::Src(Family::V6),
                ("ip6", "daddr") => Field::Dst(Family::V6),
                ("ip", "protocol") => Field::Proto(Some(Family::V4)),
                ("ip6", "nexthdr") => Field::Proto(Some(Family::V6)),
                ("th", "dport") => Field::Dport(None),
                ("th", "sport") => Field::Sport(None),
                ("tcp" | "udp" | "sctp" | "udplite" | "dccp", "dport") => Field::Dport(proto_number(p)),
                ("tcp" | "udp" | "sctp" | "udplite" | "dccp", "sport") => Field::Sport(proto_number(p)),
                ("icmp", "type") => Field::IcmpType(Family::V4),
                ("icmp", "code") => Field::IcmpCode(Family::V4),
                ("icmpv6", "type") => Field::IcmpType(Family::V6),
                ("icmpv6", "code") => Field::IcmpCode(Family::V6),
                ("tcp", "flags") => Field::TcpFlags,
                (
                    "ip" | "ip6" | "tcp" | "udp" | "icmp" | "icmpv6" | "ether" | "vlan" | "arp",
                    "length" | "ttl" | "hoplimit" | "dscp" | "ecn" | "id" | "frag-off" | "flowlabel"
                    | "checksum" | "window" | "urgptr" | "sequence" | "ackseq" | "doff" | "saddr" | "daddr"
                    | "type" | "id6",
                ) => Field::Opaque,
                _ => {
                    return Err(err(
                        scope,
                        v,
                        &Path::Key(path, "payload"),
                        Unsupported::PayloadField { protocol: p.to_string(), field: f.to_string() },
                    ));
                }
            })
        }
        "meta" => {
            let key = v.get("key").and_then(Json::as_str).unwrap_or("");
            Ok(match key {
                "l4proto" => Field::Proto(None),
                "nfproto" => Field::Nfproto,
                "iifname" | "iif" => Field::Iif,
                "oifname" | "oif" => Field::Oif,
                "mark" | "skuid" | "skgid" | "cgroup" | "pkttype" | "iiftype" | "oiftype" | "priority"
                | "length" | "rtclassid" | "cpu" | "iifgroup" | "oifgroup" | "secmark" | "random"
                | "ipsec" | "iifkind" | "oifkind" | "time" | "day" | "hour" | "protocol" => Field::Opaque,
                _ => {
                    return Err(err(
                        scope,
                        v,
                        &Path::Key(path, "meta"),
                        Unsupported::MetaKey { key: key.to_string() },
                    ));
                }
            })
        }
        "ct" => {
            let key = v.get("key").and_then(Json::as_str).unwrap_or("");
            Ok(match key {
                "state" => Field::CtState,
                "direction" => Field::CtDirection,
                "status" => Field::CtStatus,
                _ => Field::Opaque,
            })
        }
        "fib" | "socket" | "osf" | "rt" | "exthdr" | "tcp option" | "ipsec" | "numgen" | "jhash"
        | "symhash" | "sctp chunk" | "dccp option" | "ip option" => Ok(Field::Opaque),
        "&" | "|" | "^" => {
            let Some(a) = v.as_array().and_then(|a| a.first()) else {
                return Err(err(scope, v, path, Missing::Operands));
            };
            let inner = field_of(scope, a, &Path::Index(&Path::Key(path, k), 0))?;
            Ok(if inner == Field::TcpFlags && *k == "&" { Field::TcpFlags } else { Field::Opaque })
        }
        "concat" => Err(err(scope, j, path, Unsupported::NestedConcatenation)),
        other => Err(err(scope, j, path, Unsupported::Expression { name: other.to_string() })),
    }
}

/// A value as an integer set for a field.
fn values(
    scope: &TableScope,
    f: Field,
    j: &Json,
    path: &Path,
    fam: Family,
    depth: usize,
) -> Result<IntervalSet> {
    if depth > 16 {
        return Err(err(scope, j, path, ErrorKind::SetsTooDeep));
    }
    if let Some(s) = j.as_str()
        && let Some(name) = s.strip_prefix('@')
    {
        let key = (scope.table.0.to_string(), scope.table.1.to_string(), name.to_string());
        let set = scope.sets.get(&key).ok_or_else(|| {
            err(
                scope,
                j,
                path,
                ErrorKind::UndefinedSet { name: name.to_string(), table: Some(scope.table_name()) },
            )
        })?;
        let mut out = IntervalSet::empty();
        if let Some(elems) = set.get("elem").and_then(Json::as_array) {
            for (i, e) in elems.iter().enumerate() {
                out = out.union(&values(scope, f, e, &Path::SetElem(name, i), fam, depth + 1)?);
            }
        }
        return Ok(out);
    }
    match &j.v {
        Value::Array(a) => {
            let mut out = IntervalSet::empty();
            for (i, e) in a.iter().enumerate() {
                out = out.union(&values(scope, f, e, &Path::Index(path, i), fam, depth + 1)?);
            }
            return Ok(out);
        }
        Value::Object(m) if m.len() == 1 => {
            let (k, v) = (&m[0].0, &m[0].1);
            match *k {
                "set" => return values(scope, f, v, &Path::Key(path, "set"), fam, depth + 1),
                "elem" => {
                    let val = v.get("val").ok_or_else(|| err(scope, v, path, Missing::ElementValue))?;
                    return values(
                        scope,
                        f,
                        val,
                        &Path::Key(&Path::Key(path, "elem"), "val"),
                        fam,
                        depth + 1,
                    );
                }
                "prefix" => {
                    let a = v
                        .get("addr")
                        .and_then(Json::as_str)
                        .ok_or_else(|| err(scope, v, path, Missing::PrefixMember { member: "addr" }))?;
                    let len = v
                        .get("len")
                        .and_then(Json::as_i64)
                        .ok_or_else(|| err(scope, v, path, Missing::PrefixMember { member: "len" }))?;
                    let ip: IpAddr = a.parse().map_err(|_| {
                        err(
                            scope,
                            v,
                            path,
                            ErrorKind::BadValue { what: ValueKind::Address, text: a.to_string() },
                        )
                    })?;
                    let bits = if ip.is_ipv6() { 128 } else { 32 };
                    if !(0..=bits).contains(&len) {
                        return Err(err(scope, v, path, ErrorKind::PrefixLengthOutOfRange { length: len }));
                    }
                    check_fam(scope, v, path, ip, fam)?;
                    return Ok(prefix(ip, len as u8));
                }
                "range" => {
                    let r = v
                        .as_array()
                        .filter(|r| r.len() == 2)
                        .ok_or_else(|| err(scope, v, path, ErrorKind::BadRange))?;
                    let a =
                        values(scope, f, &r[0], &Path::Index(&Path::Key(path, "range"), 0), fam, depth + 1)?;
                    let b =
                        values(scope, f, &r[1], &Path::Index(&Path::Key(path, "range"), 1), fam, depth + 1)?;
                    let (Some(a), Some(b)) = (a.first(), b.first()) else { return Ok(IntervalSet::empty()) };
                    return Ok(IntervalSet::range(a, b));
                }
                _ => {}
            }
        }
        _ => {}
    }
    scalar(scope, f, j, path, fam)
}

fn check_fam(scope: &TableScope, j: &Json, path: &Path, ip: IpAddr, fam: Family) -> Result<()> {
    if ip.is_ipv6() != fam.is_v6() {
        return Err(err(
            scope,
            j,
            path,
            ErrorKind::OtherFamily { text: ip.to_string(), family: fam, prefix: false },
        ));
    }
    Ok(())
}

fn scalar(scope: &TableScope, f: Field, j: &Json, path: &Path, fam: Family) -> Result<IntervalSet> {
    let text = match &j.v {
        Value::String(s) => s.to_string(),
        Value::Number(n) => n.to_string(),
        _ => {
            return Err(err(
                scope,
                j,
                path,
                ErrorKind::Expected { expected: Expected::Value, found: show(j) },
            ));
        }
    };
    let bad = |what: ValueKind| err(scope, j, path, ErrorKind::BadValue { what, text: text.clone() });
    Ok(match f {
        Field::Src(_) | Field::Dst(_) => {
            let (a, l) = text.split_once('/').map_or((text.as_str(), None), |(a, l)| (a, Some(l)));
            let ip: IpAddr = a.parse().map_err(|_| bad(ValueKind::Address))?;
            check_fam(scope, j, path, ip, fam)?;
            let bits = if ip.is_ipv6() { 128 } else { 32 };
            let len = match l {
                Some(l) => {
                    l.parse::<u8>().ok().filter(|&n| n <= bits).ok_or_else(|| bad(ValueKind::Prefix))?
                }
                None => bits,
            };
            prefix(ip, len)
        }
        Field::Proto(_) => {
            IntervalSet::single(u128::from(proto_number(&text).ok_or_else(|| bad(ValueKind::Protocol))?))
        }
        Field::Dport(_) | Field::Sport(_) => {
            let p = match text.parse::<u16>() {
                Ok(p) => p,
                Err(_) => portolan_registry::by_name(&text)
                    .into_iter()
                    .find_map(|e| e.ports())
                    .map(|(lo, _)| lo)
                    .ok_or_else(|| bad(ValueKind::Port))?,
            };
            IntervalSet::single(u128::from(p))
        }
        Field::IcmpType(fm) => {
            let (t, c) = match text.parse::<u8>() {
                Ok(n) => (n, None),
                Err(_) => icmp_type(&text, fm.is_v6()).ok_or_else(|| bad(ValueKind::IcmpType))?,
            };
            icmp_span(t, c)
        }
        Field::IcmpCode(_) => {
            let c: u8 = text.parse().map_err(|_| bad(ValueKind::IcmpCode))?;
            // any type with this code
            IntervalSet::from_intervals(
                (0..=255u128).map(|t| (t * 256 + u128::from(c), t * 256 + u128::from(c))).collect(),
            )
        }
        Field::Nfproto => match text.as_str() {
            "ipv4" => IntervalSet::single(4),
            "ipv6" => IntervalSet::single(6),
            _ => return Err(bad(ValueKind::Nfproto)),
        },
        Field::CtState => {
            let bit = match text.as_str() {
                "new" => 1,
                "established" => 2,
                "related" => 4,
                "invalid" => 8,
                "untracked" => 16,
                _ => return Err(bad(ValueKind::CtState)),
            };
            IntervalSet::single(bit)
        }
        Field::CtDirection => IntervalSet::single(u128::from(text != "original")),
        Field::TcpFlags => {
            let mut v = 0u128;
            for fl in text.split('|') {
                v |= match fl.trim() {
                    "fin" => 1,
                    "syn" => 2,
                    "rst" => 4,
                    "psh" => 8,
                    "ack" => 16,
                    "urg" => 32,
                    "ecn" => 64,
                    "cwr" => 128,
                    n => n.parse::<u128>().map_err(|_| bad(ValueKind::TcpFlag))?,
                };
            }
            IntervalSet::single(v)
        }
        Field::Iif | Field::Oif | Field::Opaque | Field::CtStatus => {
            return Err(err(scope, j, path, Unsupported::NonNumericField));
        }
    })
}

/// Interface names of a right-hand side.
fn names(scope: &TableScope, j: &Json, path: &Path, depth: usize) -> Result<Vec<IfacePattern>> {
    if depth > 16 {
        return Err(err(scope, j, path, ErrorKind::SetsTooDeep));
    }
    match &j.v {
        Value::String(s) if s.starts_with('@') => {
            let name = &s[1..];
            let key = (scope.table.0.to_string(), scope.table.1.to_string(), name.to_string());
            let set = scope.sets.get(&key).ok_or_else(|| {
                err(scope, j, path, ErrorKind::UndefinedSet { name: name.to_string(), table: None })
            })?;
            let mut out = Vec::new();
            if let Some(elems) = set.get("elem").and_then(Json::as_array) {
                for e in elems {
                    out.extend(names(scope, e, path, depth + 1)?);
                }
            }
            Ok(out)
        }
        Value::String(s) => Ok(vec![IfacePattern::parse(s)]),
        Value::Array(a) => {
            let mut out = Vec::new();
            for e in a.iter() {
                out.extend(names(scope, e, path, depth + 1)?);
            }
            Ok(out)
        }
        Value::Object(m) if m.len() == 1 && (m[0].0 == "set" || m[0].0 == "elem") => {
            let inner = if m[0].0 == "elem" { m[0].1.get("val").unwrap_or(&m[0].1) } else { &m[0].1 };
            names(scope, inner, path, depth + 1)
        }
        _ => Err(err(
            scope,
            j,
            path,
            ErrorKind::Expected { expected: Expected::InterfaceName, found: show(j) },
        )),
    }
}

/// The conditions built up by a rule's statements, per family.
#[derive(Clone, Default)]
struct Build {
    /// Disjunction per family (`None`: the family cannot match).
    fam: [Option<Vec<Cube>>; 2],
    stateful: Vec<String>,
    state_only: bool,
}

impl Build {
    fn new(fams: &[Family]) -> Build {
        let mut fam = [None, None];
        for f in fams {
            fam[*f as usize] = Some(vec![Cube::default()]);
        }
        Build { fam, stateful: Vec::new(), state_only: false }
    }
    fn and_all(&mut self, f: Option<Family>, c: &Cube) {
        for (i, slot) in self.fam.iter_mut().enumerate() {
            if f.is_some_and(|f| f as usize != i) {
                *slot = None;
                continue;
            }
            if let Some(v) = slot {
                for x in v.iter_mut() {
                    *x = x.and(c);
                }
                v.retain(|x| !x.is_void());
            }
        }
    }
    fn and_alts(&mut self, per_fam: [Option<Vec<Cube>>; 2]) {
        for (i, slot) in self.fam.iter_mut().enumerate() {
            let Some(v) = slot.take() else { continue };
            let Some(alts) = &per_fam[i] else { continue };
            let mut out = Vec::new();
            for a in v {
                for b in alts {
                    let c = a.and(b);
                    if !c.is_void() {
                        out.push(c);
                    }
                }
            }
            *slot = Some(out);
        }
    }
    fn never(&mut self) {
        for v in self.fam.iter_mut().flatten() {
            v.clear();
        }
    }
}

fn field_cube(f: Field, s: IntervalSet) -> (Option<Family>, Cube) {
    let mut c = Cube::default();
    let fam = match f {
        Field::Src(fm) => {
            c.src = Some(s);
            Some(fm)
        }
        Field::Dst(fm) => {
            c.dst = Some(s);
            Some(fm)
        }
        Field::Proto(fm) => {
            c.proto = Some(s);
            fm
        }
        Field::Dport(p) | Field::Sport(p) => {
            c.proto = Some(match p {
                Some(p) => IntervalSet::single(u128::from(p)),
                None => IntervalSet::from_intervals(
                    PORT_PROTOS.iter().map(|&p| (u128::from(p), u128::from(p))).collect(),
                ),
            });
            if matches!(f, Field::Dport(_)) {
                c.dport = Some(s);
            } else {
                c.sport = Some(s);
            }
            None
        }
        Field::IcmpType(fm) | Field::IcmpCode(fm) => {
            c.proto = Some(IntervalSet::single(if fm.is_v6() { 58 } else { 1 }));
            c.dport = Some(s);
            Some(fm)
        }
        _ => None,
    };
    (fam, c)
}

fn field_max(f: Field, fam: Family) -> u128 {
    match f {
        Field::Src(_) | Field::Dst(_) => addr_max(fam.is_v6()),
        Field::Proto(_) => 255,
        _ => 65535,
    }
}

fn field_family(f: Field) -> Option<Family> {
    match f {
        Field::Src(x) | Field::Dst(x) | Field::IcmpType(x) | Field::IcmpCode(x) => Some(x),
        Field::Proto(x) => x,
        _ => None,
    }
}

/// Applies one `match` statement.
fn apply_match(scope: &TableScope, b: &mut Build, m: &Json, path: &Path) -> Result<()> {
    let op = m.get("op").and_then(Json::as_str).unwrap_or("==");
    let left = m.get("left").ok_or_else(|| err(scope, m, path, Missing::MatchSide { side: "left" }))?;
    let right = m.get("right").ok_or_else(|| err(scope, m, path, Missing::MatchSide { side: "right" }))?;
    let neg = match op {
        "==" | "in" => false,
        "!=" => true,
        "<" | ">" | "<=" | ">=" => false,
        _ => return Err(err(scope, m, path, Unsupported::MatchOperator { op: op.to_string() })),
    };
    // concatenations: alternatives
    if let Some(parts) = left.get("concat").and_then(Json::as_array) {
        if neg {
            return Err(err(scope, m, path, Unsupported::NegatedConcatenation));
        }
        let fields: Vec<Field> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| field_of(scope, p, &Path::Index(&Path::Key(&Path::Key(path, "left"), "concat"), i)))
            .collect::<Result<_>>()?;
        let rpath = Path::Key(path, "right");
        let elems = concat_elements(scope, right, &rpath)?;
        let mut per_fam: [Option<Vec<Cube>>; 2] = [Some(Vec::new()), Some(Vec::new())];
        for (fi, fam) in Family::BOTH.iter().enumerate() {
            if fields.iter().any(|f| field_family(*f).is_some_and(|x| x != *fam)) {
                per_fam[fi] = Some(Vec::new());
                continue;
            }
            let mut alts = Vec::new();
            for &(vals, vi) in &elems {
                let vpath = &Path::Index(&rpath, vi);
                if vals.len() != fields.len() {
                    return Err(err(scope, right, vpath, ErrorKind::ConcatenationParts));
                }
                let mut c = Cube::default();
                for (f, v) in fields.iter().zip(vals.iter()) {
                    if matches!(f, Field::Iif | Field::Oif) {
                        let im = IfaceMatch { negated: false, any_of: names(scope, v, vpath, 0)? };
                        if *f == Field::Iif { c.iif.push(im) } else { c.oif.push(im) }
                    } else if *f == Field::Opaque {
                        b.stateful.push("concatenation with a field the analysis does not model".into());
                    } else {
                        let s = values(scope, *f, v, vpath, *fam, 0)?;
                        c = c.and(&field_cube(*f, s).1);
                    }
                }
                alts.push(c);
            }
            per_fam[fi] = Some(alts);
        }
        b.and_alts(per_fam);
        return Ok(());
    }
    let f = field_of(scope, left, &Path::Key(path, "left"))?;
    match f {
        Field::Opaque => {
            b.stateful.push(format!("match on {}", show(left)));
            Ok(())
        }
        Field::Iif | Field::Oif => {
            let im = IfaceMatch { negated: neg, any_of: names(scope, right, &Path::Key(path, "right"), 0)? };
            let mut c = Cube::default();
            if f == Field::Iif {
                c.iif.push(im)
            } else {
                c.oif.push(im)
            }
            b.and_all(None, &c);
            Ok(())
        }
        Field::CtState => {
            let s = values(scope, f, right, &Path::Key(path, "right"), Family::V4, 0)?;
            let new = s.contains(1);
            if new == neg {
                b.never();
                b.state_only = true;
            }
            Ok(())
        }
        Field::CtDirection => {
            let s = values(scope, f, right, &Path::Key(path, "right"), Family::V4, 0)?;
            if s.contains(0) == neg {
                b.never();
            }
            Ok(())
        }
        Field::CtStatus => {
            let words: Vec<String> = match &right.v {
                Value::String(s) => vec![s.to_string()],
                Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
                _ => Vec::new(),
            };
            if !neg && words.iter().any(|w| w == "dnat" || w == "snat") {
                // the analysis' packets are untranslated
                b.never();
                b.state_only = true;
            } else {
                b.stateful.push(format!("ct status {}", words.join(",")));
            }
            Ok(())
        }
        Field::TcpFlags => {
            // `tcp flags & (a|b) == c` or `tcp flags syn`: evaluated for the first packet (SYN)
            let mask = left.get("&").and_then(Json::as_array).and_then(|a| a.get(1));
            let mask = match mask {
                Some(mj) => values(scope, f, mj, path, Family::V4, 0)?.first().unwrap_or(0xff),
                None => 0xff,
            };
            let want = values(scope, f, right, &Path::Key(path, "right"), Family::V4, 0)?;
            let hit = if left.get("&").is_some() || op == "==" && want.count() > 1 {
                want.contains(2 & mask)
            } else {
                // plain `tcp flags syn` (flag membership)
                want.intervals().iter().any(|&(a, _)| a & 2 != 0) || want.contains(2)
            };
            let c = Cube { proto: Some(IntervalSet::single(6)), ..Cube::default() };
            b.and_all(None, &c);
            if hit == neg {
                b.never();
            }
            Ok(())
        }
        Field::Nfproto => {
            let s = values(scope, f, right, &Path::Key(path, "right"), Family::V4, 0)?;
            for (i, fam) in Family::BOTH.iter().enumerate() {
                let v = if fam.is_v6() { 6 } else { 4 };
                if s.contains(v) == neg {
                    b.fam[i] = None;
                }
            }
            Ok(())
        }
        _ => {
            let restrict = field_family(f);
            let mut per_fam: [Option<Vec<Cube>>; 2] = [None, None];
            for (i, fam) in Family::BOTH.iter().enumerate() {
                if restrict.is_some_and(|r| r != *fam) || b.fam[i].is_none() {
                    continue;
                }
                let mut s = values(scope, f, right, &Path::Key(path, "right"), *fam, 0)?;
                let max = field_max(f, *fam);
                if let Some(v) = s.first() {
                    s = match op {
                        "<" => IntervalSet::range(0, v.saturating_sub(1))
                            .intersect(&IntervalSet::range(0, if v == 0 { 0 } else { max })),
                        "<=" => IntervalSet::range(0, v),
                        ">" => IntervalSet::range(v + 1, max),
                        ">=" => IntervalSet::range(v, max),
                        _ => s,
                    };
                    if op == "<" && v == 0 {
                        s = IntervalSet::empty();
                    }
                }
                if neg {
                    s = s.complement(max);
                }
                let (_, c) = field_cube(f, s);
                per_fam[i] = Some(vec![c]);
            }
            b.and_alts(per_fam);
            Ok(())
        }
    }
}

/// The elements of a set used with a concatenation: each a list of part values.
fn concat_elements<'a>(
    scope: &TableScope<'a>,
    right: &'a Json<'a>,
    path: &Path,
) -> Result<Vec<(&'a [Json<'a>], usize)>> {
    let mut out = Vec::new();
    let list: Vec<&Json> = if let Some(s) = right.as_str().and_then(|s| s.strip_prefix('@')) {
        let key = (scope.table.0.to_string(), scope.table.1.to_string(), s.to_string());
        let set = scope.sets.get(&key).ok_or_else(|| {
            err(scope, right, path, ErrorKind::UndefinedSet { name: s.to_string(), table: None })
        })?;
        set.get("elem").and_then(Json::as_array).map(|a| a.iter().collect()).unwrap_or_default()
    } else if let Some(a) = right.get("set").and_then(Json::as_array) {
        a.iter().collect()
    } else {
        vec![right]
    };
    for (i, e) in list.into_iter().enumerate() {
        let e = e.get("elem").and_then(|x| x.get("val")).unwrap_or(e);
        let parts = e
            .get("concat")
            .and_then(Json::as_array)
            .ok_or_else(|| err(scope, e, path, ErrorKind::NotConcatenated))?;
        out.push((parts, i));
    }
    Ok(out)
}

/// A verdict statement.
fn verdict(
    scope: &TableScope,
    j: &Json,
    path: &Path,
    chains: &HashMap<String, usize>,
) -> Result<Option<Action>> {
    let Some(m) = j.as_object().filter(|m| m.len() == 1) else {
        return Err(err(
            scope,
            j,
            path,
            ErrorKind::Expected { expected: Expected::Statement, found: show(j) },
        ));
    };
    let (k, v) = (&m[0].0, &m[0].1);
    let target = |statement: &'static str| -> Result<usize> {
        let t = v
            .get("target")
            .and_then(Json::as_str)
            .ok_or_else(|| err(scope, v, path, Missing::Target { statement }))?;
        chains.get(t).copied().ok_or_else(|| {
            err(
                scope,
                v,
                path,
                ErrorKind::UnknownJumpTarget { statement, chain: t.to_string(), table: scope.table_name() },
            )
        })
    };
    Ok(Some(match *k {
        "accept" => Action::Accept,
        "drop" => Action::Drop,
        "reject" => Action::Reject,
        "return" => Action::Return,
        "continue" => Action::Continue,
        "queue" => Action::Queue,
        "jump" => Action::Jump(target("jump")?),
        "goto" => Action::Goto(target("goto")?),
        "masquerade" | "snat" => Action::Snat,
        "dnat" => {
            let to = match v.get("addr") {
                Some(a) => match a.as_str().map(str::parse::<IpAddr>) {
                    Some(Ok(ip)) => Some(ip),
                    _ => {
                        return Err(err(scope, a, path, Unsupported::ComputedDnatAddress));
                    }
                },
                None => None,
            };
            let ports = match v.get("port") {
                Some(p) => match p.as_i64().and_then(|n| u16::try_from(n).ok()) {
                    Some(n) => Some((n, n)),
                    None => {
                        return Err(err(scope, p, path, Unsupported::ComputedDnatPort));
                    }
                },
                None => None,
            };
            Action::Dnat { to, ports }
        }
        "redirect" => {
            let ports =
                v.get("port").and_then(Json::as_i64).and_then(|n| u16::try_from(n).ok()).map(|n| (n, n));
            Action::Redirect { ports }
        }
        _ => return Ok(None),
    }))
}

const NEUTRAL: &[&str] = &[
    "counter",
    "log",
    "comment",
    "mangle",
    "notrack",
    "ct helper",
    "ct timeout",
    "ct expectation",
    "xt",
    "set",
    "meta",
    "quota",
    "limit",
    "flow",
    "fwd",
    "dup",
    "tproxy",
    "synproxy",
    "secmark",
    "ct count",
    "last",
];

/// Parses `nft -j list ruleset` output.
pub fn parse(text: &str, file: &str) -> Result<Ruleset> {
    let file_arc: Arc<str> = Arc::from(file);
    let arena = bumpalo::Bump::new();
    let doc = json::parse(text, &arena)
        .map_err(|e| Error::syntax(e.pos.in_file(&file_arc, None), ErrorKind::BadJson(e)))?;
    parse_doc(&doc, file_arc)
}

/// Parses an already-read JSON document.
pub fn parse_doc(doc: &Json, file: Arc<str>) -> Result<Ruleset> {
    let items = doc.get("nftables").and_then(Json::as_array).ok_or_else(|| {
        err_at(
            &file,
            doc,
            &Path::Text("$"),
            ErrorKind::Expected { expected: Expected::NftablesDocument, found: doc.kind().to_string() },
        )
    })?;
    // pass 1: tables, chains and sets
    let mut tables: Vec<Table> = Vec::new();
    // family, then name: a rule's table is found without copying its names
    let mut tindex: HashMap<String, HashMap<String, usize>> = HashMap::new();
    let mut cindex: Vec<HashMap<String, usize>> = Vec::new();
    let mut sets: HashMap<(String, String, String), &Json> = HashMap::new();
    let mut notes = Vec::new();
    let fams_of = |f: &str| -> Option<Vec<Family>> {
        match f {
            "ip" => Some(vec![Family::V4]),
            "ip6" => Some(vec![Family::V6]),
            "inet" => Some(vec![Family::V4, Family::V6]),
            _ => None,
        }
    };
    for (i, it) in items.iter().enumerate() {
        let path = Path::Item(i);
        let Some(obj) = it.as_object().filter(|m| m.len() == 1) else {
            return Err(err_at(
                &file,
                it,
                &path,
                ErrorKind::Expected { expected: Expected::NftablesObject, found: show(it) },
            ));
        };
        let (k, v) = (&obj[0].0, &obj[0].1);
        let p = Path::Key(&path, k);
        let s = |key: &'static str| -> Result<String> {
            v.get(key)
                .and_then(Json::as_str)
                .map(str::to_string)
                .ok_or_else(|| err_at(&file, v, &p, Missing::String { object: k.to_string(), key }))
        };
        match *k {
            "metainfo" => {}
            "table" => {
                let fam = s("family")?;
                let name = s("name")?;
                match fams_of(&fam) {
                    Some(fams) => {
                        tindex.entry(fam.clone()).or_default().insert(name.clone(), tables.len());
                        tables.push(Table {
                            name: format!("{fam} {name}"),
                            families: fams,
                            chains: Vec::new(),
                        });
                        cindex.push(HashMap::new());
                    }
                    None => notes.push(format!("table {fam} {name} is not analysed (family {fam})")),
                }
            }
            "chain" => {
                let fam = s("family")?;
                let tname = s("table")?;
                let name = s("name")?;
                let Some(&ti) = tindex.get(&fam).and_then(|t| t.get(&tname)) else {
                    if fams_of(&fam).is_some() {
                        return Err(err_at(
                            &file,
                            v,
                            &p,
                            ErrorKind::ChainOfUndeclaredTable {
                                chain: name,
                                table: format!("{fam} {tname}"),
                            },
                        ));
                    }
                    continue;
                };
                let hook = match v.get("hook").and_then(Json::as_str) {
                    None => None,
                    Some("prerouting") => Some(Hook::Prerouting),
                    Some("input") => Some(Hook::Input),
                    Some("forward") => Some(Hook::Forward),
                    Some("output") => Some(Hook::Output),
                    Some("postrouting") => Some(Hook::Postrouting),
                    Some(other) => {
                        notes.push(format!("chain {name} on hook {other} is not analysed"));
                        None
                    }
                };
                let kind = match v.get("type").and_then(Json::as_str) {
                    Some("nat") => ChainKind::Nat,
                    _ => ChainKind::Filter,
                };
                let prio = match v.get("prio") {
                    None => 0,
                    Some(pj) => match pj.as_i64() {
                        Some(n) => n as i32,
                        None => match pj.as_str() {
                            Some("raw") => -300,
                            Some("mangle") => -150,
                            Some("dstnat") => -100,
                            Some("filter") => 0,
                            Some("security") => 50,
                            Some("srcnat") => 100,
                            _ => {
                                return Err(err_at(
                                    &file,
                                    pj,
                                    &Path::Key(&p, "prio"),
                                    ErrorKind::BadChainPriority,
                                ));
                            }
                        },
                    },
                };
                let policy = if hook.is_some() {
                    match v.get("policy").and_then(Json::as_str) {
                        None | Some("accept") => Some(Policy::Accept),
                        Some("drop") => Some(Policy::Drop),
                        Some(other) => {
                            return Err(err_at(
                                &file,
                                v,
                                &p,
                                ErrorKind::BadHookPolicy { policy: other.to_string() },
                            ));
                        }
                    }
                } else {
                    None
                };
                if cindex[ti].contains_key(&name) {
                    return Err(err_at(&file, v, &p, ErrorKind::ChainDeclaredTwice { chain: name }));
                }
                cindex[ti].insert(name.clone(), tables[ti].chains.len());
                tables[ti].chains.push(Chain {
                    name,
                    hook,
                    kind,
                    priority: prio,
                    policy,
                    rules: Vec::new(),
                    location: loc(&file, it, &path),
                });
            }
            "set" | "map" => {
                let fam = s("family")?;
                let tname = s("table")?;
                let name = s("name")?;
                sets.insert((fam, tname, name), v);
            }
            "rule" | "element" | "flowtable" | "counter" | "quota" | "ct helper" | "limit" | "ct timeout"
            | "ct expectation" | "secmark" | "synproxy" => {}
            other => {
                return Err(err_at(&file, it, &path, ErrorKind::UnknownObject { name: other.to_string() }));
            }
        }
    }
    // pass 2: rules
    for (i, it) in items.iter().enumerate() {
        let Some(v) = it.get("rule") else { continue };
        let item = Path::Item(i);
        let path = Path::Key(&item, "rule");
        // the rule's words are borrowed from the document, not copied: a large file is
        // thousands of rules
        let s = |key: &'static str| -> Result<&str> {
            v.get(key)
                .and_then(Json::as_str)
                .ok_or_else(|| err_at(&file, v, &path, Missing::String { object: "rule".into(), key }))
        };
        let fam = s("family")?;
        let tname = s("table")?;
        let cname = s("chain")?;
        let Some(&ti) = tindex.get(fam).and_then(|t| t.get(tname)) else { continue };
        let Some(&ci) = cindex[ti].get(cname) else {
            return Err(err_at(
                &file,
                v,
                &path,
                ErrorKind::RuleInUndeclaredChain {
                    chain: cname.to_string(),
                    table: format!("{fam} {tname}"),
                },
            ));
        };
        let scope = TableScope { file: file.clone(), sets: &sets, table: (fam, tname) };
        let exprs = v
            .get("expr")
            .and_then(Json::as_array)
            .ok_or_else(|| err_at(&file, v, &path, Missing::RuleExpressions))?;
        let comment = v.get("comment").and_then(Json::as_str).map(str::to_string);
        let handle = v.get("handle").and_then(Json::as_i64);
        let text = render_rule(exprs);
        let mut b = Build::new(&tables[ti].families);
        let mut done = false;
        // the rule's own place and text, taken by the rule made from it (a vmap makes one
        // rule per element, each with its own)
        let mut own = Some((loc(&file, it, &path), text));
        let push = |b: Build, action: Action, l: Location, text: String, chains: &mut Vec<Chain>| {
            // cloned, not moved: a clone is only as large as its contents, and the build's
            // vectors keep the room they grew into (5 MB over 10,000 rules)
            let [v4, v6] = b.fam.clone();
            chains[ci].rules.push(Rule {
                location: l,
                text,
                comment: comment.clone(),
                v4: v4.unwrap_or_default(),
                v6: v6.unwrap_or_default(),
                action,
                stateful: b.stateful,
                state_only: b.state_only,
                assumed: false,
                handle: handle.and_then(|h| u64::try_from(h).ok()),
            });
        };
        let epath = Path::Key(&path, "expr");
        for (j, e) in exprs.iter().enumerate() {
            let ep = Path::Index(&epath, j);
            if done {
                return Err(err(&scope, e, &ep, ErrorKind::StatementAfterVerdict));
            }
            let Some(obj) = e.as_object().filter(|m| m.len() == 1) else {
                return Err(err(
                    &scope,
                    e,
                    &ep,
                    ErrorKind::Expected { expected: Expected::StatementObject, found: show(e) },
                ));
            };
            let (k, sv) = (&obj[0].0, &obj[0].1);
            match *k {
                "match" => apply_match(&scope, &mut b, sv, &Path::Key(&ep, "match"))?,
                "vmap" => {
                    let key = sv.get("key").ok_or_else(|| err(&scope, sv, &ep, Missing::VmapKey))?;
                    let data = sv.get("data").ok_or_else(|| err(&scope, sv, &ep, Missing::VmapData))?;
                    let elems: Vec<&Json> = if let Some(name) =
                        data.as_str().and_then(|d| d.strip_prefix('@'))
                    {
                        let key = (fam.to_string(), tname.to_string(), name.to_string());
                        let m = sets.get(&key).ok_or_else(|| {
                            err(&scope, data, &ep, ErrorKind::UndefinedMap { name: name.to_string() })
                        })?;
                        m.get("elem").and_then(Json::as_array).map(|a| a.iter().collect()).unwrap_or_default()
                    } else {
                        data.get("set")
                            .and_then(Json::as_array)
                            .map(|a| a.iter().collect())
                            .ok_or_else(|| err(&scope, data, &ep, ErrorKind::BadVmapData))?
                    };
                    let vmap_path = Path::Key(&ep, "vmap");
                    let data_path = Path::Key(&vmap_path, "data");
                    for (n, pair) in elems.iter().enumerate() {
                        let pp = Path::Index(&data_path, n);
                        let pr = pair
                            .as_array()
                            .filter(|a| a.len() == 2)
                            .ok_or_else(|| err(&scope, pair, &pp, ErrorKind::BadVmapElement))?;
                        let action = verdict(&scope, &pr[1], &pp, &cindex[ti])?
                            .ok_or_else(|| err(&scope, &pr[1], &pp, ErrorKind::VmapValueNotVerdict))?;
                        let members = [
                            ("op", Json { pos: pair.pos, v: Value::String("==") }),
                            ("left", *key),
                            ("right", pr[0]),
                        ];
                        let synthetic = Json { pos: pair.pos, v: Value::Object(&members) };
                        let mut bb = b.clone();
                        apply_match(&scope, &mut bb, &synthetic, &pp)?;
                        let l = loc(&file, pair, &pp);
                        let text = own.as_ref().map_or("", |(_, t)| t.as_str());
                        let text = format!("{text} (vmap element {})", show(&pr[0]));
                        push(bb, action, l, text, &mut tables[ti].chains);
                    }
                    done = true;
                }
                "limit" | "quota" => b.stateful.push(format!("{k} statement")),
                "ct count" => b.stateful.push("ct count".into()),
                _ => match verdict(&scope, e, &ep, &cindex[ti])? {
                    Some(a) => {
                        // a NAT statement to an address translates only that address' family
                        if let Action::Dnat { to: Some(addr), .. } = &a {
                            let keep = if addr.is_ipv6() { 1 } else { 0 };
                            b.fam[1 - keep] = None;
                        }
                        if matches!(a, Action::Dnat { .. } | Action::Redirect { .. } | Action::Snat)
                            && tables[ti].chains[ci].hook.is_some()
                            && tables[ti].chains[ci].kind != ChainKind::Nat
                        {
                            return Err(err(&scope, e, &ep, ErrorKind::NatOutsideNatChain));
                        }
                        if let Some((l, text)) = own.take() {
                            push(std::mem::take(&mut b), a, l, text, &mut tables[ti].chains);
                        }
                        done = true;
                    }
                    None if NEUTRAL.contains(k) => {}
                    None => {
                        return Err(err(&scope, e, &ep, Unsupported::Statement { name: k.to_string() }));
                    }
                },
            }
        }
        if !done && let Some((l, text)) = own.take() {
            push(b, Action::Continue, l, text, &mut tables[ti].chains);
        }
    }
    if tables.is_empty() && notes.is_empty() {
        return Err(err_at(&file, doc, &Path::Text("$.nftables"), ErrorKind::EmptyRuleset));
    }
    Ok(Ruleset { file: file.to_string(), format: Format::NftJson, tables, separate_tables: false, notes })
}

fn err_at(file: &Arc<str>, j: &Json, path: &Path, kind: impl Into<ErrorKind>) -> Error {
    Error::syntax(loc(file, j, path), kind.into())
}

/// A short rendering of a rule's expressions, in nft's words where easy.
fn render_rule(exprs: &[Json]) -> String {
    // written into one string (not a string per part joined): every rule of the file has one
    fn val(out: &mut String, j: &Json) {
        match &j.v {
            Value::String(s) => out.push_str(s),
            Value::Number(n) => out.push_str(n),
            Value::Array(a) => {
                out.push_str("{ ");
                join(out, a, ", ");
                out.push_str(" }");
            }
            Value::Object(m) if m.len() == 1 => {
                let (k, v) = (&m[0].0, &m[0].1);
                let s = |key: &str| v.get(key).and_then(Json::as_str).unwrap_or("?");
                // writing to a String does not fail
                let _ = match *k {
                    "payload" => write!(out, "{} {}", s("protocol"), s("field")),
                    "meta" => write!(out, "meta {}", s("key")),
                    "ct" => write!(out, "ct {}", s("key")),
                    "prefix" => {
                        write!(out, "{}/{}", s("addr"), v.get("len").and_then(Json::as_i64).unwrap_or(0))
                    }
                    "range" | "concat" => {
                        match v.as_array() {
                            Some(r) => join(out, r, if *k == "range" { "-" } else { " . " }),
                            None => out.push('?'),
                        }
                        Ok(())
                    }
                    "set" => {
                        val(out, v);
                        Ok(())
                    }
                    "jump" | "goto" => write!(out, "{k} {}", s("target")),
                    _ => {
                        out.push_str(k);
                        Ok(())
                    }
                };
            }
            _ => out.push('?'),
        }
    }
    fn join(out: &mut String, items: &[Json], sep: &str) {
        for (i, x) in items.iter().enumerate() {
            if i > 0 {
                out.push_str(sep);
            }
            val(out, x);
        }
    }
    let mut out = String::new();
    let mut first = true;
    for e in exprs {
        let Some(m) = e.as_object().filter(|m| m.len() == 1) else { continue };
        let (k, v) = (&m[0].0, &m[0].1);
        if *k == "counter" {
            continue;
        }
        if !first {
            out.push(' ');
        }
        first = false;
        match *k {
            "match" => {
                let op = v.get("op").and_then(Json::as_str).unwrap_or("==");
                if let Some(l) = v.get("left") {
                    val(&mut out, l);
                }
                out.push(' ');
                if op != "==" && op != "in" {
                    out.push_str(op);
                    out.push(' ');
                }
                if let Some(r) = v.get("right") {
                    val(&mut out, r);
                }
            }
            "vmap" => {
                if let Some(key) = v.get("key") {
                    val(&mut out, key);
                }
                out.push_str(" vmap ");
                if let Some(data) = v.get("data") {
                    val(&mut out, data);
                }
            }
            "dnat" => {
                out.push_str("dnat to ");
                if let Some(addr) = v.get("addr") {
                    val(&mut out, addr);
                }
                if let Some(p) = v.get("port") {
                    out.push(':');
                    val(&mut out, p);
                }
            }
            _ => val(&mut out, e),
        }
    }
    out
}

/// Reads an `ip saddr`-style address in `a.b.c.d` form for rewriting (used by `verify`).
pub fn addr_value(s: &str) -> Option<IntervalSet> {
    let (a, l) = s.split_once('/').map_or((s, None), |(a, l)| (a, Some(l)));
    let ip: IpAddr = a.parse().ok()?;
    let len = match l {
        Some(l) => l.parse().ok()?,
        None => {
            if ip.is_ipv6() {
                128
            } else {
                32
            }
        }
    };
    let _ = ip_to_u128(ip);
    Some(prefix(ip, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table `inet f` with a filter input chain and one rule of `expr`.
    fn doc(expr: &str) -> String {
        format!(
            r#"{{"nftables":[{{"table":{{"family":"inet","name":"f"}}}},
{{"chain":{{"family":"inet","table":"f","name":"in","hook":"input","prio":0,"policy":"drop","type":"filter"}}}},
{{"rule":{{"family":"inet","table":"f","chain":"in","expr":{expr}}}}}]}}"#
        )
    }

    #[test]
    fn errors_are_named_kinds_worded_as_before() {
        let saddr = r#"{"payload":{"protocol":"ip","field":"saddr"}}"#;
        let cases: Vec<(String, &str, fn(&ErrorKind) -> bool)> = vec![
            (
                doc(&format!(r#"[{{"match":{{"op":"==","left":{saddr},"right":"10.1.2"}}}}]"#)),
                r#"bad address "10.1.2""#,
                |k| matches!(k, ErrorKind::BadValue { what: ValueKind::Address, text } if text == "10.1.2"),
            ),
            (
                doc(r#"[{"jump":{"target":"x"}}]"#),
                r#"jump to chain "x", which table inet f does not have"#,
                |k| matches!(k, ErrorKind::UnknownJumpTarget { statement: "jump", chain, .. } if chain == "x"),
            ),
            (
                doc(&format!(r#"[{{"match":{{"op":"==","left":{saddr},"right":"@s"}}}}]"#)),
                "set @s is not defined in table inet f",
                |k| matches!(k, ErrorKind::UndefinedSet { name, table: Some(t) } if name == "s" && t == "inet f"),
            ),
            (
                doc(r#"[{"bogus":null}]"#),
                r#"statement "bogus" is not supported"#,
                |k| matches!(k, ErrorKind::Unsupported(Unsupported::Statement { name }) if name == "bogus"),
            ),
            (doc(&format!(r#"[{{"match":{{"op":"==","left":{saddr}}}}}]"#)), "match without right", |k| {
                matches!(k, ErrorKind::Missing(Missing::MatchSide { side: "right" }))
            }),
            (
                doc("[42]"),
                "expected a statement object, found 42",
                |k| matches!(k, ErrorKind::Expected { expected: Expected::StatementObject, found } if found == "42"),
            ),
            (
                r#"{"nftables":[{"table":{"family":"inet"}}]}"#.to_string(),
                r#"table needs a string "name""#,
                |k| matches!(k, ErrorKind::Missing(Missing::String { object, key: "name" }) if object == "table"),
            ),
            (r#"{"nftables":[]}"#.to_string(), "no tables: the rule set is empty", |k| {
                matches!(k, ErrorKind::EmptyRuleset)
            }),
        ];
        for (text, message, is_kind) in cases {
            let e = parse(&text, "f.json").unwrap_err();
            let kind = e.kind().expect("a syntax error");
            assert!(is_kind(kind), "{kind:?}");
            assert_eq!(kind.to_string(), message);
            assert!(e.to_string().ends_with(&format!("): {message}")), "{e}");
        }
    }
}
