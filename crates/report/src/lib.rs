//! The report sink: one self-contained HTML file that charts what Portolan observed and
//! concluded — hosts and their open ports, this machine's listeners, findings, the firewall's
//! exposure and lint, drift between snapshots and detections of scans and brute force.
//!
//! Everything is inline (CSS, SVG charts, a small script) and a Content-Security-Policy in the
//! page forbids every network request: the file opens anywhere, offline. Templates are
//! [maud](https://maud.lambda.xyz) macros, compiled into the binary and checked by the compiler,
//! and maud escapes every interpolated string, so banners, hostnames, certificate fields and
//! log lines show as text. The page reads without its script; the script only pages, sorts and
//! filters the tables (it writes cells with `textContent`, never as HTML).

mod page;
pub mod svg;

use std::collections::BTreeMap;
use std::net::IpAddr;

use jiff::Timestamp;
use portolan_diff::RunDiff;
use portolan_model::traffic::WatchReport;
use portolan_model::{Finding, PortState, Severity, Snapshot, Transport};

pub use page::render;

/// Everything one report shows. Each part is optional: a report of a single scan has no
/// firewall, history or detections, and says so.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// When the report was made.
    pub generated_at: Option<Timestamp>,
    /// Portolan version that made it.
    pub tool_version: String,
    /// The machine that made it.
    pub machine: String,
    /// The command line that made it.
    pub command: String,
    /// Scans and imports shown, newest first (a host in several shows its newest state).
    pub scans: Vec<Snapshot>,
    /// This machine's listeners (`portolan ls`).
    pub local: Option<Snapshot>,
    /// Findings of the judges (knowledge base, policy).
    pub findings: Vec<Finding>,
    /// The policy files the findings were judged against.
    pub policy: Vec<String>,
    /// The firewall's exposure and lint.
    pub firewall: Option<Firewall>,
    /// The changes between the previous scan and the newest.
    pub changes: Option<Changes>,
    /// Open ports per scan over time, oldest first (`--since`).
    pub history: Vec<DriftPoint>,
    /// Detections from logs, flows and captures (`portolan watch`).
    pub watch: Option<WatchReport>,
}

/// A firewall rule set's exposure (as `fw show`) and lint (as `fw lint`).
#[derive(Debug, Clone, Default)]
pub struct Firewall {
    /// The rule file.
    pub file: String,
    /// Its format (`iptables`, `nft`, `aws`).
    pub format: String,
    /// How many rules it has.
    pub rules: usize,
    /// Exposure rows: protocol and port range with the verdict per source class.
    pub rows: Vec<FwRow>,
    /// Lint findings.
    pub lint: Vec<Finding>,
}

/// One row of `fw show`: a protocol and port range with one verdict per source class.
#[derive(Debug, Clone, Default)]
pub struct FwRow {
    /// `ipv4`, `ipv6`.
    pub family: String,
    /// Interface or scope the row is about (empty: any).
    pub scope: String,
    /// `tcp`, `udp`, `icmp`, `proto-N`.
    pub protocol: String,
    /// First and last port, for TCP, UDP and SCTP.
    pub ports: Option<(u16, u16)>,
    /// Service name of a single port.
    pub service: String,
    /// Verdict for sources on the internet: `accept`, `drop`, `reject`, `partial`.
    pub internet: String,
    /// Verdict for private sources.
    pub private: String,
    /// The rules that decide.
    pub decided_by: String,
}

/// How far the firewall lets a port be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exposure {
    /// Accepted (at least in part) from internet addresses.
    Internet,
    /// Accepted only from private addresses.
    Private,
    /// Dropped or rejected from both.
    Closed,
}

impl Exposure {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Exposure::Internet => "internet",
            Exposure::Private => "private",
            Exposure::Closed => "closed",
        }
    }
}

impl Firewall {
    /// The row for a port in its family, as the kernel would take the first packet of a new
    /// connection to it: the unscoped one, else the first scoped one. `None` when the rule set
    /// has nothing for that family (an IPv4 `iptables-save` says nothing about IPv6).
    pub fn row_for(&self, transport: Transport, port: u16, v6: bool) -> Option<&FwRow> {
        let family = if v6 { "ipv6" } else { "ipv4" };
        let matches = |r: &&FwRow| {
            r.family == family
                && r.protocol == transport.as_str()
                && r.ports.is_some_and(|(a, b)| a <= port && port <= b)
        };
        self.rows
            .iter()
            .filter(matches)
            .find(|r| r.scope.is_empty())
            .or_else(|| self.rows.iter().find(matches))
    }

