//! Portolan's shared model.
//!
//! Every source (local sockets, scans, imports, logs, rule sets) produces values of these
//! types, every judge (knowledge base, policy, firewall exposure, detectors) reads them and
//! adds [`Finding`]s, and every sink (store, formats, reports) writes them. Nothing here does
//! I/O but [`input`], the one bounded way every reader opens a file a user names; [`text`]
//! holds the one set of escaping rules for untrusted text.
//!
//! The JSON form of these types (serde) is Portolan's machine-readable output. It is described
//! by JSON Schemas generated from the types with [`schema::all`] and checked in under
//! `docs/schema/`; a test fails when the two drift apart.
//!
//! ```
//! use portolan_model::{PortState, Transport, RangeClass};
//! assert_eq!("open|filtered".parse::<PortState>().unwrap(), PortState::OpenFiltered);
//! assert_eq!("udp".parse::<Transport>().unwrap(), Transport::Udp);
//! assert_eq!(RangeClass::of(3389), RangeClass::Registered);
//! ```

pub mod addr;
pub mod atomic;
mod audit;
mod error;
mod finding;
mod host;
pub mod input;
mod local;
mod port;
mod reason;
mod run;
pub mod schema;
mod service;
mod snapshot;
pub mod text;
pub mod traffic;
pub mod values;

pub use audit::{AuditReport, AuditSummary};
pub use error::{Error, Result};
pub use finding::{Finding, FindingTarget, Severity, SourceLocation};
pub use host::{Host, HostState, HostStatus, Hostname, HostnameKind};
pub use local::{BindScope, LocalInventory, LocalSocket, Netns, Owner, SocketState};
pub use port::{
    ExtraPorts, ExtraReason, Port, PortState, RangeClass, Transport, port_ranges, port_ranges_parse,
};
pub use reason::Reason;
pub use run::{RunExit, RunStats, ScanInfo, ScanRun, ScanType};
pub use service::{Service, ServiceMethod, Tunnel};
pub use snapshot::{RunInfo, Snapshot, SnapshotInfo, Source};
pub use traffic::{Detection, DetectionKind, Event, Outcome, Proto};

/// Version of the JSON documents Portolan writes. Bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;
