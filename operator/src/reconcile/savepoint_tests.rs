//! Planner tests of the savepoint paths: triggers (annotation, nonce, not running), following a
//! savepoint to completion, history bounds and disposal, and the multi-step flows (upgrade,
//! suspend, delete) — each also with an operator restart between steps, which the planner sees
//! as nothing but the last persisted status.

use sluice_crds::conditions::{ConditionType as T, Reason};
use sluice_crds::contract::control::{SavepointState as RuntimeState, SavepointStatus, StopKind, StopResponse};
use sluice_crds::savepoints::{
    OperationKind, OperationStep, RestoreMode, SavepointDisposal, SavepointHistory, SavepointInfo, SavepointState,
    SavepointTrigger, SavepointsStatus,
};
use sluice_crds::stream_job::{DesiredState, UpgradeMode};
use sluice_crds::{Phase, StreamJobSpec, StreamJobStatus};

use super::absorb::{Outcome, absorb};
use super::observe::{Observed, PodState, SavepointPoll};
use super::plan::{Action, Plan, Restore, plan};
use super::plan_tests::{at, deleted, launches, observed, pod, running, runtime_running, spec, status};

const STOP1: &str = "s3://bucket/demo/savepoints/stop-demo-1";

/// A running attempt 1 whose runtime answers.
fn live() -> Observed {
    let mut o = observed(vec![running(1)]);
    o.runtime = runtime_running();
    o
}

fn savepoint_spec(mode: UpgradeMode) -> StreamJobSpec {
    let mut s = spec();
    s.upgrade_mode = mode;
    s
}

fn stop_actions(p: &Plan) -> usize {
    p.actions.iter().filter(|a| matches!(a, Action::StopWithSavepoint { .. })).count()
}

fn cond(p: &Plan, t: T) -> (bool, Reason) {
    let c = p.conditions.iter().find(|c| c.type_ == t).expect("condition set");
    (c.status, c.reason)
}

fn last(p: &Plan) -> SavepointInfo {
    p.status.savepoints.as_ref().and_then(|s| s.last.clone()).expect("a last savepoint")
}

/// Status of a running job that already saw annotation `seen`.
fn running_seen(seen: &str) -> StreamJobStatus {
    let mut st = status(Phase::Running, 1);
    st.savepoints = Some(SavepointsStatus { observed_annotation: Some(seen.into()), ..Default::default() });
    st
}

// ---- triggers ----

/// The runtime's answer to a stop with savepoint that wrote `location`.
fn stopped_at(location: &str) -> Vec<Outcome> {
    vec![Outcome::Stopped(Ok(StopResponse {
        version: 1,
        stopped: StopKind::Savepoint,
        savepoint: Some(location.into()),
    }))]
}
#[test]
fn a_new_annotation_value_records_a_pending_savepoint_then_asks_the_runtime_once() {
    let mut o = live();
    o.annotation = Some("1700000001".into());
    let p = plan(&spec(), &running_seen("old"), &o, at(5));
    let l = last(&p);
    assert_eq!(
        (l.value.as_str(), l.trigger, l.state),
        ("1700000001", SavepointTrigger::Annotation, SavepointState::Pending)
    );
    let path = l.path.clone().expect("path decided before asking");
    assert!(path.starts_with("s3://bucket/demo/savepoints/sp-"), "{path}");
    assert!(p.actions.is_empty(), "the runtime is asked only once the trigger is persisted");
    assert_eq!(cond(&p, T::SavepointInProgress), (true, Reason::SavepointTriggered));
    // Next reconcile: ask the runtime, exactly once.
    let mut p2 = plan(&spec(), &p.status, &o, at(6));
    assert_eq!(p2.actions, vec![Action::TriggerSavepoint { pod_ip: "10.0.0.1".into(), location: path.clone() }]);
    absorb(
        &mut p2,
        vec![Outcome::Triggered(Ok(SavepointStatus {
            version: 1,
            id: "sp-demo-1-0".into(),
            state: RuntimeState::Pending,
            location: None,
            error: None,
        }))],
        at(6),
    );
    assert_eq!(last(&p2).state, SavepointState::InProgress);
    assert_eq!(last(&p2).request_id.as_deref(), Some("sp-demo-1-0"));
    // The same annotation value never triggers again.
    let p3 = plan(&spec(), &p2.status, &o, at(7));
    assert!(p3.actions.iter().all(|a| !matches!(a, Action::TriggerSavepoint { .. })));
    // Following it: the runtime reports completion → Completed, in history, condition False.
    o.savepoint_poll = Some(SavepointPoll::Status(SavepointStatus {
        version: 1,
        id: "sp-demo-1-0".into(),
        state: RuntimeState::Completed,
        location: Some(path.clone()),
        error: None,
    }));
    let p4 = plan(&spec(), &p2.status, &o, at(8));
    let l = last(&p4);
    assert_eq!((l.state, l.path.as_deref()), (SavepointState::Completed, Some(path.as_str())));
    assert!(l.completed_at.is_some());
    assert_eq!(p4.status.savepoints.as_ref().map(|s| s.history.len()), Some(1));
    assert!(!cond(&p4, T::SavepointInProgress).0);
    assert!(p4.events.iter().any(|e| e.reason == Reason::SavepointCompleted));
}

