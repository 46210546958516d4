//! Planner tests: a table over the observed states the issue lists, then property tests
//! (arbitrary states, and random runs of a simulated cluster) for "never two attempts alive".

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use proptest::prelude::*;
use sluice_crds::conditions::Reason;
use sluice_crds::contract::control::{DataLossKind, JobState, JobStatus};
use sluice_crds::savepoints::OperationStatus;
use sluice_crds::stream_job::{DesiredState, RecoveryStatus, UpgradeMode};
use sluice_crds::{Phase, StreamJobSpec, StreamJobStatus};

use sluice_crds::contract::control::{StopKind, StopResponse};

use super::absorb::{Outcome, absorb};
use super::observe::{Observed, ObservedPod, PodState, RuntimeObservation, StoreObservation};
use super::plan::{Action, Plan, Restore, plan};
use crate::build::test_job::job;
use crate::recovery::RestorePoint;

pub(super) const HASH: &str = "h1";
pub(super) const CHK: &str = "s3://bucket/demo/manifests/chk-00000000000000000007.json";

pub(super) fn at(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).expect("valid")
}

pub(super) fn spec() -> StreamJobSpec {
    job().spec
}

pub(super) fn pod(attempt: u32, state: PodState) -> ObservedPod {
    ObservedPod {
        name: format!("demo-{attempt}-0"),
        attempt,
        index: 0,
        workers: 1,
        state,
        terminating: false,
        spec_hash: Some(HASH.into()),
        failure: matches!(state, PodState::Failed).then(|| format!("pod demo-{attempt}-0 exited with code 1")),
        data_loss: None,
        invalid_job: false,
        ip: Some(format!("10.0.0.{attempt}")),
        run_id: None,
        waiting: None,
        created_at: None,
        deletion_at: None,
    }
}

pub(super) fn running(attempt: u32) -> ObservedPod {
    pod(attempt, PodState::Running { ready: true })
}

pub(super) fn observed(pods: Vec<ObservedPod>) -> Observed {
    Observed {
        generation: Some(1),
        deleting: false,
        pods,
        runtime: RuntimeObservation::NotQueried,
        store: StoreObservation::Latest(Some(RestorePoint {
            id: 7,
            path: CHK.into(),
            completed_at_ms: 1_700_000_000_000,
            size_bytes: 10,
            duration_ms: 5,
        })),
        desired_hash: HASH.into(),
        invalid: None,
        job_name: "demo".into(),
        annotation: None,
        savepoint_poll: None,
        savepoints_found: Default::default(),
        foreign_savepoints: Default::default(),
        uid: None,
    }
}

/// What a running runtime answers on `/v1/checkpoints`.
pub(super) fn runtime_running() -> RuntimeObservation {
    RuntimeObservation::Status(JobStatus {
        version: 1,
        run_id: "demo-1".into(),
        state: JobState::Running,
        restored_from: None,
        latest: None,
        in_progress: None,
        completed: 1,
        failed: 0,
        consecutive_failures: 0,
        last_failure: None,
    })
}

pub(super) fn status(phase: Phase, attempt: u32) -> StreamJobStatus {
    StreamJobStatus { phase, attempt, spec_hash: Some(HASH.into()), ..StreamJobStatus::default() }
}

pub(super) fn launches(p: &Plan) -> Vec<(u32, Restore)> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::Launch { attempt, restore } => Some((*attempt, restore.clone())),
            _ => None,
        })
        .collect()
}

pub(super) fn deleted(p: &Plan) -> Vec<String> {
    p.actions
        .iter()
        .flat_map(|a| match a {
            Action::DeletePods { names, .. } => names.clone(),
            _ => vec![],
        })
        .collect()
}

#[test]
fn no_pods_first_deploy_launches_attempt_one_fresh() {
    let p = plan(&spec(), &StreamJobStatus::default(), &observed(vec![]), at(0));
    assert_eq!(launches(&p), vec![(1, Restore::Fresh)]);
    assert_eq!(p.status.phase, Phase::Deploying);
    assert_eq!(p.status.attempt, 1);
    assert_eq!(p.status.spec_hash.as_deref(), Some(HASH));
    assert_eq!(p.status.restarts, 0);
}

