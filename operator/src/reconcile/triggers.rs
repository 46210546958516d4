//! Savepoint triggers of the planner: a new annotation value or nonce records a Pending
//! savepoint in status (the runtime is asked on the next reconcile, once that is persisted),
//! an in-flight one is followed to completion, and the history is bounded — savepoints that
//! fall out are queued for disposal, and queued disposals are carried out.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sluice_crds::conditions::{ConditionType as T, Reason};
use sluice_crds::contract::control::SavepointState as RuntimeState;
use sluice_crds::savepoints::{SavepointDisposal, SavepointInfo, SavepointState, SavepointTrigger, SavepointsStatus};

use super::flow::{NoSavepoint, why_of};
use super::observe::SavepointPoll;
use super::plan::{Action, Planner, REQUEUE_BUSY, REQUEUE_NOW};
use crate::savepoint::{self, NewTrigger};

/// Grace on top of the checkpoint timeout before an unanswered savepoint counts as failed.
const SAVEPOINT_GRACE: Duration = Duration::from_secs(60);

fn in_flight(info: &SavepointInfo) -> bool {
    matches!(info.state, SavepointState::Pending | SavepointState::InProgress)
}

impl Planner<'_> {
    fn savepoints_mut(&mut self) -> &mut SavepointsStatus {
        self.plan.status.savepoints.get_or_insert_with(Default::default)
    }

    fn last_in_flight(&self) -> Option<SavepointInfo> {
        self.plan.status.savepoints.as_ref().and_then(|s| s.last.clone()).filter(in_flight)
    }

    /// Acts on new trigger values and follows the savepoint in flight.
    pub(super) fn savepoint_triggers(&mut self) {
        if let Some(last) = self.last_in_flight()
            && matches!(
                last.trigger,
                SavepointTrigger::Annotation | SavepointTrigger::Nonce | SavepointTrigger::Periodic
            )
        {
            // One triggered savepoint at a time; newer values wait for it.
            return self.follow(last);
        }
        let seen = self.plan.status.savepoints.clone();
        let trigger =
            savepoint::new_triggers(self.obs.annotation.as_deref(), self.spec.savepoint_trigger_nonce, seen.as_ref())
                .into_iter()
                .next();
        let (value, kind) = match &trigger {
            Some(NewTrigger::Annotation(v)) => {
                self.savepoints_mut().observed_annotation = Some(v.clone());
                (v.clone(), SavepointTrigger::Annotation)
            }
            Some(NewTrigger::Nonce(n)) => {
                self.savepoints_mut().observed_nonce = Some(*n);
                (n.to_string(), SavepointTrigger::Nonce)
            }
            None => match self.periodic_due() {
                Some(value) => (value, SavepointTrigger::Periodic),
                None => return,
            },
        };
        let mut info = SavepointInfo { value, trigger: kind, started_at: Some(Time(self.now)), ..Default::default() };
        let current = self.current_attempt();
        let target = match (&self.plan.status.operation, self.plan.status.phase) {
            (Some(op), _) => Err(NoSavepoint::Busy(op.kind)),
            (None, sluice_crds::Phase::Running) => self.savepoint_target(current),
            (None, phase) => Err(NoSavepoint::NotRunning(phase)),
        };
        let spec = self.spec;
        match (target, &spec.checkpointing) {
            (Ok(_), Some(c)) => {
                let path =
                    savepoint::trigger_location(&c.storage.uri, self.obs.uid.as_deref(), self.now.as_millisecond());
                info.path = Some(path.clone());
                self.event(
                    false,
                    Reason::SavepointTriggered,
                    format!("savepoint {} triggered into {path}", info.value),
                );
                self.cond(T::SavepointInProgress, true, Reason::SavepointTriggered, path);
                self.plan.requeue_after = self.plan.requeue_after.min(REQUEUE_NOW);
            }
            (target, _) => {
                let why = why_of(target).to_string();
                info.state = SavepointState::Failed;
                info.completed_at = Some(Time(self.now));
                info.error = Some(why.clone());
                self.event(true, Reason::SavepointFailed, format!("savepoint {} failed: {why}", info.value));
            }
        }
        self.savepoints_mut().last = Some(info);
    }

    /// Whether `spec.periodicSavepointInterval` asks for a savepoint now (its value: the time).
    /// The schedule counts from the first reconcile that sees the job running with an interval
    /// set, and from each periodic trigger on; a job that is not running (or busy with an
    /// upgrade, suspend or deletion) skips its turn rather than recording a failure.
    fn periodic_due(&mut self) -> Option<String> {
        let interval = SignedDuration::try_from(Duration::from(self.spec.periodic_savepoint_interval?)).ok()?;
        let running = self.plan.status.operation.is_none()
            && self.plan.status.phase == sluice_crds::Phase::Running
            && self.savepoint_target(self.current_attempt()).is_ok();
        if !running {
            return None;
        }
        let now = self.now;
        let sp = self.savepoints_mut();
        let Some(since) = sp.last_periodic.as_ref().map(|t| t.0) else {
            sp.last_periodic = Some(Time(now));
            self.plan.requeue_after = self.plan.requeue_after.min(interval.unsigned_abs());
            return None;
        };
        match since.checked_add(interval) {
            Ok(due) if now >= due => {
                sp.last_periodic = Some(Time(now));
                Some(format!("periodic-{}", now.as_millisecond()))
            }
            Ok(due) => {
                let wait = now.duration_until(due).unsigned_abs();
                self.plan.requeue_after = self.plan.requeue_after.min(wait);
                None
            }
            Err(_) => None,
        }
    }

    fn follow(&mut self, last: SavepointInfo) {
        let path = last.path.clone().unwrap_or_default();
        self.cond(T::SavepointInProgress, true, Reason::SavepointTriggered, path.clone());
        if let Some(why) = self.obs.foreign_savepoints.get(&path) {
            let why = format!("{path} holds a savepoint that is not this job's: {why}");
            return self.record_failed(last.trigger, &path, &why);
        }
        if self.obs.savepoints_found.get(&path) == Some(&true) {
            return self.record_completed(last.trigger, &path);
        }
        let current = self.current_attempt();
        let target = self.savepoint_target(current);
        match (last.state, &last.request_id, &self.obs.savepoint_poll) {
            (SavepointState::Pending, _, _) => match target {
                Ok(pod_ip) => {
                    self.plan.actions.push(Action::TriggerSavepoint { pod_ip, location: path });
                    self.plan.requeue_after = self.plan.requeue_after.min(REQUEUE_BUSY);
                }
                Err(why) => self.record_failed(last.trigger, &path, &why.to_string()),
            },
            (_, _, Some(SavepointPoll::Status(s))) => match s.state {
                RuntimeState::Completed => {
                    let at = s.location.clone().unwrap_or(path);
                    self.record_completed(last.trigger, &at);
                }
                RuntimeState::Failed => {
                    let why = s.error.clone().unwrap_or_else(|| "the runtime reports it failed".into());
                    self.record_failed(last.trigger, &path, &why);
                }
                RuntimeState::Pending => self.fail_if_overdue(&last),
            },
            (_, _, Some(SavepointPoll::Unknown)) => {
                self.record_failed(last.trigger, &path, "the runtime that took it is gone (no such savepoint id)")
            }
            (_, _, _) if target.is_err() && self.pods_of(current).is_empty() => {
                self.record_failed(last.trigger, &path, "the job stopped before the savepoint completed")
            }
            _ => self.fail_if_overdue(&last),
        }
    }

    fn fail_if_overdue(&mut self, last: &SavepointInfo) {
        let timeout = self.spec.checkpointing.as_ref().map(|c| c.to_job_config().timeout).unwrap_or_default();
        let limit = SignedDuration::try_from(timeout + SAVEPOINT_GRACE).unwrap_or(SignedDuration::MAX);
        let started = last.started_at.as_ref().map(|t| t.0).unwrap_or(self.now);
        if started.checked_add(limit).is_ok_and(|deadline| self.now > deadline) {
            let why = format!("not complete after {}s", limit.as_secs());
            self.record_failed(last.trigger, last.path.as_deref().unwrap_or_default(), &why);
        } else {
            self.plan.requeue_after = self.plan.requeue_after.min(REQUEUE_BUSY);
        }
    }

    /// Marks the savepoint at `path` completed in `last` and adds it to history (once).
    pub(super) fn record_completed(&mut self, trigger: SavepointTrigger, path: &str) {
        let now = Time(self.now);
        let sp = self.savepoints_mut();
        let mut info = sp.last.clone().filter(|l| l.trigger == trigger && in_flight(l)).unwrap_or_else(|| {
            SavepointInfo { value: format!("{trigger:?}").to_lowercase(), trigger, ..Default::default() }
        });
        if sp.history.iter().any(|h| h.path.as_deref() == Some(path)) {
            return;
        }
        info.state = SavepointState::Completed;
        info.path = Some(path.to_string());
        info.completed_at = Some(now.clone());
        info.started_at = info.started_at.or(Some(now));
        info.error = None;
        sp.history.insert(0, info.clone());
        sp.last = Some(info);
        self.event(false, Reason::SavepointCompleted, format!("savepoint completed at {path}"));
        self.cond(T::SavepointInProgress, false, Reason::SavepointCompleted, path.to_string());
    }

    /// Marks the savepoint at `path` failed in `last`.
    pub(super) fn record_failed(&mut self, trigger: SavepointTrigger, path: &str, why: &str) {
        let now = Time(self.now);
        let sp = self.savepoints_mut();
        let mut info = sp.last.clone().filter(|l| l.trigger == trigger && in_flight(l)).unwrap_or_else(|| {
            SavepointInfo { value: format!("{trigger:?}").to_lowercase(), trigger, ..Default::default() }
        });
        info.state = SavepointState::Failed;
        info.path = (!path.is_empty()).then(|| path.to_string());
        info.completed_at = Some(now.clone());
        info.started_at = info.started_at.or(Some(now));
        info.error = Some(why.to_string());
        sp.last = Some(info);
        self.event(true, Reason::SavepointFailed, format!("savepoint at {path} failed: {why}"));
        self.cond(T::SavepointInProgress, false, Reason::SavepointFailed, why.to_string());
    }

    /// Bounds the history, queues what falls out for disposal (per `savepointDisposal`), and
    /// disposes of what an earlier (persisted) status queued. Sets `SavepointInProgress`.
    pub(super) fn savepoint_history(&mut self) {
        let limits = self.spec.savepoint_history.clone().unwrap_or_default();
        let delete = self.spec.savepoint_disposal == Some(SavepointDisposal::Delete);
        let uri = self.spec.checkpointing.as_ref().map(|c| c.storage.uri.clone());
        let protected: Vec<String> = [
            self.plan.status.resume_from.clone(),
            self.plan.status.restored_from.clone(),
            self.plan.status.operation.as_ref().and_then(|o| o.savepoint_path.clone()),
        ]
        .into_iter()
        .flatten()
        .collect();
        let cutoff = limits
            .max_age()
            .and_then(|a| SignedDuration::try_from(a).ok())
            .and_then(|a| self.now.checked_sub(a).ok())
            .unwrap_or(Timestamp::MIN);
        if let Some(sp) = self.plan.status.savepoints.as_mut() {
            let mut kept = Vec::new();
            for (i, h) in std::mem::take(&mut sp.history).into_iter().enumerate() {
                let young = h.completed_at.as_ref().is_none_or(|t| t.0 >= cutoff);
                if i < limits.max_count() && young {
                    kept.push(h);
                } else if let (true, Some(path), Some(uri)) = (delete, h.path.clone(), &uri)
                    && savepoint::key_prefix(uri, &path).is_some()
                    && !protected.contains(&path)
                    && !sp.pending_disposal.contains(&path)
                {
                    sp.pending_disposal.push(path);
                }
            }
            sp.history = kept;
        }
        // Only disposals already persisted are carried out (status first, then storage).
        let queued = self.old.savepoints.as_ref().map(|s| s.pending_disposal.clone()).unwrap_or_default();
        if uri.is_some() {
            for path in queued {
                self.plan.actions.push(Action::DisposeSavepoint { path });
            }
        } else if let Some(sp) = self.plan.status.savepoints.as_mut() {
            // No storage configured any more: nothing can be deleted.
            sp.pending_disposal.clear();
        }
        let busy = self.last_in_flight().is_some()
            || self
                .plan
                .status
                .operation
                .as_ref()
                .is_some_and(|o| o.step == sluice_crds::savepoints::OperationStep::Savepoint && o.error.is_none());
        let was_idle = sluice_crds::conditions::find(&self.old.conditions, T::SavepointInProgress)
            .is_some_and(|c| c.status == "False");
        if !self.plan.conditions.iter().any(|c| c.type_ == T::SavepointInProgress) {
            if busy {
                self.cond(T::SavepointInProgress, true, Reason::SavepointTriggered, "");
            } else if !was_idle {
                // An idle condition keeps the reason of the last savepoint (no status churn).
                self.cond(T::SavepointInProgress, false, Reason::AsExpected, "");
            }
        }
    }
}
