//! Sets of integers as sorted, disjoint, non-adjacent inclusive intervals: addresses (as
//! `u128`, IPv4 in the low 32 bits), ports, protocol numbers and interface atoms all use it.

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

/// A set of integers in `0..=max`, as sorted disjoint inclusive intervals.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct IntervalSet {
    /// Sorted, disjoint, non-adjacent.
    iv: Vec<(u128, u128)>,
}

impl IntervalSet {
    /// The empty set.
    pub fn empty() -> IntervalSet {
        IntervalSet { iv: Vec::new() }
    }
    /// `lo..=hi` (empty when `lo > hi`).
    pub fn range(lo: u128, hi: u128) -> IntervalSet {
        if lo > hi { IntervalSet::empty() } else { IntervalSet { iv: vec![(lo, hi)] } }
    }
    /// One value.
    pub fn single(v: u128) -> IntervalSet {
        IntervalSet::range(v, v)
    }
    /// Every value of `0..=max`.
    pub fn full(max: u128) -> IntervalSet {
        IntervalSet::range(0, max)
    }
    /// From any intervals (normalised).
    pub fn from_intervals(mut v: Vec<(u128, u128)>) -> IntervalSet {
        v.retain(|(a, b)| a <= b);
        v.sort_unstable();
        let mut out: Vec<(u128, u128)> = Vec::with_capacity(v.len());
        for (a, b) in v {
            if let Some(last) = out.last_mut()
                && (a <= last.1 || a == last.1.saturating_add(1))
            {
                last.1 = last.1.max(b);
                continue;
            }
            out.push((a, b));
        }
        IntervalSet { iv: out }
    }
    /// The intervals.
    pub fn intervals(&self) -> &[(u128, u128)] {
        &self.iv
    }
    /// No value.
    pub fn is_empty(&self) -> bool {
        self.iv.is_empty()
    }
    /// Every value of `0..=max`.
    pub fn is_full(&self, max: u128) -> bool {
        self.iv.len() == 1 && self.iv[0] == (0, max)
    }
    /// Whether `v` is in the set.
    pub fn contains(&self, v: u128) -> bool {
        let i = self.iv.partition_point(|&(_, b)| b < v);
        i < self.iv.len() && self.iv[i].0 <= v
    }
    /// Number of values (saturating).
    pub fn count(&self) -> u128 {
        self.iv.iter().fold(0u128, |n, (a, b)| n.saturating_add(b - a).saturating_add(1))
    }
    /// Union.
    pub fn union(&self, o: &IntervalSet) -> IntervalSet {
        if o.iv.is_empty() {
            return self.clone();
        }
        if self.iv.is_empty() {
            return o.clone();
        }
        // merge two sorted lists
        let mut out: Vec<(u128, u128)> = Vec::with_capacity(self.iv.len() + o.iv.len());
        let (mut i, mut j) = (0, 0);
        while i < self.iv.len() || j < o.iv.len() {
            let next = if j >= o.iv.len() || (i < self.iv.len() && self.iv[i].0 <= o.iv[j].0) {
                i += 1;
                self.iv[i - 1]
            } else {
                j += 1;
                o.iv[j - 1]
            };
            if let Some(last) = out.last_mut()
                && (next.0 <= last.1 || next.0 == last.1.saturating_add(1))
            {
                last.1 = last.1.max(next.1);
                continue;
            }
            out.push(next);
        }
        IntervalSet { iv: out }
    }
    /// Intersection.
    pub fn intersect(&self, o: &IntervalSet) -> IntervalSet {
        // a few intervals against many: binary search for each of the few
        let (small, big) = if self.iv.len() <= o.iv.len() { (self, o) } else { (o, self) };
        if small.iv.len() * 16 < big.iv.len() {
            let mut out = Vec::new();
            for &(a, b) in &small.iv {
                let from = big.iv.partition_point(|x| x.1 < a);
                for &(c, d) in &big.iv[from..] {
                    if c > b {
                        break;
                    }
                    out.push((a.max(c), b.min(d)));
                }
            }
            return IntervalSet { iv: out };
        }
        let (mut i, mut j) = (0, 0);
        let mut out = Vec::new();
        while i < self.iv.len() && j < o.iv.len() {
            let (a1, b1) = self.iv[i];
            let (a2, b2) = o.iv[j];
            let lo = a1.max(a2);
            let hi = b1.min(b2);
            if lo <= hi {
                out.push((lo, hi));
            }
            if b1 < b2 { i += 1 } else { j += 1 }
        }
        IntervalSet { iv: out }
    }
    /// Complement within `0..=max`.
    pub fn complement(&self, max: u128) -> IntervalSet {
        let mut out = Vec::new();
        let mut next: Option<u128> = Some(0);
        for &(a, b) in &self.iv {
            if let Some(n) = next
                && a > n
            {
                out.push((n, a - 1));
            }
            next = b.checked_add(1);
        }
        if let Some(n) = next
            && n <= max
        {
            out.push((n, max));
        }
        IntervalSet { iv: out }
    }
    /// Difference (`self` without the values of `o`), in one pass over both.
    pub fn without(&self, o: &IntervalSet) -> IntervalSet {
        let mut out = Vec::with_capacity(self.iv.len() + 1);
        let mut j = 0;
        for &(a, b) in &self.iv {
            let mut lo = a;
            // skip the removed intervals that end before this one
            while j < o.iv.len() && o.iv[j].1 < lo {
                j += 1;
            }
            let mut k = j;
            let mut done = false;
            while k < o.iv.len() && o.iv[k].0 <= b {
                let (c, d) = o.iv[k];
                if c > lo {
                    out.push((lo, c - 1));
                }
                match d.checked_add(1) {
                    Some(n) if d < b => lo = n,
                    _ => {
                        done = true;
                        break;
                    }
                }
                k += 1;
            }
            if !done {
                out.push((lo, b));
            }
            j = k.saturating_sub(1).max(j);
        }
        IntervalSet { iv: out }
    }
    /// Whether the two sets share a value.
    pub fn meets(&self, o: &IntervalSet) -> bool {
        let (small, big) = if self.iv.len() <= o.iv.len() { (self, o) } else { (o, self) };
        small.iv.iter().any(|&(a, b)| {
            let i = big.iv.partition_point(|x| x.1 < a);
            i < big.iv.len() && big.iv[i].0 <= b
        })
    }
    /// Whether `o` is a subset of `self`.
    pub fn contains_set(&self, o: &IntervalSet) -> bool {
        &self.intersect(o) == o
    }
    /// The smallest value.
    pub fn first(&self) -> Option<u128> {
        self.iv.first().map(|i| i.0)
    }
}

