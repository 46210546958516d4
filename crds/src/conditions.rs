//! Status conditions: the only place condition types and reason strings are spelled.
//!
//! Conditions follow the Kubernetes convention (`type`, `status`, `reason`, `message`,
//! `lastTransitionTime`, `observedGeneration`) so `kubectl wait --for=condition=Ready sj/NAME`
//! works. `lastTransitionTime` changes only when `status` flips.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The condition types a StreamJob reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConditionType {
    /// The current attempt runs and its runtime answers `/readyz`.
    Ready,
    /// The operator is moving the job towards its spec (deploying, recovering, upgrading).
    Progressing,
    /// Checkpoints complete and storage is reachable.
    CheckpointHealthy,
    /// Something needs a human or is being worked around (failures, invalid spec, storage down).
    Degraded,
    /// A savepoint (triggered, or a stop-with-savepoint of a flow) is being taken.
    SavepointInProgress,
    /// Records of a completed checkpoint could not be committed (the broker aborted a
    /// pre-committed transaction): output may be missing. The job is not restarted blindly.
    DataLossRisk,
}

impl ConditionType {
    /// Every condition type, in the order they are written.
    pub const ALL: [ConditionType; 6] = [
        ConditionType::Ready,
        ConditionType::Progressing,
        ConditionType::CheckpointHealthy,
        ConditionType::Degraded,
        ConditionType::SavepointInProgress,
        ConditionType::DataLossRisk,
    ];

    /// The `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ready => "Ready",
            ConditionType::Progressing => "Progressing",
            ConditionType::CheckpointHealthy => "CheckpointHealthy",
            ConditionType::Degraded => "Degraded",
            ConditionType::SavepointInProgress => "SavepointInProgress",
            ConditionType::DataLossRisk => "DataLossRisk",
        }
    }
}

/// Machine-readable reasons of conditions and Events (CamelCase, as Kubernetes expects).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Pods of a new attempt are being created.
    Deploying,
    /// The attempt's pods are running and ready.
    Running,
    /// Pods exist but are not ready yet.
    PodsNotReady,
    /// A pod of the current attempt failed.
    PodFailed,
    /// A pod of the current attempt disappeared.
    PodDeleted,
    /// The node of a pod of the current attempt is gone.
    NodeLost,
    /// Removing the pods of a failed or replaced attempt.
    StoppingAttempt,
    /// Waiting for the restart backoff.
    BackoffWaiting,
    /// The next attempt was launched after a failure.
    Relaunched,
    /// The restart budget is exhausted.
    RestartLimitExceeded,
    /// The spec changed; the attempt is being replaced.
    SpecChanged,
    /// The spec does not validate (a field path says where).
    InvalidSpec,
    /// The job was suspended by `state: suspended`.
    Suspended,
    /// The job's sources are exhausted and its pods exited successfully.
    Finished,
    /// Checkpoint storage cannot be read; recovery waits for it.
    StorageUnavailable,
    /// The latest checkpoint is fresh.
    CheckpointCompleted,
    /// No checkpoint completed yet.
    NoCheckpointYet,
    /// The runtime reports failing checkpoints.
    CheckpointsFailing,
    /// Checkpointing is not configured.
    CheckpointingDisabled,
    /// The runtime's control endpoint does not answer.
    RuntimeUnreachable,
    /// Nothing to report.
    AsExpected,
    /// No savepoint could be taken for an upgrade or suspend; the latest checkpoint is used.
    SavepointUpgradeFallback,
    /// A savepoint was triggered.
    SavepointTriggered,
    /// A savepoint completed.
    SavepointCompleted,
    /// A savepoint failed (or was triggered while the job was not running).
    SavepointFailed,
    /// A savepoint fell out of history and was deleted from storage.
    SavepointDisposed,
    /// A stop-with-savepoint is under way before pods are deleted.
    StoppingWithSavepoint,
    /// The job is being deleted; its pods are stopped before the finalizer goes.
    Deleting,
    /// The runtime could not commit a completed checkpoint's transaction (exit status 3).
    UncommittableTransaction,
    /// The runtime refused to restore (exit status 3): the only usable checkpoint is older than
    /// one whose sinks may have committed, or the checkpoint location lost its manifests.
    RestoreRefused,
    /// The attempt of a new spec failed before its first checkpoint; the job runs its last
    /// stable spec again (`spec.rollbackOnFailedUpgrade`).
    RolledBack,
    /// The operator cannot deserialize the StreamJob (e.g. a `podTemplate` with type errors).
    UnreadableObject,
    /// The API server refused a child object (PodSecurity, quota, a missing service account,
    /// an invalid `podTemplate`).
    ChildRejected,
    /// An object of a child's name exists and is not controlled by this StreamJob.
    NameConflict,
    /// A pod of the attempt is not starting (image pull back-off, unschedulable, a container
    /// that cannot be created); the message says why.
    PodPending,
    /// A pod of the attempt did not start within the deploy timeout: the attempt failed.
    DeployTimeout,
}

