//! The planner: a pure function `(spec, status, observed, now) -> Plan`. No client, no clock.
//!
//! Invariant (checked by property tests): a plan launches an attempt only when no pod of any
//! attempt exists any more, and the launched attempt is newer than every attempt seen — so two
//! attempts are never alive at once and an old writer cannot commit after a new one started.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sluice_crds::conditions::{ConditionType as T, DesiredCondition, Reason};
use sluice_crds::contract::control::{DataLossKind, JobState};
use sluice_crds::restart::RestartStrategy;
use sluice_crds::savepoints::RestoreMode;
use sluice_crds::stream_job::{CheckpointStatus, CheckpointsStatus, DesiredState, RecoveryStatus, UpgradeMode};
use sluice_crds::{Phase, StreamJobSpec, StreamJobStatus};

use super::observe::{Observed, ObservedPod, PodState, RuntimeObservation, StoreObservation};

/// Requeue while the job runs normally (polls checkpoints).
pub const REQUEUE_RUNNING: Duration = Duration::from_secs(30);
/// Requeue while something is in motion (pods starting or stopping).
pub const REQUEUE_BUSY: Duration = Duration::from_secs(5);
/// Requeue while checkpoint storage is unreachable.
pub const REQUEUE_STORAGE: Duration = Duration::from_secs(15);
/// Requeue in terminal phases.
pub const REQUEUE_IDLE: Duration = Duration::from_secs(300);
/// Requeue after recording the next step of a flow, so the step acts right after the write.
pub const REQUEUE_NOW: Duration = Duration::from_secs(1);
/// A pod of the current attempt still not started this long after its creation (image pull
/// back-off, unschedulable, a missing ConfigMap key…) fails the attempt, which is then retried
/// with the restart backoff; it also ends a savepoint upgrade waiting on a pod that never ran.
pub const DEPLOY_TIMEOUT: Duration = Duration::from_secs(300);
/// A pod still present this long after its deletion timestamp (the moment the kubelet should
/// have killed it) is taken to be on an unreachable node and force-deleted.
pub const STUCK_AFTER: Duration = Duration::from_secs(30);

/// What the next attempt starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restore {
    /// `--no-restore`: empty state.
    Fresh,
    /// `--restore <uri>`: a checkpoint manifest or savepoint directory.
    From(String),
    /// No flag: the runtime restores the latest completed checkpoint of its own storage (used
    /// when the operator cannot read that storage, e.g. `file://` on a pod volume).
    Latest,
}

/// A change to child objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Delete these pods. `force` sets a zero grace period (lost nodes never confirm).
    DeletePods {
        /// Pod names.
        names: Vec<String>,
        /// Skip the grace period.
        force: bool,
    },
    /// Apply the ConfigMap and Service, then create the pods of `attempt`.
    Launch {
        /// The new attempt number.
        attempt: u32,
        /// Where it starts from.
        restore: Restore,
    },
    /// Ask the runtime at `pod_ip` for a savepoint into `location` (`POST /v1/savepoints`).
    TriggerSavepoint {
        /// The runtime pod's IP.
        pod_ip: String,
        /// Directory URI the savepoint is written to.
        location: String,
    },
    /// Stop the runtime at `pod_ip` with a final savepoint (`POST /v1/stop {savepoint: true}`).
    StopWithSavepoint {
        /// The runtime pod's IP.
        pod_ip: String,
    },
    /// Delete the savepoint at `path` from checkpoint storage.
    DisposeSavepoint {
        /// Directory URI of the savepoint (under the job's storage URI).
        path: String,
    },
}

/// A Kubernetes Event to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Warning (true) or Normal.
    pub warning: bool,
    /// Machine-readable reason.
    pub reason: Reason,
    /// For humans.
    pub message: String,
}

/// The planner's decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Child-object changes, in order.
    pub actions: Vec<Action>,
    /// The status to write.
    pub status: StreamJobStatus,
    /// Conditions to merge into the status.
    pub conditions: Vec<DesiredCondition>,
    /// Events to record.
    pub events: Vec<Note>,
    /// When to look again.
    pub requeue_after: Duration,
    /// Deletion only: every pod is gone and the finalizer may be removed.
    pub cleanup_done: bool,
}

/// Why a new attempt is launched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Why {
    Initial,
    Failure,
    Upgrade,
    Resume,
}

