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
//! `--max-retries`); what is still undecided is `filtered` (`no-response`). The probe timeout
//! is nmap's until the host has answered `timing::MEASURED_FROM` times; then it is the host's
//! own (`RttEstimator::measured_timeout`: at least twice its slowest answer), since a SYN's
//! answer comes from the target's kernel. A late answer still counts, and a round that gets
//! one earns the host another round, so a short timeout costs packets, not accuracy.
//!
//! Rate: `--max-rate` is a hard cap (a token bucket refilled continuously, bursts of a
//! hundredth of a second's worth); `--min-rate` a floor; without either the template's rate, halved when
//! a retransmission round is answered (the first probes were lost) and regrown by a quarter
//! after every first round (`timing::RateControl`). The rules of rounds, deadlines and pacing
//! are pure functions of the time passed in (`rounds.rs`); this worker reads the clock and
//! does the I/O.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use portolan_model::{Port, PortState, Reason, Transport};

use crate::jobs::{Job, Kind, Msg, Part, Shared, TableNames};
use crate::packet::{self, Answer, Cookie, ICMP_QUERY_LEN, SYN_LEN};
use crate::raw::{
    ArpSock, Link, RawSock, RxBatch, RxRing, Transmitter, TxBatch, lost_packet, on_link, poll_readable,
    reserve_port, source_for,
};
use crate::rounds::{RoundEnd, Rounds};
use crate::timing::{RateControl, RateStep, RttEstimator, Timing, TokenBucket};
use crate::udp::UdpSock;
use crate::{Error, Result};

/// Port probes of the hosts in progress at most (what they cost: about 16 bytes a port).
const PROBES_IN_PROGRESS: usize = 4 << 20;

/// Threads that send SYNs, at most (no more than the CPUs).
const TX_THREADS: usize = 2;

/// Hosts with this many ports or more find an answer's port in a table of every port number
/// (256 KiB) instead of by binary search.
const DENSE_INDEX: usize = 4096;

/// Hosts with this many ports or more have their report made on two threads.
const PART_SPLIT: usize = 8192;

/// Host discovery probes, as a raw discovery job's `ports`: ICMP echo request.
pub(crate) const PING_ECHO: u16 = 0;
/// TCP SYN to port 443.
pub(crate) const PING_SYN: u16 = 1;
/// TCP ACK to port 80.
pub(crate) const PING_ACK: u16 = 2;
/// ICMP timestamp request (IPv4).
pub(crate) const PING_TIMESTAMP: u16 = 3;
/// ARP request (IPv4 targets on a directly connected Ethernet).
pub(crate) const PING_ARP: u16 = 4;
/// Neighbour solicitation (IPv6 targets on a directly connected Ethernet).
pub(crate) const PING_ND: u16 = 5;

/// Opens a raw TCP socket to see whether SYN scanning is possible here.
pub fn privileged(v6: bool) -> bool {
    RawSock::open(v6, libc::IPPROTO_TCP).is_ok()
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
    /// Answers to the port probes; `None` while `ring` reads them instead.
    tcp: Option<RawSock>,
    icmp: RawSock,
    /// Sends the port probes (SYNs) in batches from a thread of its own.
    tx: Transmitter,
    /// Port probes waiting for the next batch.
    pending: TxBatch,
    /// Holds the source port for the scan's lifetime.
    _reserved: socket2::Socket,
    /// IPv4: the receive ring of a large sweep.
    ring: Ring,
}

impl Drop for Family {
    fn drop(&mut self) {
        if let Ring::On(ring) | Ring::Leaving(ring, _) = std::mem::replace(&mut self.ring, Ring::Done) {
            ring.close_in_background();
        }
    }
}

/// The receive ring ([`RxRing`]) of a large IPv4 sweep. It takes over from the raw TCP socket
/// once the scan has [`RING_FROM`] port probes (it is made on a thread of its own meanwhile,
/// the raw socket reading until it is ready), and gives way to the raw socket again when no
/// host in flight has a probe to send at once (the sweep is out): the retransmission rounds
/// get few answers, and the ring's closing then overlaps them and the report.
enum Ring {
    /// Not wanted (yet): the scan is small so far.
    Unused,
    /// Being made on a thread of its own.
    Coming(mpsc::Receiver<std::io::Result<RxRing>>),
    /// Reading every answer; the raw socket is closed.
    On(RxRing),
    /// The raw socket is back; the ring is still read until then, for what reached it alone,
    /// and then closed on a thread of its own.
    Leaving(RxRing, Instant),
    /// Done with, or could not be made: the raw socket reads.
    Done,
}

/// Port probes (IPv4 TCP) from which a scan reads its answers from a ring: enough that the
/// ring's making and closing (a grace period each, 10 to 40 ms, on threads of their own) are
/// hidden behind the sweep.
const RING_FROM: usize = 20_000;

/// How long the ring is still read once the raw socket is back: its last block reaches the
/// reader by the kernel's block timer, 1 ms (measured here: 0.1-1.0 ms; a kernel whose timer
/// counts in jiffies may take longer, and an answer left in the ring is then asked for again
/// in the next round: it costs a round, not a result).
const RING_LINGER: Duration = Duration::from_millis(4);

/// What `SynWorker::send_one` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Sent a probe.
    Sent,
    /// Nothing left to send in this round.
    Idle,
    /// The next port may be sent again from then on.
    NotBefore(Instant),
}

/// Outcome codes kept per port.
const UNDECIDED: u8 = 0;

