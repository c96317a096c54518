//! The SYN scan worker (`-sS`): the same coordinator, jobs and parts as the connect scan, but
//! probes are raw TCP SYNs sent by one thread at a token-bucket rate and answers are read from
//! raw sockets with a kernel filter.
//!
//! Stateless in the style of masscan and ZMap: a probe's sequence number is a keyed cookie of
//! its addresses and ports, so an answer proves which probe it answers (and a forged one is
//! dropped) without a table of probes in flight. What is kept per host is one byte of outcome
//! and the send time of each port. Unanswered ports are sent again in rounds: after the last
//! probe of a round and one probe timeout, the undecided ports of the host go out again, up to
//! one round more than the last round that got an answer (at least two retransmissions, at most
//! `--max-retries`); what is still undecided is `filtered` (`no-response`).
//!
//! Rate: `--max-rate` is a hard cap (a token bucket refilled continuously, burst of one
//! millisecond's worth); `--min-rate` a floor; without either the template's rate, halved when
//! a retransmission round is answered (the first probes were lost) and regrown by a quarter
//! after every round that lost nothing.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use portolan_model::{Port, PortState, Reason, Service, Transport};

use crate::engine::{Job, Kind, Msg, Part, Shared};
use crate::packet::{self, Answer, Cookie, SYN_LEN};
use crate::raw::{RawSock, poll_readable, reserve_port, source_for};
use crate::timing::{RttEstimator, Timing, TokenBucket};
use crate::{Error, Result};

/// Port probes of the hosts in progress at most (what they cost: about 16 bytes a port).
const PROBES_IN_PROGRESS: usize = 4 << 20;

/// Opens a raw TCP socket to see whether SYN scanning is possible here.
pub fn privileged(v6: bool) -> bool {
    RawSock::open(v6, libc::IPPROTO_TCP).is_ok()
}

/// The probe rate of a template when no rate is given (probes a second).
fn template_rate(t: &Timing) -> f64 {
    if t.scan_delay > Duration::ZERO {
        return 1.0 / t.scan_delay.as_secs_f64();
    }
    match t.template {
        0..=2 => 10.0,
        3 => 200_000.0,
        4 => 500_000.0,
        _ => 1_000_000.0,
    }
}

/// nmap's SYN-scan reading of an ICMP unreachable: every code is `filtered`.
fn icmp_reason(v6: bool, kind: u8, code: u8) -> Reason {
    if !v6 && kind == 3 {
        match code {
            0 | 6 | 11 => Reason::NetUnreach,
            1 | 7 | 12 => Reason::HostUnreach,
            2 => Reason::ProtoUnreach,
            3 => Reason::PortUnreach,
            9 => Reason::NetProhibited,
            10 => Reason::HostProhibited,
            13 => Reason::AdminProhibited,
            _ => Reason::HostUnreach,
        }
    } else {
        match code {
            0 => Reason::NetUnreach,
            1 | 5 | 6 => Reason::AdminProhibited,
            4 => Reason::PortUnreach,
            _ => Reason::HostUnreach,
        }
    }
}

/// Raw sockets of one address family.
struct Family {
    tcp: RawSock,
    icmp: RawSock,
    /// Holds the source port for the scan's lifetime.
    _reserved: socket2::Socket,
}

/// Outcome codes kept per port.
const UNDECIDED: u8 = 0;

struct SynJob {
    job: Job,
    src: IpAddr,
    /// (port, index into `job.ports`), sorted by port, for answers.
    index: Vec<(u16, u32)>,
    /// Outcome per port: UNDECIDED, or 1 + index into `outcomes`.
    state: Vec<u8>,
    ttl: Vec<u8>,
    /// Milliseconds since `t0` of the last probe of each port.
    sent_ms: Vec<u32>,
    t0: Instant,
    round: u8,
    /// Highest round that got an answer.
    max_ok_round: u8,
    /// Next index of the current round.
    cursor: usize,
    /// When the current round's last probe went out.
    round_done: Option<Instant>,
    answered_in_round: usize,
    rtt: RttEstimator,
    timeout: Duration,
    up: Option<Reason>,
    /// Discovery: an ICMP error said the host is unreachable.
    unreachable: bool,
    /// Ports not decided yet.
    left: usize,
}

impl SynJob {
    fn index_of(&self, port: u16) -> Option<usize> {
        self.index.binary_search_by_key(&port, |e| e.0).ok().map(|i| self.index[i].1 as usize)
    }

    fn undecided(&self) -> usize {
        self.left
    }
}

