//! The audit judge: observations (a local socket table or a scan) against a policy.

use std::collections::BTreeMap;
use std::net::IpAddr;

use jiff::civil::Date;
use portolan_kb::{self as kb, Reach, TransportSecurity};
use portolan_model::{
    BindScope, Finding, FindingTarget, LocalInventory, PortState, ScanRun, Service, ServiceMethod, Severity,
    SourceLocation, Transport,
};

use crate::{AllowedScope, Entry, HostSel, Policy, Unlisted};

/// A host that was observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedHost {
    /// Its address (none for this machine's own socket table).
    pub address: Option<IpAddr>,
    /// Names it has (the machine name, or the names a scan reports).
    pub names: Vec<String>,
    /// This machine, seen through its own socket table.
    pub local: bool,
    /// Port ranges per transport that were looked at (a scan's port list; everything locally).
    pub covered: Vec<(Transport, u16, u16)>,
}

impl ObservedHost {
    fn label(&self) -> String {
        match (self.address, self.local) {
            (_, true) => self
                .names
                .first()
                .map_or_else(|| "this machine".to_string(), |n| format!("{n} (this machine)")),
            (Some(a), false) => a.to_string(),
            (None, false) => self.names.first().cloned().unwrap_or_default(),
        }
    }

    fn covers(&self, transport: Transport, port: u16) -> bool {
        self.covered.iter().any(|&(t, lo, hi)| t == transport && (lo..=hi).contains(&port))
    }
}

/// An open port or a listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedPort {
    /// Index of its host in [`Observations::hosts`].
    pub host: usize,
    /// The address it answers on (a scanned address, or a listener's bound address).
    pub address: IpAddr,
    /// Port.
    pub port: u16,
    /// Transport.
    pub transport: Transport,
    /// How it is bound (a scan sees loopback or one address).
    pub scope: BindScope,
    /// How far it reaches.
    pub reach: Reach,
    /// The service, when identified by talking to it (not a registry guess).
    pub service: Option<Service>,
    /// Names (`comm`) of the processes holding a local listener.
    pub processes: Vec<String>,
    /// Whether the owners of a local listener could be seen.
    pub owners_visible: bool,
}

/// Everything an audit judges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observations {
    /// Hosts seen (up).
    pub hosts: Vec<ObservedHost>,
    /// Their open ports and listeners.
    pub ports: Vec<ObservedPort>,
}

fn scope_rank(s: BindScope) -> AllowedScope {
    match s {
        BindScope::Loopback => AllowedScope::Loopback,
        BindScope::Address | BindScope::Device => AllowedScope::Address,
        BindScope::AllInterfaces => AllowedScope::All,
    }
}

impl Observations {
    /// This machine's listening sockets (probable UDP clients left out), one observation per
    /// transport, address and port, with the names of every process holding it.
    pub fn from_local(inv: &LocalInventory) -> Observations {
        let host = ObservedHost {
            address: None,
            names: vec![inv.machine.clone()],
            local: true,
            covered: vec![(Transport::Tcp, 0, 65535), (Transport::Udp, 0, 65535)],
        };
        let mut by_key: BTreeMap<(Transport, IpAddr, u16), ObservedPort> = BTreeMap::new();
        for s in inv.sockets.iter().filter(|s| s.state.is_listening() && !s.probable_client) {
            let o =
                by_key.entry((s.transport, s.local_address, s.local_port)).or_insert_with(|| ObservedPort {
                    host: 0,
                    address: s.local_address,
                    port: s.local_port,
                    transport: s.transport,
                    scope: s.scope,
                    reach: Reach::of(s.scope, s.local_address),
                    service: None,
                    processes: Vec::new(),
                    owners_visible: true,
                });
            o.owners_visible &= s.owner_visible;
            for w in &s.owners {
                if !o.processes.iter().any(|p| **p == *w.comm) {
                    o.processes.push(w.comm.to_string());
                }
            }
        }
        Observations { hosts: vec![host], ports: by_key.into_values().collect() }
    }

