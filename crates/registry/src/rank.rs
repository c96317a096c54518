//! Port rankings for `--top-ports N`.
//!
//! nmap's `nmap-services` carries measured open-frequencies but its licence forbids vendoring
//! it, so Portolan reads it at run time where nmap is installed and otherwise uses its own
//! ranking: a curated head (`data/ranking/{tcp,udp}.txt`), then IANA-assigned well-known ports,
//! then assigned registered ports, then every other port, each group ascending.

use std::path::{Path, PathBuf};

use portolan_model::Transport;

use crate::Error;
use crate::tables::{RANK_TCP, RANK_UDP, u16_at};

/// Where a ranking came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RankingSource {
    /// Portolan's own, built in.
    Builtin,
    /// nmap's frequency file at this path.
    Nmap(PathBuf),
}

/// An order of all 65,536 ports per transport, most likely open first.
#[derive(Debug, Clone)]
pub struct Ranking {
    tcp: Order,
    udp: Order,
    source: RankingSource,
    /// Service names from nmap's file, when that is the source.
    names: Option<std::sync::Arc<Names>>,
}

/// One transport's order, made when first asked for (a scan of given ports never asks): nmap's
/// listed ports by descending frequency (ties by port), then the rest in Portolan's order.
#[derive(Debug, Clone)]
struct Order {
    made: std::sync::OnceLock<Vec<u16>>,
    listed: Vec<(f64, u16)>,
    rest: &'static [u8],
}

impl Order {
    fn new(listed: Vec<(f64, u16)>, rest: &'static [u8]) -> Order {
        Order { made: std::sync::OnceLock::new(), listed, rest }
    }

    fn get(&self) -> &[u16] {
        self.made.get_or_init(|| {
            let mut listed = self.listed.clone();
            // every key differs but a port listed twice, where either copy will do
            listed.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut seen = vec![false; 65536];
            let mut order = Vec::with_capacity(65536);
            for p in listed.into_iter().map(|(_, p)| p).chain(builtin_order(self.rest)) {
                if !seen[usize::from(p)] {
                    seen[usize::from(p)] = true;
                    order.push(p);
                }
            }
            order
        })
    }
}

/// nmap's service names, copied out of its file: the names concatenated, and for each named
/// (transport, port) slot where its name is, sorted by slot. Only real names are kept: nmap's
/// `unknown` (its placeholder for thousands of ports) is no name, so the registry's applies.
pub(crate) struct Names {
    text: Box<str>,
    at: Box<[(u32, u32, u32)]>,
    /// Where each run of 256 slots starts in `at` (and where the last ends): a scan names
    /// every port of a host, and a search within a run is a few steps in one or two cache
    /// lines rather than fifteen across the whole list.
    runs: Box<[u32]>,
}

impl std::fmt::Debug for Names {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Names").field("text_bytes", &self.text.len()).field("named", &self.at.len()).finish()
    }
}

impl Names {
    fn slot(port: u16, t: Transport) -> Option<u32> {
        let base = match t {
            Transport::Tcp => 0,
            Transport::Udp => 1,
            Transport::Sctp => 2,
            _ => return None,
        };
        Some(base << 16 | u32::from(port))
    }

    fn get(&self, port: u16, t: Transport) -> Option<&str> {
        let slot = Names::slot(port, t)?;
        let run = (slot >> 8) as usize;
        let (from, to) = (*self.runs.get(run)? as usize, *self.runs.get(run + 1)? as usize);
        let within = self.at.get(from..to)?;
        let i = within.binary_search_by_key(&slot, |&(s, _, _)| s).ok()?;
        let (_, start, end) = *within.get(i)?;
        self.text.get(start as usize..end as usize)
    }

    /// A file's names, in tests.
    #[cfg(test)]
    fn read(path: &Path) -> std::io::Result<Names> {
        Names::stream(std::fs::File::open(path)?)
    }

    /// Only the names of an nmap-services file, for commands that name many ports (`ls` of
    /// thousands of listeners): frequencies and the thousands of `unknown` lines skipped,
    /// lines it cannot read ignored (the ranking's reader reports them). Read in pieces of
    /// 64 KiB, so the 1 MB file is never in memory whole.
    fn stream(mut file: impl std::io::Read) -> std::io::Result<Names> {
        let mut names = NamesBuilder::with_capacity(1 << 20);
        let mut buf = vec![0u8; 64 * 1024];
        let mut filled = 0;
        loop {
            if filled == buf.len() {
                // a line longer than the buffer
                buf.resize(buf.len() * 2, 0);
            }
            let n = match file.read(&mut buf[filled..]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            filled += n;
            // whole lines only, but all that is left at the end
            let upto =
                if n == 0 { filled } else { memchr::memrchr(b'\n', &buf[..filled]).map_or(0, |i| i + 1) };
            names.lines(&buf[..upto]);
            buf.copy_within(upto..filled, 0);
            filled -= upto;
            if n == 0 {
                return Ok(names.done());
            }
        }
    }
}

/// [`Names`] as a file is read: the names concatenated, and per transport where each is, in
/// the file's order (nmap's is port order, so no sort is needed).
struct NamesBuilder {
    text: String,
    at: [Vec<(u32, u32, u32)>; 3],
}

impl NamesBuilder {
    /// For a file of `bytes` bytes (nmap's names are about a tenth of its file).
    fn with_capacity(bytes: usize) -> NamesBuilder {
        let list = || Vec::with_capacity(8192);
        NamesBuilder { text: String::with_capacity(bytes / 8), at: [list(), list(), list()] }
    }

