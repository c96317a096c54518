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
