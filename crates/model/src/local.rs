use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Finding, Severity, Transport};

/// What `portolan ls` saw on this machine: every socket asked for, with owners and judgement.
///
/// This is the document `portolan ls -o json` writes (`docs/schema/local-inventory.schema.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LocalInventory {
    /// Format version ([`crate::FORMAT_VERSION`]).
    pub format_version: u32,
    /// Host name of the machine.
    pub machine: String,
    /// When the inventory was taken.
    #[schemars(with = "String")]
    pub taken_at: Timestamp,
    /// Whether it ran with the privilege to see every owner (root or CAP_SYS_PTRACE).
    pub privileged: bool,
    /// Where the socket table came from: `sock_diag` or `procfs` (the fallback).
    pub socket_source: String,
    /// Network namespaces that were dumped.
    pub namespaces: Vec<Netns>,
    /// The sockets.
    pub sockets: Vec<LocalSocket>,
    /// Findings of the knowledge base on the listeners.
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// Notes for people (what could not be seen and why).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// A network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Netns {
    /// The namespace's inode number (`ip netns identify`, `/proc/PID/ns/net`).
    pub inode: u64,
    /// `ip netns` name, container or unit name, or `host` for the namespace Portolan runs in.
    pub name: String,
    /// Whether this is the namespace Portolan runs in.
    pub current: bool,
}

/// A socket from the kernel's tables, with its owners and Portolan's judgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LocalSocket {
    /// Transport.
    pub transport: Transport,
    /// State, as `ss` names it (`LISTEN`, `UNCONN`, `ESTAB`, `BOUND`, ...).
    pub state: SocketState,
    /// Local address.
    pub local_address: IpAddr,
    /// Local port.
    pub local_port: u16,
    /// Peer address, for connected sockets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_address: Option<IpAddr>,
    /// Peer port, for connected sockets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_port: Option<u16>,
    /// Device the socket is bound to (`SO_BINDTODEVICE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// `IPV6_V6ONLY` of an IPv6 socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v6only: Option<bool>,
    /// Socket inode.
    pub inode: u64,
    /// uid of the socket (its creator's).
    pub uid: u32,
    /// User name of that uid, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Arc<str>>,
    /// cgroup v2 id of the socket's creator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_id: Option<u64>,
    /// Inode of the network namespace the socket lives in.
    pub netns: u64,
    /// Every process holding the socket (pre-fork servers share one).
    pub owners: Vec<Owner>,
    /// False when no owner could be seen (another pid namespace, kernel-owned, no privilege).
    pub owner_visible: bool,
    /// Who can reach it.
    pub scope: BindScope,
    /// For IPv6 wildcard listeners: whether IPv4 is accepted too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dual_stack: Option<bool>,
    /// Bound to an IPv4-mapped IPv6 address (IPv4 only, though IPv6 family).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ipv4_mapped: bool,
    /// Number of sockets sharing this address and port (`SO_REUSEPORT`), when more than one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuseport_group: Option<u32>,
    /// A UDP socket on an ephemeral port: most likely a client, not a service.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub probable_client: bool,
    /// The port's name (`portolan_registry::port_name`: nmap's where installed, else IANA's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Cow<'static, str>>,
    /// Knowledge-base entry for the port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kb_id: Option<Cow<'static, str>>,
    /// Knowledge-base risk weighted by scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<Severity>,
}

/// A process holding a socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Owner {
    /// Process id.
    pub pid: u32,
    /// File descriptor number.
    pub fd: u32,
    /// Process name (`comm`).
    pub comm: Arc<str>,
    /// Command line, arguments joined by spaces.
    pub cmdline: Arc<str>,
    /// Real uid of the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// User name of that uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Arc<str>>,
}

/// A socket's state, with `ss`'s names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub enum SocketState {
    /// TCP listening.
    #[serde(rename = "LISTEN")]
    Listen,
    /// UDP (or raw TCP CLOSE) not connected: a UDP "listener".
    #[serde(rename = "UNCONN")]
    Unconn,
    /// TCP bound but never listened (it still holds the port).
    #[serde(rename = "BOUND")]
    Bound,
    /// Connected.
    #[serde(rename = "ESTAB")]
    Estab,
    /// SYN sent.
    #[serde(rename = "SYN-SENT")]
    SynSent,
    /// SYN received.
    #[serde(rename = "SYN-RECV")]
    SynRecv,
    /// FIN-WAIT-1.
    #[serde(rename = "FIN-WAIT-1")]
    FinWait1,
    /// FIN-WAIT-2.
    #[serde(rename = "FIN-WAIT-2")]
    FinWait2,
    /// TIME-WAIT.
    #[serde(rename = "TIME-WAIT")]
    TimeWait,
    /// CLOSE-WAIT.
    #[serde(rename = "CLOSE-WAIT")]
    CloseWait,
    /// LAST-ACK.
    #[serde(rename = "LAST-ACK")]
    LastAck,
    /// CLOSING.
    #[serde(rename = "CLOSING")]
    Closing,
    /// A state this version does not know.
    #[serde(rename = "UNKNOWN")]
    Unknown,
}

impl SocketState {
    /// ss's name.
    pub fn as_str(self) -> &'static str {
        match self {
            SocketState::Listen => "LISTEN",
            SocketState::Unconn => "UNCONN",
            SocketState::Bound => "BOUND",
            SocketState::Estab => "ESTAB",
            SocketState::SynSent => "SYN-SENT",
            SocketState::SynRecv => "SYN-RECV",
            SocketState::FinWait1 => "FIN-WAIT-1",
            SocketState::FinWait2 => "FIN-WAIT-2",
            SocketState::TimeWait => "TIME-WAIT",
            SocketState::CloseWait => "CLOSE-WAIT",
            SocketState::LastAck => "LAST-ACK",
            SocketState::Closing => "CLOSING",
            SocketState::Unknown => "UNKNOWN",
        }
    }

    /// Listening states (TCP LISTEN, UDP UNCONN).
    pub fn is_listening(self) -> bool {
        matches!(self, SocketState::Listen | SocketState::Unconn)
    }
}

impl fmt::Display for SocketState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who can reach a socket, by its binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BindScope {
    /// Loopback only.
    Loopback,
    /// Every interface (`0.0.0.0`, `::`).
    AllInterfaces,
    /// One address.
    Address,
    /// One device (`SO_BINDTODEVICE`), whatever the address.
    Device,
}

impl BindScope {
    /// Short name for tables.
    pub fn as_str(self) -> &'static str {
        match self {
            BindScope::Loopback => "loopback",
            BindScope::AllInterfaces => "all",
            BindScope::Address => "address",
            BindScope::Device => "device",
        }
    }
}
