//! Portolan's local source: every TCP and UDP socket on this machine, who holds it, who can
//! reach it, and whether it should worry anyone.
//!
//! - Sockets come from `NETLINK_SOCK_DIAG` ([`diag`]) with the kernel's state filter set
//!   exactly (listeners only unless connections are asked for), falling back to `/proc/net/*`
//!   ([`procnet`]) only when sock_diag is unavailable.
//! - Owners come from a parallel `/proc/*/fd` scan ([`owners`]); a socket whose owner cannot be
//!   seen is kept and marked, never dropped.
//! - Other network namespaces ([`netns`]) are entered on a helper thread with `setns`.
//! - Each socket is judged ([`judge`]): bind scope, dual-stack, IPv4-mapped, SO_REUSEPORT
//!   groups, probable UDP clients, registry service, knowledge-base risk weighted by scope.
//!
//! ```no_run
//! let inv = portolan_local::inventory(&portolan_local::Options::default()).unwrap();
//! for s in &inv.sockets {
//!     println!("{} {}:{} owners={}", s.transport, s.local_address, s.local_port, s.owners.len());
//! }
//! ```

pub mod diag;
mod error;
pub mod judge;
pub mod netns;
pub mod owners;
pub mod procnet;
mod sys;

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use portolan_model::{LocalInventory, Netns, Transport};

pub use error::{Error, Result};

use crate::diag::{Diag, RawSocket, mask, state};

/// What to list. The default is every TCP and UDP listener, IPv4 and IPv6, with owners, in
/// Portolan's own network namespace.
#[derive(Debug, Clone)]
pub struct Options {
    /// TCP sockets.
    pub tcp: bool,
    /// UDP sockets.
    pub udp: bool,
    /// IPv4.
    pub ipv4: bool,
    /// IPv6.
    pub ipv6: bool,
    /// Listening sockets (TCP LISTEN, unconnected UDP).
    pub listening: bool,
    /// Connections (every other state).
    pub connected: bool,
    /// TCP sockets that are bound but never listened (kernel 6.x).
    pub bound_inactive: bool,
    /// Find owning processes.
    pub processes: bool,
    /// Every network namespace, not only Portolan's own.
    pub all_netns: bool,
    /// Only these local ports (empty: all).
    pub ports: Vec<u16>,
    /// Only sockets with an owner whose name or command line contains this.
    pub process: Option<String>,
    /// Read `/proc/net/*` even when sock_diag works (for tests of the fallback).
    pub force_procfs: bool,
    /// Worker threads for the owner scan (default: the CPUs available).
    pub threads: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tcp: true,
            udp: true,
            ipv4: true,
            ipv6: true,
            listening: true,
            connected: false,
            bound_inactive: false,
            processes: true,
            all_netns: false,
            ports: Vec::new(),
            process: None,
            force_procfs: false,
            threads: None,
        }
    }
}

impl Options {
    fn tcp_states(&self) -> u32 {
        if !self.tcp {
            return 0;
        }
        let mut m = 0;
        if self.listening {
            m |= mask(state::LISTEN);
        }
        if self.connected {
            m |= diag::ALL_CONNECTION_STATES & !mask(state::LISTEN);
        }
        if self.bound_inactive {
            m |= mask(state::BOUND_INACTIVE);
        }
        m
    }

    fn udp_states(&self) -> u32 {
        if !self.udp {
            return 0;
        }
        let mut m = 0;
        if self.listening {
            m |= mask(state::CLOSE);
        }
        if self.connected {
            m |= mask(state::ESTABLISHED);
        }
        m
    }
}

/// Sockets of one namespace, with the device names of that namespace.
struct NsDump {
    ns: Netns,
    sockets: Vec<RawSocket>,
    devices: HashMap<u32, String>,
    source: &'static str,
}

fn dump_here(opts: &Options) -> Result<(Vec<RawSocket>, HashMap<u32, String>, &'static str)> {
    let (tcp, udp) = (opts.tcp_states(), opts.udp_states());
    let mut out = Vec::new();
    let diag = if opts.force_procfs { None } else { Diag::open().ok() };
    let source = match diag {
        Some(mut d) => {
            for (transport, states) in [(Transport::Tcp, tcp), (Transport::Udp, udp)] {
                if states == 0 {
                    continue;
                }
                for ipv6 in [false, true] {
                    if (ipv6 && opts.ipv6) || (!ipv6 && opts.ipv4) {
                        d.dump(transport, ipv6, states, &mut out)?;
                    }
                }
            }
            "sock_diag"
        }
        None => {
            procnet::read(tcp & !mask(state::BOUND_INACTIVE), udp, opts.ipv4, opts.ipv6, &mut out)?;
            "procfs"
        }
    };
    let mut devices = HashMap::new();
    for s in &out {
        if s.ifindex != 0 && !devices.contains_key(&s.ifindex) {
            let name = sys::if_name(s.ifindex).unwrap_or_else(|| format!("if{}", s.ifindex));
            devices.insert(s.ifindex, name);
        }
    }
    Ok((out, devices, source))
}