    /// How far the firewall lets this port be reached.
    pub fn exposure(&self, transport: Transport, port: u16, v6: bool) -> Option<Exposure> {
        let r = self.row_for(transport, port, v6)?;
        let open = |v: &str| v == "accept" || v == "partial";
        Some(if open(&r.internet) {
            Exposure::Internet
        } else if open(&r.private) {
            Exposure::Private
        } else {
            Exposure::Closed
        })
    }
}

/// The changes between two scans.
#[derive(Debug, Clone)]
pub struct Changes {
    /// The older scan (`snapshot 3 (scan)`).
    pub from: String,
    /// The newer.
    pub to: String,
    /// Host by host.
    pub diff: RunDiff,
}

/// One scan on the drift chart.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftPoint {
    /// The snapshot (`#3`) or file.
    pub label: String,
    /// When it was taken.
    pub taken_at: Timestamp,
    /// Open ports in it.
    pub open: u64,
    /// Ports open in it that were not in the one before.
    pub opened: u64,
    /// Ports open in the one before that are not in it.
    pub closed: u64,
}

/// One open (or otherwise reported) port of a host, as the hosts table shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostRow {
    /// Address.
    pub host: IpAddr,
    /// First hostname.
    pub name: String,
    /// Port.
    pub port: u16,
    /// Transport.
    pub transport: Transport,
    /// State.
    pub state: PortState,
    /// Service name.
    pub service: String,
    /// Product and version.
    pub product: String,
    /// TLS and other facts of the service.
    pub details: String,
    /// Findings about this port.
    pub findings: u32,
    /// The worst of them.
    pub worst: Option<Severity>,
}

/// The summary numbers at the top of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Hosts up in the scans.
    pub hosts: u64,
    /// Open ports in the scans.
    pub open_ports: u64,
    /// Listening sockets of this machine.
    pub listeners: u64,
    /// Findings by severity, `Critical` first.
    pub by_severity: [(Severity, u64); 5],
    /// Detections.
    pub detections: u64,
}

/// A thing to fix: findings of one rule on one port, with the remedy.
#[derive(Debug, Clone, PartialEq)]
pub struct FixFirst {
    /// The worst severity among them.
    pub severity: Severity,
    /// The rule.
    pub rule: String,
    /// The first finding's title.
    pub title: String,
    /// How many findings (hosts) it covers.
    pub count: usize,
    /// What to do.
    pub remediation: String,
}