    /// Adds the names of whole lines of nmap's file.
    fn lines(&mut self, bytes: &[u8]) {
        // checked as UTF-8 once, not name by name (nmap's file is ASCII)
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(bytes),
        };
        for line in crate::lines::of_text(&text) {
            let unknown =
                line.starts_with("unknown") && line.as_bytes().get(7).is_some_and(u8::is_ascii_whitespace);
            if line.is_empty() || unknown || line.starts_with('#') {
                continue;
            }
            // nmap's own lines (`name<TAB>port/proto<TAB>...`) in place; any other form word by
            // word
            if let Some((tab, port, t)) = tab_fields(line.as_bytes()) {
                self.add(line.get(..tab).unwrap_or(""), port, t);
                continue;
            }
            let line = line.split_once('#').map_or(line, |(l, _)| l);
            let mut words = line.split_ascii_whitespace();
            let (Some(name), Some(portproto)) = (words.next(), words.next()) else { continue };
            let Some((port, proto)) = portproto.split_once('/') else { continue };
            let (Ok(port), Ok(t)) = (port.parse::<u16>(), proto.parse::<Transport>()) else { continue };
            self.add(name, port, t);
        }
    }

    /// Adds a line's name (nmap's `unknown` is none); call [`NamesBuilder::done`] after the
    /// last.
    fn add(&mut self, name: &str, port: u16, t: Transport) {
        if let Some(slot) = Names::slot(port, t)
            && !name.is_empty()
            && name != "unknown"
        {
            let start = self.text.len() as u32;
            self.text.push_str(name);
            let list = &mut self.at[(slot >> 16) as usize];
            list.push((slot, start, self.text.len() as u32));
        }
    }

    /// The table: the first name of a port wins. The lists are in the file's order; one out
    /// of port order is sorted stably, so the first name stays first.
    fn done(self) -> Names {
        let mut at = Vec::with_capacity(self.at.iter().map(Vec::len).sum());
        for mut list in self.at {
            if !list.is_sorted_by_key(|&(slot, _, _)| slot) {
                list.sort_by_key(|&(slot, _, _)| slot);
            }
            at.extend(list);
        }
        at.dedup_by_key(|&mut (slot, _, _)| slot);
        // three transports of 256 runs each, and the end
        let runs =
            (0..=3 * 256u32).map(|run| at.partition_point(|&(slot, _, _)| slot >> 8 < run) as u32).collect();
        Names { text: self.text.into_boxed_str(), at: at.into_boxed_slice(), runs }
    }
}

/// What a search of nmap's file for one port found.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// The port's first name (nmap's `unknown` is none).
    Name(String),
    /// The file does not name the port.
    Nothing,
    /// The file is not in nmap's own form and order: read it whole instead.
    ReadWhole,
}