#[test]
fn first_deploy_restores_the_initial_savepoint() {
    let mut s = spec();
    s.initial_savepoint_path = Some("s3://bucket/sp/1/".into());
    let p = plan(&s, &StreamJobStatus::default(), &observed(vec![]), at(0));
    assert_eq!(launches(&p), vec![(1, Restore::From("s3://bucket/sp/1/".into()))]);
}

#[test]
fn pods_pending_wait_in_deploying() {
    let p = plan(&spec(), &status(Phase::Deploying, 1), &observed(vec![pod(1, PodState::Pending)]), at(0));
    assert!(p.actions.is_empty());
    assert_eq!(p.status.phase, Phase::Deploying);
}

#[test]
fn running_and_ready_pods_make_the_job_running_and_report_the_checkpoint() {
    let p = plan(&spec(), &status(Phase::Deploying, 1), &observed(vec![running(1)]), at(0));
    assert!(p.actions.is_empty());
    assert_eq!(p.status.phase, Phase::Running);
    let latest = p.status.checkpoints.and_then(|c| c.latest).expect("latest checkpoint");
    assert_eq!((latest.id, latest.path.as_str()), (7, CHK));
    assert!(p.conditions.iter().any(|c| c.type_ == sluice_crds::conditions::ConditionType::Ready && c.status));
    assert_eq!(p.events.len(), 1, "one event for the transition to Running");
}

#[test]
fn one_failed_pod_deletes_the_attempt_before_anything_else() {
    let p = plan(&spec(), &status(Phase::Running, 1), &observed(vec![pod(1, PodState::Failed)]), at(0));
    assert_eq!(p.status.phase, Phase::Recovering);
    assert_eq!(deleted(&p), vec!["demo-1-0".to_string()]);
    assert!(launches(&p).is_empty(), "never launch while a pod of the failed attempt exists");
    let r = p.status.recovery.expect("recovery recorded");
    assert_eq!(r.failed_attempt, 1);
    assert!(r.reason.expect("reason").contains("exited with code 1"));
    assert!(p.events.iter().any(|e| e.warning));
}

#[test]
fn after_the_failed_pods_are_gone_and_the_backoff_passed_attempt_two_restores_the_latest_checkpoint() {
    let mut st = status(Phase::Recovering, 1);
    st.recovery = Some(RecoveryStatus { failed_attempt: 1, failed_at: Some(Time(at(0))), reason: Some("x".into()) });
    let waiting = plan(&spec(), &st, &observed(vec![]), at(0));
    assert!(launches(&waiting).is_empty(), "first restart waits backoff.initial (1s)");
    assert_eq!(waiting.requeue_after, Duration::from_secs(1));
    let p = plan(&spec(), &st, &observed(vec![]), at(1));
    assert_eq!(launches(&p), vec![(2, Restore::Latest)]);
    assert_eq!(p.status.restarts, 1);
    assert_eq!(p.status.recent_restarts.len(), 1);
    assert_eq!(p.status.recovery, None);
    assert_eq!(p.status.restored_from, None, "the runtime picks it by the restore rule");
    // Running: the runtime says which checkpoint it restored, and status records it.
    let mut o = observed(vec![running(2)]);
    o.runtime = match runtime_running() {
        RuntimeObservation::Status(mut s) => {
            s.restored_from = Some(CHK.into());
            RuntimeObservation::Status(s)
        }
        other => other,
    };
    let p = plan(&spec(), &p.status, &o, at(2));
    assert_eq!(p.status.restored_from.as_deref(), Some(CHK));
}

