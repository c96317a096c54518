//! `portolan report`: gathers what the report shows — snapshots from the store or files, the
//! judges' findings, a firewall's exposure and lint, the drift across saved scans, detections
//! from logs — and writes the page so that no partial file is ever left behind.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use portolan_firewall::analysis::{self, Analysis};
use portolan_firewall::lint;
use portolan_model::{Finding, PortState, Snapshot, Source};
use portolan_policy::{AuditOptions, Observations, Policy};
use portolan_report::{Changes, Firewall, FwRow, Report};
use portolan_store::{SnapshotRef, Store};

use crate::watch::WatchPlan;

/// What to put in a report.
pub struct ReportPlan {
    /// The snapshot database (`None`: the default one). Not opened when files are the only
    /// inputs.
    pub db: Option<String>,
    /// Snapshot references (`12`, `last`, `last~1`) or files (nmap XML, Portolan scan JSON),
    /// as given; none: the newest scan and the newest inventory of the store.
    pub inputs: Vec<String>,
    /// Saved scans taken after this time make the drift chart.
    pub since: Option<Timestamp>,
    /// The policy to judge the observations against.
    pub policy: Option<Policy>,
    /// A firewall rule set: its path and format (`None`: detected).
    pub rules: Option<(PathBuf, Option<portolan_firewall::Format>)>,
    /// Logs, flows and captures to watch.
    pub watch: Option<WatchPlan>,
    /// The command line, for the page.
    pub command: String,
    /// This build's version.
    pub tool_version: String,
    /// The day policy expiries are judged against.
    pub today: jiff::civil::Date,
}

