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
        let snap = store.load_ref(r)?;
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
            match r {
                SnapshotRef::Run(name) => runs.push(name.clone()),
                r => ids.push(store.resolve(r)?),
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
        let rows = snapshots::run_csv_rows(&runs);
        records::write(&mut out, args.format.into(), &runs, &runs, &snapshots::RUN_CSV_HEADER, rows, |o| {
            snapshots::write_runs(o, &runs)
        })?;
        out.flush().context("writing to standard output")?;
        return Ok(ExitCode::SUCCESS);
    }
    let list = store.list()?;
    // the table lists the runs under the snapshots
    let runs = if args.format == RecordFormat::Table { store.runs()? } else { Vec::new() };
    let rows = snapshots::csv_rows(&list);
    records::write(&mut out, args.format.into(), &list, &list, &snapshots::CSV_HEADER, rows, |o| {
        snapshots::write_human(o, &list, store.location(), ctx.color)?;
        if !runs.is_empty() {
            writeln!(o)?;
            snapshots::write_runs(o, &runs)?;
        }
        Ok(())
    })?;
    out.flush().context("writing to standard output")?;
    Ok(ExitCode::SUCCESS)
}