#[test]
fn a_new_nonce_triggers_like_the_annotation() {
    let mut s = spec();
    s.savepoint_trigger_nonce = Some(3);
    let mut st = status(Phase::Running, 1);
    st.savepoints = Some(SavepointsStatus { observed_nonce: Some(2), ..Default::default() });
    let p = plan(&s, &st, &live(), at(0));
    assert_eq!((last(&p).trigger, last(&p).value.as_str()), (SavepointTrigger::Nonce, "3"));
    assert_eq!(p.status.savepoints.and_then(|s| s.observed_nonce), Some(3));
}

#[test]
fn trigger_values_present_at_the_first_deploy_do_not_trigger() {
    let mut s = spec();
    s.savepoint_trigger_nonce = Some(9);
    let mut o = observed(vec![]);
    o.annotation = Some("x".into());
    let p = plan(&s, &StreamJobStatus::default(), &o, at(0));
    let sp = p.status.savepoints.expect("values recorded");
    assert_eq!((sp.observed_annotation.as_deref(), sp.observed_nonce, sp.last), (Some("x"), Some(9), None));
}

#[test]
fn a_trigger_for_a_job_that_is_not_running_fails_in_status_and_as_a_warning() {
    let mut s = spec();
    s.state = DesiredState::Suspended;
    let mut o = observed(vec![]);
    o.annotation = Some("2".into());
    let p = plan(&s, &running_seen("1"), &o, at(0));
    let l = last(&p);
    assert_eq!(l.state, SavepointState::Failed);
    assert!(l.error.as_deref().is_some_and(|e| e.contains("not running")), "{l:?}");
    assert!(p.events.iter().any(|e| e.warning && e.reason == Reason::SavepointFailed));
    assert!(p.actions.is_empty());
}

#[test]
fn a_savepoint_whose_attempt_died_fails_and_a_runtime_failure_is_reported() {
    let mut st = running_seen("1");
    let info = SavepointInfo {
        value: "1".into(),
        state: SavepointState::InProgress,
        path: Some("s3://bucket/demo/savepoints/sp-1".into()),
        request_id: Some("sp-demo-1-0".into()),
        started_at: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(0))),
        ..Default::default()
    };
    st.savepoints.as_mut().expect("set").last = Some(info);
    let mut o = live();
    o.savepoint_poll = Some(SavepointPoll::Status(SavepointStatus {
        version: 1,
        id: "sp-demo-1-0".into(),
        state: RuntimeState::Failed,
        location: None,
        error: Some("checkpoint 4 declined".into()),
    }));
    let p = plan(&spec(), &st, &o, at(1));
    assert_eq!(last(&p).error.as_deref(), Some("checkpoint 4 declined"));
    o.savepoint_poll = Some(SavepointPoll::Unknown);
    let p = plan(&spec(), &st, &o, at(1));
    assert_eq!(last(&p).state, SavepointState::Failed);
    // Still pending past the checkpoint timeout (+ grace) fails too.
    o.savepoint_poll = Some(SavepointPoll::Status(SavepointStatus {
        version: 1,
        id: "sp-demo-1-0".into(),
        state: RuntimeState::Pending,
        location: None,
        error: None,
    }));
    assert_eq!(last(&plan(&spec(), &st, &o, at(60))).state, SavepointState::InProgress);
    assert_eq!(last(&plan(&spec(), &st, &o, at(3600))).state, SavepointState::Failed);
}

