//! The probe and matcher data (`data/probes.toml`, format in docs/identify.md): loaded and
//! checked once, with every problem reported as `probes.toml:LINE:COL: field: message`.

use std::collections::HashMap;
use std::sync::OnceLock;

use portolan_model::{Severity, Transport};
use regex::bytes::{Regex, RegexBuilder};
use serde::Deserialize;

use crate::error::Error;

/// The embedded data file.
pub const PROBES_TOML: &str = include_str!("../data/probes.toml");

/// The built-in protocol codecs a probe can name (`builtin = "..."`).
pub const BUILTINS: &[&str] = &[
    "tls", "smb", "ldap", "snmp", "mssql", "rdp", "kerberos", "rpc", "dns", "ntp", "pgsql", "echo", "pptp",
    "nbstat",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    probe: Vec<toml::Spanned<RawProbe>>,
    #[serde(default, rename = "match")]
    matches: Vec<toml::Spanned<RawMatch>>,
    #[serde(default)]
    service: Vec<toml::Spanned<RawService>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    name: String,
    #[serde(default = "tcp")]
    transport: String,
    #[serde(default)]
    send: Option<String>,
    #[serde(default)]
    builtin: Option<String>,
    #[serde(default)]
    ports: Vec<u16>,
    #[serde(default)]
    services: Vec<String>,
    #[serde(default)]
    rarity: u8,
    #[serde(default)]
    wait_ms: Option<u64>,
    #[serde(default)]
    in_tls: bool,
    #[serde(default)]
    any_port: bool,
}

fn tcp() -> String {
    "tcp".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    service: String,
    pattern: String,
    #[serde(default)]
    probes: Vec<String>,
    #[serde(default)]
    product: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    info: Option<String>,
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    device: Option<String>,
    #[serde(default)]
    cpe: Vec<String>,
    #[serde(default)]
    soft: bool,
    #[serde(default)]
    noauth: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: String,
    #[serde(default)]
    registered: Vec<String>,
    #[serde(default)]
    tls_registered: Vec<String>,
    #[serde(default)]
    cleartext: Option<String>,
    #[serde(default)]
    server_first: bool,
    #[serde(default)]
    silent: bool,
    #[serde(default)]
    compatible: Vec<String>,
}

/// One probe: what to send and when it is worth sending.
#[derive(Debug)]
pub struct Probe {
    /// Unique name.
    pub name: String,
    /// Transport.
    pub transport: Transport,
    /// Bytes to send (after unescaping); empty for the banner wait.
    pub send: Vec<u8>,
    /// A built-in codec instead of `send`.
    pub builtin: Option<String>,
    /// Ports where it is the likely first question.
    pub ports: Vec<u16>,
    /// Services it identifies.
    pub services: Vec<String>,
    /// Sent only at `--version-intensity` ≥ rarity.
    pub rarity: u8,
    /// How long to wait for an answer, at most.
    pub wait_ms: u64,
    /// Worth sending inside a TLS tunnel.
    pub in_tls: bool,
    /// UDP: the answer may come from another port of the host (TFTP answers from a port of
    /// its own, RFC 1350's transfer identifier).
    pub any_port: bool,
}

/// One matcher: a pattern over a response and the service it names.
#[derive(Debug)]
pub struct Matcher {
    /// Service name.
    pub service: String,
    /// Compiled pattern (bytes, ASCII classes).
    pub pattern: Regex,
    /// Only for responses to these probes (empty: any).
    pub probes: Vec<String>,
    /// Templates (`$1`..`$9` are capture groups).
    pub product: Option<String>,
    /// Version template.
    pub version: Option<String>,
    /// Extra information template.
    pub info: Option<String>,
    /// Host name template.
    pub hostname: Option<String>,
    /// Operating system template.
    pub os: Option<String>,
    /// Device type template.
    pub device: Option<String>,
    /// CPE templates.
    pub cpe: Vec<String>,
    /// A soft match names the service but keeps probing for the product.
    pub soft: bool,
    /// The answer shows the service served a question without authentication.
    pub noauth: bool,
    /// Line in the data file, for diagnostics.
    pub line: usize,
}

/// What the data says about a service name.
#[derive(Debug)]
pub struct ServiceSpec {
    /// The name identification reports (nmap's vocabulary).
    pub name: String,
    /// IANA names (or knowledge-base ids) of ports that promise this service in cleartext.
    pub registered: Vec<String>,
    /// IANA names of ports that promise it inside TLS.
    pub tls_registered: Vec<String>,
    /// Severity of a "cleartext service" finding, if any.
    pub cleartext: Option<Severity>,
    /// The service speaks first.
    pub server_first: bool,
    /// The service never answers (discard): silence is all it shows.
    pub silent: bool,
    /// Other service names that may legitimately answer where this one is expected
    /// (http-proxy for http).
    pub compatible: Vec<String>,
}

