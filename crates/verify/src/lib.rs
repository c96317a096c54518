//! `portolan fw verify`: prove the analysis on a real kernel firewall.
//!
//! For each address family, each interface the rules single out (as internet traffic may
//! arrive on it) and a few source addresses per source class, a fresh pair of network
//! namespaces is made: a target with the rule set loaded (`iptables-restore`,
//! `ip6tables-restore`, `nft -j -f`, `ipset restore`) and listeners on the ports under test,
//! and a scanner joined to it by a veth pair. Portolan's scanner (TCP connect) and a UDP echo
//! probe then ask each port, and every observed state is compared with the verdict the
//! analysis computes for the same packet.
//!
//! The rule files name real addresses and interfaces; no packet may leave the namespaces,
//! and the lab uses only 198.18.200.0/24 and 2001:db8:f0::/48. So the rule set is mapped
//! into the lab for each run, keeping every rule's meaning for the two addresses that
//! matter:
//! - the source under test `p` (say 81.2.69.5) becomes the scanner's 198.18.200.3, and the
//!   destination `d` the analysis assumes for this machine becomes the target's
//!   198.18.200.2;
//! - every address literal `A` (a `-s`/`-d` value, an iprange, a set element) is rewritten to
//!   the lab literal that contains 198.18.200.3 exactly when `A` contains `p` and
//!   198.18.200.2 exactly when `A` contains `d`: 198.18.200.2/31 (both), .3/32, .2/32, or
//!   198.18.200.254/32 (neither, an address nobody uses); set elements that contain neither
//!   are dropped. Negations, prefixes and ranges keep their meaning for both packets.
//! - DNAT targets become 198.18.200.250 (a published port is not verified: its packets
//!   leave for another machine);
//! - the target's interface is named as the rules name the interface under test (`eth0`,
//!   `docker0`, ...; `pfwx0` for one no rule names): names are per namespace.
//!
//! Namespaces are named `pfw-v<pid>-<n>-{t,s}`; they are deleted when a run ends (even on
//! error), and leftovers of dead processes are deleted before a run starts.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use portolan_firewall::analysis::{Analysis, Class, View, standard_classes};
use portolan_firewall::dd::{Kind, NONE};

use portolan_firewall::model::{Family, Format, Packet, Ruleset};
use portolan_firewall::sets::{IntervalSet, ip_to_u128};

/// Why a kernel verification could not be done (not a disagreement: that is in the report).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The rule set could not be read or analysed.
    #[error(transparent)]
    Firewall(#[from] portolan_firewall::Error),
    /// A format the kernel does not load.
    #[error(
        "{format} are enforced by their cloud, not by this kernel: verify takes iptables-save or nftables JSON"
    )]
    Unsupported {
        /// The format.
        format: &'static str,
    },
    /// The rule set could not be rewritten into the lab's addresses and interfaces.
    #[error("rewriting the rule set for the lab: {reason}")]
    Rewrite {
        /// What went wrong.
        reason: String,
    },
    /// A command of the lab (ip, iptables-restore, nft) could not run or failed.
    #[error("{what}: {reason}")]
    Command {
        /// The command.
        what: String,
        /// Its failure.
        reason: String,
    },
    /// A namespace could not be entered.
    #[error("network namespace {path}: {reason}")]
    Namespace {
        /// The namespace file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A veth end has no hardware address.
    #[error("no MAC address for {dev} in {ns}")]
    NoMac {
        /// The device.
        dev: String,
        /// The namespace.
        ns: String,
    },
    /// A listener of the lab could not bind its port.
    #[error("listening on {transport}/{port} in the lab: {source}")]
    Listen {
        /// `tcp` or `udp`.
        transport: &'static str,
        /// The port.
        port: u16,
        /// The bind failure.
        source: std::io::Error,
    },
    /// The lab's listeners did not report ready in time.
    #[error("the lab's listeners did not start within 10 s")]
    ListenersSlow,
    /// The connect scan of the lab failed.
    #[error("scanning the lab: {0}")]
    Scan(#[source] portolan_scan::Error),
    /// A UDP probe socket could not be set up.
    #[error("UDP probe socket for port {port}: {source}")]
    ProbeSocket {
        /// The port probed.
        port: u16,
        /// The socket failure.
        source: std::io::Error,
    },
    /// A thread of the lab panicked (a bug).
    #[error("{what} panicked")]
    Panicked {
        /// Which thread.
        what: &'static str,
    },
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// What to check.
#[derive(Debug, Clone)]
pub struct Options {
    /// Ports sampled at random per protocol, besides range boundaries.
    pub samples: usize,
    /// Seed of the sampling.
    pub seed: u64,
    /// Source addresses tested per class at most.
    pub sources_per_class: usize,
    /// Interfaces tested at most.
    pub max_ifaces: usize,
    /// Ports per protocol at most.
    pub max_ports: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options { samples: 24, seed: 1, sources_per_class: 2, max_ifaces: 3, max_ports: 96 }
    }
}

/// One port asked.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// Family.
    pub family: Family,
    /// Interface the packet arrives on (as the rules name it).
    pub iif: String,
    /// Source, as the rules see it.
    pub src: IpAddr,
    /// Protocol (6 or 17).
    pub proto: u8,
    /// Port.
    pub port: u16,
    /// The analysis' verdict.
    pub expected: Kind,
    /// The deciding rule, for people.
    pub rule: String,
    /// What the kernel did.
    pub observed: Kind,
    /// How it showed (`open syn-ack`, `filtered no-response`, `udp echo`, ...).
    pub detail: String,
}