#[test]
fn a_savepoint_found_complete_in_storage_after_an_operator_restart_counts_as_completed() {
    // The trigger was sent, but the status write with its request id was lost.
    let mut st = running_seen("1");
    let path = "s3://bucket/demo/savepoints/sp-1";
    st.savepoints.as_mut().expect("set").last =
        Some(SavepointInfo { value: "1".into(), path: Some(path.into()), ..Default::default() });
    let mut o = live();
    o.annotation = Some("1".into());
    o.savepoints_found.insert(path.into(), true);
    let p = plan(&spec(), &st, &o, at(1));
    assert_eq!(last(&p).state, SavepointState::Completed);
    assert!(p.actions.is_empty(), "not asked twice");
}

// ---- history and disposal ----

fn completed(i: i64) -> SavepointInfo {
    SavepointInfo {
        value: i.to_string(),
        state: SavepointState::Completed,
        path: Some(format!("s3://bucket/demo/savepoints/sp-{i}")),
        completed_at: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(i))),
        ..Default::default()
    }
}

#[test]
fn history_is_bounded_and_what_falls_out_is_disposed_of_after_it_is_recorded() {
    let mut s = spec();
    s.savepoint_history = Some(SavepointHistory { max_count: Some(2), max_age: None });
    s.savepoint_disposal = Some(SavepointDisposal::Delete);
    let mut st = status(Phase::Running, 1);
    st.savepoints = Some(SavepointsStatus { history: (1..=4).rev().map(completed).collect(), ..Default::default() });
    let p = plan(&s, &st, &live(), at(10));
    let sp = p.status.savepoints.clone().expect("savepoints");
    assert_eq!(sp.history.iter().map(|h| h.value.as_str()).collect::<Vec<_>>(), vec!["4", "3"]);
    assert_eq!(
        sp.pending_disposal,
        vec!["s3://bucket/demo/savepoints/sp-2".to_string(), "s3://bucket/demo/savepoints/sp-1".to_string()]
    );
    assert!(!p.actions.iter().any(|a| matches!(a, Action::DisposeSavepoint { .. })), "queued first");
    // Next reconcile (job not even running): the queued disposals are carried out.
    let mut p2 = plan(&s, &p.status, &observed(vec![]), at(11));
    let disposals: Vec<_> = p2.actions.iter().filter(|a| matches!(a, Action::DisposeSavepoint { .. })).collect();
    assert_eq!(disposals.len(), 2);
    absorb(
        &mut p2,
        vec![
            Outcome::Disposed { path: "s3://bucket/demo/savepoints/sp-2".into(), result: Ok(()) },
            Outcome::Disposed { path: "s3://bucket/demo/savepoints/sp-1".into(), result: Err(unavailable()) },
        ],
        at(11),
    );
    assert_eq!(
        p2.status.savepoints.expect("sp").pending_disposal,
        vec!["s3://bucket/demo/savepoints/sp-1".to_string()]
    );
}

#[test]
fn retain_keeps_files_and_max_age_bounds_history() {
    let mut s = spec();
    s.savepoint_history = Some(SavepointHistory {
        max_count: None,
        max_age: Some(serde_json::from_value(serde_json::json!("5s")).expect("duration")),
    });
    let mut st = status(Phase::Running, 1);
    st.savepoints = Some(SavepointsStatus { history: vec![completed(9), completed(1)], ..Default::default() });
    let p = plan(&s, &st, &live(), at(10));
    let sp = p.status.savepoints.expect("savepoints");
    assert_eq!(sp.history.len(), 1, "the 9s-old savepoint is past maxAge 5s");
    assert!(sp.pending_disposal.is_empty(), "Retain (default) never deletes files");
}

