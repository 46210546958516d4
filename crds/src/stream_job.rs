//! The `StreamJob` custom resource: a streaming job the operator keeps running.
//!
//! The vocabulary follows the Flink Kubernetes Operator (`state`, `upgradeMode`,
//! `savepointTriggerNonce`, `restartNonce`, `initialSavepointPath`), with typed blocks instead
//! of a string map and validation embedded in the CRD (schema plus CEL rules).

use k8s_openapi::api::core::v1::{PodTemplateSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::checkpointing::CheckpointingSpec;
use crate::contract::pipeline::Pipeline;
use crate::restart::RestartStrategy;
use crate::savepoints::{OperationStatus, SavepointDisposal, SavepointHistory, SavepointsStatus};
use crate::workers::WorkersStatus;

/// Desired state of a streaming job.
// Several printer columns share a `type_`; clippy mistakes that for a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "StreamJob",
    namespaced,
    shortname = "sj",
    category = "sluice",
    category = "all",
    status = "StreamJobStatus",
    scale(
        spec_replicas_path = ".spec.parallelism",
        status_replicas_path = ".status.parallelism",
        label_selector_path = ".status.selector"
    ),
    // The job's name names its Service (a DNS-1035 label) and its pods' hostnames
    // `<name>-<attempt>-<index>` (at most 63 characters, leaving 18 for the suffix).
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message(
        "metadata.name must be a DNS-1035 label (lower-case letters, digits and '-', starting with a letter, ending with a letter or digit): it names the job's Service"
    ),
    // 45 is MAX_NAME_LEN (a test keeps them equal).
    validation = Rule::new("size(self.metadata.name) <= 45").message(
        "metadata.name must be at most 45 characters: pod hostnames <name>-<attempt>-<index> must fit in 63"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase", description = "Lifecycle phase"),
    printcolumn(
        name = "Parallelism",
        type_ = "integer",
        json_path = ".status.parallelism",
        description = "Parallelism of the running attempt"
    ),
    printcolumn(
        name = "Workers",
        type_ = "integer",
        json_path = ".status.workers.desired",
        description = "Worker pods of the current attempt"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.workers.ready",
        description = "Worker pods of the current attempt that are ready"
    ),
    printcolumn(
        name = "Last Checkpoint",
        type_ = "date",
        json_path = ".status.checkpoints.latest.completedAt",
        description = "When the latest checkpoint completed"
    ),
    printcolumn(
        name = "Restarts",
        type_ = "integer",
        json_path = ".status.restarts",
        description = "Restarts after failures"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    doc = "A streaming job run by the Sluice runtime with exactly-once checkpoints."
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = Rule::new("self.upgradeMode == 'stateless' || has(self.checkpointing)")
        .message("spec.checkpointing is required when spec.upgradeMode is savepoint or last-state"),
    validation = Rule::new("!has(self.pipeline.maxParallelism) || self.parallelism <= self.pipeline.maxParallelism")
        .message("spec.parallelism must not exceed spec.pipeline.maxParallelism"),
    validation = Rule::new(
        "!has(self.periodicSavepointInterval) \
         || (has(self.checkpointing) && duration(self.periodicSavepointInterval) >= duration('10s'))"
    )
    .message("spec.periodicSavepointInterval must be at least 10s and needs spec.checkpointing"),
    validation = Rule::new(
        "!has(oldSelf.checkpointing) || !has(self.checkpointing) \
         || self.checkpointing.storage.uri == oldSelf.checkpointing.storage.uri \
         || (has(self.initialSavepointPath) \
             && (!has(oldSelf.initialSavepointPath) || self.initialSavepointPath != oldSelf.initialSavepointPath))"
    )
    .message(
        "spec.checkpointing.storage.uri cannot change on its own: the job would restart without its state. \
         Set spec.initialSavepointPath in the same update to the state to carry over (e.g. status.checkpoints.latest.path \
         or a savepoint), or delete and recreate the job"
    )
)]
pub struct StreamJobSpec {
    /// Container image with the `sluice-runtime` binary.
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// When the kubelet pulls the image. Default `IfNotPresent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,
    /// Service account the runtime pods run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub service_account: Option<String>,
    /// Default parallelism of the pipeline's nodes (nodes may set their own). Changing it
    /// rescales the job through an upgrade; `kubectl scale sj/NAME --replicas N` sets it.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 32768))]
    pub parallelism: u32,
    /// Worker pods per attempt (default 1, at most 1024). The job's subtasks are spread over
    /// them (subtask i of every node runs on worker i % workers); worker 0 runs the checkpoint
    /// coordinator and serves the control endpoint. Each pod gets a stable DNS name through the
    /// job's headless Service. Any worker failing fails the attempt: every pod of it is deleted
    /// and all are relaunched from the latest completed checkpoint. At most the largest
    /// parallelism of any node (a further worker would run nothing; the operator refuses it).
    /// Changing it replaces the attempt through `upgradeMode`.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 1024))]
    pub workers: u32,
    /// CPU and memory of the runtime container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Pod template overlaid on the generated pod (labels, annotations, node selector,
    /// tolerations, extra volumes, sidecars; a container named `runtime` is merged into the
    /// runtime container). The escape hatch for everything not typed here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub pod_template: Option<PodTemplateSpec>,
    /// The dataflow graph the runtime runs.
    pub pipeline: Pipeline,
    /// Periodic checkpoints and their storage. Without it the job keeps no state across restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpointing: Option<CheckpointingSpec>,
    /// `running` or `suspended` (stop with a savepoint, pods deleted; `running` again resumes
    /// from that savepoint).
    #[serde(default)]
    pub state: DesiredState,
    /// How a spec change reaches the running job.
    #[serde(default)]
    pub upgrade_mode: UpgradeMode,
    /// Savepoint or checkpoint URI the first attempt restores from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub initial_savepoint_path: Option<String>,
    /// Change this number to trigger a savepoint (like a new `sluice.dev/savepoint` annotation
    /// value). A value already set when the job is first deployed does not trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub savepoint_trigger_nonce: Option<i64>,
    /// Take a savepoint this often while the job runs (a Go duration, at least 10s), kept in
    /// history and disposed of like any other. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub periodic_savepoint_interval: Option<kube::core::Duration>,
    /// How many savepoints `status.savepoints.history` keeps, and for how long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub savepoint_history: Option<SavepointHistory>,
    /// What happens to a savepoint that falls out of history: `Retain` (default) keeps its
    /// files, `Delete` removes them from checkpoint storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub savepoint_disposal: Option<SavepointDisposal>,
    /// Take a final savepoint before the job's pods are stopped on deletion. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub savepoint_on_deletion: Option<bool>,
    /// `upgradeMode: savepoint` only: when no savepoint can be taken (the job is unhealthy or
    /// the savepoint fails), upgrade from the latest completed checkpoint instead. Default true;
    /// with false the operator keeps retrying the savepoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_state_fallback: Option<bool>,
    /// Restore past a newer checkpoint whose sinks may have committed output (the runtime's
    /// `--allow-fallback`): that output may be written a second time. Default false: such a
    /// restore is refused and the job stops with `DataLossRisk` (reason `RestoreRefused`) for
    /// a person to decide; setting it (a spec change) relaunches the job accepting duplicates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_fallback: Option<bool>,
    /// Restore a checkpoint or savepoint that does not fit this job as it stands — one written
    /// by a job of another name, or holding state for nodes the pipeline no longer has (that
    /// state is dropped) — instead of failing the attempt (the runtime's
    /// `--allow-non-restored-state`, after Flink's flag). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_non_restored_state: Option<bool>,
    /// When an upgrade's attempt fails before it completes its first checkpoint, go back to the
    /// last spec that ran stably (`status.lastStableSpec`, restoring its latest checkpoint)
    /// instead of retrying the new one; the job shows `RolledBack` until the spec changes
    /// again. Default false (the Flink Kubernetes Operator's rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_on_failed_upgrade: Option<bool>,
    /// Change this number to restart the job (through an upgrade in `upgradeMode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_nonce: Option<i64>,
    /// Backoff and restart budget for failed attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_strategy: Option<RestartStrategy>,
}

fn one() -> u32 {
    1
}

/// Longest StreamJob name: its pods are named `<name>-<attempt>-<index>`, and a pod hostname
/// is a DNS label of at most 63 characters (18 are left for an attempt of up to 10 digits and
/// an index of up to 6).
pub const MAX_NAME_LEN: usize = 45;

fn preserve_unknown_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// Image pull policy of the runtime container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ImagePullPolicy {
    /// Pull on every pod start.
    Always,
    /// Pull when the node does not have the image.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl ImagePullPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ImagePullPolicy::Always => "Always",
            ImagePullPolicy::IfNotPresent => "IfNotPresent",
            ImagePullPolicy::Never => "Never",
        }
    }
}

