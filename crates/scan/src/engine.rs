//! The scan engine's coordinator: it takes hosts lazily from the target set, runs host
//! discovery, hands each host's ports to the workers as jobs (`jobs.rs`), merges the workers'
//! parts of a host and reports the host to an [`Observer`] as soon as every part is in
//! (results stream).
//!
//! The workers: one connect worker per CPU for `-sT` and unprivileged discovery
//! (`connect.rs`), and one packet worker for every SYN, UDP and raw discovery probe
//! (`syn.rs`). The coordinator starts them and knows both; they know only the jobs.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use portolan_model::{Host, HostState, Hostname, HostnameKind, Port, Reason, Transport};

use crate::connect::Worker;
use crate::jobs::{Job, Kind, Msg, Shared};
use crate::targets::TargetSet;
use crate::timing::Timing;
use crate::{Error, Result};

/// How ports are probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Probe {
    /// `connect()` (-sT): no privilege needed.
    #[default]
    Connect,
    /// Raw SYN (-sS): needs root or CAP_NET_RAW.
    Syn,
}

/// What to scan and how.
#[derive(Debug, Clone)]
pub struct Config {
    /// Connect or SYN probes.
    pub probe: Probe,
    /// Only this shard of the target x port space (needs `seed`, the same on every shard).
    pub shard: Option<crate::shard::Shard>,
    /// Hosts.
    pub targets: TargetSet,
    /// TCP ports.
    pub ports: Vec<u16>,
    /// UDP ports (-sU).
    pub udp_ports: Vec<u16>,
    /// Host discovery only (-sn): no port is scanned.
    pub ping_only: bool,
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
    /// Worker threads (default: the CPUs; always 1 when a scan delay or a parallelism of 1
    /// asks for strict pacing).
    pub workers: Option<usize>,
    /// Hosts an earlier, interrupted run finished (`--resume`): skipped, but still counted
    /// in the target order, so that a shard stays the same shard.
    pub done: Option<Arc<std::collections::HashSet<IpAddr>>>,
    /// Report the MAC address (and vendor) of hosts up on a directly connected link, from the
    /// kernel's neighbour table, as nmap does when it runs with the privilege.
    pub link_addresses: bool,
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
    /// A host is completely scanned (up or down, reported or not): what a resume file records.
    /// Hosts cut short by an interruption are reported with what was decided but not finished.
    fn finished(&mut self, _addr: IpAddr) {}
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
    /// Answers a SYN scan read from its receive ring (the rest from raw sockets).
    pub ring_answers: u64,
    /// Peak probes in flight in one worker.
    pub peak_in_flight: usize,
    /// The descriptor budget used.
    pub fd_budget: usize,
    /// Worker threads.
    pub workers: usize,
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
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// Ports of the unprivileged host discovery (nmap's TCP connect ping).
const PING_PORTS: [u16; 2] = [443, 80];

/// Runs a scan (connect, SYN, UDP or discovery only), reporting each host to `obs` as it finishes. `stop` ends the scan
/// early (Ctrl-C): hosts in progress are reported with what was decided.
pub fn run(cfg: &Config, stop: Arc<AtomicBool>, obs: &mut dyn Observer) -> Result<Summary> {
    let timing = &cfg.timing;
    let budget = fd_budget();
    let strict = timing.scan_delay > Duration::ZERO || timing.max_parallelism <= 1;
    if cfg.probe == Probe::Syn && !crate::syn::privileged(false) && !crate::syn::privileged(true) {
        return Err(Error::NeedsRawSockets);
    }
    let workers = if strict {
        1
    } else {
        cfg.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
            .clamp(1, 16)
    };
    let shared = Arc::new(Shared::default());
    let (res_tx, res_rx) = mpsc::channel::<Msg>();
    let mut job_txs = Vec::new();
    let mut handles = Vec::new();
    let mut packet_tx = None;
    // discovery uses raw probes (ICMP, SYN, ACK, ARP) whenever raw sockets open, as nmap does
    // as root; otherwise nmap's unprivileged connect ping
    let raw_ping = !cfg.skip_discovery && crate::syn::privileged(false);
    if cfg.probe == Probe::Syn || !cfg.udp_ports.is_empty() || raw_ping {
        // one thread sends and receives every SYN, UDP and raw discovery probe: the sockets
        // see every answer, and one sender keeps the rate cap exact
        let (tx, rx) = mpsc::channel::<Job>();
        packet_tx = Some(tx);
        let res_tx = res_tx.clone();
        let mut packet_worker =
            crate::syn::SynWorker::new(timing.clone(), cfg.service_names.clone(), Arc::clone(&shared));
        packet_worker.max_jobs =
            crate::syn::SynWorker::hosts_in_flight(cfg.ports.len() + cfg.udp_ports.len());
        let handle = std::thread::Builder::new()
            .name("syn".into())
            .spawn(move || {
                if let Err(e) = packet_worker.run(rx, &res_tx) {
                    let _ = res_tx.send(Msg::Failed(e));
                }
            })
            .map_err(Error::Engine)?;
        handles.push(handle);
    }
    for w in 0..workers {
        if cfg.probe == Probe::Syn {
            break;
        }
        let (tx, rx) = mpsc::channel::<Job>();
        job_txs.push(tx);
        let res_tx = res_tx.clone();
        let shared = Arc::clone(&shared);
        let timing = timing.clone();
        let names = cfg.service_names.clone();
        let share = budget / workers;
        let handle = std::thread::Builder::new()
            .name(format!("scan-{w}"))
            .spawn(move || {
                let mut worker = Worker::new(timing, share, workers, names, shared);
                if let Err(e) = worker.run(rx, &res_tx) {
                    let _ = res_tx.send(Msg::Failed(e));
                }
            })
            .map_err(Error::Engine)?;
        handles.push(handle);
    }
    drop(res_tx);
    let lanes = Lanes { connect: &job_txs, packet: packet_tx.as_ref(), raw_ping };
    let result = coordinate(cfg, &stop, obs, &shared, &lanes, &res_rx);
    // stop the workers (on error or interruption) and wait for them
    if result.is_err() || stop.load(Ordering::Relaxed) {
        shared.stop.store(true, Ordering::Relaxed);
    }
    drop(job_txs);
    drop(packet_tx);
    for handle in handles {
        let _ = handle.join();
    }
    let mut summary = result?;
    summary.fd_budget = budget;
    summary.workers = workers;
    summary.sent = shared.sent.load(Ordering::Relaxed);
    summary.retransmissions = shared.retrans.load(Ordering::Relaxed);
    summary.ring_answers = shared.ring.load(Ordering::Relaxed);
    summary.peak_in_flight = shared.peak.load(Ordering::Relaxed) as usize;
    Ok(summary)
}

/// Where jobs go: the connect workers (none in a SYN scan) and the packet worker (SYN, UDP,
/// raw discovery).
struct Lanes<'a> {
    connect: &'a [mpsc::Sender<Job>],
    packet: Option<&'a mpsc::Sender<Job>>,
    /// Discovery by raw probes in the packet worker.
    raw_ping: bool,
}