/// The result of a verification.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every port asked.
    pub checks: Vec<Check>,
    /// What was not verified, and why.
    pub skipped: Vec<String>,
    /// Rule sets loaded into a kernel.
    pub loads: usize,
    /// Wall time.
    pub elapsed: Duration,
}

impl Report {
    /// The checks where the kernel and the analysis disagree.
    pub fn disagreements(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.expected != c.observed)
    }
}

const LAB_T4: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 2);
const LAB_S4: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 3);
const LAB_NONE4: &str = "198.18.200.254";
const LAB_NAT4: &str = "198.18.200.250";
const LAB_T6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf0, 0, 0, 0, 0, 2);
const LAB_S6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf0, 0, 0, 0, 0, 3);
const LAB_NONE6: &str = "2001:db8:f0::fe";
const LAB_NAT6: &str = "2001:db8:f0::fa";

/// The lab literal for an address set, given which of (p, d) it contains.
fn lab_literal(v6: bool, has_p: bool, has_d: bool, range: bool) -> String {
    let (t, s, none) = if v6 {
        (LAB_T6.to_string(), LAB_S6.to_string(), LAB_NONE6)
    } else {
        (LAB_T4.to_string(), LAB_S4.to_string(), LAB_NONE4)
    };
    match (has_p, has_d, range) {
        (true, true, false) => format!("{t}/{}", if v6 { 127 } else { 31 }),
        (true, true, true) => format!("{t}-{s}"),
        (true, false, false) => format!("{s}/{}", if v6 { 128 } else { 32 }),
        (true, false, true) => format!("{s}-{s}"),
        (false, true, false) => format!("{t}/{}", if v6 { 128 } else { 32 }),
        (false, true, true) => format!("{t}-{t}"),
        (false, false, false) => format!("{none}/{}", if v6 { 128 } else { 32 }),
        (false, false, true) => format!("{none}-{none}"),
    }
}

/// The source and destination a run maps into the lab.
#[derive(Debug, Clone, Copy)]
struct Mapping {
    p: u128,
    d: u128,
    v6: bool,
}

impl Mapping {
    fn literal(&self, set: &IntervalSet, range: bool) -> String {
        lab_literal(self.v6, set.contains(self.p), set.contains(self.d), range)
    }
}

fn parse_addr_list(s: &str, v6: bool) -> Option<IntervalSet> {
    let mut out = IntervalSet::empty();
    for one in s.split(',') {
        let (a, l) = one.split_once('/').map_or((one, None), |(a, l)| (a, Some(l)));
        let ip: IpAddr = a.parse().ok()?;
        if ip.is_ipv6() != v6 {
            return None;
        }
        let bits = if v6 { 128 } else { 32 };
        let len = match l {
            None => bits,
            Some(l) => match l.parse::<u8>() {
                Ok(n) => n,
                Err(_) => match l.parse::<Ipv4Addr>() {
                    Ok(m) => u32::from(m).leading_ones() as u8,
                    Err(_) => return None,
                },
            },
        };
        out = out.union(&portolan_firewall::sets::prefix(ip, len));
    }
    Some(out)
}

