//! Rendering of `portolan snapshots`: the list for people, and CSV rows.

use std::io::{self, Write};

use portolan_model::{RunInfo, SnapshotInfo};

use crate::table::{Align, Cell, Style, Table};

fn local_time(t: jiff::Timestamp) -> String {
    t.to_zoned_datetime(jiff::tz::TimeZone::system()).strftime("%Y-%m-%d %H:%M:%S").to_string()
}

fn what(s: &SnapshotInfo) -> String {
    match (&s.scanner, &s.args) {
        (Some(sc), Some(a)) if !a.is_empty() => format!("{sc}: {a}"),
        (Some(sc), _) => sc.clone(),
        _ => String::new(),
    }
}

/// The list, newest first, for people.
pub fn write_human(
    out: &mut dyn Write,
    list: &[SnapshotInfo],
    location: &str,
    color: bool,
) -> io::Result<()> {
    if list.is_empty() {
        return writeln!(
            out,
            "No snapshots in {location} yet: save one with `portolan ls --save` (or scan, import, audit)."
        );
    }
    let mut t = Table::new([
        "ID", "TAKEN", "SOURCE", "MACHINE", "HOSTS", "PORTS", "OPEN", "SOCKETS", "FINDINGS", "WHAT",
    ])
    .align(0, Align::Right)
    .align(4, Align::Right)
    .align(5, Align::Right)
    .align(6, Align::Right)
    .align(7, Align::Right)
    .align(8, Align::Right);
    for s in list {
        let findings =
            if s.findings > 0 { Cell::styled(s.findings.to_string(), Style::Yellow) } else { Cell::new("0") };
        t.row(vec![
            Cell::new(s.id.to_string()),
            Cell::new(local_time(s.taken_at)),
            Cell::new(s.source.as_str()),
            Cell::new(&s.machine),
            Cell::new(s.hosts.to_string()),
            Cell::new(s.ports.to_string()),
            Cell::new(s.open.to_string()),
            Cell::new(s.sockets.to_string()),
            findings,
            Cell::new(what(s)),
        ]);
    }
    t.render(out, color)
}

/// CSV header of the list.
pub const CSV_HEADER: [&str; 12] = [
    "id",
    "taken_at",
    "source",
    "machine",
    "tool_version",
    "hosts",
    "ports",
    "open",
    "sockets",
    "findings",
    "scanner",
    "args",
];

/// CSV rows of the list.
pub fn csv_rows(list: &[SnapshotInfo]) -> impl Iterator<Item = Vec<String>> + '_ {
    list.iter().map(|s| {
        vec![
            s.id.to_string(),
            s.taken_at.to_string(),
            s.source.to_string(),
            s.machine.clone(),
            s.tool_version.clone(),
            s.hosts.to_string(),
            s.ports.to_string(),
            s.open.to_string(),
            s.sockets.to_string(),
            s.findings.to_string(),
            s.scanner.clone().unwrap_or_default(),
            s.args.clone().unwrap_or_default(),
        ]
    })
}

fn shard_list(v: &[u32]) -> String {
    if v.is_empty() {
        return "-".to_string();
    }
    let mut nums = v.to_vec();
    nums.sort_unstable();
    nums.dedup();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < nums.len() {
        let mut j = i;
        while j + 1 < nums.len() && nums[j + 1] == nums[j] + 1 {
            j += 1;
        }
        out.push(if i == j { nums[i].to_string() } else { format!("{}-{}", nums[i], nums[j]) });
        i = j + 1;
    }
    out.join(",")
}

/// The runs, newest first, with their shards' progress, for people.
pub fn write_runs(out: &mut dyn Write, runs: &[RunInfo]) -> io::Result<()> {
    if runs.is_empty() {
        return writeln!(
            out,
            "No runs yet: save shards with `portolan scan --shard I/N --seed S --save --run NAME`."
        );
    }
    let mut t =
        Table::new(["RUN", "CREATED", "SHARDS", "DONE", "MISSING", "FAILED", "HOSTS", "OPEN", "ARGUMENTS"])
            .align(2, Align::Right)
            .align(6, Align::Right)
            .align(7, Align::Right);
    for r in runs {
        let missing = r.missing();
        t.row(vec![
            Cell::new(format!("run:{}", r.name)),
            Cell::new(local_time(r.created_at)),
            Cell::new(r.shards.to_string()),
            Cell::new(format!("{}/{}", r.done.len(), r.shards)),
            if missing.is_empty() {
                Cell::new("-")
            } else {
                Cell::styled(shard_list(&missing), Style::Yellow)
            },
            if r.failed.is_empty() {
                Cell::new("-")
            } else {
                Cell::styled(shard_list(&r.failed.iter().map(|f| f.0).collect::<Vec<_>>()), Style::Red)
            },
            Cell::new(r.hosts.to_string()),
            Cell::new(r.open.to_string()),
            Cell::new(&r.spec),
        ]);
    }
    t.render(out, false)
}

/// CSV header of the runs.
pub const RUN_CSV_HEADER: [&str; 9] =
    ["run", "created_at", "shards", "seed", "done", "missing", "failed", "hosts", "open"];

/// CSV rows of the runs.
pub fn run_csv_rows(runs: &[RunInfo]) -> impl Iterator<Item = Vec<String>> + '_ {
    runs.iter().map(|r| {
        vec![
            r.name.clone(),
            r.created_at.to_string(),
            r.shards.to_string(),
            r.seed.to_string(),
            shard_list(&r.done),
            shard_list(&r.missing()),
            shard_list(&r.failed.iter().map(|f| f.0).collect::<Vec<_>>()),
            r.hosts.to_string(),
            r.open.to_string(),
        ]
    })
}
