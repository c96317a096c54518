//! The values of options: addresses, address ranges, ports and TCP flags.

use std::net::IpAddr;

use super::rule::LineContext;
use super::tokenize::Token;
use crate::error::{ErrorKind, Result};
use crate::sets::{IntervalSet, prefix};

/// One address or prefix (`a.b.c.d`, `a.b.c.d/len`, `a.b.c.d/netmask`) of the token.
pub(super) fn address(line: &LineContext, token: &Token, one: &str) -> Result<IntervalSet> {
    let v6 = line.family.is_v6();
    let (a, len) = match one.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (one, None),
    };
    let ip: IpAddr =
        a.parse().map_err(|_| line.error(token, ErrorKind::BadAddress { text: one.to_string() }))?;
    if ip.is_ipv6() != v6 {
        return Err(line.error(
            token,
            ErrorKind::FamilyMismatch {
                text: one.to_string(),
                address_v6: ip.is_ipv6(),
                family: line.family,
            },
        ));
    }
    let bits = if v6 { 128u32 } else { 32 };
    let len: u8 = match len {
        None => bits as u8,
        Some(l) => {
            if let Ok(n) = l.parse::<u32>() {
                if n > bits {
                    return Err(line.error(token, ErrorKind::PrefixTooLong { length: n, bits }));
                }
                n as u8
            } else if let Ok(IpAddr::V4(m)) = l.parse::<IpAddr>() {
                let m = u32::from(m);
                if m.leading_ones() + m.trailing_zeros() != 32 {
                    return Err(line.error(token, ErrorKind::NetmaskNotContiguous { mask: l.to_string() }));
                }
                m.leading_ones() as u8
            } else {
                return Err(line.error(token, ErrorKind::BadPrefixLength { text: one.to_string() }));
            }
        }
    };
    Ok(prefix(ip, len))
}

/// A comma-separated list of addresses (`-s 10.0.0.0/8,192.168.0.0/16`).
pub(super) fn addresses(line: &LineContext, token: &Token) -> Result<IntervalSet> {
    let mut s = IntervalSet::empty();
    for one in token.text.split(',') {
        s = s.union(&address(line, token, one)?);
    }
    Ok(s)
}

/// `FIRST-LAST` (`-m iprange`).
pub(super) fn address_range(line: &LineContext, token: &Token) -> Result<IntervalSet> {
    let (a, b) = token.text.split_once('-').ok_or_else(|| line.error(token, ErrorKind::NotARange))?;
    let a = address(line, token, a)?.first().unwrap_or(0);
    let b = address(line, token, b)?.first().unwrap_or(0);
    if a > b {
        return Err(line.error(token, ErrorKind::ReversedAddressRange));
    }
    Ok(IntervalSet::range(a, b))
}

/// One port, a number or a service name.
fn port(line: &LineContext, token: &Token, p: &str) -> Result<u16> {
    if let Ok(n) = p.parse::<u16>() {
        return Ok(n);
    }
    if let Some((lo, _)) = portolan_registry::by_name(p).into_iter().find_map(|e| e.ports()) {
        return Ok(lo);
    }
    Err(line.error(token, ErrorKind::BadPort { text: p.to_string() }))
}

/// A port or range (`80`, `1000:2000`, `:1024`), or with `multi` a comma-separated list of
/// them (`-m multiport`, at most 15).
pub(super) fn ports(line: &LineContext, token: &Token, multi: bool) -> Result<IntervalSet> {
    let mut v = Vec::new();
    let parts: Vec<&str> = if multi { token.text.split(',').collect() } else { vec![token.text.as_str()] };
    if multi && parts.len() > 15 {
        return Err(line.error(token, ErrorKind::TooManyPorts));
    }
    for p in parts {
        let (a, b) = p.split_once(':').unwrap_or((p, p));
        let lo = if a.is_empty() { 0 } else { port(line, token, a)? };
        let hi = if b.is_empty() { 65535 } else { port(line, token, b)? };
        if lo > hi {
            return Err(line.error(token, ErrorKind::ReversedPortRange { text: p.to_string() }));
        }
        v.push((u128::from(lo), u128::from(hi)));
    }
    Ok(IntervalSet::from_intervals(v))
}

const TCP_FLAGS: [(&str, u8); 8] =
    [("FIN", 1), ("SYN", 2), ("RST", 4), ("PSH", 8), ("ACK", 16), ("URG", 32), ("ECE", 64), ("CWR", 128)];

/// A comma-separated list of TCP flags (`SYN,ACK`, `ALL`, `NONE`) as a bit mask.
pub(super) fn tcp_flags(line: &LineContext, token: &Token) -> Result<u8> {
    let mut v = 0u8;
    for f in token.text.split(',') {
        v |= match f.to_ascii_uppercase().as_str() {
            "ALL" => 0xff,
            "NONE" => 0,
            u => TCP_FLAGS
                .iter()
                .find(|(n, _)| *n == u)
                .map(|x| x.1)
                .ok_or_else(|| line.error(token, ErrorKind::UnknownTcpFlag { flag: f.to_string() }))?,
        };
    }
    Ok(v)
}
