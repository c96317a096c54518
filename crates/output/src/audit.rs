//! Rendering of `portolan audit`: the report for people, CSV rows, SARIF 2.1.0 for
//! code-scanning dashboards and JUnit XML for CI test reports.

use std::io::{self, Write};
use std::net::IpAddr;

use portolan_model::{AuditReport, Finding, FindingTarget, Severity};
use serde_json::{Value, json};

use crate::escape::{terminal, xml};
use crate::lookup::severity_style;
use crate::table::Style;

/// Every rule an audit can report, with what it means.
pub const RULES: [(&str, &str, &str); 13] = [
    (
        "policy.unapproved",
        "Open port or listener the policy does not approve",
        "Every exposure needs an owner and a purpose. Close what nobody needs; approve the rest in the policy.",
    ),
    (
        "policy.missing",
        "Required port is not open",
        "A port the policy marks required did not answer: the service is down, moved, or was retired without updating the policy.",
    ),
    (
        "policy.wrong-service",
        "A different application answers on an approved port",
        "The identified service (or the process holding a local listener) is not the one the policy approved for this port.",
    ),
    (
        "policy.scope",
        "Bound wider than the policy allows",
        "The service listens on more interfaces than its approval allows (e.g. all interfaces where loopback was approved).",
    ),
    (
        "policy.expired",
        "Port still open after its approval expired",
        "The approval was a time-limited exception and its end date has passed.",
    ),
    (
        "policy.review-overdue",
        "Approval overdue for review",
        "The approval's review_by date has passed; confirm with its owner that the port is still needed.",
    ),
    (
        "kb.cleartext",
        "Risky cleartext service exposed",
        "The knowledge base marks this service as cleartext by default: credentials and data cross the network readable.",
    ),
    (
        "watch.vertical_scan",
        "Port scan of a host",
        "One source probed many ports of one host (Zeek's Port_Scan: 15 ports in 5 minutes). Find who runs it; block or rate-limit the source at the edge.",
    ),
    (
        "watch.horizontal_sweep",
        "Sweep of a network",
        "One source probed the same ports across many hosts (Zeek's Address_Scan: 25 hosts in 5 minutes), looking for a service to attack.",
    ),
    (
        "watch.slow_scan",
        "Slow scan",
        "A scan whose probes are a second or more apart, paced to stay under per-window thresholds (psad counts scans over an hour).",
    ),
    (
        "watch.distributed_scan",
        "Scan split across sources",
        "Several sources each probed a few ports of one host; together they scanned it. Look for a common operator and block the set.",
    ),
    (
        "watch.brute_force",
        "Password guessing",
        "Many failed logins, or many short sessions to a login service, from one source (fail2ban: 5 failures in 10 minutes). Block the source; require keys or a second factor.",
    ),
    (
        "watch.new_service",
        "A service nobody approved",
        "A host answers on a port the baseline does not know, or a new listener appeared. Find its owner; close it or record it.",
    ),
];

fn target_text(t: Option<&FindingTarget>) -> String {
    let Some(t) = t else { return String::new() };
    let port = match (t.port, t.transport) {
        (Some(p), Some(tr)) => format!("{p}/{tr}"),
        (None, Some(tr)) => format!("-/{tr}"),
        (Some(p), None) => p.to_string(),
        (None, None) => String::new(),
    };
    match (t.address, port.is_empty()) {
        (Some(IpAddr::V6(a)), false) => format!("[{a}]:{port}"),
        (Some(a), false) => format!("{a}:{port}"),
        (Some(a), true) => a.to_string(),
        (None, _) => port,
    }
}

/// One line per severity count: `1 high, 2 medium`.
pub fn summary_text(r: &AuditReport) -> String {
    let s = r.summary;
    let parts: Vec<String> =
        [(s.critical, "critical"), (s.high, "high"), (s.medium, "medium"), (s.low, "low"), (s.info, "info")]
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, w)| format!("{n} {w}"))
            .collect();
    if parts.is_empty() { "no findings".to_string() } else { parts.join(", ") }
}

/// The report for people: a header, then each finding with its evidence and what to do.
pub fn write_human(out: &mut dyn Write, r: &AuditReport, color: bool) -> io::Result<()> {
    writeln!(
        out,
        "Audit of {} against {}: {} host{}, {} open port{} or listener{} judged",
        terminal(&r.source),
        terminal(&r.policy.join(", ")),
        r.hosts,
        if r.hosts == 1 { "" } else { "s" },
        r.observed.len(),
        if r.observed.len() == 1 { "" } else { "s" },
        if r.observed.len() == 1 { "" } else { "s" },
    )?;
    write_findings(out, r, "No findings: everything observed is approved.", color)
}

