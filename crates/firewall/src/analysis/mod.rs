//! Exact analysis of a rule set over the packet space of the first packet of a new connection
//! (conntrack state NEW), by concern:
//!
//! - [`Analysis::outline`] (scopes and interface atoms, `interfaces`) and [`Analysis::new`]
//!   (also every chain compiled into a decision diagram, hooks composed in priority order,
//!   DNAT followed into the input or forward path: `compile`);
//! - source classes (`classes`) and the exposure per transport, port range and class
//!   (`exposure`: [`Analysis::exposure`], computed by first-match propagation);
//! - one-packet queries with the chain path (`query`), and diffs (`diff`, on the diagrams);
//! - which base chains run on a hook, and the loop check of jumps every command shares
//!   (`chains`).
//!
//! Semantics (see docs/firewall.md):
//! - Packets are the first packet of a new connection: rules that only match ESTABLISHED or
//!   RELATED never match; `--syn`/`tcp flags` are evaluated for a SYN; traffic is unicast to
//!   one of this machine's addresses (`addrtype --dst-type LOCAL` holds).
//! - A condition on state the analysis cannot see (rate limits, recent lists, marks, fib,
//!   sockets, random load balancing...) is resolved in favour of the packet: the rule takes
//!   effect where that lets the packet through (accepts or translates it) and not elsewhere.
//!   Exposure is therefore an upper bound: never less than the kernel can let through.
//! - Base chains on one hook run in priority order; accept in one passes the packet to the
//!   next, drop and reject end it. A hook with no chain accepts.

mod chains;
mod classes;
mod compile;
#[cfg(test)]
mod diagram_exposure;
mod diff;
mod exposure;
mod interfaces;
mod query;

pub use chains::check_jumps;
pub(crate) use chains::{enter_chain, forward_used, hook_chains};
pub use classes::{
    Class, SourceSpecError, keep_telling_classes, named_class, names_special_sources, public_v4, public_v6,
    special_classes, standard_classes, unicast,
};
pub use diff::Change;
pub(crate) use exposure::kind_mask;
pub use exposure::{Exposure, Outcome, Row, Sources, View};
pub use interfaces::Ifaces;
pub use query::{Answer, Step};

use crate::dd::{Dd, Id, NDIMS};
use crate::error::Result;
use crate::model::*;
use crate::sets::IntervalSet;
use std::collections::HashMap;

/// Which rule (or chain policy) a terminal names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleRef {
    /// Ruleset index (0, or 1 for the NEW side of a diff).
    pub set: usize,
    /// Table.
    pub table: usize,
    /// Chain.
    pub chain: usize,
    /// Rule; `None`: the chain's policy.
    pub rule: Option<usize>,
}

/// The compiled functions of one family of one scope.
pub struct FamilyFns {
    /// The store.
    pub dd: Dd,
    /// Packets to this machine, NAT followed (the exposure view).
    pub input: Id,
    /// The filter pipeline of the input path alone.
    pub input_filter: Id,
    /// Routed packets (filter pipeline of the forward path).
    pub forward: Id,
    /// Packets from this machine.
    pub output: Id,
    /// The prerouting NAT pipeline (`Nat` terminals for DNAT/REDIRECT).
    pub nat: Id,
    /// Each chain's function (`Continue` where it returns).
    pub chains: HashMap<(usize, usize, usize), Id>,
    /// Whether a forward chain has rules.
    pub forward_used: bool,
}

/// A part of the rule sets analysed together: all tables of a host, or one security group.
pub struct Scope {
    /// Name (empty for a host's rule set).
    pub name: String,
    /// Ruleset index.
    pub set: usize,
    /// Tables.
    pub tables: Vec<usize>,
    /// Per family (IPv4, IPv6), when some table filters it.
    pub fams: [Option<FamilyFns>; 2],
}

/// The analysis of one or more rule sets (two for a diff).
pub struct Analysis<'r> {
    /// The rule sets.
    pub sets: Vec<&'r Ruleset>,
    /// Interface atoms.
    pub ifaces: Ifaces,
    /// Rule references by terminal rule index.
    pub refs: Vec<RuleRef>,
    ref_ids: foldhash::HashMap<RuleRef, u32>,
    /// Scopes.
    pub scopes: Vec<Scope>,
}

