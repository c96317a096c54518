//! Judgement of each socket: scope, dual-stack, IPv4-mapped, SO_REUSEPORT groups, probable
//! UDP clients, registry service and knowledge-base risk weighted by scope.

use std::collections::HashMap;
use std::net::IpAddr;

use portolan_kb::Reach;
use portolan_model::{BindScope, Finding, LocalSocket, Owner, Severity, Transport};

use crate::diag::{RawSocket, state};
use crate::owners::{Holders, ProcInfo};

/// uid → user name, from `/etc/passwd` (no NSS calls).
#[derive(Debug, Default)]
pub struct Users(HashMap<u32, String>);

impl Users {
    /// Reads `/etc/passwd`; an unreadable file gives no names.
    pub fn load() -> Users {
        let text = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        Users::parse(&text)
    }

    /// Parses passwd lines (`name:x:uid:...`).
    pub fn parse(text: &str) -> Users {
        let mut m = HashMap::new();
        for line in text.lines() {
            let mut f = line.split(':');
            if let (Some(name), Some(_), Some(uid)) = (f.next(), f.next(), f.next()) {
                if let Ok(uid) = uid.parse() {
                    m.entry(uid).or_insert_with(|| name.to_string());
                }
            }
        }
        Users(m)
    }

    /// The name of a uid.
    pub fn name(&self, uid: u32) -> Option<String> {
        self.0.get(&uid).cloned()
    }
}

/// The kernel's ephemeral port range (`ip_local_port_range`), 32768-60999 when unreadable.
pub fn local_port_range() -> (u16, u16) {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut it = text.split_whitespace().filter_map(|v| v.parse().ok());
    match (it.next(), it.next()) {
        (Some(lo), Some(hi)) if lo <= hi => (lo, hi),
        _ => (32768, 60999),
    }
}

/// What the judge needs besides the sockets.
pub struct Context<'a> {
    /// Namespace inode of these sockets.
    pub netns: u64,
    /// ifindex → name in that namespace.
    pub devices: &'a HashMap<u32, String>,
    /// Owner scan, when one ran.
    pub holders: Option<&'a Holders>,
    /// Owning processes.
    pub infos: &'a HashMap<u32, ProcInfo>,
    /// User names.
    pub users: &'a Users,
    /// Ephemeral port range.
    pub local_range: (u16, u16),
}

/// ss's name for a kernel state.
pub fn state_name(s: &RawSocket) -> &'static str {
    if s.bound_inactive {
        return "BOUND";
    }
    match s.state {
        1 => "ESTAB",
        2 => "SYN-SENT",
        3 => "SYN-RECV",
        4 => "FIN-WAIT-1",
        5 => "FIN-WAIT-2",
        6 => "TIME-WAIT",
        7 => "UNCONN",
        8 => "CLOSE-WAIT",
        9 => "LAST-ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "SYN-RECV",
        13 => "BOUND",
        _ => "UNKNOWN",
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_loopback(),
        IpAddr::V6(a) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

fn is_unspecified(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_unspecified(),
        IpAddr::V6(a) => a.is_unspecified() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_unspecified()),
    }
}

/// A routable public address (not private, shared, link-local, documentation or benchmark).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            !(a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_documentation()
                || a.is_multicast()
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 198 && (18..20).contains(&o[1]))
                || o[0] == 0
                || o[0] >= 240)
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = a.segments();
            (s[0] & 0xe000) == 0x2000 && !(s[0] == 0x2001 && s[1] == 0x0db8)
        }
    }
}

/// Bind scope of a socket.
pub fn scope(s: &RawSocket, device: Option<&str>) -> BindScope {
    if is_loopback(s.src) || device == Some("lo") {
        BindScope::Loopback
    } else if s.ifindex != 0 {
        BindScope::Device
    } else if is_unspecified(s.src) {
        BindScope::AllInterfaces
    } else {
        BindScope::Address
    }
}

/// How far a listener reaches, for the knowledge base.
pub fn reach(scope: BindScope, addr: IpAddr) -> Reach {
    match scope {
        BindScope::Loopback => Reach::Loopback,
        BindScope::AllInterfaces => Reach::AllInterfaces,
        BindScope::Address if is_public(addr) => Reach::Internet,
        BindScope::Address | BindScope::Device => Reach::LocalNetwork,
    }
}

fn is_listener(s: &RawSocket) -> bool {
    match s.transport {
        Transport::Tcp => s.state == state::LISTEN,
        _ => s.state == state::CLOSE,
    }
}

