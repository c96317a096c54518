//! A watch session: traffic sources read into the detectors, from files to their end or
//! followed as they grow. The command line decides the [`WatchPlan`]; detections, events and
//! notes go to callbacks; nothing here prints.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use portolan_detect::{Config, Detector, SourceName};
use portolan_model::traffic::{InputSummary, WatchReport};
use portolan_model::{Detection, Event};
use portolan_traffic::{Format, Options, Parsed, TextParser};

/// What to watch and how.
#[derive(Debug, Clone)]
pub struct WatchPlan {
    /// The inputs (`-` for standard input, files only).
    pub files: Vec<PathBuf>,
    /// Interfaces to capture on, live (following only).
    pub interfaces: Vec<String>,
    /// NFLOG groups to read, live (following only).
    pub nflog: Vec<u16>,
    /// Watch this machine's own listening sockets: one that appears, or changes owner, after
    /// the start is a `new_service` detection.
    pub listeners: bool,
    /// The policy a listener must be approved by (`--policy`): with it, a listener that
    /// appears or changes owner is reported only when the policy does not approve it.
    pub policy: Option<Judge>,
    /// Follow the systemd journal (`journalctl --follow --output=json`): `Some(None)` this
    /// machine's, `Some(Some(dir))` the journal files in a directory.
    pub journal: Option<Option<PathBuf>>,
    /// With `listeners`: the saved inventory to compare with, instead of the listeners at the
    /// start (a listener it lacks, or held by other programs, is reported at the first look).
    pub listener_baseline: Option<portolan_model::LocalInventory>,
    /// How to read them.
    pub read: Options,
    /// The detectors' thresholds.
    pub detect: Config,
}

