use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use jiff::Timestamp;
use portolan_model::{Host, RunExit, ScanInfo, ScanRun, ScanType, Snapshot, Source, Transport};
use portolan_registry::Ranking;
use portolan_scan::interrupt::Interrupt;
use portolan_scan::resume::ResumeFile;
use portolan_scan::{Config, Observer, PortSet, Probe, Progress, TargetSet, Timing, targets};

use super::Context;
use crate::cli::{ScanArgs, ScanSpec};
use crate::outputs::{self, Sinks};

/// More hosts than this needs `--yes`: a /16.
const HOST_LIMIT: u128 = 65_536;

fn timing(args: &ScanSpec) -> anyhow::Result<Timing> {
    let mut t = Timing::template(args.timing);
    if let Some(d) = args.host_timeout {
        t.host_timeout = Some(d);
    }
    if let Some(d) = args.scan_delay {
        t.scan_delay = d;
    }
    if let Some(d) = args.min_rtt_timeout {
        t.min_rtt = d;
    }
    if let Some(d) = args.max_rtt_timeout {
        t.max_rtt = d;
    }
    if let Some(d) = args.initial_rtt_timeout {
        t.initial_rtt = d;
    }
    if t.min_rtt > t.max_rtt {
        bail!("--min-rtt-timeout is above --max-rtt-timeout");
    }
    if let Some(r) = args.max_retries {
        t.max_retries = r;
    }
    if let Some(p) = args.max_parallelism {
        t.max_parallelism = p;
    }
    if let (Some(lo), Some(hi)) = (args.min_rate, args.max_rate)
        && lo > hi
    {
        bail!("--min-rate {lo} is above --max-rate {hi}");
    }
    t.min_rate = args.min_rate;
    t.max_rate = args.max_rate;
    Ok(t)
}

fn targets(args: &ScanSpec) -> anyhow::Result<TargetSet> {
    let mut set = targets::parse_list_for(args.targets.iter().map(String::as_str), false, args.ipv6)?;
    if let Some(f) = &args.input_list {
        set = merge(set, targets::read_file_for(f, args.ipv6)?);
    }
    if args.ipv6
        && let Some(a) = set.first_v4()
    {
        bail!("-6 scans IPv6 targets, and {a} is an IPv4 address: leave out -6 or give IPv6 targets");
    }
    if set.is_empty() {
        if args.targets.is_empty() && args.input_list.is_none() {
            bail!("no targets given: name hosts, networks or ranges, or -iL FILE");
        }
        return Err(portolan_scan::Error::NoTargets { excluded: false }.into());
    }
    let mut exclude = TargetSet::default();
    if let Some(list) = &args.exclude {
        exclude = merge(exclude, targets::parse_list([list.as_str()], true)?);
    }
    if let Some(f) = &args.excludefile {
        exclude = merge(exclude, targets::read_file(f)?);
    }
    set.exclude(&exclude);
    if set.is_empty() {
        return Err(portolan_scan::Error::NoTargets { excluded: true }.into());
    }
    if set.len() > HOST_LIMIT && !args.yes {
        return Err(portolan_scan::Error::TooManyHosts { count: set.len(), limit: HOST_LIMIT }.into());
    }
    Ok(set)
}

fn merge(a: TargetSet, b: TargetSet) -> TargetSet {
    let mut a = a;
    a.extend(&b);
    a
}

/// The ports to scan: `-sU` alone scans UDP ports, with `-sS`/`-sT` both (nmap's rules: a
/// port without a `T:`/`U:` prefix counts for every transport scanned).
fn ports(args: &ScanSpec, ranking: &Ranking) -> anyhow::Result<PortSet> {
    if args.ping_only {
        return Ok(PortSet::default());
    }
    let transports: &[Transport] = match (args.udp, args.scan_type.is_some()) {
        (true, false) => &[Transport::Udp],
        (true, true) => &[Transport::Tcp, Transport::Udp],
        (false, _) => &[Transport::Tcp],
    };
    let mut set = if let Some(p) = &args.ports {
        PortSet::parse(p, transports)?
    } else {
        let n = if args.fast { 100 } else { args.top_ports.unwrap_or(1000) };
        PortSet::top(ranking, n, transports)
    };
    if let Some(x) = &args.exclude_ports {
        set.exclude(&PortSet::parse(x, transports)?);
    }
    if !set.udp.is_empty() && !args.udp {
        bail!("UDP ports (U:...) need a UDP scan: add -sU");
    }
    if !set.tcp.is_empty() && !transports.contains(&Transport::Tcp) {
        bail!("TCP ports (T:...) need a TCP scan: add -sS or -sT to -sU");
    }
    if set.is_empty() {
        bail!("no ports left to scan");
    }
    Ok(set)
}

