//! The identification engine: every target in its own task (at most `parallelism` at once),
//! each bounded by its time budget, each answer by `max_bytes`.
//!
//! Per TCP port: the probes are ordered by likelihood ([`plan`]); each is sent on a fresh
//! connection and its answer read until a matcher names the service, the server pauses
//! (`idle`), closes, or the byte or time bound is reached. The banner wait is the probe
//! `null` (send nothing). A soft match (service known, product not) narrows the remaining
//! probes to that service's. An answer that looks like TLS, or a port registered for TLS,
//! brings the `tls` probe forward: a handshake in inspection mode, then the same search inside
//! the tunnel. SMTP, IMAP, POP3 and FTP sessions are upgraded with STARTTLS to read their
//! certificate. UDP ports get their protocol's request (DNS, NTP, SNMP, Kerberos) and one
//! retransmission.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use portolan_model::{Service, ServiceMethod, Transport, Tunnel};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use crate::data::{self, Data, Probe};
use crate::proto::{self, Found};
use crate::verdict::{self, Expected};
use crate::{Error, Identified, Options, Status, Target, http, tls};

/// Bytes a TLS handshake may read at most (a hostile chain is cut here).
const TLS_HANDSHAKE_LIMIT: usize = 256 * 1024;

/// How long a TLS handshake may take: a server that does not speak TLS usually waits for
/// more bytes in silence, so this bounds the cost of asking.
const TLS_WAIT: Duration = Duration::from_secs(2);

struct Shared {
    data: &'static Data,
    opts: Options,
    tls: Arc<rustls::ClientConfig>,
    now: Timestamp,
}

/// Identifies every target, in the order given.
pub async fn run(targets: &[Target], opts: &Options) -> crate::Result<Vec<Identified>> {
    if opts.intensity > 9 {
        return Err(Error::Intensity { given: opts.intensity });
    }
    let data = data::builtin()?;
    let tls = tls::config().map_err(|e| Error::Tls(e.to_string()))?;
    let shared =
        Arc::new(Shared { data, opts: opts.clone(), tls, now: opts.now.unwrap_or_else(Timestamp::now) });
    let sem = Arc::new(tokio::sync::Semaphore::new(opts.parallelism.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for (i, t) in targets.iter().cloned().enumerate() {
        let shared = Arc::clone(&shared);
        let sem = Arc::clone(&sem);
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            // a hard stop a little past the budget, whatever a task is doing
            let budget = shared.opts.timeout + shared.opts.connect_timeout + Duration::from_millis(500);
            let r = match tokio::time::timeout(budget, one(&shared, &t)).await {
                Ok(r) => r,
                Err(_) => {
                    let mut r = blank(&shared, &t);
                    r.status = Status::NoResponse;
                    r.error = Some("time budget exhausted".into());
                    r.elapsed_ms = budget.as_millis() as u64;
                    r
                }
            };
            (i, r)
        });
    }
    let mut out: Vec<Option<Identified>> = vec![None; targets.len()];
    let stopped = || shared.opts.stop.as_ref().is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst));
    let mut interrupted = false;
    loop {
        tokio::select! {
            res = set.join_next() => match res {
                None => break,
                Some(Ok((i, r))) => out[i] = Some(r),
                // a task that panicked or was aborted: reported below
                Some(Err(_)) => {}
            },
            // the stop request is polled: it is set from a signal thread, outside the runtime
            _ = tokio::time::sleep(Duration::from_millis(50)), if !interrupted => {
                if stopped() {
                    interrupted = true;
                    set.abort_all();
                }
            }
        }
    }
    Ok(out
        .into_iter()
        .zip(targets)
        .map(|(r, t)| {
            r.unwrap_or_else(|| {
                let mut b = blank(&shared, t);
                if interrupted {
                    b.status = Status::Interrupted;
                    b.error = Some("interrupted".into());
                } else {
                    b.error = Some("identification task failed".into());
                }
                b
            })
        })
        .collect())
}

fn blank(sh: &Shared, t: &Target) -> Identified {
    Identified {
        address: t.addr.ip(),
        port: t.addr.port(),
        transport: t.transport,
        status: Status::NoResponse,
        service: None,
        expected: verdict::expectation(sh.data, t.addr.port(), t.transport),
        tls: None,
        http: None,
        banner: None,
        probes: Vec::new(),
        findings: Vec::new(),
        unauthenticated: false,
        elapsed_ms: 0,
        error: None,
    }
}

async fn one(sh: &Shared, t: &Target) -> Identified {
    let start = Instant::now();
    let mut r = blank(sh, t);
    let mut st = State::default();
    match t.transport {
        Transport::Udp => udp(sh, t, &r.expected, &mut st, start).await,
        _ => tcp(sh, t, &r.expected, &mut st, start).await,
    }
    r.probes = st.probes;
    r.banner = st.first.as_deref().map(|b| crate::escape_bytes(b, 160));
    r.tls = st.tls;
    r.error = st.error;
    r.status = if st.best.as_ref().is_some_and(|f| !f.service.is_empty()) {
        Status::Identified
    } else if st.closed {
        Status::Closed
    } else if st.answered {
        Status::Unrecognized
    } else if st.connected {
        Status::Silent
    } else {
        Status::NoResponse
    };
    if let Some(mut f) = st.best {
        if f.service == "http" || f.service == "http-proxy" {
            r.http = st.http;
        }
        f.service = port_name(&f.service, t.addr.port(), st.tunnel).to_string();
        r.unauthenticated = f.noauth;
        r.service = Some(service_of(f, st.tunnel));
    } else if r.status == Status::Silent
        && let Some(exp) = &r.expected
        && let Some(name) = &exp.service
        && sh.data.service(name).is_some_and(|s| s.silent)
    {
        // a discard service shows nothing but silence: the table's guess is all there is
        r.service = Some(Service::from_table(name.clone()));
    }
    r.findings = verdict::judge(sh.data, &r, sh.now);
    r.elapsed_ms = start.elapsed().as_millis() as u64;
    r
}

