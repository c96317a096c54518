//! `fw`: a rule set read, and its exposure, one packet's fate, a batch of packets, the lint
//! and the kernel's verification computed, ready for the output crate to render.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use portolan_firewall::analysis::{self, Analysis, Answer, Class, Exposure, SourceSpecError};
use portolan_firewall::dd::Term;
use portolan_firewall::lint::{self, Listener};
use portolan_firewall::model::Packet;
use portolan_firewall::{Family, Format, LoadOptions, Ruleset};
use portolan_model::{AuditReport, FindingTarget, Host, LocalInventory, PortState, SocketState, Transport};

/// Why a firewall command cannot answer. The messages name no flag; the binary adds them.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// More source classes than a row can hold.
    #[error("{given} source classes were asked for; at most {max} can be shown at once")]
    TooManyClasses {
        /// Asked for.
        given: usize,
        /// The most.
        max: usize,
    },
    /// A source class that is not a network or a known name.
    #[error("source class {name}: {source}")]
    BadClass {
        /// As given.
        name: String,
        /// Why.
        source: SourceSpecError,
    },
    /// No table of the packet's family.
    #[error("{file}: no table filters {family} packets")]
    NoTable {
        /// The rule set.
        file: String,
        /// IPv4 or IPv6.
        family: &'static str,
    },
    /// Verification needs root.
    #[error("fw verify makes network namespaces and loads kernel firewall rules: run it as root")]
    NotRoot,
    /// The rule set, or a file beside it, is unusable.
    #[error("{0}")]
    Firewall(#[from] portolan_firewall::Error),
    /// A file could not be read.
    #[error("{0}")]
    Input(#[from] portolan_model::input::TextError),
    /// The scan file of the listeners could not be read.
    #[error("{0}")]
    Import(#[from] portolan_import::Error),
    /// This machine's sockets could not be read.
    #[error("{0}")]
    Local(#[from] portolan_local::Error),
    /// The kernel lab failed.
    #[error("{0}")]
    Verify(#[from] portolan_verify::Error),
}

/// How to read a rule set.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    /// The format; detected when `None`.
    pub format: Option<Format>,
    /// Only this address family.
    pub family: Option<Family>,
    /// An `ipset save` file for the sets the rules name.
    pub ipset: Option<PathBuf>,
}

/// Reads a rule set.
pub fn load(path: &Path, how: &Reading) -> Result<Ruleset, FirewallError> {
    let ipsets = how.ipset.as_deref().map(portolan_firewall::load_ipsets).transpose()?;
    Ok(portolan_firewall::load(path, how.format, &LoadOptions { family: how.family, ipsets })?)
}

/// What `fw show` renders.
pub struct Shown<'r> {
    /// The analysis the rows refer to.
    pub analysis: Analysis<'r>,
    /// Exposure per table and direction.
    pub exposures: Vec<Exposure>,
    /// The source classes of the columns.
    pub classes: Vec<Class>,
}

/// The exposure of a rule set from the standard source classes and `from`, to `dst` (or any)
/// through the interfaces `iif` (or any), by propagation: no decision diagram is built.
pub fn show<'r>(
    rs: &'r Ruleset,
    from: &[String],
    dst: Option<IpAddr>,
    iif: &[String],
) -> Result<Shown<'r>, FirewallError> {
    // the addresses between internet and private (shared, documentation, link-local, ...)
    // are shown where something is accepted from them that the internet column does not
    // already say: first as one class, split only when it tells something
    let special = analysis::special_classes();
    let n_special = special.len();
    if from.len() > 62 - n_special {
        return Err(FirewallError::TooManyClasses { given: from.len(), max: 62 - n_special });
    }
    let from: Vec<Class> = from
        .iter()
        .map(|f| {
            analysis::named_class(f).map_err(|source| FirewallError::BadClass { name: f.clone(), source })
        })
        .collect::<Result<_, _>>()?;
    let with = |middle: Vec<Class>| -> Vec<Class> {
        let mut c = analysis::standard_classes();
        c.extend(middle);
        c.extend(from.iter().cloned());
        c
    };
    let mut analysis = Analysis::outline(&[rs]);
    let (exposures, classes) = if analysis::names_special_sources(rs) {
        let classes = with(special);
        let mut exps = analysis.exposure(&classes, dst, true, iif)?;
        let classes = analysis::keep_telling_classes(&mut exps, classes, 2..2 + n_special);
        (exps, classes)
    } else {
        let classes = with(Vec::new());
        (analysis.exposure(&classes, dst, true, iif)?, classes)
    };
    Ok(Shown { analysis, exposures, classes })
}