/// A resumed run's inheritance.
#[derive(Default)]
struct Resumed {
    done: Vec<std::net::IpAddr>,
    hosts: Vec<Host>,
}

struct Live<'a> {
    sinks: &'a mut Sinks,
    /// Hosts finished (for a resume file), and the finished ones reported.
    done: Vec<std::net::IpAddr>,
    /// Shared with `keep`: a host of all ports of a closed machine has 65,535 of them, and a
    /// copy of it was the largest cost of the scan after its packets.
    done_hosts: Vec<Arc<Host>>,
    /// Finished hosts whose report has not come yet (with -sV it comes after the scan).
    unreported: std::collections::HashSet<std::net::IpAddr>,
    /// Hosts kept for the snapshot (`--save`).
    keep: Option<Vec<Arc<Host>>>,
    bar: Option<indicatif::ProgressBar>,
    error: Option<io::Error>,
    up: u32,
    /// With -sV: hosts held until their open ports are identified.
    deferred: Option<Vec<Host>>,
    /// Addresses no probe could reach (broadcast, no route), with why.
    unprobeable: Vec<(std::net::IpAddr, portolan_model::Reason)>,
}

impl Observer for Live<'_> {
    fn finished(&mut self, addr: std::net::IpAddr) {
        self.done.push(addr);
        self.unreported.insert(addr);
    }
    fn host(&mut self, host: Host) {
        use portolan_model::Reason;
        if host.status.state == portolan_model::HostState::Down
            && matches!(host.status.reason, Reason::NoRoute | Reason::Broadcast | Reason::NetProhibited)
        {
            self.unprobeable.push((host.address, host.status.reason.clone()));
        }
        if let Some(d) = self.deferred.as_mut() {
            d.push(host);
            return;
        }
        if host.status.state == portolan_model::HostState::Up {
            self.up += 1;
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
        if let Some(bar) = &self.bar {
            bar.set_length(p.total.max(1));
            bar.set_position(p.done);
            bar.set_message(format!("{} open", p.open));
        }
    }
}

pub fn run(args: ScanArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    // --resume FILE: the interrupted run's own arguments, and what it finished
    let (args, resumed, argv) = match &args.resume {
        Some(path) => {
            let sp = &args.spec;
            if !sp.targets.is_empty()
                || sp.input_list.is_some()
                || sp.ports.is_some()
                || sp.scan_type.is_some()
                || sp.udp
            {
                bail!("--resume takes no targets, ports or scan type: they come from the resume file");
            }
            let file = ResumeFile::read(path)?;
            let mut line = vec![std::ffi::OsString::from("portolan")];
            line.extend(file.args.iter().map(std::ffi::OsString::from));
            let cli = <crate::cli::Cli as clap::Parser>::try_parse_from(
                crate::cli::rewrite_nmap_output_flags(line),
            )
            .map_err(|e| anyhow::anyhow!("{}: its arguments no longer parse: {e}", path.display()))?;
            let crate::cli::Command::Scan(mut original) = cli.command else {
                bail!("{}: not the resume file of a scan", path.display());
            };
            original.resume_file = args.resume_file.clone().or(Some(path.clone()));
            (*original, Resumed { done: file.done, hosts: file.hosts }, file.args)
        }
        None => (args, Resumed::default(), std::env::args().skip(1).collect()),
    };
    // an explicit -sS without the privilege fails before any output file is created
    if args.spec.scan_type == Some(crate::cli::ScanType::Syn)
        && !portolan_scan::syn::privileged(false)
        && !portolan_scan::syn::privileged(true)
    {
        return Err(portolan_scan::Error::NeedsRawSockets.into());
    }
    let mut sinks = outputs::open(args.format, &args.files, &args.show, false, ctx)?;
    // a bad --db fails before any packet is sent
    let mut store = if args.store.save { Some(super::open_store(args.store.db.as_deref())?) } else { None };
    let resume_path = args.resume_file.clone().unwrap_or_else(|| "portolan.resume.json".into());
    let (run, interrupted, left) =
        execute_resumable(&args.spec, &mut sinks, store.is_some(), args.show.verbose, resumed, ctx)?;
    drop(sinks);
    if interrupted.is_some() {
        let file = ResumeFile::new(argv, left.done, left.hosts);
        file.write(&resume_path)?;
        if !ctx.quiet {
            eprintln!(
                "portolan: interrupted; {} hosts finished. Continue with: portolan scan --resume {}",
                file.done.len(),
                resume_path.display()
            );
        }
    }
    if let Some(store) = store.as_mut() {
        let snap = Snapshot::of_scan(Source::Scan, run, &portolan_local::hostname(), super::VERSION);
        super::save_snapshot(store, &snap, ctx)?;
    }
    Ok(interrupted.map_or(ExitCode::SUCCESS, ExitCode::from))
}

