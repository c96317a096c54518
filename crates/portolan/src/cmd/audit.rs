use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use jiff::Timestamp;
use portolan_model::{AuditReport, AuditSummary, FindingTarget, Source};
use portolan_output::audit as render;
use portolan_output::records;
use portolan_policy::AuditOptions;

use super::Context;
use super::{load_policy, today};
use crate::cli::{AuditArgs, AuditFormat};

pub fn run(args: AuditArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let threshold = args.fail_on.0;
    let policy = match load_policy(&args.policy, args.include_anywhere, true, ctx) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    // a bad --db fails before anything is observed
    let mut store = if args.save { Some(super::open_store(args.from.db.as_deref())?) } else { None };
    let g = portolan_session::gather::gather(&args.from.sources()?, super::VERSION, &mut ctx.console(0))?;
    let findings = portolan_policy::audit(&policy, &g.obs, &AuditOptions { today: today() });
    let report = AuditReport {
        format_version: portolan_model::FORMAT_VERSION,
        taken_at: Timestamp::now(),
        machine: portolan_local::hostname(),
        tool_version: super::VERSION.to_string(),
        policy: policy.files.iter().map(|f| f.display().to_string()).collect(),
        source: g.source,
        hosts: g.obs.hosts.len() as u32,
        observed: g
            .obs
            .ports
            .iter()
            .map(|p| FindingTarget {
                address: Some(p.address),
                port: Some(p.port),
                transport: Some(p.transport),
            })
            .collect(),
        summary: AuditSummary::of(&findings),
        findings,
    };
    let mut out = super::stdout();
    match args.format {
        AuditFormat::Table => render::write_human(&mut out, &report, ctx.color)?,
        AuditFormat::Json => records::json(&mut out, &report)?,
        AuditFormat::Ndjson => records::ndjson(&mut out, &report.findings)?,
        AuditFormat::Csv => records::csv(&mut out, &render::CSV_HEADER, render::csv_rows(&report))?,
        AuditFormat::Sarif => render::sarif(&mut out, &report)?,
        AuditFormat::Junit => render::junit(&mut out, &report)?,
    }
    out.flush().context("writing to standard output")?;
    drop(out);
    if let Some(store) = store.as_mut() {
        let mut snap = g.snapshot;
        snap.id = None;
        snap.source = Source::Audit;
        snap.findings = report.findings.clone();
        super::save_snapshot(store, &snap, ctx)?;
    }
    let failing = threshold.is_some_and(|t| report.findings.iter().any(|f| f.severity >= t));
    Ok(if failing { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
