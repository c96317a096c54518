//! The connect-scan engine: a scheduler on one task that decides what to send, and one small
//! task per probe on the runtime's workers.
//!
//! - Hosts are taken lazily from the target set, `group_size` at a time; a host is reported as
//!   soon as all of its ports are decided (results stream).
//! - Ports are probed in a per-host random order (deterministic with a seed).
//! - Parallelism follows a congestion window (slow start, additive increase, halving on a
//!   confirmed drop — a retransmission answered where the first probe was not), capped by the
//!   template and by the descriptor budget (RLIMIT_NOFILE, raised to its hard limit first).
//! - `--max-rate` is a token bucket in front of every probe; `--min-rate` lets the scheduler
//!   exceed the window to keep the rate up; `--scan-delay` spaces probes to one host.
//! - Unanswered probes are retransmitted as nmap does: up to one more try than the highest
//!   try that ever got an answer from that host, within `--max-retries`.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use portolan_model::{Host, HostState, Hostname, HostnameKind, Port, PortState, Reason, Service, Transport};
use tokio::sync::mpsc;

use crate::probe::{self, Outcome};
use crate::targets::TargetSet;
use crate::timing::{Congestion, RttEstimator, Timing, TokenBucket};
use crate::{Error, Result};

/// What to scan and how.
#[derive(Debug, Clone)]
pub struct Config {
    /// Hosts.
    pub targets: TargetSet,
    /// TCP ports.
    pub ports: Vec<u16>,
    /// Timing.
    pub timing: Timing,
    /// `-Pn`: treat every host as up.
    pub skip_discovery: bool,
    /// Seed of the port order (random when `None`).
    pub seed: Option<u64>,
    /// Hosts scanned at the same time.
    pub group_size: usize,
    /// Report hosts that are down too (`-v`).
    pub report_down: bool,
    /// Names for each port's service (`unknown` when it names none); `None`: no service.
    pub service_names: Option<Arc<portolan_registry::Ranking>>,
}

/// Live counters for a progress display.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// Port probes decided.
    pub done: u64,
    /// Port probes in all (hosts × ports, as known so far).
    pub total: u64,
    /// Open ports found.
    pub open: u64,
    /// Probes sent, retransmissions included.
    pub sent: u64,
}

/// Receives results as they are decided.
pub trait Observer {
    /// A host is finished.
    fn host(&mut self, host: Host);
    /// Counters changed (called at most every 100 ms).
    fn progress(&mut self, _p: &Progress) {}
}

/// Totals of a finished (or interrupted) scan.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    /// Hosts up.
    pub hosts_up: u32,
    /// Hosts down.
    pub hosts_down: u32,
    /// Hosts considered.
    pub hosts_total: u32,
    /// Stopped by the user.
    pub interrupted: bool,
    /// Probes sent.
    pub sent: u64,
    /// Retransmissions among them.
    pub retransmissions: u64,
    /// Peak probes in flight.
    pub peak_in_flight: usize,
    /// The descriptor budget used.
    pub fd_budget: usize,
}

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns how many probes may be in
/// flight: the limit minus a reserve for everything else the process opens.
pub fn fd_budget() -> usize {
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 512;
        }
        if r.rlim_cur < r.rlim_max {
            let want = libc::rlimit { rlim_cur: r.rlim_max, rlim_max: r.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                r.rlim_cur = r.rlim_max;
            }
        }
        let cur = usize::try_from(r.rlim_cur).unwrap_or(usize::MAX).min(1 << 20);
        cur.saturating_sub(128).max(8)
    }
}

/// SplitMix64: a small, good, seedable generator for port order.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

fn random_seed() -> u64 {
    let t =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    t ^ (u64::from(std::process::id()) << 32)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Discovery,
    Ports,
    Done,
}

/// Ports used by the unprivileged host discovery (as nmap's TCP connect ping).
const PING_PORTS: [u16; 2] = [443, 80];

struct HostRun {
    addr: IpAddr,
    name: Option<String>,
    phase: Phase,
    /// Ports of the current phase (the two ping ports during discovery).
    ports: Vec<u16>,
    /// The shuffled port list, waiting while discovery runs.
    later: Vec<u16>,
    next: usize,
    retries: VecDeque<(u16, u8)>,
    outstanding: usize,
    rtt: RttEstimator,
    /// The current probe timeout in microseconds, read by probes while they wait.
    timeout_us: Arc<std::sync::atomic::AtomicU64>,
    max_ok_try: u8,
    last_send: Option<Instant>,
    start: Timestamp,
    started: Instant,
    status_reason: Reason,
    up: bool,
    results: Vec<Port>,
    timed_out: bool,
}