/// Scans without printing (for `audit` and `policy init`): the run with every host.
pub fn observe(spec: &ScanSpec, ctx: &Context) -> anyhow::Result<ScanRun> {
    let (run, interrupted, _) =
        execute_resumable(spec, &mut Sinks::none(), true, 0, Resumed::default(), ctx)?;
    if interrupted.is_some() {
        bail!("the scan was interrupted; nothing was judged");
    }
    Ok(run)
}

/// Runs a scan into `sinks`; with `keep`, the returned run holds every host (else none).
/// Returns the exit code when Ctrl-C or SIGTERM cut it short, and every host finished so far (those of `resumed`
/// included, which are re-emitted first and not scanned again).
fn execute_resumable(
    spec: &ScanSpec,
    sinks: &mut Sinks,
    keep: bool,
    verbose: u8,
    resumed: Resumed,
    ctx: &Context,
) -> anyhow::Result<(ScanRun, Option<u8>, Resumed)> {
    let timing = timing(spec)?;
    let shard = spec.shard;
    if shard.is_some() && spec.seed.is_none() {
        bail!("--shard needs --seed, the same on every shard, so that the shards agree on the split");
    }
    let targets = targets(spec)?;
    let ranking = Arc::new(Ranking::discover()?);
    let ports = ports(spec, &ranking)?;
    let probe = match spec.scan_type {
        Some(crate::cli::ScanType::Syn) => Probe::Syn,
        Some(crate::cli::ScanType::Connect) => Probe::Connect,
        // UDP only, or discovery only: no TCP port is probed
        None if ports.tcp.is_empty() => {
            if portolan_scan::syn::privileged(false) {
                Probe::Syn
            } else {
                Probe::Connect
            }
        }
        None => {
            let syn = portolan_scan::syn::privileged(false);
            if !ctx.quiet {
                eprintln!(
                    "portolan: {}",
                    if syn {
                        "SYN scan (-sS): raw sockets are available; -sT for a connect scan"
                    } else {
                        "connect scan (-sT): a SYN scan (-sS) needs root or CAP_NET_RAW"
                    }
                );
            }
            if syn { Probe::Syn } else { Probe::Connect }
        }
    };
    let argv: Vec<String> = std::env::args().collect();
    let start = Timestamp::now();
    let mut run = ScanRun::new("portolan", env!("CARGO_PKG_VERSION"), &argv.join(" "), start);
    if !ports.tcp.is_empty() {
        run.scan_info.push(ScanInfo {
            scan_type: if probe == Probe::Syn { ScanType::Syn } else { ScanType::Connect },
            transport: Transport::Tcp,
            num_services: ports.tcp.len() as u32,
            services: PortSet::ranges(&ports.tcp),
        });
    }
    if !ports.udp.is_empty() {
        run.scan_info.push(ScanInfo {
            scan_type: ScanType::Udp,
            transport: Transport::Udp,
            num_services: ports.udp.len() as u32,
            services: PortSet::ranges(&ports.udp),
        });
    }
    sinks.begin(&run).context("writing output")?;
    let resumed_up =
        resumed.hosts.iter().filter(|h| h.status.state == portolan_model::HostState::Up).count() as u32;
    let resumed_total = resumed.done.len() as u32;
    let resumed_reported = resumed.hosts.len();
    for h in &resumed.hosts {
        sinks.host(h).context("writing output")?;
    }

    // the first Ctrl-C or SIGTERM stops every phase and closes the outputs properly; only a
    // third one exits at once
    let quiet = ctx.quiet;
    let stop = Interrupt::install(move |sig| {
        if !quiet {
            let name = if sig == libc::SIGTERM { "SIGTERM" } else { "Ctrl-C" };
            eprintln!("\nportolan: {name}: stopping, writing what was found (twice more to quit at once)");
        }
    })
    .context("cannot watch for Ctrl-C")?;
    let bar = ctx.progress.then(|| {
        let b = indicatif::ProgressBar::new(1);
        b.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(5));
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] {pos}/{len} probes, {per_sec}, ETA {eta}, {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let cfg = Config {
        probe,
        shard,
        targets,
        ports: ports.tcp.clone(),
        udp_ports: ports.udp.clone(),
        ping_only: spec.ping_only,
        timing,
        skip_discovery: spec.skip_discovery,
        seed: spec.seed,
        group_size: 64,
        report_down: verbose > 0,
        service_names: Some(Arc::clone(&ranking)),
        workers: None,
        done: (!resumed.done.is_empty()).then(|| Arc::new(resumed.done.iter().copied().collect())),
        // as nmap: the hardware address of local hosts when the scan resolved it itself, that
        // is with the privilege and raw packets (SYN, UDP, or ARP/ND discovery); a connect
        // scan with -Pn leaves it to the kernel and reports none
        link_addresses: portolan_scan::syn::privileged(false)
            && (probe == Probe::Syn || !ports.udp.is_empty() || !spec.skip_discovery),
    };
    let t0 = Instant::now();
    let mut live = Live {
        sinks,
        done: resumed.done,
        done_hosts: resumed.hosts.into_iter().map(Arc::new).collect(),
        unreported: Default::default(),
        keep: keep.then(Vec::new),
        bar,
        error: None,
        up: 0,
        deferred: spec.version.enabled.then(Vec::new),
        unprobeable: Vec::new(),
    };
    let result = portolan_scan::engine::run(&cfg, stop.flag(), &mut live);
    if let Some(b) = &live.bar {
        b.finish_and_clear();
    }
    if !ctx.quiet && !live.unprobeable.is_empty() && result.is_ok() {
        let n = live.unprobeable.len();
        let shown: Vec<String> = live.unprobeable.iter().take(8).map(|(a, r)| format!("{a} ({r})")).collect();
        eprintln!(
            "portolan: {n} address{} cannot be probed from here and {} reported down: {}{}",
            if n == 1 { "" } else { "es" },
            if n == 1 { "is" } else { "are" },
            shown.join(", "),
            if n > 8 { format!(" and {} more", n - 8) } else { String::new() }
        );
    }
    if let Some(mut hosts) = live.deferred.take() {
        let cut = super::identify::enrich(&mut hosts, &spec.version, &stop, ctx)?;
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
        return Err(anyhow::Error::new(e).context("writing output"));
    }
    let kept = live.keep.take().map(|k| {
        // the re-emitted hosts belong to the run too
        let mut all: Vec<Arc<Host>> = live.done_hosts.iter().take(resumed_reported).cloned().collect();
        all.extend(k);
        all
    });
    let done = std::mem::take(&mut live.done);
    let done_hosts = std::mem::take(&mut live.done_hosts);
    run.stats.finished = Some(Timestamp::now());
    run.stats.elapsed_secs = t0.elapsed().as_secs_f64();
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            // close every output properly (valid XML says the run ended in error) before failing
            run.stats.exit = RunExit::Error;
            run.stats.error_message = Some(e.to_string());
            sinks.end(&run).context("writing output")?;
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
    sinks.end(&run).context("writing output")?;
    if !ctx.quiet && verbose > 0 {
        eprintln!(
            "portolan: {} probes ({} retransmitted), at most {} in flight (descriptor budget {})",
            summary.sent, summary.retransmissions, summary.peak_in_flight, summary.fd_budget
        );
        if summary.ring_answers > 0 {
            eprintln!("portolan: {} answers read from a receive ring", summary.ring_answers);
        }
    }
    io::stdout().flush().context("writing to standard output")?;
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
    Ok((run, interrupted.then(|| stop.exit_code()), left))
}