/// A set kept as a shared base without a few holes: taking a few values out of a large set
/// (a /24 out of "the internet but 5,000 blocked addresses") shares the large set instead of
/// copying it. Read as intervals (through `Deref`), a set with holes is made whole once, on
/// first use; equality and hashing are by content and never make it whole.
pub struct LazySet {
    base: Arc<IntervalSet>,
    /// Values of `base` that are not in the set: a subset of `base`, and few.
    holes: IntervalSet,
    whole: OnceLock<IntervalSet>,
}

/// A base this small is copied rather than shared.
const SHARE_FROM: usize = 64;

impl LazySet {
    /// A set with no holes.
    pub fn new(s: IntervalSet) -> LazySet {
        LazySet::shared(Arc::new(s))
    }
    /// A set with no holes, sharing `s`.
    pub fn shared(s: Arc<IntervalSet>) -> LazySet {
        LazySet { base: s, holes: IntervalSet::empty(), whole: OnceLock::new() }
    }
    fn holed(base: Arc<IntervalSet>, holes: IntervalSet) -> LazySet {
        if holes.is_empty() {
            return LazySet::shared(base);
        }
        // many holes: not worth sharing any more
        if holes.iv.len() * 8 > base.iv.len() {
            return LazySet::new(base.without(&holes));
        }
        LazySet { base, holes, whole: OnceLock::new() }
    }
    /// No value.
    pub fn is_empty(&self) -> bool {
        // the holes are a subset of the base
        self.holes == *self.base
    }
    /// The number of intervals of the base (the size of the set without materialising it).
    pub fn len_hint(&self) -> usize {
        self.base.iv.len()
    }
    /// Whether the set has no holes (its intervals are its base's).
    pub fn is_plain(&self) -> bool {
        self.holes.is_empty()
    }
    /// The intervals, one by one, without making the set whole.
    pub fn iter(&self) -> Diff<'_> {
        Diff { base: &self.base.iv, holes: &self.holes.iv, i: 0, j: 0, lo: None }
    }
    /// The values also in `s`; `None` when that is the whole set.
    pub fn meet(&self, s: &IntervalSet) -> Option<LazySet> {
        let b = self.base.intersect(s);
        if b.iv.len() == self.base.iv.len() && b == *self.base {
            return None;
        }
        let holes = self.holes.intersect(&b);
        if b.iv.len() < SHARE_FROM {
            return Some(LazySet::new(b.without(&holes)));
        }
        Some(LazySet::holed(Arc::new(b), holes))
    }
    /// The values of `s` in the set, as a plain set.
    pub fn intersect(&self, s: &IntervalSet) -> IntervalSet {
        let b = self.base.intersect(s);
        if self.holes.is_empty() { b } else { b.without(&self.holes) }
    }
    /// Whether the set shares a value with `s`.
    pub fn meets(&self, s: &IntervalSet) -> bool {
        if self.holes.is_empty() { self.base.meets(s) } else { !self.intersect(s).is_empty() }
    }
    /// The set without the values of `s`; `None` when that leaves it as it is.
    pub fn without(&self, s: &IntervalSet) -> Option<LazySet> {
        if self.base.iv.len() < SHARE_FROM && self.holes.is_empty() {
            let w = self.base.without(s);
            return (w.iv.len() != self.base.iv.len() || w != *self.base).then(|| LazySet::new(w));
        }
        let cut = self.base.intersect(s);
        if cut.is_empty() {
            return None;
        }
        let holes = self.holes.union(&cut);
        if holes == self.holes {
            return None;
        }
        Some(LazySet::holed(self.base.clone(), holes))
    }
    /// The whole set, borrowed when it is at hand (no holes, or made whole already), else
    /// made for the caller and not kept.
    pub fn read(&self) -> Cow<'_, IntervalSet> {
        match self.whole.get() {
            Some(w) => Cow::Borrowed(w),
            None if self.holes.is_empty() => Cow::Borrowed(&self.base),
            None => Cow::Owned(IntervalSet { iv: self.iter().collect() }),
        }
    }
    /// The whole set, as a plain set of the caller's.
    pub fn to_set(&self) -> IntervalSet {
        self.read().into_owned()
    }
}

