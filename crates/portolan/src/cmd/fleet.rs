use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use portolan_fleet::{DbSource, Plan};

use crate::cli::{FleetArgs, FleetCommon, FleetScheduler};

pub fn run(args: FleetArgs) -> anyhow::Result<ExitCode> {
    let text = match args.scheduler {
        FleetScheduler::Slurm(a) => {
            let plan = plan(&a.common)?;
            let opts = portolan_fleet::slurm::Options {
                partition: a.partition,
                time: a.time,
                parallel: a.parallel,
                output: a.log,
            };
            portolan_fleet::slurm::check(&opts)?;
            portolan_fleet::slurm::script(&plan, &opts)
        }
        FleetScheduler::K8s(a) => {
            if a.common.db_env.is_some() || a.common.db_file.is_some() {
                anyhow::bail!(
                    "a Kubernetes Job takes the database URL from a Secret (--secret, --secret-key), not --db-env or --db-file"
                );
            }
            let plan = plan(&a.common)?;
            let opts = portolan_fleet::k8s::Options {
                image: a.image,
                secret: a.secret,
                secret_key: a.secret_key,
                parallelism: a.parallelism,
                backoff_per_index: a.retries,
                namespace: a.namespace,
                cpu: a.cpu,
                memory: a.memory,
            };
            portolan_fleet::k8s::manifest(&plan, &opts).context("writing the manifest")?
        }
    };
    let mut out = super::stdout();
    out.write_all(text.as_bytes()).context("writing to standard output")?;
    out.flush().context("writing to standard output")?;
    Ok(ExitCode::SUCCESS)
}

/// The plan, checked: the job's own arguments are not among the scan's, and the scan's
/// arguments parse as they will on every node (a typo fails here, not on the cluster).
fn plan(c: &FleetCommon) -> anyhow::Result<Plan> {
    let seed = c.seed.unwrap_or_else(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(jiff::Timestamp::now().as_nanosecond().unsigned_abs());
        h.finish()
    });
    let plan = Plan {
        run: c.run.clone(),
        shards: c.shards,
        seed,
        scan_args: c.scan_args.clone(),
        bin: c.bin.clone(),
        launcher: c
            .launcher
            .as_deref()
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        db: match (&c.db_env, &c.db_file) {
            (_, Some(f)) => DbSource::File(f.clone()),
            (Some(v), None) => DbSource::Env(v.clone()),
            (None, None) => DbSource::Env("PORTOLAN_DB".into()),
        },
    };
    plan.check()?;
    let mut line = vec!["portolan".to_string()];
    line.extend(plan.shard_args("1"));
    if let Err(e) = <crate::cli::Cli as clap::Parser>::try_parse_from(crate::cli::rewrite_nmap_output_flags(
        line.iter().map(std::ffi::OsString::from),
    )) {
        let text = e.render().to_string();
        let first = text.lines().next().unwrap_or_default().trim_start_matches("error: ").to_string();
        anyhow::bail!("the scan arguments do not parse: {first}");
    }
    Ok(plan)
}
