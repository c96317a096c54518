//! Target specifications as nmap users write them, kept as sorted interval sets so that
//! duplicates collapse, exclusions subtract exactly, counts are exact, and a /8 or an IPv6 /64
//! is never expanded in memory: addresses are produced lazily.
//!
//! Accepted: `198.18.0.5`, `2001:db8::1`, `198.18.0.0/24`, `2001:db8::/120`,
//! `198.18.0.1-20` (last octet range), `198.18.0-3.1` and `198.18.1,3.7` (nmap octet lists and
//! ranges in any octet), and host names (resolved once, first address).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};

use crate::{Error, Result};

/// Most intervals one octet pattern may produce (a pattern like `1-255.1-255.1-255.1` would
/// make 16 million): beyond this, use CIDR notation.
const MAX_PATTERN_INTERVALS: usize = 1 << 20;

/// A set of addresses: sorted, disjoint, inclusive intervals per family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
    /// Names the user gave, by the address they resolved to.
    names: BTreeMap<IpAddr, String>,
    /// Names resolve to their IPv6 address (nmap's `-6`).
    ipv6: bool,
}

fn normalize<T: Copy + Ord + num::One>(mut v: Vec<(T, T)>) -> Vec<(T, T)> {
    v.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
    for (lo, hi) in v {
        if let Some(last) = out.last_mut() {
            // merge overlapping or adjacent intervals
            if lo <= last.1 || (last.1 < T::max_value() && lo == last.1.add_one()) {
                if hi > last.1 {
                    last.1 = hi;
                }
                continue;
            }
        }
        out.push((lo, hi));
    }
    out
}

fn subtract<T: Copy + Ord + num::One>(set: &[(T, T)], minus: &[(T, T)]) -> Vec<(T, T)> {
    let mut out = Vec::with_capacity(set.len());
    for &(lo, hi) in set {
        let mut cur = lo;
        let mut done = false;
        for &(mlo, mhi) in minus {
            if mhi < cur || mlo > hi {
                continue;
            }
            if mlo > cur {
                out.push((cur, mlo.sub_one()));
            }
            if mhi >= hi {
                done = true;
                break;
            }
            cur = mhi.add_one();
        }
        if !done {
            out.push((cur, hi));
        }
    }
    out
}

/// Tiny numeric helpers for u32 and u128 intervals.
mod num {
    pub trait One: Sized {
        fn add_one(self) -> Self;
        fn sub_one(self) -> Self;
        fn max_value() -> Self;
    }
    impl One for u32 {
        fn add_one(self) -> Self {
            self.saturating_add(1)
        }
        fn sub_one(self) -> Self {
            self.saturating_sub(1)
        }
        fn max_value() -> Self {
            u32::MAX
        }
    }
    impl One for u128 {
        fn add_one(self) -> Self {
            self.saturating_add(1)
        }
        fn sub_one(self) -> Self {
            self.saturating_sub(1)
        }
        fn max_value() -> Self {
            u128::MAX
        }
    }
}

fn bad(spec: &str, reason: impl Into<String>) -> Error {
    Error::BadTarget { spec: spec.to_string(), reason: reason.into() }
}

/// One octet of a pattern: `5`, `1-20`, `1,3,5-7`, `*` or `-` (0-255).
fn octet_set(spec: &str, whole: &str) -> Result<Vec<(u8, u8)>> {
    if spec == "*" || spec == "-" {
        return Ok(vec![(0, 255)]);
    }
    let mut out = Vec::new();
    for part in spec.split(',') {
        let num = |s: &str| -> Result<u8> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(whole, format!("{s:?} is not an octet (0-255)")));
            }
            s.parse::<u16>()
                .ok()
                .and_then(|v| u8::try_from(v).ok())
                .ok_or_else(|| bad(whole, format!("octet {s} is above 255")))
        };
        let (lo, hi) = match part.split_once('-') {
            Some(("", b)) => (0, num(b)?),
            Some((a, "")) => (num(a)?, 255),
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let v = num(part)?;
                (v, v)
            }
        };
        if lo > hi {
            return Err(bad(whole, format!("octet range {part} is empty")));
        }
        out.push((lo, hi));
    }
    Ok(out)
}

