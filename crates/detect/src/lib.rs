//! Detectors: traffic events → detections of scans, sweeps, slow scans, distributed scans and
//! brute force.
//!
//! Events stream in ([`Detector::event`]); detections come out when their source has been
//! quiet for a window, or at [`Detector::finish`]. Counting follows the anchors in
//! `docs/watch.md`: Zeek's scan.zeek (15 ports of one host, or 25 hosts on one port, within 5
//! minutes, in tumbling windows), psad's 3,600 s scan timeout for slow scans, fail2ban's 5
//! failures in 600 s for logins. Only probes count toward a scan (unanswered, refused,
//! half-open, handshake without payload, or a packet a firewall logged); sessions that carry
//! data never do.
//!
//! State is bounded: at most [`Config::max_sources`] sources are tracked; past that the
//! quietest are dropped, and every drop is counted ([`Detector::evicted`]).

mod fingerprint;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;

use foldhash::fast::RandomState;
use portolan_model::traffic::{Clock, DetectionKind, Evidence, Outcome, ScanTechnique, Tool};
use portolan_model::{Detection, Event, Proto, Severity, Transport};

pub use fingerprint::{technique, tool_of};

/// Thresholds and windows. The defaults are the anchors named in the crate documentation.
#[derive(Debug, Clone)]
pub struct Config {
    /// Distinct ports of one host in one window that make a vertical scan (Zeek: 15).
    pub vertical_ports: usize,
    /// Distinct hosts on one port in one window that make a sweep (Zeek: 25).
    pub sweep_hosts: usize,
    /// The window, in microseconds (Zeek: 5 minutes).
    pub window_us: i64,
    /// The long window in which slow scans are counted (psad's SCAN_TIMEOUT: 3,600 s).
    pub slow_window_us: i64,
    /// Mean gap between probes at or above which a scan is slow (1 s).
    pub slow_gap_us: i64,
    /// Sources that together make a distributed scan (each below the vertical threshold).
    pub distributed_sources: usize,
    /// Failed logins from one source in `auth_window_us` that make brute force (fail2ban: 5).
    pub auth_failures: usize,
    /// Short sessions from one source to one login service that make brute force (10).
    pub auth_sessions: usize,
    /// A session this short (microseconds) counts as a login attempt (30 s).
    pub auth_session_us: i64,
    /// The window for logins (fail2ban's findtime: 600 s).
    pub auth_window_us: i64,
    /// Sources tracked at most.
    pub max_sources: usize,
    /// Known scanners of one's own: reported as `info`, never dropped.
    pub allowed: Vec<(IpAddr, u8)>,
    /// What is supposed to answer: a host that answers on anything else is a `new_service`.
    pub baseline: Option<Baseline>,
}

/// The services a baseline knows: from a saved scan (address, port) and from a saved local
/// inventory (its listeners; one bound to every address stands for the port on any address),
/// or those a judge approves (a policy).
#[derive(Clone, Default)]
pub struct Baseline {
    /// Where it came from, for the detection's evidence (`snapshot 12`).
    pub name: String,
    exact: HashSet<(IpAddr, u16, Proto), RandomState>,
    any_address: HashSet<(u16, Proto), RandomState>,
    approves: Option<Approval>,
}

/// A judge of whether a host may answer on a port (a policy).
pub type Approval = std::sync::Arc<dyn Fn(IpAddr, u16, Proto) -> bool + Send + Sync>;

impl std::fmt::Debug for Baseline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Baseline")
            .field("name", &self.name)
            .field("exact", &self.exact.len())
            .field("any_address", &self.any_address.len())
            .field("approves", &self.approves.is_some())
            .finish()
    }
}

fn proto_of(t: Transport) -> Proto {
    match t {
        Transport::Tcp => Proto::Tcp,
        Transport::Udp => Proto::Udp,
        Transport::Sctp => Proto::Sctp,
        Transport::Dccp => Proto::Other,
    }
}

impl Baseline {
    /// The open ports of a snapshot's scan and the listeners of its inventory.
    pub fn from_snapshot(name: String, s: &portolan_model::Snapshot) -> Baseline {
        let mut b = Baseline { name, ..Baseline::default() };
        for h in s.scan.iter().flat_map(|r| &r.hosts) {
            for p in h.ports.iter().filter(|p| p.state == portolan_model::PortState::Open) {
                b.exact.insert((h.address, p.number, proto_of(p.transport)));
            }
        }
        for l in s.local.iter().flat_map(|l| &l.sockets).filter(|l| l.state.is_listening()) {
            if l.local_address.is_unspecified() {
                b.any_address.insert((l.local_port, proto_of(l.transport)));
            } else {
                b.exact.insert((l.local_address, l.local_port, proto_of(l.transport)));
            }
        }
        b
    }

