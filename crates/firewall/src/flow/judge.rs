//! What lint needs from the propagation: every rule of a chain judged alone (shadowed,
//! redundant), and the verdicts the base chains of a hook give a region of packets (the
//! default-deny and egress findings).

use std::sync::Arc;

use foldhash::{HashMap, HashMapExt};

use super::*;
use crate::dd::{Kind, NONE, Term};
use crate::model::{Action, ChainKind, Family, Hook, Policy, Rule};
use crate::sets::{IntervalSet, LazySet};

/// What lint learns about one rule of a chain judged alone (every packet enters the chain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RuleReach {
    /// Not judged: it matches nothing of the family, or its condition is one the analysis
    /// cannot see.
    Skipped,
    /// No packet reaches it; the earlier deciding rules that overlap it (at most 3).
    Shadowed(Vec<usize>),
    /// Some packets reach it; `redundant`: the rest of the chain (or its policy) gives every
    /// one of them the rule's own verdict.
    Reached {
        /// Whether removing the rule changes no verdict.
        redundant: bool,
    },
}

/// Adds a flow (sorted by cell) to flows kept as a binary counter: the last flows merge
/// while the newer is at least half the size of the one before.
fn add_flow(flows: &mut Vec<Vec<(u32, u32)>>, fresh: Vec<(u32, u32)>) {
    if fresh.is_empty() {
        return;
    }
    flows.push(fresh);
    while flows.len() >= 2 && flows[flows.len() - 1].len() * 2 >= flows[flows.len() - 2].len() {
        let (Some(b), Some(a)) = (flows.pop(), flows.pop()) else { return };
        let mut merged = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let e = if j >= b.len() || (i < a.len() && a[i].0 <= b[j].0) {
                i += 1;
                a[i - 1]
            } else {
                j += 1;
                b[j - 1]
            };
            if e.1 != EMPTY {
                merged.push(e);
            }
        }
        if !merged.is_empty() {
            flows.push(merged);
        }
    }
}

/// Whether two rules' matches share a packet.
fn rules_meet(analysis: &Analysis, a: &Rule, b: &Rule, f: Family) -> bool {
    a.cubes(f).iter().any(|x| {
        let xs = analysis.cube_sets(x);
        b.cubes(f).iter().any(|y| {
            let ys = analysis.cube_sets(y);
            xs.iter().zip(&ys).all(|(p, q)| match (p, q) {
                (Some(p), Some(q)) => p.meets(q),
                (Some(p), None) | (None, Some(p)) => !p.is_empty(),
                (None, None) => true,
            })
        })
    })
}

/// The verdict a rule gives by itself, for the redundancy check (accept, drop, reject).
fn own_verdict(a: &Action) -> Option<Kind> {
    match a {
        Action::Accept | Action::Queue => Some(Kind::Accept),
        Action::Drop => Some(Kind::Drop),
        Action::Reject => Some(Kind::Reject),
        _ => None,
    }
}

impl Engine<'_, '_> {
    /// The flow entries a rule matches: (position, matched state, rest state), by position.
    fn match_flow(&mut self, cubes: &[crate::model::Cube], flow: &[(u32, u32)]) -> Vec<(usize, u32, u32)> {
        let mut hits: Vec<(usize, u16)> = Vec::new();
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for (k, c) in cubes.iter().enumerate() {
            if c.is_void() {
                continue;
            }
            ranges.clear();
            self.space.cells(&c.proto, &c.dport, &mut ranges);
            for &(a, b) in &ranges {
                let lo = flow.partition_point(|e| (e.0 as usize) < a);
                for (i, e) in flow[lo..].iter().enumerate() {
                    if e.0 as usize >= b {
                        break;
                    }
                    if e.1 != EMPTY {
                        hits.push((lo + i, k as u16));
                    }
                }
            }
        }
        hits.sort_unstable();
        let conds: Vec<Conditions> = cubes.iter().map(|c| self.conds(c)).collect();
        let mut memo: HashMap<(u32, Vec<u16>), (u32, u32)> = HashMap::new();
        let mut out = Vec::new();
        for (pos, ks) in group_hits(&hits) {
            let s = flow[pos].1;
            let (m, rest) = self.split_state(&mut memo, s, ks, &conds);
            if m != EMPTY {
                out.push((pos, m, rest));
            }
        }
        out
    }

