//! From the scan flags to a session: targets, ports, timing and probe type as the libraries
//! take them, the progress bar and notes a person sees, and the run itself (for `scan`, and
//! without output for `audit` and `policy init`).

use std::io::{self, Write};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use portolan_model::{ScanRun, Transport};
use portolan_output::scan::Sinks;
use portolan_registry::Ranking;
use portolan_scan::interrupt::Interrupt;
use portolan_scan::{Config, PortSet, Probe, Progress, TargetSet, Timing, targets};
use portolan_session::{Plan, Resumed, Watcher};

use crate::cli::ScanSpec;
use crate::cmd::Context;

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

/// What a person sees of a session: the progress bar, and notes on stderr.
struct Shown {
    bar: Option<indicatif::ProgressBar>,
    quiet: bool,
}

impl Watcher for Shown {
    fn progress(&mut self, p: &Progress) {
        if let Some(bar) = &self.bar {
            bar.set_length(p.total.max(1));
            bar.set_position(p.done);
            bar.set_message(format!("{} open", p.open));
        }
    }
    fn scanned(&mut self, unprobeable: &[(std::net::IpAddr, portolan_model::Reason)]) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        if self.quiet || unprobeable.is_empty() {
            return;
        }
        let n = unprobeable.len();
        let shown: Vec<String> = unprobeable.iter().take(8).map(|(a, r)| format!("{a} ({r})")).collect();
        eprintln!(
            "portolan: {n} address{} cannot be probed from here and {} reported down: {}{}",
            if n == 1 { "" } else { "es" },
            if n == 1 { "is" } else { "are" },
            shown.join(", "),
            if n > 8 { format!(" and {} more", n - 8) } else { String::new() }
        );
    }
    fn identifying(&mut self, ports: usize) {
        if !self.quiet {
            eprintln!("portolan: identifying {ports} open port{} (-sV)", if ports == 1 { "" } else { "s" });
        }
    }
    fn identified(&mut self, r: &portolan_identify::Identified) {
        if self.quiet {
            return;
        }
        for f in r.findings.iter().filter(|f| f.severity >= portolan_model::Severity::Low) {
            eprintln!(
                "portolan: {}:{}/{}: {}: {}",
                r.address,
                r.port,
                r.transport,
                f.severity,
                portolan_output::escape::terminal(&f.title)
            );
        }
    }
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
pub(crate) fn execute_resumable(
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
    let config = Config {
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
        done: None,
        // as nmap: the hardware address of local hosts when the scan resolved it itself, that
        // is with the privilege and raw packets (SYN, UDP, or ARP/ND discovery); a connect
        // scan with -Pn leaves it to the kernel and reports none
        link_addresses: portolan_scan::syn::privileged(false)
            && (probe == Probe::Syn || !ports.udp.is_empty() || !spec.skip_discovery),
    };
    let plan = Plan {
        config,
        identify: if spec.version.enabled { Some(spec.version.options()?) } else { None },
        command_line: std::env::args().collect::<Vec<_>>().join(" "),
        version: env!("CARGO_PKG_VERSION").to_string(),
        keep,
    };
    let mut shown = Shown { bar, quiet: ctx.quiet };
    let done = portolan_session::run(plan, sinks, resumed, &stop, &mut shown)?;
    if !ctx.quiet && verbose > 0 {
        let s = &done.summary;
        eprintln!(
            "portolan: {} probes ({} retransmitted), at most {} in flight (descriptor budget {})",
            s.sent, s.retransmissions, s.peak_in_flight, s.fd_budget
        );
        if s.ring_answers > 0 {
            eprintln!("portolan: {} answers read from a receive ring", s.ring_answers);
        }
    }
    io::stdout().flush().context("writing to standard output")?;
    Ok((done.run, done.interrupted, done.left))
}
