//! A scan session: the run from its first line of output to its last. It opens the run in the
//! sinks, re-emits the hosts an interrupted run finished (`--resume`), drives the scan engine,
//! identifies the open ports of each host when asked (`-sV`), obeys a stop request in every
//! phase, closes the outputs properly whatever happened, and returns what a resume file needs.
//!
//! A [`scan::ScanRequest`] (targets, ports, timing, probe type as a person asked for them)
//! becomes the [`Plan`]; a [`Watcher`] hears the progress and the notes a person might want.
//! Only [`console::Console`], the watcher for people, prints.

pub mod console;
pub mod diff;
pub mod firewall;
pub mod gather;
pub mod home;
pub mod report;
pub mod scan;
pub mod watch;
pub mod watching;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use jiff::Timestamp;
use portolan_identify::{Identified, Target};
use portolan_model::{Host, HostState, PortState, Reason, RunExit, ScanInfo, ScanRun, ScanType, Transport};
use portolan_output::scan::ScanSink;
use portolan_scan::interrupt::Interrupt;
use portolan_scan::{Config, Observer, PortSet, Probe, Progress, Summary};

/// Why a session failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The scan engine failed (the outputs were closed, saying so).
    #[error(transparent)]
    Scan(#[from] portolan_scan::Error),
    /// Identification could not start.
    #[error(transparent)]
    Identify(#[from] portolan_identify::Error),
    /// An output could not be written.
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

/// What to run.
pub struct Plan {
    /// The scan (targets, ports, timing, probe type); `done` is set from what is resumed.
    pub config: Config,
    /// `-sV`: identify the open ports with these options.
    pub identify: Option<portolan_identify::Options>,
    /// The command line, as the run's `args`.
    pub command_line: String,
    /// Portolan's version.
    pub version: String,
    /// Keep every host in the returned run (for a snapshot or a judge).
    pub keep: bool,
}

/// What an interrupted run finished: not scanned again, re-emitted first.
#[derive(Debug, Default)]
pub struct Resumed {
    /// Every finished host, up or down.
    pub done: Vec<IpAddr>,
    /// The finished hosts that were reported.
    pub hosts: Vec<Host>,
}

/// How a session ended.
pub struct Finished {
    /// The run (with every host when the plan said `keep`).
    pub run: ScanRun,
    /// The exit code when a stop request cut it short (130, 143).
    pub interrupted: Option<u8>,
    /// Every host finished so far, for a resume file (the finished hosts' reports only when
    /// interrupted).
    pub left: Resumed,
    /// The engine's counters.
    pub summary: Summary,
}

/// Hears what a person may want to see while a session runs. Every method has a default
/// that does nothing.
pub trait Watcher {
    /// The scan's progress.
    fn progress(&mut self, _p: &Progress) {}
    /// The scan is done (identification may follow); `unprobeable` lists the addresses no
    /// probe could reach (broadcast, no route), reported down.
    fn scanned(&mut self, _unprobeable: &[(IpAddr, Reason)]) {}
    /// Identification starts on this many open ports.
    fn identifying(&mut self, _ports: usize) {}
    /// One port identified.
    fn identified(&mut self, _result: &Identified) {}
}

/// A watcher that hears nothing.
pub struct Quiet;

impl Watcher for Quiet {}

struct Live<'a> {
    sinks: &'a mut dyn ScanSink,
    watch: &'a mut dyn Watcher,
    /// Hosts finished (for a resume file), and the finished ones reported.
    done: Vec<IpAddr>,
    /// Shared with `keep`: a host of all ports of a closed machine has 65,535 of them, and a
    /// copy of it was the largest cost of the scan after its packets.
    done_hosts: Vec<Arc<Host>>,
    /// Finished hosts whose report has not come yet (with -sV it comes after the scan).
    unreported: HashSet<IpAddr>,
    /// Hosts kept for the run.
    keep: Option<Vec<Arc<Host>>>,
    error: Option<std::io::Error>,
    /// With -sV: hosts held until their open ports are identified.
    deferred: Option<Vec<Host>>,
    /// Addresses no probe could reach (broadcast, no route), with why.
    unprobeable: Vec<(IpAddr, Reason)>,
}

impl Observer for Live<'_> {
    fn finished(&mut self, addr: IpAddr) {
        self.done.push(addr);
        self.unreported.insert(addr);
    }
    fn host(&mut self, host: Host) {
        if host.status.state == HostState::Down
            && matches!(host.status.reason, Reason::NoRoute | Reason::Broadcast | Reason::NetProhibited)
        {
            self.unprobeable.push((host.address, host.status.reason.clone()));
        }
        if let Some(d) = self.deferred.as_mut() {
            d.push(host);
            return;
        }
        let host = Arc::new(host);
        // a finished host's report (a host cut short by Ctrl-C is reported but not finished)
        if self.unreported.remove(&host.address) {
            self.done_hosts.push(Arc::clone(&host));
        }
        if self.error.is_none()
            && let Err(e) = self.sinks.host(&host)
        {
            self.error = Some(e);
        }
        if let Some(keep) = self.keep.as_mut() {
            keep.push(host);
        }
    }
    fn progress(&mut self, p: &Progress) {
        self.watch.progress(p);
    }
}