pub(super) struct Planner<'a> {
    pub(super) spec: &'a StreamJobSpec,
    pub(super) old: &'a StreamJobStatus,
    pub(super) obs: &'a Observed,
    pub(super) now: Timestamp,
    pub(super) plan: Plan,
}

/// Decides what to do. Pure: the same inputs always give the same plan.
pub fn plan(spec: &StreamJobSpec, status: &StreamJobStatus, observed: &Observed, now: Timestamp) -> Plan {
    // Status times have second precision (see `ms_to_time`).
    let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
    let mut p = Planner {
        spec,
        old: status,
        obs: observed,
        now,
        plan: Plan {
            actions: vec![],
            status: status.clone(),
            conditions: vec![],
            events: vec![],
            requeue_after: REQUEUE_RUNNING,
            cleanup_done: false,
        },
    };
    p.plan.status.observed_generation = observed.generation;
    p.plan.status.selector = Some(format!("{}={}", sluice_crds::LABEL_JOB, observed.job_name));
    p.run();
    if !observed.deleting {
        p.savepoint_triggers();
    }
    p.savepoint_history();
    p.finish()
}

impl<'a> Planner<'a> {
    pub(super) fn current_attempt(&self) -> u32 {
        self.obs.pods.iter().map(|p| p.attempt).max().unwrap_or(0).max(self.old.attempt)
    }

