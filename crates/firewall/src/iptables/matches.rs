//! Match modules (`-m NAME`) and their options, one handler per module.
//!
//! Modules are either modelled exactly (tcp, udp, multiport, conntrack/state, iprange, set,
//! icmp, addrtype, pkttype, comment), or known to depend on state the analysis does not see
//! ([`STATEFUL`]), which is recorded on the rule. An unknown module is an error naming it.

use super::rule::{Conditions, LineContext, OptionAt};
use super::values;
use crate::error::{ErrorKind, Result};
use crate::ipset::{Dir, SetError};
use crate::model::*;
use crate::sets::IntervalSet;

/// Modules whose conditions depend on state the analysis does not model.
const STATEFUL: &[&str] = &[
    "limit",
    "hashlimit",
    "recent",
    "connlimit",
    "mark",
    "connmark",
    "string",
    "length",
    "time",
    "statistic",
    "owner",
    "u32",
    "socket",
    "helper",
    "physdev",
    "mac",
    "rpfilter",
    "policy",
    "ttl",
    "hl",
    "tos",
    "dscp",
    "ecn",
    "devgroup",
    "cgroup",
    "quota",
    "connbytes",
    "realm",
    "cluster",
    "bpf",
    "nfacct",
    "osf",
    "conntrack-extra",
    "frag",
    "rt",
    "hbh",
    "dst",
    "ipv6header",
    "mh",
    "esp",
    "ah",
    "ipvs",
    "cpu",
    "ipcomp",
    "l2tp",
    "sctp-chunks",
];

/// Modules whose options are modelled.
const MODELLED: &[&str] = &[
    "tcp",
    "udp",
    "sctp",
    "udplite",
    "dccp",
    "icmp",
    "icmp6",
    "icmpv6",
    "multiport",
    "conntrack",
    "state",
    "iprange",
    "set",
    "comment",
    "addrtype",
    "pkttype",
];

/// `-m NAME`: the module's name, lower case; a stateful module is recorded on the rule.
pub(super) fn module(line: &LineContext, at: &OptionAt, conditions: &mut Conditions) -> Result<String> {
    let v = at.value(line)?;
    let m = v.text.to_ascii_lowercase();
    let stateful = STATEFUL.contains(&m.as_str());
    if !stateful && !MODELLED.contains(&m.as_str()) {
        return Err(line
            .error(v, ErrorKind::UnknownModule { module: m, stateful: STATEFUL[..8].join(", ") + ", ..." }));
    }
    if stateful {
        conditions.stateful.push(format!("-m {m}"));
    }
    Ok(m)
}

/// One option of `module` (a `-m` module or the `-p` protocol's): how many tokens it takes,
/// or `None` when the module has no such option.
pub(super) fn option(
    line: &LineContext,
    module: &str,
    at: &OptionAt,
    conditions: &mut Conditions,
) -> Result<Option<usize>> {
    match module {
        "tcp" => tcp(line, at, conditions),
        "udp" | "sctp" | "udplite" | "dccp" => ports(line, at, conditions),
        "multiport" => multiport(line, at, conditions),
        "icmp" => icmp(line, at, conditions, "--icmp-type"),
        "icmp6" | "icmpv6" => icmp(line, at, conditions, "--icmpv6-type"),
        "conntrack" => conntrack(line, at, conditions),
        "state" => state(line, at, conditions),
        "iprange" => iprange(line, at, conditions),
        "set" => set(line, at, conditions),
        "comment" => comment(line, at, conditions),
        "addrtype" => addrtype(line, at, conditions),
        "pkttype" => pkttype(line, at, conditions),
        m if STATEFUL.contains(&m) => Ok(Some(at.with_all_values())),
        _ => Ok(None),
    }
}

