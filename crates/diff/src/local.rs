//! What changed in a machine's listeners between two local inventories (`portolan ls --save`):
//! listeners that appeared or went away, and listeners whose owners changed (another program
//! or user holds the port now). Process ids are not compared: a restart is not drift.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use portolan_model::{LocalInventory, LocalSocket, Transport};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The differences between two local inventories (`portolan diff -o json` on two `ls`
/// snapshots).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LocalDiff {
    /// Format version ([`portolan_model::FORMAT_VERSION`]).
    pub format_version: u32,
    /// The earlier inventory.
    pub a: InventoryRef,
    /// The later inventory.
    pub b: InventoryRef,
    /// Listeners that differ, by namespace, transport, address and port.
    pub listeners: Vec<ListenerDiff>,
    /// Number of differences; 0 means the inventories agree.
    pub cost: usize,
}

/// Which inventory a side is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InventoryRef {
    /// Machine.
    pub machine: String,
    /// When it was taken, in seconds since the epoch.
    pub taken_at: i64,
}

/// A program holding a listener, as compared: its name and user (not its pid).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub struct OwnerId {
    /// Process name (`comm`).
    pub process: String,
    /// User name, or uid when the name is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// One listener's difference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ListenerDiff {
    /// Network namespace name (`host` for the machine's own).
    pub netns: String,
    /// Transport.
    pub transport: Transport,
    /// Local address.
    pub address: IpAddr,
    /// Local port.
    pub port: u16,
    /// What changed.
    pub change: ListenerChange,
    /// Owners on the earlier side (empty when not visible or absent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners_a: Vec<OwnerId>,
    /// Owners on the later side.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners_b: Vec<OwnerId>,
    /// Bound device on the earlier side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_a: Option<String>,
    /// Bound device on the later side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_b: Option<String>,
}

/// The kind of a listener change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ListenerChange {
    /// A new listener.
    Opened,
    /// The listener is gone.
    Closed,
    /// Other programs or users hold it now.
    OwnersChanged,
    /// Bound to another device.
    DeviceChanged,
}

type Key = (String, Transport, IpAddr, u16);

struct Side {
    owners: BTreeSet<OwnerId>,
    /// Whether any socket of the key had visible owners (an invisible owner is not a change).
    visible: bool,
    device: Option<String>,
}

fn listeners(inv: &LocalInventory) -> BTreeMap<Key, Side> {
    let names: BTreeMap<u64, &str> = inv.namespaces.iter().map(|n| (n.inode, n.name.as_str())).collect();
    let mut m: BTreeMap<Key, Side> = BTreeMap::new();
    for s in inv.sockets.iter().filter(|s| counts(s)) {
        let ns = names.get(&s.netns).map_or_else(|| s.netns.to_string(), |n| n.to_string());
        let e = m.entry((ns, s.transport, s.local_address, s.local_port)).or_insert_with(|| Side {
            owners: BTreeSet::new(),
            visible: false,
            device: s.device.clone(),
        });
        e.visible |= s.owner_visible;
        for o in &s.owners {
            let user = o.user.as_deref().map(str::to_string).or_else(|| o.uid.map(|u| u.to_string()));
            e.owners.insert(OwnerId { process: o.comm.to_string(), user });
        }
    }
    m
}

/// Listening sockets count; connections and UDP client sockets come and go by the second.
fn counts(s: &LocalSocket) -> bool {
    s.state.is_listening() && !s.probable_client || s.state == portolan_model::SocketState::Bound
}

/// Compares two local inventories.
pub fn diff_local(a: &LocalInventory, b: &LocalInventory) -> LocalDiff {
    let (la, lb) = (listeners(a), listeners(b));
    let keys: BTreeSet<&Key> = la.keys().chain(lb.keys()).collect();
    let mut out = Vec::new();
    for k in keys {
        let (sa, sb) = (la.get(k), lb.get(k));
        let change = match (sa, sb) {
            (None, Some(_)) => ListenerChange::Opened,
            (Some(_), None) => ListenerChange::Closed,
            (Some(x), Some(y)) if x.visible && y.visible && x.owners != y.owners => {
                ListenerChange::OwnersChanged
            }
            (Some(x), Some(y)) if x.device != y.device => ListenerChange::DeviceChanged,
            _ => continue,
        };
        let owners = |s: Option<&Side>| s.map(|s| s.owners.iter().cloned().collect()).unwrap_or_default();
        out.push(ListenerDiff {
            netns: k.0.clone(),
            transport: k.1,
            address: k.2,
            port: k.3,
            change,
            owners_a: owners(sa),
            owners_b: owners(sb),
            device_a: sa.and_then(|s| s.device.clone()),
            device_b: sb.and_then(|s| s.device.clone()),
        });
    }
    let cost = out.len();
    LocalDiff {
        format_version: portolan_model::FORMAT_VERSION,
        a: InventoryRef { machine: a.machine.clone(), taken_at: a.taken_at.as_second() },
        b: InventoryRef { machine: b.machine.clone(), taken_at: b.taken_at.as_second() },
        listeners: out,
        cost,
    }
}