/// Why a watch could not run (a single unreadable input is not this: it is reported in its
/// [`InputSummary`] and the others are still read).
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// `--follow` was given something it cannot follow.
    #[error("{path}: {why}")]
    CannotFollow {
        /// The input.
        path: String,
        /// Why.
        why: &'static str,
    },
    /// A follower could not start.
    #[error("following {path}: {source}")]
    Follow {
        /// The file.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
    /// This machine's listeners could not be read.
    #[error("reading this machine's listeners: {0}")]
    Listeners(String),
    /// journalctl could not be started.
    #[error("following the journal: cannot run journalctl: {0}")]
    Journal(std::io::Error),
    /// A live capture could not start.
    #[error(transparent)]
    Live(#[from] portolan_traffic::live::LiveError),
    /// An NFLOG group could not be read.
    #[error(transparent)]
    Nflog(#[from] portolan_traffic::nflog::NflogError),
    /// A callback failed (writing the output).
    #[error(transparent)]
    Output(#[from] std::io::Error),
}

/// Hears each event (`--events`).
pub type EventSink<'a> = dyn FnMut(&Event) -> std::io::Result<()> + 'a;

/// What a follower or a live capture sends the detectors.
enum Msg {
    /// A line of input `.0`, numbered `.2`.
    Line(usize, Vec<u8>, u64),
    /// An event a live capture made.
    Event(Event),
    /// A detection made outside the detectors (a new listener).
    Detection(Box<Detection>),
}

/// What a policy said about (address, port, transport), remembered.
type Verdicts = std::collections::HashMap<(std::net::IpAddr, u16, portolan_model::Proto), bool>;

/// A policy as watch uses it: whether a host may answer on a port, and what is wrong with a
/// listener of this machine.
#[derive(Clone)]
pub struct Judge {
    policy: Arc<portolan_policy::Policy>,
    today: jiff::civil::Date,
    name: String,
    cache: Arc<std::sync::Mutex<Verdicts>>,
}

impl std::fmt::Debug for Judge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Judge").field("name", &self.name).field("today", &self.today).finish()
    }
}

impl Judge {
    /// A judge of `policy` (named `name` in detections) on `today`.
    pub fn new(policy: portolan_policy::Policy, name: String, today: jiff::civil::Date) -> Judge {
        Judge { policy: Arc::new(policy), today, name, cache: Arc::default() }
    }

    /// Whether the policy approves `addr` answering on `port` (as a scan would see it).
    pub fn approves(&self, addr: std::net::IpAddr, port: u16, proto: portolan_model::Proto) -> bool {
        let transport = match proto {
            portolan_model::Proto::Udp => portolan_model::Transport::Udp,
            portolan_model::Proto::Sctp => portolan_model::Transport::Sctp,
            portolan_model::Proto::Tcp => portolan_model::Transport::Tcp,
            _ => return true,
        };
        if let Ok(cache) = self.cache.lock()
            && let Some(v) = cache.get(&(addr, port, proto))
        {
            return *v;
        }
        let mut run = portolan_model::ScanRun::new("portolan", "", "watch", jiff::Timestamp::now());
        let mut h = portolan_model::Host::up(addr, portolan_model::Reason::SynAck);
        h.ports.push(portolan_model::Port {
            number: port,
            transport,
            state: portolan_model::PortState::Open,
            reason: portolan_model::Reason::SynAck,
            reason_ttl: 0,
            service: None,
        });
        run.hosts.push(h);
        let obs = portolan_policy::Observations::from_run(&run);
        let found =
            portolan_policy::audit(&self.policy, &obs, &portolan_policy::AuditOptions { today: self.today });
        let ok = !found.iter().any(|f| f.rule == "policy.unapproved");
        if let Ok(mut cache) = self.cache.lock() {
            // bounded: when full, it starts again
            if cache.len() >= 100_000 {
                cache.clear();
            }
            cache.insert((addr, port, proto), ok);
        }
        ok
    }

    /// As a detection baseline: what the policy approves.
    pub fn baseline(&self) -> portolan_detect::Baseline {
        let me = self.clone();
        portolan_detect::Baseline::approved_by(
            self.name.clone(),
            Arc::new(move |a, p, t| me.approves(a, p, t)),
        )
    }

    /// What the policy says against this listener (not approved, another process, a wider
    /// scope than approved), or `None` when it approves it.
    fn listener(
        &self,
        s: &portolan_model::LocalSocket,
        inv: &portolan_model::LocalInventory,
    ) -> Option<String> {
        let mut one = inv.clone();
        one.sockets = vec![s.clone()];
        one.findings.clear();
        let obs = portolan_policy::Observations::from_local(&one);
        let found =
            portolan_policy::audit(&self.policy, &obs, &portolan_policy::AuditOptions { today: self.today });
        found
            .into_iter()
            .find(|f| f.rule.starts_with("policy.") && f.rule != "policy.missing")
            .map(|f| f.title)
    }
}

/// A listening socket as the listener watch compares them: transport, address, port, and the
/// names of the processes holding it.
type Listener = (portolan_model::Transport, std::net::IpAddr, u16);

/// The processes holding a listener (`name (pid N)`), their names alone (what is compared: a
/// restarted daemon is not a change), how far it is bound, and the socket.
type Held = (Vec<String>, Vec<String>, portolan_model::BindScope, portolan_model::LocalSocket);

type Listeners = (std::collections::BTreeMap<Listener, Held>, portolan_model::LocalInventory);

fn listeners_now() -> Result<Listeners, portolan_local::Error> {
    let mut inv = portolan_local::inventory(&portolan_local::Options::default())?;
    let out = held(&inv);
    inv.sockets.clear();
    Ok((out, inv))
}

/// The listeners of an inventory, as the listener watch compares them.
fn held(inv: &portolan_model::LocalInventory) -> std::collections::BTreeMap<Listener, Held> {
    let mut out: std::collections::BTreeMap<Listener, Held> = std::collections::BTreeMap::new();
    for s in inv.sockets.iter().filter(|s| s.state.is_listening() && !s.probable_client) {
        let (shown, names, _, _) = out
            .entry((s.transport, s.local_address, s.local_port))
            .or_insert_with(|| (Vec::new(), Vec::new(), s.scope, s.clone()));
        for o in &s.owners {
            let n = format!("{} (pid {})", o.comm, o.pid);
            if !shown.contains(&n) {
                shown.push(n);
            }
            if !names.iter().any(|x| **x == *o.comm) {
                names.push(o.comm.to_string());
            }
        }
    }
    for (a, b, _, _) in out.values_mut() {
        a.sort();
        b.sort();
    }
    out
}

/// Looks at this machine's listeners four times a second until `stop`; a listener not in
/// `known`, or held by other processes than before, is reported once.
fn watch_listeners(
    mut known: std::collections::BTreeMap<Listener, Held>,
    judge: Option<&Judge>,
    stop: &Arc<AtomicBool>,
    report: &mut dyn FnMut(Detection),
) {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(250));
        let Ok((now, inv)) = listeners_now() else { continue };
        for (key, (owners, names, scope, socket)) in &now {
            let before = known.get(key).map(|h| &h.1);
            if before == Some(names) {
                continue;
            }
            // with a policy, only what it does not approve
            let verdict = match judge {
                Some(j) => match j.listener(socket, &inv) {
                    Some(why) => Some(why),
                    None => continue,
                },
                None => None,
            };
            let (transport, addr, port) = *key;
            let held = if owners.is_empty() { "an owner not visible".to_string() } else { owners.join(", ") };
            let mut summary = match before {
                None => format!(
                    "a new listener on {}/{transport}, held by {held}",
                    std::net::SocketAddr::new(addr, port)
                ),
                Some(old) => format!(
                    "the listener on {}/{transport} changed owner: now {held}, before {}",
                    std::net::SocketAddr::new(addr, port),
                    if old.is_empty() { "not visible".to_string() } else { old.join(", ") }
                ),
            };
            if let (Some(why), Some(j)) = (&verdict, judge) {
                summary.push_str(&format!("; {}: {why}", j.name));
            }
            let reach = portolan_kb::Reach::of(*scope, addr);
            let risk = portolan_kb::for_port(port, transport).map(|k| k.risk(reach)).max();
            let severity = match (reach, risk) {
                (portolan_kb::Reach::Loopback, _) => portolan_model::Severity::Low,
                (_, Some(r)) => r.max(portolan_model::Severity::Medium),
                _ => portolan_model::Severity::Medium,
            };
            let now_text = jiff::Timestamp::now().to_string();
            report(Detection {
                kind: portolan_model::DetectionKind::NewService,
                src: None,
                srcs: Vec::new(),
                targets: vec![addr],
                target_count: 1,
                ports: port.to_string(),
                port_count: 1,
                transport: match transport {
                    portolan_model::Transport::Udp => portolan_model::Proto::Udp,
                    portolan_model::Transport::Sctp => portolan_model::Proto::Sctp,
                    _ => portolan_model::Proto::Tcp,
                },
                scan_type: None,
                tool: portolan_model::traffic::Tool::Unknown,
                first_seen: now_text.clone(),
                last_seen: now_text,
                events: 1,
                severity,
                attack: Vec::new(),
                evidence: owners.clone(),
                allowed: false,
                open: false,
                summary,
            });
        }
        // what went away may come back: that is new again
        known = now;
    }
}

