//! Rendering of `portolan ls`: the human table, and CSV rows.

use std::fmt;
use std::io::{self, Write};
use std::net::IpAddr;

use portolan_model::{BindScope, LocalInventory, LocalSocket, SocketState};

use crate::lookup::severity_style;
use crate::table::{Columns, Style};

/// `127.0.0.1:22`, `[::1]:22`, `127.4.0.3%lo:22`, as `ss` writes them.
pub fn endpoint(addr: IpAddr, port: u16, device: Option<&str>) -> String {
    let mut s = String::new();
    write_endpoint(&mut s, addr, port, device);
    s
}

fn push_u16(buf: &mut [u8; 8], mut n: u16) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("?")
}

fn write_endpoint(out: &mut dyn fmt::Write, addr: IpAddr, port: u16, device: Option<&str>) {
    let _ = match (addr, device) {
        (IpAddr::V4(a), None) => {
            // hand-written: std's Ipv4Addr Display pads through the formatter, 3x slower
            let mut b = [0u8; 8];
            let o = a.octets();
            let _ = out.write_str(push_u16(&mut b, u16::from(o[0])));
            for x in &o[1..] {
                let _ = out.write_char('.');
                let _ = out.write_str(push_u16(&mut b, u16::from(*x)));
            }
            let _ = out.write_char(':');
            out.write_str(push_u16(&mut b, port))
        }
        (IpAddr::V4(a), Some(d)) => write!(out, "{a}%{d}:{port}"),
        (IpAddr::V6(a), None) => write!(out, "[{a}]:{port}"),
        (IpAddr::V6(a), Some(d)) => write!(out, "[{a}]%{d}:{port}"),
    };
}

struct Endpoint<'a>(IpAddr, u16, Option<&'a str>);

impl fmt::Display for Endpoint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_endpoint(f, self.0, self.1, self.2);
        Ok(())
    }
}

/// Owners for a table cell: `sshd[812]`, `nginx[100,101,102,+3]`, `(not visible)`.
pub fn owners_text(s: &LocalSocket, scanned: bool) -> String {
    let mut out = String::new();
    let _ = write_owners(&mut out, s, scanned);
    out
}

fn write_owners(out: &mut dyn fmt::Write, s: &LocalSocket, scanned: bool) -> fmt::Result {
    if !scanned {
        return out.write_str("-");
    }
    if s.owners.is_empty() {
        return out.write_str("(not visible)");
    }
    // owners are sorted by pid; grouped by name in order of first appearance. A socket shared
    // by many differently named processes (a pre-fork server whose workers rename themselves)
    // shows two names and a count, so the row stays readable.
    let mut groups: Vec<(&str, Vec<u32>)> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for o in &s.owners {
        let g = *index.entry(&*o.comm).or_insert_with(|| {
            groups.push((&*o.comm, Vec::new()));
            groups.len() - 1
        });
        let pids = &mut groups[g].1;
        if pids.last() != Some(&o.pid) && !pids.contains(&o.pid) {
            pids.push(o.pid);
        }
    }
    const NAMES: usize = 2;
    for (k, (comm, pids)) in groups.iter().take(NAMES).enumerate() {
        if k > 0 {
            out.write_char(' ')?;
        }
        write!(out, "{comm}[")?;
        for (n, p) in pids.iter().take(3).enumerate() {
            if n > 0 {
                out.write_char(',')?;
            }
            write!(out, "{p}")?;
        }
        if pids.len() > 3 {
            write!(out, ",+{}", pids.len() - 3)?;
        }
        out.write_char(']')?;
    }
    if groups.len() > NAMES {
        let rest: usize = groups[NAMES..].iter().map(|(_, p)| p.len()).sum();
        write!(out, " +{rest} more ({} names)", groups.len() - NAMES)?;
    }
    Ok(())
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
    if s.state == SocketState::Bound {
        n.push("bound, not listening".into());
    }
    n
}

struct Notes<'a>(&'a LocalSocket);

impl fmt::Display for Notes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if s.dual_stack.is_none()
            && !s.ipv4_mapped
            && s.reuseport_group.is_none()
            && !s.probable_client
            && s.state != SocketState::Bound
        {
            return Ok(());
        }
        f.write_str(&notes(s).join(", "))
    }
}

struct Owners<'a>(&'a LocalSocket, bool);

impl fmt::Display for Owners<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.owners.as_slice() {
            [one] if self.1 => write!(f, "{}[{}]", one.comm, one.pid),
            _ => write_owners(f, self.0, self.1),
        }
    }
}