pub(crate) struct SynWorker {
    t: Timing,
    shared: Arc<Shared>,
    names: Option<Arc<portolan_registry::Ranking>>,
    cookie: Cookie,
    v4: Option<Family>,
    v6: Option<Family>,
    /// Source ports per family.
    sport: [u16; 2],
    rate: f64,
    floor: f64,
    cap: f64,
    bucket: TokenBucket,
    /// Decided outcomes other than open and closed (ICMP reasons), interned.
    reasons: Vec<(PortState, Reason)>,
    by_addr: HashMap<IpAddr, usize>,
    buf: Vec<u8>,
    /// Hosts in flight at most.
    pub(crate) max_jobs: usize,
}

impl SynWorker {
    /// Hosts a SYN scan of `ports` ports a host keeps in flight: many when each has few
    /// ports (a sweep of one port over a /16 waits on timeouts, not on sending).
    pub(crate) fn hosts_in_flight(ports: usize) -> usize {
        (PROBES_IN_PROGRESS / ports.max(1)).clamp(64, 65_536)
    }

    pub(crate) fn new(
        t: Timing,
        names: Option<Arc<portolan_registry::Ranking>>,
        shared: Arc<Shared>,
        seed: u64,
    ) -> SynWorker {
        let cap = t.max_rate.unwrap_or_else(|| template_rate(&t).max(t.min_rate.unwrap_or(0.0)));
        let floor = t.min_rate.unwrap_or(10.0_f64.min(cap)).min(cap);
        let rate = cap;
        let key = crate::engine::Rng::new(seed ^ 0x5eed_c00c_1e00_0001);
        let mut k = key;
        let cookie = Cookie::new(k.next_u64(), k.next_u64());
        SynWorker {
            bucket: TokenBucket::new(rate),
            t,
            shared,
            names,
            cookie,
            v4: None,
            v6: None,
            sport: [0, 0],
            rate,
            floor,
            cap,
            reasons: vec![(PortState::Open, Reason::SynAck), (PortState::Closed, Reason::Reset)],
            by_addr: HashMap::new(),
            buf: vec![0u8; 2048],
            max_jobs: 64,
        }
    }