/// Runs a session into `sinks`. The outputs are closed properly (valid XML saying how the run
/// ended) on every path but a failure to write them.
pub fn run(
    mut plan: Plan,
    sinks: &mut dyn ScanSink,
    resumed: Resumed,
    stop: &Interrupt,
    watch: &mut dyn Watcher,
) -> Result<Finished, SessionError> {
    let cfg = &mut plan.config;
    let start = Timestamp::now();
    let mut run = ScanRun::new("portolan", &plan.version, &plan.command_line, start);
    if !cfg.ports.is_empty() {
        run.scan_info.push(ScanInfo {
            scan_type: if cfg.probe == Probe::Syn { ScanType::Syn } else { ScanType::Connect },
            transport: Transport::Tcp,
            num_services: cfg.ports.len() as u32,
            services: PortSet::ranges(&cfg.ports),
        });
    }
    if !cfg.udp_ports.is_empty() {
        run.scan_info.push(ScanInfo {
            scan_type: ScanType::Udp,
            transport: Transport::Udp,
            num_services: cfg.udp_ports.len() as u32,
            services: PortSet::ranges(&cfg.udp_ports),
        });
    }
    sinks.begin(&run)?;
    let resumed_up = resumed.hosts.iter().filter(|h| h.status.state == HostState::Up).count() as u32;
    let resumed_total = resumed.done.len() as u32;
    let resumed_reported = resumed.hosts.len();
    for h in &resumed.hosts {
        sinks.host(h)?;
    }
    cfg.done = (!resumed.done.is_empty()).then(|| Arc::new(resumed.done.iter().copied().collect()));
    let t0 = Instant::now();
    let mut live = Live {
        sinks,
        watch,
        done: resumed.done,
        done_hosts: resumed.hosts.into_iter().map(Arc::new).collect(),
        unreported: HashSet::new(),
        keep: plan.keep.then(Vec::new),
        error: None,
        deferred: plan.identify.is_some().then(Vec::new),
        unprobeable: Vec::new(),
    };
    let result = portolan_scan::engine::run(cfg, stop.flag(), &mut live);
    live.watch.scanned(if result.is_ok() { &live.unprobeable } else { &[] });
    if let (Some(mut hosts), Some(opts)) = (live.deferred.take(), plan.identify.take()) {
        let cut = enrich(&mut hosts, opts, stop, live.watch)?;
        // a host whose identification was cut short is reported as far as it got, but is not
        // finished: a resumed run scans and identifies it again
        live.done.retain(|a| !cut.contains(a));
        for h in hosts {
            if cut.contains(&h.address) {
                live.unreported.remove(&h.address);
            }
            live.host(h);
        }
    }
    if let Some(e) = live.error.take() {
        return Err(e.into());
    }
    let kept = live.keep.take().map(|k| {
        // the re-emitted hosts belong to the run too
        let mut all: Vec<Arc<Host>> = live.done_hosts.iter().take(resumed_reported).cloned().collect();
        all.extend(k);
        all
    });
    let done = std::mem::take(&mut live.done);
    let done_hosts = std::mem::take(&mut live.done_hosts);
    let sinks = live.sinks;
    run.stats.finished = Some(Timestamp::now());
    run.stats.elapsed_secs = t0.elapsed().as_secs_f64();
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            // close every output properly (valid XML says the run ended in error) before failing
            run.stats.exit = RunExit::Error;
            run.stats.error_message = Some(e.to_string());
            sinks.end(&run)?;
            return Err(e.into());
        }
    };
    run.stats.elapsed_secs = t0.elapsed().as_secs_f64();
    run.stats.hosts_up = summary.hosts_up + resumed_up;
    run.stats.hosts_down = summary.hosts_down + (resumed_total - resumed_up.min(resumed_total));
    run.stats.hosts_total = summary.hosts_total + resumed_total;
    let interrupted = summary.interrupted || stop.stopped();
    if interrupted {
        run.stats.exit = RunExit::Interrupted;
        run.stats.error_message = Some("interrupted by the user; results are partial".into());
    }
    sinks.end(&run)?;
    // the finished hosts are wanted for a resume file only: without one each kept host is
    // moved, not copied
    let left = Resumed {
        done,
        hosts: if interrupted { done_hosts.iter().map(|h| Host::clone(h)).collect() } else { Vec::new() },
    };
    drop(done_hosts);
    if let Some(hosts) = kept {
        run.hosts = hosts.into_iter().map(Arc::unwrap_or_clone).collect();
    }
    Ok(Finished { run, interrupted: interrupted.then(|| stop.exit_code()), left, summary })
}