/// Everything loaded from the data file.
#[derive(Debug)]
pub struct Data {
    /// Probes in file order.
    pub probes: Vec<Probe>,
    /// Matchers in file order (first hard match wins).
    pub matchers: Vec<Matcher>,
    /// Services by name.
    pub services: Vec<ServiceSpec>,
    /// Registered name → (service, inside TLS).
    pub by_registered: HashMap<String, (usize, bool)>,
}

impl Data {
    /// A service's spec.
    pub fn service(&self, name: &str) -> Option<&ServiceSpec> {
        self.services.iter().find(|s| s.name == name)
    }
    /// A probe by name.
    pub fn probe(&self, name: &str) -> Option<&Probe> {
        self.probes.iter().find(|p| p.name == name)
    }
}

/// Why a send string's escapes do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EscapeError {
    /// `\` is the last character.
    #[error("a lone backslash at the end")]
    LoneBackslash,
    /// `\x` with fewer than two characters after it.
    #[error("\\x needs two hex digits")]
    ShortHex,
    /// `\x` followed by non-hex characters.
    #[error("\\x{0} is not hex")]
    NotHex(String),
    /// A backslash before a letter with no meaning.
    #[error("unknown escape \\{0}")]
    Unknown(char),
}

/// `\r \n \t \0 \\ \xNN` in a send string.
pub fn unescape(s: &str) -> Result<Vec<u8>, EscapeError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = *b.get(i + 1).ok_or(EscapeError::LoneBackslash)?;
        i += 2;
        match c {
            b'r' => out.push(b'\r'),
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'0' => out.push(0),
            b'\\' => out.push(b'\\'),
            b'x' => {
                let hex = s.get(i..i + 2).ok_or(EscapeError::ShortHex)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| EscapeError::NotHex(hex.to_string()))?);
                i += 2;
            }
            other => return Err(EscapeError::Unknown(other as char)),
        }
    }
    Ok(out)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.len(), |p| before.len() - p - 1) + 1;
    (line, col)
}

/// Parses and checks a data file. `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Data, Error> {
    let err = |offset: usize, field: &str, message: String| {
        let (line, column) = line_col(text, offset);
        Error::Data { file: file.to_string(), line, column, field: field.to_string(), message }
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        err(offset, "toml", e.message().to_string())
    })?;
    let mut services = Vec::new();
    let mut by_registered = HashMap::new();
    for s in raw.service {
        let at = s.span().start;
        let s = s.into_inner();
        let cleartext = s
            .cleartext
            .as_deref()
            .map(|c| c.parse::<Severity>().map_err(|e| err(at, "cleartext", e.to_string())))
            .transpose()?;
        if services.iter().any(|x: &ServiceSpec| x.name == s.name) {
            return Err(err(at, "name", format!("service {:?} is defined twice", s.name)));
        }
        for r in &s.registered {
            by_registered.insert(r.to_ascii_lowercase(), (services.len(), false));
        }
        for r in &s.tls_registered {
            by_registered.insert(r.to_ascii_lowercase(), (services.len(), true));
        }
        services.push(ServiceSpec {
            name: s.name,
            registered: s.registered,
            tls_registered: s.tls_registered,
            cleartext,
            server_first: s.server_first,
            silent: s.silent,
            compatible: s.compatible,
        });
    }
    let mut probes: Vec<Probe> = Vec::new();
    for p in raw.probe {
        let at = p.span().start;
        let p = p.into_inner();
        let transport: Transport = p
            .transport
            .parse()
            .map_err(|_| err(at, "transport", format!("{:?}: expected tcp or udp", p.transport)))?;
        if probes.iter().any(|x| x.name == p.name) {
            return Err(err(at, "name", format!("probe {:?} is defined twice", p.name)));
        }
        if let Some(b) = &p.builtin
            && !BUILTINS.contains(&b.as_str())
        {
            return Err(err(at, "builtin", format!("{b:?} is not one of {}", BUILTINS.join(", "))));
        }
        if p.any_port && transport != Transport::Udp {
            return Err(err(at, "any_port", "only a UDP probe can take an answer from another port".into()));
        }
        if p.builtin.is_some() && p.send.is_some() {
            return Err(err(at, "send", "a probe has either send or builtin, not both".into()));
        }
        let send = unescape(p.send.as_deref().unwrap_or("")).map_err(|m| err(at, "send", m.to_string()))?;
        if p.rarity > 9 {
            return Err(err(at, "rarity", format!("{} is above 9", p.rarity)));
        }
        for s in &p.services {
            if !services.iter().any(|x| &x.name == s) {
                return Err(err(at, "services", format!("{s:?} is not a [[service]]")));
            }
        }
        probes.push(Probe {
            name: p.name,
            transport,
            send,
            builtin: p.builtin,
            ports: p.ports,
            services: p.services,
            rarity: p.rarity,
            wait_ms: p.wait_ms.unwrap_or(if transport == Transport::Udp { 1000 } else { 2000 }),
            in_tls: p.in_tls,
            any_port: p.any_port,
        });
    }
    let mut matchers = Vec::new();
    for m in raw.matches {
        let at = m.span().start;
        let m = m.into_inner();
        let pattern = RegexBuilder::new(&m.pattern)
            .unicode(false)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| err(at, "pattern", e.to_string()))?;
        let groups = pattern.captures_len() - 1;
        let mut templates: Vec<(&str, &str)> = Vec::new();
        for (field, t) in [
            ("product", &m.product),
            ("version", &m.version),
            ("info", &m.info),
            ("hostname", &m.hostname),
            ("os", &m.os),
            ("device", &m.device),
        ] {
            if let Some(t) = t {
                templates.push((field, t));
            }
        }
        templates.extend(m.cpe.iter().map(|c| ("cpe", c.as_str())));
        for (field, t) in templates {
            if let Some(n) = template_groups(t).into_iter().find(|n| *n > groups) {
                return Err(err(at, field, format!("${n} but the pattern has {groups} groups")));
            }
        }
        for p in &m.probes {
            if !probes.iter().any(|x| &x.name == p) {
                return Err(err(at, "probes", format!("{p:?} is not a [[probe]]")));
            }
        }
        if !services.iter().any(|x| x.name == m.service) {
            return Err(err(at, "service", format!("{:?} is not a [[service]]", m.service)));
        }
        let (line, _) = line_col(text, at);
        matchers.push(Matcher {
            service: m.service,
            pattern,
            probes: m.probes,
            product: m.product,
            version: m.version,
            info: m.info,
            hostname: m.hostname,
            os: m.os,
            device: m.device,
            cpe: m.cpe,
            soft: m.soft,
            noauth: m.noauth,
            line,
        });
    }
    Ok(Data { probes, matchers, services, by_registered })
}

