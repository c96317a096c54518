//! Machine formats for scan results: JSON (one `ScanRun` document), NDJSON (one `Host` per
//! line) and CSV (one row per port). All ports are kept; `--open` keeps only ports that may be
//! open. The JSON shapes are described by `docs/schema/scan-run.schema.json`.

use std::io::{self, Write};

use portolan_model::{Host, ScanRun};

use super::{ScanSink, ShowOptions};

fn filtered(host: &Host, opts: &ShowOptions) -> Host {
    let mut h = host.clone();
    if opts.open_only {
        h.ports.retain(|p| p.state.maybe_open());
        h.extra_ports.clear();
    }
    h.sort_ports();
    h
}

/// One JSON document for the whole run, written at the end.
pub struct JsonSink<W: Write> {
    out: W,
    opts: ShowOptions,
    hosts: Vec<Host>,
}

impl<W: Write> JsonSink<W> {
    /// A JSON writer.
    pub fn new(out: W, opts: ShowOptions) -> Self {
        JsonSink { out, opts, hosts: Vec::new() }
    }
}

impl<W: Write> ScanSink for JsonSink<W> {
    fn begin(&mut self, _run: &ScanRun) -> io::Result<()> {
        Ok(())
    }
    fn host(&mut self, host: &Host) -> io::Result<()> {
        self.hosts.push(filtered(host, &self.opts));
        Ok(())
    }
    fn end(&mut self, run: &ScanRun) -> io::Result<()> {
        let mut doc = run.clone();
        doc.hosts = std::mem::take(&mut self.hosts);
        serde_json::to_writer_pretty(&mut self.out, &doc)?;
        writeln!(self.out)?;
        self.out.flush()
    }
}

/// One `Host` JSON object per line, written as each host finishes.
pub struct NdjsonSink<W: Write> {
    out: W,
    opts: ShowOptions,
}

impl<W: Write> NdjsonSink<W> {
    /// An NDJSON writer.
    pub fn new(out: W, opts: ShowOptions) -> Self {
        NdjsonSink { out, opts }
    }
}

impl<W: Write> ScanSink for NdjsonSink<W> {
    fn begin(&mut self, _run: &ScanRun) -> io::Result<()> {
        Ok(())
    }
    fn host(&mut self, host: &Host) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, &filtered(host, &self.opts))?;
        writeln!(self.out)?;
        self.out.flush()
    }
    fn end(&mut self, _run: &ScanRun) -> io::Result<()> {
        self.out.flush()
    }
}

/// CSV with a header row and one row per port; cells as [`crate::escape::csv_cell`] makes them.
pub struct CsvSink<W: Write> {
    out: csv::Writer<W>,
    opts: ShowOptions,
}

/// The CSV columns.
pub const CSV_HEADER: [&str; 11] = [
    "address",
    "hostname",
    "port",
    "transport",
    "state",
    "reason",
    "reason_ttl",
    "service",
    "product",
    "version",
    "extra_info",
];

impl<W: Write> CsvSink<W> {
    /// A CSV writer.
    pub fn new(out: W, opts: ShowOptions) -> Self {
        CsvSink { out: csv::Writer::from_writer(out), opts }
    }
}

fn csv_err(e: csv::Error) -> io::Error {
    io::Error::other(e)
}

impl<W: Write> ScanSink for CsvSink<W> {
    fn begin(&mut self, _run: &ScanRun) -> io::Result<()> {
        self.out.write_record(CSV_HEADER).map_err(csv_err)
    }
    fn host(&mut self, host: &Host) -> io::Result<()> {
        let h = filtered(host, &self.opts);
        let name = h.hostnames.first().map(|n| n.name.clone()).unwrap_or_default();
        for p in &h.ports {
            let svc = p.service.as_deref();
            self.out
                .write_record(
                    [
                        h.address.to_string(),
                        name.clone(),
                        p.number.to_string(),
                        p.transport.to_string(),
                        p.state.to_string(),
                        p.reason.to_string(),
                        p.reason_ttl.to_string(),
                        svc.map(|s| s.name.clone()).unwrap_or_default(),
                        svc.and_then(|s| s.product.clone()).unwrap_or_default(),
                        svc.and_then(|s| s.version.clone()).unwrap_or_default(),
                        svc.and_then(|s| s.extra_info.clone()).unwrap_or_default(),
                    ]
                    .map(|c| crate::escape::csv_cell(&c).into_owned()),
                )
                .map_err(csv_err)?;
        }
        self.out.flush()
    }
    fn end(&mut self, _run: &ScanRun) -> io::Result<()> {
        self.out.flush()
    }
}
