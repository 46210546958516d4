//! Folds what the runtime and storage answered to a plan's actions into the status the plan
//! writes. Pure: the answers come in as [`Outcome`]s.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sluice_crds::Phase;
use sluice_crds::conditions::{ConditionType as T, DesiredCondition, Reason};
use sluice_crds::contract::control::{SavepointState as RuntimeState, SavepointStatus, StopResponse};
use sluice_crds::savepoints::{OperationStep, RestoreMode, SavepointInfo, SavepointState};
use sluice_crds::stream_job::RecoveryStatus;

use super::apply::DisposeError;
use super::flow::trigger_of;
use super::plan::{Note, Plan};
use crate::runtime_client;

/// The answer to one action of a plan.
#[derive(Debug)]
pub enum Outcome {
    /// `TriggerSavepoint`: the runtime's answer, or why the call failed.
    Triggered(Result<SavepointStatus, runtime_client::Error>),
    /// `StopWithSavepoint`: the runtime stopped (with its savepoint), or why not.
    Stopped(Result<StopResponse, runtime_client::Error>),
    /// `Launch`: the API server refused a child, or a child's name is taken.
    LaunchRejected(super::apply::Rejected),
    /// `DisposeSavepoint`: the savepoint at `path` was deleted, or why not.
    Disposed {
        /// Directory URI of the savepoint.
        path: String,
        /// Deleted, or why not.
        result: Result<(), DisposeError>,
    },
}

fn note(plan: &mut Plan, warning: bool, reason: Reason, message: String) {
    plan.events.push(Note { warning, reason, message });
}

fn cond(plan: &mut Plan, status: bool, reason: Reason, message: String) {
    plan.conditions.retain(|c| c.type_ != T::SavepointInProgress);
    plan.conditions.push(DesiredCondition::new(T::SavepointInProgress, status, reason, message));
}

/// Applies `outcomes` to `plan.status` (and its conditions and Events).
pub fn absorb(plan: &mut Plan, outcomes: Vec<Outcome>, now: Timestamp) {
    for outcome in outcomes {
        match outcome {
            Outcome::Triggered(result) => triggered(plan, result, now),
            Outcome::Stopped(result) => stopped(plan, result, now),
            Outcome::LaunchRejected(r) => launch_rejected(plan, r, now),
            Outcome::Disposed { path, result: Ok(()) } => {
                if let Some(sp) = plan.status.savepoints.as_mut() {
                    sp.pending_disposal.retain(|p| p != &path);
                }
                note(plan, false, Reason::SavepointDisposed, format!("deleted savepoint {path} from storage"));
            }
            Outcome::Disposed { path, result: Err(e) } => {
                tracing::warn!(path = %path, error = %e, "savepoint disposal failed; retrying on the next reconcile");
            }
        }
    }
}

/// A refused launch is a failed attempt: status says why (condition, `error`, Warning Event)
/// and the planner retries it with the restart backoff and budget, as after a pod failure.
fn launch_rejected(plan: &mut Plan, r: super::apply::Rejected, now: Timestamp) {
    let message = format!("attempt {} could not be launched: {}", r.attempt, r.message);
    plan.status.phase = Phase::Recovering;
    plan.status.error = Some(message.clone());
    plan.status.recovery =
        Some(RecoveryStatus { failed_attempt: r.attempt, failed_at: Some(Time(now)), reason: Some(message.clone()) });
    let mut set = |t: T, status: bool, reason: Reason, m: &str| {
        plan.conditions.retain(|c| c.type_ != t);
        plan.conditions.push(DesiredCondition::new(t, status, reason, m));
    };
    set(T::Ready, false, r.reason, &message);
    set(T::Degraded, true, r.reason, &message);
    set(T::Progressing, true, Reason::BackoffWaiting, "retrying the launch with the restart backoff");
    // The launch's own Event ("deploying attempt N …") did not happen.
    plan.events
        .retain(|e| e.warning || !matches!(e.reason, Reason::Deploying | Reason::Relaunched | Reason::SpecChanged));
    note(plan, true, r.reason, message);
}

fn triggered(plan: &mut Plan, result: Result<SavepointStatus, runtime_client::Error>, now: Timestamp) {
    let Some(last) = plan.status.savepoints.as_mut().and_then(|s| s.last.as_mut()) else { return };
    let failure = match result {
        Ok(s) if s.state == RuntimeState::Failed => Some(s.error.unwrap_or_else(|| "the runtime refused it".into())),
        Ok(s) => {
            last.state = SavepointState::InProgress;
            last.request_id = Some(s.id);
            None
        }
        Err(e) => Some(e.to_string()),
    };
    if let Some(why) = failure {
        last.state = SavepointState::Failed;
        last.completed_at = Some(Time(now));
        last.error = Some(why.clone());
        let value = last.value.clone();
        note(plan, true, Reason::SavepointFailed, format!("savepoint {value} failed: {why}"));
        cond(plan, false, Reason::SavepointFailed, why);
    }
}

fn stopped(plan: &mut Plan, result: Result<StopResponse, runtime_client::Error>, now: Timestamp) {
    let Some(op) = plan.status.operation.as_mut() else { return };
    match result {
        Ok(resp) => {
            let path = resp.savepoint.or_else(|| op.savepoint_path.clone()).unwrap_or_default();
            op.step = OperationStep::Stop;
            op.restore = RestoreMode::Savepoint;
            op.savepoint_path = Some(path.clone());
            op.error = None;
            let trigger = trigger_of(op.kind);
            let info = SavepointInfo {
                value: format!("{trigger:?}").to_lowercase(),
                trigger,
                state: SavepointState::Completed,
                path: Some(path.clone()),
                request_id: None,
                started_at: op.started_at.clone(),
                completed_at: Some(Time(now)),
                error: None,
            };
            let sp = plan.status.savepoints.get_or_insert_with(Default::default);
            if !sp.history.iter().any(|h| h.path.as_deref() == Some(path.as_str())) {
                sp.history.insert(0, info.clone());
            }
            sp.last = Some(info);
            note(plan, false, Reason::SavepointCompleted, format!("stopped with a savepoint at {path}"));
            cond(plan, false, Reason::SavepointCompleted, path);
        }
        Err(e) => {
            // Judged on the next reconcile: the savepoint may still be complete (a duplicate
            // stop after an operator restart fails once the first one has finished).
            op.error = Some(e.to_string());
            tracing::warn!(error = %e, "stop-with-savepoint failed");
        }
    }
}
