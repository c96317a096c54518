//! The exposure table: rows of protocol and port ranges, and per source class the verdicts
//! with the rules that give them and the sources they apply to. [`Analysis::exposure`]
//! computes it by first-match propagation.

use std::sync::Arc;

use crate::dd::{Kind, Term};
use crate::model::*;
use crate::sets::IntervalSet;

/// Which traffic an exposure describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// To this machine (NAT followed: DNATed ports appear as published).
    Input,
    /// Routed through this machine.
    Forward,
}

/// A set of sources, shared between the rows that give it the same verdict (a large rule
/// set's "every public address but the blocklist" is one set, not one copy per port).
pub type Sources = Arc<crate::sets::LazySet>;

/// The verdicts a class of sources gets for one row, with the sources each applies to.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// (terminal, the sources of the class that get it) that depend on this row's protocol
    /// and port.
    pub parts: Vec<(Term, Sources)>,
    /// The class's verdicts that are the same on every row (decided before protocol and
    /// port matter: source blocklists, trusted networks): shared with
    /// [`Exposure::everywhere`].
    pub everywhere: Arc<[(Term, Sources)]>,
    /// The verdicts of `everywhere` ([`kind_mask`]), so a row's verdict word does not walk a
    /// long blocklist once per row.
    pub every_kinds: u16,
}

/// The verdicts among parts, one bit per [`Kind`].
pub(crate) fn kind_mask(parts: &[(Term, Sources)]) -> u16 {
    parts.iter().fold(0, |m, (t, _)| m | 1 << t.kind as u16)
}

impl Outcome {
    /// The verdicts of the row for the class (the port-independent ones too), one bit per
    /// [`Kind`].
    pub fn kinds(&self) -> u16 {
        self.every_kinds | kind_mask(&self.parts)
    }
    /// Every (terminal, sources) of the row: the port-independent ones, then the row's own.
    pub fn all(&self) -> impl Iterator<Item = &(Term, Sources)> {
        self.everywhere.iter().chain(self.parts.iter())
    }
    /// Whether every source of the class is accepted (published ports count).
    pub fn all_accept(&self) -> bool {
        self.kinds() == 1 << Kind::Accept as u16
    }
    /// Whether some source is accepted.
    pub fn any_accept(&self) -> bool {
        self.kinds() & 1 << Kind::Accept as u16 != 0
    }
    /// The accepted sources.
    pub fn accepted(&self) -> IntervalSet {
        let v: Vec<(u128, u128)> = self
            .all()
            .filter(|(t, _)| t.kind == Kind::Accept)
            .flat_map(|(_, s)| s.intervals().iter().copied())
            .collect();
        IntervalSet::from_intervals(v)
    }
}

/// One row: a protocol (and port range for port protocols) and the outcome per class.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Protocol range (one protocol for tcp/udp rows).
    pub proto: (u8, u8),
    /// Port range (tcp, udp, sctp, udplite, dccp).
    pub ports: Option<(u16, u16)>,
    /// Outcome per class, in the order the classes were given.
    pub classes: Vec<Outcome>,
}

/// The exposure of one family of one scope.
#[derive(Debug, Clone, PartialEq)]
pub struct Exposure {
    /// Scope name (security group) or empty.
    pub scope: String,
    /// Family.
    pub family: Family,
    /// Which traffic.
    pub view: View,
    /// Class names.
    pub classes: Vec<String>,
    /// Per class: the verdicts that do not depend on protocol or port (also in every row's
    /// [`Outcome::everywhere`]).
    pub everywhere: Vec<Arc<[(Term, Sources)]>>,
    /// Rows, by protocol then port.
    pub rows: Vec<Row>,
}
