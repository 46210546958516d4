//! Planner tests of jobs over several worker pods: one launch for all of them, Running only
//! once every worker is ready, any worker failing or vanishing fails the whole attempt (every
//! pod goes before all are relaunched), savepoints and stops go to worker 0, and a change of
//! `spec.workers` upgrades through `upgradeMode`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sluice_crds::conditions::Reason;
use sluice_crds::savepoints::{OperationStep, SavepointsStatus};
use sluice_crds::stream_job::{RecoveryStatus, UpgradeMode};
use sluice_crds::workers::WorkersStatus;
use sluice_crds::{Phase, StreamJobSpec, StreamJobStatus};

use super::absorb::{Outcome, absorb};
use super::observe::{Observed, ObservedPod, PodState};
use super::plan::{Action, Restore, plan};
use super::plan_tests::{at, deleted, launches, observed, pod, runtime_running, spec, status};
use sluice_crds::contract::control::{StopKind, StopResponse};

/// A spec of `n` workers.
fn spec_of(n: u32) -> StreamJobSpec {
    let mut s = spec();
    s.workers = n;
    s.parallelism = n.max(2);
    s
}

/// Worker `index` of an attempt of `n` workers.
fn worker(attempt: u32, index: u32, n: u32, state: PodState) -> ObservedPod {
    let mut p = pod(attempt, state);
    p.name = format!("demo-{attempt}-{index}");
    p.index = index;
    p.workers = n;
    p.ip = Some(format!("10.0.{attempt}.{index}"));
    p.failure = p.failure.map(|_| format!("pod demo-{attempt}-{index} exited with code 1"));
    p
}

fn ready(attempt: u32, index: u32, n: u32) -> ObservedPod {
    worker(attempt, index, n, PodState::Running { ready: true })
}

fn names(attempt: u32, n: u32) -> Vec<String> {
    (0..n).map(|i| format!("demo-{attempt}-{i}")).collect()
}

#[test]
fn one_launch_starts_every_worker_and_the_job_runs_once_all_are_ready() {
    let s = spec_of(3);
    let p = plan(&s, &StreamJobStatus::default(), &observed(vec![]), at(0));
    assert_eq!(launches(&p), vec![(1, Restore::Fresh)], "one action creates all the pods of the attempt");
    assert_eq!(p.status.workers, Some(WorkersStatus { ready: 0, desired: 3 }));

    let starting = observed(vec![ready(1, 0, 3), worker(1, 1, 3, PodState::Pending), ready(1, 2, 3)]);
    let p = plan(&s, &p.status, &starting, at(1));
    assert_eq!(p.status.phase, Phase::Deploying);
    assert_eq!(p.status.workers, Some(WorkersStatus { ready: 2, desired: 3 }));
    assert!(p.actions.is_empty(), "{:?}", p.actions);

    let all = observed(vec![ready(1, 0, 3), ready(1, 1, 3), ready(1, 2, 3)]);
    let p = plan(&s, &p.status, &all, at(2));
    assert_eq!(p.status.phase, Phase::Running);
    assert_eq!(p.status.workers, Some(WorkersStatus { ready: 3, desired: 3 }));
}

#[test]
fn any_worker_failing_fails_the_attempt_every_pod_goes_then_all_relaunch_from_the_checkpoint() {
    let s = spec_of(3);
    let o = observed(vec![ready(1, 0, 3), ready(1, 1, 3), worker(1, 2, 3, PodState::Failed)]);
    let p = plan(&s, &status(Phase::Running, 1), &o, at(0));
    assert_eq!(p.status.phase, Phase::Recovering);
    assert_eq!(deleted(&p), names(1, 3), "the healthy workers go too");
    assert!(launches(&p).is_empty(), "never two attempts alive");
    let reason = p.status.recovery.as_ref().and_then(|r| r.reason.clone()).unwrap_or_default();
    assert!(reason.contains("demo-1-2"), "{reason}");
    assert_eq!(p.status.workers, Some(WorkersStatus { ready: 2, desired: 3 }));

    // Two workers still terminating: nothing new starts, and nothing is deleted twice.
    let mut terminating = vec![ready(1, 0, 3), ready(1, 1, 3)];
    terminating.iter_mut().for_each(|p| p.terminating = true);
    let p2 = plan(&s, &p.status, &observed(terminating), at(1));
    assert!(launches(&p2).is_empty() && deleted(&p2).is_empty(), "{:?}", p2.actions);

    // All gone, backoff over: every worker of attempt 2 from the latest checkpoint.
    let mut st = p.status.clone();
    st.recovery = Some(RecoveryStatus { failed_at: Some(Time(at(-600))), ..st.recovery.unwrap_or_default() });
    let p3 = plan(&s, &st, &observed(vec![]), at(2));
    assert_eq!(launches(&p3), vec![(2, Restore::Latest)]);
    assert_eq!(p3.status.restarts, 1);
    assert_eq!(p3.status.workers, Some(WorkersStatus { ready: 0, desired: 3 }));
}

