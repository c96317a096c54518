//! Fuzzing the parsers (proptest, bounded case counts): no input makes a parser — or the
//! analysis of what it accepted — panic; bad input is an error with a location.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use portolan_firewall::analysis::{Analysis, standard_classes};
use portolan_firewall::{Format, LoadOptions, parse_str};
use proptest::prelude::*;

fn corpus(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(name)).unwrap()
}

/// Parses, and when the text parses, analyses it: neither may panic.
fn exercise(text: &str, format: Format) {
    match parse_str(text, "fuzz", Some(format), &LoadOptions::default()) {
        Ok(rs) => {
            if rs.rule_count() <= 200
                && let Ok(mut a) = Analysis::new(&[&rs])
            {
                let _ = a.exposure(&standard_classes(), None, true, &[]);
            }
        }
        Err(e) => {
            // every error names a place (or is about the format as a whole)
            let s = e.to_string();
            assert!(s.starts_with("fuzz"), "error without the file name: {s}");
        }
    }
}

/// Cuts the text at `cut` (a fraction) and changes the byte at `at` to `b`.
fn mutate(text: &str, cut: f64, at: f64, b: u8) -> String {
    let mut bytes = text.as_bytes().to_vec();
    let n = ((bytes.len() as f64) * cut) as usize;
    bytes.truncate(n.max(1));
    if !bytes.is_empty() {
        let i = ((bytes.len() - 1) as f64 * at) as usize;
        bytes[i] = b;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

const IPT_WORDS: &[&str] = &[
    "-A",
    "INPUT",
    "FORWARD",
    "OUTPUT",
    "f2b",
    "-j",
    "-g",
    "ACCEPT",
    "DROP",
    "REJECT",
    "RETURN",
    "DNAT",
    "LOG",
    "-p",
    "tcp",
    "udp",
    "icmp",
    "all",
    "-s",
    "-d",
    "10.0.0.0/8",
    "1.2.3.4",
    "::1",
    "0.0.0.0/0",
    "-i",
    "-o",
    "eth0",
    "lo+",
    "!",
    "-m",
    "multiport",
    "--dports",
    "22,80",
    "1:1024",
    "conntrack",
    "--ctstate",
    "NEW,ESTABLISHED",
    "state",
    "--state",
    "iprange",
    "--src-range",
    "1.1.1.1-1.1.1.9",
    "set",
    "--match-set",
    "x",
    "src",
    "comment",
    "--comment",
    "\"a b\"",
    "limit",
    "--limit",
    "5/min",
    "--dport",
    "--sport",
    "65536",
    "-1",
    "--to-destination",
    "10.0.0.1:80",
    "--syn",
    "--tcp-flags",
    "SYN,ACK",
    "SYN",
    "--icmp-type",
    "8",
    "echo-request",
    "addrtype",
    "--dst-type",
    "LOCAL",
    "-f",
    "[0:0]",
    "\"",
    "bogus",
    "--bogus",
];

fn ipt_line() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(IPT_WORDS), 0..14).prop_map(|w| w.join(" "))
}

fn ipt_file() -> impl Strategy<Value = String> {
    (prop::collection::vec(ipt_line(), 0..12), any::<bool>(), any::<bool>()).prop_map(
        |(lines, nat, commit)| {
            let mut s = String::from(if nat {
                "*nat\n:PREROUTING ACCEPT [0:0]\n:f2b - [0:0]\n"
            } else {
                "*filter\n:INPUT DROP [0:0]\n:f2b - [0:0]\n"
            });
            for l in lines {
                s.push_str(&l);
                s.push('\n');
            }
            if commit {
                s.push_str("COMMIT\n");
            }
            s
        },
    )
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i32>().prop_map(serde_json::Value::from),
        prop::sample::select(
            &[
                "tcp", "ip", "saddr", "dport", "accept", "drop", "10.0.0.0", "@s", "inet", "filter", "input",
                "x"
            ][..]
        )
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
            prop::collection::vec(
                (
                    prop::sample::select(
                        &[
                            "nftables",
                            "table",
                            "chain",
                            "rule",
                            "set",
                            "map",
                            "family",
                            "name",
                            "table",
                            "hook",
                            "prio",
                            "policy",
                            "expr",
                            "match",
                            "left",
                            "right",
                            "op",
                            "payload",
                            "protocol",
                            "field",
                            "prefix",
                            "addr",
                            "len",
                            "range",
                            "set",
                            "elem",
                            "vmap",
                            "key",
                            "data",
                            "jump",
                            "target",
                            "SecurityGroups",
                            "GroupId",
                            "IpPermissions",
                            "IpProtocol",
                            "FromPort",
                            "ToPort",
                            "IpRanges",
                            "CidrIp",
                        ][..]
                    ),
                    inner
                ),
                0..5
            )
            .prop_map(|kv| serde_json::Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn iptables_parser_never_panics(text in ipt_file()) {
        exercise(&text, Format::Iptables);
    }

    #[test]
    fn iptables_corpus_mutations_never_panic(cut in 0.0f64..1.0, at in 0.0f64..1.0, b in any::<u8>(), which in 0usize..5) {
        let files = ["01-default-deny-server.rules", "03-docker.rules", "04-ufw.rules", "07-kube-proxy.rules", "15-multiport-iprange.rules"];
        exercise(&mutate(&corpus(files[which]), cut, at, b), Format::Iptables);
    }

    #[test]
    fn nft_parser_never_panics(v in json_value()) {
        exercise(&serde_json::json!({"nftables": v}).to_string(), Format::NftJson);
        exercise(&v.to_string(), Format::NftJson);
    }

    #[test]
    fn nft_corpus_mutations_never_panic(cut in 0.0f64..1.0, at in 0.0f64..1.0, b in any::<u8>(), which in 0usize..4) {
        let files = ["05-firewalld.nft.json", "10-nft-sets-maps.nft.json", "18-nft-router.nft.json", "21-nft-priorities.nft.json"];
        exercise(&mutate(&corpus(files[which]), cut, at, b), Format::NftJson);
    }

    #[test]
    fn aws_parser_never_panics(v in json_value(), cut in 0.0f64..1.0, at in 0.0f64..1.0, b in any::<u8>()) {
        exercise(&serde_json::json!({"SecurityGroups": [v]}).to_string(), Format::Aws);
        exercise(&mutate(&corpus("11-security-groups.aws.json"), cut, at, b), Format::Aws);
    }

    #[test]
    fn ipset_parser_never_panics(cut in 0.0f64..1.0, at in 0.0f64..1.0, b in any::<u8>(), lines in prop::collection::vec("[a-z0-9:,./ -]{0,40}", 0..8)) {
        let _ = portolan_firewall::ipset::parse(&mutate(&corpus("13-ipset.ipset"), cut, at, b), "fuzz");
        let _ = portolan_firewall::ipset::parse(&lines.join("\n"), "fuzz");
    }

    #[test]
    fn json_reader_never_panics(s in "\\PC{0,200}") {
        let _ = portolan_firewall::json::parse(&s, &bumpalo::Bump::new());
    }
}
