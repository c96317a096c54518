use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use portolan_output::{records, snapshots};
use portolan_store::SnapshotRef;

use super::Context;
use crate::cli::{RecordFormat, SnapshotsArgs};

/// `90d`, `12h`, `2w`, `30m` → seconds.
pub fn run(args: SnapshotsArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let mut store = super::open_store(args.db.as_deref())?;
    let mut out = super::stdout();
    if let Some(r) = &args.show {
        let id = store.resolve(&r.parse::<SnapshotRef>()?)?;
        let snap = store.load(id)?;
        records::json(&mut out, &snap)?;
        out.flush().context("writing to standard output")?;
        return Ok(ExitCode::SUCCESS);
    }
    if !args.delete.is_empty() {
        let mut ids = Vec::new();
        for r in &args.delete {
            ids.push(store.resolve(&r.parse::<SnapshotRef>()?)?);
        }
        let n = store.delete(&ids)?;
        if !ctx.quiet {
            eprintln!("portolan: deleted {n} snapshot(s)");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.keep.is_some() || args.older_than.is_some() {
        let before = match &args.older_than {
            Some(a) => Some(
                jiff::Timestamp::now().checked_sub(*a).context("--older-than reaches before the epoch")?,
            ),
            None => None,
        };
        let gone = store.prune(args.keep, before)?;
        if !ctx.quiet {
            eprintln!("portolan: pruned {} snapshot(s)", gone.len());
        }
    }
    let list = store.list()?;
    match args.format {
        RecordFormat::Table => snapshots::write_human(&mut out, &list, store.location(), ctx.color)?,
        RecordFormat::Json => records::json(&mut out, &list)?,
        RecordFormat::Ndjson => records::ndjson(&mut out, &list)?,
        RecordFormat::Csv => records::csv(&mut out, &snapshots::CSV_HEADER, snapshots::csv_rows(&list))?,
    }
    out.flush().context("writing to standard output")?;
    Ok(ExitCode::SUCCESS)
}