/// nmap's name for a service that has one name per port: SMB answering on 139 (the NetBIOS
/// session service, where Samba and Windows also serve it) is `netbios-ssn`, on 445 (and
/// elsewhere) `microsoft-ds`.
fn port_name(service: &str, port: u16, tunnel: bool) -> &str {
    match (service, port, tunnel) {
        ("microsoft-ds", 139, false) => "netbios-ssn",
        _ => service,
    }
}

fn service_of(f: Found, tunnel: bool) -> Service {
    let c = |o: Option<String>| o.map(|s| crate::clean(&s)).filter(|s| !s.is_empty());
    Service {
        name: f.service,
        product: c(f.product),
        version: c(f.version),
        extra_info: c(f.info),
        hostname: c(f.hostname),
        os_type: c(f.os),
        device_type: c(f.device),
        tunnel: tunnel.then_some(Tunnel::Ssl),
        method: ServiceMethod::Probed,
        confidence: if f.soft { 8 } else { 10 },
        cpe: f.cpe.iter().map(|s| crate::clean(s)).filter(|s| !s.is_empty()).collect(),
    }
}

#[derive(Default)]
struct State {
    best: Option<Found>,
    first: Option<Vec<u8>>,
    http: Option<http::HttpInfo>,
    probes: Vec<String>,
    tls: Option<tls::TlsInfo>,
    tunnel: bool,
    connected: bool,
    answered: bool,
    closed: bool,
    /// A connection the server closed or reset without a byte (nmap's `tcpwrapped`).
    wrapped: bool,
    error: Option<String>,
}

impl State {
    /// Records an answer; returns true when the search is over (a hard match).
    fn take(&mut self, bytes: &[u8], found: Option<Found>) -> bool {
        if !bytes.is_empty() {
            self.answered = true;
            if self.first.is_none() {
                self.first = Some(bytes[..bytes.len().min(512)].to_vec());
            }
        }
        if let Some(h) = http::parse(bytes)
            && (self.http.is_none() || found.as_ref().is_some_and(|f| !f.soft))
        {
            self.http = Some(h);
        }
        let Some(f) = found else { return false };
        let hard = !f.soft;
        match self.best.take() {
            Some(b) if !b.soft => {
                self.best = Some(b);
                return true;
            }
            Some(b) if f.soft && b.service == f.service => {
                // two soft answers: keep the one that says more, with what the other adds
                let says = |x: &Found| (x.noauth, x.info.as_ref().map_or(0, String::len));
                let (keep, other) = if says(&f) > says(&b) { (f, b) } else { (b, f) };
                self.best = Some(merge(keep, &other));
            }
            // a hard answer after a soft one for the same service keeps the soft one's details
            // (VNC's security types, then its product)
            Some(b) if b.service == f.service => self.best = Some(merge(f, &b)),
            _ => self.best = Some(f),
        }
        hard
    }
    fn soft_service(&self) -> Option<&str> {
        self.best.as_ref().filter(|b| b.soft).map(|b| b.service.as_str())
    }
}

/// Names the service in an answer to `probe`: regex matchers (first hard match wins), the
/// probe's own codec, the codecs of unasked greetings; a soft match if nothing harder.
fn evaluate(sh: &Shared, probe: &Probe, transport: Transport, bytes: &[u8]) -> Option<Found> {
    if bytes.is_empty() {
        return None;
    }
    let codec = probe.builtin.as_deref().and_then(|b| proto::parse(b, transport, bytes));
    let mut soft: Option<Found> = codec.clone().filter(|f| f.soft);
    for m in &sh.data.matchers {
        if !m.probes.is_empty() && !m.probes.iter().any(|p| p == &probe.name) {
            continue;
        }
        let Some(caps) = m.pattern.captures(bytes) else { continue };
        let fill = |t: &Option<String>| t.as_deref().map(|t| data::fill(t, &caps)).filter(|s| !s.is_empty());
        let f = Found {
            service: m.service.clone(),
            product: fill(&m.product),
            version: fill(&m.version),
            info: fill(&m.info),
            hostname: fill(&m.hostname),
            os: fill(&m.os),
            device: fill(&m.device),
            cpe: m.cpe.iter().map(|c| data::fill(c, &caps)).collect(),
            soft: m.soft,
            noauth: m.noauth,
        };
        if m.soft {
            if soft.is_none() {
                soft = Some(f);
            }
            continue;
        }
        // the codec may know more (a DNS answer's text, SNMP's description)
        return Some(match &codec {
            Some(c) if c.service == f.service => merge(f, c),
            _ => f,
        });
    }
    if let Some(c) = codec.filter(|c| !c.soft) {
        return Some(c);
    }
    if let Some(u) = proto::unasked(bytes, sh.now.as_second()) {
        return Some(u);
    }
    soft
}

fn merge(mut a: Found, b: &Found) -> Found {
    for (x, y) in [
        (&mut a.product, &b.product),
        (&mut a.version, &b.version),
        (&mut a.info, &b.info),
        (&mut a.hostname, &b.hostname),
    ] {
        if x.is_none() {
            x.clone_from(y);
        }
    }
    if a.cpe.is_empty() {
        a.cpe.clone_from(&b.cpe);
    }
    a.noauth |= b.noauth;
    a
}