/// `--dport` / `--sport` of tcp, udp, sctp, udplite and dccp.
fn ports(line: &LineContext, at: &OptionAt, conditions: &mut Conditions) -> Result<Option<usize>> {
    let o = at.name();
    if !matches!(o, "--dport" | "--destination-port" | "--sport" | "--source-port") {
        return Ok(None);
    }
    let mut s = values::ports(line, at.value(line)?, false)?;
    if at.negated {
        s = s.complement(65535);
    }
    if o.contains('d') && !o.contains("source") {
        and_set(&mut conditions.base.dport, s);
    } else {
        and_set(&mut conditions.base.sport, s);
    }
    Ok(Some(2))
}

/// `-m tcp`: ports, `--syn`, `--tcp-flags`, `--tcp-option`.
fn tcp(line: &LineContext, at: &OptionAt, conditions: &mut Conditions) -> Result<Option<usize>> {
    match at.name() {
        "--syn" => {
            // the first packet of a new connection is a SYN
            if at.negated {
                conditions.never = true;
            }
            Ok(Some(1))
        }
        "--tcp-flags" => {
            let mask = values::tcp_flags(line, at.value(line)?)?;
            let comp_token = at.rest.get(1).ok_or_else(|| {
                line.error(
                    at.option,
                    ErrorKind::MissingValues { option: at.name().to_string(), values: "MASK and COMP" },
                )
            })?;
            let comp = values::tcp_flags(line, comp_token)?;
            if ((2 & mask) == comp) == at.negated {
                conditions.never = true;
            }
            Ok(Some(3))
        }
        "--tcp-option" => {
            conditions.stateful.push("--tcp-option".into());
            Ok(Some(2))
        }
        _ => ports(line, at, conditions),
    }
}

/// `-m multiport`: up to 15 ports or ranges (`--dports`, `--sports`, `--ports` for either).
fn multiport(line: &LineContext, at: &OptionAt, conditions: &mut Conditions) -> Result<Option<usize>> {
    let o = at.name();
    if !matches!(o, "--dports" | "--destination-ports" | "--sports" | "--source-ports" | "--ports") {
        return Ok(None);
    }
    let mut s = values::ports(line, at.value(line)?, true)?;
    if at.negated {
        s = s.complement(65535);
    }
    if conditions
        .base
        .proto
        .as_ref()
        .is_none_or(|p| !PORT_PROTOS.iter().any(|&pp| p.contains(u128::from(pp))) || p.count() != 1)
    {
        return Err(line.error(at.option, ErrorKind::MultiportWithoutProtocol));
    }
    match o {
        "--dports" | "--destination-ports" => and_set(&mut conditions.base.dport, s),
        "--sports" | "--source-ports" => and_set(&mut conditions.base.sport, s),
        _ if at.negated => {
            and_set(&mut conditions.base.dport, s.clone());
            and_set(&mut conditions.base.sport, s);
        }
        _ => conditions.alternatives.push(vec![
            Cube { dport: Some(s.clone()), ..Cube::default() },
            Cube { sport: Some(s), ..Cube::default() },
        ]),
    }
    Ok(Some(2))
}

/// `-m icmp --icmp-type` / `-m icmp6 --icmpv6-type`: `any`, `TYPE[/CODE]` or a name.
fn icmp(
    line: &LineContext,
    at: &OptionAt,
    conditions: &mut Conditions,
    option: &str,
) -> Result<Option<usize>> {
    if at.name() != option {
        return Ok(None);
    }
    let v = at.value(line)?;
    let span = if v.text == "any" {
        IntervalSet::range(0, 65535)
    } else {
        let (ty, code) = v.text.split_once('/').map_or((v.text.as_str(), None), |(a, b)| (a, Some(b)));
        let (type_number, named_code) = match ty.parse::<u8>() {
            Ok(n) => (n, None),
            Err(_) => {
                icmp_type(ty, line.family.is_v6()).ok_or_else(|| line.error(v, ErrorKind::UnknownIcmpType))?
            }
        };
        let code = match code {
            Some(c) => Some(c.parse::<u8>().map_err(|_| line.error(v, ErrorKind::BadIcmpCode))?),
            None => named_code,
        };
        icmp_span(type_number, code)
    };
    and_set(&mut conditions.base.dport, if at.negated { span.complement(65535) } else { span });
    Ok(Some(2))
}