struct SynJob {
    job: Job,
    src: IpAddr,
    /// (port, index into `job.ports`), sorted by port, for answers.
    index: Vec<(u16, u32)>,
    /// For a host with many ports: 1 + index into `job.ports` of every port number (0: not
    /// probed), so that an answer finds its port without a search.
    dense: Vec<u32>,
    /// Outcome per port: UNDECIDED, or 1 + index into `outcomes`.
    state: Vec<u8>,
    ttl: Vec<u8>,
    /// Milliseconds since the host's start (`Rounds::probe_sent`) of the last probe of each
    /// port.
    sent_ms: Vec<u32>,
    /// The round of the last probe of each port.
    probe_round: Vec<u8>,
    /// Its rounds, deadlines and pacing.
    rounds: Rounds,
    /// Next index of the current pass.
    cursor: usize,
    rtt: RttEstimator,
    timeout: Duration,
    up: Option<Reason>,
    /// Discovery: an ICMP error said the host is unreachable.
    unreachable: bool,
    /// Ports not decided yet.
    left: usize,
    /// Discovery of a target on a directly connected link: ARP or neighbour discovery.
    link: Option<Link>,
    /// Its slot in the worker's slab.
    slot: usize,
    /// When its entry in the deadline heap is due, while it waits there; entries at any other
    /// time are stale and skipped (a wait that an answer shortened gets a new, sooner entry).
    wake: Option<Instant>,
}

impl SynJob {
    fn index_of(&self, port: u16) -> Option<usize> {
        if !self.dense.is_empty() {
            return match self.dense.get(usize::from(port)) {
                Some(&i) if i > 0 => Some(i as usize - 1),
                _ => None,
            };
        }
        self.index.binary_search_by_key(&port, |e| e.0).ok().map(|i| self.index[i].1 as usize)
    }

    fn undecided(&self) -> usize {
        self.left
    }
}

pub(crate) struct SynWorker {
    timing: Timing,
    shared: Arc<Shared>,
    names: Option<Arc<portolan_registry::Ranking>>,
    cookie: Cookie,
    v4: Option<Family>,
    v6: Option<Family>,
    /// Source ports per family.
    sport: [u16; 2],
    rate: RateControl,
    bucket: TokenBucket,
    /// Decided outcomes other than open and closed (ICMP reasons), interned.
    reasons: Vec<(PortState, Reason)>,
    /// Hosts in flight by (address, UDP job).
    by_addr: HashMap<(IpAddr, bool), usize>,
    /// UDP sockets: IPv4, IPv6.
    udp: [Option<UdpSock>; 2],
    /// ARP, for discovery on a directly connected Ethernet.
    arp: Option<ArpSock>,
    buf: Vec<u8>,
    /// Buffers for reading answers from the raw sockets in batches.
    rx: RxBatch,
    /// Hosts in flight at most.
    pub(crate) max_jobs: usize,
    /// IPv4 TCP port probes of the hosts started so far (for [`RING_FROM`]).
    v4_probes: usize,
    /// Slots of waiting hosts whose timeout shrank: their deadline may come sooner.
    sooner: Vec<usize>,
}

impl SynWorker {
    /// Hosts a SYN scan of `ports` ports a host keeps in flight: many when each has few
    /// ports (a sweep of one port over a /16 waits on timeouts, not on sending).
    pub(crate) fn hosts_in_flight(ports: usize) -> usize {
        (PROBES_IN_PROGRESS / ports.max(1)).clamp(64, 65_536)
    }

