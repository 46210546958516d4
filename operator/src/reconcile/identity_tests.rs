//! Planner tests of run identity (issue 14, item 1) and of the status write rate: stop
//! savepoints are named after the run of this object, a savepoint that is not this job's is
//! never complete and never restored from, and checkpoints that complete every few seconds do
//! not rewrite status every few seconds.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sluice_crds::contract::control::CheckpointInfo;
use sluice_crds::contract::manifest::CheckpointId;
use sluice_crds::savepoints::{OperationKind, OperationStep, RestoreMode, SavepointState};
use sluice_crds::stream_job::{CheckpointStatus, CheckpointsStatus, DesiredState, UpgradeMode};
use sluice_crds::{Phase, StreamJobStatus};

use super::observe::{Observed, RuntimeObservation};
use super::plan::{Action, CHECKPOINT_STATUS_INTERVAL, Restore, plan};
use super::plan_tests::{at, deleted, launches, observed, running, runtime_running, spec, status};

const UID: &str = "0f3c9a7e-11aa-4bcd-9e00-5a5a5a5a5a5a";
const OURS: &str = "s3://bucket/demo/savepoints/stop-demo-1-0f3c9a7e";

fn live_with_uid() -> Observed {
    let mut o = observed(vec![running(1)]);
    o.runtime = runtime_running();
    o.uid = Some(UID.into());
    o
}

fn suspend_path(o: &Observed) -> Option<String> {
    let mut s = spec();
    s.state = DesiredState::Suspended;
    let p = plan(&s, &status(Phase::Running, 1), o, at(0));
    p.status.operation.and_then(|op| op.savepoint_path)
}

#[test]
fn a_stop_savepoint_is_named_after_the_run_of_this_object() {
    let o = live_with_uid();
    assert_eq!(suspend_path(&o).as_deref(), Some(OURS));
    // The same name, another object: another directory.
    let mut other = o.clone();
    other.uid = Some("7d21be04-22bb-4bcd-9e00-5a5a5a5a5a5a".into());
    assert_ne!(suspend_path(&other), suspend_path(&o));
    // A pod started by an older operator (run id without object id) writes where its run id says.
    let mut legacy = o.clone();
    legacy.pods[0].run_id = Some("demo-1".into());
    assert_eq!(suspend_path(&legacy).as_deref(), Some("s3://bucket/demo/savepoints/stop-demo-1"));
}

#[test]
fn a_savepoint_that_is_not_this_jobs_is_never_complete_nor_restored_from() {
    let mut s = spec();
    s.upgrade_mode = UpgradeMode::Savepoint;
    s.state = DesiredState::Suspended;
    let o = live_with_uid();
    let begun = plan(&s, &status(Phase::Running, 1), &o, at(0));
    assert_eq!(begun.status.operation.as_ref().and_then(|op| op.savepoint_path.as_deref()), Some(OURS));
    // Storage holds a manifest at that path written by another object's run.
    let mut foreign = o.clone();
    foreign.savepoints_found.insert(OURS.into(), false);
    foreign.foreign_savepoints.insert(OURS.into(), "it was written by run demo-1-99999999".into());
    let p = plan(&s, &begun.status, &foreign, at(1));
    assert!(!p.actions.iter().any(|a| matches!(a, Action::StopWithSavepoint { .. })), "{:?}", p.actions);
    assert_eq!(deleted(&p), vec!["demo-1-0".to_string()], "the suspend goes on without it");
    let op = p.status.operation.clone().expect("operation");
    assert_eq!((op.kind, op.step, op.restore), (OperationKind::Suspend, OperationStep::Stop, RestoreMode::LastState));
    let last = p.status.savepoints.as_ref().and_then(|sp| sp.last.clone()).expect("last");
    assert_eq!(last.state, SavepointState::Failed);
    assert!(last.error.as_deref().is_some_and(|e| e.contains("not this job's")), "{last:?}");
    assert!(p.status.savepoints.as_ref().is_none_or(|sp| sp.history.is_empty()), "not in history");
    // Pods gone: suspended with nothing to resume from but the latest checkpoint.
    let gone = Observed { pods: vec![], ..foreign.clone() };
    let p = plan(&s, &p.status, &gone, at(2));
    assert_eq!((p.status.phase, p.status.resume_from.clone()), (Phase::Suspended, None));
    // Resuming restores the latest checkpoint, never the foreign savepoint.
    let mut resumed = s.clone();
    resumed.state = DesiredState::Running;
    let p = plan(&resumed, &p.status, &gone, at(3));
    assert_eq!(launches(&p), vec![(2, Restore::Latest)]);
}

fn reported(id: u64, completed_s: i64) -> RuntimeObservation {
    let mut r = runtime_running();
    if let RuntimeObservation::Status(s) = &mut r {
        s.latest = Some(CheckpointInfo {
            id: CheckpointId(id),
            path: format!("s3://bucket/demo/manifests/chk-{id:020}.json"),
            completed_at_ms: u64::try_from(1_700_000_000 + completed_s).expect("positive") * 1000,
            size_bytes: 1,
            duration_ms: 1,
        });
    }
    r
}

fn with_latest(id: u64, completed_s: i64) -> StreamJobStatus {
    let mut st = status(Phase::Running, 1);
    st.checkpoints = Some(CheckpointsStatus {
        latest: Some(CheckpointStatus {
            id,
            path: format!("s3://bucket/demo/manifests/chk-{id:020}.json"),
            completed_at: Some(Time(at(completed_s))),
            size_bytes: Some(1),
            duration_ms: Some(1),
        }),
    });
    st
}

#[test]
fn checkpoints_reach_status_at_most_once_per_interval() {
    let interval = i64::try_from(CHECKPOINT_STATUS_INTERVAL.as_secs()).expect("small");
    let latest = |old: &StreamJobStatus, runtime: RuntimeObservation, now: i64| {
        let o = Observed { runtime, ..observed(vec![running(1)]) };
        plan(&spec(), old, &o, at(now)).status.checkpoints.and_then(|c| c.latest).map(|l| l.id)
    };
    // The first checkpoint shows at once.
    assert_eq!(latest(&status(Phase::Running, 1), reported(1, 0), 0), Some(1));
    // Newer ones completing within the interval are held back...
    let old = with_latest(1, 0);
    for (id, at_s) in [(2, 5), (5, interval - 1)] {
        assert_eq!(latest(&old, reported(id, at_s), at_s), Some(1), "checkpoint {id} at {at_s}s");
    }
    // ...until one completes an interval after the reported one.
    assert_eq!(latest(&old, reported(9, interval), interval), Some(9));
}
