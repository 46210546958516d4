//! Multi-step flows of the planner: upgrade, suspend and delete. Each flow is recorded in
//! `status.operation` before its first step acts, and every step that stops or savepoints a
//! job is planned only when the previous (persisted) status already names it — so an operator
//! restarted anywhere in a flow carries on from status, never skipping or repeating a step
//! that matters.

use sluice_crds::conditions::{ConditionType as T, Reason};
use sluice_crds::savepoints::{OperationKind, OperationStatus, OperationStep, RestoreMode, SavepointTrigger};
use sluice_crds::stream_job::{DesiredState, UpgradeMode};
use sluice_crds::{Phase, contract::control::JobState};

use super::observe::{ObservedPod, PodState, RuntimeObservation};
use super::plan::{Action, Planner, REQUEUE_BUSY, REQUEUE_IDLE, REQUEUE_NOW, REQUEUE_STORAGE, Why};
use crate::savepoint;

fn verb(kind: OperationKind) -> &'static str {
    match kind {
        OperationKind::Upgrade => "upgrade",
        OperationKind::Suspend => "suspend",
        OperationKind::Delete => "deletion",
    }
}

/// The savepoint trigger a flow's stop-with-savepoint is recorded as.
pub(super) fn trigger_of(kind: OperationKind) -> SavepointTrigger {
    match kind {
        OperationKind::Upgrade => SavepointTrigger::Upgrade,
        OperationKind::Suspend => SavepointTrigger::Suspend,
        OperationKind::Delete => SavepointTrigger::Deletion,
    }
}

/// Why the current attempt cannot take a savepoint now (the text goes into status and Events).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum NoSavepoint {
    /// The job has no checkpoint storage to write a savepoint to.
    #[error("checkpointing is not configured")]
    NoCheckpointing,
    /// No attempt, or its pods are not all running and ready.
    #[error("the job is not running (phase {})", .0.as_str())]
    NotRunning(Phase),
    /// An upgrade, suspend or deletion is under way.
    #[error("the job is not running ({0:?} in progress)")]
    Busy(OperationKind),
    /// The runtime answered with a job state other than running.
    #[error("the runtime reports the job {0:?}")]
    RuntimeState(JobState),
    /// The runtime's control endpoint did not answer.
    #[error("the runtime does not answer: {0}")]
    Unreachable(String),
    /// The runtime was not asked this reconcile.
    #[error("the runtime was not reached")]
    NotQueried,
    /// The runtime pod has no IP to call yet.
    #[error("the runtime pod has no IP yet")]
    NoPodIp,
}

impl<'a> Planner<'a> {
    /// The pod IP of the current attempt's runtime when it can take a savepoint now, or why not.
    pub(super) fn savepoint_target(&self, current: u32) -> Result<String, NoSavepoint> {
        if self.spec.checkpointing.is_none() {
            return Err(NoSavepoint::NoCheckpointing);
        }
        let pods = self.pods_of(current);
        let ready =
            !pods.is_empty() && pods.iter().all(|p| p.state == PodState::Running { ready: true } && !p.terminating);
        if current == 0 || !ready {
            return Err(NoSavepoint::NotRunning(self.old.phase));
        }
        match &self.obs.runtime {
            RuntimeObservation::Status(s) if s.state == JobState::Running => {}
            RuntimeObservation::Status(s) => return Err(NoSavepoint::RuntimeState(s.state)),
            RuntimeObservation::Unreachable(e) => return Err(NoSavepoint::Unreachable(e.clone())),
            RuntimeObservation::NotQueried => return Err(NoSavepoint::NotQueried),
        }
        self.coordinator_of(current).and_then(|p| p.ip.clone()).ok_or(NoSavepoint::NoPodIp)
    }

    /// The run id of `attempt`'s runtime: what its pods were started with, else what the
    /// operator starts it with (object uid included).
    pub(super) fn run_id_of(&self, attempt: u32) -> String {
        self.pods_of(attempt)
            .iter()
            .find_map(|p| p.run_id.clone())
            .unwrap_or_else(|| crate::build::labels::run_id(&self.obs.job_name, attempt, self.obs.uid.as_deref()))
    }