/// `fw lint` for people: what was linted, then each finding with its evidence and what to do.
pub fn write_lint_human(out: &mut dyn Write, r: &AuditReport, color: bool) -> io::Result<()> {
    if r.observed.is_empty() {
        writeln!(out, "Lint of {}", terminal(&r.source))?;
    } else {
        writeln!(
            out,
            "Lint of {}: {} open port{} or listener{} joined",
            terminal(&r.source),
            r.observed.len(),
            if r.observed.len() == 1 { "" } else { "s" },
            if r.observed.len() == 1 { "" } else { "s" },
        )?;
    }
    write_findings(out, r, "No findings.", color)
}

fn write_findings(out: &mut dyn Write, r: &AuditReport, none: &str, color: bool) -> io::Result<()> {
    if r.findings.is_empty() {
        writeln!(out, "{}", Style::Green.paint(none, color))?;
        return Ok(());
    }
    let rule_w = r.findings.iter().map(|f| f.rule.len()).max().unwrap_or(0);
    for f in &r.findings {
        writeln!(out)?;
        let sev = severity_style(f.severity).paint(&format!("{:<8}", f.severity.as_str()), color);
        writeln!(out, "{sev} {:<rule_w$}  {}", f.rule, terminal(&f.title))?;
        let pad = " ".repeat(9);
        for e in &f.evidence {
            writeln!(out, "{pad}{} {}", Style::Dim.paint("·", color), terminal(e))?;
        }
        writeln!(out, "{pad}{} {}", Style::Bold.paint("fix:", color), terminal(&f.remediation))?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{} finding{}: {}",
        r.findings.len(),
        if r.findings.len() == 1 { "" } else { "s" },
        summary_text(r)
    )
}

/// CSV header of `audit -o csv`.
pub const CSV_HEADER: [&str; 9] =
    ["severity", "rule", "address", "port", "transport", "title", "remediation", "location", "evidence"];

/// CSV rows, one per finding.
pub fn csv_rows(r: &AuditReport) -> impl Iterator<Item = Vec<String>> + '_ {
    r.findings.iter().map(|f| {
        let t = f.target.as_ref();
        vec![
            f.severity.as_str().to_string(),
            f.rule.clone(),
            t.and_then(|t| t.address).map(|a| a.to_string()).unwrap_or_default(),
            t.and_then(|t| t.port).map(|p| p.to_string()).unwrap_or_default(),
            t.and_then(|t| t.transport).map(|p| p.to_string()).unwrap_or_default(),
            f.title.clone(),
            f.remediation.clone(),
            f.location.as_ref().map(|l| format!("{}:{}:{}", l.file, l.line, l.column)).unwrap_or_default(),
            f.evidence.join("; "),
        ]
    })
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// GitHub code scanning's `security-severity` scale (0-10).
fn security_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "0.0",
    }
}

/// A SARIF 2.1.0 log: one run, the rules used, one result per finding located at the policy
/// line it concerns (the policy file itself for an unapproved port).
pub fn sarif(out: &mut dyn Write, r: &AuditReport) -> io::Result<()> {
    let mut used: Vec<&str> = Vec::new();
    for f in &r.findings {
        if !used.contains(&f.rule.as_str()) {
            used.push(&f.rule);
        }
    }
    let rules: Vec<Value> = used
        .iter()
        .map(|id| {
            let (name, short, full) = RULES
                .iter()
                .find(|(r, _, _)| r == id)
                .map_or((*id, *id, *id), |(_, s, f)| (*id, *s, *f));
            let worst = r.findings.iter().filter(|f| f.rule == *id).map(|f| f.severity).max().unwrap_or(Severity::Info);
            json!({
                "id": id,
                "name": name.replace(['.', '-'], "_"),
                "shortDescription": {"text": short},
                "fullDescription": {"text": full},
                "help": {"text": full},
                "defaultConfiguration": {"level": sarif_level(worst)},
                "properties": {"tags": ["security", "network"], "security-severity": security_severity(worst)},
            })
        })
        .collect();
    let default_file = r.policy.first().cloned().unwrap_or_else(|| "policy.toml".into());
    let results: Vec<Value> = r
        .findings
        .iter()
        .map(|f| {
            let (file, line, col) = f.location.as_ref().map_or((default_file.clone(), 1, 1), |l| {
                (l.file.to_string(), l.line.max(1), l.column.max(1))
            });
            let target = target_text(f.target.as_ref());
            let mut text = f.title.clone();
            text.push_str(". ");
            text.push_str(&f.remediation);
            json!({
                "ruleId": f.rule,
                "ruleIndex": used.iter().position(|u| *u == f.rule).unwrap_or(0),
                "level": sarif_level(f.severity),
                "message": {"text": text},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": file},
                        "region": {"startLine": line, "startColumn": col},
                    },
                    "logicalLocations": [{"name": target, "kind": "resource"}],
                }],
                "partialFingerprints": {"portolanTarget/v1": format!("{}|{}", f.rule, target)},
                "properties": {
                    "severity": f.severity.as_str(),
                    "security-severity": security_severity(f.severity),
                    "evidence": f.evidence,
                    "references": f.references,
                    "attack": f.attack,
                },
            })
        })
        .collect();
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "portolan",
                "version": r.tool_version,
                "informationUri": "https://example.invalid/portolan",
                "rules": rules,
            }},
            "automationDetails": {"id": format!("portolan/audit/{}", r.source)},
            "results": results,
        }],
    });
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}

