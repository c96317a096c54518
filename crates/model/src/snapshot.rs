use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Finding, LocalInventory, ScanRun};

/// Where an observation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// This machine's own socket table (`portolan ls`).
    Local,
    /// A live scan (`portolan scan`).
    Scan,
    /// An imported file (`portolan import`).
    Import,
    /// An audit run (`portolan audit`).
    Audit,
    /// Detections in logs, flows and captures (`portolan watch --save`), as findings.
    Watch,
}

/// A snapshot's summary: one line of `portolan snapshots`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotInfo {
    /// Identifier.
    pub id: i64,
    /// When it was taken.
    #[schemars(with = "String")]
    pub taken_at: Timestamp,
    /// Where the observations came from.
    pub source: Source,
    /// The machine that took it.
    pub machine: String,
    /// Portolan version that took it.
    pub tool_version: String,
    /// Scanner of a scan or import (`portolan`, `nmap`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanner: Option<String>,
    /// Command line of a scan or import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<String>,
    /// Hosts.
    pub hosts: i64,
    /// Port observations (listed and summarised).
    pub ports: i64,
    /// Open ports.
    pub open: i64,
    /// Local sockets.
    pub sockets: i64,
    /// Findings.
    pub findings: i64,
}

/// A sharded run (`scan --save --run NAME --shard I/N`) and its shards' progress, as
/// `portolan snapshots --runs` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunInfo {
    /// Name.
    pub name: String,
    /// When its first shard was saved.
    #[schemars(with = "String")]
    pub created_at: Timestamp,
    /// How many shards.
    pub shards: u32,
    /// The seed of the shard split.
    pub seed: u64,
    /// The scan arguments every shard shares.
    pub spec: String,
    /// The shards saved (from 1).
    pub done: Vec<u32>,
    /// Shards whose last attempt failed (an error, or stopped by a signal such as `scancel`'s)
    /// and that are not saved, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<(u32, String)>,
    /// Hosts in the saved shards (a host split across shards counts once per shard).
    pub hosts: i64,
    /// Open ports in the saved shards.
    pub open: i64,
}

impl RunInfo {
    /// The shards not saved yet (failed ones among them).
    pub fn missing(&self) -> Vec<u32> {
        let mut done = self.done.clone();
        done.sort_unstable();
        (1..=self.shards).filter(|i| done.binary_search(i).is_err()).collect()
    }
}

/// Everything one run observed and concluded, as kept in the store and compared by `diff`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Snapshot {
    /// Store identifier; absent before the snapshot is saved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// When it was taken.
    #[schemars(with = "String")]
    pub taken_at: Timestamp,
    /// Where the observations came from.
    pub source: Source,
    /// Name of the machine that took it.
    pub machine: String,
    /// Portolan version that took it.
    pub tool_version: String,
    /// The scan or import, when the source is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanRun>,
    /// The local inventory (`portolan ls`), when the source is one. Its findings are moved
    /// to [`Snapshot::findings`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalInventory>,
    /// Findings of the judges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
}

impl Snapshot {
    /// A snapshot of a scan or an import.
    pub fn of_scan(source: Source, run: ScanRun, machine: &str, tool_version: &str) -> Snapshot {
        Snapshot {
            id: None,
            taken_at: Timestamp::now(),
            source,
            machine: machine.to_string(),
            tool_version: tool_version.to_string(),
            scan: Some(run),
            local: None,
            findings: Vec::new(),
        }
    }

    /// A snapshot of a local inventory; the inventory's findings become the snapshot's.
    pub fn of_local(mut inv: LocalInventory, tool_version: &str) -> Snapshot {
        let findings = std::mem::take(&mut inv.findings);
        Snapshot {
            id: None,
            taken_at: inv.taken_at,
            source: Source::Local,
            machine: inv.machine.clone(),
            tool_version: tool_version.to_string(),
            scan: None,
            local: Some(inv),
            findings,
        }
    }
}

impl Source {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Local => "local",
            Source::Scan => "scan",
            Source::Import => "import",
            Source::Audit => "audit",
            Source::Watch => "watch",
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Source {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, crate::Error> {
        Ok(match s {
            "local" => Source::Local,
            "scan" => Source::Scan,
            "import" => Source::Import,
            "audit" => Source::Audit,
            "watch" => Source::Watch,
            _ => {
                return Err(crate::Error::UnknownValue {
                    what: "snapshot source",
                    given: s.to_string(),
                    expected: "local, scan, import, audit, watch",
                });
            }
        })
    }
}
