//! Runtime pods: `restartPolicy: Never` (the operator, not the kubelet, decides how to
//! recover), the job document and storage credentials mounted, probes on the control port.

use std::collections::BTreeMap;

use k8s_openapi::DeepMerge;
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, HTTPGetAction, Pod, PodSpec, Probe,
    SeccompProfile, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use sluice_crds::checkpointing::CREDENTIALS_MOUNT_DIR;
use sluice_crds::contract::control::{CONTROL_PORT, HEALTHZ, READYZ};
use sluice_crds::{ANNOTATION_RESTORED_FROM, ANNOTATION_SPEC_HASH, StreamJob};

use super::config_map::{CONFIG_DIR, JOB_FILE};
use super::labels;
use crate::reconcile::plan::Restore;

/// Name of the runtime container (a `podTemplate` container of this name is merged into it).
pub const CONTAINER: &str = "runtime";

/// StreamJob annotation turning on the runtime's chaos mode: the probability (0 to 1) of
/// crashing at each checkpoint-protocol fault point, to watch recovery and then run the verifier.
pub const ANNOTATION_CHAOS_PROBABILITY: &str = "sluice.dev/chaos-probability";

/// The chaos probability the job's annotation asks for, when it is a number in [0, 1].
fn chaos_probability(job: &StreamJob) -> Option<String> {
    let raw = job.annotations().get(ANNOTATION_CHAOS_PROBABILITY)?;
    let p: f64 = raw.trim().parse().ok()?;
    (0.0..=1.0).contains(&p).then(|| raw.trim().to_string())
}

/// Least privilege for the runtime container: it needs no root, no capabilities and no
/// writable root filesystem (sinks and local checkpoints go to mounted volumes).
fn security_context() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Capabilities::default() }),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..SeccompProfile::default() }),
        ..SecurityContext::default()
    }
}

/// The `sluice-runtime` command line of an attempt.
pub fn args(job: &str, attempt: u32, restore: &Restore) -> Vec<String> {
    let mut a = vec!["sluice-runtime".to_string(), "run".to_string(), format!("{CONFIG_DIR}/{JOB_FILE}")];
    match restore {
        Restore::From(uri) => a.extend(["--restore".to_string(), uri.clone()]),
        Restore::Fresh => a.push("--no-restore".to_string()),
        Restore::Latest => {}
    }
    a.extend([
        "--log-format".to_string(),
        "json".to_string(),
        "--control-addr".to_string(),
        format!("0.0.0.0:{CONTROL_PORT}"),
        "--run-id".to_string(),
        labels::run_id(job, attempt),
    ]);
    a
}

