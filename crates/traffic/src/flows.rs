//! Packets → connections. Each TCP handshake, UDP exchange or ICMP echo is one flow; when it
//! ends (a reset, both FINs, or silence) it becomes one [`Event`] whose outcome says how far
//! it got: unanswered, refused, half-open (a SYN scan's probe of an open port), a handshake
//! without payload (a connect scan's), or a session that carried data.
//!
//! The table is bounded: at most `max_flows` flows; beyond that the flow idle longest ends
//! early (counted in [`Flows::evicted`]), so a flood of spoofed sources costs bounded memory.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::IpAddr;

use foldhash::fast::RandomState;
use portolan_model::traffic::{Clock, Evidence, Outcome, Shape, tcp_flags};
use portolan_model::{Event, Proto};

use crate::packet::Pkt;

type Key = (IpAddr, u16, IpAddr, u16, Proto);

// what each side did
const O_SYN: u16 = 1;
const R_SYNACK: u16 = 1 << 1;
const O_ACK: u16 = 1 << 2;
const O_DATA: u16 = 1 << 3;
const R_DATA: u16 = 1 << 4;
const O_FIN: u16 = 1 << 5;
const R_FIN: u16 = 1 << 6;
const O_RST: u16 = 1 << 7;
const R_RST: u16 = 1 << 8;
const UNREACH: u16 = 1 << 9;
const R_ANY: u16 = 1 << 10;

/// How long a flow may be silent before it ends, by what it has seen (microseconds).
const CLOSED_IDLE: i64 = 2_000_000;
/// A TCP connection attempt the responder has not answered ends 5 s after its SYN (Zeek's
/// `tcp_attempt_delay`); what comes after starts a connection of its own.
const ATTEMPT_IDLE: i64 = 5_000_000;
const UDP_IDLE: i64 = 60_000_000;
const TCP_IDLE: i64 = 300_000_000;

#[derive(Debug, Clone)]
struct Flow {
    orig: (IpAddr, u16),
    resp: (IpAddr, u16),
    proto: Proto,
    first_us: i64,
    last_us: i64,
    hist: u16,
    bytes: u64,
    shape: Shape,
    first_pkt: u64,
    /// Already sent as an event (a reset ends a connection at once; the entry stays a moment
    /// to absorb its stragglers).
    reported: bool,
}

impl Flow {
    fn closed(&self) -> bool {
        self.hist & (O_RST | R_RST | UNREACH) != 0 || self.hist & (O_FIN | R_FIN) == (O_FIN | R_FIN)
    }

    /// When the flow ends if nothing more arrives (a packet after this starts another).
    fn expires_at(&self) -> i64 {
        if self.closed() {
            self.last_us + CLOSED_IDLE
        } else if self.proto == Proto::Tcp && self.hist & (O_SYN | R_ANY) == O_SYN {
            // an attempt the responder has not answered ends 5 s after its SYN, however
            // busy the originator is (Zeek's connection attempt timer)
            self.first_us + ATTEMPT_IDLE
        } else if self.proto == Proto::Tcp {
            self.last_us + TCP_IDLE
        } else {
            self.last_us + UDP_IDLE
        }
    }

    fn outcome(&self) -> Outcome {
        let h = self.hist;
        match self.proto {
            Proto::Tcp => {
                if h & (O_DATA | R_DATA) != 0 {
                    Outcome::Session
                } else if h & O_SYN != 0 {
                    if h & R_SYNACK != 0 {
                        if h & O_ACK != 0 { Outcome::Accepted } else { Outcome::HalfOpen }
                    } else if h & (R_RST | UNREACH) != 0 {
                        Outcome::Rejected
                    } else {
                        Outcome::Attempt
                    }
                } else if h & (R_RST | UNREACH) != 0 {
                    Outcome::Rejected
                } else if h & R_ANY != 0 {
                    // the middle of a connection whose start the capture missed
                    Outcome::Session
                } else {
                    Outcome::Attempt
                }
            }
            _ => {
                if h & UNREACH != 0 {
                    Outcome::Rejected
                } else if h & R_ANY != 0 {
                    Outcome::Session
                } else {
                    Outcome::Attempt
                }
            }
        }
    }

