//! The store's test suite. Every test runs against SQLite (a temporary file) and, when
//! `PORTOLAN_TEST_POSTGRES` names a server (scripts/test.sh starts one), against PostgreSQL in a
//! fresh database: both backends must behave the same.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::IpAddr;

use common::{Backend, backends};
use jiff::Timestamp;
use portolan_model::{
    BindScope, ExtraPorts, ExtraReason, Finding, FindingTarget, Host, HostState, HostStatus, Hostname,
    HostnameKind, LocalInventory, LocalSocket, Netns, Owner, Port, PortState, Reason, ScanRun, Service,
    ServiceMethod, Severity, Snapshot, SocketState, Source, SourceLocation, Transport, Tunnel,
};
use portolan_store::{Error, SnapshotRef, Store};

const HOSTILE: &str =
    "evil\u{1b}[31m red\u{7} 'quote\" <tag> & \\ back \t tab \n newline ünï 中文 \u{202e}rtl";

fn port(n: u16, t: Transport, state: PortState, reason: Reason, service: Option<Service>) -> Port {
    Port { number: n, transport: t, state, reason, reason_ttl: 64, service: service.map(std::sync::Arc::new) }
}

fn scan(seed: u16) -> ScanRun {
    let start = Timestamp::from_nanosecond(1_790_000_000_123_456_789).unwrap();
    let mut run = ScanRun::new("nmap", "7.93", &format!("nmap -sV -p- 198.18.1.0/30 {HOSTILE}"), start);
    run.stats.finished = Some(Timestamp::from_second(1_790_000_100).unwrap());
    run.stats.elapsed_secs = 12.345_678;
    run.stats.hosts_up = 2;
    run.stats.hosts_total = 3;
    let mut h = Host::up("198.18.1.2".parse().unwrap(), Reason::EchoReply);
    h.mac = Some("02:00:00:00:00:01".into());
    h.hostnames.push(Hostname { name: format!("web{seed}.lab.test"), kind: HostnameKind::User });
    h.start_time = Some(start);
    h.srtt_us = Some(321);
    h.ports.push(port(
        22,
        Transport::Tcp,
        PortState::Open,
        Reason::SynAck,
        Some(Service {
            name: "ssh".into(),
            product: Some("OpenSSH".into()),
            version: Some(format!("9.{seed}p1")),
            extra_info: Some("protocol 2.0".into()),
            os_type: Some("Linux".into()),
            method: ServiceMethod::Probed,
            confidence: 10,
            cpe: vec!["cpe:/a:openbsd:openssh:9.2p1".into()],
            ..Service::default()
        }),
    ));
    h.ports.push(port(
        443,
        Transport::Tcp,
        PortState::Open,
        Reason::SynAck,
        Some(Service {
            name: "http".into(),
            product: Some(HOSTILE.into()),
            tunnel: Some(Tunnel::Ssl),
            method: ServiceMethod::Probed,
            confidence: 8,
            ..Service::default()
        }),
    ));
    h.ports.push(port(
        80,
        Transport::Tcp,
        PortState::Closed,
        Reason::Reset,
        Some(Service::from_table("http")),
    ));
    h.ports.push(port(9, Transport::Tcp, PortState::Filtered, Reason::Other("weird-reason".into()), None));
    h.ports.push(port(
        53,
        Transport::Udp,
        PortState::OpenFiltered,
        Reason::NoResponse,
        Some(Service::from_table("domain")),
    ));
    h.extra_ports.push(ExtraPorts {
        state: PortState::Closed,
        count: 65_530,
        reasons: vec![ExtraReason {
            reason: Reason::Reset,
            count: 65_530,
            transport: Some(Transport::Tcp),
            ports: Some("1-8,10-21".into()),
        }],
    });
    run.hosts.push(h);
    let mut h6 = Host::up("2001:db8:1::2".parse().unwrap(), Reason::UserSet);
    h6.ports.push(port(
        8080,
        Transport::Tcp,
        PortState::Open,
        Reason::SynAck,
        Some(Service::from_table("http-proxy")),
    ));
    run.hosts.push(h6);
    run.hosts.push(Host {
        status: HostStatus { state: HostState::Down, reason: Reason::NoResponse, reason_ttl: 0 },
        ..Host::up("198.18.1.3".parse().unwrap(), Reason::NoResponse)
    });
    run
}

