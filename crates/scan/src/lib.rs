//! Portolan's scan engine.
//!
//! - [`targets`]: addresses, CIDRs, nmap octet ranges, names, files, exclusions — as interval
//!   sets, never expanded in memory.
//! - [`ports`]: `-p` lists, ranges, `T:`/`U:` prefixes, service names, `--top-ports`.
//! - [`timing`]: `-T0`..`-T5`, RTT estimation, the congestion window, the rate and its cap.
//! - `rounds.rs`: retransmission rounds, deadlines and pacing as functions of a given time.
//! - [`probe`]: one TCP connect probe with nmap's states and reasons (ICMP details from the
//!   socket's error queue).
//! - [`shard`]: `--shard I/N`, a keyed permutation of the target x port space.
//! - [`syn`]: the SYN scan's worker (raw sockets, keyed cookies, rounds, the rate cap).
//! - [`engine`]: the coordinator; results stream to an [`engine::Observer`] and never print.
//!   Its workers: the connect workers (`connect.rs`) and the packet worker ([`syn`]), which
//!   share only the job and part types (`jobs.rs`).
//! - [`interrupt`]: Ctrl-C and SIGTERM as a stop request every phase of a run obeys.
//! - [`resume`]: the resume file an interrupted scan writes.

pub mod check;
mod connect;
pub mod engine;
mod error;
pub mod interrupt;
mod jobs;
mod neigh;
mod packet;
pub mod ports;
pub mod probe;
mod raw;
pub mod resume;
mod rounds;
pub mod shard;
pub mod syn;
pub mod targets;
pub mod timing;
pub mod udp;

pub use engine::{Config, Observer, Probe, Progress, Summary};
pub use error::{Error, Result};
pub use ports::PortSet;
pub use targets::TargetSet;
pub use timing::Timing;
