//! The work the coordinator hands to the scan workers and what they send back: a [`Job`] is
//! some ports (or the discovery probes) of one host, a [`Part`] a worker's answer for it. The
//! connect workers (`connect.rs`) and the packet worker (`syn.rs`) both speak these types, and
//! share the counters in [`Shared`] and the service names of [`TableNames`]; neither knows the
//! other, and the coordinator (`engine.rs`) knows both.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use portolan_model::{Port, Reason, Service, Transport};

use crate::Error;

/// What a job asks: whether the host is up, or the state of its ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Host discovery.
    Discovery,
    /// A port scan of a host found up (or taken as up).
    Ports,
}

/// A piece of work for a worker: some ports of one host.
pub(crate) struct Job {
    pub(crate) host: u64,
    pub(crate) addr: IpAddr,
    /// Ports, or for raw discovery the discovery probes (`syn::PING_*`).
    pub(crate) ports: Vec<u16>,
    pub(crate) kind: Kind,
    pub(crate) transport: Transport,
}

/// A worker's answer for a job.
pub(crate) struct Part {
    pub(crate) host: u64,
    pub(crate) kind: Kind,
    pub(crate) ports: Vec<Port>,
    /// For discovery: why the host is up.
    pub(crate) up: Option<Reason>,
    pub(crate) srtt: Option<Duration>,
}

/// What a worker sends the coordinator.
pub(crate) enum Msg {
    Part(Part),
    Failed(Error),
}

/// Counters shared by the workers.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) stop: AtomicBool,
    pub(crate) done: AtomicU64,
    pub(crate) open: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) retrans: AtomicU64,
    pub(crate) peak: AtomicU64,
    pub(crate) ring: AtomicU64,
}

/// nmap's table lookup of a port's service name (`unknown` when the table names none). The
/// `unknown` entry is one value shared by every port it names, so naming every port of a host
/// allocates only for the ports the table knows.
pub(crate) struct TableNames {
    names: Arc<portolan_registry::Ranking>,
    unknown: Arc<Service>,
}

impl TableNames {
    pub(crate) fn new(names: &Arc<portolan_registry::Ranking>) -> TableNames {
        TableNames { names: Arc::clone(names), unknown: Arc::new(Service::from_table("unknown")) }
    }

    pub(crate) fn of(&self, port: u16, transport: Transport) -> Arc<Service> {
        match self.names.service_name(port, transport) {
            Some(name) => Arc::new(Service::from_table(name)),
            None => Arc::clone(&self.unknown),
        }
    }
}