/// Reads every input to its end; `events`, when given, hears every event instead of the
/// detectors (`--events`). Returns the report and whether an input could not be read.
pub fn read_files(
    plan: &WatchPlan,
    mut events: Option<&mut EventSink<'_>>,
) -> Result<(WatchReport, bool), WatchError> {
    let mut detector = Detector::new(plan.detect.clone(), Vec::new());
    let mut inputs = Vec::new();
    let mut failed = false;
    for (i, path) in plan.files.iter().enumerate() {
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
        let result = match events.as_mut() {
            Some(sink) => portolan_traffic::read(path, i as u32, &plan.read, &mut |e| {
                if write_err.is_none()
                    && let Err(err) = sink(&e)
                {
                    write_err = Some(err);
                }
            }),
            None => {
                detector.add_source(SourceName {
                    name: name.clone(),
                    capture: is_capture(path, plan.read.format),
                });
                portolan_traffic::read(path, i as u32, &plan.read, &mut |e| detector.event(&e))
            }
        };
        if let Some(e) = write_err {
            return Err(WatchError::Output(e));
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
                summary.error = Some(e.to_string());
            }
        }
        inputs.push(summary);
    }
    let (detections, evicted_sources) = detector.finish();
    let report =
        WatchReport { format_version: portolan_model::FORMAT_VERSION, inputs, evicted_sources, detections };
    Ok((report, failed))
}

