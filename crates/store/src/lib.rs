//! Portolan's memory: every snapshot (`--save` on `ls`, `scan`, `import`, `audit`) kept in a
//! database, listed by `portolan snapshots` and compared by `portolan diff`.
//!
//! The default is an embedded SQLite file (no server) at [`default_path`]; `--db PATH` picks
//! another, and `--db postgres://…` a shared PostgreSQL database for a team, through the same
//! interface. A snapshot is written in one transaction: it is all there or not there, whatever
//! happens to the process. The schema is versioned and migrated on open (`docs/store.md`).
//!
//! ```
//! # let dir = std::env::temp_dir().join(format!("portolan-store-doc-{}", std::process::id()));
//! use portolan_model::{ScanRun, Snapshot, Source};
//! let mut store = portolan_store::Store::open(dir.join("p.db").to_str().unwrap()).unwrap();
//! let run = ScanRun::new("portolan", "0.1.0", "portolan scan 198.18.1.2", jiff::Timestamp::now());
//! let id = store.save(&Snapshot::of_scan(Source::Scan, run, "lab", "0.1.0")).unwrap();
//! assert_eq!(store.resolve(&"last".parse().unwrap()).unwrap(), id);
//! assert_eq!(store.load(id).unwrap().scan.unwrap().args, "portolan scan 198.18.1.2");
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

mod codec;
mod error;
mod merge;
mod postgres;
mod sqlite;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use jiff::Timestamp;
use portolan_model::{Snapshot, SnapshotInfo};

pub use error::{Error, Result};

/// The newest schema version this build knows (see `docs/store.md`).
pub const SCHEMA_VERSION: i64 = 2;

/// A way to name a snapshot: `12`, `last`, `last~1` (the one before last), or a sharded run,
/// merged: `run:NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotRef {
    /// By identifier.
    Id(i64),
    /// The n-th newest (0: the newest).
    Last(u32),
    /// A run of shards (`scan --save --run NAME`), seen as one scan.
    Run(String),
}

/// The most shards a run may have (as `fleet` allows).
pub const MAX_SHARDS: u32 = 100_000;

/// What every shard of a run shares: the run is keyed by its name, and a shard that disagrees
/// is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// The run's name.
    pub name: String,
    /// How many shards.
    pub shards: u32,
    /// The seed of the shard split.
    pub seed: u64,
    /// The scan's arguments every shard must share (targets, ports, scan type), canonical.
    pub spec: String,
}

pub use portolan_model::RunInfo;

/// A run name: letters, digits, `.`, `_`, `-`; at most 128 characters.
pub fn valid_run_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl FromStr for SnapshotRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::BadReference { given: s.to_string() };
        if let Some(name) = s.strip_prefix("run:") {
            return if valid_run_name(name) { Ok(SnapshotRef::Run(name.to_string())) } else { Err(bad()) };
        }
        if let Some(rest) = s.strip_prefix("last") {
            if rest.is_empty() {
                return Ok(SnapshotRef::Last(0));
            }
            let n = rest.strip_prefix('~').ok_or_else(bad)?;
            return n.parse().map(SnapshotRef::Last).map_err(|_| bad());
        }
        match s.parse::<i64>() {
            Ok(id) if id > 0 => Ok(SnapshotRef::Id(id)),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for SnapshotRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotRef::Id(id) => write!(f, "{id}"),
            SnapshotRef::Last(0) => f.write_str("last"),
            SnapshotRef::Last(n) => write!(f, "last~{n}"),
            SnapshotRef::Run(name) => write!(f, "run:{name}"),
        }
    }
}

/// What a backend does; [`Store`] adds what is common.
trait Backend {
    fn save(&mut self, s: &Snapshot) -> Result<i64>;
    /// Every snapshot, newest first.
    fn list(&mut self) -> Result<Vec<SnapshotInfo>>;
    /// The id of the n-th newest snapshot.
    fn nth_last(&mut self, n: u32) -> Result<Option<i64>>;
    fn exists(&mut self, id: i64) -> Result<bool>;
    fn load(&mut self, id: i64) -> Result<Snapshot>;
    /// Deletes these snapshots in one transaction; returns how many existed.
    fn delete(&mut self, ids: &[i64]) -> Result<usize>;
    /// Saves one shard of a run in one transaction: the run is made, or checked against
    /// `run`; an earlier save of this shard is replaced.
    fn save_shard(&mut self, s: &Snapshot, run: &RunSpec, shard: u32) -> Result<i64>;
    /// Every run, newest first.
    fn runs(&mut self) -> Result<Vec<RunInfo>>;
    /// A run's shard snapshots, in shard order.
    fn run_snapshots(&mut self, name: &str) -> Result<Option<(RunInfo, Vec<i64>)>>;
    /// Deletes a run and its shards; whether it existed.
    fn delete_run(&mut self, name: &str) -> Result<bool>;
    /// Records that shard `shard` of `run` failed (the run is made if need be).
    fn mark_failed(&mut self, run: &RunSpec, shard: u32, at: i64, message: &str) -> Result<()>;
    /// Every recorded failure: run name, shard, why.
    fn failures(&mut self) -> Result<Vec<(String, u32, String)>>;
}

