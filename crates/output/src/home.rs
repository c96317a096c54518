//! `portolan` with no arguments: this machine in one screen — its listeners grouped by reach,
//! with the firewall's and the policy's verdict on each, the findings that matter, what
//! changed since the last saved inventory, and the commands to run next.

use std::io::{self, Write};
use std::net::IpAddr;

use jiff::Timestamp;
use portolan_kb::Reach;
use portolan_model::{Finding, Severity, Transport};

use crate::escape::terminal;
use crate::lookup::severity_style;
use crate::table::{Align, Cell, Style, Table};

/// Listeners shown per reach group; the rest are counted (`portolan ls` lists them all).
pub const SHOWN_PER_GROUP: usize = 12;

/// Findings shown; the rest are counted.
pub const SHOWN_FINDINGS: usize = 8;

/// One listener, with the verdicts known for it.
#[derive(Debug, Clone)]
pub struct Listener {
    /// How far it reaches by its binding.
    pub reach: Reach,
    /// Transport.
    pub transport: Transport,
    /// Bound address.
    pub address: IpAddr,
    /// Port.
    pub port: u16,
    /// Service name (registry).
    pub service: String,
    /// First owner: `name (pid)`.
    pub process: String,
    /// The firewall's verdict for a new connection from the internet (`accept`, `drop`,
    /// `partial` ...), when the rules were read.
    pub firewall: Option<String>,
    /// The policy's verdict (`approved`, `not approved`), when a policy was read.
    pub policy: Option<&'static str>,
    /// The knowledge base's risk at this reach.
    pub risk: Option<Severity>,
}

/// What is known about the firewall.
#[derive(Debug, Clone)]
pub enum FirewallState {
    /// The rules were read from this command.
    Read {
        /// `iptables-save`, `nft -j list ruleset`.
        source: String,
        /// How many rules.
        rules: usize,
    },
    /// No rules are loaded: every packet is accepted.
    NoRules,
    /// The rules cannot be read, and why.
    Unreadable(String),
}

/// What is known about the policy.
#[derive(Debug, Clone)]
pub enum PolicyState {
    /// Judged against this file.
    Judged(String),
    /// No policy at these places.
    Absent(Vec<String>),
    /// The policy cannot be used, and why.
    Broken(String, String),
}

/// What changed since the last saved inventory.
#[derive(Debug, Clone)]
pub enum Changes {
    /// Since this snapshot: lines like `new tcp 0.0.0.0:8080 (python3)`.
    Since {
        /// The snapshot.
        id: i64,
        /// When it was taken.
        taken_at: Timestamp,
        /// One line per change.
        lines: Vec<String>,
    },
    /// Nothing saved yet.
    NoSnapshot,
    /// The store cannot be read, and why.
    Unreadable(String),
}

/// The screen's content.
#[derive(Debug, Clone)]
pub struct Home {
    /// This machine.
    pub machine: String,
    /// When the inventory was taken.
    pub taken_at: Timestamp,
    /// Whether every socket's owner could be seen (root).
    pub privileged: bool,
    /// Every listener.
    pub listeners: Vec<Listener>,
    /// Findings of the knowledge base and the policy, worst first.
    pub findings: Vec<Finding>,
    /// The firewall.
    pub firewall: FirewallState,
    /// The policy.
    pub policy: PolicyState,
    /// The changes.
    pub changes: Changes,
    /// The policy path to suggest when there is none.
    pub policy_suggestion: String,
}

fn group_name(r: Reach) -> &'static str {
    match r {
        Reach::Internet | Reach::AllInterfaces => "Internet-facing (public address or all interfaces)",
        Reach::LocalNetwork => "Local network (one address or device)",
        Reach::Loopback => "Loopback (this machine only)",
    }
}

fn group(r: Reach) -> u8 {
    match r {
        Reach::Internet | Reach::AllInterfaces => 0,
        Reach::LocalNetwork => 1,
        Reach::Loopback => 2,
    }
}

