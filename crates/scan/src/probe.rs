//! One TCP connect probe: a non-blocking `connect()`, its outcome in nmap's terms, and — for
//! ICMP errors — the exact type and code from the socket's error queue (`IP_RECVERR`), which
//! the plain errno cannot tell apart (host unreachable and administratively prohibited both
//! arrive as `EHOSTUNREACH`).

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use portolan_model::{PortState, Reason};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// What one probe found.
#[derive(Debug)]
pub enum Outcome {
    /// A final state for the port.
    State(PortState, Reason),
    /// Nothing came back in time.
    Timeout,
    /// A local, transient failure (out of descriptors or ephemeral ports, self-connect): try
    /// again later without counting a retransmission.
    Again(io::Error),
    /// No route to the target (connect() refused at once, before any packet left).
    NoRoute(io::Error),
    /// A local failure that retrying will not cure.
    Fatal(io::Error),
}

pub(crate) fn reason_for_errno(e: i32) -> Option<(PortState, Reason)> {
    Some(match e {
        libc::ECONNREFUSED => (PortState::Closed, Reason::ConnRefused),
        libc::EHOSTUNREACH => (PortState::Filtered, Reason::HostUnreach),
        libc::ENETUNREACH => (PortState::Filtered, Reason::NetUnreach),
        libc::ENOPROTOOPT => (PortState::Filtered, Reason::ProtoUnreach),
        libc::ETIMEDOUT | libc::EHOSTDOWN => (PortState::Filtered, Reason::NoResponse),
        libc::ENONET => (PortState::Filtered, Reason::Other("dest-unreach".into())),
        libc::EACCES | libc::EPERM => (PortState::Filtered, Reason::Other("local-prohibited".into())),
        _ => return None,
    })
}

/// nmap's reason for an ICMP (v4 type 3) or ICMPv6 (type 1) destination-unreachable code.
pub(crate) fn reason_for_icmp(v6: bool, kind: u8, code: u8) -> Option<(PortState, Reason)> {
    let filtered = |r| Some((PortState::Filtered, r));
    if !v6 && kind == 3 {
        return match code {
            0 | 6 | 11 => filtered(Reason::NetUnreach),
            1 | 7 | 12 => filtered(Reason::HostUnreach),
            2 => filtered(Reason::ProtoUnreach),
            3 => Some((PortState::Closed, Reason::ConnRefused)),
            9 => filtered(Reason::NetProhibited),
            10 => filtered(Reason::HostProhibited),
            13 => filtered(Reason::AdminProhibited),
            _ => filtered(Reason::HostUnreach),
        };
    }
    if v6 && kind == 1 {
        return match code {
            0 => filtered(Reason::NetUnreach),
            1 | 5 | 6 => filtered(Reason::AdminProhibited),
            3 => filtered(Reason::HostUnreach),
            4 => Some((PortState::Closed, Reason::ConnRefused)),
            _ => filtered(Reason::HostUnreach),
        };
    }
    None
}