/// Identifies the open ports of `hosts` in place (-sV): each open port's service is what
/// answered. Returns the addresses of the hosts whose identification a stop request cut short.
pub fn enrich(
    hosts: &mut [Host],
    mut opts: portolan_identify::Options,
    stop: &Interrupt,
    watch: &mut dyn Watcher,
) -> Result<HashSet<IpAddr>, SessionError> {
    opts.stop = Some(stop.flag());
    let mut cut = HashSet::new();
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
    watch.identifying(targets.len());
    let results = portolan_identify::identify(&targets, &opts)?;
    for ((hi, pi), r) in at.into_iter().zip(results) {
        if r.status == portolan_identify::Status::Interrupted {
            cut.insert(r.address);
        }
        watch.identified(&r);
        let port = &mut hosts[hi].ports[pi];
        if let Some(s) = r.service {
            port.service = Some(Arc::new(s));
            if port.state == PortState::OpenFiltered {
                port.state = PortState::Open;
            }
        }
    }
    Ok(cut)
}

/// An error and its causes on one line, each cause once (a message that already quotes its
/// cause is not followed by it again).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        cause = c.source();
    }
    msg
}

/// A report of findings in the one form audit, lint and watch write: made now, on this
/// machine, by this `version`, of what `source` names.
pub fn audit_report(
    policy: Vec<String>,
    source: String,
    hosts: u32,
    observed: Vec<portolan_model::FindingTarget>,
    findings: Vec<portolan_model::Finding>,
    version: &str,
) -> portolan_model::AuditReport {
    portolan_model::AuditReport {
        format_version: portolan_model::FORMAT_VERSION,
        taken_at: Timestamp::now(),
        machine: portolan_local::hostname(),
        tool_version: version.to_string(),
        policy,
        source,
        hosts,
        observed,
        summary: portolan_model::AuditSummary::of(&findings),
        findings,
    }
}
