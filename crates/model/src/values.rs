//! Typed values as people write them (`500ms`, `90d`, `0.5`, `medium`, `198.18.0.0/15`): each
//! parser checks its range, and its error says what is accepted. The command line uses them as
//! value parsers, so a bad flag value is one line naming the flag, what was given and this.

use std::time::Duration;

use crate::{Finding, Severity};

/// A value outside its type or range (the command line prints it after the flag and the value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Not a time.
    #[error("expected a time from 0 to {max} such as 500ms, 30s, 5m or 2h")]
    NotATime {
        /// The longest accepted, as written (`1h`).
        max: String,
    },
    /// A time above the flag's maximum.
    #[error("at most {max}")]
    TimeTooLong {
        /// The longest accepted.
        max: String,
    },
    /// Not a number.
    #[error("expected a number of probes a second, such as 500 or 0.5")]
    NotARate,
    /// A rate out of range.
    #[error("expected a number of probes a second above 0 and at most 10000000")]
    RateOutOfRange,
    /// A count out of range.
    #[error("expected a whole number from {lo} to {hi}")]
    Count {
        /// The least.
        lo: usize,
        /// The most.
        hi: usize,
    },
    /// Not a severity.
    #[error("expected info, low, medium, high, critical, any or never")]
    Severity,
    /// Not an age.
    #[error("expected a whole number and a unit: 90d, 12h, 2w (s, m, h, d or w)")]
    Age,
    /// Not a run name.
    #[error("expected 1 to 128 letters, digits, '.', '_' or '-'")]
    RunName,
    /// An age with an unknown unit.
    #[error("unknown unit {unit:?}: use s, m, h, d or w (90d, 12h, 2w)")]
    AgeUnit {
        /// The unit given.
        unit: String,
    },
    /// An age of more than 100 years.
    #[error("at most 100 years")]
    AgeTooLarge,
    /// Not I/N.
    #[error("expected I/N with 1 <= I <= N, such as 2/8")]
    Shard,
    /// Not an address or network.
    #[error("expected an address or ADDRESS/PREFIX, such as 198.18.0.7 or 2001:db8::/32")]
    Cidr,
}

/// An address or network (`198.18.0.0/15`, `2001:db8::1`): the address and prefix length.
pub fn cidr(s: &str) -> Result<(std::net::IpAddr, u8), ValueError> {
    let s = s.trim();
    let (a, l) = s.split_once('/').map_or((s, None), |(a, l)| (a, Some(l)));
    let ip: std::net::IpAddr = a.parse().map_err(|_| ValueError::Cidr)?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match l {
        Some(l) => l.parse::<u8>().ok().filter(|&n| n <= max).ok_or(ValueError::Cidr)?,
        None => max,
    };
    Ok((ip, len))
}

/// A time in nmap's notation (`500ms`, `30s`, `5m`, `2h`; a bare number is seconds), at most
/// `max`.
pub fn time(max: Duration) -> impl Fn(&str) -> Result<Duration, ValueError> + Clone + Send + Sync + 'static {
    move |s: &str| {
        let t = s.trim();
        let (num, mult) = if let Some(v) = t.strip_suffix("ms") {
            (v, 0.001)
        } else if let Some(v) = t.strip_suffix('s') {
            (v, 1.0)
        } else if let Some(v) = t.strip_suffix('m') {
            (v, 60.0)
        } else if let Some(v) = t.strip_suffix('h') {
            (v, 3600.0)
        } else {
            (t, 1.0)
        };
        let expected = || ValueError::NotATime { max: show(max) };
        let v: f64 = num.parse().ok().filter(|v: &f64| v.is_finite() && *v >= 0.0).ok_or_else(expected)?;
        let secs = v * mult;
        if secs > max.as_secs_f64() {
            return Err(ValueError::TimeTooLong { max: show(max) });
        }
        Duration::try_from_secs_f64(secs).map_err(|_| expected())
    }
}

