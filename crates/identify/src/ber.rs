//! A small, bounds-checked reader and writer for ASN.1 BER/DER TLVs: enough for X.509
//! certificates, LDAP, SNMP and Kerberos. Untrusted input never panics: every length is checked
//! against what is left, and indefinite lengths and multi-byte tags are refused.

/// One tag-length-value element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The identifier byte (class, constructed bit and tag number below 31).
    pub tag: u8,
    /// The contents.
    pub value: &'a [u8],
    /// The whole element, identifier and length included.
    pub raw: &'a [u8],
}

/// Reads one element from the front of `input`; returns it and what follows.
pub fn read(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let tag = *input.first()?;
    if tag & 0x1f == 0x1f {
        return None; // multi-byte tag numbers: not used by the protocols read here
    }
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None; // indefinite or absurd length
        }
        let bytes = input.get(2..2 + n)?;
        let len = bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    let value = input.get(header..end)?;
    Some((Tlv { tag, value, raw: &input[..end] }, &input[end..]))
}

/// Reads one element and requires its tag.
pub fn expect(input: &[u8], tag: u8) -> Option<(Tlv<'_>, &[u8])> {
    let (t, rest) = read(input)?;
    (t.tag == tag).then_some((t, rest))
}

/// The elements inside a constructed value, until the first malformed one.
pub fn children(value: &[u8]) -> impl Iterator<Item = Tlv<'_>> {
    let mut rest = value;
    std::iter::from_fn(move || {
        let (t, r) = read(rest)?;
        rest = r;
        Some(t)
    })
}

/// A non-negative INTEGER's value (up to 8 bytes).
pub fn uint(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 9 {
        return None;
    }
    let v = value.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
    u64::try_from(v).ok()
}

/// An OBJECT IDENTIFIER in dotted form.
pub fn oid(value: &[u8]) -> Option<String> {
    let first = *value.first()?;
    let mut out = format!("{}.{}", first / 40, first % 40);
    let mut acc: u64 = 0;
    for b in &value[1..] {
        acc = acc.checked_mul(128)? | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            out.push('.');
            out.push_str(&acc.to_string());
            acc = 0;
        }
    }
    Some(out)
}

/// Writes a TLV with a definite length.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u32).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A TLV whose content is several TLVs.
pub fn seq(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag, &parts.concat())
}

/// A small non-negative INTEGER.
pub fn int(v: u32) -> Vec<u8> {
    let mut bytes: Vec<u8> = v.to_be_bytes().to_vec();
    while bytes.len() > 1 && bytes[0] == 0 && bytes[1] & 0x80 == 0 {
        bytes.remove(0);
    }
    if bytes[0] & 0x80 != 0 {
        bytes.insert(0, 0);
    }
    tlv(0x02, &bytes)
}

/// An OBJECT IDENTIFIER from its dotted form (the caller passes a valid constant).
pub fn oid_bytes(dotted: &str) -> Vec<u8> {
    let parts: Vec<u64> = dotted.split('.').filter_map(|p| p.parse().ok()).collect();
    let mut out = Vec::new();
    if parts.len() >= 2 {
        out.push((parts[0] * 40 + parts[1]) as u8);
        for &p in &parts[2..] {
            let mut stack = vec![(p & 0x7f) as u8];
            let mut v = p >> 7;
            while v > 0 {
                stack.push(0x80 | (v & 0x7f) as u8);
                v >>= 7;
            }
            stack.reverse();
            out.extend(stack);
        }
    }
    tlv(0x06, &out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trips_and_refuses_malformed() {
        let long = vec![7u8; 300];
        let t = tlv(0x04, &long);
        assert_eq!(&t[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let (r, rest) = read(&t).unwrap();
        assert_eq!(r.value.len(), 300);
        assert!(rest.is_empty());
        // truncated, indefinite, oversized, multi-byte tag
        assert!(read(&t[..100]).is_none());
        assert!(read(&[0x30, 0x80, 0, 0]).is_none());
        assert!(read(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_none());
        assert!(read(&[0x1f, 0x01, 0x00]).is_none());
        assert!(read(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
        assert_eq!(oid(&oid_bytes("1.3.6.1.4.1.8072.3.2.10")[2..]).unwrap(), "1.3.6.1.4.1.8072.3.2.10");
        assert_eq!(oid(&oid_bytes("2.5.29.17")[2..]).unwrap(), "2.5.29.17");
        assert_eq!(int(200), vec![0x02, 0x02, 0x00, 0xc8]);
        assert_eq!(uint(&[0x00, 0xc8]), Some(200));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 3000, failure_persistence: None, ..Default::default() })]

        /// Hostile BER (an LDAP, SNMP or Kerberos answer) never panics the reader, and what it
        /// reads lies inside the input.
        #[test]
        fn arbitrary_ber_never_panics(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            if let Some((t, rest)) = read(&b) {
                proptest::prop_assert!(t.raw.len() + rest.len() == b.len());
                proptest::prop_assert!(t.value.len() <= t.raw.len());
            }
            for t in children(&b).take(10_000) {
                let _ = oid(t.value);
                let _ = uint(t.value);
                for u in children(t.value).take(10_000) {
                    let _ = oid(u.value);
                }
            }
        }
    }
}
