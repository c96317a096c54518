//! Timing: nmap's `-T0`..`-T5` templates, their overrides, RTT estimation, the congestion
//! window that adapts the connect scan's parallelism to loss, the packet worker's rate and the
//! token bucket that caps it. Pure: the clock is an argument (the rounds and deadlines that
//! use these are in `rounds.rs`).

use std::time::Duration;

/// Timing parameters of a scan.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    /// Template number, 0-5.
    pub template: u8,
    /// Probe timeout before any RTT is measured.
    pub initial_rtt: Duration,
    /// Floor of the probe timeout.
    pub min_rtt: Duration,
    /// Ceiling of the probe timeout.
    pub max_rtt: Duration,
    /// Retransmissions of an unanswered probe at most.
    pub max_retries: u8,
    /// Minimum delay between probes to one host.
    pub scan_delay: Duration,
    /// Give up a host after this long.
    pub host_timeout: Option<Duration>,
    /// Probes per second at least (overrides the congestion window).
    pub min_rate: Option<f64>,
    /// Probes per second at most: a hard cap.
    pub max_rate: Option<f64>,
    /// Probes in flight at most.
    pub max_parallelism: usize,
    /// Congestion window at start.
    pub initial_cwnd: f64,
}

impl Timing {
    /// nmap's templates (`-T0` paranoid .. `-T5` insane). `-T3` is the default.
    pub fn template(t: u8) -> Timing {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        let base = Timing {
            template: t.min(5),
            initial_rtt: s(1),
            min_rtt: ms(100),
            max_rtt: s(10),
            max_retries: 10,
            scan_delay: Duration::ZERO,
            host_timeout: None,
            min_rate: None,
            max_rate: None,
            max_parallelism: 1024,
            initial_cwnd: 10.0,
        };
        match t {
            0 => Timing {
                initial_rtt: s(300),
                max_rtt: s(300),
                scan_delay: s(300),
                max_parallelism: 1,
                initial_cwnd: 1.0,
                ..base
            },
            1 => Timing {
                initial_rtt: s(15),
                max_rtt: s(15),
                scan_delay: s(15),
                max_parallelism: 1,
                initial_cwnd: 1.0,
                ..base
            },
            2 => Timing { scan_delay: ms(400), max_parallelism: 1, initial_cwnd: 1.0, ..base },
            3 => base,
            4 => Timing {
                initial_rtt: ms(500),
                max_rtt: ms(1250),
                max_retries: 6,
                max_parallelism: 8192,
                ..base
            },
            _ => Timing {
                template: 5,
                initial_rtt: ms(250),
                min_rtt: ms(50),
                max_rtt: ms(300),
                max_retries: 2,
                host_timeout: Some(s(900)),
                max_parallelism: 16384,
                ..base
            },
        }
    }
}

/// Answers a host must have given before its own RTTs may take the timeout below the
/// template's floor (`RttEstimator::measured_timeout`).
pub const MEASURED_FROM: u32 = 64;

/// Smoothed RTT and variance (RFC 6298), giving a probe timeout within the timing's bounds;
/// also the slowest answer and the number of answers.
#[derive(Debug, Clone, Copy)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    slowest: Duration,
    samples: u32,
}

impl Default for RttEstimator {
    fn default() -> Self {
        RttEstimator { srtt: None, rttvar: Duration::ZERO, slowest: Duration::ZERO, samples: 0 }
    }
}

impl RttEstimator {
    /// Adds one measurement.
    pub fn sample(&mut self, rtt: Duration) {
        self.slowest = self.slowest.max(rtt);
        self.samples = self.samples.saturating_add(1);
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + diff) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    /// The smoothed RTT, once measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The probe timeout: `srtt + 4 rttvar` within `[min_rtt, max_rtt]`, or the initial RTT.
    pub fn timeout(&self, t: &Timing) -> Duration {
        match self.srtt {
            None => t.initial_rtt,
            Some(srtt) => (srtt + self.rttvar * 4).clamp(t.min_rtt, t.max_rtt),
        }
    }