/// A duration as the flags write it (`1h`, `30s`, `7d`).
fn show(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        s if s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        s if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        s if s.is_multiple_of(60) => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// One hour: the longest probe timeout, delay or identification budget.
pub const HOUR: Duration = Duration::from_secs(3600);
/// A week: the longest `--host-timeout`.
pub const WEEK: Duration = Duration::from_secs(7 * 86_400);

/// The highest rate `--min-rate` / `--max-rate` take: ten million probes a second, beyond any
/// link this runs on.
pub const MAX_RATE: f64 = 10_000_000.0;

/// A probe rate (probes a second): a number above 0 and at most [`MAX_RATE`].
pub fn rate(s: &str) -> Result<f64, ValueError> {
    let r: f64 = s.trim().parse().map_err(|_| ValueError::NotARate)?;
    if !(r.is_finite() && r > 0.0 && r <= MAX_RATE) {
        return Err(ValueError::RateOutOfRange);
    }
    Ok(r)
}

/// A whole number from `lo` to `hi`.
pub fn count(
    lo: usize,
    hi: usize,
) -> impl Fn(&str) -> Result<usize, ValueError> + Clone + Send + Sync + 'static {
    move |s: &str| {
        s.trim().parse::<usize>().ok().filter(|n| (lo..=hi).contains(n)).ok_or(ValueError::Count { lo, hi })
    }
}

/// The one default of `--fail-on` for `audit` and `fw lint`: medium. An unapproved listener
/// reachable beyond loopback is at least medium, so it fails CI; a correct web server's rule
/// set (SSH from anywhere, HTTP and HTTPS open, default deny) has only low and info findings.
pub const FAIL_ON_DEFAULT: &str = "medium";

/// `--fail-on`: a severity, `any` (info), or `never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailOn(pub Option<Severity>);

impl FailOn {
    /// Whether a result of this severity fails the run.
    pub fn fails(self, severity: Severity) -> bool {
        self.0.is_some_and(|t| severity >= t)
    }

    /// Whether any of these findings fails the run.
    pub fn fails_any(self, findings: &[Finding]) -> bool {
        findings.iter().any(|f| self.fails(f.severity))
    }
}

/// Reads `--fail-on`.
pub fn fail_on(s: &str) -> Result<FailOn, ValueError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "never" | "none" => Ok(FailOn(None)),
        "any" => Ok(FailOn(Some(Severity::Info))),
        other => other.parse::<Severity>().map(|s| FailOn(Some(s))).map_err(|_| ValueError::Severity),
    }
}

/// An age for `--older-than`: a whole number and a unit (`90d`, `12h`, `2w`, `30m`, `45s`; no
/// unit is days), at most 100 years.
pub fn age(s: &str) -> Result<jiff::SignedDuration, ValueError> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let expected = || ValueError::Age;
    let n: i64 = num.parse().map_err(|_| expected())?;
    let mult = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" | "" => 86_400,
        "w" => 7 * 86_400,
        other => return Err(ValueError::AgeUnit { unit: other.to_string() }),
    };
    let secs = n.checked_mul(mult).filter(|s| *s <= 100 * 366 * 86_400).ok_or(ValueError::AgeTooLarge)?;
    Ok(jiff::SignedDuration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn times_have_a_range() {
        let t = time(HOUR);
        assert_eq!(t("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(t("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(t("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(t("1h").unwrap(), HOUR);
        for bad in ["1e20s", "99999999999999999h", "1e300s", "-1s", "NaNs", "inf", "2h", "3601", "x"] {
            assert!(t(bad).is_err(), "{bad}");
        }
        assert_eq!(t("2h").unwrap_err().to_string(), "at most 1h");
        assert!(time(WEEK)("99999999999999999h").unwrap_err().to_string().contains("7d"));
    }

    #[test]
    fn rates_counts_and_severities() {
        assert_eq!(rate("0.5").unwrap(), 0.5);
        for bad in ["0", "-1", "NaN", "inf", "1e300", "x"] {
            assert!(rate(bad).is_err(), "{bad}");
        }
        assert_eq!(count(1, 65_535)("100").unwrap(), 100);
        assert!(count(1, 65_535)("0").is_err() && count(1, 65_535)("65536").is_err());
        assert_eq!(fail_on("never").unwrap(), FailOn(None));
        assert_eq!(fail_on("HIGH").unwrap(), FailOn(Some(Severity::High)));
        assert!(fail_on("loud").is_err());
        assert_eq!(age("2w").unwrap().as_secs(), 14 * 86_400);
        assert!(age("99999999999999999d").is_err() && age("3y").is_err());
    }
}
