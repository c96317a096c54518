use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use portolan_detect::Config;
use portolan_output::escape::terminal;
use portolan_output::records;
use portolan_session::watch::{WatchPlan, follow, read_files};
use portolan_traffic::{Format, Options};

use super::Context;
use crate::cli::{WatchArgs, WatchFormat, WatchOutput};

pub fn run(args: WatchArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let tz = jiff::tz::TimeZone::system();
    let year = match args.year {
        Some(y) => y as i16,
        None => jiff::Timestamp::now().to_zoned_datetime(tz.clone()).year(),
    };
    let mut listener_baseline = None;
    let baseline = match &args.baseline {
        Some(r) => {
            let mut store = super::open_store(args.db.as_deref())?;
            let reference = r.parse::<portolan_store::SnapshotRef>()?;
            let snap = store.load_ref(&reference)?;
            let name = snap.id.map_or_else(|| reference.to_string(), |id| format!("snapshot {id}"));
            if args.listeners {
                match &snap.local {
                    Some(inv) => listener_baseline = Some(inv.clone()),
                    None => anyhow::bail!(
                        "{name} holds no inventory of listeners to compare this machine's with (save one with portolan ls --save)"
                    ),
                }
            }
            Some(portolan_detect::Baseline::from_snapshot(name, &snap))
        }
        None => None,
    };
    if args.db.is_some() && args.baseline.is_none() && !args.save {
        anyhow::bail!("--db names the database of --baseline or --save; give one of them");
    }
    // a bad --db fails before anything is read
    let mut store = if args.save { Some(super::open_store(args.db.as_deref())?) } else { None };
    let judge = match &args.policy {
        Some(path) => match super::load_policy(path, false, true, ctx) {
            Ok(p) => Some(portolan_session::watch::Judge::new(
                p,
                format!("policy {}", path.display()),
                super::today(),
            )),
            Err(code) => return Ok(code),
        },
        None => None,
    };
    let baseline = baseline.or_else(|| judge.as_ref().map(|j| j.baseline()));
    let plan = WatchPlan {
        policy: judge,
        journal: args.journal.then(|| args.journal_directory.clone()),
        listener_baseline,
        files: args.files.clone(),
        interfaces: args.interface.clone(),
        listeners: args.listeners,
        nflog: args.nflog.clone(),
        read: Options {
            format: match args.format {
                WatchFormat::Auto => None,
                WatchFormat::Pcap => Some(Format::Capture),
                WatchFormat::Zeek => Some(Format::Zeek),
                WatchFormat::Log => Some(Format::Log),
                WatchFormat::Vpc => Some(Format::Vpc),
            },
            max_flows: args.max_flows,
            year,
            tz,
        },
        detect: Config {
            vertical_ports: args.ports,
            sweep_hosts: args.hosts,
            window_us: args.window.as_micros() as i64,
            slow_window_us: args.slow_window.as_micros() as i64,
            auth_failures: args.logins,
            auth_sessions: args.sessions,
            max_sources: args.max_sources,
            allowed: args.allow_source.clone(),
            baseline,
            ..Config::default()
        },
    };
    let threshold = args.fail_on.0;
    let mut out = super::stdout();
    let quiet = ctx.quiet;
    let mut alerts = if args.alert_exec.is_empty() && args.alert_url.is_empty() {
        None
    } else {
        let targets =
            portolan_output::alert::Targets { exec: args.alert_exec.clone(), urls: args.alert_url.clone() };
        Some(portolan_output::alert::Alerts::start(targets, move |why| {
            if !quiet {
                eprintln!("portolan: warning: {}", terminal(&why));
            }
        })?)
    };
    let live =
        args.follow || args.listeners || args.journal || !args.interface.is_empty() || !args.nflog.is_empty();
    if args.metrics.is_some() && !live {
        anyhow::bail!("--metrics serves a live watch: add --follow, --interface, --nflog or --listeners");
    }
    if live {
        if matches!(args.output, WatchOutput::Json | WatchOutput::Sarif) {
            anyhow::bail!("a live watch writes detections as they happen: use -o table or -o ndjson");
        }
        let interrupt =
            portolan_scan::interrupt::Interrupt::install(|_| {}).context("installing signal handlers")?;
        if !ctx.quiet {
            eprintln!(
                "portolan: following {} file(s), {} interface(s), {} NFLOG group(s){}; Ctrl-C to stop",
                args.files.len(),
                args.interface.len(),
                args.nflog.len(),
                match (args.listeners, args.journal) {
                    (true, true) => ", the journal and this machine's listeners",
                    (true, false) => " and this machine's listeners",
                    (false, true) => " and the journal",
                    (false, false) => "",
                }
            );
        }
        let mut failing = false;
        let mut emit = |d: &portolan_model::Detection| -> std::io::Result<()> {
            failing |= !d.open && threshold.is_some_and(|t| d.severity >= t);
            // one alert per detection: when it starts (a listener's comes complete at once)
            if let Some(a) = alerts.as_mut()
                && (d.open || d.kind == portolan_model::DetectionKind::NewService)
            {
                a.send(serde_json::to_vec(d)?);
            }
            match args.output {
                WatchOutput::Ndjson => records::ndjson(&mut out, std::iter::once(d))?,
                _ => portolan_output::watch::write_detection(&mut out, d, ctx.color)?,
            }
            out.flush()
        };
        let mut note = |n: String| {
            if !quiet {
                eprintln!("portolan: note: {}", terminal(&n));
            }
        };
        let metrics = std::sync::Arc::new(portolan_output::metrics::Metrics::new());
        let server = match args.metrics {
            Some(addr) => Some(
                metrics
                    .serve(addr, interrupt.flag())
                    .with_context(|| format!("serving metrics on {addr}"))?,
            ),
            None => None,
        };
        let m = args.metrics.map(|_| &*metrics);
        follow(&plan, args.from_start, m, &interrupt.flag(), &mut emit, &mut note)?;
        if let Some(s) = server {
            let _ = s.join();
        }
        finish_alerts(alerts, quiet);
        return Ok(if failing { ExitCode::from(1) } else { ExitCode::SUCCESS });
    }
    let (report, failed) = if args.events {
        let mut sink = |e: &portolan_model::Event| -> std::io::Result<()> {
            serde_json::to_writer(&mut out, e)?;
            writeln!(out)
        };
        read_files(&plan, Some(&mut sink))?
    } else {
        read_files(&plan, None)?
    };
    for i in &report.inputs {
        if let Some(e) = &i.error {
            eprintln!("portolan: error: {}", terminal(e));
        }
        if let Some(s) = &i.first_skip
            && !ctx.quiet
        {
            eprintln!(
                "portolan: note: {} skipped record{} in {}; the first: {}",
                i.skipped,
                if i.skipped == 1 { "" } else { "s" },
                terminal(&i.path),
                terminal(s)
            );
        }
    }
    if !args.events {
        match args.output {
            WatchOutput::Table => portolan_output::watch::write_human(&mut out, &report, ctx.color)?,
            WatchOutput::Json => records::json(&mut out, &report)?,
            WatchOutput::Ndjson => records::ndjson(&mut out, &report.detections)?,
            WatchOutput::Sarif => {
                let findings = portolan_output::watch::findings(&report);
                let audit = portolan_model::AuditReport {
                    format_version: portolan_model::FORMAT_VERSION,
                    taken_at: jiff::Timestamp::now(),
                    machine: portolan_local::hostname(),
                    tool_version: super::VERSION.to_string(),
                    policy: report.inputs.iter().map(|i| i.path.clone()).collect(),
                    source: format!(
                        "watch {}",
                        report.inputs.iter().map(|i| i.path.as_str()).collect::<Vec<_>>().join(" ")
                    ),
                    hosts: 0,
                    observed: Vec::new(),
                    summary: portolan_model::AuditSummary::of(&findings),
                    findings,
                };
                portolan_output::audit::sarif(&mut out, &audit)?
            }
        }
    }
    out.flush().context("writing to standard output")?;
    if let Some(a) = alerts.as_mut() {
        for d in &report.detections {
            a.send(serde_json::to_vec(d)?);
        }
    }
    finish_alerts(alerts, quiet);
    if let Some(store) = store.as_mut()
        && !failed
    {
        let snap = portolan_model::Snapshot {
            id: None,
            taken_at: jiff::Timestamp::now(),
            source: portolan_model::Source::Watch,
            machine: portolan_local::hostname(),
            tool_version: super::VERSION.to_string(),
            scan: None,
            local: None,
            findings: portolan_output::watch::findings(&report),
        };
        super::save_snapshot(store, &snap, ctx)?;
    }
    if failed {
        return Ok(ExitCode::from(2));
    }
    let failing =
        !args.events && threshold.is_some_and(|t| report.detections.iter().any(|d| d.severity >= t));
    Ok(if failing { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Delivers the queued alerts and says how many were dropped.
fn finish_alerts(alerts: Option<portolan_output::alert::Alerts>, quiet: bool) {
    if let Some(a) = alerts {
        let dropped = a.finish();
        if dropped > 0 && !quiet {
            eprintln!(
                "portolan: warning: {dropped} alerts dropped (the alert hooks were slower than the detections)"
            );
        }
    }
}