impl Reason {
    /// The `reason` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Deploying => "Deploying",
            Reason::Running => "Running",
            Reason::PodsNotReady => "PodsNotReady",
            Reason::PodFailed => "PodFailed",
            Reason::PodDeleted => "PodDeleted",
            Reason::NodeLost => "NodeLost",
            Reason::StoppingAttempt => "StoppingAttempt",
            Reason::BackoffWaiting => "BackoffWaiting",
            Reason::Relaunched => "Relaunched",
            Reason::RestartLimitExceeded => "RestartLimitExceeded",
            Reason::SpecChanged => "SpecChanged",
            Reason::InvalidSpec => "InvalidSpec",
            Reason::Suspended => "Suspended",
            Reason::Finished => "Finished",
            Reason::StorageUnavailable => "StorageUnavailable",
            Reason::CheckpointCompleted => "CheckpointCompleted",
            Reason::NoCheckpointYet => "NoCheckpointYet",
            Reason::CheckpointsFailing => "CheckpointsFailing",
            Reason::CheckpointingDisabled => "CheckpointingDisabled",
            Reason::RuntimeUnreachable => "RuntimeUnreachable",
            Reason::AsExpected => "AsExpected",
            Reason::SavepointUpgradeFallback => "SavepointUpgradeFallback",
            Reason::SavepointTriggered => "SavepointTriggered",
            Reason::SavepointCompleted => "SavepointCompleted",
            Reason::SavepointFailed => "SavepointFailed",
            Reason::SavepointDisposed => "SavepointDisposed",
            Reason::StoppingWithSavepoint => "StoppingWithSavepoint",
            Reason::Deleting => "Deleting",
            Reason::UncommittableTransaction => "UncommittableTransaction",
            Reason::RestoreRefused => "RestoreRefused",
            Reason::RolledBack => "RolledBack",
            Reason::UnreadableObject => "UnreadableObject",
            Reason::ChildRejected => "ChildRejected",
            Reason::NameConflict => "NameConflict",
            Reason::PodPending => "PodPending",
            Reason::DeployTimeout => "DeployTimeout",
        }
    }
}

/// A condition the operator wants to hold, before timestamps are settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredCondition {
    /// Which condition.
    pub type_: ConditionType,
    /// True or false.
    pub status: bool,
    /// Why.
    pub reason: Reason,
    /// For humans.
    pub message: String,
}

impl DesiredCondition {
    /// A condition of `type_` with `status`, `reason` and `message`.
    pub fn new(type_: ConditionType, status: bool, reason: Reason, message: impl Into<String>) -> Self {
        DesiredCondition { type_, status, reason, message: message.into() }
    }
}

/// Merges desired conditions into the previous ones: `lastTransitionTime` is kept when the
/// status did not flip and set to `now` when it did; conditions not mentioned are kept.
pub fn merge(
    previous: &[Condition],
    desired: &[DesiredCondition],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = Vec::with_capacity(ConditionType::ALL.len());
    for t in ConditionType::ALL {
        let old = previous.iter().find(|c| c.type_ == t.as_str());
        match desired.iter().find(|d| d.type_ == t) {
            Some(d) => {
                let status = if d.status { "True" } else { "False" };
                let last_transition_time = match old {
                    Some(o) if o.status == status => o.last_transition_time.clone(),
                    _ => now.clone(),
                };
                out.push(Condition {
                    type_: t.as_str().to_string(),
                    status: status.to_string(),
                    reason: d.reason.as_str().to_string(),
                    message: d.message.clone(),
                    last_transition_time,
                    observed_generation: generation,
                });
            }
            None => out.extend(old.cloned()),
        }
    }
    out
}

/// The condition of `type_` in `conditions`, if present.
pub fn find(conditions: &[Condition], type_: ConditionType) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == type_.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).expect("valid"))
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let first =
            merge(&[], &[DesiredCondition::new(ConditionType::Ready, false, Reason::Deploying, "")], Some(1), &at(10));
        let same = merge(
            &first,
            &[DesiredCondition::new(ConditionType::Ready, false, Reason::PodsNotReady, "x")],
            Some(1),
            &at(20),
        );
        assert_eq!(same[0].last_transition_time, at(10));
        assert_eq!(same[0].reason, "PodsNotReady");
        let flipped =
            merge(&same, &[DesiredCondition::new(ConditionType::Ready, true, Reason::Running, "")], Some(2), &at(30));
        assert_eq!(flipped[0].last_transition_time, at(30));
        assert_eq!(flipped[0].status, "True");
    }

    #[test]
    fn conditions_not_mentioned_are_kept() {
        let first =
            merge(&[], &[DesiredCondition::new(ConditionType::Degraded, true, Reason::PodFailed, "")], None, &at(1));
        let next =
            merge(&first, &[DesiredCondition::new(ConditionType::Ready, true, Reason::Running, "")], None, &at(2));
        assert_eq!(next.len(), 2);
        assert!(find(&next, ConditionType::Degraded).is_some());
    }
}