// ---- upgrade with a savepoint ----

/// Runs the savepoint upgrade of attempt 1 to its launch, restarting the "operator" (plan
/// from persisted status only) after every step when `restart` is set.
#[test]
fn savepoint_upgrade_stops_with_a_savepoint_then_starts_the_new_spec_from_it() {
    let s = savepoint_spec(UpgradeMode::Savepoint);
    let mut o = live();
    o.desired_hash = "h2".into();
    // 1. Intent first: step Savepoint and the path, no action.
    let p = plan(&s, &status(Phase::Running, 1), &o, at(0));
    let op = p.status.operation.clone().expect("operation");
    assert_eq!(
        (op.kind, op.step, op.savepoint_path.as_deref()),
        (OperationKind::Upgrade, OperationStep::Savepoint, Some(STOP1))
    );
    assert!(p.actions.is_empty());
    assert_eq!(p.status.phase, Phase::Upgrading);
    // 2. Stop with a savepoint; the runtime answers with the savepoint.
    let mut p = plan(&s, &p.status, &o, at(1));
    assert_eq!(stop_actions(&p), 1);
    assert!(deleted(&p).is_empty(), "pods stay until the savepoint is taken");
    absorb(&mut p, stopped_at(STOP1), at(2));
    assert_eq!(p.status.operation.as_ref().map(|o| o.step), Some(OperationStep::Stop));
    assert_eq!(last(&p).trigger, SavepointTrigger::Upgrade);
    // 3. The runtime exited 0: its pod is deleted, not taken for a finished job.
    let exited = Observed { pods: vec![pod(1, PodState::Succeeded)], ..o.clone() };
    let p = plan(&s, &p.status, &exited, at(3));
    assert_eq!(deleted(&p), vec!["demo-1-0".to_string()]);
    assert_eq!(p.status.phase, Phase::Upgrading);
    // 4. Pods gone: attempt 2 restores the savepoint.
    let p = plan(&s, &p.status, &Observed { pods: vec![], ..o }, at(4));
    assert_eq!(launches(&p), vec![(2, Restore::From(STOP1.into()))]);
    assert_eq!(p.status.operation, None);
    assert_eq!(p.status.spec_hash.as_deref(), Some("h2"));
}

#[test]
fn operator_restart_during_the_savepoint_step_finds_the_savepoint_and_does_not_stop_twice() {
    let s = savepoint_spec(UpgradeMode::Savepoint);
    let mut o = live();
    o.desired_hash = "h2".into();
    let p = plan(&s, &status(Phase::Running, 1), &o, at(0));
    // The stop was sent and completed, but the operator died before writing status: the
    // persisted status still says step Savepoint. The runtime exited and the savepoint exists.
    let mut after = Observed { pods: vec![pod(1, PodState::Succeeded)], ..o.clone() };
    after.savepoints_found.insert(STOP1.into(), true);
    let p = plan(&s, &p.status, &after, at(5));
    assert_eq!(stop_actions(&p), 0, "never a second stop");
    assert_eq!(deleted(&p), vec!["demo-1-0".to_string()]);
    assert_eq!(
        p.status.operation.as_ref().map(|o| (o.step, o.restore)),
        Some((OperationStep::Stop, RestoreMode::Savepoint))
    );
    // Restart again before the launch: pods gone → launch from the savepoint.
    let p = plan(&s, &p.status, &Observed { pods: vec![], ..o.clone() }, at(6));
    assert_eq!(launches(&p), vec![(2, Restore::From(STOP1.into()))]);
    // Restart after the launch whose status write was lost: the new attempt is adopted.
    let lost = p.status.clone();
    let mut before_launch = lost.clone();
    before_launch.attempt = 1;
    before_launch.operation = plan(&s, &status(Phase::Running, 1), &o, at(0)).status.operation.map(|mut op| {
        op.step = OperationStep::Stop;
        op.restore = RestoreMode::Savepoint;
        op
    });
    let mut new_pod = pod(2, PodState::Pending);
    new_pod.spec_hash = Some("h2".into());
    let p = plan(&s, &before_launch, &Observed { pods: vec![new_pod], ..o }, at(7));
    assert!(launches(&p).is_empty() && deleted(&p).is_empty(), "{:?}", p.actions);
    assert_eq!((p.status.attempt, p.status.operation.clone()), (2, None));
}

