//! Streaming writers for scan results.
//!
//! A scan calls [`ScanSink::begin`] once, [`ScanSink::host`] as each host finishes, and
//! [`ScanSink::end`] once — also when interrupted, so partial output is still complete and
//! valid. An import does the same with the hosts of a file.

mod grepable;
mod human;
mod machine;
mod xml;

use std::io;

use jiff::Timestamp;
use portolan_model::{ExtraPorts, ExtraReason, Host, Port, PortState, ScanRun, Service, port_ranges};

pub use grepable::GrepableSink;
pub use human::NormalSink;
pub use machine::{CsvSink, JsonSink, NdjsonSink};
pub use xml::XmlSink;

/// What to show; the same for every format.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShowOptions {
    /// `-v` level: more ports are listed before being summarised.
    pub verbose: u8,
    /// `--open`: only ports that may be open.
    pub open_only: bool,
    /// `--reason`: a REASON column in human output.
    pub reason: bool,
    /// Never summarise listed ports (for imports: the file already decided what to list).
    pub keep_listed: bool,
}

/// A destination for scan results.
pub trait ScanSink {
    /// Called once before any host, with the run's parameters.
    fn begin(&mut self, run: &ScanRun) -> io::Result<()>;
    /// Called once per finished host.
    fn host(&mut self, host: &Host) -> io::Result<()>;
    /// Called once at the end (also after an interruption) with the final run statistics.
    fn end(&mut self, run: &ScanRun) -> io::Result<()>;
}

/// Every sink of one command, fed together: a host goes to each in turn.
#[derive(Default)]
pub struct Sinks {
    sinks: Vec<Box<dyn ScanSink>>,
}

impl Sinks {
    /// These sinks.
    pub fn new(sinks: Vec<Box<dyn ScanSink>>) -> Sinks {
        Sinks { sinks }
    }
    /// No output at all (a scan whose result another command judges).
    pub fn none() -> Sinks {
        Sinks::default()
    }
}

impl ScanSink for Sinks {
    fn begin(&mut self, run: &ScanRun) -> io::Result<()> {
        self.sinks.iter_mut().try_for_each(|s| s.begin(run))
    }
    fn host(&mut self, h: &Host) -> io::Result<()> {
        self.sinks.iter_mut().try_for_each(|s| s.host(h))
    }
    fn end(&mut self, run: &ScanRun) -> io::Result<()> {
        self.sinks.iter_mut().try_for_each(|s| s.end(run))
    }
}

/// Writes a whole run to a sink.
pub fn write_run(sink: &mut dyn ScanSink, run: &ScanRun) -> io::Result<()> {
    sink.begin(run)?;
    for h in &run.hosts {
        sink.host(h)?;
    }
    sink.end(run)
}

/// nmap's rule for which states are listed port by port: open is always listed, a state with
/// more than 25 × (verbose + 1) ports is summarised; with `--open`, only states that may be
/// open are listed.
pub fn is_ignored(state: PortState, count: usize, opts: &ShowOptions) -> bool {
    if state == PortState::Open {
        return false;
    }
    if opts.open_only && !matches!(state, PortState::OpenFiltered | PortState::Unfiltered) {
        return true;
    }
    count > 25 * (usize::from(opts.verbose) + 1)
}

/// The ports of a host split into those to list and those to summarise.
pub struct Shown<'a> {
    /// Ports listed one by one, in (transport, number) order.
    pub listed: Vec<&'a Port>,
    /// Ports summarised by state (including those the host already had summarised).
    pub extra: Vec<ExtraPorts>,
}

