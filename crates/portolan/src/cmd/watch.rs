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
    if args.follow {
        return follow(&args, &opts, cfg, ctx);
    }
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

/// `--follow`: one thread per file feeds lines to the detectors; detections are written as
/// they start and as they end, until a signal.
fn follow(args: &WatchArgs, opts: &Options, cfg: Config, ctx: &Context) -> anyhow::Result<ExitCode> {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    if args.output == WatchOutput::Json {
        anyhow::bail!(portolan_output::escape::terminal(
            "--follow writes detections as they happen: use -o table or -o ndjson"
        ));
    }
    let interrupt =
        portolan_scan::interrupt::Interrupt::install(|_| {}).context("installing signal handlers")?;
    let stop = interrupt.flag();
    let mut detector = Detector::new(cfg, Vec::new()).live();
    let (tx, rx) = mpsc::sync_channel::<(usize, Vec<u8>, u64)>(16_384);
    let mut parsers = Vec::new();
    let mut threads = Vec::new();
    for (i, path) in args.files.iter().enumerate() {
        if path == std::path::Path::new("-") {
            anyhow::bail!("--follow follows files by name; read standard input without --follow");
        }
        let name = path.display().to_string();
        let format = match opts.format {
            Some(Format::Capture) => {
                anyhow::bail!(
                    "{}: --follow reads logs and conn.log, not captures",
                    portolan_output::escape::terminal(&name)
                )
            }
            Some(f) => f,
            None => {
                let head = std::fs::read(path)
                    .map(|b| b.into_iter().take(4096).collect::<Vec<u8>>())
                    .unwrap_or_default();
                match portolan_traffic::sniff(&head) {
                    Format::Capture => anyhow::bail!(
                        "{}: --follow reads logs and conn.log, not captures",
                        portolan_output::escape::terminal(&name)
                    ),
                    f => f,
                }
            }
        };
        detector.add_source(SourceName { name: name.clone(), capture: false });
        parsers.push((portolan_traffic::TextParser::new(format, i as u32, opts), name));
        let mut follower =
            portolan_traffic::follow::Follower::new(path, args.from_start).with_context(|| {
                format!("following {}", portolan_output::escape::terminal(&path.display().to_string()))
            })?;
        let (tx, stop) = (tx.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            follower.run(&stop, |line, n| {
                let _ = tx.send((i, line.to_vec(), n));
            })
        }));
    }
    drop(tx);
    if !ctx.quiet {
        eprintln!("portolan: following {} file(s); Ctrl-C to stop", args.files.len());
    }
    let mut out = super::stdout();
    let mut failing = false;
    let threshold = args.fail_on.0;
    let mut emit = |out: &mut dyn Write, d: &portolan_model::Detection| -> anyhow::Result<()> {
        if !d.open && threshold.is_some_and(|t| d.severity >= t) {
            failing = true;
        }
        match args.output {
            WatchOutput::Ndjson => records::ndjson(out, std::iter::once(d))?,
            _ => portolan_output::watch::write_detection(out, d, ctx.color)?,
        }
        out.flush().context("writing to standard output")?;
        Ok(())
    };
    // the detectors' clock: the latest event's time, moved on by the wall clock since
    let mut last_event: Option<(i64, Instant)> = None;
    let mut last_tick = Instant::now();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok((i, line, n)) => {
                let (parser, name) = &mut parsers[i];
                match parser.line(&line, n) {
                    Ok(Some(e)) => {
                        last_event = Some((e.ts_us, Instant::now()));
                        detector.event(&e);
                    }
                    Ok(None) => {}
                    Err(why) => {
                        if !ctx.quiet {
                            eprintln!(
                                "portolan: note: {}:{n}: skipped: {}",
                                portolan_output::escape::terminal(name),
                                portolan_output::escape::terminal(&format!("{why:?}"))
                            );
                        }
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        for d in detector.take_started() {
            emit(&mut out, &d)?;
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            if let Some((ts, at)) = last_event {
                detector.tick(ts + at.elapsed().as_micros() as i64);
            }
        }
        for d in detector.take_finished() {
            emit(&mut out, &d)?;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    // a follower blocked on a full channel sees it closed
    drop(rx);
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("portolan: error: following: {}", portolan_output::escape::terminal(&e.to_string()))
            }
            Err(_) => eprintln!("portolan: error: a follower thread failed"),
        }
    }
    let (rest, _) = detector.finish();
    for d in &rest {
        emit(&mut out, d)?;
    }
    Ok(if failing { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
