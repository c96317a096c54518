//! Exposure by first-match propagation (header-space style), the way `fw show` computes it.
//!
//! The decision diagrams of [`crate::analysis`] hold the whole function of a rule set; when
//! many (source, port) rules meet many port rules, that function is as large as their
//! product. The exposure does not need the function, only what each (protocol, port) gets from
//! each source. So here the packet space is cut in two:
//!
//! - **atoms**: the (protocol, destination port) cells that every rule's protocol and port sets
//!   are unions of (the rows of the table, before equal neighbours merge);
//! - **regions**: what is left of the other dimensions (input and output interface, source,
//!   destination, source port) as a union of disjoint boxes.
//!
//! Packets flow through the chains rule by rule: each atom carries the regions that reach the
//! rule (a *state*, shared by every atom that fares the same, so a rule is applied once per
//! state, not once per atom); a rule splits what it matches off and records a *decision*
//! (verdict, rule, region) for the atoms it touched. A source blocklist — a run of rules that
//! differ only in their sources — is applied as one sweep. Jumps, gotos, returns, several base
//! chains on one hook, DNAT into the input or forward path and rules with conditions the
//! analysis cannot see follow the same semantics as the diagrams (docs/firewall.md), and the
//! two are compared on the whole corpus by the tests.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

// the maps here are keyed by small integers and hashes of our own: a fast hash, not SipHash
use foldhash::{HashMap, HashMapExt};

use crate::analysis::{
    Analysis, Class, Exposure, Outcome, Row, RuleRef, Sources, View, forward_used, hook_chains, unicast,
};
use crate::dd::{Kind, NONE, Term};
use crate::error::Result;
use crate::model::{Action, ChainKind, Family, Hook, Policy, Rule};
use crate::sets::{IntervalSet, LazySet, boundary_hash, ip_to_u128};

const IIF: usize = 0;
const OIF: usize = 1;
const SRC: usize = 2;
const DST: usize = 3;
const SPORT: usize = 4;
const REGION_DIMS: usize = 5;
/// The order a box is cut in when a cube is taken out of it: the large source set last, so
/// only one piece copies it.
const CUT_ORDER: [usize; REGION_DIMS] = [IIF, OIF, SPORT, DST, SRC];

type Set = Arc<LazySet>;

/// A box of packets: one set per dimension, and a tag: in the exposure, the part of the source
/// classes' Venn diagram its sources lie in (so a box's sources belong to a class wholly or
/// not at all, and the sources of a class are read off without intersecting sets); in lint's
/// chain judgement, the rule that decided its packets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PacketBox([Set; REGION_DIMS], u32);

/// A union of disjoint boxes.
type Region = Arc<Vec<PacketBox>>;

/// A rule cube's conditions outside (protocol, port).
type Conditions = [Option<IntervalSet>; REGION_DIMS];

fn meet(a: &Set, s: &IntervalSet) -> Set {
    a.meet(s).map_or_else(|| a.clone(), Arc::new)
}

fn box_and(b: &PacketBox, c: &Conditions) -> Option<PacketBox> {
    let mut out = b.clone();
    for (d, cond) in c.iter().enumerate() {
        if let Some(s) = cond {
            let x = meet(&b.0[d], s);
            if x.is_empty() {
                return None;
            }
            out.0[d] = x;
        }
    }
    Some(out)
}

/// Splits a region into the part a cube matches and the rest.
fn split(r: &[PacketBox], c: &Conditions) -> (Vec<PacketBox>, Vec<PacketBox>) {
    let mut inside = Vec::new();
    let mut rest = Vec::new();
    for b in r {
        let Some(hit) = box_and(b, c) else {
            rest.push(b.clone());
            continue;
        };
        let mut cur = b.clone();
        for d in CUT_ORDER {
            if let Some(s) = &c[d] {
                let outside = cur.0[d].without(s);
                if let Some(o) = outside.filter(|o| !o.is_empty()) {
                    let mut p = cur.clone();
                    p.0[d] = Arc::new(o);
                    rest.push(p);
                }
                cur.0[d] = hit.0[d].clone();
            }
        }
        inside.push(hit);
    }
    (inside, rest)
}

/// The (protocol, port) cells of one run: sorted by protocol range, then port; several cells
/// may share a key (translated packets). Every rule's protocol and port sets are unions of
/// whole cells.
struct Space {
    keys: Vec<((u8, u8), (u16, u16))>,
    /// The row (cell of the main space) each cell reports to.
    orig: Vec<u32>,
    /// (protocol range, first cell, end).
    groups: Vec<(u8, u8, usize, usize)>,
}

impl Space {
    fn new(mut cells: Vec<(((u8, u8), (u16, u16)), u32)>) -> Space {
        cells.sort_by_key(|c| c.0);
        let mut groups: Vec<(u8, u8, usize, usize)> = Vec::new();
        for (i, ((p, _), _)) in cells.iter().enumerate() {
            match groups.last_mut() {
                Some(g) if (g.0, g.1) == *p => g.3 = i + 1,
                _ => groups.push((p.0, p.1, i, i + 1)),
            }
        }
        Space { keys: cells.iter().map(|c| c.0).collect(), orig: cells.iter().map(|c| c.1).collect(), groups }
    }

    /// The cells a protocol and port condition covers, as index ranges.
    fn cells(&self, proto: &Option<IntervalSet>, dport: &Option<IntervalSet>, out: &mut Vec<(usize, usize)>) {
        for &(plo, phi, s, e) in &self.groups {
            if let Some(p) = proto
                && !p.meets(&IntervalSet::range(u128::from(plo), u128::from(phi)))
            {
                continue;
            }
            match dport {
                None => out.push((s, e)),
                Some(d) => {
                    let keys = &self.keys[s..e];
                    for &(ql, qh) in d.intervals() {
                        let a = s + keys.partition_point(|k| u128::from(k.1.0) < ql);
                        let b = s + keys.partition_point(|k| u128::from(k.1.0) <= qh);
                        if a < b {
                            out.push((a, b));
                        }
                    }
                }
            }
        }
    }
}

/// What reaches a point of the chains: a region, the accept an earlier chain of the hook
/// gave it, and the DNAT rule that translated it.
#[derive(Debug, Clone)]
struct State {
    region: Region,
    pending: Option<Term>,
    via: u32,
}

/// How a packet leaves a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Exit {
    /// Back to the caller (or, in a base chain, to the policy).
    Return,
    /// A verdict.
    Term(Term),
    /// Verdicts of a swept run of rules, each for its part of the region.
    Pieces(u32),
}

/// A recorded verdict for some cells.
enum Decision {
    One(Term, Region),
    Pieces(u32),
}

const EMPTY: u32 = u32::MAX;