#[test]
fn all_pods_failed_with_workers_gone_also_recovers() {
    let mut lost = pod(1, PodState::Failed);
    lost.terminating = true;
    let p = plan(&spec(), &status(Phase::Running, 1), &observed(vec![lost]), at(0));
    assert_eq!(p.status.phase, Phase::Recovering);
    assert!(launches(&p).is_empty());
}

#[test]
fn node_lost_force_deletes_the_pod() {
    let p = plan(&spec(), &status(Phase::Running, 1), &observed(vec![pod(1, PodState::NodeLost)]), at(0));
    assert_eq!(p.actions, vec![Action::DeletePods { names: vec!["demo-1-0".into()], force: true }]);
    assert_eq!(p.status.phase, Phase::Recovering);
}

#[test]
fn a_deleted_pod_counts_as_a_failure() {
    let p = plan(&spec(), &status(Phase::Running, 1), &observed(vec![]), at(0));
    assert_eq!(p.status.phase, Phase::Recovering);
    assert_eq!(p.status.recovery.expect("recovery").failed_attempt, 1);
}

#[test]
fn runtime_reporting_failed_is_a_failure() {
    let mut o = observed(vec![running(1)]);
    o.runtime = RuntimeObservation::Status(JobStatus {
        version: 1,
        run_id: "demo-1".into(),
        state: JobState::Failed,
        restored_from: None,
        latest: None,
        in_progress: None,
        completed: 0,
        failed: 4,
        consecutive_failures: 4,
        last_failure: Some("timeout".into()),
    });
    let p = plan(&spec(), &status(Phase::Running, 1), &o, at(0));
    assert_eq!(p.status.phase, Phase::Recovering);
    assert_eq!(deleted(&p), vec!["demo-1-0".to_string()]);
}

#[test]
fn spec_changed_last_state_replaces_the_attempt_from_the_latest_checkpoint() {
    let mut o = observed(vec![running(1)]);
    o.desired_hash = "h2".into();
    let p = plan(&spec(), &status(Phase::Running, 1), &o, at(0));
    assert_eq!(p.status.phase, Phase::Upgrading);
    assert!(p.actions.is_empty(), "the step is written to status before it acts");
    let p = plan(&spec(), &p.status, &o, at(0));
    assert_eq!(deleted(&p), vec!["demo-1-0".to_string()]);
    assert!(launches(&p).is_empty());
    let p2 = plan(&spec(), &p.status, &Observed { pods: vec![], ..o }, at(1));
    assert_eq!(launches(&p2), vec![(2, Restore::Latest)]);
    assert_eq!(p2.status.restarts, 0, "an upgrade is not a restart");
    assert_eq!(p2.status.spec_hash.as_deref(), Some("h2"));
}

#[test]
fn spec_changed_stateless_starts_without_state() {
    let mut s = spec();
    s.upgrade_mode = UpgradeMode::Stateless;
    let mut o = observed(vec![]);
    o.desired_hash = "h2".into();
    let p = plan(&s, &status(Phase::Upgrading, 1), &o, at(0));
    assert_eq!(launches(&p), vec![(2, Restore::Fresh)]);
}

#[test]
fn savepoint_mode_without_a_running_job_falls_back_to_the_latest_checkpoint_and_says_so() {
    let mut s = spec();
    s.upgrade_mode = UpgradeMode::Savepoint;
    let mut o = observed(vec![running(1)]);
    o.desired_hash = "h2".into();
    // The runtime does not answer: no savepoint can be taken.
    let p = plan(&s, &status(Phase::Running, 1), &o, at(0));
    assert!(p.events.iter().any(|e| e.reason == sluice_crds::conditions::Reason::SavepointUpgradeFallback));
    let op = p.status.operation.clone().expect("the upgrade is recorded before it acts");
    assert_eq!(op.restore, sluice_crds::savepoints::RestoreMode::LastState);
    assert!(p.actions.is_empty(), "nothing acts before the step is persisted");
    let p = plan(&s, &p.status, &o, at(1));
    assert_eq!(deleted(&p), vec!["demo-1-0".to_string()]);
    let p = plan(&s, &p.status, &Observed { pods: vec![], ..o }, at(2));
    assert_eq!(launches(&p), vec![(2, Restore::Latest)]);
    assert_eq!(p.status.operation, None);
}