/// The snapshot database.
pub struct Store {
    backend: Box<dyn Backend>,
    location: String,
}

/// The default database: `$PORTOLAN_DB`, else `$XDG_DATA_HOME/portolan/portolan.db`, else
/// `~/.local/share/portolan/portolan.db`, else `./portolan.db`.
pub fn default_location() -> String {
    if let Some(db) = std::env::var_os("PORTOLAN_DB").filter(|v| !v.is_empty()) {
        return db.to_string_lossy().into_owned();
    }
    let base = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()).map(PathBuf::from).or_else(|| {
        std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".local/share"))
    });
    match base {
        Some(b) => b.join("portolan/portolan.db").to_string_lossy().into_owned(),
        None => "portolan.db".to_string(),
    }
}

impl Store {
    /// Opens (creating and migrating when needed) the database at `location`: a file path, or
    /// a `postgres://` / `postgresql://` URL.
    pub fn open(location: &str) -> Result<Store> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            let backend: Box<dyn Backend> = Box::new(postgres::Db::open(location)?);
            return Ok(Store { backend, location: postgres::redact(location) });
        }
        let backend: Box<dyn Backend> = Box::new(sqlite::Db::open(location)?);
        Ok(Store { backend, location: location.to_string() })
    }

    /// An SQLite database that already exists at this build's schema, read-only: what a
    /// screen that must not write (`portolan` alone) reads. `None` for a PostgreSQL URL, a
    /// missing file, or a database at another schema version.
    pub fn open_existing(location: &str) -> Result<Option<Store>> {
        if location.contains("://") || !std::path::Path::new(location).exists() {
            return Ok(None);
        }
        Ok(sqlite::Db::open_current(location)?
            .map(|db| Store { backend: Box::new(db), location: location.to_string() }))
    }

    /// Where the database is (a path or a URL without its password).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Saves a snapshot in one transaction and returns its id.
    pub fn save(&mut self, s: &Snapshot) -> Result<i64> {
        self.backend.save(s)
    }

    /// Every snapshot, newest first (the shards of runs are listed with their runs).
    pub fn list(&mut self) -> Result<Vec<SnapshotInfo>> {
        self.backend.list()
    }

    /// Saves shard `shard` (1-based) of a run: the first shard saved makes the run; a shard
    /// saved again replaces its earlier rows, in one transaction (a re-run shard leaves no
    /// duplicate).
    pub fn save_shard(&mut self, s: &Snapshot, run: &RunSpec, shard: u32) -> Result<i64> {
        if run.shards > MAX_SHARDS {
            return Err(Error::TooManyShards { shards: run.shards, max: MAX_SHARDS });
        }
        if shard == 0 || shard > run.shards {
            return Err(Error::ShardOutOfRange { shard, shards: run.shards });
        }
        self.backend.save_shard(s, run, shard)
    }

    /// Whether shard `shard` may be saved into `run`: its index within the count, and the run
    /// (when it exists) started with the same count, seed and arguments. `save_shard` checks
    /// again, in its transaction; this lets a shard fail before it scans.
    pub fn check_shard(&mut self, run: &RunSpec, shard: u32) -> Result<()> {
        if run.shards > MAX_SHARDS {
            return Err(Error::TooManyShards { shards: run.shards, max: MAX_SHARDS });
        }
        if shard == 0 || shard > run.shards {
            return Err(Error::ShardOutOfRange { shard, shards: run.shards });
        }
        if let Some(have) = self.backend.runs()?.into_iter().find(|r| r.name == run.name)
            && (have.shards, have.seed, &have.spec) != (run.shards, run.seed, &run.spec)
        {
            return Err(Error::RunMismatch {
                run: run.name.clone(),
                location: self.location.clone(),
                existing: format!("{} shards, seed {}, arguments \"{}\"", have.shards, have.seed, have.spec),
                given: format!("{} shards, seed {}, arguments \"{}\"", run.shards, run.seed, run.spec),
            });
        }
        Ok(())
    }

    /// Every run, newest first, with the shards whose last attempt failed.
    pub fn runs(&mut self) -> Result<Vec<RunInfo>> {
        let mut runs = self.backend.runs()?;
        for (name, shard, why) in self.backend.failures()? {
            if let Some(r) = runs.iter_mut().find(|r| r.name == name)
                && !r.done.contains(&shard)
            {
                r.failed.push((shard, why));
            }
        }
        for r in &mut runs {
            r.failed.sort();
        }
        Ok(runs)
    }

    /// Records that shard `shard` of `run` failed (an error, or a signal): `snapshots --runs`
    /// shows it as failed until the shard is saved.
    pub fn mark_failed(&mut self, run: &RunSpec, shard: u32, message: &str) -> Result<()> {
        self.check_shard(run, shard)?;
        self.backend.mark_failed(run, shard, codec::nanos(Timestamp::now()), message)
    }

    /// A run's saved shards merged into one scan: hosts merged across shards in address
    /// order, each host's ports from every shard.
    pub fn load_run(&mut self, name: &str) -> Result<Snapshot> {
        let Some((info, ids)) = self.backend.run_snapshots(name)? else {
            let runs = self.backend.runs()?;
            let hint = if runs.is_empty() {
                "it holds no runs: save the shards of one first".to_string()
            } else {
                format!("runs: {}", runs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", "))
            };
            return Err(Error::NotFound {
                reference: format!("run:{name}"),
                location: self.location.clone(),
                hint,
            });
        };
        let t0 = std::time::Instant::now();
        let mut shards = Vec::with_capacity(ids.len());
        for id in ids {
            shards.push(self.backend.load(id)?);
        }
        let t1 = std::time::Instant::now();
        let merged = merge::merge(&info, shards);
        if std::env::var_os("PORTOLAN_TIMING").is_some() {
            let n: usize = merged.scan.as_ref().map_or(0, |r| r.hosts.iter().map(|h| h.ports.len()).sum());
            eprintln!(
                "timing: run {name}: {} shards read in {:.1} ms, merged ({n} observations) in {:.1} ms",
                info.done.len(),
                (t1 - t0).as_secs_f64() * 1e3,
                t1.elapsed().as_secs_f64() * 1e3
            );
        }
        Ok(merged)
    }

    /// Deletes a run and its shards; whether it existed.
    pub fn delete_run(&mut self, name: &str) -> Result<bool> {
        self.backend.delete_run(name)
    }

    /// The snapshot a reference names; a run is merged ([`Store::load_run`]).
    pub fn load_ref(&mut self, r: &SnapshotRef) -> Result<Snapshot> {
        match r {
            SnapshotRef::Run(name) => self.load_run(name),
            _ => {
                let id = self.resolve(r)?;
                self.backend.load(id)
            }
        }
    }

    /// The id a reference names (a run is not one snapshot: see [`Store::load_ref`]).
    pub fn resolve(&mut self, r: &SnapshotRef) -> Result<i64> {
        let found = match r {
            SnapshotRef::Id(id) => self.backend.exists(*id)?.then_some(*id),
            SnapshotRef::Last(n) => self.backend.nth_last(*n)?,
            SnapshotRef::Run(_) => return Err(Error::NotOneSnapshot { given: r.to_string() }),
        };
        match found {
            Some(id) => Ok(id),
            None => {
                let all = self.backend.list()?;
                let hint = match (all.last(), all.first()) {
                    (Some(lo), Some(hi)) => {
                        format!(
                            "it holds {} snapshot(s), ids {}..{}; see portolan snapshots",
                            all.len(),
                            lo.id,
                            hi.id
                        )
                    }
                    _ => "it holds no snapshots yet: save one first".to_string(),
                };
                Err(Error::NotFound { reference: r.to_string(), location: self.location.clone(), hint })
            }
        }
    }

    /// Loads a snapshot by id.
    pub fn load(&mut self, id: i64) -> Result<Snapshot> {
        self.backend.load(id)
    }

    /// Deletes snapshots by id; returns how many existed.
    pub fn delete(&mut self, ids: &[i64]) -> Result<usize> {
        self.backend.delete(ids)
    }

    /// Retention: deletes every snapshot beyond the `keep` newest and every snapshot taken
    /// before `older_than`. Returns the deleted ids.
    pub fn prune(&mut self, keep: Option<usize>, older_than: Option<Timestamp>) -> Result<Vec<i64>> {
        let all = self.backend.list()?;
        let doomed: Vec<i64> = all
            .iter()
            .enumerate()
            .filter(|(i, s)| keep.is_some_and(|k| *i >= k) || older_than.is_some_and(|t| s.taken_at < t))
            .map(|(_, s)| s.id)
            .collect();
        self.backend.delete(&doomed)?;
        Ok(doomed)
    }
}