    /// A scan's (or an import's) hosts that are up and their open ports.
    pub fn from_run(run: &ScanRun) -> Observations {
        let mut covered = Vec::new();
        for si in &run.scan_info {
            for (lo, hi) in portolan_model::port_ranges_parse(&si.services) {
                covered.push((si.transport, lo, hi));
            }
        }
        let mut out = Observations::default();
        for h in run.hosts.iter().filter(|h| h.status.state == portolan_model::HostState::Up) {
            let idx = out.hosts.len();
            let mut cov = covered.clone();
            if cov.is_empty() {
                // no scan info (some importers leave it out): the ports the host lists, in any
                // state, are the ones that were looked at
                cov.extend(h.ports.iter().map(|p| (p.transport, p.number, p.number)));
            }
            out.hosts.push(ObservedHost {
                address: Some(h.address),
                names: h.hostnames.iter().map(|n| n.name.to_ascii_lowercase()).collect(),
                local: false,
                covered: cov,
            });
            for p in h.ports.iter().filter(|p| p.state == PortState::Open) {
                let loopback = Reach::of_scanned(h.address) == Reach::Loopback;
                out.ports.push(ObservedPort {
                    host: idx,
                    address: h.address,
                    port: p.number,
                    transport: p.transport,
                    scope: if loopback { BindScope::Loopback } else { BindScope::Address },
                    reach: Reach::of_scanned(h.address),
                    service: p.service.as_deref().filter(|s| s.method == ServiceMethod::Probed).cloned(),
                    processes: Vec::new(),
                    owners_visible: false,
                });
            }
        }
        out
    }
}

/// Settings of one audit.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// The date expiry and review dates are compared with.
    pub today: Date,
}

fn host_matches(sel: &HostSel, host: &ObservedHost, addr: Option<IpAddr>) -> bool {
    match sel {
        HostSel::Any => true,
        HostSel::Localhost => host.local || addr.is_some_and(|a| Reach::of_scanned(a) == Reach::Loopback),
        HostSel::Net { addr: net, prefix } => addr.is_some_and(|a| {
            let specific = !host.local || !a.is_unspecified();
            specific && HostSel::net_contains(*net, *prefix, a)
        }),
        HostSel::Name(n) => host.names.iter().any(|m| m.eq_ignore_ascii_case(n)),
    }
}

fn entry_matches_host(e: &Entry, host: &ObservedHost, addr: Option<IpAddr>) -> bool {
    e.hosts.iter().any(|s| host_matches(s, host, addr))
}

/// Service names that mean the same thing (`https` is `http` over TLS).
fn same_service(expected: &str, observed: &str) -> bool {
    fn norm(s: &str) -> String {
        let s = s.trim().to_ascii_lowercase();
        let s = s.strip_prefix("ssl/").or_else(|| s.strip_prefix("tls/")).unwrap_or(&s).to_string();
        match s.as_str() {
            "https" | "www" | "www-http" | "http-alt" | "https-alt" | "http-proxy" => "http".into(),
            "ms-wbt-server" => "rdp".into(),
            "postgres" => "postgresql".into(),
            "microsoft-ds" | "smb" => "netbios-ssn".into(),
            "dns" => "domain".into(),
            "ldaps" => "ldap".into(),
            "imaps" => "imap".into(),
            "pop3s" => "pop3".into(),
            "smtps" | "submission" | "submissions" => "smtp".into(),
            _ => s,
        }
    }
    norm(expected) == norm(observed)
}

fn describe_service(s: &Service) -> String {
    let mut d = String::new();
    if s.tunnel.is_some() {
        d.push_str("ssl/");
    }
    d.push_str(&s.name);
    for part in [&s.product, &s.version].into_iter().flatten() {
        d.push(' ');
        d.push_str(part);
    }
    d
}

fn target(p: &ObservedPort) -> Option<FindingTarget> {
    Some(FindingTarget { address: Some(p.address), port: Some(p.port), transport: Some(p.transport) })
}