fn enable_recverr(sock: &Socket, v6: bool) {
    let one: libc::c_int = 1;
    let (level, name) =
        if v6 { (libc::SOL_IPV6, libc::IPV6_RECVERR) } else { (libc::SOL_IP, libc::IP_RECVERR) };
    // SAFETY: setsockopt with a valid int option value on a socket we own.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Reads one queued ICMP error (type, code) from the socket's error queue, if any.
fn icmp_from_errqueue(sock: &Socket, v6: bool) -> Option<(u8, u8)> {
    crate::raw::icmp_from_errqueue(sock.as_raw_fd(), v6)
}

fn classify(err: io::Error, sock: &Socket, v6: bool) -> Outcome {
    let Some(code) = err.raw_os_error() else { return Outcome::Fatal(err) };
    // ICMPv6 "administratively prohibited" arrives as EACCES; a local firewall's EPERM has no
    // ICMP behind it and stays "local-prohibited".
    if matches!(
        code,
        libc::EHOSTUNREACH | libc::ENETUNREACH | libc::ECONNREFUSED | libc::ENOPROTOOPT | libc::EACCES
    ) && let Some((kind, icmp_code)) = icmp_from_errqueue(sock, v6)
        && let Some((s, r)) = reason_for_icmp(v6, kind, icmp_code)
    {
        return Outcome::State(s, r);
    }
    if let Some((s, r)) = reason_for_errno(code) {
        return Outcome::State(s, r);
    }
    match code {
        libc::EADDRNOTAVAIL | libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EAGAIN => {
            Outcome::Again(err)
        }
        _ => Outcome::Fatal(err),
    }
}

fn is_self_connect(sock: &Socket, addr: &SocketAddr) -> bool {
    sock.local_addr().ok().and_then(|l| l.as_socket()).is_some_and(|l| l == *addr)
}

/// Connects to `addr` within `timeout`. Returns the outcome and, for an answer, the time it
/// took. The socket lingers 0 s on close, so an open port gets a reset, not a 4-way close.
pub async fn connect(addr: SocketAddr, timeout: Duration) -> (Outcome, Option<Duration>) {
    let (o, rtt, _) = connect_keep(addr, timeout).await;
    (o, rtt)
}

/// As [`connect`], with a timeout that may change while the probe waits (the host's RTT
/// estimate improves as other probes come back): it is re-read every few milliseconds, in
/// microseconds, from `timeout_us`.
pub async fn connect_adaptive(
    addr: SocketAddr,
    timeout_us: &std::sync::atomic::AtomicU64,
) -> (Outcome, Option<Duration>) {
    let (o, rtt, _) = connect_with(addr, Deadline::Shared(timeout_us)).await;
    (o, rtt)
}

enum Deadline<'a> {
    Fixed(Duration),
    Shared(&'a std::sync::atomic::AtomicU64),
}

impl Deadline<'_> {
    fn get(&self) -> Duration {
        match self {
            Deadline::Fixed(d) => *d,
            Deadline::Shared(a) => Duration::from_micros(a.load(std::sync::atomic::Ordering::Relaxed)),
        }
    }
}

/// As [`connect`], and hands back the connected socket of an open port (to read a banner).
pub async fn connect_keep(
    addr: SocketAddr,
    timeout: Duration,
) -> (Outcome, Option<Duration>, Option<AsyncFd<Socket>>) {
    connect_with(addr, Deadline::Fixed(timeout)).await
}

async fn connect_with(
    addr: SocketAddr,
    deadline: Deadline<'_>,
) -> (Outcome, Option<Duration>, Option<AsyncFd<Socket>>) {
    let v6 = addr.is_ipv6();
    let sock = match Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    ) {
        Ok(s) => s,
        Err(e) => {
            let again =
                matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM));
            return (if again { Outcome::Again(e) } else { Outcome::Fatal(e) }, None, None);
        }
    };
    let _ = sock.set_linger(Some(Duration::ZERO));
    enable_recverr(&sock, v6);
    let start = Instant::now();
    match sock.connect(&SockAddr::from(addr)) {
        Ok(()) => {
            if is_self_connect(&sock, &addr) {
                return (Outcome::Again(io::Error::other("self-connect")), None, None);
            }
            let rtt = start.elapsed();
            // SAFETY: as below; the socket owns its descriptor.
            let afd =
                unsafe { AsyncFd::register_with_interest(sock, Interest::READABLE | Interest::WRITABLE) }
                    .ok();
            return (Outcome::State(PortState::Open, Reason::SynAck), Some(rtt), afd);
        }
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENETUNREACH) => return (Outcome::NoRoute(e), None, None),
        Err(e) => return (classify(e, &sock, v6), Some(start.elapsed()), None),
    }
    // SAFETY: the Socket owns its descriptor, which stays open and unchanged until the
    // AsyncFd (and the Socket inside it) is dropped.
    let afd = match unsafe { AsyncFd::register_with_interest(sock, Interest::READABLE | Interest::WRITABLE) }
    {
        Ok(a) => a,
        Err(e) => return (Outcome::Again(e.into()), None, None),
    };
    let ready = loop {
        let limit = deadline.get();
        let waited = start.elapsed();
        if waited >= limit {
            return (Outcome::Timeout, None, None);
        }
        // re-read a shared deadline at least every 25 ms
        let slice = match deadline {
            Deadline::Fixed(_) => limit - waited,
            Deadline::Shared(_) => (limit - waited).min(Duration::from_millis(25)),
        };
        match tokio::time::timeout(slice, afd.writable()).await {
            Err(_) => continue,
            Ok(Err(e)) => return (Outcome::Fatal(e), None, None),
            Ok(Ok(mut guard)) => {
                guard.clear_ready();
                break start.elapsed();
            }
        }
    };
    let sock = afd.get_ref();
    match sock.take_error() {
        Ok(None) => {
            if is_self_connect(sock, &addr) {
                (Outcome::Again(io::Error::other("self-connect")), None, None)
            } else {
                (Outcome::State(PortState::Open, Reason::SynAck), Some(ready), Some(afd))
            }
        }
        Ok(Some(err)) => {
            let o = classify(err, sock, v6);
            (o, Some(ready), None)
        }
        Err(e) => (Outcome::Fatal(e), None, None),
    }
}

