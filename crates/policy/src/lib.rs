//! Portolan's approved-port inventory as code.
//!
//! A policy (TOML, `docs/policy.md`) names host groups and, for each approved exposure, the
//! ports, transport, expected service or process, owner, business purpose, allowed sources and
//! bind scope, review and expiry dates and a ticket. Everything not listed is denied unless the
//! policy says otherwise. [`Policy::load`] reads a policy and its includes and reports every
//! problem with file, line, column and field; [`audit`] judges observations (a local socket
//! table or a scan) against it and returns findings in the shared model.
//!
//! ```
//! use portolan_policy::Policy;
//!
//! let p = Policy::parse_str("policy.toml", r#"
//! [groups.web]
//! hosts = ["198.18.1.0/24"]
//!
//! [[allow]]
//! hosts = ["web"]
//! ports = "80,443"
//! service = "http"
//! owner = "web-team"
//! purpose = "public site"
//! "#).unwrap();
//! assert_eq!(p.entries.len(), 1);
//!
//! let err = Policy::parse_str("policy.toml", "[[allow]]\nports = 70000\n").unwrap_err();
//! assert!(err.to_string().starts_with("policy.toml:2:9: allow[1].ports:"));
//! ```

mod init;
mod judge;
mod parse;

pub use init::{InitOptions, init};
pub use judge::{AuditOptions, Observations, ObservedHost, ObservedPort, audit};

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use jiff::civil::Date;
use portolan_model::Transport;

/// The policy format version this build reads.
pub const POLICY_VERSION: i64 = 1;

/// A place in a policy file: the model's one source-location type.
pub use portolan_model::SourceLocation as Location;

/// One thing wrong with a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where.
    pub at: Location,
    /// The field (`allow[2].ports`, `groups.web.hosts[1]`), empty for the file itself.
    pub field: String,
    /// What is wrong and what is expected.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.at, self.message)
        } else {
            write!(f, "{}: {}: {}", self.at, self.field, self.message)
        }
    }
}

/// A policy that could not be read: every problem found, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// The problems (at least one).
    pub problems: Vec<Problem>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyError {}

/// What happens to a port the policy does not list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlisted {
    /// It is a finding (`policy.unapproved`): the default.
    Deny,
    /// It is allowed (only the listed entries are checked).
    Allow,
}

/// Policy-wide settings (`[defaults]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// Ports not listed.
    pub unlisted: Unlisted,
    /// Report risky cleartext services (`kb.cleartext`) even when approved.
    pub cleartext: bool,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults { unlisted: Unlisted::Deny, cleartext: true }
    }
}

/// A host selector in `hosts = [...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostSel {
    /// `*`: every host.
    Any,
    /// `localhost`: this machine's own listeners (and loopback addresses in a scan).
    Localhost,
    /// An address or CIDR.
    Net {
        /// Network address.
        addr: IpAddr,
        /// Prefix length.
        prefix: u8,
    },
    /// A host name (matched against the names a scan reports, case-insensitive).
    Name(String),
}

impl HostSel {
    /// Whether an address is inside a network.
    pub fn net_contains(net: IpAddr, prefix: u8, ip: IpAddr) -> bool {
        let ip = match (net, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            _ => ip,
        };
        match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// How widely an approved service may be bound, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AllowedScope {
    /// Loopback only.
    Loopback,
    /// One address or one device, not every interface.
    Address,
    /// Any binding (the default).
    All,
}

impl AllowedScope {
    /// The name used in the policy file.
    pub fn as_str(self) -> &'static str {
        match self {
            AllowedScope::Loopback => "loopback",
            AllowedScope::Address => "address",
            AllowedScope::All => "all",
        }
    }
}

/// A named set of hosts (`[groups.NAME]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Name.
    pub name: String,
    /// Members.
    pub hosts: Vec<HostSel>,
    /// Where it is defined.
    pub at: Location,
}

/// A date with the place it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatedAt {
    /// The date.
    pub date: Date,
    /// Where.
    pub at: Location,
    /// The field (`allow[3].expires`).
    pub field: String,
}

