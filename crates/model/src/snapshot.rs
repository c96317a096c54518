use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Finding, ScanRun};

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
    /// Findings of the judges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
}
