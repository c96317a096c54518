//! The verdict: what answered against what the port promises.
//!
//! - **wrong application on port** (`identify.wrong-service`): the registry and the knowledge
//!   base name a service for the port that identification knows how to recognise, and another
//!   one answered (ssh on 443, redis on 8080, HTTP on 22). Medium; High when the service that
//!   answered is one the knowledge base rates High or Critical on the internet.
//! - **cleartext where TLS is promised** (`identify.tls-expected`): the port is registered for
//!   the TLS form of a service and the service answered in the clear. Medium.
//! - **cleartext service** (`identify.cleartext`): a service that carries credentials or data
//!   answered in the clear and did not upgrade with STARTTLS; severity from the data file.
//! - **expired certificate** (`identify.cert-expired`, Medium), **expiring within 30 days**
//!   (`identify.cert-expiring`, Low), **self-signed certificate** (`identify.cert-self-signed`,
//!   Low).

use jiff::Timestamp;
use portolan_model::{Finding, FindingTarget, Service, Severity, Transport, Tunnel};
use serde::Serialize;

use crate::data::Data;
use crate::{Identified, TlsInfo};

/// What a port promises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Expected {
    /// The port's name, as every command names it (nmap's where nmap is installed, IANA's
    /// otherwise); the knowledge-base id when neither names the port.
    pub registered: String,
    /// The service identification would report for it, when it knows that service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The registration is for the service inside TLS (https, imaps, ldaps).
    pub tls: bool,
}

/// The expectation for a port: the first of its names that the data file knows — the port's
/// name ([`portolan_registry::port_name`]), then every IANA name in IANA's order, then the
/// knowledge-base ids — reported under the port's name.
pub fn expectation(data: &Data, port: u16, transport: Transport) -> Option<Expected> {
    let name = portolan_registry::port_name(port, transport).map(str::to_ascii_lowercase);
    let mut names: Vec<String> = name.iter().cloned().collect();
    names.extend(
        portolan_registry::by_port(port, Some(transport))
            .filter(|e| e.transport() == Some(transport) && !e.name().is_empty())
            .map(|e| e.name().to_ascii_lowercase()),
    );
    names.extend(portolan_kb::for_port(port, transport).map(|e| e.id.to_ascii_lowercase()));
    let registered = name.or_else(|| names.first().cloned())?;
    for n in &names {
        if let Some(&(i, tls)) = data.by_registered.get(n) {
            return Some(Expected { registered, service: Some(data.services[i].name.clone()), tls });
        }
    }
    Some(Expected { registered, service: None, tls: false })
}

fn compatible(data: &Data, observed: &str, expected: &str) -> bool {
    observed == expected
        || data.service(observed).is_some_and(|s| s.compatible.iter().any(|c| c == expected))
        || data.service(expected).is_some_and(|s| s.compatible.iter().any(|c| c == observed))
}

fn target(r: &Identified) -> Option<FindingTarget> {
    Some(FindingTarget { address: Some(r.address), port: Some(r.port), transport: Some(r.transport) })
}

fn describe(s: &Service) -> String {
    let mut d = s.name.clone();
    if s.tunnel == Some(Tunnel::Ssl) {
        d = format!("{d} over TLS");
    }
    let pv: Vec<&str> = [s.product.as_deref(), s.version.as_deref()].into_iter().flatten().collect();
    if !pv.is_empty() {
        d = format!("{d} ({})", pv.join(" "));
    }
    d
}

