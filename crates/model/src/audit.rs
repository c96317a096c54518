use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Finding, FindingTarget, Severity};

/// What `portolan audit` concluded: the document `audit -o json` writes
/// (`docs/schema/audit-report.schema.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditReport {
    /// Format version ([`crate::FORMAT_VERSION`]).
    pub format_version: u32,
    /// When the audit ran.
    #[schemars(with = "String")]
    pub taken_at: Timestamp,
    /// The machine that ran it.
    pub machine: String,
    /// Portolan version.
    pub tool_version: String,
    /// Policy files read, the main one first.
    pub policy: Vec<String>,
    /// What was audited (`local listeners`, `scan`, `nmap XML scan.xml`, `snapshot 12`).
    pub source: String,
    /// Hosts observed.
    pub hosts: u32,
    /// Every open port and listener that was judged.
    pub observed: Vec<FindingTarget>,
    /// Findings, host by host and port by port.
    pub findings: Vec<Finding>,
    /// Findings per severity.
    pub summary: AuditSummary,
}

/// Findings per severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuditSummary {
    /// Critical.
    pub critical: u32,
    /// High.
    pub high: u32,
    /// Medium.
    pub medium: u32,
    /// Low.
    pub low: u32,
    /// Info.
    pub info: u32,
}

impl AuditSummary {
    /// Counts findings.
    pub fn of(findings: &[Finding]) -> AuditSummary {
        let mut s = AuditSummary::default();
        for f in findings {
            *match f.severity {
                Severity::Critical => &mut s.critical,
                Severity::High => &mut s.high,
                Severity::Medium => &mut s.medium,
                Severity::Low => &mut s.low,
                Severity::Info => &mut s.info,
            } += 1;
        }
        s
    }
}
