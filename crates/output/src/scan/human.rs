//! nmap's normal output (`-oN`) and the human table Portolan prints on a terminal.

use std::io::{self, Write};

use portolan_model::{Host, HostState, PortState, ScanRun};

use super::{ScanSink, ShowOptions, hosts_summary, nmap_time, shown, version_text};
use crate::escape::terminal as esc;
use crate::table::{Cell, Style, Table};

/// nmap-style report per host. In `human` mode (the default terminal output) the comment
/// header and footer are left out and states are coloured when `color` is on.
pub struct NormalSink<W: Write> {
    out: W,
    opts: ShowOptions,
    human: bool,
    color: bool,
    /// "Nmap" or "Portolan": the scanner that made the run, as its header says.
    scanner: String,
}

impl<W: Write> NormalSink<W> {
    /// `-oN` output: nmap's layout with comment header and footer, no colour.
    pub fn normal(out: W, opts: ShowOptions) -> Self {
        NormalSink { out, opts, human: false, color: false, scanner: "Portolan".into() }
    }

    /// Terminal output: the same report without comment lines, coloured when `color`.
    pub fn human(out: W, opts: ShowOptions, color: bool) -> Self {
        NormalSink { out, opts, human: true, color, scanner: "Portolan".into() }
    }
}

fn state_style(s: PortState) -> Style {
    match s {
        PortState::Open => Style::Green,
        PortState::Closed => Style::Dim,
        PortState::Filtered | PortState::ClosedFiltered => Style::Yellow,
        PortState::OpenFiltered | PortState::Unfiltered => Style::Cyan,
    }
}

/// `name (address)` or `address`, as nmap heads a host.
pub fn host_label(host: &Host) -> String {
    match host.hostnames.first() {
        Some(h) => format!("{} ({})", esc(&h.name), host.address),
        None => host.address.to_string(),
    }
}

impl<W: Write> ScanSink for NormalSink<W> {
    fn begin(&mut self, run: &ScanRun) -> io::Result<()> {
        // an imported nmap run reads "Nmap scan report for" throughout, as its header does
        self.scanner = esc(&super::scanner_title(run)).into_owned();
        if !self.human {
            writeln!(
                self.out,
                "# {} {} scan initiated {} as: {}",
                esc(&super::scanner_title(run)),
                esc(&run.scanner_version),
                nmap_time(run.start),
                esc(&run.args)
            )?;
        }
        self.out.flush()
    }

    fn host(&mut self, host: &Host) -> io::Result<()> {
        let o = &mut self.out;
        let label = host_label(host);
        if host.status.state != HostState::Up {
            // why a host is down is said with --reason, and always when it could not be probed
            let unprobeable = matches!(
                host.status.reason,
                portolan_model::Reason::NoRoute
                    | portolan_model::Reason::Broadcast
                    | portolan_model::Reason::NetProhibited
            );
            if self.opts.reason || unprobeable {
                writeln!(
                    o,
                    "{} scan report for {label} [host {}, received {}]",
                    self.scanner, host.status.state, host.status.reason
                )?;
            } else {
                writeln!(o, "{} scan report for {label} [host {}]", self.scanner, host.status.state)?;
            }
            return o.flush();
        }
        let title = format!("{} scan report for {label}", self.scanner);
        writeln!(o, "{}", Style::Bold.paint(&title, self.color))?;
        match host.srtt_us {
            Some(us) if self.opts.reason => {
                writeln!(o, "Host is up, received {} ({:.5}s latency).", host.status.reason, us as f64 / 1e6)?
            }
            Some(us) => writeln!(o, "Host is up ({:.5}s latency).", us as f64 / 1e6)?,
            None if self.opts.reason => writeln!(o, "Host is up, received {}.", host.status.reason)?,
            None => writeln!(o, "Host is up.")?,
        }
        let s = shown(host, &self.opts);
        let listed_total: u32 = s.listed.len() as u32;
        let extra_total: u32 = s.extra.iter().map(|e| e.count).sum();
        if listed_total == 0 && extra_total > 0 {
            writeln!(o, "All {extra_total} scanned ports on {label} are in ignored states.")?;
        }
        // one line, as nmap: "Not shown: 997 filtered tcp ports (no-response), 1 closed tcp port (reset)"
        let mut not_shown = Vec::new();
        for e in &s.extra {
            let reasons: Vec<String> = e
                .reasons
                .iter()
                .map(|r| {
                    if r.count == e.count {
                        r.reason.to_string()
                    } else {
                        format!("{} {}", r.count, r.reason)
                    }
                })
                .collect();
            let transport =
                e.reasons.first().and_then(|r| r.transport).map(|t| format!(" {t}")).unwrap_or_default();
            let why = if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) };
            let ports = if e.count == 1 { "port" } else { "ports" };
            not_shown.push(format!("{} {}{} {ports}{why}", e.count, e.state, transport));
        }
        if !not_shown.is_empty() {
            writeln!(o, "Not shown: {}", not_shown.join(", "))?;
        }
        if !s.listed.is_empty() {
            let with_version =
                s.listed.iter().any(|p| p.service.as_ref().is_some_and(|v| !version_text(v).is_empty()));
            let mut headers = vec!["PORT", "STATE", "SERVICE"];
            if self.opts.reason {
                headers.push("REASON");
            }
            if with_version {
                headers.push("VERSION");
            }
            let mut t = Table::new(headers);
            for p in &s.listed {
                let mut row = vec![
                    Cell::new(format!("{}/{}", p.number, p.transport)),
                    Cell::styled(
                        p.state.as_str(),
                        if self.color { state_style(p.state) } else { Style::Plain },
                    ),
                    // nmap's normal output names a tunnelled service ssl/NAME
                    Cell::new(p.service.as_ref().map_or_else(
                        || "unknown".to_string(),
                        |v| match v.tunnel {
                            Some(portolan_model::Tunnel::Ssl) => format!("ssl/{}", v.name),
                            None => v.name.clone(),
                        },
                    )),
                ];
                if self.opts.reason {
                    let ttl = if p.reason_ttl > 0 { format!(" ttl {}", p.reason_ttl) } else { String::new() };
                    row.push(Cell::new(format!("{}{ttl}", p.reason)));
                }
                if with_version {
                    row.push(Cell::new(p.service.as_deref().map(version_text).unwrap_or_default()));
                }
                t.row(row);
            }
            t.render(o, self.color)?;
        }
        if let Some(mac) = &host.mac {
            writeln!(
                o,
                "MAC Address: {} ({})",
                esc(mac),
                esc(host.mac_vendor.as_deref().unwrap_or("Unknown"))
            )?;
        }
        writeln!(o)?;
        o.flush()
    }

    fn end(&mut self, run: &ScanRun) -> io::Result<()> {
        let finished = run.stats.finished.unwrap_or_else(jiff::Timestamp::now);
        if let Some(m) = &run.stats.error_message {
            writeln!(self.out, "# {}", esc(m))?;
        }
        if self.human {
            writeln!(
                self.out,
                "{} done: {} scanned in {:.2} seconds",
                self.scanner,
                hosts_summary(run),
                run.stats.elapsed_secs
            )?;
        } else {
            writeln!(
                self.out,
                "# {} done at {} -- {} scanned in {:.2} seconds",
                super::scanner_title(run),
                nmap_time(finished),
                hosts_summary(run),
                run.stats.elapsed_secs
            )?;
        }
        self.out.flush()
    }
}
