use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use portolan_model::{FindingTarget, Source};
use portolan_policy::AuditOptions;

use super::Context;
use super::{load_policy, today};
use crate::cli::AuditArgs;

pub fn run(args: AuditArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let policy = match load_policy(&args.policy, args.include_anywhere, true, ctx) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    // a bad --db fails before anything is observed
    let mut store = if args.save { Some(super::open_store(args.from.db.as_deref())?) } else { None };
    let g = portolan_session::gather::gather(&args.from.sources()?, super::VERSION, &mut ctx.console(0))?;
    let findings = portolan_policy::audit(&policy, &g.obs, &AuditOptions { today: today() });
    let observed = g.obs.ports.iter().map(|p| FindingTarget {
        address: Some(p.address),
        port: Some(p.port),
        transport: Some(p.transport),
    });
    let files = policy.files.iter().map(|f| f.display().to_string()).collect();
    let hosts = g.obs.hosts.len() as u32;
    let report =
        portolan_session::audit_report(files, g.source, hosts, observed.collect(), findings, super::VERSION);
    let mut out = super::stdout();
    portolan_output::audit::write(&mut out, args.format, &report, false, ctx.color)?;
    out.flush().context("writing to standard output")?;
    drop(out);
    if let Some(store) = store.as_mut() {
        let mut snap = g.snapshot;
        snap.id = None;
        snap.source = Source::Audit;
        snap.findings = report.findings.clone();
        super::save_snapshot(store, &snap, ctx)?;
    }
    Ok(ExitCode::from(u8::from(args.fail_on.fails_any(&report.findings))))
}
