//! The few fields of an X.509 certificate (RFC 5280) that an inspection reports: subject,
//! issuer, validity, subject alternative names, key type. The DER is read by `x509-parser`
//! (the rusticata project's parser, written for hostile network data and fuzzed in OSS-Fuzz);
//! a certificate it refuses is reported with the reason, never a panic.

use jiff::Timestamp;
use serde::Serialize;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct CertInfo {
    /// Subject distinguished name (`CN=example, O=Example`).
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// The subject's common name, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
    /// DNS names, addresses and mail addresses of the subjectAltName extension.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sans: Vec<String>,
    /// Start of validity.
    #[schemars(with = "String")]
    pub not_before: Timestamp,
    /// End of validity.
    #[schemars(with = "String")]
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

/// Why a certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed certificate: {0}")]
pub struct Malformed(String);

/// A certificate time as a timestamp; the ends of jiff's range stand for times beyond it
/// (RFC 5280's "no expiry", 99991231235959Z, is past jiff's last instant).
fn timestamp(t: x509_parser::time::ASN1Time) -> Timestamp {
    let s = t.timestamp().clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    Timestamp::from_second(s).unwrap_or(Timestamp::MAX)
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

fn string_value(a: &AttributeTypeAndValue<'_>) -> String {
    if let Ok(s) = a.as_str() {
        return s.to_string();
    }
    let data = a.attr_value().data;
    match a.attr_value().tag().0 {
        // BMPString: UTF-16BE
        0x1e => {
            let units: Vec<u16> = data.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            String::from_utf16_lossy(&units)
        }
        _ => String::from_utf8_lossy(data).into_owned(),
    }
}

/// A Name as `CN=.., O=..` (at most 64 attributes), and its first common name.
fn name(n: &X509Name<'_>) -> (String, Option<String>) {
    let mut parts = Vec::new();
    let mut cn = None;
    for atv in n.iter_attributes().take(64) {
        let oid = atv.attr_type().to_id_string();
        let text = string_value(atv);
        if oid == "2.5.4.3" && cn.is_none() {
            cn = Some(text.clone());
        }
        parts.push(format!("{}={}", attr_name(&oid), text));
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

fn sans(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(ext)) = cert.subject_alternative_name() else { return Vec::new() };
    ext.value
        .general_names
        .iter()
        .take(256)
        .filter_map(|g| match g {
            GeneralName::DNSName(s) => Some(format!("DNS:{s}")),
            GeneralName::RFC822Name(s) => Some(format!("email:{s}")),
            GeneralName::URI(s) => Some(format!("URI:{s}")),
            GeneralName::IPAddress(b) => match b.len() {
                4 => <[u8; 4]>::try_from(*b).ok().map(|a| format!("IP:{}", std::net::Ipv4Addr::from(a))),
                16 => <[u8; 16]>::try_from(*b).ok().map(|a| format!("IP:{}", std::net::Ipv6Addr::from(a))),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Reads a DER certificate.
pub fn read(der: &[u8]) -> Result<CertInfo, Malformed> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| Malformed(e.to_string()))?;
    let (subject, common_name) = name(cert.subject());
    let (issuer, _) = name(cert.issuer());
    let validity = cert.validity();
    Ok(CertInfo {
        subject,
        issuer,
        common_name,
        sans: sans(&cert),
        not_before: timestamp(validity.not_before),
        not_after: timestamp(validity.not_after),
        serial: cert.raw_serial().iter().map(|b| format!("{b:02x}")).collect(),
        key_type: algorithm_name(&cert.public_key().algorithm.algorithm.to_id_string()),
        signature_algorithm: algorithm_name(&cert.signature_algorithm.algorithm.to_id_string()),
        self_signed: cert.subject().as_raw() == cert.issuer().as_raw(),
    })
}

/// Reads a DER certificate; `None` when it is malformed.
pub fn parse(der: &[u8]) -> Option<CertInfo> {
    read(der).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use proptest::prelude::*;

    use super::*;
    use crate::ber::{int, oid_bytes, seq, tlv};

    fn rdn(oid: &str, tag: u8, value: &[u8]) -> Vec<u8> {
        seq(0x31, &[&seq(0x30, &[&oid_bytes(oid), &tlv(tag, value)])])
    }

    /// A certificate with the given validity times (tag, text); the signature is not real.
    fn cert(not_before: (u8, &str), not_after: (u8, &str)) -> Vec<u8> {
        let alg = seq(0x30, &[&oid_bytes("1.2.840.10045.4.3.2")]);
        let issuer = seq(0x30, &[&rdn("2.5.4.3", 0x0c, b"Test CA"), &rdn("2.5.4.10", 0x1e, b"\0E\0x")]);
        let subject = seq(0x30, &[&rdn("2.5.4.3", 0x0c, b"www.example.test")]);
        let validity = seq(
            0x30,
            &[&tlv(not_before.0, not_before.1.as_bytes()), &tlv(not_after.0, not_after.1.as_bytes())],
        );
        let spki = seq(
            0x30,
            &[
                &seq(0x30, &[&oid_bytes("1.2.840.10045.2.1"), &oid_bytes("1.2.840.10045.3.1.7")]),
                &tlv(0x03, &[0, 4, 1, 2]),
            ],
        );
        let san = seq(0x30, &[&tlv(0x82, b"www.example.test"), &tlv(0x87, &[198, 18, 0, 1])]);
        let ext = seq(0x30, &[&oid_bytes("2.5.29.17"), &tlv(0x04, &san)]);
        let exts = seq(0xa3, &[&seq(0x30, &[&ext])]);
        let tbs = seq(
            0x30,
            &[&seq(0xa0, &[&int(2)]), &int(0x1234), &alg, &issuer, &validity, &subject, &spki, &exts],
        );
        seq(0x30, &[&tbs, &alg, &tlv(0x03, &[0, 0x30, 0x00])])
    }

    #[test]
    fn reads_the_reported_fields() {
        let c = read(&cert((0x17, "250102030405Z"), (0x18, "20991231235959Z"))).unwrap();
        assert_eq!(c.subject, "CN=www.example.test");
        assert_eq!(c.issuer, "CN=Test CA, O=Ex");
        assert_eq!(c.common_name.as_deref(), Some("www.example.test"));
        assert_eq!(c.sans, ["DNS:www.example.test", "IP:198.18.0.1"]);
        assert_eq!(c.not_before.to_string(), "2025-01-02T03:04:05Z");
        assert_eq!(c.not_after.to_string(), "2099-12-31T23:59:59Z");
        assert_eq!(c.serial, "1234");
        assert_eq!(c.key_type, "ec");
        assert_eq!(c.signature_algorithm, "ecdsa-with-SHA256");
        assert!(!c.self_signed);
    }

    #[test]
    fn out_of_range_times_are_malformed_not_a_panic() {
        for bad in [
            "250102250405Z",
            "251302030405Z",
            "250132030405Z",
            "250102036005Z",
            "2501020304",
            "ZZ0102030405Z",
        ] {
            let e = read(&cert((0x17, bad), (0x18, "20991231235959Z"))).unwrap_err();
            assert!(e.to_string().starts_with("malformed certificate"), "{bad}: {e}");
        }
        let far = read(&cert((0x18, "99991231235959Z"), (0x18, "99991231235959Z"))).unwrap();
        assert_eq!(far.not_after.as_second(), Timestamp::MAX.as_second());
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(parse(b"").is_none());
        assert!(parse(&[0x30, 0x03, 0x30, 0x01, 0x00]).is_none());
        let mut junk = vec![0x30, 0x82, 0x10, 0x00];
        junk.extend(std::iter::repeat_n(0x30u8, 4096));
        assert!(parse(&junk).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Arbitrary bytes never panic the reader.
        #[test]
        fn arbitrary_der_never_panics(der in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = read(&der);
        }

        /// A real certificate with bytes changed, cut or extended never panics the reader.
        #[test]
        fn mutated_certificates_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut der = cert((0x17, "250102030405Z"), (0x18, "20991231235959Z"));
            for (at, b) in &edits {
                let i = at.index(der.len());
                der[i] = *b;
            }
            let _ = read(&der);
            let _ = read(&der[..cut.index(der.len())]);
        }
    }
}
