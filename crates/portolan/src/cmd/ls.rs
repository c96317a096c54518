use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use portolan_output::{local, records};

use super::Context;
use crate::cli::LsArgs;

pub fn run(args: LsArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let opts = args.options();
    let mut store = if args.store.save { Some(super::open_store(args.store.db.as_deref())?) } else { None };
    let t0 = std::time::Instant::now();
    let inv = portolan_local::inventory(&opts)?;
    let t_inv = t0.elapsed();
    let mut out = super::stdout();
    records::write(
        &mut out,
        args.format.into(),
        &inv,
        &inv.sockets,
        &local::CSV_HEADER,
        local::csv_rows(&inv),
        |o| local::write_human(o, &inv, opts.processes, args.all, ctx.color),
    )?;
    out.flush().context("writing to standard output")?;
    if std::env::var_os("PORTOLAN_TIMING").is_some() {
        eprintln!(
            "timing: inventory {:.2} ms, output {:.2} ms",
            t_inv.as_secs_f64() * 1e3,
            (t0.elapsed() - t_inv).as_secs_f64() * 1e3
        );
    }
    if !ctx.quiet {
        for n in &inv.notes {
            eprintln!("portolan: note: {}", portolan_output::escape::terminal(n));
        }
    }
    if let Some(store) = store.as_mut() {
        super::save_snapshot(store, &portolan_model::Snapshot::of_local(inv, super::VERSION), ctx)?;
    }
    Ok(ExitCode::SUCCESS)
}