struct Engine<'a, 'r> {
    analysis: &'a mut Analysis<'r>,
    si: usize,
    f: Family,
    states: Vec<State>,
    interned: HashMap<u64, Vec<u32>>,
    pieces: Vec<Arc<Vec<(Term, Region)>>>,
    decisions: Vec<Decision>,
    decision_memo: HashMap<(u32, Term), u32>,
    /// Per row (cell of the main space): the decisions that concern it.
    log: Vec<Vec<u32>>,
    space: Space,
    /// (table, chain, rule) -> end of the sweepable run that starts there (or none).
    sweeps: HashMap<(usize, usize, usize), Option<usize>>,
    /// The decision of each swept run's pieces.
    piece_decisions: HashMap<u32, u32>,
    /// A base chain judged alone (lint): what falls off its end meets its policy here (a
    /// verdict), while its RETURN rules still return.
    end_of: Option<(usize, usize, Term)>,
}

/// Sorted (position, cube) hits grouped by position: each position once, with its cubes
/// (each once, in order).
fn group_hits(hits: &[(usize, u16)]) -> Vec<(usize, Vec<u16>)> {
    let mut out: Vec<(usize, Vec<u16>)> = Vec::new();
    for &(pos, k) in hits {
        match out.last_mut() {
            Some((p, ks)) if *p == pos => {
                if ks.last() != Some(&k) {
                    ks.push(k);
                }
            }
            _ => out.push((pos, vec![k])),
        }
    }
    out
}

fn terminal_kind(a: &Action) -> Option<Kind> {
    match a {
        Action::Accept | Action::Queue | Action::Snat => Some(Kind::Accept),
        Action::Drop => Some(Kind::Drop),
        Action::Reject => Some(Kind::Reject),
        Action::Dnat { .. } | Action::Redirect { .. } => Some(Kind::Nat),
        _ => None,
    }
}

fn through(k: Kind) -> bool {
    matches!(k, Kind::Accept | Kind::Nat)
}

