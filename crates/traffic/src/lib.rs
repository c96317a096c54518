//! Traffic sources: packet captures, Zeek's conn.log, firewall LOG lines and sshd's log, read
//! as streams into [`portolan_model::Event`]s.
//!
//! [`read`] opens a file (or standard input), unpacks gzip, recognises the format from the
//! content (`--format` overrides) and streams its events to a callback, keeping the file and
//! line or packet number of each. Memory is bounded whatever the input: lines longer than
//! [`MAX_LINE`] are skipped and counted, the flow table is capped, and gzip that expands
//! beyond reason is refused.

pub mod capture;
pub mod flows;
pub mod follow;
pub mod live;
pub mod logline;
pub mod nflog;
pub mod packet;
pub mod vpc;
pub mod zeek;

use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use jiff::tz::TimeZone;
use portolan_model::Event;
use portolan_model::input::InputError;

/// The longest line a text reader takes; a longer one is skipped and counted.
pub const MAX_LINE: usize = 1 << 20;

/// What a gzip stream may expand to: this many times its compressed size, plus 64 MiB.
const GZIP_RATIO: u64 = 250;

/// The formats Portolan reads traffic from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    /// pcap or pcapng.
    Capture,
    /// Zeek conn.log (TSV or JSON lines).
    Zeek,
    /// Kernel LOG lines and sshd's log (dmesg, syslog, journalctl).
    Log,
    /// AWS VPC flow logs (version 2 default format, or custom with a header line).
    Vpc,
}

impl Format {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Capture => "pcap",
            Format::Zeek => "zeek",
            Format::Log => "log",
            Format::Vpc => "vpc",
        }
    }
}

/// Why a traffic source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Reading failed part-way.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The failure.
        source: io::Error,
    },
    /// A capture is damaged or truncated.
    #[error("{path}: at byte {offset}: {what}")]
    Capture {
        /// The file.
        path: String,
        /// Bytes from the start of the (unpacked) file.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// A VPC flow log's header lacks the fields a flow needs.
    #[error("{path}:{line}: the flow log header lacks {}; is this a VPC flow log?", missing.join(", "))]
    VpcHeader {
        /// The file.
        path: String,
        /// The header's line.
        line: u64,
        /// The missing field names.
        missing: Vec<&'static str>,
    },
    /// A Zeek log's header lacks the fields a connection needs.
    #[error("{path}:{line}: the #fields header lacks {}; is this a conn.log?", missing.join(", "))]
    ZeekHeader {
        /// The file.
        path: String,
        /// The header's line.
        line: u64,
        /// The missing field names.
        missing: Vec<&'static str>,
    },
    /// A gzip stream that expands too far (a decompression bomb) or is damaged.
    #[error("{path}: {what}")]
    Gzip {
        /// The file.
        path: String,
        /// What is wrong.
        what: String,
    },
}

/// What reading one source found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// The format read.
    pub format: Option<Format>,
    /// Lines or packets read.
    pub records: u64,
    /// Events produced.
    pub events: u64,
    /// Packets that are not IP, or whose headers are cut off.
    pub undecoded: u64,
    /// Records skipped as damaged (with the first one's place in `first_skip`).
    pub skipped: u64,
    /// Where the first skipped record is and why (`FILE:LINE: reason`).
    pub first_skip: Option<String>,
    /// Flows ended early because the flow table was full.
    pub evicted: u64,
}

/// How to read.
#[derive(Debug, Clone)]
pub struct Options {
    /// The format, or `None` to recognise it from the content.
    pub format: Option<Format>,
    /// The flow table's cap for captures.
    pub max_flows: usize,
    /// The year of syslog (RFC 3164) stamps, which carry none.
    pub year: i16,
    /// The time zone of syslog stamps.
    pub tz: TimeZone,
}

/// Reads `path` (`-` for standard input) as input number `source`, sending each event to
/// `out`.
pub fn read(path: &Path, source: u32, opts: &Options, out: &mut impl FnMut(Event)) -> Result<Stats, Error> {
    let name = path.display().to_string();
    let raw: Box<dyn Read + Send> = if path == Path::new("-") {
        Box::new(io::stdin())
    } else {
        Box::new(portolan_model::input::open_stream(path)?)
    };
    let mut buffered = BufReader::with_capacity(256 * 1024, raw);
    let head = buffered.fill_buf().map_err(|e| Error::Read { path: name.clone(), source: e })?;
    let input: Box<dyn BufRead + Send> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(BufReader::with_capacity(256 * 1024, Guard::new(buffered, &name)))
    } else {
        Box::new(buffered)
    };
    read_unpacked(input, &name, source, opts, out)
}

