//! `portolan identify HOST:PORT...` and the `-sV` step of `scan`: which application answers,
//! and whether it is the one the port promises.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use portolan_identify::{Options, Target};
use portolan_model::{Host, PortState, Severity, Transport};
use portolan_output::{escape, identify, records};

use super::Context;
use crate::cli::{IdentifyArgs, RecordFormat, VersionArgs};

/// The identification options of `--version-intensity` and `--version-timeout`.
pub fn options(v: &VersionArgs) -> anyhow::Result<Options> {
    let mut o = Options::default();
    if let Some(i) = v.version_intensity {
        o.intensity = i;
    }
    if let Some(d) = v.version_timeout {
        if d.is_zero() {
            anyhow::bail!("--version-timeout must be above 0");
        }
        o.timeout = d;
    }
    Ok(o)
}

use portolan_identify::Row;

fn parse_target(s: &str) -> anyhow::Result<Target> {
    let (text, transport) = match s.rsplit_once('/') {
        Some((t, proto)) if proto.eq_ignore_ascii_case("udp") => (t, Transport::Udp),
        Some((t, proto)) if proto.eq_ignore_ascii_case("tcp") => (t, Transport::Tcp),
        Some((_, proto)) if !proto.contains(']') && !proto.contains(':') => {
            anyhow::bail!("{s:?}: transport {proto:?} is not tcp or udp")
        }
        _ => (s, Transport::Tcp),
    };
    let (_, addr): (String, SocketAddr) = portolan_scan::check::endpoint(text)?;
    let host = if text.starts_with('[') { "" } else { text.rsplit_once(':').map_or(text, |(h, _)| h) };
    let name = (!host.is_empty() && host.parse::<std::net::IpAddr>().is_err()).then(|| host.to_string());
    Ok(Target { addr, transport, name })
}

pub fn run(args: IdentifyArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let mut opts = options(&args.version)?;
    opts.starttls = !args.no_starttls;
    let fail_on = args.fail_on.and_then(|f| f.0);
    let targets: Vec<Target> =
        args.endpoints.iter().map(|e| parse_target(e)).collect::<anyhow::Result<_>>()?;
    let results = portolan_identify::identify(&targets, &opts)?;
    let rows: Vec<Row> =
        args.endpoints.iter().cloned().zip(results).map(|(target, result)| Row { target, result }).collect();
    let mut out = super::stdout();
    match args.format {
        RecordFormat::Table => identify::write_table(&mut out, &rows, ctx.color)?,
        RecordFormat::Json => records::json(&mut out, &rows)?,
        RecordFormat::Ndjson => records::ndjson(&mut out, &rows)?,
        RecordFormat::Csv => {
            records::csv(&mut out, &identify::CSV_HEADER, rows.iter().map(identify::csv_row))?
        }
    }
    out.flush().context("writing to standard output")?;
    let worst = rows.iter().flat_map(|r| r.result.findings.iter().map(|f| f.severity)).max();
    Ok(match (fail_on, worst) {
        (Some(limit), Some(w)) if w >= limit => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

/// `scan -sV`: identifies every open port of `hosts` and puts what was found in each port's
/// service; notes the verdict's findings on stderr (unless `--quiet`).
/// Identifies the open ports of `hosts` in place (-sV). Returns the addresses of the hosts
/// whose identification a stop request cut short.
pub fn enrich(
    hosts: &mut [Host],
    v: &VersionArgs,
    stop: &portolan_scan::interrupt::Interrupt,
    ctx: &Context,
) -> anyhow::Result<std::collections::HashSet<std::net::IpAddr>> {
    let mut opts = options(v)?;
    opts.stop = Some(stop.flag());
    let mut cut = std::collections::HashSet::new();
    let mut at: Vec<(usize, usize)> = Vec::new();
    let mut targets = Vec::new();
    for (hi, h) in hosts.iter().enumerate() {
        for (pi, p) in h.ports.iter().enumerate() {
            let udp_maybe = p.transport == Transport::Udp && p.state == PortState::OpenFiltered;
            if (p.state == PortState::Open || udp_maybe)
                && matches!(p.transport, Transport::Tcp | Transport::Udp)
            {
                at.push((hi, pi));
                targets.push(Target::new(SocketAddr::new(h.address, p.number), p.transport));
            }
        }
    }
    if targets.is_empty() || stop.stopped() {
        return Ok(targets.iter().map(|t| t.addr.ip()).collect());
    }
    if !ctx.quiet {
        eprintln!(
            "portolan: identifying {} open port{} (-sV)",
            targets.len(),
            if targets.len() == 1 { "" } else { "s" }
        );
    }
    let results = portolan_identify::identify(&targets, &opts)?;
    let mut err = io::stderr().lock();
    for ((hi, pi), r) in at.into_iter().zip(results) {
        if r.status == portolan_identify::Status::Interrupted {
            cut.insert(r.address);
        }
        let port = &mut hosts[hi].ports[pi];
        if let Some(s) = r.service {
            port.service = Some(std::sync::Arc::new(s));
            if port.state == PortState::OpenFiltered {
                port.state = PortState::Open;
            }
        }
        if !ctx.quiet {
            for f in r.findings.iter().filter(|f| f.severity >= Severity::Low) {
                let _ = writeln!(
                    err,
                    "portolan: {}:{}/{}: {}: {}",
                    r.address,
                    r.port,
                    r.transport,
                    f.severity,
                    escape::terminal(&f.title)
                );
            }
        }
    }
    Ok(cut)
}