/// Rewrites iptables-save text into the lab.
fn rewrite_iptables(text: &str, m: &Mapping) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let t = line.trim_start();
        if !t.starts_with("-A") {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let Ok(toks) = portolan_firewall::iptables::tokenize(line) else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let mut edits: Vec<(usize, usize, String)> = Vec::new();
        for w in toks.windows(2) {
            let (o, v) = (&w[0], &w[1]);
            match o.text.as_str() {
                "-s" | "--source" | "--src" | "-d" | "--destination" | "--dst" => {
                    if let Some(set) = parse_addr_list(&v.text, m.v6) {
                        edits.push((v.start, v.end, m.literal(&set, false)));
                    }
                }
                "--src-range" | "--dst-range" => {
                    if let Some((a, b)) = v.text.split_once('-')
                        && let (Ok(a), Ok(b)) = (a.parse::<IpAddr>(), b.parse::<IpAddr>())
                    {
                        let set = IntervalSet::range(ip_to_u128(a), ip_to_u128(b));
                        edits.push((v.start, v.end, m.literal(&set, true)));
                    }
                }
                "--to-destination" | "--to-source" => {
                    let nat = if m.v6 { format!("[{LAB_NAT6}]") } else { LAB_NAT4.to_string() };
                    let port = if m.v6 {
                        v.text.rsplit_once("]:").map(|(_, p)| format!(":{p}")).unwrap_or_default()
                    } else {
                        v.text.split_once(':').map(|(_, p)| format!(":{p}")).unwrap_or_default()
                    };
                    let addr = if m.v6 && port.is_empty() { LAB_NAT6.to_string() } else { nat };
                    edits.push((v.start, v.end, format!("{addr}{port}")));
                }
                _ => {}
            }
        }
        let mut l = line.to_string();
        edits.sort_by_key(|e| std::cmp::Reverse(e.0));
        for (a, b, s) in edits {
            l.replace_range(a..b, &s);
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// Rewrites an `ipset save` file into the lab (one-dimension address sets by their exact
/// membership, multi-dimension sets member by member).
fn rewrite_ipsets(text: &str, sets: &portolan_firewall::ipset::IpSets, m: &Mapping) -> String {
    use portolan_firewall::ipset::{Dim, Dir};
    let mut out = String::new();
    let mut done: BTreeSet<String> = BTreeSet::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.first().copied() {
            Some("create") => {
                out.push_str(line);
                out.push('\n');
            }
            Some("add") if w.len() >= 3 => {
                let Some(set) = sets.sets.get(w[1]) else { continue };
                if set.dims == [Dim::Addr] {
                    if done.insert(w[1].to_string())
                        && let Ok(c) = sets.cubes(w[1], &[Dir::Src], 0)
                        && let Some(s) = c.first().and_then(|c| c.src.clone())
                    {
                        let has_p = s.contains(m.p);
                        let has_d = s.contains(m.d);
                        if has_p || has_d {
                            out.push_str(&format!(
                                "add {} {}\n",
                                w[1],
                                lab_literal(m.v6, has_p, has_d, false)
                            ));
                        }
                    }
                    continue;
                }
                if set.dims.first() == Some(&Dim::Addr) {
                    let (addr, rest) = w[2].split_once(',').unwrap_or((w[2], ""));
                    let Some(s) = parse_addr_list(addr, m.v6).or_else(|| {
                        addr.split_once('-').and_then(|(a, b)| {
                            Some(IntervalSet::range(ip_to_u128(a.parse().ok()?), ip_to_u128(b.parse().ok()?)))
                        })
                    }) else {
                        continue;
                    };
                    let has_p = s.contains(m.p);
                    let has_d = s.contains(m.d);
                    if has_p || has_d {
                        let lit = lab_literal(m.v6, has_p, has_d, false);
                        let sep = if rest.is_empty() { "" } else { "," };
                        out.push_str(&format!("add {} {lit}{sep}{rest} {}\n", w[1], w[3..].join(" ")));
                    }
                    continue;
                }
                out.push_str(line);
                out.push('\n');
            }
            _ => {}
        }
    }
    out
}

fn is_addr_field(left: &serde_json::Value) -> bool {
    left.get("payload")
        .and_then(|p| p.get("protocol").and_then(|x| x.as_str()).zip(p.get("field").and_then(|x| x.as_str())))
        .is_some_and(|(p, f)| matches!(p, "ip" | "ip6") && matches!(f, "saddr" | "daddr"))
}

/// The address set an nft JSON value denotes.
fn nft_addr_set(v: &serde_json::Value, v6: bool) -> Option<IntervalSet> {
    use serde_json::Value as V;
    match v {
        V::String(s) => parse_addr_list(s, v6),
        V::Object(o) => {
            if let Some(p) = o.get("prefix") {
                let a = p.get("addr")?.as_str()?;
                let l = p.get("len")?.as_u64()?;
                parse_addr_list(&format!("{a}/{l}"), v6)
            } else if let Some(r) = o.get("range") {
                let r = r.as_array()?;
                let a = nft_addr_set(r.first()?, v6)?.first()?;
                let b = nft_addr_set(r.get(1)?, v6)?.first()?;
                Some(IntervalSet::range(a, b))
            } else if let Some(e) = o.get("elem") {
                nft_addr_set(e.get("val")?, v6)
            } else if let Some(s) = o.get("set") {
                nft_addr_set(s, v6)
            } else {
                None
            }
        }
        V::Array(a) => {
            let mut out = IntervalSet::empty();
            for e in a {
                out = out.union(&nft_addr_set(e, v6)?);
            }
            Some(out)
        }
        _ => None,
    }
}

fn nft_lab_value(set: &IntervalSet, m: &Mapping) -> serde_json::Value {
    let lit = m.literal(set, false);
    let (a, l) = lit.split_once('/').unwrap_or((&lit, "32"));
    serde_json::json!({"prefix": {"addr": a, "len": l.parse::<u8>().unwrap_or(32)}})
}

/// Rewrites nftables JSON into the lab.
fn rewrite_nft(text: &str, m: &Mapping) -> Result<String> {
    use serde_json::Value as V;
    let mut doc: V = serde_json::from_str(text)
        .map_err(|e| Error::Rewrite { reason: format!("cannot re-read the JSON: {e}") })?;
    let v6 = m.v6;
    // named sets used with addresses: which family each is
    let Some(items) = doc.get_mut("nftables").and_then(V::as_array_mut) else {
        return Err(Error::Rewrite { reason: "no nftables array".into() });
    };
    for it in items.iter_mut() {
        if let Some(set) = it.get_mut("set") {
            let ty = set.get("type").cloned().unwrap_or(V::Null);
            let types: Vec<String> = match &ty {
                V::String(s) => vec![s.clone()],
                V::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
                _ => Vec::new(),
            };
            let addr_pos: Vec<(usize, bool)> = types
                .iter()
                .enumerate()
                .filter_map(|(i, t)| match t.as_str() {
                    "ipv4_addr" => Some((i, false)),
                    "ipv6_addr" => Some((i, true)),
                    _ => None,
                })
                .collect();
            if addr_pos.is_empty() {
                continue;
            }
            let Some(elems) = set.get_mut("elem").and_then(V::as_array_mut) else { continue };
            if types.len() == 1 {
                let fam_v6 = addr_pos[0].1;
                let mm = Mapping { v6: fam_v6, ..*m };
                let union = nft_addr_set(&V::Array(elems.clone()), fam_v6).unwrap_or_default();
                let has = fam_v6 == v6 && (union.contains(mm.p) || union.contains(mm.d));
                *elems = if has {
                    vec![nft_lab_value(&union, &mm)]
                } else {
                    vec![nft_lab_value(&IntervalSet::empty(), &mm)]
                };
            } else {
                let mut kept: Vec<V> = Vec::new();
                for e in elems.iter() {
                    let val = e.get("elem").and_then(|x| x.get("val")).unwrap_or(e);
                    let Some(parts) = val.get("concat").and_then(V::as_array) else { continue };
                    let mut parts = parts.clone();
                    let mut keep = true;
                    for &(i, fam_v6) in &addr_pos {
                        let mm = Mapping { v6: fam_v6, ..*m };
                        let Some(s) = parts.get(i).and_then(|x| nft_addr_set(x, fam_v6)) else { continue };
                        if fam_v6 != v6 || !(s.contains(mm.p) || s.contains(mm.d)) {
                            keep = false;
                        } else {
                            parts[i] = nft_lab_value(&s, &mm);
                        }
                    }
                    let nv = serde_json::json!({"concat": parts});
                    if keep && !kept.contains(&nv) {
                        kept.push(nv);
                    }
                }
                *elems = kept;
                if elems.is_empty() {
                    // an empty set is valid without its elem list
                    if let Some(o) = set.as_object_mut() {
                        o.remove("elem");
                    }
                }
            }
        }
        if let Some(rule) = it.get_mut("rule")
            && let Some(exprs) = rule.get_mut("expr").and_then(V::as_array_mut)
        {
            for e in exprs.iter_mut() {
                if let Some(mt) = e.get_mut("match") {
                    let is_addr = mt.get("left").is_some_and(is_addr_field);
                    if is_addr
                        && let Some(right) = mt.get_mut("right")
                        && !right.as_str().is_some_and(|s| s.starts_with('@'))
                        && let Some(set) = nft_addr_set(right, v6)
                    {
                        *right = nft_lab_value(&set, m);
                    }
                }
                if let Some(d) = e.get_mut("dnat")
                    && let Some(o) = d.as_object_mut()
                    && o.contains_key("addr")
                {
                    let is6 = o.get("addr").and_then(V::as_str).is_some_and(|a| a.contains(':'));
                    o.insert("addr".into(), V::String(if is6 { LAB_NAT6 } else { LAB_NAT4 }.into()));
                }
            }
        }
    }
    serde_json::to_string(&doc).map_err(|e| Error::Rewrite { reason: e.to_string() })
}

fn run_cmd(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Command { what: what.to_string(), reason: format!("cannot run: {e}") })?;
    if !out.status.success() {
        return Err(Error::Command {
            what: what.to_string(),
            reason: format!("failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        });
    }
    Ok(())
}

fn run_with_input(ns: &str, prog: &[&str], input: &str, what: &str) -> Result<()> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(prog)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Command {
            what: what.to_string(),
            reason: format!("cannot run {}: {e}", prog[0]),
        })?;
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Command { what: what.to_string(), reason: e.to_string() })?;
    if !out.status.success() {
        return Err(Error::Command {
            what: what.to_string(),
            reason: format!("failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        });
    }
    Ok(())
}

/// Deletes namespaces left by verify runs of processes that no longer exist.
pub fn remove_leftovers() {
    let Ok(dir) = std::fs::read_dir("/var/run/netns") else { return };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("pfw-v") else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", &name]).stderr(Stdio::null()).status();
        }
    }
}

/// A target and a scanner namespace joined by a veth pair; deleted on drop.
struct Lab {
    t: String,
    s: String,
}

static LAB_COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Lab {
    fn up(iface: &str, v6: bool) -> Result<Lab> {
        let n = LAB_COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let lab = Lab { t: format!("pfw-v{pid}-{n}-t"), s: format!("pfw-v{pid}-{n}-s") };
        run_cmd(Command::new("ip").args(["netns", "add", &lab.t]), "ip netns add")?;
        run_cmd(Command::new("ip").args(["netns", "add", &lab.s]), "ip netns add")?;
        let (a, b) = (format!("pfwt{pid}x{n}"), format!("pfws{pid}x{n}"));
        let (a, b) = (a.chars().take(15).collect::<String>(), b.chars().take(15).collect::<String>());
        run_cmd(
            Command::new("ip").args([
                "link", "add", &a, "netns", &lab.t, "type", "veth", "peer", "name", &b, "netns", &lab.s,
            ]),
            "ip link add veth",
        )?;
        run_cmd(
            Command::new("ip").args(["-n", &lab.t, "link", "set", &a, "name", iface]),
            "renaming the target interface",
        )?;
        for (ns, dev) in [(&lab.t, iface), (&lab.s, b.as_str())] {
            run_cmd(Command::new("ip").args(["-n", ns, "link", "set", "lo", "up"]), "ip link set lo up")?;
            run_cmd(Command::new("ip").args(["-n", ns, "link", "set", dev, "up"]), "ip link set up")?;
        }
        let (ta, sa) = if v6 {
            (format!("{LAB_T6}/64"), format!("{LAB_S6}/64"))
        } else {
            (format!("{LAB_T4}/24"), format!("{LAB_S4}/24"))
        };
        let mut extra: Vec<&str> = Vec::new();
        if v6 {
            extra.push("nodad");
        }
        run_cmd(
            Command::new("ip").args(["-n", &lab.t, "addr", "add", &ta, "dev", iface]).args(&extra),
            "ip addr add",
        )?;
        run_cmd(
            Command::new("ip").args(["-n", &lab.s, "addr", "add", &sa, "dev", &b]).args(&extra),
            "ip addr add",
        )?;
        // static neighbours: the rule set under test may block ARP's IPv6 counterpart
        // (neighbour discovery), which is not what is being verified
        let (mac_t, mac_s) = (mac(&lab.t, iface)?, mac(&lab.s, &b)?);
        let (t_ip, s_ip) = if v6 {
            (LAB_T6.to_string(), LAB_S6.to_string())
        } else {
            (LAB_T4.to_string(), LAB_S4.to_string())
        };
        run_cmd(
            Command::new("ip").args([
                "-n",
                &lab.t,
                "neigh",
                "replace",
                &s_ip,
                "lladdr",
                &mac_s,
                "dev",
                iface,
                "nud",
                "permanent",
            ]),
            "ip neigh replace",
        )?;
        run_cmd(
            Command::new("ip").args([
                "-n",
                &lab.s,
                "neigh",
                "replace",
                &t_ip,
                "lladdr",
                &mac_t,
                "dev",
                &b,
                "nud",
                "permanent",
            ]),
            "ip neigh replace",
        )?;
        // rejects must not be rate limited, or a reject looks like a drop
        for key in [
            "net.ipv4.icmp_ratelimit=0",
            "net.ipv6.icmp.ratelimit=0",
            "net.ipv4.icmp_msgs_per_sec=100000",
            "net.ipv4.icmp_msgs_burst=100000",
        ] {
            let _ = Command::new("ip")
                .args(["netns", "exec", &lab.t, "sysctl", "-q", "-w", key])
                .stderr(Stdio::null())
                .status();
        }
        Ok(lab)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.t, &self.s] {
            let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
        }
    }
}

