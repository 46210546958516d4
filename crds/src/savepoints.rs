//! Savepoints in the StreamJob: the spec knobs (history bounds, disposal) and the status the
//! operator keeps (the last trigger, a bounded history, savepoints waiting to be disposed of),
//! plus the write-ahead record of multi-step flows (upgrade, suspend, delete).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use kube::core::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Default number of savepoints kept in `status.savepoints.history`.
pub const DEFAULT_HISTORY_MAX_COUNT: u32 = 10;

/// Bounds of `status.savepoints.history`: a savepoint past either bound falls out of history
/// (and is deleted from storage when `savepointDisposal` is `Delete`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = Rule::new("!has(self.maxAge) || duration(self.maxAge) >= duration('1s')")
        .message("spec.savepointHistory.maxAge must be at least 1s")
)]
pub struct SavepointHistory {
    /// Savepoints kept in history, newest first. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_count: Option<u32>,
    /// Savepoints older than this (by completion time) fall out of history, as a Go duration.
    /// Default: no age limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub max_age: Option<Duration>,
}

impl SavepointHistory {
    /// Savepoints kept in history.
    pub fn max_count(&self) -> usize {
        self.max_count.unwrap_or(DEFAULT_HISTORY_MAX_COUNT) as usize
    }

    /// Age past which a savepoint falls out of history, if limited.
    pub fn max_age(&self) -> Option<std::time::Duration> {
        self.max_age.map(Into::into)
    }
}

/// What happens to a savepoint that falls out of history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SavepointDisposal {
    /// Keep its files in storage (only the status entry goes).
    #[default]
    Retain,
    /// Delete its files from checkpoint storage (only savepoints under the job's storage URI).
    Delete,
}

/// Progress of a savepoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SavepointState {
    /// Recorded; the runtime has not been asked yet.
    #[default]
    Pending,
    /// The runtime is taking it.
    InProgress,
    /// Complete: `path` holds a self-contained savepoint.
    Completed,
    /// Failed: `error` says why.
    Failed,
}

/// What asked for a savepoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SavepointTrigger {
    /// A new value of the `sluice.dev/savepoint` annotation.
    #[default]
    Annotation,
    /// A new `spec.savepointTriggerNonce`.
    Nonce,
    /// Stop-with-savepoint of an upgrade.
    Upgrade,
    /// Stop-with-savepoint of a suspend.
    Suspend,
    /// Final savepoint before the job was deleted.
    Deletion,
    /// `spec.periodicSavepointInterval` elapsed.
    Periodic,
}

/// One savepoint: the last trigger, or an entry of the history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SavepointInfo {
    /// The trigger value: the annotation value, the nonce, or the flow (`upgrade`, `suspend`).
    pub value: String,
    /// What asked for it.
    #[serde(default)]
    pub trigger: SavepointTrigger,
    /// Pending, InProgress, Completed or Failed.
    #[serde(default)]
    pub state: SavepointState,
    /// Directory URI of the savepoint (holds `_manifest.json`), usable as `initialSavepointPath`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The runtime's id of the request, once asked (to follow it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// When it was triggered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When it completed or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Savepoints of the job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SavepointsStatus {
    /// The newest savepoint trigger (any kind), whatever its state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<SavepointInfo>,
    /// Completed savepoints, newest first, bounded by `spec.savepointHistory`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<SavepointInfo>,
    /// Savepoints that fell out of history and wait to be deleted from storage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_disposal: Vec<String>,
    /// The last `sluice.dev/savepoint` annotation value acted on (a new value triggers once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_annotation: Option<String>,
    /// The last `spec.savepointTriggerNonce` acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_nonce: Option<i64>,
    /// When the periodic savepoint schedule last fired, or started counting (the first time
    /// the job ran with `spec.periodicSavepointInterval` set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_periodic: Option<Time>,
}

/// Which multi-step flow is under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OperationKind {
    /// Replacing the attempt with the new spec.
    Upgrade,
    /// Stopping the job for `state: suspended`.
    Suspend,
    /// Stopping the job before its finalizer is removed.
    Delete,
}

/// The step a flow is at. Written to status before the step acts, so an operator restarted
/// mid-flow carries on from here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OperationStep {
    /// Stop-with-savepoint of `attempt` into `savepointPath` (asked, or about to be).
    Savepoint,
    /// Delete every pod; then launch from `restore` (upgrade) or stop there (suspend, delete).
    Stop,
}

/// What the attempt after a flow starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RestoreMode {
    /// The flow's savepoint (`savepointPath`).
    Savepoint,
    /// The latest completed checkpoint.
    LastState,
    /// Empty state.
    Fresh,
}

/// The write-ahead record of a multi-step flow (upgrade, suspend, delete).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationStatus {
    /// Upgrade, Suspend or Delete.
    pub kind: OperationKind,
    /// Savepoint or Stop.
    pub step: OperationStep,
    /// The attempt being stopped.
    pub attempt: u32,
    /// What the next attempt restores from.
    pub restore: RestoreMode,
    /// Where the stop-with-savepoint writes (decided before it is asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub savepoint_path: Option<String>,
    /// When the flow started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// The last failure of the savepoint step, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
