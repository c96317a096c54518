//! `portolan identify` for people and spreadsheets: a table of what answered on each port,
//! then each target's notes (HTTP, certificate, first bytes) and findings.

use std::io::{self, Write};

use portolan_identify::{Identified, Row};
use portolan_model::Tunnel;

use crate::escape;
use crate::lookup::severity_style;
use crate::table::{Cell, Style, Table};

/// The CSV columns of `identify -o csv`.
pub const CSV_HEADER: [&str; 9] =
    ["target", "status", "service", "tunnel", "product", "version", "extra_info", "tls", "findings"];

/// One CSV row of `identify -o csv`.
pub fn csv_row(r: &Row) -> Vec<String> {
    let s = r.result.service.as_ref();
    vec![
        r.target.clone(),
        r.result.status.as_str().to_string(),
        s.map(|s| s.name.clone()).unwrap_or_default(),
        s.and_then(|s| s.tunnel).map(|_| "ssl".to_string()).unwrap_or_default(),
        s.and_then(|s| s.product.clone()).unwrap_or_default(),
        s.and_then(|s| s.version.clone()).unwrap_or_default(),
        s.and_then(|s| s.extra_info.clone()).unwrap_or_default(),
        r.result.tls.as_ref().map(|t| t.version.clone()).unwrap_or_default(),
        r.result.findings.iter().map(|f| f.rule.as_str()).collect::<Vec<_>>().join(" "),
    ]
}

/// The service a person reads: `ssl/NAME`, and `NAME?` for the registry's guess.
pub fn service_text(r: &Identified) -> String {
    match &r.service {
        Some(s) => {
            let mut name = s.name.clone();
            if s.tunnel == Some(Tunnel::Ssl) {
                name = format!("ssl/{name}");
            }
            if s.method == portolan_model::ServiceMethod::Table {
                name.push('?');
            }
            name
        }
        None => "-".into(),
    }
}

/// `identify` for people: a table of the targets, then per target its notes and findings.
pub fn write_table(out: &mut dyn Write, rows: &[Row], color: bool) -> io::Result<()> {
    let mut t = Table::new(["TARGET", "STATUS", "SERVICE", "VERSION", "EXPECTED", "TLS", "MS"]);
    for r in rows {
        let x = &r.result;
        let status_style = match x.status {
            portolan_identify::Status::Identified => Style::Green,
            portolan_identify::Status::Closed | portolan_identify::Status::NoResponse => Style::Dim,
            _ => Style::Yellow,
        };
        let expected = x
            .expected
            .as_ref()
            .map(|e| format!("{}{}", e.registered, if e.tls { " (tls)" } else { "" }))
            .unwrap_or_else(|| "-".into());
        let tls = x
            .tls
            .as_ref()
            .map(|t| {
                let mut s = format!("{} {}", t.version, t.cipher);
                if let Some(st) = &t.starttls {
                    s = format!("{st}: {s}");
                }
                if let Some(c) = &t.certificate {
                    s.push_str(&format!(
                        ", CN={}, until {}",
                        c.common_name.as_deref().unwrap_or("?"),
                        c.not_after.strftime("%Y-%m-%d")
                    ));
                }
                s
            })
            .unwrap_or_default();
        t.row(vec![
            Cell::new(&r.target),
            Cell::styled(x.status.as_str(), status_style),
            Cell::new(service_text(x)),
            Cell::new(x.service.as_ref().map(crate::scan::version_text).unwrap_or_default()),
            Cell::new(expected),
            Cell::new(tls),
            Cell::new(x.elapsed_ms.to_string()),
        ]);
    }
    t.render(out, color)?;
    for r in rows {
        let x = &r.result;
        let mut notes: Vec<String> = Vec::new();
        if let Some(h) = &x.http {
            let mut s = format!("http: {}", h.status);
            if let Some(v) = &h.server {
                s.push_str(&format!(", server {v}"));
            }
            if let Some(v) = &h.title {
                s.push_str(&format!(", title {v:?}"));
            }
            if let Some(v) = &h.location {
                s.push_str(&format!(", redirect to {v}"));
            }
            notes.push(s);
        }
        if let Some(c) = x.tls.as_ref().and_then(|t| t.certificate.as_ref()) {
            notes.push(format!("certificate: subject {}; issuer {}", c.subject, c.issuer));
            if !c.sans.is_empty() {
                notes.push(format!("certificate names: {}", c.sans.join(", ")));
            }
        }
        if let Some(e) = x.tls.as_ref().and_then(|t| t.certificate_error.as_ref()) {
            notes.push(format!("certificate: {e}"));
        }
        if x.service.is_none()
            && let Some(b) = &x.banner
        {
            notes.push(format!("first bytes: {b}"));
        }
        if let Some(e) = &x.error
            && x.service.is_none()
        {
            notes.push(format!("note: {e}"));
        }
        if notes.is_empty() && x.findings.is_empty() {
            continue;
        }
        writeln!(out)?;
        writeln!(out, "{}", Style::Bold.paint(&escape::terminal(&r.target), color))?;
        for n in notes {
            writeln!(out, "  {}", escape::terminal(&n))?;
        }
        for f in &x.findings {
            let sev = severity_style(f.severity).paint(&format!("{:<8}", f.severity.as_str()), color);
            writeln!(out, "  {sev} {}", escape::terminal(&f.title))?;
            for e in &f.evidence {
                writeln!(out, "           {} {}", Style::Dim.paint("·", color), escape::terminal(e))?;
            }
            writeln!(
                out,
                "           {} {}",
                Style::Bold.paint("fix:", color),
                escape::terminal(&f.remediation)
            )?;
        }
    }
    Ok(())
}
