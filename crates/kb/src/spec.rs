//! The knowledge base's file format and its validation.
//!
//! This module is compiled twice: by `build.rs`, which refuses to build a knowledge base that
//! fails validation, and by the tests. It is documented in `docs/knowledge-base.md`.

use serde::Deserialize;

/// A knowledge-base file: `[[service]]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// The entries.
    pub service: Vec<RawEntry>,
}

/// One entry as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEntry {
    pub id: String,
    pub name: String,
    pub ports: Vec<String>,
    pub category: String,
    pub transport_security: String,
    pub authentication: String,
    pub internet_risk: String,
    pub risk_reason: String,
    pub hardening: Vec<String>,
    pub alternative: String,
    pub attack: Vec<String>,
    pub references: Vec<String>,
}

pub const CATEGORIES: &[&str] = &[
    "remote-access",
    "file-transfer",
    "web",
    "mail",
    "name-resolution",
    "directory",
    "authentication",
    "database",
    "cache",
    "messaging",
    "time",
    "network-management",
    "monitoring",
    "windows-services",
    "file-sharing",
    "container-orchestration",
    "virtualization",
    "vpn",
    "voip",
    "printing",
    "industrial-control",
    "routing",
    "proxy",
    "legacy",
    "discovery",
    "development",
    "storage",
];
pub const TRANSPORT_SECURITY: &[&str] = &["cleartext", "encrypted", "optional"];
pub const AUTHENTICATION: &[&str] = &["none", "weak", "strong"];
pub const RISKS: &[&str] = &["critical", "high", "medium", "low"];
pub const REFERENCE_FAMILIES: &[&str] = &["NIST ", "CIS ", "CISA", "NSA/CISA", "MITRE"];

/// A port span `lo-hi/transport` parsed from an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub lo: u16,
    pub hi: u16,
    /// `tcp`, `udp` or `sctp`.
    pub transport: &'static str,
}

/// Why an entry's port is not `PORT/TRANSPORT` or `LO-HI/TRANSPORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpanError {
    /// No `/TRANSPORT`.
    NoTransport(String),
    /// A transport other than tcp, udp or sctp.
    Transport { span: String, transport: String },
    /// A port that is not 0-65535.
    Port { span: String, port: String },
    /// A range whose low end is above its high end.
    Empty(String),
}

impl std::fmt::Display for SpanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpanError::NoTransport(s) => write!(f, "port {s:?}: expected PORT/TRANSPORT"),
            SpanError::Transport { span, transport } => {
                write!(f, "port {span:?}: transport {transport:?} is not tcp, udp or sctp")
            }
            SpanError::Port { span, port } => write!(f, "port {span:?}: {port:?} is not a port 0-65535"),
            SpanError::Empty(s) => write!(f, "port {s:?}: empty range"),
        }
    }
}

impl std::error::Error for SpanError {}

pub fn parse_span(s: &str) -> Result<Span, SpanError> {
    let (ports, transport) = s.split_once('/').ok_or_else(|| SpanError::NoTransport(s.to_string()))?;
    let transport = match transport {
        "tcp" => "tcp",
        "udp" => "udp",
        "sctp" => "sctp",
        t => return Err(SpanError::Transport { span: s.to_string(), transport: t.to_string() }),
    };
    let num =
        |p: &str| p.parse::<u16>().map_err(|_| SpanError::Port { span: s.to_string(), port: p.to_string() });
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(ports)?, num(ports)?),
    };
    if lo > hi {
        return Err(SpanError::Empty(s.to_string()));
    }
    Ok(Span { lo, hi, transport })
}

fn is_attack_id(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: &[u8]| r.iter().all(u8::is_ascii_digit);
    match b.len() {
        5 => b[0] == b'T' && digits(&b[1..5]),
        9 => b[0] == b'T' && digits(&b[1..5]) && b[5] == b'.' && digits(&b[6..9]),
        _ => false,
    }
}

fn sentence_count(s: &str) -> usize {
    s.split(". ").count()
}

/// Validates one entry; each problem names the entry and the field.
pub fn validate_entry(e: &RawEntry, problems: &mut Vec<String>) {
    let mut bad =
        |field: &str, what: String| problems.push(format!("entry {:?}, field `{field}`: {what}", e.id));
    if e.id.is_empty() || !e.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        bad("id", "must be lowercase letters, digits and '-'".into());
    }
    for (field, v) in [("name", &e.name), ("risk_reason", &e.risk_reason), ("alternative", &e.alternative)] {
        if v.trim().is_empty() {
            bad(field, "must not be empty".into());
        }
    }
    if e.ports.is_empty() {
        bad("ports", "needs at least one PORT/TRANSPORT".into());
    }
    for p in &e.ports {
        if let Err(m) = parse_span(p) {
            bad("ports", m.to_string());
        }
    }
    for (field, v, allowed) in [
        ("category", &e.category, CATEGORIES),
        ("transport_security", &e.transport_security, TRANSPORT_SECURITY),
        ("authentication", &e.authentication, AUTHENTICATION),
        ("internet_risk", &e.internet_risk, RISKS),
    ] {
        if !allowed.contains(&v.as_str()) {
            bad(field, format!("{v:?} is not one of {}", allowed.join(", ")));
        }
    }
    if !(1..=3).contains(&sentence_count(&e.risk_reason)) {
        bad("risk_reason", "must be one to three sentences".into());
    }
    if !(2..=6).contains(&e.hardening.len()) {
        bad("hardening", format!("needs 2 to 6 steps, has {}", e.hardening.len()));
    }
    if e.hardening.iter().any(|h| h.trim().is_empty()) {
        bad("hardening", "has an empty step".into());
    }
    if !(1..=4).contains(&e.attack.len()) {
        bad("attack", format!("needs 1 to 4 ATT&CK technique IDs, has {}", e.attack.len()));
    }
    for a in &e.attack {
        if !is_attack_id(a) {
            bad("attack", format!("{a:?} is not an ATT&CK technique ID (T1234 or T1234.001)"));
        } else if a.starts_with("T0") && e.category != "industrial-control" {
            bad("attack", format!("{a:?} is an ATT&CK for ICS ID, only for industrial-control entries"));
        }
    }
    if !(2..=5).contains(&e.references.len()) {
        bad("references", format!("needs 2 to 5 references, has {}", e.references.len()));
    }
    for r in &e.references {
        if !REFERENCE_FAMILIES.iter().any(|f| r.starts_with(f)) {
            bad("references", format!("{r:?} is not from NIST, CIS, CISA or MITRE guidance"));
        }
    }
    let all_text = [&e.name, &e.risk_reason, &e.alternative]
        .into_iter()
        .chain(e.hardening.iter())
        .chain(e.references.iter());
    for t in all_text {
        if !t.is_ascii() || t.contains('\t') {
            bad("text", format!("{t:?} must be plain ASCII without tabs"));
        }
    }
}

/// Validates a whole knowledge base: every entry, unique ids.
pub fn validate(entries: &[(String, RawEntry)]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut ids = std::collections::BTreeMap::new();
    for (file, e) in entries {
        let mut mine = Vec::new();
        validate_entry(e, &mut mine);
        problems.extend(mine.into_iter().map(|m| format!("{file}: {m}")));
        if let Some(first) = ids.insert(e.id.clone(), file.clone()) {
            problems.push(format!("{file}: entry {:?} is also defined in {first}", e.id));
        }
    }
    problems
}
