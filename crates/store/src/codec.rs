//! How model values map to rows, shared by both backends. Columns people query (address,
//! port, transport, state, service, product, version) are plain; the rest of a value is JSON.

use jiff::Timestamp;
use portolan_model::{Finding, Host, LocalInventory, LocalSocket, Port, Reason, ScanRun, Service};
use serde::{Deserialize, Serialize};

/// Nanoseconds since the epoch, the stored form of a time (exact; fits i64 until 2262).
pub fn nanos(t: Timestamp) -> i64 {
    i64::try_from(t.as_nanosecond()).unwrap_or(i64::MAX)
}

/// Back from nanoseconds.
pub fn from_nanos(ns: i64) -> Option<Timestamp> {
    Timestamp::from_nanosecond(i128::from(ns)).ok()
}

/// A scan without its hosts: the snapshot row's `scan_meta`.
pub fn scan_meta(run: &ScanRun) -> String {
    let meta = ScanRun {
        format_version: run.format_version,
        scanner: run.scanner.clone(),
        scanner_version: run.scanner_version.clone(),
        args: run.args.clone(),
        start: run.start,
        scan_info: run.scan_info.clone(),
        hosts: Vec::new(),
        stats: run.stats.clone(),
    };
    serde_json::to_string(&meta).unwrap_or_default()
}

/// A local inventory without its sockets and findings: the snapshot row's `local_meta`.
pub fn local_meta(inv: &LocalInventory) -> String {
    let meta = LocalInventory {
        format_version: inv.format_version,
        machine: inv.machine.clone(),
        taken_at: inv.taken_at,
        privileged: inv.privileged,
        socket_source: inv.socket_source.clone(),
        namespaces: inv.namespaces.clone(),
        sockets: Vec::new(),
        findings: Vec::new(),
        notes: inv.notes.clone(),
    };
    serde_json::to_string(&meta).unwrap_or_default()
}

/// A host without its ports: the host row's `detail`.
pub fn host_detail(h: &Host) -> String {
    let meta = Host {
        address: h.address,
        mac: h.mac.clone(),
        mac_vendor: h.mac_vendor.clone(),
        hostnames: h.hostnames.clone(),
        status: h.status.clone(),
        ports: Vec::new(),
        extra_ports: h.extra_ports.clone(),
        start_time: h.start_time,
        end_time: h.end_time,
        srtt_us: h.srtt_us,
    };
    serde_json::to_string(&meta).unwrap_or_default()
}

/// A registry guess (nmap's `method="table" conf="3"`) and nothing more.
fn is_table_guess(s: &Service) -> bool {
    s.method == portolan_model::ServiceMethod::Table
        && s.confidence == 3
        && s.product.is_none()
        && s.version.is_none()
        && s.extra_info.is_none()
        && s.hostname.is_none()
        && s.os_type.is_none()
        && s.device_type.is_none()
        && s.tunnel.is_none()
        && s.cpe.is_empty()
}

/// A port in its stored form, a JSON array `[number, transport, state, reason, reason_ttl]`
/// with the service as a sixth element when there is one (its name alone for a registry
/// guess, else the service object): a third of the size of the
/// object form and several times faster to read back, which is what makes loading a
/// million-port snapshot fast. SQL reads it with `json_each(host.ports)` and `value ->> 0`.
struct StoredPort<'a>(&'a Port);

impl Serialize for StoredPort<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let p = self.0;
        let mut t = s.serialize_tuple(if p.service.is_some() { 6 } else { 5 })?;
        t.serialize_element(&p.number)?;
        t.serialize_element(p.transport.as_str())?;
        t.serialize_element(p.state.as_str())?;
        t.serialize_element(p.reason.as_str())?;
        t.serialize_element(&p.reason_ttl)?;
        if let Some(svc) = &p.service {
            if is_table_guess(svc) {
                t.serialize_element(svc.name.as_str())?;
            } else {
                t.serialize_element(svc)?;
            }
        }
        t.end()
    }
}

