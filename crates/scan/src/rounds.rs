//! The scan engines' retransmission rounds and deadlines, as functions of the time they are
//! given: nothing here reads the clock or touches a socket. The engines read the clock where
//! they always did and pass it in; the tests below run the rules on simulated time, without
//! privileges.
//!
//! - [`Rounds`]: one host of the packet worker (`syn.rs`: SYN, UDP and raw discovery probes):
//!   its rounds, when a port may go again, when a round is over, whether another follows, the
//!   host timeout, and the pacing of a UDP host that limits its ICMP errors.
//! - [`connect_retries`], [`host_timed_out`], [`paced_until`], [`below_min_rate`]: the connect
//!   workers' rules (`connect.rs`), which retransmit probe by probe rather than in rounds.

use std::time::{Duration, Instant};

use crate::timing::{RateStep, Timing};

/// The first delay between two UDP probes to a host that limits its ICMP errors.
pub(crate) const UDP_MIN_GAP: Duration = Duration::from_millis(100);
/// The longest: Linux sends one ICMP error a second to a peer once a burst of six is spent
/// (`net.ipv4.icmp_ratelimit` = 1000 ms), so at one probe a second every closed port answers.
pub(crate) const UDP_MAX_GAP: Duration = Duration::from_secs(1);

/// What the end of a round decided (see [`Rounds::end_round`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoundEnd {
    /// The round is not over yet.
    NotYet,
    /// Another round follows; it has begun (the caller starts its ports from the first).
    Next(RateStep),
    /// The host is finished: what is undecided stays so.
    Last(RateStep),
}

/// The retransmission rounds of one host in the packet worker, and its clock.
///
/// Every undecided port is probed once a round. A TCP port scan's first round ends as its last
/// probe leaves, and in the rounds after it each port goes again once its own last probe has
/// had the timeout; other rounds end a timeout after their last probe. A host gets one round
/// more than the last round that was answered (as nmap), within `--max-retries`; where that
/// would end a TCP host after its first retransmission, that round makes two passes, so a
/// dropped port still gets three probes. A UDP host whose ICMP errors are rate-limited is
/// paced instead (see [`Rounds::end_round`]).
#[derive(Debug, Clone)]
pub(crate) struct Rounds {
    /// TCP probes (answers count for the round of the probe they answer, and a port sent again
    /// gives no RTT sample); otherwise UDP (answers count for the round they arrive in).
    tcp: bool,
    /// A port scan (not discovery).
    ports: bool,
    /// When the host's scan began: send times are kept as milliseconds since then.
    t0: Instant,
    /// The current round, 0 for the first probes.
    round: u8,
    /// Highest round that got an answer.
    max_ok_round: u8,
    /// Passes over the undecided ports left in the current round, this one included: 2 in a
    /// doubled round, else 1.
    passes: u8,
    /// Whether the current pass is its round's first.
    first_pass: bool,
    /// When the current round's last probe went out.
    round_done: Option<Instant>,
    /// Answers counted for the current round.
    answered_in_round: usize,
    /// UDP: ports answered by an ICMP error (or another answer than open) in the current
    /// round, and in all.
    closed_in_round: usize,
    icmp_total: usize,
    /// UDP: the host limits its ICMP errors; its probes are spaced by `gap`, across rounds too
    /// (from `last_sent`).
    limited: bool,
    gap: Duration,
    last_sent: Instant,
}

impl Rounds {
    /// The rounds of a host whose scan begins at `t0`: TCP or UDP probes, a port scan or
    /// discovery.
    pub(crate) fn new(t0: Instant, tcp: bool, ports: bool) -> Rounds {
        Rounds {
            tcp,
            ports,
            t0,
            round: 0,
            max_ok_round: 0,
            passes: 1,
            first_pass: true,
            round_done: None,
            answered_in_round: 0,
            closed_in_round: 0,
            icmp_total: 0,
            limited: false,
            gap: Duration::ZERO,
            last_sent: t0,
        }
    }

    /// The current round, 0 for the first probes.
    pub(crate) fn round(&self) -> u8 {
        self.round
    }

    /// Whether the current round's last probe has gone out.
    pub(crate) fn round_out(&self) -> bool {
        self.round_done.is_some()
    }

    /// Whether the current pass is the round's last.
    pub(crate) fn last_pass(&self) -> bool {
        self.passes <= 1
    }