    /// What a judge approves (a policy), named `name` in the detections.
    pub fn approved_by(name: String, approves: Approval) -> Baseline {
        Baseline { name, approves: Some(approves), ..Baseline::default() }
    }

    /// Whether `dst` answering on `port` is known.
    pub fn knows(&self, dst: IpAddr, port: u16, proto: Proto) -> bool {
        self.exact.contains(&(dst, port, proto))
            || self.any_address.contains(&(port, proto))
            || self.approves.as_ref().is_some_and(|f| f(dst, port, proto))
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            vertical_ports: 15,
            sweep_hosts: 25,
            window_us: 300_000_000,
            slow_window_us: 3_600_000_000,
            slow_gap_us: 1_000_000,
            distributed_sources: 3,
            auth_failures: 5,
            auth_sessions: 10,
            auth_session_us: 30_000_000,
            auth_window_us: 600_000_000,
            max_sources: 100_000,
            allowed: Vec::new(),
            baseline: None,
        }
    }
}

/// TCP ports of services that take a password: ftp, ssh, telnet, smtp (submission), pop3,
/// imap, mssql, mysql, rdp, postgresql, vnc, redis.
pub const LOGIN_PORTS: &[u16] =
    &[21, 22, 23, 25, 110, 143, 465, 587, 993, 995, 1433, 3306, 3389, 5432, 5900, 6379];

/// How an input is named in evidence.
#[derive(Debug, Clone)]
pub struct SourceName {
    /// The path as given.
    pub name: String,
    /// A capture (evidence `file#packet`) rather than a log (`file:line`).
    pub capture: bool,
}

type Pair = (IpAddr, u16, Proto);

/// A detection being built.
#[derive(Debug, Clone)]
struct Draft {
    kind: DetectionKind,
    src: Option<IpAddr>,
    srcs: HashSet<IpAddr, RandomState>,
    targets: HashSet<IpAddr, RandomState>,
    ports: Vec<u64>,
    port_count: u64,
    proto: Proto,
    first_us: i64,
    last_us: i64,
    clock: Clock,
    events: u64,
    evidence: Vec<Evidence>,
    techniques: [u64; 7],
    tools: [u64; 4],
    /// Ports that answered (half-open, accepted, session).
    answered: Vec<u16>,
}

const TARGET_CAP: usize = 1 << 16;
const EVIDENCE: usize = 8;

impl Draft {
    fn new(kind: DetectionKind, src: Option<IpAddr>, e: &Event) -> Draft {
        Draft {
            kind,
            src,
            srcs: HashSet::default(),
            targets: HashSet::default(),
            ports: vec![0; 1024],
            port_count: 0,
            proto: e.proto,
            first_us: e.ts_us,
            last_us: e.ts_us,
            clock: e.clock,
            events: 0,
            evidence: Vec::new(),
            techniques: [0; 7],
            tools: [0; 4],
            answered: Vec::new(),
        }
    }

    /// The lowest port touched.
    fn ports_first(&self) -> u16 {
        self.ports
            .iter()
            .enumerate()
            .find(|(_, w)| **w != 0)
            .map_or(0, |(i, w)| (i * 64) as u16 + w.trailing_zeros() as u16)
    }

    fn add(&mut self, e: &Event) {
        self.events += 1;
        self.first_us = self.first_us.min(e.ts_us);
        self.last_us = self.last_us.max(e.ts_us);
        if let Some(d) = e.dst
            && self.targets.len() < TARGET_CAP
        {
            self.targets.insert(d);
        }
        if self.kind == DetectionKind::DistributedScan && self.srcs.len() < TARGET_CAP {
            self.srcs.insert(e.src);
        }
        let (w, b) = (usize::from(e.dport) / 64, e.dport % 64);
        if self.ports[w] & (1 << b) == 0 {
            self.ports[w] |= 1 << b;
            self.port_count += 1;
        }
        if self.evidence.len() < EVIDENCE {
            self.evidence.push(e.evidence);
        }
        if let Some(t) = technique(e) {
            self.techniques[t as usize] += 1;
        }
        self.tools[tool_of(e) as usize] += 1;
        if matches!(e.outcome, Outcome::HalfOpen | Outcome::Accepted | Outcome::Session)
            && self.answered.len() < 4096
            && !self.answered.contains(&e.dport)
        {
            self.answered.push(e.dport);
        }
    }
}

