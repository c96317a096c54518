//! Exact analysis of a rule set: every chain compiled into a decision diagram over the
//! packet space of the first packet of a new connection (conntrack state NEW), hooks composed
//! in priority order, DNAT followed into the input or forward path; then exposure per
//! transport and port range and source class, one-packet queries with the chain path,
//! diffs, and the facts lint needs.
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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use crate::dd::{self, CONTINUE, Dd, FALSE, HOLE, Id, Kind, NDIMS, NONE, TRUE, Term};
use crate::error::{Error, ErrorKind, Limit, Result};
use crate::model::*;
use crate::sets::{IntervalSet, addr_max, ip_to_u128, prefix};

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

/// The interface names rules mention, as atoms of the interface dimensions: atom 0 is any
/// name no rule mentions; each exact name is one atom; each prefix pattern (`eth+`) has an
/// atom standing for the names it matches that no rule names exactly.
#[derive(Debug, Clone)]
pub struct Ifaces {
    /// Atom names (atom 0 is `*`; prefix atoms end in `+`).
    pub atoms: Vec<String>,
    reps: Vec<String>,
}

impl Ifaces {
    fn new(rulesets: &[&Ruleset]) -> Ifaces {
        let mut exact: BTreeSet<String> = BTreeSet::new();
        let mut prefixes: BTreeSet<String> = BTreeSet::new();
        exact.insert("lo".to_string());
        for rs in rulesets {
            for (_, _, r) in rs.rules() {
                for c in r.v4.iter().chain(&r.v6) {
                    for m in c.iif.iter().chain(&c.oif) {
                        for p in &m.any_of {
                            match p {
                                IfacePattern::Exact(n) => exact.insert(n.clone()),
                                IfacePattern::Prefix(n) => prefixes.insert(n.clone()),
                            };
                        }
                    }
                }
            }
        }
        let mut atoms = vec!["*".to_string()];
        let mut reps = vec!["\u{1}*".to_string()];
        for e in exact {
            reps.push(e.clone());
            atoms.push(e);
        }
        for p in prefixes {
            atoms.push(format!("{p}+"));
            reps.push(format!("{p}\u{1}"));
        }
        Ifaces { atoms, reps }
    }
    fn max(&self) -> u128 {
        self.atoms.len() as u128 - 1
    }
    fn set(&self, ms: &[IfaceMatch]) -> Option<IntervalSet> {
        if ms.is_empty() {
            return None;
        }
        let v = self
            .reps
            .iter()
            .enumerate()
            .filter(|(_, n)| ms.iter().all(|m| m.matches(n)))
            .map(|(i, _)| (i as u128, i as u128))
            .collect();
        Some(IntervalSet::from_intervals(v))
    }
    /// The atom of an interface name (`None`: no interface).
    pub fn atom(&self, name: Option<&str>) -> u128 {
        let Some(name) = name else { return 0 };
        if let Some(i) = self.atoms.iter().position(|a| a == name) {
            return i as u128;
        }
        // the longest prefix pattern that matches
        let mut best: Option<(usize, usize)> = None;
        for (i, a) in self.atoms.iter().enumerate() {
            if let Some(p) = a.strip_suffix('+')
                && name.starts_with(p)
                && best.is_none_or(|(_, l)| p.len() > l)
            {
                best = Some((i, p.len()));
            }
        }
        best.map_or(0, |(i, _)| i as u128)
    }
    /// The atom of `lo`.
    pub fn lo(&self) -> u128 {
        self.atom(Some("lo"))
    }
    /// The atoms as a set, without `lo`.
    pub fn not_lo(&self) -> IntervalSet {
        IntervalSet::full(self.max()).without(&IntervalSet::single(self.lo()))
    }
    /// The atoms internet (and private-range) traffic can arrive on: all but loopback and
    /// interfaces that look like container or VM bridges and veths (docker*, br-*, veth*,
    /// cni*, virbr*, cali*, flannel*, lxc*, lxdbr*, podman*, kube-*, vxlan.calico, weave),
    /// unless `external` names the external interfaces.
    pub fn external(&self, external: &[String]) -> IntervalSet {
        if !external.is_empty() {
            let v = external.iter().map(|n| self.atom(Some(n))).map(|a| (a, a)).collect();
            return IntervalSet::from_intervals(v);
        }
        const INTERNAL: [&str; 14] = [
            "docker",
            "br-",
            "veth",
            "cni",
            "virbr",
            "cali",
            "flannel",
            "lxc",
            "lxdbr",
            "podman",
            "kube-",
            "vxlan.calico",
            "weave",
            "tunl0",
        ];
        let v = self
            .atoms
            .iter()
            .enumerate()
            .filter(|(i, a)| *i == 0 || (a.as_str() != "lo" && !INTERNAL.iter().any(|p| a.starts_with(p))))
            .map(|(i, _)| (i as u128, i as u128))
            .collect();
        IntervalSet::from_intervals(v)
    }