/// The MAC address of an interface in a namespace.
fn mac(ns: &str, dev: &str) -> Result<String> {
    let out = Command::new("ip")
        .args(["-n", ns, "-o", "link", "show", "dev", dev])
        .output()
        .map_err(|e| Error::Command { what: "ip link show".into(), reason: e.to_string() })?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .map(str::to_string)
        .ok_or_else(|| Error::NoMac { dev: dev.to_string(), ns: ns.to_string() })
}

/// Runs `f` on a thread inside a network namespace.
fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<std::thread::JoinHandle<Result<T>>> {
    let path = format!("/var/run/netns/{ns}");
    Ok(std::thread::spawn(move || {
        let file = std::fs::File::open(&path)
            .map_err(|e| Error::Namespace { path: path.to_string(), reason: e.to_string() })?;
        // SAFETY: setns on a valid namespace descriptor; affects only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(Error::Namespace {
                path: path.to_string(),
                reason: format!("setns: {}", std::io::Error::last_os_error()),
            });
        }
        Ok(f())
    }))
}

/// Listeners on the ports under test, serving until `stop`.
fn listen(
    ns: &str,
    v6: bool,
    tcp: Vec<u16>,
    udp: Vec<u16>,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<Result<Result<()>>>> {
    let (tx, rx) =
        std::sync::mpsc::channel::<std::result::Result<(), (&'static str, u16, std::io::ErrorKind)>>();
    let h = in_netns(ns, move || {
        let any: IpAddr =
            if v6 { IpAddr::V6(Ipv6Addr::UNSPECIFIED) } else { IpAddr::V4(Ipv4Addr::UNSPECIFIED) };
        let mut tl = Vec::new();
        let mut ul = Vec::new();
        for p in &tcp {
            match TcpListener::bind(SocketAddr::new(any, *p)) {
                Ok(l) => {
                    let _ = l.set_nonblocking(true);
                    tl.push(l);
                }
                Err(e) => {
                    let _ = tx.send(Err(("tcp", *p, e.kind())));
                    return Err(Error::Listen { transport: "tcp", port: *p, source: e });
                }
            }
        }
        for p in &udp {
            match UdpSocket::bind(SocketAddr::new(any, *p)) {
                Ok(s) => {
                    let _ = s.set_nonblocking(true);
                    ul.push(s);
                }
                Err(e) => {
                    let _ = tx.send(Err(("udp", *p, e.kind())));
                    return Err(Error::Listen { transport: "udp", port: *p, source: e });
                }
            }
        }
        let _ = tx.send(Ok(()));
        let mut fds: Vec<libc::pollfd> = tl
            .iter()
            .map(|l| l.as_raw_fd())
            .chain(ul.iter().map(|u| u.as_raw_fd()))
            .map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 })
            .collect();
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::SeqCst) {
            // SAFETY: fds is a valid array of pollfd.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50) };
            if n <= 0 {
                continue;
            }
            for (i, f) in fds.iter_mut().enumerate() {
                if f.revents == 0 {
                    continue;
                }
                f.revents = 0;
                if i < tl.len() {
                    while let Ok((c, _)) = tl[i].accept() {
                        drop(c);
                    }
                } else {
                    let u = &ul[i - tl.len()];
                    while let Ok((n, from)) = u.recv_from(&mut buf) {
                        let _ = u.send_to(&buf[..n], from);
                    }
                }
            }
        }
        Ok(())
    })?;
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => Ok(h),
        Ok(Err((transport, port, kind))) => Err(Error::Listen { transport, port, source: kind.into() }),
        Err(_) => Err(Error::ListenersSlow),
    }
}