fn finding(n: u16) -> Finding {
    Finding {
        rule: "policy.unapproved".into(),
        severity: Severity::High,
        title: format!("unapproved listener on {n}/tcp {HOSTILE}"),
        target: Some(FindingTarget {
            address: Some("198.18.1.2".parse().unwrap()),
            port: Some(n),
            transport: Some(Transport::Tcp),
        }),
        evidence: vec!["seen by scan".into(), HOSTILE.into()],
        remediation: "approve it or close it".into(),
        references: vec!["NIST SP 800-41".into()],
        attack: vec!["T1046".into()],
        location: Some(SourceLocation::new("policy.toml", 12, 1)),
    }
}

fn local() -> LocalInventory {
    let owner = |pid: u32, comm: &str| Owner {
        pid,
        fd: 3,
        comm: comm.into(),
        cmdline: format!("/usr/sbin/{comm} -D {HOSTILE}").into(),
        uid: Some(0),
        user: Some("root".into()),
    };
    let socket = |port: u16, addr: &str, owners: Vec<Owner>| LocalSocket {
        transport: Transport::Tcp,
        state: SocketState::Listen,
        local_address: addr.parse::<IpAddr>().unwrap(),
        local_port: port,
        peer_address: None,
        peer_port: None,
        device: None,
        v6only: None,
        inode: 1000 + u64::from(port),
        uid: 0,
        user: Some("root".into()),
        cgroup_id: Some(7),
        netns: 4026531840,
        owner_visible: !owners.is_empty(),
        owners,
        scope: BindScope::AllInterfaces,
        dual_stack: None,
        ipv4_mapped: false,
        reuseport_group: None,
        probable_client: false,
        service: Some("ssh".into()),
        kb_id: Some("ssh".into()),
        risk: Some(Severity::Medium),
    };
    LocalInventory {
        format_version: 1,
        machine: "lab-host".into(),
        taken_at: Timestamp::from_nanosecond(1_790_000_000_987_654_321).unwrap(),
        privileged: true,
        socket_source: "sock_diag".into(),
        namespaces: vec![Netns { inode: 4026531840, name: "host".into(), current: true }],
        sockets: vec![
            socket(22, "0.0.0.0", vec![owner(812, "sshd"), owner(813, "sshd")]),
            socket(6379, "::", vec![]),
        ],
        findings: vec![finding(6379)],
        notes: vec![format!("a note {HOSTILE}")],
    }
}

fn scan_snapshot(seed: u16) -> Snapshot {
    let mut s = Snapshot::of_scan(Source::Scan, scan(seed), "lab-host", "0.1.0");
    s.taken_at = Timestamp::from_nanosecond(1_790_000_000_000_000_001 + i128::from(seed)).unwrap();
    s.findings.push(finding(22));
    s
}

fn saved(mut s: Snapshot, id: i64) -> Snapshot {
    s.id = Some(id);
    s
}

#[test]
fn a_scan_snapshot_comes_back_exactly() {
    for b in backends("scan_roundtrip") {
        let mut st = b.open();
        let s = scan_snapshot(2);
        let id = st.save(&s).unwrap();
        assert_eq!(st.load(id).unwrap(), saved(s, id), "{}", b.name);
    }
}

#[test]
fn a_local_snapshot_comes_back_exactly() {
    for b in backends("local_roundtrip") {
        let mut st = b.open();
        let s = Snapshot::of_local(local(), "0.1.0");
        assert_eq!(s.findings.len(), 1);
        assert!(s.local.as_ref().unwrap().findings.is_empty());
        let id = st.save(&s).unwrap();
        assert_eq!(st.load(id).unwrap(), saved(s, id), "{}", b.name);
    }
}

#[test]
fn references_and_listing() {
    for b in backends("references") {
        let mut st = b.open();
        let err = st.resolve(&SnapshotRef::Last(0)).unwrap_err();
        assert!(err.to_string().contains("holds no snapshots yet"), "{}: {err}", b.name);
        let ids: Vec<i64> = (1..=3).map(|i| st.save(&scan_snapshot(i)).unwrap()).collect();
        let local_id = st.save(&Snapshot::of_local(local(), "0.1.0")).unwrap();
        assert_eq!(st.resolve(&"last".parse().unwrap()).unwrap(), local_id);
        assert_eq!(st.resolve(&"last~1".parse().unwrap()).unwrap(), ids[2]);
        assert_eq!(st.resolve(&"last~3".parse().unwrap()).unwrap(), ids[0]);
        assert_eq!(st.resolve(&SnapshotRef::Id(ids[1])).unwrap(), ids[1]);
        let err = st.resolve(&"last~9".parse().unwrap()).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{}", b.name);
        assert!(err.to_string().contains("holds 4 snapshot(s)"), "{err}");
        assert!(st.resolve(&SnapshotRef::Id(local_id + 100)).is_err());

        let list = st.list().unwrap();
        assert_eq!(list.iter().map(|s| s.id).collect::<Vec<_>>(), [local_id, ids[2], ids[1], ids[0]]);
        let l = &list[0];
        assert_eq!((l.source, l.sockets, l.findings, l.hosts), (Source::Local, 2, 1, 0), "{}", b.name);
        let s = &list[1];
        assert_eq!((s.source, s.hosts, s.open, s.findings), (Source::Scan, 3, 3, 1), "{}", b.name);
        assert_eq!(s.ports, 5 + 65_530 + 1);
        assert_eq!(s.scanner.as_deref(), Some("nmap"));
        assert_eq!(s.taken_at, scan_snapshot(3).taken_at);
    }
    for bad in ["", "lastx", "last~", "last~-1", "0", "-3", "abc", "last~1.5"] {
        assert!(matches!(bad.parse::<SnapshotRef>(), Err(Error::BadReference { .. })), "{bad:?}");
    }
}

