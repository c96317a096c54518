use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use portolan_kb::Lookup;
use portolan_output::{lookup, records};

use super::Context;
use portolan_model::Transport;
use portolan_output::lookup::TopPorts;
use portolan_registry::Ranking;

use crate::cli::{PortArgs, RecordFormat, TopTransport};

pub fn run(args: PortArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    if let Some(n) = args.top {
        return top(n, &args, ctx);
    }
    let answers: Vec<Lookup> = match &args.search {
        Some(text) => vec![portolan_kb::search(text)],
        None => args.queries.iter().map(|q| portolan_kb::lookup(q)).collect::<Result<_, _>>()?,
    };
    let mut out = super::stdout();
    let rows = answers.iter().flat_map(lookup::csv_rows);
    records::write(&mut out, args.format.into(), &answers, &answers, &lookup::CSV_HEADER, rows, |o| {
        for (i, a) in answers.iter().enumerate() {
            if i > 0 {
                writeln!(o)?;
            }
            lookup::write_human(o, a, ctx.color)?;
        }
        Ok(())
    })?;
    out.flush().context("writing to standard output")?;
    let found_nothing =
        args.search.is_some() && answers.iter().all(|a| a.registry.is_empty() && a.knowledge.is_empty());
    if found_nothing {
        if !ctx.quiet {
            eprintln!(
                "portolan: no registry entry or knowledge-base service matches {:?}",
                args.search.unwrap_or_default()
            );
        }
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn top(n: usize, args: &PortArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let ranking = if args.builtin_ranking { Ranking::builtin() } else { Ranking::discover()? };
    let transport = match args.transport {
        TopTransport::Tcp => Transport::Tcp,
        TopTransport::Udp => Transport::Udp,
    };
    let doc = TopPorts::of(&ranking, transport, n);
    let mut out = super::stdout();
    let rows = doc.ports.iter().map(lookup::top_csv_row);
    records::write(&mut out, args.format.into(), &doc, &doc.ports, &lookup::TOP_CSV_HEADER, rows, |o| {
        lookup::write_top(o, &doc, ctx.color)
    })?;
    if args.format == RecordFormat::Table && !ctx.quiet {
        let own = doc.source == "portolan";
        let source =
            if own { "Portolan's own (nmap not installed or --builtin-ranking)" } else { &doc.source };
        eprintln!("ranking: {source}");
    }
    out.flush().context("writing to standard output")?;
    Ok(ExitCode::SUCCESS)
}
