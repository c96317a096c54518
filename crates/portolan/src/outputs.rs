//! Opens the scan-result sinks a command asked for: one on standard output (`-o FORMAT`) and
//! any files (`-oN`, `-oX`, `-oG`, `-oJ`, `-oA`).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use portolan_output::scan::{
    CsvSink, GrepableSink, JsonSink, NdjsonSink, NormalSink, ScanSink, ShowOptions, Sinks, XmlSink,
};

use crate::cli::{OutputFiles, ScanFormat, ShowArgs};
use crate::cmd::Context;

fn create(path: &Path) -> anyhow::Result<Box<dyn Write>> {
    let f = File::create(path).with_context(|| format!("cannot create output file {}", path.display()))?;
    Ok(Box::new(BufWriter::new(f)))
}

fn sink(format: ScanFormat, w: Box<dyn Write>, opts: ShowOptions, color: bool) -> Box<dyn ScanSink> {
    match format {
        ScanFormat::Table => Box::new(NormalSink::human(w, opts, color)),
        ScanFormat::Normal => Box::new(NormalSink::normal(w, opts)),
        ScanFormat::Grepable => Box::new(GrepableSink::new(w, opts)),
        ScanFormat::Xml => Box::new(XmlSink::new(w, opts)),
        ScanFormat::Json => Box::new(JsonSink::new(w, opts)),
        ScanFormat::Ndjson => Box::new(NdjsonSink::new(w, opts)),
        ScanFormat::Csv => Box::new(CsvSink::new(w, opts)),
    }
}

/// Opens every requested sink. Files are created before any work starts, so a bad path fails
/// early.
pub fn open(
    format: ScanFormat,
    files: &OutputFiles,
    show: &ShowArgs,
    keep_listed: bool,
    ctx: &Context,
) -> anyhow::Result<Sinks> {
    let opts = ShowOptions { verbose: show.verbose, open_only: show.open, reason: show.reason, keep_listed };
    let mut list: Vec<(ScanFormat, PathBuf)> = Vec::new();
    for (f, p) in [
        (ScanFormat::Normal, &files.normal),
        (ScanFormat::Xml, &files.xml),
        (ScanFormat::Grepable, &files.grepable),
        (ScanFormat::Json, &files.json),
    ] {
        if let Some(p) = p {
            list.push((f, p.clone()));
        }
    }
    if let Some(base) = &files.all {
        let with = |ext: &str| {
            let mut s = base.clone().into_os_string();
            s.push(ext);
            PathBuf::from(s)
        };
        list.push((ScanFormat::Normal, with(".nmap")));
        list.push((ScanFormat::Xml, with(".xml")));
        list.push((ScanFormat::Grepable, with(".gnmap")));
        list.push((ScanFormat::Json, with(".json")));
    }
    let mut sinks: Vec<Box<dyn ScanSink>> = Vec::new();
    let to_stdout = list.iter().any(|(_, p)| p.as_os_str() == "-");
    for (f, p) in list {
        let w: Box<dyn Write> =
            if p.as_os_str() == "-" { Box::new(BufWriter::new(io::stdout())) } else { create(&p)? };
        sinks.push(sink(f, w, opts, false));
    }
    if !to_stdout {
        sinks.push(sink(format, Box::new(BufWriter::new(io::stdout())), opts, ctx.color));
    }
    Ok(Sinks::new(sinks))
}
