use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use portolan_model::ScanRun;
use portolan_output::records;

use super::Context;
use crate::cli::{DiffArgs, DiffFormat};

/// Reads one side: nmap XML, or Portolan's JSON scan document (`-oJ`).
fn read_side(spec: &str) -> anyhow::Result<ScanRun> {
    let path = Path::new(spec);
    if !path.exists() {
        anyhow::bail!("{spec}: no such file (give an nmap XML file or a JSON scan from `portolan scan -oJ`)");
    }
    let head = {
        use std::io::Read;
        let mut f = std::fs::File::open(path).with_context(|| format!("cannot open {spec}"))?;
        let mut buf = [0u8; 256];
        let n = f.read(&mut buf).with_context(|| format!("cannot read {spec}"))?;
        buf[..n].iter().copied().find(|b| !b.is_ascii_whitespace())
    };
    if head == Some(b'{') {
        let f = std::fs::File::open(path).with_context(|| format!("cannot open {spec}"))?;
        let run: ScanRun = serde_json::from_reader(io::BufReader::new(f))
            .with_context(|| format!("{spec}: not a Portolan JSON scan document"))?;
        Ok(run)
    } else {
        Ok(portolan_import::read_file(path)?)
    }
}

pub fn run(args: DiffArgs, _ctx: &Context) -> anyhow::Result<ExitCode> {
    let a = read_side(&args.a)?;
    let b = read_side(&args.b)?;
    let d = portolan_diff::diff(&a, &b);
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    match args.format {
        DiffFormat::Text => portolan_output::diff::write_text(&mut out, &d)?,
        DiffFormat::Json => records::json(&mut out, &d)?,
    }
    out.flush().context("writing to standard output")?;
    Ok(if d.cost == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