    /// Moves to the round's next pass, if it has one (a doubled round); false otherwise.
    pub(crate) fn next_pass(&mut self) -> bool {
        if self.passes > 1 {
            self.passes -= 1;
            self.first_pass = false;
            true
        } else {
            false
        }
    }

    /// Nothing is left to send in the round at `now` (its last ports were answered before their
    /// turn came): the round is out, if it was not already.
    pub(crate) fn nothing_left(&mut self, now: Instant) {
        if self.round_done.is_none() {
            self.round_done = Some(now);
        }
    }

    /// A probe went out at `now`; returns its send time as milliseconds since `t0` (what the
    /// worker keeps per port), saturating.
    pub(crate) fn probe_sent(&mut self, now: Instant) -> u32 {
        self.last_sent = now;
        now.duration_since(self.t0).as_millis().min(u128::from(u32::MAX)) as u32
    }

    /// The round's last probe went out at `now`.
    pub(crate) fn last_probe_sent(&mut self, now: Instant) {
        self.round_done = Some(now);
    }

    /// When a probe stamped `sent_ms` went out.
    pub(crate) fn sent_at(&self, sent_ms: u32) -> Instant {
        self.t0 + Duration::from_millis(u64::from(sent_ms))
    }

    /// Whether an answer to a probe of round `probe_round` is an RTT sample: not for a TCP port
    /// sent again, whose answer may be to an earlier copy (Karn's rule).
    pub(crate) fn rtt_sample(&self, probe_round: u8) -> bool {
        !self.tcp || probe_round == 0
    }

    /// An answer to a probe of round `probe_round`; `open` when it says the port is open. A TCP
    /// answer counts for the round of the probe it answers (a late answer to the first round
    /// may come after the second began), as nmap counts by try number; UDP's by arrival.
    pub(crate) fn answered(&mut self, probe_round: u8, open: bool) {
        let round = if self.tcp { probe_round } else { self.round };
        self.max_ok_round = self.max_ok_round.max(round);
        if round == self.round {
            self.answered_in_round += 1;
        }
        if !open {
            self.closed_in_round += 1;
            self.icmp_total += 1;
        }
    }

    /// When the port whose last probe is stamped `sent_ms` may go again, in the first pass of a
    /// TCP retransmission round: once that probe has had `timeout` to be answered (as in nmap),
    /// not once the whole round has. (`sent_ms` is whole milliseconds, rounded down: one
    /// more.) `None`: it may go now.
    pub(crate) fn port_due(&self, sent_ms: u32, timeout: Duration) -> Option<Instant> {
        if self.round == 0 || !self.first_pass || !self.ports || !self.tcp {
            return None;
        }
        Some(self.t0 + Duration::from_millis(u64::from(sent_ms) + 1) + timeout)
    }

    /// When a round whose last probe went out is over. A TCP port scan's first round ends at
    /// once: the first retransmission round always follows it, and each port in it waits for
    /// its own probe's timeout ([`Rounds::port_due`]), so a full-range sweep's early ports go
    /// again while its last answers are still coming. Later rounds end a timeout after their
    /// last probe, since whether another follows depends on their answers. `None` while the
    /// round's probes are still going out.
    pub(crate) fn round_end(&self, timeout: Duration, max_retries: u8) -> Option<Instant> {
        let done = self.round_done?;
        let rolls = self.round == 0 && self.ports && self.tcp && max_retries >= 1;
        Some(if rolls { done } else { done + timeout })
    }

    /// When a UDP host that limits its ICMP errors may be sent its next probe; `None` when it
    /// is not paced.
    pub(crate) fn paced_until(&self) -> Option<Instant> {
        (self.gap > Duration::ZERO).then(|| self.last_sent + self.gap)
    }

    /// Whether the host has run longer than `--host-timeout` at `now`.
    pub(crate) fn timed_out(&self, now: Instant, host_timeout: Option<Duration>) -> bool {
        host_timed_out(self.t0, now, host_timeout)
    }

    fn next_round(&mut self) {
        self.round = self.round.saturating_add(1);
        self.passes = 1;
        self.first_pass = true;
        self.round_done = None;
        self.answered_in_round = 0;
        self.closed_in_round = 0;
    }

