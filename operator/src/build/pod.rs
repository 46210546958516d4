//! Runtime pods: `restartPolicy: Never` (the operator, not the kubelet, decides how to
//! recover), the job document and storage credentials mounted, probes on the control port.

use std::collections::BTreeMap;

use k8s_openapi::DeepMerge;
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HTTPGetAction, Pod,
    PodSpec, Probe, SeccompProfile, SecretVolumeSource, SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::ObjectMeta;
use sluice_crds::checkpointing::CREDENTIALS_MOUNT_DIR;
use sluice_crds::contract::control::{CONTROL_PORT, HEALTHZ, READYZ};
use sluice_crds::{
    ANNOTATION_JOB_UID, ANNOTATION_RESTORED_FROM, ANNOTATION_RUN_ID, ANNOTATION_SPEC_HASH, ANNOTATION_WORKERS,
    StreamJob,
};

use super::config_map::{CONFIG_DIR, JOB_FILE};
use super::labels;
use crate::reconcile::plan::Restore;

/// Name of the runtime container (a `podTemplate` container of this name is merged into it).
pub const CONTAINER: &str = sluice_crds::CONTAINER_RUNTIME;

/// StreamJob annotation turning on the runtime's chaos mode: the probability (0 to 1) of
/// crashing at each checkpoint-protocol fault point, to watch recovery and then run the verifier.
pub const ANNOTATION_CHAOS_PROBABILITY: &str = "sluice.dev/chaos-probability";

/// The chaos probability the job's annotation asks for, when it is a number in [0, 1].
fn chaos_probability(job: &StreamJob) -> Option<String> {
    let raw = job.annotations().get(ANNOTATION_CHAOS_PROBABILITY)?;
    let p: f64 = raw.trim().parse().ok()?;
    (0.0..=1.0).contains(&p).then(|| raw.trim().to_string())
}

/// Seconds a runtime pod gets between SIGTERM and SIGKILL, unless `podTemplate` sets its own.
/// Deliberately short: the operator starts the next attempt only once every pod of the old
/// one is gone, so this bounds how long a hung runtime delays recovery, upgrades and suspends.
/// A runtime that handles SIGTERM exits at once (a stop never commits anything a checkpoint
/// did not complete, so cutting it short loses no output: the next attempt restores and
/// commits what the checkpoint pre-committed); 15 s leaves room for in-flight requests.
pub const TERMINATION_GRACE_SECONDS: i64 = 15;

/// Seconds a runtime pod stays bound to a node that stopped reporting (`not-ready`,
/// `unreachable` taints) before it is evicted; Kubernetes' default is 300. The operator then
/// force-deletes it once its deletion is overdue and starts the next attempt.
pub const NODE_LOSS_TOLERATION_SECONDS: i64 = 30;

/// The template's tolerations plus the short node-loss ones (unless the template sets its own
/// for those taints): a list the template and the generated pod would otherwise each replace.
fn tolerations(template: Option<&PodSpec>) -> Vec<Toleration> {
    let mut out: Vec<Toleration> = template.and_then(|t| t.tolerations.clone()).unwrap_or_default();
    for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
        if !out.iter().any(|t| t.key.as_deref() == Some(key)) {
            out.push(Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                toleration_seconds: Some(NODE_LOSS_TOLERATION_SECONDS),
                ..Toleration::default()
            });
        }
    }
    out
}

/// Where the writable scratch `emptyDir` is mounted (the root filesystem is read-only).
pub const SCRATCH_DIR: &str = "/tmp";

/// Least privilege for the runtime container: it needs no root, no capabilities and no
/// writable root filesystem (scratch is an `emptyDir` at `/tmp`; file sinks and local
/// checkpoints go to volumes added through `podTemplate`, see manifests/examples).
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

/// The spec's decisions about restores the runtime would otherwise refuse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestoreFlags {
    /// `allowFallback`: only matters when restoring the latest checkpoint.
    pub allow_fallback: bool,
    /// `allowNonRestoredState`: matters for any restore.
    pub allow_non_restored_state: bool,
}

impl RestoreFlags {
    /// The flags `spec` sets.
    pub fn of(spec: &sluice_crds::StreamJobSpec) -> RestoreFlags {
        RestoreFlags {
            allow_fallback: spec.allow_fallback.unwrap_or(false),
            allow_non_restored_state: spec.allow_non_restored_state.unwrap_or(false),
        }
    }
}

/// The `sluice-runtime` command line of the attempt with run id `run_id`.
pub fn args(run_id: &str, restore: &Restore, flags: RestoreFlags) -> Vec<String> {
    let mut a = vec!["sluice-runtime".to_string(), "run".to_string(), format!("{CONFIG_DIR}/{JOB_FILE}")];
    a.extend(restore_args(restore, flags));
    a.extend([
        "--log-format".to_string(),
        "json".to_string(),
        "--control-addr".to_string(),
        format!("0.0.0.0:{CONTROL_PORT}"),
        "--run-id".to_string(),
        run_id.to_string(),
    ]);
    a
}