/// Applies [`is_ignored`] to a host's ports.
pub fn shown<'a>(host: &'a Host, opts: &ShowOptions) -> Shown<'a> {
    let mut states: Vec<(PortState, usize)> = Vec::new();
    for p in &host.ports {
        match states.iter_mut().find(|(s, _)| *s == p.state) {
            Some((_, n)) => *n += 1,
            None => states.push((p.state, 1)),
        }
    }
    let ignored: Vec<PortState> = states
        .iter()
        .filter(|(s, n)| {
            if opts.keep_listed {
                opts.open_only && is_ignored(*s, 0, opts)
            } else {
                is_ignored(*s, *n, opts)
            }
        })
        .map(|(s, _)| *s)
        .collect();
    let mut listed: Vec<&Port> = host.ports.iter().filter(|p| !ignored.contains(&p.state)).collect();
    listed.sort_by_key(|p| (p.transport, p.number));
    let mut extra = host.extra_ports.clone();
    for state in ignored {
        let ports: Vec<&Port> = host.ports.iter().filter(|p| p.state == state).collect();
        let mut reasons: Vec<ExtraReason> = Vec::new();
        for p in &ports {
            match reasons.iter_mut().find(|r| r.reason == p.reason && r.transport == Some(p.transport)) {
                Some(r) => r.count += 1,
                None => reasons.push(ExtraReason {
                    reason: p.reason.clone(),
                    count: 1,
                    transport: Some(p.transport),
                    ports: None,
                }),
            }
        }
        for r in &mut reasons {
            let mut nums: Vec<u16> = ports
                .iter()
                .filter(|p| p.reason == r.reason && Some(p.transport) == r.transport)
                .map(|p| p.number)
                .collect();
            nums.sort_unstable();
            r.ports = Some(port_ranges(&nums));
        }
        match extra.iter_mut().find(|e| e.state == state) {
            Some(e) => {
                e.count += ports.len() as u32;
                e.reasons.extend(reasons);
            }
            None => extra.push(ExtraPorts { state, count: ports.len() as u32, reasons }),
        }
    }
    Shown { listed, extra }
}

/// nmap's VERSION column: `product version (extrainfo)`.
pub fn version_text(s: &Service) -> String {
    let mut v = String::new();
    for part in [&s.product, &s.version].into_iter().flatten() {
        if !v.is_empty() {
            v.push(' ');
        }
        v.push_str(part);
    }
    if let Some(x) = &s.extra_info {
        if !v.is_empty() {
            v.push(' ');
        }
        v.push('(');
        v.push_str(x);
        v.push(')');
    }
    v
}

/// nmap's date format (`Tue Nov 24 04:43:10 2026`) in the local time zone.
pub fn nmap_time(t: Timestamp) -> String {
    let zoned = t.to_zoned_datetime(jiff::tz::TimeZone::system());
    zoned.strftime("%a %b %e %H:%M:%S %Y").to_string()
}

/// The scanner's name for headers: `Nmap`, `Portolan`, or as the file gave it.
pub fn scanner_title(run: &ScanRun) -> String {
    match run.scanner.as_str() {
        "nmap" => "Nmap".to_string(),
        "portolan" => "Portolan".to_string(),
        other => other.to_string(),
    }
}

