//! The exposure read off the decision diagrams: the reference the first-match propagation
//! ([`Analysis::exposure`]) is tested against on the whole corpus (`flow/tests.rs`).

use super::*;
use crate::dd::{self, Dd, Id, Kind, NONE, Term};
use crate::model::*;
use crate::sets::{IntervalSet, ip_to_u128};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

type Parts = BTreeMap<Id, Sources>;

impl Analysis<'_> {
    /// The exposure read off the diagrams of [`Analysis::new`] (every scope and family, the
    /// input view and the forward view where a forward chain has rules; `dst`: only traffic
    /// to this address; `external`: the arriving interfaces, empty for every interface but
    /// loopback and container bridges, see [`Ifaces::external`]). The public entry point is
    /// [`Analysis::exposure`], by first-match propagation; this one is the reference it is
    /// tested against.
    pub(crate) fn exposure_by_diagrams(
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
