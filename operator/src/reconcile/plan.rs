//! The planner: a pure function `(spec, status, observed, now) -> Plan`. No client, no clock.
//!
//! Invariant (checked by property tests): a plan launches an attempt only when no pod of any
//! attempt exists any more, and the launched attempt is newer than every attempt seen — so two
//! attempts are never alive at once and an old writer cannot commit after a new one started.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sluice_crds::conditions::{ConditionType as T, DesiredCondition, Reason};
use sluice_crds::contract::control::JobState;
use sluice_crds::savepoints::RestoreMode;
use sluice_crds::stream_job::{DesiredState, UpgradeMode};
use sluice_crds::workers::WorkersStatus;
use sluice_crds::{Phase, StreamJobSpec, StreamJobStatus};

use super::observe::{Observed, ObservedPod, PodState, StoreObservation};

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

    /// How many worker pods `attempt` has: what its pods say, else (none seen) the spec's.
    pub(super) fn workers_of(&self, attempt: u32) -> u32 {
        self.pods_of(attempt).iter().map(|p| p.workers).max().unwrap_or(self.spec.workers)
    }

    /// Worker 0 of `attempt`: the pod whose control endpoint takes savepoints and stops.
    pub(super) fn coordinator_of(&self, attempt: u32) -> Option<&'a ObservedPod> {
        let obs: &'a Observed = self.obs;
        super::observe::coordinator(&obs.pods, attempt)
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
            return self.stay_terminal(current);
        }
        if current == 0 {
            let unnumbered = self.pods_of(0);
            self.delete(&unnumbered);
            if self.obs.pods.is_empty() {
                self.relaunch(Why::Initial, 0);
            }
            return;
        }

        self.run_attempt(current, same_spec, &stale);
    }

    /// Terminal until the spec (or restartNonce) changes. Exited pods stay for their logs;
    /// anything still alive goes.
    fn stay_terminal(&mut self, current: u32) {
        let alive: Vec<&'a ObservedPod> = self
            .pods_of(current)
            .into_iter()
            .filter(|p| matches!(p.state, PodState::Pending | PodState::Running { .. } | PodState::NodeLost))
            .collect();
        self.delete(&alive);
        self.plan.requeue_after = REQUEUE_IDLE;
    }

    /// The current attempt (≥ 1), no flow under way: recover it, start it over after a terminal
    /// phase, note it finished, upgrade it, relaunch it, or report it healthy.
    fn run_attempt(&mut self, current: u32, same_spec: bool, stale: &[&'a ObservedPod]) {
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
            return self.finished();
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

    /// Launches attempt `current + 1` — only ever called when no pod of any attempt exists.
    pub(super) fn relaunch(&mut self, why: Why, current: u32) {
        if !self.obs.pods.is_empty() {
            return;
        }
        let restore = match self.restore_for(why) {
            Ok(r) => r,
            Err(StorageUnavailable(message)) => {
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
        s.workers = Some(WorkersStatus { ready: 0, desired: self.spec.workers });
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
    fn restore_for(&self, why: Why) -> Result<Restore, StorageUnavailable> {
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
            StoreObservation::Unavailable(e) => Err(StorageUnavailable(e.clone())),
            StoreObservation::RuntimeManaged => Ok(Restore::Latest),
        }
    }

    pub(super) fn note_phase_change(&mut self, warning: bool, reason: Reason, message: &str) {
        if self.old.phase != self.plan.status.phase {
            self.event(warning, reason, message.to_string());
        }
    }
}

/// A relaunch that needs the latest checkpoint waits: the job's storage could not be read (the
/// store's error, as the observation recorded it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct StorageUnavailable(String);

pub use super::running::CHECKPOINT_STATUS_INTERVAL;