/// Whether this process can see every process's fds (root or CAP_SYS_PTRACE).
pub fn privileged() -> bool {
    sys::geteuid() == 0 || sys::has_capability(19)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Takes the inventory.
pub fn inventory(opts: &Options) -> Result<LocalInventory> {
    let taken_at = Timestamp::now();
    let current = netns::current_inode()?;
    let mut notes = Vec::new();
    let mut dumps: Vec<NsDump> = Vec::new();
    let (sockets, devices, source) = dump_here(opts)?;
    dumps.push(NsDump {
        ns: Netns { inode: current, name: "host".into(), current: true },
        sockets,
        devices,
        source,
    });
    if opts.all_netns {
        for ns in netns::enumerate()? {
            if ns.current {
                dumps[0].ns.name = ns.name.clone();
                continue;
            }
            match netns::run_in(&ns.path, || dump_here(opts)) {
                Ok((sockets, devices, source)) => dumps.push(NsDump {
                    ns: Netns { inode: ns.inode, name: ns.name.clone(), current: false },
                    sockets,
                    devices,
                    source,
                }),
                Err(e) => notes.push(format!("network namespace {} not listed: {e}", ns.name)),
            }
        }
    }
    let socket_source = dumps[0].source.to_string();

    let holders = if opts.processes {
        let mut wanted = owners::InodeSet::default();
        for d in &dumps {
            wanted.extend(d.sockets.iter().map(|s| s.inode).filter(|&i| i != 0));
        }
        let threads =
            opts.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        Some(owners::scan(&wanted, threads))
    } else {
        None
    };
    let pids: HashSet<u32> =
        holders.iter().flat_map(|h| h.by_inode.values().flatten().map(|&(pid, _)| pid)).collect();
    let infos = owners::proc_infos(pids);
    let users = judge::Users::load();
    let local_range = judge::local_port_range();

    let mut out = Vec::new();
    let mut namespaces = Vec::new();
    for d in dumps {
        namespaces.push(d.ns.clone());
        let ctx = judge::Context {
            netns: d.ns.inode,
            devices: &d.devices,
            holders: holders.as_ref(),
            infos: &infos,
            users: &users,
            local_range,
        };
        out.extend(judge::judge_all(&d.sockets, &ctx));
    }
    if !opts.ports.is_empty() {
        out.retain(|s| opts.ports.contains(&s.local_port));
    }
    if let Some(p) = &opts.process {
        out.retain(|s| {
            s.owners.iter().any(|o| o.comm.contains(p.as_str()) || o.cmdline.contains(p.as_str()))
        });
    }
    // this namespace first; per transport, listeners before bound-only sockets before connections
    let rank = |s: &portolan_model::LocalSocket| match s.state.as_str() {
        "LISTEN" | "UNCONN" => 0u8,
        "BOUND" => 1,
        _ => 2,
    };
    out.sort_by(|a, b| {
        (a.netns != current, a.netns, a.transport, rank(a), a.local_port, a.local_address, a.inode).cmp(&(
            b.netns != current,
            b.netns,
            b.transport,
            rank(b),
            b.local_port,
            b.local_address,
            b.inode,
        ))
    });
    let privileged = privileged();
    if opts.processes {
        let hidden = out.iter().filter(|s| !s.owner_visible).count();
        if hidden > 0 && !privileged {
            notes.push(format!(
                "{hidden} socket(s) have owners that are not visible to uid {}: run as root (or with CAP_SYS_PTRACE) to see them",
                sys::geteuid()
            ));
        }
    }
    if socket_source == "procfs" && !opts.force_procfs {
        notes.push("sock_diag is unavailable: read /proc/net instead (no devices, v6only or cgroups)".into());
    }
    let findings = judge::findings(&out);
    Ok(LocalInventory {
        format_version: portolan_model::FORMAT_VERSION,
        machine: hostname(),
        taken_at,
        privileged,
        socket_source,
        namespaces,
        sockets: out,
        findings,
        notes,
    })
}