    fn event(&self, source: u32) -> Event {
        Event {
            ts_us: self.first_us,
            duration_us: self.last_us - self.first_us,
            clock: Clock::Wall,
            src: self.orig.0,
            dst: Some(self.resp.0),
            proto: self.proto,
            sport: self.orig.1,
            dport: self.resp.1,
            outcome: self.outcome(),
            bytes: self.bytes,
            shape: Some(self.shape),
            evidence: Evidence { source, at: self.first_pkt },
        }
    }
}

fn key(a: (IpAddr, u16), b: (IpAddr, u16), proto: Proto) -> Key {
    if a <= b { (a.0, a.1, b.0, b.1, proto) } else { (b.0, b.1, a.0, a.1, proto) }
}

/// The flow table of one capture.
#[derive(Debug)]
pub struct Flows {
    source: u32,
    table: HashMap<Key, Flow, RandomState>,
    /// (when to look again, flow), soonest first.
    queue: BinaryHeap<Reverse<(i64, Key)>>,
    max_flows: usize,
    now: i64,
    /// Flows ended early because the table was full.
    pub evicted: u64,
}

impl Flows {
    /// A table for input `source` holding at most `max_flows` flows.
    pub fn new(source: u32, max_flows: usize) -> Flows {
        Flows {
            source,
            table: HashMap::with_hasher(RandomState::default()),
            queue: BinaryHeap::new(),
            max_flows: max_flows.max(16),
            now: i64::MIN,
            evicted: 0,
        }
    }

    /// Flows open now.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Moves the clock to `now_us` without a packet (a live capture that has gone quiet), ending
    /// what is due.
    pub fn advance(&mut self, now_us: i64, out: &mut impl FnMut(Event)) {
        if now_us > self.now {
            self.now = now_us;
        }
        for _ in 0..1024 {
            let before = self.queue.len();
            self.expire(out);
            if self.queue.len() == before {
                break;
            }
        }
    }

    /// The time of the latest packet (0 before the first).
    pub fn now_us(&self) -> i64 {
        if self.now == i64::MIN { 0 } else { self.now }
    }

