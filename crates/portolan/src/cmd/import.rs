use std::process::ExitCode;

use anyhow::Context as _;

use super::Context;
use crate::cli::ImportArgs;
use crate::outputs;

pub fn run(args: ImportArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let run = portolan_import::read_file(&args.file)?;
    let mut sinks = outputs::open(args.format, &args.files, &args.show, true, ctx)?;
    sinks.begin(&run).context("writing output")?;
    for h in &run.hosts {
        sinks.host(h).context("writing output")?;
    }
    sinks.end(&run).context("writing output")?;
    Ok(ExitCode::SUCCESS)
}
