//! AWS security groups (`aws ec2 describe-security-groups` JSON). Each group is a separate
//! filter: its ingress permissions are accept rules in an input chain whose policy is drop
//! (security groups allow only), its egress permissions the same for output.
//!
//! Sources that are not addresses — other security groups (`UserIdGroupPairs`) and managed
//! prefix lists (`PrefixListIds`) — cannot be resolved from this file: they become rules that
//! match no address, noted in the rule's `stateful` conditions, so that they never count as
//! exposure to the internet or to private ranges (lint reports them).

use std::net::IpAddr;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Expected, Missing, Result};
use crate::json::{self, Json};
use crate::model::*;
use crate::sets::{IntervalSet, prefix};

fn loc(file: &Arc<str>, j: &Json, path: &str) -> Location {
    j.pos.in_file(file, Some(path.to_string()))
}

fn err(file: &Arc<str>, j: &Json, path: &str, kind: impl Into<ErrorKind>) -> Error {
    Error::syntax(loc(file, j, path), kind.into())
}

/// Parses describe-security-groups output.
pub fn parse(text: &str, file: &str) -> Result<Ruleset> {
    let file: Arc<str> = Arc::from(file);
    let arena = bumpalo::Bump::new();
    let doc = json::parse(text, &arena)
        .map_err(|e| Error::syntax(e.pos.in_file(&file, None), ErrorKind::BadJson(e)))?;
    let groups = doc.get("SecurityGroups").and_then(Json::as_array).ok_or_else(|| {
        err(
            &file,
            &doc,
            "$",
            ErrorKind::Expected { expected: Expected::SecurityGroupsDocument, found: doc.kind().to_string() },
        )
    })?;
    let mut tables = Vec::new();
    for (gi, g) in groups.iter().enumerate() {
        let gp = format!("$.SecurityGroups[{gi}]");
        if g.as_object().is_none() {
            return Err(err(
                &file,
                g,
                &gp,
                ErrorKind::WrongType {
                    subject: "a security group".into(),
                    expected: "an object",
                    found: Some(g.kind()),
                },
            ));
        }
        let id =
            g.get("GroupId").and_then(Json::as_str).ok_or_else(|| err(&file, g, &gp, Missing::GroupId))?;
        let name = g.get("GroupName").and_then(Json::as_str).unwrap_or("");
        let mut chains = Vec::new();
        for (key, hook) in [("IpPermissions", Hook::Input), ("IpPermissionsEgress", Hook::Output)] {
            let mut rules = Vec::new();
            let cp = format!("{gp}.{key}");
            if let Some(perms) = g.get(key) {
                let perms = perms.as_array().ok_or_else(|| {
                    err(
                        &file,
                        perms,
                        &cp,
                        ErrorKind::WrongType {
                            subject: key.into(),
                            expected: "an array",
                            found: Some(perms.kind()),
                        },
                    )
                })?;
                for (pi, p) in perms.iter().enumerate() {
                    rules.extend(permission(&file, p, &format!("{cp}[{pi}]"))?);
                }
            }
            chains.push(Chain {
                name: if hook == Hook::Input { "ingress".into() } else { "egress".into() },
                hook: Some(hook),
                kind: ChainKind::Filter,
                priority: 0,
                policy: Some(Policy::Drop),
                rules,
                location: loc(&file, g, &gp),
            });
        }
        tables.push(Table {
            name: if name.is_empty() { id.to_string() } else { format!("{id} ({name})") },
            families: vec![Family::V4, Family::V6],
            chains,
        });
    }
    Ok(Ruleset {
        file: file.to_string(),
        format: Format::Aws,
        tables,
        separate_tables: true,
        notes: Vec::new(),
    })
}

fn int(file: &Arc<str>, p: &Json, key: &str, path: &str) -> Result<Option<i64>> {
    match p.get(key) {
        None => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| {
            err(
                file,
                v,
                &format!("{path}.{key}"),
                ErrorKind::WrongType { subject: key.into(), expected: "an integer", found: Some(v.kind()) },
            )
        }),
    }
}

