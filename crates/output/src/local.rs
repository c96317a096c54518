//! Rendering of `portolan ls`: the human table, and CSV rows.

use std::io::{self, Write};
use std::net::IpAddr;

use portolan_model::{LocalInventory, LocalSocket};

use crate::lookup::severity_style;
use crate::table::{Cell, Style, Table};

/// `127.0.0.1:22`, `[::1]:22`, `[fe80::1]%eth0:22`, as `ss` writes them.
pub fn endpoint(addr: IpAddr, port: u16, device: Option<&str>) -> String {
    let dev = device.map(|d| format!("%{d}")).unwrap_or_default();
    match addr {
        IpAddr::V4(a) => format!("{a}{dev}:{port}"),
        IpAddr::V6(a) => format!("[{a}]{dev}:{port}"),
    }
}

/// Owners for a table cell: `sshd[812]`, `nginx[100,101,+3]`, `(not visible)`.
pub fn owners_text(s: &LocalSocket, scanned: bool) -> String {
    if !scanned {
        return "-".into();
    }
    if s.owners.is_empty() {
        return "(not visible)".into();
    }
    let mut names: Vec<(&str, Vec<u32>)> = Vec::new();
    for o in &s.owners {
        match names.iter_mut().find(|(n, _)| *n == o.comm) {
            Some((_, pids)) => {
                if !pids.contains(&o.pid) {
                    pids.push(o.pid)
                }
            }
            None => names.push((&o.comm, vec![o.pid])),
        }
    }
    names
        .iter()
        .map(|(n, pids)| {
            let shown: Vec<String> = pids.iter().take(3).map(u32::to_string).collect();
            let more = if pids.len() > 3 { format!(",+{}", pids.len() - 3) } else { String::new() };
            format!("{n}[{}{more}]", shown.join(","))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Notes on a socket for people.
pub fn notes(s: &LocalSocket) -> Vec<String> {
    let mut n = Vec::new();
    match s.dual_stack {
        Some(true) => n.push("dual-stack".to_string()),
        Some(false) => n.push("v6-only".to_string()),
        None => {}
    }
    if s.ipv4_mapped {
        n.push("ipv4-mapped".into());
    }
    if let Some(g) = s.reuseport_group {
        n.push(format!("reuseport x{g}"));
    }
    if s.probable_client {
        n.push("probable client".into());
    }
    if s.state == "BOUND" {
        n.push("bound, not listening".into());
    }
    n
}

/// Writes the human table, then findings. `show_peer` adds the peer column (`-a`),
/// `show_netns` the namespace column.
pub fn write_human(
    out: &mut dyn Write,
    inv: &LocalInventory,
    scanned: bool,
    show_peer: bool,
    color: bool,
) -> io::Result<()> {
    let show_netns = inv.namespaces.len() > 1;
    let mut headers = vec!["NETID", "STATE", "LOCAL ADDRESS:PORT"];
    if show_peer {
        headers.push("PEER ADDRESS:PORT");
    }
    if show_netns {
        headers.push("NETNS");
    }
    headers.extend(["SCOPE", "SERVICE", "PROCESS", "USER", "RISK", "NOTES"]);
    let mut t = Table::new(headers);
    for s in &inv.sockets {
        let mut row = vec![
            Cell::new(s.transport.as_str()),
            Cell::new(&s.state),
            Cell::new(endpoint(s.local_address, s.local_port, s.device.as_deref())),
        ];
        if show_peer {
            row.push(Cell::new(match (s.peer_address, s.peer_port) {
                (Some(a), Some(p)) => endpoint(a, p, None),
                _ => "*".into(),
            }));
        }
        if show_netns {
            let name = inv.namespaces.iter().find(|n| n.inode == s.netns).map_or("?", |n| n.name.as_str());
            row.push(Cell::new(name));
        }
        let scope_style = match s.scope {
            portolan_model::BindScope::AllInterfaces => Style::Yellow,
            portolan_model::BindScope::Loopback => Style::Dim,
            _ => Style::Plain,
        };
        row.push(Cell::styled(s.scope.as_str(), scope_style));
        row.push(Cell::new(s.service.as_deref().unwrap_or("-")));
        let owners = owners_text(s, scanned);
        row.push(if s.owner_visible || !scanned {
            Cell::new(owners)
        } else {
            Cell::styled(owners, Style::Dim)
        });
        let user = s
            .owners
            .first()
            .and_then(|o| o.user.clone())
            .or_else(|| s.user.clone())
            .unwrap_or_else(|| s.uid.to_string());
        row.push(Cell::new(user));
        row.push(match s.risk {
            Some(r) => Cell::styled(r.as_str(), severity_style(r)),
            None => Cell::new("-"),
        });
        row.push(Cell::new(notes(s).join(", ")));
        t.row(row);
    }
    t.render(out, color)?;
    if !inv.findings.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", Style::Bold.paint("Findings", color))?;
        for f in &inv.findings {
            let sev = severity_style(f.severity).paint(&format!("{:<8}", f.severity.as_str()), color);
            writeln!(out, "  {sev} {}", crate::escape::terminal(&f.title))?;
        }
    }
    Ok(())
}

/// CSV columns of `ls -o csv`.
pub const CSV_HEADER: [&str; 17] = [
    "netns",
    "transport",
    "state",
    "local_address",
    "local_port",
    "peer_address",
    "peer_port",
    "device",
    "inode",
    "uid",
    "scope",
    "service",
    "risk",
    "pids",
    "processes",
    "owner_visible",
    "notes",
];

/// CSV rows of an inventory.
pub fn csv_rows(inv: &LocalInventory) -> Vec<Vec<String>> {
    inv.sockets
        .iter()
        .map(|s| {
            let pids: Vec<String> = s.owners.iter().map(|o| o.pid.to_string()).collect();
            let comms: Vec<&str> = s.owners.iter().map(|o| o.comm.as_str()).collect();
            vec![
                s.netns.to_string(),
                s.transport.to_string(),
                s.state.clone(),
                s.local_address.to_string(),
                s.local_port.to_string(),
                s.peer_address.map(|a| a.to_string()).unwrap_or_default(),
                s.peer_port.map(|p| p.to_string()).unwrap_or_default(),
                s.device.clone().unwrap_or_default(),
                s.inode.to_string(),
                s.uid.to_string(),
                s.scope.as_str().to_string(),
                s.service.clone().unwrap_or_default(),
                s.risk.map(|r| r.to_string()).unwrap_or_default(),
                pids.join(" "),
                comms.join(" "),
                s.owner_visible.to_string(),
                notes(s).join("; "),
            ]
        })
        .collect()
}