/// One packet's fate, walking the chains (no diagram is built; a test holds the answers equal
/// to the diagrams'), after the same check of loops and nesting as every other command.
pub fn query<'r>(
    rs: &'r Ruleset,
    packet: &Packet,
    forward: bool,
) -> Result<(Analysis<'r>, Vec<Answer>), FirewallError> {
    analysis::check_jumps(rs)?;
    let analysis = Analysis::outline(&[rs]);
    let answers = analysis.query_walk(packet, forward);
    if answers.is_empty() {
        let family = if packet.src.is_ipv6() { "IPv6" } else { "IPv4" };
        return Err(FirewallError::NoTable { file: rs.file.clone(), family });
    }
    Ok((analysis, answers))
}

/// A batch of packets (one per line of `file`), answered from the decision diagrams; with
/// the time the answers took.
pub fn query_batch<'r>(rs: &'r Ruleset, file: &Path) -> Result<Batch<'r>, FirewallError> {
    let text = portolan_model::input::read_text(file, portolan_firewall::MAX_RULE_FILE)?;
    let packets = portolan_firewall::model::read_batch(&text, &file.display().to_string())?;
    let analysis = Analysis::new(&[rs])?;
    let t0 = std::time::Instant::now();
    let verdicts = packets.iter().map(|p| analysis.verdict(0, p)).collect();
    Ok(Batch { elapsed: t0.elapsed(), analysis, packets, verdicts })
}

/// The answers of a batch.
pub struct Batch<'r> {
    /// The analysis the verdicts refer to.
    pub analysis: Analysis<'r>,
    /// The packets, in the file's order.
    pub packets: Vec<Packet>,
    /// Each packet's verdict.
    pub verdicts: Vec<Option<Term>>,
    /// The time the answers took.
    pub elapsed: std::time::Duration,
}

/// The listeners of this machine's inventory: listening TCP sockets and bound UDP ones.
pub fn listeners_of_inventory(inv: &LocalInventory) -> Vec<Listener> {
    inv.sockets
        .iter()
        .filter(|s| s.state == SocketState::Listen || s.transport == Transport::Udp)
        .map(|s| Listener { transport: s.transport, port: s.local_port, address: Some(s.local_address) })
        .collect()
}

/// The open ports of scanned hosts as listeners, each (transport, port) once.
pub fn listeners_of_hosts<'a>(hosts: impl IntoIterator<Item = &'a Host>) -> Vec<Listener> {
    let mut open: Vec<(Transport, u16)> = hosts
        .into_iter()
        .flat_map(|h| h.ports.iter())
        .filter(|p| p.state == PortState::Open)
        .map(|p| (p.transport, p.number))
        .collect();
    open.sort();
    open.dedup();
    open.into_iter().map(|(transport, port)| Listener { transport, port, address: None }).collect()
}

/// What `fw lint` joins behind the rules.
pub enum Behind<'a> {
    /// Nothing: the rule set alone.
    Nothing,
    /// This machine's listeners.
    Listeners,
    /// The open ports of a scan file.
    Scan(&'a Path),
}

/// Lints a rule set, with the listeners behind it when asked; `version` is recorded.
pub fn lint(rs: &Ruleset, behind: Behind<'_>, version: &str) -> Result<AuditReport, FirewallError> {
    let (listeners, source) = match behind {
        Behind::Listeners => {
            let inv = portolan_local::inventory(&portolan_local::Options::default())?;
            let source = format!("firewall rule set {} with the listeners of {}", rs.file, inv.machine);
            (Some(listeners_of_inventory(&inv)), source)
        }
        Behind::Scan(x) => {
            let run = portolan_import::read_scan(x)?;
            let source =
                format!("firewall rule set {} with the open ports of {}", rs.file, x.to_string_lossy());
            // every open port, as the scan lists them (not merged: the report lists them all)
            let ls = run
                .hosts
                .iter()
                .flat_map(|h| h.ports.iter())
                .filter(|p| p.state == PortState::Open)
                .map(|p| Listener { transport: p.transport, port: p.number, address: None })
                .collect();
            (Some(ls), source)
        }
        Behind::Nothing => (None, format!("firewall rule set {}", rs.file)),
    };
    let mut analysis = Analysis::outline(&[rs]);
    let findings = lint::lint(&mut analysis, &lint::Options { listeners: listeners.clone() })?;
    let observed = listeners
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|l| FindingTarget { address: l.address, port: Some(l.port), transport: Some(l.transport) })
        .collect();
    let hosts = u32::from(listeners.is_some());
    Ok(crate::audit_report(vec![rs.file.clone()], source, hosts, observed, findings, version))
}

/// Loads the rule set into network namespaces and checks the analysis against the kernel.
pub fn verify(
    rs: &Ruleset,
    file: &Path,
    ipset: Option<&Path>,
    opts: &portolan_verify::Options,
) -> Result<portolan_verify::Report, FirewallError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(FirewallError::NotRoot);
    }
    let read = |p: &Path| portolan_model::input::read_text(p, portolan_firewall::MAX_RULE_FILE);
    let text = read(file)?;
    let ipset_text = ipset.map(read).transpose()?;
    Ok(portolan_verify::run(rs, &text, ipset_text.as_deref(), opts)?)
}
