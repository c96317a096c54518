//! The few fields of an X.509 certificate (RFC 5280) that an inspection reports, read straight
//! from the DER: subject, issuer, validity, subject alternative names, key type. Anything
//! malformed yields `None`, never a panic.

use jiff::Timestamp;
use serde::Serialize;

use crate::ber::{self, Tlv};

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    /// Subject distinguished name (`CN=example, O=Example`).
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// The subject's common name, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
    /// DNS names, addresses and mail addresses of the subjectAltName extension.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sans: Vec<String>,
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity.
    pub not_after: Timestamp,
    /// Serial number in hex.
    pub serial: String,
    /// Public key algorithm (`rsa`, `ec`, `ed25519`, or the OID).
    pub key_type: String,
    /// Signature algorithm OID name (`sha256WithRSAEncryption`, or the OID).
    pub signature_algorithm: String,
    /// Issuer and subject are the same name.
    pub self_signed: bool,
}

fn time(t: &Tlv<'_>) -> Option<Timestamp> {
    let s = std::str::from_utf8(t.value).ok()?;
    let s = s.strip_suffix('Z')?;
    let (year, rest) = match t.tag {
        0x17 => {
            let yy: i16 = s.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, s.get(2..)?)
        }
        0x18 => (s.get(..4)?.parse().ok()?, s.get(4..)?),
        _ => return None,
    };
    let num = |r: std::ops::Range<usize>| -> Option<i8> { rest.get(r)?.parse().ok() };
    let (month, day, hour, minute) = (num(0..2)?, num(2..4)?, num(4..6)?, num(6..8)?);
    let second = if rest.len() >= 10 { num(8..10)? } else { 0 };
    let dt = jiff::civil::date(1, 1, 1).with().year(year).month(month).day(day).build().ok()?;
    let dt = dt.at(hour, minute, second.min(59), 0);
    jiff::tz::TimeZone::UTC.to_timestamp(dt).ok()
}

fn attr_name(oid: &str) -> &str {
    match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.5" => "serialNumber",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "0.9.2342.19200300.100.1.25" => "DC",
        other => other,
    }
}

fn string_value(t: &Tlv<'_>) -> String {
    match t.tag {
        // BMPString: UTF-16BE
        0x1e => {
            let units: Vec<u16> = t.value.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            String::from_utf16_lossy(&units)
        }
        _ => String::from_utf8_lossy(t.value).into_owned(),
    }
}

/// A Name as `CN=.., O=..`, and its common name.
fn name(value: &[u8]) -> (String, Option<String>) {
    let mut parts = Vec::new();
    let mut cn = None;
    for set in ber::children(value).take(64) {
        for atv in ber::children(set.value).take(16) {
            let mut it = ber::children(atv.value);
            let (Some(o), Some(v)) = (it.next(), it.next()) else { continue };
            let Some(oid) = ber::oid(o.value) else { continue };
            let text = string_value(&v);
            if oid == "2.5.4.3" && cn.is_none() {
                cn = Some(text.clone());
            }
            parts.push(format!("{}={}", attr_name(&oid), text));
        }
    }
    (parts.join(", "), cn)
}

fn algorithm_name(oid: &str) -> String {
    match oid {
        "1.2.840.113549.1.1.1" => "rsa",
        "1.2.840.10045.2.1" => "ec",
        "1.3.101.112" => "ed25519",
        "1.3.101.113" => "ed448",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "rsassaPss",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        other => other,
    }
    .to_string()
}

