use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use portolan_model::{LocalInventory, ScanRun};
use portolan_output::records;
use portolan_store::{SnapshotRef, Store};

use super::Context;
use crate::cli::{DiffArgs, DiffFormat};

/// What one side holds.
enum Side {
    Scan(ScanRun),
    Local(LocalInventory),
}

/// A file when one exists by that name, else a snapshot reference (resolved now, so that
/// `last` means the same snapshot for both sides).
enum Spec {
    File(String),
    Snapshot(i64),
    Run(SnapshotRef),
}

fn classify(spec: &str, db: Option<&str>, store: &mut Option<Store>) -> anyhow::Result<Spec> {
    if Path::new(spec).exists() {
        return Ok(Spec::File(spec.to_string()));
    }
    let Ok(r) = spec.parse::<SnapshotRef>() else {
        bail!(
            "{spec}: no such file, and not a snapshot reference (give an nmap XML file, a JSON scan from `portolan scan -oJ`, or a snapshot: an id, last, last~N, run:NAME)"
        );
    };
    if store.is_none() {
        *store = Some(super::open_store(db)?);
    }
    let Some(st) = store.as_mut() else { bail!("no snapshot database") };
    if matches!(r, SnapshotRef::Run(_)) {
        return Ok(Spec::Run(r));
    }
    Ok(Spec::Snapshot(st.resolve(&r)?))
}

/// Reads one side (on its own thread: each side has its own connection).
fn read_side(spec: &Spec, db: Option<&str>) -> anyhow::Result<Side> {
    match spec {
        Spec::File(f) => Ok(Side::Scan(portolan_import::read_scan(Path::new(f))?)),
        Spec::Snapshot(id) => {
            let snap = super::open_store(db)?.load(*id)?;
            match (snap.scan, snap.local) {
                (Some(run), _) => Ok(Side::Scan(run)),
                (None, Some(inv)) => Ok(Side::Local(inv)),
                (None, None) => bail!("snapshot {id} holds no observations"),
            }
        }
        Spec::Run(r) => match super::open_store(db)?.load_ref(r)?.scan {
            Some(run) => Ok(Side::Scan(run)),
            None => bail!("{r} holds no scan"),
        },
    }
}

pub fn run(args: DiffArgs, _ctx: &Context) -> anyhow::Result<ExitCode> {
    let mut store = None;
    let t0 = std::time::Instant::now();
    let db = args.db.as_deref();
    let (sa, sb) = (classify(&args.a, db, &mut store)?, classify(&args.b, db, &mut store)?);
    drop(store);
    // both sides load at once: on a million-port snapshot the load is most of the work
    let (a, b) = std::thread::scope(|s| {
        let other = s.spawn(|| read_side(&sb, db));
        let a = read_side(&sa, db);
        let b = other.join().unwrap_or_else(|_| Err(anyhow::anyhow!("reading {} failed", args.b)));
        (a, b)
    });
    let (a, b) = (a?, b?);
    let t_read = t0.elapsed();
    let mut out = super::stdout();
    let cost = match (a, b) {
        (Side::Scan(a), Side::Scan(b)) => {
            let d = portolan_diff::diff(&a, &b);
            match args.format {
                DiffFormat::Text => portolan_output::diff::write_text(&mut out, &d)?,
                DiffFormat::Json => records::json(&mut out, &d)?,
            }
            d.cost
        }
        (Side::Local(a), Side::Local(b)) => {
            let d = portolan_diff::diff_local(&a, &b);
            match args.format {
                DiffFormat::Text => portolan_output::diff::write_local_text(&mut out, &d)?,
                DiffFormat::Json => records::json(&mut out, &d)?,
            }
            d.cost
        }
        _ => bail!(
            "{} and {} are of different kinds (a scan and a local inventory): diff compares two scans or two local inventories",
            args.a,
            args.b
        ),
    };
    out.flush().context("writing to standard output")?;
    if std::env::var_os("PORTOLAN_TIMING").is_some() {
        eprintln!(
            "timing: read {:.1} ms, compare and write {:.1} ms",
            t_read.as_secs_f64() * 1e3,
            (t0.elapsed() - t_read).as_secs_f64() * 1e3
        );
    }
    Ok(if cost == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