/// One port's name in nmap's file, found by binary search: nmap writes `nmap-services` in port
/// order, so a command that names a few ports looks at a few lines of the 1 MB file instead of
/// parsing all of them. Lines out of order or not in nmap's form, seen on the way, send the
/// caller to [`Names::stream`], which reads any file.
fn find_sorted(file: &[u8], port: u16, t: Transport) -> Found {
    const WINDOW: usize = 256;
    // the port of the first line in nmap's form from `at` (a line start) past comments and
    // blank lines, and where that line starts
    let first_port = |at: usize| -> Option<(usize, u16)> {
        let head = &file[at..];
        let mut from = 0;
        for end in memchr::memchr_iter(b'\n', head) {
            let line = &head[from..end];
            if let Some((_, p, _)) = tab_fields(line) {
                return Some((at + from, p));
            }
            if !(line.is_empty() || line.starts_with(b"#") || line.starts_with(b"unknown")) {
                return None;
            }
            from = end + 1;
        }
        None
    };
    // lo: a line start before every line of `port`; hi: at or after the first of them
    let (mut lo, mut hi) = (0, file.len());
    let (mut lo_port, mut hi_port) = (0u16, u16::MAX);
    while hi - lo > WINDOW {
        let mid = lo + (hi - lo) / 2;
        let Some(nl) = memchr::memchr(b'\n', &file[mid..]) else { return Found::ReadWhole };
        let Some((start, p)) = first_port(mid + nl + 1) else { return Found::ReadWhole };
        if start >= hi {
            // only comments between mid and hi (nmap's header)
            hi = mid;
            continue;
        }
        if p < lo_port || p > hi_port {
            return Found::ReadWhole;
        }
        if p < port {
            (lo, lo_port) = (start, p);
        } else {
            (hi, hi_port) = (mid, p);
        }
    }
    // from lo: every line of the port, in order, up to the first past it
    let mut last = lo_port;
    for line in crate::lines::of_bytes(&file[lo..]) {
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        let Some((name, p, lt)) = tab_line(line) else { return Found::ReadWhole };
        if p < last {
            return Found::ReadWhole;
        }
        last = p;
        if p > port {
            return Found::Nothing;
        }
        if p == port && lt == t && name != "unknown" {
            return Found::Name(name.to_string());
        }
    }
    Found::Nothing
}

/// Ports named by binary search before the whole file is parsed instead (a search looks at
/// about 15 lines; the whole file has 27,000).
pub(crate) const MAX_SEARCHES: u32 = 256;

/// Set once nmap's names are to come from the whole file ([`discovered_names`]).
static WHOLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// For [`crate::prepare_names`]: from now on names come from the whole file, read now.
pub(crate) fn read_whole_now() {
    WHOLE.store(true, std::sync::atomic::Ordering::Relaxed);
    discovered_names();
}

/// nmap's name of one port for [`crate::port_name`] when no scan has read the file whole: by
/// binary search ([`find_sorted`]), remembered for the process; `Err(())` when the file must be
/// read whole. `Ok(None)`: nmap is absent or does not name the port.
pub(crate) fn nmap_name(port: u16, t: Transport) -> Result<Option<&'static str>, ()> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    type Seen = HashMap<(u16, u8), Option<&'static str>>;
    static SEEN: Mutex<Option<Seen>> = Mutex::new(None);
    static SEARCHES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    if WHOLE.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(());
    }
    let key = (port, t as u8);
    if let Ok(seen) = SEEN.lock()
        && let Some(found) = seen.as_ref().and_then(|m| m.get(&key))
    {
        return Ok(*found);
    }
    // past a few hundred ports (an inventory of thousands of listeners) parsing the whole
    // file once is cheaper
    if SEARCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= MAX_SEARCHES {
        WHOLE.store(true, std::sync::atomic::Ordering::Relaxed);
        return Err(());
    }
    let Some(file) = services_bytes() else { return Ok(None) };
    let name: Option<&'static str> = match find_sorted(file, port, t) {
        Found::Name(n) => Some(Box::leak(n.into_boxed_str())),
        Found::Nothing => None,
        Found::ReadWhole => {
            WHOLE.store(true, std::sync::atomic::Ordering::Relaxed);
            return Err(());
        }
    };
    if let Ok(mut seen) = SEEN.lock() {
        seen.get_or_insert_with(HashMap::new).insert(key, name);
    }
    Ok(name)
}

/// `name<TAB>port/proto` then a tab, a blank or the end: the name, port and transport; `None`
/// for any other line.
fn tab_line(line: &[u8]) -> Option<(&str, u16, Transport)> {
    let (tab, port, t) = tab_fields(line)?;
    Some((std::str::from_utf8(&line[..tab]).ok()?, port, t))
}

/// [`tab_line`]'s fields with the name as its length: it is `line[..tab]`.
fn tab_fields(line: &[u8]) -> Option<(usize, u16, Transport)> {
    let tab = memchr::memchr(b'\t', line)?;
    let name = &line[..tab];
    if name.is_empty() || name.iter().any(|&c| c == b'#' || c.is_ascii_whitespace()) {
        return None;
    }
    let (port, n, k) = digits(line, tab + 1, 5, 0);
    if n == 0 || line.get(k) != Some(&b'/') {
        return None;
    }
    let rest = &line[k + 1..];
    let end = rest.iter().position(|c| c.is_ascii_whitespace()).unwrap_or(rest.len());
    let t = match &rest[..end] {
        b"tcp" => Transport::Tcp,
        b"udp" => Transport::Udp,
        b"sctp" => Transport::Sctp,
        _ => return None,
    };
    Some((tab, u16::try_from(port).ok()?, t))
}

