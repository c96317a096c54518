//! The policy reader on hostile text: arbitrary strings and mutations of the documented
//! example are read or refused with located problems, never a panic.

#![allow(clippy::unwrap_used)]

use portolan_policy::Policy;
use proptest::prelude::*;

/// The example of docs/policy.md (without its include).
const EXAMPLE: &str = r#"# policy.toml
version = 1

[defaults]
unlisted = "deny"                 # a port not listed is a finding (policy.unapproved); or "allow"
cleartext = true                  # report risky cleartext services even when approved (kb.cleartext)

[groups.web]
hosts = ["198.18.1.0/24", "web01.example.org"]
description = "public web tier"

[groups.db]
hosts = ["198.18.2.10", "198.18.2.11", "host:db3"]

[[allow]]
id = "web-https"                  # optional; identifies the entry across edits (see --base)
hosts = ["web"]                   # groups, addresses, CIDRs, names, localhost, * (default: *)
ports = "80,443"                  # 22 | "22" | "8000-8010" | [22, "8000-8010"]
transport = "tcp"                 # tcp (default), udp, sctp
service = "http"                  # what must answer (checked when the service was identified)
owner = "web-team"
purpose = "public site"
sources = ["0.0.0.0/0"]           # who may connect (for firewall analysis)
scope = "all"                     # loopback | address | all (default)
review_by = 2027-06-30
ticket = "CHG-1234"
required = true                   # missing is a finding (policy.missing)

[[allow]]
hosts = ["localhost"]
ports = 5432
process = "postgres"              # local listeners: the process that must hold the port
scope = "loopback"
owner = "dba"
purpose = "application database"
expires = 2027-01-31              # a time-limited exception
"#;

#[test]
fn the_example_is_a_valid_policy() {
    let p = Policy::parse_str("policy.toml", EXAMPLE).unwrap();
    assert_eq!(p.entries.len(), 2);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,300}") {
        let _ = Policy::parse_str("policy.toml", &s);
    }

    #[test]
    fn mutated_examples_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<char>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut chars: Vec<char> = EXAMPLE.chars().collect();
        for (at, c) in &edits {
            let i = at.index(chars.len());
            chars[i] = *c;
        }
        let text: String = chars.iter().collect();
        if let Err(e) = Policy::parse_str("policy.toml", &text) {
            // every problem is located inside the text
            for p in &e.problems {
                prop_assert!(p.at.line as usize <= text.lines().count() + 1, "{p}");
            }
        }
        let cut: String = chars[..cut.index(chars.len())].iter().collect();
        let _ = Policy::parse_str("policy.toml", &cut);
    }
}
