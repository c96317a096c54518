use portolan_model::{RangeClass, Transport};

use crate::tables::{field, string};

/// One row of the registry.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    n: usize,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name())
            .field("ports", &self.ports())
            .field("transport", &self.transport())
            .field("description", &self.description())
            .finish()
    }
}

impl Entry {
    pub(crate) fn new(n: usize) -> Entry {
        Entry { n }
    }

    /// Position of the row in IANA's order, from 0.
    pub fn index(&self) -> usize {
        self.n
    }

    /// Line of the row in the vendored CSV (the header is line 1).
    pub fn csv_line(&self) -> u32 {
        field(self.n, 12)
    }

    /// Service name; empty for unassigned, reserved and de-assigned rows.
    pub fn name(&self) -> &'static str {
        string(field(self.n, 0))
    }

    /// The port or port range, inclusive; `None` for a service name without a port.
    pub fn ports(&self) -> Option<(u16, u16)> {
        let flags = field(self.n, 2);
        if flags & 1 == 0 {
            return None;
        }
        let v = field(self.n, 1);
        Some(((v & 0xffff) as u16, (v >> 16) as u16))
    }

    /// The transport; `None` for blocks that apply to every transport.
    pub fn transport(&self) -> Option<Transport> {
        match (field(self.n, 2) >> 8) & 0xff {
            1 => Some(Transport::Tcp),
            2 => Some(Transport::Udp),
            3 => Some(Transport::Sctp),
            4 => Some(Transport::Dccp),
            _ => None,
        }
    }

    /// IANA's description (`Unassigned` and `Reserved` for those blocks).
    pub fn description(&self) -> &'static str {
        string(field(self.n, 3))
    }
    /// Assignee, as IANA's person/organisation ids in brackets.
    pub fn assignee(&self) -> &'static str {
        string(field(self.n, 4))
    }
    /// Contact, like the assignee.
    pub fn contact(&self) -> &'static str {
        string(field(self.n, 5))
    }
    /// Registration date (`YYYY-MM-DD` or `YYYY-MM`), often empty.
    pub fn registration_date(&self) -> &'static str {
        string(field(self.n, 6))
    }
    /// Modification date, often empty.
    pub fn modification_date(&self) -> &'static str {
        string(field(self.n, 7))
    }
    /// References (`[RFC4251]`, documents).
    pub fn reference(&self) -> &'static str {
        string(field(self.n, 8))
    }
    /// DCCP service code.
    pub fn service_code(&self) -> &'static str {
        string(field(self.n, 9))
    }
    /// IANA's note on known unauthorised use.
    pub fn unauthorized_use(&self) -> &'static str {
        string(field(self.n, 10))
    }
    /// Assignment notes.
    pub fn notes(&self) -> &'static str {
        string(field(self.n, 11))
    }

    /// True for a row that assigns nothing (Unassigned or Reserved, with no name).
    pub fn is_unassigned(&self) -> bool {
        self.name().is_empty()
    }

    /// Range class of the row's first port.
    pub fn range_class(&self) -> Option<RangeClass> {
        self.ports().map(|(lo, _)| RangeClass::of(lo))
    }

    /// The port as IANA writes it: `22`, `6000-6063`, or empty.
    pub fn port_text(&self) -> String {
        match self.ports() {
            Some((lo, hi)) if lo == hi && field(self.n, 2) & 2 == 0 => lo.to_string(),
            Some((lo, hi)) => format!("{lo}-{hi}"),
            None => String::new(),
        }
    }
}