#[test]
fn suspended_without_a_runtime_answer_stops_every_pod_then_resumes_from_the_checkpoint() {
    let mut s = spec();
    s.state = DesiredState::Suspended;
    let p = plan(&s, &status(Phase::Running, 1), &observed(vec![running(1)]), at(0));
    assert_eq!(p.status.phase, Phase::Suspending);
    assert!(p.actions.is_empty());
    let p = plan(&s, &p.status, &observed(vec![running(1)]), at(0));
    assert_eq!(deleted(&p), vec!["demo-1-0".to_string()]);
    let p = plan(&s, &p.status, &observed(vec![]), at(1));
    assert_eq!(p.status.phase, Phase::Suspended);
    assert!(p.actions.is_empty());
    s.state = DesiredState::Running;
    let p = plan(&s, &p.status, &observed(vec![]), at(2));
    assert_eq!(launches(&p), vec![(2, Restore::Latest)]);
    assert_eq!(p.status.restarts, 0);
}

#[test]
fn deleting_removes_all_pods_and_finishes_when_none_are_left() {
    let mut o = observed(vec![running(1), pod(0, PodState::Pending)]);
    o.deleting = true;
    let p = plan(&spec(), &status(Phase::Running, 1), &o, at(0));
    assert_eq!(deleted(&p).len(), 2);
    assert!(!p.cleanup_done);
    o.pods.clear();
    assert!(plan(&spec(), &status(Phase::Running, 1), &o, at(0)).cleanup_done);
}

#[test]
fn storage_unreachable_delays_recovery_instead_of_losing_state() {
    let mut st = status(Phase::Recovering, 1);
    st.recovery = Some(RecoveryStatus { failed_attempt: 1, failed_at: Some(Time(at(0))), reason: None });
    let mut o = observed(vec![]);
    o.store = StoreObservation::Unavailable("connection refused".into());
    let p = plan(&spec(), &st, &o, at(100));
    assert!(launches(&p).is_empty());
    assert_eq!(p.status.phase, Phase::Recovering);
    assert!(p.conditions.iter().any(|c| c.reason == sluice_crds::conditions::Reason::StorageUnavailable));
}

#[test]
fn file_storage_lets_the_runtime_pick_the_latest_checkpoint() {
    let mut st = status(Phase::Recovering, 1);
    st.recovery = Some(RecoveryStatus { failed_attempt: 1, failed_at: Some(Time(at(0))), reason: None });
    let mut o = observed(vec![]);
    o.store = StoreObservation::RuntimeManaged;
    let p = plan(&spec(), &st, &o, at(100));
    assert_eq!(launches(&p), vec![(2, Restore::Latest)]);
    let args = crate::build::pod::args("demo-2", &Restore::Latest, crate::build::pod::RestoreFlags::default());
    assert!(!args.iter().any(|a| a == "--restore" || a == "--no-restore"), "no restore flag: {args:?}");
}

#[test]
fn restart_budget_exhausted_fails_the_job_with_a_reason() {
    let mut st = status(Phase::Recovering, 4);
    st.recovery =
        Some(RecoveryStatus { failed_attempt: 4, failed_at: Some(Time(at(0))), reason: Some("exit 1".into()) });
    st.recent_restarts = vec![Time(at(-30)), Time(at(-20)), Time(at(-10))];
    let mut s = spec();
    s.restart_strategy = Some(serde_json::from_value(serde_json::json!({"maxRestarts": 3})).expect("strategy"));
    let p = plan(&s, &st, &observed(vec![]), at(100));
    assert!(launches(&p).is_empty());
    assert_eq!(p.status.phase, Phase::Failed);
    let ready = p.conditions.iter().find(|c| c.type_ == sluice_crds::conditions::ConditionType::Ready).expect("Ready");
    assert_eq!(ready.reason, sluice_crds::conditions::Reason::RestartLimitExceeded);
    assert!(ready.message.contains("restarted 3 times") && ready.message.contains("exit 1"), "{}", ready.message);
    // Restarts older than the window do not count.
    st.recent_restarts = vec![Time(at(-7200)), Time(at(-20)), Time(at(-10))];
    let p = plan(&s, &st, &observed(vec![]), at(3580));
    assert_eq!(launches(&p), vec![(5, Restore::Latest)], "2 restarts in the window: one more is allowed");
}

