//! Fleet jobs: one sharded scan (`scan --shard I/N --seed S --save --run NAME`) described for
//! a scheduler that already runs the fleet — a Slurm job array, a Kubernetes Indexed Job —
//! with no coordinator of Portolan's own. Every task runs the same scan arguments; task `i`
//! (from 0, as both schedulers number them) scans shard `i + 1` of `N`, and saves it into the
//! shared database, whose URL reaches the task from its environment (never from the script or
//! the manifest).

pub mod k8s;
pub mod slurm;

/// A sharded scan to run on a scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The run the shards are saved into.
    pub run: String,
    /// How many shards (tasks).
    pub shards: u32,
    /// The seed every shard shares.
    pub seed: u64,
    /// The scan's arguments (targets, ports, scan type ...), without the shard, seed, run and
    /// database, which the job adds.
    pub scan_args: Vec<String>,
    /// The portolan binary on the nodes (or in the image).
    pub bin: String,
    /// Words run before the binary on each task (`ip netns exec lab`, `srun`, a container
    /// runner); may be empty.
    pub launcher: Vec<String>,
    /// Where the database URL comes from.
    pub db: DbSource,
}

/// Where a task finds the database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbSource {
    /// An environment variable of the task (Slurm exports the submitting shell's).
    Env(String),
    /// A file readable on the nodes.
    File(String),
}

/// A plan that cannot run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// An argument the job sets itself.
    #[error("{0} is set by the job for each shard: leave it out of the scan arguments")]
    JobArgument(String),
    /// No shards.
    #[error("a fleet needs at least one shard")]
    NoShards,
    /// A value that would break out of its `#SBATCH` line.
    #[error("{0:?}: a job option cannot hold control characters or backslashes")]
    BadOption(String),
    /// A name that is not a valid environment variable.
    #[error("{0:?} is not an environment variable name (letters, digits and _, not starting with a digit)")]
    BadVariable(String),
}

/// Arguments a shard's job sets itself.
const JOB_SETS: [&str; 6] = ["--shard", "--seed", "--save", "--run", "--db", "--resume"];

impl Plan {
    /// Checks what the job adds is not already among the scan arguments.
    pub fn check(&self) -> Result<(), PlanError> {
        if self.shards == 0 {
            return Err(PlanError::NoShards);
        }
        for a in &self.scan_args {
            let flag = a.split('=').next().unwrap_or(a);
            if JOB_SETS.contains(&flag) {
                return Err(PlanError::JobArgument(flag.to_string()));
            }
        }
        if let DbSource::Env(v) = &self.db {
            let ok = !v.is_empty()
                && !v.as_bytes()[0].is_ascii_digit()
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                return Err(PlanError::BadVariable(v.clone()));
            }
        }
        Ok(())
    }

    /// The command of shard `index` (from 1), after the binary: `scan ARGS --shard I/N --seed
    /// S --save --run NAME -q`.
    pub fn shard_args(&self, index: &str) -> Vec<String> {
        let mut v = vec!["scan".to_string()];
        v.extend(self.scan_args.iter().cloned());
        v.extend([
            "--shard".to_string(),
            format!("{index}/{}", self.shards),
            "--seed".to_string(),
            self.seed.to_string(),
            "--save".to_string(),
            "--run".to_string(),
            self.run.clone(),
            "-q".to_string(),
        ]);
        v
    }
}

/// `s` quoted for a POSIX shell: as is when it is plain, else in single quotes.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
    if plain { s.to_string() } else { format!("'{}'", s.replace('\'', r"'\''")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_a_shell() {
        assert_eq!(shell_quote("198.18.0.0/24"), "198.18.0.0/24");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's $HOME"), r"'it'\''s $HOME'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn arguments_the_job_sets_are_refused() {
        let mut p = Plan {
            run: "r".into(),
            shards: 4,
            seed: 1,
            scan_args: vec!["198.18.0.0/24".into(), "--seed=3".into()],
            bin: "portolan".into(),
            launcher: Vec::new(),
            db: DbSource::Env("PORTOLAN_DB".into()),
        };
        assert_eq!(p.check(), Err(PlanError::JobArgument("--seed".into())));
        p.scan_args.pop();
        assert_eq!(p.check(), Ok(()));
        p.db = DbSource::Env("1X".into());
        assert!(p.check().is_err());
    }
}
