//! The connect scan's workers (`-sT`, and unprivileged discovery).
//!
//! One worker thread per CPU, each with its own epoll loop, congestion window, token bucket
//! and share of every host's ports (port i of the host's shuffled list goes to worker
//! i mod W); the coordinator (`engine.rs`) hands out the shares and merges the parts.
//!
//! Why hand-rolled epoll rather than one tokio task per probe: measured on the 2-vCPU machine,
//! 65,535 connects to closed ports took 1.2-1.6 s with tokio tasks (cross-thread wakeups, two
//! epoll_ctl per socket), 0.55-0.65 s with one epoll loop per CPU and a fresh socket per probe,
//! and 0.34-0.45 s when a socket whose connect was refused is reset (`connect(AF_UNSPEC)`) and
//! reused: socket creation and teardown are most of the kernel's cost of a probe. A reused
//! socket's error queue is emptied when its ICMP error is read, and an error left behind by a
//! refusal (ICMP port-unreachable is not read) is recognised and drained when it surfaces.
//!
//! Per worker and host, as nmap: RTT is estimated (RFC 6298) and bounds the probe timeout;
//! unanswered probes are retransmitted up to one more try than the highest try that ever got
//! an answer, within `--max-retries`; the window grows on every answered (or silently expired)
//! probe and halves on a confirmed drop (a retransmission answered where the first was not).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use portolan_model::{Port, PortState, Reason, Service, Transport};

use crate::jobs::{Job, Kind, Msg, Part, Shared, TableNames};
use crate::probe::{reason_for_errno, reason_for_icmp};
use crate::raw::{Epoll, Sock, Start};
use crate::rounds::{below_min_rate, connect_retries, host_timed_out, paced_until};
use crate::timing::{Congestion, RttEstimator, Timing, TokenBucket};
use crate::{Error, Result};

/// Jobs one worker runs at the same time.
const ACTIVE_JOBS: usize = 64;
/// Probes a worker starts before it polls for answers again.
const SEND_BATCH: usize = 128;
/// Reset sockets a worker keeps for reuse at most.
const POOL_MAX: usize = 4096;

/// One worker's state for one job.
struct JobRun {
    job: Job,
    next: usize,
    retries: VecDeque<(u16, u8)>,
    outstanding: usize,
    rtt: RttEstimator,
    timeout: Duration,
    max_ok_try: u8,
    last_send: Option<Instant>,
    started: Instant,
    results: Vec<Port>,
    up: Option<Reason>,
    timed_out: bool,
    /// Probes in flight, oldest first: (slot, generation). Timeouts are found at the front.
    fifo: VecDeque<(usize, u32)>,
}

impl JobRun {
    fn new(job: Job, timing: &Timing) -> JobRun {
        JobRun {
            job,
            next: 0,
            retries: VecDeque::new(),
            outstanding: 0,
            rtt: RttEstimator::default(),
            timeout: timing.initial_rtt,
            max_ok_try: 0,
            last_send: None,
            started: Instant::now(),
            results: Vec::new(),
            up: None,
            timed_out: false,
            fifo: VecDeque::new(),
        }
    }

    fn finished(&self) -> bool {
        self.outstanding == 0 && self.retries.is_empty() && self.next >= self.job.ports.len()
    }

    fn give_up_sending(&mut self) {
        self.retries.clear();
        self.next = self.job.ports.len();
    }

    fn part(self) -> Part {
        Part {
            host: self.job.host,
            kind: self.job.kind,
            srtt: self.rtt.srtt(),
            ports: self.results,
            up: self.up,
        }
    }
}

/// A probe in flight.
struct Flight {
    sock: Sock,
    job: usize,
    port: u16,
    tryno: u8,
    sent: Instant,
    generation: u32,
}