fn read_unpacked(
    mut input: Box<dyn BufRead + Send>,
    name: &str,
    source: u32,
    opts: &Options,
    out: &mut impl FnMut(Event),
) -> Result<Stats, Error> {
    let head = input.fill_buf().map_err(|e| read_err(name, e))?;
    let format = opts.format.unwrap_or_else(|| sniff(head));
    let mut stats = Stats { format: Some(format), ..Stats::default() };
    let mut count = |e: Event, stats: &mut Stats| {
        stats.events += 1;
        out(e);
    };
    match format {
        Format::Capture => {
            let mut events = 0u64;
            let r = capture::read(input, name, source, opts.max_flows, &mut stats, &mut |e| {
                events += 1;
                count(e, &mut Stats::default())
            });
            stats.events = events;
            r?;
        }
        Format::Log | Format::Zeek | Format::Vpc => {
            let mut parser = TextParser::new(format, source, opts);
            lines(&mut input, name, &mut stats, |text, n, stats| {
                match parser.line(text, n) {
                    Ok(Some(e)) => count(e, stats),
                    Ok(None) => {}
                    Err(Parsed::Skip(why)) => skip(stats, name, n, &why),
                    Err(Parsed::NoHeader(missing)) if format == Format::Vpc => {
                        return Err(Error::VpcHeader { path: name.to_string(), line: n, missing });
                    }
                    Err(Parsed::NoHeader(missing)) => {
                        return Err(Error::ZeekHeader { path: name.to_string(), line: n, missing });
                    }
                }
                Ok(())
            })?;
        }
    }
    Ok(stats)
}

/// Why a text line gave no event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A damaged record, skipped and counted: why.
    Skip(String),
    /// A Zeek log's header lacks these fields (or there is no `#fields` header at all).
    NoHeader(Vec<&'static str>),
}

/// The lines of one text source (kernel and sshd logs, or a Zeek conn.log), one at a time:
/// what a file reader and a follower share.
#[derive(Debug)]
pub struct TextParser {
    format: Format,
    source: u32,
    log: logline::LogReader,
    cols: Option<zeek::Columns>,
    vpc: Option<vpc::Columns>,
}

impl TextParser {
    /// A parser for input `source` in `format` (`Log` or `Zeek`).
    pub fn new(format: Format, source: u32, opts: &Options) -> TextParser {
        TextParser {
            format,
            source,
            log: logline::LogReader::new(source, opts.year, opts.tz.clone()),
            cols: None,
            vpc: None,
        }
    }

    /// One line, numbered `n` from 1: an event, nothing (a line of another kind), or why not.
    pub fn line(&mut self, text: &[u8], n: u64) -> Result<Option<Event>, Parsed> {
        if self.format == Format::Vpc {
            let Ok(line) = std::str::from_utf8(text) else {
                return Err(Parsed::Skip("not UTF-8".into()));
            };
            if line.trim().is_empty() {
                return Ok(None);
            }
            if vpc::is_header(line) {
                self.vpc = vpc::Columns::from_header(line);
                return match self.vpc {
                    Some(_) => Ok(None),
                    None => Err(Parsed::NoHeader(vpc::Columns::missing(line))),
                };
            }
            let cols = self.vpc.get_or_insert_with(vpc::Columns::default_v2);
            return vpc::row(cols, line, self.source, n)
                .map_err(|e| Parsed::Skip(format!("{}: {}", e.field, e.what)));
        }
        if self.format != Format::Zeek {
            return Ok(match self.log.line(text, n) {
                logline::Line::Event(e) => Some(e),
                logline::Line::Other => None,
            });
        }
        let Ok(line) = std::str::from_utf8(text) else {
            return Err(Parsed::Skip("not UTF-8".into()));
        };
        if let Some(h) = line.strip_prefix('#') {
            if h.starts_with("fields") {
                self.cols = zeek::Columns::from_header(line);
                if self.cols.is_none() {
                    return Err(Parsed::NoHeader(zeek::Columns::missing(line)));
                }
            }
            return Ok(None);
        }
        if line.trim().is_empty() {
            return Ok(None);
        }
        let row = if line.starts_with('{') {
            zeek::json_row(line, self.source, n)
        } else {
            match &self.cols {
                Some(c) => zeek::tsv_row(c, line, self.source, n),
                None => return Err(Parsed::NoHeader(vec!["#fields"])),
            }
        };
        row.map(Some).map_err(|e| Parsed::Skip(format!("{}: {}", e.field, e.what)))
    }
}

/// Opens a file to follow (a regular file or a pipe; not a directory or device).
fn open_follow(path: &Path) -> io::Result<std::fs::File> {
    portolan_model::input::open_stream(path).map_err(|e| io::Error::other(e.to_string()))
}