impl<'r> Engine<'_, 'r> {
    /// An engine for rule set `si` and family `f` over `space`, whose `n` cells each keep a log.
    fn new<'a>(
        analysis: &'a mut Analysis<'r>,
        si: usize,
        f: Family,
        n: usize,
        space: Space,
    ) -> Engine<'a, 'r> {
        Engine {
            analysis,
            si,
            f,
            states: Vec::new(),
            interned: HashMap::new(),
            pieces: Vec::new(),
            decisions: Vec::new(),
            decision_memo: HashMap::new(),
            log: vec![Vec::new(); n],
            space,
            sweeps: HashMap::new(),
            piece_decisions: HashMap::new(),
            end_of: None,
        }
    }

    fn rule(&self, ti: usize, ci: usize, ri: usize) -> &'r Rule {
        let rs: &'r crate::model::Ruleset = self.analysis.sets[self.si];
        &rs.tables[ti].chains[ci].rules[ri]
    }

    fn rid(&mut self, ti: usize, ci: usize, ri: Option<usize>) -> u32 {
        self.analysis.intern(RuleRef { set: self.si, table: ti, chain: ci, rule: ri })
    }

    /// The id of a state; states with the same region (small sets by content, large ones by
    /// identity) share one, so what follows is worked out once for all of them.
    fn state(&mut self, s: State) -> u32 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut mix = |x: u64| h = (h ^ x).wrapping_mul(0x0100_0000_01b3).rotate_left(23);
        mix(u64::from(s.via));
        if let Some(t) = s.pending {
            mix(t.kind as u64 + 1);
            mix(u64::from(t.rule) << 32 | u64::from(t.via));
        }
        for b in s.region.iter() {
            mix(u64::from(b.1));
            for set in &b.0 {
                if set.is_plain() && set.len_hint() <= 8 {
                    for (a, z) in set.iter() {
                        mix(a as u64 ^ (a >> 64) as u64);
                        mix(z as u64 ^ (z >> 64) as u64);
                    }
                    mix(0xff);
                } else {
                    mix(Arc::as_ptr(set) as u64);
                }
            }
        }
        let same = self.interned.entry(h).or_default();
        for &id in same.iter() {
            let o = &self.states[id as usize];
            if o.via == s.via && o.pending == s.pending && o.region == s.region {
                return id;
            }
        }
        self.states.push(s);
        let id = (self.states.len() - 1) as u32;
        same.push(id);
        id
    }

    fn conds(&self, c: &crate::model::Cube) -> Conditions {
        let sets = self.analysis.cube_sets(c);
        [sets[0].clone(), sets[1].clone(), sets[2].clone(), sets[3].clone(), sets[6].clone()]
    }

    /// State `s` split by the rule cubes `ks` that hit it: the state of its packets inside
    /// any of them and the state of the rest (`EMPTY` where nothing is), remembered per
    /// (state, cubes) in `memo`.
    fn split_state(
        &mut self,
        memo: &mut HashMap<(u32, Vec<u16>), (u32, u32)>,
        s: u32,
        ks: Vec<u16>,
        conds: &[Conditions],
    ) -> (u32, u32) {
        if let Some(&x) = memo.get(&(s, ks.clone())) {
            return x;
        }
        let st = self.states[s as usize].clone();
        let mut rest: Vec<PacketBox> = st.region.to_vec();
        let mut inside: Vec<PacketBox> = Vec::new();
        for &k in &ks {
            let (a, b) = split(&rest, &conds[k as usize]);
            inside.extend(a);
            rest = b;
        }
        let x = if inside.is_empty() {
            (EMPTY, s)
        } else {
            let m = self.state(State { region: Arc::new(inside), ..st.clone() });
            let r = if rest.is_empty() { EMPTY } else { self.state(State { region: Arc::new(rest), ..st }) };
            (m, r)
        };
        memo.insert((s, ks), x);
        x
    }

    fn log_dec(&mut self, cell: u32, d: u32) {
        let row = self.space.orig[cell as usize] as usize;
        self.log[row].push(d);
    }

    fn decide(&mut self, cell: u32, s: u32, t: Term) {
        let d = match self.decision_memo.get(&(s, t)) {
            Some(&d) => d,
            None => {
                self.decisions.push(Decision::One(t, self.states[s as usize].region.clone()));
                let d = (self.decisions.len() - 1) as u32;
                self.decision_memo.insert((s, t), d);
                d
            }
        };
        self.log_dec(cell, d);
    }

    /// The end of a run of rules that differ only in their (disjoint) sources and end in a
    /// verdict, starting at `ri` (at least 4 rules), which is applied as one sweep.
    fn sweep_end(&mut self, ti: usize, ci: usize, ri: usize) -> Option<usize> {
        if let Some(&e) = self.sweeps.get(&(ti, ci, ri)) {
            return e;
        }
        let rs: &'r crate::model::Ruleset = self.analysis.sets[self.si];
        let rules = &rs.tables[ti].chains[ci].rules;
        let f = self.f;
        let simple = |r: &'r Rule| -> Option<&'r IntervalSet> {
            if !r.stateful.is_empty() || !matches!(r.action, Action::Accept | Action::Drop | Action::Reject) {
                return None;
            }
            let [c] = r.cubes(f) else { return None };
            if c.proto.is_some()
                || c.dport.is_some()
                || c.sport.is_some()
                || c.dst.is_some()
                || !c.iif.is_empty()
                || !c.oif.is_empty()
            {
                return None;
            }
            c.src.as_ref().filter(|s| !s.is_empty())
        };
        let mut end = ri;
        let mut all: Vec<(u128, u128)> = Vec::new();
        while end < rules.len() {
            match simple(&rules[end]) {
                Some(s) => all.extend_from_slice(s.intervals()),
                None => break,
            }
            end += 1;
        }
        all.sort_unstable();
        let disjoint = all.windows(2).all(|w| w[0].1 < w[1].0);
        let e = (end - ri >= 4 && disjoint).then_some(end);
        self.sweeps.insert((ti, ci, ri), e);
        e
    }

    fn run_sweep(
        &mut self,
        ti: usize,
        ci: usize,
        from: usize,
        to: usize,
        flow: &mut [(u32, u32)],
        outs: &mut Vec<(u32, u32, Exit)>,
    ) {
        let mut sweep: Vec<(u128, u128, usize)> = Vec::new();
        for ri in from..to {
            let r = self.rule(ti, ci, ri);
            if let Some(s) = r.cubes(self.f)[0].src.as_ref() {
                sweep.extend(s.intervals().iter().map(|&(a, b)| (a, b, ri)));
            }
        }
        sweep.sort_unstable();
        let union = Arc::new(IntervalSet::from_intervals(sweep.iter().map(|x| (x.0, x.1)).collect()));
        let mut memo: HashMap<u32, (Option<u32>, u32)> = HashMap::new();
        for e in flow.iter_mut() {
            if e.1 == EMPTY {
                continue;
            }
            let (pid, rest) = match memo.get(&e.1) {
                Some(&x) => x,
                None => {
                    let st = self.states[e.1 as usize].clone();
                    let mut by_rule: BTreeMap<usize, Vec<PacketBox>> = BTreeMap::new();
                    let mut rest: Vec<PacketBox> = Vec::new();
                    for b in st.region.iter() {
                        let src = &b.0[SRC];
                        // walk the box's sources against the run's
                        let mut j = 0;
                        let mut per: BTreeMap<usize, Vec<(u128, u128)>> = BTreeMap::new();
                        for (a, z) in src.iter() {
                            while j < sweep.len() && sweep[j].1 < a {
                                j += 1;
                            }
                            let mut k = j;
                            while k < sweep.len() && sweep[k].0 <= z {
                                per.entry(sweep[k].2)
                                    .or_default()
                                    .push((a.max(sweep[k].0), z.min(sweep[k].1)));
                                k += 1;
                            }
                        }
                        for (ri, v) in per {
                            let mut p = b.clone();
                            p.0[SRC] = Arc::new(IntervalSet::from_intervals(v).into());
                            by_rule.entry(ri).or_default().push(p);
                        }
                        let left = src.without(&union).map_or_else(|| src.clone(), Arc::new);
                        if !left.is_empty() {
                            let mut p = b.clone();
                            p.0[SRC] = left;
                            rest.push(p);
                        }
                    }
                    let mut ps = Vec::new();
                    for (ri, boxes) in by_rule {
                        let kind = terminal_kind(&self.rule(ti, ci, ri).action).unwrap_or(Kind::Drop);
                        let rule = self.rid(ti, ci, Some(ri));
                        ps.push((Term { kind, rule, via: st.via }, Arc::new(boxes)));
                    }
                    let pid = if ps.is_empty() {
                        None
                    } else {
                        self.pieces.push(Arc::new(ps));
                        Some((self.pieces.len() - 1) as u32)
                    };
                    let rest = if rest.is_empty() {
                        EMPTY
                    } else if pid.is_none() {
                        e.1
                    } else {
                        self.state(State { region: Arc::new(rest), ..st })
                    };
                    memo.insert(e.1, (pid, rest));
                    (pid, rest)
                }
            };
            if let Some(p) = pid {
                outs.push((e.0, e.1, Exit::Pieces(p)));
            }
            e.1 = rest;
        }
    }

    fn run_chain(
        &mut self,
        ti: usize,
        ci: usize,
        flow: Vec<(u32, u32)>,
        stack: &mut Vec<usize>,
    ) -> Result<Vec<(u32, u32, Exit)>> {
        let rs: &'r crate::model::Ruleset = self.analysis.sets[self.si];
        let chain = &rs.tables[ti].chains[ci];
        crate::analysis::enter_chain(chain, ci, stack)?;
        let out = self.run_rules(ti, ci, 0, flow, stack);
        stack.pop();
        out
    }

    /// Runs rules `from..` of a chain on a flow; what falls off the end returns.
    fn run_rules(
        &mut self,
        ti: usize,
        ci: usize,
        from: usize,
        mut flow: Vec<(u32, u32)>,
        stack: &mut Vec<usize>,
    ) -> Result<Vec<(u32, u32, Exit)>> {
        let rs: &'r crate::model::Ruleset = self.analysis.sets[self.si];
        let rules = &rs.tables[ti].chains[ci].rules;
        let mut outs: Vec<(u32, u32, Exit)> = Vec::new();
        let mut ri = from;
        let mut empties = 0usize;
        while ri < rules.len() {
            if empties * 2 > flow.len() {
                flow.retain(|e| e.1 != EMPTY);
                empties = 0;
            }
            if flow.is_empty() {
                break;
            }
            if let Some(end) = self.sweep_end(ti, ci, ri) {
                self.run_sweep(ti, ci, ri, end, &mut flow, &mut outs);
                empties = flow.iter().filter(|e| e.1 == EMPTY).count();
                ri = end;
                continue;
            }
            self.apply_rule(ti, ci, ri, &mut flow, &mut outs, &mut empties, stack)?;
            ri += 1;
        }
        let end = match self.end_of {
            Some((t, c, policy)) if (t, c) == (ti, ci) => Exit::Term(policy),
            _ => Exit::Return,
        };
        outs.extend(flow.into_iter().filter(|e| e.1 != EMPTY).map(|(a, s)| (a, s, end)));
        Ok(outs)
    }

    /// Applies rule `ri` of a chain (not a swept run) to a flow: what it matches leaves as
    /// exits in `outs` (or, for a jump, comes back into the flow), the rest stays.
    #[allow(clippy::too_many_arguments)]
    fn apply_rule(
        &mut self,
        ti: usize,
        ci: usize,
        ri: usize,
        flow: &mut Vec<(u32, u32)>,
        outs: &mut Vec<(u32, u32, Exit)>,
        empties: &mut usize,
        stack: &mut Vec<usize>,
    ) -> Result<()> {
        let rs: &'r crate::model::Ruleset = self.analysis.sets[self.si];
        let rules = &rs.tables[ti].chains[ci].rules;
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        let r = &rules[ri];
        let cubes = r.cubes(self.f);
        if matches!(r.action, Action::Continue) || cubes.is_empty() {
            return Ok(());
        }
        let stateful = !r.stateful.is_empty();
        let tk = terminal_kind(&r.action);
        if stateful {
            match &r.action {
                Action::Jump(_) | Action::Goto(_) => {}
                // a condition resolved in favour of the packet: a rule that would not let
                // it through never takes effect
                _ if !tk.is_some_and(through) => {
                    return Ok(());
                }
                _ => {}
            }
        }
        // the flow entries each cube covers
        let mut hits: Vec<(usize, u16)> = Vec::new();
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
        if hits.is_empty() {
            return Ok(());
        }
        hits.sort_unstable();
        let conds: Vec<Conditions> = cubes.iter().map(|c| self.conds(c)).collect();
        let rid = self.rid(ti, ci, Some(ri));
        // per (state, cubes): (matched state, rest state)
        let mut memo: HashMap<(u32, Vec<u16>), (u32, u32)> = HashMap::new();
        let mut matched: Vec<(u32, u32)> = Vec::new();
        for (pos, ks) in group_hits(&hits) {
            let s = flow[pos].1;
            let (m, rest) = self.split_state(&mut memo, s, ks, &conds);
            if m == EMPTY {
                continue;
            }
            matched.push((flow[pos].0, m));
            if rest == EMPTY {
                *empties += 1;
            }
            flow[pos].1 = rest;
        }
        if matched.is_empty() {
            return Ok(());
        }
        match (&r.action, tk) {
            (Action::Jump(c) | Action::Goto(c), _) if stateful => {
                // per packet: what the rest of the chain does where it lets the packet
                // through, else what the jump does where that lets it through, else the rest
                let rest = self.run_rules(ti, ci, ri + 1, matched.clone(), stack)?;
                let sub = self.run_chain(ti, *c, matched, stack)?;
                let jumped = if matches!(r.action, Action::Jump(_)) {
                    let (mut back, mut done): (Vec<_>, Vec<_>) =
                        sub.into_iter().partition(|x| matches!(x.2, Exit::Return));
                    back.sort_by_key(|x| x.0);
                    let back: Vec<(u32, u32)> = back.into_iter().map(|(a, s, _)| (a, s)).collect();
                    done.extend(self.run_rules(ti, ci, ri + 1, back, stack)?);
                    done
                } else {
                    sub
                };
                self.favour(rest, jumped, outs);
            }
            (_, Some(kind)) if stateful => {
                // what the rest of the chain does with these packets, where it lets them
                // through; this rule's verdict elsewhere
                let sub = self.run_rules(ti, ci, ri + 1, matched, stack)?;
                let mut pmemo: HashMap<u32, u32> = HashMap::new();
                for (a, s, x) in sub {
                    let via = self.states[s as usize].via;
                    let mine = Term { kind, rule: rid, via };
                    let x = match x {
                        Exit::Term(t) if through(t.kind) => Exit::Term(t),
                        Exit::Term(_) | Exit::Return => Exit::Term(mine),
                        Exit::Pieces(p) => {
                            let np = *pmemo.entry(p).or_insert_with(|| {
                                let v: Vec<(Term, Region)> = self.pieces[p as usize]
                                    .iter()
                                    .map(|(t, r)| (if through(t.kind) { *t } else { mine }, r.clone()))
                                    .collect();
                                self.pieces.push(Arc::new(v));
                                (self.pieces.len() - 1) as u32
                            });
                            Exit::Pieces(np)
                        }
                    };
                    outs.push((a, s, x));
                }
            }
            (_, Some(kind)) => {
                for (a, m) in matched {
                    let via = self.states[m as usize].via;
                    outs.push((a, m, Exit::Term(Term { kind, rule: rid, via })));
                }
            }
            (Action::Return, _) => outs.extend(matched.into_iter().map(|(a, m)| (a, m, Exit::Return))),
            (Action::Jump(c), _) => {
                let sub = self.run_chain(ti, *c, matched, stack)?;
                let mut back = false;
                for (a, s, x) in sub {
                    if matches!(x, Exit::Return) {
                        flow.push((a, s));
                        back = true;
                    } else {
                        outs.push((a, s, x));
                    }
                }
                if back {
                    flow.retain(|e| e.1 != EMPTY);
                    *empties = 0;
                    flow.sort_by_key(|e| e.0);
                }
            }
            (Action::Goto(c), _) => {
                let sub = self.run_chain(ti, *c, matched, stack)?;
                outs.extend(sub);
            }
            _ => {}
        }
        Ok(())
    }

    /// An exit as (verdict or `None` for a return, region) pieces.
    fn expand(&self, s: u32, x: Exit) -> Vec<(Option<Term>, Region)> {
        match x {
            Exit::Return => vec![(None, self.states[s as usize].region.clone())],
            Exit::Term(t) => vec![(Some(t), self.states[s as usize].region.clone())],
            Exit::Pieces(p) => self.pieces[p as usize].iter().map(|(t, r)| (Some(*t), r.clone())).collect(),
        }
    }

    /// Combines, per cell, what the rest of a chain does (`rest`) with what a rule with an
    /// unseen condition does (`act`) in favour of the packet: the rest's verdict where it lets
    /// the packet through, else the rule's where that does, else the rest's.
    fn favour(
        &mut self,
        rest: Vec<(u32, u32, Exit)>,
        act: Vec<(u32, u32, Exit)>,
        outs: &mut Vec<(u32, u32, Exit)>,
    ) {
        let mut by: BTreeMap<u32, (Vec<(u32, Exit)>, Vec<(u32, Exit)>)> = BTreeMap::new();
        for (a, s, x) in rest {
            by.entry(a).or_default().0.push((s, x));
        }
        for (a, s, x) in act {
            by.entry(a).or_default().1.push((s, x));
        }
        let mut memo: HashMap<(Vec<(u32, Exit)>, Vec<(u32, Exit)>), Vec<(u32, Exit)>> = HashMap::new();
        for (cell, key) in by {
            if let Some(v) = memo.get(&key) {
                outs.extend(v.iter().map(|&(s, x)| (cell, s, x)));
                continue;
            }
            let mut res: Vec<(u32, Exit)> = Vec::new();
            let tmpl = key.0.first().or(key.1.first()).map(|x| self.states[x.0 as usize].clone());
            let Some(tmpl) = tmpl else { continue };
            let acts: Vec<(Term, Region)> = key
                .1
                .iter()
                .flat_map(|&(s, x)| self.expand(s, x))
                .filter_map(|(t, r)| t.filter(|t| through(t.kind)).map(|t| (t, r)))
                .collect();
            for &(s, x) in &key.0 {
                for (t, r) in self.expand(s, x) {
                    if t.is_some_and(|t| through(t.kind)) {
                        let n = self.state(State { region: r, ..tmpl.clone() });
                        res.push((
                            n,
                            Exit::Term(t.unwrap_or(Term { kind: Kind::Accept, rule: NONE, via: NONE })),
                        ));
                        continue;
                    }
                    let mut left: Vec<PacketBox> = r.to_vec();
                    for (at, ar) in &acts {
                        let mut hit: Vec<PacketBox> = Vec::new();
                        for b in ar.iter() {
                            let c: Conditions = [0, 1, 2, 3, 4].map(|d| Some(b.0[d].to_set()));
                            let (inside, outside) = split(&left, &c);
                            hit.extend(inside);
                            left = outside;
                        }
                        if !hit.is_empty() {
                            let n = self.state(State { region: Arc::new(hit), ..tmpl.clone() });
                            res.push((n, Exit::Term(*at)));
                        }
                    }
                    if !left.is_empty() {
                        let n = self.state(State { region: Arc::new(left), ..tmpl.clone() });
                        res.push((n, t.map_or(Exit::Return, Exit::Term)));
                    }
                }
            }
            outs.extend(res.iter().map(|&(s, x)| (cell, s, x)));
            memo.insert(key, res);
        }
    }

    /// Runs the base chains of a hook in order. Verdicts are recorded; what the last chain
    /// accepts is recorded too (`nat == false`) or returned with the translations (`nat`).
    fn pipeline(
        &mut self,
        chains: &[(usize, usize)],
        mut flow: Vec<(u32, u32)>,
        nat: bool,
    ) -> Result<(Vec<(u32, u32)>, Vec<(u32, u32, u32)>)> {
        let mut accepted: Vec<(u32, u32)> = Vec::new();
        let mut translated: Vec<(u32, u32, u32)> = Vec::new();
        if chains.is_empty() {
            if nat {
                return Ok((flow, translated));
            }
            for (a, s) in flow {
                let via = self.states[s as usize].via;
                self.decide(a, s, Term { kind: Kind::Accept, rule: NONE, via });
            }
            return Ok((accepted, translated));
        }
        for (k, &(ti, ci)) in chains.iter().enumerate() {
            let last = k + 1 == chains.len();
            flow.sort_by_key(|e| e.0);
            let outs = self.run_chain(ti, ci, std::mem::take(&mut flow), &mut Vec::new())?;
            let rs: &'r crate::model::Ruleset = self.analysis.sets[self.si];
            let chain = &rs.tables[ti].chains[ci];
            let pol = self.rid(ti, ci, None);
            let pol_drop = chain.policy == Some(Policy::Drop);
            let mut expanded: HashMap<u32, (Option<u32>, Vec<u32>)> = HashMap::new();
            for (a, s, x) in outs {
                let st = &self.states[s as usize];
                let via = st.via;
                match x {
                    Exit::Return if pol_drop => self.decide(a, s, Term { kind: Kind::Drop, rule: pol, via }),
                    Exit::Return => {
                        if !last {
                            flow.push((a, s));
                        } else if nat {
                            accepted.push((a, s));
                        } else {
                            let t = st.pending.unwrap_or(Term { kind: Kind::Accept, rule: pol, via });
                            self.decide(a, s, t);
                        }
                    }
                    Exit::Term(t) if t.kind == Kind::Accept => {
                        if !last {
                            let n = self.state(State { pending: Some(t), ..st.clone() });
                            flow.push((a, n));
                        } else if nat {
                            accepted.push((a, s));
                        } else {
                            self.decide(a, s, t);
                        }
                    }
                    Exit::Term(t) if t.kind == Kind::Nat && nat => translated.push((a, s, t.rule)),
                    Exit::Term(t) => self.decide(a, s, t),
                    Exit::Pieces(p) => {
                        let all = self.pieces[p as usize].clone();
                        if (last && !nat) || all.iter().all(|(t, _)| t.kind != Kind::Accept) {
                            let d = match self.piece_decisions.get(&p) {
                                Some(&d) => d,
                                None => {
                                    self.decisions.push(Decision::Pieces(p));
                                    let d = (self.decisions.len() - 1) as u32;
                                    self.piece_decisions.insert(p, d);
                                    d
                                }
                            };
                            self.log_dec(a, d);
                            continue;
                        }
                        // accepted parts go on to the next chain (or out of the NAT hook)
                        let (dec, states) = expanded.entry(p).or_insert_with(|| (None, Vec::new())).clone();
                        let (dec, states) = if states.is_empty() && dec.is_none() {
                            let rest: Vec<(Term, Region)> =
                                all.iter().filter(|(t, _)| t.kind != Kind::Accept).cloned().collect();
                            let dec = (!rest.is_empty()).then(|| {
                                self.pieces.push(Arc::new(rest));
                                self.decisions.push(Decision::Pieces((self.pieces.len() - 1) as u32));
                                (self.decisions.len() - 1) as u32
                            });
                            let base = self.states[s as usize].clone();
                            let states: Vec<u32> = all
                                .iter()
                                .filter(|(t, _)| t.kind == Kind::Accept)
                                .map(|(t, r)| {
                                    self.state(State {
                                        region: r.clone(),
                                        pending: if nat { None } else { Some(*t) },
                                        via: base.via,
                                    })
                                })
                                .collect();
                            expanded.insert(p, (dec, states.clone()));
                            (dec, states)
                        } else {
                            (dec, states)
                        };
                        if let Some(d) = dec {
                            self.log_dec(a, d);
                        }
                        for n in states {
                            if last { accepted.push((a, n)) } else { flow.push((a, n)) }
                        }
                    }
                }
            }
        }
        Ok((accepted, translated))
    }
}

