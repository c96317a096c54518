//! The one classification of addresses: the internet, private networks, and the special-purpose
//! blocks between them (IANA's registries, RFC 6890). The knowledge base judges a listener's
//! reach with it, the detectors whether a scan reached public addresses, and the firewall
//! analysis builds its source classes from [`BLOCKS`].

use std::net::IpAddr;

/// What kind of address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressClass {
    /// Routable on the internet.
    Internet,
    /// Private networks (RFC 1918, unique local IPv6).
    Private,
    /// Shared address space of carrier-grade NAT (RFC 6598).
    Shared,
    /// Documentation (RFC 5737, RFC 3849).
    Documentation,
    /// Benchmarking (RFC 2544).
    Benchmarking,
    /// Link-local.
    LinkLocal,
    /// Loopback.
    Loopback,
    /// Multicast.
    Multicast,
    /// Everything else: this network, the reserved IPv4 space, IPv6 outside global unicast.
    Reserved,
}

impl AddressClass {
    /// The class's name, as `fw show` titles its column.
    pub fn name(self) -> &'static str {
        match self {
            AddressClass::Internet => "internet",
            AddressClass::Private => "private",
            AddressClass::Shared => "shared",
            AddressClass::Documentation => "documentation",
            AddressClass::Benchmarking => "benchmarking",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Loopback => "loopback",
            AddressClass::Multicast => "multicast",
            AddressClass::Reserved => "reserved",
        }
    }
}

/// Every block of a class other than [`AddressClass::Internet`] and [`AddressClass::Reserved`]:
/// (class, network, prefix length). The blocks do not overlap.
pub const BLOCKS: &[(AddressClass, &str, u8)] = &[
    (AddressClass::Private, "10.0.0.0", 8),
    (AddressClass::Private, "172.16.0.0", 12),
    (AddressClass::Private, "192.168.0.0", 16),
    (AddressClass::Private, "fc00::", 7),
    (AddressClass::Shared, "100.64.0.0", 10),
    (AddressClass::Documentation, "192.0.2.0", 24),
    (AddressClass::Documentation, "198.51.100.0", 24),
    (AddressClass::Documentation, "203.0.113.0", 24),
    (AddressClass::Documentation, "2001:db8::", 32),
    (AddressClass::Benchmarking, "198.18.0.0", 15),
    (AddressClass::LinkLocal, "169.254.0.0", 16),
    (AddressClass::LinkLocal, "fe80::", 10),
    (AddressClass::Loopback, "127.0.0.0", 8),
    (AddressClass::Loopback, "::1", 128),
    (AddressClass::Multicast, "224.0.0.0", 4),
    (AddressClass::Multicast, "ff00::", 8),
];

/// The internet's IPv6 space (global unicast, 2000::/3), documentation excepted.
pub const INTERNET_V6: (&str, u8) = ("2000::", 3);

/// The reserved IPv4 space outside every block: this network (0.0.0.0/8) and 240.0.0.0/4
/// (the limited broadcast address included).
pub const RESERVED_V4: &[(&str, u8)] = &[("0.0.0.0", 8), ("240.0.0.0", 4)];

fn within(ip: IpAddr, net: &str, len: u8) -> bool {
    match (ip, net.parse::<IpAddr>()) {
        (IpAddr::V4(a), Ok(IpAddr::V4(n))) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), Ok(IpAddr::V6(n))) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The class of an address (an IPv4-mapped IPv6 address is classified as its IPv4 address).
pub fn classify(ip: IpAddr) -> AddressClass {
    let ip = match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if let Some((class, _, _)) = BLOCKS.iter().find(|(_, net, len)| within(ip, net, *len)) {
        return *class;
    }
    let internet = match ip {
        IpAddr::V4(_) => !RESERVED_V4.iter().any(|(net, len)| within(ip, net, *len)),
        IpAddr::V6(_) => within(ip, INTERNET_V6.0, INTERNET_V6.1),
    };
    if internet { AddressClass::Internet } else { AddressClass::Reserved }
}

/// A routable public address: [`AddressClass::Internet`].
pub fn is_public(ip: IpAddr) -> bool {
    classify(ip) == AddressClass::Internet
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn classes_of_addresses() {
        for (a, c) in [
            ("8.8.8.8", AddressClass::Internet),
            ("10.1.2.3", AddressClass::Private),
            ("172.31.255.255", AddressClass::Private),
            ("172.32.0.1", AddressClass::Internet),
            ("100.64.0.1", AddressClass::Shared),
            ("100.128.0.1", AddressClass::Internet),
            ("192.0.2.7", AddressClass::Documentation),
            ("198.18.0.1", AddressClass::Benchmarking),
            ("198.19.255.255", AddressClass::Benchmarking),
            ("198.20.0.1", AddressClass::Internet),
            ("169.254.1.1", AddressClass::LinkLocal),
            ("127.0.0.1", AddressClass::Loopback),
            ("224.0.0.251", AddressClass::Multicast),
            ("0.0.0.0", AddressClass::Reserved),
            ("240.0.0.1", AddressClass::Reserved),
            ("255.255.255.255", AddressClass::Reserved),
            ("2606:4700::1", AddressClass::Internet),
            ("2001:db8::1", AddressClass::Documentation),
            ("fd00::1", AddressClass::Private),
            ("fe80::1", AddressClass::LinkLocal),
            ("::1", AddressClass::Loopback),
            ("ff02::1", AddressClass::Multicast),
            ("::", AddressClass::Reserved),
            ("::ffff:10.0.0.1", AddressClass::Private),
            ("::ffff:8.8.8.8", AddressClass::Internet),
        ] {
            assert_eq!(classify(a.parse().unwrap()), c, "{a}");
        }
    }

    #[test]
    fn blocks_do_not_overlap() {
        for (i, (_, a, la)) in BLOCKS.iter().enumerate() {
            for (_, b, lb) in &BLOCKS[i + 1..] {
                let (x, y) = (a.parse::<IpAddr>().unwrap(), b.parse::<IpAddr>().unwrap());
                assert!(!within(x, b, *lb) && !within(y, a, *la), "{a}/{la} and {b}/{lb}");
            }
        }
    }
}