struct PortsSeq<'a>(&'a [Port]);

impl Serialize for PortsSeq<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(StoredPort))
    }
}

/// A host's ports in their stored form, appended to `buf`.
pub fn ports_json(h: &Host, buf: &mut Vec<u8>) {
    if serde_json::to_writer(&mut *buf, &PortsSeq(&h.ports)).is_err() {
        buf.clear();
        buf.extend_from_slice(b"[]");
    }
}

struct PortVisitor;

impl<'de> serde::de::Visitor<'de> for PortVisitor {
    type Value = Port;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a stored port [number, transport, state, reason, reason_ttl, service?]")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Port, A::Error> {
        use serde::de::Error as _;
        let missing = |what: &str| A::Error::custom(format!("stored port without {what}"));
        let number: u16 = seq.next_element()?.ok_or_else(|| missing("number"))?;
        let transport: &str = seq.next_element()?.ok_or_else(|| missing("transport"))?;
        let state: &str = seq.next_element()?.ok_or_else(|| missing("state"))?;
        let reason: &str = seq.next_element()?.ok_or_else(|| missing("reason"))?;
        let reason_ttl: u8 = seq.next_element()?.ok_or_else(|| missing("reason_ttl"))?;
        let service = seq.next_element::<StoredService>()?.map(|s| std::sync::Arc::new(s.0));
        Ok(Port {
            number,
            transport: transport.parse().map_err(A::Error::custom)?,
            state: state.parse().map_err(A::Error::custom)?,
            reason: Reason::from_name(reason),
            reason_ttl,
            service,
        })
    }
}

/// The sixth element: a name (a registry guess) or a service object.
struct StoredService(Service);

impl<'de> Deserialize<'de> for StoredService {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<StoredService, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = StoredService;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a service name or a service object")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StoredService, E> {
                Ok(StoredService(Service::from_table(v)))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<StoredService, A::Error> {
                Service::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(StoredService)
            }
        }
        d.deserialize_any(V)
    }
}

struct LoadedPort(Port);

impl<'de> Deserialize<'de> for LoadedPort {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<LoadedPort, D::Error> {
        d.deserialize_seq(PortVisitor).map(LoadedPort)
    }
}

/// Reads back a host's stored ports.
pub fn ports_from_json(text: &str) -> serde_json::Result<Vec<Port>> {
    let v: Vec<LoadedPort> = serde_json::from_str(text)?;
    Ok(v.into_iter().map(|p| p.0).collect())
}

/// Open ports of a host.
pub fn open_count(h: &Host) -> i64 {
    h.ports.iter().filter(|p| p.state == portolan_model::PortState::Open).count() as i64
}

/// JSON of a socket (the socket row's `detail`).
pub fn socket_detail(s: &LocalSocket) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// JSON of a finding (the finding row's `detail`).
pub fn finding_detail(f: &Finding) -> String {
    serde_json::to_string(f).unwrap_or_default()
}

/// Counts kept on the snapshot row for listings.
pub struct Counts {
    pub hosts: i64,
    pub ports: i64,
    pub open: i64,
    pub sockets: i64,
    pub findings: i64,
}

/// Counts of a snapshot.
pub fn counts(s: &portolan_model::Snapshot) -> Counts {
    let (mut hosts, mut ports, mut open) = (0i64, 0i64, 0i64);
    if let Some(run) = &s.scan {
        hosts = run.hosts.len() as i64;
        for h in &run.hosts {
            ports += h.ports.len() as i64;
            open += h.ports.iter().filter(|p| p.state == portolan_model::PortState::Open).count() as i64;
            ports += h.extra_ports.iter().map(|x| i64::from(x.count)).sum::<i64>();
        }
    }
    let sockets = s.local.as_ref().map_or(0, |l| l.sockets.len() as i64);
    Counts { hosts, ports, open, sockets, findings: s.findings.len() as i64 }
}
