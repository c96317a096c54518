//! `portolan port`: one answer that joins the registry rows and the knowledge base for a query.

use portolan_model::{RangeClass, Transport};
use portolan_registry::{self as registry, Query};
use serde::Serialize;

use crate::Entry;

/// One registry row, in the shape Portolan's JSON uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct RegistryRow {
    /// Service name; empty for unassigned and reserved rows.
    pub name: &'static str,
    /// First port; absent for a name without a port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Last port when the row is a range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_end: Option<u16>,
    /// Transport; absent for blocks that apply to every transport.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
    /// Range class of the first port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_class: Option<RangeClass>,
    /// IANA's description.
    pub description: &'static str,
    /// Assignee.
    #[serde(default, skip_serializing_if = "str::is_empty")]
    pub assignee: &'static str,
    /// Contact.
    #[serde(default, skip_serializing_if = "str::is_empty")]
    pub contact: &'static str,
    /// Registration date.
    #[serde(default, skip_serializing_if = "str::is_empty")]
    pub registration_date: &'static str,
    /// Modification date.
    #[serde(default, skip_serializing_if = "str::is_empty")]
    pub modification_date: &'static str,
    /// References.
    #[serde(default, skip_serializing_if = "str::is_empty")]
    pub reference: &'static str,
    /// Known unauthorised use.
    #[serde(default, skip_serializing_if = "str::is_empty")]
    pub unauthorized_use: &'static str,
    /// Assignment notes.
    #[serde(default, skip_serializing_if = "str::is_empty")]
    pub notes: &'static str,
}

impl From<registry::Entry> for RegistryRow {
    fn from(e: registry::Entry) -> RegistryRow {
        let ports = e.ports();
        RegistryRow {
            name: e.name(),
            port: ports.map(|p| p.0),
            port_end: ports.and_then(|(lo, hi)| (lo != hi).then_some(hi)),
            transport: e.transport(),
            range_class: e.range_class(),
            description: e.description(),
            assignee: e.assignee(),
            contact: e.contact(),
            registration_date: e.registration_date(),
            modification_date: e.modification_date(),
            reference: e.reference(),
            unauthorized_use: e.unauthorized_use(),
            notes: e.notes(),
        }
    }
}

/// The name Portolan gives a port on one transport (the name every command prints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct PortName {
    /// The port.
    pub port: u16,
    /// The transport.
    pub transport: Transport,
    /// The name ([`portolan_registry::port_name`]).
    pub name: &'static str,
    /// Where it came from: `nmap-services` (nmap installed and its file names the port) or
    /// `iana`.
    pub source: &'static str,
}

/// The answer to one query.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Lookup {
    /// The query as given.
    pub query: String,
    /// Range class of the port, for a single-port query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_class: Option<RangeClass>,
    /// For a single-port query: the port's name on each transport (TCP, UDP, or the one
    /// given), as `scan`, `ls`, `check` and `identify` print it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<PortName>,
    /// Registry rows, in IANA's order.
    pub registry: Vec<RegistryRow>,
    /// Knowledge-base entries for the port(s) or name.
    pub knowledge: Vec<&'static Entry>,
}

/// Answers a port, range or name query. An unknown name is an error with suggestions; a port
/// with no registry rows (the dynamic range) is an answer with no rows.
pub fn lookup(text: &str) -> Result<Lookup, registry::Error> {
    let query: Query = text.parse()?;
    let mut rows: Vec<registry::Entry> = Vec::new();
    let mut knowledge: Vec<&'static Entry> = Vec::new();
    let mut range_class = None;
    let mut names = Vec::new();
    match &query {
        Query::Port { lo, hi, transport } => {
            if lo == hi {
                range_class = Some(RangeClass::of(*lo));
                let transports = match transport {
                    Some(t) => vec![*t],
                    None => vec![Transport::Tcp, Transport::Udp],
                };
                for t in transports {
                    if let Some((name, source)) = registry::port_name_and_source(*lo, t) {
                        names.push(PortName { port: *lo, transport: t, name, source: source.as_str() });
                    }
                }
            }
            for p in *lo..=*hi {
                for e in registry::by_port(p, *transport) {
                    if !rows.contains(&e) {
                        rows.push(e);
                    }
                }
            }
            for e in crate::all() {
                let hit = e
                    .ports
                    .iter()
                    .any(|s| s.lo <= *hi && *lo <= s.hi && transport.is_none_or(|t| t == s.transport));
                if hit {
                    knowledge.push(e);
                }
            }
        }
        Query::Name { name, transport } => {
            rows.extend(
                registry::by_name(name).filter(|e| transport.is_none_or(|t| e.transport() == Some(t))),
            );
            if rows.is_empty() && crate::by_id(name).is_none() {
                return Err(registry::Error::UnknownService {
                    name: name.clone(),
                    suggestions: registry::suggest(name).into_iter().map(String::from).collect(),
                });
            }
            knowledge = crate::for_service_name(name);
        }
    }
    rows.sort_by_key(|e| e.index());
    Ok(Lookup {
        query: text.to_string(),
        range_class,
        names,
        registry: rows.into_iter().map(RegistryRow::from).collect(),
        knowledge,
    })
}

/// Answers a free-text search over names, descriptions and notes; knowledge-base entries whose
/// name or id contain every word are included.
pub fn search(text: &str) -> Lookup {
    let rows = registry::search(text);
    let words: Vec<String> = text.split_whitespace().map(str::to_ascii_lowercase).collect();
    let knowledge = crate::all()
        .iter()
        .filter(|e| {
            let hay = format!("{} {} {}", e.id, e.name, e.risk_reason).to_ascii_lowercase();
            !words.is_empty() && words.iter().all(|w| hay.contains(w.as_str()))
        })
        .collect();
    Lookup {
        query: text.to_string(),
        range_class: None,
        names: Vec::new(),
        registry: rows.into_iter().map(RegistryRow::from).collect(),
        knowledge,
    }
}