impl Lanes<'_> {
    /// Sends a job to the packet worker (`raw`) or to connect worker `lane`.
    fn send(&self, lane: usize, job: Job, raw: bool) -> Result<()> {
        let stopped = || Error::Engine(std::io::Error::other("a scan worker stopped"));
        let tx = if raw || self.connect.is_empty() {
            self.packet
        } else {
            self.connect.get(lane % self.connect.len())
        };
        tx.ok_or_else(stopped)?.send(job).map_err(|_| stopped())
    }
}

/// A host as the coordinator follows it.
struct HostRec {
    addr: IpAddr,
    name: Option<String>,
    ports: Vec<u16>,
    udp: Vec<u16>,
    up: Option<Reason>,
    pending_parts: usize,
    pending_pings: usize,
    results: Vec<Port>,
    srtt: Option<Duration>,
    start: Timestamp,
    started: bool,
    /// Why a host that is down is down, when more is known than "no answer".
    down: Option<Reason>,
}

impl HostRec {
    fn finished(&self) -> bool {
        self.started && self.pending_parts == 0 && self.pending_pings == 0
    }
}

fn progress(shared: &Shared, total: u64) -> Progress {
    Progress {
        done: shared.done.load(Ordering::Relaxed),
        total,
        open: shared.open.load(Ordering::Relaxed),
        sent: shared.sent.load(Ordering::Relaxed),
    }
}

