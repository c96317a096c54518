//! `portolan check HOST:PORT`: the `nc -vz` answer — one connect per endpoint (one
//! retransmission, as a scan would), with nmap's state and reason, the connect latency, the
//! registered service and the first bytes the service sends.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use portolan_model::{PortState, Reason, Transport};

use crate::error::{Error, Result};
use crate::probe::{self, CheckAnswer, Outcome};

/// `HOST:PORT`, `[V6]:PORT` or `NAME:PORT` → the text as given and the address (a name is
/// resolved once: its first IPv4 address, else its first address).
pub fn endpoint(s: &str) -> Result<(String, SocketAddr)> {
    let bad = |reason: String| Error::BadEndpoint { given: s.to_string(), reason };
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        rest.split_once("]:").ok_or_else(|| bad("expected [IPv6]:PORT".into()))?
    } else {
        s.rsplit_once(':').ok_or_else(|| bad("expected HOST:PORT".into()))?
    };
    let port: u16 = port
        .parse::<u32>()
        .ok()
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| bad(format!("port {port:?} is not 0-65535")))?;
    if host.is_empty() {
        return Err(bad("no host before the port".into()));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok((s.to_string(), SocketAddr::new(ip, port)));
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::UnknownHost { name: host.to_string(), reason: e.to_string() })?
        .collect();
    let addr = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| Error::UnknownHost { name: host.to_string(), reason: "no address".into() })?;
    Ok((s.to_string(), addr))
}

/// Checks every endpoint at once; the answers come in the order given.
pub fn check(
    endpoints: &[(String, SocketAddr)],
    timeout: Duration,
    banner_wait: Duration,
) -> Result<Vec<CheckAnswer>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(Error::Engine)?;
    let answers: Vec<CheckAnswer> = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for (i, (target, addr)) in endpoints.iter().cloned().enumerate() {
            set.spawn(async move { (i, check_one(target, addr, timeout, banner_wait).await) });
        }
        let mut out: Vec<(usize, CheckAnswer)> = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok(v) = r {
                out.push(v);
            }
        }
        out.sort_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, a)| a).collect()
    });
    if answers.len() != endpoints.len() {
        return Err(Error::Engine(std::io::Error::other("a check did not finish")));
    }
    Ok(answers)
}

async fn check_one(
    target: String,
    addr: SocketAddr,
    timeout: Duration,
    banner_wait: Duration,
) -> CheckAnswer {
    let service = portolan_registry::port_name(addr.port(), Transport::Tcp);
    // one retransmission, as a scan would
    let mut tries = 0;
    loop {
        let (outcome, rtt, sock) = probe::connect_keep(addr, timeout).await;
        let latency_ms = rtt.map(|d| d.as_secs_f64() * 1e3);
        let (state, reason) = match outcome {
            Outcome::State(s, r) => (s, r),
            Outcome::Timeout if tries == 0 => {
                tries += 1;
                continue;
            }
            Outcome::Timeout => (PortState::Filtered, Reason::NoResponse),
            Outcome::Again(_) if tries < 3 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Outcome::NoRoute(_) => (PortState::Filtered, Reason::NetUnreach),
            Outcome::Again(e) | Outcome::Fatal(e) => {
                (PortState::Filtered, Reason::Other(format!("local-error: {}", e.kind())))
            }
        };
        let banner = match sock {
            Some(s) if state == PortState::Open => {
                let bytes = probe::read_banner(&s, 512, banner_wait).await;
                (!bytes.is_empty()).then(|| portolan_model::text::bytes(&bytes, bytes.len()))
            }
            _ => None,
        };
        return CheckAnswer {
            target,
            address: addr.ip(),
            port: addr.port(),
            state,
            reason,
            latency_ms,
            service,
            banner,
        };
    }
}