    pub(super) fn pods_of(&self, attempt: u32) -> Vec<&'a ObservedPod> {
        let obs: &'a Observed = self.obs;
        obs.pods.iter().filter(|p| p.attempt == attempt).collect()
    }

    pub(super) fn set_phase(&mut self, phase: Phase) {
        self.plan.status.phase = phase;
    }

    pub(super) fn cond(&mut self, t: T, status: bool, reason: Reason, message: impl Into<String>) {
        self.plan.conditions.retain(|c| c.type_ != t);
        self.plan.conditions.push(DesiredCondition::new(t, status, reason, message));
    }

    pub(super) fn event(&mut self, warning: bool, reason: Reason, message: impl Into<String>) {
        self.plan.events.push(Note { warning, reason, message: message.into() });
    }

    /// Whether the kubelet of `p` no longer answers: its node is lost, or it is still there
    /// [`STUCK_AFTER`] past the moment its deletion lets the kubelet kill it (an unreachable
    /// node never confirms). Such a pod is force-deleted; see the README on why a process
    /// that may still run there cannot commit after the next attempt starts.
    pub(super) fn unreachable(&self, p: &ObservedPod) -> bool {
        let stuck = jiff::SignedDuration::try_from(STUCK_AFTER).ok();
        p.state == PodState::NodeLost
            || p.deletion_at.zip(stuck).and_then(|(d, s)| d.checked_add(s).ok()).is_some_and(|t| self.now >= t)
    }

    /// Deletes `pods` unless each is already terminating (a pod whose kubelet no longer
    /// answers is force-deleted, again if need be).
    pub(super) fn delete(&mut self, pods: &[&ObservedPod]) {
        let force = pods.iter().any(|p| self.unreachable(p));
        let names: Vec<String> =
            pods.iter().filter(|p| !p.terminating || self.unreachable(p)).map(|p| p.name.clone()).collect();
        if !names.is_empty() {
            self.plan.actions.push(Action::DeletePods { names, force });
        }
    }

    fn run(&mut self) {
        let current = self.current_attempt();
        self.plan.status.attempt = current;
        let obs: &'a Observed = self.obs;
        let stale: Vec<&'a ObservedPod> = obs.pods.iter().filter(|p| p.attempt != current).collect();

        if self.obs.deleting {
            return self.delete_job(current);
        }
        self.end_rollback_on_spec_change();
        if let Some(op) = self.old.operation.clone() {
            // A flow under way owns the pods until it ends (status is its write-ahead log).
            return self.continue_operation(op, current);
        }
        // Pods of older attempts never stay: whatever else happens, they go first.
        self.delete(&stale);

        if let Some(problem) = self.obs.invalid.clone() {
            return self.invalid_spec(current, problem);
        }
        if self.spec.state == DesiredState::Suspended {
            return self.suspend(current);
        }
        // A status without a hash (lost or pre-dating hashes) defers to the pods' annotations.
        let same_spec = self.old.spec_hash.as_deref().is_none_or(|h| h == self.obs.desired_hash);
        if matches!(self.old.phase, Phase::Failed | Phase::Finished) && same_spec && current > 0 {
            // Terminal until the spec (or restartNonce) changes. Exited pods stay for their
            // logs; anything still alive goes.
            let alive: Vec<&'a ObservedPod> = self
                .pods_of(current)
                .into_iter()
                .filter(|p| matches!(p.state, PodState::Pending | PodState::Running { .. } | PodState::NodeLost))
                .collect();
            self.delete(&alive);
            self.plan.requeue_after = REQUEUE_IDLE;
            return;
        }
        if current == 0 {
            let unnumbered = self.pods_of(0);
            self.delete(&unnumbered);
            if self.obs.pods.is_empty() {
                self.relaunch(Why::Initial, 0);
            }
            return;
        }

        let pods = self.pods_of(current);
        let failure = self.failure_of(current, &pods);
        let recovering = self.old.recovery.as_ref().is_some_and(|r| r.failed_attempt == current);
        if let Some(reason) = failure.or_else(|| recovering.then(|| (Reason::PodFailed, String::new()))) {
            return self.recover(current, &pods, reason);
        }
        if matches!(self.old.phase, Phase::Failed | Phase::Finished) {
            // Spec changed after a terminal phase: start over with a fresh restart budget.
            self.plan.status.recent_restarts.clear();
            self.delete(&pods);
            if pods.is_empty() && stale.is_empty() {
                self.relaunch(Why::Upgrade, current);
            }
            return;
        }
        let finished = (!pods.is_empty() && pods.iter().all(|p| p.state == PodState::Succeeded))
            || self.obs.runtime.job_state() == Some(JobState::Finished);
        if finished {
            self.set_phase(Phase::Finished);
            self.cond(T::Ready, false, Reason::Finished, "the job's sources are exhausted and its pods exited 0");
            self.cond(T::Progressing, false, Reason::Finished, "");
            self.cond(T::Degraded, false, Reason::AsExpected, "");
            self.plan.requeue_after = REQUEUE_IDLE;
            self.note_phase_change(false, Reason::Finished, "job finished");
            return;
        }
        let pod_hash_differs = pods.iter().any(|p| p.spec_hash.as_deref() != Some(self.obs.desired_hash.as_str()));
        if (!same_spec || pod_hash_differs) && self.old.phase != Phase::Suspended {
            return self.upgrade(current, &pods);
        }
        if pods.is_empty() {
            if matches!(self.old.phase, Phase::Suspended | Phase::Suspending | Phase::Upgrading) {
                if stale.is_empty() {
                    let why = if self.old.phase == Phase::Upgrading { Why::Upgrade } else { Why::Resume };
                    self.relaunch(why, current);
                }
                return;
            }
            // Pods gone without a reason the operator knows of: treat as a failure.
            return self.recover(
                current,
                &pods,
                (Reason::PodDeleted, format!("the pods of attempt {current} are gone")),
            );
        }
        self.healthy(&pods);
    }

    /// Why the current attempt failed, if it did.
    fn failure_of(&self, current: u32, pods: &[&ObservedPod]) -> Option<(Reason, String)> {
        if let Some((p, kind)) = pods.iter().find_map(|p| p.data_loss.map(|k| (p, k))) {
            let (reason, fallback) = match kind {
                DataLossKind::UncommittableTransaction => {
                    (Reason::UncommittableTransaction, "could not commit a completed checkpoint")
                }
                DataLossKind::RestoreRefused => (Reason::RestoreRefused, "refused to restore"),
            };
            return Some((reason, p.failure.clone().unwrap_or_else(|| format!("pod {} {fallback}", p.name))));
        }
        if let Some(p) = pods.iter().find(|p| p.state == PodState::NodeLost) {
            return Some((
                Reason::NodeLost,
                p.failure.clone().unwrap_or_else(|| format!("node of pod {} lost", p.name)),
            ));
        }
        if let Some(p) = pods.iter().find(|p| p.state == PodState::Failed) {
            return Some((Reason::PodFailed, p.failure.clone().unwrap_or_else(|| format!("pod {} failed", p.name))));
        }
        let deadline = jiff::SignedDuration::try_from(DEPLOY_TIMEOUT).ok();
        let never_started = pods.iter().find(|p| {
            p.state == PodState::Pending
                && !p.terminating
                && p.created_at.zip(deadline).and_then(|(c, d)| c.checked_add(d).ok()).is_some_and(|t| self.now >= t)
        });
        if let Some(p) = never_started {
            let why = p.waiting.clone().unwrap_or_else(|| "still Pending".into());
            let secs = DEPLOY_TIMEOUT.as_secs();
            return Some((Reason::DeployTimeout, format!("pod {} did not start within {secs}s: {why}", p.name)));
        }
        if self.obs.runtime.job_state() == Some(JobState::Failed) {
            return Some((Reason::PodFailed, format!("runtime of attempt {current} reports the job failed")));
        }
        let expects_pods = matches!(self.old.phase, Phase::Deploying | Phase::Running) && self.old.attempt == current;
        let missing = pods.iter().filter(|p| !p.terminating).count() < self.spec.workers as usize;
        let deleted_by_someone = pods.iter().any(|p| p.terminating && p.state != PodState::Succeeded);
        if expects_pods && (missing || deleted_by_someone) {
            return Some((Reason::PodDeleted, format!("a pod of attempt {current} was deleted")));
        }
        None
    }

    fn recover(&mut self, current: u32, pods: &[&ObservedPod], (reason, message): (Reason, String)) {
        let first_seen = self.old.recovery.as_ref().is_none_or(|r| r.failed_attempt != current);
        let recovery = if first_seen {
            RecoveryStatus {
                failed_attempt: current,
                failed_at: Some(Time(self.now)),
                reason: Some(if message.is_empty() { reason.as_str().to_string() } else { message.clone() }),
            }
        } else {
            self.old.recovery.clone().unwrap_or_default()
        };
        let why = recovery.reason.clone().unwrap_or_default();
        if matches!(reason, Reason::UncommittableTransaction | Reason::RestoreRefused) {
            // Every relaunch would restore the same checkpoint and fail the same way: stop and
            // say so. A human decides (restore an earlier savepoint, or accept the loss with
            // `restartNonce`).
            self.delete(pods);
            return self.data_loss(reason, &why);
        }
        if first_seen && self.roll_back(current, pods, &why) {
            return;
        }
        self.plan.status.recovery = Some(recovery.clone());
        self.plan.status.error = Some(why.clone());
        self.set_phase(Phase::Recovering);
        self.cond(T::Ready, false, reason, why.clone());
        self.cond(
            T::Progressing,
            true,
            Reason::StoppingAttempt,
            format!("recovering from the failure of attempt {current}"),
        );
        self.cond(T::Degraded, true, reason, why.clone());
        if first_seen {
            self.event(true, reason, format!("attempt {current} failed: {why}"));
        }
        if !pods.is_empty() || self.obs.pods.iter().any(|p| p.attempt != current) {
            // Every pod of the failed attempt must be gone before the next one starts.
            self.delete(pods);
            self.plan.requeue_after = REQUEUE_BUSY;
            return;
        }
        let strategy = self.spec.restart_strategy.clone().unwrap_or_default();
        let window = jiff::SignedDuration::try_from(strategy.window()).unwrap_or(jiff::SignedDuration::MAX);
        let since = self.now.checked_sub(window).unwrap_or(Timestamp::MIN);
        self.plan.status.recent_restarts.retain(|t| t.0 > since);
        let in_window = self.plan.status.recent_restarts.len() as u32;
        if in_window >= strategy.max_restarts() {
            return self.give_up(&strategy, in_window, &why);
        }
        let delay = strategy.delay(in_window);
        let failed_at = recovery.failed_at.map(|t| t.0).unwrap_or(self.now);
        let ready_at =
            failed_at.checked_add(jiff::SignedDuration::try_from(delay).unwrap_or(jiff::SignedDuration::MAX));
        if let Ok(ready_at) = ready_at
            && self.now < ready_at
        {
            let wait = Duration::try_from(self.now.duration_until(ready_at)).unwrap_or(REQUEUE_BUSY);
            self.cond(
                T::Progressing,
                true,
                Reason::BackoffWaiting,
                format!("relaunching in {}s (backoff)", wait.as_secs()),
            );
            self.plan.requeue_after = wait;
            return;
        }
        self.relaunch(Why::Failure, current);
    }

    /// The job stops with `DataLossRisk`: records of a completed checkpoint were not committed
    /// (`UncommittableTransaction`), or restoring would write committed output again
    /// (`RestoreRefused`).
    fn data_loss(&mut self, reason: Reason, why: &str) {
        let message = if reason == Reason::RestoreRefused {
            format!("restore refused (going on could write committed output again): {why}")
        } else {
            format!("a completed checkpoint's output could not be committed: {why}")
        };
        self.set_phase(Phase::Failed);
        self.plan.status.recovery = None;
        self.plan.status.error = Some(message.clone());
        self.cond(T::DataLossRisk, true, reason, message.clone());
        self.cond(T::Ready, false, reason, message.clone());
        self.cond(T::Progressing, false, reason, "the job will not be restarted until its spec changes (restartNonce)");
        self.cond(T::Degraded, true, reason, message.clone());
        self.event(true, reason, message);
        self.plan.requeue_after = REQUEUE_IDLE;
    }

    fn give_up(&mut self, strategy: &RestartStrategy, in_window: u32, why: &str) {
        let message = format!(
            "restarted {in_window} times within {}s (maxRestarts {}); last failure: {why}",
            strategy.window().as_secs(),
            strategy.max_restarts()
        );
        self.set_phase(Phase::Failed);
        self.plan.status.recovery = None;
        self.plan.status.error = Some(message.clone());
        self.cond(T::Ready, false, Reason::RestartLimitExceeded, message.clone());
        self.cond(
            T::Progressing,
            false,
            Reason::RestartLimitExceeded,
            "the job will not be restarted until its spec changes",
        );
        self.cond(T::Degraded, true, Reason::RestartLimitExceeded, message.clone());
        self.event(true, Reason::RestartLimitExceeded, message);
        self.plan.requeue_after = REQUEUE_IDLE;
    }

    fn invalid_spec(&mut self, current: u32, problem: String) {
        let running =
            self.pods_of(current).iter().any(|p| matches!(p.state, PodState::Running { .. } | PodState::Pending));
        if !running {
            self.set_phase(Phase::Failed);
        }
        let message = if running { format!("{problem} (the running attempt is kept)") } else { problem.clone() };
        self.plan.status.error = Some(problem.clone());
        self.cond(T::Degraded, true, Reason::InvalidSpec, message.clone());
        self.cond(T::Progressing, false, Reason::InvalidSpec, message.clone());
        if !running {
            self.cond(T::Ready, false, Reason::InvalidSpec, message.clone());
        }
        let already = sluice_crds::conditions::find(&self.old.conditions, T::Degraded)
            .is_some_and(|c| c.reason == Reason::InvalidSpec.as_str() && c.message == message);
        if !already {
            self.event(true, Reason::InvalidSpec, message);
        }
        self.plan.requeue_after = REQUEUE_IDLE;
    }

    /// Launches attempt `current + 1` — only ever called when no pod of any attempt exists.
    pub(super) fn relaunch(&mut self, why: Why, current: u32) {
        if !self.obs.pods.is_empty() {
            return;
        }
        let restore = match self.restore_for(why) {
            Ok(r) => r,
            Err(message) => {
                self.cond(T::CheckpointHealthy, false, Reason::StorageUnavailable, message.clone());
                self.cond(
                    T::Degraded,
                    true,
                    Reason::StorageUnavailable,
                    format!("waiting for checkpoint storage: {message}"),
                );
                self.plan.requeue_after = REQUEUE_STORAGE;
                return;
            }
        };
        let attempt = current + 1;
        if why == Why::Initial {
            // Trigger values present at the first deploy are not triggers.
            let sp = self.plan.status.savepoints.get_or_insert_with(Default::default);
            sp.observed_annotation = self.obs.annotation.clone();
            sp.observed_nonce = self.spec.savepoint_trigger_nonce;
        }
        let s = &mut self.plan.status;
        s.operation = None;
        s.resume_from = None;
        s.attempt = attempt;
        s.spec_hash = Some(self.obs.desired_hash.clone());
        s.parallelism = Some(self.spec.parallelism);
        s.restored_from = match &restore {
            Restore::From(p) => Some(p.clone()),
            Restore::Fresh | Restore::Latest => None,
        };
        s.recovery = None;
        if why == Why::Failure {
            s.restarts += 1;
            s.recent_restarts.push(Time(self.now));
        }
        self.plan.actions.push(Action::Launch { attempt, restore: restore.clone() });
        self.set_phase(Phase::Deploying);
        let (reason, verb) = match why {
            Why::Failure => (Reason::Relaunched, "relaunching after a failure"),
            Why::Initial => (Reason::Deploying, "deploying"),
            Why::Upgrade => (Reason::SpecChanged, "deploying the new spec"),
            Why::Resume => (Reason::Deploying, "resuming"),
        };
        let from = match &restore {
            Restore::From(p) => format!("restoring from {p}"),
            Restore::Fresh => "with empty state".to_string(),
            Restore::Latest => "restoring the latest checkpoint in its storage".to_string(),
        };
        self.cond(T::Ready, false, Reason::Deploying, format!("attempt {attempt} starting"));
        self.cond(T::Progressing, true, reason, format!("{verb}: attempt {attempt} {from}"));
        self.event(false, reason, format!("{verb}: attempt {attempt} {from}"));
        self.plan.requeue_after = REQUEUE_BUSY;
    }

    /// The restore point for a relaunch, or why storage must be waited for.
    fn restore_for(&self, why: Why) -> Result<Restore, String> {
        let initial = || self.spec.initial_savepoint_path.clone().map(Restore::From).unwrap_or(Restore::Fresh);
        let op = self.old.operation.as_ref();
        if let Some(path) = op.filter(|o| o.restore == RestoreMode::Savepoint).and_then(|o| o.savepoint_path.clone()) {
            return Ok(Restore::From(path));
        }
        if let (Why::Resume, Some(path)) = (why, self.old.resume_from.clone()) {
            return Ok(Restore::From(path));
        }
        let stateful = match (why, op.map(|o| o.restore)) {
            (Why::Initial, _) => return Ok(initial()),
            (_, Some(RestoreMode::Fresh)) => false,
            (_, Some(_)) => true,
            (Why::Upgrade, None) => self.spec.upgrade_mode != UpgradeMode::Stateless,
            (Why::Failure | Why::Resume, None) => true,
        };
        if !stateful {
            return Ok(Restore::Fresh);
        }
        match &self.obs.store {
            StoreObservation::NotConfigured => Ok(initial()),
            // The runtime applies the one restore rule to its own storage (verifying state files,
            // refusing to fall back past committed output); `--restore` would bypass it.
            StoreObservation::Latest(Some(_)) => Ok(Restore::Latest),
            StoreObservation::Latest(None) => Ok(initial()),
            StoreObservation::Unavailable(e) => Err(e.clone()),
            StoreObservation::RuntimeManaged => Ok(Restore::Latest),
        }
    }

    pub(super) fn healthy(&mut self, pods: &[&ObservedPod]) {
        let ready = !pods.is_empty() && pods.iter().all(|p| p.state == PodState::Running { ready: true });
        self.plan.status.error = None;
        self.plan.status.recovery = None;
        if let (None, RuntimeObservation::Status(s)) = (&self.plan.status.restored_from, &self.obs.runtime) {
            // A relaunch from the latest checkpoint: the runtime chose it and says which.
            self.plan.status.restored_from = s.restored_from.clone();
        }
        if self.plan.status.spec_hash.is_none() {
            // Adopted pods (status lost): they run the desired spec, so record it.
            self.plan.status.spec_hash = Some(self.obs.desired_hash.clone());
            self.plan.status.parallelism = Some(self.spec.parallelism);
        }
        self.cond(T::Degraded, false, Reason::AsExpected, "");
        if ready {
            self.set_phase(Phase::Running);
            self.cond(T::Ready, true, Reason::Running, format!("attempt {} is running", self.plan.status.attempt));
            self.cond(T::Progressing, false, Reason::Running, "");
            self.plan.requeue_after = REQUEUE_RUNNING;
            self.note_phase_change(false, Reason::Running, &format!("attempt {} is running", self.plan.status.attempt));
        } else if let Some((name, why)) = pods.iter().find_map(|p| p.waiting.clone().map(|w| (p.name.clone(), w))) {
            // Not started, and the kubelet or scheduler says why: tell the user, once per cause.
            self.set_phase(Phase::Deploying);
            let message = format!("pod {name} is not starting: {why}");
            let told =
                sluice_crds::conditions::find(&self.old.conditions, T::Ready).is_some_and(|c| c.message == message);
            if !told {
                self.event(true, Reason::PodPending, message.clone());
            }
            self.cond(T::Ready, false, Reason::PodPending, message);
            self.cond(
                T::Progressing,
                true,
                Reason::Deploying,
                format!("attempt {} starting (fails after {}s)", self.plan.status.attempt, DEPLOY_TIMEOUT.as_secs()),
            );
            self.plan.requeue_after = REQUEUE_BUSY;
        } else {
            self.set_phase(Phase::Deploying);
            self.cond(T::Ready, false, Reason::PodsNotReady, "waiting for the runtime to become ready");
            self.cond(
                T::Progressing,
                true,
                Reason::Deploying,
                format!("attempt {} starting", self.plan.status.attempt),
            );
            self.plan.requeue_after = REQUEUE_BUSY;
        }
        self.note_stable();
    }

    pub(super) fn note_phase_change(&mut self, warning: bool, reason: Reason, message: &str) {
        if self.old.phase != self.plan.status.phase {
            self.event(warning, reason, message.to_string());
        }
    }

    /// Fills in checkpoint status and the CheckpointHealthy condition.
    fn finish(mut self) -> Plan {
        let latest = match (&self.obs.runtime, &self.obs.store) {
            (RuntimeObservation::Status(s), _) if s.latest.is_some() => s.latest.as_ref().map(|c| CheckpointStatus {
                id: c.id.0,
                path: c.path.clone(),
                completed_at: ms_to_time(c.completed_at_ms),
                size_bytes: Some(c.size_bytes),
                duration_ms: Some(c.duration_ms),
            }),
            (_, StoreObservation::Latest(Some(p))) => Some(CheckpointStatus {
                id: p.id,
                path: p.path.clone(),
                completed_at: ms_to_time(p.completed_at_ms),
                size_bytes: Some(p.size_bytes),
                duration_ms: Some(p.duration_ms),
            }),
            _ => self.old.checkpoints.as_ref().and_then(|c| c.latest.clone()),
        };
        let latest = self.rate_limited(latest);
        if latest.is_some() {
            self.plan.status.checkpoints = Some(CheckpointsStatus { latest });
        }
        if !self.plan.conditions.iter().any(|c| c.type_ == T::CheckpointHealthy) {
            let (ok, reason, message) = match (&self.obs.store, &self.obs.runtime) {
                (StoreObservation::NotConfigured, _) => (true, Reason::CheckpointingDisabled, String::new()),
                (StoreObservation::Unavailable(e), _) => (false, Reason::StorageUnavailable, e.clone()),
                (_, RuntimeObservation::Status(s)) if s.consecutive_failures > 0 => (
                    false,
                    Reason::CheckpointsFailing,
                    format!(
                        "{} consecutive checkpoint failures: {}",
                        s.consecutive_failures,
                        s.last_failure.clone().unwrap_or_default()
                    ),
                ),
                _ if self.plan.status.checkpoints.as_ref().and_then(|c| c.latest.as_ref()).is_none() => {
                    (false, Reason::NoCheckpointYet, String::new())
                }
                _ => (true, Reason::CheckpointCompleted, String::new()),
            };
            self.cond(T::CheckpointHealthy, ok, reason, message);
        }
        self.plan
    }
}

