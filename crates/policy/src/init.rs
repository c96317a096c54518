//! `policy init`: a starting policy that approves what is observed now, with owners and
//! purposes left for people to fill in.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use jiff::civil::Date;
use portolan_kb as kb;
use portolan_model::{BindScope, Transport};

use crate::Observations;

/// Settings of `policy init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Today, for the header and the first review date (a year on).
    pub today: Date,
    /// What was observed, for the header (`local listeners of host1`, `nmap XML scan.xml`).
    pub source: String,
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[derive(Default)]
struct PortSeen {
    hosts: Vec<String>,
    widest: Option<BindScope>,
    processes: Vec<String>,
    services: Vec<String>,
}

fn wider(a: BindScope, b: BindScope) -> BindScope {
    let rank = |s: BindScope| match s {
        BindScope::Loopback => 0,
        BindScope::Address | BindScope::Device => 1,
        BindScope::AllInterfaces => 2,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// The policy text: one `[[allow]]` per transport and port seen, naming the hosts it was seen
/// on; `required = true` (it is there now), a review date a year away, owner and purpose `TODO`
/// (which `policy check` reports until they are filled in).
pub fn init(obs: &Observations, opts: &InitOptions) -> String {
    let mut seen: BTreeMap<(Transport, u16), PortSeen> = BTreeMap::new();
    for p in &obs.ports {
        let host = &obs.hosts[p.host];
        let s = seen.entry((p.transport, p.port)).or_default();
        let name = match (host.local, host.address) {
            (true, _) => "localhost".to_string(),
            (false, Some(a)) => a.to_string(),
            (false, None) => host.names.first().cloned().unwrap_or_default(),
        };
        if !s.hosts.contains(&name) {
            s.hosts.push(name);
        }
        if host.local {
            s.widest = Some(s.widest.map_or(p.scope, |w| wider(w, p.scope)));
        }
        for c in &p.processes {
            if !s.processes.contains(c) {
                s.processes.push(c.clone());
            }
        }
        if let Some(svc) = &p.service
            && !s.services.contains(&svc.name)
        {
            s.services.push(svc.name.clone());
        }
    }
    let review = opts.today.checked_add(jiff::Span::new().years(1)).unwrap_or(opts.today);
    let mut out = String::new();
    let _ = writeln!(out, "# Portolan policy: the approved ports (docs/policy.md).");
    let _ = writeln!(
        out,
        "# Written by `portolan policy init` on {} from {}.",
        opts.today,
        opts.source.replace('\n', " ")
    );
    let _ = writeln!(
        out,
        "# Every port seen is approved below as it is now. Fill in each owner and purpose (policy"
    );
    let _ = writeln!(
        out,
        "# check reports the TODOs), delete what should not be there, and narrow hosts and scope."
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "version = 1");
    let _ = writeln!(out);
    let _ = writeln!(out, "[defaults]");
    let _ = writeln!(out, "unlisted = \"deny\"   # a port not listed here is a finding");
    let _ = writeln!(out, "cleartext = true    # report risky cleartext services even when approved");
    for ((transport, port), s) in &seen {
        let mut hosts = s.hosts.clone();
        hosts.sort_by(|a, b| match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => a.cmp(b),
        });
        let _ = writeln!(out);
        let kb_name = kb::for_port(*port, *transport).next().map(|k| k.name);
        match kb_name {
            Some(n) => {
                let _ = writeln!(out, "# {port}/{transport}: {n}");
            }
            None => {
                let _ = writeln!(out, "# {port}/{transport}");
            }
        }
        let _ = writeln!(out, "[[allow]]");
        let list: Vec<String> = hosts.iter().map(|h| quote(h)).collect();
        let _ = writeln!(out, "hosts = [{}]", list.join(", "));
        let _ = writeln!(out, "ports = {port}");
        let _ = writeln!(out, "transport = {}", quote(transport.as_str()));
        if s.services.len() == 1 {
            let _ = writeln!(out, "service = {}", quote(&s.services[0]));
        }
        if s.processes.len() == 1 {
            let _ = writeln!(out, "process = {}", quote(&s.processes[0]));
        } else if s.processes.len() > 1 {
            let _ = writeln!(out, "# held by: {}", s.processes.join(", ").replace('\n', " "));
        }
        if let Some(w) = s.widest {
            let scope = match w {
                BindScope::Loopback => "loopback",
                BindScope::Address | BindScope::Device => "address",
                BindScope::AllInterfaces => "all",
            };
            let _ = writeln!(out, "scope = {}", quote(scope));
        }
        let _ = writeln!(out, "owner = \"TODO\"");
        let _ = writeln!(out, "purpose = \"TODO\"");
        let _ = writeln!(out, "review_by = {review}");
        let _ = writeln!(out, "required = true");
    }
    out
}
