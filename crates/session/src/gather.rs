//! Where `audit` and `policy init` get what they judge: this machine's listeners, a scan, an
//! nmap XML file or a snapshot.

use std::path::PathBuf;

use portolan_model::{Snapshot, Source};
use portolan_policy::Observations;
use portolan_store::SnapshotRef;

use crate::console::Console;
use crate::scan::{RequestError, ScanRequest};

/// What to judge; this machine's listeners when nothing else is named.
#[derive(Debug, Default)]
pub struct Sources {
    /// An nmap XML file (or a Portolan JSON scan).
    pub xml: Option<PathBuf>,
    /// A stored snapshot reference.
    pub snapshot: Option<SnapshotRef>,
    /// The snapshot database (default: [`portolan_store::default_location`]).
    pub db: Option<String>,
    /// A scan to run.
    pub scan: ScanRequest,
    /// Whether scan options (ports, exclusions) were given.
    pub scan_options: bool,
}

/// Why nothing could be gathered. The messages name no flag; the binary adds them.
#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    /// Scan targets beside a file or a snapshot.
    #[error("scan targets and a file or snapshot are two sources; give one")]
    TwoSources,
    /// Scan options without targets.
    #[error("scan options were given without targets: name the hosts to scan (or drop the options)")]
    OptionsWithoutTargets,
    /// A snapshot with nothing in it.
    #[error("snapshot {0} holds no observations")]
    Empty(String),
    /// The file could not be read.
    #[error("{0}")]
    Import(#[from] portolan_import::Error),
    /// The snapshot could not be read.
    #[error("{0}")]
    Store(#[from] portolan_store::Error),
    /// The scan failed.
    #[error("{0}")]
    Scan(#[from] RequestError),
    /// This machine's sockets could not be read.
    #[error("{0}")]
    Local(#[from] portolan_local::Error),
}

/// Observations to judge, what they came from, and the snapshot that records them.
pub struct Gathered {
    /// What is judged.
    pub obs: Observations,
    /// What it came from, in words.
    pub source: String,
    /// The snapshot that records it.
    pub snapshot: Snapshot,
}

/// Opens the snapshot database `db` names, or the default one.
pub fn open_store(db: Option<&str>) -> Result<portolan_store::Store, portolan_store::Error> {
    portolan_store::Store::open(&db.map_or_else(portolan_store::default_location, str::to_string))
}

/// Today in this machine's time zone.
pub fn today() -> jiff::civil::Date {
    jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::system()).date()
}

/// Gathers what `from` names; `version` is recorded in the snapshot.
pub fn gather(from: &Sources, version: &str, console: &mut Console) -> Result<Gathered, GatherError> {
    let scanning = from.scan.has_targets();
    if scanning && (from.xml.is_some() || from.snapshot.is_some()) {
        return Err(GatherError::TwoSources);
    }
    if !scanning && from.scan_options {
        return Err(GatherError::OptionsWithoutTargets);
    }
    let machine = portolan_local::hostname();
    if let Some(x) = &from.xml {
        let run = portolan_import::read_scan(x)?;
        return Ok(Gathered {
            obs: Observations::from_run(&run),
            source: format!("nmap XML {}", x.to_string_lossy()),
            snapshot: Snapshot::of_scan(Source::Import, run, &machine, version),
        });
    }
    if let Some(reference) = &from.snapshot {
        let snap = open_store(from.db.as_deref())?.load_ref(reference)?;
        let id = snap.id.map_or_else(|| reference.to_string(), |i| i.to_string());
        let obs = match (&snap.scan, &snap.local) {
            (Some(run), _) => Observations::from_run(run),
            (None, Some(inv)) => Observations::from_local(inv),
            (None, None) => return Err(GatherError::Empty(id)),
        };
        return Ok(Gathered { obs, source: format!("snapshot {id} ({})", snap.source), snapshot: snap });
    }
    if scanning {
        let run = from.scan.observe(console)?;
        let mut what: Vec<String> = from.scan.targets.clone();
        if let Some(f) = &from.scan.input_list {
            what.push(format!("-iL {}", f.display()));
        }
        return Ok(Gathered {
            obs: Observations::from_run(&run),
            source: format!("scan of {}", what.join(" ")),
            snapshot: Snapshot::of_scan(Source::Scan, run, &machine, version),
        });
    }
    let inv = portolan_local::inventory(&portolan_local::Options::default())?;
    for n in &inv.notes {
        console.note(&format!("note: {n}"));
    }
    Ok(Gathered {
        obs: Observations::from_local(&inv),
        source: format!("local listeners of {}", inv.machine),
        snapshot: Snapshot::of_local(inv, version),
    })
}