    /// A state whose boxes are tagged with the rule whose packets they are.
    fn tagged(&mut self, s: u32, origin: u32) -> u32 {
        let st = self.states[s as usize].clone();
        let region: Vec<PacketBox> = st.region.iter().map(|b| PacketBox(b.0.clone(), origin)).collect();
        self.state(State { region: Arc::new(region), ..st })
    }

    /// Marks the rules (tags) of exits whose verdict is not the rule's own as not redundant.
    fn judge(&self, outs: &[(u32, u32, Exit)], want: &[Option<Kind>], differs: &mut [bool]) {
        let mut seen: foldhash::HashSet<(u32, Exit)> = foldhash::HashSet::default();
        let mut mark = |kind: Kind, r: &Region| {
            for b in r.iter() {
                let o = b.1 as usize;
                if want.get(o).copied().flatten() != Some(kind)
                    && let Some(d) = differs.get_mut(o)
                {
                    *d = true;
                }
            }
        };
        for &(_, s, x) in outs {
            if !seen.insert((s, x)) {
                continue;
            }
            match x {
                Exit::Return => mark(Kind::Continue, &self.states[s as usize].region),
                Exit::Term(t) => mark(t.kind, &self.states[s as usize].region),
                Exit::Pieces(p) => {
                    for (t, r) in self.pieces[p as usize].iter() {
                        mark(t.kind, r);
                    }
                }
            }
        }
    }
}