/// `1 IP address (1 host up)` as nmap words it.
pub fn hosts_summary(run: &ScanRun) -> String {
    let total = run.stats.hosts_total;
    let up = run.stats.hosts_up;
    format!(
        "{total} IP address{} ({up} host{} up)",
        if total == 1 { "" } else { "es" },
        if up == 1 { "" } else { "s" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_model::{Reason, Transport};

    fn port(n: u16, state: PortState, reason: Reason) -> Port {
        Port { number: n, transport: Transport::Tcp, state, reason, reason_ttl: 0, service: None }
    }

    #[test]
    fn states_are_summarised_like_nmap() {
        let mut h = Host::up("127.0.0.1".parse().unwrap(), Reason::LocalhostResponse);
        for n in 1..=30 {
            h.ports.push(port(n, PortState::Closed, Reason::ConnRefused));
        }
        h.ports.push(port(22, PortState::Open, Reason::SynAck));
        h.ports.push(port(99, PortState::Filtered, Reason::NoResponse));
        let s = shown(&h, &ShowOptions::default());
        assert_eq!(s.listed.len(), 2);
        assert_eq!(s.extra.len(), 1);
        assert_eq!(s.extra[0].count, 30);
        assert_eq!(s.extra[0].reasons[0].ports.as_deref(), Some("1-30"));
        // -v lists up to 50 per state
        let s = shown(&h, &ShowOptions { verbose: 1, ..Default::default() });
        assert_eq!(s.listed.len(), 32);
        // --open keeps only open
        let s = shown(&h, &ShowOptions { open_only: true, ..Default::default() });
        assert_eq!(s.listed.len(), 1);
    }

    #[test]
    fn version_text_matches_nmap() {
        let s = Service {
            name: "http".into(),
            product: Some("SimpleHTTPServer".into()),
            version: Some("0.6".into()),
            extra_info: Some("Python 3.11.7".into()),
            ..Service::default()
        };
        assert_eq!(version_text(&s), "SimpleHTTPServer 0.6 (Python 3.11.7)");
    }
}

/// A scan format: one of nmap's (normal, grepable, XML) or Portolan's; [`Format::CHOICES`]
/// names and describes each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Format {
    Table,
    Normal,
    Grepable,
    Xml,
    Json,
    Ndjson,
    Csv,
}

impl Format {
    /// Each format's name (as `-o` takes it), what it is, and the format.
    pub const CHOICES: &[(&str, &str, Format)] = &[
        ("table", "nmap-like report with colour on a terminal", Format::Table),
        ("normal", "nmap normal output", Format::Normal),
        ("grepable", "nmap grepable output", Format::Grepable),
        ("xml", "nmap XML", Format::Xml),
        ("json", "One JSON document (docs/schema/scan-run.schema.json)", Format::Json),
        ("ndjson", "One host per line as JSON", Format::Ndjson),
        ("csv", "One port per line as CSV", Format::Csv),
    ];
}

/// The files nmap's `-oN`, `-oX`, `-oG`, `-oJ` and `-oA BASE` name; `-` is standard output.
#[derive(Debug, Clone, Default)]
pub struct Files {
    /// nmap normal output.
    pub normal: Option<std::path::PathBuf>,
    /// nmap XML.
    pub xml: Option<std::path::PathBuf>,
    /// nmap grepable output.
    pub grepable: Option<std::path::PathBuf>,
    /// JSON.
    pub json: Option<std::path::PathBuf>,
    /// Every format at once: BASE.nmap, BASE.xml, BASE.gnmap, BASE.json.
    pub all: Option<std::path::PathBuf>,
}

/// A sink that writes one format to `w`.
pub fn sink(format: Format, w: Box<dyn io::Write>, opts: ShowOptions, color: bool) -> Box<dyn ScanSink> {
    match format {
        Format::Table => Box::new(NormalSink::human(w, opts, color)),
        Format::Normal => Box::new(NormalSink::normal(w, opts)),
        Format::Grepable => Box::new(GrepableSink::new(w, opts)),
        Format::Xml => Box::new(XmlSink::new(w, opts)),
        Format::Json => Box::new(JsonSink::new(w, opts)),
        Format::Ndjson => Box::new(NdjsonSink::new(w, opts)),
        Format::Csv => Box::new(CsvSink::new(w, opts)),
    }
}

/// An output file that cannot be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot create output file {}: {source}", path.display())]
pub struct CreateError {
    /// The file.
    pub path: std::path::PathBuf,
    /// Why.
    pub source: io::Error,
}

/// Opens every sink a command asked for: each file, and standard output in `format` unless a
/// file is `-`. Files are created before any work starts, so a bad path fails early.
pub fn open(format: Format, files: &Files, opts: ShowOptions, color: bool) -> Result<Sinks, CreateError> {
    use std::path::PathBuf;
    let mut list: Vec<(Format, PathBuf)> = [
        (Format::Normal, &files.normal),
        (Format::Xml, &files.xml),
        (Format::Grepable, &files.grepable),
        (Format::Json, &files.json),
    ]
    .into_iter()
    .filter_map(|(f, p)| p.clone().map(|p| (f, p)))
    .collect();
    if let Some(base) = &files.all {
        for (f, ext) in [
            (Format::Normal, ".nmap"),
            (Format::Xml, ".xml"),
            (Format::Grepable, ".gnmap"),
            (Format::Json, ".json"),
        ] {
            let mut s = base.clone().into_os_string();
            s.push(ext);
            list.push((f, PathBuf::from(s)));
        }
    }
    let stdout = || Box::new(io::BufWriter::new(io::stdout())) as Box<dyn io::Write>;
    let mut sinks: Vec<Box<dyn ScanSink>> = Vec::new();
    let to_stdout = list.iter().any(|(_, p)| p.as_os_str() == "-");
    for (f, path) in list {
        let w = if path.as_os_str() == "-" {
            stdout()
        } else {
            match std::fs::File::create(&path) {
                Ok(file) => Box::new(io::BufWriter::new(file)),
                Err(source) => return Err(CreateError { path, source }),
            }
        };
        sinks.push(sink(f, w, opts, false));
    }
    if !to_stdout {
        sinks.push(sink(format, stdout(), opts, color));
    }
    Ok(Sinks::new(sinks))
}
