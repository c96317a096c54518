//! A Slurm job array: `sbatch` runs task `SLURM_ARRAY_TASK_ID` = 0..N-1, and each runs shard
//! `SLURM_ARRAY_TASK_ID + 1` of N. A failed task is re-run alone with `sbatch --array=I`
//! on the same script: its shard replaces whatever it saved before.

use std::fmt::Write as _;

use crate::{DbSource, Plan, shell_quote};

/// Job options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--time` (Slurm's form: `30`, `1:00:00`).
    pub time: Option<String>,
    /// At most this many tasks at once (`--array=0-3%2`).
    pub parallel: Option<u32>,
    /// Where each task's log goes (`--output`); default `portolan-RUN-%A_%a.out`.
    pub output: Option<String>,
}

/// Checks the options: each becomes an `#SBATCH` line, which sbatch parses itself (a newline
/// would end it, a backslash escapes even in quotes).
pub fn check(opts: &Options) -> Result<(), crate::PlanError> {
    for v in [&opts.partition, &opts.time, &opts.output].into_iter().flatten() {
        if v.chars().any(|c| c.is_control() || c == '\\') {
            return Err(crate::PlanError::BadOption(v.clone()));
        }
    }
    Ok(())
}

/// The batch script for `sbatch`.
pub fn script(plan: &Plan, opts: &Options) -> String {
    let mut s = String::new();
    let last = plan.shards - 1;
    let _ = writeln!(s, "#!/bin/bash");
    let _ = writeln!(s, "# portolan fleet: run {} as {} shards (seed {})", plan.run, plan.shards, plan.seed);
    let _ =
        writeln!(s, "# submit: sbatch THIS_FILE; re-run shard I alone: sbatch --array=$((I-1)) THIS_FILE");
    let _ = writeln!(s, "#SBATCH --job-name={}", shell_quote(&format!("portolan-{}", plan.run)));
    match opts.parallel {
        Some(p) => {
            let _ = writeln!(s, "#SBATCH --array=0-{last}%{p}");
        }
        None => {
            let _ = writeln!(s, "#SBATCH --array=0-{last}");
        }
    }
    let _ = writeln!(s, "#SBATCH --ntasks=1");
    let output = opts.output.clone().unwrap_or_else(|| format!("portolan-{}-%A_%a.out", plan.run));
    let _ = writeln!(s, "#SBATCH --output={}", shell_quote(&output));
    if let Some(p) = &opts.partition {
        let _ = writeln!(s, "#SBATCH --partition={}", shell_quote(p));
    }
    if let Some(t) = &opts.time {
        let _ = writeln!(s, "#SBATCH --time={}", shell_quote(t));
    }
    let _ = writeln!(s, "set -euo pipefail");
    match &plan.db {
        DbSource::Env(v) if v == "PORTOLAN_DB" => {
            let _ = writeln!(
                s,
                ": \"${{PORTOLAN_DB:?export PORTOLAN_DB=postgres://... in the shell that runs sbatch (the URL is not written here)}}\""
            );
        }
        DbSource::Env(v) => {
            let _ = writeln!(
                s,
                "export PORTOLAN_DB=\"${{{v}:?export {v}=postgres://... in the shell that runs sbatch (the URL is not written here)}}\""
            );
        }
        DbSource::File(f) => {
            let _ = writeln!(s, "PORTOLAN_DB=\"$(cat {})\"", shell_quote(f));
            let _ = writeln!(s, "export PORTOLAN_DB");
        }
    }
    let _ = writeln!(s, "shard=$((SLURM_ARRAY_TASK_ID + 1))");
    let mut words: Vec<String> = plan.launcher.iter().map(|w| shell_quote(w)).collect();
    words.push(shell_quote(&plan.bin));
    // the shard is the value after --shard, put there by shard_args: replaced by position
    let args = plan.shard_args("SHARD");
    let at = args.iter().position(|a| a == "--shard").map(|i| i + 1);
    words.extend(
        args.iter()
            .enumerate()
            .map(|(i, a)| if Some(i) == at { format!("\"$shard\"/{}", plan.shards) } else { shell_quote(a) }),
    );
    let _ = writeln!(s, "exec {}", words.join(" "));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_maps_task_i_to_shard_i_plus_1_and_keeps_the_url_out() {
        let plan = Plan {
            run: "nightly".into(),
            shards: 4,
            seed: 42,
            scan_args: vec!["198.18.0.0/20".into(), "--top-ports".into(), "100".into(), "-sT".into()],
            bin: "/usr/bin/portolan".into(),
            launcher: vec!["ip".into(), "netns".into(), "exec".into(), "lab".into()],
            db: DbSource::Env("TEAM_DB".into()),
        };
        let s = script(&plan, &Options { parallel: Some(2), ..Options::default() });
        assert!(s.contains("#SBATCH --array=0-3%2\n"), "{s}");
        assert!(s.contains("shard=$((SLURM_ARRAY_TASK_ID + 1))"), "{s}");
        assert!(s.contains("exec ip netns exec lab /usr/bin/portolan scan 198.18.0.0/20 --top-ports 100 -sT --shard \"$shard\"/4 --seed 42 --save --run nightly -q\n"), "{s}");
        assert!(s.contains("export PORTOLAN_DB=\"${TEAM_DB:?"), "{s}");
        assert!(!s.contains("postgres://u"), "{s}");
    }
}