/// Observed verdicts for TCP ports (Portolan's connect scan) and UDP ports (echo probes).
fn probe(ns: &str, target: IpAddr, tcp: Vec<u16>, udp: Vec<u16>) -> Result<Vec<(u8, u16, Kind, String)>> {
    let h = in_netns(ns, move || -> Result<Vec<(u8, u16, Kind, String)>> {
        let mut out = Vec::new();
        if !tcp.is_empty() {
            let targets = portolan_scan::targets::parse_list([target.to_string().as_str()], false)
                .map_err(Error::Scan)?;
            let mut timing = portolan_scan::Timing::template(4);
            timing.initial_rtt = Duration::from_millis(250);
            timing.max_rtt = Duration::from_millis(300);
            timing.min_rtt = Duration::from_millis(100);
            timing.max_retries = 2;
            timing.host_timeout = Some(Duration::from_secs(60));
            let cfg = portolan_scan::Config {
                probe: portolan_scan::Probe::Connect,
                shard: None,
                targets,
                ports: tcp,
                udp_ports: Vec::new(),
                ping_only: false,
                timing,
                skip_discovery: true,
                seed: Some(7),
                group_size: 1,
                report_down: true,
                service_names: None,
                workers: Some(1),
                done: None,
                link_addresses: false,
            };
            struct Collect(Vec<portolan_model::Host>);
            impl portolan_scan::Observer for Collect {
                fn host(&mut self, h: portolan_model::Host) {
                    self.0.push(h);
                }
            }
            let mut c = Collect(Vec::new());
            portolan_scan::engine::run(&cfg, Arc::new(AtomicBool::new(false)), &mut c)
                .map_err(Error::Scan)?;
            for h in c.0 {
                for p in h.ports {
                    use portolan_model::{PortState, Reason};
                    let kind = match (p.state, &p.reason) {
                        (PortState::Open, _) => Kind::Accept,
                        (PortState::Closed, _) => Kind::Reject,
                        (_, Reason::NoResponse) => Kind::Drop,
                        _ => Kind::Reject,
                    };
                    out.push((6, p.number, kind, format!("{} {}", p.state.as_str(), p.reason.as_str())));
                }
            }
        }
        // UDP: an echo means accepted, an ICMP error rejected, silence dropped
        let any: IpAddr = if target.is_ipv6() {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        let mut socks = Vec::new();
        for p in &udp {
            let sock_err = |source| Error::ProbeSocket { port: *p, source };
            let s = UdpSocket::bind(SocketAddr::new(any, 0)).map_err(sock_err)?;
            s.connect(SocketAddr::new(target, *p)).map_err(sock_err)?;
            s.set_nonblocking(true).map_err(sock_err)?;
            socks.push((*p, s, None::<(Kind, String)>));
        }
        let mut buf = [0u8; 64];
        for _round in 0..2 {
            for (_, s, r) in socks.iter_mut() {
                if r.is_none() {
                    let _ = s.send(b"portolan-fw-verify");
                }
            }
            let deadline = Instant::now() + Duration::from_millis(300);
            while Instant::now() < deadline && socks.iter().any(|x| x.2.is_none()) {
                for (_, s, r) in socks.iter_mut() {
                    if r.is_some() {
                        continue;
                    }
                    match s.recv(&mut buf) {
                        Ok(_) => *r = Some((Kind::Accept, "udp echo".into())),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => *r = Some((Kind::Reject, format!("udp {e}"))),
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        for (p, _, r) in socks {
            let (k, d) = r.unwrap_or((Kind::Drop, "udp no reply".into()));
            out.push((17, p, k, d));
        }
        Ok(out)
    })?;
    match h.join() {
        Ok(Ok(Ok(v))) => Ok(v),
        Ok(Ok(Err(e))) => Err(e),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Error::Panicked { what: "the probing thread" }),
    }
}

fn pick_ports(rows: &[(u8, (u16, u16), bool)], proto: u8, opts: &Options, seed: u64) -> Vec<u16> {
    let mut interesting: BTreeSet<u16> = BTreeSet::new();
    let mut plain: BTreeSet<u16> = BTreeSet::new();
    for &(p, (lo, hi), accepts) in rows {
        if p != proto {
            continue;
        }
        let set = if accepts { &mut interesting } else { &mut plain };
        set.insert(lo);
        set.insert(hi);
        if hi > lo + 1 {
            set.insert(lo + (hi - lo) / 2);
        }
    }
    let mut rng = seed ^ u64::from(proto).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for _ in 0..opts.samples {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        plain.insert((rng % 65535) as u16 + 1);
    }
    interesting.remove(&0);
    plain.remove(&0);
    let mut out: Vec<u16> = interesting.iter().copied().take(opts.max_ports).collect();
    let room = opts.max_ports.saturating_sub(out.len());
    let rest: Vec<u16> = plain.into_iter().filter(|p| !interesting.contains(p)).collect();
    if rest.len() <= room {
        out.extend(rest);
    } else if room > 0 {
        let step = rest.len() as f64 / room as f64;
        for i in 0..room {
            out.push(rest[(i as f64 * step) as usize]);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Representative sources of a class: one interior address of the whole class and of each
/// part of it that some row treats differently.
fn pick_sources(
    analysis: &mut Analysis,
    f: Family,
    classes: &[Class],
    per_class: usize,
) -> Result<Vec<IpAddr>> {
    let exps = analysis.exposure(classes, None, false, &[])?;
    let mut out: Vec<IpAddr> = Vec::new();
    for (ci, c) in classes.iter().enumerate() {
        let whole = if f.is_v6() { &c.v6 } else { &c.v4 };
        let mut parts: Vec<IntervalSet> = Vec::new();
        for e in exps.iter().filter(|e| e.family == f && e.view == View::Input) {
            for r in &e.rows {
                for (_, s) in r.classes[ci].all() {
                    let s: &IntervalSet = s;
                    if s != whole && !parts.contains(s) {
                        parts.push(s.clone());
                    }
                }
            }
        }
        parts.sort_by_key(IntervalSet::count);
        let mut picks: Vec<u128> = Vec::new();
        let interior =
            |s: &IntervalSet| s.intervals().first().map(|&(a, b)| if b > a + 1 { a + 1 } else { a });
        // an address in no smaller part (the class at large), then the smallest parts
        let mut rest = whole.clone();
        for p in &parts {
            rest = rest.without(p);
        }
        if let Some(x) = interior(&rest).or_else(|| interior(whole)) {
            picks.push(x);
        }
        for p in &parts {
            if picks.len() >= per_class {
                break;
            }
            if let Some(x) = interior(p)
                && !picks.contains(&x)
            {
                picks.push(x);
            }
        }
        out.extend(picks.into_iter().map(|x| portolan_firewall::sets::u128_to_ip(x, f.is_v6())));
    }
    Ok(out)
}

/// One lab run: an interface, a source, and the verdicts the analysis expects.
struct Job {
    iface: String,
    p: IpAddr,
    m: Mapping,
    want: Vec<(u8, u16, Kind, String)>,
}

fn run_job(
    job: &Job,
    rs: &Ruleset,
    text: &str,
    ipset_text: Option<&str>,
    ipsets: Option<&portolan_firewall::ipset::IpSets>,
    f: Family,
) -> Result<Vec<Check>> {
    let v6 = f.is_v6();
    let m = &job.m;
    let lab = Lab::up(&job.iface, v6)?;
    // load the rule set, mapped into the lab
    if let (Some(sets), Some(t)) = (ipsets, ipset_text) {
        run_with_input(
            &lab.t,
            &["ipset", "restore", "-exist"],
            &rewrite_ipsets(t, sets, m),
            "ipset restore",
        )?;
    }
    match rs.format {
        Format::Iptables => {
            let prog = if v6 { "ip6tables-restore" } else { "iptables-restore" };
            run_with_input(&lab.t, &[prog], &rewrite_iptables(text, m), prog)?;
        }
        Format::NftJson => {
            run_with_input(&lab.t, &["nft", "-j", "-f", "-"], &rewrite_nft(text, m)?, "nft -j -f")?
        }
        Format::Aws => {}
    }
    let stop = Arc::new(AtomicBool::new(false));
    let wt: Vec<u16> = job.want.iter().filter(|w| w.0 == 6).map(|w| w.1).collect();
    let wu: Vec<u16> = job.want.iter().filter(|w| w.0 == 17).map(|w| w.1).collect();
    let listener = listen(&lab.t, v6, wt.clone(), wu.clone(), Arc::clone(&stop))?;
    let target = if v6 { IpAddr::V6(LAB_T6) } else { IpAddr::V4(LAB_T4) };
    let observed = probe(&lab.s, target, wt, wu);
    stop.store(true, Ordering::SeqCst);
    let _ = listener.join();
    let observed = observed?;
    let mut out = Vec::new();
    for (proto, port, kind, rule) in &job.want {
        let (ok, detail) = observed
            .iter()
            .find(|o| o.0 == *proto && o.1 == *port)
            .map_or((Kind::Continue, "not observed".to_string()), |o| (o.2, o.3.clone()));
        out.push(Check {
            family: f,
            iif: job.iface.clone(),
            src: job.p,
            proto: *proto,
            port: *port,
            expected: *kind,
            rule: rule.clone(),
            observed: ok,
            detail,
        });
    }
    drop(lab);
    Ok(out)
}

/// Verifies a rule set on the kernel. `text` is the file's content and `ipset_text` the
/// `ipset save` file (iptables with `-m set`).
pub fn run(rs: &Ruleset, text: &str, ipset_text: Option<&str>, opts: &Options) -> Result<Report> {
    let t0 = Instant::now();
    if rs.format == Format::Aws {
        return Err(Error::Unsupported { format: "AWS security groups" });
    }
    remove_leftovers();
    let mut analysis = Analysis::new(&[rs])?;
    let ipsets = match ipset_text {
        Some(t) => Some(portolan_firewall::ipset::parse(t, "ipset")?),
        None => None,
    };
    let classes = standard_classes();
    let mut report = Report::default();
    for f in Family::BOTH {
        if analysis.scopes.first().and_then(|s| s.fams[f as usize].as_ref()).is_none() {
            continue;
        }
        let v6 = f.is_v6();
        let d: IpAddr = if v6 {
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))
        } else {
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))
        };
        // ports: every row's boundaries, the accepted rows first, and samples
        let exps = analysis.exposure(&classes, None, false, &[])?;
        let mut rows: Vec<(u8, (u16, u16), bool)> = Vec::new();
        for e in exps.iter().filter(|e| e.family == f && e.view == View::Input) {
            for r in &e.rows {
                if let Some(p) = r.ports {
                    rows.push((r.proto.0, p, r.classes.iter().any(|o| o.any_accept())));
                }
            }
        }
        let tcp = pick_ports(&rows, 6, opts, opts.seed);
        let udp = pick_ports(&rows, 17, opts, opts.seed);
        let sources = pick_sources(&mut analysis, f, &classes, opts.sources_per_class)?;
        let atoms: Vec<u128> = analysis
            .ifaces
            .external(&[])
            .intervals()
            .iter()
            .flat_map(|&(a, b)| a..=b)
            .take(opts.max_ifaces)
            .collect();
        let mut jobs: Vec<Job> = Vec::new();
        for atom in atoms {
            let iface = analysis.ifaces.sample_name(atom);
            for &p in &sources {
                let m = Mapping { p: ip_to_u128(p), d: ip_to_u128(d), v6 };
                // expected verdicts; translated ports are not verified here
                let mut want: Vec<(u8, u16, Kind, String)> = Vec::new();
                for (proto, ports) in [(6u8, &tcp), (17u8, &udp)] {
                    for &port in ports.iter() {
                        let pkt = Packet {
                            src: p,
                            dst: d,
                            proto,
                            dport: port,
                            sport: 40000,
                            iif: Some(iface.clone()),
                            oif: None,
                        };
                        let Some(ans) = analysis.query(&pkt, false).into_iter().next() else { continue };
                        if ans.via.is_some() {
                            report.skipped.push(format!(
                                "{} {port}/{} from {p} on {iface}: translated by {} (its packets leave for another machine)",
                                f.as_str(),
                                portolan_firewall::model::proto_name(proto),
                                ans.via.map(|r| analysis.describe(r)).unwrap_or_default()
                            ));
                            continue;
                        }
                        let rule = ans.rule.map_or("no chain".to_string(), |r| analysis.describe(r));
                        want.push((proto, port, ans.kind, rule));
                    }
                }
                jobs.push(Job { iface: iface.clone(), p, m, want });
            }
        }
        // the labs are independent: run a few at a time
        for chunk in jobs.chunks(4) {
            let results: Vec<Result<Vec<Check>>> = std::thread::scope(|sc| {
                let hs: Vec<_> = chunk
                    .iter()
                    .map(|job| sc.spawn(|| run_job(job, rs, text, ipset_text, ipsets.as_ref(), f)))
                    .collect();
                hs.into_iter()
                    .map(|h| h.join().unwrap_or(Err(Error::Panicked { what: "a lab thread" })))
                    .collect()
            });
            for r in results {
                report.checks.extend(r?);
                report.loads += 1;
            }
        }
    }
    let _ = NONE;
    report.elapsed = t0.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn literals_keep_membership() {
        let m = Mapping {
            p: ip_to_u128("81.2.69.5".parse().unwrap()),
            d: ip_to_u128("192.0.2.1".parse().unwrap()),
            v6: false,
        };
        let text = "*filter\n:INPUT DROP [0:0]\n-A INPUT -s 81.2.69.0/24 -d 192.0.2.0/24 -j ACCEPT\n-A INPUT ! -s 10.0.0.0/8 -j DROP\n-A INPUT -m iprange --src-range 81.2.69.1-81.2.69.9 -j ACCEPT\nCOMMIT\n";
        let out = rewrite_iptables(text, &m);
        assert!(out.contains("-A INPUT -s 198.18.200.3/32 -d 198.18.200.2/32 -j ACCEPT"), "{out}");
        assert!(out.contains("! -s 198.18.200.254/32 -j DROP"), "{out}");
        assert!(out.contains("--src-range 198.18.200.3-198.18.200.3"), "{out}");
        let both = Mapping { p: 5, d: 6, v6: false };
        assert_eq!(both.literal(&IntervalSet::range(0, 10), false), "198.18.200.2/31");
    }
}