pub(crate) struct Worker {
    timing: Timing,
    congestion: Congestion,
    bucket: Option<TokenBucket>,
    min_rate: Option<f64>,
    names: Option<TableNames>,
    shared: Arc<Shared>,
    slots: Vec<Option<Flight>>,
    free: Vec<usize>,
    gens: Vec<u32>,
    in_flight: usize,
    started: Instant,
    sent_here: u64,
    /// Sockets whose connect was refused, reset for reuse: IPv4, IPv6.
    pools: [Vec<Sock>; 2],
}

/// An errno that an ICMP error may stand behind.
fn icmp_errno(errno: i32) -> bool {
    matches!(errno, libc::EHOSTUNREACH | libc::ENETUNREACH | libc::ENOPROTOOPT | libc::EACCES)
}

impl Worker {
    pub(crate) fn new(
        timing: Timing,
        budget: usize,
        workers: usize,
        names: Option<Arc<portolan_registry::Ranking>>,
        shared: Arc<Shared>,
    ) -> Worker {
        let mut worker_timing = timing.clone();
        worker_timing.max_parallelism = (timing.max_parallelism / workers).max(1);
        let congestion = Congestion::new(&worker_timing, budget.max(1));
        let bucket = timing.max_rate.map(|rate| TokenBucket::new(rate / workers as f64));
        let min_rate = timing.min_rate.map(|rate| rate / workers as f64);
        Worker {
            timing,
            congestion,
            bucket,
            min_rate,
            names: names.as_ref().map(TableNames::new),
            shared,
            slots: Vec::new(),
            free: Vec::new(),
            gens: Vec::new(),
            in_flight: 0,
            started: Instant::now(),
            sent_here: 0,
            pools: [Vec::new(), Vec::new()],
        }
    }

    fn service(&self, port: u16) -> Option<Arc<Service>> {
        Some(self.names.as_ref()?.of(port, Transport::Tcp))
    }

    /// Back to the pool when it can be reset.
    fn recycle(&mut self, sock: Sock, v6: bool) {
        if self.pools[usize::from(v6)].len() < POOL_MAX && sock.reset() {
            self.pools[usize::from(v6)].push(sock);
        }
    }

    /// A connect failed with `errno`: decide the port, or probe again for the ICMP detail.
    fn failed(
        &mut self,
        run: &mut JobRun,
        sock: Sock,
        port: u16,
        tryno: u8,
        errno: i32,
        rtt: Option<Duration>,
    ) {
        let v6 = run.job.addr.is_ipv6();
        if icmp_errno(errno) {
            // the socket queued the ICMP error (IP_RECVERR); reading it also empties the queue
            // for reuse. Without it, the errno says what nmap's connect scan says.
            if let Some((state, reason)) =
                sock.latest_icmp().and_then(|(kind, code)| reason_for_icmp(v6, kind, code))
            {
                self.recycle(sock, v6);
                self.decided(run, port, tryno, state, reason, rtt);
                return;
            }
        }
        match reason_for_errno(errno) {
            Some((state, reason)) => {
                self.recycle(sock, v6);
                self.decided(run, port, tryno, state, reason, rtt);
            }
            None => {
                // an errno that is no answer about the port: try again
                self.congestion.on_drop();
                run.retries.push_back((port, tryno));
            }
        }
    }

    fn decided(
        &mut self,
        run: &mut JobRun,
        port: u16,
        tryno: u8,
        state: PortState,
        reason: Reason,
        rtt: Option<Duration>,
    ) {
        if let Some(rtt) = rtt {
            run.rtt.sample(rtt);
            run.timeout = run.rtt.timeout(&self.timing);
        }
        if tryno > 0 {
            // a retransmission was answered: the first try was lost
            run.max_ok_try = run.max_ok_try.max(tryno);
            self.congestion.on_drop();
        } else {
            self.congestion.on_response();
        }
        match run.job.kind {
            Kind::Discovery => {
                if run.up.is_none() && matches!(state, PortState::Open | PortState::Closed) {
                    run.up =
                        Some(if state == PortState::Open { Reason::SynAck } else { Reason::ConnRefused });
                    // the other ping needs no answer
                    run.give_up_sending();
                }
            }
            Kind::Ports => {
                self.shared.done.fetch_add(1, Ordering::Relaxed);
                if state == PortState::Open {
                    self.shared.open.fetch_add(1, Ordering::Relaxed);
                }
                let service = self.service(port);
                run.results.push(Port {
                    number: port,
                    transport: Transport::Tcp,
                    state,
                    reason,
                    reason_ttl: 0,
                    service,
                });
            }
        }
    }

