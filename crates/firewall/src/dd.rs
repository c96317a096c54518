//! Interval decision diagrams: the packet space as a reduced, ordered, hash-consed graph.
//!
//! A node tests one dimension (input interface, output interface, source, destination,
//! protocol, destination port, source port — in that order) and has one child per interval
//! of that dimension's values; leaves are terminals (a verdict and the rule that decides
//! it). Because nodes are shared and reduced (no two adjacent intervals lead to the same
//! child, no node with one child), a function of the packet is stored once, and operations
//! (`ite`, `seq`, `map`) cost in proportion to the diagrams' sizes, not to the 2^300 packets.
//! Every answer is exact: no sampling.

use std::collections::HashMap as StdHashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A fast multiplicative hasher for node ids and interval bounds (the keys are not chosen by
/// an adversary who could profit from collisions: they are the analysis' own ids).
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
    fn write_u128(&mut self, v: u128) {
        self.write_u64(v as u64);
        self.write_u64((v >> 64) as u64);
    }
}

/// Hash maps keyed by ids.
pub type HashMap<K, V> = StdHashMap<K, V, BuildHasherDefault<IdHasher>>;

use crate::sets::IntervalSet;

/// A node or terminal.
pub type Id = u32;

/// Number of dimensions.
pub const NDIMS: usize = 7;
/// Input interface.
pub const IIF: usize = 0;
/// Output interface.
pub const OIF: usize = 1;
/// Source address.
pub const SRC: usize = 2;
/// Destination address.
pub const DST: usize = 3;
/// Protocol.
pub const PROTO: usize = 4;
/// Destination port (ICMP type * 256 + code).
pub const DPORT: usize = 5;
/// Source port.
pub const SPORT: usize = 6;

const TERM: u32 = 1 << 31;

/// What a terminal says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Boolean false.
    False,
    /// Boolean true.
    True,
    /// No decision yet: back to the caller / the next rule.
    Continue,
    /// Accepted.
    Accept,
    /// Dropped.
    Drop,
    /// Rejected.
    Reject,
    /// Destination NAT (rule = the DNAT/REDIRECT rule).
    Nat,
    /// A pair of verdicts that differ (diff).
    Changed,
    /// Not decided by the rules combined so far (while a chain is compiled).
    Hole,
}

/// A terminal: a verdict, the rule (or policy) that decides it, and, for traffic translated
/// by a DNAT rule, that rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Term {
    /// The verdict.
    pub kind: Kind,
    /// Index of the deciding rule in the analysis' rule table (`u32::MAX`: none).
    pub rule: u32,
    /// Index of the DNAT/REDIRECT rule that translated the packet (`u32::MAX`: none), or
    /// for `Changed`: the old terminal's id.
    pub via: u32,
}

/// No rule.
pub const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Node {
    dim: u8,
    /// Start of each child's interval after the first (the first starts at 0).
    bounds: Box<[u128]>,
    kids: Box<[Id]>,
}

/// The diagram store.
pub struct Dd {
    nodes: Vec<Node>,
    unique: HashMap<Node, Id>,
    terms: Vec<Term>,
    term_ids: HashMap<Term, Id>,
    /// Largest value of each dimension.
    pub max: [u128; NDIMS],
}

/// Boolean false.
pub const FALSE: Id = TERM;
/// Boolean true.
pub const TRUE: Id = TERM | 1;
/// Continue.
pub const CONTINUE: Id = TERM | 2;
/// Not decided yet (while a chain is compiled).
pub const HOLE: Id = TERM | 3;

impl Dd {
    /// A store for dimensions with these largest values.
    pub fn new(max: [u128; NDIMS]) -> Dd {
        let mut d = Dd {
            nodes: Vec::new(),
            unique: HashMap::default(),
            terms: Vec::new(),
            term_ids: HashMap::default(),
            max,
        };
        for k in [Kind::False, Kind::True, Kind::Continue, Kind::Hole] {
            d.term(Term { kind: k, rule: NONE, via: NONE });
        }
        d
    }

    /// The terminal for a term.
    pub fn term(&mut self, t: Term) -> Id {
        if let Some(&id) = self.term_ids.get(&t) {
            return id;
        }
        let id = TERM | self.terms.len() as u32;
        self.terms.push(t);
        self.term_ids.insert(t, id);
        id
    }

    /// Whether an id is a terminal.
    pub fn is_term(id: Id) -> bool {
        id & TERM != 0
    }

    /// The term of a terminal.
    pub fn term_of(&self, id: Id) -> Term {
        self.terms[(id & !TERM) as usize]
    }

    /// Nodes stored.
    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    fn level(&self, id: Id) -> usize {
        if Dd::is_term(id) { NDIMS } else { self.nodes[id as usize].dim as usize }
    }

