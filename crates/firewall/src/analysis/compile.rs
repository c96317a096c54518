//! Chains, hooks and NAT compiled into decision diagrams (for query batches, diff and verify).

use std::collections::{HashMap, HashSet};

use crate::dd::{self, CONTINUE, Dd, FALSE, HOLE, Id, Kind, NDIMS, NONE, Term};
use crate::error::Result;
use crate::model::*;
use crate::sets::{addr_max, ip_to_u128};

use super::*;

pub(super) fn dims_max(ifaces: &Ifaces, f: Family) -> [u128; NDIMS] {
    let a = addr_max(f.is_v6());
    [ifaces.max(), ifaces.max(), a, a, 255, 65535, 65535]
}

/// First match over rule functions in order (each with HOLE where it does not decide), as a
/// balanced tree of fills.
fn combine(dd: &mut Dd, fs: &[Id]) -> Id {
    match fs.len() {
        0 => HOLE,
        1 => fs[0],
        n => {
            let (a, b) = fs.split_at(n / 2);
            let left = combine(dd, a);
            let right = combine(dd, b);
            dd.replace(left, right, &|t| t.kind == Kind::Hole)
        }
    }
}

/// What a rule does at its place in a chain: `ite(m, act, next)`, or for a rule with a
/// condition the analysis cannot see, the verdict that favours the packet.
fn step(dd: &mut Dd, r: &Rule, m: Id, act: Id, next: Id) -> Id {
    if r.stateful.is_empty() {
        dd.ite(m, act, next)
    } else {
        let best = dd.favour(act, next);
        dd.ite(m, best, next)
    }
}

impl<'r> Analysis<'r> {
    /// The boolean diagram of what a rule matches (before earlier rules).
    pub(crate) fn rule_match(&self, dd: &mut Dd, r: &Rule, f: Family) -> Id {
        let mut m = FALSE;
        for c in r.cubes(f) {
            let sets = self.cube_sets(c);
            let x = dd.cube(&sets);
            m = dd.or(m, x);
        }
        m
    }

    #[allow(clippy::too_many_arguments)]
    fn compile_chain(
        &mut self,
        dd: &mut Dd,
        si: usize,
        ti: usize,
        ci: usize,
        f: Family,
        memo: &mut HashMap<(usize, usize, usize), Id>,
        stack: &mut Vec<usize>,
    ) -> Result<Id> {
        if let Some(&id) = memo.get(&(si, ti, ci)) {
            return Ok(id);
        }
        let rs: &'r Ruleset = self.sets[si];
        let chain = &rs.tables[ti].chains[ci];
        enter_chain(chain, ci, stack)?;
        // Rules are combined as a balanced tree: each rule is `ite(match, action, HOLE)`, and
        // two neighbouring runs combine by filling the first's HOLE with the second; a run of
        // n rules costs O(n log n) rather than the O(n^2) of adding rules one by one to a
        // growing function. Rules with conditions the analysis cannot see depend on what
        // follows them and are applied one at a time.
        let mut d = CONTINUE;
        let mut run: Vec<Id> = Vec::new();
        let flush = |dd: &mut Dd, run: &mut Vec<Id>, d: Id| -> Id {
            if run.is_empty() {
                return d;
            }
            run.reverse();
            let f = combine(dd, run);
            run.clear();
            dd.replace(f, d, &|t| t.kind == Kind::Hole)
        };
        for (ri, r) in chain.rules.iter().enumerate().rev() {
            if matches!(r.action, Action::Continue) {
                continue;
            }
            let m = self.rule_match(dd, r, f);
            if m == FALSE {
                continue;
            }
            let rid = self.rule_id(RuleRef { set: si, table: ti, chain: ci, rule: Some(ri) });
            let stateful = !r.stateful.is_empty();
            if stateful {
                d = flush(dd, &mut run, d);
            }
            // what follows the rule: the rest of the chain (HOLE while batching)
            let next = if stateful { d } else { HOLE };
            let act = match &r.action {
                Action::Accept | Action::Queue | Action::Snat => {
                    dd.term(Term { kind: Kind::Accept, rule: rid, via: NONE })
                }
                Action::Drop => dd.term(Term { kind: Kind::Drop, rule: rid, via: NONE }),
                Action::Reject => dd.term(Term { kind: Kind::Reject, rule: rid, via: NONE }),
                Action::Return => CONTINUE,
                Action::Dnat { .. } | Action::Redirect { .. } => {
                    dd.term(Term { kind: Kind::Nat, rule: rid, via: NONE })
                }
                Action::Jump(c) => {
                    let sub = self.compile_chain(dd, si, ti, *c, f, memo, stack)?;
                    dd.replace(sub, next, &|t| t.kind == Kind::Continue)
                }
                Action::Goto(c) => self.compile_chain(dd, si, ti, *c, f, memo, stack)?,
                Action::Continue => continue,
            };
            if stateful {
                d = step(dd, r, m, act, d);
            } else {
                let leaf = dd.ite(m, act, HOLE);
                run.push(leaf);
            }
        }
        d = flush(dd, &mut run, d);
        if chain.hook.is_some() {
            let rid = self.rule_id(RuleRef { set: si, table: ti, chain: ci, rule: None });
            let kind = if chain.policy == Some(Policy::Drop) { Kind::Drop } else { Kind::Accept };
            let pol = dd.term(Term { kind, rule: rid, via: NONE });
            d = dd.seq(d, pol);
        }
        stack.pop();
        memo.insert((si, ti, ci), d);
        Ok(d)
    }

