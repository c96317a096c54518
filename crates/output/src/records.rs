//! Output of plain records (registry lookups, listeners, findings) in the machine formats.

use std::io::{self, Write};

use serde::Serialize;

/// The formats every command offers with `-o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Aligned table for people.
    #[default]
    Table,
    /// One pretty JSON document.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// CSV with a header row.
    Csv,
}

/// Writes a document in `format`: `whole` as one JSON document, its `items` one a line, its
/// CSV rows under `header`, or its `table` for people.
pub fn write<W: Serialize + ?Sized, I: Serialize>(
    out: &mut dyn Write,
    format: Format,
    whole: &W,
    items: &[I],
    header: &[&str],
    rows: impl IntoIterator<Item = Vec<String>>,
    table: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    match format {
        Format::Table => table(out),
        Format::Json => json(out, whole),
        Format::Ndjson => ndjson(out, items),
        Format::Csv => csv(out, header, rows),
    }
}

/// Writes `value` as one pretty JSON document and a newline.
pub fn json<T: Serialize + ?Sized>(out: &mut dyn Write, value: &T) -> io::Result<()> {
    // the serialiser writes a few bytes at a time: gathered here, they reach `out` (a trait
    // object) in large pieces rather than one dynamic call each
    let mut w = io::BufWriter::with_capacity(1 << 16, out);
    serde_json::to_writer_pretty(&mut w, value)?;
    writeln!(w)?;
    w.flush()
}

/// Writes each item as one JSON line.
pub fn ndjson<'a, T: Serialize + 'a>(
    out: &mut dyn Write,
    items: impl IntoIterator<Item = &'a T>,
) -> io::Result<()> {
    for item in items {
        serde_json::to_writer(&mut *out, item)?;
        writeln!(out)?;
    }
    Ok(())
}

/// Writes a CSV header and rows; every cell passes through [`crate::escape::csv_cell`] (no raw
/// control characters, no cell a spreadsheet would run as a formula).
pub fn csv(
    out: &mut dyn Write,
    header: &[&str],
    rows: impl IntoIterator<Item = Vec<String>>,
) -> io::Result<()> {
    let mut w = ::csv::Writer::from_writer(out);
    w.write_record(header).map_err(io::Error::other)?;
    for r in rows {
        w.write_record(r.iter().map(|c| crate::escape::csv_cell(c).into_owned()))
            .map_err(io::Error::other)?;
    }
    w.flush()
}

/// Standard output for a command's report. A reader that stops early (`portolan diff a b |
/// head`) does not change the exit code, which says what was found (1: changes, findings),
/// not whether all of it was read: once the pipe is closed, the rest is discarded.
pub fn stdout() -> std::io::BufWriter<PipeSafe> {
    std::io::BufWriter::with_capacity(64 * 1024, PipeSafe { inner: std::io::stdout().lock(), closed: false })
}

/// Standard output that turns a closed pipe into a sink (see [`stdout`]).
pub struct PipeSafe {
    inner: std::io::StdoutLock<'static>,
    closed: bool,
}

impl PipeSafe {
    fn absorb(&mut self, r: std::io::Result<()>) -> std::io::Result<()> {
        match r {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            r => r,
        }
    }
}

impl std::io::Write for PipeSafe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.closed {
            let r = self.inner.write_all(buf);
            self.absorb(r)?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let r = self.inner.flush();
        self.absorb(r)
    }
}
