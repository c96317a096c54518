//! Prometheus metrics for `watch` (the `prometheus-client` crate), served over HTTP on
//! `--metrics ADDR:PORT` at `/metrics`: lines and events read by source, detections by kind and
//! severity, tracked sources, evictions, and lag (how far the newest event is behind the clock).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// The metrics of one watch run.
pub struct Metrics {
    registry: Registry,
    lines: Family<Labels, Counter>,
    events: Family<Labels, Counter>,
    detections: Family<Labels, Counter>,
    tracked: Gauge,
    evicted: Counter,
    lag: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("portolan_watch");
        let lines = Family::<Labels, Counter>::default();
        let events = Family::<Labels, Counter>::default();
        let detections = Family::<Labels, Counter>::default();
        let tracked = Gauge::default();
        let evicted = Counter::default();
        let lag = Gauge::<f64, AtomicU64>::default();
        registry.register("lines", "Lines (logs) or packets (captures) read, by source", lines.clone());
        registry.register(
            "events",
            "Events read (connections, logged packets, failed logins), by source",
            events.clone(),
        );
        registry.register("detections", "Detections by kind and severity", detections.clone());
        registry.register("tracked_sources", "Sources the detectors track now", tracked.clone());
        registry.register(
            "evicted_sources",
            "Sources dropped because the cap on tracked sources was reached",
            evicted.clone(),
        );
        registry.register("lag_seconds", "How far the newest event is behind the wall clock", lag.clone());
        Metrics { registry, lines, events, detections, tracked, evicted, lag }
    }

    /// A line or packet read from `source`.
    pub fn line(&self, source: &str) {
        self.lines.get_or_create(&vec![("source".into(), source.into())]).inc();
    }

    /// An event read from `source`.
    pub fn event(&self, source: &str) {
        self.events.get_or_create(&vec![("source".into(), source.into())]).inc();
    }

    /// A detection (count each once).
    pub fn detection(&self, kind: &str, severity: &str) {
        self.detections
            .get_or_create(&vec![("kind".into(), kind.into()), ("severity".into(), severity.into())])
            .inc();
    }

    /// Sources tracked now, and evictions in all.
    pub fn sources(&self, tracked: usize, evicted: u64) {
        self.tracked.set(tracked as i64);
        let seen = self.evicted.get();
        if evicted > seen {
            self.evicted.inc_by(evicted - seen);
        }
    }

    /// Seconds the newest event is behind the clock.
    pub fn lag(&self, seconds: f64) {
        self.lag.set(seconds.max(0.0));
    }

    /// The OpenMetrics text format, as the crate writes it.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }

    /// The Prometheus text format 0.0.4 (what `promtool check metrics` reads and every
    /// Prometheus scrapes): a counter's HELP and TYPE name its `_total` series, and there is no
    /// `# EOF`.
    pub fn encode_prometheus(&self) -> String {
        let open = self.encode();
        let counters: Vec<&str> = open
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.strip_suffix(" counter"))
            .collect();
        let mut out = String::with_capacity(open.len() + 64);
        for line in open.lines() {
            if line == "# EOF" {
                continue;
            }
            let meta =
                ["# HELP ", "# TYPE "].into_iter().find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
            match meta {
                Some((p, rest)) => {
                    let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                    if counters.contains(&name) {
                        out.push_str(&format!("{p}{name}_total {tail}\n"));
                    } else {
                        out.push_str(line);
                        out.push('\n');
                    }
                }
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// Serves `GET /metrics` on `addr` until `stop`, on a thread of its own.
    pub fn serve(
        self: &Arc<Self>,
        addr: SocketAddr,
        stop: Arc<AtomicBool>,
    ) -> io::Result<std::thread::JoinHandle<()>> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let me = self.clone();
        Ok(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                        let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
                        let _ = me.answer(&mut conn);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }))
    }

    fn answer(&self, conn: &mut std::net::TcpStream) -> io::Result<()> {
        // the request line is all that matters; read until the end of the headers, bounded
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16 * 1024 {
            let n = conn.read(&mut buf)?;
            if n == 0 {
                break;
            }
            req.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&req);
        let path = line.split_whitespace().nth(1).unwrap_or("");
        let (status, ctype, body) =
            if line.starts_with("GET ") && (path == "/metrics" || path.starts_with("/metrics?")) {
                ("200 OK", "text/plain; version=0.0.4; charset=utf-8", self.encode_prometheus())
            } else {
                ("404 Not Found", "text/plain", "portolan serves /metrics\n".to_string())
            };
        write!(
            conn,
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition() {
        let m = Metrics::new();
        m.line("auth.log");
        m.event("auth.log");
        m.detection("brute_force", "high");
        m.sources(3, 2);
        let text = m.encode();
        assert!(
            text.contains("portolan_watch_detections_total{kind=\"brute_force\",severity=\"high\"} 1"),
            "{text}"
        );
        assert!(text.contains("portolan_watch_tracked_sources 3"), "{text}");
        assert!(text.contains("portolan_watch_evicted_sources_total 2"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        let p = m.encode_prometheus();
        assert!(p.contains("# TYPE portolan_watch_detections_total counter\n"), "{p}");
        assert!(p.contains("# TYPE portolan_watch_tracked_sources gauge\n") && !p.contains("# EOF"), "{p}");
    }
}
