//! A running attempt: healthy or still starting ([`Planner::healthy`]), finished, and the
//! checkpoint status and condition every plan ends with ([`Planner::finish`]).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sluice_crds::Phase;
use sluice_crds::conditions::{ConditionType as T, Reason};
use sluice_crds::stream_job::{CheckpointStatus, CheckpointsStatus};
use sluice_crds::workers::WorkersStatus;

use super::observe::{ObservedPod, PodState, RuntimeObservation, StoreObservation};
use super::plan::{DEPLOY_TIMEOUT, Plan, Planner, REQUEUE_BUSY, REQUEUE_IDLE, REQUEUE_RUNNING};

impl Planner<'_> {
    /// The job's sources are exhausted and its pods exited 0.
    pub(super) fn finished(&mut self) {
        self.set_phase(Phase::Finished);
        self.cond(T::Ready, false, Reason::Finished, "the job's sources are exhausted and its pods exited 0");
        self.cond(T::Progressing, false, Reason::Finished, "");
        self.cond(T::Degraded, false, Reason::AsExpected, "");
        self.plan.requeue_after = REQUEUE_IDLE;
        self.note_phase_change(false, Reason::Finished, "job finished");
    }

    /// The attempt's pods run (or are starting): Running when all are ready, else Deploying
    /// with the reason a pod is not starting.
    pub(super) fn healthy(&mut self, pods: &[&ObservedPod]) {
        let expected = self.workers_of(self.plan.status.attempt) as usize;
        let ready = !pods.is_empty()
            && pods.len() >= expected
            && pods.iter().all(|p| p.state == PodState::Running { ready: true });
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

    /// Fills in checkpoint status and the CheckpointHealthy condition.
    pub(super) fn finish(mut self) -> Plan {
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
        self.workers_status();
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

    /// `status.workers` of the current attempt: its worker pods, and how many are ready.
    fn workers_status(&mut self) {
        let attempt = self.plan.status.attempt;
        if attempt == 0 {
            return;
        }
        let pods = self.pods_of(attempt);
        let ready = pods.iter().filter(|p| p.state == PodState::Running { ready: true } && !p.terminating).count();
        let desired = self.workers_of(attempt);
        self.plan.status.workers = Some(WorkersStatus { ready: u32::try_from(ready).unwrap_or(u32::MAX), desired });
    }

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