    /// At `now`: whether the round is over and, if it is, whether another round follows (then
    /// begun) and how the worker's rate should change.
    ///
    /// TCP: answers to a retransmission mean first probes were lost (halve the rate); a first
    /// round is a chance to grow it. One round more than the last that was answered, at most
    /// `--max-retries`; where that would end the host after its first retransmission (nothing
    /// answered one yet), that round sends each probe twice: three probes, as a third round
    /// would send, without waiting out a third round (on a host with filtered ports the waits
    /// are most of its tail). The host timeout ends the host at a round's end.
    ///
    /// UDP: a port-unreachable to a retransmitted probe means the host dropped its first
    /// answer: it limits its ICMP errors (Linux: a burst of six, then one a second to each
    /// peer). Then its probes are spaced, the gap doubling each round up to one second, and the
    /// rounds go on while they find closed ports; a round at the longest gap that finds nothing
    /// ends the host. A host that sent ICMP errors and then fell silent while ports are
    /// undecided is treated the same way (its limiter may have swallowed every
    /// retransmission). So a closed port is never left as open|filtered because its answer was
    /// rate-limited away; the price is time, as in nmap.
    pub(crate) fn end_round(&mut self, now: Instant, timeout: Duration, timing: &Timing) -> RoundEnd {
        let Some(end) = self.round_end(timeout, timing.max_retries) else { return RoundEnd::NotYet };
        if now < end {
            return RoundEnd::NotYet;
        }
        if !self.tcp {
            return self.end_udp_round(now, timing);
        }
        let rate = if self.round > 0 && self.answered_in_round > 0 {
            RateStep::Halve
        } else if self.round == 0 {
            RateStep::Grow
        } else {
            RateStep::Keep
        };
        let allowed = self.max_ok_round.saturating_add(1).min(timing.max_retries);
        if self.round >= allowed || self.timed_out(now, timing.host_timeout) {
            return RoundEnd::Last(rate);
        }
        self.next_round();
        if self.round == 1 && self.max_ok_round == 0 && timing.max_retries >= 2 {
            self.passes = 2;
        }
        RoundEnd::Next(rate)
    }

    fn end_udp_round(&mut self, now: Instant, timing: &Timing) -> RoundEnd {
        if self.round > 0 && self.closed_in_round > 0 {
            self.limited = true;
        }
        if self.timed_out(now, timing.host_timeout) {
            return RoundEnd::Last(RateStep::Keep);
        }
        if self.limited {
            if self.answered_in_round == 0 && self.gap >= UDP_MAX_GAP {
                return RoundEnd::Last(RateStep::Keep);
            }
            self.gap = (self.gap * 2).clamp(UDP_MIN_GAP, UDP_MAX_GAP);
        } else {
            let allowed = self.max_ok_round.saturating_add(1).max(2).min(timing.max_retries);
            if self.round >= allowed {
                if self.icmp_total == 0 {
                    return RoundEnd::Last(RateStep::Keep);
                }
                self.limited = true;
                self.gap = UDP_MIN_GAP;
            }
        }
        self.next_round();
        RoundEnd::Next(RateStep::Keep)
    }
}

/// Tries a connect worker allows a port: nmap allows one try more than the highest that was
/// ever answered (`max_ok_try`); Portolan allows at least two retransmissions, so that two
/// losses in a row do not hide an open port (0.04 % of ports at 2 % loss); `--max-retries`
/// still caps it. A probe of try `t` is sent again when `t` is below this.
pub(crate) fn connect_retries(max_retries: u8, max_ok_try: u8) -> u8 {
    max_retries.min(max_ok_try.saturating_add(1).max(2))
}

/// Whether a host started at `started` has run longer than `limit` (`--host-timeout`) at `now`.
pub(crate) fn host_timed_out(started: Instant, now: Instant, limit: Option<Duration>) -> bool {
    limit.is_some_and(|limit| now.saturating_duration_since(started) > limit)
}

/// `--scan-delay`: when a host last sent to at `last` may be sent its next probe, if that is
/// after `now`; `None`: now.
pub(crate) fn paced_until(last: Option<Instant>, delay: Duration, now: Instant) -> Option<Instant> {
    if delay.is_zero() {
        return None;
    }
    let at = last? + delay;
    (at > now).then_some(at)
}

