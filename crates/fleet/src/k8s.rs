//! A Kubernetes Indexed Job: `completions: N`, `completionMode: Indexed`; the pod of index `i`
//! (`JOB_COMPLETION_INDEX`, from 0) scans shard `i + 1` of N, as a Slurm task does. Built from
//! the `k8s-openapi` types, so the manifest is well-formed by construction. A failed index is
//! retried alone (`backoffLimitPerIndex`) and its shard replaces what it saved before.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, EnvVarSource, PodSpec, PodTemplateSpec, ResourceRequirements,
    SecretKeySelector, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::Plan;

/// Job options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The container image with portolan in it (and /bin/sh).
    pub image: String,
    /// The Secret holding the database URL.
    pub secret: String,
    /// The Secret's key that holds it.
    pub secret_key: String,
    /// Pods at once (default: all).
    pub parallelism: Option<i32>,
    /// Retries of a failed index.
    pub backoff_per_index: i32,
    /// Namespace (default: the one `kubectl` uses).
    pub namespace: Option<String>,
    /// CPU request (`250m`).
    pub cpu: String,
    /// Memory request and limit (`256Mi`).
    pub memory: String,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            image: "portolan:latest".into(),
            secret: "portolan-db".into(),
            secret_key: "url".into(),
            parallelism: None,
            backoff_per_index: 2,
            namespace: None,
            cpu: "250m".into(),
            memory: "256Mi".into(),
        }
    }
}

/// A name Kubernetes accepts (RFC 1123 label: lowercase letters, digits, `-`, at most 63).
fn dns_label(s: &str) -> String {
    let mut out: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    out.truncate(63);
    out.trim_matches('-').to_string()
}

/// Whether the scan needs raw sockets (an explicit SYN scan): only then does the pod get
/// NET_RAW, and it runs as root for it; otherwise it runs as a non-root user with no
/// capabilities at all.
pub fn needs_raw(scan_args: &[String]) -> bool {
    scan_args.windows(2).any(|w| w[0] == "--scan-type" && w[1] == "syn")
        || scan_args.iter().any(|a| a == "-sS" || a == "--scan-type=syn")
}

/// The shell line each pod runs: the binary and its arguments come as `$0 "$@"` (passed as
/// they are, no quoting), the shard from the index.
pub fn shard_line(shards: u32) -> String {
    format!("exec \"$0\" \"$@\" --shard \"$((JOB_COMPLETION_INDEX + 1))/{shards}\"")
}

/// The Job.
pub fn job(plan: &Plan, opts: &Options) -> Job {
    let name = dns_label(&format!("portolan-{}", plan.run));
    let labels: BTreeMap<String, String> = [
        ("app.kubernetes.io/name".to_string(), "portolan".to_string()),
        ("portolan.dev/run".to_string(), dns_label(&plan.run)),
    ]
    .into_iter()
    .collect();
    // the shard is appended by the shell; everything else as Slurm runs it
    let mut args: Vec<String> = plan.launcher.clone();
    args.push(plan.bin.clone());
    let shard_args = plan.shard_args("X");
    let mut i = 0;
    while i < shard_args.len() {
        if shard_args[i] == "--shard" {
            i += 2;
            continue;
        }
        args.push(shard_args[i].clone());
        i += 1;
    }
    let raw = needs_raw(&plan.scan_args);
    let security = if raw {
        SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(false),
            run_as_user: Some(0),
            capabilities: Some(Capabilities {
                add: Some(vec!["NET_RAW".into()]),
                drop: Some(vec!["ALL".into()]),
            }),
            ..SecurityContext::default()
        }
    } else {
        SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(65532),
            run_as_group: Some(65532),
            capabilities: Some(Capabilities { add: None, drop: Some(vec!["ALL".into()]) }),
            ..SecurityContext::default()
        }
    };
    let quantity = |s: &str| Quantity(s.to_string());
    let container = Container {
        name: "scan".into(),
        image: Some(opts.image.clone()),
        command: Some(vec!["/bin/sh".into(), "-c".into(), shard_line(plan.shards)]),
        args: Some(args),
        env: Some(vec![EnvVar {
            name: "PORTOLAN_DB".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: opts.secret.clone(),
                    key: opts.secret_key.clone(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        }]),
        resources: Some(ResourceRequirements {
            requests: Some(
                [("cpu".to_string(), quantity(&opts.cpu)), ("memory".to_string(), quantity(&opts.memory))]
                    .into_iter()
                    .collect(),
            ),
            limits: Some([("memory".to_string(), quantity(&opts.memory))].into_iter().collect()),
            ..ResourceRequirements::default()
        }),
        security_context: Some(security),
        ..Container::default()
    };
    let shards = i32::try_from(plan.shards).unwrap_or(i32::MAX);
    Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: opts.namespace.clone(),
            labels: Some(labels.clone()),
            annotations: Some(
                [
                    ("portolan.dev/seed".to_string(), plan.seed.to_string()),
                    ("portolan.dev/run-name".to_string(), plan.run.clone()),
                ]
                .into_iter()
                .collect(),
            ),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            completion_mode: Some("Indexed".into()),
            completions: Some(shards),
            parallelism: Some(opts.parallelism.unwrap_or(shards).min(shards)),
            backoff_limit_per_index: Some(opts.backoff_per_index),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..ObjectMeta::default() }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![container],
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

/// The Job as YAML, for `kubectl apply -f -`.
pub fn manifest(plan: &Plan, opts: &Options) -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&job(plan, opts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DbSource;

    fn plan(args: &[&str]) -> Plan {
        Plan {
            run: "Nightly_2026".into(),
            shards: 4,
            seed: 42,
            scan_args: args.iter().map(|s| s.to_string()).collect(),
            bin: "/usr/local/bin/portolan".into(),
            launcher: Vec::new(),
            db: DbSource::Env("PORTOLAN_DB".into()),
        }
    }

    #[test]
    fn the_manifest_round_trips_through_the_job_type() {
        let p = plan(&["198.18.0.0/20", "--top-ports", "100", "-sT"]);
        let text = manifest(&p, &Options::default()).unwrap();
        let back: Job = serde_yaml::from_str(&text).unwrap();
        assert_eq!(back, job(&p, &Options::default()));
        let spec = back.spec.unwrap();
        assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
        assert_eq!(
            (spec.completions, spec.parallelism, spec.backoff_limit_per_index),
            (Some(4), Some(4), Some(2))
        );
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let c = &pod.containers[0];
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.run_as_non_root, Some(true), "a connect scan runs as a non-root user");
        assert_eq!(sc.capabilities.as_ref().unwrap().add, None);
        let env = &c.env.as_ref().unwrap()[0];
        assert_eq!(env.name, "PORTOLAN_DB");
        assert!(env.value.is_none(), "the URL comes from the Secret, never the manifest");
        assert_eq!(back.metadata.name.as_deref(), Some("portolan-nightly-2026"));
        assert!(!text.contains("postgres://"));
    }

    #[test]
    fn a_syn_scan_gets_net_raw_and_nothing_else() {
        let j = job(&plan(&["198.18.0.0/24", "-sS"]), &Options::default());
        let c = &j.spec.unwrap().template.spec.unwrap().containers[0];
        let caps = c.security_context.as_ref().unwrap().capabilities.as_ref().unwrap();
        assert_eq!(caps.add, Some(vec!["NET_RAW".to_string()]));
        assert_eq!(caps.drop, Some(vec!["ALL".to_string()]));
    }
}