impl Report {
    /// Hosts of the scans, newest scan first, each address once.
    pub fn hosts(&self) -> Vec<&portolan_model::Host> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for s in &self.scans {
            for h in s.scan.iter().flat_map(|r| &r.hosts) {
                if seen.insert(h.address) {
                    out.push(h);
                }
            }
        }
        out.sort_by_key(|h| h.address);
        out
    }

    /// Every port of every host that is not closed or filtered, in address and port order.
    pub fn host_rows(&self) -> Vec<HostRow> {
        let mut by_target: BTreeMap<(IpAddr, u16), (u32, Severity)> = BTreeMap::new();
        for f in self.all_findings() {
            if let Some(t) = &f.target
                && let (Some(a), Some(p)) = (t.address, t.port)
            {
                let e = by_target.entry((a, p)).or_insert((0, Severity::Info));
                e.0 += 1;
                e.1 = e.1.max(f.severity);
            }
        }
        let mut rows = Vec::new();
        for h in self.hosts() {
            let name = h.hostnames.first().map(|n| n.name.clone()).unwrap_or_default();
            for p in h.ports.iter().filter(|p| {
                !matches!(p.state, PortState::Closed | PortState::Filtered | PortState::ClosedFiltered)
            }) {
                let svc = p.service.as_deref();
                let product = svc
                    .map(|s| {
                        [s.product.as_deref(), s.version.as_deref()]
                            .into_iter()
                            .flatten()
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                let mut details = Vec::new();
                if let Some(s) = svc {
                    if s.tunnel.is_some() {
                        details.push("TLS".to_string());
                    }
                    if let Some(x) = &s.extra_info {
                        details.push(x.clone());
                    }
                    if let Some(x) = &s.hostname {
                        details.push(format!("name {x}"));
                    }
                }
                let f = by_target.get(&(h.address, p.number));
                rows.push(HostRow {
                    host: h.address,
                    name: name.clone(),
                    port: p.number,
                    transport: p.transport,
                    state: p.state,
                    service: svc.map(|s| s.name.clone()).unwrap_or_default(),
                    product,
                    details: details.join("; "),
                    findings: f.map_or(0, |f| f.0),
                    worst: f.map(|f| f.1),
                });
            }
        }
        rows
    }

    /// The judges' findings and the firewall's lint, worst first.
    pub fn all_findings(&self) -> Vec<&Finding> {
        let mut all: Vec<&Finding> =
            self.findings.iter().chain(self.firewall.iter().flat_map(|f| &f.lint)).collect();
        all.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.rule.cmp(&b.rule)));
        all
    }

    /// The numbers at the top.
    pub fn summary(&self) -> Summary {
        let hosts = self.hosts();
        let mut by_severity = [
            (Severity::Critical, 0),
            (Severity::High, 0),
            (Severity::Medium, 0),
            (Severity::Low, 0),
            (Severity::Info, 0),
        ];
        for f in self.all_findings() {
            if let Some(e) = by_severity.iter_mut().find(|(s, _)| *s == f.severity) {
                e.1 += 1;
            }
        }
        Summary {
            hosts: hosts.iter().filter(|h| h.status.state == portolan_model::HostState::Up).count() as u64,
            open_ports: hosts.iter().flat_map(|h| &h.ports).filter(|p| p.state == PortState::Open).count()
                as u64,
            listeners: self
                .local
                .as_ref()
                .and_then(|s| s.local.as_ref())
                .map_or(0, |l| listening(l).count() as u64),
            by_severity,
            detections: self.watch.as_ref().map_or(0, |w| w.detections.len() as u64),
        }
    }

    /// The three things to fix first: findings grouped by rule and port, worst and most
    /// widespread first; informational ones are not among them.
    pub fn fix_first(&self) -> Vec<FixFirst> {
        let mut groups: BTreeMap<(String, Option<u16>), FixFirst> = BTreeMap::new();
        for f in self.all_findings() {
            if f.severity == Severity::Info {
                continue;
            }
            let key = (f.rule.clone(), f.target.as_ref().and_then(|t| t.port));
            let g = groups.entry(key).or_insert_with(|| FixFirst {
                severity: f.severity,
                rule: f.rule.clone(),
                title: f.title.clone(),
                count: 0,
                remediation: f.remediation.clone(),
            });
            g.count += 1;
        }
        let mut v: Vec<FixFirst> = groups.into_values().collect();
        v.sort_by(|a, b| b.severity.cmp(&a.severity).then(b.count.cmp(&a.count)).then(a.title.cmp(&b.title)));
        v.truncate(3);
        v
    }

    /// Open ports by service name, most first (the rest as `other` after `top`).
    pub fn open_by_service(&self, top: usize) -> Vec<(String, u64)> {
        let mut m: BTreeMap<String, u64> = BTreeMap::new();
        for h in self.hosts() {
            for p in h.ports.iter().filter(|p| p.state == PortState::Open) {
                let name = p.service.as_deref().map_or("unknown", |s| s.name.as_str());
                *m.entry(format!("{name} ({}/{})", p.number, p.transport.as_str())).or_default() += 1;
            }
        }
        let mut v: Vec<(String, u64)> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        if v.len() > top {
            let rest: u64 = v[top..].iter().map(|e| e.1).sum();
            let n = v.len() - top;
            v.truncate(top);
            v.push((format!("{n} others"), rest));
        }
        v
    }

    /// Open ports by IANA range: system (0-1023), user (1024-49151), dynamic (49152-65535).
    pub fn open_by_range(&self) -> [(&'static str, u64); 3] {
        let mut r = [("system 0-1023", 0), ("user 1024-49151", 0), ("dynamic 49152-65535", 0)];
        for h in self.hosts() {
            for p in h.ports.iter().filter(|p| p.state == PortState::Open) {
                let i = match p.number {
                    0..=1023 => 0,
                    1024..=49151 => 1,
                    _ => 2,
                };
                r[i].1 += 1;
            }
        }
        r
    }

    /// Open ports (of the scans, else this machine's listeners) by the firewall's exposure:
    /// per port, how many hosts and how far the firewall lets it be reached.
    pub fn exposure(&self) -> Vec<(String, u64, Exposure)> {
        let Some(fw) = &self.firewall else { return Vec::new() };
        let mut m: BTreeMap<(Transport, u16, bool), u64> = BTreeMap::new();
        for h in self.hosts() {
            for p in h.ports.iter().filter(|p| p.state == PortState::Open) {
                *m.entry((p.transport, p.number, h.address.is_ipv6())).or_default() += 1;
            }
        }
        if m.is_empty()
            && let Some(l) = self.local.as_ref().and_then(|s| s.local.as_ref())
        {
            for s in listening(l).filter(|s| s.scope != portolan_model::BindScope::Loopback) {
                *m.entry((s.transport, s.local_port, s.local_address.is_ipv6())).or_default() += 1;
            }
        }
        let mut v: Vec<(String, u64, Exposure)> = m
            .into_iter()
            .filter_map(|((t, port, v6), n)| {
                let e = fw.exposure(t, port, v6)?;
                let fam = if v6 { " v6" } else { "" };
                Some((format!("{port}/{}{fam}", t.as_str()), n, e))
            })
            .collect();
        v.sort_by(|a, b| a.2.cmp(&b.2).then(b.1.cmp(&a.1)).then_with(|| a.0.cmp(&b.0)));
        v
    }

    /// Detections per time bucket (hour or day, whichever gives at most 48 columns), and
    /// the sources with the most detections.
    pub fn detections_over_time(&self) -> (Counts, Counts) {
        let Some(w) = &self.watch else { return (Vec::new(), Vec::new()) };
        // kernel logs without wall time (`boot+SECONDS`) have no place on a calendar
        let times: Vec<i64> = w
            .detections
            .iter()
            .filter_map(|d| d.first_seen.parse::<Timestamp>().ok())
            .map(|t| t.as_second())
            .collect();
        let (lo, hi) = (times.iter().min().copied().unwrap_or(0), times.iter().max().copied().unwrap_or(0));
        // at most 48 columns, whatever the span (a hostile file can hold any time)
        let span = hi.saturating_sub(lo);
        let bucket = [60, 600, 3600, 21600, 86400, 604800]
            .into_iter()
            .find(|b| span / b < 48)
            .unwrap_or_else(|| (span / 47).max(604_800));
        let start = lo - lo.rem_euclid(bucket);
        let mut cols: BTreeMap<i64, u64> = BTreeMap::new();
        let mut t = start;
        while t <= hi {
            cols.insert(t, 0);
            t += bucket;
        }
        for &s in &times {
            *cols.entry(s - (s - start).rem_euclid(bucket)).or_default() += 1;
        }
        let fmt = |s: i64| {
            Timestamp::from_second(s).map_or_else(
                |_| s.to_string(),
                |t| {
                    let z = t.to_zoned_datetime(jiff::tz::TimeZone::UTC);
                    if bucket >= 86400 {
                        z.strftime("%Y-%m-%d").to_string()
                    } else {
                        z.strftime("%m-%dT%H:%M").to_string()
                    }
                },
            )
        };
        let over_time =
            if times.is_empty() { Vec::new() } else { cols.into_iter().map(|(t, n)| (fmt(t), n)).collect() };
        let mut src: BTreeMap<String, u64> = BTreeMap::new();
        for d in &w.detections {
            let who = d.src.map_or_else(|| format!("{} sources", d.srcs.len()), |s| s.to_string());
            *src.entry(who).or_default() += 1;
        }
        let mut top: Vec<(String, u64)> = src.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(10);
        (over_time, top)
    }
}