fn probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String("control".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

/// Pod `index` of `attempt`, built from the spec whose hash is `spec_hash`.
pub fn pod(job: &StreamJob, attempt: u32, index: u32, restore: &Restore, spec_hash: &str) -> Pod {
    let name = job.name_any();
    let spec = &job.spec;
    let mut mounts = vec![VolumeMount {
        name: "job".into(),
        mount_path: CONFIG_DIR.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    }];
    let mut volumes = vec![Volume {
        name: "job".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: labels::config_map_name(&name),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }];
    if let Some(secret) = spec.checkpointing.as_ref().and_then(|c| c.storage.credentials_secret.clone()) {
        mounts.push(VolumeMount {
            name: "storage-credentials".into(),
            mount_path: CREDENTIALS_MOUNT_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
        volumes.push(Volume {
            name: "storage-credentials".into(),
            secret: Some(SecretVolumeSource { secret_name: Some(secret), ..SecretVolumeSource::default() }),
            ..Volume::default()
        });
    }
    let mut annotations = BTreeMap::from([(ANNOTATION_SPEC_HASH.to_string(), spec_hash.to_string())]);
    if let Restore::From(uri) = restore {
        annotations.insert(ANNOTATION_RESTORED_FROM.to_string(), uri.clone());
    }
    let generated = Pod {
        metadata: ObjectMeta {
            name: Some(labels::pod_name(&name, attempt, index)),
            namespace: job.namespace(),
            labels: Some(labels::pod(&name, attempt)),
            annotations: Some(annotations),
            owner_references: job.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            service_account_name: spec.service_account.clone(),
            hostname: Some(labels::pod_name(&name, attempt, index)),
            subdomain: Some(labels::service_name(&name)),
            containers: vec![Container {
                name: CONTAINER.into(),
                image: Some(spec.image.clone()),
                image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_string()),
                args: Some(args(&name, attempt, restore)),
                ports: Some(vec![ContainerPort {
                    name: Some("control".into()),
                    container_port: i32::from(CONTROL_PORT),
                    ..ContainerPort::default()
                }]),
                liveness_probe: Some(probe(HEALTHZ, 10, 3)),
                readiness_probe: Some(probe(READYZ, 5, 1)),
                resources: spec.resources.clone(),
                volume_mounts: Some(mounts),
                env: chaos_probability(job).map(|p| {
                    vec![EnvVar { name: "SLUICE_CHAOS_PROBABILITY".into(), value: Some(p), ..EnvVar::default() }]
                }),
                security_context: Some(security_context()),
                ..Container::default()
            }],
            volumes: Some(volumes),
            ..PodSpec::default()
        }),
        status: None,
    };
    overlay(spec.pod_template.clone(), generated)
}

/// The user's pod template with the generated pod merged over it: what the operator sets
/// wins, everything else the template says is kept (containers merge by name).
fn overlay(template: Option<k8s_openapi::api::core::v1::PodTemplateSpec>, generated: Pod) -> Pod {
    let Some(t) = template else { return generated };
    let mut pod = Pod { metadata: t.metadata.unwrap_or_default(), spec: t.spec, status: None };
    pod.metadata.name = None;
    pod.metadata.owner_references = None;
    pod.merge_from(generated);
    pod
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_job::job;

    #[test]
    fn recovery_pod_restores_from_the_checkpoint_and_never_restarts_itself() {
        let uri = "s3://bucket/demo/manifests/chk-00000000000000000007.json".to_string();
        let p = pod(&job(), 3, 0, &Restore::From(uri.clone()), "h1");
        assert_eq!(p.metadata.name.as_deref(), Some("demo-3-0"));
        let spec = p.spec.expect("spec");
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        let c = &spec.containers[0];
        assert_eq!(
            c.args.clone().expect("args"),
            [
                "sluice-runtime",
                "run",
                "/etc/sluice/job.yaml",
                "--restore",
                uri.as_str(),
                "--log-format",
                "json",
                "--control-addr",
                "0.0.0.0:9090",
                "--run-id",
                "demo-3"
            ]
        );
        let mounts = c.volume_mounts.clone().expect("mounts");
        assert!(mounts.iter().any(|m| m.mount_path == CREDENTIALS_MOUNT_DIR));
        let volumes = spec.volumes.expect("volumes");
        assert!(volumes.iter().any(|v| v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == Some("minio")));
        assert_eq!(p.metadata.labels.expect("labels")["sluice.dev/attempt"], "3");
    }

    #[test]
    fn runtime_container_runs_with_least_privilege() {
        let p = pod(&job(), 1, 0, &Restore::Latest, "h");
        let sc = p.spec.expect("spec").containers[0].security_context.clone().expect("security context");
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.capabilities.and_then(|c| c.drop), Some(vec!["ALL".to_string()]));
        assert_eq!(sc.seccomp_profile.map(|s| s.type_), Some("RuntimeDefault".to_string()));
    }

    #[test]
    fn chaos_annotation_sets_the_runtime_chaos_probability() {
        let env_of = |value: Option<&str>| {
            let mut j = job();
            if let Some(v) = value {
                j.metadata.annotations =
                    Some(BTreeMap::from([(ANNOTATION_CHAOS_PROBABILITY.to_string(), v.to_string())]));
            }
            pod(&j, 1, 0, &Restore::Latest, "h").spec.expect("spec").containers[0].env.clone()
        };
        let env = env_of(Some("0.05")).expect("env");
        assert_eq!((env[0].name.as_str(), env[0].value.as_deref()), ("SLUICE_CHAOS_PROBABILITY", Some("0.05")));
        assert!(env_of(None).is_none());
        assert!(env_of(Some("2")).is_none(), "out of [0, 1]: ignored");
        assert!(env_of(Some("often")).is_none(), "not a number: ignored");
    }

    #[test]
    fn stateless_start_passes_no_restore() {
        let a = args("demo", 1, &Restore::Fresh);
        assert!(a.contains(&"--no-restore".to_string()));
        assert!(!a.contains(&"--restore".to_string()));
    }

    #[test]
    fn pod_template_adds_fields_but_cannot_override_the_command() {
        let mut j = job();
        j.spec.pod_template = Some(
            serde_json::from_value(serde_json::json!({
                "metadata": {"labels": {"team": "data"}},
                "spec": {
                    "nodeSelector": {"disk": "ssd"},
                    "restartPolicy": "Always",
                    "containers": [{"name": "runtime", "env": [{"name": "RUST_LOG", "value": "debug"}], "args": ["evil"]}]
                }
            }))
            .expect("template"),
        );
        let p = pod(&j, 1, 0, &Restore::Fresh, "h");
        assert_eq!(p.metadata.labels.as_ref().expect("labels")["team"], "data");
        let spec = p.spec.expect("spec");
        assert_eq!(spec.node_selector.expect("kept")["disk"], "ssd");
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.containers.len(), 1);
        assert_eq!(spec.containers[0].env.as_ref().expect("env kept")[0].name, "RUST_LOG");
        assert_eq!(spec.containers[0].args.as_ref().expect("args")[0], "sluice-runtime");
    }
}