fn ago(t: Timestamp) -> String {
    let s = Timestamp::now().as_second() - t.as_second();
    match s {
        ..=59 => "just now".to_string(),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=172_799 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86400),
    }
}

/// Writes the screen.
pub fn write(out: &mut dyn Write, h: &Home, color: bool) -> io::Result<()> {
    let bold = |s: &str| Style::Bold.paint(s, color);
    writeln!(
        out,
        "{} — this machine's ports, {}{}",
        bold(&terminal(&h.machine)),
        h.taken_at.strftime("%Y-%m-%d %H:%M UTC"),
        if h.privileged { "" } else { " (not root: some owners and the firewall are hidden)" }
    )?;
    writeln!(out)?;
    writeln!(out, "{}", bold(&format!("LISTENING ({})", h.listeners.len())))?;
    for g in 0..3u8 {
        let members: Vec<&Listener> = h.listeners.iter().filter(|l| group(l.reach) == g).collect();
        let name = group_name(match g {
            0 => Reach::AllInterfaces,
            1 => Reach::LocalNetwork,
            _ => Reach::Loopback,
        });
        writeln!(out, "{name}: {}", members.len())?;
        if members.is_empty() {
            continue;
        }
        let mut t =
            Table::new(["  PROTO", "ADDRESS", "PORT", "SERVICE", "PROCESS", "FIREWALL", "POLICY", "RISK"])
                .align(2, Align::Right);
        for l in members.iter().take(SHOWN_PER_GROUP) {
            let fw = l.firewall.clone().unwrap_or_else(|| "-".into());
            let fw_style = match fw.as_str() {
                "accept" | "partial" if g == 0 => Style::Yellow,
                "drop" | "reject" => Style::Green,
                _ => Style::Plain,
            };
            let policy = l.policy.unwrap_or("-");
            t.row(vec![
                Cell::new(format!("  {}", l.transport.as_str())),
                Cell::new(l.address.to_string()),
                Cell::new(l.port.to_string()),
                Cell::new(&l.service),
                Cell::new(&l.process),
                Cell::styled(&fw, fw_style),
                Cell::styled(policy, if policy == "not approved" { Style::Red } else { Style::Plain }),
                match l.risk {
                    Some(r) => Cell::styled(r.as_str(), severity_style(r)),
                    None => Cell::new("-"),
                },
            ]);
        }
        t.render(out, color)?;
        if members.len() > SHOWN_PER_GROUP {
            writeln!(out, "  … and {} more (portolan ls lists them all)", members.len() - SHOWN_PER_GROUP)?;
        }
    }
    writeln!(out)?;
    let worth: Vec<&Finding> = h.findings.iter().filter(|f| f.severity >= Severity::Medium).collect();
    writeln!(
        out,
        "{}",
        bold(&format!("FINDINGS THAT MATTER ({} of {}, medium and above)", worth.len(), h.findings.len()))
    )?;
    if worth.is_empty() {
        writeln!(out, "  none")?;
    }
    for f in worth.iter().take(SHOWN_FINDINGS) {
        writeln!(
            out,
            "  {:<8} {}",
            severity_style(f.severity).paint(f.severity.as_str(), color),
            terminal(&f.title)
        )?;
    }
    if worth.len() > SHOWN_FINDINGS {
        writeln!(out, "  … and {} more (portolan ls; portolan audit)", worth.len() - SHOWN_FINDINGS)?;
    }
    writeln!(out)?;
    let fw_line = match &h.firewall {
        FirewallState::Read { source, rules } => {
            let open = h
                .listeners
                .iter()
                .filter(|l| {
                    group(l.reach) == 0
                        && l.firewall.as_deref().is_some_and(|v| v == "accept" || v == "partial")
                })
                .count();
            format!(
                "{} ({rules} rules): {open} internet-facing listener{} accepted from the internet",
                terminal(source),
                if open == 1 { "" } else { "s" }
            )
        }
        FirewallState::NoRules => {
            "no rules loaded: every listener is reachable wherever its binding reaches".to_string()
        }
        FirewallState::Unreadable(why) => format!("not read: {}", terminal(why)),
    };
    writeln!(out, "{}  {fw_line}", bold("FIREWALL"))?;
    let policy_line = match &h.policy {
        PolicyState::Judged(file) => {
            let n = h.listeners.iter().filter(|l| l.policy == Some("not approved")).count();
            format!("{}: {n} listener{} not approved", terminal(file), if n == 1 { "" } else { "s" })
        }
        PolicyState::Absent(looked) => format!("none (looked for {})", terminal(&looked.join(", "))),
        PolicyState::Broken(file, why) => format!("{} cannot be used: {}", terminal(file), terminal(why)),
    };
    writeln!(out, "{}    {policy_line}", bold("POLICY"))?;
    match &h.changes {
        Changes::Since { id, taken_at, lines } => {
            writeln!(
                out,
                "{}   since snapshot {id} ({}): {}",
                bold("CHANGES"),
                ago(*taken_at),
                if lines.is_empty() { "none".to_string() } else { format!("{}", lines.len()) }
            )?;
            for l in lines.iter().take(SHOWN_FINDINGS) {
                writeln!(out, "  {}", terminal(l))?;
            }
            if lines.len() > SHOWN_FINDINGS {
                writeln!(
                    out,
                    "  … and {} more (portolan ls --save; portolan diff last~1 last)",
                    lines.len() - SHOWN_FINDINGS
                )?;
            }
        }
        Changes::NoSnapshot => writeln!(out, "{}   no saved inventory to compare with", bold("CHANGES"))?,
        Changes::Unreadable(why) => {
            writeln!(out, "{}   the store cannot be read: {}", bold("CHANGES"), terminal(why))?
        }
    }
    writeln!(out)?;
    writeln!(out, "{}", bold("NEXT"))?;
    let mut next: Vec<(String, &str)> = Vec::new();
    if matches!(h.changes, Changes::NoSnapshot) {
        next.push(("portolan ls --save".into(), "record this state, to see what changes"));
    }
    match &h.policy {
        PolicyState::Absent(_) => {
            let path = std::path::Path::new(&h.policy_suggestion);
            let mkdir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() && !d.exists() => {
                    format!("mkdir -p {} && ", d.display())
                }
                _ => String::new(),
            };
            next.push((
                format!("{mkdir}portolan policy init > {}", h.policy_suggestion),
                "approve what listens now, then edit owners and purposes",
            ))
        }
        PolicyState::Judged(file) => {
            next.push((format!("portolan audit --policy {file}"), "every finding, with its policy line"))
        }
        PolicyState::Broken(file, _) => {
            next.push((format!("portolan policy check {file}"), "every problem of the policy"))
        }
    }
    if matches!(h.firewall, FirewallState::Unreadable(_)) && !h.privileged {
        next.push(("sudo portolan".into(), "with the firewall's verdicts and every owner"));
    }
    next.push(("portolan ls".into(), "every socket, with owners and risk (-a: connections too)"));
    next.push(("portolan scan 127.0.0.1 -sV".into(), "what actually answers, and which application"));
    next.push(("portolan report".into(), "the HTML chart of saved scans and inventories"));
    next.push(("portolan --help".into(), "every command"));
    // a long command takes its line alone, its reason below it
    const WIDE: usize = 34;
    let width = next.iter().map(|(c, _)| c.chars().count()).filter(|n| *n <= WIDE).max().unwrap_or(0);
    for (c, why) in &next {
        let n = c.chars().count();
        if n > WIDE {
            writeln!(out, "  {}\n  {}  {why}", terminal(c), " ".repeat(width))?;
        } else {
            writeln!(out, "  {}{}  {why}", terminal(c), " ".repeat(width - n))?;
        }
    }
    Ok(())
}