fn read_err(name: &str, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::InvalidData || e.kind() == io::ErrorKind::Other {
        Error::Gzip { path: name.to_string(), what: e.to_string() }
    } else {
        Error::Read { path: name.to_string(), source: e }
    }
}

fn skip(stats: &mut Stats, name: &str, line: u64, why: &str) {
    stats.skipped += 1;
    if stats.first_skip.is_none() {
        stats.first_skip = Some(format!("{name}:{line}: {why}"));
    }
}

/// The format of a stream from its first bytes.
pub fn sniff(head: &[u8]) -> Format {
    const MAGICS: [[u8; 4]; 5] = [
        [0xd4, 0xc3, 0xb2, 0xa1],
        [0xa1, 0xb2, 0xc3, 0xd4],
        [0x4d, 0x3c, 0xb2, 0xa1],
        [0xa1, 0xb2, 0x3c, 0x4d],
        [0x0a, 0x0d, 0x0d, 0x0a],
    ];
    if head.len() >= 4 && MAGICS.iter().any(|m| head[..4] == *m) {
        return Format::Capture;
    }
    let first = head.split(|&b| b == b'\n').find(|l| !l.trim_ascii().is_empty()).unwrap_or(b"");
    // a Zeek log's header (after any comment, such as a test baseline's first line)
    let zeek_header = head
        .split(|&b| b == b'\n')
        .take(16)
        .any(|l| l.starts_with(b"#separator") || l.starts_with(b"#fields"));
    if zeek_header {
        return Format::Zeek;
    }
    if first.starts_with(b"{") && memchr::memmem::find(first, b"\"id.orig_h\"").is_some() {
        return Format::Zeek;
    }
    if let Ok(line) = std::str::from_utf8(first)
        && (vpc::is_header(line) || vpc::is_record(line))
    {
        return Format::Vpc;
    }
    Format::Log
}

/// Calls `f` with each line (without its end) and its number; lines beyond [`MAX_LINE`] are
/// skipped and counted.
fn lines(
    input: &mut dyn BufRead,
    name: &str,
    stats: &mut Stats,
    mut f: impl FnMut(&[u8], u64, &mut Stats) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut n: u64 = 0;
    let mut carry: Vec<u8> = Vec::new();
    let mut overlong = false;
    loop {
        let buf = input.fill_buf().map_err(|e| read_err(name, e))?;
        if buf.is_empty() {
            if !carry.is_empty() || overlong {
                n += 1;
                stats.records += 1;
                if overlong {
                    skip(stats, name, n, "a line longer than 1 MiB");
                } else {
                    f(trim_cr(&carry), n, stats)?;
                }
            }
            return Ok(());
        }
        let len = buf.len();
        let mut start = 0;
        while let Some(p) = memchr::memchr(b'\n', &buf[start..]) {
            let end = start + p;
            n += 1;
            stats.records += 1;
            if overlong {
                skip(stats, name, n, "a line longer than 1 MiB");
                overlong = false;
            } else if carry.is_empty() {
                f(trim_cr(&buf[start..end]), n, stats)?;
            } else if carry.len() + (end - start) > MAX_LINE {
                skip(stats, name, n, "a line longer than 1 MiB");
                carry.clear();
            } else {
                carry.extend_from_slice(&buf[start..end]);
                f(trim_cr(&carry), n, stats)?;
                carry.clear();
            }
            start = end + 1;
        }
        if !overlong {
            if carry.len() + (len - start) > MAX_LINE {
                overlong = true;
                carry.clear();
            } else {
                carry.extend_from_slice(&buf[start..]);
            }
        }
        input.consume(len);
    }
}

fn trim_cr(l: &[u8]) -> &[u8] {
    l.strip_suffix(b"\r").unwrap_or(l)
}

/// A gzip decoder that refuses to expand past [`GZIP_RATIO`] times what it has read.
struct Guard<R: BufRead> {
    inner: flate2::bufread::MultiGzDecoder<Counting<R>>,
    out: u64,
}

impl<R: BufRead> Guard<R> {
    fn new(r: R, _name: &str) -> Guard<R> {
        Guard { inner: flate2::bufread::MultiGzDecoder::new(Counting { inner: r, read: 0 }), out: 0 }
    }
}

impl<R: BufRead> Read for Guard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out += n as u64;
        let limit = self.inner.get_ref().read.saturating_mul(GZIP_RATIO) + (64 << 20);
        if self.out > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "gzip expands more than {GZIP_RATIO} times ({} bytes from {}): refused as a decompression bomb",
                    self.out,
                    self.inner.get_ref().read
                ),
            ));
        }
        Ok(n)
    }
}

struct Counting<R> {
    inner: R,
    read: u64,
}

impl<R: BufRead> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.read += amt as u64;
        self.inner.consume(amt);
    }
}
