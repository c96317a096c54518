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

use std::collections::HashMap;
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

/// Hosts in progress at the same time.
const ACTIVE_JOBS: usize = 64;

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
        3 => 20_000.0,
        4 => 50_000.0,
        _ => 150_000.0,
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
}

impl SynJob {
    fn index_of(&self, port: u16) -> Option<usize> {
        self.index.binary_search_by_key(&port, |e| e.0).ok().map(|i| self.index[i].1 as usize)
    }

    fn undecided(&self) -> usize {
        self.state.iter().filter(|&&s| s == UNDECIDED).count()
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
}

impl SynWorker {
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
            job,
        })
    }

    fn service(&self, port: u16) -> Option<Box<Service>> {
        let n = self.names.as_ref()?;
        Some(Box::new(Service::from_table(n.service_name(port, Transport::Tcp).unwrap_or("unknown"))))
    }

    /// Records an answer for port index `i` of job `j`.
    fn decide(&mut self, j: &mut SynJob, i: usize, outcome: (PortState, Reason), ttl: u8, now: Instant) {
        if j.state[i] != UNDECIDED {
            return;
        }
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
    }

    /// Reads every waiting answer.
    fn receive(&mut self, jobs: &mut [SynJob]) -> Result<()> {
        let now = Instant::now();
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
                        let j = &mut jobs[ji];
                        if e.sport != sport || e.seq != self.cookie.of(j.src, e.target, sport, e.dport) {
                            continue;
                        }
                        if let Some(i) = j.index_of(e.dport) {
                            let reason = icmp_reason(v6, e.kind, e.code);
                            self.decide(j, i, (PortState::Filtered, reason), 0, now);
                        }
                    } else {
                        let r = if v6 { packet::parse_tcp_v6(from, pkt) } else { packet::parse_tcp_v4(pkt) };
                        let Some(r) = r else { continue };
                        let Some(&ji) = self.by_addr.get(&r.from) else { continue };
                        let j = &mut jobs[ji];
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
                            self.decide(j, i, outcome, r.ttl, now);
                        }
                    }
                }
            }
        }
        Ok(())
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
                // a full socket buffer or a neighbour not resolved yet: the round will retry
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOBUFS | libc::EAGAIN | libc::EHOSTUNREACH | libc::ENETUNREACH)
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
        let mut active: Vec<SynJob> = Vec::new();
        let mut closed = false;
        let mut rr = 0usize;
        loop {
            if self.shared.stop.load(Ordering::Relaxed) {
                // report what was decided for the hosts in progress
                for j in active.drain(..) {
                    let _ = out.send(Msg::Part(self.part(j)));
                }
                return Ok(());
            }
            while active.len() < ACTIVE_JOBS && !closed {
                let got = if active.is_empty() {
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
                active.push(sj);
            }
            if active.is_empty() {
                if closed {
                    return Ok(());
                }
                continue;
            }
            self.by_addr.clear();
            for (i, j) in active.iter().enumerate() {
                self.by_addr.insert(j.job.addr, i);
            }
            // send what the bucket allows, round-robin over hosts, up to a batch
            let mut wait = Duration::from_millis(5);
            for _ in 0..256 {
                match self.bucket.take(Instant::now()) {
                    Ok(()) => {}
                    Err(d) => {
                        wait = wait.min(d);
                        break;
                    }
                }
                let n = active.len();
                let mut sent = false;
                for k in 0..n {
                    let idx = (rr + k) % n;
                    if self.send_one(&mut active[idx])? {
                        rr = idx + 1;
                        sent = true;
                        break;
                    }
                }
                if !sent {
                    // nothing to send: give the token back by not counting it (the bucket
                    // refills anyway), and wait for answers or timeouts
                    break;
                }
            }
            self.receive(&mut active)?;
            let now = Instant::now();
            let mut i = 0;
            while i < active.len() {
                if self.advance(&mut active[i], now) {
                    let j = active.swap_remove(i);
                    out.send(Msg::Part(self.part(j)))
                        .map_err(|_| Error::Engine(std::io::Error::other("the scan coordinator stopped")))?;
                } else {
                    i += 1;
                }
            }
            // nothing to send right now: wait for answers (or the next token)
            let sending = active.iter().any(|j| j.round_done.is_none());
            let fds: Vec<i32> = [self.v4.as_ref(), self.v6.as_ref()]
                .into_iter()
                .flatten()
                .flat_map(|f| [f.tcp.fd(), f.icmp.fd()])
                .collect();
            let timeout = if sending { wait.min(Duration::from_millis(1)) } else { Duration::from_millis(5) };
            poll_readable(&fds, timeout).map_err(Error::Engine)?;
        }
    }
}
