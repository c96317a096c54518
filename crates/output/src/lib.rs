//! Portolan's sinks: everything that turns model values into text for people or machines.
//!
//! - [`table`]: aligned tables, coloured only on a terminal (and never with `NO_COLOR`).
//! - [`escape`]: every untrusted string passes through here before a terminal or document
//!   (the model's one set of rules, [`portolan_model::text`]).
//! - [`scan`]: streaming writers for scan results — human table, nmap normal (`-oN`),
//!   grepable (`-oG`), nmap XML (`-oX`, valid against nmap's DTD), JSON, NDJSON and CSV.
//! - [`diff`]: `portolan diff` as ndiff-like text.
//! - [`records`]: JSON, NDJSON and CSV for any serialisable records.
//!
//! Writers never decide what to show: the caller passes options (`--open`, `--reason`, `-v`).

pub mod audit;
pub mod check;
pub mod diff;
pub mod firewall;
pub mod fw_json;
pub mod identify;
pub mod table;

pub use portolan_model::text as escape;
pub use table::{Align, Cell, ColorChoice, Columns, Style, Table};
pub mod alert;
pub mod home;
pub mod local;
pub mod lookup;
pub mod metrics;
pub mod records;
pub mod scan;
pub mod snapshots;
pub mod watch;