    fn phase_of(&mut self, kind: OperationKind) {
        match kind {
            OperationKind::Upgrade => self.set_phase(Phase::Upgrading),
            OperationKind::Suspend => self.set_phase(Phase::Suspending),
            OperationKind::Delete => {}
        }
        let (reason, message) = match kind {
            OperationKind::Upgrade => (Reason::SpecChanged, "replacing the attempt with the new spec"),
            OperationKind::Suspend => (Reason::Suspended, "spec.state is suspended"),
            OperationKind::Delete => (Reason::Deleting, "the job is being deleted"),
        };
        self.cond(T::Ready, false, reason, message);
        self.cond(T::Progressing, true, reason, format!("{} in progress", verb(kind)));
    }

    /// Records a new flow in status; its first step acts on the next reconcile. `savepoint`
    /// asks for a stop-with-savepoint; `restore` is what the next attempt starts from without one.
    fn begin(&mut self, kind: OperationKind, current: u32, savepoint: bool, restore: RestoreMode) {
        self.phase_of(kind);
        let mut op = OperationStatus {
            kind,
            step: OperationStep::Stop,
            attempt: current,
            restore,
            savepoint_path: None,
            started_at: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(self.now)),
            error: None,
        };
        if savepoint {
            let spec = self.spec;
            match (self.savepoint_target(current), &spec.checkpointing) {
                (Ok(_), Some(c)) => {
                    let path = savepoint::stop_location(&c.storage.uri, &self.run_id_of(current));
                    op.step = OperationStep::Savepoint;
                    op.restore = RestoreMode::Savepoint;
                    op.savepoint_path = Some(path.clone());
                    self.cond(T::SavepointInProgress, true, Reason::StoppingWithSavepoint, path.clone());
                    self.event(
                        false,
                        Reason::StoppingWithSavepoint,
                        format!("{}: stopping attempt {current} with a savepoint at {path}", verb(kind)),
                    );
                }
                (target, _) => {
                    let why = why_of(target).to_string();
                    if kind == OperationKind::Upgrade && !self.fallback_allowed() {
                        let message = format!("upgradeMode savepoint waits for a savepoint: {why}");
                        self.cond(T::Degraded, true, Reason::SavepointFailed, message.clone());
                        self.cond(T::Progressing, true, Reason::SpecChanged, message);
                        self.plan.requeue_after = REQUEUE_STORAGE;
                        return;
                    }
                    self.event(
                        true,
                        Reason::SavepointUpgradeFallback,
                        format!("{}: no savepoint ({why}); {}", verb(kind), fallback_words(restore)),
                    );
                    op.error = Some(why);
                }
            }
        } else if kind == OperationKind::Upgrade {
            self.event(false, Reason::SpecChanged, format!("spec changed; replacing attempt {current}"));
        }
        self.plan.status.operation = Some(op);
        self.plan.requeue_after = REQUEUE_NOW;
    }

    fn fallback_allowed(&self) -> bool {
        self.spec.last_state_fallback.unwrap_or(true)
    }

    /// A spec change: start an upgrade per `upgradeMode`.
    pub(super) fn upgrade(&mut self, current: u32, pods: &[&ObservedPod]) {
        if pods.is_empty() && self.obs.pods.is_empty() {
            // Nothing runs: nothing to stop or savepoint.
            self.phase_of(OperationKind::Upgrade);
            return self.relaunch(Why::Upgrade, current);
        }
        match self.spec.upgrade_mode {
            UpgradeMode::Savepoint => self.begin(OperationKind::Upgrade, current, true, RestoreMode::LastState),
            UpgradeMode::LastState => self.begin(OperationKind::Upgrade, current, false, RestoreMode::LastState),
            UpgradeMode::Stateless => self.begin(OperationKind::Upgrade, current, false, RestoreMode::Fresh),
        }
    }

    /// `state: suspended`: stop with a savepoint (when checkpointing is on), then delete pods.
    pub(super) fn suspend(&mut self, current: u32) {
        self.plan.status.recovery = None;
        self.cond(T::Degraded, false, Reason::AsExpected, "");
        if self.obs.pods.is_empty() {
            self.set_phase(Phase::Suspended);
            self.cond(T::Ready, false, Reason::Suspended, "spec.state is suspended");
            self.cond(T::Progressing, false, Reason::Suspended, "");
            self.plan.requeue_after = REQUEUE_IDLE;
            self.note_phase_change(false, Reason::Suspended, "job suspended");
            return;
        }
        let savepoint = self.spec.checkpointing.is_some();
        self.begin(OperationKind::Suspend, current, savepoint, RestoreMode::LastState);
    }

    /// Deletion: a final savepoint first when `savepointOnDeletion` (default true) and the job
    /// runs; then every pod goes, then the finalizer.
    pub(super) fn delete_job(&mut self, current: u32) {
        if let Some(mut op) = self.old.operation.clone() {
            // A flow under way when deletion began now ends in deletion.
            op.kind = OperationKind::Delete;
            return self.continue_operation(op, current);
        }
        if self.obs.pods.is_empty() {
            self.plan.cleanup_done = true;
            return;
        }
        let wanted = self.spec.savepoint_on_deletion.unwrap_or(true) && self.spec.checkpointing.is_some();
        match self.savepoint_target(current) {
            Ok(_) if wanted => self.begin(OperationKind::Delete, current, true, RestoreMode::LastState),
            target => {
                if wanted {
                    self.event(
                        true,
                        Reason::SavepointFailed,
                        format!("no final savepoint before deletion: {}", why_of(target)),
                    );
                }
                self.phase_of(OperationKind::Delete);
                let all: Vec<&'a ObservedPod> = self.obs.pods.iter().collect();
                self.delete(&all);
                self.plan.requeue_after = REQUEUE_BUSY;
            }
        }
    }

    /// Carries a recorded flow one step further.
    pub(super) fn continue_operation(&mut self, op: OperationStatus, current: u32) {
        self.phase_of(op.kind);
        self.plan.status.operation = Some(op.clone());
        match op.step {
            OperationStep::Savepoint => self.savepoint_step(op, current),
            OperationStep::Stop => self.stop_step(op, current),
        }
    }

    fn savepoint_step(&mut self, mut op: OperationStatus, current: u32) {
        let path = op.savepoint_path.clone().unwrap_or_default();
        let pods = self.pods_of(op.attempt);
        let exited = !pods.is_empty() && pods.iter().all(|p| p.state == PodState::Succeeded);
        let complete = match self.obs.savepoints_found.get(&path) {
            Some(found) => *found,
            // Storage the operator cannot read: a runtime exits 0 after a stop only once its
            // savepoint is written.
            None => exited,
        };
        if let Some(why) = self.obs.foreign_savepoints.get(&path) {
            // Never complete, never restored from: the flow goes on without it.
            op.error = Some(format!("{path} holds a savepoint that is not this job's: {why}"));
        }
        if complete {
            self.record_completed(trigger_of(op.kind), &path);
            op.step = OperationStep::Stop;
            op.restore = RestoreMode::Savepoint;
            op.error = None;
            self.plan.status.operation = Some(op.clone());
            return self.stop_step(op, current);
        }
        // Worker 0 takes the savepoint and stops every worker.
        let coordinator = self.coordinator_of(op.attempt);
        let alive = coordinator.is_some_and(|p| matches!(p.state, PodState::Running { .. }) && !p.terminating);
        let ip = coordinator.and_then(|p| p.ip.clone());
        match (&op.error, alive, ip) {
            (None, true, Some(pod_ip)) => {
                self.cond(T::SavepointInProgress, true, Reason::StoppingWithSavepoint, path);
                self.plan.actions.push(Action::StopWithSavepoint { pod_ip });
                self.plan.requeue_after = REQUEUE_BUSY;
            }
            (None, true, None) => self.plan.requeue_after = REQUEUE_BUSY,
            (Some(e), true, Some(pod_ip)) if op.kind == OperationKind::Upgrade && !self.fallback_allowed() => {
                // No fallback allowed: keep the old attempt and try again.
                let message = format!("savepoint for the upgrade failed, retrying: {e}");
                self.cond(T::Degraded, true, Reason::SavepointFailed, message.clone());
                self.cond(T::SavepointInProgress, true, Reason::StoppingWithSavepoint, message);
                op.error = None;
                self.plan.status.operation = Some(op);
                self.plan.actions.push(Action::StopWithSavepoint { pod_ip });
                self.plan.requeue_after = REQUEUE_STORAGE;
            }
            (error, _, _) => {
                let why = error.clone().unwrap_or_else(|| {
                    format!("attempt {} ended before its savepoint at {path} completed", op.attempt)
                });
                self.record_failed(trigger_of(op.kind), &path, &why);
                self.event(
                    true,
                    Reason::SavepointUpgradeFallback,
                    format!("{}: savepoint failed ({why}); {}", verb(op.kind), fallback_words(RestoreMode::LastState)),
                );
                op.step = OperationStep::Stop;
                op.restore = RestoreMode::LastState;
                op.error = Some(why);
                self.plan.status.operation = Some(op.clone());
                self.stop_step(op, current);
            }
        }
    }

    fn stop_step(&mut self, op: OperationStatus, current: u32) {
        if current > op.attempt && !self.pods_of(current).is_empty() {
            // The launch that ends this flow happened but its status write was lost: adopt it.
            self.plan.status.operation = None;
            self.plan.status.resume_from = None;
            let pods = self.pods_of(current);
            let stale: Vec<&'a ObservedPod> = self.obs.pods.iter().filter(|p| p.attempt != current).collect();
            self.delete(&stale);
            return self.healthy(&pods);
        }
        let all: Vec<&'a ObservedPod> = self.obs.pods.iter().collect();
        if !all.is_empty() {
            self.delete(&all);
            self.plan.requeue_after = REQUEUE_BUSY;
            return;
        }
        let savepoint = op.savepoint_path.clone().filter(|_| op.restore == RestoreMode::Savepoint);
        match op.kind {
            OperationKind::Delete => self.plan.cleanup_done = true,
            _ if self.spec.state == DesiredState::Suspended => {
                self.plan.status.operation = None;
                self.plan.status.resume_from = savepoint.clone();
                self.set_phase(Phase::Suspended);
                self.cond(T::Ready, false, Reason::Suspended, "spec.state is suspended");
                self.cond(T::Progressing, false, Reason::Suspended, "");
                let message = match &savepoint {
                    Some(p) => format!("job suspended with a savepoint at {p}"),
                    None => "job suspended; resuming restores the latest checkpoint".to_string(),
                };
                self.event(false, Reason::Suspended, message);
                self.plan.requeue_after = REQUEUE_IDLE;
            }
            OperationKind::Suspend => {
                // Resumed while suspending: start again from the suspend's savepoint.
                self.plan.status.resume_from = savepoint;
                self.relaunch(Why::Resume, current);
            }
            OperationKind::Upgrade => self.relaunch(Why::Upgrade, current),
        }
    }
}

/// Why no savepoint is taken: the target's failure, else (a target but no storage) the missing
/// checkpointing.
pub(super) fn why_of(target: Result<String, NoSavepoint>) -> NoSavepoint {
    target.err().unwrap_or(NoSavepoint::NoCheckpointing)
}

fn fallback_words(restore: RestoreMode) -> &'static str {
    match restore {
        RestoreMode::Fresh => "starting without state",
        RestoreMode::LastState | RestoreMode::Savepoint => "using the latest completed checkpoint",
    }
}
