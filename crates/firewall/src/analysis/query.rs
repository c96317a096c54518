//! One packet: its verdict, deciding rule and path through the chains.

use std::net::IpAddr;

use crate::dd::{Kind, NDIMS, NONE, Term};
use crate::model::*;
use crate::sets::ip_to_u128;

use super::*;

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
