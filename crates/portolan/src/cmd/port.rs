use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use portolan_kb::Lookup;
use portolan_output::{lookup, records};

use super::Context;
use portolan_model::Transport;
use portolan_registry::{Ranking, RankingSource};

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
    match args.format {
        RecordFormat::Table => {
            for (i, a) in answers.iter().enumerate() {
                if i > 0 {
                    writeln!(out)?;
                }
                lookup::write_human(&mut out, a, ctx.color)?;
            }
        }
        RecordFormat::Json => records::json(&mut out, &answers)?,
        RecordFormat::Ndjson => records::ndjson(&mut out, &answers)?,
        RecordFormat::Csv => {
            records::csv(&mut out, &lookup::CSV_HEADER, answers.iter().flat_map(lookup::csv_rows))?
        }
    }
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

#[derive(serde::Serialize)]
struct Ranked {
    rank: usize,
    port: u16,
    transport: Transport,
    service: Option<&'static str>,
}

#[derive(serde::Serialize)]
struct TopPorts {
    source: String,
    transport: Transport,
    ports: Vec<Ranked>,
}

fn top(n: usize, args: &PortArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let ranking = if args.builtin_ranking { Ranking::builtin() } else { Ranking::discover()? };
    let transport = match args.transport {
        TopTransport::Tcp => Transport::Tcp,
        TopTransport::Udp => Transport::Udp,
    };
    let source = match ranking.source() {
        RankingSource::Builtin => "portolan".to_string(),
        RankingSource::Nmap(p) => format!("nmap:{}", p.display()),
    };
    let ports: Vec<Ranked> = ranking
        .top(transport, n)
        .iter()
        .enumerate()
        .map(|(i, &port)| Ranked {
            rank: i + 1,
            port,
            transport,
            service: portolan_registry::service_name(port, transport),
        })
        .collect();
    let doc = TopPorts { source, transport, ports };
    let mut out = super::stdout();
    match args.format {
        RecordFormat::Table => {
            let mut t = portolan_output::Table::new(["RANK", "PORT", "SERVICE"])
                .align(0, portolan_output::Align::Right);
            for r in &doc.ports {
                t.row(vec![
                    r.rank.to_string().into(),
                    format!("{}/{}", r.port, r.transport).into(),
                    r.service.unwrap_or("-").into(),
                ]);
            }
            t.render(&mut out, ctx.color)?;
            if !ctx.quiet {
                eprintln!(
                    "ranking: {}",
                    if doc.source == "portolan" {
                        "Portolan's own (nmap not installed or --builtin-ranking)".to_string()
                    } else {
                        doc.source.clone()
                    }
                );
            }
        }
        RecordFormat::Json => records::json(&mut out, &doc)?,
        RecordFormat::Ndjson => records::ndjson(&mut out, &doc.ports)?,
        RecordFormat::Csv => records::csv(
            &mut out,
            &["rank", "port", "transport", "service"],
            doc.ports.iter().map(|r| {
                vec![
                    r.rank.to_string(),
                    r.port.to_string(),
                    r.transport.to_string(),
                    r.service.unwrap_or("").to_string(),
                ]
            }),
        )?,
    }
    out.flush().context("writing to standard output")?;
    Ok(ExitCode::SUCCESS)
}
