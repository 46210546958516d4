//! Failures of an attempt: what counts as one ([`Planner::failure_of`]), recovery with the
//! restart budget and backoff ([`Planner::recover`], rolling back where asked), the stops that
//! wait for a person (`DataLossRisk`, an exhausted budget) and an invalid spec.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sluice_crds::Phase;
use sluice_crds::conditions::{ConditionType as T, Reason};
use sluice_crds::contract::control::{DataLossKind, JobState};
use sluice_crds::restart::RestartStrategy;
use sluice_crds::stream_job::RecoveryStatus;

use super::observe::{ObservedPod, PodState};
use super::plan::{DEPLOY_TIMEOUT, Planner, REQUEUE_BUSY, REQUEUE_IDLE, Why};

impl Planner<'_> {
    /// Why the current attempt failed, if it did.
    pub(super) fn failure_of(&self, current: u32, pods: &[&ObservedPod]) -> Option<(Reason, String)> {
        if let Some((p, kind)) = pods.iter().find_map(|p| p.data_loss.map(|k| (p, k))) {
            let (reason, fallback) = match kind {
                DataLossKind::UncommittableTransaction => {
                    (Reason::UncommittableTransaction, "could not commit a completed checkpoint")
                }
                DataLossKind::RestoreRefused => (Reason::RestoreRefused, "refused to restore"),
            };
            return Some((reason, p.failure.clone().unwrap_or_else(|| format!("pod {} {fallback}", p.name))));
        }
        if let Some(p) = pods.iter().find(|p| p.invalid_job) {
            return Some((
                Reason::InvalidSpec,
                p.failure.clone().unwrap_or_else(|| format!("pod {} refused the job document", p.name)),
            ));
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
        let expected = self.workers_of(current);
        let live = pods.iter().filter(|p| !p.terminating).count();
        let deleted_by_someone = pods.iter().any(|p| p.terminating && p.state != PodState::Succeeded);
        if expects_pods && (live < expected as usize || deleted_by_someone) {
            return Some((Reason::PodDeleted, format!("a pod of attempt {current} was deleted")));
        }
        if !pods.is_empty() && live < expected as usize {
            // Some workers but not all (a launch cut short, or the status of one lost): the
            // others wait for their peers in vain, so the attempt fails and starts over whole.
            let gone: Vec<String> = (0..expected)
                .filter(|i| !pods.iter().any(|p| p.index == *i && !p.terminating))
                .map(|i| crate::build::labels::pod_name(&self.obs.job_name, current, i))
                .collect();
            let message =
                format!("attempt {current} has {live} of its {expected} worker pods: {} missing", gone.join(", "));
            return Some((Reason::PodDeleted, message));
        }
        None
    }

    pub(super) fn recover(&mut self, current: u32, pods: &[&ObservedPod], (reason, message): (Reason, String)) {
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
        if matches!(reason, Reason::InvalidSpec) {
            // The runtime refused the document before running anything (exit 65): every
            // relaunch would be refused alike, so the job fails until the spec changes.
            self.delete(pods);
            return self.refuse_spec(why, false);
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
    pub(super) fn data_loss(&mut self, reason: Reason, why: &str) {
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

    pub(super) fn give_up(&mut self, strategy: &RestartStrategy, in_window: u32, why: &str) {
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

    pub(super) fn invalid_spec(&mut self, current: u32, problem: String) {
        let running =
            self.pods_of(current).iter().any(|p| matches!(p.state, PodState::Running { .. } | PodState::Pending));
        self.refuse_spec(problem, running);
    }

    /// The spec cannot run: `Failed` with `InvalidSpec`, unless an attempt of an earlier spec is
    /// `running` (kept, and said so).
    fn refuse_spec(&mut self, problem: String, running: bool) {
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
}