impl From<IntervalSet> for LazySet {
    fn from(s: IntervalSet) -> LazySet {
        LazySet::new(s)
    }
}

impl Deref for LazySet {
    type Target = IntervalSet;
    fn deref(&self) -> &IntervalSet {
        if self.holes.is_empty() {
            return &self.base;
        }
        self.whole.get_or_init(|| self.base.without(&self.holes))
    }
}

impl Clone for LazySet {
    fn clone(&self) -> LazySet {
        LazySet { base: self.base.clone(), holes: self.holes.clone(), whole: OnceLock::new() }
    }
}

impl PartialEq for LazySet {
    fn eq(&self, o: &LazySet) -> bool {
        if Arc::ptr_eq(&self.base, &o.base) {
            return self.holes == o.holes;
        }
        if self.holes.is_empty() && o.holes.is_empty() {
            return self.base == o.base;
        }
        self.iter().eq(o.iter())
    }
}

impl Eq for LazySet {}

impl Hash for LazySet {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.fingerprint(boundary_hash(&self.base)));
    }
}

impl LazySet {
    /// The set's [`boundary_hash`], given its base's (which callers may keep per base).
    pub fn fingerprint(&self, base_hash: u64) -> u64 {
        // the holes are a subset of the base: the set's boundaries are the base's and the
        // holes' boundaries, each taken once (those both have cancel)
        base_hash ^ boundary_hash(&self.holes)
    }
    /// The base, shared by the sets cut out of it.
    pub fn base(&self) -> &Arc<IntervalSet> {
        &self.base
    }
}

/// A hash of a set's content from the points where membership changes (an interval's first
/// value and the value after its last), combined by xor: the hash of `a` without a subset `b`
/// is `boundary_hash(a) ^ boundary_hash(b)`, so a shared set's holes can be hashed alone.
pub fn boundary_hash(s: &IntervalSet) -> u64 {
    let mix = |x: u128| {
        let mut h = (x as u64) ^ ((x >> 64) as u64).rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15;
        h = (h ^ (h >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^ (h >> 33)
    };
    s.iv.iter().fold(0, |h, &(a, b)| h ^ mix(a) ^ mix(b.wrapping_add(1)))
}

impl fmt::Debug for LazySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The intervals of a [`LazySet`]: its base's, with the holes cut out.
pub struct Diff<'a> {
    base: &'a [(u128, u128)],
    holes: &'a [(u128, u128)],
    i: usize,
    j: usize,
    /// Where the rest of `base[i]` starts, once a hole has cut it.
    lo: Option<u128>,
}

impl Iterator for Diff<'_> {
    type Item = (u128, u128);
    fn next(&mut self) -> Option<(u128, u128)> {
        loop {
            let &(a, b) = self.base.get(self.i)?;
            let lo = self.lo.unwrap_or(a);
            while self.j < self.holes.len() && self.holes[self.j].1 < lo {
                self.j += 1;
            }
            match self.holes.get(self.j) {
                Some(&(c, d)) if c <= b => {
                    let piece = (c > lo).then(|| (lo, c - 1));
                    match d.checked_add(1) {
                        Some(n) if d < b => {
                            self.lo = Some(n);
                            self.j += 1;
                        }
                        _ => {
                            self.i += 1;
                            self.lo = None;
                        }
                    }
                    if piece.is_some() {
                        return piece;
                    }
                }
                _ => {
                    self.i += 1;
                    self.lo = None;
                    return Some((lo, b));
                }
            }
        }
    }
}

