//! Interface names as atoms of the interface dimensions.

use std::collections::BTreeSet;

use crate::model::*;
use crate::sets::IntervalSet;

/// name no rule mentions; each exact name is one atom; each prefix pattern (`eth+`) has an
/// atom standing for the names it matches that no rule names exactly.
#[derive(Debug, Clone)]
pub struct Ifaces {
    /// Atom names (atom 0 is `*`; prefix atoms end in `+`).
    pub atoms: Vec<String>,
    reps: Vec<String>,
}

impl Ifaces {
    pub(super) fn new(rulesets: &[&Ruleset]) -> Ifaces {
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
    pub(super) fn max(&self) -> u128 {
        self.atoms.len() as u128 - 1
    }
    pub(super) fn set(&self, ms: &[IfaceMatch]) -> Option<IntervalSet> {
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