/// Writes the human table, then findings. `show_peer` adds the peer column (`-a`); the
/// namespace column appears when more than one namespace was listed.
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
    let mut cols = Columns::new(headers);
    for s in &inv.sockets {
        cells(inv, s, scanned, show_peer, show_netns, &mut |col, cell, _| match cell {
            Text::Str(t) => cols.measure_str(col, t),
            Text::Fmt(args) => cols.measure(col, args),
        });
    }
    // small chunks: a large buffer would be resident memory, and the writes are few anyway
    let mut buf: Vec<u8> = Vec::with_capacity(64 << 10);
    cols.write_header(&mut buf, color);
    for s in &inv.sockets {
        cells(inv, s, scanned, show_peer, show_netns, &mut |col, cell, style| match cell {
            Text::Str(t) => cols.write_str(&mut buf, col, t, style, color),
            Text::Fmt(args) => cols.write_cell(&mut buf, col, args, style, color),
        });
        if buf.len() > (64 << 10) - 4096 {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)?;
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

/// A cell's text: a string as it is, or something to format.
enum Text<'a> {
    Str(&'a str),
    Fmt(fmt::Arguments<'a>),
}

struct Row<'f, 'g> {
    col: usize,
    f: &'f mut dyn FnMut(usize, Text<'_>, Style),
    _g: std::marker::PhantomData<&'g ()>,
}

impl Row<'_, '_> {
    fn text(&mut self, t: &str, style: Style) {
        (self.f)(self.col, Text::Str(t), style);
        self.col += 1;
    }
    fn fmt(&mut self, args: fmt::Arguments<'_>, style: Style) {
        (self.f)(self.col, Text::Fmt(args), style);
        self.col += 1;
    }
}

/// Hands each cell of one row to `f` as (column, text, style).
fn cells(
    inv: &LocalInventory,
    s: &LocalSocket,
    scanned: bool,
    show_peer: bool,
    show_netns: bool,
    f: &mut dyn FnMut(usize, Text<'_>, Style),
) {
    let mut r = Row { col: 0, f, _g: std::marker::PhantomData };
    r.text(s.transport.as_str(), Style::Plain);
    r.text(s.state.as_str(), Style::Plain);
    r.fmt(format_args!("{}", Endpoint(s.local_address, s.local_port, s.device.as_deref())), Style::Plain);
    if show_peer {
        match (s.peer_address, s.peer_port) {
            (Some(a), Some(p)) => r.fmt(format_args!("{}", Endpoint(a, p, None)), Style::Plain),
            _ => r.text("*", Style::Plain),
        }
    }
    if show_netns {
        let name = inv.namespaces.iter().find(|n| n.inode == s.netns).map_or("?", |n| n.name.as_str());
        r.text(name, Style::Plain);
    }
    let scope_style = match s.scope {
        BindScope::AllInterfaces => Style::Yellow,
        BindScope::Loopback => Style::Dim,
        _ => Style::Plain,
    };
    r.text(s.scope.as_str(), scope_style);
    r.text(s.service.as_deref().unwrap_or("-"), Style::Plain);
    let owner_style = if s.owner_visible || !scanned { Style::Plain } else { Style::Dim };
    r.fmt(format_args!("{}", Owners(s, scanned)), owner_style);
    match s.owners.first().and_then(|o| o.user.as_deref()).or(s.user.as_deref()) {
        Some(u) => r.text(u, Style::Plain),
        None => r.fmt(format_args!("{}", s.uid), Style::Plain),
    }
    match s.risk {
        Some(v) => r.text(v.as_str(), severity_style(v)),
        None => r.text("-", Style::Plain),
    }
    if s.dual_stack.is_none()
        && !s.ipv4_mapped
        && s.reuseport_group.is_none()
        && !s.probable_client
        && s.state != SocketState::Bound
    {
        r.text("", Style::Plain);
    } else {
        r.fmt(format_args!("{}", Notes(s)), Style::Plain);
    }
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

/// CSV rows of an inventory, made as they are written (a table or JSON never makes them).
pub fn csv_rows(inv: &LocalInventory) -> impl Iterator<Item = Vec<String>> + '_ {
    inv.sockets.iter().map(|s| {
        let pids: Vec<String> = s.owners.iter().map(|o| o.pid.to_string()).collect();
        let comms: Vec<&str> = s.owners.iter().map(|o| &*o.comm).collect();
        vec![
            s.netns.to_string(),
            s.transport.to_string(),
            s.state.to_string(),
            s.local_address.to_string(),
            s.local_port.to_string(),
            s.peer_address.map(|a| a.to_string()).unwrap_or_default(),
            s.peer_port.map(|p| p.to_string()).unwrap_or_default(),
            s.device.clone().unwrap_or_default(),
            s.inode.to_string(),
            s.uid.to_string(),
            s.scope.as_str().to_string(),
            s.service.as_deref().unwrap_or_default().to_string(),
            s.risk.map(|r| r.to_string()).unwrap_or_default(),
            pids.join(" "),
            comms.join(" "),
            s.owner_visible.to_string(),
            notes(s).join("; "),
        ]
    })
}
