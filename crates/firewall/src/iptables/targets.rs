//! Targets (`-j` / `-g`) and their options: verdicts, jumps to user chains, NAT.

use std::collections::HashMap;
use std::net::IpAddr;

use super::rule::{LineContext, OptionAt};
use super::tokenize::Token;
use super::values;
use crate::error::{ErrorKind, Result};
use crate::model::Action;

/// Targets that let the packet go on to the next rule.
const CONTINUING: &[&str] = &[
    "LOG",
    "NFLOG",
    "ULOG",
    "MARK",
    "CONNMARK",
    "CT",
    "NOTRACK",
    "TCPMSS",
    "TRACE",
    "CHECKSUM",
    "SET",
    "CLASSIFY",
    "DSCP",
    "TOS",
    "TTL",
    "HL",
    "AUDIT",
    "SECMARK",
    "CONNSECMARK",
    "TEE",
    "IDLETIMER",
    "LED",
    "RATEEST",
    "TCPOPTSTRIP",
    "ECN",
    "HMARK",
    "SYNPROXY",
];

/// `-j TARGET [--option VALUE...]` or `-g CHAIN`: the action and how many tokens it takes.
pub(super) fn target(
    line: &LineContext,
    at: &OptionAt,
    chains: &HashMap<String, usize>,
    table: &str,
) -> Result<(Action, usize)> {
    let v = at.value(line)?;
    if at.negated {
        return Err(line.error(at.option, ErrorKind::NegatedTarget));
    }
    let goto = matches!(at.name(), "-g" | "--goto");
    // the target's options: each `--name` with the values up to the next option
    let mut to_destination: Option<&Token> = None;
    let mut to_ports: Option<&Token> = None;
    let mut i = 1;
    while i < at.rest.len() && at.rest[i].text.starts_with("--") {
        let mut j = i + 1;
        while j < at.rest.len() && !at.rest[j].text.starts_with('-') && at.rest[j].text != "!" {
            j += 1;
        }
        match at.rest[i].text.as_str() {
            "--to-destination" => to_destination = at.rest.get(i + 1),
            "--to-ports" | "--to-port" => to_ports = at.rest.get(i + 1),
            _ => {}
        }
        i = j;
    }
    let name = v.text.as_str();
    let action = match name {
        "ACCEPT" => Action::Accept,
        "DROP" => Action::Drop,
        "REJECT" => Action::Reject,
        "RETURN" => Action::Return,
        "QUEUE" | "NFQUEUE" => Action::Queue,
        "SNAT" | "MASQUERADE" | "NETMAP" => Action::Snat,
        "DNAT" => {
            let d = to_destination.ok_or_else(|| line.error(v, ErrorKind::DnatWithoutDestination))?;
            let (to, ports) = nat_destination(line, d)?;
            Action::Dnat { to, ports }
        }
        "REDIRECT" | "TPROXY" => Action::Redirect { ports: redirect_ports(line, to_ports)? },
        n if CONTINUING.contains(&n) => Action::Continue,
        n => match chains.get(n) {
            Some(&c) if goto => Action::Goto(c),
            Some(&c) => Action::Jump(c),
            None => {
                return Err(line
                    .error(v, ErrorKind::UnknownTarget { target: n.to_string(), table: table.to_string() }));
            }
        },
    };
    if matches!(action, Action::Dnat { .. } | Action::Redirect { .. } | Action::Snat) && table != "nat" {
        return Err(line.error(v, ErrorKind::NatOutsideNatTable { target: name.to_string() }));
    }
    Ok((action, 1 + i))
}

/// `--to-ports PORT[-PORT]` of REDIRECT and TPROXY.
fn redirect_ports(line: &LineContext, to_ports: Option<&Token>) -> Result<Option<(u16, u16)>> {
    let Some(p) = to_ports else { return Ok(None) };
    let s = values::ports(line, &Token { text: p.text.replace('-', ":"), ..p.clone() }, false)?;
    Ok(s.intervals().first().map(|&(a, b)| (a as u16, b as u16)))
}

/// `--to-destination [ip][-ip][:port[-port]]` (IPv6 as `[addr]:port`).
fn nat_destination(line: &LineContext, token: &Token) -> Result<(Option<IpAddr>, Option<(u16, u16)>)> {
    let s = token.text.as_str();
    let (addr, ports) = if let Some(rest) = s.strip_prefix('[') {
        let (a, r) = rest.split_once(']').ok_or_else(|| line.error(token, ErrorKind::UnclosedBracket))?;
        (a, r.strip_prefix(':'))
    } else if line.family.is_v6() {
        (s, None)
    } else {
        match s.split_once(':') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        }
    };
    let addr = addr.split('-').next().unwrap_or("");
    let to = if addr.is_empty() {
        None
    } else {
        Some(addr.parse::<IpAddr>().map_err(|_| line.error(token, ErrorKind::BadNatAddress))?)
    };
    let ports = match ports {
        Some(p) => {
            let (a, b) = p.split_once('-').unwrap_or((p, p));
            let a: u16 = a.parse().map_err(|_| line.error(token, ErrorKind::BadNatPort))?;
            let b: u16 = b.parse().map_err(|_| line.error(token, ErrorKind::BadNatPort))?;
            Some((a, b))
        }
        None => None,
    };
    Ok((to, ports))
}