#[derive(Debug, Default)]
struct Src {
    last_us: i64,
    /// The first probe of a source not yet counting (most sources of a flood send one).
    first: Option<Event>,
    counts: Option<Box<Counts>>,
    scan: Option<Box<Draft>>,
    /// Login failures and short login sessions.
    logins: VecDeque<Event>,
    brute: Option<Box<Draft>>,
}

/// One source's distinct probes in the current windows.
#[derive(Debug, Default)]
struct Counts {
    short_epoch: i64,
    long_epoch: i64,
    /// Distinct probes and when each was last seen.
    pairs: HashMap<Pair, i64, RandomState>,
    short_dst: HashMap<IpAddr, u32, RandomState>,
    short_port: HashMap<(u16, Proto), u32, RandomState>,
    long_dst: HashMap<IpAddr, u32, RandomState>,
    long_port: HashMap<(u16, Proto), u32, RandomState>,
    /// Probes of this long window, for a detection's evidence and timing.
    recent: VecDeque<Event>,
}

impl Counts {
    /// Counts one probe; true when it makes a scan.
    fn count(&mut self, e: &Event, dst: IpAddr, cfg: &Config) -> bool {
        if e.ts_us >= self.short_epoch + cfg.window_us || e.ts_us < self.short_epoch {
            self.short_epoch = e.ts_us;
            self.short_dst.clear();
            self.short_port.clear();
        }
        if e.ts_us >= self.long_epoch + cfg.slow_window_us || e.ts_us < self.long_epoch {
            self.long_epoch = e.ts_us;
            self.long_dst.clear();
            self.long_port.clear();
            self.pairs.clear();
            self.recent.clear();
        }
        if self.recent.len() < RECENT {
            self.recent.push_back(*e);
        }
        let pair = (dst, e.dport, e.proto);
        let seen = self.pairs.get(&pair).copied();
        let mut fire = false;
        if seen.is_none_or(|t| t < self.short_epoch) {
            let d = self.short_dst.entry(dst).or_default();
            *d += 1;
            let p = self.short_port.entry((e.dport, e.proto)).or_default();
            *p += 1;
            fire |= *d as usize >= cfg.vertical_ports || *p as usize >= cfg.sweep_hosts;
        }
        if seen.is_none() {
            let d = self.long_dst.entry(dst).or_default();
            *d += 1;
            let p = self.long_port.entry((e.dport, e.proto)).or_default();
            *p += 1;
            fire |= *d as usize >= cfg.vertical_ports || *p as usize >= cfg.sweep_hosts;
        }
        if seen.is_some() || self.pairs.len() < PAIRS {
            self.pairs.insert(pair, e.ts_us);
        }
        fire
    }
}

/// Distinct ports one source must probe to count as a part of a distributed scan.
const DISTRIBUTED_PART: usize = 3;

/// A source that comes back to the ports it touched — more than this many events per port on
/// average — is using services (a browser, a resolver's client), not probing: where the
/// outcome is unknown (LOG lines) this is what tells a client from a part of a scan. A scanner
/// retransmitting to dropped ports sends at most two or three probes a port.
const CLIENT_REPEATS: f64 = 2.5;

/// Events a source sent to a target, and the distinct ports among them.
type SentTo = (usize, HashSet<(u16, Proto), RandomState>);

/// Whether `src`'s events among `events` repeat its `ports` like a client's.
fn uses_services(events: &[Event], src: IpAddr, ports: usize) -> bool {
    let n = events.iter().filter(|e| e.src == src).count();
    ports > 0 && n as f64 / ports as f64 > CLIENT_REPEATS
}

/// Probes kept per source for a detection that fires later (its first events).
const RECENT: usize = 64;
/// Distinct probes tracked per source and window.
const PAIRS: usize = 4096;

#[derive(Debug, Default)]
struct Dst {
    epoch: i64,
    /// Each port probed this window, and by whom first.
    ports: HashMap<(u16, Proto), IpAddr, RandomState>,
    events: VecDeque<Event>,
    scan: Option<Box<Draft>>,
    /// Sources probing the target of a distributed scan that are not yet part of it.
    joining: HashMap<IpAddr, Vec<Event>, RandomState>,
}

