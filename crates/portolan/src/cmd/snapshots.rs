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
        let snap = store.load_ref(&r.parse::<SnapshotRef>()?)?;
        if args.xml {
            let Some(run) = &snap.scan else { anyhow::bail!("{r} holds no scan to write as nmap XML") };
            let mut sink = portolan_output::scan::XmlSink::new(&mut out, Default::default());
            portolan_output::scan::write_run(&mut sink, run).context("writing to standard output")?;
        } else {
            records::json(&mut out, &snap)?;
        }
        out.flush().context("writing to standard output")?;
        return Ok(ExitCode::SUCCESS);
    }
    if !args.delete.is_empty() {
        let mut ids = Vec::new();
        let mut runs = Vec::new();
        for r in &args.delete {
            match r.parse::<SnapshotRef>()? {
                SnapshotRef::Run(name) => runs.push(name),
                r => ids.push(store.resolve(&r)?),
            }
        }
        for name in &runs {
            if !store.runs()?.iter().any(|r| &r.name == name) {
                anyhow::bail!("no run {name} in {}", store.location());
            }
        }
        let n = store.delete(&ids)?;
        for name in &runs {
            store.delete_run(name)?;
        }
        if !ctx.quiet {
            let runs = if runs.is_empty() { String::new() } else { format!(" and {} run(s)", runs.len()) };
            eprintln!("portolan: deleted {n} snapshot(s){runs}");
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
    if args.runs {
        let runs = store.runs()?;
        match args.format {
            RecordFormat::Table => snapshots::write_runs(&mut out, &runs)?,
            RecordFormat::Json => records::json(&mut out, &runs)?,
            RecordFormat::Ndjson => records::ndjson(&mut out, &runs)?,
            RecordFormat::Csv => {
                records::csv(&mut out, &snapshots::RUN_CSV_HEADER, snapshots::run_csv_rows(&runs))?
            }
        }
        out.flush().context("writing to standard output")?;
        return Ok(ExitCode::SUCCESS);
    }
    let list = store.list()?;
    match args.format {
        RecordFormat::Table => {
            snapshots::write_human(&mut out, &list, store.location(), ctx.color)?;
            let runs = store.runs()?;
            if !runs.is_empty() {
                writeln!(out)?;
                snapshots::write_runs(&mut out, &runs)?;
            }
        }
        RecordFormat::Json => records::json(&mut out, &list)?,
        RecordFormat::Ndjson => records::ndjson(&mut out, &list)?,
        RecordFormat::Csv => records::csv(&mut out, &snapshots::CSV_HEADER, snapshots::csv_rows(&list))?,
    }
    out.flush().context("writing to standard output")?;
    Ok(ExitCode::SUCCESS)
}