/// Labelled counts, in the order a chart shows them.
pub type Counts = Vec<(String, u64)>;

/// Listening TCP sockets and bound UDP ones.
pub fn listening(l: &portolan_model::LocalInventory) -> impl Iterator<Item = &portolan_model::LocalSocket> {
    l.sockets.iter().filter(|s| {
        (s.state == portolan_model::SocketState::Listen || s.transport == Transport::Udp)
            && !s.probable_client
    })
}

/// Open ports of a scan.
pub fn open_ports(s: &Snapshot) -> std::collections::BTreeSet<(IpAddr, Transport, u16)> {
    s.scan
        .iter()
        .flat_map(|r| &r.hosts)
        .flat_map(|h| {
            h.ports.iter().filter(|p| p.state == PortState::Open).map(|p| (h.address, p.transport, p.number))
        })
        .collect()
}

/// The drift chart's points: scans oldest first, each with what opened and closed since the
/// one before it.
pub fn drift(scans: &[(String, &Snapshot)]) -> Vec<DriftPoint> {
    let mut out = Vec::new();
    let mut before: Option<std::collections::BTreeSet<(IpAddr, Transport, u16)>> = None;
    for (label, s) in scans {
        let now = open_ports(s);
        let (opened, closed) = match &before {
            Some(b) => (now.difference(b).count() as u64, b.difference(&now).count() as u64),
            None => (0, 0),
        };
        out.push(DriftPoint {
            label: label.clone(),
            taken_at: s.taken_at,
            open: now.len() as u64,
            opened,
            closed,
        });
        before = Some(now);
    }
    out
}