/// The detectors' state over a stream of events.
#[derive(Debug)]
pub struct Detector {
    cfg: Config,
    names: Vec<SourceName>,
    sources: HashMap<IpAddr, Src, RandomState>,
    targets: HashMap<IpAddr, Dst, RandomState>,
    done: Vec<Detection>,
    /// Live: report detections as they start, too.
    live: bool,
    started: Vec<Detection>,
    /// Sources dropped because `max_sources` were tracked.
    pub evicted: u64,
    /// Services reported as new (each once).
    new_services: HashSet<(IpAddr, u16, Proto), RandomState>,
}

impl Detector {
    /// Detectors with `cfg`; `names` name the inputs that evidence points into.
    pub fn new(cfg: Config, names: Vec<SourceName>) -> Detector {
        Detector {
            cfg,
            names,
            sources: HashMap::default(),
            targets: HashMap::default(),
            done: Vec::new(),
            live: false,
            started: Vec::new(),
            evicted: 0,
            new_services: HashSet::default(),
        }
    }

    /// Live mode: each detection is also reported when it starts (`open: true`; see
    /// [`Detector::take_started`]), and [`Detector::tick`] ends quiet ones by the clock.
    pub fn live(mut self) -> Detector {
        self.live = true;
        self
    }

    /// Detections started since the last call (live mode), as they stand.
    pub fn take_started(&mut self) -> Vec<Detection> {
        std::mem::take(&mut self.started)
    }

    /// Ends the detections whose source has been quiet for their window by `now_us` (on the
    /// events' clock); they are then in [`Detector::take_finished`].
    pub fn tick(&mut self, now_us: i64) {
        let cfg = &self.cfg;
        for s in self.sources.values_mut() {
            if s.scan.as_ref().is_some_and(|a| now_us - a.last_us > cfg.window_us)
                && let Some(draft) = s.scan.take()
            {
                self.done.push(finish(draft, cfg, &self.names));
            }
            if s.brute.as_ref().is_some_and(|a| now_us - a.last_us > cfg.auth_window_us)
                && let Some(draft) = s.brute.take()
            {
                self.done.push(finish(draft, cfg, &self.names));
            }
        }
        for t in self.targets.values_mut() {
            if t.scan.as_ref().is_some_and(|a| now_us - a.last_us > cfg.window_us)
                && let Some(draft) = t.scan.take()
            {
                self.done.push(finish(draft, cfg, &self.names));
            }
        }
    }

    /// Names another input (for evidence); returns its number.
    pub fn add_source(&mut self, name: SourceName) -> u32 {
        self.names.push(name);
        (self.names.len() - 1) as u32
    }