    /// A node from intervals (reduced and shared).
    fn mk(&mut self, dim: usize, mut bounds: Vec<u128>, mut kids: Vec<Id>) -> Id {
        // merge equal neighbours
        let mut w = 0;
        for r in 1..kids.len() {
            if kids[r] == kids[w] {
                continue;
            }
            w += 1;
            kids[w] = kids[r];
            bounds[w - 1] = bounds[r - 1];
        }
        kids.truncate(w + 1);
        bounds.truncate(w);
        if kids.len() == 1 {
            return kids[0];
        }
        let n = Node { dim: dim as u8, bounds: bounds.into_boxed_slice(), kids: kids.into_boxed_slice() };
        if let Some(&id) = self.unique.get(&n) {
            return id;
        }
        let id = self.nodes.len() as u32;
        assert!(id < TERM, "decision diagram exhausted its node ids");
        self.nodes.push(n.clone());
        self.unique.insert(n, id);
        id
    }

    /// The children of the operands at `dim`, interval by interval.
    fn split<const N: usize>(&self, dim: usize, ops: [Id; N]) -> Vec<(u128, [Id; N])> {
        let mut pos = [0usize; N];
        let mut out = Vec::new();
        let mut start = 0u128;
        loop {
            let mut kids = ops;
            let mut next: Option<u128> = None;
            for k in 0..N {
                if self.level(ops[k]) == dim {
                    let n = &self.nodes[ops[k] as usize];
                    kids[k] = n.kids[pos[k]];
                    if let Some(&b) = n.bounds.get(pos[k]) {
                        next = Some(next.map_or(b, |x: u128| x.min(b)));
                    }
                }
            }
            out.push((start, kids));
            let Some(nx) = next else { break };
            start = nx;
            for k in 0..N {
                if self.level(ops[k]) == dim {
                    let n = &self.nodes[ops[k] as usize];
                    if n.bounds.get(pos[k]) == Some(&nx) {
                        pos[k] += 1;
                    }
                }
            }
        }
        out
    }

    fn apply<const N: usize>(
        &mut self,
        ops: [Id; N],
        memo: &mut HashMap<[Id; N], Id>,
        base: &mut dyn FnMut(&mut Dd, [Id; N]) -> Option<Id>,
    ) -> Id {
        if let Some(r) = base(self, ops) {
            return r;
        }
        if let Some(&r) = memo.get(&ops) {
            return r;
        }
        let dim = ops.iter().map(|&o| self.level(o)).min().unwrap_or(NDIMS);
        debug_assert!(dim < NDIMS, "base case must handle all-terminal operands");
        let segs = self.split(dim, ops);
        let mut bounds = Vec::with_capacity(segs.len());
        let mut kids = Vec::with_capacity(segs.len());
        for (i, (s, k)) in segs.into_iter().enumerate() {
            if i > 0 {
                bounds.push(s);
            }
            kids.push(self.apply(k, memo, base));
        }
        let r = self.mk(dim, bounds, kids);
        memo.insert(ops, r);
        r
    }

    /// If `m` (boolean) then `a` else `b`.
    pub fn ite(&mut self, m: Id, a: Id, b: Id) -> Id {
        let mut memo = HashMap::default();
        self.apply([m, a, b], &mut memo, &mut |_, [m, a, b]| {
            if m == TRUE {
                Some(a)
            } else if m == FALSE || a == b {
                Some(b)
            } else {
                None
            }
        })
    }

    /// `a` with its `Continue` leaves replaced by `b` (run `a`, and where it does not
    /// decide, `b`).
    pub fn seq(&mut self, a: Id, b: Id) -> Id {
        let mut memo = HashMap::default();
        self.apply([a, b], &mut memo, &mut |_, [a, b]| {
            if a == CONTINUE {
                Some(b)
            } else if Dd::is_term(a) || b == CONTINUE {
                Some(a)
            } else {
                None
            }
        })
    }

    /// `a` with the leaves `pick` selects replaced by `b`.
    pub fn replace(&mut self, a: Id, b: Id, pick: &dyn Fn(Term) -> bool) -> Id {
        let mut memo = HashMap::default();
        self.apply([a, b], &mut memo, &mut |dd, [a, b]| {
            if Dd::is_term(a) { Some(if pick(dd.term_of(a)) { b } else { a }) } else { None }
        })
    }

