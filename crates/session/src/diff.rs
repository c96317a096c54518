//! `diff`: two sides, each a scan file or a stored snapshot or run, read at once and compared.

use std::path::Path;

use portolan_diff::{LocalDiff, RunDiff};
use portolan_model::{LocalInventory, ScanRun};
use portolan_store::{SnapshotRef, Store};

use crate::gather::open_store;

/// Why two sides cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// Neither a file nor a snapshot reference.
    #[error(
        "{0}: no such file, and not a snapshot reference (give an nmap XML file, a JSON scan from `portolan scan -oJ`, or a snapshot: an id, last, last~N, run:NAME)"
    )]
    Unknown(String),
    /// A snapshot with nothing to compare.
    #[error("snapshot {0} holds no observations")]
    Empty(i64),
    /// A run with no scan.
    #[error("{0} holds no scan")]
    NoScan(SnapshotRef),
    /// A scan and an inventory.
    #[error(
        "{0} and {1} are of different kinds (a scan and a local inventory): diff compares two scans or two local inventories"
    )]
    Kinds(String, String),
    /// A side could not be read.
    #[error("reading {0} failed")]
    Reader(String),
    /// A scan file could not be read.
    #[error("{0}")]
    Import(#[from] portolan_import::Error),
    /// The snapshot database refused.
    #[error("{0}")]
    Store(#[from] portolan_store::Error),
}

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

/// The changes between two sides.
pub enum Changes {
    /// Between two scans.
    Scans(RunDiff),
    /// Between two inventories of listeners.
    Local(LocalDiff),
}

impl Changes {
    /// How much changed; 0 when nothing did.
    pub fn cost(&self) -> u64 {
        match self {
            Changes::Scans(d) => d.cost as u64,
            Changes::Local(d) => d.cost as u64,
        }
    }
}

fn classify(spec: &str, db: Option<&str>, store: &mut Option<Store>) -> Result<Spec, DiffError> {
    if Path::new(spec).exists() {
        return Ok(Spec::File(spec.to_string()));
    }
    let Ok(r) = spec.parse::<SnapshotRef>() else { return Err(DiffError::Unknown(spec.to_string())) };
    if matches!(r, SnapshotRef::Run(_)) {
        return Ok(Spec::Run(r));
    }
    let st = match store {
        Some(st) => st,
        None => store.insert(open_store(db)?),
    };
    Ok(Spec::Snapshot(st.resolve(&r)?))
}

/// Reads one side (on its own thread: each side has its own connection).
fn read_side(spec: &Spec, db: Option<&str>) -> Result<Side, DiffError> {
    match spec {
        Spec::File(f) => Ok(Side::Scan(portolan_import::read_scan(Path::new(f))?)),
        Spec::Snapshot(id) => {
            let snap = open_store(db)?.load(*id)?;
            match (snap.scan, snap.local) {
                (Some(run), _) => Ok(Side::Scan(run)),
                (None, Some(inv)) => Ok(Side::Local(inv)),
                (None, None) => Err(DiffError::Empty(*id)),
            }
        }
        Spec::Run(r) => match open_store(db)?.load_ref(r)?.scan {
            Some(run) => Ok(Side::Scan(run)),
            None => Err(DiffError::NoScan(r.clone())),
        },
    }
}

/// Compares `a` with `b`, each a scan file or a snapshot reference in the database `db`;
/// with the time the reading took.
pub fn diff(a: &str, b: &str, db: Option<&str>) -> Result<(Changes, std::time::Duration), DiffError> {
    let t0 = std::time::Instant::now();
    let mut store = None;
    let (sa, sb) = (classify(a, db, &mut store)?, classify(b, db, &mut store)?);
    drop(store);
    // both sides load at once: on a million-port snapshot the load is most of the work
    let (side_a, side_b) = std::thread::scope(|s| {
        let other = s.spawn(|| read_side(&sb, db));
        let first = read_side(&sa, db);
        (first, other.join().unwrap_or_else(|_| Err(DiffError::Reader(b.to_string()))))
    });
    let read = t0.elapsed();
    match (side_a?, side_b?) {
        (Side::Scan(x), Side::Scan(y)) => {
            let changes = Changes::Scans(portolan_diff::diff(&x, &y));
            release((x, y));
            Ok((changes, read))
        }
        (Side::Local(x), Side::Local(y)) => {
            let changes = Changes::Local(portolan_diff::diff_local(&x, &y));
            release((x, y));
            Ok((changes, read))
        }
        _ => Err(DiffError::Kinds(a.to_string(), b.to_string())),
    }
}

/// Frees what was read on a thread of its own, while the caller writes the changes: two
/// million-port runs are millions of allocations, and freeing them first made the writer's
/// next large allocation sweep the allocator's free lists (a tenth of `diff`'s CPU time).
fn release<T: Send + 'static>(sides: T) {
    // if no thread can be started, the closure (and the sides with it) is dropped here
    let _ = std::thread::Builder::new().name("release".into()).spawn(move || drop(sides));
}
