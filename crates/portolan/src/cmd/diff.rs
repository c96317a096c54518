use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use portolan_output::records;
use portolan_session::diff::Changes;

use super::Context;
use crate::cli::{DiffArgs, DiffFormat};

pub fn run(args: DiffArgs, _ctx: &Context) -> anyhow::Result<ExitCode> {
    let t0 = std::time::Instant::now();
    let (changes, read) = portolan_session::diff::diff(&args.a, &args.b, args.db.as_deref())?;
    let mut out = super::stdout();
    match (&changes, args.format) {
        (Changes::Scans(d), DiffFormat::Text) => portolan_output::diff::write_text(&mut out, d)?,
        (Changes::Scans(d), DiffFormat::Json) => records::json(&mut out, d)?,
        (Changes::Local(d), DiffFormat::Text) => portolan_output::diff::write_local_text(&mut out, d)?,
        (Changes::Local(d), DiffFormat::Json) => records::json(&mut out, d)?,
    }
    out.flush().context("writing to standard output")?;
    if std::env::var_os("PORTOLAN_TIMING").is_some() {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        eprintln!("timing: read {:.1} ms, compare and write {:.1} ms", ms(read), ms(t0.elapsed() - read));
    }
    Ok(ExitCode::from(u8::from(changes.cost() > 0)))
}