    /// A real interface name that stands for an atom (for `verify`): the name itself, the
    /// prefix plus `x0` for a prefix atom, `pfwx0` for the "other" atom.
    pub fn sample_name(&self, atom: u128) -> String {
        let a = &self.atoms[atom as usize];
        if atom == 0 {
            let mut n = "pfwx0".to_string();
            while self.atom(Some(&n)) != 0 {
                n.push('0');
            }
            n
        } else if let Some(p) = a.strip_suffix('+') {
            let mut n = format!("{p}x0");
            while self.atom(Some(&n)) != atom && n.len() < 15 {
                n.push('0');
            }
            n
        } else {
            a.clone()
        }
    }
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

fn dims_max(ifaces: &Ifaces, f: Family) -> [u128; NDIMS] {
    let a = addr_max(f.is_v6());
    [ifaces.max(), ifaces.max(), a, a, 255, 65535, 65535]
}

/// The base chains of a scope's tables that run on the given hooks, in the order a packet
/// meets them: by hook in the order given (prerouting filter chains before the input and
/// forward chains), then by priority, then in the order the file lists them.
pub(crate) fn hook_chains(
    rs: &Ruleset,
    tables: &[usize],
    f: Family,
    hooks: &[(Hook, ChainKind)],
) -> Vec<(usize, usize)> {
    let mut v: Vec<(usize, i32, usize, usize, usize)> = Vec::new();
    let mut order = 0usize;
    for &ti in tables {
        let t = &rs.tables[ti];
        if !t.families.contains(&f) {
            continue;
        }
        for (ci, c) in t.chains.iter().enumerate() {
            let Some(h) = c.hook else { continue };
            if let Some(stage) = hooks.iter().position(|&x| x == (h, c.kind)) {
                v.push((stage, c.priority, order, ti, ci));
            }
            order += 1;
        }
    }
    v.sort_unstable();
    v.into_iter().map(|x| (x.3, x.4)).collect()
}

/// Whether a forward filter chain of the scope has rules (its exposure is shown too).
pub(crate) fn forward_used(rs: &Ruleset, tables: &[usize], f: Family) -> bool {
    tables.iter().any(|&ti| {
        let t = &rs.tables[ti];
        t.families.contains(&f)
            && t.chains
                .iter()
                .any(|c| c.hook == Some(Hook::Forward) && c.kind == ChainKind::Filter && !c.rules.is_empty())
    })
}

/// Enters chain `ci` from the chains on `stack`: a loop, or jumps nested deeper than the
/// kernel allows, is an error at the chain.
pub(crate) fn enter_chain(chain: &Chain, ci: usize, stack: &mut Vec<usize>) -> Result<()> {
    if stack.contains(&ci) {
        return Err(Error::syntax(chain.location.clone(), ErrorKind::JumpLoop { chain: chain.name.clone() }));
    }
    if stack.len() > 64 {
        return Err(Error::syntax(chain.location.clone(), ErrorKind::JumpsTooDeep));
    }
    stack.push(ci);
    Ok(())
}

/// Checks every chain's jumps as the diagrams and `fw show` do when they enter chains: a loop,
/// or jumps nested deeper than 64 chains, is the same error at the same chain. The chain walk
/// of a single query runs this first, so that every command judges a rule set's chains by
/// one rule.
pub fn check_jumps(rs: &Ruleset) -> Result<()> {
    fn visit(t: &Table, ci: usize, stack: &mut Vec<usize>, done: &mut HashSet<usize>) -> Result<()> {
        if done.contains(&ci) {
            return Ok(());
        }
        enter_chain(&t.chains[ci], ci, stack)?;
        for r in &t.chains[ci].rules {
            if let Action::Jump(c) | Action::Goto(c) = r.action
                && c < t.chains.len()
            {
                visit(t, c, stack, done)?;
            }
        }
        stack.pop();
        done.insert(ci);
        Ok(())
    }
    for t in &rs.tables {
        let mut done = HashSet::new();
        for ci in 0..t.chains.len() {
            visit(t, ci, &mut Vec::new(), &mut done)?;
        }
    }
    Ok(())
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
pub fn step(dd: &mut Dd, r: &Rule, m: Id, act: Id, next: Id) -> Id {
    if r.stateful.is_empty() {
        dd.ite(m, act, next)
    } else {
        let best = dd.favour(act, next);
        dd.ite(m, best, next)
    }
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
    /// [`Analysis::exposure_flow`] and for naming rules (queries, diffs and lint need
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
    pub fn intern(&mut self, r: RuleRef) -> u32 {
        self.rule_id(r)
    }

    fn rule_id(&mut self, r: RuleRef) -> u32 {
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
    pub fn cube_sets(&self, c: &Cube) -> [Option<IntervalSet>; NDIMS] {
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

    /// The boolean diagram of what a rule matches (before earlier rules).
    pub fn rule_match(&self, dd: &mut Dd, r: &Rule, f: Family) -> Id {
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

    fn compile_family(&mut self, si: usize, tables: &[usize], f: Family) -> Result<FamilyFns> {
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

/// Source classes of the exposure table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    /// Name (`internet`, `private`, or the CIDR the user named).
    pub name: String,
    /// IPv4 addresses.
    pub v4: IntervalSet,
    /// IPv6 addresses.
    pub v6: IntervalSet,
}

/// Destinations traffic from another machine can have: unicast, not loopback.
pub fn unicast(f: Family) -> IntervalSet {
    let max = addr_max(f.is_v6());
    let excluded: &[(&str, u8)] =
        if f.is_v6() { &[("ff00::", 8), ("::1", 128)] } else { &[("224.0.0.0", 3), ("127.0.0.0", 8)] };
    let mut s = IntervalSet::empty();
    for (a, l) in excluded {
        if let Ok(ip) = a.parse::<IpAddr>() {
            s = s.union(&prefix(ip, *l));
        }
    }
    s.complement(max)
}

/// IPv4 addresses that `portolan_kb::is_public` calls public.
pub fn public_v4() -> IntervalSet {
    let special = [
        ("0.0.0.0", 8),
        ("10.0.0.0", 8),
        ("100.64.0.0", 10),
        ("127.0.0.0", 8),
        ("169.254.0.0", 16),
        ("172.16.0.0", 12),
        ("192.0.2.0", 24),
        ("192.168.0.0", 16),
        ("198.18.0.0", 15),
        ("198.51.100.0", 24),
        ("203.0.113.0", 24),
        ("224.0.0.0", 3),
    ];
    let mut s = IntervalSet::empty();
    for (a, l) in special {
        if let Ok(ip) = a.parse::<IpAddr>() {
            s = s.union(&prefix(ip, l));
        }
    }
    s.complement(addr_max(false))
}

/// IPv6 addresses that `portolan_kb::is_public` calls public (global unicast but not
/// documentation).
pub fn public_v6() -> IntervalSet {
    let mut s = IntervalSet::empty();
    if let (Ok(g), Ok(doc)) = ("2000::".parse::<IpAddr>(), "2001:db8::".parse::<IpAddr>()) {
        s = prefix(g, 3).without(&prefix(doc, 32));
    }
    s
}

/// The standard classes: the internet (public addresses) and private ranges (RFC 1918,
/// unique local IPv6).
pub fn standard_classes() -> Vec<Class> {
    let mut pv4 = IntervalSet::empty();
    for (a, l) in [("10.0.0.0", 8), ("172.16.0.0", 12), ("192.168.0.0", 16)] {
        if let Ok(ip) = a.parse::<IpAddr>() {
            pv4 = pv4.union(&prefix(ip, l));
        }
    }
    let pv6 = "fc00::".parse::<IpAddr>().map(|ip| prefix(ip, 7)).unwrap_or_default();
    vec![
        Class { name: "internet".into(), v4: public_v4(), v6: public_v6() },
        Class { name: "private".into(), v4: pv4, v6: pv6 },
    ]
}

/// The addresses that are neither the internet nor private ranges, each in a class of its own:
/// shared address space (RFC 6598, carrier-grade NAT), documentation, benchmarking, link-local,
/// loopback, multicast, and the rest (reserved). With [`standard_classes`] they cover every
/// address exactly once, so no accepted source can fall between the columns of `fw show`.
pub fn special_classes() -> Vec<Class> {
    let set = |v: &[(&str, u8)]| {
        let mut s = IntervalSet::empty();
        for (a, l) in v {
            if let Ok(ip) = a.parse::<IpAddr>() {
                s = s.union(&prefix(ip, *l));
            }
        }
        s
    };
    let mut out = vec![
        Class { name: "shared".into(), v4: set(&[("100.64.0.0", 10)]), v6: IntervalSet::empty() },
        Class {
            name: "documentation".into(),
            v4: set(&[("192.0.2.0", 24), ("198.51.100.0", 24), ("203.0.113.0", 24)]),
            v6: set(&[("2001:db8::", 32)]),
        },
        Class { name: "benchmarking".into(), v4: set(&[("198.18.0.0", 15)]), v6: IntervalSet::empty() },
        Class { name: "link-local".into(), v4: set(&[("169.254.0.0", 16)]), v6: set(&[("fe80::", 10)]) },
        Class { name: "loopback".into(), v4: set(&[("127.0.0.0", 8)]), v6: set(&[("::1", 128)]) },
        Class { name: "multicast".into(), v4: set(&[("224.0.0.0", 4)]), v6: set(&[("ff00::", 8)]) },
    ];
    // the rest: 0.0.0.0/8, 240.0.0.0/4 and the IPv6 space outside every class above
    let mut v4 = IntervalSet::empty();
    let mut v6 = IntervalSet::empty();
    for c in standard_classes().iter().chain(out.iter()) {
        v4 = v4.union(&c.v4);
        v6 = v6.union(&c.v6);
    }
    out.push(Class {
        name: "reserved".into(),
        v4: v4.complement(addr_max(false)),
        v6: v6.complement(addr_max(true)),
    });
    out
}

/// Whether class `c` of the exposure has a source accepted by a rule that accepts nothing from
/// the internet (class 0) in that row.
pub fn telling(exps: &[Exposure], c: usize) -> bool {
    let accepting = |o: &Outcome| -> Vec<Term> {
        o.parts.iter().map(|(t, _)| *t).filter(|t| t.kind == Kind::Accept).collect()
    };
    exps.iter().any(|e| {
        e.rows.iter().any(|r| {
            let inet = accepting(&r.classes[0]);
            accepting(&r.classes[c]).iter().any(|t| !inet.contains(t))
        })
    })
}

/// Drops the candidate classes (`special`) that tell nothing the internet column does not: a
/// class stays when some row accepts some of its sources by a rule that accepts nothing from
/// the internet there. (An accept from 100.64.0.0/10 stays, in its own column; a rule open to
/// every source, or a blocklist in front of one, adds no column.)
pub fn keep_telling_classes(
    exps: &mut [Exposure],
    classes: Vec<Class>,
    special: std::ops::Range<usize>,
) -> Vec<Class> {
    let keep: Vec<bool> = (0..classes.len()).map(|c| !special.contains(&c) || telling(exps, c)).collect();
    fn kept<T>(v: &mut Vec<T>, keep: &[bool]) {
        let mut flags = keep.iter();
        v.retain(|_| flags.next().copied().unwrap_or(true));
    }
    for e in exps.iter_mut() {
        kept(&mut e.classes, &keep);
        kept(&mut e.everywhere, &keep);
        for r in &mut e.rows {
            kept(&mut r.classes, &keep);
        }
    }
    classes.into_iter().zip(keep).filter(|(_, k)| *k).map(|(c, _)| c).collect()
}

/// Whether some rule of `rs` names sources among the [`special_classes`] but none of the
/// internet: only then can a special class be accepted where the internet is not, so only
/// then is the exposure worth computing per special class. (A check of the rules, not of the
/// exposure: it may say yes where the exposure then shows nothing new.)
pub fn names_special_sources(rs: &Ruleset) -> bool {
    let special: Vec<Class> = special_classes();
    let (pub4, pub6) = (public_v4(), public_v6());
    rs.rules().any(|(_, _, r)| {
        [(Family::V4, &pub4), (Family::V6, &pub6)].into_iter().any(|(f, public)| {
            r.cubes(f).iter().any(|c| {
                c.src.as_ref().is_some_and(|src| {
                    !src.meets(public)
                        && special.iter().any(|k| src.meets(if f.is_v6() { &k.v6 } else { &k.v4 }))
                })
            })
        })
    })
}

/// Why a user-named source is not a set of addresses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceSpecError {
    /// An end of a range is not an address.
    #[error("bad address {addr:?} in {spec:?}")]
    Address {
        /// The word.
        addr: String,
        /// The whole source.
        spec: String,
    },
    /// A range from IPv4 to IPv6.
    #[error("range {0:?} mixes IPv4 and IPv6")]
    MixedRange(String),
    /// Neither an address nor a prefix.
    #[error("bad address {addr:?} in {spec:?} (ADDR, ADDR/LEN or A-B)")]
    Form {
        /// The word.
        addr: String,
        /// The whole source.
        spec: String,
    },
    /// A prefix length beyond the family's width.
    #[error("bad prefix length in {0:?}")]
    Prefix(String),
}

/// A class for a user-named source (`203.0.113.0/24`, an address, or `a-b`).
pub fn named_class(spec: &str) -> std::result::Result<Class, SourceSpecError> {
    let mut v4 = IntervalSet::empty();
    let mut v6 = IntervalSet::empty();
    for part in spec.split(',') {
        let s = if let Some((a, b)) = part.split_once('-') {
            let bad = |x: &str| SourceSpecError::Address { addr: x.to_string(), spec: spec.to_string() };
            let a: IpAddr = a.trim().parse().map_err(|_| bad(a))?;
            let b: IpAddr = b.trim().parse().map_err(|_| bad(b))?;
            if a.is_ipv6() != b.is_ipv6() {
                return Err(SourceSpecError::MixedRange(part.to_string()));
            }
            (a.is_ipv6(), IntervalSet::range(ip_to_u128(a), ip_to_u128(b)))
        } else {
            let (a, l) = part.split_once('/').map_or((part, None), |(a, l)| (a, Some(l)));
            let ip: IpAddr = a
                .trim()
                .parse()
                .map_err(|_| SourceSpecError::Form { addr: a.to_string(), spec: spec.to_string() })?;
            let bits = if ip.is_ipv6() { 128 } else { 32 };
            let len = match l {
                Some(l) => l
                    .parse::<u8>()
                    .ok()
                    .filter(|&n| n <= bits)
                    .ok_or_else(|| SourceSpecError::Prefix(part.to_string()))?,
                None => bits,
            };
            (ip.is_ipv6(), prefix(ip, len))
        };
        if s.0 { v6 = v6.union(&s.1) } else { v4 = v4.union(&s.1) }
    }
    Ok(Class { name: spec.to_string(), v4, v6 })
}

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
pub fn kind_mask(parts: &[(Term, Sources)]) -> u16 {
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

type Parts = BTreeMap<Id, Sources>;

impl Analysis<'_> {
    /// Exposure of every scope and family for the classes (input view, and the forward view
    /// where a forward chain has rules). `dst`: only traffic to this address.
    pub fn exposure(&mut self, classes: &[Class], dst: Option<IpAddr>, forward: bool) -> Vec<Exposure> {
        self.exposure_on(classes, dst, forward, &[])
    }

    /// [`Analysis::exposure`] for traffic arriving on the named interfaces (empty: every
    /// interface but loopback and container bridges, see [`Ifaces::external`]).
    pub fn exposure_on(
        &mut self,
        classes: &[Class],
        dst: Option<IpAddr>,
        forward: bool,
        external: &[String],
    ) -> Vec<Exposure> {
        let mut out = Vec::new();
        let ifaces = self.ifaces.clone();
        let iif_set = ifaces.external(external);
        for sc in &mut self.scopes {
            for f in Family::BOTH {
                let Some(ff) = sc.fams[f as usize].as_mut() else { continue };
                let mut views = vec![(View::Input, ff.input)];
                if forward && ff.forward_used {
                    views.push((View::Forward, ff.forward));
                }
                for (view, mut root) in views {
                    if let Some(d) = dst {
                        if d.is_ipv6() != f.is_v6() {
                            continue;
                        }
                        root = ff.dd.cofactor(root, dd::DST, ip_to_u128(d));
                    }
                    // the output interface of a routed (or DNATed) packet is the route's, which
                    // the rule file does not say: any but loopback (and the best of them is
                    // taken for translated packets, below)
                    let oif = ifaces.not_lo();
                    let (every, rows) = exposure_rows(&mut ff.dd, root, classes, f, &iif_set, &oif);
                    let dd = &ff.dd;
                    let everywhere: Vec<Arc<[(Term, Sources)]>> = every
                        .into_iter()
                        .map(|p| p.into_iter().map(|(id, s)| (dd.term_of(id), s)).collect())
                        .collect();
                    out.push(Exposure {
                        scope: sc.name.clone(),
                        family: f,
                        view,
                        classes: classes.iter().map(|c| c.name.clone()).collect(),
                        rows: rows
                            .into_iter()
                            .map(|(proto, ports, cls)| Row {
                                proto,
                                ports,
                                classes: cls
                                    .into_iter()
                                    .zip(&everywhere)
                                    .map(|(p, e)| Outcome {
                                        parts: p.into_iter().map(|(id, s)| (dd.term_of(id), s)).collect(),
                                        everywhere: e.clone(),
                                        every_kinds: kind_mask(e),
                                    })
                                    .collect(),
                            })
                            .collect(),
                        everywhere,
                    });
                }
            }
        }
        out
    }
}

type RawRow = ((u8, u8), Option<(u16, u16)>, Vec<Parts>);

/// Walks the dimensions above the protocol for one class: which port-diagrams are reached,
/// with which sources.
fn collect_upper(
    dd: &Dd,
    a: Id,
    src: &IntervalSet,
    iif: &IntervalSet,
    oif: &IntervalSet,
    dst: &IntervalSet,
    acc: &mut HashMap<Id, IntervalSet>,
) {
    if src.is_empty() {
        return;
    }
    match dd.children(a) {
        Some((d, kids)) if d < dd::PROTO => {
            for (lo, hi, k) in kids {
                let r = IntervalSet::range(lo, hi);
                match d {
                    dd::IIF => {
                        if !r.intersect(iif).is_empty() {
                            collect_upper(dd, k, src, iif, oif, dst, acc);
                        }
                    }
                    dd::OIF => {
                        if !r.intersect(oif).is_empty() {
                            collect_upper(dd, k, src, iif, oif, dst, acc);
                        }
                    }
                    dd::SRC => {
                        let s = src.intersect(&r);
                        collect_upper(dd, k, &s, iif, oif, dst, acc);
                    }
                    dd::DST => {
                        if !r.intersect(dst).is_empty() {
                            collect_upper(dd, k, src, iif, oif, dst, acc);
                        }
                    }
                    _ => collect_upper(dd, k, src, iif, oif, dst, acc),
                }
            }
        }
        _ => {
            let e = acc.entry(a).or_default();
            *e = e.union(src);
        }
    }
}

/// The partition of a port-diagram: per protocol interval, per port interval, the terminals.
fn port_partition(dd: &mut Dd, p: Id) -> Vec<((u8, u8), Vec<(u128, u128, Vec<Id>)>)> {
    let mut out = Vec::new();
    let protos: Vec<(u128, u128, Id)> = match dd.children(p) {
        Some((d, kids)) if d == dd::PROTO => kids,
        _ => vec![(0, 255, p)],
    };
    for (lo, hi, k) in protos {
        // split out the port protocols so each gets its own rows
        let mut cuts: Vec<(u128, u128)> = Vec::new();
        let mut at = lo;
        for pp in [6u128, 17] {
            if pp >= at && pp <= hi {
                if pp > at {
                    cuts.push((at, pp - 1));
                }
                cuts.push((pp, pp));
                at = pp + 1;
            }
        }
        if at <= hi {
            cuts.push((at, hi));
        }
        for (a, b) in cuts {
            let ports: Vec<(u128, u128, Vec<Id>)> = match dd.children(k) {
                Some((d, kids)) if d == dd::DPORT => {
                    kids.into_iter().map(|(l, h, c)| (l, h, dd.terminals(c))).collect()
                }
                _ => vec![(0, 65535, dd.terminals(k))],
            };
            if a == b && (a == 6 || a == 17) {
                out.push(((a as u8, b as u8), ports));
            } else {
                let mut all: Vec<Id> = ports.into_iter().flat_map(|x| x.2).collect();
                all.sort_unstable();
                all.dedup();
                out.push(((a as u8, b as u8), vec![(0, 65535, all)]));
            }
        }
    }
    out
}

/// The exposure of one function for the classes: per class, the verdicts that do not depend
/// on protocol or port, and the rows of the rest.
///
/// The walk above the protocol (interfaces, addresses) ends, for each class, in a map from
/// port-diagrams (or terminals, decided whatever the port) to the sources that reach them.
/// A row's parts per terminal are the union of the sources of the port-diagrams that give
/// it at that port; the unions are memoised by their contributors and shared, so a large
/// blocklist in front of many port rules costs one set, not one per port.
fn exposure_rows(
    dd: &mut Dd,
    root: Id,
    classes: &[Class],
    f: Family,
    iif: &IntervalSet,
    oif: &IntervalSet,
) -> (Vec<Parts>, Vec<RawRow>) {
    // per class: port-diagram -> sources, and the terminals reached whatever the port
    let mut per_class: Vec<Vec<(Id, Sources)>> = Vec::new();
    let mut everywhere: Vec<Parts> = Vec::new();
    let unicast = unicast(f);
    for c in classes {
        let src = if f.is_v6() { &c.v6 } else { &c.v4 };
        let mut acc = HashMap::new();
        collect_upper(dd, root, src, iif, oif, &unicast, &mut acc);
        let mut varying: Vec<(Id, Sources)> = Vec::new();
        let mut fixed = Parts::new();
        for (id, s) in acc {
            // translated packets are judged per row (see the via adjustment below)
            if Dd::is_term(id) && dd.term_of(id).via == NONE {
                fixed.insert(id, Arc::new(s.into()));
            } else {
                varying.push((id, Arc::new(s.into())));
            }
        }
        varying.sort_unstable_by_key(|x| x.0);
        per_class.push(varying);
        everywhere.push(fixed);
    }
    let mut parts_cache: HashMap<Id, Vec<((u8, u8), Vec<(u128, u128, Vec<Id>)>)>> = HashMap::new();
    for acc in &per_class {
        for (p, _) in acc {
            if let std::collections::hash_map::Entry::Vacant(e) = parts_cache.entry(*p) {
                e.insert(port_partition(dd, *p));
            }
        }
    }
    // protocol boundaries across all partitions
    // (TCP and UDP always get rows of their own, even when every verdict is port-independent)
    let mut pbounds: BTreeSet<u128> = BTreeSet::from([0, 6, 7, 17, 18]);
    for v in parts_cache.values() {
        for ((a, b), _) in v {
            pbounds.insert(u128::from(*a));
            pbounds.insert(u128::from(*b) + 1);
        }
    }
    let pb: Vec<u128> = pbounds.into_iter().filter(|&x| x <= 255).collect();
    // unions of several port-diagrams' sources, by class and contributors
    let mut unions: HashMap<(usize, Vec<u32>), Sources> = HashMap::new();
    let mut rows: Vec<RawRow> = Vec::new();
    for (i, &plo) in pb.iter().enumerate() {
        let phi = pb.get(i + 1).map_or(255, |&n| n - 1);
        let port_proto = plo == phi && (plo == 6 || plo == 17);
        // each port-diagram's partition for this protocol
        let mut slices: HashMap<Id, &[(u128, u128, Vec<Id>)]> = HashMap::new();
        for (p, v) in &parts_cache {
            if let Some((_, ports)) =
                v.iter().find(|((a, b), _)| u128::from(*a) <= plo && plo <= u128::from(*b))
            {
                slices.insert(*p, ports);
            }
        }
        // port boundaries
        let mut bset: BTreeSet<u128> = BTreeSet::new();
        bset.insert(0);
        if port_proto {
            for ports in slices.values() {
                for (l, h, _) in ports.iter() {
                    bset.insert(*l);
                    bset.insert(h + 1);
                }
            }
        }
        let bs: Vec<u128> = bset.into_iter().filter(|&x| x <= 65535).collect();
        for (j, &lo) in bs.iter().enumerate() {
            let hi = bs.get(j + 1).map_or(65535, |&n| n - 1);
            let mut cls: Vec<Parts> = Vec::new();
            for (ci, acc) in per_class.iter().enumerate() {
                // which port-diagrams give each terminal here
                let mut contributors: BTreeMap<Id, Vec<u32>> = BTreeMap::new();
                for (k, (p, _)) in acc.iter().enumerate() {
                    let Some(ports) = slices.get(p) else { continue };
                    let at = ports.partition_point(|x| x.1 < lo);
                    if let Some((_, _, terms)) = ports.get(at) {
                        for &t in terms {
                            contributors.entry(t).or_default().push(k as u32);
                        }
                    }
                }
                let mut parts: Parts = contributors
                    .into_iter()
                    .map(|(t, ks)| {
                        let s = match ks.as_slice() {
                            [one] => acc[*one as usize].1.clone(),
                            _ => unions
                                .entry((ci, ks))
                                .or_insert_with_key(|(_, ks)| {
                                    let v: Vec<(u128, u128)> = ks
                                        .iter()
                                        .flat_map(|&k| acc[k as usize].1.intervals().iter().copied())
                                        .collect();
                                    Arc::new(IntervalSet::from_intervals(v).into())
                                })
                                .clone(),
                        };
                        (t, s)
                    })
                    .collect();
                // a translated source accepted through some output interface is accepted
                let acc_via = parts
                    .iter()
                    .filter(|(id, _)| {
                        let t = dd.term_of(**id);
                        t.via != NONE && t.kind == Kind::Accept
                    })
                    .fold(IntervalSet::empty(), |a, (_, s)| a.union(s));
                if !acc_via.is_empty() {
                    for (id, s) in parts.iter_mut() {
                        let t = dd.term_of(*id);
                        if t.via != NONE
                            && t.kind != Kind::Accept
                            && let Some(n) = s.without(&acc_via)
                        {
                            *s = Arc::new(n);
                        }
                    }
                    parts.retain(|_, s| !s.is_empty());
                }
                cls.push(parts);
            }
            let proto = (plo as u8, phi as u8);
            let ports = port_proto.then_some((lo as u16, hi as u16));
            if let Some(last) = rows.last_mut()
                && last.2 == cls
            {
                if last.0 == proto
                    && let (Some(lp), Some(_)) = (last.1.as_mut(), ports)
                {
                    lp.1 = hi as u16;
                    continue;
                }
                // neighbouring protocols without ports that fare the same share a row
                if last.1.is_none() && ports.is_none() && u128::from(last.0.1) + 1 == plo {
                    last.0.1 = phi as u8;
                    continue;
                }
            }
            rows.push((proto, ports, cls));
        }
    }
    (everywhere, rows)
}

/// One step of a packet's way through the chains.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The rule (or policy) reached.
    pub rule: RuleRef,
    /// What happened (`matched: jump`, `policy`...).
    pub what: String,
}

/// The answer for one packet.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Scope (a table when the rule set's tables are judged apart).
    pub scope: String,
    /// The verdict.
    pub kind: Kind,
    /// The rule (or policy) that decides, if any.
    pub rule: Option<RuleRef>,
    /// The DNAT/REDIRECT rule that translated the packet, if any.
    pub via: Option<RuleRef>,
    /// The translated destination (address, port) when DNATed.
    pub translated: Option<(Option<IpAddr>, Option<u16>)>,
    /// The path, rule by rule, through every chain that matched.
    pub path: Vec<Step>,
}

/// What a walk of the chains found.
struct Walked {
    kind: Kind,
    rule: Option<RuleRef>,
    via: Option<RuleRef>,
    translated: Option<(Option<IpAddr>, Option<u16>)>,
}

impl Analysis<'_> {
    fn point(&self, p: &Packet) -> [u128; NDIMS] {
        [
            self.ifaces.atom(p.iif.as_deref()),
            self.ifaces.atom(p.oif.as_deref()),
            ip_to_u128(p.src),
            ip_to_u128(p.dst),
            u128::from(p.proto),
            u128::from(p.dport),
            u128::from(p.sport),
        ]
    }

    /// The verdict of the exposure view for a packet (the diagram alone; no path).
    pub fn verdict(&self, scope: usize, p: &Packet) -> Option<Term> {
        let f = if p.src.is_ipv6() { Family::V6 } else { Family::V4 };
        let ff = self.scopes.get(scope)?.fams[f as usize].as_ref()?;
        let t = ff.dd.eval(ff.input, &self.point(p));
        Some(ff.dd.term_of(t))
    }

    /// Answers one packet to this machine (`forward`: routed through it) in every scope: the
    /// verdict from the diagrams, and the path from walking the chains.
    pub fn query(&self, p: &Packet, forward: bool) -> Vec<Answer> {
        let f = if p.src.is_ipv6() { Family::V6 } else { Family::V4 };
        let mut out = Vec::new();
        for (si, sc) in self.scopes.iter().enumerate() {
            let Some(ff) = sc.fams[f as usize].as_ref() else { continue };
            let root = if forward { ff.forward } else { ff.input };
            let t = ff.dd.term_of(ff.dd.eval(root, &self.point(p)));
            let mut path = Vec::new();
            let walked = self.walk(si, f, p, forward, &mut path);
            debug_assert_eq!(walked.0, t.kind, "diagram and chain walk disagree");
            let r = |i: u32| (i != NONE).then(|| self.refs[i as usize]);
            out.push(Answer {
                scope: sc.name.clone(),
                kind: t.kind,
                rule: r(t.rule),
                via: r(t.via),
                translated: walked.1,
                path,
            });
        }
        out
    }

    /// Answers one packet by walking the chains alone, without the decision diagrams: the
    /// same verdict and deciding rule as [`Analysis::query`] (a test holds them together on
    /// every corpus rule set), but it works on [`Analysis::outline`], so a single question
    /// costs a parse and a walk instead of every diagram.
    pub fn query_walk(&self, p: &Packet, forward: bool) -> Vec<Answer> {
        let f = if p.src.is_ipv6() { Family::V6 } else { Family::V4 };
        let mut out = Vec::new();
        for (si, sc) in self.scopes.iter().enumerate() {
            let rs = self.sets[sc.set];
            if !sc.tables.iter().any(|&t| rs.tables[t].families.contains(&f)) {
                continue;
            }
            let mut path = Vec::new();
            let w = self.walk_answer(si, f, p, forward, &mut path);
            out.push(Answer {
                scope: sc.name.clone(),
                kind: w.kind,
                rule: w.rule,
                via: w.via,
                translated: w.translated,
                path,
            });
        }
        out
    }

    /// The verdict by walking the chains rule by rule (the reference the diagrams are tested
    /// against), recording the path.
    pub fn walk(
        &self,
        scope: usize,
        f: Family,
        p: &Packet,
        forward: bool,
        path: &mut Vec<Step>,
    ) -> (Kind, Option<(Option<IpAddr>, Option<u16>)>) {
        let w = self.walk_answer(scope, f, p, forward, path);
        (w.kind, w.translated)
    }

    fn walk_answer(
        &self,
        scope: usize,
        f: Family,
        p: &Packet,
        forward: bool,
        path: &mut Vec<Step>,
    ) -> Walked {
        let sc = &self.scopes[scope];
        let rs = self.sets[sc.set];
        let mut chains: Vec<(i32, usize, usize, usize, Hook, ChainKind)> = Vec::new();
        let mut order = 0;
        for &ti in &sc.tables {
            let t = &rs.tables[ti];
            if !t.families.contains(&f) {
                continue;
            }
            for (ci, c) in t.chains.iter().enumerate() {
                if let Some(h) = c.hook {
                    chains.push((c.priority, order, ti, ci, h, c.kind));
                    order += 1;
                }
            }
        }
        let run = |pkt: &Packet,
                   hooks: &[Hook],
                   kind: ChainKind,
                   path: &mut Vec<Step>|
         -> (Kind, Option<RuleRef>) {
            let mut list: Vec<_> = chains.iter().filter(|c| hooks.contains(&c.4) && c.5 == kind).collect();
            list.sort_by_key(|c| (hooks.iter().position(|h| *h == c.4), c.0, c.1));
            // a packet every base chain accepts is decided by the last chain that accepted it
            // by a rule; a later chain's policy that lets it pass does not take that over (as
            // `pipeline` composes the diagrams). The first chain that does not accept decides.
            let mut decider: Option<RuleRef> = None;
            for c in list {
                let (k, r) = self.walk_chain(sc.set, c.2, c.3, f, pkt, path, 0);
                let (k, r) = if k == Kind::Continue {
                    let chain = &rs.tables[c.2].chains[c.3];
                    let rr = RuleRef { set: sc.set, table: c.2, chain: c.3, rule: None };
                    path.push(Step { rule: rr, what: "policy".into() });
                    (if chain.policy == Some(Policy::Drop) { Kind::Drop } else { Kind::Accept }, Some(rr))
                } else {
                    (k, r)
                };
                if k != Kind::Accept {
                    return (k, r);
                }
                let by_rule = |r: Option<RuleRef>| r.is_some_and(|x| x.rule.is_some());
                if by_rule(r) || !by_rule(decider) {
                    decider = r;
                }
            }
            (Kind::Accept, decider)
        };
        if forward {
            let (kind, rule) = run(p, &[Hook::Prerouting, Hook::Forward], ChainKind::Filter, path);
            return Walked { kind, rule, via: None, translated: None };
        }
        let (nk, nr) = run(p, &[Hook::Prerouting], ChainKind::Nat, path);
        match nk {
            Kind::Nat => {
                let Some(rule) = nr.and_then(|r| self.rule(r)) else {
                    return Walked { kind: Kind::Drop, rule: nr, via: None, translated: None };
                };
                let mut q = p.clone();
                let (to, ports, local) = match &rule.action {
                    Action::Dnat { to, ports } => (*to, *ports, to.is_none_or(|a| a.is_loopback())),
                    Action::Redirect { ports } => (None, *ports, true),
                    _ => (None, None, true),
                };
                if let Some(a) = to {
                    q.dst = a;
                }
                if let Some((pt, _)) = ports {
                    q.dport = pt;
                }
                let hooks: &[Hook] =
                    if local { &[Hook::Prerouting, Hook::Input] } else { &[Hook::Prerouting, Hook::Forward] };
                let (kind, decided) = run(&q, hooks, ChainKind::Filter, path);
                Walked { kind, rule: decided, via: nr, translated: Some((to, ports.map(|x| x.0))) }
            }
            Kind::Drop | Kind::Reject => Walked { kind: nk, rule: nr, via: None, translated: None },
            _ => {
                let (kind, rule) = run(p, &[Hook::Prerouting, Hook::Input], ChainKind::Filter, path);
                Walked { kind, rule, via: None, translated: None }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn walk_chain(
        &self,
        set: usize,
        ti: usize,
        ci: usize,
        f: Family,
        p: &Packet,
        path: &mut Vec<Step>,
        depth: usize,
    ) -> (Kind, Option<RuleRef>) {
        self.walk_from(set, ti, ci, 0, f, p, path, depth)
    }

    #[allow(clippy::too_many_arguments)]
    fn walk_from(
        &self,
        set: usize,
        ti: usize,
        ci: usize,
        from: usize,
        f: Family,
        p: &Packet,
        path: &mut Vec<Step>,
        depth: usize,
    ) -> (Kind, Option<RuleRef>) {
        let rs = self.sets[set];
        let chain = &rs.tables[ti].chains[ci];
        if depth > 64 {
            return (Kind::Drop, None);
        }
        for ri in from..chain.rules.len() {
            let r = &chain.rules[ri];
            if matches!(r.action, Action::Continue) || !r.cubes(f).iter().any(|c| c.matches(p)) {
                continue;
            }
            let rr = RuleRef { set, table: ti, chain: ci, rule: Some(ri) };
            let mut with_path = Vec::new();
            let with = self.act(set, ti, ci, ri, f, p, &mut with_path, depth);
            if !r.stateful.is_empty() {
                // resolved in favour of the packet (see the module docs)
                let through = |k: Kind| matches!(k, Kind::Accept | Kind::Nat);
                let mut without_path = Vec::new();
                let without = self.walk_from(set, ti, ci, ri + 1, f, p, &mut without_path, depth);
                if through(without.0) || !through(with.0) {
                    path.push(Step {
                        rule: rr,
                        what: "condition not seen by the analysis: taken as not matching".into(),
                    });
                    path.extend(without_path);
                    return without;
                }
                path.push(Step {
                    rule: rr,
                    what: "condition not seen by the analysis: taken as matching".into(),
                });
            }
            path.extend(with_path);
            return with;
        }
        (Kind::Continue, None)
    }

    /// The outcome of a matching rule and of the rest of its chain.
    #[allow(clippy::too_many_arguments)]
    fn act(
        &self,
        set: usize,
        ti: usize,
        ci: usize,
        ri: usize,
        f: Family,
        p: &Packet,
        path: &mut Vec<Step>,
        depth: usize,
    ) -> (Kind, Option<RuleRef>) {
        let rs = self.sets[set];
        let r = &rs.tables[ti].chains[ci].rules[ri];
        let rr = RuleRef { set, table: ti, chain: ci, rule: Some(ri) };
        let step = |what: &str| Step { rule: rr, what: what.to_string() };
        match &r.action {
            Action::Continue => self.walk_from(set, ti, ci, ri + 1, f, p, path, depth),
            Action::Accept | Action::Queue | Action::Snat => {
                path.push(step("accept"));
                (Kind::Accept, Some(rr))
            }
            Action::Drop => {
                path.push(step("drop"));
                (Kind::Drop, Some(rr))
            }
            Action::Reject => {
                path.push(step("reject"));
                (Kind::Reject, Some(rr))
            }
            Action::Return => {
                path.push(step("return"));
                (Kind::Continue, None)
            }
            Action::Dnat { .. } | Action::Redirect { .. } => {
                path.push(step("translate"));
                (Kind::Nat, Some(rr))
            }
            Action::Jump(c) => {
                path.push(step(&format!("jump {}", rs.tables[ti].chains[*c].name)));
                let (k, x) = self.walk_chain(set, ti, *c, f, p, path, depth + 1);
                if k != Kind::Continue {
                    return (k, x);
                }
                self.walk_from(set, ti, ci, ri + 1, f, p, path, depth)
            }
            Action::Goto(c) => {
                path.push(step(&format!("goto {}", rs.tables[ti].chains[*c].name)));
                self.walk_chain(set, ti, *c, f, p, path, depth + 1)
            }
        }
    }
}

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