fn template_groups(t: &str) -> Vec<usize> {
    let b = t.as_bytes();
    (0..b.len().saturating_sub(1))
        .filter(|&i| b[i] == b'$' && b[i + 1].is_ascii_digit())
        .map(|i| usize::from(b[i + 1] - b'0'))
        .collect()
}

/// Fills `$1`..`$9` from captures; the result keeps printable text only (no control bytes).
pub fn fill(template: &str, caps: &regex::bytes::Captures<'_>) -> String {
    let mut out = String::new();
    let b = template.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() && b[i + 1].is_ascii_digit() {
            let n = usize::from(b[i + 1] - b'0');
            if let Some(m) = caps.get(n) {
                out.push_str(&String::from_utf8_lossy(m.as_bytes()));
            }
            i += 2;
            continue;
        }
        let ch_len = template[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&template[i..i + ch_len]);
        i += ch_len;
    }
    crate::clean(out.trim_matches(|c| matches!(c, ' ' | ';' | ',' | ':')))
}

/// The embedded data, parsed once. The file is checked by a test, so a failure here is a bug
/// in the build; it is reported rather than panicking.
pub fn builtin() -> Result<&'static Data, Error> {
    static DATA: OnceLock<Result<Data, Error>> = OnceLock::new();
    DATA.get_or_init(|| parse("crates/identify/data/probes.toml", PROBES_TOML)).as_ref().map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn embedded_data_is_valid() {
        let d = builtin().unwrap();
        assert!(d.probes.len() >= 20, "{} probes", d.probes.len());
        assert!(d.matchers.len() >= 60, "{} matchers", d.matchers.len());
        // every service a matcher names can be expected somewhere or is port-less on purpose
        for p in &d.probes {
            assert!(p.builtin.is_some() || !p.send.is_empty() || p.name == "null", "{}", p.name);
        }
    }

    #[test]
    fn errors_name_line_column_and_field() {
        let text = "[[service]]\nname = \"x\"\n\n[[match]]\nservice = \"x\"\npattern = '(unclosed'\n";
        let e = parse("t.toml", text).unwrap_err().to_string();
        assert!(e.starts_with("t.toml:4:1: pattern:"), "{e}");
        let text = "[[service]]\nname = \"x\"\n[[match]]\nservice = \"x\"\npattern = 'a'\nversion = '$2'\n";
        let e = parse("t.toml", text).unwrap_err().to_string();
        assert!(e.contains("version: $2 but the pattern has 0 groups"), "{e}");
        let e = parse("t.toml", "[[probe]]\nname = 'a'\nbuiltin = 'nope'\n").unwrap_err().to_string();
        assert!(e.contains("builtin"), "{e}");
        let e = parse("t.toml", "[[probe]]\nname = 'a'\nsend = 'x\\q'\n").unwrap_err().to_string();
        assert!(e.contains("unknown escape"), "{e}");
        let e =
            parse("t.toml", "[[probe]]\nname = 'a'\nsend = 'x'\nany_port = true\n").unwrap_err().to_string();
        assert!(e.contains("any_port: only a UDP probe"), "{e}");
        let ok = "[[probe]]\nname = 'a'\ntransport = 'udp'\nsend = 'x'\nany_port = true\n";
        assert!(parse("t.toml", ok).is_ok_and(|d| d.probes[0].any_port));
    }

    #[test]
    fn unescapes_bytes() {
        assert_eq!(unescape(r"a\r\n\x00\xff\\").unwrap(), b"a\r\n\x00\xff\\");
        assert!(unescape(r"\x1").is_err());
    }
}