fn coordinate(
    cfg: &Config,
    stop: &AtomicBool,
    obs: &mut dyn Observer,
    shared: &Shared,
    lanes: &Lanes<'_>,
    results: &mpsc::Receiver<Msg>,
) -> Result<Summary> {
    let workers = lanes.connect.len().max(1);
    let mut summary = Summary::default();
    let mut rng = Rng::new(cfg.seed.unwrap_or_else(random_seed));
    let sharder = match cfg.shard {
        Some(shard) => {
            let seed = cfg.seed.ok_or(Error::BadShard {
                given: format!("{}/{} without a seed", shard.index, shard.count),
            })?;
            let ports = cfg.ports.len() + cfg.udp_ports.len();
            Some(crate::shard::Sharder::new(shard, cfg.targets.len(), ports, seed)?)
        }
        None => None,
    };
    let mut skipped = 0u64;
    let mut routes = crate::raw::RouteCheck::default();
    let mut neighbours = crate::neigh::Neighbours::default();
    let mut unprobeable: Option<(IpAddr, Reason)> = None;
    let mut unprobeable_count = 0u32;
    let mut targets = cfg.targets.iter();
    let mut hosts: HashMap<u64, HostRec> = HashMap::new();
    let mut next_id = 0u64;
    let mut exhausted = false;
    let mut total = 0u64;
    let mut last_progress = Instant::now();
    let group = if lanes.packet.is_some() {
        crate::syn::SynWorker::hosts_in_flight(cfg.ports.len() + cfg.udp_ports.len()).max(cfg.group_size)
    } else {
        cfg.group_size.max(1)
    };
    let tcp_lanes = if cfg.probe == Probe::Syn { 1 } else { workers };
    let dispatch_ports = |id: u64, record: &mut HostRec| -> Result<()> {
        for w in 0..tcp_lanes {
            let share: Vec<u16> = record.ports.iter().skip(w).step_by(tcp_lanes).copied().collect();
            if !share.is_empty() {
                let job = Job {
                    host: id,
                    addr: record.addr,
                    ports: share,
                    kind: Kind::Ports,
                    transport: Transport::Tcp,
                };
                lanes.send(w, job, cfg.probe == Probe::Syn)?;
                record.pending_parts += 1;
            }
        }
        if !record.udp.is_empty() {
            let job = Job {
                host: id,
                addr: record.addr,
                ports: record.udp.clone(),
                kind: Kind::Ports,
                transport: Transport::Udp,
            };
            lanes.send(0, job, true)?;
            record.pending_parts += 1;
        }
        record.started = true;
        Ok(())
    };
    loop {
        if stop.load(Ordering::Relaxed) {
            summary.interrupted = true;
            break;
        }
        // keep `group` hosts in progress
        while hosts.len() < group && !exhausted {
            let Some(addr) = targets.next() else {
                exhausted = true;
                break;
            };
            let host_index = summary.hosts_total as u64 + skipped;
            if cfg.done.as_ref().is_some_and(|d| d.contains(&addr)) {
                skipped += 1;
                continue;
            }
            let (mut ports, mut udp) = match &sharder {
                Some(s) => {
                    let tcp_count = cfg.ports.len();
                    let mine = |base: usize, list: &[u16]| -> Vec<u16> {
                        list.iter()
                            .enumerate()
                            .filter(|(i, _)| s.mine(host_index, base + *i))
                            .map(|(_, p)| *p)
                            .collect()
                    };
                    (mine(0, &cfg.ports), mine(tcp_count, &cfg.udp_ports))
                }
                None => (cfg.ports.clone(), cfg.udp_ports.clone()),
            };
            if ports.is_empty() && udp.is_empty() && !cfg.ping_only {
                // none of this host's pairs is in this shard
                skipped += 1;
                continue;
            }
            summary.hosts_total += 1;
            rng.shuffle(&mut ports);
            rng.shuffle(&mut udp);
            if cfg.ping_only {
                ports.clear();
                udp.clear();
            }
            total += (ports.len() + udp.len()) as u64;
            let id = next_id;
            next_id += 1;
            let mut rec = HostRec {
                addr,
                name: cfg.targets.name_of(addr).map(str::to_string),
                ports,
                udp,
                up: None,
                pending_parts: 0,
                pending_pings: 0,
                results: Vec::new(),
                srtt: None,
                start: Timestamp::now(),
                started: false,
                down: None,
            };
            // an address no probe can reach (a broadcast address, no route): down, with the
            // reason, and the scan goes on
            if let Some(why) = (!addr.is_loopback()).then(|| routes.unprobeable(addr)).flatten() {
                shared.done.fetch_add((rec.ports.len() + rec.udp.len()) as u64, Ordering::Relaxed);
                rec.started = true;
                unprobeable_count += 1;
                unprobeable.get_or_insert((addr, why.clone()));
                rec.down = Some(why);
                obs.finished(addr);
                report(rec, cfg, &mut neighbours, &mut summary, obs);
                continue;
            }
            if cfg.skip_discovery || addr.is_loopback() {
                rec.up = Some(if cfg.skip_discovery { Reason::UserSet } else { Reason::LocalhostResponse });
                dispatch_ports(id, &mut rec)?;
            } else {
                // raw discovery (ICMP, SYN, ACK, ARP) when the packet worker runs with the
                // privilege; otherwise nmap's unprivileged connect ping
                let raw = lanes.raw_ping;
                let ports = if raw { Vec::new() } else { PING_PORTS.to_vec() };
                let job = Job { host: id, addr, ports, kind: Kind::Discovery, transport: Transport::Tcp };
                lanes.send(id as usize, job, raw)?;
                rec.pending_pings = 1;
            }
            hosts.insert(id, rec);
        }
        if hosts.is_empty() && exhausted {
            break;
        }
        if hosts.is_empty() {
            continue;
        }
        match results.recv_timeout(Duration::from_millis(100)) {
            Ok(Msg::Part(part)) => {
                if let Some(record) = hosts.get_mut(&part.host) {
                    match part.kind {
                        Kind::Discovery => {
                            record.pending_pings -= 1;
                            record.srtt = part.srtt;
                            match part.up {
                                Some(reason) => {
                                    record.up = Some(reason);
                                    dispatch_ports(part.host, record)?;
                                }
                                None => {
                                    shared.done.fetch_add(record.ports.len() as u64, Ordering::Relaxed);
                                    record.started = true;
                                }
                            }
                        }
                        Kind::Ports => {
                            record.pending_parts -= 1;
                            record.results.extend(part.ports);
                            if let Some(s) = part.srtt {
                                record.srtt = Some(record.srtt.map_or(s, |x| x.min(s)));
                            }
                        }
                    }
                    if record.finished()
                        && let Some(record) = hosts.remove(&part.host)
                    {
                        obs.finished(record.addr);
                        report(record, cfg, &mut neighbours, &mut summary, obs);
                    }
                }
            }
            Ok(Msg::Failed(e)) => return Err(e),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::Engine(std::io::Error::other("the scan workers stopped")));
            }
        }
        if last_progress.elapsed() > Duration::from_millis(100) {
            obs.progress(&progress(shared, total));
            last_progress = Instant::now();
        }
    }
    if summary.interrupted {
        // the workers send what they decided for the hosts in progress, then stop
        shared.stop.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(5);
        while hosts.values().any(|record| record.pending_parts > 0 || record.pending_pings > 0)
            && Instant::now() < deadline
        {
            match results.recv_timeout(Duration::from_millis(50)) {
                Ok(Msg::Part(p)) => {
                    if let Some(record) = hosts.get_mut(&p.host) {
                        match p.kind {
                            Kind::Discovery => record.pending_pings = record.pending_pings.saturating_sub(1),
                            Kind::Ports => {
                                record.pending_parts = record.pending_parts.saturating_sub(1);
                                record.results.extend(p.ports);
                            }
                        }
                    }
                }
                Ok(Msg::Failed(_)) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let mut rest: Vec<(u64, HostRec)> = hosts.into_iter().collect();
        rest.sort_by_key(|(k, _)| *k);
        for (_, record) in rest {
            if record.up.is_some() {
                report(record, cfg, &mut neighbours, &mut summary, obs);
            }
        }
    }
    obs.progress(&progress(shared, total));
    // nothing at all could be probed: that is an error of the command line, not a result
    if let Some((addr, why)) = unprobeable
        && unprobeable_count == summary.hosts_total
        && !summary.interrupted
    {
        return Err(match why {
            Reason::NoRoute => Error::NoRoute { addr },
            Reason::Broadcast => Error::Unprobeable { addr, why: "a broadcast address" },
            _ => Error::Unprobeable { addr, why: "a route prohibits sending to it" },
        });
    }
    Ok(summary)
}

fn report(
    record: HostRec,
    cfg: &Config,
    neighbours: &mut crate::neigh::Neighbours,
    summary: &mut Summary,
    obs: &mut dyn Observer,
) {
    let up = record.up.is_some();
    if up {
        summary.hosts_up += 1;
    } else {
        summary.hosts_down += 1;
        // a host that could not be probed at all is always reported, with why
        if !cfg.report_down && record.down.is_none() {
            return;
        }
    }
    let mut host = Host::up(record.addr, record.up.clone().or(record.down).unwrap_or(Reason::NoResponseHost));
    if !up {
        host.status.state = HostState::Down;
    }
    if let Some(n) = record.name {
        host.hostnames.push(Hostname { name: n, kind: HostnameKind::User });
    }
    host.ports = record.results;
    host.sort_ports();
    host.start_time = Some(record.start);
    host.end_time = Some(Timestamp::now());
    host.srtt_us = record.srtt.map(|d| d.as_micros() as u64);
    if up
        && cfg.link_addresses
        && !record.addr.is_loopback()
        && let Some(mac) = neighbours.lookup(record.addr)
    {
        host.mac = Some(portolan_registry::oui::mac_text(mac));
        host.mac_vendor = portolan_registry::oui::mac_vendor(mac).map(str::to_string);
    }
    obs.host(host);
}