    fn family(&mut self, v6: bool) -> Result<()> {
        let slot = if v6 { &self.v6 } else { &self.v4 };
        if slot.is_some() {
            return Ok(());
        }
        let need = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                Error::NeedsRawSockets
            } else {
                Error::Engine(e)
            }
        };
        let (reserved, port) = reserve_port(v6).map_err(Error::Engine)?;
        let tcp = RawSock::open(v6, libc::IPPROTO_TCP).map_err(need)?;
        tcp.filter_tcp_dport(v6, port).map_err(Error::Engine)?;
        let icmp =
            RawSock::open(v6, if v6 { libc::IPPROTO_ICMPV6 } else { libc::IPPROTO_ICMP }).map_err(need)?;
        let fam = Family { tcp, icmp, _reserved: reserved };
        self.sport[usize::from(v6)] = port;
        if v6 {
            self.v6 = Some(fam);
        } else {
            self.v4 = Some(fam);
        }
        Ok(())
    }

    fn set_rate(&mut self, rate: f64) {
        let r = rate.clamp(self.floor, self.cap);
        if (r - self.rate).abs() > f64::EPSILON {
            self.rate = r;
            self.bucket = TokenBucket::new(r);
        }
    }

    fn start(&mut self, job: Job) -> Result<SynJob> {
        let v6 = job.addr.is_ipv6();
        self.family(v6)?;
        let src = source_for(job.addr).map_err(|_| Error::NoRoute { addr: job.addr })?;
        let n = job.ports.len();
        let mut index: Vec<(u16, u32)> = job.ports.iter().enumerate().map(|(i, &p)| (p, i as u32)).collect();
        index.sort_unstable();
        Ok(SynJob {
            src,
            index,
            state: vec![UNDECIDED; n],
            ttl: vec![0; n],
            sent_ms: vec![0; n],
            t0: Instant::now(),
            round: 0,
            max_ok_round: 0,
            cursor: 0,
            round_done: None,
            answered_in_round: 0,
            rtt: RttEstimator::default(),
            timeout: self.t.initial_rtt,
            up: None,
            unreachable: false,
            left: n,
            job,
        })
    }

    fn service(&self, port: u16) -> Option<Box<Service>> {
        let n = self.names.as_ref()?;
        Some(Box::new(Service::from_table(n.service_name(port, Transport::Tcp).unwrap_or("unknown"))))
    }

    /// Records an answer for port index `i` of job `j`; true when that finishes the job.
    fn decide(
        &mut self,
        j: &mut SynJob,
        i: usize,
        outcome: (PortState, Reason),
        ttl: u8,
        now: Instant,
    ) -> bool {
        if j.state[i] != UNDECIDED {
            return false;
        }
        j.left -= 1;
        let code = match self.reasons.iter().position(|r| *r == outcome) {
            Some(c) => c,
            None => {
                self.reasons.push(outcome.clone());
                self.reasons.len() - 1
            }
        };
        j.state[i] = (code + 1).min(255) as u8;
        j.ttl[i] = ttl;
        let sent = j.t0 + Duration::from_millis(u64::from(j.sent_ms[i]));
        j.rtt.sample(now.saturating_duration_since(sent));
        j.timeout = j.rtt.timeout(&self.t);
        j.max_ok_round = j.max_ok_round.max(j.round);
        j.answered_in_round += 1;
        match j.job.kind {
            Kind::Discovery => {
                if matches!(outcome.0, PortState::Open | PortState::Closed) && j.up.is_none() {
                    j.up = Some(if outcome.0 == PortState::Open { Reason::SynAck } else { Reason::Reset });
                } else if j.up.is_none() {
                    j.unreachable = true;
                }
            }
            Kind::Ports => {
                self.shared.done.fetch_add(1, Ordering::Relaxed);
                if outcome.0 == PortState::Open {
                    self.shared.open.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        j.left == 0 || (j.job.kind == Kind::Discovery && (j.up.is_some() || j.unreachable))
    }

    /// Reads every waiting answer; returns the slots of hosts that are now fully decided.
    fn receive(&mut self, jobs: &mut [Option<SynJob>]) -> Result<Vec<usize>> {
        let now = Instant::now();
        let mut finished = Vec::new();
        for v6 in [false, true] {
            for icmp in [false, true] {
                for _ in 0..4096 {
                    let fam = if v6 { self.v6.as_ref() } else { self.v4.as_ref() };
                    let Some(fam) = fam else { break };
                    let sock = if icmp { &fam.icmp } else { &fam.tcp };
                    let Some((n, from)) = sock.recv_from(&mut self.buf).map_err(Error::Engine)? else {
                        break;
                    };
                    let pkt = &self.buf[..n];
                    let sport = self.sport[usize::from(v6)];
                    if icmp {
                        let e =
                            if v6 { packet::parse_icmp_v6(from, pkt) } else { packet::parse_icmp_v4(pkt) };
                        let Some(e) = e else { continue };
                        let Some(&ji) = self.by_addr.get(&e.target) else { continue };
                        let Some(j) = jobs[ji].as_mut() else { continue };
                        if e.sport != sport || e.seq != self.cookie.of(j.src, e.target, sport, e.dport) {
                            continue;
                        }
                        if let Some(i) = j.index_of(e.dport) {
                            let reason = icmp_reason(v6, e.kind, e.code);
                            if self.decide(j, i, (PortState::Filtered, reason), 0, now) {
                                finished.push(ji);
                            }
                        }
                    } else {
                        let r = if v6 { packet::parse_tcp_v6(from, pkt) } else { packet::parse_tcp_v4(pkt) };
                        let Some(r) = r else { continue };
                        let Some(&ji) = self.by_addr.get(&r.from) else { continue };
                        let Some(j) = jobs[ji].as_mut() else { continue };
                        if r.dport != sport
                            || r.ack != self.cookie.of(j.src, r.from, sport, r.sport).wrapping_add(1)
                        {
                            continue;
                        }
                        if let Some(i) = j.index_of(r.sport) {
                            let outcome = match r.answer {
                                Answer::SynAck => (PortState::Open, Reason::SynAck),
                                Answer::Reset => (PortState::Closed, Reason::Reset),
                            };
                            if self.decide(j, i, outcome, r.ttl, now) {
                                finished.push(ji);
                            }
                        }
                    }
                }
            }
        }
        Ok(finished)
    }

    /// Sends the next probe of job `j`; false when its round has nothing left to send.
    fn send_one(&mut self, j: &mut SynJob) -> Result<bool> {
        while j.cursor < j.job.ports.len() && j.state[j.cursor] != UNDECIDED {
            j.cursor += 1;
        }
        if j.cursor >= j.job.ports.len() {
            // the round's last probes were answered before their turn came
            if j.round_done.is_none() {
                j.round_done = Some(Instant::now());
            }
            return Ok(false);
        }
        let i = j.cursor;
        j.cursor += 1;
        let v6 = j.job.addr.is_ipv6();
        let sport = self.sport[usize::from(v6)];
        let dport = j.job.ports[i];
        let seq = self.cookie.of(j.src, j.job.addr, sport, dport);
        let mut seg = [0u8; SYN_LEN];
        packet::write_syn(&mut seg, j.src, j.job.addr, sport, dport, seq);
        let fam = if v6 { self.v6.as_ref() } else { self.v4.as_ref() };
        if let Some(fam) = fam {
            match fam.tcp.send_to(&seg, j.job.addr) {
                Ok(()) => {}
                // a full socket buffer, a neighbour not resolved yet, or a local firewall that
                // dropped the packet (EPERM): lost like any other probe; the round will retry
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(
                            libc::ENOBUFS
                                | libc::EAGAIN
                                | libc::EHOSTUNREACH
                                | libc::ENETUNREACH
                                | libc::EPERM
                                | libc::EACCES
                        )
                    ) => {}
                Err(e) => return Err(Error::Engine(e)),
            }
        }
        j.sent_ms[i] = j.t0.elapsed().as_millis().min(u128::from(u32::MAX)) as u32;
        self.shared.sent.fetch_add(1, Ordering::Relaxed);
        if j.round > 0 {
            self.shared.retrans.fetch_add(1, Ordering::Relaxed);
        }
        if j.cursor >= j.job.ports.len() {
            j.round_done = Some(Instant::now());
        }
        Ok(true)
    }

    fn part(&self, j: SynJob) -> Part {
        let srtt = j.rtt.srtt();
        if j.job.kind == Kind::Discovery {
            return Part { host: j.job.host, kind: Kind::Discovery, ports: Vec::new(), up: j.up, srtt };
        }
        let mut ports = Vec::with_capacity(j.job.ports.len());
        for (i, &p) in j.job.ports.iter().enumerate() {
            let (state, reason) = match j.state[i] {
                UNDECIDED => (PortState::Filtered, Reason::NoResponse),
                c => self.reasons[usize::from(c) - 1].clone(),
            };
            ports.push(Port {
                number: p,
                transport: Transport::Tcp,
                state,
                reason,
                reason_ttl: j.ttl[i],
                service: self.service(p),
            });
        }
        Part { host: j.job.host, kind: Kind::Ports, ports, up: None, srtt }
    }

    /// Whether a job is finished; moves it to its next round when its round timed out.
    fn advance(&mut self, j: &mut SynJob, now: Instant) -> bool {
        if j.job.kind == Kind::Discovery && (j.up.is_some() || j.unreachable) {
            return true;
        }
        if j.undecided() == 0 {
            return true;
        }
        let Some(done) = j.round_done else { return false };
        if now < done + j.timeout {
            return false;
        }
        // answers to a retransmission mean first probes were lost: slow down
        if j.round > 0 && j.answered_in_round > 0 {
            self.set_rate(self.rate / 2.0);
        } else if j.round == 0 {
            self.set_rate(self.rate * 1.25);
        }
        let allowed = j.max_ok_round.saturating_add(1).max(2).min(self.t.max_retries);
        if j.round >= allowed {
            return true;
        }
        if let Some(limit) = self.t.host_timeout
            && now.duration_since(j.t0) > limit
        {
            return true;
        }
        j.round += 1;
        j.cursor = 0;
        j.round_done = None;
        j.answered_in_round = 0;
        false
    }

    pub(crate) fn run(&mut self, jobs_rx: mpsc::Receiver<Job>, out: &mpsc::Sender<Msg>) -> Result<()> {
        // hosts in flight live in a slab; `ready` holds the ones with probes left in their
        // round, `waiting` the ones whose round is out, by deadline. Entries carry the slot's
        // generation so that a host finished early is skipped lazily.
        let mut slab: Vec<Option<SynJob>> = Vec::new();
        let mut gens: Vec<u32> = Vec::new();
        let mut free: Vec<usize> = Vec::new();
        let mut ready: VecDeque<(usize, u32)> = VecDeque::new();
        let mut waiting: BinaryHeap<Reverse<(Instant, usize, u32)>> = BinaryHeap::new();
        let mut live = 0usize;
        let mut closed = false;
        let send_part = |w: &SynWorker, j: SynJob| {
            out.send(Msg::Part(w.part(j)))
                .map_err(|_| Error::Engine(std::io::Error::other("the scan coordinator stopped")))
        };
        loop {
            if self.shared.stop.load(Ordering::Relaxed) {
                // report what was decided for the hosts in progress
                for j in slab.iter_mut().filter_map(Option::take) {
                    let _ = out.send(Msg::Part(self.part(j)));
                }
                return Ok(());
            }
            // take new hosts
            while live < self.max_jobs && !closed {
                let got = if live == 0 {
                    match jobs_rx.recv_timeout(Duration::from_millis(50)) {
                        Ok(j) => Some(j),
                        Err(mpsc::RecvTimeoutError::Timeout) => None,
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            closed = true;
                            None
                        }
                    }
                } else {
                    match jobs_rx.try_recv() {
                        Ok(j) => Some(j),
                        Err(mpsc::TryRecvError::Empty) => None,
                        Err(mpsc::TryRecvError::Disconnected) => {
                            closed = true;
                            None
                        }
                    }
                };
                let Some(job) = got else { break };
                let sj = self.start(job)?;
                let slot = free.pop().unwrap_or_else(|| {
                    slab.push(None);
                    gens.push(0);
                    slab.len() - 1
                });
                gens[slot] = gens[slot].wrapping_add(1);
                self.by_addr.insert(sj.job.addr, slot);
                slab[slot] = Some(sj);
                ready.push_back((slot, gens[slot]));
                live += 1;
            }
            if live == 0 {
                if closed {
                    return Ok(());
                }
                continue;
            }
            // send what the bucket allows, one probe per host in turn
            let mut wait = Duration::from_millis(5);
            for _ in 0..512 {
                let Some(&(slot, g)) = ready.front() else { break };
                if gens[slot] != g || slab[slot].is_none() {
                    ready.pop_front();
                    continue;
                }
                if let Err(d) = self.bucket.take(Instant::now()) {
                    wait = wait.min(d);
                    break;
                }
                ready.pop_front();
                let Some(j) = slab[slot].as_mut() else { continue };
                let more = self.send_one(j)?;
                match (more, j.round_done) {
                    (true, None) => ready.push_back((slot, g)),
                    (_, Some(done)) => waiting.push(Reverse((done + j.timeout, slot, g))),
                    (false, None) => waiting.push(Reverse((Instant::now(), slot, g))),
                }
            }
            // answers; hosts whose every port is decided finish at once
            let finished = self.receive(&mut slab)?;
            for slot in finished {
                if let Some(j) = retire(&mut slab, &mut gens, &mut free, &mut live, slot) {
                    self.by_addr.remove(&j.job.addr);
                    send_part(self, j)?;
                }
            }
            // rounds that timed out: the next round, or the end
            let now = Instant::now();
            while let Some(&Reverse((deadline, slot, g))) = waiting.peek() {
                if gens[slot] != g || slab[slot].is_none() {
                    waiting.pop();
                    continue;
                }
                if deadline > now {
                    break;
                }
                waiting.pop();
                let Some(j) = slab[slot].as_mut() else { continue };
                let due = j.round_done.map_or(now, |d| d + j.timeout);
                if due > now {
                    // the timeout shrank or grew since: wait until the real deadline
                    waiting.push(Reverse((due, slot, g)));
                    continue;
                }
                if self.advance(j, now) {
                    if let Some(j) = retire(&mut slab, &mut gens, &mut free, &mut live, slot) {
                        self.by_addr.remove(&j.job.addr);
                        send_part(self, j)?;
                    }
                } else {
                    ready.push_back((slot, g));
                }
            }
            let fds: Vec<i32> = [self.v4.as_ref(), self.v6.as_ref()]
                .into_iter()
                .flatten()
                .flat_map(|f| [f.tcp.fd(), f.icmp.fd()])
                .collect();
            let timeout = if !ready.is_empty() {
                wait.min(Duration::from_millis(1))
            } else {
                let next = waiting
                    .peek()
                    .map_or(Duration::from_millis(5), |Reverse((d, _, _))| d.saturating_duration_since(now));
                next.clamp(Duration::from_micros(100), Duration::from_millis(5))
            };
            poll_readable(&fds, timeout).map_err(Error::Engine)?;
        }
    }
}

/// Takes a finished host out of its slot; the slot's generation changes, so queue entries that
/// still name it are skipped.
fn retire(
    slab: &mut [Option<SynJob>],
    gens: &mut [u32],
    free: &mut Vec<usize>,
    live: &mut usize,
    slot: usize,
) -> Option<SynJob> {
    let j = slab[slot].take()?;
    gens[slot] = gens[slot].wrapping_add(1);
    free.push(slot);
    *live -= 1;
    Some(j)
}