    fn pipeline(dd: &mut Dd, policies: &HashSet<u32>, chains: &[(i32, usize, Id)]) -> Id {
        let mut sorted = chains.to_vec();
        sorted.sort_by_key(|c| (c.0, c.1));
        let mut acc: Option<Id> = None;
        for &(_, _, c) in sorted.iter().rev() {
            acc = Some(match acc {
                None => c,
                Some(next) => {
                    // a packet a rule accepted and a later chain's policy lets pass was
                    // decided by that rule
                    let mut out = c;
                    for tid in dd.terminals(c) {
                        let t = dd.term_of(tid);
                        if t.kind != Kind::Accept {
                            continue;
                        }
                        let then = if t.rule != NONE && !policies.contains(&t.rule) {
                            dd.map(next, &mut |dd, x| {
                                if x.kind == Kind::Accept && policies.contains(&x.rule) {
                                    tid
                                } else {
                                    dd.term(x)
                                }
                            })
                        } else {
                            next
                        };
                        out = dd.replace(out, then, &|x| x == t);
                    }
                    out
                }
            });
        }
        acc.unwrap_or_else(|| dd.term(Term { kind: Kind::Accept, rule: NONE, via: NONE }))
    }

    pub(super) fn compile_family(&mut self, si: usize, tables: &[usize], f: Family) -> Result<FamilyFns> {
        let mut dd = Dd::new(dims_max(&self.ifaces, f));
        let mut memo = HashMap::new();
        let rs: &'r Ruleset = self.sets[si];
        for &ti in tables {
            let t = &rs.tables[ti];
            if !t.families.contains(&f) {
                continue;
            }
            // base chains first, then user chains too, for lint
            for (ci, c) in t.chains.iter().enumerate() {
                if c.hook.is_some() {
                    self.compile_chain(&mut dd, si, ti, ci, f, &mut memo, &mut Vec::new())?;
                }
            }
            for ci in 0..t.chains.len() {
                self.compile_chain(&mut dd, si, ti, ci, f, &mut memo, &mut Vec::new())?;
            }
        }
        let forward_used = forward_used(rs, tables, f);
        // the compiled chains that run on some hooks, in the order they run
        let get = |hooks: &[(Hook, ChainKind)]| -> Vec<(i32, usize, Id)> {
            hook_chains(rs, tables, f, hooks)
                .into_iter()
                .enumerate()
                .filter_map(|(i, (ti, ci))| memo.get(&(si, ti, ci)).map(|&id| (0, i, id)))
                .collect()
        };
        // the rule ids of base chains' policies
        let policies: HashSet<u32> = self
            .refs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.set == si && r.rule.is_none())
            .map(|(i, _)| i as u32)
            .collect();
        let input_filter = Analysis::pipeline(
            &mut dd,
            &policies,
            &get(&[(Hook::Prerouting, ChainKind::Filter), (Hook::Input, ChainKind::Filter)]),
        );
        let forward = Analysis::pipeline(
            &mut dd,
            &policies,
            &get(&[(Hook::Prerouting, ChainKind::Filter), (Hook::Forward, ChainKind::Filter)]),
        );
        let output = Analysis::pipeline(
            &mut dd,
            &policies,
            &get(&[(Hook::Output, ChainKind::Filter), (Hook::Postrouting, ChainKind::Filter)]),
        );
        let nat_chains = get(&[(Hook::Prerouting, ChainKind::Nat)]);
        let nat = if nat_chains.is_empty() {
            dd.term(Term { kind: Kind::Accept, rule: NONE, via: NONE })
        } else {
            Analysis::pipeline(&mut dd, &policies, &nat_chains)
        };
        // the exposure view: NAT first, then input (or forward for translated packets). The
        // translated branches are put into the (small) NAT function first, and the input
        // path last, in one pass over it.
        let mut input = nat;
        for tid in dd.terminals(nat) {
            let t = dd.term_of(tid);
            if t.kind != Kind::Nat {
                continue;
            }
            let r = self.refs[t.rule as usize];
            let Some(rule) = self.rule(r) else { continue };
            let (to, ports, local) = match &rule.action {
                Action::Dnat { to, ports } => {
                    let local = to.is_none_or(|a| a.is_loopback());
                    (*to, *ports, local)
                }
                Action::Redirect { ports } => (None, *ports, true),
                _ => continue,
            };
            let mut target = if local { input_filter } else { forward };
            if let Some(a) = to
                && a.is_ipv6() == f.is_v6()
            {
                target = dd.cofactor(target, dd::DST, ip_to_u128(a));
            }
            if let Some((p, _)) = ports {
                target = dd.cofactor(target, dd::DPORT, u128::from(p));
            }
            let via = t.rule;
            let tagged = dd.map(target, &mut |dd, x| dd.term(Term { via, ..x }));
            input = dd.replace(input, tagged, &|x| x == t);
        }
        let input = dd.replace(input, input_filter, &|t| {
            (t.kind == Kind::Accept || t.kind == Kind::Continue) && t.via == NONE
        });
        let chains = memo.into_iter().filter(|((s, _, _), _)| *s == si).collect();
        Ok(FamilyFns { dd, input, input_filter, forward, output, nat, chains, forward_used })
    }
}