#[test]
fn backoff_doubles_with_restarts_in_the_window() {
    let mut st = status(Phase::Recovering, 3);
    st.recovery = Some(RecoveryStatus { failed_attempt: 3, failed_at: Some(Time(at(0))), reason: None });
    st.recent_restarts = vec![Time(at(-20)), Time(at(-10))];
    let p = plan(&spec(), &st, &observed(vec![]), at(3));
    assert!(launches(&p).is_empty());
    assert_eq!(p.requeue_after, Duration::from_secs(1), "2 restarts in window → 4s backoff, 1s left");
    assert_eq!(launches(&plan(&spec(), &st, &observed(vec![]), at(4))).len(), 1);
}

#[test]
fn a_refused_restore_stops_the_job_with_data_loss_risk_naming_the_refusal() {
    let mut refused = pod(1, PodState::Failed);
    refused.data_loss = Some(DataLossKind::RestoreRefused);
    refused.failure = Some(format!(
        "pod demo-1-0 exited with code 3: {}",
        DataLossKind::RestoreRefused
            .termination_message("checkpoint 12 failed verification (its manifest is gone ...)")
    ));
    let p = plan(&spec(), &status(Phase::Running, 1), &observed(vec![refused]), at(0));
    assert_eq!(p.status.phase, Phase::Failed, "a relaunch would be refused the same way");
    assert!(launches(&p).is_empty());
    let risk = p.conditions.iter().find(|c| c.type_ == sluice_crds::conditions::ConditionType::DataLossRisk);
    let risk = risk.expect("DataLossRisk condition");
    assert_eq!(risk.reason, Reason::RestoreRefused, "not an uncommittable transaction");
    assert!(
        risk.status && risk.message.contains("restore refused") && risk.message.contains("checkpoint 12"),
        "{}",
        risk.message
    );
    assert!(p.events.iter().any(|e| e.warning && e.reason == Reason::RestoreRefused));
}

#[test]
fn a_runtime_that_could_not_commit_a_completed_checkpoint_stops_the_job_with_data_loss_risk() {
    let mut lost = pod(1, PodState::Failed);
    lost.data_loss = Some(DataLossKind::UncommittableTransaction);
    lost.failure = Some(
        "pod demo-1-0 exited with code 3: DataLossRisk: transaction sluice-demo-out-0-1 of completed checkpoint 7 ..."
            .into(),
    );
    let p = plan(&spec(), &status(Phase::Running, 1), &observed(vec![lost]), at(0));
    assert_eq!(p.status.phase, Phase::Failed, "no blind relaunch: it would fail the same way");
    assert!(launches(&p).is_empty());
    assert_eq!(deleted(&p), vec!["demo-1-0".to_string()]);
    let risk = p.conditions.iter().find(|c| c.type_ == sluice_crds::conditions::ConditionType::DataLossRisk);
    let risk = risk.expect("DataLossRisk condition");
    assert!(risk.status && risk.message.contains("checkpoint 7"), "{}", risk.message);
    assert!(p.events.iter().any(|e| e.warning));
    // Once its pods are gone it stays failed until the spec changes.
    let again = plan(&spec(), &p.status, &observed(vec![]), at(5));
    assert!(launches(&again).is_empty());
    assert_eq!(again.status.phase, Phase::Failed);
}