/// The main space: the (protocol, port) cells of every cube of the scope's rules.
fn main_space(analysis: &Analysis, si: usize, tables: &[usize], f: Family) -> Space {
    let rs = analysis.sets[si];
    let rules = tables
        .iter()
        .map(|&ti| &rs.tables[ti])
        .filter(|t| t.families.contains(&f))
        .flat_map(|t| t.chains.iter())
        .flat_map(|c| c.rules.iter());
    space_of(rules, f)
}

/// The (protocol, port) cells that the cubes of these rules are unions of.
fn space_of<'a>(rules: impl Iterator<Item = &'a Rule>, f: Family) -> Space {
    let mut pb: std::collections::BTreeSet<u32> = [0, 6, 7, 17, 18, 256].into();
    let mut cubes: Vec<&crate::model::Cube> = Vec::new();
    for r in rules {
        for cube in r.cubes(f) {
            if let Some(p) = &cube.proto {
                for &(a, b) in p.intervals() {
                    pb.insert(a as u32);
                    pb.insert(b as u32 + 1);
                }
            }
            if cube.dport.is_some() {
                cubes.push(cube);
            }
        }
    }
    let pb: Vec<u32> = pb.into_iter().filter(|&x| x <= 256).collect();
    let mut cells = Vec::new();
    for w in pb.windows(2) {
        let (plo, phi) = (w[0], w[1] - 1);
        let g = IntervalSet::range(u128::from(plo), u128::from(phi));
        let mut qb: std::collections::BTreeSet<u32> = [0, 65536].into();
        for c in &cubes {
            if c.proto.as_ref().is_some_and(|p| !p.meets(&g)) {
                continue;
            }
            if let Some(d) = &c.dport {
                for &(a, b) in d.intervals() {
                    qb.insert((a as u32).min(65536));
                    qb.insert((b as u32 + 1).min(65536));
                }
            }
        }
        let qb: Vec<u32> = qb.into_iter().collect();
        for q in qb.windows(2) {
            let n = cells.len() as u32;
            cells.push((((plo as u8, phi as u8), (q[0] as u16, (q[1] - 1) as u16)), n));
        }
    }
    Space::new(cells)
}

