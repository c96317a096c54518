//! Built-in codecs for protocols whose questions and answers have structure (BER, binary
//! headers, length prefixes): each builds a request and reads an answer into a [`Found`].
//! Written from the protocols' specifications (RFC 4511 LDAP, RFC 3416 SNMP, RFC 4120 Kerberos,
//! RFC 5531/1833 ONC RPC and portmapper, RFC 1035 DNS, RFC 5905 NTP, MS-SMB2, MS-RDPBCGR,
//! MS-TDS, the PostgreSQL and MySQL client/server protocols, RFC 2637 PPTP, RFC 1002 NetBIOS
//! name service).

use portolan_model::Transport;

use crate::ber;

/// What a response revealed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// Service name (nmap's vocabulary).
    pub service: String,
    /// Product.
    pub product: Option<String>,
    /// Version.
    pub version: Option<String>,
    /// Extra information.
    pub info: Option<String>,
    /// Host name the service revealed.
    pub hostname: Option<String>,
    /// Operating system.
    pub os: Option<String>,
    /// Device type.
    pub device: Option<String>,
    /// CPE names.
    pub cpe: Vec<String>,
    /// Only the service is known: keep asking its own probes for more.
    pub soft: bool,
    /// The service answered a question that needs authentication where it is enabled.
    pub noauth: bool,
}

