use std::io::Write;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use portolan_model::{PortState, Reason, Transport};
use portolan_output::{Cell, Style, Table, escape, records};
use portolan_scan::probe::CheckAnswer as Answer;
use portolan_scan::probe::{self, Outcome};

use super::Context;
use crate::cli::{CheckArgs, RecordFormat};

/// `HOST:PORT`, `[V6]:PORT`, `NAME:PORT` → address (resolved once) and port.
pub(super) fn endpoint(s: &str) -> anyhow::Result<(String, SocketAddr)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once("]:").with_context(|| format!("{s:?}: expected [IPv6]:PORT"))?;
        (h, p)
    } else {
        s.rsplit_once(':').with_context(|| format!("{s:?}: expected HOST:PORT"))?
    };
    let port: u16 = port
        .parse::<u32>()
        .ok()
        .and_then(|p| u16::try_from(p).ok())
        .with_context(|| format!("{s:?}: port {port:?} is not 0-65535"))?;
    if host.is_empty() {
        bail!("{s:?}: no host before the port");
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok((s.to_string(), SocketAddr::new(ip, port)));
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| portolan_scan::Error::UnknownHost { name: host.to_string(), reason: e.to_string() })?
        .collect();
    let addr = addrs.iter().find(|a| a.is_ipv4()).or_else(|| addrs.first()).copied().ok_or_else(|| {
        portolan_scan::Error::UnknownHost { name: host.to_string(), reason: "no address".into() }
    })?;
    Ok((s.to_string(), addr))
}

pub fn run(args: CheckArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let (timeout, banner_wait) = (args.timeout, args.banner_wait);
    let endpoints: Vec<(String, SocketAddr)> =
        args.endpoints.iter().map(|e| endpoint(e)).collect::<anyhow::Result<_>>()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
    let answers: Vec<Answer> = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for (i, (target, addr)) in endpoints.iter().cloned().enumerate() {
            set.spawn(async move { (i, check_one(target, addr, timeout, banner_wait).await) });
        }
        let mut out: Vec<(usize, Answer)> = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok(v) = r {
                out.push(v);
            }
        }
        out.sort_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, a)| a).collect()
    });
    if answers.len() != endpoints.len() {
        bail!("a check did not finish");
    }
    let mut out = super::stdout();
    match args.format {
        RecordFormat::Table => {
            let mut t = Table::new(["TARGET", "STATE", "REASON", "LATENCY", "SERVICE", "FIRST BYTES"]);
            for a in &answers {
                let style = match a.state {
                    PortState::Open => Style::Green,
                    PortState::Closed => Style::Dim,
                    _ => Style::Yellow,
                };
                t.row(vec![
                    Cell::new(&a.target),
                    Cell::styled(a.state.as_str(), style),
                    Cell::new(a.reason.as_str()),
                    Cell::new(a.latency_ms.map_or("-".to_string(), |l| format!("{l:.2} ms"))),
                    Cell::new(a.service.unwrap_or("-")),
                    Cell::new(a.banner.as_deref().unwrap_or("")),
                ]);
            }
            t.render(&mut out, ctx.color)?;
        }
        RecordFormat::Json => records::json(&mut out, &answers)?,
        RecordFormat::Ndjson => records::ndjson(&mut out, &answers)?,
        RecordFormat::Csv => records::csv(
            &mut out,
            &["target", "address", "port", "state", "reason", "latency_ms", "service", "banner"],
            answers.iter().map(|a| {
                vec![
                    a.target.clone(),
                    a.address.to_string(),
                    a.port.to_string(),
                    a.state.to_string(),
                    a.reason.to_string(),
                    a.latency_ms.map(|l| format!("{l:.3}")).unwrap_or_default(),
                    a.service.unwrap_or("").to_string(),
                    a.banner.clone().unwrap_or_default(),
                ]
            }),
        )?,
    }
    out.flush().context("writing to standard output")?;
    Ok(if answers.iter().all(|a| a.state == PortState::Open) { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

async fn check_one(target: String, addr: SocketAddr, timeout: Duration, banner_wait: Duration) -> Answer {
    let service = portolan_registry::service_name(addr.port(), Transport::Tcp);
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
                (!bytes.is_empty()).then(|| escape::bytes(&bytes, bytes.len()))
            }
            _ => None,
        };
        return Answer {
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