/// The one naming rule ([`crate::port_name`]): nmap's name where `nmap` (its services file)
/// names the port, IANA's primary name otherwise, and where the name came from.
pub(crate) fn name_by_rule(nmap: Option<&Names>, port: u16, t: Transport) -> Option<(&str, NameSource)> {
    if let Some(n) = nmap.and_then(|n| n.get(port, t)) {
        return Some((n, NameSource::Nmap));
    }
    crate::iana_name(port, t).map(|n| (n, NameSource::Iana))
}

/// Portolan's own order of one transport.
fn builtin_order(bytes: &'static [u8]) -> impl Iterator<Item = u16> {
    (0..bytes.len() / 2).map(|i| u16_at(bytes, i))
}

/// Where a port's name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameSource {
    /// nmap's `nmap-services`, read at run time.
    Nmap,
    /// The IANA registry embedded in Portolan.
    Iana,
}

impl NameSource {
    /// `nmap-services` or `iana`.
    pub fn as_str(self) -> &'static str {
        match self {
            NameSource::Nmap => "nmap-services",
            NameSource::Iana => "iana",
        }
    }
}

/// nmap's services file where nmap is installed: `$NMAPDIR`, then the usual paths.
fn nmap_services_path() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("NMAPDIR") {
        candidates.push(PathBuf::from(dir).join("nmap-services"));
    }
    candidates.extend(NMAP_SERVICES_PATHS.iter().map(PathBuf::from));
    candidates.into_iter().find(|p| p.is_file())
}

static DISCOVERED: std::sync::OnceLock<Result<Ranking, Error>> = std::sync::OnceLock::new();

/// The ranking this process discovered, read on first use.
pub(crate) fn discovered() -> &'static Result<Ranking, Error> {
    DISCOVERED.get_or_init(|| match nmap_services_path() {
        Some(path) => Ranking::from_nmap_services(&path),
        None => Ok(Ranking::builtin()),
    })
}

/// nmap's port names for [`crate::port_name`]: the discovered ranking's when a scan has read
/// the file already, else only the names, read once (a fraction of the whole file's cost, for
/// commands that name a few ports). `None` without nmap or when its file cannot be read.
pub(crate) fn discovered_names() -> Option<&'static Names> {
    if let Some(Ok(r)) = DISCOVERED.get() {
        return r.names.as_deref();
    }
    static NAMES: std::sync::OnceLock<Option<Names>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| Names::stream(std::fs::File::open(nmap_services_path()?).ok()?).ok()).as_ref()
}

/// nmap's file as this process mapped it for searching ([`find_sorted`]).
static BYTES: std::sync::OnceLock<Option<memmap2::Mmap>> = std::sync::OnceLock::new();

/// [`BYTES`], mapped on first use; `None` without nmap or when its file cannot be mapped.
///
/// Mapped, not read: a search touches a few of the file's pages, and the kernel's page cache
/// serves them without a copy (reading the 1 MB file into fresh memory was most of naming a
/// few dozen ports).
fn services_bytes() -> Option<&'static [u8]> {
    BYTES
        .get_or_init(|| {
            let file = std::fs::File::open(nmap_services_path()?).ok()?;
            // SAFETY: the mapping is read only. nmap's data file is replaced by package
            // managers with a new file (a rename), which leaves this mapping valid; only a
            // truncation of the same file while a command runs could fault, the caveat every
            // mapped reader (ripgrep, git) accepts for a file it does not own.
            unsafe { memmap2::Mmap::map(&file) }.ok()
        })
        .as_deref()
}

/// nmap's names when this process has read the whole file already (a scan's ranking, or a
/// file out of order).
pub(crate) fn read_whole_already() -> Option<&'static Names> {
    match DISCOVERED.get() {
        Some(Ok(r)) => r.names.as_deref(),
        _ => None,
    }
}

/// Places where nmap installs its data files, searched in order after `$NMAPDIR`.
pub const NMAP_SERVICES_PATHS: [&str; 2] =
    ["/usr/share/nmap/nmap-services", "/usr/local/share/nmap/nmap-services"];

/// One line of nmap-services: where its name is (within the line), its port, protocol and
/// frequency.
struct Line {
    name: (usize, usize),
    port: u16,
    proto: Proto,
    freq: f64,
}

enum Proto {
    Tcp,
    Udp,
    Sctp,
    Other,
}

impl Proto {
    fn of(s: &[u8]) -> Proto {
        match s {
            b"tcp" => Proto::Tcp,
            b"udp" => Proto::Udp,
            b"sctp" => Proto::Sctp,
            _ => Proto::Other,
        }
    }
}

