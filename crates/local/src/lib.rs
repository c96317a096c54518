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

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use portolan_model::{LocalInventory, LocalSocket, Netns, SocketState, Transport};

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

/// Dumps the sockets of the calling thread's namespace, handing each to `f` with the name of
/// its bound device (resolved here, in the same namespace). Returns the source used.
fn dump_each(opts: &Options, f: &mut dyn FnMut(&RawSocket, Option<Arc<str>>)) -> Result<&'static str> {
    let (tcp, udp) = (opts.tcp_states(), opts.udp_states());
    let mut devices: HashMap<u32, Arc<str>> = HashMap::new();
    let mut each = |s: RawSocket| {
        let dev = (s.ifindex != 0).then(|| {
            Arc::clone(devices.entry(s.ifindex).or_insert_with(|| {
                Arc::from(sys::if_name(s.ifindex).unwrap_or_else(|| format!("if{}", s.ifindex)))
            }))
        });
        f(&s, dev);
    };
    let diag = if opts.force_procfs { None } else { Diag::open().ok() };
    match diag {
        Some(mut d) => {
            for (transport, states) in [(Transport::Tcp, tcp), (Transport::Udp, udp)] {
                if states == 0 {
                    continue;
                }
                for ipv6 in [false, true] {
                    if (ipv6 && opts.ipv6) || (!ipv6 && opts.ipv4) {
                        d.dump_with(transport, ipv6, states, &mut each)?;
                    }
                }
            }
            Ok("sock_diag")
        }
        None => {
            procnet::read(tcp & !mask(state::BOUND_INACTIVE), udp, opts.ipv4, opts.ipv6, &mut each)?;
            Ok("procfs")
        }
    }
}

/// TCP and UDP sockets in use, from `/proc/net/sockstat{,6}` (0 when unreadable).
fn socket_count_hint() -> usize {
    let mut n = 0usize;
    for f in ["/proc/net/sockstat", "/proc/net/sockstat6"] {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for line in
            text.lines().filter(|l| l.starts_with("TCP") || l.starts_with("UDP:") || l.starts_with("UDP6:"))
        {
            let mut words = line.split_whitespace();
            while let Some(w) = words.next() {
                if w == "inuse" {
                    n += words.next().and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
                }
            }
        }
    }
    n.min(4_000_000)
}

fn keep(opts: &Options, port: u16) -> bool {
    opts.ports.is_empty() || opts.ports.contains(&port)
}

/// Whether this process can see every process's fds (root or CAP_SYS_PTRACE).
pub fn privileged() -> bool {
    sys::geteuid() == 0 || sys::has_capability(19)
}

/// This machine's host name (`/proc/sys/kernel/hostname`), empty when unreadable.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Takes the inventory.
pub fn inventory(opts: &Options) -> Result<LocalInventory> {
    let timing = std::env::var_os("PORTOLAN_TIMING").is_some();
    let t0 = std::time::Instant::now();
    let phase = |name: &str| {
        if timing {
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            let rss = |k: &str| {
                status
                    .lines()
                    .find(|l| l.starts_with(k))
                    .map(|l| l[k.len()..].trim().to_string())
                    .unwrap_or_default()
            };
            eprintln!(
                "timing: {name} at {:.2} ms (rss {}, peak {})",
                t0.elapsed().as_secs_f64() * 1e3,
                rss("VmRSS:"),
                rss("VmHWM:")
            );
        }
    };
    let taken_at = Timestamp::now();
    let sockets = socket_count_hint();
    let current = netns::current_inode()?;
    let mut notes = Vec::new();
    // Owners first: the scan collects every socket fd, so each socket can be judged the moment
    // sock_diag reports it and no raw socket table is kept.
    let holders = if opts.processes {
        // one more worker than CPUs: measured to keep both CPUs of a 2-vCPU machine busy while
        // a worker waits in the kernel (32 ms against 40 ms at 10k sockets)
        let threads =
            opts.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()) + 1);
        Some(owners::scan(threads))
    } else {
        None
    };
    phase("owner scan done");
    // the sockets' service names come from nmap's file: with many sockets it is read whole,
    // on a thread of its own while the dump below waits in the kernel, and the names are set
    // after it (during the owner scan every CPU is busy already)
    let names = (opts.ports.is_empty() && portolan_registry::reads_whole(sockets))
        .then(|| std::thread::spawn(portolan_registry::prepare_names));
    let mut judge = judge::Judge::new(holders.as_ref());
    // Room for every socket up front (the kernel's own counts): growing by doubling would copy
    // the table and leave the old buffers resident.
    let mut out: Vec<LocalSocket> = Vec::with_capacity(sockets);
    let mut namespaces = vec![Netns { inode: current, name: "host".into(), current: true }];
    let socket_source = dump_each(opts, &mut |raw, dev| {
        if keep(opts, raw.sport) {
            out.push(judge.judge(raw, current, dev));
        }
    })?
    .to_string();
    if opts.all_netns {
        for ns in netns::enumerate()? {
            if ns.current {
                namespaces[0].name = ns.name.clone();
                continue;
            }
            let inode = ns.inode;
            let result = netns::run_in(&ns.path, || {
                dump_each(opts, &mut |raw, dev| {
                    if keep(opts, raw.sport) {
                        out.push(judge.judge(raw, inode, dev));
                    }
                })
            });
            match result {
                Ok(_) => namespaces.push(Netns { inode, name: ns.name.clone(), current: false }),
                Err(e) => notes.push(format!("network namespace {} not listed: {e}", ns.name)),
            }
        }
    }
    drop(judge);
    drop(holders);
    if let Some(names) = names {
        let _ = names.join();
    }
    phase("sockets dumped and judged");
    if let Some(p) = &opts.process {
        out.retain(|s| {
            s.owners.iter().any(|o| o.comm.contains(p.as_str()) || o.cmdline.contains(p.as_str()))
        });
    }
    for s in &mut out {
        s.service = portolan_registry::port_name(s.local_port, s.transport).map(std::borrow::Cow::Borrowed);
    }
    // this namespace first; per transport, listeners before bound-only sockets before connections
    let rank = |s: &LocalSocket| match s.state {
        SocketState::Listen | SocketState::Unconn => 0u8,
        SocketState::Bound => 1,
        _ => 2,
    };
    let addr_key = |a: std::net::IpAddr| -> u128 {
        match a {
            std::net::IpAddr::V4(v) => u128::from(u32::from(v)),
            std::net::IpAddr::V6(v) => u128::from(v) | (1 << 127),
        }
    };
    fn key(
        s: &LocalSocket,
        current: u64,
        rank: u8,
        addr: u128,
    ) -> (bool, u64, Transport, u8, u16, u128, Option<&str>, u64) {
        (s.netns != current, s.netns, s.transport, rank, s.local_port, addr, s.device.as_deref(), s.inode)
    }
    out.sort_unstable_by(|a, b| {
        key(a, current, rank(a), addr_key(a.local_address)).cmp(&key(
            b,
            current,
            rank(b),
            addr_key(b.local_address),
        ))
    });
    judge::mark_groups(&mut out);
    phase("sorted");
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
