//! Port rankings for `--top-ports N`.
//!
//! nmap's `nmap-services` carries measured open-frequencies but its licence forbids vendoring
//! it, so Portolan reads it at run time where nmap is installed and otherwise uses its own
//! ranking: a curated head (`data/ranking/{tcp,udp}.txt`), then IANA-assigned well-known ports,
//! then assigned registered ports, then every other port, each group ascending.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use portolan_model::Transport;

use crate::Error;
use crate::tables::{RANK_TCP, RANK_UDP, u16_at};

/// Where a ranking came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RankingSource {
    /// Portolan's own, built in.
    Builtin,
    /// nmap's frequency file at this path.
    Nmap(PathBuf),
}

/// An order of all 65,536 ports per transport, most likely open first.
#[derive(Debug, Clone)]
pub struct Ranking {
    tcp: Cow<'static, [u16]>,
    udp: Cow<'static, [u16]>,
    source: RankingSource,
    /// Service names from nmap's file, by (port, transport), when that is the source.
    names: Option<std::collections::HashMap<(u16, Transport), Box<str>>>,
}

fn builtin_order(bytes: &'static [u8]) -> Vec<u16> {
    (0..bytes.len() / 2).map(|i| u16_at(bytes, i)).collect()
}

/// Places where nmap installs its data files, searched in order after `$NMAPDIR`.
pub const NMAP_SERVICES_PATHS: [&str; 2] =
    ["/usr/share/nmap/nmap-services", "/usr/local/share/nmap/nmap-services"];

impl Ranking {
    /// Portolan's own ranking.
    pub fn builtin() -> Ranking {
        Ranking {
            tcp: Cow::Owned(builtin_order(RANK_TCP)),
            udp: Cow::Owned(builtin_order(RANK_UDP)),
            source: RankingSource::Builtin,
            names: None,
        }
    }

    /// nmap's ranking when its services file is installed (`$NMAPDIR`, then the usual paths),
    /// otherwise Portolan's own. A file that exists but cannot be read is an error.
    pub fn discover() -> Result<Ranking, Error> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(dir) = std::env::var_os("NMAPDIR") {
            candidates.push(PathBuf::from(dir).join("nmap-services"));
        }
        candidates.extend(NMAP_SERVICES_PATHS.iter().map(PathBuf::from));
        for path in candidates {
            if path.is_file() {
                return Ranking::from_nmap_services(&path);
            }
        }
        Ok(Ranking::builtin())
    }

    /// Reads nmap's `nmap-services` (`name port/proto frequency [# comment]`). Ports it lists
    /// come first by descending frequency; the rest follow in Portolan's order.
    pub fn from_nmap_services(path: &Path) -> Result<Ranking, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::NmapServices { path: path.display().to_string(), message: e.to_string() })?;
        Ranking::from_nmap_services_text(&text, path)
    }

    fn from_nmap_services_text(text: &str, path: &Path) -> Result<Ranking, Error> {
        let mut tcp: Vec<(f64, u16)> = Vec::new();
        let mut udp: Vec<(f64, u16)> = Vec::new();
        let mut names = std::collections::HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |what: &str| Error::NmapServices {
                path: path.display().to_string(),
                message: format!("line {}: {what}: {line:?}", i + 1),
            };
            let mut cols = line.split_whitespace();
            let name = cols.next().unwrap_or("");
            let portproto = cols.next().ok_or_else(|| bad("missing port/protocol"))?;
            let freq: f64 = match cols.next() {
                Some(f) => f.parse().map_err(|_| bad("bad frequency"))?,
                None => 0.0,
            };
            let (port, proto) = portproto.split_once('/').ok_or_else(|| bad("expected port/protocol"))?;
            let port: u16 = port.parse().map_err(|_| bad("bad port"))?;
            let t = match proto {
                "tcp" => {
                    tcp.push((freq, port));
                    Transport::Tcp
                }
                "udp" => {
                    udp.push((freq, port));
                    Transport::Udp
                }
                "sctp" => Transport::Sctp,
                _ => continue,
            };
            names.entry((port, t)).or_insert_with(|| Box::from(name));
        }
        let builtin = Ranking::builtin();
        let merge = |mut listed: Vec<(f64, u16)>, rest: &[u16]| -> Vec<u16> {
            listed.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut seen = vec![false; 65536];
            let mut order = Vec::with_capacity(65536);
            for (_, p) in listed.into_iter().chain(rest.iter().map(|&p| (0.0, p))) {
                if !seen[p as usize] {
                    seen[p as usize] = true;
                    order.push(p);
                }
            }
            order
        };
        Ok(Ranking {
            tcp: Cow::Owned(merge(tcp, &builtin.tcp)),
            udp: Cow::Owned(merge(udp, &builtin.udp)),
            source: RankingSource::Nmap(path.to_path_buf()),
            names: Some(names),
        })
    }

    /// The service name of a port for scan output (nmap's "table" lookup): nmap's name when the
    /// ranking came from nmap's file (so that nmap's tools see the same names), the IANA
    /// registry's otherwise. `None` when neither names the port (nmap prints `unknown`).
    pub fn service_name(&self, port: u16, transport: Transport) -> Option<&str> {
        match &self.names {
            Some(n) => n.get(&(port, transport)).map(|b| &**b),
            None => crate::service_name(port, transport),
        }
    }

    /// Where this ranking came from.
    pub fn source(&self) -> &RankingSource {
        &self.source
    }

    /// The `n` highest-ranked ports of a transport (all 65,536 at most). SCTP and DCCP use the
    /// TCP order.
    pub fn top(&self, transport: Transport, n: usize) -> &[u16] {
        let order = match transport {
            Transport::Udp => &self.udp,
            _ => &self.tcp,
        };
        &order[..n.min(order.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_ranking_is_a_permutation_with_the_curated_head_first() {
        let r = Ranking::builtin();
        for t in [Transport::Tcp, Transport::Udp] {
            let all = r.top(t, 70000);
            assert_eq!(all.len(), 65536);
            let mut seen = vec![false; 65536];
            for &p in all {
                assert!(!seen[p as usize], "{p} twice");
                seen[p as usize] = true;
            }
        }
        assert_eq!(&r.top(Transport::Tcp, 3), &[80, 443, 22]);
        assert_eq!(&r.top(Transport::Udp, 2), &[53, 123]);
        // after the head, assigned well-known ports follow in ascending order
        assert!(r.top(Transport::Tcp, 1000).contains(&1));
    }

    #[test]
    fn nmap_services_text_orders_by_frequency_and_reports_bad_lines() {
        let text = "# comment\nssh\t22/tcp\t0.182286\t# Secure Shell\nhttp\t80/tcp\t0.484143\nsnmp\t161/udp\t0.433467\nx\t9/sctp\t0.1\n";
        let r = Ranking::from_nmap_services_text(text, Path::new("t")).unwrap();
        assert_eq!(&r.top(Transport::Tcp, 3), &[80, 22, 443]);
        assert_eq!(r.top(Transport::Udp, 1), &[161]);
        assert_eq!(r.top(Transport::Tcp, 99999).len(), 65536);
        assert_eq!(r.service_name(22, Transport::Tcp), Some("ssh"));
        assert_eq!(r.service_name(23, Transport::Tcp), None);
        assert_eq!(Ranking::builtin().service_name(23, Transport::Tcp), Some("telnet"));
        let err = Ranking::from_nmap_services_text("ssh 22/tcp nope\n", Path::new("f")).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