/// `-m conntrack`: `--ctstate`, `--ctdir`, `--ctproto`; the rest depend on state.
fn conntrack(line: &LineContext, at: &OptionAt, conditions: &mut Conditions) -> Result<Option<usize>> {
    let o = at.name();
    match o {
        "--ctstate" => states(line, at, conditions),
        "--ctdir" => {
            let v = at.value(line)?;
            if (v.text.eq_ignore_ascii_case("ORIGINAL")) == at.negated {
                conditions.never = true;
            }
            Ok(Some(2))
        }
        "--ctproto" => {
            let v = at.value(line)?;
            let n =
                proto_number(&v.text).ok_or_else(|| line.error(v, ErrorKind::UnknownConntrackProtocol))?;
            let s = IntervalSet::single(u128::from(n));
            and_set(&mut conditions.base.proto, if at.negated { s.complement(255) } else { s });
            Ok(Some(2))
        }
        "--ctorigdst" | "--ctorigsrc" | "--ctorigsrcport" | "--ctorigdstport" | "--ctstatus"
        | "--ctexpire" | "--ctrepldst" | "--ctreplsrc" | "--ctreplsrcport" | "--ctrepldstport" => {
            conditions.stateful.push(format!("conntrack {o}"));
            Ok(Some(2))
        }
        _ => Ok(None),
    }
}

/// `-m state --state`.
fn state(line: &LineContext, at: &OptionAt, conditions: &mut Conditions) -> Result<Option<usize>> {
    if at.name() != "--state" {
        return Ok(None);
    }
    states(line, at, conditions)
}

/// The states of `--ctstate` / `--state`: whether they allow the first packet of a new
/// connection.
fn states(line: &LineContext, at: &OptionAt, conditions: &mut Conditions) -> Result<Option<usize>> {
    let v = at.value(line)?;
    let mut has_new = false;
    let mut translated = false;
    for s in v.text.split(',') {
        match s.to_ascii_uppercase().as_str() {
            "NEW" => has_new = true,
            "ESTABLISHED" | "RELATED" | "INVALID" | "UNTRACKED" => {}
            "SNAT" | "DNAT" => translated = true,
            _ => return Err(line.error(v, ErrorKind::UnknownConntrackState { state: s.to_string() })),
        }
    }
    if translated && !has_new {
        // DNAT/SNAT: only translated flows; the analysis' packets are untranslated
        if !at.negated {
            conditions.never = true;
            conditions.state_only = true;
        }
        return Ok(Some(2));
    }
    if has_new == at.negated {
        // matches only packets of existing (or invalid, untracked) flows, never a new one
        conditions.never = true;
        conditions.state_only = true;
    }
    Ok(Some(2))
}

/// `-m iprange --src-range / --dst-range FIRST-LAST`.
fn iprange(line: &LineContext, at: &OptionAt, conditions: &mut Conditions) -> Result<Option<usize>> {
    let slot = match at.name() {
        "--src-range" => &mut conditions.base.src,
        "--dst-range" => &mut conditions.base.dst,
        _ => return Ok(None),
    };
    let mut s = values::address_range(line, at.value(line)?)?;
    if at.negated {
        s = s.complement(line.address_max());
    }
    and_set(slot, s);
    Ok(Some(2))
}