impl Found {
    fn new(service: &str) -> Found {
        Found { service: service.to_string(), ..Found::default() }
    }
    fn soft(service: &str) -> Found {
        Found { service: service.to_string(), soft: true, ..Found::default() }
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// The request of a built-in probe.
pub fn request(builtin: &str, transport: Transport) -> Vec<u8> {
    let tcp = transport == Transport::Tcp;
    match builtin {
        "smb" => smb_request(),
        "ldap" => ldap_request(),
        "snmp" => snmp_request(),
        "mssql" => mssql_request(),
        "rdp" => rdp_request(),
        "kerberos" => length_prefixed(kerberos_request(), tcp, false),
        "rpc" => length_prefixed(rpc_request(), tcp, true),
        "dns" => dns_request(tcp),
        "ntp" => ntp_request(),
        "pgsql" => pgsql_request(),
        "echo" => ECHO_TEXT.to_vec(),
        "pptp" => pptp_request(),
        "nbstat" => nbstat_request(),
        _ => Vec::new(),
    }
}

/// Reads the answer to a built-in probe.
pub fn parse(builtin: &str, transport: Transport, resp: &[u8]) -> Option<Found> {
    let tcp = transport == Transport::Tcp;
    match builtin {
        "smb" => smb_parse(resp),
        "ldap" => ldap_parse(resp),
        "snmp" => snmp_parse(resp),
        "mssql" => mssql_parse(resp),
        "rdp" => rdp_parse(resp),
        "kerberos" => kerberos_parse(if tcp { resp.get(4..)? } else { resp }),
        "rpc" => rpc_parse(if tcp { resp.get(4..)? } else { resp }),
        "dns" => dns_parse(if tcp { resp.get(2..)? } else { resp }),
        "ntp" => ntp_parse(resp),
        "pgsql" => pgsql_parse(resp),
        "echo" => (resp.starts_with(ECHO_TEXT)).then(|| Found::new("echo")),
        "pptp" => pptp_parse(resp),
        "nbstat" => nbstat_parse(resp),
        _ => None,
    }
}

/// Parsers for answers that come unasked (server-first binary greetings), tried on every
/// response.
pub fn unasked(resp: &[u8], now_unix: i64) -> Option<Found> {
    mysql_parse(resp).or_else(|| time_parse(resp, now_unix))
}

const ECHO_TEXT: &[u8] = b"portolan echo check 7f3a\r\n";

fn length_prefixed(msg: Vec<u8>, tcp: bool, record_mark: bool) -> Vec<u8> {
    if !tcp {
        return msg;
    }
    let mut len = msg.len() as u32;
    if record_mark {
        len |= 0x8000_0000;
    }
    let mut out = len.to_be_bytes().to_vec();
    out.extend(msg);
    out
}

// --- SMB (MS-SMB2 2.2.3/2.2.4 via an SMB1 multi-protocol negotiate, as clients start) ---

fn smb_request() -> Vec<u8> {
    let mut dialects = Vec::new();
    for d in ["NT LM 0.12", "SMB 2.002", "SMB 2.???"] {
        dialects.push(0x02);
        dialects.extend_from_slice(d.as_bytes());
        dialects.push(0);
    }
    let mut smb = vec![0xff, b'S', b'M', b'B', 0x72]; // negotiate
    smb.extend_from_slice(&[0, 0, 0, 0]); // status
    smb.push(0x18); // flags: canonical paths, case-insensitive
    smb.extend_from_slice(&[0x01, 0x28]); // flags2: unicode off, NT status, long names
    smb.extend_from_slice(&[0; 12]); // pid high, signature, reserved
    smb.extend_from_slice(&[0xff, 0xff, 0xfe, 0xff, 0, 0, 0, 0]); // tid, pid, uid, mid
    smb.push(0); // word count
    smb.extend_from_slice(&(dialects.len() as u16).to_le_bytes());
    smb.extend(dialects);
    let mut out = vec![0x00];
    out.extend_from_slice(&(smb.len() as u32).to_be_bytes()[1..]);
    out.extend(smb);
    out
}

fn smb_parse(resp: &[u8]) -> Option<Found> {
    let body = resp.get(4..)?;
    if body.starts_with(b"\xfeSMB") {
        let mut f = Found::new("microsoft-ds");
        // negotiate response: dialect revision at 64 + 4
        if let Some(d) = le16(body, 64 + 4) {
            let name = match d {
                0x0202 => "2.0.2",
                0x0210 => "2.1",
                0x02ff => "2.x",
                0x0300 => "3.0",
                0x0302 => "3.0.2",
                0x0311 => "3.1.1",
                _ => "",
            };
            if !name.is_empty() {
                f.info = Some(format!("SMB dialect {name}"));
            }
        }
        if let Some(name) = body.get(64 + 8..64 + 24).and_then(samba_guid) {
            f.product = Some("Samba smbd".into());
            f.hostname = Some(name);
            f.cpe.push("cpe:/a:samba:samba".into());
        }
        return Some(f);
    }
    if body.starts_with(b"\xffSMB") {
        let mut f = Found::new("microsoft-ds");
        f.info = Some("SMBv1".into());
        return Some(f);
    }
    None
}

/// Samba fills the negotiate response's ServerGuid with its NetBIOS name in lower case,
/// NUL-padded (observed on Samba 4.17 with two names); Windows sends a random GUID. A GUID
/// that is one to fifteen name characters followed only by zeros is Samba's.
fn samba_guid(guid: &[u8]) -> Option<String> {
    let len = guid.iter().position(|b| *b == 0)?;
    let name = &guid[..len];
    let ok = (1..=15).contains(&len)
        && guid[len..].iter().all(|b| *b == 0)
        && name.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.$".contains(b));
    ok.then(|| String::from_utf8_lossy(name).into_owned())
}

// --- LDAP rootDSE (RFC 4511 4.5.1, RFC 4512 5.1) ---

const LDAP_ATTRS: &[&str] = &[
    "objectClass",
    "namingContexts",
    "supportedLDAPVersion",
    "vendorName",
    "vendorVersion",
    "dnsHostName",
    "serverName",
    "defaultNamingContext",
];

fn ldap_request() -> Vec<u8> {
    let attrs: Vec<Vec<u8>> = LDAP_ATTRS.iter().map(|a| ber::tlv(0x04, a.as_bytes())).collect();
    let attr_refs: Vec<&[u8]> = attrs.iter().map(Vec::as_slice).collect();
    let search = ber::seq(
        0x63,
        &[
            &ber::tlv(0x04, b""),
            &ber::tlv(0x0a, &[0]),
            &ber::tlv(0x0a, &[0]),
            &ber::int(0),
            &ber::int(0),
            &ber::tlv(0x01, &[0]),
            &ber::tlv(0x87, b"objectClass"),
            &ber::seq(0x30, &attr_refs),
        ],
    );
    ber::seq(0x30, &[&ber::int(1), &search])
}

fn ldap_parse(resp: &[u8]) -> Option<Found> {
    let (msg, _) = ber::expect(resp, 0x30)?;
    let mut parts = ber::children(msg.value);
    let _id = parts.next().filter(|t| t.tag == 0x02)?;
    let op = parts.next()?;
    match op.tag {
        0x64 => {
            let mut f = Found::new("ldap");
            let mut it = ber::children(op.value);
            let _dn = it.next();
            let mut vals: Vec<(String, Vec<String>)> = Vec::new();
            if let Some(attrs) = it.next() {
                for a in ber::children(attrs.value).take(64) {
                    let mut p = ber::children(a.value);
                    let (Some(ty), Some(set)) = (p.next(), p.next()) else { continue };
                    let v: Vec<String> = ber::children(set.value)
                        .take(32)
                        .map(|x| String::from_utf8_lossy(x.value).into_owned())
                        .collect();
                    vals.push((String::from_utf8_lossy(ty.value).to_ascii_lowercase(), v));
                }
            }
            let get = |k: &str| vals.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
            let classes = get("objectclass");
            let vendor = get("vendorname");
            if classes.iter().any(|c| c.eq_ignore_ascii_case("OpenLDAProotDSE")) {
                f.product = Some("OpenLDAP".into());
                f.cpe.push("cpe:/a:openldap:openldap".into());
            } else if let Some(v) = vendor.first() {
                f.product = Some(v.clone());
                f.version = get("vendorversion").first().cloned();
            } else if !get("defaultnamingcontext").is_empty() && !get("dnshostname").is_empty() {
                f.product = Some("Microsoft Windows Active Directory LDAP".into());
                f.hostname = get("dnshostname").first().cloned();
            }
            let contexts = get("namingcontexts");
            let versions = get("supportedldapversion");
            let mut info = Vec::new();
            if !versions.is_empty() {
                info.push(format!("LDAP v{}", versions.join(",")));
            }
            if !contexts.is_empty() {
                info.push(format!("naming contexts: {}", contexts.join("; ")));
            }
            if !info.is_empty() {
                f.info = Some(info.join(", "));
            }
            f.soft = f.product.is_none();
            Some(f)
        }
        // a search result done or a notice of disconnection: LDAP all the same
        0x65 | 0x78 => Some(Found::soft("ldap")),
        _ => None,
    }
}

// --- SNMP v1 GetRequest sysDescr.0, sysObjectID.0 (RFC 1157, RFC 3416) ---

const SYS_DESCR: &str = "1.3.6.1.2.1.1.1.0";
const SYS_OBJECT_ID: &str = "1.3.6.1.2.1.1.2.0";

fn snmp_request() -> Vec<u8> {
    let null = [0x05, 0x00];
    let vb1 = ber::seq(0x30, &[&ber::oid_bytes(SYS_DESCR), &null]);
    let vb2 = ber::seq(0x30, &[&ber::oid_bytes(SYS_OBJECT_ID), &null]);
    let pdu =
        ber::seq(0xa0, &[&ber::int(0x5054), &ber::int(0), &ber::int(0), &ber::seq(0x30, &[&vb1, &vb2])]);
    ber::seq(0x30, &[&ber::int(0), &ber::tlv(0x04, b"public"), &pdu])
}

fn enterprise(oid: &str) -> Option<&'static str> {
    let rest = oid.strip_prefix("1.3.6.1.4.1.")?;
    let num = rest.split('.').next()?;
    Some(match num {
        "8072" => "net-snmp",
        "2021" => "UCD-SNMP",
        "9" => "Cisco SNMP service",
        "311" => "Microsoft Windows SNMP service",
        "2636" => "Juniper SNMP agent",
        "14988" => "MikroTik RouterOS SNMP",
        "11" | "232" => "HP SNMP agent",
        _ => return None,
    })
}

fn snmp_parse(resp: &[u8]) -> Option<Found> {
    let (msg, _) = ber::expect(resp, 0x30)?;
    let mut parts = ber::children(msg.value);
    let version = parts.next().filter(|t| t.tag == 0x02)?;
    let community = parts.next().filter(|t| t.tag == 0x04)?;
    let pdu = parts.next().filter(|t| t.tag == 0xa2)?;
    let mut f = Found::new("snmp");
    let mut p = ber::children(pdu.value);
    let _id = p.next();
    let status = p.next().and_then(|s| ber::uint(s.value)).unwrap_or(0);
    let _index = p.next();
    let mut descr = None;
    if let Some(list) = p.next() {
        for vb in ber::children(list.value).take(8) {
            let mut it = ber::children(vb.value);
            let (Some(o), Some(v)) = (it.next(), it.next()) else { continue };
            let oid = ber::oid(o.value).unwrap_or_default();
            if oid == SYS_DESCR && v.tag == 0x04 {
                descr = Some(String::from_utf8_lossy(v.value).into_owned());
            } else if oid == SYS_OBJECT_ID && v.tag == 0x06 {
                let obj = ber::oid(v.value).unwrap_or_default();
                f.product = enterprise(&obj).map(str::to_string);
            }
        }
    }
    let v = match ber::uint(version.value) {
        Some(0) => "SNMPv1",
        Some(1) => "SNMPv2c",
        _ => "SNMP",
    };
    let mut info = format!("{v}; community {}", String::from_utf8_lossy(community.value));
    // the well-known community was accepted: default credentials
    f.noauth = status == 0 && community.value == b"public";
    if status != 0 {
        info.push_str(&format!("; error-status {status}"));
    }
    if let Some(d) = descr {
        let d: String = d.chars().take(120).collect();
        info.push_str(&format!("; sysDescr: {d}"));
    }
    f.info = Some(info);
    Some(f)
}

// --- MS-TDS PRELOGIN (MS-TDS 2.2.6.5) ---

fn mssql_request() -> Vec<u8> {
    // options: VERSION (0), ENCRYPTION (1), INSTOPT (2), THREADID (3), MARS (4), terminator
    let opts: [(u8, Vec<u8>); 5] = [
        (0, vec![0, 0, 0, 0, 0, 0]),
        (1, vec![2]), // ENCRYPT_NOT_SUP
        (2, vec![0]),
        (3, vec![0, 0, 0, 0]),
        (4, vec![0]),
    ];
    let header_len = opts.len() * 5 + 1;
    let mut head = Vec::new();
    let mut body = Vec::new();
    for (token, data) in &opts {
        head.push(*token);
        head.extend_from_slice(&((header_len + body.len()) as u16).to_be_bytes());
        head.extend_from_slice(&(data.len() as u16).to_be_bytes());
        body.extend_from_slice(data);
    }
    head.push(0xff);
    head.extend(body);
    let mut out = vec![0x12, 0x01];
    out.extend_from_slice(&((head.len() + 8) as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend(head);
    out
}

fn mssql_parse(resp: &[u8]) -> Option<Found> {
    if resp.first() != Some(&0x04) || resp.len() < 8 + 6 {
        return None;
    }
    let body = &resp[8..];
    let mut i = 0;
    let mut f = None;
    while let Some(&token) = body.get(i) {
        if token == 0xff {
            break;
        }
        let off = usize::from(be16(body, i + 1)?);
        let len = usize::from(be16(body, i + 3)?);
        if token == 0 && len >= 6 {
            let v = body.get(off..off + 6)?;
            let build = u16::from_be_bytes([v[2], v[3]]);
            let mut found = Found::new("ms-sql-s");
            found.product = Some("Microsoft SQL Server".into());
            found.version = Some(format!("{}.{:02}.{}.00", v[0], v[1], build));
            f = Some(found);
        }
        i += 5;
        if i > 5 * 16 {
            break;
        }
    }
    f
}

// --- RDP X.224 Connection Request with an RDP Negotiation Request (MS-RDPBCGR 2.2.1.1) ---

fn rdp_request() -> Vec<u8> {
    vec![
        0x03, 0x00, 0x00, 0x13, // TPKT, length 19
        0x0e, 0xe0, 0x00, 0x00, 0x00, 0x00, 0x00, // X.224 CR
        0x01, 0x00, 0x08, 0x00, 0x0b, 0x00, 0x00, 0x00, // RDP_NEG_REQ: TLS | CredSSP | RDSTLS
    ]
}

fn rdp_parse(resp: &[u8]) -> Option<Found> {
    if resp.len() < 11 || resp[0] != 0x03 || resp[1] != 0 || resp[5] & 0xf0 != 0xd0 {
        return None;
    }
    let mut f = Found::new("ms-wbt-server");
    if let Some(&ty) = resp.get(11) {
        let info = match (ty, resp.get(15).copied()) {
            (0x02, Some(0)) => "standard RDP security",
            (0x02, Some(1)) => "TLS",
            (0x02, Some(2)) => "CredSSP (NLA)",
            (0x02, Some(8)) => "CredSSP with early user authorization",
            (0x03, _) => "negotiation failure",
            _ => "",
        };
        if !info.is_empty() {
            f.info = Some(info.into());
        }
        // Offered TLS, CredSSP and RDSTLS, a Windows server (Vista and later) selects CredSSP
        // and sets several flags in RDP_NEG_RSP; xrdp, which has no CredSSP, selects TLS with
        // only EXTENDED_CLIENT_DATA_SUPPORTED (0x01) set (observed on xrdp 0.9.21)
        if ty == 0x02 && resp.get(12) == Some(&0x01) && resp.get(15) == Some(&1) {
            f.product = Some("xrdp".into());
            f.cpe.push("cpe:/a:neutrinolabs:xrdp".into());
        }
    }
    Some(f)
}

// --- Kerberos AS-REQ (RFC 4120 5.4.1), answered by a KRB-ERROR or an AS-REP ---

fn ctx(n: u8, inner: &[u8]) -> Vec<u8> {
    ber::tlv(0xa0 | n, inner)
}

fn kerberos_request() -> Vec<u8> {
    let gs = |s: &str| ber::tlv(0x1b, s.as_bytes());
    let realm = "PORTOLAN.INVALID";
    let cname = ber::seq(0x30, &[&ctx(0, &ber::int(1)), &ctx(1, &ber::seq(0x30, &[&gs("portolan")]))]);
    let sname =
        ber::seq(0x30, &[&ctx(0, &ber::int(2)), &ctx(1, &ber::seq(0x30, &[&gs("krbtgt"), &gs(realm)]))]);
    let etypes = ber::seq(0x30, &[&ber::int(18), &ber::int(17), &ber::int(23)]);
    let body = ber::seq(
        0x30,
        &[
            &ctx(0, &ber::tlv(0x03, &[0, 0x40, 0x81, 0, 0x10])),
            &ctx(1, &cname),
            &ctx(2, &gs(realm)),
            &ctx(3, &sname),
            &ctx(5, &ber::tlv(0x18, b"20370913024805Z")),
            &ctx(7, &ber::int(0x5054_4c4e)),
            &ctx(8, &etypes),
        ],
    );
    let req = ber::seq(0x30, &[&ctx(1, &ber::int(5)), &ctx(2, &ber::int(10)), &ctx(4, &body)]);
    ber::tlv(0x6a, &req)
}

fn kerberos_parse(resp: &[u8]) -> Option<Found> {
    let (msg, _) = ber::read(resp)?;
    match msg.tag {
        0x7e => {
            let (seq, _) = ber::expect(msg.value, 0x30)?;
            let mut f = Found::new("kerberos-sec");
            let mut info = Vec::new();
            for field in ber::children(seq.value).take(16) {
                let inner = ber::read(field.value).map(|(t, _)| t);
                match (field.tag, inner) {
                    (0xa4, Some(t)) => {
                        if let Ok(s) = std::str::from_utf8(t.value) {
                            info.push(format!("server time: {s}"));
                        }
                    }
                    (0xa6, Some(t)) => {
                        if let Some(code) = ber::uint(t.value) {
                            info.push(format!("error {code}"));
                        }
                    }
                    (0xa9, Some(t)) => info.push(format!("realm: {}", String::from_utf8_lossy(t.value))),
                    (0xab, Some(t)) => {
                        // MIT's KDC puts its status name (CLIENT_NOT_FOUND, NEEDED_PREAUTH) in
                        // e-text; other KDCs write sentences
                        let text = String::from_utf8_lossy(t.value).into_owned();
                        if !text.is_empty()
                            && text.len() <= 40
                            && text.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
                        {
                            f.product = Some("MIT Kerberos".into());
                            f.cpe.push("cpe:/a:mit:kerberos".into());
                        }
                        info.push(format!("e-text: {}", text.chars().take(80).collect::<String>()));
                    }
                    _ => {}
                }
            }
            // the pvno field is 5: a Kerberos 5 KDC
            if !info.is_empty() {
                f.info = Some(info.join(", "));
            }
            Some(f)
        }
        0x6b => Some(Found::new("kerberos-sec")),
        _ => None,
    }
}

// --- ONC RPC portmapper DUMP (RFC 1833, RFC 5531) ---

fn rpc_request() -> Vec<u8> {
    let words: [u32; 10] = [0x5054_4c4e, 0, 2, 100_000, 2, 4, 0, 0, 0, 0];
    words.iter().flat_map(|w| w.to_be_bytes()).collect()
}

fn rpc_parse(resp: &[u8]) -> Option<Found> {
    if be32(resp, 0)? != 0x5054_4c4e || be32(resp, 4)? != 1 {
        return None;
    }
    let mut f = Found::new("rpcbind");
    if be32(resp, 8)? != 0 {
        f.soft = false;
        f.info = Some("RPC call denied".into());
        return Some(f);
    }
    let verf_len = be32(resp, 16)? as usize;
    let mut at = 20 + verf_len.div_ceil(4) * 4;
    if be32(resp, at)? != 0 {
        return Some(f);
    }
    at += 4;
    let mut versions: Vec<u32> = Vec::new();
    let mut programs = 0;
    while be32(resp, at) == Some(1) && programs < 4096 {
        let (prog, vers) = (be32(resp, at + 4)?, be32(resp, at + 8)?);
        if prog == 100_000 && !versions.contains(&vers) {
            versions.push(vers);
        }
        programs += 1;
        at += 20;
    }
    versions.sort_unstable();
    if let (Some(lo), Some(hi)) = (versions.first(), versions.last()) {
        f.version = Some(if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") });
        f.info = Some("RPC #100000".into());
    }
    Some(f)
}

// --- DNS CHAOS TXT version.bind (RFC 1035; the CHAOS convention of BIND) ---

fn dns_request(tcp: bool) -> Vec<u8> {
    let mut q = vec![0x50, 0x54, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["version", "bind"] {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 16, 0, 3]);
    if tcp {
        let mut out = (q.len() as u16).to_be_bytes().to_vec();
        out.extend(q);
        return out;
    }
    q
}

fn dns_parse(resp: &[u8]) -> Option<Found> {
    if resp.len() < 12 || resp[0] != 0x50 || resp[1] != 0x54 || resp[2] & 0x80 == 0 {
        return None;
    }
    let mut f = Found::soft("domain");
    let rcode = resp[3] & 0x0f;
    let answers = be16(resp, 6)?;
    if answers > 0 {
        // skip the question, read the first TXT's first string
        let mut at = 12;
        while let Some(&l) = resp.get(at) {
            at += 1 + usize::from(l);
            if l == 0 {
                break;
            }
            if l & 0xc0 == 0xc0 {
                at += 0;
                break;
            }
        }
        at += 4;
        // answer name: a pointer or labels
        if resp.get(at).is_some_and(|b| b & 0xc0 == 0xc0) {
            at += 2;
        } else {
            while let Some(&l) = resp.get(at) {
                at += 1 + usize::from(l);
                if l == 0 {
                    break;
                }
            }
        }
        let ty = be16(resp, at)?;
        let rdlen = usize::from(be16(resp, at + 8)?);
        if ty == 16 && rdlen > 0 {
            let rd = resp.get(at + 10..at + 10 + rdlen)?;
            let n = usize::from(rd[0]);
            let txt = String::from_utf8_lossy(rd.get(1..1 + n)?).into_owned();
            f.info = Some(format!("version.bind: {txt}"));
        }
    } else if rcode != 0 {
        f.info = Some(format!("version.bind refused (rcode {rcode})"));
    }
    Some(f)
}

// --- NTP client request (RFC 5905 7.3) ---

fn ntp_request() -> Vec<u8> {
    let mut p = vec![0u8; 48];
    p[0] = 0x23; // LI 0, version 4, mode 3 (client)
    p[40..48].copy_from_slice(&[0x50, 0x54, 0x4c, 0x4e, 0, 0, 0, 1]);
    p
}

fn ntp_parse(resp: &[u8]) -> Option<Found> {
    if resp.len() < 48 || resp[0] & 0x07 != 4 || resp[24..32] != [0x50, 0x54, 0x4c, 0x4e, 0, 0, 0, 1] {
        return None;
    }
    let mut f = Found::new("ntp");
    f.product = Some("NTP".into());
    f.version = Some(format!("v{}", (resp[0] >> 3) & 0x07));
    let stratum = resp[1];
    f.info = Some(if resp[0] >> 6 == 3 || stratum == 0 || stratum >= 16 {
        "unsynchronized".into()
    } else {
        format!("stratum {stratum}")
    });
    Some(f)
}

// --- PPTP Start-Control-Connection-Request / -Reply (RFC 2637 2.1, 2.2) ---

const PPTP_COOKIE: u32 = 0x1a2b_3c4d;
const PPTP_LEN: usize = 156;

fn pptp_request() -> Vec<u8> {
    let mut p = Vec::with_capacity(PPTP_LEN);
    p.extend_from_slice(&(PPTP_LEN as u16).to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes()); // control message
    p.extend_from_slice(&PPTP_COOKIE.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes()); // Start-Control-Connection-Request
    p.extend_from_slice(&[0, 0, 1, 0, 0, 0]); // reserved, protocol version 1.0, reserved
    p.extend_from_slice(&1u32.to_be_bytes()); // framing: asynchronous
    p.extend_from_slice(&1u32.to_be_bytes()); // bearer: analog
    p.extend_from_slice(&[0, 0, 0, 0]); // maximum channels, firmware revision
    let mut name = [0u8; 64];
    name[..8].copy_from_slice(b"portolan");
    p.extend_from_slice(&name); // host name
    p.extend_from_slice(&name); // vendor
    p
}

/// A NUL-padded text field, cleaned of everything but printable ASCII.
fn padded_text(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    b[..end].iter().filter(|c| c.is_ascii_graphic() || **c == b' ').map(|c| char::from(*c)).collect()
}

fn pptp_parse(resp: &[u8]) -> Option<Found> {
    if resp.len() < PPTP_LEN
        || usize::from(be16(resp, 0)?) != PPTP_LEN
        || be16(resp, 2)? != 1
        || be32(resp, 4)? != PPTP_COOKIE
        || be16(resp, 8)? != 2
    {
        return None;
    }
    let mut f = Found::new("pptp");
    let (result, firmware) = (resp[14], be16(resp, 26)?);
    let host = padded_text(&resp[28..92]);
    let vendor = padded_text(&resp[92..156]);
    // Poptop's pptpd answers with its compiled-in defaults, host "local" and vendor "linux"
    // (its defaults.h); any other vendor is reported as the vendor says
    if host == "local" && vendor == "linux" {
        f.product = Some("pptpd".into());
        f.cpe.push("cpe:/a:poptop:pptpd".into());
    } else if !vendor.is_empty() {
        f.product = Some(vendor.clone());
    }
    if !host.is_empty() && host != "local" {
        f.hostname = Some(host);
    }
    let mut info = vec![format!("protocol {}.{}", resp[12], resp[13]), format!("firmware {firmware}")];
    if !vendor.is_empty() {
        info.insert(0, format!("vendor {vendor}"));
    }
    if result != 1 {
        info.push(format!("result code {result}"));
    }
    f.info = Some(info.join("; "));
    Some(f)
}

// --- NetBIOS node status (NBSTAT) of the name "*" (RFC 1002 4.2.17, 4.2.18) ---

fn nbstat_request() -> Vec<u8> {
    let mut q = vec![0x50, 0x54, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    // "*" padded with NULs, first-level encoded: each half-byte as 'A' + nibble
    q.push(32);
    for b in std::iter::once(b'*').chain(std::iter::repeat_n(0u8, 15)) {
        q.push(b'A' + (b >> 4));
        q.push(b'A' + (b & 0x0f));
    }
    q.extend_from_slice(&[0, 0, 0x21, 0, 1]);
    q
}

fn nbstat_parse(resp: &[u8]) -> Option<Found> {
    if be16(resp, 0)? != 0x5054 || resp.get(2)? & 0x80 == 0 || be16(resp, 6)? == 0 {
        return None;
    }
    // the answer's name: labels or a pointer
    let mut at = 12;
    loop {
        let l = *resp.get(at)?;
        if l & 0xc0 == 0xc0 {
            at += 2;
            break;
        }
        at += 1 + usize::from(l);
        if l == 0 {
            break;
        }
    }
    if be16(resp, at)? != 0x21 {
        return None;
    }
    let rdlen = usize::from(be16(resp, at + 8)?);
    let rd = resp.get(at + 10..at + 10 + rdlen)?;
    let count = usize::from(*rd.first()?);
    let names = rd.get(1..1 + count * 18)?;
    let mut f = Found::new("netbios-ns");
    let (mut workgroup, mut host) = (None, None);
    for n in names.chunks_exact(18) {
        let name = padded_text(&n[..15]).trim_end().to_string();
        let (suffix, group) = (n[15], n[16] & 0x80 != 0);
        if name.is_empty() || n[0] == 0x01 {
            continue;
        }
        if group && suffix == 0 && workgroup.is_none() {
            workgroup = Some(name);
        } else if !group && (suffix == 0 || suffix == 0x20) && host.is_none() {
            host = Some(name);
        }
    }
    // the statistics start with the unit id (the MAC address); Samba's nmbd sends zeros
    // there (observed with Samba 4.17, where Windows sends the adapter's address)
    match rd.get(1 + count * 18..1 + count * 18 + 6) {
        Some(mac) if mac.iter().all(|b| *b == 0) => f.product = Some("Samba nmbd".into()),
        Some(mac) => {
            let m: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
            f.info = Some(format!("MAC {}", m.join(":")));
        }
        None => {}
    }
    if let Some(w) = workgroup {
        f.info = Some(match f.info.take() {
            Some(i) => format!("workgroup: {w}; {i}"),
            None => format!("workgroup: {w}"),
        });
    }
    f.hostname = host;
    if f.product.is_some() {
        f.cpe.push("cpe:/a:samba:samba".into());
    }
    Some(f)
}

// --- PostgreSQL StartupMessage (protocol 3.0) ---

fn pgsql_request() -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for s in ["user", "portolan", "database", "portolan", "application_name", "portolan"] {
        body.extend_from_slice(s.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

fn pgsql_parse(resp: &[u8]) -> Option<Found> {
    let ty = *resp.first()?;
    let len = be32(resp, 1)? as usize;
    if !(4..=65_536).contains(&len) {
        return None;
    }
    match ty {
        b'R' if len >= 8 && be32(resp, 5)? <= 12 => {}
        b'E' => {
            // fields: a type byte and a NUL-terminated string; a severity field must be there
            let body = resp.get(5..(1 + len).min(resp.len()))?;
            if !body.split(|b| *b == 0).any(|f| f.starts_with(b"SFATAL") || f.starts_with(b"SERROR")) {
                return None;
            }
        }
        _ => return None,
    }
    let mut f = Found::new("postgresql");
    f.product = Some("PostgreSQL DB".into());
    f.cpe.push("cpe:/a:postgresql:postgresql".into());
    Some(f)
}

// --- MySQL / MariaDB initial handshake (protocol 10) or an error packet ---

fn mysql_parse(resp: &[u8]) -> Option<Found> {
    if resp.len() < 6 || resp[3] != 0 {
        return None;
    }
    let len = usize::from(resp[0]) | usize::from(resp[1]) << 8 | usize::from(resp[2]) << 16;
    if !(5..=4096).contains(&len) || resp.len() < 4 + len.min(64) {
        return None;
    }
    let body = &resp[4..];
    match body[0] {
        0x0a => {
            let end = body.iter().skip(1).position(|b| *b == 0)? + 1;
            let text = std::str::from_utf8(&body[1..end]).ok()?;
            if text.is_empty() || !text.as_bytes()[0].is_ascii_digit() || text.len() > 80 {
                return None;
            }
            let mut f = Found::new("mysql");
            if let Some(rest) = text.strip_prefix("5.5.5-").filter(|r| r.contains("MariaDB")) {
                let (ver, tail) = rest.split_once('-').unwrap_or((rest, ""));
                f.product = Some("MariaDB".into());
                f.version = Some(ver.to_string());
                let tail = tail.trim_start_matches("MariaDB").trim_start_matches('-');
                if !tail.is_empty() {
                    f.info = Some(tail.to_string());
                }
                f.cpe.push(format!("cpe:/a:mariadb:mariadb:{ver}"));
            } else if let Some((ver, tail)) = text.split_once("-MariaDB") {
                f.product = Some("MariaDB".into());
                f.version = Some(ver.to_string());
                let tail = tail.trim_start_matches('-');
                if !tail.is_empty() {
                    f.info = Some(tail.to_string());
                }
            } else {
                f.product = Some("MySQL".into());
                f.version = Some(text.to_string());
                f.cpe.push(format!("cpe:/a:mysql:mysql:{text}"));
            }
            Some(f)
        }
        0xff if body.len() >= 3 => {
            let msg = String::from_utf8_lossy(body.get(3..)?);
            if !(msg.contains("MySQL")
                || msg.contains("MariaDB")
                || msg.contains("is not allowed to connect"))
            {
                return None;
            }
            let mut f = Found::new("mysql");
            f.product = Some(if msg.contains("MariaDB") { "MariaDB" } else { "MySQL" }.into());
            f.info = Some("unauthorized".into());
            Some(f)
        }
        _ => None,
    }
}

// --- RFC 868 time: four bytes, seconds since 1900, then close ---

fn time_parse(resp: &[u8], now_unix: i64) -> Option<Found> {
    // four bytes; some servers (inetutils) pad them to eight with zeros
    if !(resp.len() == 4 || (resp.len() == 8 && resp[4..] == [0, 0, 0, 0])) {
        return None;
    }
    let t = i64::from(be32(resp, 0)?) - 2_208_988_800;
    ((t - now_unix).abs() < 10 * 365 * 86_400).then(|| Found::new("time"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn mysql_and_mariadb_greetings() {
        let mut g = vec![0u8, 0, 0, 0, 0x0a];
        g.extend_from_slice(b"5.5.5-10.11.6-MariaDB-0+deb12u1\0");
        g.extend_from_slice(&[1, 0, 0, 0]);
        g.extend_from_slice(&[b'a'; 40]);
        let n = g.len() - 4;
        g[0] = n as u8;
        let f = mysql_parse(&g).unwrap();
        assert_eq!((f.product.as_deref(), f.version.as_deref()), (Some("MariaDB"), Some("10.11.6")));
        assert_eq!(f.info.as_deref(), Some("0+deb12u1"));
        assert!(mysql_parse(b"SSH-2.0-OpenSSH_9.2\r\n").is_none());
    }

    #[test]
    fn mssql_prelogin_answer_gives_the_version() {
        // a PRELOGIN response (MS-TDS 2.2.6.5): VERSION 15.0.2000, ENCRYPTION off, terminator
        let opts = [0x00, 0x00, 0x0b, 0x00, 0x06, 0x01, 0x00, 0x11, 0x00, 0x01, 0xff];
        let data = [15, 0, 0x07, 0xd0, 0, 0, 0x02];
        let mut p = vec![0x04, 0x01, 0, 0, 0, 0, 1, 0];
        p.extend_from_slice(&opts);
        p.extend_from_slice(&data);
        let len = p.len() as u16;
        p[2..4].copy_from_slice(&len.to_be_bytes());
        let f = mssql_parse(&p).unwrap();
        assert_eq!(f.service, "ms-sql-s");
        assert_eq!(f.version.as_deref(), Some("15.00.2000.00"));
        assert!(mssql_parse(&p[..12]).is_none());
    }

    #[test]
    fn samba_is_told_by_its_server_guid() {
        // Samba 4.17's answer in the lab (header, negotiate response up to the GUID)
        let mut r = vec![0, 0, 0, 0xca];
        r.extend_from_slice(b"\xfeSMB");
        r.resize(4 + 64, 0);
        r.extend_from_slice(&[0x41, 0, 1, 0, 0xff, 0x02, 0, 0]);
        let at = r.len();
        r.extend_from_slice(b"vm\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
        let f = smb_parse(&r).unwrap();
        assert_eq!(f.product.as_deref(), Some("Samba smbd"));
        assert_eq!(f.hostname.as_deref(), Some("vm"));
        assert_eq!(f.info.as_deref(), Some("SMB dialect 2.x"));
        // a random GUID (Windows) names no product
        r[at..at + 16]
            .copy_from_slice(&[0x9a, 0x1c, 0x44, 0x05, 0xe2, 0x7b, 0x4d, 0x11, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(smb_parse(&r).unwrap().product, None);
        r[at..at + 16].copy_from_slice(&[0; 16]);
        assert_eq!(smb_parse(&r).unwrap().product, None);
    }

    #[test]
    fn xrdp_is_told_by_its_negotiation_response() {
        let xrdp = [0x03, 0, 0, 0x13, 0x0e, 0xd0, 0, 0, 0x12, 0x34, 0, 0x02, 0x01, 0x08, 0, 0x01, 0, 0, 0];
        let f = rdp_parse(&xrdp).unwrap();
        assert_eq!((f.product.as_deref(), f.info.as_deref()), (Some("xrdp"), Some("TLS")));
        // CredSSP selected, several flags: not xrdp
        let mut win = xrdp;
        win[12] = 0x1f;
        win[15] = 0x02;
        assert_eq!(rdp_parse(&win).unwrap().product, None);
    }

    #[test]
    fn requests_are_well_formed() {
        // BER requests parse back as what they claim to be
        let l = ldap_request();
        let (m, rest) = ber::expect(&l, 0x30).unwrap();
        assert!(rest.is_empty());
        assert_eq!(ber::children(m.value).nth(1).unwrap().tag, 0x63);
        let s = snmp_request();
        assert!(ber::expect(&s, 0x30).is_some());
        let k = request("kerberos", Transport::Tcp);
        assert_eq!(be32(&k, 0).unwrap() as usize, k.len() - 4);
        assert_eq!(k[4], 0x6a);
        let r = request("rpc", Transport::Tcp);
        assert_eq!(be32(&r, 0).unwrap(), 0x8000_0000 | (r.len() as u32 - 4));
        let p = smb_request();
        assert_eq!(usize::from(p[3]) | usize::from(p[2]) << 8, p.len() - 4);
        let t = mssql_request();
        assert_eq!(usize::from(be16(&t, 2).unwrap()), t.len());
    }

    #[test]
    fn parsers_survive_truncation() {
        for b in [
            "smb", "ldap", "snmp", "mssql", "rdp", "kerberos", "rpc", "dns", "ntp", "pgsql", "pptp", "nbstat",
        ] {
            let req = request(b, Transport::Tcp);
            for cut in 0..req.len().min(64) {
                let _ = parse(b, Transport::Tcp, &req[..cut]);
            }
        }
        let _ = unasked(&[0xff; 3], 0);
        let v = (1_700_000_000i64 + 2_208_988_800) as u32;
        assert!(time_parse(&v.to_be_bytes(), 1_700_000_000).is_some());
        assert!(time_parse(&[0, 0, 0, 1], 1_700_000_000).is_none());
    }
}