/// The restore flags of an attempt starting from `restore` (the same for `run` and `worker`).
pub fn restore_args(restore: &Restore, flags: RestoreFlags) -> Vec<String> {
    let mut a = Vec::new();
    match restore {
        Restore::From(uri) => a.extend(["--restore".to_string(), uri.clone()]),
        Restore::Fresh => a.push("--no-restore".to_string()),
        Restore::Latest if flags.allow_fallback => a.push("--allow-fallback".to_string()),
        Restore::Latest => {}
    }
    if flags.allow_non_restored_state && *restore != Restore::Fresh {
        a.push("--allow-non-restored-state".to_string());
    }
    a
}

/// An HTTP probe of the runtime's control endpoint.
pub(super) fn probe(path: &str, period: i32, failures: i32) -> Probe {
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

/// The volumes a runtime pod mounts, and where: the job document (read-only), writable
/// scratch at `/tmp`, and the storage credentials Secret when the job names one.
fn volumes(job: &StreamJob) -> (Vec<VolumeMount>, Vec<Volume>) {
    let name = job.name_any();
    let mut mounts = vec![
        VolumeMount {
            name: "job".into(),
            mount_path: CONFIG_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
        VolumeMount { name: "scratch".into(), mount_path: SCRATCH_DIR.into(), ..VolumeMount::default() },
    ];
    let mut volumes = vec![
        Volume {
            name: "job".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: labels::config_map_name(&name),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume { name: "scratch".into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Volume::default() },
    ];
    if let Some(secret) = job.spec.checkpointing.as_ref().and_then(|c| c.storage.credentials_secret.clone()) {
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
    (mounts, volumes)
}

/// The runtime container of a pod: `sluice-runtime run` with the attempt's flags, the control
/// port and its probes, a locked-down security context.
fn container(job: &StreamJob, run_id: &str, restore: &Restore, mounts: Vec<VolumeMount>) -> Container {
    let spec = &job.spec;
    Container {
        name: CONTAINER.into(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_string()),
        args: Some(args(run_id, restore, RestoreFlags::of(spec))),
        ports: Some(vec![ContainerPort {
            name: Some("control".into()),
            container_port: i32::from(CONTROL_PORT),
            ..ContainerPort::default()
        }]),
        liveness_probe: Some(probe(HEALTHZ, 10, 3)),
        readiness_probe: Some(probe(READYZ, 5, 1)),
        resources: spec.resources.clone(),
        volume_mounts: Some(mounts),
        env: chaos_probability(job)
            .map(|p| vec![EnvVar { name: "SLUICE_CHAOS_PROBABILITY".into(), value: Some(p), ..EnvVar::default() }]),
        security_context: Some(security_context()),
        // The runtime writes its error there; a crash before it could falls back to the log's
        // tail, so the failure reason in status is never empty.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    }
}

/// Pod `index` of `attempt`, built from the spec whose hash is `spec_hash`: `sluice-runtime run`
/// for a job of one worker, `sluice-runtime worker` (see [`super::workers`]) for several.
pub fn pod(job: &StreamJob, attempt: u32, index: u32, restore: &Restore, spec_hash: &str) -> Pod {
    let name = job.name_any();
    let spec = &job.spec;
    let (mounts, volumes) = volumes(job);
    let run_id = labels::run_id(&name, attempt, job.metadata.uid.as_deref());
    let template_spec = spec.pod_template.as_ref().and_then(|t| t.spec.as_ref());
    let mut runtime = container(job, &run_id, restore, mounts);
    if spec.workers > 1 {
        super::workers::shape(&mut runtime, job, attempt, index, restore, &run_id);
    }
    let mut annotations = BTreeMap::from([
        (ANNOTATION_SPEC_HASH.to_string(), spec_hash.to_string()),
        (ANNOTATION_RUN_ID.to_string(), run_id.clone()),
    ]);
    if let Some(uid) = job.metadata.uid.clone() {
        annotations.insert(ANNOTATION_JOB_UID.to_string(), uid);
    }
    if let Restore::From(uri) = restore {
        annotations.insert(ANNOTATION_RESTORED_FROM.to_string(), uri.clone());
    }
    if spec.workers > 1 {
        annotations.insert(ANNOTATION_WORKERS.to_string(), spec.workers.to_string());
    }
    let generated = Pod {
        metadata: ObjectMeta {
            name: Some(labels::pod_name(&name, attempt, index)),
            namespace: job.namespace(),
            labels: Some(labels::pod(&name, attempt)),
            annotations: Some(annotations),
            // No owner reference: the garbage collector (`kubectl delete --cascade=foreground`
            // deletes dependents first) would stop the runtime before the final savepoint. The
            // finalizer makes the operator delete the pods itself; the annotation says whose.
            owner_references: None,
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            service_account_name: spec.service_account.clone(),
            // The runtime never calls the Kubernetes API.
            automount_service_account_token: Some(false),
            termination_grace_period_seconds: Some(
                template_spec.and_then(|s| s.termination_grace_period_seconds).unwrap_or(TERMINATION_GRACE_SECONDS),
            ),
            tolerations: Some(tolerations(template_spec)),
            hostname: Some(labels::pod_name(&name, attempt, index)),
            subdomain: Some(labels::service_name(&name)),
            containers: vec![runtime],
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
                "demo-3-uid1"
            ]
        );
        let annotations = p.metadata.annotations.as_ref().expect("annotations");
        assert_eq!(
            (annotations[ANNOTATION_RUN_ID].as_str(), annotations[ANNOTATION_JOB_UID].as_str()),
            ("demo-3-uid1", "uid-1")
        );
        assert_eq!(p.metadata.owner_references, None, "no garbage collection of a running runtime");
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
    fn runtime_pods_get_scratch_no_token_a_deliberate_grace_period_and_log_fallback() {
        let p = pod(&job(), 1, 0, &Restore::Latest, "h");
        let spec = p.spec.expect("spec");
        assert_eq!(spec.automount_service_account_token, Some(false));
        assert_eq!(spec.termination_grace_period_seconds, Some(TERMINATION_GRACE_SECONDS));
        let c = &spec.containers[0];
        assert_eq!(c.termination_message_policy.as_deref(), Some("FallbackToLogsOnError"));
        let scratch = c.volume_mounts.iter().flatten().find(|m| m.mount_path == SCRATCH_DIR).expect("/tmp mounted");
        assert_ne!(scratch.read_only, Some(true));
        let volume = spec.volumes.iter().flatten().find(|v| v.name == scratch.name).expect("its volume");
        assert!(volume.empty_dir.is_some());

        // A pod template may choose its own grace period and add a volume for a file sink.
        let mut j = job();
        j.spec.pod_template = Some(
            serde_json::from_value(serde_json::json!({"spec": {
                "terminationGracePeriodSeconds": 60,
                "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "volumes": [{"name": "out", "persistentVolumeClaim": {"claimName": "demo-out"}}],
                "containers": [{"name": "runtime", "volumeMounts": [{"name": "out", "mountPath": "/data"}]}]
            }}))
            .expect("template"),
        );
        let spec = pod(&j, 1, 0, &Restore::Latest, "h").spec.expect("spec");
        assert_eq!(spec.termination_grace_period_seconds, Some(60));
        let mounts: Vec<String> =
            spec.containers[0].volume_mounts.iter().flatten().map(|m| m.mount_path.clone()).collect();
        for path in ["/data", SCRATCH_DIR, CONFIG_DIR] {
            assert!(mounts.contains(&path.to_string()), "{path} in {mounts:?}");
        }
        let pvc = spec.volumes.iter().flatten().find(|v| v.name == "out").expect("the template's volume is kept");
        let unreachable = spec
            .tolerations
            .iter()
            .flatten()
            .find(|t| t.key.as_deref() == Some("node.kubernetes.io/unreachable"))
            .expect("a node-loss toleration");
        assert_eq!(unreachable.toleration_seconds, Some(NODE_LOSS_TOLERATION_SECONDS));
        assert!(spec.tolerations.iter().flatten().any(|t| t.key.as_deref() == Some("gpu")), "the template's are kept");
        assert_eq!(pvc.persistent_volume_claim.as_ref().map(|c| c.claim_name.as_str()), Some("demo-out"));
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
        let a = args("demo-1", &Restore::Fresh, RestoreFlags { allow_fallback: true, allow_non_restored_state: true });
        assert!(a.contains(&"--no-restore".to_string()));
        assert!(!a.contains(&"--restore".to_string()));
        assert!(!a.contains(&"--allow-fallback".to_string()), "nothing to fall back from");
        assert!(!a.contains(&"--allow-non-restored-state".to_string()), "nothing restored");
    }

    #[test]
    fn allow_fallback_reaches_a_restore_of_the_latest_checkpoint_only() {
        let has = |a: Vec<String>| a.contains(&"--allow-fallback".to_string());
        let allow = RestoreFlags { allow_fallback: true, ..RestoreFlags::default() };
        assert!(has(args("demo-2", &Restore::Latest, allow)));
        assert!(!has(args("demo-2", &Restore::Latest, RestoreFlags::default())), "refused by default");
        assert!(!has(args("demo-2", &Restore::From("s3://b/sp".into()), allow)), "a named restore is chosen");
    }

    #[test]
    fn allow_non_restored_state_reaches_every_restore_but_a_fresh_start() {
        let has = |a: Vec<String>| a.contains(&"--allow-non-restored-state".to_string());
        let allow = RestoreFlags { allow_non_restored_state: true, ..RestoreFlags::default() };
        assert!(has(args("demo-2", &Restore::Latest, allow)));
        assert!(has(args("demo-2", &Restore::From("s3://b/sp".into()), allow)));
        assert!(!has(args("demo-2", &Restore::Fresh, allow)), "a fresh start restores nothing");
        assert!(
            !has(args("demo-2", &Restore::From("s3://b/sp".into()), RestoreFlags::default())),
            "refused by default"
        );
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