/// `-m set --match-set NAME src|dst[,...]`, with the sets of the `ipset save` input.
fn set(line: &LineContext, at: &OptionAt, conditions: &mut Conditions) -> Result<Option<usize>> {
    let o = at.name();
    match o {
        "--match-set" => {}
        "--return-nomatch" | "--update-counters" | "--update-subcounters" => return Ok(Some(1)),
        "--packets-eq" | "--packets-lt" | "--packets-gt" | "--bytes-eq" | "--bytes-lt" | "--bytes-gt" => {
            conditions.stateful.push(format!("set {o}"));
            return Ok(Some(2));
        }
        _ => return Ok(None),
    }
    let name = at.value(line)?;
    let flags = at.rest.get(1).ok_or_else(|| {
        line.error(
            at.option,
            ErrorKind::MissingValues { option: at.name().to_string(), values: "NAME and FLAGS (src/dst)" },
        )
    })?;
    let mut dirs = Vec::new();
    for f in flags.text.split(',') {
        dirs.push(match f {
            "src" => Dir::Src,
            "dst" => Dir::Dst,
            _ => return Err(line.error(flags, ErrorKind::BadSetFlags)),
        });
    }
    let sets = line
        .ipsets
        .ok_or_else(|| line.error(name, ErrorKind::Set(SetError::Undefined(name.text.clone()))))?;
    if let Some(set_v6) = sets.is_v6(&name.text)
        && set_v6 != line.family.is_v6()
    {
        return Err(line.error(name, ErrorKind::SetFamilyMismatch));
    }
    let cubes = sets.cubes(&name.text, &dirs, 0).map_err(|m| line.error(name, ErrorKind::Set(m)))?;
    if at.negated {
        if cubes.len() != 1 || cubes[0].iif.len() + cubes[0].oif.len() > 0 {
            return Err(line.error(name, ErrorKind::NegatedMultiDimensionSet));
        }
        let max = line.address_max();
        let mut c = Cube::default();
        if let Some(s) = &cubes[0].src {
            c.src = Some(s.complement(max));
        }
        if let Some(s) = &cubes[0].dst {
            c.dst = Some(s.complement(max));
        }
        conditions.base = conditions.base.and(&c);
    } else if cubes.len() == 1 {
        conditions.base = conditions.base.and(&cubes[0]);
    } else {
        conditions.alternatives.push(cubes);
    }
    Ok(Some(3))
}

/// `-m comment --comment TEXT`.
fn comment(line: &LineContext, at: &OptionAt, conditions: &mut Conditions) -> Result<Option<usize>> {
    if at.name() != "--comment" {
        return Ok(None);
    }
    conditions.comment = Some(at.value(line)?.text.clone());
    Ok(Some(2))
}

/// `-m addrtype --dst-type / --src-type`.
fn addrtype(line: &LineContext, at: &OptionAt, conditions: &mut Conditions) -> Result<Option<usize>> {
    match at.name() {
        "--dst-type" => {
            let v = at.value(line)?;
            // the analysis is of unicast traffic to one of this machine's addresses
            let local = v.text.split(',').any(|x| x.eq_ignore_ascii_case("LOCAL"));
            let unicast = v.text.split(',').any(|x| x.eq_ignore_ascii_case("UNICAST"));
            conditions.assumed = true;
            if (local || unicast) == at.negated {
                conditions.never = true;
                conditions.state_only = true;
            }
            Ok(Some(2))
        }
        "--src-type" => {
            let v = at.value(line)?;
            conditions.stateful.push(format!("addrtype --src-type {}", v.text));
            Ok(Some(2))
        }
        "--limit-iface-in" | "--limit-iface-out" => Ok(Some(1)),
        _ => Ok(None),
    }
}

/// `-m pkttype --pkt-type`.
fn pkttype(line: &LineContext, at: &OptionAt, conditions: &mut Conditions) -> Result<Option<usize>> {
    if at.name() != "--pkt-type" {
        return Ok(None);
    }
    let v = at.value(line)?;
    conditions.assumed = true;
    if v.text.eq_ignore_ascii_case("unicast") == at.negated {
        conditions.never = true;
        conditions.state_only = true;
    }
    Ok(Some(2))
}
