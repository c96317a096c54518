//! `portolan diff` as text: the layout of nmap's `ndiff`, so that people and scripts used to
//! ndiff read it without surprise. `-` lines are the earlier scan, `+` the later.

use std::io::{self, Write};

use jiff::Timestamp;
use portolan_diff::{HostDiff, ListenerChange, LocalDiff, OwnerId, PortSide, RunDiff, RunRef};

use crate::escape::terminal;
use crate::scan::version_text;

fn banner(r: &RunRef) -> String {
    let scanner = match r.scanner.as_str() {
        "nmap" | "" => "Nmap",
        "portolan" => "Portolan",
        other => other,
    };
    let mut parts = vec![terminal(scanner).into_owned()];
    if !r.version.is_empty() {
        parts.push(terminal(&r.version).into_owned());
    }
    parts.push("scan".into());
    if let Ok(t) = Timestamp::from_second(r.start) {
        let zoned = t.to_zoned_datetime(jiff::tz::TimeZone::system());
        parts.push(format!("initiated {}", zoned.strftime("%a %b %d %H:%M:%S %Y")));
    }
    parts.push(format!("as: {}", terminal(&r.args)));
    parts.join(" ")
}

fn host_name(h: &HostDiff, names: &[String], mac: Option<&str>) -> String {
    let mut addrs = h.address.to_string();
    if let Some(m) = mac {
        addrs.push_str(", ");
        addrs.push_str(&terminal(m));
    }
    if names.is_empty() {
        addrs
    } else {
        let names: Vec<String> = names.iter().map(|n| terminal(n).into_owned()).collect();
        format!("{} ({addrs})", names.join(", "))
    }
}

fn extraports_text(x: &[(portolan_model::PortState, u32)]) -> String {
    let mut v: Vec<(u32, &str)> = x.iter().map(|(s, c)| (*c, s.as_str())).collect();
    v.sort_unstable_by(|a, b| b.cmp(a));
    v.iter().map(|(c, s)| format!("{c} {s} ports")).collect::<Vec<_>>().join(", ")
}

/// ndiff's tables: a sign column glued to the first column, then columns separated by one
/// space, each as wide as its longest cell, trailing spaces trimmed.
struct SignTable {
    rows: Vec<Vec<String>>,
    widths: Vec<usize>,
}

impl SignTable {
    fn new(header: Vec<String>) -> SignTable {
        let mut t = SignTable { rows: Vec::new(), widths: Vec::new() };
        t.push(header);
        t
    }

    fn push(&mut self, row: Vec<String>) {
        if self.widths.len() < row.len() {
            self.widths.resize(row.len(), 0);
        }
        for (w, c) in self.widths.iter_mut().zip(&row) {
            *w = (*w).max(unicode_width::UnicodeWidthStr::width(c.as_str()));
        }
        self.rows.push(row);
    }

    fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        let last = self.widths.len().saturating_sub(1);
        for r in &self.rows {
            let mut line = String::new();
            for (i, (c, w)) in r.iter().zip(&self.widths).enumerate() {
                line.push_str(c);
                let pad = w - unicode_width::UnicodeWidthStr::width(c.as_str());
                line.extend(std::iter::repeat_n(' ', pad));
                if i > 0 && i < last {
                    line.push(' ');
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

fn columns(spec: &str, side: Option<&PortSide>) -> [String; 4] {
    match side {
        Some(s) => {
            let svc = s.service.as_ref();
            [
                spec.to_string(),
                s.state.to_string(),
                svc.map(|v| terminal(&v.name).into_owned()).unwrap_or_default(),
                svc.map(|v| terminal(&version_text(v)).into_owned()).unwrap_or_default(),
            ]
        }
        None => [spec.to_string(), "unknown".into(), String::new(), String::new()],
    }
}

/// Writes the differences as ndiff's text output does.
pub fn write_text(out: &mut dyn Write, d: &RunDiff) -> io::Result<()> {
    let (ba, bb) = (banner(&d.a), banner(&d.b));
    if ba != bb {
        writeln!(out, "-{ba}")?;
        writeln!(out, "+{bb}")?;
    }
    for h in &d.hosts {
        writeln!(out)?;
        let id_changed =
            h.names_a != h.names_b || h.mac_a != h.mac_b || h.state_a.is_none() || h.state_b.is_none();
        if id_changed {
            if h.state_a.is_some() {
                writeln!(out, "-{}:", host_name(h, &h.names_a, h.mac_a.as_deref()))?;
            }
            if h.state_b.is_some() {
                writeln!(out, "+{}:", host_name(h, &h.names_b, h.mac_b.as_deref()))?;
            }
        } else {
            writeln!(out, " {}:", host_name(h, &h.names_a, h.mac_a.as_deref()))?;
        }
        if h.state_a != h.state_b {
            if let Some(s) = h.state_a {
                writeln!(out, "-Host is {s}.")?;
            }
            if let Some(s) = h.state_b {
                writeln!(out, "+Host is {s}.")?;
            }
        }
        if h.extraports_changed {
            if !h.extraports_a.is_empty() {
                writeln!(out, "-Not shown: {}", extraports_text(&h.extraports_a))?;
            }
            if !h.extraports_b.is_empty() {
                writeln!(out, "+Not shown: {}", extraports_text(&h.extraports_b))?;
            }
        }
        let mark = match (h.state_a, h.state_b) {
            (None, _) => '+',
            (_, None) => '-',
            _ => ' ',
        };
        let mut table = SignTable::new(
            [mark.to_string(), "PORT".into(), "STATE".into(), "SERVICE".into(), "VERSION".into()].into(),
        );
        for p in &h.ports {
            let spec = format!("{}/{}", p.port, p.transport);
            let (a, b) = (columns(&spec, p.a.as_ref()), columns(&spec, p.b.as_ref()));
            if a == b {
                continue;
            }
            for (sign, cols, hidden) in
                [("-", a, h.summarised_a(p.a.as_ref())), ("+", b, h.summarised_b(p.b.as_ref()))]
            {
                if !hidden {
                    let [c0, c1, c2, c3] = cols;
                    table.push(vec![sign.to_string(), c0, c1, c2, c3]);
                }
            }
        }
        if table.rows.len() > 1 {
            table.write(out)?;
        }
    }
    Ok(())
}

fn local_banner(r: &portolan_diff::InventoryRef) -> String {
    let when = Timestamp::from_second(r.taken_at)
        .map(|t| {
            t.to_zoned_datetime(jiff::tz::TimeZone::system()).strftime("%a %b %d %H:%M:%S %Y").to_string()
        })
        .unwrap_or_default();
    format!("Listeners of {} at {when}", terminal(&r.machine))
}

fn owners_text(v: &[OwnerId]) -> String {
    v.iter()
        .map(|o| match &o.user {
            Some(u) => format!("{} ({})", terminal(&o.process), terminal(u)),
            None => terminal(&o.process).into_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes the differences between two local inventories in the same style: `-` the earlier,
/// `+` the later, one row per listener that changed.
pub fn write_local_text(out: &mut dyn Write, d: &LocalDiff) -> io::Result<()> {
    writeln!(out, "-{}", local_banner(&d.a))?;
    writeln!(out, "+{}", local_banner(&d.b))?;
    if d.listeners.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    let mut t =
        SignTable::new(vec![" ".into(), "LISTENER".into(), "NETNS".into(), "CHANGE".into(), "OWNERS".into()]);
    for l in &d.listeners {
        let addr = match l.address {
            std::net::IpAddr::V6(a) => format!("[{a}]:{}", l.port),
            a => format!("{a}:{}", l.port),
        };
        let what = format!("{} {addr}", l.transport);
        let ns = terminal(&l.netns).into_owned();
        match l.change {
            ListenerChange::Opened => {
                t.push(vec!["+".into(), what, ns, "opened".into(), owners_text(&l.owners_b)]);
            }
            ListenerChange::Closed => {
                t.push(vec!["-".into(), what, ns, "closed".into(), owners_text(&l.owners_a)]);
            }
            ListenerChange::OwnersChanged => {
                t.push(vec!["-".into(), what.clone(), ns.clone(), "owners".into(), owners_text(&l.owners_a)]);
                t.push(vec!["+".into(), what, ns, "owners".into(), owners_text(&l.owners_b)]);
            }
            ListenerChange::DeviceChanged => {
                let dev = |d: &Option<String>| {
                    d.as_deref().map_or("(any)".to_string(), |d| terminal(d).into_owned())
                };
                t.push(vec!["-".into(), what.clone(), ns.clone(), "device".into(), dev(&l.device_a)]);
                t.push(vec!["+".into(), what, ns, "device".into(), dev(&l.device_b)]);
            }
        }
    }
    t.write(out)
}