/// A row's (terminal, sources) for one class, by terminal.
type Parts = Vec<(Term, Sources)>;

impl Analysis<'_> {
    /// The exposure of every scope and family for the source classes (at most 64; later ones
    /// are left out): per protocol and port range, what each class gets from which rules. The
    /// input view (NAT followed: DNATed ports appear as published), and with `forward` the
    /// forward view where a forward chain has rules; `dst`: only traffic to this address;
    /// `external`: the interfaces traffic arrives on (empty: every interface but loopback and
    /// container bridges, see [`crate::analysis::Ifaces::external`]). Computed by first-match
    /// propagation, without decision diagrams (see the module documentation); works on
    /// [`Analysis::outline`].
    pub fn exposure(
        &mut self,
        classes: &[Class],
        dst: Option<IpAddr>,
        forward: bool,
        external: &[String],
    ) -> Result<Vec<Exposure>> {
        let mut out = Vec::new();
        let iif = Arc::new(LazySet::new(self.ifaces.external(external)));
        let oif = Arc::new(LazySet::new(self.ifaces.not_lo()));
        for sc in 0..self.scopes.len() {
            let (si, tables, name) = {
                let s = &self.scopes[sc];
                (s.set, s.tables.clone(), s.name.clone())
            };
            for f in Family::BOTH {
                let rs = self.sets[si];
                if !tables.iter().any(|&t| rs.tables[t].families.contains(&f)) {
                    continue;
                }
                if dst.is_some_and(|d| d.is_ipv6() != f.is_v6()) {
                    continue;
                }
                let mut views = vec![View::Input];
                if forward && forward_used(rs, &tables, f) {
                    views.push(View::Forward);
                }
                // the Venn diagram of the classes: (sources, the classes that hold them)
                let mut venn: Vec<(IntervalSet, u64)> = Vec::new();
                for (ci, c) in classes.iter().enumerate().take(64) {
                    let set = if f.is_v6() { &c.v6 } else { &c.v4 };
                    let mut next = Vec::new();
                    let mut left = set.clone();
                    for (part, mask) in venn {
                        let both = part.intersect(set);
                        let only = part.without(set);
                        left = left.without(&both);
                        if !both.is_empty() {
                            next.push((both, mask | 1 << ci));
                        }
                        if !only.is_empty() {
                            next.push((only, mask));
                        }
                    }
                    if !left.is_empty() {
                        next.push((left, 1 << ci));
                    }
                    venn = next;
                }
                let d = Arc::new(LazySet::new(match dst {
                    Some(d) => IntervalSet::single(ip_to_u128(d)),
                    None => unicast(f),
                }));
                let masks: Vec<u64> = venn.iter().map(|v| v.1).collect();
                let start: Vec<PacketBox> = venn
                    .into_iter()
                    .enumerate()
                    .map(|(i, (set, _))| {
                        PacketBox(
                            [
                                iif.clone(),
                                oif.clone(),
                                Arc::new(set.into()),
                                d.clone(),
                                Arc::new(IntervalSet::full(65535).into()),
                            ],
                            i as u32,
                        )
                    })
                    .collect();
                for view in views {
                    let e = self.flow_view(si, &tables, f, view, (&start, &masks), classes, &name)?;
                    out.push(e);
                }
            }
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn flow_view(
        &mut self,
        si: usize,
        tables: &[usize],
        f: Family,
        view: View,
        (start, masks): (&[PacketBox], &[u64]),
        classes: &[Class],
        scope: &str,
    ) -> Result<Exposure> {
        let space = main_space(self, si, tables, f);
        let n = space.keys.len();
        let keys = space.keys.clone();
        let input_filter = hook_chains(
            self.sets[si],
            tables,
            f,
            &[(Hook::Prerouting, ChainKind::Filter), (Hook::Input, ChainKind::Filter)],
        );
        let forward_chains = hook_chains(
            self.sets[si],
            tables,
            f,
            &[(Hook::Prerouting, ChainKind::Filter), (Hook::Forward, ChainKind::Filter)],
        );
        let nat_chains = hook_chains(self.sets[si], tables, f, &[(Hook::Prerouting, ChainKind::Nat)]);
        let mut engine = Engine::new(self, si, f, n, space);
        let s0 = engine.state(State { region: Arc::new(start.to_vec()), pending: None, via: NONE });
        let init: Vec<(u32, u32)> = (0..n as u32).map(|a| (a, s0)).collect();
        match view {
            View::Forward => {
                engine.pipeline(&forward_chains, init, false)?;
            }
            View::Input => {
                let (cont, translated) = engine.pipeline(&nat_chains, init, true)?;
                let cont: Vec<(u32, u32)> = cont
                    .into_iter()
                    .map(|(a, s)| {
                        let st = engine.states[s as usize].clone();
                        if st.pending.is_some() {
                            (a, engine.state(State { pending: None, ..st }))
                        } else {
                            (a, s)
                        }
                    })
                    .collect();
                engine.pipeline(&input_filter, cont, false)?;
                // translated packets: into the input path (to this machine) or the forward path,
                // with the new destination and port
                let mut local: Vec<(((u8, u8), (u16, u16)), u32, u32)> = Vec::new();
                let mut routed: Vec<(((u8, u8), (u16, u16)), u32, u32)> = Vec::new();
                let mut memo: HashMap<(u32, u32), u32> = HashMap::new();
                for (a, s, rid) in translated {
                    let Some(rule) = engine.analysis.rule(engine.analysis.refs[rid as usize]) else {
                        continue;
                    };
                    let (to, ports, is_local) = match &rule.action {
                        Action::Dnat { to, ports } => (*to, *ports, to.is_none_or(|a| a.is_loopback())),
                        Action::Redirect { ports } => (None, *ports, true),
                        _ => continue,
                    };
                    let n = match memo.get(&(s, rid)) {
                        Some(&n) => n,
                        None => {
                            let st = engine.states[s as usize].clone();
                            let region = match to {
                                Some(t) if t.is_ipv6() == f.is_v6() => {
                                    let d = Arc::new(LazySet::new(IntervalSet::single(ip_to_u128(t))));
                                    Arc::new(
                                        st.region
                                            .iter()
                                            .map(|b| {
                                                let mut b = b.clone();
                                                b.0[DST] = d.clone();
                                                b
                                            })
                                            .collect(),
                                    )
                                }
                                _ => st.region.clone(),
                            };
                            let n = engine.state(State { region, pending: None, via: rid });
                            memo.insert((s, rid), n);
                            n
                        }
                    };
                    let (p, q) = keys[a as usize];
                    let key = (p, ports.map_or(q, |(lo, _)| (lo, lo)));
                    if is_local { local.push((key, a, n)) } else { routed.push((key, a, n)) }
                }
                for (cells, chains) in [(local, &input_filter), (routed, &forward_chains)] {
                    if cells.is_empty() {
                        continue;
                    }
                    let states: Vec<u32> = {
                        let mut v: Vec<(((u8, u8), (u16, u16)), u32, u32)> = cells;
                        v.sort_by_key(|c| c.0);
                        let sp = Space::new(v.iter().map(|c| (c.0, c.1)).collect());
                        let st = v.iter().map(|c| c.2).collect();
                        engine.space = sp;
                        st
                    };
                    let flow: Vec<(u32, u32)> =
                        states.into_iter().enumerate().map(|(i, s)| (i as u32, s)).collect();
                    engine.pipeline(chains, flow, false)?;
                }
            }
        }
        Ok(assemble(&engine, &keys, classes, masks, f, view, scope))
    }
}

/// The table from the decisions each row collected.
fn assemble(
    engine: &Engine,
    keys: &[((u8, u8), (u16, u16))],
    classes: &[Class],
    masks: &[u64],
    f: Family,
    view: View,
    scope: &str,
) -> Exposure {
    let nc = classes.len();
    let n = keys.len();
    // the rows before equal neighbours merge: a tcp or udp cell alone, the cells of another
    // protocol range together
    let mut groups: Vec<((u8, u8), Option<(u16, u16)>, std::ops::Range<usize>)> = Vec::new();
    let mut i = 0;
    while i < n {
        let (p, q) = keys[i];
        if p.0 == p.1 && (p.0 == 6 || p.0 == 17) {
            groups.push((p, Some(q), i..i + 1));
            i += 1;
        } else {
            let mut j = i;
            while j < n && keys[j].0 == p {
                j += 1;
            }
            groups.push((p, None, i..j));
            i = j;
        }
    }
    // each class is worked out on its own, the classes on up to two threads
    let per_class: Vec<(Arc<[(Term, Sources)]>, Vec<Parts>)> = if nc > 1 && n >= 256 {
        let (mine, theirs): (Vec<usize>, Vec<usize>) = (0..nc).partition(|ci| ci % 2 == 0);
        let groups = &groups;
        let (a, b) = std::thread::scope(|sc| {
            let h = sc.spawn(move || {
                theirs.into_iter().map(|ci| class_parts(engine, groups, masks, ci)).collect::<Vec<_>>()
            });
            let a: Vec<_> = mine.into_iter().map(|ci| class_parts(engine, groups, masks, ci)).collect();
            (a, h.join())
        });
        match b {
            Ok(b) => {
                // back in class order: even classes from here, odd ones from the other thread
                let (mut a, mut b) = (a.into_iter(), b.into_iter());
                (0..nc).filter_map(|ci| if ci % 2 == 0 { a.next() } else { b.next() }).collect()
            }
            // the other thread cannot fail but by a bug; do its classes here then
            Err(_) => (0..nc).map(|ci| class_parts(engine, groups, masks, ci)).collect(),
        }
    } else {
        (0..nc).map(|ci| class_parts(engine, &groups, masks, ci)).collect()
    };
    let mut every: Vec<Arc<[(Term, Sources)]>> = Vec::with_capacity(nc);
    let mut columns: Vec<std::vec::IntoIter<Parts>> = Vec::with_capacity(nc);
    for (e, c) in per_class {
        every.push(e);
        columns.push(c.into_iter());
    }
    let mut rows: Vec<(((u8, u8), Option<(u16, u16)>), Vec<Parts>)> = Vec::new();
    for (p, ports, _) in groups {
        let cls: Vec<Parts> = columns.iter_mut().map(|c| c.next().unwrap_or_default()).collect();
        if let Some(last) = rows.last_mut()
            && last.1 == cls
        {
            if last.0.0 == p
                && let (Some(lp), Some(q)) = (last.0.1.as_mut(), ports)
            {
                lp.1 = q.1;
                continue;
            }
            if last.0.1.is_none() && ports.is_none() && u16::from(last.0.0.1) + 1 == u16::from(p.0) {
                last.0.0.1 = p.1;
                continue;
            }
        }
        rows.push(((p, ports), cls));
    }
    let kinds: Vec<u16> = every.iter().map(|e| crate::analysis::kind_mask(e)).collect();
    Exposure {
        scope: scope.to_string(),
        family: f,
        view,
        classes: classes.iter().map(|c| c.name.clone()).collect(),
        rows: rows
            .into_iter()
            .map(|((proto, ports), cls)| Row {
                proto,
                ports,
                classes: cls
                    .into_iter()
                    .zip(&every)
                    .zip(&kinds)
                    .map(|((p, e), &m)| Outcome { parts: p, everywhere: e.clone(), every_kinds: m })
                    .collect(),
            })
            .collect(),
        everywhere: every,
    }
}

/// One class's column of the table: the parts every row has (shown once), and each row
/// group's own parts, one source set per terminal.
fn class_parts(
    engine: &Engine,
    groups: &[((u8, u8), Option<(u16, u16)>, std::ops::Range<usize>)],
    masks: &[u64],
    ci: usize,
) -> (Arc<[(Term, Sources)]>, Vec<Parts>) {
    // each decision's parts, and an id per distinct content: contents are told apart by a
    // hash of their verdicts and sources (each base hashed once, see `boundary_hash`), then
    // compared
    let mut set_hash: HashMap<usize, u64> = HashMap::new();
    let mut hash_of = |parts: &[(Term, Sources)]| -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut mix = |x: u64| h = (h ^ x).wrapping_mul(0x0100_0000_01b3).rotate_left(17);
        for (t, s) in parts {
            mix(t.kind as u64);
            mix(u64::from(t.rule) << 32 | u64::from(t.via));
            let base = s.base();
            let bh = *set_hash.entry(Arc::as_ptr(base) as usize).or_insert_with(|| boundary_hash(base));
            mix(s.fingerprint(bh));
        }
        h
    };
    let mut contents: HashMap<u64, Vec<(Arc<[(Term, Sources)]>, u32)>> = HashMap::new();
    let mut ncontents: u32 = 0;
    let mut proj: Vec<Option<(u32, Arc<[(Term, Sources)]>)>> = Vec::with_capacity(engine.decisions.len());
    let mut parts: Vec<(Term, Sources)> = Vec::new();
    for d in &engine.decisions {
        parts.clear();
        let mut add = |t: Term, r: &Region| {
            let s = project(r, masks, ci);
            if !s.is_empty() {
                parts.push((t, s));
            }
        };
        match d {
            Decision::One(t, r) => add(*t, r),
            Decision::Pieces(p) => {
                for (t, r) in engine.pieces[*p as usize].iter() {
                    add(*t, r);
                }
            }
        }
        if parts.is_empty() {
            proj.push(None);
            continue;
        }
        let same = contents.entry(hash_of(&parts)).or_default();
        let (id, parts) = match same.iter().find(|(p, _)| **p == *parts) {
            Some((p, id)) => (*id, p.clone()),
            None => {
                ncontents += 1;
                let p: Arc<[(Term, Sources)]> = parts.as_slice().into();
                same.push((p.clone(), ncontents));
                (ncontents, p)
            }
        };
        proj.push(Some((id, parts)));
    }
    // a content every row has (and that no translation decides) is shown once
    let n = engine.log.len();
    let mut count: HashMap<u32, usize> = HashMap::new();
    let mut seen: Vec<u32> = Vec::new();
    for row in &engine.log {
        seen.clear();
        seen.extend(row.iter().filter_map(|&d| proj[d as usize].as_ref().map(|x| x.0)));
        seen.sort_unstable();
        seen.dedup();
        for &id in &seen {
            *count.entry(id).or_default() += 1;
        }
    }
    let mut everywhere: Vec<u32> = Vec::new();
    let mut every: Vec<(Term, Sources)> = Vec::new();
    for &d in engine.log.first().map_or(&[][..], |v| v.as_slice()) {
        if let Some((id, parts)) = &proj[d as usize]
            && count.get(id) == Some(&n)
            && parts.iter().all(|(t, _)| t.via == NONE)
            && !everywhere.contains(id)
        {
            everywhere.push(*id);
            every.extend(parts.iter().cloned());
        }
    }
    // per row group: the rest, one source set per terminal
    let mut unions: HashMap<Vec<usize>, Sources> = HashMap::new();
    let mut all: Vec<(Term, &Sources)> = Vec::new();
    let column = groups
        .iter()
        .map(|(_, _, cells)| {
            all.clear();
            for cell in cells.clone() {
                for &d in &engine.log[cell] {
                    if let Some((id, parts)) = &proj[d as usize]
                        && !everywhere.contains(id)
                    {
                        all.extend(parts.iter().map(|(t, s)| (*t, s)));
                    }
                }
            }
            // by terminal (stable: each terminal's sets in the order they came)
            all.sort_by_key(|x| x.0);
            let mut out: Parts = Vec::new();
            let mut k = 0;
            while k < all.len() {
                let t = all[k].0;
                let mut e = k;
                while e < all.len() && all[e].0 == t {
                    e += 1;
                }
                let mut v: Vec<&Sources> = Vec::new();
                for &(_, s) in &all[k..e] {
                    if !v.iter().any(|x| Arc::ptr_eq(x, s)) {
                        v.push(s);
                    }
                }
                let s = if v.len() == 1 {
                    v[0].clone()
                } else {
                    let mut key: Vec<usize> = v.iter().map(|s| Arc::as_ptr(s) as usize).collect();
                    key.sort_unstable();
                    unions
                        .entry(key)
                        .or_insert_with(|| {
                            let iv: Vec<(u128, u128)> = v.iter().flat_map(|s| s.iter()).collect();
                            Arc::new(IntervalSet::from_intervals(iv).into())
                        })
                        .clone()
                };
                out.push((t, s));
                k = e;
            }
            // a translated source accepted through some output interface is accepted
            let acc_via = out
                .iter()
                .filter(|(t, _)| t.via != NONE && t.kind == Kind::Accept)
                .fold(IntervalSet::empty(), |a, (_, s)| a.union(s));
            if !acc_via.is_empty() {
                for (t, s) in out.iter_mut() {
                    if t.via != NONE
                        && t.kind != Kind::Accept
                        && let Some(n) = s.without(&acc_via)
                    {
                        *s = Arc::new(n);
                    }
                }
                out.retain(|(_, s)| !s.is_empty());
            }
            out
        })
        .collect();
    (every.into(), column)
}

/// The sources of a region within a class: its boxes in the class' parts of the Venn
/// diagram (one box: its set itself, shared).
fn project(r: &Region, masks: &[u64], ci: usize) -> Sources {
    let inside = |b: &&PacketBox| masks.get(b.1 as usize).is_some_and(|m| m >> ci & 1 == 1);
    let mut it = r.iter().filter(inside);
    match (it.next(), it.next()) {
        (None, _) => Arc::new(IntervalSet::empty().into()),
        (Some(b), None) => b.0[SRC].clone(),
        _ => {
            let iv: Vec<(u128, u128)> = r.iter().filter(inside).flat_map(|b| b.0[SRC].iter()).collect();
            Arc::new(IntervalSet::from_intervals(iv).into())
        }
    }
}

mod judge;
pub(crate) use judge::RuleReach;

#[cfg(test)]
mod tests;
