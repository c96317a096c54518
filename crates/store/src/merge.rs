//! A run's shards as one scan. `--shard I/N` splits the target × port space, so one host's
//! ports can lie in several shards: hosts are merged by address (in address order), their
//! ports joined, their state the best any shard saw (up over down), their times the widest.

use std::collections::BTreeMap;
use std::net::IpAddr;

use portolan_model::{Host, HostState, Snapshot, Source};

use crate::RunInfo;

/// The shards (in shard order) of `info` as one snapshot.
pub fn merge(info: &RunInfo, shards: Vec<Snapshot>) -> Snapshot {
    let mut hosts: BTreeMap<IpAddr, Host> = BTreeMap::new();
    let mut first: Option<Snapshot> = None;
    let mut findings = Vec::new();
    let mut elapsed: f64 = 0.0;
    let mut finished = None;
    let mut scan_info = Vec::new();
    for mut s in shards {
        findings.append(&mut s.findings);
        if let Some(run) = s.scan.as_mut() {
            elapsed = elapsed.max(run.stats.elapsed_secs);
            finished = finished.max(run.stats.finished);
            for si in run.scan_info.drain(..) {
                if !scan_info.contains(&si) {
                    scan_info.push(si);
                }
            }
            for h in run.hosts.drain(..) {
                match hosts.get_mut(&h.address) {
                    None => {
                        hosts.insert(h.address, h);
                    }
                    Some(m) => join(m, h),
                }
            }
        }
        if first.is_none() {
            first = Some(s);
        }
    }
    let mut out = first.unwrap_or_else(|| Snapshot {
        id: None,
        taken_at: info.created_at,
        source: Source::Scan,
        machine: String::new(),
        tool_version: String::new(),
        scan: None,
        local: None,
        findings: Vec::new(),
    });
    out.id = None;
    out.findings = findings;
    if let Some(run) = out.scan.as_mut() {
        let mut merged: Vec<Host> = hosts.into_values().collect();
        for h in &mut merged {
            h.ports.sort_by_key(|p| (p.transport, p.number));
            h.ports.dedup_by_key(|p| (p.transport, p.number));
        }
        run.stats.hosts_up = merged.iter().filter(|h| h.status.state == HostState::Up).count() as u32;
        run.stats.hosts_down = merged.len() as u32 - run.stats.hosts_up;
        run.stats.hosts_total = merged.len() as u32;
        run.stats.elapsed_secs = elapsed;
        run.stats.finished = finished;
        run.scan_info = scan_info;
        run.args =
            format!("{} (run {}: {} of {} shards)", info.spec, info.name, info.done.len(), info.shards);
        run.hosts = merged;
    }
    out
}

fn join(m: &mut Host, h: Host) {
    if m.status.state != HostState::Up && h.status.state == HostState::Up {
        m.status = h.status;
    }
    for n in h.hostnames {
        if !m.hostnames.contains(&n) {
            m.hostnames.push(n);
        }
    }
    if m.mac.is_none() {
        m.mac = h.mac;
        m.mac_vendor = h.mac_vendor;
    }
    m.ports.extend(h.ports);
    for e in h.extra_ports {
        match m.extra_ports.iter_mut().find(|x| x.state == e.state) {
            Some(x) => {
                x.count += e.count;
                x.reasons.extend(e.reasons);
            }
            None => m.extra_ports.push(e),
        }
    }
    m.start_time = match (m.start_time, h.start_time) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    m.end_time = m.end_time.max(h.end_time);
    m.srtt_us = match (m.srtt_us, h.srtt_us) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
}
