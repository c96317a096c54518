use std::process::ExitCode;

use portolan_detect::Config;
use portolan_session::watch::WatchPlan;
use portolan_session::watching::{self, Output, Reporting};
use portolan_traffic::{Format, Options};

use super::Context;
use crate::cli::{WatchArgs, WatchFormat, WatchOutput};

pub fn run(args: WatchArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let tz = jiff::tz::TimeZone::system();
    let year = match args.year {
        Some(y) => y as i16,
        None => jiff::Timestamp::now().to_zoned_datetime(tz.clone()).year(),
    };
    if args.db.is_some() && args.baseline.is_none() && !args.save {
        anyhow::bail!("--db names the database of --baseline or --save; give one of them");
    }
    let (baseline, listener_baseline) = match &args.baseline {
        Some(r) => {
            let (b, inv) =
                watching::baseline(&mut super::open_store(args.db.as_deref())?, r, args.listeners)?;
            (Some(b), inv)
        }
        None => (None, None),
    };
    // a bad --db fails before anything is read
    let mut store = if args.save { Some(super::open_store(args.db.as_deref())?) } else { None };
    let judge = match &args.policy {
        Some(path) => match super::load_policy(path, false, true, ctx) {
            Ok(p) => {
                let name = format!("policy {}", path.display());
                Some(portolan_session::watch::Judge::new(p, name, super::today()))
            }
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
    let live = watching::is_live(&plan, args.follow);
    if args.metrics.is_some() && !live {
        anyhow::bail!("--metrics serves a live watch: add --follow, --interface, --nflog or --listeners");
    }
    if live && matches!(args.output, WatchOutput::Json | WatchOutput::Sarif) {
        anyhow::bail!("a live watch writes detections as they happen: use -o table or -o ndjson");
    }
    let how = Reporting {
        output: match args.output {
            WatchOutput::Table => Output::Table,
            WatchOutput::Json => Output::Json,
            WatchOutput::Ndjson => Output::Ndjson,
            WatchOutput::Sarif => Output::Sarif,
        },
        color: ctx.color,
        events: args.events,
        from_start: args.from_start,
        metrics: args.metrics,
        alerts: portolan_output::alert::Targets {
            exec: args.alert_exec.clone(),
            urls: args.alert_url.clone(),
        },
        fail_on: args.fail_on,
        store: store.as_mut(),
        version: super::VERSION,
    };
    Ok(ExitCode::from(watching::run(&plan, live, how, &ctx.console(0))?))
}