#[test]
fn a_job_document_the_runtime_refuses_fails_the_job_without_a_relaunch() {
    let mut refused = pod(1, PodState::Failed);
    refused.invalid_job = true;
    refused.failure = Some("pod demo-1-0 exited with code 65: pipeline.nodes[1] (sum): unknown function".into());
    let p = plan(&spec(), &status(Phase::Running, 1), &observed(vec![refused]), at(0));
    assert_eq!(p.status.phase, Phase::Failed, "a relaunch would be refused the same way");
    assert!(launches(&p).is_empty(), "no relaunch under the restart policy");
    assert_eq!(deleted(&p), vec!["demo-1-0".to_string()]);
    let degraded = p.conditions.iter().find(|c| c.type_ == sluice_crds::conditions::ConditionType::Degraded);
    let degraded = degraded.expect("Degraded condition");
    assert_eq!(degraded.reason, Reason::InvalidSpec);
    assert!(degraded.message.contains("pipeline.nodes[1]"), "{}", degraded.message);
    assert!(p.status.recent_restarts.is_empty(), "the restart budget is not spent");
    // Once its pods are gone it stays failed until the spec changes.
    let again = plan(&spec(), &p.status, &observed(vec![]), at(30));
    assert!(launches(&again).is_empty());
    assert_eq!(again.status.phase, Phase::Failed);
}

#[test]
fn failed_job_stays_failed_until_the_spec_changes() {
    let st = status(Phase::Failed, 4);
    let p = plan(&spec(), &st, &observed(vec![]), at(0));
    assert!(p.actions.is_empty());
    assert_eq!(p.status.phase, Phase::Failed);
    let mut o = observed(vec![]);
    o.desired_hash = "h2".into();
    let p = plan(&spec(), &st, &o, at(0));
    assert_eq!(launches(&p), vec![(5, Restore::Latest)]);
}

#[test]
fn invalid_pipeline_is_reported_not_crash_looped() {
    let mut o = observed(vec![]);
    o.invalid = Some("spec.pipeline.nodes[1]: \"print\" has no input edge".into());
    let p = plan(&spec(), &StreamJobStatus::default(), &o, at(0));
    assert!(p.actions.is_empty());
    assert_eq!(p.status.phase, Phase::Failed);
    assert!(p.status.error.expect("error").contains("spec.pipeline.nodes[1]"));
    assert!(p.events.iter().any(|e| e.warning && e.reason == sluice_crds::conditions::Reason::InvalidSpec));
}

#[test]
fn a_pod_of_an_older_attempt_is_deleted_and_blocks_launching() {
    let mut st = status(Phase::Recovering, 2);
    st.recovery = Some(RecoveryStatus { failed_attempt: 2, failed_at: Some(Time(at(0))), reason: None });
    let p = plan(&spec(), &st, &observed(vec![pod(1, PodState::Running { ready: true })]), at(100));
    assert_eq!(deleted(&p), vec!["demo-1-0".to_string()]);
    assert!(launches(&p).is_empty());
}

#[test]
fn a_pod_newer_than_status_is_adopted_not_duplicated() {
    // The status write after a launch was lost: status says attempt 1, pod 2 exists.
    let p = plan(&spec(), &status(Phase::Recovering, 1), &observed(vec![running(2)]), at(0));
    assert_eq!(p.status.attempt, 2);
    assert!(launches(&p).is_empty());
    assert_eq!(p.status.phase, Phase::Running);
}

#[test]
fn a_lost_status_adopts_running_pods_without_restarting_them() {
    let p = plan(&spec(), &StreamJobStatus::default(), &observed(vec![running(3)]), at(0));
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!((p.status.attempt, p.status.phase), (3, Phase::Running));
}

#[test]
fn finished_pods_finish_the_job_and_stay_for_their_logs() {
    let p = plan(&spec(), &status(Phase::Running, 1), &observed(vec![pod(1, PodState::Succeeded)]), at(0));
    assert_eq!(p.status.phase, Phase::Finished);
    assert!(p.actions.is_empty());
    let again = plan(&spec(), &p.status, &observed(vec![pod(1, PodState::Succeeded)]), at(1));
    assert!(again.actions.is_empty());
    assert_eq!(again.status.phase, Phase::Finished);
}