    fn take_jobs(&mut self, jobs: &mpsc::Receiver<Job>, active: &mut Vec<JobRun>, closed: &mut bool) {
        while active.len() < ACTIVE_JOBS && !*closed {
            let got = if active.is_empty() {
                match jobs.recv_timeout(Duration::from_millis(50)) {
                    Ok(job) => Some(job),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        *closed = true;
                        None
                    }
                }
            } else {
                match jobs.try_recv() {
                    Ok(job) => Some(job),
                    Err(mpsc::TryRecvError::Empty) => None,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        *closed = true;
                        None
                    }
                }
            };
            let Some(job) = got else { break };
            active.push(JobRun::new(job, &self.timing));
        }
    }

    pub(crate) fn run(&mut self, jobs: mpsc::Receiver<Job>, out: &mpsc::Sender<Msg>) -> Result<()> {
        let mut epoll = Epoll::new(1024).map_err(Error::Engine)?;
        let mut active: Vec<JobRun> = Vec::new();
        let mut ready: Vec<(u64, u32)> = Vec::new();
        let mut closed = false;
        let mut turn = 0usize;
        loop {
            if self.shared.stop.load(Ordering::Relaxed) {
                // report what is decided; what is in flight is dropped
                self.slots.clear();
                self.in_flight = 0;
                for run in active.drain(..) {
                    let _ = out.send(Msg::Part(run.part()));
                }
                return Ok(());
            }
            self.take_jobs(&jobs, &mut active, &mut closed);
            if active.is_empty() {
                if closed {
                    return Ok(());
                }
                continue;
            }
            let (sent, mut wake) = self.send(&epoll, &mut active, &mut turn)?;
            // the nearest timeout among the jobs (their oldest probe)
            for run in &active {
                if let Some(&(slot, generation)) = run.fifo.front()
                    && let Some(flight) =
                        self.slots[slot].as_ref().filter(|flight| flight.generation == generation)
                {
                    wake = wake.min((flight.sent + run.timeout).saturating_duration_since(Instant::now()));
                }
            }
            let wait = if sent >= SEND_BATCH {
                Duration::ZERO
            } else if self.in_flight == 0 {
                wake.min(Duration::from_millis(5))
            } else {
                wake
            };
            epoll.wait(wait, &mut ready).map_err(Error::Engine)?;
            for &(token, flags) in &ready {
                self.on_event(&epoll, &mut active, token as usize, flags)?;
            }
            self.expire(&mut active);
            // a host found up needs no answer to its other ping
            for (index, run) in active.iter_mut().enumerate() {
                if run.job.kind == Kind::Discovery && run.up.is_some() && run.outstanding > 0 {
                    for (slot, flight) in self.slots.iter_mut().enumerate() {
                        if flight.as_ref().is_some_and(|flight| flight.job == index) {
                            *flight = None;
                            self.free.push(slot);
                            self.in_flight -= 1;
                            run.outstanding -= 1;
                        }
                    }
                }
            }
            // report finished jobs; probes in flight refer to jobs by position, so later ones
            // move down when one is removed (a finished job has none in flight)
            let mut i = 0;
            while i < active.len() {
                if active[i].finished() {
                    let run = active.remove(i);
                    for flight in self.slots.iter_mut().flatten() {
                        if flight.job > i {
                            flight.job -= 1;
                        }
                    }
                    let _ = out.send(Msg::Part(run.part()));
                    continue;
                }
                i += 1;
            }
        }
    }

    /// Starts what the window, the rate and the pacing allow (at most a batch); returns how
    /// many were started and when to look again.
    fn send(&mut self, epoll: &Epoll, active: &mut [JobRun], turn: &mut usize) -> Result<(usize, Duration)> {
        let now = Instant::now();
        let mut wake = Duration::from_millis(25);
        let behind =
            below_min_rate(self.sent_here, self.min_rate, now.saturating_duration_since(self.started));
        let limit = if behind { usize::MAX } else { self.congestion.window() };
        let n = active.len();
        let mut idle = 0;
        let mut sent = 0;
        // Batches with polls between them: a burst of thousands of connects before reading any
        // answer costs more kernel time per probe than a steady pipeline.
        while self.in_flight < limit && idle < n && sent < SEND_BATCH {
            *turn = (*turn + 1) % n;
            let index = *turn;
            let run = &mut active[index];
            // the clock is read only when there is a host timeout (a hot loop)
            if !run.timed_out
                && self.timing.host_timeout.is_some()
                && host_timed_out(run.started, Instant::now(), self.timing.host_timeout)
            {
                run.timed_out = true;
                run.give_up_sending();
            }
            if let Some(at) = paced_until(run.last_send, self.timing.scan_delay, now) {
                wake = wake.min(at - now);
                idle += 1;
                continue;
            }
            let next = if let Some(&retry) = run.retries.front() {
                Some((retry, true))
            } else if run.next < run.job.ports.len() {
                Some(((run.job.ports[run.next], 0), false))
            } else {
                None
            };
            let Some(((port, tryno), retry)) = next else {
                idle += 1;
                continue;
            };
            if let Some(b) = self.bucket.as_mut()
                && let Err(w) = b.take(Instant::now())
            {
                wake = wake.min(w);
                break;
            }
            if retry {
                run.retries.pop_front();
            } else {
                run.next += 1;
            }
            idle = 0;
            sent += 1;
            run.last_send = Some(now);
            self.sent_here += 1;
            self.shared.sent.fetch_add(1, Ordering::Relaxed);
            if tryno > 0 && retry {
                self.shared.retrans.fetch_add(1, Ordering::Relaxed);
            }
            let addr = SocketAddr::new(run.job.addr, port);
            let v6 = addr.is_ipv6();
            let pooled = self.pools[usize::from(v6)].pop();
            let requeue = |run: &mut JobRun| run.retries.push_front((port, tryno));
            let mut sock = match pooled {
                Some(s) => s,
                None => match Sock::new(v6) {
                    Ok(s) => s,
                    Err(Start::Fatal(e)) => return Err(Error::Engine(e)),
                    Err(_) => {
                        // out of descriptors: shrink and try the same probe again
                        self.congestion.on_drop();
                        requeue(run);
                        break;
                    }
                },
            };
            match sock.start(addr) {
                Start::Pending => {
                    let slot = self.free.pop().unwrap_or_else(|| {
                        self.slots.push(None);
                        self.gens.push(0);
                        self.slots.len() - 1
                    });
                    self.gens[slot] = self.gens[slot].wrapping_add(1);
                    let generation = self.gens[slot];
                    if let Err(e) = epoll.arm(&mut sock, slot as u64) {
                        self.free.push(slot);
                        return Err(Error::Engine(e));
                    }
                    self.slots[slot] = Some(Flight { sock, job: index, port, tryno, sent: now, generation });
                    run.outstanding += 1;
                    run.fifo.push_back((slot, generation));
                    self.in_flight += 1;
                    self.shared.peak.fetch_max(self.in_flight as u64, Ordering::Relaxed);
                }
                Start::Open => {
                    if sock.is_self_connect(addr) {
                        run.retries.push_back((port, tryno));
                    } else {
                        sock.close_with_reset();
                        self.decided(run, port, tryno, PortState::Open, Reason::SynAck, Some(Duration::ZERO));
                    }
                }
                Start::Failed(errno) => self.failed(run, sock, port, tryno, errno, None),
                // the route went away during the scan: this port is not reachable
                Start::NoRoute => {
                    self.recycle(sock, v6);
                    self.decided(run, port, tryno, PortState::Filtered, Reason::NetUnreach, None);
                }
                Start::Again => {
                    // out of ephemeral ports or buffers: shrink and retry the same try
                    self.congestion.on_drop();
                    self.recycle(sock, v6);
                    requeue(run);
                    break;
                }
                Start::Fatal(e) => return Err(Error::Engine(e)),
            }
        }
        Ok((sent, wake))
    }

    fn on_event(&mut self, epoll: &Epoll, active: &mut [JobRun], slot: usize, flags: u32) -> Result<()> {
        let Some(mut flight) = self.slots.get_mut(slot).and_then(Option::take) else { return Ok(()) };
        let addr = SocketAddr::new(active[flight.job].job.addr, flight.port);
        match flight.sock.so_error() {
            Ok(None) if flags & libc::EPOLLOUT as u32 == 0 => {
                // Not a connection: an ICMP error queued by an earlier use of this reused
                // socket made it readable. Empty the queue and keep waiting.
                flight.sock.drain_errors();
                epoll.arm(&mut flight.sock, slot as u64).map_err(Error::Engine)?;
                self.slots[slot] = Some(flight);
            }
            Ok(None) => {
                self.free.push(slot);
                self.in_flight -= 1;
                let rtt = flight.sent.elapsed();
                let run = &mut active[flight.job];
                run.outstanding -= 1;
                if flight.sock.is_self_connect(addr) {
                    run.retries.push_back((flight.port, flight.tryno));
                } else {
                    flight.sock.close_with_reset();
                    self.decided(run, flight.port, flight.tryno, PortState::Open, Reason::SynAck, Some(rtt));
                }
            }
            Ok(Some(errno)) => {
                self.free.push(slot);
                self.in_flight -= 1;
                let rtt = flight.sent.elapsed();
                let run = &mut active[flight.job];
                run.outstanding -= 1;
                self.failed(run, flight.sock, flight.port, flight.tryno, errno, Some(rtt));
            }
            Err(e) => return Err(Error::Engine(e)),
        }
        Ok(())
    }

    /// Probes past their job's timeout: retransmit or decide "filtered".
    fn expire(&mut self, active: &mut [JobRun]) {
        let now = Instant::now();
        for (index, run) in active.iter_mut().enumerate() {
            while let Some(&(slot, generation)) = run.fifo.front() {
                let live = self.slots[slot]
                    .as_ref()
                    .is_some_and(|flight| flight.generation == generation && flight.job == index);
                if !live {
                    run.fifo.pop_front();
                    continue;
                }
                let due = self.slots[slot].as_ref().map_or(now, |flight| flight.sent + run.timeout);
                if due > now {
                    break;
                }
                run.fifo.pop_front();
                let Some(flight) = self.slots[slot].take() else { continue };
                self.free.push(slot);
                self.in_flight -= 1;
                run.outstanding -= 1;
                // a socket still connecting is closed, never reused
                drop(flight.sock);
                // silence is not congestion: the slot is free, the window may grow
                self.congestion.on_response();
                if flight.tryno < connect_retries(self.timing.max_retries, run.max_ok_try) && !run.timed_out {
                    run.retries.push_back((flight.port, flight.tryno + 1));
                } else if run.job.kind == Kind::Ports {
                    self.shared.done.fetch_add(1, Ordering::Relaxed);
                    let service = self.service(flight.port);
                    run.results.push(Port {
                        number: flight.port,
                        transport: Transport::Tcp,
                        state: PortState::Filtered,
                        reason: Reason::NoResponse,
                        reason_ttl: 0,
                        service,
                    });
                }
            }
        }
    }
}
