//! `portolan fleet k8s`: the Indexed Job for 4 shards round-trips through k8s-openapi's `Job`,
//! and its pods run what the Slurm tasks run. Both are executed here with `/bin/echo` as the
//! binary — the Slurm script by bash with `SLURM_ARRAY_TASK_ID=i`, the pod's command by sh with
//! `JOB_COMPLETION_INDEX=i` — and must print the same arguments, shard i+1 of 4 for index i.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use k8s_openapi::api::batch::v1::Job;
use portolan_testkit::TempDir;

const SCAN: [&str; 6] = ["198.18.0.0/20", "--top-ports", "100", "-sT", "--exclude", "198.18.0.1"];

fn portolan(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_portolan")).args(args).output().unwrap()
}

fn sorted_words(s: &str) -> Vec<String> {
    let mut w: Vec<String> = s.split_whitespace().map(str::to_string).collect();
    // the shard flag sits in another place on each side: compare it as a pair
    if let Some(i) = w.iter().position(|x| x == "--shard") {
        let pair = format!("--shard {}", w[i + 1]);
        w.drain(i..=i + 1);
        w.push(pair);
    }
    w.sort();
    w
}

#[test]
fn the_indexed_job_runs_what_the_slurm_array_runs() {
    let dir = TempDir::new("fleet-k8s");
    let common = ["--shards", "4", "--run", "nightly", "--seed", "42", "--bin", "/bin/echo"];
    let mut k8s_args = vec!["fleet", "k8s"];
    k8s_args.extend(common);
    k8s_args.push("--");
    k8s_args.extend(SCAN);
    let o = portolan(&k8s_args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let yaml = String::from_utf8(o.stdout).unwrap();
    let job: Job = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(serde_yaml::from_str::<Job>(&serde_yaml::to_string(&job).unwrap()).unwrap(), job);
    let spec = job.spec.as_ref().unwrap();
    assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
    assert_eq!(spec.completions, Some(4));
    let c = &spec.template.spec.as_ref().unwrap().containers[0];
    let env = c.env.as_ref().unwrap();
    assert!(env.iter().any(|e| e.name == "PORTOLAN_DB"
        && e.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap().name == "portolan-db"));
    let command = c.command.clone().unwrap();
    let args = c.args.clone().unwrap();

    let mut slurm_args = vec!["fleet", "slurm"];
    slurm_args.extend(common);
    slurm_args.push("--");
    slurm_args.extend(SCAN);
    let o = portolan(&slurm_args);
    assert!(o.status.success());
    let script = dir.join("job.sbatch");
    std::fs::write(&script, &o.stdout).unwrap();

    for index in 0..4 {
        let pod = Command::new(&command[0])
            .args(&command[1..])
            .args(&args)
            .env("JOB_COMPLETION_INDEX", index.to_string())
            .output()
            .unwrap();
        assert!(pod.status.success(), "{}", String::from_utf8_lossy(&pod.stderr));
        let task = Command::new("bash")
            .arg(&script)
            .env("SLURM_ARRAY_TASK_ID", index.to_string())
            .env("PORTOLAN_DB", "postgres://unused@127.0.0.1/x")
            .output()
            .unwrap();
        assert!(task.status.success(), "{}", String::from_utf8_lossy(&task.stderr));
        let (pod, task) = (String::from_utf8_lossy(&pod.stdout), String::from_utf8_lossy(&task.stdout));
        assert!(task.contains(&format!("--shard {}/4", index + 1)), "{task}");
        assert_eq!(sorted_words(&pod), sorted_words(&task), "index {index}");
        for a in SCAN {
            assert!(pod.split_whitespace().any(|w| w == a), "{a} missing: {pod}");
        }
    }

    // the job's own arguments are refused among the scan's; a Secret, not a variable
    let o = portolan(&["fleet", "k8s", "--shards", "4", "--run", "x", "--", "198.18.0.0/24", "--save"]);
    assert_eq!(o.status.code(), Some(2));
    let o =
        portolan(&["fleet", "k8s", "--shards", "4", "--run", "x", "--db-env", "X", "--", "198.18.0.0/24"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Secret"));
}