/// The probes for a port, likeliest first: those whose data names the port, then those for
/// the expected service, then the rest up to the intensity.
fn plan<'a>(
    sh: &'a Shared,
    port: u16,
    transport: Transport,
    exp: &Option<Expected>,
    in_tls: bool,
) -> Vec<&'a Probe> {
    let want = exp.as_ref().and_then(|e| e.service.as_deref());
    let expect_tls = exp.as_ref().is_some_and(|e| e.tls);
    let mut scored: Vec<(u8, usize, &Probe)> = sh
        .data
        .probes
        .iter()
        .enumerate()
        .filter(|(_, p)| p.transport == transport)
        .filter(|(_, p)| !in_tls || p.in_tls || p.name == "null")
        .filter_map(|(i, p)| {
            let likely_port = p.ports.contains(&port);
            let likely_service = want.is_some_and(|w| p.services.iter().any(|s| s == w));
            let score = if p.builtin.as_deref() == Some("tls") {
                if in_tls {
                    return None;
                }
                if expect_tls || likely_port { 0 } else { 3 + p.rarity }
            } else if likely_service && (!expect_tls || in_tls) {
                0
            } else if likely_port && (!expect_tls || in_tls) {
                1
            } else {
                if p.rarity > sh.opts.intensity {
                    return None;
                }
                3 + p.rarity
            };
            Some((score, i, p))
        })
        .collect();
    // the banner wait leads unless the expected service is known to wait for the client
    let server_first = match want.and_then(|w| sh.data.service(w)) {
        Some(s) => s.server_first,
        None => true,
    };
    // ... and TLS leads where the port promises it
    let tls_port =
        sh.data.probes.iter().any(|p| p.builtin.as_deref() == Some("tls") && p.ports.contains(&port));
    let tls_first = !in_tls && (expect_tls || tls_port);
    for s in &mut scored {
        if s.2.name == "null" {
            s.0 = if tls_first {
                2
            } else if server_first || in_tls {
                0
            } else {
                2
            };
        }
    }
    scored.sort_by_key(|(score, i, _)| (*score, *i));
    scored.into_iter().map(|(_, _, p)| p).collect()
}

fn payload(p: &Probe, t: &Target) -> Vec<u8> {
    if let Some(b) = &p.builtin {
        return proto::request(b, t.transport);
    }
    let host = t.name.clone().unwrap_or_else(|| match t.addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    });
    replace(&p.send, b"{host}", host.as_bytes())
}

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// An answer as read.
struct Answer {
    bytes: Vec<u8>,
    closed: bool,
}

/// What the bytes read so far say about reading on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Enough {
    /// A certain answer: stop reading.
    Yes,
    /// Part of an answer the probe expects more of (a soft match, as MQTT's CONNACK before the
    /// retained message it subscribed to): wait for the rest up to the probe's own wait, not
    /// just the idle pause.
    Partly,
    /// Nothing known yet: stop when the server pauses.
    No,
}

/// Sends `send`, then reads until `done` says so, the server pauses for `idle` after
/// speaking, closes, `max` bytes arrived, `first_wait` passes in silence, or `deadline`.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    send: &[u8],
    first_wait: Duration,
    deadline: Instant,
    opts: &Options,
    mut done: impl FnMut(&[u8]) -> Enough,
) -> Answer {
    let mut out = Answer { bytes: Vec::new(), closed: false };
    if !send.is_empty() {
        match tokio::time::timeout_at(deadline, s.write_all(send)).await {
            Ok(Ok(())) => {
                let _ = tokio::time::timeout_at(deadline, s.flush()).await;
            }
            _ => {
                out.closed = true;
                // the server may have spoken before it stopped reading: read what is there
            }
        }
    }
    let first_until = (Instant::now() + first_wait).min(deadline);
    let mut buf = vec![0u8; 4096];
    let mut partly = false;
    loop {
        let until = if out.bytes.is_empty() {
            first_until
        } else if partly {
            (Instant::now() + opts.idle).max(first_until).min(deadline)
        } else {
            (Instant::now() + opts.idle).min(deadline)
        };
        let room = opts.max_bytes.saturating_sub(out.bytes.len()).min(buf.len());
        if room == 0 {
            break;
        }
        match tokio::time::timeout_at(until, s.read(&mut buf[..room])).await {
            Err(_) => break,
            Ok(Ok(0)) => {
                out.closed = true;
                break;
            }
            Ok(Ok(n)) => {
                out.bytes.extend_from_slice(&buf[..n]);
                match done(&out.bytes) {
                    Enough::Yes => break,
                    Enough::Partly => partly = true,
                    Enough::No => partly = false,
                }
            }
            Ok(Err(_)) => {
                out.closed = true;
                break;
            }
        }
    }
    out
}

enum Connect {
    Ok(TcpStream),
    Refused,
    /// The handshake completed and the server reset the connection at once (`tcpwrapped`).
    Reset,
    Failed(String),
}