fn v4_pattern(spec: &str) -> Result<Vec<(u32, u32)>> {
    let parts: Vec<&str> = spec.split('.').collect();
    if parts.len() != 4 {
        return Err(bad(spec, "expected four octets"));
    }
    let sets: Vec<Vec<(u8, u8)>> = parts.iter().map(|p| octet_set(p, spec)).collect::<Result<_>>()?;
    let count = |s: &Vec<(u8, u8)>| s.iter().map(|(a, b)| usize::from(*b - *a) + 1).sum::<usize>();
    let prefixes = count(&sets[0]) * count(&sets[1]) * count(&sets[2]);
    if prefixes.saturating_mul(sets[3].len()) > MAX_PATTERN_INTERVALS {
        return Err(bad(spec, "the pattern expands to too many ranges; use CIDR notation (e.g. 10.0.0.0/8)"));
    }
    let mut out = Vec::with_capacity(prefixes * sets[3].len());
    for &(a0, a1) in &sets[0] {
        for a in a0..=a1 {
            for &(b0, b1) in &sets[1] {
                for b in b0..=b1 {
                    for &(c0, c1) in &sets[2] {
                        for c in c0..=c1 {
                            let base = u32::from_be_bytes([a, b, c, 0]);
                            for &(d0, d1) in &sets[3] {
                                out.push((base | u32::from(d0), base | u32::from(d1)));
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

fn looks_like_v4_pattern(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b',' | b'*'))
        && s.contains('.')
}

impl TargetSet {
    /// Adds one target specification.
    pub fn add(&mut self, spec: &str) -> Result<()> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(bad(spec, "empty target"));
        }
        if let Some((addr, bits)) = spec.split_once('/') {
            let bits: u32 =
                bits.parse().map_err(|_| bad(spec, format!("prefix length {bits:?} is not a number")))?;
            match addr.parse::<IpAddr>() {
                Ok(IpAddr::V4(a)) => {
                    if bits > 32 {
                        return Err(bad(spec, "an IPv4 prefix is at most /32"));
                    }
                    let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
                    let lo = u32::from(a) & mask;
                    self.v4.push((lo, lo | !mask));
                }
                Ok(IpAddr::V6(a)) => {
                    if bits > 128 {
                        return Err(bad(spec, "an IPv6 prefix is at most /128"));
                    }
                    let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
                    let lo = u128::from(a) & mask;
                    self.v6.push((lo, lo | !mask));
                }
                Err(_) => {
                    // a name with a prefix: resolve, then apply the prefix (nmap allows it)
                    let ip = resolve(addr, self.ipv6)?;
                    self.names.insert(ip, addr.to_string());
                    return self.add(&format!("{ip}/{bits}"));
                }
            }
            return Ok(());
        }
        if let Ok(ip) = spec.parse::<IpAddr>() {
            self.push_ip(ip);
            return Ok(());
        }
        if spec.contains(':') {
            return Err(bad(spec, "not an IPv6 address"));
        }
        if looks_like_v4_pattern(spec) {
            self.v4.extend(v4_pattern(spec)?);
            return Ok(());
        }
        let ip = resolve(spec, self.ipv6)?;
        self.names.insert(ip, spec.to_string());
        self.push_ip(ip);
        Ok(())
    }

    fn push_ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(a) => self.v4.push((u32::from(a), u32::from(a))),
            IpAddr::V6(a) => self.v6.push((u128::from(a), u128::from(a))),
        }
    }

    /// Adds every address of `other` (the union), keeping the set normalized.
    pub fn extend(&mut self, other: &TargetSet) {
        self.v4.extend_from_slice(&other.v4);
        self.v6.extend_from_slice(&other.v6);
        for (ip, n) in &other.names {
            self.names.entry(*ip).or_insert_with(|| n.clone());
        }
        self.normalize();
    }

    /// Merges duplicates and overlaps. Call after the last `add`.
    pub fn normalize(&mut self) {
        self.v4 = normalize(std::mem::take(&mut self.v4));
        self.v6 = normalize(std::mem::take(&mut self.v6));
    }

    /// Removes every address of `other` (both normalized).
    pub fn exclude(&mut self, other: &TargetSet) {
        self.v4 = subtract(&self.v4, &other.v4);
        self.v6 = subtract(&self.v6, &other.v6);
        self.names.retain(|ip, _| match ip {
            IpAddr::V4(a) => self.v4.iter().any(|&(lo, hi)| (lo..=hi).contains(&u32::from(*a))),
            IpAddr::V6(a) => self.v6.iter().any(|&(lo, hi)| (lo..=hi).contains(&u128::from(*a))),
        });
    }

    /// Number of addresses.
    pub fn len(&self) -> u128 {
        let v4: u128 = self.v4.iter().map(|&(lo, hi)| u128::from(hi - lo) + 1).sum();
        let v6: u128 =
            self.v6.iter().map(|&(lo, hi)| (hi - lo).saturating_add(1)).fold(0u128, u128::saturating_add);
        v4.saturating_add(v6)
    }

    /// The first IPv4 address of the set, if it has one.
    pub fn first_v4(&self) -> Option<std::net::Ipv4Addr> {
        self.v4.first().map(|&(lo, _)| std::net::Ipv4Addr::from(lo))
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Whether an address is in the set.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => {
                let v = u32::from(a);
                let i = self.v4.partition_point(|&(_, hi)| hi < v);
                self.v4.get(i).is_some_and(|&(lo, _)| lo <= v)
            }
            IpAddr::V6(a) => {
                let v = u128::from(a);
                let i = self.v6.partition_point(|&(_, hi)| hi < v);
                self.v6.get(i).is_some_and(|&(lo, _)| lo <= v)
            }
        }
    }

    /// The name the user gave for an address, if any.
    pub fn name_of(&self, ip: IpAddr) -> Option<&str> {
        self.names.get(&ip).map(String::as_str)
    }

    /// Every address, IPv4 then IPv6, ascending, produced lazily.
    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let v4 = self.v4.iter().flat_map(|&(lo, hi)| (lo..=hi).map(|v| IpAddr::V4(Ipv4Addr::from(v))));
        let v6 = self.v6.iter().flat_map(|&(lo, hi)| {
            let mut next = Some(lo);
            std::iter::from_fn(move || {
                let cur = next?;
                next = if cur < hi { Some(cur + 1) } else { None };
                Some(IpAddr::V6(Ipv6Addr::from(cur)))
            })
        });
        v4.chain(v6)
    }
}