// ---- properties ----

fn arb_state() -> impl Strategy<Value = PodState> {
    prop_oneof![
        Just(PodState::Pending),
        Just(PodState::Running { ready: true }),
        Just(PodState::Running { ready: false }),
        Just(PodState::Succeeded),
        Just(PodState::Failed),
        Just(PodState::NodeLost),
    ]
}

fn arb_pod() -> impl Strategy<Value = ObservedPod> {
    (0u32..5, arb_state(), any::<bool>(), any::<bool>()).prop_map(|(attempt, state, terminating, same_hash)| {
        let mut p = pod(attempt, state);
        p.terminating = terminating;
        if !same_hash {
            p.spec_hash = Some("old".into());
        }
        p
    })
}

fn arb_phase() -> impl Strategy<Value = Phase> {
    proptest::sample::select(Phase::ALL.to_vec())
}

fn arb_store() -> impl Strategy<Value = StoreObservation> {
    prop_oneof![
        Just(StoreObservation::NotConfigured),
        Just(StoreObservation::Latest(None)),
        Just(observed(vec![]).store),
        Just(StoreObservation::Unavailable("down".into())),
        Just(StoreObservation::RuntimeManaged),
    ]
}

fn arb_operation() -> impl Strategy<Value = Option<OperationStatus>> {
    use sluice_crds::savepoints::{OperationKind as K, OperationStep as S, RestoreMode as R};
    proptest::option::of((
        proptest::sample::select(vec![K::Upgrade, K::Suspend, K::Delete]),
        proptest::sample::select(vec![S::Savepoint, S::Stop]),
        proptest::sample::select(vec![R::Savepoint, R::LastState, R::Fresh]),
        0u32..5,
        any::<bool>(),
    ))
    .prop_map(|o| {
        o.map(|(kind, step, restore, attempt, failed)| OperationStatus {
            kind,
            step,
            attempt,
            restore,
            savepoint_path: Some(format!("s3://bucket/demo/savepoints/stop-demo-{attempt}")),
            started_at: None,
            error: failed.then(|| "stop failed".into()),
        })
    })
}

fn arb_status() -> impl Strategy<Value = StreamJobStatus> {
    ((arb_phase(), 0u32..5, any::<bool>(), proptest::option::of((0u32..5, -20i64..20)), 0usize..12), arb_operation())
        .prop_map(|((phase, attempt, same_hash, recovery, recent), operation)| StreamJobStatus {
            phase,
            attempt,
            spec_hash: Some(if same_hash { HASH.into() } else { "old".into() }),
            recovery: recovery.map(|(a, t)| RecoveryStatus {
                failed_attempt: a,
                failed_at: Some(Time(at(t))),
                reason: None,
            }),
            recent_restarts: (0..recent).map(|i| Time(at(-(i as i64)))).collect(),
            operation,
            ..StreamJobStatus::default()
        })
}

fn arb_spec() -> impl Strategy<Value = StreamJobSpec> {
    (
        any::<bool>(),
        proptest::sample::select(vec![UpgradeMode::Stateless, UpgradeMode::LastState, UpgradeMode::Savepoint]),
    )
        .prop_map(|(suspended, mode)| {
            let mut s = spec();
            s.state = if suspended { DesiredState::Suspended } else { DesiredState::Running };
            s.upgrade_mode = mode;
            s
        })
}

