//! Judgement of each socket: scope, dual-stack, IPv4-mapped, SO_REUSEPORT groups, probable
//! UDP clients, registry service and knowledge-base risk weighted by scope.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use portolan_kb::Reach;
use portolan_model::{BindScope, Finding, LocalSocket, Owner, Severity, SocketState, Transport};

use crate::diag::{RawSocket, state};
use crate::owners::{Holders, InodeMap, ProcInfos};

/// uid → user name, from `/etc/passwd` (no NSS calls).
#[derive(Debug, Default)]
pub struct Users(InodeMap<Arc<str>>);

impl Users {
    /// Reads `/etc/passwd`; an unreadable file gives no names.
    pub fn load() -> Users {
        let text = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        Users::parse(&text)
    }

    /// Parses passwd lines (`name:x:uid:...`).
    pub fn parse(text: &str) -> Users {
        let mut m = InodeMap::default();
        for line in text.lines() {
            let mut f = line.split(':');
            if let (Some(name), Some(_), Some(uid)) = (f.next(), f.next(), f.next())
                && let Ok(uid) = uid.parse::<u32>()
            {
                m.entry(u64::from(uid)).or_insert_with(|| Arc::from(name));
            }
        }
        Users(m)
    }

    /// The name of a uid.
    pub fn name(&self, uid: u32) -> Option<Arc<str>> {
        self.0.get(&u64::from(uid)).cloned()
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

/// The state of a kernel socket, with ss's names.
pub fn socket_state(s: &RawSocket) -> SocketState {
    if s.bound_inactive {
        return SocketState::Bound;
    }
    match s.state {
        1 => SocketState::Estab,
        2 => SocketState::SynSent,
        3 | 12 => SocketState::SynRecv,
        4 => SocketState::FinWait1,
        5 => SocketState::FinWait2,
        6 => SocketState::TimeWait,
        7 => SocketState::Unconn,
        8 => SocketState::CloseWait,
        9 => SocketState::LastAck,
        10 => SocketState::Listen,
        11 => SocketState::Closing,
        13 => SocketState::Bound,
        _ => SocketState::Unknown,
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

fn is_listener(s: &RawSocket) -> bool {
    match s.transport {
        Transport::Tcp => s.state == state::LISTEN,
        _ => s.state == state::CLOSE,
    }
}

/// Turns kernel sockets into judged [`LocalSocket`]s, one at a time.
pub struct Judge<'a> {
    holders: Option<&'a Holders>,
    infos: ProcInfos,
    users: Users,
    local_range: (u16, u16),
}

impl<'a> Judge<'a> {
    /// A judge with the owner scan (when one ran), `/etc/passwd` and the ephemeral range.
    pub fn new(holders: Option<&'a Holders>) -> Judge<'a> {
        Judge { holders, infos: ProcInfos::default(), users: Users::load(), local_range: local_port_range() }
    }

    /// Judges one socket of namespace `netns`; `device` is the name of its bound device.
    /// SO_REUSEPORT groups need every socket: [`mark_groups`] sets them afterwards.
    pub fn judge(&mut self, s: &RawSocket, netns: u64, device: Option<Arc<str>>) -> LocalSocket {
        let scope = scope(s, device.as_deref());
        let listener = is_listener(s);
        let held = self.holders.map_or(&[][..], |h| h.of(s.inode));
        // exact capacity: a Vec grown by push would reserve four owners for one
        let mut owners: Vec<Owner> = Vec::with_capacity(held.len());
        {
            for &(_, pid, fd) in held {
                let info = self.infos.get(pid);
                let (comm, cmdline, uid) = (Arc::clone(&info.comm), Arc::clone(&info.cmdline), info.uid);
                owners.push(Owner {
                    pid,
                    fd,
                    comm,
                    cmdline,
                    uid,
                    user: uid.and_then(|u| self.users.name(u)),
                });
            }
        }
        let v6 = s.src.is_ipv6();
        let ipv4_mapped = matches!(s.src, IpAddr::V6(a) if a.to_ipv4_mapped().is_some());
        let dual_stack = match (v6, s.v6only, is_unspecified(s.src) && !ipv4_mapped) {
            (true, Some(v6only), true) => Some(!v6only),
            _ => None,
        };
        let probable_client = s.transport == Transport::Udp
            && listener
            && (self.local_range.0..=self.local_range.1).contains(&s.sport);
        let kb = if listener && !probable_client {
            portolan_kb::for_port(s.sport, s.transport).next()
        } else {
            None
        };
        let risk = kb.map(|e| e.risk(Reach::of(scope, s.src)));
        let connected = !listener && !s.bound_inactive;
        LocalSocket {
            transport: s.transport,
            state: socket_state(s),
            local_address: s.src,
            local_port: s.sport,
            peer_address: connected.then_some(s.dst),
            peer_port: connected.then_some(s.dport),
            device: device.map(|d| d.to_string()),
            v6only: s.v6only,
            inode: s.inode,
            uid: s.uid,
            user: self.users.name(s.uid),
            cgroup_id: s.cgroup_id,
            netns,
            owner_visible: !owners.is_empty(),
            owners,
            scope,
            dual_stack,
            ipv4_mapped,
            reuseport_group: None,
            probable_client,
            // named by `inventory` once the dump is over (nmap's names are read meanwhile)
            service: None,
            kb_id: kb.map(|e| Cow::Borrowed(e.id)),
            risk,
        }
    }
}

/// Marks SO_REUSEPORT groups (for UDP, SO_REUSEADDR sharing too): several listeners of one
/// namespace on the same address, port and device. `sockets` must be sorted so that such
/// listeners are adjacent (as [`crate::inventory`] sorts them); no extra memory is used.
pub fn mark_groups(sockets: &mut [LocalSocket]) {
    let same = |a: &LocalSocket, b: &LocalSocket| {
        a.state.is_listening()
            && b.state.is_listening()
            && a.local_address == b.local_address
            && a.local_port == b.local_port
            && a.transport == b.transport
            && a.netns == b.netns
            && a.device == b.device
    };
    let mut i = 0;
    while i < sockets.len() {
        let mut j = i + 1;
        while j < sockets.len() && same(&sockets[i], &sockets[j]) {
            j += 1;
        }
        if j - i > 1 {
            for s in &mut sockets[i..j] {
                s.reuseport_group = Some((j - i) as u32);
            }
        }
        i = j;
    }
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
        let reach = Reach::of(s.scope, s.local_address);
        let mut f = entry.exposure_finding(reach, Some(s.local_address), s.local_port, s.transport);
        f.rule = "local.exposed-listener".into();
        // what is known: the port is the service's, the process holding it is whatever it is
        // (nc on 23 is not telnet); the name comes from the port, not from the program
        let holder = match s.owners.first() {
            Some(o) => {
                f.evidence.push(format!("held by {} (pid {})", o.comm, o.pid));
                format!("held by {}", o.comm)
            }
            None if !s.owner_visible => "held by a process this user cannot see".to_string(),
            None => "held by no process (a kernel socket)".to_string(),
        };
        f.title = format!(
            "port {}/{} ({}'s port) {}, {holder}",
            s.local_port,
            s.transport,
            entry.name,
            reach.describe()
        );
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
            assert_eq!(portolan_kb::is_public(a.parse().unwrap()), public, "{a}");
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
