//! `portolan identify HOST:PORT...` and the `-sV` step of `scan`: which application answers,
//! and whether it is the one the port promises.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use portolan_identify::Target;
use portolan_model::Transport;
use portolan_output::{identify, records};

use super::Context;
use crate::cli::IdentifyArgs;

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
    let mut opts = args.version.options()?;
    opts.starttls = !args.no_starttls;
    let fail_on = args.fail_on;
    let targets: Vec<Target> =
        args.endpoints.iter().map(|e| parse_target(e)).collect::<anyhow::Result<_>>()?;
    let results = portolan_identify::identify(&targets, &opts)?;
    let rows: Vec<Row> =
        args.endpoints.iter().cloned().zip(results).map(|(target, result)| Row { target, result }).collect();
    let mut out = super::stdout();
    let csv = rows.iter().map(identify::csv_row);
    records::write(&mut out, args.format.into(), &rows, &rows, &identify::CSV_HEADER, csv, |o| {
        identify::write_table(o, &rows, ctx.color)
    })?;
    out.flush().context("writing to standard output")?;
    let failing = rows.iter().any(|r| fail_on.is_some_and(|f| f.fails_any(&r.result.findings)));
    Ok(ExitCode::from(u8::from(failing)))
}