/// Judges every socket of one namespace.
pub fn judge_all(sockets: &[RawSocket], ctx: &Context<'_>) -> Vec<LocalSocket> {
    // SO_REUSEPORT (and UDP SO_REUSEADDR) groups: several listeners on one address and port
    let mut groups: HashMap<(Transport, IpAddr, u16, u32), u32> = HashMap::new();
    for s in sockets.iter().filter(|s| is_listener(s)) {
        *groups.entry((s.transport, s.src, s.sport, s.ifindex)).or_default() += 1;
    }
    sockets
        .iter()
        .map(|s| {
            let device = (s.ifindex != 0).then(|| ctx.devices.get(&s.ifindex).cloned().unwrap_or_default());
            let scope = scope(s, device.as_deref());
            let listener = is_listener(s);
            let owners: Vec<Owner> = ctx
                .holders
                .and_then(|h| h.by_inode.get(&s.inode))
                .map(|v| {
                    v.iter()
                        .map(|&(pid, fd)| {
                            let info = ctx.infos.get(&pid).cloned().unwrap_or_default();
                            Owner {
                                pid,
                                fd,
                                comm: info.comm,
                                cmdline: info.cmdline,
                                uid: info.uid,
                                user: info.uid.and_then(|u| ctx.users.name(u)),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            let v6 = s.src.is_ipv6();
            let ipv4_mapped = matches!(s.src, IpAddr::V6(a) if a.to_ipv4_mapped().is_some());
            let dual_stack = match (v6, s.v6only, is_unspecified(s.src) && !ipv4_mapped) {
                (true, Some(v6only), true) => Some(!v6only),
                _ => None,
            };
            let group = groups.get(&(s.transport, s.src, s.sport, s.ifindex)).copied().unwrap_or(0);
            let probable_client = s.transport == Transport::Udp
                && listener
                && (ctx.local_range.0..=ctx.local_range.1).contains(&s.sport);
            let service = portolan_registry::service_name(s.sport, s.transport).map(str::to_string);
            let kb = if listener && !probable_client {
                portolan_kb::for_port(s.sport, s.transport).next()
            } else {
                None
            };
            let risk = kb.map(|e| e.risk(reach(scope, s.src)));
            LocalSocket {
                transport: s.transport,
                state: state_name(s).to_string(),
                local_address: s.src,
                local_port: s.sport,
                peer_address: (!listener && !s.bound_inactive).then_some(s.dst),
                peer_port: (!listener && !s.bound_inactive).then_some(s.dport),
                device,
                v6only: s.v6only,
                inode: s.inode,
                uid: s.uid,
                user: ctx.users.name(s.uid),
                cgroup_id: s.cgroup_id,
                netns: ctx.netns,
                owner_visible: !owners.is_empty(),
                owners,
                scope,
                dual_stack,
                ipv4_mapped,
                reuseport_group: (listener && group > 1).then_some(group),
                probable_client,
                service,
                kb_id: kb.map(|e| e.id.to_string()),
                risk,
            }
        })
        .collect()
}

/// Knowledge-base findings for listeners whose weighted risk is at least low.
pub fn findings(sockets: &[LocalSocket]) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    for s in sockets {
        let (Some(id), Some(risk)) = (&s.kb_id, s.risk) else { continue };
        if risk < Severity::Low {
            continue;
        }
        let Some(entry) = portolan_kb::by_id(id) else { continue };
        let reach = reach(s.scope, s.local_address);
        let mut f = entry.exposure_finding(reach, Some(s.local_address), s.local_port, s.transport);
        f.rule = "local.exposed-listener".into();
        if let Some(o) = s.owners.first() {
            f.evidence.push(format!("held by {} (pid {})", o.comm, o.pid));
        }
        // one finding per address and port (a SO_REUSEPORT group is one service)
        let dup = out.iter().any(|g| g.target == f.target);
        if !dup {
            out.push(f);
        }
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_and_private_addresses() {
        for (a, public) in [
            ("8.8.8.8", true),
            ("10.1.2.3", false),
            ("192.168.1.1", false),
            ("198.18.0.1", false),
            ("100.64.0.1", false),
            ("2001:db8::1", false),
            ("2a00::1", true),
            ("fe80::1", false),
            ("fd00::1", false),
            ("::ffff:8.8.8.8", true),
        ] {
            assert_eq!(is_public(a.parse().unwrap()), public, "{a}");
        }
    }

    #[test]
    fn passwd_parsing() {
        let u = Users::parse("root:x:0:0:root:/root:/bin/bash\nbad line\nnobody:x:65534:65534::/:/x\n");
        assert_eq!(u.name(0).as_deref(), Some("root"));
        assert_eq!(u.name(65534).as_deref(), Some("nobody"));
        assert_eq!(u.name(5), None);
    }
}