/// Whether `path` names a capture, for evidence (`file#packet`): the forced format, or the
/// name (`.pcap`, `.pcapng`, `.cap`, and those gzipped).
fn is_capture(path: &Path, forced: Option<Format>) -> bool {
    if let Some(f) = forced {
        return f == Format::Capture;
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    matches!(ext, "pcap" | "pcapng" | "cap")
        || (ext == "gz" && (stem.ends_with(".pcap") || stem.ends_with(".pcapng")))
}

/// Follows the inputs (logs or conn.log) as they grow until `stop`: `emit` hears each
/// detection when it starts (`open`) and when it ends; `note` hears skipped lines.
/// `from_start`: read what the files hold already, too.
pub fn follow(
    plan: &WatchPlan,
    from_start: bool,
    metrics: Option<&portolan_output::metrics::Metrics>,
    stop: &Arc<AtomicBool>,
    emit: &mut dyn FnMut(&Detection) -> std::io::Result<()>,
    note: &mut dyn FnMut(String),
) -> Result<(), WatchError> {
    let mut detector = Detector::new(plan.detect.clone(), Vec::new()).live();
    let (tx, rx) = mpsc::sync_channel::<Msg>(16_384);
    let mut parsers = Vec::new();
    let mut threads = Vec::new();
    for (i, path) in plan.files.iter().enumerate() {
        let name = path.display().to_string();
        let cannot = |why| WatchError::CannotFollow { path: name.clone(), why };
        if path == Path::new("-") {
            return Err(cannot("standard input is read without following"));
        }
        let format = match plan.read.format {
            Some(f) => f,
            None => {
                let head: Vec<u8> =
                    std::fs::read(path).map(|b| b.into_iter().take(4096).collect()).unwrap_or_default();
                portolan_traffic::sniff(&head)
            }
        };
        if format == Format::Capture {
            return Err(cannot("a capture cannot be followed; follow logs or conn.log"));
        }
        detector.add_source(SourceName { name: name.clone(), capture: false });
        parsers.push((TextParser::new(format, i as u32, &plan.read), name.clone()));
        let mut follower = portolan_traffic::follow::Follower::new(path, from_start)
            .map_err(|source| WatchError::Follow { path: name.clone(), source })?;
        let (tx, stop) = (tx.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            follower.run(&stop, |line, n| {
                let _ = tx.send(Msg::Line(i, line.to_vec(), n));
            })
        }));
    }
    for iface in &plan.interfaces {
        let live = portolan_traffic::live::Live::open(iface)?;
        let source = detector.add_source(SourceName { name: iface.clone(), capture: true });
        parsers.push((TextParser::new(Format::Log, source, &plan.read), iface.clone()));
        let (tx, stop, max_flows) = (tx.clone(), stop.clone(), plan.read.max_flows);
        threads.push(std::thread::spawn(move || {
            live.run(source, max_flows, &stop, &mut |e| {
                let _ = tx.send(Msg::Event(e));
            })
            .map(|_| ())
        }));
    }
    for &group in &plan.nflog {
        let nflog = portolan_traffic::nflog::Nflog::open(group)?;
        let name = format!("nflog:{group}");
        let source = detector.add_source(SourceName { name: name.clone(), capture: true });
        parsers.push((TextParser::new(Format::Log, source, &plan.read), name));
        let (tx, stop) = (tx.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            nflog
                .run(source, &stop, &mut |e| {
                    let _ = tx.send(Msg::Event(e));
                })
                .map(|_| ())
        }));
    }
    // the journal, through journalctl (its files are read by systemd's own reader); the child
    // is killed when the watch ends
    let mut journal_child = None;
    if let Some(dir) = &plan.journal {
        let name = match dir {
            Some(d) => format!("journal:{}", d.display()),
            None => "journal".to_string(),
        };
        let source = detector.add_source(SourceName { name: name.clone(), capture: false });
        let index = parsers.len();
        parsers.push((TextParser::new(Format::Log, source, &plan.read), name));
        let mut cmd = std::process::Command::new("journalctl");
        cmd.args(["--follow", "--output=json", "--no-pager"]);
        cmd.arg(if from_start { "--lines=all" } else { "--lines=0" });
        if let Some(d) = dir {
            cmd.arg("--directory").arg(d);
        }
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().map_err(WatchError::Journal)?;
        let Some(out) = child.stdout.take() else {
            return Err(WatchError::Journal(std::io::Error::other("no output pipe")));
        };
        journal_child = Some(child);
        let tx = tx.clone();
        threads.push(std::thread::spawn(move || {
            use std::io::BufRead as _;
            let mut r = std::io::BufReader::with_capacity(256 * 1024, out);
            let mut line = Vec::new();
            let mut n = 0u64;
            loop {
                line.clear();
                // a line is at most 1 MiB: the rest of a longer one is dropped
                let got = std::io::Read::take(&mut r, 1 << 20).read_until(b'\n', &mut line)?;
                if got == 0 {
                    return Ok(());
                }
                if line.last() != Some(&b'\n') && got == 1 << 20 {
                    let mut sink = Vec::new();
                    r.read_until(b'\n', &mut sink)?;
                }
                n += 1;
                while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    line.pop();
                }
                if tx.send(Msg::Line(index, line.clone(), n)).is_err() {
                    return Ok(());
                }
            }
        }));
    }
    if plan.listeners {
        let (tx, stop) = (tx.clone(), stop.clone());
        let baseline = match &plan.listener_baseline {
            Some(inv) => held(inv),
            None => listeners_now().map_err(|e| WatchError::Listeners(e.to_string()))?.0,
        };
        let judge = plan.policy.clone();
        threads.push(std::thread::spawn(move || {
            watch_listeners(baseline, judge.as_ref(), &stop, &mut |d| {
                let _ = tx.send(Msg::Detection(Box::new(d)));
            });
            Ok(())
        }));
        parsers.push((TextParser::new(Format::Log, u32::MAX, &plan.read), "listeners".to_string()));
    }
    drop(tx);
    // the detectors' clock: the latest event's time, moved on by the wall clock since
    let mut last_event: Option<(i64, Instant)> = None;
    let mut last_tick = Instant::now();
    let mut result = Ok(());
    while !stop.load(Ordering::Relaxed) {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Msg::Detection(d)) => {
                if let Some(m) = metrics {
                    m.detection(d.kind.as_str(), d.severity.as_str());
                }
                if let Err(e) = emit(&d) {
                    result = Err(WatchError::Output(e));
                    break;
                }
            }
            Ok(Msg::Event(e)) => {
                if let (Some(m), Some((_, name))) = (metrics, parsers.get(e.evidence.source as usize)) {
                    m.event(name);
                }
                last_event = Some((e.ts_us, Instant::now()));
                detector.event(&e);
            }
            Ok(Msg::Line(i, line, n)) => {
                let (parser, name) = &mut parsers[i];
                if let Some(m) = metrics {
                    m.line(name);
                }
                match parser.line(&line, n) {
                    Ok(Some(e)) => {
                        if let Some(m) = metrics {
                            m.event(name);
                        }
                        last_event = Some((e.ts_us, Instant::now()));
                        detector.event(&e);
                    }
                    Ok(None) => {}
                    Err(Parsed::Skip(why)) => note(format!("{name}:{n}: skipped: {why}")),
                    Err(Parsed::NoHeader(missing)) => {
                        note(format!("{name}:{n}: skipped: no #fields header with {}", missing.join(", ")))
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            if let Some((ts, at)) = last_event {
                detector.tick(ts + at.elapsed().as_micros() as i64);
                if let Some(m) = metrics {
                    let wall = jiff::Timestamp::now().as_microsecond();
                    m.lag((wall - ts) as f64 / 1e6);
                }
            }
            if let Some(m) = metrics {
                m.sources(detector.tracked(), detector.evicted);
            }
        }
        let (started, finished) = (detector.take_started(), detector.take_finished());
        if let Some(m) = metrics {
            // each detection once: when it starts (a new service is complete at once)
            for d in started.iter().filter(|d| d.open || d.kind == portolan_model::DetectionKind::NewService)
            {
                m.detection(d.kind.as_str(), d.severity.as_str());
            }
        }
        if let Err(e) = started.iter().chain(&finished).try_for_each(&mut *emit) {
            result = Err(WatchError::Output(e));
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(mut c) = journal_child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    // a follower blocked on a full channel sees it closed
    drop(rx);
    for (t, (_, name)) in threads.into_iter().zip(&parsers) {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => note(format!("{name}: following stopped: {e}")),
            Err(_) => note(format!("{name}: the follower failed")),
        }
    }
    result?;
    let (rest, _) = detector.finish();
    rest.iter().try_for_each(emit)?;
    Ok(())
}