    /// Per packet, `b` if `b` lets the packet through (accepts or translates it), else `a`
    /// if `a` does, else `b`: how a rule whose condition the analysis cannot see is resolved
    /// (`a`: the rule took effect; `b`: it did not).
    pub fn favour(&mut self, a: Id, b: Id) -> Id {
        let mut memo = HashMap::default();
        let through = |t: Term| matches!(t.kind, Kind::Accept | Kind::Nat);
        self.apply([a, b], &mut memo, &mut |dd, [a, b]| {
            if a == b {
                return Some(b);
            }
            if Dd::is_term(b) && through(dd.term_of(b)) {
                return Some(b);
            }
            if Dd::is_term(a) && Dd::is_term(b) {
                return Some(if through(dd.term_of(a)) { a } else { b });
            }
            None
        })
    }

    /// Boolean and.
    pub fn and(&mut self, a: Id, b: Id) -> Id {
        self.ite(a, b, FALSE)
    }
    /// Boolean or.
    pub fn or(&mut self, a: Id, b: Id) -> Id {
        self.ite(a, TRUE, b)
    }
    /// Boolean not.
    pub fn not(&mut self, a: Id) -> Id {
        self.ite(a, FALSE, TRUE)
    }

    /// Every terminal replaced by `f(term)`.
    pub fn map(&mut self, a: Id, f: &mut dyn FnMut(&mut Dd, Term) -> Id) -> Id {
        let mut memo: HashMap<Id, Id> = HashMap::default();
        self.map_rec(a, f, &mut memo)
    }

    fn map_rec(&mut self, a: Id, f: &mut dyn FnMut(&mut Dd, Term) -> Id, memo: &mut HashMap<Id, Id>) -> Id {
        if Dd::is_term(a) {
            let t = self.term_of(a);
            return f(self, t);
        }
        if let Some(&r) = memo.get(&a) {
            return r;
        }
        let n = self.nodes[a as usize].clone();
        let kids: Vec<Id> = n.kids.iter().map(|&k| self.map_rec(k, f, memo)).collect();
        let r = self.mk(n.dim as usize, n.bounds.to_vec(), kids);
        memo.insert(a, r);
        r
    }

    /// The boolean diagram of a conjunction of per-dimension sets (`None`: any value).
    pub fn cube(&mut self, sets: &[Option<IntervalSet>; NDIMS]) -> Id {
        let mut cur = TRUE;
        for d in (0..NDIMS).rev() {
            let Some(s) = &sets[d] else { continue };
            if s.is_empty() {
                return FALSE;
            }
            if s.is_full(self.max[d]) {
                continue;
            }
            let mut bounds = Vec::new();
            let mut kids = Vec::new();
            let mut at = 0u128;
            for &(lo, hi) in s.intervals() {
                if lo > at {
                    if !kids.is_empty() {
                        bounds.push(at);
                    }
                    kids.push(FALSE);
                }
                if !kids.is_empty() {
                    bounds.push(lo);
                }
                kids.push(cur);
                at = hi.saturating_add(1);
                if hi == self.max[d] {
                    at = 0;
                    break;
                }
            }
            if at != 0 && at <= self.max[d] {
                bounds.push(at);
                kids.push(FALSE);
            }
            cur = self.mk(d, bounds, kids);
        }
        cur
    }

    /// `a` with dimension `dim` fixed to `v`.
    pub fn cofactor(&mut self, a: Id, dim: usize, v: u128) -> Id {
        let mut memo: HashMap<Id, Id> = HashMap::default();
        self.cofactor_rec(a, dim, v, &mut memo)
    }

    fn cofactor_rec(&mut self, a: Id, dim: usize, v: u128, memo: &mut HashMap<Id, Id>) -> Id {
        if Dd::is_term(a) || self.level(a) > dim {
            return a;
        }
        if let Some(&r) = memo.get(&a) {
            return r;
        }
        let n = self.nodes[a as usize].clone();
        let r = if n.dim as usize == dim {
            let i = n.bounds.partition_point(|&b| b <= v);
            n.kids[i]
        } else {
            let kids: Vec<Id> = n.kids.iter().map(|&k| self.cofactor_rec(k, dim, v, memo)).collect();
            self.mk(n.dim as usize, n.bounds.to_vec(), kids)
        };
        memo.insert(a, r);
        r
    }

    /// The terminal a concrete point reaches.
    pub fn eval(&self, mut a: Id, point: &[u128; NDIMS]) -> Id {
        while !Dd::is_term(a) {
            let n = &self.nodes[a as usize];
            let i = n.bounds.partition_point(|&b| b <= point[n.dim as usize]);
            a = n.kids[i];
        }
        a
    }

    /// The node's dimension and its children with their intervals (`None` for terminals).
    pub fn children(&self, a: Id) -> Option<(usize, Vec<(u128, u128, Id)>)> {
        if Dd::is_term(a) {
            return None;
        }
        let n = &self.nodes[a as usize];
        let d = n.dim as usize;
        let mut out = Vec::with_capacity(n.kids.len());
        for (i, &k) in n.kids.iter().enumerate() {
            let lo = if i == 0 { 0 } else { n.bounds[i - 1] };
            let hi = n.bounds.get(i).map_or(self.max[d], |&b| b - 1);
            out.push((lo, hi, k));
        }
        Some((d, out))
    }