struct Done {
    host: usize,
    serial: u64,
    port: u16,
    tryno: u8,
    outcome: Outcome,
    rtt: Option<Duration>,
}

fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback()
}

/// Runs a connect scan, reporting each host to `obs` as it finishes. `stop` ends the scan
/// early (Ctrl-C): hosts in progress are reported with what was decided.
pub fn run(cfg: &Config, stop: Arc<AtomicBool>, obs: &mut dyn Observer) -> Result<Summary> {
    let budget = fd_budget();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_io()
        .enable_time()
        .build()
        .map_err(Error::Engine)?;
    rt.block_on(schedule(cfg, budget, stop, obs))
}

async fn schedule(
    cfg: &Config,
    budget: usize,
    stop: Arc<AtomicBool>,
    obs: &mut dyn Observer,
) -> Result<Summary> {
    let t = &cfg.timing;
    let mut cc = Congestion::new(t, budget);
    let mut bucket = t.max_rate.map(TokenBucket::new);
    let mut rng = Rng::new(cfg.seed.unwrap_or_else(random_seed));
    let (tx, mut rx) = mpsc::unbounded_channel::<Done>();
    let mut targets = cfg.targets.iter();
    let mut hosts: Vec<Option<HostRun>> = Vec::new();
    let mut active = 0usize;
    let mut in_flight = 0usize;
    let mut serial = 0u64;
    let mut summary = Summary { fd_budget: budget, ..Summary::default() };
    let mut progress = Progress::default();
    let mut last_progress = Instant::now();
    let started = Instant::now();
    let mut rr = 0usize;
    let mut tasks = tokio::task::JoinSet::new();
    let mut exhausted = false;

    loop {
        if stop.load(Ordering::Relaxed) {
            summary.interrupted = true;
            break;
        }
        // take more hosts while the group has room
        while active < cfg.group_size.max(1) && !exhausted {
            match targets.next() {
                Some(addr) => {
                    summary.hosts_total += 1;
                    let mut ports = cfg.ports.clone();
                    rng.shuffle(&mut ports);
                    progress.total += ports.len() as u64;
                    let local = is_local(addr);
                    let phase = if cfg.skip_discovery || local { Phase::Ports } else { Phase::Discovery };
                    let status_reason = if cfg.skip_discovery {
                        Reason::UserSet
                    } else if local {
                        Reason::LocalhostResponse
                    } else {
                        Reason::NoResponseHost
                    };
                    hosts.push(Some(HostRun {
                        addr,
                        name: cfg.targets.name_of(addr).map(str::to_string),
                        phase,
                        ports: if phase == Phase::Discovery { PING_PORTS.to_vec() } else { Vec::new() },
                        later: ports,
                        next: 0,
                        retries: VecDeque::new(),
                        outstanding: 0,
                        rtt: RttEstimator::default(),
                        timeout_us: Arc::new(std::sync::atomic::AtomicU64::new(
                            t.initial_rtt.as_micros() as u64
                        )),
                        max_ok_try: 0,
                        last_send: None,
                        start: Timestamp::now(),
                        started: Instant::now(),
                        status_reason,
                        up: phase == Phase::Ports,
                        results: Vec::new(),
                        timed_out: false,
                    }));
                    if let Some(Some(h)) = hosts.last_mut() {
                        if h.phase == Phase::Ports {
                            h.ports = std::mem::take(&mut h.later);
                        }
                    }
                    active += 1;
                }
                None => exhausted = true,
            }
        }
        if active == 0 && in_flight == 0 {
            break;
        }

        // send while the window (or --min-rate) allows
        let now = Instant::now();
        let mut wake: Option<Duration> = None;
        let behind_min_rate =
            t.min_rate.is_some_and(|r| (summary.sent as f64) < r * started.elapsed().as_secs_f64());
        let limit = if behind_min_rate { budget } else { cc.window().min(budget) };
        let n_hosts = hosts.len();
        let mut idle_hosts = 0;
        while in_flight < limit && n_hosts > 0 && idle_hosts < n_hosts {
            rr = (rr + 1) % n_hosts;
            let Some(h) = hosts[rr].as_mut() else {
                idle_hosts += 1;
                continue;
            };
            if h.phase == Phase::Done {
                idle_hosts += 1;
                continue;
            }
            if let Some(ht) = t.host_timeout {
                if h.started.elapsed() > ht {
                    h.timed_out = true;
                    h.retries.clear();
                    h.next = h.ports.len();
                    idle_hosts += 1;
                    continue;
                }
            }
            if let Some(last) = h.last_send {
                let ready = last + t.scan_delay;
                if t.scan_delay > Duration::ZERO && ready > now {
                    wake = Some(wake.map_or(ready - now, |w| w.min(ready - now)));
                    idle_hosts += 1;
                    continue;
                }
            }
            let next = if let Some(r) = h.retries.pop_front() {
                Some(r)
            } else if h.next < h.ports.len() {
                h.next += 1;
                Some((h.ports[h.next - 1], 0))
            } else {
                None
            };
            let Some((port, tryno)) = next else {
                idle_hosts += 1;
                continue;
            };
            if let Some(b) = bucket.as_mut() {
                if let Err(w) = b.take(Instant::now()) {
                    // put it back; wait for a token
                    if tryno == 0 && h.retries.is_empty() && h.next > 0 && h.ports[h.next - 1] == port {
                        h.next -= 1;
                    } else {
                        h.retries.push_front((port, tryno));
                    }
                    wake = Some(wake.map_or(w, |x| x.min(w)));
                    break;
                }
            }
            idle_hosts = 0;
            h.outstanding += 1;
            h.last_send = Some(now);
            in_flight += 1;
            summary.peak_in_flight = summary.peak_in_flight.max(in_flight);
            summary.sent += 1;
            progress.sent += 1;
            if tryno > 0 {
                summary.retransmissions += 1;
            }
            serial += 1;
            let addr = SocketAddr::new(h.addr, port);
            let timeout = Arc::clone(&h.timeout_us);
            let tx = tx.clone();
            let host = rr;
            let s = serial;
            tasks.spawn(async move {
                let (outcome, rtt) = probe::connect_adaptive(addr, &timeout).await;
                let _ = tx.send(Done { host, serial: s, port, tryno, outcome, rtt });
            });
        }

        // wait for a result (or a token, or a scan-delay slot)
        let first = if in_flight > 0 {
            match wake {
                Some(w) => tokio::time::timeout(w, rx.recv()).await.ok().flatten(),
                None => tokio::select! {
                    d = rx.recv() => d,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => None,
                },
            }
        } else {
            tokio::time::sleep(wake.unwrap_or(Duration::from_millis(1))).await;
            None
        };
        let mut batch: Vec<Done> = first.into_iter().collect();
        while let Ok(d) = rx.try_recv() {
            batch.push(d);
        }
        while tasks.try_join_next().is_some() {}
        for d in batch {
            in_flight -= 1;
            let _ = d.serial;
            let Some(h) = hosts[d.host].as_mut() else { continue };
            h.outstanding -= 1;
            handle(h, d, t, &mut cc, &mut progress, &mut summary, &mut rng, cfg)?;
        }

        // report finished hosts
        for slot in hosts.iter_mut() {
            let finished = slot.as_ref().is_some_and(|h| {
                h.outstanding == 0
                    && h.retries.is_empty()
                    && h.next >= h.ports.len()
                    && h.phase != Phase::Discovery
            });
            if finished {
                if let Some(h) = slot.take() {
                    active -= 1;
                    report(h, cfg, &mut summary, obs);
                }
            }
        }
        // discovery finished: move to the port phase or mark down
        for h in hosts.iter_mut().flatten() {
            {
                if h.phase == Phase::Discovery
                    && h.outstanding == 0
                    && h.retries.is_empty()
                    && h.next >= h.ports.len()
                {
                    if h.up {
                        h.phase = Phase::Ports;
                        h.ports = std::mem::take(&mut h.later);
                        h.next = 0;
                        h.max_ok_try = 0;
                    } else {
                        h.later.clear();
                        progress.done += cfg.ports.len() as u64;
                        h.phase = Phase::Done;
                        h.ports.clear();
                    }
                }
            }
        }
        for slot in hosts.iter_mut() {
            if slot.as_ref().is_some_and(|h| h.phase == Phase::Done && h.outstanding == 0) {
                if let Some(h) = slot.take() {
                    active -= 1;
                    report(h, cfg, &mut summary, obs);
                }
            }
        }
        // compact the host table when it is mostly empty
        if hosts.len() > 4 * cfg.group_size.max(1) && in_flight == 0 {
            hosts.retain(Option::is_some);
            rr = 0;
        }
        if last_progress.elapsed() > Duration::from_millis(100) {
            obs.progress(&progress);
            last_progress = Instant::now();
        }
    }
    // interrupted: abort what is in flight and report what was decided
    tasks.abort_all();
    for h in hosts.into_iter().flatten() {
        if h.phase != Phase::Discovery || h.up {
            report(h, cfg, &mut summary, obs);
        }
    }
    obs.progress(&progress);
    Ok(summary)
}

