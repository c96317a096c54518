use std::process::ExitCode;

use portolan_output::escape::terminal;
use portolan_session::report::{ReportPlan, gather, write_atomic};
use portolan_session::watch::WatchPlan;

use super::Context;
use super::{load_policy, today};
use crate::cli::ReportArgs;

pub fn run(args: ReportArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let policy = match &args.policy {
        Some(p) => match load_policy(p, args.include_anywhere, true, ctx) {
            Ok(p) => Some(p),
            Err(code) => return Ok(code),
        },
        None => None,
    };
    let tz = jiff::tz::TimeZone::system();
    let watch = (!args.watch.is_empty()).then(|| WatchPlan {
        files: args.watch.clone(),
        interfaces: Vec::new(),
        nflog: Vec::new(),
        listeners: false,
        policy: None,
        journal: None,
        listener_baseline: None,
        read: portolan_traffic::Options {
            format: None,
            max_flows: 200_000,
            year: jiff::Timestamp::now().to_zoned_datetime(tz.clone()).year(),
            tz,
        },
        detect: portolan_detect::Config::default(),
    });
    let plan = ReportPlan {
        db: args.db.clone(),
        inputs: args.inputs.clone(),
        since: args.since.map(|age| jiff::Timestamp::now() - age),
        policy,
        rules: args.rules.clone().map(|p| (p, None)),
        watch,
        // the command as it reaches the page: no password of a --db URL, any bytes shown lossily
        command: portolan_model::text::redact_urls(
            &std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" "),
        ),
        tool_version: super::VERSION.to_string(),
        today: today(),
    };
    let report = gather(&plan)?;
    let html = portolan_report::render(&report);
    write_atomic(&args.output, html.as_bytes())?;
    if !ctx.quiet {
        let s = report.summary();
        eprintln!(
            "portolan: wrote {} ({} KiB): {} hosts, {} open ports, {} listeners, {} findings, {} detections",
            terminal(&args.output.display().to_string()),
            html.len().div_ceil(1024),
            s.hosts,
            s.open_ports,
            s.listeners,
            s.by_severity.iter().map(|x| x.1).sum::<u64>(),
            s.detections
        );
    }
    Ok(ExitCode::SUCCESS)
}
