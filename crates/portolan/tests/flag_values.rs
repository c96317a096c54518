//! Every numeric or timed flag has a range: a value outside it (too large for any clock, not a
//! number, zero where zero means nothing) is one line on stderr naming the flag, and exit 2 —
//! never a panic, never a scan that starts.

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn refused<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S], flag: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_portolan")).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: exit {:?}, stderr {err}", out.status.code());
    assert_eq!(err.lines().count(), 1, "{args:?}: one line, got {err:?}");
    assert!(err.starts_with("portolan: error: ") && err.contains(flag), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
}

#[test]
fn out_of_range_values_are_one_line_errors() {
    // FLAG=VALUE, so that a negative value is read as a value
    let scan = |flag: &'static str, value: &str| {
        (
            ["scan", "-sT", "-Pn", "-p", "1", &format!("{flag}={value}"), "127.0.0.1"]
                .map(String::from)
                .to_vec(),
            flag,
        )
    };
    let cmd =
        |args: &[&str], flag: &'static str| (args.iter().map(|s| s.to_string()).collect::<Vec<_>>(), flag);
    let cases = [
        scan("--host-timeout", "99999999999999999h"),
        scan("--host-timeout", "8d"),
        scan("--scan-delay", "1e20s"),
        scan("--scan-delay", "NaN"),
        scan("--min-rtt-timeout", "-1s"),
        scan("--max-rtt-timeout", "1e300"),
        scan("--initial-rtt-timeout", "inf"),
        scan("--version-timeout", "1e300s"),
        scan("--max-rate", "0"),
        scan("--max-rate", "nan"),
        scan("--min-rate", "1e400"),
        scan("--max-retries", "256"),
        scan("--max-parallelism", "0"),
        scan("--top-ports", "0"),
        scan("--shard", "9/8"),
        scan("--seed", "-1"),
        scan("--version-intensity", "10"),
        cmd(&["check", "--timeout", "2h", "127.0.0.1:1"], "--timeout"),
        cmd(&["check", "--banner-wait", "1e30s", "127.0.0.1:1"], "--banner-wait"),
        cmd(&["identify", "--version-timeout", "99999999999999999h", "127.0.0.1:1"], "--version-timeout"),
        cmd(&["identify", "--fail-on", "loud", "127.0.0.1:1"], "--fail-on"),
        cmd(&["audit", "--policy", "p.toml", "--fail-on", "sometimes"], "--fail-on"),
        cmd(&["fw", "lint", "--fail-on", "x", "rules"], "--fail-on"),
        cmd(&["fw", "show", "--family", "5", "rules"], "--family"),
        cmd(&["fw", "verify", "--samples", "70000", "rules"], "--samples"),
        cmd(
            &["fw", "query", "--src", "198.18.0.1", "--dst", "198.18.0.2", "--dport", "70000", "rules"],
            "--dport",
        ),
        cmd(&["port", "--top", "0"], "--top"),
        cmd(&["snapshots", "--older-than", "999999999999d"], "--older-than"),
        cmd(&["snapshots", "--older-than", "3y"], "--older-than"),
    ];
    for (args, flag) in &cases {
        refused(args, flag);
    }
}

/// nmap flags Portolan does not implement are one line saying so and what to use instead, not
/// a parser error; the ones it does take (`-6`, `--version-all`) parse.
#[test]
fn nmap_habits_parse_or_get_one_line() {
    for flag in ["-A", "-sC", "-O", "-PS22,80", "-PA80", "-PU53", "-PE", "-PP", "-sA", "-sN", "--traceroute"]
    {
        let out = Command::new(env!("CARGO_BIN_EXE_portolan"))
            .args(["scan", flag, "-p", "1", "127.0.0.1"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {err}");
        assert_eq!(err.lines().count(), 1, "{flag}: {err}");
        assert!(err.contains(flag) && err.contains("not available") && err.contains("; "), "{flag}: {err}");
    }
    // taken: -6 with an IPv6 target, --version-all / --version-light
    for args in [
        &["scan", "-6", "-sT", "-Pn", "-p", "1", "::1"][..],
        &["scan", "-sT", "-sV", "--version-all", "-Pn", "-p", "1", "127.0.0.1"],
        &["scan", "-sT", "-sV", "--version-light", "-Pn", "-p", "1", "127.0.0.1"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_portolan")).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // -6 with an IPv4 target: one line
    let out = Command::new(env!("CARGO_BIN_EXE_portolan"))
        .args(["scan", "-6", "-sT", "-Pn", "-p", "1", "127.0.0.1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("-6") && err.contains("127.0.0.1"), "{err}");
}