/// Whether the job should run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DesiredState {
    /// Keep the job running.
    #[default]
    Running,
    /// Stop the job with a savepoint and delete its pods; resuming restores from it.
    Suspended,
}

/// How a spec change is applied to a running job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UpgradeMode {
    /// Stop the job and start the new spec without state.
    #[default]
    Stateless,
    /// Stop with a savepoint and start the new spec from it (falls back to the latest
    /// checkpoint when the job is unhealthy and `lastStateFallback` allows).
    Savepoint,
    /// Stop the job and start the new spec from its latest completed checkpoint.
    LastState,
}

/// Lifecycle phase of a job, as shown by `kubectl get sj`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// Accepted, nothing launched yet.
    #[default]
    Pending,
    /// An attempt's pods are starting.
    Deploying,
    /// The current attempt is running and ready.
    Running,
    /// An attempt failed; its pods are being removed and the next attempt is being launched.
    Recovering,
    /// The job's pods are being stopped on request.
    Suspending,
    /// No pods run; `state: running` resumes from the latest checkpoint.
    Suspended,
    /// A spec change is being applied by replacing the attempt.
    Upgrading,
    /// The job will not be restarted (restart budget exhausted or invalid spec); see conditions.
    Failed,
    /// The job's sources are exhausted and its pods exited successfully.
    Finished,
}