    /// A worker for these timings. The cookie's key comes from the kernel, never from
    /// `--seed`: a repeatable port order must not make the sequence numbers predictable.
    pub(crate) fn new(
        timing: Timing,
        names: Option<Arc<portolan_registry::Ranking>>,
        shared: Arc<Shared>,
    ) -> SynWorker {
        let rate = RateControl::new(&timing);
        let cookie = Cookie::random();
        SynWorker {
            bucket: TokenBucket::new(rate.rate()),
            timing,
            shared,
            names,
            cookie,
            v4: None,
            v6: None,
            sport: [0, 0],
            rate,
            reasons: vec![(PortState::Open, Reason::SynAck), (PortState::Closed, Reason::Reset)],
            by_addr: HashMap::new(),
            udp: [None, None],
            arp: None,
            buf: vec![0u8; 2048],
            rx: RxBatch::default(),
            max_jobs: 64,
            v4_probes: 0,
            sooner: Vec::new(),
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
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(TX_THREADS);
        let tx = Transmitter::start(&tcp, v6, threads).map_err(Error::Engine)?;
        let family = Family {
            tcp: Some(tcp),
            icmp,
            tx,
            pending: TxBatch::default(),
            _reserved: reserved,
            ring: Ring::Unused,
        };
        self.sport[usize::from(v6)] = port;
        if v6 {
            self.v6 = Some(family);
        } else {
            self.v4 = Some(family);
        }
        Ok(())
    }

    fn udp_family(&mut self, v6: bool) -> Result<()> {
        let slot = &mut self.udp[usize::from(v6)];
        if slot.is_none() {
            *slot = Some(UdpSock::open(v6).map_err(Error::Engine)?);
        }
        Ok(())
    }

    /// Changes the rate as a host's round asks; a new rate starts a new bucket.
    fn step_rate(&mut self, step: RateStep) {
        if let Some(rate) = self.rate.step(step) {
            self.bucket = TokenBucket::new(rate);
        }
    }

    fn start(&mut self, mut job: Job) -> Result<SynJob> {
        let v6 = job.addr.is_ipv6();
        if job.transport == Transport::Udp {
            self.udp_family(v6)?;
        } else {
            self.family(v6)?;
            if !v6 && job.kind == Kind::Ports {
                self.v4_probes += job.ports.len();
                if self.v4_probes >= RING_FROM {
                    self.ring_up();
                }
            }
        }
        let src = source_for(job.addr).map_err(|_| Error::NoRoute { addr: job.addr })?;
        let mut link = None;
        if job.kind == Kind::Discovery && job.ports.is_empty() {
            // nmap's default discovery as root: ARP or neighbour discovery on a directly
            // connected Ethernet; elsewhere echo, SYN to 443, ACK to 80, timestamp (IPv4)
            link = on_link(job.addr);
            if link.is_some() && !v6 && self.arp.is_none() {
                self.arp = Some(ArpSock::open().map_err(Error::Engine)?);
            }
            job.ports = match (link.is_some(), v6) {
                (true, false) => vec![PING_ARP],
                (true, true) => vec![PING_ND],
                (false, true) => vec![PING_ECHO, PING_SYN, PING_ACK],
                (false, false) => vec![PING_ECHO, PING_SYN, PING_ACK, PING_TIMESTAMP],
            };
        }
        let n = job.ports.len();
        let mut index: Vec<(u16, u32)> = job.ports.iter().enumerate().map(|(i, &p)| (p, i as u32)).collect();
        index.sort_unstable();
        let mut dense = Vec::new();
        if n >= DENSE_INDEX {
            dense = vec![0u32; 1 << 16];
            for &(p, i) in &index {
                dense[usize::from(p)] = i + 1;
            }
        }
        Ok(SynJob {
            src,
            index,
            dense,
            state: vec![UNDECIDED; n],
            ttl: vec![0; n],
            sent_ms: vec![0; n],
            probe_round: vec![0; n],
            rounds: Rounds::new(Instant::now(), job.transport == Transport::Tcp, job.kind == Kind::Ports),
            cursor: 0,
            rtt: RttEstimator::default(),
            timeout: self.timing.initial_rtt,
            up: None,
            unreachable: false,
            left: n,
            link,
            slot: 0,
            wake: None,
            job,
        })
    }

    /// A discovery answer: the host is up; true (the job is finished).
    fn ping_answer(&mut self, host: &mut SynJob, code: u16, reason: Reason, ttl: u8, now: Instant) -> bool {
        if host.up.is_none() {
            if let Some(i) = host.index_of(code) {
                let sent = host.rounds.sent_at(host.sent_ms[i]);
                host.rtt.sample(now.saturating_duration_since(sent));
                host.ttl[i] = ttl;
            }
            host.up = Some(reason);
        }
        true
    }

    /// Records an answer for port index `i` of `host`; true when that finishes the host.
    fn decide(
        &mut self,
        host: &mut SynJob,
        i: usize,
        outcome: (PortState, Reason),
        ttl: u8,
        now: Instant,
    ) -> bool {
        if host.state[i] != UNDECIDED {
            return false;
        }
        host.left -= 1;
        let code = match self.reasons.iter().position(|known| *known == outcome) {
            Some(code) => code,
            None => {
                self.reasons.push(outcome.clone());
                self.reasons.len() - 1
            }
        };
        host.state[i] = (code + 1).min(255) as u8;
        host.ttl[i] = ttl;
        let sent = host.rounds.sent_at(host.sent_ms[i]);
        // a SYN sent again may be answered for an earlier copy: no RTT from it (Karn's rule)
        if host.rounds.rtt_sample(host.probe_round[i]) {
            host.rtt.sample(now.saturating_duration_since(sent));
        }
        // SYN answers come from the target's kernel; a UDP reply may come from a slow service
        let before = host.timeout;
        host.timeout = match host.job.transport {
            Transport::Tcp => host.rtt.measured_timeout(&self.timing),
            _ => host.rtt.timeout(&self.timing),
        };
        if host.timeout < before && host.wake.is_some() {
            // its wait in the heap was reckoned with the longer timeout
            self.sooner.push(host.slot);
        }
        host.rounds.answered(host.probe_round[i], outcome.0 == PortState::Open);
        match host.job.kind {
            Kind::Discovery => {
                if matches!(outcome.0, PortState::Open | PortState::Closed) && host.up.is_none() {
                    host.up = Some(if outcome.0 == PortState::Open { Reason::SynAck } else { Reason::Reset });
                } else if host.up.is_none() {
                    host.unreachable = true;
                }
            }
            Kind::Ports => {
                self.shared.done.fetch_add(1, Ordering::Relaxed);
                if outcome.0 == PortState::Open {
                    self.shared.open.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        host.left == 0 || (host.job.kind == Kind::Discovery && (host.up.is_some() || host.unreachable))
    }

    /// Reads every waiting answer; returns the slots of hosts that are now fully decided.
    fn receive(&mut self, hosts: &mut [Option<SynJob>]) -> Result<Vec<usize>> {
        let now = Instant::now();
        let mut finished = Vec::new();
        // a ring that is ready takes over: the raw socket is read to the end (what came after
        // the ring's start is in both, and a second answer changes nothing) and closed
        let ring_came = self.ring_ready();
        let mut rx = std::mem::take(&mut self.rx);
        for v6 in [false, true] {
            for icmp in [true, false] {
                let batches = if ring_came && !v6 && !icmp { usize::MAX } else { 64 };
                for _ in 0..batches {
                    let family = if v6 { self.v6.as_ref() } else { self.v4.as_ref() };
                    let Some(family) = family else { break };
                    let sock = if icmp {
                        &family.icmp
                    } else {
                        let Some(tcp) = family.tcp.as_ref() else { break };
                        tcp
                    };
                    let n = match sock.recv_batch(&mut rx) {
                        Ok(n) => n,
                        Err(e) => {
                            self.rx = rx;
                            return Err(Error::Engine(e));
                        }
                    };
                    for k in 0..n {
                        let (pkt, from) = rx.get(k);
                        if let Some(from) = from {
                            self.answer(v6, icmp, pkt, from, hosts, now, &mut finished);
                        }
                    }
                    if n < crate::raw::BATCH {
                        break;
                    }
                }
            }
            if !v6 {
                self.receive_ring(hosts, &mut finished);
            }
            self.receive_udp(v6, hosts, now, &mut finished)?;
        }
        self.rx = rx;
        if ring_came && let Some(family) = self.v4.as_mut() {
            family.tcp = None;
        }
        for _ in 0..4096 {
            let Some(from) = self.arp.as_ref().and_then(ArpSock::reply) else { break };
            let Some(&slot) = self.by_addr.get(&(from, false)) else { continue };
            let Some(host) = hosts[slot].as_mut() else { continue };
            if host.job.kind == Kind::Discovery
                && host.link.is_some()
                && self.ping_answer(host, PING_ARP, Reason::ArpResponse, 0, now)
            {
                finished.push(slot);
            }
        }
        Ok(finished)
    }

    /// Starts making the IPv4 receive ring on a thread of its own, once.
    fn ring_up(&mut self) {
        let port = self.sport[0];
        let Some(family) = self.v4.as_mut() else { return };
        if !matches!(family.ring, Ring::Unused) {
            return;
        }
        let (tx, rx) = mpsc::sync_channel(1);
        let made = std::thread::Builder::new().name("ring-open".into()).spawn(move || {
            // a scan that ended meanwhile drops the ring here, off its path
            let _ = tx.send(RxRing::open(port));
        });
        family.ring = if made.is_ok() { Ring::Coming(rx) } else { Ring::Done };
    }

    /// Whether the ring has just become ready (the caller then drains and closes the raw
    /// socket). A ring that could not be made leaves the raw socket in place.
    fn ring_ready(&mut self) -> bool {
        let Some(family) = self.v4.as_mut() else { return false };
        let Ring::Coming(rx) = &family.ring else { return false };
        match rx.try_recv() {
            Ok(Ok(ring)) => {
                family.ring = Ring::On(ring);
                true
            }
            Err(mpsc::TryRecvError::Empty) => false,
            Ok(Err(_)) | Err(mpsc::TryRecvError::Disconnected) => {
                family.ring = Ring::Done;
                false
            }
        }
    }

    /// Hands the answers back to a raw socket: the first rounds are out.
    fn ring_down(&mut self) {
        let port = self.sport[0];
        let Some(family) = self.v4.as_mut() else { return };
        match std::mem::replace(&mut family.ring, Ring::Done) {
            Ring::On(ring) => {
                let raw = RawSock::open(false, libc::IPPROTO_TCP).and_then(|sock| {
                    sock.filter_tcp_dport(false, port)?;
                    Ok(sock)
                });
                match raw {
                    Ok(raw) => {
                        family.tcp = Some(raw);
                        family.ring = Ring::Leaving(ring, Instant::now() + RING_LINGER);
                    }
                    // no raw socket: the ring stays
                    Err(_) => family.ring = Ring::On(ring),
                }
            }
            // dropping the channel leaves a ring still being made to its thread, which closes it
            Ring::Coming(_) => {}
            other => family.ring = other,
        }
    }

    /// Reads the answers the ring holds, each with the time it arrived.
    fn receive_ring(&mut self, hosts: &mut [Option<SynJob>], finished: &mut Vec<usize>) {
        let Some(family) = self.v4.as_mut() else { return };
        let mut state = std::mem::replace(&mut family.ring, Ring::Done);
        if let Ring::On(ring) | Ring::Leaving(ring, _) = &mut state {
            let now = Instant::now();
            let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            let n = ring.drain(64, |pkt, arrived| {
                // the kernel's arrival time, on the monotonic clock; a clock step gives "now"
                let ago = wall.saturating_sub(arrived);
                let at = if ago < Duration::from_secs(1) { now.checked_sub(ago).unwrap_or(now) } else { now };
                if let Some(&[a, b, c, d]) = pkt.get(12..16) {
                    self.answer(false, false, pkt, IpAddr::from([a, b, c, d]), hosts, at, finished);
                }
            });
            self.shared.ring.fetch_add(n as u64, Ordering::Relaxed);
        }
        let state = match state {
            Ring::Leaving(ring, until) if Instant::now() >= until => {
                ring.close_in_background();
                Ring::Done
            }
            state => state,
        };
        if let Some(family) = self.v4.as_mut() {
            family.ring = state;
        }
    }

    /// Handles one packet read from a raw socket of the family `v6` (its ICMP or its TCP
    /// socket), sent by `from`.
    #[allow(clippy::too_many_arguments)]
    fn answer(
        &mut self,
        v6: bool,
        icmp: bool,
        pkt: &[u8],
        from: IpAddr,
        hosts: &mut [Option<SynJob>],
        now: Instant,
        finished: &mut Vec<usize>,
    ) {
        let sport = self.sport[usize::from(v6)];
        if icmp
            && v6
            && let Some(target) = packet::parse_neighbour_advert(pkt)
        {
            // a neighbour advertisement for a target being discovered
            let Some(&slot) = self.by_addr.get(&(target, false)) else { return };
            let Some(host) = hosts[slot].as_mut() else { return };
            if host.job.kind == Kind::Discovery
                && host.link.is_some()
                && self.ping_answer(host, PING_ND, Reason::NdResponse, 0, now)
            {
                finished.push(slot);
            }
            return;
        }
        if icmp && let Some((from, kind, id)) = packet::parse_icmp_reply(v6, from, pkt) {
            // an echo or timestamp reply to a discovery probe
            let Some(&slot) = self.by_addr.get(&(from, false)) else { return };
            let Some(host) = hosts[slot].as_mut() else { return };
            let (code, reason) = if kind == 14 {
                (PING_TIMESTAMP, Reason::TimestampReply)
            } else {
                (PING_ECHO, Reason::EchoReply)
            };
            if host.job.kind == Kind::Discovery
                && id == self.cookie.of(host.src, from, 0, code)
                && self.ping_answer(host, code, reason, 0, now)
            {
                finished.push(slot);
            }
            return;
        }
        if icmp {
            let e = if v6 { packet::parse_icmp_v6(from, pkt) } else { packet::parse_icmp_v4(pkt) };
            let Some(e) = e else { return };
            let Some(&slot) = self.by_addr.get(&(e.target, false)) else { return };
            let Some(host) = hosts[slot].as_mut() else { return };
            if e.sport != sport || e.seq != self.cookie.of(host.src, e.target, sport, e.dport) {
                return;
            }
            if let Some(i) = host.index_of(e.dport) {
                let reason = icmp_reason(v6, e.kind, e.code);
                if self.decide(host, i, (PortState::Filtered, reason), 0, now) {
                    finished.push(slot);
                }
            }
        } else {
            let reply = if v6 { packet::parse_tcp_v6(from, pkt) } else { packet::parse_tcp_v4(pkt) };
            let Some(reply) = reply else { return };
            let Some(&slot) = self.by_addr.get(&(reply.from, false)) else { return };
            let Some(host) = hosts[slot].as_mut() else { return };
            if host.job.kind == Kind::Discovery {
                // a SYN-ACK or reset from 443 to the SYN, or a reset from 80 to the ACK
                let syn = reply.sport == 443
                    && reply.ack == self.cookie.of(host.src, reply.from, sport, 443).wrapping_add(1);
                let ack = reply.sport == 80
                    && reply.answer == Answer::Reset
                    && reply.seq == self.cookie.of(host.src, reply.from, sport, 80);
                if reply.dport == sport && (syn || ack) {
                    let reason = if reply.answer == Answer::SynAck { Reason::SynAck } else { Reason::Reset };
                    let code = if syn { PING_SYN } else { PING_ACK };
                    if self.ping_answer(host, code, reason, reply.ttl, now) {
                        finished.push(slot);
                    }
                }
                return;
            }
            if reply.dport != sport
                || reply.ack != self.cookie.of(host.src, reply.from, sport, reply.sport).wrapping_add(1)
            {
                return;
            }
            if let Some(i) = host.index_of(reply.sport) {
                let outcome = match reply.answer {
                    Answer::SynAck => (PortState::Open, Reason::SynAck),
                    Answer::Reset => (PortState::Closed, Reason::Reset),
                };
                if self.decide(host, i, outcome, reply.ttl, now) {
                    finished.push(slot);
                }
            }
        }
    }

    /// Reads the UDP socket of one family: replies (open) and queued ICMP errors.
    fn receive_udp(
        &mut self,
        v6: bool,
        hosts: &mut [Option<SynJob>],
        now: Instant,
        finished: &mut Vec<usize>,
    ) -> Result<()> {
        for _ in 0..4096 {
            let Some(sock) = self.udp[usize::from(v6)].as_ref() else { return Ok(()) };
            let Some((_, from)) = sock.recv_from(&mut self.buf).map_err(Error::Engine)? else { break };
            let Some(&slot) = self.by_addr.get(&(from.ip(), true)) else { continue };
            let Some(host) = hosts[slot].as_mut() else { continue };
            if let Some(i) = host.index_of(from.port())
                && self.decide(host, i, (PortState::Open, Reason::UdpResponse), 0, now)
            {
                finished.push(slot);
            }
        }
        for _ in 0..4096 {
            let Some(sock) = self.udp[usize::from(v6)].as_ref() else { return Ok(()) };
            let Some(e) = sock.recv_error() else { break };
            let Some(reporter) = e.reporter else { continue };
            let Some(&slot) = self.by_addr.get(&(e.target.ip(), true)) else { continue };
            let Some(host) = hosts[slot].as_mut() else { continue };
            let unreachable = if v6 { e.kind == 1 } else { e.kind == 3 };
            if !unreachable {
                continue;
            }
            let port_unreach = if v6 { e.code == 4 } else { e.code == 3 };
            // port unreachable from the target itself: closed; any other unreachable (or one
            // from a router on the way): filtered, as nmap reads them
            let outcome = if port_unreach && reporter == e.target.ip() {
                (PortState::Closed, Reason::PortUnreach)
            } else {
                (PortState::Filtered, icmp_reason(v6, e.kind, e.code))
            };
            if let Some(i) = host.index_of(e.target.port())
                && self.decide(host, i, outcome, 0, now)
            {
                finished.push(slot);
            }
        }
        Ok(())
    }

    /// Sends the next probe of `host`, or says why it cannot yet.
    fn send_one(&mut self, host: &mut SynJob) -> Result<Step> {
        loop {
            while host.cursor < host.job.ports.len() && host.state[host.cursor] != UNDECIDED {
                host.cursor += 1;
            }
            if host.cursor < host.job.ports.len() {
                break;
            }
            if host.rounds.next_pass() {
                // a doubled round: its second pass
                host.cursor = 0;
                continue;
            }
            // the round's last probes were answered before their turn came
            host.rounds.nothing_left(Instant::now());
            return Ok(Step::Idle);
        }
        if let Some(due) = Self::port_due(host)
            && due > Instant::now()
        {
            return Ok(Step::NotBefore(due));
        }
        let i = host.cursor;
        host.cursor += 1;
        match self.transmit(host, host.job.ports[i]) {
            Ok(()) => {}
            // a full socket buffer, a neighbour not resolved yet, or a local firewall that
            // dropped the packet (EPERM): lost like any other probe; the round will retry
            Err(e) if lost_packet(&e) => {}
            Err(e) => return Err(Error::Engine(e)),
        }
        host.sent_ms[i] = host.rounds.probe_sent(Instant::now());
        host.probe_round[i] = host.rounds.round();
        self.shared.sent.fetch_add(1, Ordering::Relaxed);
        if host.rounds.round() > 0 {
            self.shared.retrans.fetch_add(1, Ordering::Relaxed);
        }
        if host.cursor >= host.job.ports.len() && host.rounds.last_pass() {
            host.rounds.last_probe_sent(Instant::now());
        }
        Ok(Step::Sent)
    }

    /// Sends one probe of `host`: a SYN, a UDP datagram, or a discovery probe.
    fn transmit(&mut self, host: &SynJob, port: u16) -> std::io::Result<()> {
        let v6 = host.job.addr.is_ipv6();
        let dst = host.job.addr;
        if host.job.transport == Transport::Udp {
            let Some(sock) = self.udp[usize::from(v6)].as_ref() else { return Ok(()) };
            let to = std::net::SocketAddr::new(dst, port);
            // a send fails with the pending ICMP error of an earlier probe (which is then
            // cleared, its details stay in the error queue) and is not sent: send again
            let mut sent = sock.send_to(crate::udp::payload(port), to);
            for _ in 0..4 {
                match &sent {
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(
                                libc::ECONNREFUSED
                                    | libc::EHOSTUNREACH
                                    | libc::ENETUNREACH
                                    | libc::EACCES
                                    | libc::EPROTO
                            )
                        ) =>
                    {
                        sent = sock.send_to(crate::udp::payload(port), to);
                    }
                    _ => break,
                }
            }
            return sent;
        }
        let cookie = self.cookie;
        let arp = self.arp.as_ref();
        let sport = self.sport[usize::from(v6)];
        let Some(family) = (if v6 { self.v6.as_mut() } else { self.v4.as_mut() }) else { return Ok(()) };
        let mut seg = [0u8; SYN_LEN];
        if host.job.kind == Kind::Discovery {
            return match port {
                PING_SYN | PING_ACK => {
                    // with the port probes, from the sender threads
                    if port == PING_SYN {
                        packet::write_syn(
                            &mut seg,
                            host.src,
                            dst,
                            sport,
                            443,
                            cookie.of(host.src, dst, sport, 443),
                        );
                    } else {
                        packet::write_ack(
                            &mut seg,
                            host.src,
                            dst,
                            sport,
                            80,
                            cookie.of(host.src, dst, sport, 80),
                        );
                    }
                    family.pending.push(seg, host.src, dst);
                    Ok(())
                }
                PING_ARP | PING_ND => match (host.link.as_ref(), dst) {
                    (Some(link), IpAddr::V4(target)) => arp.map_or(Ok(()), |arp| arp.request(link, target)),
                    (Some(link), IpAddr::V6(target)) => {
                        crate::raw::neighbour_solicit(family.icmp.fd(), link, target)
                    }
                    (None, _) => Ok(()),
                },
                code => {
                    let kind = if code == PING_TIMESTAMP { packet::TIMESTAMP } else { packet::ECHO };
                    let mut query = [0u8; ICMP_QUERY_LEN];
                    let n = packet::write_icmp_query(&mut query, v6, kind, cookie.of(host.src, dst, 0, code));
                    family.icmp.send_to(&query[..n], dst)
                }
            };
        }
        packet::write_syn(&mut seg, host.src, dst, sport, port, cookie.of(host.src, dst, sport, port));
        family.pending.push(seg, host.src, dst);
        if family.pending.len() >= crate::raw::BATCH {
            family.tx.send(std::mem::take(&mut family.pending))?;
        }
        Ok(())
    }

    /// Hands the port probes waiting in batches to the sender threads.
    fn flush(&mut self) -> Result<()> {
        for family in [self.v4.as_mut(), self.v6.as_mut()].into_iter().flatten() {
            if !family.pending.is_empty() {
                family.tx.send(std::mem::take(&mut family.pending)).map_err(Error::Engine)?;
            }
        }
        Ok(())
    }

    fn part(&self, host: SynJob) -> Part {
        let srtt = host.rtt.srtt();
        if host.job.kind == Kind::Discovery {
            return Part { host: host.job.host, kind: Kind::Discovery, ports: Vec::new(), up: host.up, srtt };
        }
        let transport = host.job.transport;
        // no answer: filtered (TCP), open|filtered (UDP)
        let silent = if transport == Transport::Udp { PortState::OpenFiltered } else { PortState::Filtered };
        let names = self.names.as_ref();
        let reasons = &self.reasons;
        // in port order (the probes went out shuffled): the host's ports need no sort then
        let make = |index: &[(u16, u32)]| -> Vec<Port> {
            // each half its own shared `unknown`: no counter written from both threads
            let table = names.map(TableNames::new);
            index
                .iter()
                .map(|&(port, i)| {
                    let i = i as usize;
                    let (state, reason) = match host.state[i] {
                        UNDECIDED => (silent, Reason::NoResponse),
                        code => reasons[usize::from(code) - 1].clone(),
                    };
                    Port {
                        number: port,
                        transport,
                        state,
                        reason,
                        reason_ttl: host.ttl[i],
                        service: table.as_ref().map(|names| names.of(port, transport)),
                    }
                })
                .collect()
        };
        // a full-range host is reported as its scan ends, when the other CPU is idle: each
        // port's service name is an allocation, so the two halves are made side by side
        let ports = if host.index.len() >= PART_SPLIT {
            let (low, high) = host.index.split_at(host.index.len() / 2);
            std::thread::scope(|scope| {
                // no thread to be had: this one makes both halves
                let second = std::thread::Builder::new().spawn_scoped(scope, || make(high)).ok();
                let mut ports = make(low);
                ports.extend(second.and_then(|handle| handle.join().ok()).unwrap_or_else(|| make(high)));
                ports
            })
        } else {
            make(&host.index)
        };
        Part { host: host.job.host, kind: Kind::Ports, ports, up: None, srtt }
    }

    /// When the port at the cursor may go again (`Rounds::port_due`); `None`: now.
    fn port_due(host: &SynJob) -> Option<Instant> {
        let sent = host.sent_ms.get(host.cursor)?;
        host.rounds.port_due(*sent, host.timeout)
    }

    /// When a waiting host is due, reckoned with its timeout as it is now: the end of its
    /// round, or its next port's time. `None` for a wait the timeout does not set (a UDP gap).
    fn due(&self, host: &SynJob) -> Option<Instant> {
        if host.rounds.round_out() { self.round_end(host) } else { Self::port_due(host) }
    }

    /// When a round whose last probe went out is over (`Rounds::round_end`).
    fn round_end(&self, host: &SynJob) -> Option<Instant> {
        host.rounds.round_end(host.timeout, self.timing.max_retries)
    }

    /// Whether a job is finished at `now`; moves it to its next round when its round is over
    /// and another follows (`Rounds::end_round`).
    fn advance(&mut self, host: &mut SynJob, now: Instant) -> bool {
        if host.job.kind == Kind::Discovery && (host.up.is_some() || host.unreachable) {
            return true;
        }
        if host.undecided() == 0 {
            return true;
        }
        match host.rounds.end_round(now, host.timeout, &self.timing) {
            RoundEnd::NotYet => false,
            RoundEnd::Next(step) => {
                self.step_rate(step);
                host.cursor = 0;
                false
            }
            RoundEnd::Last(step) => {
                self.step_rate(step);
                true
            }
        }
    }

    pub(crate) fn run(&mut self, jobs_rx: mpsc::Receiver<Job>, out: &mpsc::Sender<Msg>) -> Result<()> {
        // hosts in flight live in a slab; `ready` holds the ones with probes left in their
        // round, `waiting` the ones whose round is out, by deadline. Entries carry the slot's
        // generation so that a host finished early is skipped lazily.
        let mut slab: Vec<Option<SynJob>> = Vec::new();
        let mut generations: Vec<u32> = Vec::new();
        let mut free: Vec<usize> = Vec::new();
        let mut ready: VecDeque<(usize, u32)> = VecDeque::new();
        let mut waiting: BinaryHeap<Reverse<(Instant, usize, u32)>> = BinaryHeap::new();
        let mut live = 0usize;
        let mut closed = false;
        let send_part = |worker: &SynWorker, host: SynJob| {
            out.send(Msg::Part(worker.part(host)))
                .map_err(|_| Error::Engine(std::io::Error::other("the scan coordinator stopped")))
        };
        loop {
            if self.shared.stop.load(Ordering::Relaxed) {
                // report what was decided for the hosts in progress
                for host in slab.iter_mut().filter_map(Option::take) {
                    let _ = out.send(Msg::Part(self.part(host)));
                }
                return Ok(());
            }
            // take new hosts
            while live < self.max_jobs && !closed {
                let got = if live == 0 {
                    match jobs_rx.recv_timeout(Duration::from_millis(50)) {
                        Ok(job) => Some(job),
                        Err(mpsc::RecvTimeoutError::Timeout) => None,
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            closed = true;
                            None
                        }
                    }
                } else {
                    match jobs_rx.try_recv() {
                        Ok(job) => Some(job),
                        Err(mpsc::TryRecvError::Empty) => None,
                        Err(mpsc::TryRecvError::Disconnected) => {
                            closed = true;
                            None
                        }
                    }
                };
                let Some(job) = got else { break };
                let mut host = self.start(job)?;
                let slot = free.pop().unwrap_or_else(|| {
                    slab.push(None);
                    generations.push(0);
                    slab.len() - 1
                });
                generations[slot] = generations[slot].wrapping_add(1);
                host.slot = slot;
                self.by_addr.insert((host.job.addr, host.job.transport == Transport::Udp), slot);
                slab[slot] = Some(host);
                ready.push_back((slot, generations[slot]));
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
            // the rate cap, not a lack of work, ended the sending: sleep until a batch is due
            let mut capped = false;
            for _ in 0..512 {
                let Some(&(slot, generation)) = ready.front() else { break };
                if generations[slot] != generation || slab[slot].is_none() {
                    ready.pop_front();
                    continue;
                }
                if let Some(host) = slab[slot].as_mut()
                    && let Some(at) = host.rounds.paced_until()
                    && at > Instant::now()
                {
                    // a host that limits its ICMP errors: its next probe after the gap
                    ready.pop_front();
                    park(&mut waiting, host, at, generation);
                    continue;
                }
                if let Err(until_token) = self.bucket.take(Instant::now()) {
                    wait = wait.min(until_token.max(self.bucket.batch_wait(Instant::now())));
                    capped = true;
                    break;
                }
                ready.pop_front();
                let Some(host) = slab[slot].as_mut() else { continue };
                let more = match self.send_one(host)? {
                    Step::NotBefore(at) => {
                        park(&mut waiting, host, at, generation);
                        continue;
                    }
                    step => step == Step::Sent,
                };
                match (more, host.rounds.round_out()) {
                    (true, false) => match host.rounds.paced_until() {
                        Some(at) => park(&mut waiting, host, at, generation),
                        None => ready.push_back((slot, generation)),
                    },
                    (_, true) => {
                        let end = self.round_end(host).unwrap_or_else(Instant::now);
                        park(&mut waiting, host, end, generation)
                    }
                    (false, false) => park(&mut waiting, host, Instant::now(), generation),
                }
            }
            self.flush()?;
            if ready.is_empty() {
                // every host in flight has sent what it may for now (its first round): few
                // answers are still to come. (The job queue stays open until the scan's end;
                // hosts that come later use the raw socket.)
                self.ring_down();
            }
            // answers; hosts whose every port is decided finish at once
            let finished = self.receive(&mut slab)?;
            for slot in finished {
                if let Some(host) = retire(&mut slab, &mut generations, &mut free, &mut live, slot) {
                    self.by_addr.remove(&(host.job.addr, host.job.transport == Transport::Udp));
                    send_part(self, host)?;
                }
            }
            // waits that answers shortened: a sooner entry (the old one goes stale)
            for slot in std::mem::take(&mut self.sooner) {
                let Some(host) = slab[slot].as_mut() else { continue };
                if let (Some(wake), Some(due)) = (host.wake, self.due(host))
                    && due < wake
                {
                    park(&mut waiting, host, due, generations[slot]);
                }
            }
            // rounds that timed out: the next round, or the end
            let now = Instant::now();
            while let Some(&Reverse((deadline, slot, generation))) = waiting.peek() {
                if generations[slot] != generation
                    || slab[slot].as_ref().is_none_or(|host| host.wake != Some(deadline))
                {
                    waiting.pop();
                    continue;
                }
                if deadline > now {
                    break;
                }
                waiting.pop();
                let Some(host) = slab[slot].as_mut() else { continue };
                host.wake = None;
                let due = self.round_end(host).unwrap_or(now);
                if due > now {
                    // the timeout grew since: wait until the real deadline
                    park(&mut waiting, host, due, generation);
                    continue;
                }
                if self.advance(host, now) {
                    if let Some(host) = retire(&mut slab, &mut generations, &mut free, &mut live, slot) {
                        self.by_addr.remove(&(host.job.addr, host.job.transport == Transport::Udp));
                        send_part(self, host)?;
                    }
                } else {
                    ready.push_back((slot, generation));
                }
            }
            let fds: Vec<i32> = [self.v4.as_ref(), self.v6.as_ref()]
                .into_iter()
                .flatten()
                .flat_map(|f| {
                    let ring = match &f.ring {
                        Ring::On(ring) | Ring::Leaving(ring, _) => Some(ring.fd()),
                        _ => None,
                    };
                    [f.tcp.as_ref().map(RawSock::fd), Some(f.icmp.fd()), ring]
                })
                .flatten()
                .chain(self.udp.iter().flatten().map(UdpSock::fd))
                .chain(self.arp.iter().map(ArpSock::fd))
                .collect();
            let timeout = if capped {
                wait
            } else if !ready.is_empty() {
                wait.min(Duration::from_millis(1))
            } else {
                let next = waiting.peek().map_or(Duration::from_millis(5), |Reverse((deadline, _, _))| {
                    deadline.saturating_duration_since(now)
                });
                next.clamp(Duration::from_micros(100), Duration::from_millis(5))
            };
            poll_readable(&fds, timeout).map_err(Error::Engine)?;
        }
    }
}

/// Puts a host in the deadline heap, due at `at`; its earlier entry, if any, goes stale.
fn park(
    waiting: &mut BinaryHeap<Reverse<(Instant, usize, u32)>>,
    host: &mut SynJob,
    at: Instant,
    generation: u32,
) {
    host.wake = Some(at);
    waiting.push(Reverse((at, host.slot, generation)));
}

/// Takes a finished host out of its slot; the slot's generation changes, so queue entries that
/// still name it are skipped.
fn retire(
    slab: &mut [Option<SynJob>],
    generations: &mut [u32],
    free: &mut Vec<usize>,
    live: &mut usize,
    slot: usize,
) -> Option<SynJob> {
    let host = slab[slot].take()?;
    generations[slot] = generations[slot].wrapping_add(1);
    free.push(slot);
    *live -= 1;
    Some(host)
}