fn sans(ext_value: &[u8]) -> Vec<String> {
    let Some((seq, _)) = ber::expect(ext_value, 0x30) else { return Vec::new() };
    ber::children(seq.value)
        .take(256)
        .filter_map(|g| match g.tag {
            0x82 => Some(format!("DNS:{}", String::from_utf8_lossy(g.value))),
            0x81 => Some(format!("email:{}", String::from_utf8_lossy(g.value))),
            0x86 => Some(format!("URI:{}", String::from_utf8_lossy(g.value))),
            0x87 => match g.value.len() {
                4 => {
                    let b: [u8; 4] = g.value.try_into().ok()?;
                    Some(format!("IP:{}", std::net::Ipv4Addr::from(b)))
                }
                16 => {
                    let b: [u8; 16] = g.value.try_into().ok()?;
                    Some(format!("IP:{}", std::net::Ipv6Addr::from(b)))
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Parses a DER certificate.
pub fn parse(der: &[u8]) -> Option<CertInfo> {
    let (cert, _) = ber::expect(der, 0x30)?;
    let mut top = ber::children(cert.value);
    let tbs = top.next().filter(|t| t.tag == 0x30)?;
    let sig_alg = top.next().filter(|t| t.tag == 0x30)?;
    let mut f = ber::children(tbs.value).peekable();
    if f.peek().is_some_and(|t| t.tag == 0xa0) {
        f.next();
    }
    let serial = f.next().filter(|t| t.tag == 0x02)?;
    let _sig = f.next().filter(|t| t.tag == 0x30)?;
    let issuer = f.next().filter(|t| t.tag == 0x30)?;
    let validity = f.next().filter(|t| t.tag == 0x30)?;
    let subject = f.next().filter(|t| t.tag == 0x30)?;
    let spki = f.next().filter(|t| t.tag == 0x30)?;
    let mut sans_list = Vec::new();
    for t in f {
        if t.tag == 0xa3
            && let Some((exts, _)) = ber::expect(t.value, 0x30)
        {
            for ext in ber::children(exts.value).take(64) {
                let mut parts = ber::children(ext.value);
                let Some(id) = parts.next().and_then(|o| ber::oid(o.value)) else { continue };
                let Some(octets) = parts.find(|p| p.tag == 0x04) else { continue };
                if id == "2.5.29.17" {
                    sans_list = sans(octets.value);
                }
            }
        }
    }
    let mut v = ber::children(validity.value);
    let not_before = time(&v.next()?)?;
    let not_after = time(&v.next()?)?;
    let (subject_text, common_name) = name(subject.value);
    let (issuer_text, _) = name(issuer.value);
    let key_oid = ber::children(spki.value)
        .next()
        .and_then(|alg| ber::children(alg.value).next())
        .and_then(|o| ber::oid(o.value))
        .unwrap_or_default();
    let sig_oid = ber::children(sig_alg.value).next().and_then(|o| ber::oid(o.value)).unwrap_or_default();
    Some(CertInfo {
        subject: subject_text,
        issuer: issuer_text,
        common_name,
        sans: sans_list,
        not_before,
        not_after,
        serial: serial.value.iter().map(|b| format!("{b:02x}")).collect(),
        key_type: algorithm_name(&key_oid),
        signature_algorithm: algorithm_name(&sig_oid),
        self_signed: issuer.raw == subject.raw,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn utc_and_generalized_times() {
        let t = time(&Tlv { tag: 0x17, value: b"250102030405Z", raw: b"" }).unwrap();
        assert_eq!(t.to_string(), "2025-01-02T03:04:05Z");
        let t = time(&Tlv { tag: 0x18, value: b"20991231235959Z", raw: b"" }).unwrap();
        assert_eq!(t.to_string(), "2099-12-31T23:59:59Z");
        assert!(time(&Tlv { tag: 0x17, value: b"2501020304", raw: b"" }).is_none());
        assert!(time(&Tlv { tag: 0x17, value: b"251302030405Z", raw: b"" }).is_none());
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(parse(b"").is_none());
        assert!(parse(&[0x30, 0x03, 0x30, 0x01, 0x00]).is_none());
        let mut junk = vec![0x30, 0x82, 0x10, 0x00];
        junk.extend(std::iter::repeat_n(0x30u8, 4096));
        assert!(parse(&junk).is_none());
    }
}