/// Reads what a service sends first, at most `limit` bytes within `wait`. An empty result means
/// the service said nothing (it may wait for the client) or closed.
pub async fn read_banner(afd: &AsyncFd<Socket>, limit: usize, wait: Duration) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = [0u8; 1024];
    while out.len() < limit {
        let guard = match tokio::time::timeout_at(deadline, afd.readable()).await {
            Ok(Ok(g)) => g,
            _ => break,
        };
        let mut guard = guard;
        match guard.try_io(|inner| inner.get_ref().read(&mut buf)) {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n.min(limit - out.len())]),
            Ok(Err(_)) => break,
            Err(_would_block) => continue,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp_codes_map_to_nmap_reasons() {
        assert_eq!(reason_for_icmp(false, 3, 13), Some((PortState::Filtered, Reason::AdminProhibited)));
        assert_eq!(reason_for_icmp(false, 3, 1), Some((PortState::Filtered, Reason::HostUnreach)));
        assert_eq!(reason_for_icmp(false, 3, 0), Some((PortState::Filtered, Reason::NetUnreach)));
        assert_eq!(reason_for_icmp(false, 3, 3), Some((PortState::Closed, Reason::ConnRefused)));
        assert_eq!(reason_for_icmp(true, 1, 1), Some((PortState::Filtered, Reason::AdminProhibited)));
        assert_eq!(reason_for_icmp(true, 1, 4), Some((PortState::Closed, Reason::ConnRefused)));
        assert_eq!(reason_for_icmp(false, 11, 0), None);
    }

    #[tokio::test]
    async fn open_and_closed_on_loopback() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = l.local_addr().unwrap();
        let (o, rtt) = connect(open, Duration::from_secs(2)).await;
        assert!(matches!(o, Outcome::State(PortState::Open, Reason::SynAck)), "{o:?}");
        assert!(rtt.is_some());
        drop(l);
        let (o, _) = connect(open, Duration::from_secs(2)).await;
        assert!(matches!(o, Outcome::State(PortState::Closed, Reason::ConnRefused)), "{o:?}");
    }
}

/// One answer of `portolan check HOST:PORT` (an element of its `-o json` array): the `nc -vz`
/// answer with nmap's state and reason.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct CheckAnswer {
    /// `HOST:PORT` as given.
    pub target: String,
    /// The address connected to.
    pub address: std::net::IpAddr,
    /// The port.
    pub port: u16,
    /// open, closed or filtered.
    pub state: portolan_model::PortState,
    /// nmap's reason (`syn-ack`, `conn-refused`, `no-response`, ...).
    pub reason: portolan_model::Reason,
    /// Connect latency in milliseconds, when the connection was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// The port's name (`portolan_registry::port_name`: nmap's where installed, else IANA's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<&'static str>,
    /// What the service sent first, escaped for display (control bytes as `\xNN`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub banner: Option<String>,
}
