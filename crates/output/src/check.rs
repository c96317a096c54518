//! `portolan check` for people and spreadsheets.

use std::io::{self, Write};

use portolan_model::PortState;
use portolan_scan::probe::CheckAnswer;

use crate::table::{Cell, Style, Table};

/// The CSV columns of `check -o csv`.
pub const CSV_HEADER: [&str; 8] =
    ["target", "address", "port", "state", "reason", "latency_ms", "service", "banner"];

/// One CSV row of `check -o csv`.
pub fn csv_row(a: &CheckAnswer) -> Vec<String> {
    vec![
        a.target.clone(),
        a.address.to_string(),
        a.port.to_string(),
        a.state.to_string(),
        a.reason.to_string(),
        a.latency_ms.map(|l| format!("{l:.3}")).unwrap_or_default(),
        a.service.unwrap_or("").to_string(),
        a.banner.clone().unwrap_or_default(),
    ]
}

/// The answers as a table: state, reason, latency, service, first bytes.
pub fn write_table(out: &mut dyn Write, answers: &[CheckAnswer], color: bool) -> io::Result<()> {
    let mut t = Table::new(["TARGET", "STATE", "REASON", "LATENCY", "SERVICE", "FIRST BYTES"]);
    for a in answers {
        let style = match a.state {
            PortState::Open => Style::Green,
            PortState::Closed => Style::Dim,
            _ => Style::Yellow,
        };
        t.row(vec![
            Cell::new(&a.target),
            Cell::styled(a.state.as_str(), style),
            Cell::new(a.reason.as_str()),
            Cell::new(a.latency_ms.map_or("-".to_string(), |l| format!("{l:.2} ms"))),
            Cell::new(a.service.unwrap_or("-")),
            Cell::new(a.banner.as_deref().unwrap_or("")),
        ]);
    }
    t.render(out, color)
}