async fn connect(addr: SocketAddr, opts: &Options, deadline: Instant) -> Connect {
    let until = (Instant::now() + opts.connect_timeout).min(deadline);
    match tokio::time::timeout_at(until, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Connect::Ok(s)
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Connect::Refused,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => Connect::Reset,
        Ok(Err(e)) => Connect::Failed(e.to_string()),
        Err(_) => Connect::Failed("connect timed out".into()),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn looks_like_tls(b: &[u8]) -> bool {
    b.len() >= 3 && matches!(b[0], 0x15 | 0x16) && b[1] == 0x03 && b[2] <= 0x04
}

fn server_name(t: &Target) -> ServerName<'static> {
    t.name
        .as_deref()
        .and_then(|n| ServerName::try_from(n.to_string()).ok())
        .unwrap_or_else(|| ServerName::IpAddress(t.addr.ip().into()))
}

fn quick(sh: &Shared, p: &Probe, transport: Transport) -> impl FnMut(&[u8]) -> Enough {
    move |b: &[u8]| match evaluate(sh, p, transport, b) {
        Some(f) if !f.soft => Enough::Yes,
        Some(_) => Enough::Partly,
        None => Enough::No,
    }
}

async fn tcp(sh: &Shared, t: &Target, exp: &Option<Expected>, st: &mut State, start: Instant) {
    let deadline = start + sh.opts.timeout;
    let plan = plan(sh, t.addr.port(), Transport::Tcp, exp, false);
    let mut queue: std::collections::VecDeque<&Probe> = plan.into_iter().collect();
    let mut tried: HashSet<&str> = HashSet::new();
    let want_first = exp.as_ref().and_then(|e| e.service.as_deref()).and_then(|w| sh.data.service(w));
    // where silence is all the expected service ever shows (discard), a little asking is enough
    let deadline = if want_first.is_some_and(|s| s.silent) {
        deadline.min(start + sh.opts.banner_wait * 2)
    } else {
        deadline
    };
    let mut plain_asked = false;
    while let Some(p) = queue.pop_front() {
        if Instant::now() >= deadline || !tried.insert(p.name.as_str()) {
            if Instant::now() >= deadline {
                break;
            }
            continue;
        }
        if let Some(soft) = st.soft_service()
            && p.builtin.as_deref() != Some("tls")
            && p.name != "null"
            && !p.services.iter().any(|s| s == soft)
        {
            continue;
        }
        // a service that speaks first has already shown its banner to an earlier question
        if p.name == "null" && plain_asked {
            continue;
        }
        // the banner wait and the next question at once: a service that waits for the client
        // does not cost the whole banner wait (the question starts at once where the port
        // promises nothing, after a short stagger where a talkative service is expected)
        if p.name == "null"
            && let Some(next) = queue
                .iter()
                .copied()
                .find(|q| q.builtin.as_deref() != Some("tls") && !tried.contains(q.name.as_str()))
            && st.soft_service().is_none()
        {
            let stagger = if want_first.is_some() { STAGGER } else { Duration::ZERO };
            let null_wait = if want_first.is_some_and(|s| s.server_first) {
                (sh.opts.banner_wait * 2).min(Duration::from_millis(p.wait_ms))
            } else {
                sh.opts.banner_wait
            };
            match race(sh, t, p, next, null_wait, stagger, deadline).await {
                Race::Refused => {
                    st.closed = true;
                    st.error = Some("connection refused".into());
                    break;
                }
                Race::Reset => {
                    st.connected = true;
                    st.wrapped = true;
                    break;
                }
                Race::Failed(e) => {
                    st.error = Some(e);
                    break;
                }
                Race::Done(results) => {
                    st.connected = true;
                    plain_asked = true;
                    let mut over = false;
                    for (probe, ans) in results {
                        tried.insert(probe.name.as_str());
                        queue.retain(|q| q.name != probe.name);
                        st.probes.push(probe.name.clone());
                        st.wrapped |= ans.bytes.is_empty() && ans.closed;
                        let found = evaluate(sh, probe, Transport::Tcp, &ans.bytes);
                        let tlsish =
                            looks_like_tls(&ans.bytes) || contains(&ans.bytes, b"sent to HTTPS port");
                        if st.take(&ans.bytes, found) {
                            over = true;
                            break;
                        }
                        if tlsish
                            && !tried.contains("tls")
                            && let Some(tp) =
                                sh.data.probes.iter().find(|x| x.builtin.as_deref() == Some("tls"))
                        {
                            queue.push_front(tp);
                        }
                    }
                    if over {
                        break;
                    }
                    continue;
                }
            }
        }
        let stream = match connect(t.addr, &sh.opts, deadline).await {
            Connect::Ok(s) => s,
            Connect::Refused => {
                st.closed = !st.connected;
                if st.error.is_none() {
                    st.error = Some("connection refused".into());
                }
                break;
            }
            Connect::Reset => {
                st.connected = true;
                st.wrapped = true;
                break;
            }
            Connect::Failed(e) => {
                st.error = Some(e);
                break;
            }
        };
        st.connected = true;
        st.probes.push(p.name.clone());
        if p.builtin.as_deref() == Some("tls") {
            let wait = deadline.saturating_duration_since(Instant::now()).min(TLS_WAIT);
            match tls::handshake(&sh.tls, stream, server_name(t), wait, TLS_HANDSHAKE_LIMIT, sh.now).await {
                Ok((s, info)) => {
                    st.tls = Some(info);
                    st.tunnel = true;
                    st.answered = true;
                    inner(sh, t, exp, st, s, deadline).await;
                    if st.best.is_none() {
                        st.best = Some(Found { service: "ssl".into(), soft: true, ..Found::default() });
                        st.tunnel = false;
                        if let Some(b) = st.best.as_mut() {
                            b.info = Some("TLS service not recognised inside".into());
                        }
                    }
                    return;
                }
                Err(f) => {
                    if st.error.is_none() {
                        st.error = Some(f.reason);
                    }
                    let null = sh.data.probe("null").unwrap_or(p);
                    let found = evaluate(sh, null, Transport::Tcp, &f.seen);
                    if st.take(&f.seen, found) {
                        break;
                    }
                    continue;
                }
            }
        }
        let mut stream = stream;
        let send = payload(p, t);
        let first_wait = if p.name == "null" {
            // a port whose service speaks first is worth the whole wait
            if want_first.is_some_and(|s| s.server_first) {
                (sh.opts.banner_wait * 2).min(Duration::from_millis(p.wait_ms))
            } else {
                sh.opts.banner_wait
            }
        } else {
            Duration::from_millis(p.wait_ms)
        };
        let ans =
            exchange(&mut stream, &send, first_wait, deadline, &sh.opts, quick(sh, p, Transport::Tcp)).await;
        drop(stream);
        plain_asked = true;
        let found = evaluate(sh, p, Transport::Tcp, &ans.bytes);
        let tlsish = looks_like_tls(&ans.bytes) || contains(&ans.bytes, b"sent to HTTPS port");
        if st.take(&ans.bytes, found) {
            break;
        }
        if tlsish
            && !tried.contains("tls")
            && let Some(tp) = sh.data.probes.iter().find(|x| x.builtin.as_deref() == Some("tls"))
        {
            queue.push_front(tp);
        }
        st.wrapped |= ans.bytes.is_empty() && ans.closed;
    }
    // the handshake completes, then the server hangs up without a word (tcpwrappers, a
    // firewall's proxy, a service that refuses this client): named as nmap names it
    if st.best.is_none() && !st.answered && st.wrapped && !st.tunnel {
        st.best = Some(Found { service: "tcpwrapped".into(), ..Found::default() });
    }
    if sh.opts.starttls
        && !st.tunnel
        && Instant::now() < deadline
        && let Some(name) = st.best.as_ref().map(|b| b.service.clone())
        && let Some(dialogue) = starttls_dialogue(&name)
    {
        starttls(sh, t, st, dialogue, deadline).await;
    }
}

/// An answer and whether it names the service outright.
type Judged = (Answer, bool);

/// How long a banner may take before the next question is asked alongside.
const STAGGER: Duration = Duration::from_millis(500);

enum Race<'a> {
    Done(Vec<(&'a Probe, Answer)>),
    Refused,
    Reset,
    Failed(String),
}

/// Waits for a banner on one connection while asking `next` on another (after `stagger`).
/// Stops as soon as either answer names the service; answers come back banner first.
async fn race<'a>(
    sh: &'a Shared,
    t: &Target,
    null: &'a Probe,
    next: &'a Probe,
    null_wait: Duration,
    stagger: Duration,
    deadline: Instant,
) -> Race<'a> {
    let mut s1 = match connect(t.addr, &sh.opts, deadline).await {
        Connect::Ok(s) => s,
        Connect::Refused => return Race::Refused,
        Connect::Reset => return Race::Reset,
        Connect::Failed(e) => return Race::Failed(e),
    };
    let banner = async {
        let a = exchange(&mut s1, b"", null_wait, deadline, &sh.opts, quick(sh, null, Transport::Tcp)).await;
        let hard = evaluate(sh, null, Transport::Tcp, &a.bytes).is_some_and(|f| !f.soft);
        (a, hard)
    };
    let question = async {
        tokio::time::sleep(stagger).await;
        let Connect::Ok(mut s2) = connect(t.addr, &sh.opts, deadline).await else {
            return (Answer { bytes: Vec::new(), closed: true }, false);
        };
        let send = payload(next, t);
        // no longer than the banner wait: a silent answer to a guess sends us to the next guess
        let first_wait = Duration::from_millis(next.wait_ms).min(null_wait.max(sh.opts.banner_wait));
        let a =
            exchange(&mut s2, &send, first_wait, deadline, &sh.opts, quick(sh, next, Transport::Tcp)).await;
        let hard = evaluate(sh, next, Transport::Tcp, &a.bytes).is_some_and(|f| !f.soft);
        (a, hard)
    };
    tokio::pin!(banner, question);
    let (mut ra, mut rb): (Option<Judged>, Option<Judged>) = (None, None);
    loop {
        tokio::select! {
            r = &mut banner, if ra.is_none() => ra = Some(r),
            r = &mut question, if rb.is_none() => rb = Some(r),
        }
        let a_hard = ra.as_ref().is_some_and(|r| r.1);
        // an answer in TLS means the banner will not come: the tunnel is the next question
        let b_hard = rb.as_ref().is_some_and(|r| r.1 || looks_like_tls(&r.0.bytes));
        // a banner that names the service ends it; so does an answer while the banner is empty
        if a_hard
            || (b_hard && ra.as_ref().is_none_or(|r| r.0.bytes.is_empty()))
            || (ra.is_some() && rb.is_some())
        {
            break;
        }
    }
    let mut out = Vec::new();
    if let Some((a, _)) = ra {
        out.push((null, a));
    }
    if let Some((b, _)) = rb {
        out.push((next, b));
    }
    Race::Done(out)
}

