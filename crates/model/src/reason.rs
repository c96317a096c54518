use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! reasons {
    ($( $(#[$doc:meta])* $variant:ident => $text:literal, )*) => {
        /// Why a port or host state was decided, with nmap's spelling.
        ///
        /// Known reasons are variants; anything else read from an imported file is kept
        /// verbatim in [`Reason::Other`].
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Reason {
            $( $(#[$doc])* $variant, )*
            /// A reason Portolan does not know, kept as it was read.
            Other(String),
        }

        impl Reason {
            /// nmap's name for the reason.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Reason::$variant => $text, )*
                    Reason::Other(s) => s,
                }
            }

            /// Parses nmap's name; unknown names become [`Reason::Other`].
            pub fn from_name(s: &str) -> Reason {
                match s {
                    $( $text => Reason::$variant, )*
                    other => Reason::Other(other.to_string()),
                }
            }
        }
    };
}

reasons! {
    /// A SYN/ACK answered (connect succeeded).
    SynAck => "syn-ack",
    /// The connection was refused (a TCP reset to a connect()).
    ConnRefused => "conn-refused",
    /// A TCP reset answered a raw probe.
    Reset => "reset",
    /// Nothing answered in time.
    NoResponse => "no-response",
    /// ICMP host unreachable.
    HostUnreach => "host-unreach",
    /// ICMP network unreachable.
    NetUnreach => "net-unreach",
    /// ICMP port unreachable.
    PortUnreach => "port-unreach",
    /// ICMP protocol unreachable.
    ProtoUnreach => "proto-unreach",
    /// ICMP communication administratively prohibited.
    AdminProhibited => "admin-prohibited",
    /// ICMP host administratively prohibited.
    HostProhibited => "host-prohibited",
    /// ICMP network administratively prohibited.
    NetProhibited => "net-prohibited",
    /// A UDP reply came back.
    UdpResponse => "udp-response",
    /// An ICMP echo reply came back.
    EchoReply => "echo-reply",
    /// An ICMP timestamp reply came back.
    TimestampReply => "timestamp-reply",
    /// An ARP reply came back.
    ArpResponse => "arp-response",
    /// An IPv6 neighbour advertisement came back.
    NdResponse => "nd-response",
    /// The target is this machine.
    LocalhostResponse => "localhost-response",
    /// The user said so (`-Pn`).
    UserSet => "user-set",
    /// This machine has no route to the address: it cannot be probed.
    NoRoute => "no-route",
    /// A broadcast address: it cannot be probed.
    Broadcast => "broadcast",
    /// Host discovery was not answered.
    NoResponseHost => "no-responses",
    /// The state comes from a local socket table, not from a probe.
    LocalSocket => "local-socket",
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(d)?;
        Ok(Reason::from_name(&s))
    }
}

impl JsonSchema for Reason {
    fn schema_name() -> Cow<'static, str> {
        "Reason".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "nmap's reason name, e.g. syn-ack, conn-refused, reset, no-response, host-unreach, net-unreach, port-unreach, admin-prohibited, udp-response, echo-reply, arp-response, user-set, local-socket"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_reasons_round_trip() {
        assert_eq!(Reason::from_name("syn-ack"), Reason::SynAck);
        assert_eq!(Reason::from_name("conn-refused").as_str(), "conn-refused");
        let odd = Reason::from_name("tcp-response");
        assert_eq!(odd, Reason::Other("tcp-response".into()));
        let j = serde_json::to_string(&odd).unwrap();
        assert_eq!(j, "\"tcp-response\"");
        assert_eq!(serde_json::from_str::<Reason>("\"admin-prohibited\"").unwrap(), Reason::AdminProhibited);
    }
}