impl Phase {
    /// Every phase, for metrics that report a gauge per phase.
    pub const ALL: [Phase; 9] = [
        Phase::Pending,
        Phase::Deploying,
        Phase::Running,
        Phase::Recovering,
        Phase::Suspending,
        Phase::Suspended,
        Phase::Upgrading,
        Phase::Failed,
        Phase::Finished,
    ];

    /// The phase as written in status.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Deploying => "Deploying",
            Phase::Running => "Running",
            Phase::Recovering => "Recovering",
            Phase::Suspending => "Suspending",
            Phase::Suspended => "Suspended",
            Phase::Upgrading => "Upgrading",
            Phase::Failed => "Failed",
            Phase::Finished => "Finished",
        }
    }
}

/// Observed state of a job, written only by the operator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamJobStatus {
    /// Lifecycle phase.
    #[serde(default)]
    pub phase: Phase,
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Progressing, CheckpointHealthy and Degraded (see `conditions.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Number of the current attempt (1 for the first launch, +1 per relaunch); 0 before any.
    #[serde(default)]
    pub attempt: u32,
    /// Relaunches after failures since the job was created (upgrades do not count).
    #[serde(default)]
    pub restarts: u32,
    /// Parallelism of the current attempt (the scale subresource's status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// Worker pods of the current attempt: how many it runs on and how many are ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<WorkersStatus>,
    /// Label selector of the job's pods (the scale subresource's `labelSelectorPath`, so a
    /// HorizontalPodAutoscaler can target the job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Hash of the spec fields the current attempt was built from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_hash: Option<String>,
    /// The restore point the current attempt started from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<String>,
    /// Checkpoint progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoints: Option<CheckpointsStatus>,
    /// Times of the restarts inside the restart window (oldest first): the restart budget.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_restarts: Vec<Time>,
    /// Failure handling of the current attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryStatus>,
    /// Last error, in words (cleared when the job runs again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Savepoint triggers, their history and disposal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub savepoints: Option<SavepointsStatus>,
    /// The multi-step flow under way (upgrade, suspend, delete), written before each step acts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<OperationStatus>,
    /// Savepoint the next attempt restores from (set by a suspend's stop-with-savepoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_from: Option<String>,
    /// The last spec that ran stably (an attempt built from it completed a checkpoint), what
    /// `spec.rollbackOnFailedUpgrade` rolls back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_stable_spec: Option<StableSpec>,
    /// Set while the job runs its last stable spec because the current spec failed: the hash
    /// of that failed spec. Cleared by the next spec change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_from: Option<String>,
}

/// A spec recorded as stable.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StableSpec {
    /// Hash of the spec fields pods are built from (as `specHash`).
    pub hash: String,
    /// The spec, as JSON.
    pub spec: String,
}

/// Checkpoint progress of the job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointsStatus {
    /// The newest completed checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<CheckpointStatus>,
}

/// A completed checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointStatus {
    /// Checkpoint id (strictly increasing within the job).
    pub id: u64,
    /// URI of the checkpoint's manifest, usable as `--restore` / `initialSavepointPath`.
    pub path: String,
    /// When the checkpoint completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// Bytes of state the checkpoint references.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// Trigger-to-completion time in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// What the operator knows about the failure it is recovering from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryStatus {
    /// The attempt that failed.
    pub failed_attempt: u32,
    /// When the failure was first seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<Time>,
    /// Why the attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The CustomResourceDefinition as YAML, exactly as checked in at `crds/streamjob.yaml`.
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    // The derived CRD is plain data; serializing it cannot fail.
    serde_yaml::to_string(&StreamJob::crd()).unwrap_or_default()
}
