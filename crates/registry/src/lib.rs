//! The IANA Service Name and Transport Protocol Port Number Registry, embedded.
//!
//! Every row of IANA's registry is here: assigned, reserved and unassigned entries, port
//! ranges (x11 6000-6063), names without ports, and all four transports. The build script
//! turns the vendored CSV (`data/iana/`) into binary tables that are included in the binary,
//! so a lookup parses nothing at start-up: it indexes static bytes.
//!
//! ```
//! use portolan_registry::{self as reg, Query};
//! use portolan_model::Transport;
//!
//! let rdp: Vec<_> = reg::by_port(3389, Some(Transport::Tcp)).collect();
//! assert!(rdp.iter().any(|e| e.name() == "ms-wbt-server"));
//! assert_eq!(reg::iana_name(22, Transport::Tcp), Some("ssh"));
//! assert_eq!(reg::iana_name(8000, Transport::Tcp), Some("irdmi"));
//! assert!(matches!("53/udp".parse::<Query>(), Ok(Query::Port { lo: 53, hi: 53, transport: Some(Transport::Udp) })));
//! ```

mod entry;
mod error;
mod lines;
pub mod oui;
mod query;
mod rank;
mod tables;

pub use entry::Entry;
pub use error::{Error, Result};
pub use query::Query;
pub use rank::{NameSource, Ranking, RankingSource};

use portolan_model::Transport;

/// Number of rows in the embedded registry (IANA's CSV data rows).
pub const RECORD_COUNT: usize = tables::RECORD_COUNT;

/// The date of the registry edition that is embedded (IANA's `<updated>`).
pub const UPDATED: &str = tables::UPDATED;

/// Every row, in IANA's order.
pub fn records() -> impl Iterator<Item = Entry> {
    (0..RECORD_COUNT).map(Entry::new)
}

/// Rows whose port (or port range) covers `port`, optionally only one transport.
///
/// Rows without a transport (the "Unassigned" and "Reserved" blocks) are included even when a
/// transport is given, because they apply to every transport.
pub fn by_port(port: u16, transport: Option<Transport>) -> impl Iterator<Item = Entry> {
    tables::port_rows(port).map(Entry::new).filter(move |e| match (transport, e.transport()) {
        (Some(want), Some(t)) => want == t,
        _ => true,
    })
}

/// Rows whose service name equals `name`, ignoring ASCII case.
pub fn by_name(name: &str) -> impl Iterator<Item = Entry> {
    tables::name_rows(name).map(Entry::new)
}

/// The name of a port, the one every command prints (`scan`, `ls`, `check`, `identify`, `port`,
/// `fw`): nmap's name from its `nmap-services` where nmap is installed and its file names the
/// port (its placeholder `unknown` is no name), IANA's primary name otherwise — the name an nmap
/// user already knows for the port (8000/tcp `http-alt`, not IANA's `irdmi`), and the
/// registry's where nmap is absent or silent. `None` when neither names the port.
///
/// nmap's file is found as [`Ranking::discover`] finds it (`$NMAPDIR`, then the usual paths).
/// A scan has read it whole already; a command that names a few ports finds each by binary
/// search (nmap writes the file in port order; one out of order is read whole). A file that
/// cannot be read leaves IANA's names.
pub fn port_name(port: u16, transport: Transport) -> Option<&'static str> {
    port_name_and_source(port, transport).map(|(n, _)| n)
}

/// Whether naming about `ports` ports reads nmap's file whole: past a few hundred, a search
/// per port costs more than one reading. A caller that will name that many can read it
/// ahead with [`prepare_names`].
pub fn reads_whole(ports: usize) -> bool {
    ports > rank::MAX_SEARCHES as usize
}

/// Prepares [`port_name`] for naming many ports (an inventory of thousands of listeners):
/// nmap's file is read whole now rather than searched port by port. Called on a thread of its
/// own, the read overlaps the caller's other work; a [`port_name`] meanwhile waits for it.
pub fn prepare_names() {
    rank::read_whole_now();
}

/// [`port_name`] and where the name came from.
pub fn port_name_and_source(port: u16, transport: Transport) -> Option<(&'static str, NameSource)> {
    if let Some(names) = rank::read_whole_already() {
        return rank::name_by_rule(Some(names), port, transport);
    }
    match rank::nmap_name(port, transport) {
        Ok(Some(name)) => Some((name, NameSource::Nmap)),
        Ok(None) => iana_name(port, transport).map(|n| (n, NameSource::Iana)),
        Err(()) => rank::name_by_rule(rank::discovered_names(), port, transport),
    }
}

/// IANA's primary name of a port: the first named row for exactly this port and transport.
/// `None` when IANA names no service. Commands name ports with [`port_name`], which prefers
/// nmap's name; this is the registry's half of that rule.
pub fn iana_name(port: u16, transport: Transport) -> Option<&'static str> {
    match transport {
        Transport::Tcp => return tables::primary_name(port, false),
        Transport::Udp => return tables::primary_name(port, true),
        _ => {}
    }
    by_port(port, Some(transport))
        .find(|e| e.transport() == Some(transport) && !e.name().is_empty())
        .map(|e| e.name())
}

/// Rows whose name, description or notes contain every word of `text` (ASCII case ignored).
pub fn search(text: &str) -> Vec<Entry> {
    let words: Vec<String> = text.split_whitespace().map(|w| w.to_ascii_lowercase()).collect();
    if words.is_empty() {
        return Vec::new();
    }
    records()
        .filter(|e| {
            let hay = format!("{} {} {}", e.name(), e.description(), e.notes()).to_ascii_lowercase();
            words.iter().all(|w| hay.contains(w.as_str()))
        })
        .collect()
}

/// Up to five registered names close to `name` (edit distance or shared prefix), for
/// "did you mean" messages.
pub fn suggest(name: &str) -> Vec<&'static str> {
    let want = name.to_ascii_lowercase();
    let mut scored: Vec<(usize, &'static str)> = Vec::new();
    let mut last = "";
    for n in tables::names_sorted() {
        if n.eq_ignore_ascii_case(last) {
            continue;
        }
        last = n;
        let lower = n.to_ascii_lowercase();
        let d = strsim::levenshtein(&want, &lower);
        let limit = if want.len() <= 4 { 1 } else { 2 };
        let score = if d <= limit {
            d
        } else if want.len() >= 3 && lower.starts_with(&want) {
            limit + 1 + (lower.len() - want.len())
        } else {
            continue;
        };
        scored.push((score, n));
    }
    scored.sort();
    scored.into_iter().take(5).map(|(_, n)| n).collect()
}
