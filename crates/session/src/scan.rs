//! A scan as a person asks for it: targets, ports and timing as written, the probe type, and
//! what to do with the result (outputs, a snapshot, a shard of a run, a resume file). The
//! binary fills a [`ScanRequest`] from its flags; everything from there on is here.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use portolan_model::{Reason, ScanRun, Snapshot, Source, Transport};
use portolan_output::scan::Sinks;
use portolan_registry::Ranking;
use portolan_scan::interrupt::Interrupt;
use portolan_scan::resume::ResumeFile;
use portolan_scan::shard::Shard;
use portolan_scan::{Config, PortSet, Probe, TargetSet, Timing, targets};
use portolan_store::{RunSpec, Store};

use crate::console::Console;
use crate::{Plan, Resumed};

/// More hosts than this needs an explicit yes: a /16.
pub const HOST_LIMIT: u128 = 65_536;

/// Why a scan request cannot run. The messages name no flag; the binary adds them.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The smallest probe timeout is above the largest.
    #[error("the minimum probe timeout is above the maximum")]
    RttOrder,
    /// The lowest rate is above the highest.
    #[error("the minimum rate {min} is above the maximum rate {max}")]
    RateOrder {
        /// Probes a second at least.
        min: f64,
        /// Probes a second at most.
        max: f64,
    },
    /// A shard without a seed.
    #[error("a shard needs a seed, the same on every shard, so that the shards agree on the split")]
    ShardWithoutSeed,
    /// An IPv6 scan given an IPv4 target.
    #[error("an IPv6 scan was asked for, and {0} is an IPv4 address: give IPv6 targets")]
    V4InV6Scan(std::net::Ipv4Addr),
    /// Nothing to scan at all.
    #[error("no targets given: name hosts, networks or ranges, or a file of them")]
    NoTargets,
    /// UDP ports without a UDP scan.
    #[error("UDP ports (U:...) need a UDP scan")]
    UdpPortsWithoutUdp,
    /// TCP ports in a UDP-only scan.
    #[error("TCP ports (T:...) need a TCP scan beside the UDP scan")]
    TcpPortsWithoutTcp,
    /// Every port is excluded.
    #[error("no ports left to scan")]
    NoPorts,
    /// More shards than a run can count.
    #[error("shard {index}/{count}: at most 4294967295 shards")]
    TooManyShards {
        /// The shard.
        index: u64,
        /// Of how many.
        count: u64,
    },
    /// A scan that fed a judge was cut short.
    #[error("the scan was interrupted; nothing was judged")]
    Interrupted,
    /// The stop signals cannot be watched.
    #[error("cannot watch for Ctrl-C: {0}")]
    Signals(std::io::Error),
    /// The resume file cannot be written.
    #[error("{0}")]
    Resume(#[from] portolan_scan::resume::ResumeError),
    /// The engine or identification failed.
    #[error("{0}")]
    Session(#[from] crate::SessionError),
    /// A target, port or resume problem found by the scan library.
    #[error("{0}")]
    Scan(#[from] portolan_scan::Error),
    /// The service names cannot be read.
    #[error("{0}")]
    Registry(#[from] portolan_registry::Error),
    /// The snapshot database refused.
    #[error("{0}")]
    Store(#[from] portolan_store::Error),
    /// Standard output failed.
    #[error("writing to standard output: {0}")]
    Stdout(std::io::Error),
}

/// Timing as asked for: nmap's template and its overrides.
#[derive(Debug, Clone, Default)]
pub struct TimingRequest {
    /// `-T0`..`-T5`.
    pub template: u8,
    /// Probes a second at least.
    pub min_rate: Option<f64>,
    /// Probes a second at most.
    pub max_rate: Option<f64>,
    /// Retransmissions at most.
    pub max_retries: Option<u8>,
    /// Give up a host after this long.
    pub host_timeout: Option<Duration>,
    /// Delay between probes to one host.
    pub scan_delay: Option<Duration>,
    /// Floor of the probe timeout.
    pub min_rtt: Option<Duration>,
    /// Ceiling of the probe timeout.
    pub max_rtt: Option<Duration>,
    /// Probe timeout before any answer.
    pub initial_rtt: Option<Duration>,
    /// Probes in flight at most.
    pub max_parallelism: Option<usize>,
}

impl TimingRequest {
    /// The template with its overrides, checked.
    pub fn timing(&self) -> Result<Timing, RequestError> {
        let mut t = Timing::template(self.template);
        t.host_timeout = self.host_timeout.or(t.host_timeout);
        t.scan_delay = self.scan_delay.unwrap_or(t.scan_delay);
        t.min_rtt = self.min_rtt.unwrap_or(t.min_rtt);
        t.max_rtt = self.max_rtt.unwrap_or(t.max_rtt);
        t.initial_rtt = self.initial_rtt.unwrap_or(t.initial_rtt);
        if t.min_rtt > t.max_rtt {
            return Err(RequestError::RttOrder);
        }
        t.max_retries = self.max_retries.unwrap_or(t.max_retries);
        t.max_parallelism = self.max_parallelism.unwrap_or(t.max_parallelism);
        if let (Some(min), Some(max)) = (self.min_rate, self.max_rate)
            && min > max
        {
            return Err(RequestError::RateOrder { min, max });
        }
        t.min_rate = self.min_rate;
        t.max_rate = self.max_rate;
        Ok(t)
    }
}

/// A scan as asked for.
#[derive(Debug, Clone, Default)]
pub struct ScanRequest {
    /// Hosts, networks and ranges as written.
    pub targets: Vec<String>,
    /// A file of targets.
    pub input_list: Option<PathBuf>,
    /// Targets to leave out, as written.
    pub exclude: Option<String>,
    /// A file of targets to leave out.
    pub excludefile: Option<PathBuf>,
    /// Ports as written (`22,80,8000-8100`, `T:22,U:53`).
    pub ports: Option<String>,
    /// The N most common ports.
    pub top_ports: Option<usize>,
    /// The 100 most common ports.
    pub fast: bool,
    /// Ports to leave out, as written.
    pub exclude_ports: Option<String>,
    /// The TCP probe asked for; `None` lets the privilege decide.
    pub probe: Option<Probe>,
    /// A UDP scan.
    pub udp: bool,
    /// Host discovery only.
    pub ping_only: bool,
    /// Treat every host as up.
    pub skip_discovery: bool,
    /// IPv6 targets only.
    pub ipv6: bool,
    /// Scan more than [`HOST_LIMIT`] hosts.
    pub yes: bool,
    /// Timing.
    pub timing: TimingRequest,
    /// Seed of the scan order (and of the shard split).
    pub seed: Option<u64>,
    /// This node's shard.
    pub shard: Option<Shard>,
    /// Identify the open ports with these options.
    pub identify: Option<portolan_identify::Options>,
}

impl ScanRequest {
    /// Whether this request names anything to scan.
    pub fn has_targets(&self) -> bool {
        !self.targets.is_empty() || self.input_list.is_some()
    }

    /// The hosts to scan, exclusions applied.
    pub fn target_set(&self) -> Result<TargetSet, RequestError> {
        let mut set = targets::parse_list_for(self.targets.iter().map(String::as_str), false, self.ipv6)?;
        if let Some(f) = &self.input_list {
            set.extend(&targets::read_file_for(f, self.ipv6)?);
        }
        if self.ipv6
            && let Some(a) = set.first_v4()
        {
            return Err(RequestError::V4InV6Scan(a));
        }
        if set.is_empty() {
            if !self.has_targets() {
                return Err(RequestError::NoTargets);
            }
            return Err(portolan_scan::Error::NoTargets { excluded: false }.into());
        }
        let mut exclude = TargetSet::default();
        if let Some(list) = &self.exclude {
            exclude.extend(&targets::parse_list([list.as_str()], true)?);
        }
        if let Some(f) = &self.excludefile {
            exclude.extend(&targets::read_file(f)?);
        }
        set.exclude(&exclude);
        if set.is_empty() {
            return Err(portolan_scan::Error::NoTargets { excluded: true }.into());
        }
        if set.len() > HOST_LIMIT && !self.yes {
            return Err(portolan_scan::Error::TooManyHosts { count: set.len(), limit: HOST_LIMIT }.into());
        }
        Ok(set)
    }

    /// The ports to scan: a UDP scan alone scans UDP ports, with a TCP scan both (nmap's
    /// rules: a port without a `T:`/`U:` prefix counts for every transport scanned).
    pub fn port_set(&self, ranking: &Ranking) -> Result<PortSet, RequestError> {
        if self.ping_only {
            return Ok(PortSet::default());
        }
        let transports: &[Transport] = match (self.udp, self.probe.is_some()) {
            (true, false) => &[Transport::Udp],
            (true, true) => &[Transport::Tcp, Transport::Udp],
            (false, _) => &[Transport::Tcp],
        };
        let mut set = match &self.ports {
            Some(p) => PortSet::parse(p, transports)?,
            None => PortSet::top(
                ranking,
                if self.fast { 100 } else { self.top_ports.unwrap_or(1000) },
                transports,
            ),
        };
        if let Some(x) = &self.exclude_ports {
            set.exclude(&PortSet::parse(x, transports)?);
        }
        if !set.udp.is_empty() && !self.udp {
            return Err(RequestError::UdpPortsWithoutUdp);
        }
        if !set.tcp.is_empty() && !transports.contains(&Transport::Tcp) {
            return Err(RequestError::TcpPortsWithoutTcp);
        }
        if set.is_empty() {
            return Err(RequestError::NoPorts);
        }
        Ok(set)
    }

    /// The run this request's shard belongs to, and the shard's index: the arguments every
    /// shard must share, in a canonical text.
    pub fn run_spec(&self, name: &str) -> Result<(RunSpec, u32), RequestError> {
        let (index, count) = self.shard.map_or((1, 1), |s| (s.index, s.count));
        let (Ok(i), Ok(shards)) = (u32::try_from(index), u32::try_from(count)) else {
            return Err(RequestError::TooManyShards { index, count });
        };
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let mut shared = vec![format!("targets={}", self.targets.join(","))];
        let named = [
            ("input-list", path(&self.input_list)),
            ("exclude", self.exclude.clone()),
            ("excludefile", path(&self.excludefile)),
            ("ports", self.ports.clone()),
            ("top-ports", self.top_ports.map(|n| n.to_string())),
            ("fast", self.fast.then(String::new)),
            ("exclude-ports", self.exclude_ports.clone()),
            ("scan-type", self.probe.map(|t| format!("{t:?}").to_lowercase())),
            ("udp", self.udp.then(String::new)),
            ("ping-only", self.ping_only.then(String::new)),
            ("skip-discovery", self.skip_discovery.then(String::new)),
            ("ipv6", self.ipv6.then(String::new)),
        ];
        // valued options as key=value, switches as their name alone
        shared.extend(named.into_iter().filter_map(|(k, v)| {
            v.map(|v| {
                if matches!(k, "fast" | "udp" | "ping-only" | "skip-discovery" | "ipv6") {
                    k.to_string()
                } else {
                    format!("{k}={v}")
                }
            })
        }));
        let run =
            RunSpec { name: name.to_string(), shards, seed: self.seed.unwrap_or(0), spec: shared.join(" ") };
        Ok((run, i))
    }

    /// The plan for the session: every check is made here, before a packet is sent.
    fn plan(&self, keep: bool, console: &Console) -> Result<Plan, RequestError> {
        let timing = self.timing.timing()?;
        if self.shard.is_some() && self.seed.is_none() {
            return Err(RequestError::ShardWithoutSeed);
        }
        let targets = self.target_set()?;
        let ranking = Arc::new(Ranking::discover()?);
        let ports = self.port_set(&ranking)?;
        let privileged = portolan_scan::syn::privileged(false);
        let probe = match self.probe {
            Some(p) => p,
            // UDP only, or discovery only: no TCP port is probed
            None if ports.tcp.is_empty() => {
                if privileged {
                    Probe::Syn
                } else {
                    Probe::Connect
                }
            }
            None => {
                console.note(if privileged {
                    "SYN scan (-sS): raw sockets are available; -sT for a connect scan"
                } else {
                    "connect scan (-sT): a SYN scan (-sS) needs root or CAP_NET_RAW"
                });
                if privileged { Probe::Syn } else { Probe::Connect }
            }
        };
        let config = Config {
            probe,
            shard: self.shard,
            targets,
            ports: ports.tcp.clone(),
            udp_ports: ports.udp.clone(),
            ping_only: self.ping_only,
            timing,
            skip_discovery: self.skip_discovery,
            seed: self.seed,
            group_size: 64,
            report_down: console.verbose > 0,
            service_names: Some(Arc::clone(&ranking)),
            workers: None,
            done: None,
            // as nmap: the hardware address of local hosts when the scan resolved it itself,
            // that is with the privilege and raw packets (SYN, UDP, or ARP/ND discovery); a
            // connect scan with -Pn leaves it to the kernel and reports none
            link_addresses: privileged
                && (probe == Probe::Syn || !ports.udp.is_empty() || !self.skip_discovery),
        };
        Ok(Plan {
            config,
            identify: self.identify.clone(),
            command_line: std::env::args().collect::<Vec<_>>().join(" "),
            version: env!("CARGO_PKG_VERSION").to_string(),
            keep,
        })
    }

    /// Runs the scan into `sinks`; with `keep`, the returned run holds every host (else none).
    /// Ctrl-C or SIGTERM stop every phase and close the outputs properly; the result then
    /// carries the exit code and every host finished so far (those of `resumed` included,
    /// which are re-emitted first and not scanned again).
    pub fn execute(
        &self,
        sinks: &mut Sinks,
        keep: bool,
        resumed: Resumed,
        console: &mut Console,
    ) -> Result<crate::Finished, RequestError> {
        let plan = self.plan(keep, console)?;
        // the first Ctrl-C or SIGTERM stops every phase and closes the outputs properly; only
        // a third one exits at once
        let quiet = console.quiet;
        let stop = Interrupt::install(move |sig| {
            if !quiet {
                let name = if sig == libc::SIGTERM { "SIGTERM" } else { "Ctrl-C" };
                eprintln!(
                    "\nportolan: {name}: stopping, writing what was found (twice more to quit at once)"
                );
            }
        })
        .map_err(RequestError::Signals)?;
        let done = crate::run(plan, sinks, resumed, &stop, console)?;
        console.summary(&done.summary);
        std::io::Write::flush(&mut std::io::stdout()).map_err(RequestError::Stdout)?;
        Ok(done)
    }

    /// Scans without output, for a judge (audit, policy init): the run with every host.
    pub fn observe(&self, console: &mut Console) -> Result<ScanRun, RequestError> {
        let done = self.execute(&mut Sinks::none(), true, Resumed::default(), console)?;
        if done.interrupted.is_some() {
            return Err(RequestError::Interrupted);
        }
        Ok(done.run)
    }
}

/// Where a scan's result goes beside its outputs.
pub struct Keeping<'a> {
    /// The snapshot database, when the scan is saved.
    pub store: Option<&'a mut Store>,
    /// The run this scan is a shard of (checked with [`Store::check_shard`] first).
    pub run: Option<(RunSpec, u32)>,
    /// Where an interrupted scan writes its resume file.
    pub resume_path: PathBuf,
    /// The arguments the resume file records.
    pub argv: Vec<String>,
    /// Portolan's version, recorded in the snapshot.
    pub version: &'a str,
}

/// The default resume file: the tasks of a job array share a directory, so a shard's is its own.
pub fn resume_path(run: Option<&(RunSpec, u32)>) -> PathBuf {
    match run {
        Some((spec, index)) => format!("portolan.resume.{}.{index}.json", spec.name).into(),
        None => "portolan.resume.json".into(),
    }
}

/// A scan to its end: the outputs, then a resume file when it was cut short, then the
/// snapshot or the shard of its run. Returns the exit code of an interruption.
pub fn scan(
    request: &ScanRequest,
    mut sinks: Sinks,
    resumed: Resumed,
    keeping: Keeping<'_>,
    console: &mut Console,
) -> Result<Option<u8>, RequestError> {
    let Keeping { mut store, run, resume_path, argv, version } = keeping;
    let result = request.execute(&mut sinks, store.is_some(), resumed, console);
    // the outputs are complete and on disk before anything else happens
    drop(sinks);
    // a shard that fails or is stopped (scancel sends SIGTERM) is recorded as failed in its run
    let failure = match &result {
        Err(e) => Some(crate::error_chain(e)),
        Ok(done) => done.interrupted.map(|code| format!("stopped by a signal (exit {code})")),
    };
    if let (Some(why), Some((spec, index)), Some(st)) = (failure, &run, store.as_deref_mut())
        && let Err(e) = st.mark_failed(spec, *index, &why)
    {
        console.warn(&format!("could not record the failed shard: {e}"));
    }
    let done = result?;
    if done.interrupted.is_some() {
        let file = ResumeFile::new(argv, done.left.done, done.left.hosts);
        file.write(&resume_path)?;
        console.note(&format!(
            "interrupted; {} hosts finished. Continue with: portolan scan --resume {}",
            file.done.len(),
            resume_path.display()
        ));
    }
    if let Some(store) = store {
        let snap = Snapshot::of_scan(Source::Scan, done.run, &portolan_local::hostname(), version);
        match &run {
            // a stopped shard is not done: it stays failed, to be run again
            Some(_) if done.interrupted.is_some() => {}
            Some((spec, index)) => {
                let id = store.save_shard(&snap, spec, *index)?;
                console.note(&format!(
                    "saved shard {index}/{} of run {} (snapshot {id}) in {}",
                    spec.shards,
                    spec.name,
                    store.location()
                ));
            }
            None => {
                console.saved(store, &snap)?;
            }
        }
    }
    Ok(done.interrupted)
}

/// Addresses no probe can reach, as one note.
pub(crate) fn unprobeable_note(unprobeable: &[(IpAddr, Reason)]) -> String {
    let n = unprobeable.len();
    let shown: Vec<String> = unprobeable.iter().take(8).map(|(a, r)| format!("{a} ({r})")).collect();
    format!(
        "{n} address{} cannot be probed from here and {} reported down: {}{}",
        if n == 1 { "" } else { "es" },
        if n == 1 { "is" } else { "are" },
        shown.join(", "),
        if n > 8 { format!(" and {} more", n - 8) } else { String::new() }
    )
}
