//! `portolan watch` for people: one line per detection, then what it is, where and how, and
//! where the evidence is; a summary of the inputs at the end.

use std::io::{self, Write};

use portolan_model::Severity;
use portolan_model::traffic::WatchReport;

use crate::escape::terminal;
use crate::table::Style;

fn severity_style(s: Severity) -> Style {
    match s {
        Severity::Critical | Severity::High => Style::Red,
        Severity::Medium => Style::Yellow,
        Severity::Low | Severity::Info => Style::Plain,
    }
}

/// The whole report.
pub fn write_human(out: &mut dyn Write, r: &WatchReport, color: bool) -> io::Result<()> {
    if r.detections.is_empty() {
        writeln!(out, "{}", Style::Green.paint("No scans, sweeps or brute force found.", color))?;
    }
    for d in &r.detections {
        write_detection(out, d, color)?;
    }
    writeln!(out)?;
    write_inputs(out, r)
}

/// One detection: its line, then who, what, how, when and the evidence.
pub fn write_detection(out: &mut dyn Write, d: &portolan_model::Detection, color: bool) -> io::Result<()> {
    {
        let sev = severity_style(d.severity).paint(&format!("{:<8}", d.severity.as_str()), color);
        writeln!(out, "{sev} {:<16} {}", d.kind.as_str(), terminal(&d.summary))?;
        let who = match d.src {
            Some(s) => s.to_string(),
            None => d.srcs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        };
        if !who.is_empty() {
            writeln!(
                out,
                "         from      {who}{}",
                if d.allowed { " (an allowed scanner)" } else { "" }
            )?;
        }
        let more = d.target_count.saturating_sub(d.targets.len() as u64);
        let targets = d.targets.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        if more > 0 {
            writeln!(out, "         targets   {targets} and {more} more")?;
        } else {
            writeln!(out, "         targets   {targets}")?;
        }
        writeln!(
            out,
            "         ports     {}/{} ({} in all)",
            shorten(&d.ports, 80),
            d.transport,
            d.port_count
        )?;
        let mut how = Vec::new();
        if let Some(t) = d.scan_type {
            how.push(format!("{} scan", t.as_str()));
        }
        how.push(format!("tool {}", d.tool.as_str()));
        how.push(format!("{} events", d.events));
        writeln!(out, "         how       {}", how.join(", "))?;
        writeln!(out, "         when      {} .. {}", d.first_seen, d.last_seen)?;
        writeln!(out, "         att&ck    {}", d.attack.join(", "))?;
        writeln!(out, "         evidence  {}", terminal(&d.evidence.join(" ")))?;
        if d.open {
            writeln!(out, "         (still going: the complete report follows when it ends)")?;
        }
    }
    Ok(())
}

/// What was read from each input.
pub fn write_inputs(out: &mut dyn Write, r: &WatchReport) -> io::Result<()> {
    for i in &r.inputs {
        write!(
            out,
            "Read {} ({}): {} {}, {} event{}",
            terminal(&i.path),
            i.format,
            i.records,
            if i.format == "pcap" { "packets" } else { "lines" },
            i.events,
            if i.events == 1 { "" } else { "s" }
        )?;
        if i.skipped > 0 {
            write!(out, ", {} skipped", i.skipped)?;
        }
        if i.undecoded > 0 {
            write!(out, ", {} not IP", i.undecoded)?;
        }
        if i.evicted_flows > 0 {
            write!(out, ", {} flows ended early (table full)", i.evicted_flows)?;
        }
        writeln!(out)?;
        if let Some(s) = &i.first_skip {
            writeln!(out, "  first skipped: {}", terminal(s))?;
        }
    }
    if r.evicted_sources > 0 {
        writeln!(
            out,
            "{} sources dropped untracked (the cap on tracked sources was reached)",
            r.evicted_sources
        )?;
    }
    Ok(())
}

fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let cut = s[..max].rfind(',').unwrap_or(max);
    format!("{},…", &s[..cut])
}

/// The detections as findings (`watch.<kind>`), for the audit formats (SARIF): the first
/// evidence is the location (`file:line`; a capture's packet number is kept in the evidence).
pub fn findings(r: &WatchReport) -> Vec<portolan_model::Finding> {
    r.detections
        .iter()
        .map(|d| {
            let location = d.evidence.first().map(|ev| match ev.rsplit_once(':') {
                Some((file, line)) if line.bytes().all(|b| b.is_ascii_digit()) && !line.is_empty() => {
                    portolan_model::SourceLocation::new(file, line.parse().unwrap_or(1), 1)
                }
                _ => portolan_model::SourceLocation::new(
                    ev.split_once('#').map_or(ev.as_str(), |(f, _)| f),
                    1,
                    1,
                ),
            });
            let transport = match d.transport {
                portolan_model::Proto::Udp => Some(portolan_model::Transport::Udp),
                portolan_model::Proto::Tcp => Some(portolan_model::Transport::Tcp),
                portolan_model::Proto::Sctp => Some(portolan_model::Transport::Sctp),
                _ => None,
            };
            let mut evidence = vec![format!("{} .. {}, {} events", d.first_seen, d.last_seen, d.events)];
            evidence.extend(d.evidence.iter().cloned());
            portolan_model::Finding {
                rule: format!("watch.{}", d.kind.as_str()),
                severity: d.severity,
                title: d.summary.clone(),
                target: Some(portolan_model::FindingTarget {
                    address: d.src.or_else(|| d.targets.first().copied()),
                    port: if d.port_count == 1 { d.ports.parse().ok() } else { None },
                    transport,
                }),
                evidence,
                remediation: crate::audit::RULES
                    .iter()
                    .find(|(id, _, _)| id.strip_prefix("watch.") == Some(d.kind.as_str()))
                    .map_or(String::new(), |(_, _, full)| full.to_string()),
                references: Vec::new(),
                attack: d.attack.clone(),
                location,
            }
        })
        .collect()
}
