use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use portolan_detect::{Config, Detector, SourceName};
use portolan_model::traffic::{InputSummary, WatchReport};
use portolan_output::records;
use portolan_traffic::{Format, Options};

use super::Context;
use crate::cli::{WatchArgs, WatchFormat, WatchOutput};

pub fn run(args: WatchArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let tz = jiff::tz::TimeZone::system();
    let year = match args.year {
        Some(y) => y as i16,
        None => jiff::Timestamp::now().to_zoned_datetime(tz.clone()).year(),
    };
    let opts = Options {
        format: match args.format {
            WatchFormat::Auto => None,
            WatchFormat::Pcap => Some(Format::Capture),
            WatchFormat::Zeek => Some(Format::Zeek),
            WatchFormat::Log => Some(Format::Log),
        },
        max_flows: args.max_flows,
        year,
        tz,
    };
    let cfg = Config {
        vertical_ports: args.ports,
        sweep_hosts: args.hosts,
        window_us: args.window.as_micros() as i64,
        slow_window_us: args.slow_window.as_micros() as i64,
        auth_failures: args.logins,
        auth_sessions: args.sessions,
        max_sources: args.max_sources,
        allowed: args.allow_source.clone(),
        ..Config::default()
    };
    let mut detector = Detector::new(cfg, Vec::new());
    let mut inputs = Vec::new();
    let mut failed = false;
    let mut out = super::stdout();
    for (i, path) in args.files.iter().enumerate() {
        let name = path.display().to_string();
        let mut summary = InputSummary {
            path: name.clone(),
            format: String::new(),
            records: 0,
            events: 0,
            skipped: 0,
            first_skip: None,
            undecoded: 0,
            evicted_flows: 0,
            error: None,
        };
        let mut write_err = None;
        let result = if args.events {
            portolan_traffic::read(path, i as u32, &opts, &mut |e| {
                if write_err.is_none()
                    && let Err(err) = serde_json::to_writer(&mut out, &e)
                        .map_err(std::io::Error::from)
                        .and_then(|()| writeln!(out))
                {
                    write_err = Some(err);
                }
            })
        } else {
            // the name is known before the format; a capture's evidence is `file#packet`
            let capture = sniff_capture(path, opts.format);
            detector.add_source(SourceName { name: name.clone(), capture });
            portolan_traffic::read(path, i as u32, &opts, &mut |e| detector.event(&e))
        };
        if let Some(e) = write_err {
            return Err(e).context("writing to standard output");
        }
        match result {
            Ok(stats) => {
                summary.format = stats.format.map_or("", Format::as_str).to_string();
                summary.records = stats.records;
                summary.events = stats.events;
                summary.skipped = stats.skipped;
                summary.first_skip = stats.first_skip;
                summary.undecoded = stats.undecoded;
                summary.evicted_flows = stats.evicted;
            }
            Err(e) => {
                failed = true;
                eprintln!("portolan: error: {}", portolan_output::escape::terminal(&e.to_string()));
                summary.error = Some(e.to_string());
            }
        }
        if let Some(s) = &summary.first_skip
            && !ctx.quiet
        {
            eprintln!(
                "portolan: note: {} skipped record{} in {}; the first: {}",
                summary.skipped,
                if summary.skipped == 1 { "" } else { "s" },
                portolan_output::escape::terminal(&name),
                portolan_output::escape::terminal(s)
            );
        }
        inputs.push(summary);
    }
    if args.events {
        out.flush().context("writing to standard output")?;
        return Ok(if failed { ExitCode::from(2) } else { ExitCode::SUCCESS });
    }
    let (detections, evicted_sources) = detector.finish();
    let report =
        WatchReport { format_version: portolan_model::FORMAT_VERSION, inputs, evicted_sources, detections };
    match args.output {
        WatchOutput::Table => portolan_output::watch::write_human(&mut out, &report, ctx.color)?,
        WatchOutput::Json => records::json(&mut out, &report)?,
        WatchOutput::Ndjson => records::ndjson(&mut out, &report.detections)?,
    }
    out.flush().context("writing to standard output")?;
    if failed {
        return Ok(ExitCode::from(2));
    }
    let failing = args.fail_on.0.is_some_and(|t| report.detections.iter().any(|d| d.severity >= t));
    Ok(if failing { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Whether `path` holds a capture, from its first bytes (gzip unpacked); errors are left for
/// the reader to report.
fn sniff_capture(path: &std::path::Path, forced: Option<Format>) -> bool {
    if let Some(f) = forced {
        return f == Format::Capture;
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    matches!(ext, "pcap" | "pcapng" | "cap")
        || (ext == "gz" && (stem.ends_with(".pcap") || stem.ends_with(".pcapng")))
}