    /// Sources tracked now.
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }

    /// One event.
    pub fn event(&mut self, e: &Event) {
        if ignored(e) {
            return;
        }
        self.new_service(e);
        if !self.sources.contains_key(&e.src) && self.sources.len() >= self.cfg.max_sources {
            self.make_room(e.ts_us);
        }
        match e.outcome {
            Outcome::AuthFailure => self.login(e),
            Outcome::Session | Outcome::Accepted
                if e.proto == Proto::Tcp
                    && LOGIN_PORTS.contains(&e.dport)
                    && e.duration_us <= self.cfg.auth_session_us =>
            {
                self.login(e);
                if e.outcome == Outcome::Accepted {
                    self.probe(e);
                }
            }
            Outcome::Session => {
                if let Some(s) = self.sources.get_mut(&e.src) {
                    s.last_us = s.last_us.max(e.ts_us);
                }
            }
            _ => self.probe(e),
        }
    }

    fn probe(&mut self, e: &Event) {
        let Some(dst) = e.dst else { return };
        let cfg = &self.cfg;
        let s = self.sources.entry(e.src).or_default();
        // a source quiet for a window: what it did is over
        if let Some(draft) = s.scan.take() {
            if e.ts_us - draft.last_us > cfg.window_us {
                self.done.push(finish(draft, cfg, &self.names));
            } else {
                s.scan = Some(draft);
            }
        }
        s.last_us = s.last_us.max(e.ts_us);
        if let Some(draft) = s.scan.as_mut() {
            draft.add(e);
            return;
        }
        // a source seen once keeps only that probe; counting starts with its second
        let fire = match (s.counts.as_mut(), s.first.take()) {
            (Some(c), _) => c.count(e, dst, cfg),
            (None, None) => {
                s.first = Some(*e);
                false
            }
            (None, Some(f)) => {
                let mut c = Box::<Counts>::default();
                if let Some(fd) = f.dst {
                    c.count(&f, fd, cfg);
                }
                let fire = c.count(e, dst, cfg);
                s.counts = Some(c);
                fire
            }
        };
        if fire && let Some(mut c) = s.counts.take() {
            let mut draft = Draft::new(DetectionKind::VerticalScan, Some(e.src), e);
            let kept = c.recent.iter().any(|r| r.evidence == e.evidence);
            for r in c.recent.drain(..) {
                draft.add(&r);
            }
            if !kept {
                draft.add(e);
            }
            if self.live {
                self.started.push(finish_open(&draft, cfg, &self.names));
            }
            s.scan = Some(Box::new(draft));
            return;
        }
        self.distributed(e, dst);
    }

    /// A host that answered a handshake (or a datagram) on a port the baseline does not know.
    fn new_service(&mut self, e: &Event) {
        let Some(base) = &self.cfg.baseline else { return };
        let Some(dst) = e.dst else { return };
        let handshake = e.shape.is_some_and(|s| s.flags & portolan_model::traffic::tcp_flags::SYN != 0);
        let answered = match e.proto {
            Proto::Tcp => {
                matches!(e.outcome, Outcome::HalfOpen | Outcome::Accepted)
                    || (e.outcome == Outcome::Session && handshake)
            }
            Proto::Udp => e.outcome == Outcome::Session,
            _ => false,
        };
        // what was reported already is not judged again (a policy's judgement costs an audit)
        let key = (dst, e.dport, e.proto);
        if !answered || self.new_services.contains(&key) || self.new_services.len() >= TARGET_CAP {
            return;
        }
        if base.knows(dst, e.dport, e.proto) {
            return;
        }
        self.new_services.insert(key);
        let mut draft = Draft::new(DetectionKind::NewService, None, e);
        draft.add(e);
        let mut d = finish(Box::new(draft), &self.cfg, &self.names);
        d.summary = format!(
            "{} answers on {}/{}, which {} does not know (first answer to {})",
            dst, e.dport, e.proto, base.name, e.src
        );
        // live, it is complete at once: reported once, with the detections that start
        if self.live { self.started.push(d) } else { self.done.push(d) }
    }

    /// Many sources on one target: counted per target, and a detection when the ports
    /// probed reach the vertical threshold from enough sources, none of which did it alone.
    fn distributed(&mut self, e: &Event, dst: IpAddr) {
        let cfg = &self.cfg;
        if !self.targets.contains_key(&dst) && self.targets.len() >= cfg.max_sources {
            return;
        }
        let t = self.targets.entry(dst).or_default();
        if let Some(draft) = t.scan.take() {
            if e.ts_us - draft.last_us > cfg.window_us {
                self.done.push(finish(draft, cfg, &self.names));
            } else {
                t.scan = Some(draft);
            }
        }
        if let Some(draft) = t.scan.as_mut() {
            // its parts; another source joins once it too probes several ports (a client of
            // the same host touches one or two)
            if draft.srcs.contains(&e.src) {
                draft.add(e);
            } else if t.joining.len() < 1024 || t.joining.contains_key(&e.src) {
                let j = t.joining.entry(e.src).or_default();
                if j.len() < 64 {
                    j.push(*e);
                }
                let mut ports: Vec<(u16, Proto)> = j.iter().map(|x| (x.dport, x.proto)).collect();
                ports.sort();
                ports.dedup();
                if ports.len() >= DISTRIBUTED_PART
                    && !uses_services(j, e.src, ports.len())
                    && let Some(j) = t.joining.remove(&e.src)
                {
                    for x in &j {
                        draft.add(x);
                    }
                }
            }
            return;
        }
        if e.ts_us >= t.epoch + cfg.window_us || e.ts_us < t.epoch {
            t.epoch = e.ts_us;
            t.ports.clear();
            t.events.clear();
        }
        if t.ports.len() < PAIRS {
            t.ports.entry((e.dport, e.proto)).or_insert(e.src);
        }
        if t.events.len() < PAIRS {
            t.events.push_back(*e);
        }
        if t.ports.len() >= cfg.vertical_ports {
            // sources that scan on their own are not part of a distributed scan
            let sources = &self.sources;
            let alone = |ip: &IpAddr| sources.get(ip).is_some_and(|s| s.scan.is_some());
            let mut per_src: HashMap<IpAddr, usize, RandomState> = HashMap::default();
            for s in t.ports.values().filter(|s| !alone(s)) {
                *per_src.entry(*s).or_default() += 1;
            }
            // a part of a scan probes several ports; a client touches one or two
            per_src.retain(|_, n| *n >= DISTRIBUTED_PART);
            let fires = |per_src: &HashMap<IpAddr, usize, RandomState>| {
                let ports: usize = per_src.values().sum();
                let most = per_src.values().copied().max().unwrap_or(0);
                ports >= cfg.vertical_ports
                    && per_src.len() >= cfg.distributed_sources
                    && most < cfg.vertical_ports
            };
            // or comes back to the same few: looked at only when a detection is due
            if fires(&per_src) {
                // events and distinct ports of each source, from what it sent
                let mut seen: HashMap<IpAddr, SentTo, RandomState> = HashMap::default();
                for ev in t.events.iter().filter(|ev| per_src.contains_key(&ev.src)) {
                    let s = seen.entry(ev.src).or_default();
                    s.0 += 1;
                    s.1.insert((ev.dport, ev.proto));
                }
                per_src.retain(|src, _| {
                    seen.get(src).is_none_or(|(n, ports)| {
                        ports.is_empty() || *n as f64 / ports.len() as f64 <= CLIENT_REPEATS
                    })
                });
            }
            if fires(&per_src) {
                let mut draft = Draft::new(DetectionKind::DistributedScan, None, e);
                for r in t.events.drain(..) {
                    if per_src.contains_key(&r.src) {
                        draft.add(&r);
                    }
                }
                t.ports.clear();
                if self.live {
                    self.started.push(finish_open(&draft, cfg, &self.names));
                }
                t.scan = Some(Box::new(draft));
            }
        }
    }

    fn login(&mut self, e: &Event) {
        let cfg = &self.cfg;
        let s = self.sources.entry(e.src).or_default();
        s.last_us = s.last_us.max(e.ts_us);
        if let Some(draft) = s.brute.take() {
            if e.ts_us - draft.last_us > cfg.auth_window_us {
                self.done.push(finish(draft, cfg, &self.names));
            } else {
                s.brute = Some(draft);
            }
        }
        if let Some(draft) = s.brute.as_mut() {
            draft.add(e);
            return;
        }
        while s.logins.front().is_some_and(|f| e.ts_us - f.ts_us > cfg.auth_window_us) {
            s.logins.pop_front();
        }
        s.logins.push_back(*e);
        // failures from a log count alone; sessions count per service (host and port)
        let failures = s.logins.iter().filter(|l| l.outcome == Outcome::AuthFailure).count();
        let sessions = s
            .logins
            .iter()
            .filter(|l| l.outcome != Outcome::AuthFailure && l.dst == e.dst && l.dport == e.dport)
            .count();
        if failures >= cfg.auth_failures || sessions >= cfg.auth_sessions {
            let mut draft = Draft::new(DetectionKind::BruteForce, Some(e.src), e);
            let want_failures = failures >= cfg.auth_failures;
            for l in s.logins.drain(..) {
                if (l.outcome == Outcome::AuthFailure) == want_failures {
                    draft.add(&l);
                }
            }
            if self.live {
                self.started.push(finish_open(&draft, cfg, &self.names));
            }
            s.brute = Some(Box::new(draft));
        }
        if s.logins.len() > 4 * cfg.auth_failures.max(cfg.auth_sessions) + 64 {
            s.logins.pop_front();
        }
    }

    /// Drops the sources quiet longest (and everything quiet for a long window), reporting
    /// what they had found.
    fn make_room(&mut self, now: i64) {
        let cfg = &self.cfg;
        let mut quiet: Vec<(i64, IpAddr)> = self.sources.iter().map(|(ip, s)| (s.last_us, *ip)).collect();
        // a tenth at a time keeps the cost per event constant on average
        let n = (cfg.max_sources / 10).max(1);
        let stale = quiet.iter().filter(|(t, _)| now - t > cfg.slow_window_us).count();
        let take = n.max(stale).min(quiet.len());
        quiet.select_nth_unstable(take.saturating_sub(1));
        for (_, ip) in quiet.into_iter().take(take) {
            if let Some(s) = self.sources.remove(&ip) {
                if s.scan.is_none() && s.brute.is_none() {
                    self.evicted += 1;
                }
                for draft in [s.scan, s.brute].into_iter().flatten() {
                    self.done.push(finish(draft, cfg, &self.names));
                }
            }
        }
    }

    /// Detections finished so far (their sources went quiet), taken out.
    pub fn take_finished(&mut self) -> Vec<Detection> {
        std::mem::take(&mut self.done)
    }

    /// Every detection, finished or open, in order of first event.
    pub fn finish(mut self) -> (Vec<Detection>, u64) {
        let cfg = &self.cfg;
        let mut out = std::mem::take(&mut self.done);
        for (_, s) in self.sources.drain() {
            for draft in [s.scan, s.brute].into_iter().flatten() {
                out.push(finish(draft, cfg, &self.names));
            }
        }
        for (_, t) in self.targets.drain() {
            if let Some(draft) = t.scan {
                out.push(finish(draft, cfg, &self.names));
            }
        }
        out.sort_by(|a, b| (&a.first_seen, a.kind, a.src).cmp(&(&b.first_seen, b.kind, b.src)));
        (out, self.evicted)
    }
}

