//! What a person sees on stderr while a command works: a progress bar with its ETA (only on a
//! terminal, never under `CI=true` or `--quiet`), notes, warnings and what was saved. The only
//! part of this crate that prints; untrusted text is escaped on the way.

use std::net::IpAddr;

use portolan_model::{Reason, Severity, Snapshot};
use portolan_output::escape::terminal;
use portolan_scan::{Progress, Summary};

use crate::Watcher;

/// The console of one command.
pub struct Console {
    bar: Option<indicatif::ProgressBar>,
    /// Whether to show a progress bar at all.
    progress: bool,
    /// `--quiet`: no notes (errors still appear).
    pub quiet: bool,
    /// `-v` level.
    pub verbose: u8,
}

impl Console {
    /// A console; `progress` when stderr is a terminal and nobody asked for quiet.
    pub fn new(progress: bool, quiet: bool, verbose: u8) -> Console {
        Console { bar: None, progress, quiet, verbose }
    }

    /// A note (`portolan: …`), unless quiet.
    pub fn note(&self, text: &str) {
        if !self.quiet {
            eprintln!("portolan: {}", terminal(text));
        }
    }

    /// A warning (`portolan: warning: …`), unless quiet.
    pub fn warn(&self, text: &str) {
        if !self.quiet {
            eprintln!("portolan: warning: {}", terminal(text));
        }
    }

    /// Saves a snapshot and says where.
    pub fn saved(
        &self,
        store: &mut portolan_store::Store,
        snapshot: &Snapshot,
    ) -> Result<i64, portolan_store::Error> {
        let t0 = std::time::Instant::now();
        let id = store.save(snapshot)?;
        if std::env::var_os("PORTOLAN_TIMING").is_some() {
            let n =
                snapshot.scan.as_ref().map_or(0, |r| r.hosts.iter().map(|h| h.ports.len()).sum::<usize>())
                    + snapshot.local.as_ref().map_or(0, |l| l.sockets.len());
            eprintln!("timing: saved {n} observations in {:.1} ms", t0.elapsed().as_secs_f64() * 1e3);
        }
        self.note(&format!("saved snapshot {id} in {}", store.location()));
        Ok(id)
    }

    /// A policy's warnings: each one, or with `summary` how many.
    pub fn policy_warnings(&self, policy: &portolan_policy::Policy, path: &std::path::Path, summary: bool) {
        let n = policy.warnings.len();
        if n == 0 {
        } else if summary {
            self.warn(&format!(
                "{n} owner or purpose field{} of the policy {} still TODO (portolan policy check {} lists them)",
                if n == 1 { "" } else { "s" },
                if n == 1 { "is" } else { "are" },
                path.display()
            ));
        } else {
            for w in &policy.warnings {
                self.warn(&w.to_string());
            }
        }
    }

    /// The engine's counters, at `-v`.
    pub fn summary(&self, s: &Summary) {
        if self.verbose > 0 {
            self.note(&format!(
                "{} probes ({} retransmitted), at most {} in flight (descriptor budget {})",
                s.sent, s.retransmissions, s.peak_in_flight, s.fd_budget
            ));
            if s.ring_answers > 0 {
                self.note(&format!("{} answers read from a receive ring", s.ring_answers));
            }
        }
    }

    fn bar(&mut self) -> Option<&indicatif::ProgressBar> {
        if self.bar.is_none() && self.progress {
            let b = indicatif::ProgressBar::new(1);
            b.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(5));
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{wide_bar}] {pos}/{len} probes, {per_sec}, ETA {eta}, {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            self.bar = Some(b);
        }
        self.bar.as_ref()
    }
}

impl Watcher for Console {
    fn progress(&mut self, p: &Progress) {
        if let Some(bar) = self.bar() {
            bar.set_length(p.total.max(1));
            bar.set_position(p.done);
            bar.set_message(format!("{} open", p.open));
        }
    }
    fn scanned(&mut self, unprobeable: &[(IpAddr, Reason)]) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        // the bar is not made again for the identification
        self.progress = false;
        if !unprobeable.is_empty() {
            self.note(&crate::scan::unprobeable_note(unprobeable));
        }
    }
    fn identifying(&mut self, ports: usize) {
        self.note(&format!("identifying {ports} open port{} (-sV)", if ports == 1 { "" } else { "s" }));
    }
    fn identified(&mut self, r: &portolan_identify::Identified) {
        for f in r.findings.iter().filter(|f| f.severity >= Severity::Low) {
            self.note(&format!("{}:{}/{}: {}: {}", r.address, r.port, r.transport, f.severity, f.title));
        }
    }
}