fn permission(file: &Arc<str>, p: &Json, path: &str) -> Result<Vec<Rule>> {
    let proto_j = p.get("IpProtocol").ok_or_else(|| err(file, p, path, Missing::IpProtocol))?;
    let proto_s = match (proto_j.as_str(), proto_j.as_i64()) {
        (Some(s), _) => s.to_string(),
        (None, Some(n)) => n.to_string(),
        _ => {
            return Err(err(
                file,
                proto_j,
                &format!("{path}.IpProtocol"),
                ErrorKind::WrongType { subject: "IpProtocol".into(), expected: "a string", found: None },
            ));
        }
    };
    let from = int(file, p, "FromPort", path)?;
    let to = int(file, p, "ToPort", path)?;
    let mut base = Cube::default();
    let all = proto_s == "-1" || proto_s.eq_ignore_ascii_case("all");
    let mut icmp_fam: Option<Family> = None;
    if !all {
        let n = proto_number(&proto_s).ok_or_else(|| {
            err(
                file,
                proto_j,
                &format!("{path}.IpProtocol"),
                ErrorKind::UnknownIpProtocol { name: proto_s.clone() },
            )
        })?;
        base.proto = Some(IntervalSet::single(u128::from(n)));
        if PORT_PROTOS.contains(&n) {
            let (Some(a), Some(b)) = (from, to) else {
                return Err(err(file, p, path, Missing::Ports));
            };
            if !(0..=65535).contains(&a) || !(0..=65535).contains(&b) || a > b {
                return Err(err(file, p, path, ErrorKind::BadPortRange { from: a, to: b }));
            }
            base.dport = Some(IntervalSet::range(a as u128, b as u128));
        } else if n == 1 || n == 58 {
            icmp_fam = Some(if n == 1 { Family::V4 } else { Family::V6 });
            let t = from.unwrap_or(-1);
            let c = to.unwrap_or(-1);
            if t >= 0 {
                let code = if c >= 0 { Some(c as u8) } else { None };
                base.dport = Some(icmp_span(t as u8, code));
            }
        }
    }
    let mut rules = Vec::new();
    let text_ports = match (&base.proto, from, to) {
        (None, _, _) => "all traffic".to_string(),
        (Some(_), Some(a), Some(b)) if a == b => format!("{proto_s} {a}"),
        (Some(_), Some(a), Some(b)) => format!("{proto_s} {a}-{b}"),
        _ => proto_s.clone(),
    };
    let mut push = |j: &Json,
                    rp: String,
                    fam: Option<Family>,
                    src: Option<IntervalSet>,
                    what: String,
                    desc: Option<String>,
                    unresolved: bool| {
        let mut c = base.clone();
        c.src = src;
        let mut r = Rule {
            location: loc(file, j, &rp),
            text: format!("allow {text_ports} from {what}"),
            comment: desc,
            v4: Vec::new(),
            v6: Vec::new(),
            action: Action::Accept,
            stateful: Vec::new(),
            state_only: false,
            assumed: false,
            handle: None,
        };
        if unresolved {
            r.stateful.push(format!("source {what} is not an address range (not resolvable from this file)"));
        } else {
            match fam {
                Some(Family::V4) if icmp_fam != Some(Family::V6) => r.v4.push(c),
                Some(Family::V6) if icmp_fam != Some(Family::V4) => r.v6.push(c),
                _ => {}
            }
        }
        rules.push(r);
    };
    let arr = |key: &str| -> Result<Vec<Json>> {
        match p.get(key) {
            None => Ok(Vec::new()),
            Some(v) => v.as_array().map(<[Json]>::to_vec).ok_or_else(|| {
                err(
                    file,
                    v,
                    &format!("{path}.{key}"),
                    ErrorKind::WrongType { subject: key.into(), expected: "an array", found: None },
                )
            }),
        }
    };
    for (key, field, fam) in [("IpRanges", "CidrIp", Family::V4), ("Ipv6Ranges", "CidrIpv6", Family::V6)] {
        for (i, r) in arr(key)?.iter().enumerate() {
            let rp = format!("{path}.{key}[{i}]");
            let cidr = r
                .get(field)
                .and_then(Json::as_str)
                .ok_or_else(|| err(file, r, &rp, Missing::Cidr { list: key, field }))?;
            let (a, l) = cidr.split_once('/').ok_or_else(|| {
                err(file, r, &rp, ErrorKind::CidrWithoutLength { field, cidr: cidr.to_string() })
            })?;
            let ip: IpAddr = a.parse().map_err(|_| {
                err(file, r, &rp, ErrorKind::BadCidrAddress { field, cidr: cidr.to_string() })
            })?;
            let bits = if ip.is_ipv6() { 128 } else { 32 };
            let len: u8 =
                l.parse().ok().filter(|&n: &u8| n <= bits).ok_or_else(|| {
                    err(file, r, &rp, ErrorKind::BadPrefixLength { text: cidr.to_string() })
                })?;
            if ip.is_ipv6() != (fam == Family::V6) {
                return Err(err(
                    file,
                    r,
                    &rp,
                    ErrorKind::OtherFamily { text: cidr.to_string(), family: fam, prefix: true },
                ));
            }
            let desc = r.get("Description").and_then(Json::as_str).map(str::to_string);
            push(r, rp, Some(fam), Some(prefix(ip, len)), cidr.to_string(), desc, false);
        }
    }
    for (i, r) in arr("UserIdGroupPairs")?.iter().enumerate() {
        let g = r.get("GroupId").and_then(Json::as_str).unwrap_or("?");
        let desc = r.get("Description").and_then(Json::as_str).map(str::to_string);
        push(
            r,
            format!("{path}.UserIdGroupPairs[{i}]"),
            None,
            None,
            format!("security group {g}"),
            desc,
            true,
        );
    }
    for (i, r) in arr("PrefixListIds")?.iter().enumerate() {
        let g = r.get("PrefixListId").and_then(Json::as_str).unwrap_or("?");
        let desc = r.get("Description").and_then(Json::as_str).map(str::to_string);
        push(r, format!("{path}.PrefixListIds[{i}]"), None, None, format!("prefix list {g}"), desc, true);
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Missing;

    #[test]
    fn errors_are_named_kinds_worded_as_before() {
        let group =
            |perm: &str| format!(r#"{{"SecurityGroups":[{{"GroupId":"sg-1","IpPermissions":[{perm}]}}]}}"#);
        let cases: Vec<(String, &str, fn(&ErrorKind) -> bool)> = vec![
            (
                r#"{"SecurityGroups":[7]}"#.to_string(),
                "a security group must be an object, found a number",
                |k| matches!(k, ErrorKind::WrongType { expected: "an object", found: Some("a number"), .. }),
            ),
            (group(r#"{"IpProtocol":"tcp","FromPort":90,"ToPort":80}"#), "bad port range 90-80", |k| {
                matches!(k, ErrorKind::BadPortRange { from: 90, to: 80 })
            }),
            (
                group(r#"{"IpProtocol":"-1","Ipv6Ranges":[{}]}"#),
                r#"Ipv6Ranges entry without a "CidrIpv6" string"#,
                |k| matches!(k, ErrorKind::Missing(Missing::Cidr { list: "Ipv6Ranges", field: "CidrIpv6" })),
            ),
            (
                group(r#"{"IpProtocol":"-1","IpRanges":[{"CidrIp":"10.0.0.0/99"}]}"#),
                r#"bad prefix length in "10.0.0.0/99""#,
                |k| matches!(k, ErrorKind::BadPrefixLength { text } if text == "10.0.0.0/99"),
            ),
            (
                group(r#"{"IpProtocol":"-1","Ipv6Ranges":[{"CidrIpv6":"10.0.0.0/8"}]}"#),
                "10.0.0.0/8 is not an ipv6 prefix",
                |k| matches!(k, ErrorKind::OtherFamily { family: Family::V6, prefix: true, .. }),
            ),
            (
                group(r#"{"IpProtocol":"-1","IpRanges":5}"#),
                "IpRanges must be an array",
                |k| matches!(k, ErrorKind::WrongType { subject, found: None, .. } if subject == "IpRanges"),
            ),
        ];
        for (text, message, is_kind) in cases {
            let e = parse(&text, "sg.json").unwrap_err();
            let kind = e.kind().expect("a syntax error");
            assert!(is_kind(kind), "{kind:?}");
            assert_eq!(kind.to_string(), message);
        }
    }
}