    /// The probe timeout for answers made by the target's kernel (a SYN's SYN-ACK or reset,
    /// an ICMP error), whose delay is the path's and not an application's.
    ///
    /// Until the host has answered `MEASURED_FROM` times this is `timeout`. From then on the
    /// host's own answers say how long an answer takes: `srtt + 4 rttvar`, but at least twice
    /// the slowest answer seen, at least a tenth of the template's floor (10 ms at `-T3` and
    /// `-T4`), and at most its ceiling. nmap's floor (100 ms at `-T4`) guards an estimate made
    /// from few answers; a full-range scan of a LAN host has thousands.
    pub fn measured_timeout(&self, t: &Timing) -> Duration {
        match self.srtt {
            Some(srtt) if self.samples >= MEASURED_FROM => {
                (srtt + self.rttvar * 4).max(self.slowest * 2).max(t.min_rtt / 10).min(t.max_rtt)
            }
            _ => self.timeout(t),
        }
    }
}

/// The congestion window: slow start to `ssthresh`, then additive increase; halved on a
/// confirmed drop (a retransmission answered where the first probe was not).
#[derive(Debug, Clone, Copy)]
pub struct Congestion {
    cwnd: f64,
    ssthresh: f64,
    min: f64,
    max: f64,
}

impl Congestion {
    /// A window for these timings, never above `max` (the descriptor budget).
    pub fn new(t: &Timing, max: usize) -> Congestion {
        let max = (t.max_parallelism.min(max)).max(1) as f64;
        Congestion { cwnd: t.initial_cwnd.min(max), ssthresh: max, min: 1.0, max }
    }

    /// Probes that may be in flight now.
    pub fn window(&self) -> usize {
        self.cwnd.floor().max(self.min) as usize
    }

    /// An answered probe.
    pub fn on_response(&mut self) {
        if self.cwnd < self.ssthresh {
            self.cwnd += 1.0;
        } else {
            self.cwnd += 1.0 / self.cwnd;
        }
        self.cwnd = self.cwnd.min(self.max);
    }

    /// A confirmed drop: the window halves, to at least 2 but never above its maximum (a
    /// template or a descriptor budget of one probe in flight stays at one).
    pub fn on_drop(&mut self) {
        self.ssthresh = (self.cwnd / 2.0).max(2.0).min(self.max);
        self.cwnd = self.ssthresh.max(self.min);
    }
}

/// A token bucket: `rate` tokens a second, bursts of at most 1/100 s worth (at least one), so
/// that no one-second window sees more than the rate plus that burst.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: std::time::Instant,
}

impl TokenBucket {
    /// A bucket for `rate` per second, starting now with one token.
    pub fn new(rate: f64) -> TokenBucket {
        TokenBucket::starting_at(rate, std::time::Instant::now())
    }

    /// A bucket for `rate` per second, starting at `now` with one token.
    pub fn starting_at(rate: f64, now: std::time::Instant) -> TokenBucket {
        let burst = (rate / 100.0).max(1.0);
        TokenBucket { rate, burst, tokens: 1.0, last: now }
    }

    fn refill(&mut self, now: std::time::Instant) {
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
    }

    /// How long until a batch worth waking up for has accumulated: 5 ms of tokens (at least
    /// one, at most the burst). A capped scan that woke for every single token spent its CPU
    /// on wake-ups; this wakes about 200 times a second whatever the rate, and never sends
    /// more than the cap allows.
    pub fn batch_wait(&self, now: std::time::Instant) -> Duration {
        let want = (self.rate * 0.005).clamp(1.0, self.burst);
        let have = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        if have >= want { Duration::ZERO } else { Duration::from_secs_f64((want - have) / self.rate) }
    }

    /// Takes a token if one is there; otherwise says how long until one is.
    pub fn take(&mut self, now: std::time::Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

/// How the packet worker's rate changes at the end of a host's round (`rounds::Rounds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateStep {
    /// As it is.
    Keep,
    /// Halved: a retransmission was answered, so first probes were lost.
    Halve,
    /// Grown by a quarter: a first round is out.
    Grow,
}

/// The probe rate of a template when no rate is given (probes a second).
pub fn template_rate(t: &Timing) -> f64 {
    if t.scan_delay > Duration::ZERO {
        return 1.0 / t.scan_delay.as_secs_f64();
    }
    match t.template {
        0..=2 => 10.0,
        3 => 200_000.0,
        4 => 500_000.0,
        _ => 1_000_000.0,
    }
}

/// The packet worker's probe rate: `--max-rate` (or the template's rate, or `--min-rate` if
/// higher) is the ceiling and the start; `--min-rate` (or 10 a second) the floor. Halved when
/// a host's retransmission round is answered, grown by a quarter when a host's first round is
/// out, always within the two.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateControl {
    rate: f64,
    floor: f64,
    cap: f64,
}

