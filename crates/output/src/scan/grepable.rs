//! nmap's grepable output (`-oG`): one `Host:` line for status and one for ports.

use std::io::{self, Write};

use portolan_model::{Host, HostState, ScanRun};

use super::{ScanSink, ShowOptions, hosts_summary, nmap_time, shown, version_text};
use crate::escape::terminal as esc;

/// Writes grepable lines as hosts finish.
pub struct GrepableSink<W: Write> {
    out: W,
    opts: ShowOptions,
}

impl<W: Write> GrepableSink<W> {
    /// A grepable writer.
    pub fn new(out: W, opts: ShowOptions) -> Self {
        GrepableSink { out, opts }
    }
}

/// Grepable fields are separated by `/` and `,`: nmap replaces `/` inside a field with `|`.
fn field(s: &str) -> String {
    esc(s).replace('/', "|").replace(',', " ")
}

impl<W: Write> ScanSink for GrepableSink<W> {
    fn begin(&mut self, run: &ScanRun) -> io::Result<()> {
        writeln!(
            self.out,
            "# {} {} scan initiated {} as: {}",
            esc(&super::scanner_title(run)),
            esc(&run.scanner_version),
            nmap_time(run.start),
            esc(&run.args)
        )?;
        let mut by_t: Vec<String> = Vec::new();
        for si in &run.scan_info {
            by_t.push(format!(
                "{}({};{})",
                si.transport.as_str().to_uppercase(),
                si.num_services,
                si.services
            ));
        }
        if !by_t.is_empty() {
            writeln!(self.out, "# Ports scanned: {}", by_t.join(" "))?;
        }
        self.out.flush()
    }

    fn host(&mut self, host: &Host) -> io::Result<()> {
        let name = host.hostnames.first().map(|h| field(&h.name)).unwrap_or_default();
        let head = format!("Host: {} ({name})", host.address);
        let status = match host.status.state {
            HostState::Up => "Up",
            HostState::Down => "Down",
            HostState::Unknown => "Unknown",
            HostState::Skipped => "Skipped",
        };
        writeln!(self.out, "{head}\tStatus: {status}")?;
        // a discovery-only scan (-sn) has no Ports line, as in nmap
        if host.status.state == HostState::Up && (!host.ports.is_empty() || !host.extra_ports.is_empty()) {
            let s = shown(host, &self.opts);
            let ports: Vec<String> = s
                .listed
                .iter()
                .map(|p| {
                    let (name, version) = match &p.service {
                        // nmap's grepable output names a tunnelled service ssl|NAME
                        Some(v) if v.tunnel.is_some() => {
                            (format!("ssl|{}", field(&v.name)), field(&version_text(v)))
                        }
                        Some(v) => (field(&v.name), field(&version_text(v))),
                        None => (String::new(), String::new()),
                    };
                    format!("{}/{}/{}//{name}//{version}/", p.number, p.state, p.transport)
                })
                .collect();
            let mut line = format!("{head}\tPorts: {}", ports.join(", "));
            for e in &s.extra {
                line.push_str(&format!("\tIgnored State: {} ({})", e.state, e.count));
            }
            writeln!(self.out, "{line}")?;
        }
        self.out.flush()
    }

    fn end(&mut self, run: &ScanRun) -> io::Result<()> {
        let finished = run.stats.finished.unwrap_or_else(jiff::Timestamp::now);
        writeln!(
            self.out,
            "# {} done at {} -- {} scanned in {:.2} seconds",
            super::scanner_title(run),
            nmap_time(finished),
            hosts_summary(run),
            run.stats.elapsed_secs
        )?;
        self.out.flush()
    }
}
