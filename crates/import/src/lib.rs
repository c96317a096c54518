//! Reads nmap XML (`-oX`) — from nmap, masscan or Portolan itself — into a [`ScanRun`].
//!
//! The reader is built for hostile input: the file size is capped, nesting depth is bounded,
//! entities are never expanded (a `<!DOCTYPE>` internal subset is ignored and an undefined
//! entity is an error), and every error names the file, line and column.
//!
//! ```
//! let xml = r#"<?xml version="1.0"?><nmaprun scanner="nmap" start="1700000000" version="7.93">
//!   <host><status state="up" reason="syn-ack" reason_ttl="0"/><address addr="127.0.0.1" addrtype="ipv4"/>
//!   <ports><port protocol="tcp" portid="22"><state state="open" reason="syn-ack" reason_ttl="0"/>
//!   <service name="ssh" method="table" conf="3"/></port></ports></host></nmaprun>"#;
//! let run = portolan_import::parse_str(xml, "example.xml".as_ref()).unwrap();
//! assert_eq!(run.hosts[0].ports[0].number, 22);
//! ```

mod error;

use std::borrow::Cow;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

use jiff::Timestamp;
use portolan_model::{
    ExtraPorts, ExtraReason, Host, HostState, HostStatus, Hostname, HostnameKind, Port, PortState, Reason,
    RunExit, ScanInfo, ScanRun, ScanType, Service, ServiceMethod, Transport, Tunnel,
};
use quick_xml::events::{BytesStart, Event};

pub use error::{Error, Result};

/// Largest file `import` reads by default (1 GiB).
pub const DEFAULT_SIZE_LIMIT: u64 = 1 << 30;
/// Deepest element nesting accepted (nmap's documents nest about 6 deep).
pub const MAX_DEPTH: usize = 64;

/// Reads an nmap XML file, refusing files over [`DEFAULT_SIZE_LIMIT`].
pub fn read_file(path: &Path) -> Result<ScanRun> {
    read_file_limited(path, DEFAULT_SIZE_LIMIT)
}

/// Reads an nmap XML file, refusing files over `limit` bytes.
pub fn read_file_limited(path: &Path, limit: u64) -> Result<ScanRun> {
    use portolan_model::input::{InputError, read_bounded};
    // bounded by the bytes read: a device or a growing file stops at the limit
    let bytes = read_bounded(path, limit).map_err(|e| match e {
        InputError::TooLarge { size, .. } => Error::TooLarge { path: path.to_path_buf(), size, limit },
        e => Error::Input(e),
    })?;
    parse_bytes(&bytes, path)
}

/// Reads a scan from a file: nmap XML (nmap, masscan, Portolan), or Portolan's own JSON scan
/// document (`-oJ`, told apart by its first character), at most [`DEFAULT_SIZE_LIMIT`] bytes.
pub fn read_scan(path: &Path) -> Result<ScanRun> {
    use portolan_model::input::{InputError, read_bounded};
    let limit = DEFAULT_SIZE_LIMIT;
    let bytes = read_bounded(path, limit).map_err(|e| match e {
        InputError::TooLarge { size, .. } => Error::TooLarge { path: path.to_path_buf(), size, limit },
        e => Error::Input(e),
    })?;
    if bytes.iter().copied().find(|b| !b.is_ascii_whitespace()) == Some(b'{') {
        return serde_json::from_slice(&bytes)
            .map_err(|e| Error::NotScanJson { path: path.to_path_buf(), reason: e.to_string() });
    }
    parse_bytes(&bytes, path)
}

/// Parses bytes that should be UTF-8 nmap XML; `path` is used in error messages.
pub fn parse_bytes(bytes: &[u8], path: &Path) -> Result<ScanRun> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_str(text, path),
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let text = String::from_utf8_lossy(good);
            let (line, column) = line_col(&text, good.len());
            Err(Error::Malformed {
                path: path.to_path_buf(),
                line,
                column,
                message: "the file is not valid UTF-8".into(),
            })
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