/// Identification inside a TLS session: the banner (or the expected service's probe) on the
/// first session, then one new session per further probe.
async fn inner(
    sh: &Shared,
    t: &Target,
    exp: &Option<Expected>,
    st: &mut State,
    first: tls::Stream,
    deadline: Instant,
) {
    let mut plan = plan(sh, t.addr.port(), Transport::Tcp, exp, true);
    // ALPN names the protocol inside
    if st.tls.as_ref().and_then(|i| i.alpn.as_deref()).is_some_and(|a| a.starts_with("http"))
        && let Some(pos) = plan.iter().position(|p| p.services.iter().any(|s| s == "http"))
    {
        let p = plan.remove(pos);
        plan.insert(0, p);
    }
    let want_server_first = exp
        .as_ref()
        .and_then(|e| e.service.as_deref())
        .and_then(|w| sh.data.service(w))
        .map(|s| s.server_first);
    if want_server_first == Some(false)
        && let Some(pos) = plan.iter().position(|p| p.name == "null")
    {
        let p = plan.remove(pos);
        plan.insert(plan.len().min(1), p);
    }
    let mut session = Some(first);
    for p in plan {
        if Instant::now() >= deadline {
            break;
        }
        if let Some(soft) = st.soft_service()
            && p.name != "null"
            && !p.services.iter().any(|s| s == soft)
        {
            continue;
        }
        let mut s = match session.take() {
            Some(s) => s,
            None => {
                let Connect::Ok(tcp) = connect(t.addr, &sh.opts, deadline).await else { break };
                let wait = deadline.saturating_duration_since(Instant::now()).min(TLS_WAIT);
                match tls::handshake(&sh.tls, tcp, server_name(t), wait, TLS_HANDSHAKE_LIMIT, sh.now).await {
                    Ok((s, _)) => s,
                    Err(_) => break,
                }
            }
        };
        st.probes.push(format!("tls/{}", p.name));
        let first_wait = if p.name == "null" {
            if want_server_first == Some(true) {
                Duration::from_millis(p.wait_ms)
            } else {
                sh.opts.banner_wait.min(Duration::from_millis(500))
            }
        } else {
            Duration::from_millis(p.wait_ms)
        };
        let ans =
            exchange(&mut s, &payload(p, t), first_wait, deadline, &sh.opts, quick(sh, p, Transport::Tcp))
                .await;
        let found = evaluate(sh, p, Transport::Tcp, &ans.bytes);
        let hard = st.take(&ans.bytes, found);
        // a null probe that got nothing leaves the session usable for the next question
        if p.name == "null" && ans.bytes.is_empty() && !ans.closed {
            session = Some(s);
        }
        if hard {
            break;
        }
    }
}