impl Analysis<'_> {
    /// Judges every rule of one chain alone (every packet enters it) by first-match
    /// propagation: which rules no packet reaches (and the earlier rules that decide what they
    /// match), and which are redundant (the rest of the chain gives every packet they decide
    /// the same verdict). Rules with a condition the analysis cannot see, or that match no
    /// packet of the family, are skipped; rules fixed by an assumption are not counted as
    /// deciding.
    ///
    /// Two flows go through the chain's rules in order, in the (protocol, port) cells of the
    /// chain and the chains it jumps to: what reaches each rule (what no earlier rule has
    /// decided), and the packets each rule decided so far, each box tagged with its rule, which
    /// the later rules and the policy judge as a chain walk would.
    pub(crate) fn chain_reach(
        &mut self,
        si: usize,
        ti: usize,
        ci: usize,
        f: Family,
    ) -> Result<Vec<RuleReach>> {
        let rs = self.sets[si];
        let table = &rs.tables[ti];
        let chain = &table.chains[ci];
        let rules = &chain.rules;
        // the chains this one can enter, for their cells
        let mut seen = vec![false; table.chains.len()];
        let mut todo = vec![ci];
        while let Some(c) = todo.pop() {
            if std::mem::replace(&mut seen[c], true) {
                continue;
            }
            for r in &table.chains[c].rules {
                if let Action::Jump(n) | Action::Goto(n) = r.action
                    && n < seen.len()
                {
                    todo.push(n);
                }
            }
        }
        let entered =
            table.chains.iter().enumerate().filter(|(c, _)| seen[*c]).flat_map(|(_, c)| c.rules.iter());
        let space = space_of(entered, f);
        let n = space.keys.len();
        let everything = PacketBox(
            [
                Arc::new(IntervalSet::full(self.ifaces.atoms.len() as u128 - 1).into()),
                Arc::new(IntervalSet::full(self.ifaces.atoms.len() as u128 - 1).into()),
                Arc::new(IntervalSet::full(crate::sets::addr_max(f.is_v6())).into()),
                Arc::new(IntervalSet::full(crate::sets::addr_max(f.is_v6())).into()),
                Arc::new(IntervalSet::full(65535).into()),
            ],
            0,
        );
        let mut engine = Engine::new(self, si, f, n, space);
        // what falls off the end of a base chain meets its policy
        let policy = match chain.policy {
            Some(Policy::Drop) => Term { kind: Kind::Drop, rule: NONE, via: NONE },
            _ => Term { kind: Kind::Accept, rule: NONE, via: NONE },
        };
        engine.end_of = chain.hook.is_some().then_some((ti, ci, policy));
        let start = engine.state(State { region: Arc::new(vec![everything]), pending: None, via: NONE });
        let mut reach: Vec<(u32, u32)> = (0..n as u32).map(|a| (a, start)).collect();
        let mut reach_empties = 0usize;
        // what earlier rules decided, as a few flows sorted by cell (a new rule's packets are a
        // flow of their own, merged with the others as in a binary counter: every rule's
        // packets are merged O(log n) times, and a rule looks each flow up by its cells)
        let mut decided: Vec<Vec<(u32, u32)>> = Vec::new();
        let mut facts = vec![RuleReach::Skipped; rules.len()];
        let mut want: Vec<Option<Kind>> = vec![None; rules.len()];
        let mut differs = vec![false; rules.len()];
        let mut deciders: Vec<usize> = Vec::new();
        let mut stack = vec![ci];
        let shadowed_by = |analysis: &Analysis, deciders: &[usize], ri: usize| -> Vec<usize> {
            deciders
                .iter()
                .copied()
                .filter(|&j| rules_meet(analysis, &rules[j], &rules[ri], f))
                .take(3)
                .collect()
        };
        let mut ri = 0;
        while ri < rules.len() {
            // a run of rules that differ only in their disjoint sources, swept at once: what a
            // rule of the run decides meets no other rule of the run
            if let Some(end) = engine.sweep_end(ti, ci, ri)
                && rules[ri..end].iter().all(|r| !r.assumed)
            {
                let mut outs = Vec::new();
                for flow in &mut decided {
                    engine.run_sweep(ti, ci, ri, end, flow, &mut outs);
                }
                engine.judge(&outs, &want, &mut differs);
                let mut outs = Vec::new();
                engine.run_sweep(ti, ci, ri, end, &mut reach, &mut outs);
                reach.retain(|e| e.1 != EMPTY);
                reach_empties = 0;
                let mut fresh: Vec<(u32, u32)> = Vec::new();
                let mut hit = vec![false; end - ri];
                let mut memo: HashMap<u32, Vec<u32>> = HashMap::new();
                for (cell, _, x) in outs {
                    let Exit::Pieces(p) = x else { continue };
                    if let std::collections::hash_map::Entry::Vacant(slot) = memo.entry(p) {
                        let pieces = engine.pieces[p as usize].clone();
                        let mut states = Vec::new();
                        for (t, r) in pieces.iter() {
                            let Some(k) = engine.analysis.refs[t.rule as usize].rule else { continue };
                            hit[k - ri] = true;
                            want[k] = own_verdict(&rules[k].action);
                            let region: Vec<PacketBox> =
                                r.iter().map(|b| PacketBox(b.0.clone(), k as u32)).collect();
                            states.push(engine.state(State {
                                region: Arc::new(region),
                                pending: None,
                                via: NONE,
                            }));
                        }
                        slot.insert(states);
                    }
                    for &s in memo.get(&p).map_or(&[][..], |v| v.as_slice()) {
                        fresh.push((cell, s));
                    }
                }
                add_flow(&mut decided, fresh);
                for k in ri..end {
                    if hit[k - ri] {
                        facts[k] = RuleReach::Reached { redundant: false };
                        deciders.push(k);
                    } else {
                        facts[k] = RuleReach::Shadowed(shadowed_by(engine.analysis, &deciders, k));
                    }
                }
                ri = end;
                continue;
            }
            let r = &rules[ri];
            // what earlier rules decided, through this one
            let mut outs = Vec::new();
            for flow in &mut decided {
                let mut empties = 0;
                engine.apply_rule(ti, ci, ri, flow, &mut outs, &mut empties, &mut stack)?;
            }
            engine.judge(&outs, &want, &mut differs);
            // this rule, on what reaches it
            let cubes = r.cubes(f);
            let matches_nothing = cubes.iter().all(|c| {
                c.is_void() || engine.conds(c).iter().any(|s| s.as_ref().is_some_and(|s| s.is_empty()))
            });
            if matches_nothing || !r.stateful.is_empty() {
                ri += 1;
                continue;
            }
            let hits = engine.match_flow(cubes, &reach);
            if hits.is_empty() {
                facts[ri] = RuleReach::Shadowed(shadowed_by(engine.analysis, &deciders, ri));
                ri += 1;
                continue;
            }
            facts[ri] = RuleReach::Reached { redundant: false };
            if let Some(k) = own_verdict(&r.action) {
                want[ri] = Some(k);
                let mut memo: HashMap<u32, u32> = HashMap::new();
                let mut fresh: Vec<(u32, u32)> = Vec::with_capacity(hits.len());
                for &(pos, m, _) in &hits {
                    let s = match memo.get(&m) {
                        Some(&s) => s,
                        None => {
                            let s = engine.tagged(m, ri as u32);
                            memo.insert(m, s);
                            s
                        }
                    };
                    fresh.push((reach[pos].0, s));
                }
                add_flow(&mut decided, fresh);
            }
            // what this rule decides leaves the chain (a jump: where the called chain decides)
            if matches!(r.action, Action::Continue) || r.assumed {
                ri += 1;
                continue;
            }
            if let Action::Jump(c) = r.action {
                let hooked = table.chains.get(c).is_some_and(|x| x.hook.is_some());
                // whether the called chain decides anything the rule matches at all
                let whole: Vec<(u32, u32)> = (0..n as u32).map(|a| (a, start)).collect();
                let all: Vec<(u32, u32)> = engine
                    .match_flow(cubes, &whole)
                    .into_iter()
                    .map(|(pos, m, _)| (whole[pos].0, m))
                    .collect();
                let exits = engine.run_chain(ti, c, all, &mut stack)?;
                if hooked || exits.iter().any(|x| !matches!(x.2, Exit::Return)) {
                    deciders.push(ri);
                }
                let matched: Vec<(u32, u32)> = hits.iter().map(|&(pos, m, _)| (reach[pos].0, m)).collect();
                for &(pos, _, rest) in &hits {
                    reach[pos].1 = rest;
                }
                if !hooked {
                    let mut back = false;
                    for (a, s, x) in engine.run_chain(ti, c, matched, &mut stack)? {
                        if matches!(x, Exit::Return) {
                            reach.push((a, s));
                            back = true;
                        }
                    }
                    if back {
                        reach.retain(|e| e.1 != EMPTY);
                        reach_empties = 0;
                        reach.sort_by_key(|e| e.0);
                    }
                }
            } else {
                deciders.push(ri);
                for &(pos, _, rest) in &hits {
                    reach[pos].1 = rest;
                    reach_empties += usize::from(rest == EMPTY);
                }
            }
            if reach_empties * 2 > reach.len() {
                reach.retain(|e| e.1 != EMPTY);
                reach_empties = 0;
            }
            ri += 1;
        }
        // what falls off the end: the policy of a base chain, back to the caller otherwise
        let end = engine.end_of.map_or(Exit::Return, |(_, _, policy)| Exit::Term(policy));
        let outs: Vec<(u32, u32, Exit)> =
            decided.iter().flatten().filter(|e| e.1 != EMPTY).map(|&(a, s)| (a, s, end)).collect();
        engine.judge(&outs, &want, &mut differs);
        for (k, fact) in facts.iter_mut().enumerate() {
            if let RuleReach::Reached { redundant } = fact {
                *redundant = want[k].is_some() && !differs[k];
            }
        }
        Ok(facts)
    }

    /// The verdicts the base chains of some hooks give the packets of a region (interface
    /// atoms in, destinations; everything else any value): each distinct decision's terminal.
    pub(crate) fn hook_verdicts(
        &mut self,
        scope: usize,
        f: Family,
        hooks: &[(Hook, ChainKind)],
        iif: Option<IntervalSet>,
        dst: Option<IntervalSet>,
    ) -> Result<Vec<Term>> {
        let (si, tables) = (self.scopes[scope].set, self.scopes[scope].tables.clone());
        let space = main_space(self, si, &tables, f);
        let n = space.keys.len();
        let chains = hook_chains(self.sets[si], &tables, f, hooks);
        let atoms = || Arc::new(LazySet::new(IntervalSet::full(self.ifaces.atoms.len() as u128 - 1)));
        let addrs = IntervalSet::full(crate::sets::addr_max(f.is_v6()));
        let start = PacketBox(
            [
                iif.map_or_else(atoms, |s| Arc::new(s.into())),
                atoms(),
                Arc::new(addrs.clone().into()),
                Arc::new(dst.unwrap_or(addrs).into()),
                Arc::new(IntervalSet::full(65535).into()),
            ],
            0,
        );
        let mut engine = Engine::new(self, si, f, n, space);
        let s0 = engine.state(State { region: Arc::new(vec![start]), pending: None, via: NONE });
        let init: Vec<(u32, u32)> = (0..n as u32).map(|a| (a, s0)).collect();
        engine.pipeline(&chains, init, false)?;
        let mut out: Vec<Term> = Vec::new();
        for d in &engine.decisions {
            match d {
                Decision::One(t, _) => out.push(*t),
                Decision::Pieces(p) => out.extend(engine.pieces[*p as usize].iter().map(|(t, _)| *t)),
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}