struct Parser<'a> {
    text: &'a str,
    path: &'a Path,
    run: ScanRun,
    saw_root: bool,
    host: Option<Host>,
    host_has_address: bool,
    port: Option<Port>,
    service: Option<Service>,
    extra: Option<ExtraPorts>,
    cpe: Option<String>,
    in_runstats: bool,
    /// Name-only services, shared by the ports they name.
    shared: std::collections::HashMap<String, Vec<std::sync::Arc<Service>>>,
}

impl<'a> Parser<'a> {
    fn invalid(&self, pos: u64, message: impl Into<String>) -> Error {
        let (line, column) = line_col(self.text, pos as usize);
        Error::Invalid { path: self.path.to_path_buf(), line, column, message: message.into() }
    }

    fn malformed(&self, pos: u64, message: impl Into<String>) -> Error {
        let (line, column) = line_col(self.text, pos as usize);
        Error::Malformed { path: self.path.to_path_buf(), line, column, message: message.into() }
    }

    /// The unescaped value of attribute `name`, if present.
    fn attr<'e>(&self, e: &'e BytesStart<'_>, name: &str, pos: u64) -> Result<Option<Cow<'e, str>>> {
        for a in e.attributes().with_checks(false) {
            let a = a.map_err(|err| self.malformed(pos, err.to_string()))?;
            if a.key.as_ref() == name {
                return self.value(a, pos).map(Some);
            }
        }
        Ok(None)
    }

