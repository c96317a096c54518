//! `portolan` with no arguments: gathers this machine's screen — its listeners, the local
//! firewall's verdict on each (when the rules can be read), the policy's (when one is at its
//! default place), the findings, and what changed since the last saved inventory. It never
//! sends a packet.

use std::path::Path;
use std::process::Command;

use portolan_model::LocalInventory;
use portolan_output::home::{Changes, FirewallState, Home, Listener, PolicyState};
use portolan_policy::{AuditOptions, Observations, Policy};
use portolan_report::Firewall;

/// Gathers the screen; only an unreadable socket table is an error.
pub fn gather(today: jiff::civil::Date) -> Result<Home, portolan_local::Error> {
    let inv = portolan_local::inventory(&portolan_local::Options::default())?;
    let (firewall, rules) = read_firewall(inv.privileged);
    let looked = portolan_policy::default_locations();
    let (policy, mut findings) = match looked.iter().find(|p| p.exists()) {
        Some(path) => match Policy::load(path) {
            Ok(p) => {
                let obs = Observations::from_local(&inv);
                let found = portolan_policy::audit(&p, &obs, &AuditOptions { today });
                (PolicyState::Judged(path.display().to_string()), found)
            }
            Err(e) => (
                PolicyState::Broken(
                    path.display().to_string(),
                    e.problems.first().map(|p| p.to_string()).unwrap_or_else(|| e.to_string()),
                ),
                Vec::new(),
            ),
        },
        None => (PolicyState::Absent(looked.iter().map(|p| p.display().to_string()).collect()), Vec::new()),
    };
    let judged = matches!(policy, PolicyState::Judged(_));
    // every objection of the policy (not approved, another process, a wider scope ...) but a
    // missing required port, by transport, port and, where the finding names it, address
    let objections: Vec<(portolan_model::Transport, u16, Option<std::net::IpAddr>)> = findings
        .iter()
        .filter(|f| f.rule.starts_with("policy.") && f.rule != "policy.missing")
        .filter_map(|f| f.target.as_ref())
        .filter_map(|t| Some((t.transport?, t.port?, t.address)))
        .collect();
    let objected = |s: &portolan_model::LocalSocket| {
        objections.iter().any(|(t, p, a)| {
            *t == s.transport && *p == s.local_port && a.is_none_or(|a| a == s.local_address)
        })
    };
    let listeners = portolan_report::listening(&inv)
        .map(|s| Listener {
            reach: portolan_kb::Reach::of(s.scope, s.local_address),
            transport: s.transport,
            address: s.local_address,
            port: s.local_port,
            service: s.service.as_deref().unwrap_or("").to_string(),
            process: match s.owners.first() {
                Some(o) if s.owners.len() > 1 => format!("{} ({} +{})", o.comm, o.pid, s.owners.len() - 1),
                Some(o) => format!("{} ({})", o.comm, o.pid),
                None if s.owner_visible => "-".to_string(),
                None => "(not visible)".to_string(),
            },
            firewall: rules
                .as_ref()
                .and_then(|fw| fw.row_for(s.transport, s.local_port, s.local_address.is_ipv6()))
                .map(|r| r.internet.clone()),
            policy: judged.then(|| if objected(s) { "not approved" } else { "approved" }),
            risk: s.risk,
        })
        .collect();
    findings.extend(inv.findings.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    findings.retain(|f| {
        seen.insert((
            f.rule.clone(),
            f.title.clone(),
            f.target.as_ref().map(|t| (t.address, t.port, t.transport)),
        ))
    });
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.title.cmp(&b.title)));
    let changes = changes(&inv);
    let suggestion = looked.first().map(|p| p.display().to_string()).unwrap_or_else(|| "policy.toml".into());
    Ok(Home {
        machine: inv.machine.clone(),
        taken_at: inv.taken_at,
        privileged: inv.privileged,
        listeners,
        findings,
        firewall,
        policy,
        changes,
        policy_suggestion: suggestion,
    })
}