/// `--min-rate`: whether `sent` probes in `elapsed` fall short of `min_rate` a second (the
/// sender then ignores the congestion window).
pub(crate) fn below_min_rate(sent: u64, min_rate: Option<f64>, elapsed: Duration) -> bool {
    min_rate.is_some_and(|rate| (sent as f64) < rate * elapsed.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A TCP port scan of one host on simulated time, driven as the packet worker drives it:
    /// each port goes when [`Rounds::port_due`] allows, 10,000 probes a second, and
    /// `answered(round, port)` says whether that probe is answered (at once). Returns the
    /// probes each port got, the rate steps of the rounds' ends, and when the host finished.
    fn simulate(
        timing: &Timing,
        ports: usize,
        timeout: Duration,
        answered: impl Fn(u8, usize) -> bool,
    ) -> (Vec<u32>, Vec<RateStep>, Duration) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut rounds = Rounds::new(t0, true, true);
        let mut sent_ms = vec![0u32; ports];
        let mut decided = vec![false; ports];
        let mut probes = vec![0u32; ports];
        let mut steps = Vec::new();
        loop {
            loop {
                for port in 0..ports {
                    if decided[port] {
                        continue;
                    }
                    if let Some(due) = rounds.port_due(sent_ms[port], timeout) {
                        now = now.max(due);
                    }
                    sent_ms[port] = rounds.probe_sent(now);
                    probes[port] += 1;
                    if answered(rounds.round(), port) {
                        decided[port] = true;
                        rounds.answered(rounds.round(), true);
                    }
                    now += Duration::from_micros(100);
                }
                if !rounds.next_pass() {
                    break;
                }
            }
            rounds.last_probe_sent(now);
            if decided.iter().all(|d| *d) {
                return (probes, steps, now - t0);
            }
            let end = rounds.round_end(timeout, timing.max_retries).expect("the round is out");
            assert_eq!(rounds.end_round(end - Duration::from_nanos(1), timeout, timing), RoundEnd::NotYet);
            now = now.max(end);
            match rounds.end_round(now, timeout, timing) {
                RoundEnd::NotYet => panic!("a round past its end is not over"),
                RoundEnd::Next(step) => steps.push(step),
                RoundEnd::Last(step) => {
                    steps.push(step);
                    return (probes, steps, now - t0);
                }
            }
        }
    }

    #[test]
    fn a_silent_port_gets_three_probes_after_two_waits() {
        let t4 = Timing::template(4);
        let timeout = ms(100);
        let (probes, steps, took) = simulate(&t4, 1, timeout, |_, _| false);
        assert_eq!(probes, [3], "the first retransmission round is doubled");
        assert_eq!(steps, [RateStep::Grow, RateStep::Keep]);
        // round 0 rolls over at once; the port goes again 1 ms (rounding) + a timeout after its
        // probe, twice; the host ends a timeout after that round's last probe
        assert_eq!(took, ms(1) + timeout * 2 + Duration::from_micros(200));
    }

    #[test]
    fn an_answered_retransmission_earns_one_more_round_and_halves_the_rate() {
        let t4 = Timing::template(4);
        // port 0's first probe is lost; port 1 never answers
        let (probes, steps, _) = simulate(&t4, 2, ms(50), |round, port| port == 0 && round >= 1);
        assert_eq!(probes, [2, 4], "port 1: 1 + 2 (doubled round) + 1 (the round earned)");
        assert_eq!(steps, [RateStep::Grow, RateStep::Halve, RateStep::Keep]);
        // answered in round 0: nothing is sent again
        let (probes, steps, took) = simulate(&t4, 3, ms(50), |_, _| true);
        assert_eq!((probes, steps), (vec![1, 1, 1], vec![]));
        assert_eq!(took, Duration::from_micros(300));
    }

    #[test]
    fn max_retries_caps_the_rounds() {
        let timeout = ms(20);
        let with = |retries: u8| Timing { max_retries: retries, ..Timing::template(4) };
        // no retransmission: the first round waits its timeout (it does not roll over)
        let (probes, _, took) = simulate(&with(0), 1, timeout, |_, _| false);
        assert_eq!(probes, [1]);
        assert_eq!(took, timeout + Duration::from_micros(100));
        // one: a single retransmission, not doubled
        assert_eq!(simulate(&with(1), 1, timeout, |_, _| false).0, [2]);
        // an answer in every retransmission round earns another, up to the cap: port p of
        // 0..6 answers from round p on, port 6 never
        let late = |round: u8, port: usize| port < 6 && usize::from(round) >= port;
        assert_eq!(simulate(&with(6), 7, timeout, late).0[6], 1 + 2 + 5, "rounds 0 to 6");
        assert_eq!(simulate(&with(4), 7, timeout, late).0[6], 1 + 2 + 3, "rounds 0 to 4");
        assert_eq!(simulate(&Timing::template(5), 1, timeout, |_, _| false).0, [3], "-T5: two retries");
    }

    #[test]
    fn only_a_tcp_port_scans_first_round_rolls_over() {
        let t4 = Timing::template(4);
        let t0 = Instant::now();
        let timeout = ms(30);
        for (tcp, ports, rolls) in [(true, true, true), (true, false, false), (false, true, false)] {
            let mut rounds = Rounds::new(t0, tcp, ports);
            assert_eq!(rounds.round_end(timeout, t4.max_retries), None, "probes still going out");
            rounds.probe_sent(t0 + ms(5));
            rounds.last_probe_sent(t0 + ms(5));
            let end = if rolls { t0 + ms(5) } else { t0 + ms(5) + timeout };
            assert_eq!(rounds.round_end(timeout, t4.max_retries), Some(end), "tcp {tcp} ports {ports}");
            // ports wait for their own timeout only in a TCP port scan's retransmissions
            assert_eq!(rounds.port_due(5, timeout), None, "round 0 sends at once");
        }
        // a round whose last ports were answered before their turn is out when that is seen
        let mut rounds = Rounds::new(t0, true, true);
        rounds.nothing_left(t0 + ms(7));
        rounds.nothing_left(t0 + ms(9));
        assert_eq!(rounds.round_end(timeout, t4.max_retries), Some(t0 + ms(7)));
    }

    #[test]
    fn a_port_is_due_again_once_its_own_probe_had_the_timeout() {
        let t4 = Timing::template(4);
        let t0 = Instant::now();
        let timeout = ms(40);
        let mut rounds = Rounds::new(t0, true, true);
        let early = rounds.probe_sent(t0 + Duration::from_micros(2_500));
        let late = rounds.probe_sent(t0 + ms(900));
        assert_eq!((early, late), (2, 900), "whole milliseconds since the host's start");
        rounds.last_probe_sent(t0 + ms(900));
        assert!(matches!(rounds.end_round(t0 + ms(900), timeout, &t4), RoundEnd::Next(_)));
        // rounded up a millisecond: never before the timeout has passed
        assert_eq!(rounds.port_due(early, timeout), Some(t0 + ms(3) + timeout));
        assert_eq!(rounds.port_due(late, timeout), Some(t0 + ms(901) + timeout));
        assert!(rounds.next_pass(), "the first retransmission round is doubled");
        assert_eq!(rounds.port_due(early, timeout), None, "its second pass follows at once");
        assert!(!rounds.next_pass());
        assert_eq!(rounds.sent_at(late), t0 + ms(900));
    }

    #[test]
    fn answers_count_for_the_round_of_their_probe_over_tcp_and_of_their_arrival_over_udp() {
        let t4 = Timing::template(4);
        let t0 = Instant::now();
        for tcp in [true, false] {
            let mut rounds = Rounds::new(t0, tcp, true);
            rounds.last_probe_sent(t0);
            assert!(matches!(rounds.end_round(t0 + ms(600), ms(500), &t4), RoundEnd::Next(_)));
            assert_eq!(rounds.round(), 1);
            // a late answer to a first-round probe, arriving in round 1
            rounds.answered(0, true);
            assert_eq!(rounds.max_ok_round, if tcp { 0 } else { 1 });
            assert_eq!(rounds.answered_in_round, usize::from(!tcp));
            // Karn: no RTT from a TCP port sent again
            assert!(rounds.rtt_sample(0));
            assert_eq!(rounds.rtt_sample(1), !tcp);
        }
    }

    #[test]
    fn the_host_timeout_ends_a_host_at_its_rounds_end() {
        let t0 = Instant::now();
        let timing = Timing { host_timeout: Some(ms(1000)), ..Timing::template(4) };
        let timeout = ms(100);
        let mut rounds = Rounds::new(t0, true, true);
        rounds.last_probe_sent(t0);
        assert!(matches!(rounds.end_round(t0, timeout, &timing), RoundEnd::Next(_)));
        // answered retransmissions would earn more rounds, but the host has run out of time
        rounds.answered(1, true);
        rounds.last_probe_sent(t0 + ms(950));
        assert_eq!(rounds.end_round(t0 + ms(1000), timeout, &timing), RoundEnd::NotYet);
        assert_eq!(rounds.end_round(t0 + ms(1050), timeout, &timing), RoundEnd::Last(RateStep::Halve));
        // the same over UDP
        let mut udp = Rounds::new(t0, false, true);
        udp.last_probe_sent(t0 + ms(1200));
        assert_eq!(udp.end_round(t0 + ms(1300), timeout, &timing), RoundEnd::Last(RateStep::Keep));
        // the rule itself: strictly longer than the limit; no limit, no end
        assert!(!host_timed_out(t0, t0 + ms(1000), Some(ms(1000))));
        assert!(host_timed_out(t0, t0 + ms(1001), Some(ms(1000))));
        assert!(!host_timed_out(t0, t0 + Duration::from_secs(86_400), None));
        assert!(!host_timed_out(t0 + ms(5), t0, Some(ms(1))), "a clock read before the start");
    }

    #[test]
    fn a_udp_host_that_limits_its_icmp_errors_is_paced_until_a_silent_round_at_one_second() {
        let t0 = Instant::now();
        let t4 = Timing::template(4);
        let timeout = ms(10);
        let mut rounds = Rounds::new(t0, false, true);
        let mut now = t0;
        // round 0: a burst of six port-unreachables, then the host's limiter swallows the rest
        for _ in 0..6 {
            rounds.answered(0, false);
        }
        let mut gaps = Vec::new();
        loop {
            rounds.probe_sent(now);
            rounds.last_probe_sent(now);
            now += timeout;
            match rounds.end_round(now, timeout, &t4) {
                RoundEnd::Next(step) => assert_eq!(step, RateStep::Keep),
                RoundEnd::Last(_) => break,
                RoundEnd::NotYet => panic!("past its end"),
            }
            let gap = rounds.paced_until().map(|at| at - (now - timeout));
            gaps.push(gap);
            // one closed port a round while the gap grows, then nothing
            if gap.is_some_and(|g| g < UDP_MAX_GAP) || rounds.round() == 1 {
                rounds.answered(rounds.round(), false);
            }
        }
        let none = None;
        assert_eq!(
            gaps,
            [none, Some(ms(100)), Some(ms(200)), Some(ms(400)), Some(ms(800)), Some(ms(1000))],
            "round 0 is not paced; a closed port in a retransmission round starts the pacing"
        );
        // a host that never sent an ICMP error: three probes, no pacing
        let mut silent = Rounds::new(t0, false, true);
        let mut now = t0;
        let mut rounds_run = 0;
        loop {
            rounds_run += 1;
            silent.last_probe_sent(now);
            now += timeout;
            match silent.end_round(now, timeout, &t4) {
                RoundEnd::Next(_) => assert_eq!(silent.paced_until(), None),
                RoundEnd::Last(_) => break,
                RoundEnd::NotYet => panic!("past its end"),
            }
        }
        assert_eq!(rounds_run, 3);
    }

    #[test]
    fn the_connect_scan_retries_one_try_more_than_answered_at_least_two() {
        assert_eq!(connect_retries(6, 0), 2);
        assert_eq!(connect_retries(6, 3), 4);
        assert_eq!(connect_retries(1, 0), 1, "--max-retries caps it");
        assert_eq!(connect_retries(0, 5), 0);
        assert_eq!(connect_retries(10, u8::MAX), 10);
    }

    #[test]
    fn the_scan_delay_spaces_a_hosts_probes() {
        let t0 = Instant::now();
        let delay = ms(400);
        assert_eq!(paced_until(None, delay, t0), None, "the first probe goes at once");
        assert_eq!(paced_until(Some(t0), Duration::ZERO, t0), None, "no delay");
        assert_eq!(paced_until(Some(t0), delay, t0 + ms(100)), Some(t0 + delay));
        assert_eq!(paced_until(Some(t0), delay, t0 + delay), None);
        // at -T2 (400 ms), 10 probes to one host take 3.6 s of simulated time
        let mut now = t0;
        let mut last = None;
        for _ in 0..10 {
            if let Some(at) = paced_until(last, delay, now) {
                now = at;
            }
            last = Some(now);
        }
        assert_eq!(now - t0, delay * 9);
    }

    #[test]
    fn the_min_rate_overrides_the_window_only_when_behind() {
        assert!(!below_min_rate(0, None, Duration::from_secs(10)));
        assert!(below_min_rate(150, Some(100.0), Duration::from_secs(2)));
        assert!(!below_min_rate(200, Some(100.0), Duration::from_secs(2)));
        assert!(!below_min_rate(0, Some(100.0), Duration::ZERO));
    }
}