#[test]
fn a_worker_pod_that_vanished_fails_the_attempt_and_is_named() {
    let s = spec_of(3);
    let o = observed(vec![ready(1, 0, 3), ready(1, 2, 3)]);
    let p = plan(&s, &status(Phase::Running, 1), &o, at(0));
    assert_eq!(p.status.phase, Phase::Recovering);
    assert_eq!(deleted(&p), vec!["demo-1-0".to_string(), "demo-1-2".to_string()]);
    assert!(p.conditions.iter().any(|c| c.reason == Reason::PodDeleted), "{:?}", p.conditions);
}

#[test]
fn a_launch_cut_short_is_never_taken_for_a_running_attempt() {
    // Attempt 2's launch created worker 0 and then stopped (an API error; its status write
    // never happened): the status still names attempt 1.
    let s = spec_of(3);
    let mut st = status(Phase::Recovering, 1);
    st.recovery = Some(RecoveryStatus { failed_attempt: 1, failed_at: Some(Time(at(-600))), reason: None });
    let o = observed(vec![ready(2, 0, 3)]);
    let p = plan(&s, &st, &o, at(0));
    assert_ne!(p.status.phase, Phase::Running);
    assert_eq!(deleted(&p), vec!["demo-2-0".to_string()], "the lone worker would wait for its peers in vain");
    let message = p.status.recovery.as_ref().and_then(|r| r.reason.clone()).unwrap_or_default();
    assert!(message.contains("1 of its 3 worker pods") && message.contains("demo-2-1, demo-2-2"), "{message}");
}

#[test]
fn savepoints_and_stops_go_to_worker_zero_wherever_it_is_listed() {
    let mut s = spec_of(3);
    s.savepoint_trigger_nonce = Some(2);
    let mut o = observed(vec![ready(1, 2, 3), ready(1, 1, 3), ready(1, 0, 3)]);
    o.runtime = runtime_running();
    let mut st = status(Phase::Running, 1);
    st.savepoints = Some(SavepointsStatus { observed_nonce: Some(1), ..Default::default() });
    let p = plan(&s, &st, &o, at(0));
    let p = plan(&s, &p.status, &o, at(1));
    let ips: Vec<&str> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::TriggerSavepoint { pod_ip, .. } => Some(pod_ip.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(ips, ["10.0.1.0"], "{:?}", p.actions);
}

#[test]
fn changing_the_worker_count_upgrades_through_a_savepoint_then_launches_the_new_count() {
    let mut s = spec_of(3);
    s.upgrade_mode = UpgradeMode::Savepoint;
    // Attempt 1 runs 2 workers; the spec now asks for 3 (so its hash differs).
    let mut o = observed(vec![ready(1, 1, 2), ready(1, 0, 2)]);
    o.runtime = runtime_running();
    o.desired_hash = "h2".into();
    let p = plan(&s, &status(Phase::Running, 1), &o, at(0));
    assert_eq!(p.status.phase, Phase::Upgrading, "two pods of a two-worker attempt are not a failure");
    assert_eq!(p.status.workers, Some(WorkersStatus { ready: 2, desired: 2 }), "the running attempt's");
    let mut p = plan(&s, &p.status, &o, at(1));
    let stops: Vec<&Action> = p.actions.iter().filter(|a| matches!(a, Action::StopWithSavepoint { .. })).collect();
    assert_eq!(stops, [&Action::StopWithSavepoint { pod_ip: "10.0.1.0".into() }]);
    let path = "s3://bucket/demo/savepoints/stop-demo-1";
    absorb(
        &mut p,
        vec![Outcome::Stopped(Ok(StopResponse {
            version: 1,
            stopped: StopKind::Savepoint,
            savepoint: Some(path.into()),
        }))],
        at(2),
    );
    assert_eq!(p.status.operation.as_ref().map(|o| o.step), Some(OperationStep::Stop));
    let exited = Observed {
        pods: vec![worker(1, 0, 2, PodState::Succeeded), worker(1, 1, 2, PodState::Succeeded)],
        ..o.clone()
    };
    let p = plan(&s, &p.status, &exited, at(3));
    assert_eq!(deleted(&p), names(1, 2));
    let p = plan(&s, &p.status, &Observed { pods: vec![], ..o }, at(4));
    assert_eq!(launches(&p), vec![(2, Restore::From(path.into()))]);
    assert_eq!(p.status.workers, Some(WorkersStatus { ready: 0, desired: 3 }));
    assert_eq!(p.status.restarts, 0, "an upgrade is not a restart");
}

#[test]
fn one_worker_jobs_read_as_before() {
    let s = spec();
    let p = plan(&s, &status(Phase::Deploying, 1), &observed(vec![pod(1, PodState::Running { ready: true })]), at(0));
    assert_eq!(p.status.phase, Phase::Running);
    assert_eq!(p.status.workers, Some(WorkersStatus { ready: 1, desired: 1 }));
}