/// Why a report cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The store has nothing to report and nothing else was given.
    #[error("the snapshot store {0} holds no snapshots, and no file was named")]
    Empty(String),
    /// The store.
    #[error(transparent)]
    Store(#[from] portolan_store::Error),
    /// A scan file.
    #[error(transparent)]
    Import(#[from] portolan_import::Error),
    /// The rule set.
    #[error(transparent)]
    Firewall(#[from] portolan_firewall::Error),
    /// The watched inputs.
    #[error(transparent)]
    Watch(#[from] crate::watch::WatchError),
    /// A watched input that could not be read.
    #[error("{path}: {reason}")]
    WatchInput {
        /// The input.
        path: String,
        /// Why.
        reason: String,
    },
    /// A snapshot that holds no scan or inventory.
    #[error("snapshot {0} holds no observations")]
    NoObservations(String),
    /// Writing the page.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

fn is_scan(s: &Snapshot) -> bool {
    s.scan.is_some()
}

/// Gathers the report's parts.
pub fn gather(plan: &ReportPlan) -> Result<Report, ReportError> {
    let machine = portolan_local::hostname();
    let mut report = Report {
        generated_at: Some(Timestamp::now()),
        tool_version: plan.tool_version.clone(),
        machine: machine.clone(),
        command: plan.command.clone(),
        ..Report::default()
    };
    let mut store: Option<Store> = None;
    let open_store = |store: &mut Option<Store>| -> Result<(), ReportError> {
        if store.is_none() {
            let location = plan.db.clone().unwrap_or_else(portolan_store::default_location);
            *store = Some(Store::open(&location)?);
        }
        Ok(())
    };
    let mut shown: Vec<Snapshot> = Vec::new();
    for input in &plan.inputs {
        let path = Path::new(input);
        if path.exists() || input.contains('/') || input.ends_with(".xml") || input.ends_with(".json") {
            let run = portolan_import::read_scan(path)?;
            shown.push(Snapshot::of_scan(Source::Import, run, &machine, &plan.tool_version));
        } else {
            let r: SnapshotRef = input.parse()?;
            open_store(&mut store)?;
            if let Some(st) = store.as_mut() {
                let snap = st.load_ref(&r)?;
                if snap.scan.is_none() && snap.local.is_none() {
                    return Err(ReportError::NoObservations(r.to_string()));
                }
                shown.push(snap);
            }
        }
    }
    let from_store = plan.inputs.is_empty();
    let mut history: Vec<Snapshot> = Vec::new();
    if from_store || plan.since.is_some() {
        open_store(&mut store)?;
        if let Some(st) = store.as_mut() {
            let list = st.list()?;
            let mut newest_scan = None;
            let mut previous_scan = None;
            let mut newest_local = None;
            let mut newest_watch = None;
            for info in &list {
                if info.source == Source::Watch {
                    newest_watch.get_or_insert(info.id);
                    continue;
                }
                let scan_like = info.hosts > 0 || matches!(info.source, Source::Scan | Source::Import);
                if info.source == Source::Local {
                    newest_local.get_or_insert(info.id);
                } else if scan_like {
                    if newest_scan.is_none() {
                        newest_scan = Some(info.id);
                    } else if previous_scan.is_none() {
                        previous_scan = Some(info.id);
                    }
                }
                if plan.since.is_some_and(|t| info.taken_at >= t) && info.source != Source::Local && scan_like
                {
                    history.push(st.load(info.id)?);
                }
            }
            history.retain(is_scan);
            history.reverse();
            if from_store {
                for id in [newest_scan, newest_local, newest_watch].into_iter().flatten() {
                    shown.push(st.load(id)?);
                }
                if let (Some(old), Some(new)) = (previous_scan, newest_scan) {
                    let a = st.load(old)?;
                    let b = shown.iter().find(|s| s.id == Some(new));
                    if let (Some(ra), Some(rb)) = (&a.scan, b.and_then(|b| b.scan.as_ref())) {
                        report.changes = Some(Changes {
                            from: format!(
                                "snapshot {old} ({}, {})",
                                a.source,
                                a.taken_at.strftime("%Y-%m-%d %H:%M")
                            ),
                            to: format!("snapshot {new}"),
                            diff: portolan_diff::diff(ra, rb),
                        });
                    }
                }
            }
            if from_store && shown.is_empty() && plan.rules.is_none() && plan.watch.is_none() {
                return Err(ReportError::Empty(st.location().to_string()));
            }
        }
    }
    // two named scans: the changes between them, the older first
    if !from_store {
        let scans: Vec<&Snapshot> = shown.iter().filter(|s| is_scan(s)).collect();
        if let [a, b, ..] = scans[..]
            && let (Some(ra), Some(rb)) = (&a.scan, &b.scan)
        {
            let (old, new) = if ra.start <= rb.start { (a, b) } else { (b, a) };
            if let (Some(ro), Some(rn)) = (&old.scan, &new.scan) {
                report.changes =
                    Some(Changes { from: label(old), to: label(new), diff: portolan_diff::diff(ro, rn) });
            }
        }
    }
    let drift_src: Vec<(String, &Snapshot)> = history.iter().map(|s| (label(s), s)).collect();
    report.history = portolan_report::drift(&drift_src);

    // the judges
    let mut findings: Vec<Finding> = Vec::new();
    let opts = AuditOptions { today: plan.today };
    for s in &shown {
        findings.extend(s.findings.iter().cloned());
        if let Some(policy) = &plan.policy {
            let obs = match (&s.scan, &s.local) {
                (Some(run), _) => Observations::from_run(run),
                (None, Some(inv)) => Observations::from_local(inv),
                (None, None) => continue,
            };
            findings.extend(portolan_policy::audit(policy, &obs, &opts));
        } else if s.findings.is_empty()
            && let Some(run) = &s.scan
        {
            findings.extend(knowledge_base_findings(run));
        }
    }
    let mut seen = std::collections::HashSet::new();
    findings.retain(|f| {
        seen.insert((
            f.rule.clone(),
            f.target.as_ref().map(|t| (t.address, t.port, t.transport)),
            f.title.clone(),
        ))
    });
    report.findings = findings;
    report.policy =
        plan.policy.iter().flat_map(|p| p.files.iter().map(|f| f.display().to_string())).collect();

    // the order the report shows: scans newest first, then this machine; their command lines
    // without the password of a --db URL
    for s in &mut shown {
        if let Some(run) = s.scan.as_mut() {
            run.args = portolan_model::text::redact_urls(&run.args);
        }
    }
    let (mut scans, locals): (Vec<Snapshot>, Vec<Snapshot>) = shown.into_iter().partition(is_scan);
    scans.sort_by_key(|s| std::cmp::Reverse(s.taken_at));
    report.local = locals.into_iter().find(|s| s.local.is_some());
    report.scans = scans;

    if let Some((path, format)) = &plan.rules {
        report.firewall = Some(firewall(path, *format, &report)?);
    }
    if let Some(w) = &plan.watch {
        let (wr, failed) = crate::watch::read_files(w, None)?;
        if failed && let Some(bad) = wr.inputs.iter().find(|i| i.error.is_some()) {
            return Err(ReportError::WatchInput {
                path: bad.path.clone(),
                reason: bad.error.clone().unwrap_or_default(),
            });
        }
        report.watch = Some(wr);
    }
    Ok(report)
}

fn label(s: &Snapshot) -> String {
    match s.id {
        Some(id) => format!("#{id} {}", s.taken_at.strftime("%m-%d %H:%M")),
        None => s
            .scan
            .as_ref()
            .map_or_else(|| "file".to_string(), |r| r.start.strftime("%m-%d %H:%M").to_string()),
    }
}

/// Without a policy, a scan is judged by the knowledge base alone: each open port it knows,
/// at the reach of the scanned address.
fn knowledge_base_findings(run: &portolan_model::ScanRun) -> Vec<Finding> {
    let mut out = Vec::new();
    for h in &run.hosts {
        for p in h.ports.iter().filter(|p| p.state == PortState::Open) {
            if let Some(e) = portolan_kb::for_port(p.number, p.transport).next() {
                let reach = portolan_kb::Reach::of_scanned(h.address);
                out.push(e.exposure_finding(reach, Some(h.address), p.number, p.transport));
            }
        }
    }
    out
}

/// The rule set's exposure (as `fw show`, from the internet and from private addresses) and
/// its lint, joined with the report's open ports and listeners.
fn firewall(
    path: &Path,
    format: Option<portolan_firewall::Format>,
    report: &Report,
) -> Result<Firewall, ReportError> {
    let rs = portolan_firewall::load(path, format, &portolan_firewall::LoadOptions::default())?;
    let rows = exposure_rows(&rs)?;
    let mut analysis = Analysis::outline(&[&rs]);
    // each (transport, port) once: the lint looks the list up for every rule
    let mut listeners = crate::firewall::listeners_of_hosts(report.hosts());
    if let Some(inv) = report.local.as_ref().and_then(|s| s.local.as_ref()) {
        listeners.extend(crate::firewall::listeners_of_inventory(inv));
    }
    let opts = lint::Options { listeners: if listeners.is_empty() { None } else { Some(listeners) } };
    let lint = lint::lint(&mut analysis, &opts)?;
    Ok(Firewall {
        file: rs.file.clone(),
        format: rs.format.as_str().to_string(),
        rules: rs.rule_count(),
        rows,
        lint,
    })
}

/// The rule set's exposure, as `fw show` computes it: from internet and private sources, to
/// this machine and forwarded.
pub(crate) fn exposure_rows(rs: &portolan_firewall::Ruleset) -> Result<Vec<FwRow>, portolan_firewall::Error> {
    let mut analysis = Analysis::outline(&[rs]);
    let classes = analysis::standard_classes();
    let exps = analysis.exposure(&classes, None, true, &[])?;
    let json = serde_json::to_value(portolan_output::firewall::show_json(&analysis, rs, &exps, false))
        .unwrap_or(serde_json::Value::Null);
    Ok(fw_rows(&json))
}

/// The rows of `fw show -o json` (its documented form).
fn fw_rows(v: &serde_json::Value) -> Vec<FwRow> {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let mut out = Vec::new();
    for e in v["exposure"].as_array().into_iter().flatten() {
        for r in e["rows"].as_array().into_iter().flatten() {
            let ports = r["ports"].as_str().and_then(|p| match p.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => p.parse().ok().map(|a| (a, a)),
            });
            let class = |c: &str| &r["classes"][c];
            let mut decided: Vec<String> = Vec::new();
            for c in ["internet", "private"] {
                for part in class(c)["parts"].as_array().into_iter().flatten() {
                    let rule = s(&part["rule"]);
                    if !rule.is_empty() && !decided.contains(&rule) {
                        decided.push(rule);
                    }
                }
            }
            out.push(FwRow {
                family: s(&e["family"]),
                scope: s(&e["scope"]),
                protocol: s(&r["protocol"]),
                ports,
                service: s(&r["service"]),
                internet: s(&class("internet")["verdict"]),
                private: s(&class("private")["verdict"]),
                decided_by: decided.join("; "),
            });
        }
    }
    out
}

/// Writes `bytes` to `path` whole or not at all ([`portolan_model::atomic::write`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    portolan_model::atomic::write(path, bytes)
        .map_err(|source| ReportError::Write { path: path.display().to_string(), source })
}