/// A line in the form nmap writes, `name<TAB>port/proto<TAB>0.001995[<blank>...]`, read
/// without splitting it into words; `None` for any other line, which `slow_line` reads (to the
/// same result, or the error).
fn fast_line(b: &[u8]) -> Option<Line> {
    let name_end = b.iter().position(|&c| c == b'\t')?;
    if name_end == 0 || b[..name_end].iter().any(|&c| c == b'#' || c.is_ascii_whitespace()) {
        return None;
    }
    let (port, n, k) = digits(b, name_end + 1, 5, 0);
    if n == 0 || b.get(k) != Some(&b'/') {
        return None;
    }
    let port = u16::try_from(port).ok()?;
    let proto_start = k + 1;
    let proto_end = proto_start + b[proto_start..].iter().position(|&c| c == b'\t')?;
    let proto = Proto::of(&b[proto_start..proto_end]);
    if matches!(proto, Proto::Other) {
        return None;
    }
    // the frequency: up to 6 integer and 1 to 9 fractional digits, then the end or a blank;
    // (whole * 10^k + fraction) / 10^k divides two exact values, so it rounds as `parse` does
    let (whole, n, k) = digits(b, proto_end + 1, 6, 0);
    if n == 0 || b.get(k) != Some(&b'.') {
        return None;
    }
    let (whole, n, k) = digits(b, k + 1, 9, whole);
    if n == 0 || (k < b.len() && !b[k].is_ascii_whitespace()) {
        return None;
    }
    let scale = 10u64.pow(n as u32);
    Some(Line { name: (0, name_end), port, proto, freq: whole as f64 / scale as f64 })
}

/// Up to `max` ASCII digits of `b` from `k`, appended to `acc`: the value, how many digits,
/// and where they end.
fn digits(b: &[u8], mut k: usize, max: usize, mut acc: u64) -> (u64, usize, usize) {
    let start = k;
    while k < b.len() && b[k].is_ascii_digit() && k - start < max {
        acc = acc * 10 + u64::from(b[k] - b'0');
        k += 1;
    }
    (acc, k - start, k)
}

/// Any line, split into blank-separated words after a `#` comment is cut off: `None` for a
/// blank line, the error naming the line when it is malformed.
fn slow_line(raw: &str, i: usize, path: &Path) -> Result<Option<Line>, Error> {
    let line = raw.split_once('#').map_or(raw, |(l, _)| l);
    let mut words = line.split_ascii_whitespace();
    let Some(name) = words.next() else { return Ok(None) };
    // where the name is in the line (both point into the same text)
    let from = name.as_ptr() as usize - line.as_ptr() as usize;
    let bad = |what: &str| Error::NmapServices {
        path: path.display().to_string(),
        message: format!("line {}: {what}: {:?}", i + 1, line.trim()),
    };
    let portproto = words.next().ok_or_else(|| bad("missing port/protocol"))?;
    let freq: f64 = match words.next() {
        Some(f) => f.parse().map_err(|_| bad("bad frequency"))?,
        None => 0.0,
    };
    let (port, proto) = portproto.split_once('/').ok_or_else(|| bad("expected port/protocol"))?;
    let port: u16 = port.parse().map_err(|_| bad("bad port"))?;
    Ok(Some(Line { name: (from, from + name.len()), port, proto: Proto::of(proto.as_bytes()), freq }))
}

impl Ranking {
    /// Portolan's own ranking.
    pub fn builtin() -> Ranking {
        Ranking {
            tcp: Order::new(Vec::new(), RANK_TCP),
            udp: Order::new(Vec::new(), RANK_UDP),
            source: RankingSource::Builtin,
            names: None,
        }
    }

    /// nmap's ranking when its services file is installed (`$NMAPDIR`, then the usual paths),
    /// otherwise Portolan's own. A file that exists but cannot be read is an error. The file is
    /// read once per process: every later call (and [`crate::port_name`]) shares that reading.
    pub fn discover() -> Result<Ranking, Error> {
        discovered().clone()
    }

