//! Human and CSV rendering of `portolan port` answers.

use std::io::{self, Write};

use portolan_kb::{Entry, Lookup};
use portolan_model::Severity;

use crate::table::{Cell, Style, Table};

/// Colour for a severity.
pub fn severity_style(s: Severity) -> Style {
    match s {
        Severity::Critical => Style::RedBold,
        Severity::High => Style::Red,
        Severity::Medium => Style::Yellow,
        Severity::Low => Style::Cyan,
        Severity::Info => Style::Dim,
    }
}

/// Writes one answer for people: a table of registry rows, then each knowledge-base verdict.
pub fn write_human(out: &mut dyn Write, l: &Lookup, color: bool) -> io::Result<()> {
    if l.registry.is_empty() {
        match l.range_class {
            Some(c) => writeln!(out, "{}: no IANA registry entry; port class {}", l.query, c.describe())?,
            None => writeln!(out, "{}: no IANA registry entry", l.query)?,
        }
    } else {
        let mut t =
            Table::new(["PORT", "TRANSPORT", "SERVICE", "DESCRIPTION", "CLASS", "ASSIGNEE", "REFERENCE"]);
        for r in &l.registry {
            let port = match (r.port, r.port_end) {
                (Some(lo), Some(hi)) => format!("{lo}-{hi}"),
                (Some(p), None) => p.to_string(),
                _ => "-".to_string(),
            };
            let (name, style) = if r.name.is_empty() { ("-", Style::Dim) } else { (r.name, Style::Bold) };
            t.row(vec![
                Cell::new(port),
                Cell::new(r.transport.map_or("any", |t| t.as_str())),
                Cell::styled(name, style),
                Cell::new(first_line(r.description)),
                Cell::new(r.range_class.map_or("-", |c| c.as_str())),
                Cell::new(if r.assignee.is_empty() { "-" } else { r.assignee }),
                Cell::new(if r.reference.is_empty() { "-" } else { r.reference }),
            ]);
        }
        t.render(out, color)?;
        if let Some(c) = l.range_class {
            writeln!(out, "Port class: {}", c.describe())?;
        }
    }
    if !l.names.is_empty() {
        let names: Vec<String> = l
            .names
            .iter()
            .map(|n| format!("{} ({}/{}, {})", n.name, n.port, n.transport, n.source))
            .collect();
        writeln!(out, "Portolan names it: {}", names.join(", "))?;
    }
    for e in &l.knowledge {
        writeln!(out)?;
        write_entry(out, e, color)?;
    }
    Ok(())
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    if s.lines().nth(1).is_some() { format!("{line} ...") } else { line.to_string() }
}

/// Writes one knowledge-base entry for people.
pub fn write_entry(out: &mut dyn Write, e: &Entry, color: bool) -> io::Result<()> {
    let ports: Vec<String> = e.ports.iter().map(|s| s.to_string()).collect();
    let title = format!("{} ({}) - knowledge base", e.name, e.id);
    writeln!(out, "{}", Style::Bold.paint(&title, color))?;
    let risk = severity_style(e.internet_risk).paint(&e.internet_risk.as_str().to_uppercase(), color);
    let lines = [
        ("ports", ports.join(", ")),
        ("category", ser(&e.category)),
        ("traffic", format!("{}, authentication {}", ser(&e.transport_security), ser(&e.authentication))),
        ("internet risk", format!("{risk}: {}", e.risk_reason)),
        ("safer choice", e.alternative.to_string()),
    ];
    for (k, v) in lines {
        writeln!(out, "  {k:<14} {v}")?;
    }
    writeln!(out, "  hardening")?;
    for (i, h) in e.hardening.iter().enumerate() {
        writeln!(out, "    {}. {h}", i + 1)?;
    }
    writeln!(out, "  {:<14} {}", "ATT&CK", e.attack.join(", "))?;
    writeln!(out, "  references")?;
    for r in e.references {
        writeln!(out, "    - {r}")?;
    }
    Ok(())
}

fn ser<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

/// The CSV columns of lookups: one row per registry row.
pub const CSV_HEADER: [&str; 11] = [
    "query",
    "port",
    "port_end",
    "transport",
    "service",
    "description",
    "class",
    "assignee",
    "reference",
    "kb_ids",
    "kb_internet_risk",
];

/// CSV rows of an answer.
pub fn csv_rows(l: &Lookup) -> Vec<Vec<String>> {
    let ids: Vec<&str> = l.knowledge.iter().map(|e| e.id).collect();
    let risks: Vec<&str> = l.knowledge.iter().map(|e| e.internet_risk.as_str()).collect();
    l.registry
        .iter()
        .map(|r| {
            vec![
                l.query.clone(),
                r.port.map(|p| p.to_string()).unwrap_or_default(),
                r.port_end.map(|p| p.to_string()).unwrap_or_default(),
                r.transport.map(|t| t.to_string()).unwrap_or_default(),
                r.name.to_string(),
                r.description.to_string(),
                r.range_class.map(|c| c.to_string()).unwrap_or_default(),
                r.assignee.to_string(),
                r.reference.to_string(),
                ids.join(" "),
                risks.join(" "),
            ]
        })
        .collect()
}

/// One port of `port --top N`.
#[derive(Debug, serde::Serialize)]
pub struct Ranked {
    /// From 1.
    pub rank: usize,
    /// The port.
    pub port: u16,
    /// Its transport.
    pub transport: portolan_model::Transport,
    /// Its registered service name.
    pub service: Option<&'static str>,
}

/// `port --top N`: the ranking's source and its first N ports.
#[derive(Debug, serde::Serialize)]
pub struct TopPorts {
    /// `nmap:PATH` or `portolan`.
    pub source: String,
    /// The transport ranked.
    pub transport: portolan_model::Transport,
    /// The ports, best first.
    pub ports: Vec<Ranked>,
}

impl TopPorts {
    /// The first `n` ports of `ranking` for `transport`.
    pub fn of(
        ranking: &portolan_registry::Ranking,
        transport: portolan_model::Transport,
        n: usize,
    ) -> TopPorts {
        let source = match ranking.source() {
            portolan_registry::RankingSource::Builtin => "portolan".to_string(),
            portolan_registry::RankingSource::Nmap(p) => format!("nmap:{}", p.display()),
        };
        let ports = ranking
            .top(transport, n)
            .iter()
            .enumerate()
            .map(|(i, &port)| Ranked {
                rank: i + 1,
                port,
                transport,
                service: portolan_registry::port_name(port, transport),
            })
            .collect();
        TopPorts { source, transport, ports }
    }
}

/// The CSV columns of `port --top N -o csv`.
pub const TOP_CSV_HEADER: [&str; 4] = ["rank", "port", "transport", "service"];

/// One CSV row of `port --top N -o csv`.
pub fn top_csv_row(r: &Ranked) -> Vec<String> {
    vec![r.rank.to_string(), r.port.to_string(), r.transport.to_string(), r.service.unwrap_or("").to_string()]
}

/// `port --top N` for people.
pub fn write_top(out: &mut dyn Write, doc: &TopPorts, color: bool) -> io::Result<()> {
    let mut t = crate::Table::new(["RANK", "PORT", "SERVICE"]).align(0, crate::Align::Right);
    for r in &doc.ports {
        t.row(vec![
            r.rank.to_string().into(),
            format!("{}/{}", r.port, r.transport).into(),
            r.service.unwrap_or("-").into(),
        ]);
    }
    t.render(out, color)
}