fn resolve(name: &str, ipv6: bool) -> Result<IpAddr> {
    if name.is_empty()
        || name.len() > 253
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(bad(name, "not an address, CIDR, range or host name"));
    }
    let addrs = (name, 0)
        .to_socket_addrs()
        .map_err(|e| Error::UnknownHost { name: name.to_string(), reason: e.to_string() })?;
    let all: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
    // nmap takes the first IPv4 address unless only IPv6 is available; with -6, the first
    // IPv6 address
    if ipv6 {
        return all.iter().copied().find(IpAddr::is_ipv6).ok_or_else(|| Error::UnknownHost {
            name: name.to_string(),
            reason: "no IPv6 address (-6)".into(),
        });
    }
    all.iter()
        .copied()
        .find(IpAddr::is_ipv4)
        .or_else(|| all.first().copied())
        .ok_or_else(|| Error::UnknownHost { name: name.to_string(), reason: "no address".into() })
}

/// Builds a set from specifications (each may hold several, separated by whitespace or commas
/// between whole targets as in `--exclude a,b`).
pub fn parse_list<'a>(specs: impl IntoIterator<Item = &'a str>, comma_separated: bool) -> Result<TargetSet> {
    parse_list_for(specs, comma_separated, false)
}

/// As [`parse_list`]; with `ipv6` (nmap's `-6`) names resolve to their IPv6 address.
pub fn parse_list_for<'a>(
    specs: impl IntoIterator<Item = &'a str>,
    comma_separated: bool,
    ipv6: bool,
) -> Result<TargetSet> {
    let mut set = TargetSet { ipv6, ..TargetSet::default() };
    for s in specs {
        if comma_separated && !looks_like_v4_pattern(s) {
            for part in s.split(',').filter(|p| !p.trim().is_empty()) {
                set.add(part)?;
            }
        } else if comma_separated && s.split(',').all(|p| p.contains('.') && p.split('.').count() == 4) {
            // "198.18.0.1,198.18.0.9": whole addresses separated by commas
            for part in s.split(',') {
                set.add(part)?;
            }
        } else {
            set.add(s)?;
        }
    }
    set.normalize();
    Ok(set)
}