    /// Reads nmap's `nmap-services` (`name port/proto frequency [# comment]`). Ports it lists
    /// come first by descending frequency; the rest follow in Portolan's order.
    pub fn from_nmap_services(path: &Path) -> Result<Ranking, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::NmapServices { path: path.display().to_string(), message: e.to_string() })?;
        Ranking::from_nmap_services_text(text, path)
    }

    /// Parses the file's text, which the ranking keeps: its names are read from it. Lines are
    /// `name port/proto [frequency] [# comment]`, fields split by blanks; a line of another
    /// protocol is skipped, and the first name of a port wins.
    fn from_nmap_services_text(text: String, path: &Path) -> Result<Ranking, Error> {
        if u32::try_from(text.len()).is_err() {
            return Err(Error::NmapServices {
                path: path.display().to_string(),
                message: "larger than 4 GiB".to_string(),
            });
        }
        let mut tcp: Vec<(f64, u16)> = Vec::with_capacity(8192);
        let mut udp: Vec<(f64, u16)> = Vec::with_capacity(8192);
        let mut names = NamesBuilder::with_capacity(text.len());
        for (i, raw) in crate::lines::of_text(&text).enumerate() {
            let line = match fast_line(raw.as_bytes()) {
                Some(l) => l,
                None => match slow_line(raw, i, path)? {
                    Some(l) => l,
                    None => continue,
                },
            };
            let (port, freq) = (line.port, line.freq);
            let t = match line.proto {
                Proto::Tcp => {
                    tcp.push((freq, port));
                    Transport::Tcp
                }
                Proto::Udp => {
                    udp.push((freq, port));
                    Transport::Udp
                }
                Proto::Sctp => Transport::Sctp,
                Proto::Other => continue,
            };
            let name = raw.get(line.name.0..line.name.1).unwrap_or("");
            names.add(name, port, t);
        }
        Ok(Ranking {
            tcp: Order::new(tcp, RANK_TCP),
            udp: Order::new(udp, RANK_UDP),
            source: RankingSource::Nmap(path.to_path_buf()),
            names: Some(std::sync::Arc::new(names.done())),
        })
    }

    /// The name of a port by [`crate::port_name`]'s rule, with this ranking's nmap file as the
    /// nmap side (none for the built-in ranking): nmap's name where its file has one, the IANA
    /// registry's otherwise, and where the name came from. `None` when neither names the port
    /// (scan output then says `unknown`, as nmap does).
    pub fn name_of(&self, port: u16, transport: Transport) -> Option<(&str, NameSource)> {
        name_by_rule(self.names.as_deref(), port, transport)
    }

    /// [`Ranking::name_of`] without the source: the name scan output writes for a port.
    pub fn service_name(&self, port: u16, transport: Transport) -> Option<&str> {
        self.name_of(port, transport).map(|(n, _)| n)
    }

    /// Where this ranking came from.
    pub fn source(&self) -> &RankingSource {
        &self.source
    }

    /// The `n` highest-ranked ports of a transport (all 65,536 at most). SCTP and DCCP use the
    /// TCP order.
    pub fn top(&self, transport: Transport, n: usize) -> &[u16] {
        let order = match transport {
            Transport::Udp => self.udp.get(),
            _ => self.tcp.get(),
        };
        &order[..n.min(order.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_ranking_is_a_permutation_with_the_curated_head_first() {
        let r = Ranking::builtin();
        for t in [Transport::Tcp, Transport::Udp] {
            let all = r.top(t, 70000);
            assert_eq!(all.len(), 65536);
            let mut seen = vec![false; 65536];
            for &p in all {
                assert!(!seen[p as usize], "{p} twice");
                seen[p as usize] = true;
            }
        }
        assert_eq!(&r.top(Transport::Tcp, 3), &[80, 443, 22]);
        assert_eq!(&r.top(Transport::Udp, 2), &[53, 123]);
        // after the head, assigned well-known ports follow in ascending order
        assert!(r.top(Transport::Tcp, 1000).contains(&1));
    }

    #[test]
    fn nmap_services_text_orders_by_frequency_and_reports_bad_lines() {
        let text = "# comment\nssh\t22/tcp\t0.182286\t# Secure Shell\nhttp\t80/tcp\t0.484143\nsnmp\t161/udp\t0.433467\nx\t9/sctp\t0.1\n";
        let r = Ranking::from_nmap_services_text(text.to_string(), Path::new("t")).unwrap();
        assert_eq!(&r.top(Transport::Tcp, 3), &[80, 22, 443]);
        assert_eq!(r.top(Transport::Udp, 1), &[161]);
        assert_eq!(r.top(Transport::Tcp, 99999).len(), 65536);
        assert_eq!(r.service_name(22, Transport::Tcp), Some("ssh"));
        // where nmap's file is silent, the registry names the port
        assert_eq!(r.name_of(23, Transport::Tcp), Some(("telnet", NameSource::Iana)));
        assert_eq!(r.name_of(22, Transport::Tcp), Some(("ssh", NameSource::Nmap)));
        assert_eq!(Ranking::builtin().service_name(23, Transport::Tcp), Some("telnet"));
        assert_eq!(r.service_name(60000, Transport::Tcp), None);
        let err =
            Ranking::from_nmap_services_text("ssh 22/tcp nope\n".to_string(), Path::new("f")).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        let err = Ranking::from_nmap_services_text(
            "# c\n\nssh\t22/tcp\t0.1\nlonely   # x\n".to_string(),
            Path::new("f"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("line 4: missing port/protocol: \"lonely\""), "{err}");
        for (text, what) in [("a 7\n", "expected port/protocol"), ("a 70000/tcp\n", "bad port")] {
            let err = Ranking::from_nmap_services_text(text.to_string(), Path::new("f")).unwrap_err();
            assert!(err.to_string().contains(what), "{err}");
        }
    }

    #[test]
    fn nmap_services_names_first_wins_per_transport_and_crlf_lines_parse() {
        let text = "echo\t7/tcp\t0.004855\r\necho\t7/udp\t0.024679\r\nalt-echo 7/tcp 0.9\r\n\
                    x-sctp\t9/sctp\t0.000001\r\nddp 7/ddp 0.1\r\nlast\t65535/udp\r\n";
        let r = Ranking::from_nmap_services_text(text.to_string(), Path::new("t")).unwrap();
        assert_eq!(r.service_name(7, Transport::Tcp), Some("echo"));
        assert_eq!(r.service_name(7, Transport::Udp), Some("echo"));
        assert_eq!(r.service_name(9, Transport::Sctp), Some("x-sctp"));
        assert_eq!(r.name_of(9, Transport::Tcp), Some(("discard", NameSource::Iana)));
        assert_eq!(r.service_name(65535, Transport::Udp), Some("last"));
        // the order uses every line's frequency, the names the first line of each port
        assert_eq!(r.service_name(60001, Transport::Udp), None);
        assert_eq!(r.top(Transport::Tcp, 1), &[7]);
        assert_eq!(&r.top(Transport::Udp, 2), &[7, 65535]);
    }

    #[test]
    fn nmap_names_win_over_iana_but_unknown_is_no_name() {
        let text = "http-alt\t8000/tcp\t0.009710\t# irdmi\nirdmi\t8000/udp\t0.001652\n\
                    unknown\t300/tcp\t0.000100\nunknown\t4/tcp\t0.000477\nunknown 5/udp\nlate\t5/udp\t0.1\n";
        let r = Ranking::from_nmap_services_text(text.to_string(), Path::new("t")).unwrap();
        assert_eq!(r.name_of(8000, Transport::Tcp), Some(("http-alt", NameSource::Nmap)));
        assert_eq!(crate::iana_name(8000, Transport::Tcp), Some("irdmi"));
        assert_eq!(r.name_of(8000, Transport::Udp), Some(("irdmi", NameSource::Nmap)));
        // nmap's placeholder: IANA names 300/tcp, nobody names 4/tcp
        assert_eq!(r.name_of(300, Transport::Tcp), Some(("tacacss", NameSource::Iana)));
        assert_eq!(r.name_of(4, Transport::Tcp), None);
        assert_eq!(r.name_of(5, Transport::Udp), Some(("late", NameSource::Nmap)));
    }

    /// The names-only reader (`ls`, `check`, `port`) and the ranking's reader (`scan`) name
    /// every port alike: on a file with every kind of line, and on nmap's own where installed.
    #[test]
    fn both_readers_of_nmap_services_name_ports_alike() {
        let text = "# c\nhttp-alt\t8000/tcp\t0.009710\t# irdmi\r\nunknown\t4/tcp\t0.1\n\
                    spaced   22/tcp   0.5  # comment\nfirst\t7/udp\t0.1\nsecond\t7/udp\t0.2\n\
                    x-sctp\t9/sctp\t0.1\nddp 7/ddp 0.1\n\nunknown 5/udp\nlate\t5/udp\t0.1\n\
                    unknown-ish\t6/udp\t0.1\nhash\t10/tcp#c\nbare\t11/tcp";
        let dir = std::env::temp_dir().join(format!("portolan-names-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("nmap-services");
        std::fs::write(&file, text).unwrap();
        let mut files = vec![file.clone()];
        files.extend(NMAP_SERVICES_PATHS.iter().map(PathBuf::from).filter(|p| p.is_file()).take(1));
        for f in &files {
            let full = Ranking::from_nmap_services(f).unwrap();
            let names = Names::read(f).unwrap();
            for t in [Transport::Tcp, Transport::Udp, Transport::Sctp] {
                for port in 0..=65535u16 {
                    assert_eq!(
                        full.name_of(port, t),
                        name_by_rule(Some(&names), port, t),
                        "{}: {port}/{t}",
                        f.display()
                    );
                }
            }
        }
        let names = Names::read(&file).unwrap();
        assert_eq!(names.get(8000, Transport::Tcp), Some("http-alt"));
        assert_eq!(names.get(22, Transport::Tcp), Some("spaced"));
        assert_eq!(names.get(7, Transport::Udp), Some("first"));
        assert_eq!(names.get(5, Transport::Udp), Some("late"));
        assert_eq!(names.get(4, Transport::Tcp), None);
        assert_eq!(names.get(6, Transport::Udp), Some("unknown-ish"));
        assert_eq!(names.get(10, Transport::Tcp), Some("hash"));
        assert_eq!(names.get(11, Transport::Tcp), Some("bare"));
        std::fs::remove_dir_all(&dir).unwrap();
        // and nmap's own file, where nmap is installed
        if let Some(path) = nmap_services_path() {
            let whole = Names::read(&path).unwrap();
            let file = std::fs::read(&path).unwrap();
            for port in (0..=u16::MAX).step_by(3) {
                for t in [Transport::Tcp, Transport::Udp] {
                    let want = whole.get(port, t).map_or(Found::Nothing, |n| Found::Name(n.to_string()));
                    assert_eq!(find_sorted(&file, port, t), want, "{} {port}/{t}", path.display());
                }
            }
        }
    }

    /// The 64 KiB reader keeps lines split across its reads, and a line longer than its
    /// buffer (which it doubles), whatever sizes the reads come in.
    #[test]
    fn the_piecewise_reader_keeps_long_and_split_lines() {
        struct Reads<'a> {
            data: &'a [u8],
            step: usize,
        }
        impl std::io::Read for Reads<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.step.min(buf.len()).min(self.data.len());
                buf[..n].copy_from_slice(&self.data[..n]);
                self.data = &self.data[n..];
                Ok(n)
            }
        }
        let mut text = String::from("before\t1/tcp\t0.1\n");
        text.push_str(&format!("# {}\n", "x".repeat(200_000)));
        text.push_str(&format!("{}\t2/tcp\t0.1\n", "n".repeat(150_000)));
        for port in 3..5000 {
            text.push_str(&format!("svc{port}\t{port}/udp\t0.1\n"));
        }
        text.push_str("after\t5000/tcp");
        let mut whole = NamesBuilder::with_capacity(text.len());
        whole.lines(text.as_bytes());
        let whole = whole.done();
        for step in [1 << 20, 65_536, 65_537, 4_000, 7] {
            let names = Names::stream(Reads { data: text.as_bytes(), step }).unwrap();
            for port in 0..5001 {
                for t in [Transport::Tcp, Transport::Udp] {
                    assert_eq!(names.get(port, t), whole.get(port, t), "reads of {step}: {port}/{t}");
                }
            }
            assert_eq!(names.get(2, Transport::Tcp).map(str::len), Some(150_000));
            assert_eq!(names.get(5000, Transport::Tcp), Some("after"));
            assert_eq!(names.get(4999, Transport::Udp), Some("svc4999"));
        }
    }

    /// The binary search names every port as reading the whole file does, on a file in nmap's
    /// form and order; a file out of order is sent to the whole reader.
    #[test]
    fn binary_search_agrees_with_the_whole_file() {
        let dir = std::env::temp_dir().join(format!("portolan-rank-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("nmap-services");
        let mut text = String::from("# comment\n");
        let mut x: u32 = 7;
        for port in 0..9000u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            for (k, proto) in ["sctp", "tcp", "udp"].iter().enumerate() {
                if (x >> (k * 3)).is_multiple_of(3) {
                    let name = if (x >> 20).is_multiple_of(5) {
                        "unknown".to_string()
                    } else {
                        format!("svc{port}{proto}")
                    };
                    text.push_str(&format!("{name}\t{port}/{proto}\t0.00{k}\t# note\n"));
                    if (x >> 12).is_multiple_of(7) {
                        text.push_str(&format!("alias{port}\t{port}/{proto}\t0.000001\n"));
                    }
                }
            }
            if port.is_multiple_of(1000) {
                text.push_str("# a section\n\n");
            }
        }
        std::fs::write(&path, &text).unwrap();
        let whole = Names::read(&path).unwrap();
        let file = std::fs::read(&path).unwrap();
        for port in 0..9100u16 {
            for t in [Transport::Tcp, Transport::Udp, Transport::Sctp] {
                let want = whole.get(port, t).map_or(Found::Nothing, |n| Found::Name(n.to_string()));
                assert_eq!(find_sorted(&file, port, t), want, "{port}/{t}");
            }
        }
        // out of order where the search reads: the whole reader instead, or the same answer
        // (a line moved far from where the search looks is not seen: nmap writes the file in
        // order, docs/knowledge-base.md says so)
        let mut lines: Vec<&str> = text.lines().collect();
        lines.swap(3000, 3004);
        std::fs::write(&path, lines.join("\n")).unwrap();
        let whole = Names::read(&path).unwrap();
        let file = std::fs::read(&path).unwrap();
        for port in 0..9000u16 {
            match find_sorted(&file, port, Transport::Tcp) {
                Found::ReadWhole => {}
                found => {
                    let want = whole
                        .get(port, Transport::Tcp)
                        .map_or(Found::Nothing, |n| Found::Name(n.to_string()));
                    assert_eq!(found, want, "{port}");
                }
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
