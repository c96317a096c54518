use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Error, Transport};

/// How bad a finding is. Ordered: `Info < Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; no action required.
    Info,
    /// Minor weakness.
    Low,
    /// Should be fixed.
    Medium,
    /// Fix soon.
    High,
    /// Fix now.
    Critical,
}

impl Severity {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// One step less severe (saturating at `Info`).
    pub fn lower(self) -> Severity {
        match self {
            Severity::Critical => Severity::High,
            Severity::High => Severity::Medium,
            Severity::Medium => Severity::Low,
            Severity::Low | Severity::Info => Severity::Info,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => {
                return Err(Error::UnknownValue {
                    what: "severity",
                    given: s.to_string(),
                    expected: "info, low, medium, high, critical",
                });
            }
        })
    }
}

/// What a judge concluded about an observation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    /// Stable rule identifier (`kb.risky-exposure`, `policy.unapproved`, ...).
    pub rule: String,
    /// Severity.
    pub severity: Severity,
    /// One line for people.
    pub title: String,
    /// What the finding is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<FindingTarget>,
    /// The facts that support it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
    /// What to do.
    pub remediation: String,
    /// Guidance documents (NIST, CIS, CISA).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
    /// MITRE ATT&CK technique IDs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attack: Vec<String>,
    /// The line of a file the finding comes from (a policy entry, a firewall rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<SourceLocation>,
}

// The one location type of findings and of the parsers' errors, displayed as
// `FILE:LINE:COLUMN` with ` (PATH)` after it when there is a JSON path. (The doc comments are
// the published schema's descriptions: docs/schema.)
/// A place in a text file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct SourceLocation {
    // shared: every rule of a 40,000-rule file names it
    /// The file, as it was named.
    pub file: Arc<str>,
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub column: u32,
    /// In a JSON file: the path to the value (`$.nftables[4].rule`). Findings carry file,
    /// line and column only (see [`SourceLocation::without_path`]), so the documented
    /// schemas leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub path: Option<String>,
}

impl SourceLocation {
    /// A line and column of a file.
    pub fn new(file: impl Into<Arc<str>>, line: u32, column: u32) -> SourceLocation {
        SourceLocation { file: file.into(), line, column, path: None }
    }
    /// The same place without its JSON path: what a finding carries.
    pub fn without_path(&self) -> SourceLocation {
        SourceLocation { path: None, ..self.clone() }
    }
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)?;
        if let Some(p) = &self.path {
            write!(f, " ({p})")?;
        }
        Ok(())
    }
}

/// The host, port and transport a finding is about; each part optional.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct FindingTarget {
    /// Host address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    /// Port number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Transport.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
}
