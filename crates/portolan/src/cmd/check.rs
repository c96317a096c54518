use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use portolan_model::PortState;
use portolan_output::{check, records};
use portolan_scan::check::endpoint;

use super::Context;
use crate::cli::CheckArgs;

pub fn run(args: CheckArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let endpoints: Vec<(String, SocketAddr)> =
        args.endpoints.iter().map(|e| endpoint(e)).collect::<Result<_, _>>()?;
    let answers = portolan_scan::check::check(&endpoints, args.timeout, args.banner_wait)?;
    let mut out = super::stdout();
    let rows = answers.iter().map(check::csv_row);
    records::write(&mut out, args.format.into(), &answers, &answers, &check::CSV_HEADER, rows, |o| {
        check::write_table(o, &answers, ctx.color)
    })?;
    out.flush().context("writing to standard output")?;
    Ok(if answers.iter().all(|a| a.state == PortState::Open) { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
