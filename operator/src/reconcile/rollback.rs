//! Rollback (`spec.rollbackOnFailedUpgrade`, the Flink Kubernetes Operator's `lastStableSpec`):
//! a spec is *stable* once an attempt built from it completes a checkpoint; when an attempt of a
//! newer spec fails before that, the job goes back to the last stable spec instead of retrying
//! the new one.
//!
//! The planner records the stable spec in status and, on such a failure, the hash of the spec
//! that failed (`status.rolledBackFrom`); it deletes the failed attempt's pods and relaunches
//! nothing in that reconcile. From then on, while the StreamJob's spec is still the one that
//! failed, [`effective_spec`] hands every reconcile the stable spec instead — observe, plan and
//! apply all see it, so the relaunch restores the latest checkpoint with pods built from the
//! stable spec, and the failed spec's hash never looks like a pending upgrade. The next change
//! of the spec ends it (an ordinary upgrade to the new spec).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sluice_crds::conditions::{ConditionType as T, Reason};
use sluice_crds::stream_job::{RecoveryStatus, StableSpec};
use sluice_crds::{StreamJobSpec, StreamJobStatus};

use super::observe::{ObservedPod, RuntimeObservation};
use super::plan::{Planner, REQUEUE_NOW};

/// The spec to reconcile: the last stable one while the StreamJob's spec (with hash
/// `spec_hash`) is the one rolled back from, else `None` (the StreamJob's own).
pub fn effective_spec(status: &StreamJobStatus, spec_hash: &str) -> Option<StreamJobSpec> {
    if status.rolled_back_from.as_deref() != Some(spec_hash) {
        return None;
    }
    let stable = status.last_stable_spec.as_ref()?;
    match serde_json::from_str(&stable.spec) {
        Ok(spec) => Some(spec),
        Err(e) => {
            tracing::warn!(error = %e, "status.lastStableSpec does not decode: reconciling the object's spec");
            None
        }
    }
}

impl Planner<'_> {
    /// Records the current spec as stable once its attempt has completed a checkpoint, and
    /// says so while the job runs a rolled-back spec.
    pub(super) fn note_stable(&mut self) {
        let desired = self.obs.desired_hash.clone();
        if let Some(from) = self.plan.status.rolled_back_from.clone() {
            self.cond(
                T::Degraded,
                true,
                Reason::RolledBack,
                format!("running the last stable spec: the spec with hash {from} failed before its first checkpoint"),
            );
        }
        let completed = matches!(&self.obs.runtime, RuntimeObservation::Status(s) if s.completed > 0);
        let running_desired = self.plan.status.spec_hash.as_deref() == Some(desired.as_str());
        let known = self.plan.status.last_stable_spec.as_ref().is_some_and(|s| s.hash == desired);
        if completed && running_desired && !known {
            match serde_json::to_string(self.spec) {
                Ok(spec) => self.plan.status.last_stable_spec = Some(StableSpec { hash: desired, spec }),
                Err(e) => tracing::warn!(error = %e, "the spec does not serialize: not recorded as stable"),
            }
        }
    }

    /// Forgets a rollback once the spec changed again (the change is an ordinary upgrade).
    pub(super) fn end_rollback_on_spec_change(&mut self) {
        let stable = self.old.last_stable_spec.as_ref().map(|s| s.hash.as_str());
        if self.old.rolled_back_from.is_some() && stable != Some(self.obs.desired_hash.as_str()) {
            self.plan.status.rolled_back_from = None;
        }
    }

    /// Rolls back when the failed attempt ran a spec that never completed a checkpoint and a
    /// stable spec exists (and the spec asks for it). True when it did: the failed pods are
    /// being deleted, and the next reconcile relaunches the stable spec.
    pub(super) fn roll_back(&mut self, current: u32, pods: &[&ObservedPod], why: &str) -> bool {
        let desired = self.obs.desired_hash.clone();
        let Some(stable) = self.old.last_stable_spec.as_ref() else { return false };
        let failed_spec_is_current = self.old.spec_hash.as_deref() == Some(desired.as_str());
        // Rolled back from this spec already (its stable spec would not decode): recover as usual.
        let again = self.old.rolled_back_from.as_deref() == Some(desired.as_str());
        if self.spec.rollback_on_failed_upgrade != Some(true)
            || stable.hash == desired
            || !failed_spec_is_current
            || again
        {
            return false;
        }
        let message = format!(
            "attempt {current} of the new spec failed before its first checkpoint ({why}): rolling back to the last stable spec (hash {})",
            stable.hash
        );
        self.plan.status.rolled_back_from = Some(desired);
        self.plan.status.error = Some(message.clone());
        self.plan.status.recovery = Some(RecoveryStatus {
            failed_attempt: current,
            failed_at: Some(Time(self.now)),
            reason: Some(why.to_string()),
        });
        self.event(true, Reason::RolledBack, message.clone());
        self.cond(T::Degraded, true, Reason::RolledBack, message.clone());
        self.cond(T::Ready, false, Reason::RolledBack, message);
        self.set_phase(sluice_crds::Phase::Recovering);
        self.delete(pods);
        self.plan.requeue_after = self.plan.requeue_after.min(REQUEUE_NOW);
        true
    }
}