proptest! {
    #[test]
    fn a_launch_happens_only_when_no_pod_of_any_attempt_exists(
        spec in arb_spec(),
        st in arb_status(),
        pods in proptest::collection::vec(arb_pod(), 0..4),
        store in arb_store(),
        deleting in any::<bool>(),
        now in 0i64..100,
    ) {
        let mut o = observed(pods);
        o.store = store.clone();
        o.deleting = deleting;
        let p = plan(&spec, &st, &o, at(now));
        let l = launches(&p);
        prop_assert!(l.len() <= 1, "at most one launch per plan");
        if let Some((attempt, restore)) = l.first() {
            prop_assert!(o.pods.is_empty(), "launched {attempt} while pods exist: {:?}", o.pods);
            prop_assert!(!deleting && spec.state == DesiredState::Running);
            prop_assert!(*attempt > st.attempt);
            prop_assert_eq!(p.status.attempt, *attempt);
            // Without storage only a start that needs no checkpoint lookup may go ahead: fresh,
            // or the flow's own savepoint.
            let from_savepoint = matches!(restore, Restore::From(p) if p.contains("/savepoints/"));
            prop_assert!(!matches!(store, StoreObservation::Unavailable(_)) || *restore == Restore::Fresh || from_savepoint);
        }
        prop_assert!(p.status.restarts >= st.restarts);
        prop_assert!(p.status.attempt >= st.attempt);
    }
}

/// A tiny cluster: pods appear on Launch, go away on delete, and fail at random.
#[derive(Debug, Clone)]
enum Step {
    Reconcile,
    Fail,
    LoseNode,
    BecomeReady,
    ChangeSpec,
    Suspend(bool),
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Reconcile),
        1 => Just(Step::Fail),
        1 => Just(Step::LoseNode),
        2 => Just(Step::BecomeReady),
        1 => Just(Step::ChangeSpec),
        1 => any::<bool>().prop_map(Step::Suspend),
    ]
}

proptest! {
    #[test]
    fn simulated_runs_never_have_two_attempts_alive(steps in proptest::collection::vec(arb_step(), 1..60)) {
        let mut spec = spec();
        let mut st = StreamJobStatus::default();
        let mut pods: Vec<ObservedPod> = vec![];
        let mut hash = HASH.to_string();
        let mut clock = 0i64;
        for step in steps {
            clock += 1;
            match step {
                Step::Fail => pods.iter_mut().for_each(|p| p.state = PodState::Failed),
                Step::LoseNode => pods.iter_mut().for_each(|p| p.state = PodState::NodeLost),
                Step::BecomeReady => pods.iter_mut().filter(|p| p.state == PodState::Pending).for_each(|p| p.state = PodState::Running { ready: true }),
                Step::ChangeSpec => hash = format!("h{clock}"),
                Step::Suspend(s) => spec.state = if s { DesiredState::Suspended } else { DesiredState::Running },
                Step::Reconcile => {
                    let mut o = observed(pods.clone());
                    o.desired_hash = hash.clone();
                    if pods.iter().any(|p| matches!(p.state, PodState::Running { .. })) {
                        o.runtime = runtime_running();
                    }
                    let mut p = plan(&spec, &st, &o, at(clock * 1000));
                    let mut outcomes = vec![];
                    for a in &p.actions {
                        match a {
                            Action::DeletePods { names, .. } => pods.retain(|p| !names.contains(&p.name)),
                            Action::Launch { attempt, .. } => {
                                let mut new = pod(*attempt, PodState::Pending);
                                new.spec_hash = Some(hash.clone());
                                pods.push(new);
                            }
                            Action::StopWithSavepoint { .. } => {
                                pods.iter_mut().for_each(|p| p.state = PodState::Succeeded);
                                outcomes.push(Outcome::Stopped(Ok(StopResponse { version: 1, stopped: StopKind::Savepoint, savepoint: None })));
                            }
                            Action::TriggerSavepoint { .. } | Action::DisposeSavepoint { .. } => {}
                        }
                    }
                    absorb(&mut p, outcomes, at(clock * 1000));
                    st = p.status;
                }
            }
            let mut attempts: Vec<u32> = pods.iter().map(|p| p.attempt).collect();
            attempts.dedup();
            prop_assert!(attempts.len() <= 1, "two attempts alive: {:?}", pods);
        }
    }
}
