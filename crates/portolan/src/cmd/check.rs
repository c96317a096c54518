use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use portolan_model::PortState;
use portolan_output::{check, records};
use portolan_scan::check::endpoint;

use super::Context;
use crate::cli::{CheckArgs, RecordFormat};

pub fn run(args: CheckArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let endpoints: Vec<(String, SocketAddr)> =
        args.endpoints.iter().map(|e| endpoint(e)).collect::<Result<_, _>>()?;
    let answers = portolan_scan::check::check(&endpoints, args.timeout, args.banner_wait)?;
    let mut out = super::stdout();
    match args.format {
        RecordFormat::Table => check::write_table(&mut out, &answers, ctx.color)?,
        RecordFormat::Json => records::json(&mut out, &answers)?,
        RecordFormat::Ndjson => records::ndjson(&mut out, &answers)?,
        RecordFormat::Csv => records::csv(&mut out, &check::CSV_HEADER, answers.iter().map(check::csv_row))?,
    }
    out.flush().context("writing to standard output")?;
    Ok(if answers.iter().all(|a| a.state == PortState::Open) { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