impl Planner<'_> {
    /// The newest checkpoint to report, holding back one that completed less than
    /// [`CHECKPOINT_STATUS_INTERVAL`] after the one in status: checkpoints complete every few
    /// seconds, and each status write wakes every watcher of the object (this operator included).
    fn rate_limited(&self, latest: Option<CheckpointStatus>) -> Option<CheckpointStatus> {
        let old = self.old.checkpoints.as_ref().and_then(|c| c.latest.clone());
        let (Some(new), Some(old)) = (latest.clone(), old) else { return latest };
        let apart = match (&new.completed_at, &old.completed_at) {
            (Some(n), Some(o)) => Duration::try_from(o.0.duration_until(n.0)).ok(),
            _ => None,
        };
        match apart {
            Some(d) if new.id > old.id && d < CHECKPOINT_STATUS_INTERVAL => Some(old),
            _ => Some(new),
        }
    }
}

/// Least time between the completions of two checkpoints reported one after the other in
/// `status.checkpoints.latest`.
pub const CHECKPOINT_STATUS_INTERVAL: Duration = Duration::from_secs(30);

/// Whole seconds: a `metav1.Time` is written with second precision, so finer times would read
/// back different and make every reconcile rewrite an unchanged status.
fn ms_to_time(ms: u64) -> Option<Time> {
    i64::try_from(ms / 1000).ok().and_then(|s| Timestamp::from_second(s).ok()).map(Time)
}