#[test]
fn a_failed_savepoint_falls_back_to_the_latest_checkpoint_when_allowed_and_says_so() {
    let s = savepoint_spec(UpgradeMode::Savepoint);
    let mut o = live();
    o.desired_hash = "h2".into();
    let p = plan(&s, &status(Phase::Running, 1), &o, at(0));
    let mut p = plan(&s, &p.status, &o, at(1));
    absorb(&mut p, vec![Outcome::Stopped(Err(declined()))], at(1));
    // The runtime is still running, the stop failed, no savepoint in storage.
    o.savepoints_found.insert(STOP1.into(), false);
    let p = plan(&s, &p.status, &o, at(2));
    assert!(p.events.iter().any(|e| e.warning && e.reason == Reason::SavepointUpgradeFallback));
    assert_eq!(last(&p).state, SavepointState::Failed);
    assert_eq!(deleted(&p), vec!["demo-1-0".to_string()]);
    let p = plan(&s, &p.status, &Observed { pods: vec![], ..o }, at(3));
    assert_eq!(launches(&p), vec![(2, Restore::Latest)]);
}

#[test]
fn without_fallback_a_failed_savepoint_keeps_the_old_attempt_and_retries() {
    let mut s = savepoint_spec(UpgradeMode::Savepoint);
    s.last_state_fallback = Some(false);
    let mut o = live();
    o.desired_hash = "h2".into();
    let p = plan(&s, &status(Phase::Running, 1), &o, at(0));
    let mut p = plan(&s, &p.status, &o, at(1));
    absorb(&mut p, vec![Outcome::Stopped(Err(declined()))], at(1));
    o.savepoints_found.insert(STOP1.into(), false);
    let p = plan(&s, &p.status, &o, at(2));
    assert!(deleted(&p).is_empty(), "the old attempt keeps running");
    assert_eq!(stop_actions(&p), 1, "the savepoint is tried again");
    assert_eq!(cond(&p, T::Degraded), (true, Reason::SavepointFailed));
}

#[test]
fn last_state_and_stateless_upgrades_write_their_step_before_deleting_pods() {
    for (mode, restore) in
        [(UpgradeMode::LastState, RestoreMode::LastState), (UpgradeMode::Stateless, RestoreMode::Fresh)]
    {
        let s = savepoint_spec(mode);
        let mut o = live();
        o.desired_hash = "h2".into();
        let p = plan(&s, &status(Phase::Running, 1), &o, at(0));
        assert_eq!(p.status.operation.as_ref().map(|o| (o.step, o.restore)), Some((OperationStep::Stop, restore)));
        assert!(p.actions.is_empty());
        // Operator restart: the persisted step deletes the pods; the next launches per mode.
        let p = plan(&s, &p.status, &o, at(1));
        assert_eq!(deleted(&p), vec!["demo-1-0".to_string()]);
        let p = plan(&s, &p.status, &Observed { pods: vec![], ..o }, at(2));
        let expected = if mode == UpgradeMode::Stateless { Restore::Fresh } else { Restore::Latest };
        assert_eq!(launches(&p), vec![(2, expected)]);
    }
}