    /// Whether no flow is open.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// One packet, numbered `n` from 1, at `ts_us`; ended flows go to `out`.
    pub fn packet(&mut self, p: &Pkt, ts_us: i64, n: u64, out: &mut impl FnMut(Event)) {
        if ts_us > self.now {
            self.now = ts_us;
            self.expire(out);
        }
        if let Some(q) = p.quoted {
            // an ICMP error about a flow: it was refused (or its route is gone)
            let k = key((q.src, q.sport), (q.dst, q.dport), q.proto);
            if let Some(f) = self.table.get_mut(&k) {
                f.hist |= UNREACH;
                f.last_us = f.last_us.max(ts_us);
                if !f.reported {
                    f.reported = true;
                    out(f.event(self.source));
                }
            }
            return;
        }
        let (a, b) = match p.proto {
            Proto::Icmp | Proto::Icmpv6 => {
                let Some(req) = p.echo_request else { return };
                // echo request and reply share the identifier
                let ty = if p.proto == Proto::Icmp { 8 } else { 128 };
                if req { ((p.src, p.sport), (p.dst, ty)) } else { ((p.dst, p.sport), (p.src, ty)) }
            }
            _ => ((p.src, p.sport), (p.dst, p.dport)),
        };
        let k = key(a, b, p.proto);
        let syn_only = p.proto == Proto::Tcp && p.flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN;
        if let Some(f) = self.table.get(&k)
            && f.expires_at() <= ts_us
        {
            // silent past its limit: this packet starts another connection (as Zeek's
            // inactivity timeout)
            if let Some(old) = self.table.remove(&k)
                && !old.reported
            {
                out(old.event(self.source));
            }
        }
        if let Some(f) = self.table.get(&k) {
            let reused =
                syn_only && (f.closed() || ts_us - f.last_us > 30_000_000) && (p.src, p.sport) == f.orig;
            let reversed_reuse = syn_only && (p.src, p.sport) != f.orig && f.closed();
            if (reused || reversed_reuse)
                && let Some(old) = self.table.remove(&k)
                && !old.reported
            {
                out(old.event(self.source));
            }
        }
        if !self.table.contains_key(&k) {
            if self.table.len() >= self.max_flows {
                self.evict_one(out);
            }
            let (orig, resp) = if p.echo_request.is_some() {
                (a, b)
            } else if p.proto == Proto::Tcp
                && p.flags & (tcp_flags::SYN | tcp_flags::ACK) == (tcp_flags::SYN | tcp_flags::ACK)
            {
                // the SYN was missed: the receiver started it
                ((p.dst, p.dport), (p.src, p.sport))
            } else if !syn_only && p.sport < 1024 && p.dport >= 1024 {
                // mid-stream: the side on the well-known port is the server
                ((p.dst, p.dport), (p.src, p.sport))
            } else {
                ((p.src, p.sport), (p.dst, p.dport))
            };
            let shape = Shape {
                flags: p.flags,
                ttl: p.ttl,
                ip_id: p.ip_id,
                window: (p.proto == Proto::Tcp).then_some(p.window),
                seq: (p.proto == Proto::Tcp).then_some(p.seq),
                options_len: (p.proto == Proto::Tcp).then_some(p.options_len),
                mss: p.mss,
            };
            self.table.insert(
                k,
                Flow {
                    orig,
                    resp,
                    proto: p.proto,
                    first_us: ts_us,
                    last_us: ts_us,
                    hist: 0,
                    bytes: 0,
                    shape,
                    first_pkt: n,
                    reported: false,
                },
            );
            self.queue.push(Reverse((ts_us + ATTEMPT_IDLE, k)));
        }
        let Some(f) = self.table.get_mut(&k) else { return };
        f.last_us = f.last_us.max(ts_us);
        f.bytes += u64::from(p.data_len);
        let from_orig = match p.echo_request {
            Some(req) => req,
            None => (p.src, p.sport) == f.orig,
        };
        if !from_orig {
            f.hist |= R_ANY;
        }
        if p.proto == Proto::Tcp {
            let fl = p.flags;
            let bit = |o: u16, r: u16| if from_orig { o } else { r };
            if fl & tcp_flags::SYN != 0 {
                f.hist |= if fl & tcp_flags::ACK != 0 { bit(0, R_SYNACK) } else { bit(O_SYN, 0) };
            } else if fl & tcp_flags::ACK != 0 && from_orig {
                f.hist |= O_ACK;
            }
            if fl & tcp_flags::FIN != 0 {
                f.hist |= bit(O_FIN, R_FIN);
            }
            if fl & tcp_flags::RST != 0 {
                f.hist |= bit(O_RST, R_RST);
            }
            if p.data_len > 0 && fl & tcp_flags::RST == 0 {
                f.hist |= bit(O_DATA, R_DATA);
            }
        } else if p.data_len > 0 || p.echo_request.is_some() {
            f.hist |= if from_orig { O_DATA } else { R_DATA };
        }
        // a reset or an ICMP error decides the outcome now: report it without waiting
        if !f.reported && f.hist & (O_RST | R_RST | UNREACH) != 0 {
            f.reported = true;
            out(f.event(self.source));
        }
    }

    /// Ends every flow silent past its limit.
    fn expire(&mut self, out: &mut impl FnMut(Event)) {
        // a bounded amount of work per packet keeps the reader's pace even
        for _ in 0..64 {
            let Some(&Reverse((due, k))) = self.queue.peek() else { return };
            if due > self.now {
                return;
            }
            self.queue.pop();
            let Some(f) = self.table.get(&k) else { continue };
            let until = f.expires_at();
            if until <= self.now {
                if let Some(f) = self.table.remove(&k)
                    && !f.reported
                {
                    out(f.event(self.source));
                }
            } else {
                self.queue.push(Reverse((until, k)));
            }
        }
    }

    /// Ends the flow due soonest.
    fn evict_one(&mut self, out: &mut impl FnMut(Event)) {
        while let Some(Reverse((_, k))) = self.queue.pop() {
            if let Some(f) = self.table.remove(&k) {
                if !f.reported {
                    self.evicted += 1;
                    out(f.event(self.source));
                }
                return;
            }
        }
    }

    /// Ends every flow (the capture is over), in the order they started.
    pub fn finish(&mut self, out: &mut impl FnMut(Event)) {
        let mut rest: Vec<Flow> = self.table.drain().map(|(_, f)| f).collect();
        rest.sort_by_key(|f| (f.first_us, f.first_pkt));
        for f in rest.into_iter().filter(|f| !f.reported) {
            out(f.event(self.source));
        }
        self.queue.clear();
    }
}
