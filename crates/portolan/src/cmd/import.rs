use std::process::ExitCode;

use anyhow::Context as _;
use portolan_model::{Snapshot, Source};
use portolan_output::scan::ScanSink as _;

use super::Context;
use crate::cli::ImportArgs;

pub fn run(args: ImportArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let mut store = if args.store.save { Some(super::open_store(args.store.db.as_deref())?) } else { None };
    let run = portolan_import::read_file(&args.file)?;
    let mut sinks =
        portolan_output::scan::open(args.format, &args.files.files(), args.show.options(true), ctx.color)?;
    sinks.begin(&run).context("writing output")?;
    for h in &run.hosts {
        sinks.host(h).context("writing output")?;
    }
    sinks.end(&run).context("writing output")?;
    drop(sinks);
    if let Some(store) = store.as_mut() {
        let snap = Snapshot::of_scan(Source::Import, run, &portolan_local::hostname(), super::VERSION);
        super::save_snapshot(store, &snap, ctx)?;
    }
    Ok(ExitCode::SUCCESS)
}
