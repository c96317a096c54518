//! The packet classes whose verdict differs between two rule sets.

use std::collections::BTreeMap;

use crate::dd::{self, Dd, Id, Kind, NDIMS, NONE, TRUE, Term};
use crate::error::{Error, Limit, Result};
use crate::model::*;
use crate::sets::IntervalSet;

use super::compile::dims_max;
use super::*;

/// One packet class whose verdict differs between two rule sets.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Scope.
    pub scope: String,
    /// Family.
    pub family: Family,
    /// Protocols.
    pub proto: (u8, u8),
    /// Destination ports (or ICMP type/code values).
    pub ports: (u16, u16),
    /// Sources.
    pub sources: IntervalSet,
    /// Input interface atoms (names).
    pub iif: Vec<String>,
    /// Verdict before.
    pub old: Term,
    /// Verdict after.
    pub new: Term,
}

fn same_verdict(a: Term, b: Term) -> bool {
    a.kind == b.kind && (a.via == NONE) == (b.via == NONE)
}

impl Analysis<'_> {
    /// The packet classes (to this machine, NAT followed) whose verdict differs between rule
    /// set 0 and rule set 1, for scopes with the same name. At most `limit` classes.
    pub fn diff(&mut self, limit: usize) -> Result<Vec<Change>> {
        let mut out = Vec::new();
        // both rule sets' scopes were compiled into separate stores; recompile the new side
        // into the old side's store so the functions can be combined
        let names: Vec<(usize, usize)> = self
            .scopes
            .iter()
            .enumerate()
            .filter(|(_, s)| s.set == 0)
            .filter_map(|(i, s)| {
                self.scopes.iter().position(|o| o.set == 1 && o.name == s.name).map(|j| (i, j))
            })
            .collect();
        for (i, j) in names {
            for f in Family::BOTH {
                let (old_has, new_has) =
                    (self.scopes[i].fams[f as usize].is_some(), self.scopes[j].fams[f as usize].is_some());
                if !old_has && !new_has {
                    continue;
                }
                let tables_new = self.scopes[j].tables.clone();
                let tables_old = self.scopes[i].tables.clone();
                let mut dd = Dd::new(dims_max(&self.ifaces, f));
                let old = self.view_in(&mut dd, 0, &tables_old, f)?;
                let new = self.view_in(&mut dd, 1, &tables_new, f)?;
                let changed = dd_apply_diff(&mut dd, old, new);
                let name = self.scopes[i].name.clone();
                self.enumerate_changes(&dd, changed, &name, f, limit, &mut out)?;
            }
        }
        Ok(out)
    }

    fn view_in(&mut self, dd: &mut Dd, set: usize, tables: &[usize], f: Family) -> Result<Id> {
        let rs = self.sets[set];
        if !tables.iter().any(|&t| rs.tables[t].families.contains(&f)) {
            // no table filters this family: everything accepted
            return Ok(dd.term(Term { kind: Kind::Accept, rule: NONE, via: NONE }));
        }
        let ff = self.compile_family(set, tables, f)?;
        // move the view from its own store into `dd` by rebuilding it
        Ok(dd.import(&ff.dd, ff.input))
    }

    fn enumerate_changes(
        &self,
        dd: &Dd,
        root: Id,
        scope: &str,
        f: Family,
        limit: usize,
        out: &mut Vec<Change>,
    ) -> Result<()> {
        let mut groups: BTreeMap<((u8, u8), (u16, u16), Vec<String>, Term, Term), IntervalSet> =
            BTreeMap::new();
        let mut ranges = [(0u128, 0u128); NDIMS];
        for (d, r) in ranges.iter_mut().enumerate() {
            *r = (0, dd.max[d]);
        }
        let mut count = 0usize;
        let mut stack: Vec<(Id, [(u128, u128); NDIMS])> = vec![(root, ranges)];
        while let Some((a, rg)) = stack.pop() {
            match dd.children(a) {
                Some((d, kids)) => {
                    for (lo, hi, k) in kids {
                        if k == TRUE {
                            continue;
                        }
                        let mut r2 = rg;
                        r2[d] = (lo, hi);
                        stack.push((k, r2));
                    }
                }
                None => {
                    if a == TRUE {
                        continue;
                    }
                    count += 1;
                    if count > limit.saturating_mul(64) {
                        return Err(Error::TooLarge {
                            location: Location {
                                file: self.sets[0].file.as_str().into(),
                                line: 1,
                                column: 1,
                                path: None,
                            },
                            limit: Limit::DiffClasses,
                        });
                    }
                    let t = dd.term_of(a);
                    let old = dd.term_of(t.via);
                    let new = dd.term_of(t.rule);
                    let iif: Vec<String> = (rg[dd::IIF].0..=rg[dd::IIF].1)
                        .map(|x| self.ifaces.atoms[x as usize].clone())
                        .collect();
                    let key = (
                        (rg[dd::PROTO].0 as u8, rg[dd::PROTO].1 as u8),
                        (rg[dd::DPORT].0 as u16, rg[dd::DPORT].1 as u16),
                        if iif.len() == self.ifaces.atoms.len() { Vec::new() } else { iif },
                        old,
                        new,
                    );
                    let e = groups.entry(key).or_default();
                    *e = e.union(&IntervalSet::range(rg[dd::SRC].0, rg[dd::SRC].1));
                }
            }
        }
        for ((proto, ports, iif, old, new), sources) in groups {
            if out.len() >= limit {
                break;
            }
            out.push(Change { scope: scope.to_string(), family: f, proto, ports, sources, iif, old, new });
        }
        Ok(())
    }
}

fn dd_apply_diff(dd: &mut Dd, old: Id, new: Id) -> Id {
    dd.pair(old, new, &|a, b| same_verdict(a, b))
}