fn kb_entry(p: &ObservedPort) -> Option<&'static kb::Entry> {
    if let Some(s) = &p.service
        && let Some(e) = kb::for_service_name(&s.name).into_iter().next()
    {
        return Some(e);
    }
    kb::for_port(p.port, p.transport).next()
}

fn where_entry(e: &Entry) -> String {
    format!("{} at {}", e.name, e.at)
}

fn endpoint(p: &ObservedPort) -> String {
    match p.address {
        IpAddr::V6(a) => format!("[{a}]:{}/{}", p.port, p.transport),
        IpAddr::V4(a) => format!("{a}:{}/{}", p.port, p.transport),
    }
}

fn observed_evidence(p: &ObservedPort, host: &ObservedHost) -> Vec<String> {
    let mut ev = vec![format!("{} on {} is {}", endpoint(p), host.label(), p.reach.describe())];
    if !p.processes.is_empty() {
        ev.push(format!("held by {}", p.processes.join(", ")));
    } else if host.local && !p.owners_visible {
        ev.push("its owner could not be seen (run as root to see every owner)".into());
    }
    if let Some(s) = &p.service {
        ev.push(format!("identified as {}", describe_service(s)));
    }
    ev
}

fn entry_evidence(e: &Entry) -> Vec<String> {
    let mut ev = vec![format!("policy: {}", where_entry(e))];
    if let Some(o) = &e.owner {
        ev.push(format!("owner: {o}"));
    }
    if let Some(t) = &e.ticket {
        ev.push(format!("ticket: {t}"));
    }
    ev
}

/// Severity of an exposure nobody approved: the knowledge base's risk at its reach, at least
/// `low` on loopback and `medium` beyond.
fn unapproved_severity(p: &ObservedPort) -> Severity {
    let floor = if p.reach == Reach::Loopback { Severity::Low } else { Severity::Medium };
    kb_entry(p).map_or(floor, |k| k.risk(p.reach).max(floor))
}

fn kb_refs(p: &ObservedPort) -> (Vec<String>, Vec<String>) {
    kb_entry(p).map_or_else(Default::default, |k| {
        (
            k.references.iter().map(|s| s.to_string()).collect(),
            k.attack.iter().map(|s| s.to_string()).collect(),
        )
    })
}