/// The findings for one identified port, judged at `now`.
pub fn judge(data: &Data, r: &Identified, now: Timestamp) -> Vec<Finding> {
    let mut out = Vec::new();
    let pt = format!("{}/{}", r.port, r.transport);
    if let Some(s) = r.service.as_ref().filter(|s| s.method == portolan_model::ServiceMethod::Probed) {
        let tunnel = s.tunnel == Some(Tunnel::Ssl);
        if let Some(exp) = &r.expected
            && let Some(want) = &exp.service
        {
            if !compatible(data, &s.name, want) {
                let risky = portolan_kb::for_service_name(&s.name)
                    .iter()
                    .map(|e| e.internet_risk)
                    .max()
                    .is_some_and(|sev| sev >= Severity::High);
                let mut evidence = vec![
                    format!(
                        "{pt} is registered for {} ({want}{})",
                        exp.registered,
                        if exp.tls { " over TLS" } else { "" }
                    ),
                    format!("{} answered", describe(s)),
                ];
                if let Some(b) = &r.banner {
                    evidence.push(format!("first bytes: {}", b.chars().take(120).collect::<String>()));
                }
                out.push(Finding {
                    rule: "identify.wrong-service".into(),
                    severity: if risky { Severity::High } else { Severity::Medium },
                    title: format!("wrong application on {pt}: {} answers where {want} is expected", s.name),
                    target: target(r),
                    evidence,
                    remediation: format!(
                        "Confirm that {} is meant to listen on {pt}. If not, stop it or move it to its own port; if so, \
                         document the exception and check that firewall rules, proxies and monitoring written for {want} \
                         still fit (a service on another's port is a common way around egress filters).",
                        s.name
                    ),
                    references: vec!["NIST SP 800-123 section 4.2".into()],
                    attack: vec!["T1571".into()],
                    location: None,
                });
            } else if exp.tls && !tunnel && r.tls.is_none() {
                out.push(Finding {
                    rule: "identify.tls-expected".into(),
                    severity: Severity::Medium,
                    title: format!("{} in cleartext on {pt}, registered for {}", s.name, exp.registered),
                    target: target(r),
                    evidence: vec![format!(
                        "{pt} is registered for {want} over TLS; {} answered without TLS",
                        describe(s)
                    )],
                    remediation: format!(
                        "Serve {} with TLS on {pt}, as clients of {} expect.",
                        s.name, exp.registered
                    ),
                    references: vec!["NIST SP 800-52r2".into()],
                    attack: vec!["T1040".into()],
                    location: None,
                });
            }
        }
        if !tunnel
            && r.tls.is_none()
            && let Some(sev) = data.service(&s.name).and_then(|spec| spec.cleartext)
        {
            out.push(Finding {
                rule: "identify.cleartext".into(),
                severity: sev,
                title: format!("cleartext {} on {pt}", s.name),
                target: target(r),
                evidence: vec![if matches!(s.name.as_str(), "smtp" | "imap" | "pop3" | "ftp") {
                    format!("{} answered without TLS, and no STARTTLS upgrade worked", describe(s))
                } else {
                    format!("{} answered without TLS", describe(s))
                }],
                remediation: format!(
                    "Carry {} inside TLS (its TLS port, or STARTTLS with the cleartext form refused) or an encrypted \
                     tunnel, or replace it with an encrypted alternative.",
                    s.name
                ),
                references: vec!["NIST SP 800-52r2".into()],
                attack: vec!["T1040".into()],
                location: None,
            });
        }
    }
    if r.unauthenticated
        && let Some(s) = &r.service
    {
        let reach = portolan_kb::Reach::of_scanned(r.address);
        out.push(Finding {
            rule: "identify.no-authentication".into(),
            severity: if reach == portolan_kb::Reach::Loopback { Severity::Low } else { Severity::High },
            title: format!("{} on {pt} answers without authentication", s.name),
            target: target(r),
            evidence: vec![
                format!("{} served a question that needs credentials where they are required", describe(s)),
                match reach {
                    portolan_kb::Reach::Internet => "the address is public: anyone on the internet can do the same".into(),
                    portolan_kb::Reach::Loopback => "the address is loopback: only local users can do the same".into(),
                    _ => "anyone on the scanned network can do the same".to_string(),
                },
            ],
            remediation: format!(
                "{} Allow only the clients that need it to reach {pt}.",
                match s.name.as_str() {
                    "redis" => "Require authentication (requirepass or ACL users) and keep protected mode on.",
                    "mqtt" => "Set allow_anonymous false and give clients passwords or certificates.",
                    "memcached" => "Bind memcached to loopback or enable SASL (which turns the text protocol off).",
                    "vnc" => "Set a VNC password (security type VncAuth or better), or reach VNC only through SSH.",
                    "snmp" => "Remove the public community; use SNMPv3 users with authentication and privacy.",
                    _ => "Require authentication.",
                }
            ),
            references: vec!["CIS Controls v8 4.7".into()],
            attack: vec!["T1078.001".into()],
            location: None,
        });
    }
    if let Some(t) = &r.tls {
        out.extend(cert_findings(r, t, now));
    }
    out
}