impl RateControl {
    /// The rate of a scan with these timings.
    pub fn new(t: &Timing) -> RateControl {
        let cap = t.max_rate.unwrap_or_else(|| template_rate(t).max(t.min_rate.unwrap_or(0.0)));
        let floor = t.min_rate.unwrap_or(10.0_f64.min(cap)).min(cap);
        RateControl { rate: cap, floor, cap }
    }

    /// Probes a second now.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Applies a step; the new rate when it changed (the caller then starts a new bucket).
    pub fn step(&mut self, step: RateStep) -> Option<f64> {
        let want = match step {
            RateStep::Keep => return None,
            RateStep::Halve => self.rate / 2.0,
            RateStep::Grow => self.rate * 1.25,
        };
        let r = want.clamp(self.floor, self.cap);
        if (r - self.rate).abs() > f64::EPSILON {
            self.rate = r;
            Some(r)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_follow_nmap() {
        let t4 = Timing::template(4);
        assert_eq!(t4.initial_rtt, Duration::from_millis(500));
        assert_eq!(t4.max_rtt, Duration::from_millis(1250));
        assert_eq!(t4.max_retries, 6);
        let t5 = Timing::template(5);
        assert_eq!(t5.max_retries, 2);
        assert_eq!(Timing::template(2).max_parallelism, 1);
        assert_eq!(Timing::template(9).template, 5);
    }

    #[test]
    fn rtt_timeout_is_bounded() {
        let t = Timing::template(4);
        let mut r = RttEstimator::default();
        assert_eq!(r.timeout(&t), t.initial_rtt);
        r.sample(Duration::from_micros(200));
        assert_eq!(r.timeout(&t), t.min_rtt, "tiny RTTs use the floor");
        for _ in 0..20 {
            r.sample(Duration::from_secs(5));
        }
        assert_eq!(r.timeout(&t), t.max_rtt);
    }

    #[test]
    fn measured_timeout_needs_many_answers_and_respects_the_slowest() {
        let t = Timing::template(4);
        let mut r = RttEstimator::default();
        for _ in 0..MEASURED_FROM - 1 {
            r.sample(Duration::from_micros(300));
        }
        assert_eq!(r.measured_timeout(&t), t.min_rtt, "too few answers: the template's floor");
        r.sample(Duration::from_micros(300));
        assert_eq!(r.measured_timeout(&t), t.min_rtt / 10, "many fast answers: a tenth of the floor");
        r.sample(Duration::from_millis(30));
        assert_eq!(r.measured_timeout(&t), Duration::from_millis(60), "twice the slowest answer");
        for _ in 0..100 {
            r.sample(Duration::from_secs(5));
        }
        assert_eq!(r.measured_timeout(&t), t.max_rtt, "never above the ceiling");
    }

    #[test]
    fn window_grows_and_halves() {
        let t = Timing::template(4);
        let mut c = Congestion::new(&t, 100);
        assert_eq!(c.window(), 10);
        for _ in 0..200 {
            c.on_response();
        }
        assert_eq!(c.window(), 100, "capped by the descriptor budget");
        c.on_drop();
        assert_eq!(c.window(), 50);
    }

    #[test]
    fn a_drop_never_opens_a_window_of_one() {
        let mut t = Timing::template(2);
        t.max_parallelism = 1;
        let mut c = Congestion::new(&t, 100);
        assert_eq!(c.window(), 1);
        c.on_drop();
        assert_eq!(c.window(), 1, "-T2's one probe in flight stays one after a loss");
        let mut budget = Congestion::new(&Timing::template(4), 1);
        budget.on_drop();
        assert_eq!(budget.window(), 1, "a descriptor budget of one is kept");
    }

    #[test]
    fn bucket_caps_the_rate() {
        let start = std::time::Instant::now();
        let mut b = TokenBucket::new(1000.0);
        let mut sent = 0;
        let mut now = start;
        // simulated clock: one second in 100 us steps
        for _ in 0..10_000 {
            now += Duration::from_micros(100);
            while b.take(now).is_ok() {
                sent += 1;
            }
        }
        assert!((990..=1011).contains(&sent), "{sent}");
    }

    #[test]
    fn a_capped_sender_wakes_for_batches() {
        let start = std::time::Instant::now();
        let mut b = TokenBucket::new(1000.0);
        assert!(b.take(start).is_ok());
        // empty: the next batch (5 tokens at 1,000/s) is 5 ms away, not the next token's 1 ms
        assert!(b.take(start).is_err());
        let w = b.batch_wait(start);
        assert!(w >= Duration::from_micros(4900) && w <= Duration::from_millis(5), "{w:?}");
        // a slow rate: one token is the batch
        let mut slow = TokenBucket::new(10.0);
        assert!(slow.take(start).is_ok());
        assert!(slow.batch_wait(start) <= Duration::from_millis(100));
        assert!(slow.batch_wait(start + Duration::from_millis(100)).is_zero());
    }

    #[test]
    fn the_window_grows_in_slow_start_then_by_one_a_window_and_halves_on_drops() {
        let t4 = Timing::template(4);
        let mut c = Congestion::new(&t4, 1000);
        assert_eq!(c.window(), 10, "the template's initial window");
        for _ in 0..10 {
            c.on_response();
        }
        assert_eq!(c.window(), 20, "slow start: one more per answer");
        c.on_drop();
        assert_eq!(c.window(), 10, "a drop halves it (and sets ssthresh there)");
        // congestion avoidance: about one more per window's worth of answers
        for _ in 0..10 {
            c.on_response();
        }
        assert_eq!(c.window(), 10);
        for _ in 0..11 {
            c.on_response();
        }
        assert_eq!(c.window(), 11);
        // drops in a row: never below two
        for _ in 0..10 {
            c.on_drop();
        }
        assert_eq!(c.window(), 2);
        // and never above the descriptor budget or the template's parallelism
        let mut small = Congestion::new(&Timing { max_parallelism: 16, ..t4 }, 1000);
        for _ in 0..1000 {
            small.on_response();
        }
        assert_eq!(small.window(), 16);
    }

    #[test]
    fn no_second_of_simulated_time_sees_more_than_the_cap_and_a_burst() {
        let start = std::time::Instant::now();
        let rate = 1000.0;
        let mut b = TokenBucket::starting_at(rate, start);
        // a sender that wants a probe every 10 us for 3 s, idles 5 s, then wants more for 1 ms
        let mut sent = Vec::new();
        for step in (0..300_000u64).chain(800_000..800_100) {
            let now = start + Duration::from_micros(step * 10);
            if b.take(now).is_ok() {
                sent.push(now);
            }
        }
        let burst = 10; // a hundredth of a second's worth
        for (i, &t) in sent.iter().enumerate() {
            let in_window = sent[i..].iter().take_while(|&&u| u < t + Duration::from_secs(1)).count();
            assert!(in_window <= rate as usize + burst, "{in_window} in the second from {:?}", t - start);
        }
        // the idle five seconds saved a burst, not five seconds of tokens
        let after_idle = sent.iter().filter(|&&t| t >= start + Duration::from_secs(8)).count();
        assert!((burst..=burst + 1).contains(&after_idle), "{after_idle}");
        // and a busy second gets the rate
        let first_second = sent.iter().filter(|&&t| t < start + Duration::from_secs(1)).count();
        assert!((995..=1011).contains(&first_second), "{first_second}");
    }

    #[test]
    fn the_packet_rate_halves_and_grows_within_its_floor_and_cap() {
        let t4 = Timing::template(4);
        let mut r = RateControl::new(&t4);
        assert_eq!(r.rate(), 500_000.0, "-T4 starts at its template rate");
        assert_eq!(r.step(RateStep::Keep), None);
        assert_eq!(r.step(RateStep::Halve), Some(250_000.0));
        assert_eq!(r.step(RateStep::Grow), Some(312_500.0));
        for _ in 0..10 {
            r.step(RateStep::Grow);
        }
        assert_eq!(r.rate(), 500_000.0, "never above the cap");
        assert_eq!(r.step(RateStep::Grow), None);
        for _ in 0..100 {
            r.step(RateStep::Halve);
        }
        assert_eq!(r.rate(), 10.0, "never below 10 a second without --min-rate");
        let capped = Timing { max_rate: Some(1000.0), min_rate: Some(100.0), ..t4.clone() };
        let mut r = RateControl::new(&capped);
        let rates: Vec<Option<f64>> = (0..6).map(|_| r.step(RateStep::Halve)).collect();
        assert_eq!(rates, [Some(500.0), Some(250.0), Some(125.0), Some(100.0), None, None]);
        // --min-rate above the template's rate raises the ceiling to it
        let fast = Timing { min_rate: Some(2_000_000.0), ..t4.clone() };
        assert_eq!(RateControl::new(&fast).rate(), 2_000_000.0);
        // a scan delay sets the template's rate
        assert_eq!(template_rate(&Timing::template(2)), 2.5);
        assert_eq!(template_rate(&Timing::template(3)), 200_000.0);
    }
}