/// Judges observations against a policy. Findings come host by host, port by port, with the
/// entry-level ones (missing, review overdue) after the ports they concern.
pub fn audit(policy: &Policy, obs: &Observations, opts: &AuditOptions) -> Vec<Finding> {
    let today = opts.today;
    let main_file = policy.files.first().map(|f| f.display().to_string()).unwrap_or_default();
    let expired = |e: &Entry| e.expires.as_ref().is_some_and(|d| d.date < today);
    let mut used = vec![false; policy.entries.len()];
    let mut out = Vec::new();

    for p in &obs.ports {
        let host = &obs.hosts[p.host];
        let matching: Vec<usize> = (0..policy.entries.len())
            .filter(|&i| {
                let e = &policy.entries[i];
                e.covers(p.port, p.transport) && entry_matches_host(e, host, Some(p.address))
            })
            .collect();
        for &i in &matching {
            used[i] = true;
        }
        let active = matching.iter().copied().find(|&i| !expired(&policy.entries[i]));
        let (refs, attack) = kb_refs(p);
        match active {
            None if !matching.is_empty() => {
                let e = &policy.entries[matching[0]];
                let date = e.expires.as_ref().map(|d| d.date.to_string()).unwrap_or_default();
                let mut evidence = observed_evidence(p, host);
                evidence.push(format!("the approval expired on {date}"));
                evidence.extend(entry_evidence(e));
                out.push(Finding {
                    rule: "policy.expired".into(),
                    severity: unapproved_severity(p).max(Severity::Medium),
                    title: format!("{} is still open after its approval expired on {date}", endpoint(p)),
                    target: target(p),
                    evidence,
                    remediation: format!(
                        "The exception ended on {date}. Close the port, or renew the approval with its owner: set a new expires date in {}.",
                        where_entry(e)
                    ),
                    references: refs.clone(),
                    attack: attack.clone(),
                        location: Some(e.at.clone()),
                });
            }
            None => {
                if policy.defaults.unlisted == Unlisted::Deny {
                    let mut remediation = format!(
                        "If nothing needs it, stop the service or bind it to loopback. If it is needed, approve it: add an [[allow]] entry for {}/{} with its owner and purpose to {main_file}.",
                        p.port, p.transport
                    );
                    if let Some(k) = kb_entry(p) {
                        remediation.push_str(&format!(
                            " Safer alternative: {}.",
                            k.alternative.trim_end_matches('.')
                        ));
                    }
                    let what = kb_entry(p).map_or_else(String::new, |k| format!(" ({})", k.name));
                    out.push(Finding {
                        rule: "policy.unapproved".into(),
                        severity: unapproved_severity(p),
                        title: format!("{}{what} is open but not approved by the policy", endpoint(p)),
                        target: target(p),
                        evidence: observed_evidence(p, host),
                        remediation,
                        references: refs.clone(),
                        attack: attack.clone(),
                        location: Some(SourceLocation::new(main_file.clone(), 1, 1)),
                    });
                }
            }
            Some(i) => {
                let e = &policy.entries[i];
                let observed_scope = scope_rank(p.scope);
                if observed_scope > e.scope {
                    let mut evidence = observed_evidence(p, host);
                    evidence.push(format!(
                        "bound {} ({}); the policy allows {}",
                        observed_scope.as_str(),
                        p.scope.as_str(),
                        e.scope.as_str()
                    ));
                    evidence.extend(entry_evidence(e));
                    let how = match e.scope {
                        AllowedScope::Loopback => "to 127.0.0.1 or ::1",
                        _ => "to the one address that needs it, not 0.0.0.0 or ::",
                    };
                    out.push(Finding {
                        rule: "policy.scope".into(),
                        severity: unapproved_severity(p).max(Severity::Medium),
                        title: format!(
                            "{} is bound wider ({}) than the policy allows ({})",
                            endpoint(p),
                            observed_scope.as_str(),
                            e.scope.as_str()
                        ),
                        target: target(p),
                        evidence,
                        remediation: format!(
                            "Bind the service {how}; or, if the wider reach is intended, change scope in {} after review.",
                            where_entry(e)
                        ),
                        references: refs.clone(),
                        attack: attack.clone(),
                        location: Some(e.at.clone()),
                    });
                }
                if let (Some(want), Some(seen)) = (&e.service, &p.service)
                    && !same_service(want, &seen.name)
                {
                    let mut evidence = observed_evidence(p, host);
                    evidence.push(format!("the policy expects {want}"));
                    evidence.extend(entry_evidence(e));
                    out.push(Finding {
                        rule: "policy.wrong-service".into(),
                        severity: Severity::High,
                        title: format!("{} answers as {}, not {want} as approved", endpoint(p), seen.name),
                        target: target(p),
                        evidence,
                        remediation: format!(
                            "Find out why {} answers on this port: a different application on an approved port escapes review. Stop it or move it to its own approved port; if the change is intended, update service in {}.",
                            describe_service(seen),
                            where_entry(e)
                        ),
                        references: refs.clone(),
                        attack: attack.clone(),
                        location: Some(e.at.clone()),
                    });
                }
                if let Some(want) = &e.process
                    && host.local
                    && p.owners_visible
                    && !p.processes.is_empty()
                    && !p.processes.iter().any(|c| c == want)
                {
                    let mut evidence = observed_evidence(p, host);
                    evidence.push(format!("the policy expects process {want}"));
                    evidence.extend(entry_evidence(e));
                    out.push(Finding {
                        rule: "policy.wrong-service".into(),
                        severity: Severity::High,
                        title: format!(
                            "{} is held by {}, not {want} as approved",
                            endpoint(p),
                            p.processes.join(", ")
                        ),
                        target: target(p),
                        evidence,
                        remediation: format!(
                            "Find out why {} holds this port instead of {want}; stop it, or update process in {} if the change is intended.",
                            p.processes.join(", "),
                            where_entry(e)
                        ),
                        references: refs.clone(),
                        attack: attack.clone(),
                        location: Some(e.at.clone()),
                    });
                }
            }
        }
        if policy.defaults.cleartext
            && p.reach != Reach::Loopback
            && let Some(k) = kb_entry(p)
            && k.transport_security == TransportSecurity::Cleartext
        {
            let mut f = k.exposure_finding(p.reach, Some(p.address), p.port, p.transport);
            f.rule = "kb.cleartext".into();
            f.title = format!("cleartext {} {} on {}", k.name, p.reach.describe(), endpoint(p));
            out.push(f);
        }
    }

    // required entries: every host they name that was observed must have the port open
    let mut by_host: Vec<Vec<&ObservedPort>> = vec![Vec::new(); obs.hosts.len()];
    for p in &obs.ports {
        if let Some(v) = by_host.get_mut(p.host) {
            v.push(p);
        }
    }
    for (i, e) in policy.entries.iter().enumerate() {
        if !e.required || expired(e) {
            continue;
        }
        for (hidx, host) in obs.hosts.iter().enumerate() {
            if !entry_matches_host(e, host, host.address) {
                continue;
            }
            for &(lo, hi) in &e.ports {
                if !(lo..=hi).any(|port| host.covers(e.transport, port)) {
                    continue;
                }
                let present =
                    by_host[hidx].iter().any(|p| p.transport == e.transport && (lo..=hi).contains(&p.port));
                used[i] = true;
                if present {
                    continue;
                }
                let ports = crate::parse::ports_text(&[(lo, hi)]);
                let mut evidence =
                    vec![format!("nothing answers on {ports}/{} on {}", e.transport, host.label())];
                evidence.extend(entry_evidence(e));
                if let Some(s) = &e.service {
                    evidence.push(format!("expected service: {s}"));
                }
                out.push(Finding {
                    rule: "policy.missing".into(),
                    severity: Severity::Medium,
                    title: format!("required {ports}/{} is not open on {}", e.transport, host.label()),
                    target: Some(FindingTarget {
                        address: host.address,
                        port: (lo == hi).then_some(lo),
                        transport: Some(e.transport),
                    }),
                    evidence,
                    remediation: format!(
                        "Start the service or find out why it is gone. If it was retired on purpose, remove {} or set required = false.",
                        where_entry(e)
                    ),
                    references: Vec::new(),
                    attack: Vec::new(),
                    location: Some(e.at.clone()),
                });
            }
        }
    }

    // reviews overdue, for the entries this audit used
    for (i, e) in policy.entries.iter().enumerate() {
        let Some(r) = &e.review_by else { continue };
        if !used[i] || r.date >= today || expired(e) {
            continue;
        }
        let mut evidence = vec![format!("review_by {} at {}", r.date, r.at)];
        evidence.extend(entry_evidence(e));
        if let Some(purpose) = &e.purpose {
            evidence.push(format!("purpose: {purpose}"));
        }
        out.push(Finding {
            rule: "policy.review-overdue".into(),
            severity: Severity::Low,
            title: format!("approval of {}/{} ({}) was due for review on {}", e.ports_text, e.transport, e.name, r.date),
            target: Some(FindingTarget {
                address: None,
                port: (e.ports.len() == 1 && e.ports[0].0 == e.ports[0].1).then(|| e.ports[0].0),
                transport: Some(e.transport),
            }),
            evidence,
            remediation: format!(
                "Review the approval with its owner{}: is the port still needed, by whom, from where? Then set a new review_by date in {}.",
                e.owner.as_deref().map(|o| format!(" ({o})")).unwrap_or_default(),
                where_entry(e)
            ),
            references: Vec::new(),
            attack: Vec::new(),
            location: Some(r.at.clone()),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_that_agree() {
        assert!(same_service("http", "https"));
        assert!(same_service("http", "ssl/http"));
        assert!(same_service("ssh", "SSH"));
        assert!(!same_service("ssh", "http"));
        assert!(!same_service("redis", "http"));
    }
}