/// The largest address of a family (IPv4 in the low 32 bits of a `u128`).
pub fn addr_max(v6: bool) -> u128 {
    if v6 { u128::MAX } else { u32::MAX as u128 }
}

/// An address as the analysis' integer.
pub fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The analysis' integer as an address of a family.
pub fn u128_to_ip(v: u128, v6: bool) -> IpAddr {
    if v6 { IpAddr::V6(Ipv6Addr::from(v)) } else { IpAddr::V4(Ipv4Addr::from(v as u32)) }
}

/// The addresses of a CIDR prefix.
pub fn prefix(ip: IpAddr, len: u8) -> IntervalSet {
    let bits: u32 = if ip.is_ipv4() { 32 } else { 128 };
    let len = u32::from(len).min(bits);
    let v = ip_to_u128(ip);
    let host = bits - len;
    let mask = if host == 128 { u128::MAX } else { (1u128 << host) - 1 };
    IntervalSet::range(v & !mask, v | mask)
}

/// An address set as CIDR prefixes (at most `limit`; the rest is summarised by `+N more`).
pub fn cidrs(set: &IntervalSet, v6: bool, limit: usize) -> Vec<String> {
    let bits: u32 = if v6 { 128 } else { 32 };
    let mut out = Vec::new();
    let mut more = 0usize;
    for &(a, b) in set.intervals() {
        let mut lo = a;
        loop {
            // the largest aligned block starting at lo and ending at or before b
            let align = if lo == 0 { bits } else { lo.trailing_zeros().min(bits) };
            let fit = match (b - lo).checked_add(1) {
                Some(len) => 127 - len.leading_zeros(),
                None => 128,
            };
            let size_bits = align.min(fit).min(bits);
            if out.len() < limit {
                let ip = u128_to_ip(lo, v6);
                out.push(format!("{ip}/{}", bits - size_bits));
            } else {
                more += 1;
            }
            let span = if size_bits >= 128 { u128::MAX } else { (1u128 << size_bits) - 1 };
            match lo.checked_add(span) {
                Some(end) if end < b => lo = end + 1,
                _ => break,
            }
        }
    }
    if more > 0 {
        out.push(format!("+{more} more"));
    }
    out
}