/// One approved exposure (`[[allow]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Optional stable identifier (used to tell new entries from old ones).
    pub id: Option<String>,
    /// `allow[N]` in its file (N from 1).
    pub name: String,
    /// Where the entry starts.
    pub at: Location,
    /// Hosts it applies to, groups expanded.
    pub hosts: Vec<HostSel>,
    /// The `hosts` values as written.
    pub hosts_text: Vec<String>,
    /// Port ranges (inclusive).
    pub ports: Vec<(u16, u16)>,
    /// The ports as written, normalised (`22`, `8000-8010,9000`).
    pub ports_text: String,
    /// Transport (default TCP).
    pub transport: Transport,
    /// Expected service name.
    pub service: Option<String>,
    /// Expected process (`comm`) of a local listener.
    pub process: Option<String>,
    /// Team or person responsible.
    pub owner: Option<String>,
    /// Business purpose.
    pub purpose: Option<String>,
    /// Allowed source networks (for firewall analysis and connection audits).
    pub sources: Vec<HostSel>,
    /// Allowed bind scope.
    pub scope: AllowedScope,
    /// Review the approval by this date.
    pub review_by: Option<DatedAt>,
    /// The approval ends on this date (an exception).
    pub expires: Option<DatedAt>,
    /// Change or ticket reference.
    pub ticket: Option<String>,
    /// Must be there: missing is a finding.
    pub required: bool,
}

impl Entry {
    /// Whether the entry covers a port on a transport.
    pub fn covers(&self, port: u16, transport: Transport) -> bool {
        self.transport == transport && self.ports.iter().any(|&(lo, hi)| (lo..=hi).contains(&port))
    }

    /// The key that identifies the entry across versions of a policy: its `id`, else its hosts,
    /// ports and transport.
    pub fn key(&self) -> String {
        match &self.id {
            Some(id) => format!("id:{id}"),
            None => format!("{}|{}|{}", self.hosts_text.join(","), self.ports_text, self.transport),
        }
    }
}

/// A policy and its includes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Files read, the main one first.
    pub files: Vec<PathBuf>,
    /// Settings.
    pub defaults: Defaults,
    /// Host groups by name.
    pub groups: BTreeMap<String, Group>,
    /// Approved exposures, in file order (includes where they are included).
    pub entries: Vec<Entry>,
    /// Things worth fixing that do not stop the policy from being used (owners left `TODO`).
    pub warnings: Vec<Problem>,
}

/// Where a policy is looked for when none is named (`portolan` with no arguments):
/// `$PORTOLAN_POLICY` alone when it is set; else `$XDG_CONFIG_HOME/portolan/policy.toml`
/// (`~/.config/portolan/policy.toml`), then `/etc/portolan/policy.toml`.
pub fn default_locations() -> Vec<PathBuf> {
    if let Some(p) = std::env::var_os("PORTOLAN_POLICY").filter(|p| !p.is_empty()) {
        return vec![PathBuf::from(p)];
    }
    let mut out = Vec::new();
    let config =
        std::env::var_os("XDG_CONFIG_HOME").filter(|p| !p.is_empty()).map(PathBuf::from).or_else(|| {
            std::env::var_os("HOME").filter(|p| !p.is_empty()).map(|h| PathBuf::from(h).join(".config"))
        });
    if let Some(c) = config {
        out.push(c.join("portolan/policy.toml"));
    }
    out.push(PathBuf::from("/etc/portolan/policy.toml"));
    out
}

/// How a policy is read.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Follow includes outside the main policy file's directory (by default such an include is
    /// a problem: a policy from elsewhere should not make Portolan read arbitrary files).
    pub includes_anywhere: bool,
}

impl Policy {
    /// Reads a policy file and the files it includes (which must lie in its directory or
    /// below it).
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        parse::load(path, &LoadOptions::default())
    }

    /// Reads a policy file and its includes with these options.
    pub fn load_with(path: &Path, opts: &LoadOptions) -> Result<Policy, PolicyError> {
        parse::load(path, opts)
    }

    /// Parses policy text (no includes are followed relative to anything but `name`'s directory).
    pub fn parse_str(name: &str, text: &str) -> Result<Policy, PolicyError> {
        parse::load_text(Path::new(name), text)
    }

    /// Dates in the past on entries that are new: not in `base` (the previous version of the
    /// policy), or every entry when there is no base. A new approval that has already expired or
    /// is already overdue for review is a mistake; an old one is a finding of `audit`.
    pub fn past_dates(&self, base: Option<&Policy>, today: Date) -> Vec<Problem> {
        let old: std::collections::HashSet<String> =
            base.map(|b| b.entries.iter().map(Entry::key).collect()).unwrap_or_default();
        let mut out = Vec::new();
        for e in self.entries.iter().filter(|e| !old.contains(&e.key())) {
            for d in [&e.expires, &e.review_by].into_iter().flatten() {
                if d.date < today {
                    out.push(Problem {
                        at: d.at.clone(),
                        field: d.field.clone(),
                        message: format!(
                            "{} is in the past (today is {today}); a new entry needs a date from today on",
                            d.date
                        ),
                    });
                }
            }
        }
        out
    }
}
