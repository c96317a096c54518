use std::str::FromStr;

use portolan_model::Transport;

use crate::Error;

/// A lookup as users write it: `3389`, `53/udp`, `6000-6010`, `ssh`, `ssh/tcp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// A port or an inclusive range, optionally one transport.
    Port {
        /// First port.
        lo: u16,
        /// Last port.
        hi: u16,
        /// Transport, when given.
        transport: Option<Transport>,
    },
    /// A service name, optionally one transport.
    Name {
        /// The name as given.
        name: String,
        /// Transport, when given.
        transport: Option<Transport>,
    },
}

fn parse_port(s: &str, whole: &str) -> Result<u16, Error> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::PortOutOfRange { given: whole.to_string() });
    }
    s.parse::<u32>()
        .ok()
        .and_then(|v| u16::try_from(v).ok())
        .ok_or_else(|| Error::PortOutOfRange { given: whole.to_string() })
}

impl FromStr for Query {
    type Err = Error;
    fn from_str(input: &str) -> Result<Self, Error> {
        let q = input.trim();
        if q.is_empty() {
            return Err(Error::Empty);
        }
        let (body, transport) = match q.rsplit_once('/') {
            Some((b, t)) => {
                let t = t.parse::<Transport>().map_err(|_| Error::UnknownTransport {
                    given: t.to_string(),
                    query: input.to_string(),
                })?;
                (b, Some(t))
            }
            None => (q, None),
        };
        let starts_digit = body.bytes().next().is_some_and(|b| b.is_ascii_digit());
        let all_port_chars = body.bytes().all(|b| b.is_ascii_digit() || b == b'-');
        if starts_digit && all_port_chars {
            let (lo, hi) = match body.split_once('-') {
                Some((a, b)) => (parse_port(a, input)?, parse_port(b, input)?),
                None => {
                    let p = parse_port(body, input)?;
                    (p, p)
                }
            };
            if lo > hi {
                return Err(Error::EmptyRange { given: input.to_string() });
            }
            return Ok(Query::Port { lo, hi, transport });
        }
        if body.starts_with('-') && body[1..].bytes().all(|b| b.is_ascii_digit()) && body.len() > 1 {
            return Err(Error::PortOutOfRange { given: input.to_string() });
        }
        Ok(Query::Name { name: body.to_string(), transport })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!("3389".parse::<Query>().unwrap(), Query::Port { lo: 3389, hi: 3389, transport: None });
        assert_eq!(
            "53/udp".parse::<Query>().unwrap(),
            Query::Port { lo: 53, hi: 53, transport: Some(Transport::Udp) }
        );
        assert_eq!(
            "6000-6010".parse::<Query>().unwrap(),
            Query::Port { lo: 6000, hi: 6010, transport: None }
        );
        assert_eq!("ssh".parse::<Query>().unwrap(), Query::Name { name: "ssh".into(), transport: None });
        assert_eq!(
            "ssh/TCP".parse::<Query>().unwrap(),
            Query::Name { name: "ssh".into(), transport: Some(Transport::Tcp) }
        );
        assert_eq!("0".parse::<Query>().unwrap(), Query::Port { lo: 0, hi: 0, transport: None });
        assert_eq!("65535".parse::<Query>().unwrap(), Query::Port { lo: 65535, hi: 65535, transport: None });
    }

    #[test]
    fn rejects_bad_input_with_a_named_reason() {
        assert!(matches!("70000".parse::<Query>(), Err(Error::PortOutOfRange { .. })));
        assert!(matches!("99999999999999999999".parse::<Query>(), Err(Error::PortOutOfRange { .. })));
        assert!(matches!("-1".parse::<Query>(), Err(Error::PortOutOfRange { .. })));
        assert!(matches!("22/xyz".parse::<Query>(), Err(Error::UnknownTransport { .. })));
        assert!(matches!("10-5".parse::<Query>(), Err(Error::EmptyRange { .. })));
        assert!(matches!("1-70000".parse::<Query>(), Err(Error::PortOutOfRange { .. })));
        assert!(matches!("".parse::<Query>(), Err(Error::Empty)));
        let msg = "22/xyz".parse::<Query>().unwrap_err().to_string();
        assert!(msg.contains("xyz") && msg.contains("udp"), "{msg}");
    }
}