#[allow(clippy::too_many_arguments)]
fn handle(
    h: &mut HostRun,
    d: Done,
    t: &Timing,
    cc: &mut Congestion,
    progress: &mut Progress,
    summary: &mut Summary,
    _rng: &mut Rng,
    cfg: &Config,
) -> Result<()> {
    let _ = summary;
    match d.outcome {
        Outcome::State(state, reason) => {
            if let Some(rtt) = d.rtt {
                h.rtt.sample(rtt);
                h.timeout_us.store(h.rtt.timeout(t).as_micros() as u64, Ordering::Relaxed);
            }
            if d.tryno > 0 {
                // a retransmission was answered: the first try was lost
                h.max_ok_try = h.max_ok_try.max(d.tryno);
                cc.on_drop();
            } else {
                cc.on_response();
            }
            if h.phase == Phase::Discovery {
                // any answer but "unreachable" proves the host is up
                if matches!(state, PortState::Open | PortState::Closed) {
                    h.up = true;
                    h.status_reason =
                        if state == PortState::Open { Reason::SynAck } else { Reason::ConnRefused };
                    // the other ping needs no retry
                    h.retries.clear();
                    h.next = h.ports.len();
                }
                return Ok(());
            }
            progress.done += 1;
            if state == PortState::Open {
                progress.open += 1;
            }
            let service = table_service(cfg, d.port);
            h.results.push(Port {
                number: d.port,
                transport: Transport::Tcp,
                state,
                reason,
                reason_ttl: 0,
                service,
            });
        }
        Outcome::Timeout => {
            // silence is not congestion: the slot is free, the window may grow
            cc.on_response();
            let allowed = t.max_retries.min(h.max_ok_try.saturating_add(1));
            if d.tryno < allowed && !h.timed_out {
                h.retries.push_back((d.port, d.tryno + 1));
            } else if h.phase == Phase::Discovery {
                // no answer to this ping
            } else {
                progress.done += 1;
                let service = table_service(cfg, d.port);
                h.results.push(Port {
                    number: d.port,
                    transport: Transport::Tcp,
                    state: PortState::Filtered,
                    reason: Reason::NoResponse,
                    reason_ttl: 0,
                    service,
                });
            }
        }
        Outcome::Again(_) => {
            // a local shortage (descriptors, ephemeral ports): shrink and retry the same try
            cc.on_drop();
            h.retries.push_back((d.port, d.tryno));
        }
        Outcome::NoRoute(_) => return Err(Error::NoRoute { addr: h.addr }),
        Outcome::Fatal(e) => return Err(Error::Engine(e)),
    }
    Ok(())
}

fn table_service(cfg: &Config, port: u16) -> Option<Service> {
    let names = cfg.service_names.as_ref()?;
    Some(Service::from_table(names.service_name(port, Transport::Tcp).unwrap_or("unknown")))
}

fn report(h: HostRun, cfg: &Config, summary: &mut Summary, obs: &mut dyn Observer) {
    if !h.up {
        summary.hosts_down += 1;
        if !cfg.report_down {
            return;
        }
    } else {
        summary.hosts_up += 1;
    }
    let mut host = Host::up(h.addr, h.status_reason.clone());
    if !h.up {
        host.status.state = HostState::Down;
    }
    if let Some(n) = h.name {
        host.hostnames.push(Hostname { name: n, kind: HostnameKind::User });
    }
    host.ports = h.results;
    host.sort_ports();
    host.start_time = Some(h.start);
    host.end_time = Some(Timestamp::now());
    host.srtt_us = h.rtt.srtt().map(|d| d.as_micros() as u64);
    obs.host(host);
}