#[test]
fn a_parallelism_change_and_a_restart_nonce_upgrade_through_the_savepoint() {
    for change in ["parallelism", "restartNonce"] {
        let mut s = savepoint_spec(UpgradeMode::Savepoint);
        let before = crate::build::spec_hash(&s);
        match change {
            "parallelism" => s.parallelism = 5,
            _ => s.restart_nonce = Some(1),
        }
        let mut o = live();
        o.desired_hash = crate::build::spec_hash(&s);
        assert_ne!(o.desired_hash, before, "{change} changes the pods");
        let mut st = status(Phase::Running, 1);
        st.spec_hash = Some(before);
        o.pods[0].spec_hash = st.spec_hash.clone();
        let p = plan(&s, &st, &o, at(0));
        let mut p = plan(&s, &p.status, &o, at(1));
        assert_eq!(stop_actions(&p), 1, "{change}");
        absorb(&mut p, stopped_at(STOP1), at(1));
        let p = plan(&s, &p.status, &Observed { pods: vec![], ..o }, at(2));
        assert_eq!(launches(&p), vec![(2, Restore::From(STOP1.into()))], "{change}");
        assert_eq!(p.status.parallelism, Some(s.parallelism));
    }
}

// ---- suspend / resume ----

#[test]
fn suspend_stops_with_a_savepoint_and_resume_restores_it_even_across_operator_restarts() {
    let mut s = spec();
    s.state = DesiredState::Suspended;
    let o = live();
    let p = plan(&s, &status(Phase::Running, 1), &o, at(0));
    assert_eq!(p.status.phase, Phase::Suspending);
    assert_eq!(
        p.status.operation.as_ref().map(|o| (o.kind, o.step)),
        Some((OperationKind::Suspend, OperationStep::Savepoint))
    );
    assert!(p.actions.is_empty());
    // Restart: the persisted step asks for the stop; the answer is lost with the operator.
    let p1 = plan(&s, &p.status, &o, at(1));
    assert_eq!(stop_actions(&p1), 1);
    // Restart: the pod exited 0 and the savepoint is in storage.
    let mut exited = Observed { pods: vec![pod(1, PodState::Succeeded)], ..o.clone() };
    exited.savepoints_found.insert(STOP1.into(), true);
    let p = plan(&s, &p.status, &exited, at(2));
    assert_eq!(deleted(&p), vec!["demo-1-0".to_string()]);
    let p = plan(&s, &p.status, &Observed { pods: vec![], ..o.clone() }, at(3));
    assert_eq!(p.status.phase, Phase::Suspended);
    assert_eq!(p.status.resume_from.as_deref(), Some(STOP1));
    assert_eq!(p.status.operation, None);
    assert_eq!(last(&p).path.as_deref(), Some(STOP1));
    // Resume: attempt 2 restores the suspend's savepoint.
    s.state = DesiredState::Running;
    let p = plan(&s, &p.status, &Observed { pods: vec![], ..o }, at(4));
    assert_eq!(launches(&p), vec![(2, Restore::From(STOP1.into()))]);
    assert_eq!(p.status.resume_from, None);
}

// ---- deletion ----

#[test]
fn deletion_takes_a_final_savepoint_before_the_finalizer_goes_across_operator_restarts() {
    let mut o = live();
    o.deleting = true;
    let p = plan(&spec(), &status(Phase::Running, 1), &o, at(0));
    assert_eq!(
        p.status.operation.as_ref().map(|o| (o.kind, o.step)),
        Some((OperationKind::Delete, OperationStep::Savepoint))
    );
    assert!(p.actions.is_empty() && !p.cleanup_done);
    // Restart: the persisted step stops with a savepoint.
    let p1 = plan(&spec(), &p.status, &o, at(1));
    assert_eq!(stop_actions(&p1), 1);
    assert!(!p1.cleanup_done);
    // Restart: the runtime exited after its savepoint → pods deleted, then the finalizer goes.
    let mut exited = Observed { pods: vec![pod(1, PodState::Succeeded)], ..o.clone() };
    exited.savepoints_found.insert(STOP1.into(), true);
    let p = plan(&spec(), &p.status, &exited, at(2));
    assert_eq!(deleted(&p), vec!["demo-1-0".to_string()]);
    assert!(!p.cleanup_done);
    let p = plan(&spec(), &p.status, &Observed { pods: vec![], ..o }, at(3));
    assert!(p.cleanup_done);
}