/// A STARTTLS dialogue: the greeting's final line, then (command, expected reply) pairs.
struct Dialogue {
    greeting: &'static str,
    steps: &'static [(&'static str, &'static str)],
    name: &'static str,
}

fn starttls_dialogue(service: &str) -> Option<Dialogue> {
    Some(match service {
        "smtp" => Dialogue {
            greeting: "220 ",
            steps: &[("EHLO portolan.invalid\r\n", "250 "), ("STARTTLS\r\n", "220")],
            name: "STARTTLS",
        },
        "imap" => Dialogue { greeting: "* OK", steps: &[("a1 STARTTLS\r\n", "a1 OK")], name: "STARTTLS" },
        "pop3" => Dialogue { greeting: "+OK", steps: &[("STLS\r\n", "+OK")], name: "STLS" },
        "ftp" => Dialogue { greeting: "220 ", steps: &[("AUTH TLS\r\n", "234")], name: "AUTH TLS" },
        _ => return None,
    })
}

/// Whether a reply holds a final line starting with `prefix`.
fn has_line(b: &[u8], prefix: &str) -> bool {
    b.split(|c| *c == b'\n').any(|l| l.starts_with(prefix.as_bytes()))
}

async fn starttls(sh: &Shared, t: &Target, st: &mut State, d: Dialogue, deadline: Instant) {
    let Connect::Ok(mut s) = connect(t.addr, &sh.opts, deadline).await else { return };
    let wait = Duration::from_secs(3);
    let line = |b: &[u8], want| if has_line(b, want) { Enough::Yes } else { Enough::No };
    let g = exchange(&mut s, b"", wait, deadline, &sh.opts, |b| line(b, d.greeting)).await;
    if !has_line(&g.bytes, d.greeting) {
        return;
    }
    for (cmd, reply) in d.steps {
        let a = exchange(&mut s, cmd.as_bytes(), wait, deadline, &sh.opts, |b| line(b, reply)).await;
        if !has_line(&a.bytes, reply) {
            return;
        }
    }
    st.probes.push(format!("starttls/{}", d.name.to_ascii_lowercase().replace(' ', "-")));
    let wait = deadline.saturating_duration_since(Instant::now()).min(TLS_WAIT);
    if let Ok((_, mut info)) =
        tls::handshake(&sh.tls, s, server_name(t), wait, TLS_HANDSHAKE_LIMIT, sh.now).await
    {
        info.starttls = Some(d.name.to_string());
        st.tls = Some(info);
    }
}