fn cert_findings(r: &Identified, t: &TlsInfo, now: Timestamp) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(c) = &t.certificate else { return out };
    let pt = format!("{}/{}", r.port, r.transport);
    let evidence = vec![
        format!("subject: {}", c.subject),
        format!("issuer: {}", c.issuer),
        format!("valid from {} to {}", c.not_before, c.not_after),
    ];
    let mk = |rule: &str, severity, title: String, remediation: &str| Finding {
        rule: rule.into(),
        severity,
        title,
        target: target(r),
        evidence: evidence.clone(),
        remediation: remediation.into(),
        references: vec!["NIST SP 800-52r2 section 3.5".into()],
        attack: vec![],
        location: None,
    };
    if c.not_after < now {
        let days = (now.as_second() - c.not_after.as_second()) / 86_400;
        out.push(mk(
            "identify.cert-expired",
            Severity::Medium,
            format!("expired certificate on {pt} (expired {days} days ago)"),
            "Renew the certificate and automate renewal (ACME); clients either fail or are trained to click through.",
        ));
    } else if c.not_before > now {
        out.push(mk(
            "identify.cert-not-yet-valid",
            Severity::Medium,
            format!("certificate on {pt} is not valid yet"),
            "Check the server's clock and the certificate's dates.",
        ));
    } else if let Some(d) = t.expires_in_days.filter(|d| *d < 30) {
        out.push(mk(
            "identify.cert-expiring",
            Severity::Low,
            format!("certificate on {pt} expires in {d} days"),
            "Renew the certificate before it expires; automate renewal (ACME).",
        ));
    }
    if c.self_signed {
        out.push(mk(
            "identify.cert-self-signed",
            Severity::Low,
            format!("self-signed certificate on {pt}"),
            "Use a certificate from a CA the clients trust (an internal CA is fine); a self-signed one cannot be told \
             from an interceptor's.",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{Identified, Status};
    use portolan_model::ServiceMethod;

    fn probed(name: &str, tunnel: bool) -> Service {
        Service {
            name: name.into(),
            method: ServiceMethod::Probed,
            confidence: 10,
            tunnel: tunnel.then_some(Tunnel::Ssl),
            ..Service::default()
        }
    }

    fn result(port: u16, service: Service) -> Identified {
        let data = crate::data::builtin().unwrap();
        Identified {
            address: "198.18.210.2".parse().unwrap(),
            port,
            transport: Transport::Tcp,
            status: Status::Identified,
            service: Some(service),
            expected: expectation(data, port, Transport::Tcp),
            tls: None,
            http: None,
            banner: None,
            probes: vec![],
            findings: vec![],
            unauthenticated: false,
            elapsed_ms: 0,
            error: None,
        }
    }

    fn rules(port: u16, s: Service) -> Vec<String> {
        let data = crate::data::builtin().unwrap();
        judge(data, &result(port, s), Timestamp::now()).into_iter().map(|f| f.rule).collect()
    }

    #[test]
    fn expectations_come_from_the_registry_and_the_data() {
        let data = crate::data::builtin().unwrap();
        let e = expectation(data, 443, Transport::Tcp).unwrap();
        assert_eq!((e.registered.as_str(), e.service.as_deref(), e.tls), ("https", Some("http"), true));
        // 8080 is nmap's http-proxy (a service of its own, compatible with http) where nmap is
        // installed, IANA's http-alt (http) otherwise
        let e = expectation(data, 8080, Transport::Tcp).unwrap();
        let name = portolan_registry::port_name(8080, Transport::Tcp);
        assert_eq!(Some(e.registered.as_str()), name);
        let want = if name == Some("http-proxy") { "http-proxy" } else { "http" };
        assert_eq!(e.service.as_deref(), Some(want));
        assert!(!e.tls);
        assert_eq!(expectation(data, 22, Transport::Tcp).unwrap().service.as_deref(), Some("ssh"));
        // a registered name identification does not know promises nothing checkable
        assert_eq!(expectation(data, 8888, Transport::Tcp).unwrap().service, None);
    }

    #[test]
    fn the_wrong_application_is_called_out() {
        assert_eq!(rules(443, probed("ssh", false)), ["identify.wrong-service"]);
        assert_eq!(rules(22, probed("http", false)), ["identify.wrong-service"]);
        let r = rules(8080, probed("redis", false));
        assert!(
            r.contains(&"identify.wrong-service".to_string())
                && r.contains(&"identify.cleartext".to_string())
        );
        // the promised service, or a compatible one, is fine
        assert!(rules(443, probed("http", true)).is_empty());
        assert!(rules(8080, probed("http-proxy", false)).is_empty());
        assert!(rules(22, probed("ssh", false)).is_empty());
        // nothing is promised on 8888: no verdict on the name
        assert!(rules(8888, probed("http", false)).is_empty());
        // http in cleartext where TLS is promised
        assert_eq!(rules(443, probed("http", false)), ["identify.tls-expected"]);
        // a risky service on another's port is more severe
        let data = crate::data::builtin().unwrap();
        let f = judge(data, &result(80, probed("telnet", false)), Timestamp::now());
        assert_eq!(f[0].severity, Severity::High, "{f:?}");
        assert_eq!(f[0].attack, ["T1571"]);
    }

    #[test]
    fn unauthenticated_access_is_high_unless_on_loopback() {
        let data = crate::data::builtin().unwrap();
        let mut r = result(6379, probed("redis", false));
        r.unauthenticated = true;
        let f = judge(data, &r, Timestamp::now());
        let na = f.iter().find(|f| f.rule == "identify.no-authentication").unwrap();
        assert_eq!(na.severity, Severity::High);
        assert!(na.remediation.contains("requirepass"), "{}", na.remediation);
        r.address = "127.0.0.1".parse().unwrap();
        let f = judge(data, &r, Timestamp::now());
        assert_eq!(
            f.iter().find(|f| f.rule == "identify.no-authentication").unwrap().severity,
            Severity::Low
        );
    }

    #[test]
    fn table_guesses_are_not_judged() {
        let data = crate::data::builtin().unwrap();
        let r = result(443, Service::from_table("ssh"));
        assert!(judge(data, &r, Timestamp::now()).is_empty());
    }
}