impl fmt::Display for IntervalSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> =
            self.iv.iter().map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn arithmetic() {
        let a = IntervalSet::from_intervals(vec![(1, 5), (10, 20), (6, 6)]);
        assert_eq!(a.intervals(), &[(1, 6), (10, 20)]);
        let b = IntervalSet::range(4, 12);
        assert_eq!(a.intersect(&b).intervals(), &[(4, 6), (10, 12)]);
        assert_eq!(a.complement(30).intervals(), &[(0, 0), (7, 9), (21, 30)]);
        assert_eq!(a.without(&b).intervals(), &[(1, 3), (13, 20)]);
        assert!(a.contains(15) && !a.contains(8));
        assert_eq!(IntervalSet::full(u128::MAX).complement(u128::MAX), IntervalSet::empty());
        assert_eq!(
            IntervalSet::full(u128::MAX).without(&IntervalSet::single(u128::MAX)).intervals(),
            &[(0, u128::MAX - 1)]
        );
        assert!(a.meets(&b) && !a.meets(&IntervalSet::range(7, 9)));
    }

    /// A pseudo-random sequence (xorshift64).
    fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// The set of the indices a bitmap marks.
    fn set(m: &[bool]) -> IntervalSet {
        IntervalSet::from_intervals((0..m.len()).filter(|&i| m[i]).map(|i| (i as u128, i as u128)).collect())
    }

    /// A set as a bitmap over `0..n`.
    fn bits(s: &IntervalSet, n: usize) -> Vec<bool> {
        (0..n).map(|i| s.contains(i as u128)).collect()
    }

    #[test]
    fn set_operations_agree_with_a_bitmap() {
        // every operation against the obvious bitmap over 0..1024, on pseudo-random sets of
        // very different sizes (so the binary-search paths run too)
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        const N: usize = 1024;
        let bits = |s: &IntervalSet| bits(s, N);
        for round in 0..300 {
            let density = [2u64, 50, 500, 990][round % 4];
            let sparse = [1u64, 3, 20][round % 3];
            let ma: Vec<bool> = (0..N).map(|_| next() % 1000 < density).collect();
            let mb: Vec<bool> = (0..N).map(|_| next() % 1000 < sparse).collect();
            let (a, b) = (set(&ma), set(&mb));
            let and: Vec<bool> = (0..N).map(|i| ma[i] && mb[i]).collect();
            assert_eq!(bits(&a.intersect(&b)), and);
            assert_eq!(bits(&b.intersect(&a)), and);
            assert_eq!(bits(&a.without(&b)), (0..N).map(|i| ma[i] && !mb[i]).collect::<Vec<_>>());
            assert_eq!(bits(&b.without(&a)), (0..N).map(|i| mb[i] && !ma[i]).collect::<Vec<_>>());
            assert_eq!(bits(&a.union(&b)), (0..N).map(|i| ma[i] || mb[i]).collect::<Vec<_>>());
            assert_eq!(a.meets(&b), and.iter().any(|&x| x));
            // results are normalised: sorted, disjoint, not adjacent
            for s in [a.intersect(&b), a.without(&b), b.without(&a)] {
                assert!(s.intervals().windows(2).all(|w| w[0].1 + 1 < w[1].0));
            }
        }
    }

    #[test]
    fn lazy_sets_agree_with_a_bitmap() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        const N: usize = 2048;
        let bits = |s: &IntervalSet| bits(s, N);
        for round in 0..200 {
            // a large base (so it is shared), then a few values taken out, one by one
            let dense = [300u64, 600, 990][round % 3];
            let mut m: Vec<bool> = (0..N).map(|_| next() % 1000 < dense).collect();
            let mut l = LazySet::new(set(&m));
            for _ in 0..(round % 7) {
                let cut: Vec<bool> = (0..N).map(|_| next() % 1000 < 4).collect();
                if let Some(n) = l.without(&set(&cut)) {
                    l = n;
                }
                for i in 0..N {
                    m[i] = m[i] && !cut[i];
                }
                let want = set(&m);
                assert_eq!(IntervalSet { iv: l.iter().collect() }, want);
                assert_eq!(l.to_set(), want);
                assert_eq!(*l.read(), want);
                assert_eq!(l.is_empty(), want.is_empty());
                let other: Vec<bool> = (0..N).map(|_| next() % 1000 < [5u64, 500][round % 2]).collect();
                let o = set(&other);
                assert_eq!(l.intersect(&o), want.intersect(&o));
                assert_eq!(l.meets(&o), want.meets(&o));
                let met = l.meet(&o).map_or(want.clone(), |n| n.to_set());
                assert_eq!(bits(&met), (0..N).map(|i| m[i] && other[i]).collect::<Vec<_>>());
                assert_eq!(l, LazySet::new(want.clone()));
                assert_eq!(l.fingerprint(boundary_hash(l.base())), boundary_hash(&want));
                assert_eq!(*l, want);
            }
        }
        // a set with every value taken out is empty
        let full = LazySet::new(IntervalSet::from_intervals((0..200).map(|i| (i * 3, i * 3)).collect()));
        let gone = full.without(&IntervalSet::range(0, 1000)).is_some_and(|l| l.is_empty());
        assert!(gone);
    }

    #[test]
    fn prefixes() {
        let p = prefix("10.0.0.0".parse().unwrap(), 8);
        assert_eq!(p.intervals(), &[(0x0a00_0000, 0x0aff_ffff)]);
        assert_eq!(cidrs(&p, false, 8), vec!["10.0.0.0/8"]);
        let r = IntervalSet::range(
            ip_to_u128("10.0.0.1".parse().unwrap()),
            ip_to_u128("10.0.0.6".parse().unwrap()),
        );
        assert_eq!(cidrs(&r, false, 8), vec!["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]);
        assert_eq!(cidrs(&IntervalSet::full(u32::MAX as u128), false, 4), vec!["0.0.0.0/0"]);
        assert_eq!(cidrs(&IntervalSet::full(u128::MAX), true, 4), vec!["::/0"]);
    }
}
