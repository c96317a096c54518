//! A watch from its inputs to its exit code: the baseline from a snapshot, the files read
//! whole or followed live, detections written as they come (or as one report), alerts sent,
//! metrics served, the detections saved as a snapshot.

use std::io::Write;
use std::net::SocketAddr;

use portolan_model::values::FailOn;
use portolan_model::{Detection, DetectionKind, Event, LocalInventory, Snapshot, Source};
use portolan_output::alert::{Alerts, Targets};
use portolan_output::records;
use portolan_scan::interrupt::Interrupt;
use portolan_store::{SnapshotRef, Store};

use crate::console::Console;
use crate::watch::{WatchError, WatchPlan, follow, read_files};

/// Why a watch could not run.
#[derive(Debug, thiserror::Error)]
pub enum WatchRunError {
    /// The baseline snapshot holds no inventory of listeners.
    #[error("{0} holds no inventory of listeners to compare this machine's with: save one first")]
    NoInventory(String),
    /// The watch failed.
    #[error("{0}")]
    Watch(#[from] WatchError),
    /// The snapshot database refused.
    #[error("{0}")]
    Store(#[from] portolan_store::Error),
    /// An alert URL is unusable.
    #[error("{0}")]
    Alert(#[from] portolan_output::alert::BadUrl),
    /// The signals cannot be watched.
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
    /// The metrics endpoint could not start.
    #[error("serving metrics on {addr}: {source}")]
    Metrics {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The output failed.
    #[error("writing to standard output: {0}")]
    Output(#[from] std::io::Error),
    /// A detection could not be written as JSON.
    #[error("writing a detection: {0}")]
    Json(#[from] serde_json::Error),
}

/// A saved snapshot as the baseline: what was seen (and, for a listener watch, its inventory).
pub fn baseline(
    store: &mut Store,
    reference: &SnapshotRef,
    listeners: bool,
) -> Result<(portolan_detect::Baseline, Option<LocalInventory>), WatchRunError> {
    let snap = store.load_ref(reference)?;
    let name = snap.id.map_or_else(|| reference.to_string(), |id| format!("snapshot {id}"));
    let inventory = match (&snap.local, listeners) {
        (_, false) => None,
        (Some(inv), true) => Some(inv.clone()),
        (None, true) => return Err(WatchRunError::NoInventory(name)),
    };
    Ok((portolan_detect::Baseline::from_snapshot(name, &snap), inventory))
}

/// How a watch reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Detections for people.
    Table,
    /// One JSON document.
    Json,
    /// One detection per line.
    Ndjson,
    /// SARIF 2.1.0.
    Sarif,
}

/// What to do with what a watch finds.
pub struct Reporting<'a> {
    /// The format.
    pub output: Output,
    /// Colour the table.
    pub color: bool,
    /// Write every event instead of the detections.
    pub events: bool,
    /// Follow files from their start instead of their end.
    pub from_start: bool,
    /// Serve Prometheus metrics here while following.
    pub metrics: Option<SocketAddr>,
    /// Where alerts go.
    pub alerts: Targets,
    /// The severity that makes the exit code 1.
    pub fail_on: FailOn,
    /// Save the detections as a snapshot here.
    pub store: Option<&'a mut Store>,
    /// Portolan's version, recorded.
    pub version: &'a str,
}

/// Whether a plan follows its inputs live rather than reading them once.
pub fn is_live(plan: &WatchPlan, follow: bool) -> bool {
    follow
        || plan.listeners
        || plan.journal.is_some()
        || !plan.interfaces.is_empty()
        || !plan.nflog.is_empty()
}

/// Runs a watch; returns its exit code (0, 1 for a detection at the threshold, 2 for an input
/// that failed).
pub fn run(
    plan: &WatchPlan,
    live: bool,
    mut how: Reporting<'_>,
    console: &Console,
) -> Result<u8, WatchRunError> {
    let mut out = portolan_output::records::stdout();
    let quiet = console.quiet;
    let mut alerts = if how.alerts.exec.is_empty() && how.alerts.urls.is_empty() {
        None
    } else {
        Some(Alerts::start(std::mem::take(&mut how.alerts), move |why| {
            if !quiet {
                eprintln!("portolan: warning: {}", portolan_output::escape::terminal(&why));
            }
        })?)
    };
    if live {
        let interrupt = Interrupt::install(|_| {}).map_err(WatchRunError::Signals)?;
        console.note(&format!(
            "following {} file(s), {} interface(s), {} NFLOG group(s){}; Ctrl-C to stop",
            plan.files.len(),
            plan.interfaces.len(),
            plan.nflog.len(),
            match (plan.listeners, plan.journal.is_some()) {
                (true, true) => ", the journal and this machine's listeners",
                (true, false) => " and this machine's listeners",
                (false, true) => " and the journal",
                (false, false) => "",
            }
        ));
        let mut failing = false;
        let mut emit = |d: &Detection| -> std::io::Result<()> {
            failing |= !d.open && how.fail_on.fails(d.severity);
            // one alert per detection: when it starts (a listener's comes complete at once)
            if let Some(a) = alerts.as_mut()
                && (d.open || d.kind == DetectionKind::NewService)
            {
                a.send(serde_json::to_vec(d)?);
            }
            match how.output {
                Output::Ndjson => records::ndjson(&mut out, std::iter::once(d))?,
                _ => portolan_output::watch::write_detection(&mut out, d, how.color)?,
            }
            out.flush()
        };
        let mut note = |n: String| console.note(&format!("note: {n}"));
        let metrics = std::sync::Arc::new(portolan_output::metrics::Metrics::new());
        let server = match how.metrics {
            Some(addr) => Some(
                metrics
                    .serve(addr, interrupt.flag())
                    .map_err(|source| WatchRunError::Metrics { addr, source })?,
            ),
            None => None,
        };
        let m = how.metrics.map(|_| &*metrics);
        follow(plan, how.from_start, m, &interrupt.flag(), &mut emit, &mut note)?;
        if let Some(s) = server {
            let _ = s.join();
        }
        finish_alerts(alerts, console);
        return Ok(u8::from(failing));
    }
    let (report, failed) = if how.events {
        let mut sink = |e: &Event| -> std::io::Result<()> {
            serde_json::to_writer(&mut out, e)?;
            writeln!(out)
        };
        read_files(plan, Some(&mut sink))?
    } else {
        read_files(plan, None)?
    };
    for i in &report.inputs {
        if let Some(e) = &i.error {
            eprintln!("portolan: error: {}", portolan_output::escape::terminal(e));
        }
        if let Some(s) = &i.first_skip {
            let plural = if i.skipped == 1 { "" } else { "s" };
            console
                .note(&format!("note: {} skipped record{plural} in {}; the first: {s}", i.skipped, i.path));
        }
    }
    let inputs = || report.inputs.iter().map(|i| i.path.clone());
    if !how.events {
        match how.output {
            Output::Table => portolan_output::watch::write_human(&mut out, &report, how.color)?,
            Output::Json => records::json(&mut out, &report)?,
            Output::Ndjson => records::ndjson(&mut out, &report.detections)?,
            Output::Sarif => {
                let findings = portolan_output::watch::findings(&report);
                let source = format!("watch {}", inputs().collect::<Vec<_>>().join(" "));
                let audit =
                    crate::audit_report(inputs().collect(), source, 0, Vec::new(), findings, how.version);
                portolan_output::audit::sarif(&mut out, &audit)?
            }
        }
    }
    out.flush()?;
    if let Some(a) = alerts.as_mut() {
        for d in &report.detections {
            a.send(serde_json::to_vec(d)?);
        }
    }
    finish_alerts(alerts, console);
    if let Some(store) = how.store.take()
        && !failed
    {
        let snap = Snapshot {
            id: None,
            taken_at: jiff::Timestamp::now(),
            source: Source::Watch,
            machine: portolan_local::hostname(),
            tool_version: how.version.to_string(),
            scan: None,
            local: None,
            findings: portolan_output::watch::findings(&report),
        };
        console.saved(store, &snap)?;
    }
    if failed {
        return Ok(2);
    }
    Ok(u8::from(!how.events && report.detections.iter().any(|d| how.fail_on.fails(d.severity))))
}

/// Delivers the queued alerts and says how many were dropped.
fn finish_alerts(alerts: Option<Alerts>, console: &Console) {
    if let Some(a) = alerts {
        let dropped = a.finish();
        if dropped > 0 {
            console
                .warn(&format!("{dropped} alerts dropped (the alert hooks were slower than the detections)"));
        }
    }
}