/// JUnit XML: one test case per open port or listener judged (failing with its findings) and
/// one per finding about something not observed (a missing port, an overdue review).
pub fn junit(out: &mut dyn Write, r: &AuditReport) -> io::Result<()> {
    struct Case<'a> {
        class: String,
        name: String,
        failures: Vec<&'a Finding>,
    }
    let mut cases: Vec<Case<'_>> = r
        .observed
        .iter()
        .map(|t| Case {
            class: format!(
                "portolan.audit.{}",
                t.address.map(|a| a.to_string()).unwrap_or_else(|| "local".into())
            ),
            name: target_text(Some(t)),
            failures: Vec::new(),
        })
        .collect();
    for f in &r.findings {
        let pos = f.target.as_ref().and_then(|t| r.observed.iter().position(|o| o == t));
        match pos {
            Some(i) => cases[i].failures.push(f),
            None => cases.push(Case {
                class: format!("portolan.audit.{}", f.rule),
                name: if target_text(f.target.as_ref()).is_empty() {
                    f.title.clone()
                } else {
                    format!("{} {}", target_text(f.target.as_ref()), f.rule)
                },
                failures: vec![f],
            }),
        }
    }
    let failures = cases.iter().filter(|c| !c.failures.is_empty()).count();
    let stamp = r.taken_at.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<testsuites name="portolan audit" tests="{}" failures="{failures}" errors="0">"#,
        cases.len()
    )?;
    writeln!(
        out,
        r#"  <testsuite name="{}" tests="{}" failures="{failures}" errors="0" skipped="0" timestamp="{stamp}" hostname="{}">"#,
        xml(&format!("{} against {}", r.source, r.policy.join(", "))),
        cases.len(),
        xml(&r.machine)
    )?;
    for c in &cases {
        write!(out, r#"    <testcase classname="{}" name="{}""#, xml(&c.class), xml(&c.name))?;
        if c.failures.is_empty() {
            writeln!(out, "/>")?;
            continue;
        }
        writeln!(out, ">")?;
        for f in &c.failures {
            let mut body = String::new();
            for e in &f.evidence {
                body.push_str(e);
                body.push('\n');
            }
            body.push_str("fix: ");
            body.push_str(&f.remediation);
            writeln!(
                out,
                r#"      <failure type="{}" message="{}">{}</failure>"#,
                xml(&f.rule),
                xml(&format!("{}: {}", f.severity, f.title)),
                xml(&body)
            )?;
        }
        writeln!(out, "    </testcase>")?;
    }
    writeln!(out, "  </testsuite>")?;
    writeln!(out, "</testsuites>")
}

/// A format of findings; [`Format::CHOICES`] names and describes each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Format {
    Table,
    Json,
    Ndjson,
    Csv,
    Sarif,
    Junit,
}

impl Format {
    /// Each format's name (as `-o` takes it), what it is, and the format.
    pub const CHOICES: &[(&str, &str, Format)] = &[
        ("table", "Findings with evidence and remedies, for people", Format::Table),
        ("json", "One JSON document (docs/schema/audit-report.schema.json)", Format::Json),
        ("ndjson", "One finding per line as JSON", Format::Ndjson),
        ("csv", "One finding per line as CSV", Format::Csv),
        ("sarif", "SARIF 2.1.0, for code-scanning dashboards", Format::Sarif),
        ("junit", "JUnit XML, for CI test reports", Format::Junit),
    ];
}

/// Writes a report of findings in `format`; `lint` titles the table for a rule set instead of
/// hosts and ports.
pub fn write(
    out: &mut dyn Write,
    format: Format,
    r: &AuditReport,
    lint: bool,
    color: bool,
) -> io::Result<()> {
    match format {
        Format::Table if lint => write_lint_human(out, r, color),
        Format::Table => write_human(out, r, color),
        Format::Json => crate::records::json(out, r),
        Format::Ndjson => crate::records::ndjson(out, &r.findings),
        Format::Csv => crate::records::csv(out, &CSV_HEADER, csv_rows(r)),
        Format::Sarif => sarif(out, r),
        Format::Junit => junit(out, r),
    }
}