#[test]
fn deletion_without_savepoint_on_deletion_just_stops_the_pods() {
    let mut s = spec();
    s.savepoint_on_deletion = Some(false);
    let mut o = live();
    o.deleting = true;
    let p = plan(&s, &status(Phase::Running, 1), &o, at(0));
    assert_eq!(deleted(&p), vec!["demo-1-0".to_string()]);
    assert_eq!(stop_actions(&p), 0);
    assert!(p.events.is_empty(), "{:?}", p.events);
}

/// The runtime refused a stop-with-savepoint (its checkpoint was declined).
fn declined() -> crate::runtime_client::Error {
    crate::runtime_client::Error::Status {
        addr: "10.0.0.1:9249".into(),
        status: 409,
        body: "checkpoint declined".into(),
    }
}

/// The store answered 503 to a deletion.
fn unavailable() -> super::apply::DisposeError {
    super::apply::DisposeError::Delete(sluice_storage::Error::Backend {
        store: "s3://bucket".into(),
        op: "delete",
        key: "demo/savepoints/sp-1".into(),
        message: "503".into(),
        retryable: true,
    })
}

/// A failed call to the runtime reaches status and the stop flow in the client error's words.
#[test]
fn a_failed_trigger_or_stop_is_reported_in_the_runtime_clients_words() {
    let mut o = live();
    o.annotation = Some("1700000001".into());
    let p = plan(&spec(), &running_seen("old"), &o, at(5));
    let mut p2 = plan(&spec(), &p.status, &o, at(6));
    let unreachable =
        crate::runtime_client::Error::Unreachable { addr: "10.0.0.1:9249".into(), message: "timed out".into() };
    absorb(&mut p2, vec![Outcome::Triggered(Err(unreachable))], at(6));
    let l = last(&p2);
    assert_eq!(l.state, SavepointState::Failed);
    assert_eq!(l.error.as_deref(), Some("runtime at 10.0.0.1:9249 unreachable: timed out"));

    let s = savepoint_spec(UpgradeMode::Savepoint);
    let mut o = live();
    o.desired_hash = "h2".into();
    let p = plan(&s, &status(Phase::Running, 1), &o, at(0));
    let mut p = plan(&s, &p.status, &o, at(1));
    absorb(&mut p, vec![Outcome::Stopped(Err(declined()))], at(1));
    let op = p.status.operation.expect("the upgrade goes on");
    assert_eq!(op.error.as_deref(), Some("runtime at 10.0.0.1:9249 answered 409: checkpoint declined"));
}

/// The reasons a savepoint cannot be taken keep the words status and Events always used.
#[test]
fn the_reasons_no_savepoint_is_taken_read_as_before() {
    use super::flow::NoSavepoint;
    use sluice_crds::contract::control::JobState;
    let cases = [
        (NoSavepoint::NoCheckpointing, "checkpointing is not configured"),
        (NoSavepoint::NotRunning(Phase::Deploying), "the job is not running (phase Deploying)"),
        (NoSavepoint::Busy(OperationKind::Upgrade), "the job is not running (Upgrade in progress)"),
        (NoSavepoint::RuntimeState(JobState::Finished), "the runtime reports the job Finished"),
        (NoSavepoint::Unreachable("refused".into()), "the runtime does not answer: refused"),
        (NoSavepoint::NotQueried, "the runtime was not reached"),
        (NoSavepoint::NoPodIp, "the runtime pod has no IP yet"),
    ];
    for (why, text) in cases {
        assert_eq!(why.to_string(), text);
    }
    let outside =
        super::apply::DisposeError::OutsideStorage { path: "s3://x/sp".into(), storage: "s3://b/demo".into() };
    assert_eq!(outside.to_string(), "s3://x/sp is not under the job's storage s3://b/demo");
    assert_eq!(super::apply::DisposeError::NoCheckpointing.to_string(), "checkpointing is not configured");
    assert_eq!(unavailable().to_string(), "s3://bucket: delete \"demo/savepoints/sp-1\" failed: 503");
}