/// Traffic no detector counts: to or from multicast, broadcast or unspecified addresses, and
/// a host talking to itself.
fn ignored(e: &Event) -> bool {
    let odd = |ip: IpAddr| match ip {
        IpAddr::V4(a) => a.is_multicast() || a.is_broadcast() || a.is_unspecified(),
        IpAddr::V6(a) => a.is_multicast() || a.is_unspecified(),
    };
    odd(e.src) || e.dst.is_some_and(|d| odd(d) || d == e.src)
}

/// A detection as it stands, still open.
fn finish_open(draft: &Draft, cfg: &Config, names: &[SourceName]) -> Detection {
    let mut d = finish(Box::new(draft.clone()), cfg, names);
    d.open = true;
    d
}

fn time_text(us: i64, clock: Clock) -> String {
    match clock {
        Clock::Wall => {
            jiff::Timestamp::from_microsecond(us).map_or_else(|_| us.to_string(), |t| t.to_string())
        }
        Clock::Boot => format!("boot+{}.{:06}s", us / 1_000_000, us.rem_euclid(1_000_000)),
    }
}

fn finish(draft: Box<Draft>, cfg: &Config, names: &[SourceName]) -> Detection {
    let mut kind = draft.kind;
    let target_count = draft.targets.len() as u64;
    if kind == DetectionKind::VerticalScan && target_count >= cfg.sweep_hosts as u64 {
        kind = DetectionKind::HorizontalSweep;
    }
    let span = draft.last_us - draft.first_us;
    if matches!(kind, DetectionKind::VerticalScan | DetectionKind::HorizontalSweep)
        && draft.events > 1
        && span / (draft.events as i64 - 1) >= cfg.slow_gap_us
    {
        kind = DetectionKind::SlowScan;
    }
    let mut ports = Vec::new();
    for (w, bits) in draft.ports.iter().enumerate() {
        let mut b = *bits;
        while b != 0 {
            let i = b.trailing_zeros() as usize;
            ports.push((w * 64 + i) as u16);
            b &= b - 1;
        }
    }
    let mut targets: Vec<IpAddr> = draft.targets.iter().copied().collect();
    targets.sort();
    targets.truncate(32);
    let mut srcs: Vec<IpAddr> = draft.srcs.iter().copied().collect();
    srcs.sort();
    srcs.truncate(32);
    // a login, or a service that answers, is no scan technique
    let technique = if matches!(kind, DetectionKind::BruteForce | DetectionKind::NewService) {
        None
    } else {
        (0..7).filter(|&i| draft.techniques[i] > 0).max_by_key(|&i| draft.techniques[i]).map(TECHNIQUES)
    };
    let tool = {
        let known: u64 = draft.tools[..3].iter().sum();
        let best = (0..3).max_by_key(|&i| draft.tools[i]).unwrap_or(3);
        // most of the packets that show a fingerprint must agree
        if kind != DetectionKind::NewService
            && known > 0
            && draft.tools[best] * 2 > known
            && draft.tools[best] * 2 >= draft.events.min(known.max(1))
        {
            TOOLS[best]
        } else {
            Tool::Unknown
        }
    };
    let allowed = draft.src.is_some_and(|s| cfg.allowed.iter().any(|&(net, len)| in_net(s, net, len)));
    let transport = match draft.proto {
        Proto::Udp => Transport::Udp,
        Proto::Sctp => Transport::Sctp,
        _ => Transport::Tcp,
    };
    let mut severity = match kind {
        DetectionKind::BruteForce | DetectionKind::DistributedScan => Severity::High,
        DetectionKind::NewService => portolan_kb::for_port(draft.ports_first(), transport)
            .map(|k| k.internet_risk)
            .max()
            .unwrap_or(Severity::Medium)
            .max(Severity::Medium),
        _ => Severity::Medium,
    };
    let risky_answer = draft
        .answered
        .iter()
        .any(|&p| portolan_kb::for_port(p, transport).any(|k| k.internet_risk >= Severity::High));
    let public = draft.targets.iter().any(|&t| portolan_kb::is_public(t));
    for raise in [risky_answer && kind != DetectionKind::BruteForce, public] {
        if raise {
            severity = raise_one(severity);
        }
    }
    if allowed {
        severity = Severity::Info;
    }
    let attack: Vec<String> = match kind {
        DetectionKind::BruteForce => vec!["T1110".into(), "T1110.001".into()],
        DetectionKind::HorizontalSweep => vec!["T1046".into(), "T1595.001".into()],
        DetectionKind::NewService => Vec::new(),
        _ => vec!["T1046".into()],
    };
    let mut sample = draft.evidence.clone();
    sample.sort();
    let evidence = sample
        .iter()
        .map(|ev| match names.get(ev.source as usize) {
            Some(n) if n.capture => format!("{}#{}", n.name, ev.at),
            Some(n) => format!("{}:{}", n.name, ev.at),
            None => format!("input {}:{}", ev.source, ev.at),
        })
        .collect();
    let ports_text = portolan_model::port_ranges(&ports);
    let who = draft.src.map_or_else(|| format!("{} sources", draft.srcs.len()), |s| s.to_string());
    let how = match (technique, tool) {
        (Some(t), Tool::Unknown) => format!(" ({} scan)", t.as_str()),
        (Some(t), tool) => format!(" ({} scan, {})", t.as_str(), tool.as_str()),
        (None, Tool::Unknown) => String::new(),
        (None, tool) => format!(" ({})", tool.as_str()),
    };
    let secs = span as f64 / 1e6;
    let summary = match kind {
        DetectionKind::BruteForce => format!(
            "{who} tried {} logins on {} in {secs:.1} s",
            draft.events,
            if ports.is_empty() { "ssh".to_string() } else { format!("port {ports_text}") }
        ),
        DetectionKind::HorizontalSweep => format!(
            "{who} swept {} hosts on {} port{}{how} in {secs:.1} s",
            target_count,
            draft.port_count,
            if draft.port_count == 1 { "" } else { "s" }
        ),
        _ => format!(
            "{who} probed {} port{} of {} host{}{how} in {secs:.1} s",
            draft.port_count,
            if draft.port_count == 1 { "" } else { "s" },
            target_count,
            if target_count == 1 { "" } else { "s" }
        ),
    };
    Detection {
        kind,
        src: draft.src,
        srcs,
        targets,
        target_count,
        ports: ports_text,
        port_count: draft.port_count,
        transport: draft.proto,
        scan_type: technique,
        tool,
        first_seen: time_text(draft.first_us, draft.clock),
        last_seen: time_text(draft.last_us, draft.clock),
        events: draft.events,
        severity,
        attack,
        evidence,
        allowed,
        open: false,
        summary,
    }
}

const TECHNIQUES: fn(usize) -> ScanTechnique = |i| {
    [
        ScanTechnique::Syn,
        ScanTechnique::Connect,
        ScanTechnique::Fin,
        ScanTechnique::Null,
        ScanTechnique::Xmas,
        ScanTechnique::Ack,
        ScanTechnique::Udp,
    ][i]
};

const TOOLS: [Tool; 4] = [Tool::Nmap, Tool::Masscan, Tool::Zmap, Tool::Unknown];

fn raise_one(s: Severity) -> Severity {
    match s {
        Severity::Info => Severity::Low,
        Severity::Low => Severity::Medium,
        Severity::Medium => Severity::High,
        Severity::High | Severity::Critical => Severity::Critical,
    }
}

/// Whether `ip` is in `net/len`.
pub fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let l = u32::from(len.min(32));
            let mask = if l == 0 { 0 } else { u32::MAX << (32 - l) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let l = u32::from(len.min(128));
            let mask = if l == 0 { 0 } else { u128::MAX << (128 - l) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}