/// The largest target file read (`-iL`): about ten million addresses.
pub const MAX_TARGET_FILE: u64 = 256 << 20;

/// Reads targets from a file (`-iL`, `--excludefile`): whitespace separated, `#` comments.
pub fn read_file(path: &std::path::Path) -> Result<TargetSet> {
    read_file_for(path, false)
}

/// As [`read_file`]; with `ipv6` (nmap's `-6`) names resolve to their IPv6 address.
pub fn read_file_for(path: &std::path::Path, ipv6: bool) -> Result<TargetSet> {
    let text = portolan_model::input::read_text(path, MAX_TARGET_FILE)?;
    let mut set = TargetSet { ipv6, ..TargetSet::default() };
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("");
        for word in line.split_whitespace() {
            set.add(word).map_err(|e| Error::TargetFile {
                path: path.display().to_string(),
                line: i + 1,
                message: e.to_string(),
            })?;
        }
    }
    set.normalize();
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(specs: &[&str]) -> TargetSet {
        parse_list(specs.iter().copied(), false).unwrap()
    }

    #[test]
    fn cidr_range_and_octet_patterns() {
        assert_eq!(set(&["198.18.0.0/24"]).len(), 256);
        assert_eq!(set(&["198.18.0.5/24"]).len(), 256);
        assert_eq!(set(&["198.18.0.1-20"]).len(), 20);
        assert_eq!(set(&["198.18.0-3.1"]).len(), 4);
        assert_eq!(set(&["198.18.1,3.7"]).len(), 2);
        assert_eq!(set(&["2001:db8::/120"]).len(), 256);
        assert_eq!(set(&["2001:db8::/64"]).len(), 1u128 << 64);
        let ips: Vec<String> = set(&["198.18.0-1.9"]).iter().map(|i| i.to_string()).collect();
        assert_eq!(ips, ["198.18.0.9", "198.18.1.9"]);
    }

    #[test]
    fn duplicates_collapse_and_exclusions_subtract() {
        let mut s = set(&["198.18.0.0/24", "198.18.0.5", "198.18.0.10-20", "198.18.1.0/31"]);
        assert_eq!(s.len(), 258);
        let ex = set(&["198.18.0.0-9", "198.18.0.250/31", "198.18.1.1"]);
        s.exclude(&ex);
        assert_eq!(s.len(), 258 - 10 - 2 - 1);
        assert!(!s.contains("198.18.0.3".parse().unwrap()));
        assert!(s.contains("198.18.0.10".parse().unwrap()));
        assert!(!s.contains("198.18.1.1".parse().unwrap()));
        let mut all = set(&["198.18.0.1"]);
        all.exclude(&set(&["198.18.0.0/24"]));
        assert!(all.is_empty());
    }

    #[test]
    fn iteration_is_lazy_on_huge_sets() {
        let s = set(&["2001:db8::/32"]);
        assert_eq!(s.iter().take(3).count(), 3);
        assert_eq!(s.iter().nth(1).unwrap().to_string(), "2001:db8::1");
    }

    #[test]
    fn bad_targets_are_named() {
        for (t, needle) in [
            ("198.18.0.256", "above 255"),
            ("198.18.0.5/33", "/32"),
            ("2001:db8::/129", "/128"),
            ("198.18.0.9-3", "empty"),
            ("1.2.3", "four octets"),
            ("gg::1", "IPv6"),
            ("a b", "not an address"),
            ("1-255.1-255.1-255.1", "CIDR"),
        ] {
            let e = parse_list([t], false).unwrap_err().to_string();
            assert!(e.contains(needle), "{t}: {e}");
        }
    }

    #[test]
    fn names_resolve_once() {
        let s = set(&["localhost"]);
        assert_eq!(s.len(), 1);
        let ip = s.iter().next().unwrap();
        assert!(ip.is_loopback());
        assert_eq!(s.name_of(ip), Some("localhost"));
        // (an unknown name is tested end to end inside a network namespace of the test's own,
        // so that the resolver's query cannot leave the machine)
    }

    #[test]
    fn comma_separated_exclusion_lists() {
        let s = parse_list(["198.18.0.1,198.18.0.9"], true).unwrap();
        assert_eq!(s.len(), 2);
        let s = parse_list(["198.18.0.1,9"], true).unwrap();
        assert_eq!(s.len(), 2, "octet list");
    }
}