impl<'r> Analysis<'r> {
    /// Compiles rule sets.
    pub fn new(sets: &[&'r Ruleset]) -> Result<Analysis<'r>> {
        let ifaces = Ifaces::new(sets);
        let mut a = Analysis {
            sets: sets.to_vec(),
            ifaces,
            refs: Vec::new(),
            ref_ids: foldhash::HashMap::default(),
            scopes: Vec::new(),
        };
        for (si, rs) in sets.iter().enumerate() {
            let groups: Vec<(String, Vec<usize>)> = if rs.separate_tables {
                rs.tables.iter().enumerate().map(|(i, t)| (t.name.clone(), vec![i])).collect()
            } else {
                vec![(String::new(), (0..rs.tables.len()).collect())]
            };
            for (name, tables) in groups {
                let mut fams: [Option<FamilyFns>; 2] = [None, None];
                for f in Family::BOTH {
                    if tables.iter().any(|&t| rs.tables[t].families.contains(&f)) {
                        fams[f as usize] = Some(a.compile_family(si, &tables, f)?);
                    }
                }
                a.scopes.push(Scope { name, set: si, tables, fams });
            }
        }
        Ok(a)
    }

    /// The rule sets' scopes and interface atoms, without compiling the diagrams: enough for
    /// [`Analysis::exposure`] and for naming rules (queries, diffs and lint need
    /// [`Analysis::new`]).
    pub fn outline(sets: &[&'r Ruleset]) -> Analysis<'r> {
        let mut a = Analysis {
            sets: sets.to_vec(),
            ifaces: Ifaces::new(sets),
            refs: Vec::new(),
            ref_ids: foldhash::HashMap::default(),
            scopes: Vec::new(),
        };
        for (si, rs) in sets.iter().enumerate() {
            if rs.separate_tables {
                for (i, t) in rs.tables.iter().enumerate() {
                    a.scopes.push(Scope {
                        name: t.name.clone(),
                        set: si,
                        tables: vec![i],
                        fams: [None, None],
                    });
                }
            } else {
                let tables = (0..rs.tables.len()).collect();
                a.scopes.push(Scope { name: String::new(), set: si, tables, fams: [None, None] });
            }
        }
        a
    }

    /// The terminal rule index of a reference (interned).
    pub(crate) fn intern(&mut self, r: RuleRef) -> u32 {
        self.rule_id(r)
    }

    pub(super) fn rule_id(&mut self, r: RuleRef) -> u32 {
        if let Some(&i) = self.ref_ids.get(&r) {
            return i;
        }
        let i = self.refs.len() as u32;
        self.refs.push(r);
        self.ref_ids.insert(r, i);
        i
    }

    /// The rule a reference names.
    pub fn rule(&self, r: RuleRef) -> Option<&'r Rule> {
        let rs: &'r Ruleset = self.sets[r.set];
        rs.tables[r.table].chains[r.chain].rules.get(r.rule?)
    }

    /// The rule set a reference belongs to.
    pub fn ruleset(&self, r: RuleRef) -> &'r Ruleset {
        self.sets[r.set]
    }

    /// The chain a reference names.
    pub fn chain(&self, r: RuleRef) -> &'r Chain {
        let rs: &'r Ruleset = self.sets[r.set];
        &rs.tables[r.table].chains[r.chain]
    }

    /// Where a reference points: the rule, or the chain declaration for a policy.
    pub fn location(&self, r: RuleRef) -> &'r Location {
        match self.rule(r) {
            Some(rule) => &rule.location,
            None => &self.chain(r).location,
        }
    }

    /// `table/chain` and rule number or `policy`, for people.
    pub fn describe(&self, r: RuleRef) -> String {
        let rs = self.sets[r.set];
        let t = &rs.tables[r.table];
        let c = &t.chains[r.chain];
        match r.rule {
            Some(i) => format!("{} {} rule {} ({})", t.name, c.name, i + 1, self.location(r)),
            None => format!(
                "{} {} policy {} ({})",
                t.name,
                c.name,
                match c.policy {
                    Some(Policy::Drop) => "drop",
                    _ => "accept",
                },
                c.location
            ),
        }
    }

    /// The sets of a rule cube in the diagram's dimension order.
    pub(crate) fn cube_sets(&self, c: &Cube) -> [Option<IntervalSet>; NDIMS] {
        [
            self.ifaces.set(&c.iif),
            self.ifaces.set(&c.oif),
            c.src.clone(),
            c.dst.clone(),
            c.proto.clone(),
            c.dport.clone(),
            c.sport.clone(),
        ]
    }
}