#[test]
fn retention_and_deletion() {
    for b in backends("retention") {
        let mut st = b.open();
        let ids: Vec<i64> = (1..=5).map(|i| st.save(&scan_snapshot(i)).unwrap()).collect();
        // keep the 3 newest
        let gone = st.prune(Some(3), None).unwrap();
        assert_eq!(gone, [ids[1], ids[0]], "{}", b.name);
        // older than the 4th's time: only the 3rd goes
        let cut = scan_snapshot(4).taken_at;
        assert_eq!(st.prune(None, Some(cut)).unwrap(), [ids[2]], "{}", b.name);
        assert_eq!(st.delete(&[ids[3], 999_999]).unwrap(), 1);
        let left: Vec<i64> = st.list().unwrap().iter().map(|s| s.id).collect();
        assert_eq!(left, [ids[4]], "{}", b.name);
        // the survivor is whole, and deleted snapshots cannot be loaded
        assert_eq!(st.load(ids[4]).unwrap(), saved(scan_snapshot(5), ids[4]));
        assert!(matches!(st.load(ids[0]), Err(Error::NotFound { .. })));
    }
}

#[test]
fn two_writers_at_once_both_succeed() {
    for b in backends("two_writers") {
        drop(b.open()); // create and migrate first
        let ids: Vec<i64> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2u16)
                .map(|t| {
                    let b = &b;
                    s.spawn(move || {
                        let mut st = b.open();
                        (0..5u16).map(|i| st.save(&scan_snapshot(t * 10 + i)).unwrap()).collect::<Vec<_>>()
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let mut st = b.open();
        assert_eq!(st.list().unwrap().len(), 10, "{}", b.name);
        for id in ids {
            let s = st.load(id).unwrap();
            assert_eq!(s.scan.as_ref().unwrap().hosts.len(), 3);
        }
    }
}

#[test]
fn reopening_keeps_everything_and_a_newer_schema_is_refused() {
    for b in backends("reopen") {
        let id = b.open().save(&scan_snapshot(1)).unwrap();
        let mut st = b.open();
        assert_eq!(st.load(id).unwrap(), saved(scan_snapshot(1), id));
        drop(st);
        b.raw("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)");
        let err = Store::open(&b.location).err().expect("a newer schema must be refused");
        assert!(matches!(err, Error::TooNew { found: 99, .. }), "{}: {err}", b.name);
        assert!(err.to_string().contains("upgrade Portolan"), "{err}");
    }
}

#[test]
fn a_damaged_row_is_an_error_not_a_panic() {
    for b in backends("damaged") {
        let id = b.open().save(&scan_snapshot(1)).unwrap();
        b.raw("UPDATE host SET ports = '[[22,\"tcp\",\"sideways\",\"syn-ack\",64]]' WHERE seq = 0");
        let err = b.open().load(id).unwrap_err();
        assert!(matches!(err, Error::Corrupt { snapshot, .. } if snapshot == id), "{}: {err}", b.name);
        assert!(err.to_string().contains("sideways"), "{err}");
    }
}

#[test]
fn an_unwritable_location_is_a_clear_error() {
    let dir = common::temp_dir("unwritable");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let location = file.join("p.db");
    let err = Store::open(location.to_str().unwrap()).err().expect("must fail");
    assert!(matches!(err, Error::Open { .. }), "{err}");
    // the message names the file; the binary adds which flag to change
    assert!(err.to_string().contains("not-a-dir/p.db"), "{err}");
    assert!(!err.to_string().contains("--"), "{err}");
}

/// `full` split into `n` shards as `--shard` would: each host's ports dealt round-robin (a
/// host with none in a shard is not in it), its summarised ports in the first shard.
fn shards_of(full: &Snapshot, n: usize) -> Vec<Snapshot> {
    (0..n)
        .map(|k| {
            let mut s = full.clone();
            s.findings = if k == 0 { full.findings.clone() } else { Vec::new() };
            let run = s.scan.as_mut().unwrap();
            run.hosts.retain_mut(|h| {
                let ports = std::mem::take(&mut h.ports);
                h.ports = ports.into_iter().enumerate().filter(|(i, _)| i % n == k).map(|(_, p)| p).collect();
                if k != 0 {
                    h.extra_ports.clear();
                }
                k == 0 || !h.ports.is_empty()
            });
            s
        })
        .collect()
}

#[test]
fn a_run_of_shards_reads_as_one_scan_and_a_resaved_shard_replaces_its_rows() {
    for b in backends("runs") {
        let mut st = b.open();
        let before = st.save(&scan_snapshot(9)).unwrap();
        let full = scan_snapshot(4);
        let spec = portolan_store::RunSpec {
            name: "nightly".into(),
            shards: 3,
            seed: 7,
            spec: "targets=198.18.1.0/30".into(),
        };
        let shards = shards_of(&full, 3);
        // shard 2 first, then 3: the run shows what is missing
        st.save_shard(&shards[1], &spec, 2).unwrap();
        st.save_shard(&shards[2], &spec, 3).unwrap();
        st.mark_failed(&spec, 1, "stopped by a signal (exit 143)").unwrap();
        let runs = st.runs().unwrap();
        assert_eq!(runs.len(), 1, "{}", b.name);
        assert_eq!((runs[0].done.clone(), runs[0].missing()), (vec![2, 3], vec![1]), "{}", b.name);
        assert_eq!(runs[0].failed, [(1, "stopped by a signal (exit 143)".to_string())], "{}", b.name);
        st.save_shard(&shards[0], &spec, 1).unwrap();
        // shard 2 again (a re-run): replaced, not added
        st.save_shard(&shards[1], &spec, 2).unwrap();
        assert_eq!(st.runs().unwrap()[0].done, [1, 2, 3], "{}", b.name);
        assert!(st.runs().unwrap()[0].failed.is_empty(), "a saved shard is no longer failed");
        // shards are not snapshots of their own: last is still the plain one
        assert_eq!(st.resolve(&SnapshotRef::Last(0)).unwrap(), before, "{}", b.name);
        assert_eq!(st.list().unwrap().len(), 1, "{}", b.name);

        let merged = st.load_ref(&"run:nightly".parse().unwrap()).unwrap();
        let (m, f) = (merged.scan.as_ref().unwrap(), full.scan.as_ref().unwrap());
        let mut want = f.hosts.clone();
        want.sort_by_key(|h| h.address);
        for h in &mut want {
            h.ports.sort_by_key(|p| (p.transport, p.number));
        }
        assert_eq!(m.hosts, want, "{}: the merged hosts differ from the unsharded scan", b.name);
        assert_eq!(merged.findings, full.findings, "{}", b.name);
        assert!(m.args.contains("run nightly: 3 of 3 shards"), "{}", m.args);

        // a shard that disagrees with its run, or outside it, is refused and writes nothing
        let other = portolan_store::RunSpec { spec: "targets=198.18.2.0/30".into(), ..spec.clone() };
        let err = st.save_shard(&shards[0], &other, 1).unwrap_err();
        assert!(matches!(err, Error::RunMismatch { .. }), "{}: {err}", b.name);
        assert!(st.check_shard(&other, 1).is_err());
        assert!(matches!(st.save_shard(&shards[0], &spec, 4), Err(Error::ShardOutOfRange { .. })));
        assert!(matches!(st.resolve(&"run:nightly".parse().unwrap()), Err(Error::NotOneSnapshot { .. })));
        let err = st.load_ref(&"run:nope".parse().unwrap()).unwrap_err();
        assert!(err.to_string().contains("runs: nightly"), "{err}");
        assert_eq!(st.load_ref(&"run:nightly".parse().unwrap()).unwrap(), merged, "{}", b.name);

        assert!(st.delete_run("nightly").unwrap());
        assert!(!st.delete_run("nightly").unwrap());
        assert!(st.runs().unwrap().is_empty());
        assert_eq!(st.list().unwrap().len(), 1, "{}", b.name);
    }
    for bad in ["run:", "run:a b", "run:x/y"] {
        assert!(matches!(bad.parse::<SnapshotRef>(), Err(Error::BadReference { .. })), "{bad:?}");
    }
}

#[allow(dead_code)]
fn _uses(_: Backend) {}