/// The kernel's rules, as `iptables-save` prints them, else as `nft -j list ruleset`.
fn read_firewall(root: bool) -> (FirewallState, Option<Firewall>) {
    if !root {
        return (FirewallState::Unreadable("reading the kernel's rules needs root".into()), None);
    }
    let run = |cmd: &str, args: &[&str]| -> Option<String> {
        let out = Command::new(cmd).args(args).stdin(std::process::Stdio::null()).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let mut ran = false;
    let mut tried = Vec::new();
    let sources = [
        ("iptables-save", &[][..], portolan_firewall::Format::Iptables, "\n-A "),
        ("nft", &["-j", "list", "ruleset"][..], portolan_firewall::Format::NftJson, "\"rule\""),
    ];
    for (cmd, args, format, has_rules) in sources {
        let Some(text) = run(cmd, args) else {
            tried.push(cmd);
            continue;
        };
        ran = true;
        if !text.contains(has_rules) {
            continue;
        }
        let name = if args.is_empty() { cmd.to_string() } else { format!("{cmd} {}", args.join(" ")) };
        let parsed = portolan_firewall::parse_str(&text, &name, Some(format), &Default::default())
            .map_err(|e| e.to_string())
            .and_then(|rs| {
                let rows = crate::report::exposure_rows(&rs).map_err(|e| e.to_string())?;
                Ok((rs.rule_count(), rows))
            });
        return match parsed {
            Ok((rules, rows)) => (
                FirewallState::Read { source: name.clone(), rules },
                Some(Firewall { file: name, rules, rows, ..Firewall::default() }),
            ),
            Err(e) => (FirewallState::Unreadable(e), None),
        };
    }
    if ran {
        (FirewallState::NoRules, None)
    } else {
        (FirewallState::Unreadable(format!("{} not found", tried.join(" and "))), None)
    }
}

/// What changed since the newest saved inventory of this machine. The store is only read: a
/// missing database file means nothing was saved (it is not created), and a PostgreSQL
/// store is not contacted from this screen.
fn changes(inv: &LocalInventory) -> Changes {
    let location = portolan_store::default_location();
    if location.contains("://") {
        return Changes::Unreadable(
            "a PostgreSQL store is not read here (portolan diff compares its snapshots)".into(),
        );
    }
    if !Path::new(&location).exists() {
        return Changes::NoSnapshot;
    }
    let found = (|| -> Result<Option<(i64, portolan_model::Snapshot)>, portolan_store::Error> {
        // read-only, never migrated: this screen writes nothing
        let Some(mut store) = portolan_store::Store::open_existing(&location)? else {
            return Ok(None);
        };
        let Some(info) = store
            .list()?
            .into_iter()
            .find(|i| i.source == portolan_model::Source::Local && i.machine == inv.machine)
        else {
            return Ok(None);
        };
        Ok(Some((info.id, store.load(info.id)?)))
    })();
    let (id, snap) = match found {
        Ok(Some(x)) => x,
        Ok(None) => return Changes::NoSnapshot,
        Err(e) => return Changes::Unreadable(e.to_string()),
    };
    let Some(old) = &snap.local else { return Changes::NoSnapshot };
    let d = portolan_diff::diff_local(old, inv);
    let owners = |o: &[portolan_diff::OwnerId]| {
        if o.is_empty() {
            "-".to_string()
        } else {
            o.iter().map(|x| x.process.as_str()).collect::<Vec<_>>().join(", ")
        }
    };
    let lines = d
        .listeners
        .iter()
        .map(|l| {
            let what = format!("{} {}", l.transport.as_str(), std::net::SocketAddr::new(l.address, l.port));
            match l.change {
                portolan_diff::ListenerChange::Opened => format!("new      {what} ({})", owners(&l.owners_b)),
                portolan_diff::ListenerChange::Closed => format!("gone     {what} ({})", owners(&l.owners_a)),
                portolan_diff::ListenerChange::OwnersChanged => {
                    format!("owner    {what}: {} -> {}", owners(&l.owners_a), owners(&l.owners_b))
                }
                portolan_diff::ListenerChange::DeviceChanged => format!("device   {what}"),
            }
        })
        .collect();
    Changes::Since { id, taken_at: snap.taken_at, lines }
}