    /// `a` copied from another store with the same dimensions.
    pub fn import(&mut self, from: &Dd, a: Id) -> Id {
        let mut memo: HashMap<Id, Id> = HashMap::default();
        self.import_rec(from, a, &mut memo)
    }

    fn import_rec(&mut self, from: &Dd, a: Id, memo: &mut HashMap<Id, Id>) -> Id {
        if Dd::is_term(a) {
            return self.term(from.term_of(a));
        }
        if let Some(&r) = memo.get(&a) {
            return r;
        }
        let n = &from.nodes[a as usize];
        let kids: Vec<Id> = n.kids.iter().map(|&k| self.import_rec(from, k, memo)).collect();
        let r = self.mk(n.dim as usize, n.bounds.to_vec(), kids);
        memo.insert(a, r);
        r
    }

    /// `TRUE` where `a` and `b` reach terminals that `same` calls equal, else a `Changed`
    /// terminal whose `rule` is `b`'s terminal id and `via` is `a`'s.
    pub fn pair(&mut self, a: Id, b: Id, same: &dyn Fn(Term, Term) -> bool) -> Id {
        let mut memo = HashMap::default();
        self.apply([a, b], &mut memo, &mut |dd, [a, b]| {
            if Dd::is_term(a) && Dd::is_term(b) {
                let (ta, tb) = (dd.term_of(a), dd.term_of(b));
                Some(if same(ta, tb) { TRUE } else { dd.term(Term { kind: Kind::Changed, rule: b, via: a }) })
            } else {
                None
            }
        })
    }

    /// The terminals reachable from `a`.
    pub fn terminals(&self, a: Id) -> Vec<Id> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        let mut stack = vec![a];
        while let Some(x) = stack.pop() {
            if !seen.insert(x) {
                continue;
            }
            if Dd::is_term(x) {
                out.push(x);
            } else {
                stack.extend(self.nodes[x as usize].kids.iter().copied());
            }
        }
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn dd() -> Dd {
        Dd::new([3, 3, 255, 255, 255, 65535, 65535])
    }

    #[test]
    fn ite_first_match_and_reduction() {
        let mut d = dd();
        let acc = d.term(Term { kind: Kind::Accept, rule: 0, via: NONE });
        let drop = d.term(Term { kind: Kind::Drop, rule: 1, via: NONE });
        let mut sets: [Option<IntervalSet>; NDIMS] = Default::default();
        sets[DPORT] = Some(IntervalSet::single(22));
        sets[PROTO] = Some(IntervalSet::single(6));
        let ssh = d.cube(&sets);
        let f = d.ite(ssh, acc, drop);
        let mut p = [0u128; NDIMS];
        p[PROTO] = 6;
        p[DPORT] = 22;
        assert_eq!(d.eval(f, &p), acc);
        p[DPORT] = 23;
        assert_eq!(d.eval(f, &p), drop);
        p[PROTO] = 17;
        p[DPORT] = 22;
        assert_eq!(d.eval(f, &p), drop);
        // the same function built twice is the same node
        let g = d.ite(ssh, acc, drop);
        assert_eq!(f, g);
        // a function that ignores a test collapses to its leaf
        assert_eq!(d.ite(ssh, drop, drop), drop);
        let not = d.not(ssh);
        let both = d.or(ssh, not);
        assert_eq!(both, TRUE);
        let mut s: [Option<IntervalSet>; NDIMS] = Default::default();
        s[PROTO] = Some(IntervalSet::single(6));
        let tcp = d.cube(&s);
        let expect = d.ite(tcp, acc, drop);
        assert_eq!(d.cofactor(f, DPORT, 22), expect);
    }

    #[test]
    fn seq_replaces_continue() {
        let mut d = dd();
        let acc = d.term(Term { kind: Kind::Accept, rule: 0, via: NONE });
        let mut sets: [Option<IntervalSet>; NDIMS] = Default::default();
        sets[SRC] = Some(IntervalSet::range(10, 20));
        let m = d.cube(&sets);
        let chain = d.ite(m, acc, CONTINUE);
        let drop = d.term(Term { kind: Kind::Drop, rule: 9, via: NONE });
        let full = d.seq(chain, drop);
        let mut p = [0u128; NDIMS];
        p[SRC] = 15;
        assert_eq!(d.eval(full, &p), acc);
        p[SRC] = 21;
        assert_eq!(d.eval(full, &p), drop);
    }
}