    /// An attribute's value: borrowed from the text when it has nothing to unescape or
    /// normalise (nearly always), else the XML 1.0 normalised value.
    fn value<'e>(&self, a: quick_xml::events::attributes::Attribute<'e>, pos: u64) -> Result<Cow<'e, str>> {
        if let Cow::Borrowed(raw) = a.value
            && !raw.bytes().any(|b| matches!(b, b'&' | b'\t' | b'\n' | b'\r'))
        {
            return Ok(Cow::Borrowed(raw));
        }
        let v = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|err| self.malformed(pos, err.to_string()))?;
        Ok(Cow::Owned(v.into_owned()))
    }

    fn required<'e>(&self, e: &'e BytesStart<'_>, name: &str, pos: u64) -> Result<Cow<'e, str>> {
        let el = e.name().as_ref().to_string();
        self.attr(e, name, pos)?
            .ok_or_else(|| self.invalid(pos, format!("<{el}> lacks the required attribute `{name}`")))
    }

    fn parsed<T: FromStr>(&self, e: &BytesStart<'_>, name: &str, pos: u64) -> Result<Option<T>> {
        match self.attr(e, name, pos)? {
            None => Ok(None),
            Some(v) => {
                let el = e.name().as_ref().to_string();
                v.trim()
                    .parse::<T>()
                    .map(Some)
                    .map_err(|_| self.invalid(pos, format!("<{el} {name}=\"{v}\">: not a valid {name}")))
            }
        }
    }

    fn transport(&self, v: &str, pos: u64) -> Result<Transport> {
        match v {
            "tcp" => Ok(Transport::Tcp),
            "udp" => Ok(Transport::Udp),
            "sctp" => Ok(Transport::Sctp),
            other => Err(self.invalid(pos, format!("protocol {other:?} is not tcp, udp or sctp"))),
        }
    }

    fn open(&mut self, e: &BytesStart<'_>, pos: u64, parent: Option<&str>) -> Result<()> {
        let name = e.name();
        let name: &str = name.as_ref();
        if !self.saw_root {
            if name != "nmaprun" {
                return Err(self.invalid(
                    pos,
                    format!("not an nmap XML file: the root element is <{name}>, expected <nmaprun>"),
                ));
            }
            self.saw_root = true;
            let profile = self.attr(e, "profile_name", pos)?;
            let scanner = self.attr(e, "scanner", pos)?.unwrap_or(Cow::Borrowed("nmap"));
            self.run.scanner = match profile.as_deref() {
                Some("portolan") => "portolan".into(),
                _ => scanner.into_owned(),
            };
            self.run.scanner_version = self.attr(e, "version", pos)?.map(Cow::into_owned).unwrap_or_default();
            self.run.args = self.attr(e, "args", pos)?.map(Cow::into_owned).unwrap_or_default();
            if let Some(s) = self.parsed::<i64>(e, "start", pos)? {
                self.run.start = Timestamp::from_second(s)
                    .map_err(|_| self.invalid(pos, format!("start={s} is not a valid time")))?;
            }
            return Ok(());
        }
        match (name, parent) {
            ("scaninfo", Some("nmaprun")) => {
                let t = self.required(e, "type", pos)?;
                let scan_type = ScanType::from_str(&t).map_err(|err| self.invalid(pos, err.to_string()))?;
                let transport = self.transport(&self.required(e, "protocol", pos)?, pos)?;
                let num_services = self.parsed::<u32>(e, "numservices", pos)?.unwrap_or(0);
                let services = self.attr(e, "services", pos)?.map(Cow::into_owned).unwrap_or_default();
                self.run.scan_info.push(ScanInfo { scan_type, transport, num_services, services });
            }
            ("host", Some("nmaprun")) => {
                let mut h = Host::up(IpAddr::from([0, 0, 0, 0]), Reason::Other("unknown".into()));
                h.start_time =
                    self.parsed::<i64>(e, "starttime", pos)?.and_then(|s| Timestamp::from_second(s).ok());
                h.end_time =
                    self.parsed::<i64>(e, "endtime", pos)?.and_then(|s| Timestamp::from_second(s).ok());
                self.host = Some(h);
                self.host_has_address = false;
            }
            ("status", Some("host")) => {
                let state = self.required(e, "state", pos)?;
                let state = HostState::from_str(&state).map_err(|err| self.invalid(pos, err.to_string()))?;
                let reason = Reason::from_name(&self.attr(e, "reason", pos)?.unwrap_or_default());
                let reason_ttl = self.parsed::<u8>(e, "reason_ttl", pos)?.unwrap_or(0);
                if let Some(h) = &mut self.host {
                    h.status = HostStatus { state, reason, reason_ttl };
                }
            }
            ("address", Some("host")) => {
                let addr = self.required(e, "addr", pos)?.into_owned();
                let kind =
                    self.attr(e, "addrtype", pos)?.map(Cow::into_owned).unwrap_or_else(|| "ipv4".into());
                match kind.as_str() {
                    "ipv4" | "ipv6" => {
                        let ip = IpAddr::from_str(addr.trim()).map_err(|_| {
                            self.invalid(pos, format!("<address addr=\"{addr}\">: not an IP address"))
                        })?;
                        if let Some(h) = &mut self.host
                            && !self.host_has_address
                        {
                            h.address = ip;
                            self.host_has_address = true;
                        }
                    }
                    "mac" => {
                        let vendor = self.attr(e, "vendor", pos)?.map(Cow::into_owned);
                        if let Some(h) = &mut self.host {
                            h.mac = Some(addr);
                            h.mac_vendor = vendor;
                        }
                    }
                    other => {
                        return Err(self.invalid(pos, format!("addrtype {other:?} is not ipv4, ipv6 or mac")));
                    }
                }
            }
            ("hostname", Some("hostnames")) => {
                let n = self.attr(e, "name", pos)?.map(Cow::into_owned).unwrap_or_default();
                let kind = match self.attr(e, "type", pos)?.as_deref() {
                    Some("PTR") => HostnameKind::Ptr,
                    _ => HostnameKind::User,
                };
                if let Some(h) = &mut self.host
                    && !n.is_empty()
                {
                    h.hostnames.push(Hostname { name: n, kind });
                }
            }
            ("extraports", Some("ports")) => {
                let state = self.port_state(e, pos)?;
                let count = self
                    .parsed::<u32>(e, "count", pos)?
                    .ok_or_else(|| self.invalid(pos, "<extraports> lacks the required attribute `count`"))?;
                self.extra = Some(ExtraPorts { state, count, reasons: Vec::new() });
            }
            ("extrareasons", Some("extraports")) => {
                let reason = Reason::from_name(&self.required(e, "reason", pos)?);
                let count = self.parsed::<u32>(e, "count", pos)?.unwrap_or(0);
                let transport = match self.attr(e, "proto", pos)? {
                    Some(p) => Some(self.transport(&p, pos)?),
                    None => None,
                };
                let ports = self.attr(e, "ports", pos)?.map(Cow::into_owned);
                if let Some(x) = &mut self.extra {
                    x.reasons.push(ExtraReason { reason, count, transport, ports });
                }
            }
            ("port", Some("ports")) => {
                // the hot elements (a million-port file has a million of each) read their
                // attributes in one pass
                let (mut protocol, mut portid) = (None, None);
                for a in e.attributes().with_checks(false) {
                    let a = a.map_err(|err| self.malformed(pos, err.to_string()))?;
                    match a.key.as_ref() {
                        "protocol" => protocol = Some(self.value(a, pos)?),
                        "portid" => portid = Some(self.value(a, pos)?),
                        _ => {}
                    }
                }
                let protocol = protocol
                    .ok_or_else(|| self.invalid(pos, "<port> lacks the required attribute `protocol`"))?;
                let transport = self.transport(&protocol, pos)?;
                let portid = portid
                    .ok_or_else(|| self.invalid(pos, "<port> lacks the required attribute `portid`"))?;
                let number = portid.trim().parse::<u16>().map_err(|_| {
                    self.invalid(pos, format!("<port portid=\"{portid}\">: not a valid portid"))
                })?;
                self.port = Some(Port {
                    number,
                    transport,
                    state: PortState::Filtered,
                    reason: Reason::Other("unknown".into()),
                    reason_ttl: 0,
                    service: None,
                });
            }
            ("state", Some("port")) => {
                let (mut state, mut reason, mut ttl) = (None, None, None);
                for a in e.attributes().with_checks(false) {
                    let a = a.map_err(|err| self.malformed(pos, err.to_string()))?;
                    match a.key.as_ref() {
                        "state" => state = Some(self.value(a, pos)?),
                        "reason" => reason = Some(self.value(a, pos)?),
                        "reason_ttl" => ttl = Some(self.value(a, pos)?),
                        _ => {}
                    }
                }
                let state =
                    state.ok_or_else(|| self.invalid(pos, "<state> lacks the required attribute `state`"))?;
                let state = PortState::from_str(&state).map_err(|err| self.invalid(pos, err.to_string()))?;
                let reason = Reason::from_name(reason.as_deref().unwrap_or_default());
                let reason_ttl = match ttl {
                    Some(t) => t.trim().parse::<u8>().map_err(|_| {
                        self.invalid(pos, format!("<state reason_ttl=\"{t}\">: not a valid reason_ttl"))
                    })?,
                    None => 0,
                };
                if let Some(p) = &mut self.port {
                    p.state = state;
                    p.reason = reason;
                    p.reason_ttl = reason_ttl;
                }
            }
            ("service", Some("port")) => {
                let mut sv = Service { name: String::new(), confidence: 0, ..Service::default() };
                let mut named = false;
                for a in e.attributes().with_checks(false) {
                    let a = a.map_err(|err| self.malformed(pos, err.to_string()))?;
                    let key = a.key;
                    let field = match key.as_ref() {
                        "name" => {
                            named = true;
                            &mut sv.name
                        }
                        "method" => {
                            if self.value(a, pos)? == "probed" {
                                sv.method = ServiceMethod::Probed;
                            }
                            continue;
                        }
                        "conf" => {
                            let v = self.value(a, pos)?;
                            sv.confidence = v.trim().parse::<u8>().map_err(|_| {
                                self.invalid(pos, format!("<service conf=\"{v}\">: not a valid conf"))
                            })?;
                            sv.confidence = sv.confidence.min(10);
                            continue;
                        }
                        "tunnel" => {
                            if self.value(a, pos)? == "ssl" {
                                sv.tunnel = Some(Tunnel::Ssl);
                            }
                            continue;
                        }
                        "product" => sv.product.insert(String::new()),
                        "version" => sv.version.insert(String::new()),
                        "extrainfo" => sv.extra_info.insert(String::new()),
                        "hostname" => sv.hostname.insert(String::new()),
                        "ostype" => sv.os_type.insert(String::new()),
                        "devicetype" => sv.device_type.insert(String::new()),
                        _ => continue,
                    };
                    field.push_str(&self.value(a, pos)?);
                }
                if !named {
                    sv.name = "unknown".into();
                }
                self.service = Some(sv);
            }
            ("cpe", Some("service")) => self.cpe = Some(String::new()),
            ("times", Some("host")) => {
                let srtt = self.parsed::<u64>(e, "srtt", pos)?;
                if let Some(h) = &mut self.host {
                    h.srtt_us = srtt;
                }
            }
            ("runstats", Some("nmaprun")) => self.in_runstats = true,
            ("finished", Some("runstats")) => {
                if let Some(t) = self.parsed::<i64>(e, "time", pos)? {
                    self.run.stats.finished = Timestamp::from_second(t).ok();
                }
                self.run.stats.elapsed_secs = self.parsed::<f64>(e, "elapsed", pos)?.unwrap_or(0.0);
                if self.attr(e, "exit", pos)?.as_deref() == Some("error") {
                    self.run.stats.exit = RunExit::Error;
                }
                self.run.stats.error_message = self.attr(e, "errormsg", pos)?.map(Cow::into_owned);
            }
            ("hosts", Some("runstats")) => {
                self.run.stats.hosts_up = self.parsed::<u32>(e, "up", pos)?.unwrap_or(0);
                self.run.stats.hosts_down = self.parsed::<u32>(e, "down", pos)?.unwrap_or(0);
                self.run.stats.hosts_total = self.parsed::<u32>(e, "total", pos)?.unwrap_or(0);
            }
            _ => {}
        }
        Ok(())
    }

    fn port_state(&self, e: &BytesStart<'_>, pos: u64) -> Result<PortState> {
        let s = self.required(e, "state", pos)?;
        PortState::from_str(&s).map_err(|err| self.invalid(pos, err.to_string()))
    }

    fn close(&mut self, name: &str, parent: Option<&str>, pos: u64) -> Result<()> {
        match (name, parent) {
            ("host", Some("nmaprun")) => {
                if let Some(mut h) = self.host.take() {
                    if !self.host_has_address {
                        return Err(self.invalid(pos, "<host> has no IPv4 or IPv6 <address>"));
                    }
                    h.sort_ports();
                    self.run.hosts.push(h);
                }
            }
            ("port", Some("ports")) => {
                if let (Some(p), Some(h)) = (self.port.take(), &mut self.host) {
                    h.ports.push(p);
                }
            }
            ("service", Some("port")) => {
                if let (Some(s), Some(p)) = (self.service.take(), &mut self.port) {
                    // a registry guess (name only, nmap's method="table") is shared by every
                    // port it names, as a scan shares it: a million-port file holds a few
                    // thousand of them, not a million
                    let plain = s.method == ServiceMethod::Table
                        && s.product.is_none()
                        && s.version.is_none()
                        && s.extra_info.is_none()
                        && s.hostname.is_none()
                        && s.os_type.is_none()
                        && s.device_type.is_none()
                        && s.tunnel.is_none()
                        && s.cpe.is_empty();
                    p.service = Some(if !plain {
                        std::sync::Arc::new(s)
                    } else if let Some(same) = self
                        .shared
                        .get(s.name.as_str())
                        .and_then(|v| v.iter().find(|x| x.confidence == s.confidence))
                    {
                        std::sync::Arc::clone(same)
                    } else {
                        let arc = std::sync::Arc::new(s);
                        self.shared.entry(arc.name.clone()).or_default().push(std::sync::Arc::clone(&arc));
                        arc
                    });
                }
            }
            ("extraports", Some("ports")) => {
                if let (Some(x), Some(h)) = (self.extra.take(), &mut self.host) {
                    h.extra_ports.push(x);
                }
            }
            ("cpe", Some("service")) => {
                if let (Some(c), Some(s)) = (self.cpe.take(), &mut self.service) {
                    s.cpe.push(c.trim().to_string());
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// `s` as a slice of `text` when it lies inside it (names of a reader over a `&str` do), else a
/// copy.
fn in_text<'a>(text: &'a str, s: &str) -> Cow<'a, str> {
    let start = (s.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
    match text.get(start..start.wrapping_add(s.len())) {
        Some(t) if t.as_ptr() == s.as_ptr() => Cow::Borrowed(t),
        _ => Cow::Owned(s.to_string()),
    }
}

/// Parses nmap XML text; `path` is used in error messages.
pub fn parse_str(text: &str, path: &Path) -> Result<ScanRun> {
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut p = Parser {
        text,
        path,
        run: ScanRun::new("nmap", "", "", Timestamp::UNIX_EPOCH),
        saw_root: false,
        host: None,
        host_has_address: false,
        port: None,
        service: None,
        extra: None,
        cpe: None,
        in_runstats: false,
        shared: std::collections::HashMap::new(),
    };
    // element names borrowed from the text: no allocation per element
    let mut stack: Vec<Cow<'_, str>> = Vec::new();
    loop {
        let pos = reader.buffer_position();
        let ev = reader.read_event().map_err(|e| p.malformed(reader.error_position(), e.to_string()))?;
        match ev {
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(p.invalid(pos, format!("elements nest deeper than {MAX_DEPTH} levels")));
                }
                if p.saw_root && stack.is_empty() {
                    return Err(p.malformed(pos, "a second root element"));
                }
                p.open(&e, pos, stack.last().map(|c| c.as_ref()))?;
                stack.push(in_text(text, e.name().as_ref()));
            }
            Event::Empty(e) => {
                if p.saw_root && stack.is_empty() {
                    return Err(p.malformed(pos, "a second root element"));
                }
                let parent = stack.last().map(|c| c.as_ref());
                p.open(&e, pos, parent)?;
                p.close(e.name().as_ref(), parent, pos)?;
            }
            Event::End(e) => {
                stack.pop();
                p.close(e.name().as_ref(), stack.last().map(|c| c.as_ref()), pos)?;
            }
            Event::Text(t) => {
                if let Some(c) = &mut p.cpe {
                    c.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(c) = &mut p.cpe {
                    c.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(ch)) => ch.to_string(),
                    _ => match r.as_ref() {
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "amp" => "&".into(),
                        "apos" => "'".into(),
                        "quot" => "\"".into(),
                        other => {
                            return Err(p.malformed(
                                pos,
                                format!("undefined entity &{other}; (entities are never expanded)"),
                            ));
                        }
                    },
                };
                if let Some(c) = &mut p.cpe {
                    c.push_str(&resolved);
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !p.saw_root {
        return Err(p.invalid(text.len() as u64, "not an nmap XML file: no <nmaprun> element"));
    }
    if !stack.is_empty() {
        return Err(p.malformed(text.len() as u64, format!("the file ends inside <{}>", stack.join("> <"))));
    }
    let _ = p.in_runstats;
    let run = &mut p.run;
    if run.stats.hosts_total == 0 && !run.hosts.is_empty() {
        run.stats.hosts_total = run.hosts.len() as u32;
        run.stats.hosts_up = run.hosts.iter().filter(|h| h.status.state == HostState::Up).count() as u32;
        run.stats.hosts_down = run.stats.hosts_total - run.stats.hosts_up;
    }
    Ok(p.run)
}