async fn udp(sh: &Shared, t: &Target, exp: &Option<Expected>, st: &mut State, start: Instant) {
    let deadline = start + sh.opts.timeout;
    let bind: SocketAddr = if t.addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().unwrap_or(t.addr);
    for p in plan(sh, t.addr.port(), Transport::Udp, exp, false) {
        if Instant::now() >= deadline {
            break;
        }
        let Ok(sock) = UdpSocket::bind(bind).await else { return };
        // a connected socket takes answers from the port asked and hears its ICMP port
        // unreachable; a probe whose answer comes from another port (TFTP) sends unconnected
        // and takes an answer from any port of the same address
        if !p.any_port && sock.connect(t.addr).await.is_err() {
            return;
        }
        st.probes.push(p.name.clone());
        let send = payload(p, t);
        let mut buf = vec![0u8; sh.opts.max_bytes.clamp(512, 65_536)];
        let mut got: Option<usize> = None;
        // the request and one retransmission
        for attempt in 0..2 {
            let _ = if p.any_port { sock.send_to(&send, t.addr).await } else { sock.send(&send).await };
            let wait = Duration::from_millis(p.wait_ms / 2 + 200 * attempt);
            let until = (Instant::now() + wait).min(deadline);
            let recv = async {
                if !p.any_port {
                    return sock.recv(&mut buf).await;
                }
                loop {
                    let (n, from) = sock.recv_from(&mut buf).await?;
                    if from.ip() == t.addr.ip() {
                        return Ok(n);
                    }
                }
            };
            match tokio::time::timeout_at(until, recv).await {
                Ok(Ok(n)) => {
                    got = Some(n);
                    break;
                }
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    st.closed = true;
                    st.error = Some("port unreachable".into());
                    return;
                }
                _ => {}
            }
        }
        let Some(n) = got else { continue };
        st.connected = true;
        let found = evaluate(sh, p, Transport::Udp, &buf[..n]);
        if st.take(&buf[..n], found) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn shared() -> Shared {
        Shared {
            data: data::builtin().unwrap(),
            opts: Options::default(),
            tls: tls::config().unwrap(),
            now: Timestamp::now(),
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 400, ..Default::default() })]

        /// Every probe's matchers and codec, on both transports, read any answer without a
        /// panic: arbitrary bytes, and the probe's own request (what an echo server sends
        /// back) with bytes changed and cut.
        #[test]
        fn any_answer_to_any_probe_is_read_without_panic(
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            edits in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()), 0..6),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let sh = shared();
            for probe in &sh.data.probes {
                for transport in [Transport::Tcp, Transport::Udp] {
                    let _ = evaluate(&sh, probe, transport, &noise);
                    let mut echo = probe.builtin.as_deref().map_or_else(|| probe.send.clone(), |b| proto::request(b, transport));
                    for (at, b) in &edits {
                        if !echo.is_empty() {
                            let i = at.index(echo.len());
                            echo[i] = *b;
                        }
                    }
                    let _ = evaluate(&sh, probe, transport, &echo);
                    let _ = evaluate(&sh, probe, transport, &echo[..cut.index(echo.len() + 1)]);
                }
            }
            let _ = crate::http::parse(&noise);
        }
    }

    #[test]
    fn smb_on_the_netbios_session_port_is_netbios_ssn() {
        assert_eq!(port_name("microsoft-ds", 139, false), "netbios-ssn");
        assert_eq!(port_name("microsoft-ds", 445, false), "microsoft-ds");
        assert_eq!(port_name("http", 139, false), "http");
    }

    #[test]
    fn plans_put_the_port_promise_first() {
        let sh = shared();
        let names = |port: u16| {
            let exp = verdict::expectation(sh.data, port, Transport::Tcp);
            plan(&sh, port, Transport::Tcp, &exp, false).iter().map(|p| p.name.clone()).collect::<Vec<_>>()
        };
        assert_eq!(names(443)[0], "tls");
        assert_eq!(names(22)[0], "null");
        assert_eq!(names(80)[0], "http-get");
        assert_eq!(names(389)[0], "ldap-rootdse");
        // a light intensity leaves rare probes out, but never the port's own
        let mut light = shared();
        light.opts.intensity = 0;
        let exp = verdict::expectation(light.data, 3306, Transport::Tcp);
        let few = plan(&light, 3306, Transport::Tcp, &exp, false);
        assert!(few.len() < plan(&sh, 3306, Transport::Tcp, &exp, false).len());
    }

    #[test]
    fn matchers_name_known_banners() {
        let sh = shared();
        let null = sh.data.probe("null").unwrap();
        let f = evaluate(&sh, null, Transport::Tcp, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n").unwrap();
        assert_eq!(f.service, "ssh");
        assert_eq!(f.product.as_deref(), Some("OpenSSH"));
        assert_eq!(f.version.as_deref(), Some("9.2p1"));
        // VNC: the security types after the version say whether a password is needed
        let vnc = sh.data.probe("vnc-version").unwrap();
        let f = evaluate(&sh, vnc, Transport::Tcp, b"RFB 003.008\n\x02\x02\x01").unwrap();
        assert!(f.noauth && f.soft, "{f:?}");
        let f = evaluate(&sh, vnc, Transport::Tcp, b"RFB 003.008\n\x01\x02").unwrap();
        assert!(!f.noauth && f.soft, "{f:?}");
        assert_eq!(f.info.as_deref(), Some("protocol 3.8"));
        // ... and the refusal of a newer version names TigerVNC (Xvnc 1.12's words)
        let newer = sh.data.probe("vnc-newer-version").unwrap();
        let said = b"RFB 003.008\n\x00\x00\x00\x001Client needs protocol version 4.1, server has 3.8";
        let f = evaluate(&sh, newer, Transport::Tcp, said).unwrap();
        assert_eq!((f.product.as_deref(), f.soft), (Some("TigerVNC"), false), "{f:?}");
        let f = evaluate(&sh, newer, Transport::Tcp, b"RFB 003.008\n\x00\x00\x00\x00\x07go away").unwrap();
        assert_eq!((f.product, f.soft), (None, false));
        // the greeting alone does not end the wait for the refusal
        assert!(evaluate(&sh, newer, Transport::Tcp, b"RFB 003.008\n").is_none_or(|f| f.soft));
        // the soft match's security types survive the hard one
        let mut st = State::default();
        assert!(!st.take(b"x", evaluate(&sh, vnc, Transport::Tcp, b"RFB 003.008\n\x01\x01")));
        assert!(!st.take(b"x", evaluate(&sh, null, Transport::Tcp, b"RFB 003.008\n")));
        assert!(st.take(b"x", evaluate(&sh, newer, Transport::Tcp, said)));
        let best = st.best.unwrap();
        assert_eq!(best.product.as_deref(), Some("TigerVNC"));
        assert_eq!(best.info.as_deref(), Some("protocol 3.8; security type None"));
        assert!(best.noauth && !best.soft);
        // TigerVNC's blacklist answer names it too, to any probe
        let f =
            evaluate(&sh, null, Transport::Tcp, b"RFB 003.003\n\0\0\0\0\0\0\0\x1aToo many security failures")
                .unwrap();
        assert_eq!((f.product.as_deref(), f.soft), (Some("TigerVNC"), false), "{f:?}");
        // BSD finger's empty list
        let finger = sh.data.probe("finger-list").unwrap();
        let f = evaluate(&sh, finger, Transport::Tcp, b"No one logged on.\r\n").unwrap();
        assert_eq!(f.product.as_deref(), Some("BSD fingerd"));
        let f = evaluate(&sh, null, Transport::Tcp, b"RFB 003.008\n").unwrap();
        assert!(f.soft, "a bare version asks for the security types: {f:?}");
        let get = sh.data.probe("http-get").unwrap();
        let f =
            evaluate(&sh, get, Transport::Tcp, b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n\r\n").unwrap();
        assert_eq!((f.service.as_str(), f.product.as_deref()), ("http", Some("nginx")));
        assert_eq!(f.version.as_deref(), Some("1.22.1"));
    }

    /// The answers the lab's daemons gave (scripts/idlab.sh), byte for byte, name them.
    #[test]
    fn probed_services_are_named_by_their_answers() {
        let sh = shared();
        let ask = |probe: &str, transport: Transport, answer: &[u8]| {
            let p = sh.data.probe(probe).unwrap();
            assert_eq!(p.transport, transport, "{probe}");
            evaluate(&sh, p, transport, answer)
        };
        // pptpd 1.4.0: host "local", vendor "linux", firmware 1
        let mut sccrp =
            vec![0x00, 0x9c, 0x00, 0x01, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x02, 0x00, 0x00, 0x01, 0x00];
        sccrp.extend_from_slice(&[0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x01]);
        let mut field = [0u8; 64];
        field[..5].copy_from_slice(b"local");
        sccrp.extend_from_slice(&field);
        field = [0u8; 64];
        field[..5].copy_from_slice(b"linux");
        sccrp.extend_from_slice(&field);
        let f = ask("pptp-start", Transport::Tcp, &sccrp).unwrap();
        assert_eq!((f.service.as_str(), f.product.as_deref()), ("pptp", Some("pptpd")));
        assert_eq!(f.info.as_deref(), Some("vendor linux; protocol 1.0; firmware 1"));
        assert!(!f.soft);
        // another vendor is reported as it says, with its host name; a cut reply is nothing yet
        sccrp[92..100].copy_from_slice(b"MikroTik");
        sccrp[28..33].copy_from_slice(b"gw-01");
        let f = ask("pptp-start", Transport::Tcp, &sccrp).unwrap();
        assert_eq!((f.product.as_deref(), f.hostname.as_deref()), (Some("MikroTik"), Some("gw-01")));
        assert!(ask("pptp-start", Transport::Tcp, &sccrp[..100]).is_none());
        // git daemon 2.39 with and without --informative-errors
        let f = ask("git-upload-pack", Transport::Tcp, b"001dERR no such repository: /").unwrap();
        assert_eq!((f.service.as_str(), f.product.as_deref()), ("git", Some("git daemon")));
        let f =
            ask("git-upload-pack", Transport::Tcp, b"0036ERR access denied or repository not exported: /")
                .unwrap();
        assert_eq!(f.product.as_deref(), Some("git daemon"));
        let adv = b"00f1a3f1e0c6b5d4a3f1e0c6b5d4a3f1e0c6b5d4a3f1 HEAD\0multi_ack thin-pack side-band agent=git/2.39.5\n";
        let f = ask("git-upload-pack", Transport::Tcp, adv).unwrap();
        assert_eq!(f.version.as_deref(), Some("2.39.5"));
        // net-snmp's ClosePDU to an unknown SMUX peer
        let f = ask("smux-open", Transport::Tcp, b"A\x01\x05").unwrap();
        assert_eq!(f.service, "smux");
        assert_eq!(f.info.as_deref(), Some("peer refused: authentication failure"));
        assert!(ask("smux-open", Transport::Tcp, b"A\x02\x05").is_none());
        // UDP: tftpd-hpa's error, memcached's framed VERSION, echo, daytime
        let f = ask("tftp-rrq", Transport::Udp, b"\x00\x05\x00\x01File not found\x00").unwrap();
        assert_eq!((f.service.as_str(), f.info.as_deref()), ("tftp", Some("error: File not found")));
        let f = ask("memcached-version-udp", Transport::Udp, b"PT\x00\x00\x00\x01\x00\x00VERSION 1.6.18\r\n")
            .unwrap();
        assert_eq!((f.product.as_deref(), f.version.as_deref()), (Some("Memcached"), Some("1.6.18")));
        assert!(f.noauth);
        let echo = proto::request("echo", Transport::Udp);
        assert_eq!(ask("echo-udp", Transport::Udp, &echo).unwrap().service, "echo");
        assert_eq!(
            ask("daytime-udp", Transport::Udp, b"Sat Dec  5 22:50:36 2026\r\n").unwrap().service,
            "daytime"
        );
        // nmbd 4.17's node status: names, workgroup LAB, a zero unit id
        let nbstat = b"PT\x84\x00\x00\x00\x00\x01\x00\x00\x00\x00 CKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\x00\x00!\x00\x01\x00\x00\x00\x00\x00\xad\x07LABSMB         \x00\x04\x00LABSMB         \x03\x04\x00LABSMB          \x04\x00\x01\x02__MSBROWSE__\x02\x01\x84\x00LAB            \x00\x84\x00LAB            \x1d\x04\x00LAB            \x1e\x84\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
        let f = ask("nbstat", Transport::Udp, nbstat).unwrap();
        assert_eq!((f.service.as_str(), f.product.as_deref()), ("netbios-ns", Some("Samba nmbd")));
        assert_eq!((f.info.as_deref(), f.hostname.as_deref()), (Some("workgroup: LAB"), Some("LABSMB")));
        // a unit id that is a MAC address names no product, and says the address
        let mut other = nbstat.to_vec();
        let at = other.len() - 46;
        other[at..at + 6].copy_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        let f = ask("nbstat", Transport::Udp, &other).unwrap();
        assert_eq!(f.product, None);
        assert_eq!(f.info.as_deref(), Some("workgroup: LAB; MAC 52:54:00:12:34:56"));
    }
}
