use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;

use super::Context;

/// `portolan` alone: this machine in one screen.
pub fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let home = portolan_session::home::gather(super::today())?;
    let mut out = super::stdout();
    portolan_output::home::write(&mut out, &home, ctx.color)?;
    out.flush().context("writing to standard output")?;
    Ok(ExitCode::SUCCESS)
}
