//! Port specifications as nmap takes them: `-p 22,80,1000-2000`, `-p-`, `-p T:22,U:53`,
//! `-p http,ssh`, open ranges `-100` and `60000-`, `--top-ports N`, `-F`, `--exclude-ports`.

use portolan_model::Transport;
use portolan_registry::Ranking;

use crate::{Error, Result};

/// The ports to scan per transport, sorted and unique.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortSet {
    /// TCP ports.
    pub tcp: Vec<u16>,
    /// UDP ports.
    pub udp: Vec<u16>,
}

fn bad(spec: &str, reason: impl Into<String>) -> Error {
    Error::BadPorts { spec: spec.to_string(), reason: reason.into() }
}

fn number(s: &str, whole: &str) -> Result<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(whole, format!("{s:?} is not a port number")));
    }
    s.parse::<u32>()
        .ok()
        .and_then(|v| u16::try_from(v).ok())
        .ok_or_else(|| bad(whole, format!("port {s} is out of range: ports are 0 to 65535")))
}

/// Ports of one item: `22`, `1-1024`, `-100`, `60000-`, `-` (1-65535) or a service name.
fn item(s: &str, transport: Transport, whole: &str) -> Result<Vec<u16>> {
    if s == "-" {
        return Ok((1..=65535).collect());
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        let (lo, hi) = match s.split_once('-') {
            Some(("", b)) => (1, number(b, whole)?),
            Some((a, "")) => (number(a, whole)?, 65535),
            Some((a, b)) => (number(a, whole)?, number(b, whole)?),
            None => {
                let p = number(s, whole)?;
                (p, p)
            }
        };
        if lo > hi {
            return Err(bad(whole, format!("range {s} is empty")));
        }
        return Ok((lo..=hi).collect());
    }
    // a service name: every port the registry gives it on this transport
    let ports: Vec<u16> = portolan_registry::by_name(s)
        .filter(|e| e.transport() == Some(transport))
        .filter_map(|e| e.ports())
        .flat_map(|(lo, hi)| lo..=hi)
        .collect();
    if ports.is_empty() {
        let hint = portolan_registry::suggest(s);
        let hint =
            if hint.is_empty() { String::new() } else { format!("; did you mean {}?", hint.join(", ")) };
        return Err(bad(whole, format!("no {transport} service named {s:?}{hint}")));
    }
    Ok(ports)
}

impl PortSet {
    /// Parses `-p`. Items without a `T:`/`U:` prefix apply to `default_transports`.
    pub fn parse(spec: &str, default_transports: &[Transport]) -> Result<PortSet> {
        let mut set = PortSet::default();
        let mut current: Option<Transport> = None;
        if spec.trim().is_empty() {
            return Err(bad(spec, "empty"));
        }
        for raw in spec.split(',') {
            let mut tok = raw.trim();
            if tok.is_empty() {
                return Err(bad(spec, "an empty item between commas"));
            }
            if let Some((p, rest)) = tok.split_once(':') {
                current = Some(match p {
                    "T" | "t" => Transport::Tcp,
                    "U" | "u" => Transport::Udp,
                    "S" | "s" => Transport::Sctp,
                    _ => return Err(bad(spec, format!("{p:?}: the prefix must be T:, U: or S:"))),
                });
                tok = rest;
            }
            let targets: Vec<Transport> = match current {
                Some(t) => vec![t],
                None => default_transports.to_vec(),
            };
            for t in targets {
                let ports = item(tok, t, spec)?;
                match t {
                    Transport::Udp => set.udp.extend(ports),
                    _ => set.tcp.extend(ports),
                }
            }
        }
        set.normalize();
        Ok(set)
    }

    /// The `n` most often open ports per transport in `ranking` (`--top-ports`, `-F` is 100).
    pub fn top(ranking: &Ranking, n: usize, transports: &[Transport]) -> PortSet {
        let mut set = PortSet::default();
        for &t in transports {
            let ports = ranking.top(t, n).to_vec();
            match t {
                Transport::Udp => set.udp = ports,
                _ => set.tcp = ports,
            }
        }
        set.normalize();
        set
    }

    /// nmap's default: the top 1,000 ports.
    pub fn default_top(ranking: &Ranking, transports: &[Transport]) -> PortSet {
        PortSet::top(ranking, 1000, transports)
    }

    fn normalize(&mut self) {
        self.tcp.sort_unstable();
        self.tcp.dedup();
        self.udp.sort_unstable();
        self.udp.dedup();
    }

    /// Removes the ports of `other` (`--exclude-ports`).
    pub fn exclude(&mut self, other: &PortSet) {
        self.tcp.retain(|p| other.tcp.binary_search(p).is_err());
        self.udp.retain(|p| other.udp.binary_search(p).is_err());
    }

    /// Ports in all.
    pub fn len(&self) -> usize {
        self.tcp.len() + self.udp.len()
    }

    /// Whether no port is left.
    pub fn is_empty(&self) -> bool {
        self.tcp.is_empty() && self.udp.is_empty()
    }

    /// nmap's `services` text for `<scaninfo>`: `1-1024,8080`.
    pub fn ranges(ports: &[u16]) -> String {
        portolan_model::port_ranges(ports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &[Transport] = &[Transport::Tcp];

    #[test]
    fn lists_ranges_and_prefixes() {
        let s = PortSet::parse("22,80,1000-1002", TCP).unwrap();
        assert_eq!(s.tcp, vec![22, 80, 1000, 1001, 1002]);
        assert_eq!(PortSet::parse("-", TCP).unwrap().tcp.len(), 65535);
        assert_eq!(PortSet::parse("-100", TCP).unwrap().tcp.len(), 100);
        assert_eq!(
            PortSet::parse("65530-", TCP).unwrap().tcp,
            vec![65530, 65531, 65532, 65533, 65534, 65535]
        );
        let s = PortSet::parse("T:22,25,U:53,161", TCP).unwrap();
        assert_eq!(s.tcp, vec![22, 25]);
        assert_eq!(s.udp, vec![53, 161]);
        let s = PortSet::parse("ssh,https,22", TCP).unwrap();
        assert_eq!(s.tcp, vec![22, 443]);
        assert_eq!(PortSet::parse("0", TCP).unwrap().tcp, vec![0]);
    }

    #[test]
    fn bad_specs_are_named() {
        for (spec, needle) in [
            ("70000", "out of range"),
            ("10-5", "empty"),
            ("22,,80", "empty item"),
            ("X:22", "prefix"),
            ("nosuchsvc", "no tcp service"),
            ("shh", "did you mean ssh"),
            ("", "empty"),
            ("1-99999", "out of range"),
        ] {
            let e = PortSet::parse(spec, TCP).unwrap_err().to_string();
            assert!(e.contains(needle), "{spec}: {e}");
        }
    }

    #[test]
    fn exclusion_and_ranges_text() {
        let mut s = PortSet::parse("1-10", TCP).unwrap();
        s.exclude(&PortSet::parse("3-5,9", TCP).unwrap());
        assert_eq!(s.tcp, vec![1, 2, 6, 7, 8, 10]);
        assert_eq!(PortSet::ranges(&s.tcp), "1-2,6-8,10");
    }

    #[test]
    fn top_ports_from_a_ranking() {
        let r = Ranking::builtin();
        let s = PortSet::top(&r, 3, TCP);
        assert_eq!(s.tcp, vec![22, 80, 443]);
        assert_eq!(PortSet::default_top(&r, TCP).tcp.len(), 1000);
    }
}
