//! `portolan identify HOST:PORT...` and the `-sV` step of `scan`: which application answers,
//! and whether it is the one the port promises.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use portolan_identify::{Identified, Options, Target};
use portolan_model::{Host, PortState, Severity, Transport, Tunnel};
use portolan_output::lookup::severity_style;
use portolan_output::{Cell, Style, Table, escape, records};

use super::Context;
use crate::cli::{IdentifyArgs, RecordFormat, VersionArgs};

/// The identification options of `--version-intensity` and `--version-timeout`.
pub fn options(v: &VersionArgs) -> anyhow::Result<Options> {
    let mut o = Options::default();
    if let Some(i) = v.version_intensity {
        o.intensity = i;
    }
    if let Some(d) = v.version_timeout {
        if d.is_zero() {
            anyhow::bail!("--version-timeout must be above 0");
        }
        o.timeout = d;
    }
    Ok(o)
}

use portolan_identify::Row;

fn parse_target(s: &str) -> anyhow::Result<Target> {
    let (text, transport) = match s.rsplit_once('/') {
        Some((t, proto)) if proto.eq_ignore_ascii_case("udp") => (t, Transport::Udp),
        Some((t, proto)) if proto.eq_ignore_ascii_case("tcp") => (t, Transport::Tcp),
        Some((_, proto)) if !proto.contains(']') && !proto.contains(':') => {
            anyhow::bail!("{s:?}: transport {proto:?} is not tcp or udp")
        }
        _ => (s, Transport::Tcp),
    };
    let (_, addr): (String, SocketAddr) = super::check::endpoint(text)?;
    let host = if text.starts_with('[') { "" } else { text.rsplit_once(':').map_or(text, |(h, _)| h) };
    let name = (!host.is_empty() && host.parse::<std::net::IpAddr>().is_err()).then(|| host.to_string());
    Ok(Target { addr, transport, name })
}

pub fn run(args: IdentifyArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let mut opts = options(&args.version)?;
    opts.starttls = !args.no_starttls;
    let fail_on = args.fail_on.and_then(|f| f.0);
    let targets: Vec<Target> =
        args.endpoints.iter().map(|e| parse_target(e)).collect::<anyhow::Result<_>>()?;
    let results = portolan_identify::identify(&targets, &opts)?;
    let rows: Vec<Row> =
        args.endpoints.iter().cloned().zip(results).map(|(target, result)| Row { target, result }).collect();
    let mut out = super::stdout();
    match args.format {
        RecordFormat::Table => write_table(&mut out, &rows, ctx.color)?,
        RecordFormat::Json => records::json(&mut out, &rows)?,
        RecordFormat::Ndjson => records::ndjson(&mut out, &rows)?,
        RecordFormat::Csv => records::csv(
            &mut out,
            &["target", "status", "service", "tunnel", "product", "version", "extra_info", "tls", "findings"],
            rows.iter().map(|r| {
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
            }),
        )?,
    }
    out.flush().context("writing to standard output")?;
    let worst = rows.iter().flat_map(|r| r.result.findings.iter().map(|f| f.severity)).max();
    Ok(match (fail_on, worst) {
        (Some(limit), Some(w)) if w >= limit => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

fn service_text(r: &Identified) -> String {
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

fn write_table(out: &mut dyn Write, rows: &[Row], color: bool) -> io::Result<()> {
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
            Cell::new(x.service.as_ref().map(portolan_output::scan::version_text).unwrap_or_default()),
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

/// `scan -sV`: identifies every open port of `hosts` and puts what was found in each port's
/// service; notes the verdict's findings on stderr (unless `--quiet`).
/// Identifies the open ports of `hosts` in place (-sV). Returns the addresses of the hosts
/// whose identification a stop request cut short.
pub fn enrich(
    hosts: &mut [Host],
    v: &VersionArgs,
    stop: &portolan_scan::interrupt::Interrupt,
    ctx: &Context,
) -> anyhow::Result<std::collections::HashSet<std::net::IpAddr>> {
    let mut opts = options(v)?;
    opts.stop = Some(stop.flag());
    let mut cut = std::collections::HashSet::new();
    let mut at: Vec<(usize, usize)> = Vec::new();
    let mut targets = Vec::new();
    for (hi, h) in hosts.iter().enumerate() {
        for (pi, p) in h.ports.iter().enumerate() {
            let udp_maybe = p.transport == Transport::Udp && p.state == PortState::OpenFiltered;
            if (p.state == PortState::Open || udp_maybe)
                && matches!(p.transport, Transport::Tcp | Transport::Udp)
            {
                at.push((hi, pi));
                targets.push(Target::new(SocketAddr::new(h.address, p.number), p.transport));
            }
        }
    }
    if targets.is_empty() || stop.stopped() {
        return Ok(targets.iter().map(|t| t.addr.ip()).collect());
    }
    if !ctx.quiet {
        eprintln!(
            "portolan: identifying {} open port{} (-sV)",
            targets.len(),
            if targets.len() == 1 { "" } else { "s" }
        );
    }
    let results = portolan_identify::identify(&targets, &opts)?;
    let mut err = io::stderr().lock();
    for ((hi, pi), r) in at.into_iter().zip(results) {
        if r.status == portolan_identify::Status::Interrupted {
            cut.insert(r.address);
        }
        let port = &mut hosts[hi].ports[pi];
        if let Some(s) = r.service {
            port.service = Some(std::sync::Arc::new(s));
            if port.state == PortState::OpenFiltered {
                port.state = PortState::Open;
            }
        }
        if !ctx.quiet {
            for f in r.findings.iter().filter(|f| f.severity >= Severity::Low) {
                let _ = writeln!(
                    err,
                    "portolan: {}:{}/{}: {}: {}",
                    r.address,
                    r.port,
                    r.transport,
                    f.severity,
                    escape::terminal(&f.title)
                );
            }
        }
    }
    Ok(cut)
}
