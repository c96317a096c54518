//! Portolan's firewall analysis: read real rule sets (`iptables-save`, `nft -j list
//! ruleset`, AWS security groups) into one normalized model ([`model`], the readers
//! [`iptables`], [`nft`], [`aws`], [`ipset`]), compute their effective exposure exactly
//! ([`analysis::Analysis::exposure`], by first-match propagation), answer one-packet queries
//! with the deciding rule and the chain path ([`analysis::Analysis::query_walk`]), diff two
//! rule sets ([`analysis::Analysis::diff`]) and lint them ([`lint`]). The decision diagrams
//! ([`dd`]) serve batches of queries, diffs and verification; their verdicts ([`dd::Kind`],
//! [`dd::Term`]) are those of every result. The proof on a real kernel firewall is
//! `portolan-verify`, a crate of its own (it loads rule sets into network namespaces and
//! scans them, so it depends on the scanner; the analysis does not).
//!
//! ```
//! use portolan_firewall::{self as fw, analysis::{Analysis, standard_classes}};
//! let text = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
//!             -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n";
//! let rs = fw::parse_str(text, "rules.v4", None, &fw::LoadOptions::default()).unwrap();
//! let mut a = Analysis::outline(&[&rs]);
//! let exp = a.exposure(&standard_classes(), None, false, &[]).unwrap();
//! let ssh = exp[0].rows.iter().find(|r| r.proto == (6, 6) && r.ports == Some((22, 22))).unwrap();
//! assert!(ssh.classes[0].all_accept()); // open to the internet
//! ```

// Interval lists, partitions and (verdict, rule) pairs are spelled out as tuples where they
// are built and read; naming each shape would hide more than it shows.
#![allow(clippy::type_complexity)]

pub mod analysis;
pub mod aws;
pub mod dd;
mod error;
mod flow;
pub mod ipset;
pub mod iptables;
pub mod json;
pub mod lint;
pub mod model;
pub mod nft;
pub mod sets;

pub use error::{Error, ErrorKind, Expected, Limit, Missing, Result, Unsupported, ValueKind};
pub use model::{Family, Format, Location, Ruleset};

/// How to read a rule file.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// iptables: the family (default: from the header or the addresses).
    pub family: Option<Family>,
    /// iptables: the `ipset save` output for `-m set` rules.
    pub ipsets: Option<ipset::IpSets>,
}

/// Guesses the format of a rule file's text.
pub fn detect(text: &str) -> Option<Format> {
    let t = text.trim_start();
    if t.starts_with('{') || t.starts_with('[') {
        if t.contains("\"nftables\"") {
            return Some(Format::NftJson);
        }
        if t.contains("\"SecurityGroups\"") {
            return Some(Format::Aws);
        }
        return None;
    }
    let first = t.lines().find(|l| !l.trim().is_empty() && !l.starts_with('#'));
    match first {
        Some(l) if l.starts_with('*') => Some(Format::Iptables),
        None if t.starts_with('#') => Some(Format::Iptables),
        _ => None,
    }
}

/// Parses a rule set from text (`format`: `None` to detect it).
pub fn parse_str(text: &str, file: &str, format: Option<Format>, opts: &LoadOptions) -> Result<Ruleset> {
    let format = match format.or_else(|| detect(text)) {
        Some(f) => f,
        None => return Err(Error::UnknownFormat { file: file.to_string() }),
    };
    match format {
        Format::Iptables => iptables::parse(
            text,
            file,
            &iptables::Options { family: opts.family, ipsets: opts.ipsets.clone() },
        ),
        Format::NftJson => nft::parse(text, file),
        Format::Aws => aws::parse(text, file),
    }
}

/// A file that is not UTF-8, located at its first bad byte (a comment with one stray byte is
/// reported at its own line, not at line 1).
fn not_utf8(name: &str, e: &std::string::FromUtf8Error) -> Error {
    let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
    let line = good.iter().filter(|b| **b == b'\n').count() as u32 + 1;
    let start = good.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&good[start..]).chars().count() as u32 + 1;
    Error::syntax(Location::new(name, line, column), ErrorKind::NotUtf8 { byte: e.as_bytes()[good.len()] })
}

/// The largest rule file read: a million iptables rules take about 100 MiB.
pub const MAX_RULE_FILE: u64 = 256 << 20;

/// Reads and parses a rule file (at most [`MAX_RULE_FILE`] bytes).
pub fn load(path: &std::path::Path, format: Option<Format>, opts: &LoadOptions) -> Result<Ruleset> {
    let name = path.display().to_string();
    let bytes = portolan_model::input::read_bounded(path, MAX_RULE_FILE)?;
    let text = String::from_utf8(bytes).map_err(|e| not_utf8(&name, &e))?;
    parse_str(&text, &name, format, opts)
}

/// Reads an `ipset save` file.
pub fn load_ipsets(path: &std::path::Path) -> Result<ipset::IpSets> {
    let name = path.display().to_string();
    let bytes = portolan_model::input::read_bounded(path, MAX_RULE_FILE)?;
    let text = String::from_utf8(bytes).map_err(|e| not_utf8(&name, &e))?;
    ipset::parse(&text, &name)
}
