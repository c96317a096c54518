//! Portolan's scan engine.
//!
//! - [`targets`]: addresses, CIDRs, nmap octet ranges, names, files, exclusions — as interval
//!   sets, never expanded in memory.
//! - [`ports`]: `-p` lists, ranges, `T:`/`U:` prefixes, service names, `--top-ports`.
//! - [`timing`]: `-T0`..`-T5`, RTT estimation, the congestion window, the rate cap.
//! - [`probe`]: one TCP connect probe with nmap's states and reasons (ICMP details from the
//!   socket's error queue).
//! - [`engine`]: the scheduler; results stream to an [`engine::Observer`] and never print.

pub mod engine;
mod error;
pub mod ports;
pub mod probe;
mod raw;
pub mod targets;
pub mod timing;

pub use engine::{Config, Observer, Progress, Summary};
pub use error::{Error, Result};
pub use ports::PortSet;
pub use targets::TargetSet;
pub use timing::Timing;
